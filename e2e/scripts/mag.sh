#!/usr/bin/env bash
# Runs OpenShift's manual-approval-gate (the system `make bench` compares against) on the
# local control plane, as two processes like approval.sh does for ours: its controller and
# its validating webhook, both with knative's sharedmain and Tekton's config maps.
#
#   mag.sh start            install its CRD, RBAC, config and webhook registration, start both
#   mag.sh stop             stop both (and a second controller replica)
#   mag.sh kill controller  SIGKILL one of them (controller | controller-2 | webhook)
#   mag.sh start controller start one of them (controller-2: a second controller replica)
#   mag.sh ready controller succeeds once it is ready (what `start` waits for)
#   mag.sh uninstall        delete its webhook registration (so that it never sees our runs)
#
# Each runs as its own ServiceAccount with upstream's RBAC (config/kubernetes/20x-*.yaml),
# through a token from the TokenRequest API, as its pod would.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MAG_WEBHOOK_PORT="${MAG_WEBHOOK_PORT:-19643}"
MAG_CONTROLLER_PROFILING_PORT="${MAG_CONTROLLER_PROFILING_PORT:-19681}"
MAG_CONTROLLER_METRICS_PORT="${MAG_CONTROLLER_METRICS_PORT:-19682}"
MAG_WEBHOOK_PROFILING_PORT="${MAG_WEBHOOK_PROFILING_PORT:-19683}"
MAG_WEBHOOK_METRICS_PORT="${MAG_WEBHOOK_METRICS_PORT:-19684}"
MAG_CONTROLLER2_PROFILING_PORT="${MAG_CONTROLLER2_PROFILING_PORT:-19685}"
MAG_CONTROLLER2_METRICS_PORT="${MAG_CONTROLLER2_METRICS_PORT:-19686}"
SYSTEM_NAMESPACE=tekton-pipelines
WEBHOOK_NAME=validation.webhook.manual-approval.openshift-pipelines.org

mag_config() { echo "$(module_dir "github.com/openshift-pipelines/manual-approval-gate@$MAG_VERSION")/config/kubernetes"; }

install() {
  local config; config="$(mag_config)"
  kubectl_admin apply --server-side --force-conflicts -f "$config/300-taskgroup.yaml" >/dev/null
  kubectl_admin wait --for condition=established --timeout 60s crd approvaltasks.openshift-pipelines.org >/dev/null
  kubectl_admin apply -f "$config/config-info.yaml" >/dev/null
  local file
  for file in 200-serviceaccount 201-clusterrole 201-role 201-rolebinding 202-clusterrolebinding; do
    kubectl_admin apply -f "$config/$file.yaml" >/dev/null
  done
  token_kubeconfig "$APPROVAL_STATE/mag-controller.kubeconfig" "$SYSTEM_NAMESPACE" manual-approval-gate-controller
  token_kubeconfig "$APPROVAL_STATE/mag-webhook.kubeconfig" "$SYSTEM_NAMESPACE" manual-approval-gate-webhook
  # The webhook insists on a Service reference (it rewrites the registration to one). The
  # API server resolves a Service of type ExternalName to its externalName and the port of
  # the reference, and checks the serving certificate against the Service's DNS name, which
  # is what knative's certificate controller issues: so `localhost` reaches the process.
  kubectl_admin apply -f - >/dev/null <<SERVICE
apiVersion: v1
kind: Service
metadata: {name: manual-approval-webhook, namespace: $SYSTEM_NAMESPACE}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https-webhook, port: $MAG_WEBHOOK_PORT}]
SERVICE
  # The Secret (filled by the webhook), the registration and the leader-election config.
  kubectl_admin create --dry-run=client -o json -f "$config/400-webhook-controller.yaml" |
    python3 -c '
import json, sys
# kubectl prints one JSON document per YAML document.
text, decoder, items, at = sys.stdin.read(), json.JSONDecoder(), [], 0
while text[at:].strip():
    item, end = decoder.raw_decode(text[at:].lstrip())
    at = len(text) - len(text[at:].lstrip()) + end
    items.append(item)
for item in items:
    if item["kind"] == "ValidatingWebhookConfiguration":
        for webhook in item["webhooks"]:
            webhook["clientConfig"]["service"]["port"] = int(sys.argv[1])
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)' "$MAG_WEBHOOK_PORT" |
    kubectl_admin apply -f - >/dev/null
}

uninstall() {
  kubectl_admin delete validatingwebhookconfiguration "$WEBHOOK_NAME" --ignore-not-found >/dev/null
}

