//! What approvers can say and when it takes effect, through real PipelineRuns: inputs read
//! by a later task, approval windows, deferred approvals.

use approval_e2e::*;
use chrono::{DateTime, Duration as TimeDelta, Timelike, Utc};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tekton_approval::api::approval::Approval;

const APPROVE: &str = "approval.tekton.dev/approve";
const REJECT: &str = "approval.tekton.dev/reject";
const EFFECTIVE_AT: &str = "approval.tekton.dev/effective-at";
const LEDGER: &str = "approval.tekton.dev/decisions";

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

#[tokio::test]
async fn an_input_chosen_by_the_approver_reaches_a_later_task_through_a_result() {
    let s = scenario("inputs_reach_a_later_task").await;
    let mut deploy = noop_task("deploy", &["approve"]);
    deploy["params"] = json!([
        {"name": "target", "value": "$(tasks.approve.results.input-target)"},
        {"name": "all", "value": "$(tasks.approve.results.inputs)"},
    ]);
    let inputs = "- {name: target, description: where to deploy, choices: [staging, production], required: true}\n\
                  - {name: replicas, default: \"3\", pattern: \"[0-9]+\"}\n";
    s.start_pipeline(
        "release",
        json!({"tasks": [
            gate_task("approve", &[], json!([
                {"name": "approvers", "value": ["alice", "bob"]},
                {"name": "minApprovals", "value": "2"},
                {"name": "inputs", "value": inputs},
            ])),
            deploy,
        ]}),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let alice = s.as_user("alice", &[]).await;
    // The webhook checks the values: a choice that is not offered, a missing required one.
    let bad = s
        .annotate_all(
            &alice,
            "release-approve",
            json!({APPROVE: "", "approval.tekton.dev/input-target": "prod"}),
        )
        .await
        .unwrap_err();
    assert!(
        bad.to_string()
            .contains("input `target` must be one of staging, production, got `prod`"),
        "{bad}"
    );
    let missing = s
        .annotate(&alice, "release-approve", APPROVE, "")
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("input `target` is required"),
        "{missing}"
    );
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert!(
        !gate
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(LEDGER),
        "a denied approval records nothing"
    );
    s.annotate_all(
        &alice,
        "release-approve",
        json!({APPROVE: "", "approval.tekton.dev/input-target": "production"}),
    )
    .await
    .expect("alice approves with target=production");
    // Bob may not approve something else; giving nothing agrees with alice.
    let bob = s.as_user("bob", &[]).await;
    let differs = s
        .annotate_all(
            &bob,
            "release-approve",
            json!({APPROVE: "", "approval.tekton.dev/input-target": "staging"}),
        )
        .await
        .unwrap_err();
    assert!(
        differs
            .to_string()
            .contains("every approval of a gate carries the same inputs"),
        "{differs}"
    );
    s.annotate(&bob, "release-approve", APPROVE, "")
        .await
        .expect("bob agrees");
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(result(&gate, "input-target"), "production");
    assert_eq!(result(&gate, "input-replicas"), "3");
    let deploy = s.customruns().get("release-deploy").await.unwrap();
    assert_eq!(
        result(&deploy, "target"),
        "production",
        "the later task read the input"
    );
    assert_eq!(
        result(&deploy, "all"),
        r#"{"replicas":"3","target":"production"}"#
    );
}

/// `HH:MM-HH:MM` (UTC) of a window that opens at the first whole minute at least 25 s away,
/// and stays open for an hour; and that opening time.
fn window_opening_soon() -> (String, DateTime<Utc>) {
    let now = Utc::now();
    let mut opens = (now + TimeDelta::seconds(25))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap()
        + TimeDelta::minutes(1);
    if opens - now > TimeDelta::seconds(85) {
        opens -= TimeDelta::minutes(1);
    }
    let closes = opens + TimeDelta::hours(1);
    (
        format!("{}-{}", opens.format("%H:%M"), closes.format("%H:%M")),
        opens,
    )
}

