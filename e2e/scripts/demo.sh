#!/usr/bin/env bash
# Starts the demo PipelineRun of `make run` (build -> approve -> deploy) and prints how to
# approve its gate. The pipeline's log goes to logs/demo.log, which `make run` follows: the
# deploy step's output shows there once the gate is approved. Without a node (cluster-up.sh
# said why) the demo is the gate alone.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kubectl="$(tool_path kubectl)"
kubectl_admin create namespace demo --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
# Pods need the namespace's service account, which kube-controller-manager makes.
wait_for "the demo namespace's service account" 60 kubectl_admin -n demo get serviceaccount default
images="$APPROVAL_STATE/node/images.env"
if [[ -f "$images" ]]; then
  source "$images"
  pipeline="$(sed "s|STEP_IMAGE|$BUSYBOX_IMAGE|" "$E2E_DIR/manifests/demo.yaml")"
else
  log "WARNING: no node, so the demo is its gate alone (no build or deploy pods)"
  pipeline="$(kubectl_admin create --dry-run=client -o json -f "$E2E_DIR/manifests/demo.yaml" | python3 -c '
import json, sys
run = json.load(sys.stdin)
spec = run["spec"]["pipelineSpec"]
spec["tasks"] = [t for t in spec["tasks"] if t["name"] == "approve"]
spec["tasks"][0].pop("runAfter")
json.dump(run, sys.stdout)')"
fi
run="$(echo "$pipeline" | kubectl_admin create -f - -o jsonpath='{.metadata.name}')"
gate="$run-approve"
# One follower, of the newest run (cluster-down.sh stops it).
stop_process demo-log
setsid nohup "$(tool_path tkn)" --kubeconfig "$APPROVAL_STATE/kubeconfig" -n demo pipelinerun logs "$run" -f \
  >"$APPROVAL_STATE/logs/demo.log" 2>&1 &
echo $! >"$APPROVAL_STATE/run/demo-log.pid"
wait_for "gate $gate to wait" 120 bash -c "
  '$kubectl' --kubeconfig '$APPROVAL_STATE/kubeconfig' -n demo get customrun '$gate' \
    -o jsonpath='{.status.conditions[0].reason}' | grep -q AwaitingApproval"
message="$(kubectl_admin -n demo get customrun "$gate" -o jsonpath='{.status.conditions[0].message}')"
cat <<TEXT

PipelineRun demo/$run is waiting at its gate $gate:
  $message

$(kubectl_admin -n demo get pods -o wide 2>/dev/null)
$(cat "$APPROVAL_STATE/logs/demo.log" 2>/dev/null)

Approve it as alice (the webhook records alice; then the deploy pod runs, and its output
shows below):

  export KUBECONFIG=$APPROVAL_STATE/kubeconfig
  $kubectl -n demo annotate customrun $gate --as alice approval.tekton.dev/approve="ship it"

Or with the plugin (the same annotate, then it waits for the outcome and prints it):

  PATH=$REPO_DIR/target/debug:$(dirname "$kubectl"):\$PATH kubectl approval approve pipelinerun/$run -n demo --as alice -m "ship it"
  PATH=$REPO_DIR/target/debug:$(dirname "$kubectl"):\$PATH kubectl approval list -n demo --as alice

Or try as mallory, who may annotate but is no approver (denied):

  $kubectl -n demo annotate customrun $gate --as mallory approval.tekton.dev/approve="trust me"

Watch it:   $kubectl -n demo get customrun $gate -w
            $kubectl -n demo get pods -w
Following the pipeline's log and the controller's (Ctrl-C stops following; the cluster keeps
running, make cluster-down stops it):
TEXT
