#!/usr/bin/env bash
# The end-to-end suite: a fresh control plane with its node, our controller and webhook as
# local processes, then the Rust tests in e2e/tests against it; then the install scenario
# (e2e/tests/installed.rs) alone, with those processes stopped and config/ applied with
# `kubectl apply -k`. The cluster is stopped afterwards; its logs stay in
# $APPROVAL_STATE/logs (failing tests print the relevant lines themselves).
#
# E2E_TEST=<file> runs one file of e2e/tests (E2E_TEST=installed: the install scenario).
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
if [[ -f "$APPROVAL_STATE/node/images.env" ]]; then
  source "$APPROVAL_STATE/node/images.env"
  export APPROVAL_E2E_STEP_IMAGE="$BUSYBOX_IMAGE"
  # Our image, from the binary under test, for the install scenario.
  (cd "$REPO_DIR" && cargo run --locked --quiet -p approval-e2e --bin image -- controller \
    --binary "${APPROVAL_BIN:-target/debug/approval-controller}" \
    --tag approval.local/approval-controller:e2e --out "$APPROVAL_STATE/node/approval-controller.tar")
  "$(dirname "$0")/node-up.sh" import "$APPROVAL_STATE/node/approval-controller.tar"
else
  log "WARNING: NO NODE: the suite runs without pods; the scenarios that need them say SKIPPED"
fi
# A failing scenario prints its own assertion and the components' log lines: no backtraces.
export RUST_BACKTRACE=0
export APPROVAL_E2E_SCRIPTS="$E2E_DIR/scripts"
export APPROVAL_E2E_TKN; APPROVAL_E2E_TKN="$(tool_path tkn)"
export APPROVAL_E2E_KUBECTL; APPROVAL_E2E_KUBECTL="$(tool_path kubectl)"
# The approver CLI as `make build` left it (APPROVAL_CLI_BIN overrides it, like APPROVAL_BIN).
export APPROVAL_E2E_CLI="${APPROVAL_CLI_BIN:-$REPO_DIR/target/debug/kubectl-approval}"
suite=$SECONDS
status=0
: >"$APPROVAL_STATE/logs/e2e.log"
cargo_test() {
  (cd "$REPO_DIR" && cargo test --locked --no-fail-fast -p approval-e2e "$@" 2>&1) |
    tee -a "$APPROVAL_STATE/logs/e2e.log" || status=1
}
if [[ "${E2E_TEST:-}" != installed ]]; then
  # The install scenario is left out by name, not counted as ignored: it runs next.
  cargo_test ${E2E_TEST:+--test "$E2E_TEST"} -- --test-threads "${E2E_THREADS:-6}" --skip config_applied_with_kubectl_apply_k
fi
if [[ -z "${E2E_TEST:-}" || "${E2E_TEST:-}" == installed ]]; then
  # The install path users take: nothing of our local processes may take part.
  log "the install scenario: local controller and webhook stopped, config/ applied with kubectl apply -k"
  "$(dirname "$0")/approval.sh" stop
  kubectl_admin delete mutatingwebhookconfiguration approval.tekton.dev --ignore-not-found >/dev/null
  cargo_test --test installed -- --ignored --test-threads 1
fi
if [[ -f "$APPROVAL_STATE/logs/e2e-durations.txt" ]]; then
  log "scenario durations:"
  sort -k2 -n -r "$APPROVAL_STATE/logs/e2e-durations.txt" >&2
fi
if [[ -s "$APPROVAL_STATE/logs/e2e-skipped.txt" ]]; then
  log "WARNING: scenarios SKIPPED for want of a node ($(wc -l <"$APPROVAL_STATE/logs/e2e-skipped.txt")):"
  cat "$APPROVAL_STATE/logs/e2e-skipped.txt" >&2
fi
if [[ -f "$APPROVAL_STATE/logs/e2e-measurements.txt" ]]; then
  log "measured:"
  cat "$APPROVAL_STATE/logs/e2e-measurements.txt" >&2
fi
"$(dirname "$0")/count-tests.sh" "e2e tests" "$APPROVAL_STATE/logs/e2e.log" || status=1
log "e2e suite ran in $((SECONDS - suite))s; logs in $APPROVAL_STATE/logs"
exit "$status"
