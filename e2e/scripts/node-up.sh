#!/usr/bin/env bash
# The node of the local control plane: a local image registry, containerd, a kubelet and
# Tekton's webhook as a pod on it, so that TaskRuns run real pods and config/ runs as
# Deployments. Called by cluster-up.sh once the API server, kube-controller-manager and
# kube-scheduler run. Idempotent: a healthy running piece is kept.
#
#   node-up.sh check   exit 1, naming what is missing, if this machine cannot run the node
#   node-up.sh import ARCHIVE
#                      load an image archive into the running node's containerd under the
#                      name it carries (as `kind load` does): pods find it without a pull
#   node-up.sh         bring it up (installs Debian's containerd, runc and the CNI plugins
#                      and the registry when missing, as root)
#
# Everything lives under $APPROVAL_STATE/node. Nothing listens beyond loopback: the kubelet,
# the registry and containerd's streaming server bind 127.0.0.1, and pods live on a bridge
# of this machine's own (10.244.$NODE_NET.0/24) with no default route and no masquerade, so
# pod traffic never leaves the machine (and IP forwarding is left as it was: the bridge is no
# gateway). Pods reach the API server at the `kubernetes` Service's IP, which a DNAT rule on
# that bridge sends to 127.0.0.1:$APISERVER_PORT; nothing else on loopback is reachable from
# a pod. The kubelet, like any, sets its kernel tunables (kernel.panic=10,
# kernel.panic_on_oops=1, vm.overcommit_memory=1) and adds its KUBE-* iptables chains.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODE_DIR="$APPROVAL_STATE/node"
PKI="$APPROVAL_STATE/pki"
CTR=(ctr --address "$NODE_DIR/containerd.sock" -n k8s.io)

# ---- can this machine run it? ------------------------------------------------------------
PACKAGES=(containerd:/usr/bin/containerd runc:/usr/sbin/runc
  containernetworking-plugins:/usr/lib/cni/bridge docker-registry:/usr/bin/docker-registry
  iptables:/usr/sbin/iptables)

missing() {
  local what=()
  [[ "$(id -u)" -eq 0 ]] || what+=("root (containerd and the kubelet run as root)")
  grep -qw overlay /proc/filesystems 2>/dev/null || what+=("the kernel's overlay filesystem")
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || what+=("cgroups (memory)")
  if [[ "$(id -u)" -eq 0 ]]; then
    iptables -t nat -S >/dev/null 2>&1 || what+=("iptables' nat table")
    ip link show >/dev/null 2>&1 || what+=("the ip command (iproute2)")
  fi
  local entry
  for entry in "${PACKAGES[@]}"; do
    [[ -x "${entry#*:}" ]] || { [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; } ||
      what+=("${entry#*:} (Debian's ${entry%%:*})")
  done
  ((${#what[@]} == 0)) || { printf '%s\n' "${what[@]}"; return 1; }
}

case "${1:-}" in
  check) missing; exit ;;
  import)
    [[ -f "${2:-}" ]] || die "node-up.sh import ARCHIVE: no archive ${2:-}"
    "${CTR[@]}" images import "$2" >/dev/null
    exit ;;
  "") ;;
  *) die "usage: node-up.sh [check | import ARCHIVE]" ;;
esac
reasons="$(missing)" || die "this machine cannot run the node; missing: $(echo "$reasons" | paste -sd ';' | sed 's/;/; /g')"

