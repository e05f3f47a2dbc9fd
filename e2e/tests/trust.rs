//! Attacks on the promise that only the named approvers open a gate, by a namespace editor
//! (mallory holds Tekton's aggregated `edit` rules on runs: create, patch, delete
//! CustomRuns and PipelineRuns) or by the requester. Each must fail against the real
//! control plane. Attacks that need the webhook's configuration removed run on their own
//! (tests/bypass.rs).

use approval_e2e::*;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tekton_approval::api::CustomRun;
use tekton_approval::api::approval::{Approval, ApprovalSpec};

const APPROVE: &str = "approval.tekton.dev/approve";
const REJECT: &str = "approval.tekton.dev/reject";
const LEDGER: &str = "approval.tekton.dev/decisions";
const ADMITTED: &str = "approval.tekton.dev/admitted";

fn gate_pipeline(params: Value) -> Value {
    json!({"tasks": [gate_task("approve", &[], params), noop_task("deploy", &["approve"])]})
}

/// A gate CustomRun written by hand, as `kubectl create -f` would send it.
fn hand_made_gate(name: &str, namespace: &str) -> CustomRun {
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
            "params": [{"name": "approvers", "value": ["mallory"]},
                       {"name": "onTimeout", "value": "approve"}],
            "timeout": "1s"
        }
    }))
    .unwrap()
}

fn api_message(error: &kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.message.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

fn direct_gate_denial(user: &str, name: &str, namespace: &str) -> String {
    format!(
        "admission webhook \"decisions.approval.tekton.dev\" denied the request: {user} may not \
         create gate {namespace}/{name} directly: approval gates are created by Tekton when a \
         PipelineRun reaches a pipeline task with taskRef {{apiVersion: \
         approval.tekton.dev/v1alpha1, kind: Approval}}. Put the gate in a Pipeline and start a \
         PipelineRun (the platform team can allow direct gates with the webhook's \
         --direct-gate-creator)"
    )
}

#[tokio::test]
async fn a_hand_made_gate_created_before_tektons_is_denied_and_tektons_gate_holds() {
    let s = scenario("trust_hand_made_gate").await;
    let mallory = s.as_user("mallory", &[]).await;
    let runs: Api<CustomRun> = Api::namespaced(mallory.clone(), &s.namespace);
    // mallory knows the name Tekton will give the gate of her PipelineRun, and gets there first.
    let denied = runs
        .create(
            &PostParams::default(),
            &hand_made_gate("release-approve", &s.namespace),
        )
        .await
        .expect_err("only Tekton creates gates");
    assert_eq!(
        api_message(&denied),
        (
            403,
            direct_gate_denial("mallory", "release-approve", &s.namespace)
        )
    );
    s.start_pipeline_as(
        &mallory,
        "release",
        gate_pipeline(json!([{"name": "approvers", "value": ["alice"]}])),
        json!({}),
        json!({}),
    )
    .await
    .expect("mallory may start pipelines");
    let gate = s
        .wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    assert!(gate.annotations().contains_key(ADMITTED));
    let denied = s
        .annotate(&mallory, "release-approve", APPROVE, "")
        .await
        .unwrap_err();
    assert!(
        api_message(&denied).1.contains("mallory may not decide"),
        "{denied}"
    );
}

#[tokio::test]
async fn a_gate_deleted_and_recreated_by_hand_never_stands_in_for_the_pipelines() {
    let s = scenario("trust_delete_recreate").await;
    s.start_pipeline(
        "release",
        gate_pipeline(json!([{"name": "approvers", "value": ["alice"]}])),
        json!({}),
    )
    .await;
    let first = s
        .wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let mallory = s.as_user("mallory", &[]).await;
    let runs: Api<CustomRun> = Api::namespaced(mallory, &s.namespace);
    runs.delete("release-approve", &DeleteParams::default())
        .await
        .expect("editors may delete CustomRuns");
    // Tekton recreates the gate of its PipelineRun; whichever comes first, mallory's is denied.
    match runs
        .create(
            &PostParams::default(),
            &hand_made_gate("release-approve", &s.namespace),
        )
        .await
    {
        Err(e) if api_message(&e).0 == 409 => {}
        Err(e) => assert_eq!(
            api_message(&e),
            (
                403,
                direct_gate_denial("mallory", "release-approve", &s.namespace)
            )
        ),
        Ok(_) => panic!("mallory's hand-made gate was created"),
    }
    let uid = first.uid();
    let second = s
        .wait_customrun("release-approve", "Tekton's new gate waiting", move |run| {
            run.uid() != uid && succeeded_reason(run) == Some("AwaitingApproval")
        })
        .await;
    assert_eq!(
        condition(&second).2,
        "Waiting for 1 more approval (0 of 1) from alice"
    );
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", APPROVE, "")
        .await
        .expect("alice approves the new gate");
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
}

/// erin (the platform team) writes policy `production`.
async fn write_policy(s: &Scenario, spec: ApprovalSpec) {
    write_named_policy(s, "production", spec).await;
}

fn production_gate(params: Value, timeout: Option<&str>) -> Value {
    let mut task = json!({
        "name": "approve",
        "taskRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "name": "production"},
        "params": params,
    });
    if let Some(timeout) = timeout {
        task["timeout"] = json!(timeout);
    }
    json!({"tasks": [task]})
}

fn frozen(gate: &CustomRun, field: &str) -> Value {
    gate.status.as_ref().unwrap().extra_fields.as_ref().unwrap()[field].clone()
}

#[tokio::test]
async fn params_that_loosen_a_policy_fail_the_gate_naming_the_policy_field() {
    let s = scenario("trust_loosen_params").await;
    write_policy(
        &s,
        ApprovalSpec {
            approvers: vec!["group:release-managers".into()],
            ..Default::default()
        },
    )
    .await;
    s.start_pipeline(
        "release",
        production_gate(
            json!([{"name": "onTimeout", "value": "approve"}, {"name": "onReject", "value": "continue"}]),
            Some("3s"),
        ),
        json!({}),
    )
    .await;
    let gate = s
        .wait_gate_reason("release-approve", "InvalidApproval")
        .await;
    assert_eq!(
        condition(&gate).2,
        "param `onTimeout: approve` would loosen Approval policy `production` (onTimeout: fail): \
         params may only make a policy stricter (onTimeout approve -> reject -> fail); remove the \
         param or ask the policy's owners; param `onReject: continue` would loosen Approval \
         policy `production` (onReject: fail): params may only make a policy stricter (onReject \
         continue -> fail); remove the param or ask the policy's owners"
    );
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "False");
}

