//! The webhook bypassed: its configuration removed (as during an upgrade or before install),
//! a namespace editor forges a ledger and makes a gate by hand; then the configuration is
//! back. Nothing forged counts, the hand-made gate is left alone, and genuine decisions
//! still decide.
//!
//! This is the only scenario of its binary: it removes the webhook registration for the
//! whole cluster, which no other scenario may see (cargo runs test binaries one at a time).

use std::time::Duration;

use approval_e2e::*;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tekton_approval::api::CustomRun;
use tekton_approval::api::approval::{Approval, ApprovalSpec};

const APPROVE: &str = "approval.tekton.dev/approve";
const LEDGER: &str = "approval.tekton.dev/decisions";
/// A custom task nobody completes but this test.
const HOLD_API_VERSION: &str = "e2e.approval.dev/hold";

/// Retries `attempt` until it returns true (the API server's view of webhook
/// configurations follows a change within moments), for at most [`WAIT`].
async fn until(what: &str, mut attempt: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !attempt().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn with_the_webhook_bypassed_nothing_forged_counts_or_starts() {
    let s = scenario("bypass_forgeries").await;
    // The gate also tells the audit webhook: the forged approvals must not reach it either.
    let fakes = approval_e2e::notifying::set_up(&s).await;
    s.start_pipeline(
        "release",
        json!({"tasks": [gate_task("approve", &[], json!([
            {"name": "approvers", "value": ["alice", "bob"]},
            {"name": "minApprovals", "value": "2"},
            {"name": "notify", "value": "audit"},
        ]))]}),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;

    // A policy that forbids self-approval, and a run of it that waits at a task the test
    // completes itself, so that Tekton creates its gate only once the webhook is back.
    let erin = s.as_user("erin", &[]).await;
    Api::<Approval>::namespaced(erin, &s.namespace)
        .create(
            &PostParams::default(),
            &Approval::new(
                "production",
                ApprovalSpec {
                    approvers: vec!["group:release-managers".into()],
                    ..Default::default()
                },
            ),
        )
        .await
        .expect("erin owns policies");
    let held = json!({"tasks": [
        {"name": "hold", "taskRef": {"apiVersion": HOLD_API_VERSION, "kind": "Hold"}},
        {"name": "approve", "runAfter": ["hold"],
         "taskRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "name": "production"}},
    ]});

    let configurations: Api<MutatingWebhookConfiguration> = Api::all(s.admin.clone());
    configurations
        .delete("approval.tekton.dev", &DeleteParams::default())
        .await
        .expect("removing the webhook configuration");
    let mallory = s.as_user("mallory", &[]).await;
    let runs: Api<CustomRun> = Api::namespaced(mallory.clone(), &s.namespace);
    // Both approvals the gate needs, one without a seal, one with a made-up one.
    let forged = json!([
        {"user": "alice", "decision": "approve", "time": "2026-01-01T00:00:00Z"},
        {"user": "bob", "decision": "approve", "time": "2026-01-01T00:00:01Z",
         "seal": "ffff.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
    ]);
    let patch = json!({"metadata": {"annotations": {LEDGER: forged.to_string()}}});
    until(
        "the API server stops calling the removed webhook",
        async || {
            runs.patch(
                "release-approve",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .is_ok()
        },
    )
    .await;
    // A gate made by hand, approvers of her choosing, approved on a one-second timeout.
    let hand_made: CustomRun = serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun",
        "metadata": {"name": "hand-made", "namespace": s.namespace},
        "spec": {
            "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
            "params": [{"name": "approvers", "value": ["mallory"]},
                       {"name": "onTimeout", "value": "approve"}],
            "timeout": "1s"
        }
    }))
    .unwrap();
    runs.create(&PostParams::default(), &hand_made)
        .await
        .expect("nothing stops the create without the webhook");
    // dave starts a run that names bob as its requester (as a stamp merged in from a
    // Pipeline's annotations would, while the stamping webhook is down).
    let dave = s.as_user("dave", &["release-managers"]).await;
    s.start_pipeline_as(
        &dave,
        "unstamped",
        held,
        json!({}),
        json!({"approval.tekton.dev/requested-by": "bob"}),
    )
    .await
    .expect("nothing stops the create without the webhook");

    // The configuration is back (approval.sh installs it again).
    s.script(&["approval.sh", "start"]).await;
    let alice = s.as_user("alice", &[]).await;
    until("the webhook records decisions again", async || {
        let attempt = s.annotate(&mallory, "release-approve", APPROVE, "").await;
        matches!(attempt, Err(kube::Error::Api(e)) if e.message.contains("mallory may not decide"))
    })
    .await;

    let notes = s.wait_event("release-approve", "UnverifiedDecision").await;
    assert!(notes.contains("claiming"), "{notes}");
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(
        condition(&gate),
        (
            "Unknown".into(),
            "AwaitingApproval".into(),
            "Waiting for 2 more approvals (0 of 2) from alice, bob".into()
        ),
        "the forged approvals do not count"
    );
    let note = s.wait_event("hand-made", "NotAdmitted").await;
    assert!(
        note.starts_with("not started: the approval webhook did not admit this gate (it has no approval.tekton.dev/admitted seal)"),
        "{note}"
    );
    let hand_made = s.customruns().get("hand-made").await.unwrap();
    assert_eq!(
        hand_made.status, None,
        "left alone: no status, never approved"
    );

    // Genuine decisions still decide, and the forged records leave the ledger.
    s.annotate(&alice, "release-approve", APPROVE, "")
        .await
        .expect("alice approves");
    let gate = s.customruns().get("release-approve").await.unwrap();
    let ledger: Vec<Value> = serde_json::from_str(&gate.annotations()[LEDGER]).unwrap();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    let bob = s.as_user("bob", &[]).await;
    s.annotate(&bob, "release-approve", APPROVE, "")
        .await
        .expect("bob approves");
    let gate = s.wait_gate_reason("release-approve", "Approved").await;
    assert_eq!(result(&gate, "approvedBy"), r#"["alice","bob"]"#);
    // The audit webhook heard of the two genuine approvals, never of the forged ones.
    let uid = gate.metadata.uid.clone().unwrap();
    let ended = format!("{uid}.3");
    fakes
        .receiver
        .wait_for(
            |d| d.path == "/hook" && d.status == 200 && d.body.contains(&ended),
            WAIT,
        )
        .await
        .expect("the audit webhook hears the ending");
    let decisions: Vec<Value> = fakes
        .receiver
        .deliveries()
        .into_iter()
        .filter(|d| d.path == "/hook" && d.status == 200 && d.body.contains(&uid))
        .map(|d| serde_json::from_str::<Value>(&d.body).unwrap())
        .filter(|body| body["type"] == "decision")
        .map(|body| body["decision"].clone())
        .collect();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert!(
        decisions
            .iter()
            .all(|d| !d["time"].as_str().unwrap().starts_with("2026-01-01")),
        "no forged record announced: {decisions:?}"
    );

    // Tekton creates the gate of dave's run now: its stamp has no seal of ours, so the gate
    // knows no requester, and where self-approval is forbidden nobody's approval counts.
    let hold = s
        .wait_customrun("unstamped-hold", "Tekton to create the hold task", |_| true)
        .await;
    let mut done = hold.clone();
    done.status = Some(
        serde_json::from_value(json!({
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Done",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        }))
        .unwrap(),
    );
    s.customruns()
        .replace_status("unstamped-hold", &PostParams::default(), &done)
        .await
        .expect("completing the hold task");
    let gate = s
        .wait_gate_reason("unstamped-approve", "AwaitingApproval")
        .await;
    assert!(
        !gate
            .annotations()
            .contains_key("approval.tekton.dev/requested-by"),
        "the unverifiable stamp was removed: {:?}",
        gate.annotations()
    );
    let denied = s
        .annotate(&dave, "unstamped-approve", APPROVE, "lgtm")
        .await
        .unwrap_err();
    assert!(
        denied.to_string().contains(
            "does not know who started its run (no verifiable approval.tekton.dev/requested-by"
        ),
        "{denied}"
    );

    let port = std::env::var("CONTROLLER_PROBE_PORT").unwrap_or_else(|_| "18080".into());
    let metrics = command_output(
        "curl",
        &["-fsS", &format!("http://127.0.0.1:{port}/metrics")],
    )
    .await
    .unwrap();
    let counted = |kind: &str| -> f64 {
        let prefix = format!("approval_unverified_total{{kind=\"{kind}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    assert!(counted("record") >= 2.0);
    assert!(counted("gate") >= 1.0);
}