install_packages() {
  local entry wanted=()
  for entry in "${PACKAGES[@]}"; do
    [[ -x "${entry#*:}" ]] || wanted+=("${entry%%:*}")
  done
  ((${#wanted[@]})) || return 0
  log "installing ${wanted[*]}"
  # Debian's packages would start their own containerd and a registry on :5000 of every
  # interface where an init system runs; ours are separate processes, so theirs must not
  # start (policy-rc.d's 101: "action not allowed").
  local policy=/usr/sbin/policy-rc.d
  [[ -e "$policy" ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${wanted[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${wanted[@]}" >/dev/null; }
}
install_packages

mkdir -p "$NODE_DIR"/{cni,ipam,certs.d,kubelet,pod-logs,registry,runc}

BRIDGE="$NODE_BRIDGE"
POD_GATEWAY="10.244.$NODE_NET.1"

# ---- the bridge and the route to the API server ------------------------------------------
# Made here rather than by the CNI plugin, so that route_localnet can be set on it (and on
# nothing else) before the first pod: the DNAT to 127.0.0.1 needs it. Its alias names the
# state directory that owns it: another cluster's bridge is never taken over.
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  owner="$(cat "/sys/class/net/$BRIDGE/ifalias" 2>/dev/null || true)"
  [[ "$owner" == "$APPROVAL_STATE" ]] ||
    die "the bridge $BRIDGE belongs to ${owner:-something else}: stop that cluster, or give this one another NODE_NET"
else
  for range in "10.244.$NODE_NET.0/24" "10.0.$NODE_NET.0/24"; do
    route="$(ip -4 route show to match "${range%/*}" | grep -v '^default' || true)"
    [[ -z "$route" ]] || die "$range is already routed on this machine ($route): give this cluster another NODE_NET"
  done
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" alias "$APPROVAL_STATE"
  ip addr add "$POD_GATEWAY/24" dev "$BRIDGE"
fi
ip link set "$BRIDGE" up
sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
node_rules
iptables -t nat -C "${NODE_DNAT[@]}" 2>/dev/null || iptables -t nat -A "${NODE_DNAT[@]}"
for rule in NODE_INPUT NODE_FORWARD_OUT NODE_FORWARD_IN; do
  declare -n r="$rule"
  iptables -C "${r[@]}" 2>/dev/null || iptables -I "${r[@]}"
  unset -n r
done

cat >"$NODE_DIR/cni/10-approval.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "approval-$NODE_NET",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false, "hairpinMode": true,
    "ipam": {
      "type": "host-local", "dataDir": "$NODE_DIR/ipam",
      "ranges": [[{"subnet": "10.244.$NODE_NET.0/24", "gateway": "$POD_GATEWAY"}]],
      "routes": [{"dst": "10.0.$NODE_NET.0/24", "gw": "$POD_GATEWAY"}]
    }
  }]
}
JSON

# ---- the registry ------------------------------------------------------------------------
cat >"$NODE_DIR/registry.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $NODE_DIR/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$REGISTRY_PORT}
YAML
registry_ready() { curl -fs "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null; }
if ! pid_alive registry; then
  log "starting the image registry on 127.0.0.1:$REGISTRY_PORT"
  setsid nohup docker-registry serve "$NODE_DIR/registry.yml" >"$APPROVAL_STATE/logs/registry.log" 2>&1 &
  await_started registry $! 30 registry_ready
fi
wait_for "the registry" 30 registry_ready

# ---- containerd --------------------------------------------------------------------------
REGISTRY="127.0.0.1:$REGISTRY_PORT"
mkdir -p "$NODE_DIR/certs.d/$REGISTRY"
cat >"$NODE_DIR/certs.d/$REGISTRY/hosts.toml" <<TOML
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve", "push"]
TOML
cat >"$NODE_DIR/containerd.toml" <<TOML
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.opt"]
[grpc]
  address = "$NODE_DIR/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Without CAP_SYS_RESOURCE (a VM or a container) runc cannot raise a pod's
  # oom_score_adj, and every sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pods' network namespaces under the state directory: node-down.sh finds and removes them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$NODE_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$NODE_DIR/certs.d"
TOML
containerd_ready() { "${CTR[@]}" version >/dev/null; }
if ! pid_alive containerd; then
  log "starting containerd"
  setsid nohup containerd --config "$NODE_DIR/containerd.toml" >"$APPROVAL_STATE/logs/containerd.log" 2>&1 &
  await_started containerd $! 30 containerd_ready
fi
wait_for containerd 30 containerd_ready

# ---- images ------------------------------------------------------------------------------
# load ARCHIVE: into containerd and the registry as $REGISTRY/<name:tag of the archive,
# without its approval.local/ prefix>, unless that very archive (its name is its content
# key) is what the reference has; prints the reference.
load() {
  local archive="$1" name ref
  name="$(tar -xOf "$archive" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RepoTags"][0])')"
  ref="$REGISTRY/${name#approval.local/}"
  local record; record="$NODE_DIR/loaded/$(echo "$ref" | tr '/:' '__')"
  if [[ "$(cat "$record" 2>/dev/null)" != "$archive" ]]; then
    "${CTR[@]}" images import "$archive" >/dev/null
    "${CTR[@]}" images tag --force "$name" "$ref" >/dev/null
    "${CTR[@]}" images push --plain-http "$ref" >/dev/null
    mkdir -p "$NODE_DIR/loaded" && echo "$archive" >"$record"
  fi
  echo "$ref"
}

"$(dirname "$0")/build-tools.sh" "${NODE_TOOLS[@]}"
# What the other scripts and the suite run on the node (cluster-up.sh gives Tekton's
# controller its images from here, e2e.sh the suite its step image).
{
  for image in busybox pause tekton-webhook tekton-entrypoint tekton-nop tekton-workingdirinit tekton-sidecarlogresults; do
    ref="$(load "$("$(dirname "$0")/images.sh" "$image")")"
    echo "$(echo "${image}_IMAGE" | tr a-z- A-Z_)=$ref"
  done
} >"$NODE_DIR/images.env.tmp"
mv "$NODE_DIR/images.env.tmp" "$NODE_DIR/images.env"
source "$NODE_DIR/images.env"

# ---- the kubelet -------------------------------------------------------------------------
# The node is called localhost: the API server reaches a kubelet (logs, exec) at the node's
# Hostname address, and the kubelet refuses a loopback node IP, so the name is what has to
# resolve to 127.0.0.1.
cat >"$NODE_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$NODE_DIR/containerd.sock
podLogsDir: $NODE_DIR/pod-logs
# Pods of each local cluster in a cgroup of their own.
cgroupRoot: /approval-$NODE_NET
cgroupDriver: cgroupfs
# This machine mounts cgroup v1 (with a cgroup2 mount beside it); 1.35 refuses v1 unless told.
failCgroupV1: false
failSwapOn: false
# cadvisor cannot read this VM's disk statistics: no disk-pressure eviction, no image GC
# (both would act on numbers it does not have); memory eviction stays.
localStorageCapacityIsolation: false
evictionHard: {memory.available: 100Mi}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Images come from the local registry or were loaded into containerd: without this 1.35
# pulls again an image that is present under another reference.
imagePullCredentialsVerificationPolicy: NeverVerify
serializeImagePulls: false
YAML
# The kubelet wants its cgroupRoot to exist: in each v1 hierarchy, or once in v2.
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  mkdir -p "/sys/fs/cgroup/approval-$NODE_NET"
else
  for controller in /sys/fs/cgroup/*/; do
    [[ "$controller" == */unified/ ]] || mkdir -p "$controller/approval-$NODE_NET"
  done
fi
kubelet_ready() { curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" >/dev/null; }
node_ready() {
  kubectl_admin get node localhost -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
if ! pid_alive kubelet; then
  log "starting the kubelet"
  setsid nohup "$(tool_path kubelet)" --config "$NODE_DIR/kubelet.yaml" \
    --kubeconfig "$APPROVAL_STATE/node.kubeconfig" --root-dir "$NODE_DIR/kubelet" \
    --cert-dir "$NODE_DIR/kubelet/pki" --hostname-override localhost \
    >"$APPROVAL_STATE/logs/kubelet.log" 2>&1 &
  await_started kubelet $! 60 kubelet_ready
fi
wait_for "the kubelet" 60 kubelet_ready
wait_for "node localhost to be Ready" 90 node_ready || { tail -30 "$APPROVAL_STATE/logs/kubelet.log" >&2; exit 1; }

# ---- Tekton's webhook, as a pod ----------------------------------------------------------
TEKTON="$(tekton_module_dir)/config"
log "installing Tekton's webhook"
for file in 200-serviceaccount 200-clusterrole 200-role 201-clusterrolebinding 201-rolebinding \
    config-leader-election-webhook 500-webhooks; do
  kubectl_admin apply -f "$TEKTON/$file.yaml" >/dev/null
done
sed "s|ko://github.com/tektoncd/pipeline/cmd/webhook|$TEKTON_WEBHOOK_IMAGE|" \
  "$TEKTON/webhook.yaml" | kubectl_admin apply -f - >/dev/null
# Ready means admitting: a TaskRun passes its defaulting and validation (server-side dry
# run), through the Service, with the CA the webhook injected.
tekton_webhook_ready() {
  kubectl_admin create --dry-run=server -o name -f - >/dev/null <<YAML
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: webhook-ready, namespace: default}
spec:
  taskSpec:
    steps: [{name: ready, image: "$BUSYBOX_IMAGE", script: "true"}]
YAML
}
wait_for "Tekton's webhook" 120 tekton_webhook_ready ||
  { kubectl_admin -n tekton-pipelines get pods -o wide >&2; exit 1; }
log "node localhost ready (pods on $BRIDGE, images in $REGISTRY)"