#[tokio::test]
async fn a_short_task_timeout_cannot_hurry_a_policys_approval_on_timeout_but_may_tighten() {
    let s = scenario("trust_loosen_task_timeout").await;
    write_policy(
        &s,
        ApprovalSpec {
            approvers: vec!["group:release-managers".into()],
            on_timeout: Some("approve".into()),
            timeout: Some("24h".into()),
            ..Default::default()
        },
    )
    .await;
    s.start_pipeline("release", production_gate(json!([]), Some("3s")), json!({}))
        .await;
    let gate = s
        .wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    // The policy's 24h stays: an automatic approval comes no sooner than its owners said.
    assert_eq!(frozen(&gate, "timeout"), "24h0m0s");
    assert_eq!(frozen(&gate, "onTimeout"), "approve");
    let start = gate.status.as_ref().unwrap().start_time.unwrap();
    let deadline: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(frozen(&gate, "deadline")).unwrap();
    assert_eq!(deadline - start, chrono::Duration::hours(24));
    // Tightening is allowed: onTimeout fail makes the short timeout the stricter one.
    s.start_pipeline(
        "strict",
        production_gate(json!([{"name": "onTimeout", "value": "fail"}]), Some("3s")),
        json!({}),
    )
    .await;
    let strict = s
        .wait_gate_reason("strict-approve", "CustomRunTimedOut")
        .await;
    assert_eq!(
        condition(&strict).2,
        "No decision within 3s (0 of 1 approvals)"
    );
}

