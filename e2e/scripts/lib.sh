#!/usr/bin/env bash
# Shared settings for the control-plane scripts. Source it; do not run it.
# Everything lives outside the repository, under one cache directory:
#   $APPROVAL_CACHE/bin/<tool>-<version>/<tool>   built tools, reused across runs and clones
#   $APPROVAL_CACHE/src/<tool>-<version>/         the wrapper Go modules they are built from
#   $APPROVAL_STATE                               a running cluster: pki, etcd data, logs, kubeconfigs

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$E2E_DIR/.." && pwd)"
# shellcheck source=../versions.env
source "$E2E_DIR/versions.env"

APPROVAL_CACHE="${APPROVAL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tekton-approval}"
APPROVAL_STATE="${APPROVAL_STATE:-$APPROVAL_CACHE/cluster}"
export APPROVAL_CACHE APPROVAL_STATE
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

ETCD_PORT="${ETCD_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${APISERVER_PORT:-16443}"
WEBHOOK_PORT="${WEBHOOK_PORT:-18443}"
CONTROLLER_PROBE_PORT="${CONTROLLER_PROBE_PORT:-18080}"
WEBHOOK_PROBE_PORT="${WEBHOOK_PROBE_PORT:-18081}"
TEKTON_PROBES_PORT="${TEKTON_PROBES_PORT:-18090}"
TEKTON_PROFILING_PORT="${TEKTON_PROFILING_PORT:-18091}"
TEKTON_METRICS_PORT="${TEKTON_METRICS_PORT:-18092}"
CONTROLLER2_PROBE_PORT="${CONTROLLER2_PROBE_PORT:-$((CONTROLLER_PROBE_PORT + 2))}"
# The web page (plain HTTP on loopback, as behind its sign-in proxy) and its probes.
UI_PORT="${UI_PORT:-$((CONTROLLER_PROBE_PORT + 5))}"
UI_PROBE_PORT="${UI_PROBE_PORT:-$((CONTROLLER_PROBE_PORT + 6))}"
SLACK_PORT="${SLACK_PORT:-$((CONTROLLER_PROBE_PORT + 7))}"
SLACK_PROBE_PORT="${SLACK_PROBE_PORT:-$((CONTROLLER_PROBE_PORT + 8))}"
# The node (node-up.sh): each local cluster on this machine has its own network number, so
# that their bridges, pod and service ranges never meet (make run 0, the suite 1, bench 2).
NODE_NET="${NODE_NET:-0}"
NODE_NET_REQUESTED="$NODE_NET"
# A cluster keeps the network number it was made with (its certificate and service range
# name it): cluster-up.sh records it, and every script after reads it from there.
[[ -f "$APPROVAL_STATE/node/net" ]] && NODE_NET="$(cat "$APPROVAL_STATE/node/net")"
NODE_BRIDGE="approval$NODE_NET"
KUBELET_PORT="${KUBELET_PORT:-$((CONTROLLER_PROBE_PORT + 20))}"
KUBELET_HEALTHZ_PORT="${KUBELET_HEALTHZ_PORT:-$((CONTROLLER_PROBE_PORT + 21))}"
CONTROLLER_MANAGER_PORT="${CONTROLLER_MANAGER_PORT:-$((CONTROLLER_PROBE_PORT + 22))}"
SCHEDULER_PORT="${SCHEDULER_PORT:-$((CONTROLLER_PROBE_PORT + 23))}"
REGISTRY_PORT="${REGISTRY_PORT:-$((CONTROLLER_PROBE_PORT + 24))}"
# The API server calls the webhook at WEBHOOK_PORT (the balancer); its two replicas listen
# on the next two ports.
WEBHOOK1_PORT="${WEBHOOK1_PORT:-$((WEBHOOK_PORT + 1))}"
WEBHOOK2_PORT="${WEBHOOK2_PORT:-$((WEBHOOK_PORT + 2))}"
WEBHOOK2_PROBE_PORT="${WEBHOOK2_PROBE_PORT:-$((WEBHOOK_PROBE_PORT + 2))}"

# What the node adds to the control plane (e2e/scripts/node-up.sh).
NODE_TOOLS=(kubelet tekton-webhook tekton-entrypoint tekton-nop tekton-workingdirinit
  tekton-sidecarlogresults)

# node_required: a missing node is an error, not a warning (CI; .ci/run sets the second).
node_required() { [[ "${CI:-}" == true || "${APPROVAL_REQUIRE_NODE:-}" == 1 ]]; }

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# tool_version NAME -> the pinned version of a tool
tool_version() {
  case "$1" in
    etcd) echo "$ETCD_VERSION" ;;
    kube-apiserver|kubectl|kubelet|kube-scheduler|kube-controller-manager) echo "$KUBERNETES_VERSION" ;;
    tekton-*) echo "$TEKTON_PIPELINE_VERSION" ;;
    tkn) echo "$TKN_VERSION" ;;
    mag-controller|mag-webhook) echo "$MAG_VERSION" ;;
    *) die "unknown tool $1" ;;
  esac
}