#[tokio::test]
async fn a_closed_window_keeps_an_approval_waiting_until_it_opens_and_a_rejection_ends_at_once() {
    let s = scenario("approval_window").await;
    let (hours, opens) = window_opening_soon();
    let policies: Api<Approval> = Api::namespaced(s.admin.clone(), &s.namespace);
    let policy: Approval = serde_json::from_value(json!({
        "apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
        "metadata": {"name": "office-hours"},
        "spec": {"approvers": ["alice", "bob"], "allowSelfApproval": true,
                 "approvalWindow": {"timeZone": "UTC", "hours": hours}},
    }))
    .unwrap();
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let pipeline = || {
        json!({"tasks": [
            {"name": "approve", "taskRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "name": "office-hours"}},
            noop_task("deploy", &["approve"]),
        ]})
    };
    s.start_pipeline("approved", pipeline(), json!({})).await;
    s.start_pipeline("rejected", pipeline(), json!({})).await;
    s.wait_gate_reason("approved-approve", "AwaitingApproval")
        .await;
    s.wait_gate_reason("rejected-approve", "AwaitingApproval")
        .await;
    let alice = s.as_user("alice", &[]).await;
    for gate in ["approved-approve", "rejected-approve"] {
        s.annotate(&alice, gate, APPROVE, "")
            .await
            .expect("recorded while the window is closed");
    }
    let opening = opens.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let waiting = s
        .wait_customrun(
            "approved-approve",
            "the held approval in the message",
            |run| {
                condition(run)
                    .2
                    .contains("alice's approval takes effect at")
            },
        )
        .await;
    assert_eq!(
        condition(&waiting).0,
        "Unknown",
        "an approval outside the window waits"
    );
    assert!(
        condition(&waiting).2.ends_with(&format!(
            "alice's approval takes effect at {opening}, when the approval window opens"
        )),
        "{}",
        condition(&waiting).2
    );
    assert!(
        s.wait_event("approved-approve", "ApprovalDeferred")
            .await
            .contains(&opening)
    );
    // A rejection is never held back.
    let bob = s.as_user("bob", &[]).await;
    s.annotate(&bob, "rejected-approve", REJECT, "not today")
        .await
        .unwrap();
    let rejected = s.wait_gate_reason("rejected-approve", "Rejected").await;
    assert!(Utc::now() < opens, "rejected before the window opened");
    assert_eq!(condition(&rejected).2, "Rejected by bob: not today");
    let failed = s.wait_pipelinerun_done("rejected").await;
    assert_eq!(pipelinerun_condition(&failed).unwrap().0, "False");
    // When the window opens, the held approval takes effect, without anyone acting.
    let approved = s.wait_gate_reason("approved-approve", "Approved").await;
    assert_eq!(result(&approved, "decidedAt"), opening);
    assert!(Utc::now() >= opens);
    let done = s.wait_pipelinerun_done("approved").await;
    assert_eq!(pipelinerun_condition(&done).unwrap().0, "True");
}

#[tokio::test]
async fn a_deferred_approval_takes_effect_at_its_time_unless_rejected_before() {
    let s = scenario("deferred_approval").await;
    let pipeline = || {
        json!({"tasks": [
            gate_task("approve", &[], json!([{"name": "approvers", "value": ["alice", "bob"]}])),
            noop_task("deploy", &["approve"]),
        ]})
    };
    s.start_pipeline("later", pipeline(), json!({})).await;
    s.start_pipeline("vetoed", pipeline(), json!({})).await;
    s.wait_gate_reason("later-approve", "AwaitingApproval")
        .await;
    s.wait_gate_reason("vetoed-approve", "AwaitingApproval")
        .await;
    let alice = s.as_user("alice", &[]).await;
    let written = s
        .annotate_all(
            &alice,
            "later-approve",
            json!({APPROVE: "after the smoke test", EFFECTIVE_AT: "8s"}),
        )
        .await
        .unwrap();
    let ledger = written.metadata.annotations.clone().unwrap_or_default()[LEDGER].clone();
    let records: serde_json::Value = serde_json::from_str(&ledger).unwrap();
    let admitted = utc(records[0]["time"].as_str().unwrap());
    let effective = utc(records[0]["effectiveAt"]
        .as_str()
        .expect("the effect time is recorded"));
    assert_eq!(
        effective - admitted,
        TimeDelta::seconds(8),
        "8s from the webhook's clock"
    );
    assert!(
        !written
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(EFFECTIVE_AT),
        "the webhook consumed the annotation"
    );
    let waiting = s
        .wait_customrun("later-approve", "the deferral in the message", |run| {
            condition(run).2.contains("(deferred)")
        })
        .await;
    assert_eq!(condition(&waiting).0, "Unknown");
    s.annotate_all(
        &alice,
        "vetoed-approve",
        json!({APPROVE: "", EFFECTIVE_AT: "30s"}),
    )
    .await
    .unwrap();
    let bob = s.as_user("bob", &[]).await;
    s.annotate(&bob, "vetoed-approve", REJECT, "")
        .await
        .unwrap();
    let vetoed = s.wait_gate_reason("vetoed-approve", "Rejected").await;
    assert_eq!(result(&vetoed, "approvedBy"), "[]");
    let approved = s.wait_gate_reason("later-approve", "Approved").await;
    let decided = utc(result(&approved, "decidedAt"));
    assert_eq!(
        decided,
        effective.with_nanosecond(0).unwrap(),
        "decided at the time asked for"
    );
    assert!(Utc::now() >= effective);
    s.wait_event("later-approve", "Approved").await;
    let reasons = s.event_reason_names("later-approve").await;
    assert_eq!(
        reasons,
        [
            "AwaitingApproval",
            "ApprovalDeferred",
            "DecisionRecorded",
            "Approved"
        ]
    );
    let done = s.wait_pipelinerun_done("later").await;
    assert_eq!(pipelinerun_condition(&done).unwrap().0, "True");
}

fn tekton(kind: &str, plural: &str) -> kube::discovery::ApiResource {
    kube::discovery::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("tekton.dev", "v1", kind),
        plural,
    )
}

