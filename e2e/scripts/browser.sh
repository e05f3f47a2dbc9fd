#!/usr/bin/env bash
# Makes sure the headless browser the web page's e2e scenario drives is installed: Debian's
# Chromium and its ChromeDriver (e2e/src/browser.rs starts them). Idempotent: with both
# present it only reports their versions. Installs them with apt-get when it can (root);
# otherwise says what is missing and how to get it, and fails.
#
# APPROVAL_E2E_CHROMIUM and APPROVAL_E2E_CHROMEDRIVER point the harness at other binaries;
# when both are set, those are checked instead and nothing is installed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CHROMIUM="${APPROVAL_E2E_CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${APPROVAL_E2E_CHROMEDRIVER:-/usr/bin/chromedriver}"
PACKAGES=(chromium chromium-driver)

present() { [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; }

report() {
  # Both print one line; chromium may add warnings of its own on stderr.
  log "browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM (version unknown)")"
  log "driver:  $("$CHROMEDRIVER" --version 2>/dev/null || echo "$CHROMEDRIVER (version unknown)")"
}

if present; then
  report
  exit 0
fi

missing=()
[[ -x "$CHROMIUM" ]] || missing+=("$CHROMIUM")
[[ -x "$CHROMEDRIVER" ]] || missing+=("$CHROMEDRIVER")

if [[ -n "${APPROVAL_E2E_CHROMIUM:-}${APPROVAL_E2E_CHROMEDRIVER:-}" ]]; then
  # The caller chose the binaries: installing Debian's would not make those appear.
  die "not executable: ${missing[*]} (from APPROVAL_E2E_CHROMIUM/APPROVAL_E2E_CHROMEDRIVER)"
fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
  log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists are refreshed only when they turn out to be stale: an update is slow
  # and needs the network, and an up-to-date machine needs neither.
  if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}"; then
    log "install failed; refreshing the package lists and retrying"
    apt-get update
    apt-get install -y --no-install-recommends "${PACKAGES[@]}"
  fi
  if present; then
    report
    exit 0
  fi
  die "installed ${PACKAGES[*]}, but ${missing[*]} still missing"
fi

cat >&2 <<MESSAGE

  ================================================================================
  The web page's e2e scenario needs a headless Chromium and its ChromeDriver.
  Missing: ${missing[*]}

  On Debian or Ubuntu, as root:
      apt-get install -y --no-install-recommends ${PACKAGES[*]}
  Elsewhere, install Chromium and a matching ChromeDriver and point the harness at them:
      export APPROVAL_E2E_CHROMIUM=/path/to/chromium
      export APPROVAL_E2E_CHROMEDRIVER=/path/to/chromedriver
  ================================================================================

MESSAGE
exit 1
