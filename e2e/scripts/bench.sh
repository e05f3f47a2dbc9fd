#!/usr/bin/env bash
# `make bench`: the same workloads against our controller (release build) and against
# OpenShift's manual-approval-gate (MAG), in runs that alternate between the two (ours 1,
# MAG 1, ours 2, ...). Every run has a control plane of its own, started from an empty etcd,
# with its own state and ports (a `make run` or `make e2e` cluster is never touched). The
# workloads are the Rust driver e2e/src/bin/bench; this script builds, starts and pins the
# processes, and renders BENCHMARKS.md, bench/results.json and bench/*.svg from the runs'
# raw records in bench/runs/.
#
#   BENCH_RUNS=3              runs of each system
#   BENCH_SYSTEMS="ours mag"  systems, in this order within a run
#   BENCH_GATES=10000         gates waiting during the steady-state workloads
#   BENCH_LADDER=0,1000,10000 memory steps up to BENCH_GATES
#   BENCH_BEYOND=30000        memory steps after the workloads, in each system's first run
#                             (`make bench-large`: 30000,100000)
#   BENCH_DRIVER_ARGS=...     more arguments for the driver (e.g. --decisions 200)
#   BENCH_RESUME=1            keep bench/runs/ and do only the runs it has no record of (after
#                             an interrupted `make bench`, at the same commit)
#   BENCH_STATE=DIR           the clusters' state (default $APPROVAL_CACHE/bench-cluster)
set -euo pipefail

# A port set of its own: nothing in lib.sh's defaults or the Makefile's E2E_PORTS.
export ETCD_PORT=25790 ETCD_PEER_PORT=25800 APISERVER_PORT=17543 WEBHOOK_PORT=19543 \
  CONTROLLER_PROBE_PORT=19580 WEBHOOK_PROBE_PORT=19581 TEKTON_PROBES_PORT=19590 \
  TEKTON_PROFILING_PORT=19591 TEKTON_METRICS_PORT=19592 MAG_WEBHOOK_PORT=19643 \
  NODE_NET=2 NODE=0
# Its own state directory, whatever APPROVAL_STATE the caller has: this script purges it.
export APPROVAL_STATE="${BENCH_STATE:-${APPROVAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tekton-approval}/bench-cluster}"
source "$(dirname "$0")/lib.sh"

SCRIPTS="$E2E_DIR/scripts"
RUNS="${BENCH_RUNS:-3}"
SYSTEMS="${BENCH_SYSTEMS:-ours mag}"
GATES="${BENCH_GATES:-10000}"
LADDER="${BENCH_LADDER:-0,1000,10000}"
BEYOND="${BENCH_BEYOND-30000}"
RECORDS="$REPO_DIR/bench/runs"
# Less logging than `make run`: a debug line per reconcile of 10,000 gates measures the log.
export RUST_LOG="${RUST_LOG:-info}"
export APPROVAL_BIN="$REPO_DIR/target/release/approval-controller"
# The driver creates gates directly, as the cluster admin: an explicit opt-in (by default
# only Tekton creates gates).
export APPROVAL_DIRECT_GATE_CREATORS=approval-e2e-admin
# One replica of each part for both systems: our webhook serves the registration's port
# itself, without approval.sh's second replica and balancer.
export APPROVAL_WEBHOOK_REPLICAS=1
DRIVER="$REPO_DIR/target/release/bench"
COMMIT="$(git -C "$REPO_DIR" rev-parse --short HEAD)"

# CPU pinning: the control plane and the driver share CPU 0, the system under test (its
# controller and webhook) has CPU 1 to itself. On a machine with one CPU nothing is pinned.
# ON_CONTROL / ON_SYSTEM prefix a command; pin_control moves running processes (all threads).
if (($(nproc) >= 2)); then
  ON_CONTROL="taskset -c 0" ON_SYSTEM="taskset -c 1"
  PINNING="etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the driver on CPU 0; the system under test on CPU 1"
  pin_control() { local pid; for pid in "$@"; do taskset -a -cp 0 "$pid" >/dev/null; done; }
else
  ON_CONTROL="" ON_SYSTEM=""
  PINNING="none (one CPU)"
  pin_control() { :; }
fi

log "building our controller and the driver (release)"
(cd "$REPO_DIR" && cargo build --locked --release --bins && cargo build --locked --release -p approval-e2e --bin bench)
"$SCRIPTS/build-tools.sh" etcd kube-apiserver kubectl kube-controller-manager kube-scheduler \
  tekton-controller mag-controller mag-webhook

