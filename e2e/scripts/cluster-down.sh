#!/usr/bin/env bash
# Stops every process cluster-up.sh and approval.sh started. Logs stay (they are what you
# read after a failure); --purge also removes the state: certificates, etcd data, logs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The node first, while the API server still answers its last calls.
"$(dirname "$0")/node-down.sh"
for name in demo-log approval-controller approval-controller-2 approval-webhook approval-webhook-2 approval-balancer approval-ui approval-slack mag-controller mag-controller-2 mag-webhook tekton-controller kube-scheduler kube-controller-manager kube-apiserver etcd; do
  file="$APPROVAL_STATE/run/$name.pid"
  [[ -f "$file" ]] || continue
  pid="$(cat "$file")"
  if process_alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do process_alive "$pid" || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$file"
done
if [[ "${1:-}" == "--purge" ]]; then
  rm -rf "$APPROVAL_STATE"
  log "removed $APPROVAL_STATE"
fi