# tool_path NAME -> where the built binary lives
tool_path() {
  echo "$APPROVAL_CACHE/bin/$1-$(tool_version "$1")/$1"
}

# module_dir MODULE@VERSION -> the module's source directory (downloads it if needed)
module_dir() {
  go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

tekton_module_dir() {
  module_dir "github.com/tektoncd/pipeline@$TEKTON_PIPELINE_VERSION"
}

kubectl_admin() {
  "$(tool_path kubectl)" --kubeconfig "$APPROVAL_STATE/kubeconfig" "$@"
}

# token_kubeconfig FILE NAMESPACE SERVICEACCOUNT: a kubeconfig that authenticates with a
# token of that ServiceAccount (TokenRequest, 48 h), as a pod of it would: `make bench` runs
# both systems so, under their own RBAC.
token_kubeconfig() {
  local token; token="$(kubectl_admin create token "$3" -n "$2" --duration 48h)"
  (umask 077; cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: approval-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $APPROVAL_STATE/pki/ca.crt
users:
- name: $3
  user: {token: $token}
contexts:
- name: approval-e2e
  context: {cluster: approval-e2e, user: $3}
current-context: approval-e2e
KUBECONFIG
  )
}

# wait_for DESCRIPTION SECONDS COMMAND...: retries COMMAND until it succeeds
wait_for() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# The long-running pieces are started with `setsid nohup ... &`: in a session of their own,
# so that a signal to the terminal's or a CI runner's process group (timeout, Ctrl-C on
# `make run`) does not take the cluster down with the command that started it.

# pid_alive NAME: is the process recorded in $APPROVAL_STATE/run/NAME.pid running?
pid_alive() {
  local file="$APPROVAL_STATE/run/$1.pid"
  [[ -f "$file" ]] && process_alive "$(cat "$file")"
}

# process_alive PID: running, and not a zombie (our processes are reparented when the
# script that started them exits, and not every sandbox's init reaps them promptly)
process_alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z* ]]
}

# await_started NAME PID SECONDS CHECK...: records PID as the process NAME (its log is
# logs/NAME.log), then waits until CHECK succeeds; on a timeout the log's tail explains why.
await_started() {
  local name="$1" pid="$2" seconds="$3"; shift 3
  echo "$pid" >"$APPROVAL_STATE/run/$name.pid"
  wait_for "$name" "$seconds" "$@" || { tail -30 "$APPROVAL_STATE/logs/$name.log" >&2; exit 1; }
}

# stop_process NAME [SIGNAL]: signals the process NAME (TERM by default) and waits until it
# is gone (SIGKILL after 30 s).
stop_process() {
  local name="$1" signal="${2:-TERM}"
  pid_alive "$name" || return 0
  local pid; pid="$(cat "$APPROVAL_STATE/run/$name.pid")"
  kill "-$signal" "$pid"
  local deadline=$((SECONDS + 30))
  while process_alive "$pid"; do
    ((SECONDS < deadline)) || { kill -KILL "$pid" 2>/dev/null || true; }
    sleep 0.1
  done
  rm -f "$APPROVAL_STATE/run/$name.pid"
}

# node_rules: the iptables rules of this state directory's node (node-up.sh adds them,
# node-down.sh deletes exactly these), each tagged with the state directory.
#   NODE_DNAT     pods reach the API server at the kubernetes Service's IP
#   NODE_INPUT    from pods, only that DNAT may reach loopback (route_localnet is on)
#   NODE_FORWARD  pod traffic never leaves the machine, in either direction
node_rules() {
  local tag=(-m comment --comment "approval-node:$APPROVAL_STATE")
  NODE_DNAT=(PREROUTING -i "$NODE_BRIDGE" -d "10.0.$NODE_NET.1" -p tcp --dport 443 "${tag[@]}"
    -j DNAT --to-destination "127.0.0.1:$APISERVER_PORT")
  NODE_INPUT=(INPUT -i "$NODE_BRIDGE" -d 127.0.0.0/8 -m conntrack ! --ctstate DNAT "${tag[@]}" -j DROP)
  NODE_FORWARD_OUT=(FORWARD -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" "${tag[@]}" -j DROP)
  NODE_FORWARD_IN=(FORWARD -o "$NODE_BRIDGE" ! -i "$NODE_BRIDGE" "${tag[@]}" -j DROP)
}
