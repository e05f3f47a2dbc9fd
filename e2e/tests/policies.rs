//! Named Approval policies and self-approval, through real PipelineRuns: the platform team
//! (erin) owns the policy, dave starts runs, release managers decide.

use approval_e2e::*;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tekton_approval::api::approval::{Approval, ApprovalSpec};

const APPROVE: &str = "approval.tekton.dev/approve";
const REQUESTED_BY: &str = "approval.tekton.dev/requested-by";

/// erin writes the policy `name` in the scenario's namespace.
async fn write_policy(s: &Scenario, name: &str, spec: ApprovalSpec) {
    let erin = s.as_user("erin", &[]).await;
    let api: Api<Approval> = Api::namespaced(erin, &s.namespace);
    api.create(&PostParams::default(), &Approval::new(name, spec))
        .await
        .expect("erin owns policies");
}

fn release_managers(allow_self_approval: Option<bool>) -> ApprovalSpec {
    ApprovalSpec {
        approvers: vec!["group:release-managers".into()],
        message: Some("Ship to production?".into()),
        allow_self_approval,
        ..Default::default()
    }
}

fn named_gate(params: serde_json::Value) -> serde_json::Value {
    json!({"tasks": [{
        "name": "approve",
        "taskRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "name": "production"},
        "params": params,
    }]})
}

/// dave starts `name` with the gate of policy `production`.
async fn dave_starts(s: &Scenario, name: &str, params: serde_json::Value) {
    let dave = s.as_user("dave", &["release-managers"]).await;
    s.start_pipeline_as(&dave, name, named_gate(params), json!({}), json!({}))
        .await
        .expect("dave may start pipelines");
}

#[tokio::test]
async fn a_policy_gate_is_approved_by_a_member_of_the_policys_group_and_survives_deletion() {
    let s = scenario("policy_gate").await;
    write_policy(&s, "production", release_managers(None)).await;
    dave_starts(&s, "release", json!([])).await;
    let gate = s
        .wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    assert_eq!(
        condition(&gate).2,
        "Waiting for 1 more approval (0 of 1) from group:release-managers: Ship to production?"
    );
    assert_eq!(
        gate.metadata.annotations.as_ref().unwrap()[REQUESTED_BY],
        "dave",
        "the webhook stamped the PipelineRun and Tekton copied it"
    );
    // The platform team deletes the policy mid-wait: the frozen copy still governs.
    let policies: Api<Approval> = Api::namespaced(s.admin.clone(), &s.namespace);
    policies
        .delete("production", &DeleteParams::default())
        .await
        .unwrap();
    let alice = s.as_user("alice", &[]).await;
    let denied = s
        .annotate(&alice, "release-approve", APPROVE, "")
        .await
        .unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("its approvers are group:release-managers"),
        "{denied}"
    );
    let bob = s.as_user("bob", &["release-managers"]).await;
    s.annotate(&bob, "release-approve", APPROVE, "go")
        .await
        .expect("bob is a release manager");
    let gate = s.wait_gate_reason("release-approve", "Approved").await;
    assert_eq!(result(&gate, "approvedBy"), r#"["bob"]"#);
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
}

#[tokio::test]
async fn params_that_try_to_widen_a_policys_approvers_fail_the_gate() {
    let s = scenario("policy_override").await;
    write_policy(&s, "production", release_managers(None)).await;
    dave_starts(
        &s,
        "release",
        json!([{"name": "approvers", "value": ["dave"]}]),
    )
    .await;
    let gate = s
        .wait_gate_reason("release-approve", "InvalidApproval")
        .await;
    assert_eq!(
        condition(&gate),
        (
            "False".into(),
            "InvalidApproval".into(),
            "param `approvers` cannot override Approval policy `production`: its approvers, \
             minApprovals and allowSelfApproval are set by the policy's owners; remove the param"
                .into()
        )
    );
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "False");
}

#[tokio::test]
async fn a_missing_policy_fails_the_gate_naming_it() {
    let s = scenario("policy_missing").await;
    dave_starts(&s, "release", json!([])).await;
    let gate = s
        .wait_gate_reason("release-approve", "InvalidApproval")
        .await;
    assert_eq!(
        condition(&gate).2,
        format!("Approval production not found in namespace {}", s.namespace)
    );
}

#[tokio::test]
async fn the_requester_may_not_approve_their_own_run_unless_the_policy_allows_it() {
    let s = scenario("self_approval").await;
    write_policy(&s, "production", release_managers(None)).await;
    dave_starts(&s, "release", json!([])).await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let dave = s.as_user("dave", &["release-managers"]).await;
    let denied = s
        .annotate(&dave, "release-approve", APPROVE, "lgtm")
        .await
        .unwrap_err();
    assert!(
        denied.to_string().contains(&format!(
            "dave started the run of gate {}/release-approve and Approval policy production does \
             not allow self-approval: ask another of its approvers (group:release-managers)",
            s.namespace
        )),
        "{denied}"
    );

    let s2 = scenario("self_approval_allowed").await;
    write_policy(&s2, "production", release_managers(Some(true))).await;
    dave_starts(&s2, "release", json!([])).await;
    s2.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    s2.annotate(&dave, "release-approve", APPROVE, "my own")
        .await
        .expect("the policy allows self-approval");
    let gate = s2.wait_gate_reason("release-approve", "Approved").await;
    assert_eq!(result(&gate, "approvedBy"), r#"["dave"]"#);
}

#[tokio::test]
async fn a_forged_requester_is_denied_when_the_pipelinerun_is_created() {
    let s = scenario("forged_requester").await;
    let mallory = s.as_user("mallory", &[]).await;
    let denied = s
        .start_pipeline_as(
            &mallory,
            "release",
            named_gate(json!([])),
            json!({}),
            json!({REQUESTED_BY: "bob"}),
        )
        .await
        .unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("remove it (it says bob, but you are mallory)"),
        "{denied}"
    );
}
