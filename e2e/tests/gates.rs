//! Real PipelineRuns through real gates: Tekton's controller creates the CustomRuns, our
//! controller holds them, people decide through the API server and our webhook. The flows
//! of the README (build, approve, deploy; rejection with `finally`; the rejection branch)
//! run their other tasks as real TaskRuns, pods on the node.

use approval_e2e::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const APPROVE: &str = "approval.tekton.dev/approve";
const REJECT: &str = "approval.tekton.dev/reject";
const LEDGER: &str = "approval.tekton.dev/decisions";

fn release_pipeline(gate_params: serde_json::Value) -> serde_json::Value {
    json!({"tasks": [
        work_task("build", &[], json!([])),
        gate_task("approve", &["build"], gate_params),
        // The gate's results flow into the deploy step's script.
        work_task("deploy", &["approve"], json!([
            {"name": "approved-by", "value": "$(tasks.approve.results.approvedBy[*])"},
            {"name": "comments", "value": "$(tasks.approve.results.comments[*])"},
        ])),
    ]})
}

#[tokio::test]
async fn an_approval_lets_the_pipeline_through_and_the_gate_holds_no_pod() {
    let s = scenario("approval_lets_pipeline_through").await;
    s.start_pipeline(
        "release",
        release_pipeline(json!([
            {"name": "approvers", "value": ["alice"]},
            {"name": "message", "value": "Release v1.2 to production?"},
        ])),
        json!({}),
    )
    .await;
    let gate = s
        .wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    assert_eq!(
        condition(&gate),
        (
            "Unknown".into(),
            "AwaitingApproval".into(),
            "Waiting for 1 more approval (0 of 1) from alice: Release v1.2 to production?".into()
        )
    );
    // The build ran (a pod, where there is a node); the gate holds none.
    s.task_succeeded("release-build").await;
    let pods: Api<Pod> = Api::namespaced(s.admin.clone(), &s.namespace);
    let pods: Vec<String> = pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    let expected: &[&str] = if step_image().is_some() {
        &["release-build-pod"]
    } else {
        &[]
    };
    assert_eq!(pods, expected, "the build's pod and none for the gate");
    assert!(
        s.task_outcome("release-deploy").await.is_none(),
        "deploy waits for the gate"
    );

    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", APPROVE, "ship it")
        .await
        .expect("alice may approve");
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(
        pipelinerun_condition(&pipeline).unwrap(),
        ("True".into(), "Succeeded".into())
    );
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(condition(&gate).1, "Approved");
    assert_eq!(result(&gate, "decision"), "approved");
    assert_eq!(result(&gate, "approvedBy"), r#"["alice"]"#);
    assert_eq!(result(&gate, "comments"), r#"["alice: ship it"]"#);
    let deploy = s.task_succeeded("release-deploy").await;
    assert_eq!(deploy.results["approved-by"], r#"["alice"]"#);
    assert_eq!(deploy.results["comments"], r#"["alice: ship it"]"#);
    if step_image().is_some() {
        let pod = deploy.pod.as_deref().expect("the deploy TaskRun's pod");
        let log = s.pod_log(pod).await;
        assert!(log.contains(r#"deploy: approved-by=["alice"]"#), "{log}");
    }
    s.wait_event("release-approve", "Approved").await;
    let reasons = s.event_reason_names("release-approve").await;
    assert_eq!(
        reasons,
        ["AwaitingApproval", "DecisionRecorded", "Approved"]
    );
}

#[tokio::test]
async fn two_approvals_come_from_a_group_member_and_a_user_and_a_repeat_is_refused() {
    let s = scenario("two_approvals").await;
    s.start_pipeline(
        "release",
        release_pipeline(json!([
            {"name": "approvers", "value": ["alice", "group:release-managers"]},
            {"name": "minApprovals", "value": "2"},
        ])),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", APPROVE, "")
        .await
        .unwrap();
    s.wait_customrun("release-approve", "alice's approval counted", |run| {
        condition(run).2.contains("(1 of 2)")
    })
    .await;
    // Approving again changes nothing: one user, one vote, and the ledger does not grow.
    let again = s
        .annotate(&alice, "release-approve", APPROVE, "really")
        .await
        .unwrap_err();
    assert!(
        again
            .to_string()
            .contains("an approval counts once, nothing was changed"),
        "{again}"
    );
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(
        gate.metadata.annotations.as_ref().unwrap()[LEDGER]
            .matches("alice")
            .count(),
        1
    );
    assert_eq!(condition(&gate).0, "Unknown");
    let bob = s.as_user("bob", &["release-managers"]).await;
    s.annotate(&bob, "release-approve", APPROVE, "")
        .await
        .unwrap();
    let gate = s.wait_gate_reason("release-approve", "Approved").await;
    assert_eq!(condition(&gate).2, "Approved by alice, bob");
    assert_eq!(result(&gate, "approvedBy"), r#"["alice","bob"]"#);
    assert!(
        gate.metadata.annotations.as_ref().unwrap()[LEDGER]
            .contains(r#""groups":["release-managers"]"#)
    );
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
}

#[tokio::test]
async fn a_rejection_fails_the_pipeline_and_finally_sees_the_gates_status() {
    let s = scenario("rejection_fails_pipeline").await;
    let mut pipeline = release_pipeline(json!([{"name": "approvers", "value": "alice, carol"}]));
    let mut report = work_task(
        "report",
        &[],
        json!([
            {"name": "gate-status", "value": "$(tasks.approve.status)"},
            {"name": "gate-reason", "value": "$(tasks.approve.reason)"},
        ]),
    );
    report.as_object_mut().unwrap().remove("runAfter");
    pipeline["finally"] = json!([report]);
    s.start_pipeline("release", pipeline, json!({})).await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let carol = s.as_user("carol", &[]).await;
    s.annotate(&carol, "release-approve", REJECT, "not during the freeze")
        .await
        .unwrap();
    let gate = s.wait_gate_reason("release-approve", "Rejected").await;
    assert_eq!(
        condition(&gate),
        (
            "False".into(),
            "Rejected".into(),
            "Rejected by carol: not during the freeze".into()
        )
    );
    assert_eq!(result(&gate, "decision"), "rejected");
    assert_eq!(result(&gate, "rejectedBy"), r#"["carol"]"#);
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "False");
    assert!(
        s.task_outcome("release-deploy").await.is_none(),
        "deploy never ran"
    );
    let report = s.task_succeeded("release-report").await;
    assert_eq!(report.results["gate-status"], "Failed");
    assert_eq!(report.results["gate-reason"], "Rejected");
}

#[tokio::test]
async fn on_reject_continue_takes_the_rejection_branch() {
    let s = scenario("on_reject_continue").await;
    let decision_is = |value: &str| json!([{"input": "$(tasks.approve.results.decision)", "operator": "in", "values": [value]}]);
    let mut deploy = work_task("deploy", &["approve"], json!([]));
    deploy["when"] = decision_is("approved");
    let mut notify = work_task(
        "notify-rejected",
        &["approve"],
        json!([{"name": "rejected-by", "value": "$(tasks.approve.results.rejectedBy[*])"}]),
    );
    notify["when"] = decision_is("rejected");
    s.start_pipeline(
        "release",
        json!({"tasks": [
            gate_task("approve", &[], json!([
                {"name": "approvers", "value": ["carol"]},
                {"name": "onReject", "value": "continue"},
            ])),
            deploy,
            notify,
        ]}),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let carol = s.as_user("carol", &[]).await;
    s.annotate(&carol, "release-approve", REJECT, "")
        .await
        .unwrap();
    let gate = s.wait_gate_reason("release-approve", "Rejected").await;
    assert_eq!(condition(&gate).0, "True", "onReject: continue succeeds");
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
    let notify = s.task_succeeded("release-notify-rejected").await;
    assert_eq!(notify.results["rejected-by"], r#"["carol"]"#);
    assert!(
        s.task_outcome("release-deploy").await.is_none(),
        "deploy was skipped"
    );
    let skipped = pipeline.data["status"]["skippedTasks"].to_string();
    assert!(skipped.contains("\"deploy\""), "{skipped}");
}

#[tokio::test]
async fn the_deadline_fails_the_pipeline_or_approves_on_timeout() {
    let s = scenario("deadline").await;
    let mut gate = gate_task(
        "approve",
        &[],
        json!([{"name": "approvers", "value": ["alice"]}]),
    );
    gate["timeout"] = json!("2s");
    s.start_pipeline("strict", json!({"tasks": [gate.clone()]}), json!({}))
        .await;
    let mut lenient = gate;
    lenient["params"] = json!([
        {"name": "approvers", "value": ["alice"]},
        {"name": "onTimeout", "value": "approve"},
    ]);
    s.start_pipeline(
        "lenient",
        json!({"tasks": [lenient, noop_task("deploy", &["approve"])]}),
        json!({}),
    )
    .await;

    let strict = s
        .wait_gate_reason("strict-approve", "CustomRunTimedOut")
        .await;
    assert_eq!(
        condition(&strict),
        (
            "False".into(),
            "CustomRunTimedOut".into(),
            "No decision within 2s (0 of 1 approvals)".into()
        )
    );
    assert_eq!(result(&strict, "decision"), "timed-out");
    let pipeline = s.wait_pipelinerun_done("strict").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "False");

    let lenient = s
        .wait_gate_reason("lenient-approve", "ApprovedOnTimeout")
        .await;
    assert_eq!(condition(&lenient).0, "True");
    let pipeline = s.wait_pipelinerun_done("lenient").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
    // A decision after the deadline is refused, with the reason.
    let alice = s.as_user("alice", &[]).await;
    let denied = s
        .annotate(&alice, "strict-approve", APPROVE, "late")
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("timed out at"), "{denied}");
}

#[tokio::test]
async fn cancelling_the_pipelinerun_cancels_the_gate() {
    let s = scenario("cancel_pipelinerun").await;
    s.start_pipeline(
        "release",
        release_pipeline(json!([{"name": "approvers", "value": ["alice"]}])),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    // Tekton cancels the children its PipelineRun's status lists: a cancellation that comes
    // before the status lists the gate leaves the gate out (Tekton's race, not the gate's).
    s.wait_pipelinerun_lists_child("release", "release-approve")
        .await;
    s.pipelineruns()
        .patch(
            "release",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"status": "Cancelled"}})),
        )
        .await
        .unwrap();
    let gate = s
        .wait_gate_reason("release-approve", "CustomRunCancelled")
        .await;
    assert_eq!(condition(&gate).0, "False");
    assert_eq!(gate.spec.status.as_deref(), Some("RunCancelled"));
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(
        pipelinerun_condition(&pipeline).unwrap(),
        ("False".into(), "Cancelled".into())
    );
}

#[tokio::test]
async fn a_pipelinerun_timeout_shorter_than_the_gates_cancels_the_gate() {
    let s = scenario("pipelinerun_timeout").await;
    let mut gate = gate_task(
        "approve",
        &[],
        json!([{"name": "approvers", "value": ["alice"]}]),
    );
    gate["timeout"] = json!("1h");
    s.start_pipeline(
        "release",
        json!({"tasks": [gate]}),
        json!({"timeouts": {"pipeline": "3s"}}),
    )
    .await;
    let gate = s
        .wait_gate_reason("release-approve", "CustomRunCancelled")
        .await;
    assert_eq!(condition(&gate).0, "False");
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(
        pipelinerun_condition(&pipeline).unwrap().1,
        "PipelineRunTimeout"
    );
}

#[tokio::test]
async fn invalid_params_fail_fast_with_the_protocols_message() {
    let s = scenario("invalid_params").await;
    s.start_pipeline(
        "release",
        release_pipeline(json!([
            {"name": "approvers", "value": ["alice", "bob"]},
            {"name": "minApproval", "value": "2"},
        ])),
        json!({}),
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
            "unknown param `minApproval`; did you mean `minApprovals`?".into()
        )
    );
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "False");
    s.wait_event("release-approve", "InvalidApproval").await;
    let reasons = s.event_reason_names("release-approve").await;
    assert_eq!(reasons, ["InvalidApproval"]);
}

#[tokio::test]
async fn the_webhook_stops_what_an_attacker_who_can_annotate_writes() {
    let s = scenario("webhook_rules").await;
    s.start_pipeline(
        "release",
        release_pipeline(json!([{"name": "approvers", "value": ["alice"]}])),
        json!({}),
    )
    .await;
    let before = s
        .wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let mallory = s.as_user("mallory", &["qa"]).await;

    let denied = s
        .annotate(&mallory, "release-approve", APPROVE, "lgtm")
        .await
        .unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("mallory may not decide gate ".to_string().as_str())
            && denied
                .to_string()
                .contains("its approvers are alice. Ask one of them to approve"),
        "{denied}"
    );
    let forged = r#"[{"user":"alice","decision":"approve","time":"2026-01-01T00:00:00Z"}]"#;
    let denied = s
        .annotate(&mallory, "release-approve", LEDGER, forged)
        .await
        .unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("is written only by the approval webhook"),
        "{denied}"
    );

    let api: Api<api::CustomRun> = Api::namespaced(mallory.clone(), &s.namespace);
    let widen = json!({"spec": {"params": [{"name": "approvers", "value": ["mallory"]}]}});
    let denied = api
        .patch(
            "release-approve",
            &PatchParams::default(),
            &Patch::Merge(&widen),
        )
        .await
        .unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("cannot change after it is created"),
        "{denied}"
    );

    let after = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(after.spec, before.spec, "nothing changed");
    assert_eq!(
        after
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEDGER)),
        None
    );
    assert_eq!(condition(&after).0, "Unknown");
}

