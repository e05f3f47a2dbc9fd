#!/usr/bin/env bash
# Brings up the local control plane: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and Tekton Pipelines' controller as local processes, and a node (containerd,
# a kubelet, a registry, Tekton's webhook as a pod: node-up.sh), with state, logs and
# kubeconfigs under $APPROVAL_STATE. Idempotent: a healthy running piece is kept. Our own
# controller and webhook are started by approval.sh (the Makefile calls both).
#
# NODE=0 leaves the node out. Where this machine cannot run one (node-up.sh check, or
# node-up.sh failing), the control plane comes up without it and says why, loudly; under
# CI=true (or APPROVAL_REQUIRE_NODE=1) that is an error.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The network number is the cluster's for its lifetime (its certificate and service range
# name it).
mkdir -p "$APPROVAL_STATE/node"
if [[ -f "$APPROVAL_STATE/node/net" ]]; then
  [[ "$NODE_NET_REQUESTED" == "$NODE_NET" ]] ||
    die "$APPROVAL_STATE was made with NODE_NET=$NODE_NET, not $NODE_NET_REQUESTED: remove it (cluster-down.sh --purge) to change it"
else
  echo "$NODE_NET" >"$APPROVAL_STATE/node/net"
fi

# ---- the node: wanted, and possible? -----------------------------------------------------
node=1
# no_node REASON...: without the node, loudly (an error where it is required)
no_node() {
  node_required && die "a node is required here (CI=true or APPROVAL_REQUIRE_NODE=1), and: $*"
  log "WARNING: NO NODE: $*"
  log "WARNING: the control plane comes up without a node: no pods, no TaskRuns, no Tekton webhook"
  node=0
}
if [[ "${NODE:-1}" == 0 ]]; then
  node=0
elif ! reasons="$("$(dirname "$0")/node-up.sh" check)"; then
  no_node "this machine cannot run one; missing: $(echo "$reasons" | paste -sd ';' | sed 's/;/; /g')"
fi

# The node's tools are built only for a node.
NODE="$node" "$(dirname "$0")/build-tools.sh"

PKI="$APPROVAL_STATE/pki"
mkdir -p "$PKI" "$APPROVAL_STATE/logs" "$APPROVAL_STATE/run" "$APPROVAL_STATE/etcd"

# ---- certificates ------------------------------------------------------------------------
# ca_pair NAME SUBJECT: a self-signed CA
ca_pair() {
  [[ -f "$PKI/$1.crt" ]] && return
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" 2>/dev/null
}
# signed_pair NAME CA SUBJECT EXTENSIONS: a key and a certificate signed by CA
signed_pair() {
  [[ -f "$PKI/$1.crt" ]] && return
  openssl req -newkey rsa:2048 -nodes -subj "$3" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" 2>"$PKI/openssl.log" &&
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.crt" -CAkey "$PKI/$2.key" -CAcreateserial \
    -days 3650 -extfile <(printf '%s\n' "$4") -out "$PKI/$1.crt" 2>"$PKI/openssl.log" ||
    { cat "$PKI/openssl.log" >&2; die "could not make the certificate $1 ($3)"; }
  rm -f "$PKI/$1.csr"
}
server_ext="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.$NODE_NET.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
client_ext='basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'

