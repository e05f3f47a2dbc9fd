#!/usr/bin/env bash
# Runs our approval-controller on the local control plane in the shapes of config/: the
# reconciler (with the controller's own identity and the RBAC of config/, leader election
# on) and two admission webhook replicas behind one URL (balancer.py, a stand-in for the
# webhook's Service: it routes to ready replicas), registered with the API server by URL.
#
#   approval.sh start            install RBAC + webhook registration, start both (idempotent)
#   approval.sh stop             stop both
#   approval.sh kill controller  SIGKILL one of them (controller | webhook | webhook-2 | balancer)
#   approval.sh start controller start one of them
#   approval.sh start controller-2  a second controller replica (leader election decides
#                                   which one reconciles; not part of `all`)
#   approval.sh start ui         the web page on 127.0.0.1:$UI_PORT, with the RBAC of
#                                config/ui/ and the proxy secret in $APPROVAL_STATE/ui-proxy-secret
#   approval.sh start slack      the Slack endpoint on 127.0.0.1:$SLACK_PORT, with the RBAC of
#                                config/slack/ and the files in $APPROVAL_STATE/slack
#                                (not part of `all`)
#
# APPROVAL_BIN chooses the binary (default: target/debug/approval-controller).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BIN="${APPROVAL_BIN:-$REPO_DIR/target/debug/approval-controller}"
PKI="$APPROVAL_STATE/pki"
CONTROLLER_USERNAME=system:serviceaccount:tekton-approval:approval-controller
# The controller's and webhook's credentials: by default a client certificate in that name;
# `make bench` passes a ServiceAccount token's (APPROVAL_CONTROLLER_KUBECONFIG).
CONTROLLER_KUBECONFIG="${APPROVAL_CONTROLLER_KUBECONFIG:-$APPROVAL_STATE/controller.kubeconfig}"

install() {
  # Everything of config/ but the Deployment, Service and in-cluster webhook registration.
  local file
  for file in 100-namespace 200-serviceaccount 200-rbac 210-rbac-people 300-crd; do
    kubectl_admin apply -f "$REPO_DIR/config/$file.yaml" >/dev/null
  done
  # The people of the suite and of `make run`, bound to the roles for people.
  kubectl_admin apply -f "$E2E_DIR/manifests/users.yaml" >/dev/null
  # The in-cluster registration, pointed at the local process instead of the Service.
  local ca; ca="$(base64 -w0 <"$PKI/webhook-ca.crt")"
  kubectl_admin create --dry-run=client -o json -f "$REPO_DIR/config/400-webhook.yaml" |
    python3 -c '
import json, sys
config = json.load(sys.stdin)
for webhook in config["webhooks"]:
    webhook["clientConfig"] = {"url": sys.argv[1], "caBundle": sys.argv[2]}
json.dump(config, sys.stdout)' "https://127.0.0.1:$WEBHOOK_PORT/admit" "$ca" |
    kubectl_admin apply -f - >/dev/null
}

ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null; }