/// erin writes policy `name`.
async fn write_named_policy(s: &Scenario, name: &str, spec: ApprovalSpec) {
    let erin = s.as_user("erin", &[]).await;
    Api::<Approval>::namespaced(erin, &s.namespace)
        .create(&PostParams::default(), &Approval::new(name, spec))
        .await
        .expect("erin owns policies");
}

#[tokio::test]
async fn a_blanket_tasks_timeout_never_loosens_a_policys_deadline() {
    // Tekton copies `timeouts.tasks` into the CustomRun's spec.timeout when it is longer
    // than its default hour: a pipeline author's way to move a policy's deadline.
    let s = scenario("trust_loosen_tasks_timeout").await;
    let policy = |on_timeout: &str, timeout: &str| ApprovalSpec {
        approvers: vec!["group:release-managers".into()],
        on_timeout: Some(on_timeout.into()),
        timeout: Some(timeout.into()),
        ..Default::default()
    };
    write_named_policy(&s, "auto-approve", policy("approve", "24h")).await;
    write_named_policy(&s, "strict", policy("fail", "1h")).await;
    let named = |policy: &str| {
        json!({"tasks": [{"name": "approve", "taskRef": {"apiVersion": "approval.tekton.dev/v1alpha1",
                                                          "kind": "Approval", "name": policy}}]})
    };
    // An approval on timeout may not come sooner than 24h...
    s.start_pipeline(
        "sooner",
        named("auto-approve"),
        json!({"timeouts": {"pipeline": "100h", "tasks": "2h"}}),
    )
    .await;
    // ... and a failing deadline may not move later than 1h.
    s.start_pipeline(
        "later",
        named("strict"),
        json!({"timeouts": {"pipeline": "100h", "tasks": "72h"}}),
    )
    .await;
    let sooner = s
        .wait_gate_reason("sooner-approve", "AwaitingApproval")
        .await;
    assert_eq!(
        sooner.spec.timeout.as_deref(),
        Some("2h0m0s"),
        "Tekton's copy"
    );
    assert_eq!(frozen(&sooner, "timeout"), "24h0m0s");
    let later = s
        .wait_gate_reason("later-approve", "AwaitingApproval")
        .await;
    assert_eq!(
        later.spec.timeout.as_deref(),
        Some("72h0m0s"),
        "Tekton's copy"
    );
    assert_eq!(frozen(&later, "timeout"), "1h0m0s");
}

#[tokio::test]
async fn only_tekton_or_an_approver_cancels_a_gate() {
    let s = scenario("trust_cancel").await;
    s.start_gate(
        "release",
        json!([{"name": "approvers", "value": ["alice"]}]),
    )
    .await;
    let cancel = json!({"spec": {"status": "RunCancelled", "statusMessage": "vetoed by mallory"}});
    let mallory = s.as_user("mallory", &[]).await;
    let denied = Api::<CustomRun>::namespaced(mallory, &s.namespace)
        .patch(
            "release-approve",
            &PatchParams::default(),
            &Patch::Merge(&cancel),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_message(&denied).1,
        "admission webhook \"decisions.approval.tekton.dev\" denied the request: mallory may \
         not cancel gate {ns}/release-approve: only Tekton (when the PipelineRun is cancelled or \
         times out) or one of its approvers (alice) may. To stop the pipeline, cancel the \
         PipelineRun: tkn pipelinerun cancel release"
            .replace("{ns}", &s.namespace)
    );
    let alice = s.as_user("alice", &[]).await;
    let cancel = json!({"spec": {"status": "RunCancelled", "statusMessage": "cancelled by alice"}});
    Api::<CustomRun>::namespaced(alice, &s.namespace)
        .patch(
            "release-approve",
            &PatchParams::default(),
            &Patch::Merge(&cancel),
        )
        .await
        .expect("an approver may cancel");
    let gate = s
        .wait_gate_reason("release-approve", "CustomRunCancelled")
        .await;
    assert_eq!(condition(&gate).2, "cancelled by alice");
}

