#!/usr/bin/env bash
# The end-to-end suite: a fresh control plane, our controller and webhook, then the Rust
# tests in e2e/tests against it. The cluster is stopped afterwards; its logs stay in
# $APPROVAL_STATE/logs (failing tests print the relevant lines themselves).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$(dirname "$0")/cluster-down.sh" --purge >/dev/null 2>&1 || true
trap '"$(dirname "$0")/cluster-down.sh" >/dev/null 2>&1 || true' EXIT
start=$SECONDS
# The web page's scenario drives a real headless Chromium: install it first (a missing
# browser fails the suite loudly, it is never skipped).
"$(dirname "$0")/browser.sh"
"$(dirname "$0")/cluster-up.sh" >/dev/null
"$(dirname "$0")/approval.sh" start
log "control plane up in $((SECONDS - start))s"

export KUBECONFIG="$APPROVAL_STATE/kubeconfig"
# A failing scenario prints its own assertion and the components' log lines: no backtraces.
export RUST_BACKTRACE=0
export APPROVAL_E2E_SCRIPTS="$E2E_DIR/scripts"
export APPROVAL_E2E_TKN; APPROVAL_E2E_TKN="$(tool_path tkn)"
export APPROVAL_E2E_KUBECTL; APPROVAL_E2E_KUBECTL="$(tool_path kubectl)"
# The approver CLI as `make build` left it (APPROVAL_CLI_BIN overrides it, like APPROVAL_BIN).
export APPROVAL_E2E_CLI="${APPROVAL_CLI_BIN:-$REPO_DIR/target/debug/kubectl-approval}"
suite=$SECONDS
status=0
(cd "$REPO_DIR" && cargo test --locked --no-fail-fast -p approval-e2e ${E2E_TEST:+--test "$E2E_TEST"} -- --test-threads "${E2E_THREADS:-6}" 2>&1) |
  tee "$APPROVAL_STATE/logs/e2e.log" || status=$?
if [[ -f "$APPROVAL_STATE/logs/e2e-durations.txt" ]]; then
  log "scenario durations:"
  sort -k2 -n -r "$APPROVAL_STATE/logs/e2e-durations.txt" >&2
fi
if [[ -f "$APPROVAL_STATE/logs/e2e-measurements.txt" ]]; then
  log "measured:"
  cat "$APPROVAL_STATE/logs/e2e-measurements.txt" >&2
fi
"$(dirname "$0")/count-tests.sh" "e2e tests" "$APPROVAL_STATE/logs/e2e.log" || status=1
log "e2e suite ran in $((SECONDS - suite))s; logs in $APPROVAL_STATE/logs"
exit "$status"