#[tokio::test]
async fn a_newer_run_supersedes_an_older_one_waiting_at_the_same_gate() {
    let s = scenario("supersede").await;
    let pipelines: Api<kube::api::DynamicObject> = Api::namespaced_with(
        s.admin.clone(),
        &s.namespace,
        &tekton("Pipeline", "pipelines"),
    );
    let pipeline = json!({
        "apiVersion": "tekton.dev/v1", "kind": "Pipeline", "metadata": {"name": "release"},
        "spec": {"tasks": [
            gate_task("approve", &[], json!([
                {"name": "approvers", "value": ["alice"]},
                {"name": "supersede", "value": "true"},
            ])),
            noop_task("deploy", &["approve"]),
        ]},
    });
    pipelines
        .create(
            &PostParams::default(),
            &serde_json::from_value(pipeline).unwrap(),
        )
        .await
        .unwrap();
    let runs: Api<kube::api::DynamicObject> = Api::namespaced_with(
        s.admin.clone(),
        &s.namespace,
        &tekton("PipelineRun", "pipelineruns"),
    );
    let start = |name: &str| {
        serde_json::from_value::<kube::api::DynamicObject>(json!({
            "apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": name},
            "spec": {"pipelineRef": {"name": "release"}},
        }))
        .unwrap()
    };
    runs.create(&PostParams::default(), &start("release-1"))
        .await
        .unwrap();
    s.wait_gate_reason("release-1-approve", "AwaitingApproval")
        .await;
    runs.create(&PostParams::default(), &start("release-2"))
        .await
        .unwrap();
    let older = s.wait_gate_reason("release-1-approve", "Superseded").await;
    assert_eq!(
        condition(&older),
        (
            "False".into(),
            "Superseded".into(),
            "Superseded by PipelineRun release-2, a newer run waiting at the same gate (0 of 1 approvals)".into()
        )
    );
    assert_eq!(result(&older, "decision"), "superseded");
    let failed = s.wait_pipelinerun_done("release-1").await;
    assert_eq!(pipelinerun_condition(&failed).unwrap().0, "False");
    assert!(
        s.customruns()
            .get_opt("release-1-deploy")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.wait_event("release-1-approve", "Superseded")
            .await
            .contains("release-2")
    );
    // A superseded gate takes no decision any more; the newer one does.
    let alice = s.as_user("alice", &[]).await;
    let late = s
        .annotate(&alice, "release-1-approve", APPROVE, "")
        .await
        .unwrap_err();
    assert!(
        late.to_string()
            .contains("no decision can be recorded any more"),
        "{late}"
    );
    let newer = s.customruns().get("release-2-approve").await.unwrap();
    assert_eq!(condition(&newer).1, "AwaitingApproval");
    s.annotate(&alice, "release-2-approve", APPROVE, "")
        .await
        .unwrap();
    let done = s.wait_pipelinerun_done("release-2").await;
    assert_eq!(pipelinerun_condition(&done).unwrap().0, "True");
}