#[tokio::test]
async fn a_two_kib_comment_is_denied_with_its_size_and_nothing_is_recorded() {
    let s = scenario("trust_comment_size").await;
    s.start_gate(
        "release",
        json!([{"name": "approvers", "value": ["alice"]}]),
    )
    .await;
    let alice = s.as_user("alice", &[]).await;
    let denied = s
        .annotate(&alice, "release-approve", REJECT, &"x".repeat(2048))
        .await
        .unwrap_err();
    assert_eq!(
        api_message(&denied).1,
        format!(
            "admission webhook \"decisions.approval.tekton.dev\" denied the request: the comment \
             in approval.tekton.dev/reject on gate {}/release-approve is 2048 bytes; at most \
             1024 are recorded: shorten it (link to a longer note instead)",
            s.namespace
        )
    );
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert!(!gate.annotations().contains_key(LEDGER));
    assert!(!gate.annotations().contains_key(REJECT));
}

#[tokio::test]
async fn five_hundred_repeated_approvals_leave_the_gate_decidable_by_the_others() {
    let s = scenario("trust_repeated_decisions").await;
    s.start_gate(
        "release",
        json!([
            {"name": "approvers", "value": ["alice", "bob"]},
            {"name": "minApprovals", "value": "2"},
        ]),
    )
    .await;
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", APPROVE, "0")
        .await
        .expect("the first approval is recorded");
    let mut denied = 0;
    for i in 1..500 {
        match s
            .annotate(&alice, "release-approve", APPROVE, &i.to_string())
            .await
        {
            Err(e) if api_message(&e).1.contains("an approval counts once") => denied += 1,
            other => panic!("repeat {i}: {other:?}"),
        }
    }
    assert_eq!(denied, 499);
    let gate = s.customruns().get("release-approve").await.unwrap();
    let ledger: Vec<Value> = serde_json::from_str(&gate.annotations()[LEDGER]).unwrap();
    assert_eq!(ledger.len(), 1, "the ledger did not grow");
    let bob = s.as_user("bob", &[]).await;
    s.annotate(&bob, "release-approve", APPROVE, "")
        .await
        .expect("bob still decides");
    let gate = s.wait_gate_reason("release-approve", "Approved").await;
    assert_eq!(result(&gate, "approvedBy"), r#"["alice","bob"]"#);
}

#[tokio::test]
async fn records_forged_as_the_controllers_service_account_never_count() {
    let s = scenario("trust_controller_impersonation").await;
    s.start_gate(
        "release",
        json!([{"name": "approvers", "value": ["alice"]}]),
    )
    .await;
    // Whoever can impersonate the controller may rewrite the ledger: the webhook lets its
    // identity clear ledgers after a retry. What they write carries no valid seal.
    let controller = s
        .as_user(
            "system:serviceaccount:tekton-approval:approval-controller",
            &["system:serviceaccounts"],
        )
        .await;
    let forged = json!([{"user": "alice", "decision": "approve", "time": "2026-01-01T00:00:00Z",
                         "seal": "ffff.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]);
    let patch = json!({"metadata": {"annotations": {LEDGER: forged.to_string()}}});
    Api::<CustomRun>::namespaced(controller, &s.namespace)
        .patch(
            "release-approve",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("the controller's identity may write the ledger");
    let events = s.wait_event("release-approve", "UnverifiedDecision").await;
    assert!(events.contains("claiming alice approved"), "{events}");
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(condition(&gate).1, "AwaitingApproval");
}

#[tokio::test]
async fn a_policy_listing_a_service_account_warns_whoever_writes_it() {
    let s = scenario("trust_service_account_warning").await;
    let policy = json!({
        "apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
        "metadata": {"name": "production", "namespace": s.namespace},
        "spec": {"approvers": ["alice", "system:serviceaccount:ci:deployer"]}
    });
    let file = std::env::temp_dir().join(format!("{}-policy.json", s.namespace));
    std::fs::write(&file, policy.to_string()).unwrap();
    let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").expect("set by e2e.sh");
    let output = tokio::process::Command::new(kubectl)
        .args(["create", "--as", "erin", "-f"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "Warning: approver `system:serviceaccount:ci:deployer` is a service account: \
             everyone who may impersonate it, read its tokens or run pods as it (the editors of \
             namespace ci) can approve as it"
        ),
        "{stderr}"
    );
}
