//! The install path users take, `kubectl apply -k config/`, checked by the real API server
//! (a server-side dry run: every object is validated and admitted, nothing is stored).

use approval_e2e::*;

#[tokio::test]
async fn every_manifest_of_config_is_accepted_by_the_api_server() {
    let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").expect("set by e2e.sh");
    let scripts = std::env::var("APPROVAL_E2E_SCRIPTS").expect("set by e2e.sh");
    let config = format!("{scripts}/../../config");
    let output = command_output(&kubectl, &["apply", "-k", &config, "--dry-run=server"])
        .await
        .expect("kubectl apply -k config/ --dry-run=server");
    for object in [
        "deployment.apps/approval-controller",
        "deployment.apps/approval-webhook",
        "poddisruptionbudget.policy/approval-webhook",
        "poddisruptionbudget.policy/approval-controller",
        "service/approval-webhook",
        "role.rbac.authorization.k8s.io/tekton-approval-leader-election",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/approval.tekton.dev",
    ] {
        assert!(output.contains(object), "{object} missing from:\n{output}");
    }
}