#[tokio::test]
async fn tkn_describes_a_waiting_gate_and_its_results() {
    let s = scenario("tkn_describe").await;
    s.start_pipeline("release", json!({"tasks": [gate_task("approve", &[], json!([{"name": "approvers", "value": ["alice"]}]))]}), json!({})).await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let tkn = std::env::var("APPROVAL_E2E_TKN").expect("APPROVAL_E2E_TKN (set by e2e.sh)");
    let args = [
        "customrun",
        "describe",
        "release-approve",
        "-n",
        s.namespace.as_str(),
    ];
    let describe = || command_output(&tkn, &args);
    let waiting = describe().await.unwrap();
    assert!(waiting.contains("Running(AwaitingApproval)"), "{waiting}");
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", APPROVE, "ok")
        .await
        .unwrap();
    s.wait_gate_reason("release-approve", "Approved").await;
    let done = describe().await.unwrap();
    assert!(done.contains("Succeeded"), "{done}");
    assert!(
        done.contains("decision") && done.contains("approved"),
        "{done}"
    );
    assert!(done.contains("approvedBy"), "{done}");
}

#[tokio::test]
async fn a_rejected_gate_with_retries_reopens_and_can_then_be_approved() {
    let s = scenario("retries").await;
    let mut gate = gate_task(
        "approve",
        &[],
        json!([{"name": "approvers", "value": ["alice", "carol"]}]),
    );
    gate["retries"] = json!(1);
    s.start_pipeline(
        "release",
        json!({"tasks": [gate, noop_task("deploy", &["approve"])]}),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let carol = s.as_user("carol", &[]).await;
    s.annotate(&carol, "release-approve", REJECT, "fix the changelog")
        .await
        .unwrap();
    let reopened = s
        .wait_customrun("release-approve", "the gate reopened", |run| {
            run.status
                .as_ref()
                .is_some_and(|st| st.retries_status.len() == 1)
                && succeeded_reason(run) == Some("AwaitingApproval")
        })
        .await;
    let archived = &reopened.status.as_ref().unwrap().retries_status[0];
    assert_eq!(archived.succeeded().unwrap().reason, "Rejected");
    // The ledger of the first attempt is cleared by the controller.
    let cleared = s
        .wait_customrun("release-approve", "the ledger cleared", |run| {
            run.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEDGER))
                .is_none()
        })
        .await;
    assert_eq!(condition(&cleared).1, "AwaitingApproval");
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", APPROVE, "")
        .await
        .unwrap();
    let gate = s.wait_gate_reason("release-approve", "Approved").await;
    assert_eq!(gate.status.as_ref().unwrap().retries_status.len(), 1);
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
}

