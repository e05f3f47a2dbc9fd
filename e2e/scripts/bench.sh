#!/usr/bin/env bash
# `make bench`: the same workloads against our controller (release build) and against
# OpenShift's manual-approval-gate, one after the other on one dedicated local control
# plane (its own state and ports, so a `make run` or `make e2e` cluster is never touched).
# The workloads themselves are the Rust driver e2e/src/bin/bench.rs; this script builds,
# starts and stops the systems, and renders BENCHMARKS.md from bench/results.json.
#
#   BENCH_SIZES="1000 10000"   gate counts (default both)
#   BENCH_SYSTEMS="ours mag"   systems (default both, in this order)
#   BENCH_STATE=DIR            the cluster's state (default $APPROVAL_CACHE/bench-cluster)
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
SIZES="${BENCH_SIZES:-1000 10000}"
SYSTEMS="${BENCH_SYSTEMS:-ours mag}"
RESULTS="$REPO_DIR/bench/results.json"
# Less logging than `make run`: a debug line per reconcile of 10,000 gates measures the log.
export RUST_LOG="${RUST_LOG:-info}"
export APPROVAL_BIN="$REPO_DIR/target/release/approval-controller"
# The driver creates gates directly, as the cluster admin: an explicit opt-in (by default
# only Tekton creates gates).
export APPROVAL_DIRECT_GATE_CREATORS=approval-e2e-admin
DRIVER="$REPO_DIR/target/release/bench"

log "building our controller and the driver (release)"
(cd "$REPO_DIR" && cargo build --locked --release --bins && cargo build --locked --release -p approval-e2e --bin bench)
"$SCRIPTS/build-tools.sh" etcd kube-apiserver kubectl tekton-controller mag-controller mag-webhook

"$SCRIPTS/cluster-down.sh" --purge >/dev/null 2>&1 || true
trap '"$SCRIPTS/cluster-down.sh" >/dev/null 2>&1 || true' EXIT
"$SCRIPTS/cluster-up.sh" >/dev/null
# Gates are created directly, no PipelineRun: Tekton's controller has nothing to do here but
# would still spend the shared CPUs.
kill "$(cat "$APPROVAL_STATE/run/tekton-controller.pid")"
rm -f "$APPROVAL_STATE/run/tekton-controller.pid"
export KUBECONFIG="$APPROVAL_STATE/kubeconfig"

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

# start_system SYSTEM / stop_system SYSTEM: only one system's webhook is registered at a time.
start_system() {
  case "$1" in
    ours) "$SCRIPTS/mag.sh" uninstall; "$SCRIPTS/approval.sh" start ;;
    mag)
      kubectl_admin delete -f "$REPO_DIR/config/400-webhook.yaml" --ignore-not-found >/dev/null
      "$SCRIPTS/mag.sh" start ;;
  esac
}
stop_system() {
  case "$1" in
    ours) "$SCRIPTS/approval.sh" stop; "$SCRIPTS/approval.sh" stop controller-2 ;;
    mag) "$SCRIPTS/mag.sh" stop ;;
  esac
}
# system_args SYSTEM: sets `args`, how the driver finds, kills and restarts its processes.
# RSS counts one replica of each Deployment (ours runs a second webhook replica behind the
# balancer, and a follower controller for the failover workload: reported on their own).
system_args() {
  local run="$APPROVAL_STATE/run"
  case "$1" in
    ours)
      args=(--pid "controller=$run/approval-controller.pid" --pid "webhook=$run/approval-webhook.pid"
        --ready-command "curl -fsS http://127.0.0.1:$CONTROLLER_PROBE_PORT/readyz"
        --kill-controller "$SCRIPTS/approval.sh kill controller"
        --start-controller "$SCRIPTS/approval.sh start controller"
        --start-follower "$SCRIPTS/approval.sh start controller-2"
        --follower-pid "$run/approval-controller-2.pid") ;;
    mag)
      args=(--pid "controller=$run/mag-controller.pid" --pid "webhook=$run/mag-webhook.pid"
        --ready-command "$SCRIPTS/mag.sh ready controller"
        --kill-controller "$SCRIPTS/mag.sh kill controller"
        --start-controller "$SCRIPTS/mag.sh start controller") ;;
  esac
}

for n in $SIZES; do
  for system in $SYSTEMS; do
    namespace="bench-$system-$n"
    log "$system, N=$n: starting"
    start_system "$system"
    kubectl_admin create namespace "$namespace" >/dev/null
    system_args "$system"
    "$DRIVER" run --system "$system" --gates "$n" --namespace "$namespace" --results "$RESULTS" \
      --commit "$(git -C "$REPO_DIR" rev-parse --short HEAD)" "${args[@]}"
    # Rendered after every run, so that a long N=10,000 run that is interrupted keeps the rest.
    "$DRIVER" report --results "$RESULTS" --analysis "$REPO_DIR/bench/analysis.md" --out "$REPO_DIR/BENCHMARKS.md"
    stop_system "$system"
    # No kube-controller-manager here: a namespace would never finish terminating and
    # nothing collects garbage, so the driver's objects are deleted explicitly.
    kubectl_admin delete customruns --all -n "$namespace" --wait=false >/dev/null
    [[ "$system" == mag ]] && kubectl_admin delete approvaltasks --all -n "$namespace" --wait=false >/dev/null
  done
done

log "results in $RESULTS and $REPO_DIR/BENCHMARKS.md"