ca_pair ca "/CN=approval-e2e-ca"
signed_pair apiserver ca "/CN=kube-apiserver" "$server_ext"
signed_pair admin ca "/O=system:masters/CN=approval-e2e-admin" "$client_ext"
# Our controller gets its own identity, exactly the service account name it has in a
# cluster, so the RBAC of config/ is what the e2e suite exercises.
signed_pair controller ca "/O=system:serviceaccounts/O=system:serviceaccounts:tekton-approval/CN=system:serviceaccount:tekton-approval:approval-controller" "$client_ext"
# The web page's service account, for its RBAC of config/ui/.
signed_pair ui ca "/O=system:serviceaccounts/O=system:serviceaccounts:tekton-approval/CN=system:serviceaccount:tekton-approval:approval-ui" "$client_ext"
signed_pair slack ca "/O=system:serviceaccounts/O=system:serviceaccounts:tekton-approval/CN=system:serviceaccount:tekton-approval:approval-slack" "$client_ext"
# The node and the controllers of kube-controller-manager and kube-scheduler, under the
# names their built-in RBAC and the Node authorizer know.
signed_pair node ca "/O=system:nodes/CN=system:node:localhost" "$client_ext"
signed_pair controller-manager ca "/CN=system:kube-controller-manager" "$client_ext"
signed_pair scheduler ca "/CN=system:kube-scheduler" "$client_ext"
ca_pair webhook-ca "/CN=approval-webhook-ca"
signed_pair webhook webhook-ca "/CN=approval-webhook" "$server_ext"
[[ -f "$PKI/sa.key" ]] || {
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# kubeconfig FILE NAME [AS]: a kubeconfig with NAME's client certificate, impersonating AS
kubeconfig() {
  local impersonation=""
  [[ -n "${3:-}" ]] && impersonation="    as: $3
    as-groups: [system:masters]"
  cat >"$APPROVAL_STATE/$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: approval-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
$impersonation
contexts:
- name: approval-e2e
  context: {cluster: approval-e2e, user: $2}
current-context: approval-e2e
KUBECONFIG
}
kubeconfig kubeconfig admin
kubeconfig controller.kubeconfig controller
kubeconfig ui.kubeconfig ui
kubeconfig slack.kubeconfig slack
kubeconfig node.kubeconfig node
kubeconfig controller-manager.kubeconfig controller-manager
kubeconfig scheduler.kubeconfig scheduler
# Tekton's controller under the name it has in a cluster, so that our webhook trusts the
# requested-by stamps it copies from PipelineRuns to CustomRuns (and nobody else's). The
# name is longer than a certificate's CN may be (64 bytes): the admin impersonates it.
kubeconfig tekton.kubeconfig admin system:serviceaccount:tekton-pipelines:tekton-pipelines-controller

# ---- etcd --------------------------------------------------------------------------------
etcd_healthy() { curl -fs "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
# An etcd or API server this state directory did not start (another checkout's, one left
# over after its state was removed) would be used with data that is not ours: refuse.
foreign() { die "something already serves on :$2 that $APPROVAL_STATE did not start ($1): stop it, or choose other ports"; }
if etcd_healthy && ! pid_alive etcd; then foreign etcd "$ETCD_PORT"; fi
if ! etcd_healthy; then
  log "starting etcd on :$ETCD_PORT"
  setsid nohup "$(tool_path etcd)" --name approval-e2e --data-dir "$APPROVAL_STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "approval-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 \
    >"$APPROVAL_STATE/logs/etcd.log" 2>&1 &
  await_started etcd $! 60 etcd_healthy
fi

# ---- kube-apiserver ----------------------------------------------------------------------
apiserver_ready() {
  curl -fs --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -q ok
}
apiserver_args=(
  --etcd-servers "http://127.0.0.1:$ETCD_PORT"
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT"
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key"
  --client-ca-file "$PKI/ca.crt"
  --service-account-issuer https://kubernetes.default.svc
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key"
  --service-cluster-ip-range "10.0.$NODE_NET.0/24" --endpoint-reconciler-type none
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction
  # With a node, webhooks and aggregated APIs registered by Service are called at the
  # Service's endpoints: there is no kube-proxy. Without one (`make bench`) there are no
  # endpoints to call, and manual-approval-gate's webhook is reached through a Service of
  # type ExternalName, which endpoint routing refuses.
  --enable-aggregator-routing="$( ((node)) && echo true || echo false)"
  --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key"
  --kubelet-preferred-address-types Hostname
  --allow-privileged=true
)
if apiserver_ready && ! pid_alive kube-apiserver; then foreign kube-apiserver "$APISERVER_PORT"; fi
# One started with other flags (an older cluster-up.sh) is started again.
if apiserver_ready && [[ "$(cat "$APPROVAL_STATE/run/kube-apiserver.args" 2>/dev/null)" != "${apiserver_args[*]}" ]]; then
  log "kube-apiserver runs with other flags: restarting it"
  stop_process kube-apiserver
fi
if ! apiserver_ready; then
  log "starting kube-apiserver on :$APISERVER_PORT"
  setsid nohup "$(tool_path kube-apiserver)" "${apiserver_args[@]}" \
    >"$APPROVAL_STATE/logs/kube-apiserver.log" 2>&1 &
  await_started kube-apiserver $! 120 apiserver_ready
  echo "${apiserver_args[*]}" >"$APPROVAL_STATE/run/kube-apiserver.args"
fi
# restart-apiserver.sh: the rest is running already.
[[ "${1:-}" == --apiserver-only ]] && exit 0

# ---- kube-controller-manager and kube-scheduler -------------------------------------------
# The controllers a node and Deployments need: ReplicaSets and pods, ServiceAccounts and
# their tokens, EndpointSlices (the API server routes to a webhook Service's endpoints),
# namespace deletion, garbage collection, node lifecycle (it lifts the new node's
# not-ready taint). One instance each, so no leader election (a restart acts at once).
secure_ready() { curl -fsk "https://127.0.0.1:$1/healthz" | grep -q ok; }
if ! pid_alive kube-controller-manager; then
  log "starting kube-controller-manager"
  setsid nohup "$(tool_path kube-controller-manager)" \
    --kubeconfig "$APPROVAL_STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$APPROVAL_STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$APPROVAL_STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" --leader-elect=false \
    --use-service-account-credentials=true --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" --cluster-name approval-e2e \
    >"$APPROVAL_STATE/logs/kube-controller-manager.log" 2>&1 &
  await_started kube-controller-manager $! 60 secure_ready "$CONTROLLER_MANAGER_PORT"
fi
wait_for kube-controller-manager 60 secure_ready "$CONTROLLER_MANAGER_PORT"
cat >"$APPROVAL_STATE/scheduler.yaml" <<YAML
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: $APPROVAL_STATE/scheduler.kubeconfig}
leaderElection: {leaderElect: false}
YAML
if ! pid_alive kube-scheduler; then
  log "starting kube-scheduler"
  setsid nohup "$(tool_path kube-scheduler)" --config "$APPROVAL_STATE/scheduler.yaml" \
    --authentication-kubeconfig "$APPROVAL_STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$APPROVAL_STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
    >"$APPROVAL_STATE/logs/kube-scheduler.log" 2>&1 &
  await_started kube-scheduler $! 60 secure_ready "$SCHEDULER_PORT"
fi
wait_for kube-scheduler 60 secure_ready "$SCHEDULER_PORT"

# ---- Tekton ------------------------------------------------------------------------------
TEKTON="$(tekton_module_dir)/config"
if ! kubectl_admin get crd customruns.tekton.dev >/dev/null 2>&1 || ! kubectl_admin get ns tekton-pipelines >/dev/null 2>&1; then
  log "installing Tekton $TEKTON_PIPELINE_VERSION CRDs and configuration"
  kubectl_admin apply -f "$TEKTON/100-namespace/100-namespace.yaml" >/dev/null
  kubectl_admin apply --server-side --force-conflicts -f "$TEKTON/300-crds/" >/dev/null
  kubectl_admin wait --for condition=established --timeout 60s crd --all >/dev/null
fi
for file in "$TEKTON"/config-*.yaml; do
  # Metrics would need an exporter; the e2e cluster has none.
  sed 's/^  metrics-protocol: prometheus/  metrics-protocol: none/' "$file" | kubectl_admin apply -f - >/dev/null
done

# ---- the node -----------------------------------------------------------------------------
if ((node)) && ! "$(dirname "$0")/node-up.sh"; then
  no_node "node-up.sh failed (its error is above; logs in $APPROVAL_STATE/logs)"
fi
if ((node)); then
  source "$APPROVAL_STATE/node/images.env"
  images=(-entrypoint-image "$TEKTON_ENTRYPOINT_IMAGE" -nop-image "$TEKTON_NOP_IMAGE"
    -sidecarlogresults-image "$TEKTON_SIDECARLOGRESULTS_IMAGE"
    -workingdirinit-image "$TEKTON_WORKINGDIRINIT_IMAGE" -shell-image "$BUSYBOX_IMAGE")
else
  # What a node of this state directory left goes: its processes, and Tekton's webhook
  # (whose registrations, failurePolicy Fail, would refuse every Tekton object).
  "$(dirname "$0")/node-down.sh"
  rm -f "$APPROVAL_STATE/node/images.env"
  kubectl_admin delete validatingwebhookconfiguration validation.webhook.pipeline.tekton.dev \
    config.webhook.pipeline.tekton.dev --ignore-not-found >/dev/null
  kubectl_admin delete mutatingwebhookconfiguration webhook.pipeline.tekton.dev --ignore-not-found >/dev/null
  kubectl_admin -n tekton-pipelines delete deployment tekton-pipelines-webhook --ignore-not-found >/dev/null
  # Non-empty but never used: without a node no task runs a pod.
  images=(-entrypoint-image unused.local/entrypoint -nop-image unused.local/nop
    -sidecarlogresults-image unused.local/sidecarlogresults
    -workingdirinit-image unused.local/workingdirinit -shell-image unused.local/busybox)
fi

tekton_ready() { curl -fsS "http://127.0.0.1:$TEKTON_PROBES_PORT/readiness" >/dev/null; }
# A controller started with other images (the node came or went) is started again.
if pid_alive tekton-controller && [[ "$(cat "$APPROVAL_STATE/run/tekton-controller.images" 2>/dev/null)" != "${images[*]}" ]]; then
  stop_process tekton-controller
fi
if ! pid_alive tekton-controller; then
  log "starting the Tekton Pipelines controller"
  # Leases of a previous, killed Tekton controller would make this one wait for them to
  # expire (about a minute) before it reconciles anything. It is the only one here.
  kubectl_admin -n tekton-pipelines delete leases --all >/dev/null 2>&1 || true
  SYSTEM_NAMESPACE=tekton-pipelines KUBERNETES_MIN_VERSION=v1.28.0 \
  CONFIG_DEFAULTS_NAME=config-defaults CONFIG_LOGGING_NAME=config-logging \
  CONFIG_OBSERVABILITY_NAME=config-observability CONFIG_FEATURE_FLAGS_NAME=feature-flags \
  CONFIG_LEADERELECTION_NAME=config-leader-election-controller CONFIG_SPIRE=config-spire \
  METRICS_DOMAIN=tekton.dev/pipeline \
  PROBES_PORT="$TEKTON_PROBES_PORT" PROFILING_PORT="$TEKTON_PROFILING_PORT" \
  METRICS_PROMETHEUS_PORT="$TEKTON_METRICS_PORT" \
  setsid nohup "$(tool_path tekton-controller)" -kubeconfig "$APPROVAL_STATE/tekton.kubeconfig" \
    "${images[@]}" -shell-image-win unused.local/powershell \
    >"$APPROVAL_STATE/logs/tekton-controller.log" 2>&1 &
  await_started tekton-controller $! 120 tekton_ready
  echo "${images[*]}" >"$APPROVAL_STATE/run/tekton-controller.images"
fi

if ((node)); then
  log "control plane ready, with the node localhost (state and logs in $APPROVAL_STATE)"
else
  log "control plane ready, WITHOUT a node (state and logs in $APPROVAL_STATE)"
fi
echo "export KUBECONFIG=$APPROVAL_STATE/kubeconfig"
