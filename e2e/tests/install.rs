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

#[tokio::test]
async fn the_optional_parts_web_page_and_slack_are_accepted_by_the_api_server() {
    let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").expect("set by e2e.sh");
    let scripts = std::env::var("APPROVAL_E2E_SCRIPTS").expect("set by e2e.sh");
    for (part, objects) in [
        (
            "ui",
            &["deployment.apps/approval-ui", "serviceaccount/approval-ui"][..],
        ),
        (
            "slack",
            &[
                "deployment.apps/approval-slack",
                "service/approval-slack",
                "clusterrole.rbac.authorization.k8s.io/tekton-approval-slack",
            ][..],
        ),
    ] {
        let config = format!("{scripts}/../../config/{part}");
        let output = command_output(&kubectl, &["apply", "-k", &config, "--dry-run=server"])
            .await
            .unwrap_or_else(|e| panic!("kubectl apply -k config/{part}/ --dry-run=server: {e}"));
        for object in objects {
            assert!(output.contains(object), "{object} missing from:\n{output}");
        }
    }
}

#[tokio::test]
async fn the_platform_teams_notification_sample_is_accepted_by_the_api_server() {
    let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").expect("set by e2e.sh");
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/platform/notifications.yaml"
    );
    let output = command_output(&kubectl, &["apply", "-f", sample, "--dry-run=server"])
        .await
        .expect("kubectl apply -f samples/platform/notifications.yaml --dry-run=server");
    for object in [
        "configmap/approval-notifications",
        "secret/approval-notifications",
        "secret/approval-slack",
        "configmap/approval-slack-users",
    ] {
        assert!(output.contains(object), "{object} missing from:\n{output}");
    }
}