# knative's probe server is off (see mag_main in build-tools.sh); its readiness answer was a
# constant once the informers had synced, which is when knative logs this line.
controller_ready() {
  local name="${1:-mag-controller}"
  local log="$APPROVAL_STATE/logs/$name.log" since
  since="$(cat "$APPROVAL_STATE/run/$name.log-offset")"
  # Not `tail | grep -q`: grep stops at the first match, tail then dies of SIGPIPE, and with
  # pipefail a log that has grown by more than a pipe's buffer never reads as ready.
  grep -q '"Starting controllers..."' <(tail -c "+$((since + 1))" "$log")
}
# knative's webhook answers probes on its HTTPS port when the request says it is one.
webhook_ready() { curl -fsSk -A kube-probe/1 "https://127.0.0.1:$MAG_WEBHOOK_PORT/" >/dev/null; }

start_one() {
  local name="mag-$1"
  if pid_alive "$name"; then return; fi
  local bin; bin="$(tool_path "mag-${1%-2}")"
  [[ -x "$bin" ]] || die "no $bin: run build-tools.sh mag-controller mag-webhook first"
  local env=(SYSTEM_NAMESPACE="$SYSTEM_NAMESPACE" KUBERNETES_MIN_VERSION=v1.28.0
    CONFIG_LEADERELECTION_NAME=manual-approval-config-leader-election
    CONFIG_LOGGING_NAME=config-logging CONFIG_OBSERVABILITY_NAME=config-observability
    METRICS_DOMAIN=openshift-pipelines.org/manual-approval-gate
    # knative's default client throttle is 5 requests/s (burst 10) per controller: 10,000
    # gates would take hours on that alone. Off in effect (knative refuses a negative QPS,
    # which would turn client-go's limiter off), so that the design is what is measured;
    # `make bench` counts client-go's throttling lines in the log to prove it
    # (MAG_KUBE_API_QPS=5 MAG_KUBE_API_BURST=10 measures the out-of-the-box install).
    KUBE_API_QPS="${MAG_KUBE_API_QPS:-1000000000}" KUBE_API_BURST="${MAG_KUBE_API_BURST:-1000000000}")
  case "$1" in
    controller)
      env+=(PROFILING_PORT="$MAG_CONTROLLER_PROFILING_PORT" METRICS_PROMETHEUS_PORT="$MAG_CONTROLLER_METRICS_PORT") ;;
    controller-2)
      env+=(PROFILING_PORT="$MAG_CONTROLLER2_PROFILING_PORT" METRICS_PROMETHEUS_PORT="$MAG_CONTROLLER2_METRICS_PORT") ;;
    webhook)
      env+=(PROFILING_PORT="$MAG_WEBHOOK_PROFILING_PORT" METRICS_PROMETHEUS_PORT="$MAG_WEBHOOK_METRICS_PORT"
            WEBHOOK_PORT="$MAG_WEBHOOK_PORT" WEBHOOK_SERVICE_NAME=manual-approval-webhook
            WEBHOOK_SECRET_NAME=manual-approval-gate-webhook-certs) ;;
    *) die "unknown part $1 (controller | controller-2 | webhook)" ;;
  esac
  local identity="${1%-2}"
  touch "$APPROVAL_STATE/logs/$name.log"
  stat -c %s "$APPROVAL_STATE/logs/$name.log" >"$APPROVAL_STATE/run/$name.log-offset"
  env "${env[@]}" setsid nohup "$bin" -kubeconfig "$APPROVAL_STATE/mag-$identity.kubeconfig" \
    >>"$APPROVAL_STATE/logs/$name.log" 2>&1 &
  # knative logs nothing at info level until its informers have synced: with tens of
  # thousands of CustomRuns and ApprovalTasks on a busy API server that can take minutes.
  await_started "$name" $! 600 "${identity}_ready" "$name"
  log "$name running (pid $(cat "$APPROVAL_STATE/run/$name.pid"), log $APPROVAL_STATE/logs/$name.log)"
}

stop_one() { stop_process "mag-$1" "${2:-TERM}"; }

command="${1:-start}"; part="${2:-all}"
parts=(webhook controller)
[[ "$part" == all ]] || parts=("$part")
case "$command" in
  start)
    [[ "$part" == all ]] && install
    for p in "${parts[@]}"; do start_one "$p"; done ;;
  stop)
    [[ "$part" == all ]] && parts+=(controller-2)
    for p in "${parts[@]}"; do stop_one "$p"; done ;;
  kill) for p in "${parts[@]}"; do stop_one "$p" KILL; done ;;
  uninstall) uninstall ;;
  ready) "${part%-2}_ready" "mag-$part" ;;
  *) die "usage: mag.sh start|stop|kill|ready [controller|webhook|all] | uninstall" ;;
esac