start_one() {
  local name="approval-$1"
  if pid_alive "$name"; then return; fi
  [[ -x "$BIN" ]] || die "no $BIN: run cargo build first (make does)"
  local args port instance listen
  case "$1" in
    controller|controller-2)
      # Both replicas elect their leader through the Lease, as in a cluster.
      port=$CONTROLLER_PROBE_PORT instance=local-controller
      [[ "$1" == controller-2 ]] && port=$CONTROLLER2_PROBE_PORT instance=local-controller-2
      # Notifications as the ConfigMap and Secret mounts would give them: files a scenario
      # writes (read again for every delivery).
      mkdir -p "$APPROVAL_STATE/notifications/config" "$APPROVAL_STATE/notifications/secrets"
      args=(--components controller --kubeconfig "$CONTROLLER_KUBECONFIG"
            --probe-addr "127.0.0.1:$port" --instance "$instance" --leader-election true
            --notifications-config "$APPROVAL_STATE/notifications/config"
            --notifications-secrets "$APPROVAL_STATE/notifications/secrets") ;;
    balancer)
      local backends=(--backend "127.0.0.1:$WEBHOOK1_PORT,$WEBHOOK_PROBE_PORT"
                      --backend "127.0.0.1:$WEBHOOK2_PORT,$WEBHOOK2_PROBE_PORT")
      setsid nohup python3 "$E2E_DIR/scripts/balancer.py" --listen "127.0.0.1:$WEBHOOK_PORT" \
        "${backends[@]}" >>"$APPROVAL_STATE/logs/$name.log" 2>&1 &
      # Through to a replica: any HTTP answer (a GET of /admit is refused with 405).
      await_started "$name" $! 60 curl -sk -o /dev/null "https://127.0.0.1:$WEBHOOK_PORT/admit"
      log "$name running (pid $(cat "$APPROVAL_STATE/run/$name.pid"), log $APPROVAL_STATE/logs/$name.log)"
      return ;;
    webhook|webhook-2)
      port=$WEBHOOK_PROBE_PORT listen=$WEBHOOK1_PORT
      [[ "${APPROVAL_WEBHOOK_REPLICAS:-2}" == 1 ]] && listen=$WEBHOOK_PORT
      [[ "$1" == webhook-2 ]] && port=$WEBHOOK2_PROBE_PORT listen=$WEBHOOK2_PORT
      # The webhook reads the seal keys with the controller's identity (one service
      # account for both in config/). After SIGTERM it stays in the balancer's rotation
      # for at most its 200 ms poll: a 1 s drain delay covers it.
      args=(--components webhook --webhook-addr "127.0.0.1:$listen" --drain-delay 1s
            --kubeconfig "$CONTROLLER_KUBECONFIG"
            --tls-cert-file "$PKI/webhook.crt" --tls-key-file "$PKI/webhook.key"
            --probe-addr "127.0.0.1:$port" --controller-username "$CONTROLLER_USERNAME") ;;
    ui)
      kubectl_admin apply -f "$REPO_DIR/config/ui/200-rbac.yaml" >/dev/null
      local secret="$APPROVAL_STATE/ui-proxy-secret"
      [[ -s "$secret" ]] || head -c 32 /dev/urandom | base64 -w0 >"$secret"
      RUST_LOG="${RUST_LOG:-info,tekton_approval=debug}" setsid nohup "$BIN" --components ui \
        --kubeconfig "$APPROVAL_STATE/ui.kubeconfig" --ui-addr "127.0.0.1:$UI_PORT" \
        --probe-addr "127.0.0.1:$UI_PROBE_PORT" --ui-proxy-secret-file "$secret" \
        >>"$APPROVAL_STATE/logs/$name.log" 2>&1 &
      await_started "$name" $! 60 curl -fsS -o /dev/null "http://127.0.0.1:$UI_PORT/static/style.css"
      echo "127.0.0.1:$UI_PORT" >"$APPROVAL_STATE/ui-addr"
      log "$name running on http://127.0.0.1:$UI_PORT (pid $(cat "$APPROVAL_STATE/run/$name.pid"), log $APPROVAL_STATE/logs/$name.log)"
      return ;;
    slack)
      # The Slack endpoint holds the web page's rights (read, impersonate): config/slack/.
      kubectl_admin apply -f "$REPO_DIR/config/slack/200-rbac.yaml" >/dev/null
      local dir="$APPROVAL_STATE/slack"
      [[ -s "$dir/signing-secret" && -s "$dir/bot-token" && -s "$dir/api-url" ]] ||
        die "start slack needs $dir/signing-secret, bot-token and api-url (Slack's Web API)"
      local api; api="$(cat "$dir/api-url")"
      RUST_LOG="${RUST_LOG:-info,tekton_approval=debug}" setsid nohup "$BIN" --components slack \
        --kubeconfig "$APPROVAL_STATE/slack.kubeconfig" --slack-addr "127.0.0.1:$SLACK_PORT" \
        --probe-addr "127.0.0.1:$SLACK_PROBE_PORT" \
        --slack-signing-secret-file "$dir/signing-secret" --slack-token-file "$dir/bot-token" \
        --slack-users-file "$dir/users.yaml" --slack-api-url "$api" \
        --slack-response-url-prefix "${api%/api/}/response/" \
        >>"$APPROVAL_STATE/logs/$name.log" 2>&1 &
      await_started "$name" $! 60 curl -s -o /dev/null "http://127.0.0.1:$SLACK_PORT/slack/interactions"
      echo "127.0.0.1:$SLACK_PORT" >"$APPROVAL_STATE/slack-addr"
      log "$name running on http://127.0.0.1:$SLACK_PORT (pid $(cat "$APPROVAL_STATE/run/$name.pid"), log $APPROVAL_STATE/logs/$name.log)"
      return ;;
    *) die "unknown part $1 (controller | controller-2 | webhook | webhook-2 | balancer | ui | slack)" ;;
  esac
  RUST_LOG="${RUST_LOG:-info,tekton_approval=debug}" setsid nohup "$BIN" "${args[@]}" \
    >>"$APPROVAL_STATE/logs/$name.log" 2>&1 &
  await_started "$name" $! 60 ready "$port"
  log "$name running (pid $(cat "$APPROVAL_STATE/run/$name.pid"), log $APPROVAL_STATE/logs/$name.log)"
}

stop_one() { stop_process "approval-$1" "${2:-TERM}"; }

command="${1:-start}"; part="${2:-all}"
parts=(webhook webhook-2 balancer controller)
# One webhook replica serving the registration's port itself, without the balancer
# (`make bench`: one replica of each part, as manual-approval-gate runs, and no Python proxy
# on the admission path).
[[ "${APPROVAL_WEBHOOK_REPLICAS:-2}" == 1 ]] && parts=(webhook controller)
[[ "$part" == all ]] || parts=("$part")
case "$command" in
  start)
    [[ "$part" == all ]] && install
    for p in "${parts[@]}"; do start_one "$p"; done ;;
  # Stopping all stops the optional parts a scenario may have started too.
  stop)
    [[ "$part" == all ]] && parts+=(controller-2 ui slack)
    for p in "${parts[@]}"; do stop_one "$p"; done ;;
  kill) for p in "${parts[@]}"; do stop_one "$p" KILL; done ;;
  restart)
    [[ "$part" == all ]] && install
    for p in "${parts[@]}"; do stop_one "$p"; start_one "$p"; done ;;
  *) die "usage: approval.sh start|stop|kill|restart [controller|webhook|all]" ;;
esac