#[tokio::test]
async fn every_sample_is_a_pipeline_tekton_accepts_and_starts() {
    let s = scenario("samples_valid").await;
    let kubectl =
        std::env::var("APPROVAL_E2E_KUBECTL").expect("APPROVAL_E2E_KUBECTL (set by e2e.sh)");
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples");
    let mut files: Vec<_> = std::fs::read_dir(samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let file = file.to_str().unwrap();
        let created = command_output(
            &kubectl,
            &["create", "-n", &s.namespace, "-f", file, "-o", "name"],
        )
        .await
        .unwrap();
        let run = created
            .lines()
            .find_map(|l| l.strip_prefix("pipelinerun.tekton.dev/"))
            .expect("a PipelineRun")
            .to_string();
        // Tekton validated the pipeline and started its first tasks. (Without a node, a
        // task with steps fails as soon as Tekton makes its pod: the run may already have
        // failed, but only after starting its tasks; a pipeline Tekton refuses starts none.)
        let started = s.wait_pipelinerun_running_or_done(&run).await;
        let (status, reason) = pipelinerun_condition(&started).unwrap();
        let children = started.data["status"]["childReferences"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(
            (status == "Unknown" && reason == "Running") || (reason == "Failed" && children > 0),
            "{file}: {status} {reason}: {:?}",
            started.data["status"]
        );
    }
}
