#!/usr/bin/env bash
# Starts the demo PipelineRun of `make run` and prints how to approve its gate.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kubectl_admin create namespace demo --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
run="$(kubectl_admin create -f "$E2E_DIR/manifests/demo.yaml" -o jsonpath='{.metadata.name}')"
gate="$run-approve"
wait_for "gate $gate to wait" 60 bash -c "
  '$(tool_path kubectl)' --kubeconfig '$APPROVAL_STATE/kubeconfig' -n demo get customrun '$gate' \
    -o jsonpath='{.status.conditions[0].reason}' | grep -q AwaitingApproval"
message="$(kubectl_admin -n demo get customrun "$gate" -o jsonpath='{.status.conditions[0].message}')"
kubectl="$(tool_path kubectl)"
cat <<TEXT

PipelineRun demo/$run is waiting at its gate $gate:
  $message

Approve it as alice (the webhook records alice, the PipelineRun completes):

  export KUBECONFIG=$APPROVAL_STATE/kubeconfig
  $kubectl -n demo annotate customrun $gate --as alice approval.tekton.dev/approve="ship it"

Or with the plugin (the same annotate, then it waits for the outcome and prints it):

  PATH=$REPO_DIR/target/debug:$(dirname "$kubectl"):\$PATH kubectl approval approve pipelinerun/$run -n demo --as alice -m "ship it"
  PATH=$REPO_DIR/target/debug:$(dirname "$kubectl"):\$PATH kubectl approval list -n demo --as alice

Or try as mallory, who may annotate but is no approver (denied):

  $kubectl -n demo annotate customrun $gate --as mallory approval.tekton.dev/approve="trust me"

Watch it:   $kubectl -n demo get customrun $gate -w
Following the controller log (Ctrl-C stops following; the cluster keeps running, make cluster-down stops it):
TEXT
