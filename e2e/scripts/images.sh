#!/usr/bin/env bash
# The images of the local node, built without a container engine and cached by their
# inputs under $APPROVAL_CACHE/images (see e2e/src/image.rs):
#   busybox  Debian's busybox-static with a link per applet: the step image of the suite's
#            and the demo's tasks
#   pause    a static pause process (pause.c): the pod sandbox image
#   tekton-webhook, tekton-entrypoint, tekton-nop, tekton-workingdirinit,
#   tekton-sidecarlogresults
#            Tekton's webhook and helper images: the static binary at /ko-app/<name>, where
#            Tekton expects it (as ko lays it out), run as the nonroot user 65532
# Prints the archive of each. Each is tagged approval.local/<name>:<version>; node-up.sh
# pushes it to the node's registry under the registry's name. Installs busybox-static and a C compiler with apt-get when
# missing (root), else says what to install.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

IMAGES="$APPROVAL_CACHE/images"
mkdir -p "$IMAGES"
IMAGE_TOOL=(cargo run --locked --quiet --manifest-path "$REPO_DIR/Cargo.toml" -p approval-e2e --bin image --)

need() {
  local binary="$1" package="$2"
  [[ -x "$binary" ]] && return
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing $package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >/dev/null ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >/dev/null; }
  fi
  [[ -x "$binary" ]] || die "$binary missing: install Debian's $package"
}

# The cache key of an image: its tag, its inputs' contents and this script (how it is made).
key() { { echo "$1"; shift; cat "$@"; } | sha256sum | cut -c1-16; }

busybox() {
  need /bin/busybox busybox-static
  local version; version="$(dpkg-query -W -f '${Version}' busybox-static | tr -c 'a-zA-Z0-9.\n' '-')"
  local tag="approval.local/busybox:$version"
  local out="$IMAGES/busybox-$(key "$tag" /bin/busybox "$0").tar"
  if [[ ! -s "$out" ]]; then
    local links=()
    for applet in $(/bin/busybox --list); do
      [[ "$applet" == busybox ]] || links+=(--link "/bin/busybox:/bin/$applet")
    done
    "${IMAGE_TOOL[@]}" files --tag "$tag" --out "$out" \
      --file /bin/busybox:/bin/busybox "${links[@]}" --dir /tmp:1777 --dir /root:700 \
      --entrypoint /bin/sh >&2
  fi
  echo "$out"
}

pause() {
  need /usr/bin/gcc gcc
  local source="$E2E_DIR/scripts/pause.c"
  local tag=approval.local/pause:3.10
  local out="$IMAGES/pause-$(key "$tag" "$source" "$0").tar"
  if [[ ! -s "$out" ]]; then
    local build; build="$(mktemp -d)"
    gcc -static -O2 -o "$build/pause" "$source"
    "${IMAGE_TOOL[@]}" files --tag "$tag" --out "$out" \
      --file "$build/pause:/pause" --entrypoint /pause --user 65535:65535 >&2
    rm -rf "$build"
  fi
  echo "$out"
}

# tekton NAME: the binary build-tools.sh made of Tekton's cmd/NAME
tekton() {
  local binary; binary="$(tool_path "tekton-$1")"
  [[ -x "$binary" ]] || "$(dirname "$0")/build-tools.sh" "tekton-$1" >&2
  local tag="approval.local/tekton-$1:$TEKTON_PIPELINE_VERSION"
  local out="$IMAGES/tekton-$1-$(key "$tag" "$binary" "$0").tar"
  if [[ ! -s "$out" ]]; then
    "${IMAGE_TOOL[@]}" files --tag "$tag" --out "$out" \
      --file "$binary:/ko-app/$1" --entrypoint "/ko-app/$1" --user 65532:65532 >&2
  fi
  echo "$out"
}

(($#)) || set -- busybox pause
for name in "$@"; do
  case "$name" in
    busybox) busybox ;;
    pause) pause ;;
    tekton-webhook|tekton-entrypoint|tekton-nop|tekton-workingdirinit|tekton-sidecarlogresults) tekton "${name#tekton-}" ;;
    *) die "unknown image $name (busybox | pause | tekton-webhook | tekton-entrypoint | tekton-nop | tekton-workingdirinit | tekton-sidecarlogresults)" ;;
  esac
done