trap '"$SCRIPTS/cluster-down.sh" >/dev/null 2>&1 || true' EXIT
if [[ "${BENCH_RESUME:-}" ]]; then
  # Records of another controller would mix two versions in one document: the controller's
  # sources (and what builds them) must be as they were at each record's commit.
  for record in "$RECORDS"/*.json; do
    [[ -e "$record" ]] || continue
    recorded="$(grep -o '"APPROVAL_CONTROLLER_COMMIT": *"[0-9a-f]*"' "$record" | grep -o '[0-9a-f]*"$' | tr -d '"')"
    git -C "$REPO_DIR" diff --quiet "$recorded" -- src Cargo.toml Cargo.lock config ||
      die "the controller changed since $record was measured (at $recorded): run without BENCH_RESUME"
  done
else
  rm -rf "$RECORDS"
fi
mkdir -p "$RECORDS"
export KUBECONFIG="$APPROVAL_STATE/kubeconfig"

# fresh_cluster: a control plane from an empty etcd, pinned, without Tekton's controller
# (gates are created directly: it would have nothing to do but spend the shared CPUs).
fresh_cluster() {
  "$SCRIPTS/cluster-down.sh" --purge >/dev/null 2>&1 || true
  "$SCRIPTS/cluster-up.sh" >/dev/null
  stop_process tekton-controller
  local run="$APPROVAL_STATE/run" pids=() name
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -f "$run/$name.pid" ]] && pids+=("$(cat "$run/$name.pid")")
  done
  pin_control "${pids[@]}"
  # The approver of every gate: may decide on runs (ours) and ApprovalTasks (theirs).
  kubectl_admin apply -f - >/dev/null <<'RBAC'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bench-approver}
rules:
- apiGroups: ["tekton.dev"]
  resources: ["customruns"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["openshift-pipelines.org"]
  resources: ["approvaltasks"]
  verbs: ["get", "list", "watch", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bench-approver}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bench-approver}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bench-approver}
RBAC
}

# system_args SYSTEM: sets `args`, how the driver starts, stops, kills and finds the system.
system_args() {
  local run="$APPROVAL_STATE/run" logs="$APPROVAL_STATE/logs"
  args=(--control-plane-pid "etcd=$run/etcd.pid" --control-plane-pid "kube-apiserver=$run/kube-apiserver.pid"
    --etcd-metrics "http://127.0.0.1:$ETCD_PORT/metrics")
  case "$1" in
    ours)
      # Both systems as ServiceAccounts with their own RBAC, by TokenRequest tokens.
      kubectl_admin apply -f "$REPO_DIR/config/100-namespace.yaml" -f "$REPO_DIR/config/200-serviceaccount.yaml" >/dev/null
      token_kubeconfig "$APPROVAL_STATE/bench-controller.kubeconfig" tekton-approval approval-controller
      export APPROVAL_CONTROLLER_KUBECONFIG="$APPROVAL_STATE/bench-controller.kubeconfig"
      local approval="$SCRIPTS/approval.sh"
      args+=(--pid "controller=$run/approval-controller.pid" --pid "webhook=$run/approval-webhook.pid"
        --start-system "$ON_SYSTEM $approval start"
        --stop-controller "$approval stop controller"
        --kill-controller "$approval kill controller"
        --start-controller "$ON_SYSTEM $approval start controller"
        --start-follower "$ON_SYSTEM $approval start controller-2"
        --follower-pid "$run/approval-controller-2.pid"
        --controller-log "$logs/approval-controller.log" --follower-log "$logs/approval-controller-2.log"
        --synced-pattern "watch caches synced: ready" --leading-pattern "leading: reconciling gates"
        --log "$logs/approval-controller.log" --log "$logs/approval-controller-2.log" --log "$logs/approval-webhook.log") ;;
    mag)
      local mag="$SCRIPTS/mag.sh"
      args+=(--pid "controller=$run/mag-controller.pid" --pid "webhook=$run/mag-webhook.pid"
        --start-system "$ON_SYSTEM $mag start"
        --stop-controller "$mag stop controller"
        --kill-controller "$mag kill controller"
        --start-controller "$ON_SYSTEM $mag start controller"
        --start-follower "$ON_SYSTEM $mag start controller-2"
        --follower-pid "$run/mag-controller-2.pid"
        --controller-log "$logs/mag-controller.log" --follower-log "$logs/mag-controller-2.log"
        --synced-pattern "Starting controllers..." --leading-pattern "successfully acquired lease"
        --log "$logs/mag-controller.log" --log "$logs/mag-controller-2.log" --log "$logs/mag-webhook.log") ;;
  esac
}

for ((run = 1; run <= RUNS; run++)); do
  for system in $SYSTEMS; do
    if [[ "${BENCH_RESUME:-}" && -f "$RECORDS/$system-$run.json" ]]; then
      log "$system, run $run of $RUNS: recorded already"
      continue
    fi
    log "$system, run $run of $RUNS: a fresh control plane"
    fresh_cluster
    kubectl_admin create namespace bench >/dev/null
    system_args "$system"
    beyond=()
    ((run == 1)) && [[ "$BEYOND" ]] && beyond=(--beyond "$BEYOND")
    # shellcheck disable=SC2086 # ON_CONTROL and BENCH_DRIVER_ARGS are lists of words
    $ON_CONTROL "$DRIVER" run --system "$system" --run "$run" --namespace bench \
      --out "$RECORDS/$system-$run.json" --commit "$COMMIT" --pinning "$PINNING" \
      --gates "$GATES" --ladder "$LADDER" "${beyond[@]}" "${args[@]}" ${BENCH_DRIVER_ARGS:-}
    # Rendered after every run, so that an interrupted `make bench` keeps what it measured.
    "$DRIVER" report --runs "$RECORDS" --analysis "$REPO_DIR/bench/analysis.md" \
      --out-dir "$REPO_DIR/bench" --out "$REPO_DIR/BENCHMARKS.md"
  done
done
"$SCRIPTS/cluster-down.sh" --purge >/dev/null 2>&1 || true
log "results: $REPO_DIR/BENCHMARKS.md, bench/results.json, bench/*.svg, raw records in $RECORDS"
