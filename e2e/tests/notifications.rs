//! Notifications and chat approvals against the real control plane, with local stand-ins
//! for Slack's Web API (which also sends interaction payloads, signed as Slack signs them)
//! and for a webhook receiver. A gate posts one Slack message; a mapped approver's click
//! approves it and the message becomes "Approved by alice"; unmapped and ineligible people,
//! forged and replayed requests decide nothing; a restarted controller does not post again;
//! the generic webhook's notices are signed and the CloudEvents are valid.

use std::time::Duration;

use approval_e2e::notifying::*;
use approval_e2e::receiver::validate_cloudevent;
use approval_e2e::slack::Signing;
use approval_e2e::*;
use serde_json::Value;
use tekton_approval::approval::LEDGER_ANNOTATION;

#[tokio::test]
async fn a_gate_posts_one_message_and_a_mapped_approvers_click_approves_it() {
    let s = scenario("slack_approve").await;
    let fakes = set_up(&s).await;
    gate_notifying(&s, "ship", "release-slack").await;
    let ts = posted(fakes, &s, "ship").await;
    let message = fakes
        .slack
        .message(CHANNEL, &ts)
        .expect("the message is in the channel");
    assert!(message.to_string().contains("Ship it?"), "{message}");

    let (status, _) = fakes
        .slack
        .click(
            &interactions_url(),
            ALICE,
            CHANNEL,
            &ts,
            "approve",
            Signing::Valid,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let gate = s.wait_gate_reason("ship-approve", "Approved").await;
    assert_eq!(
        result(&gate, "approvedBy"),
        r#"["alice"]"#,
        "the ledger records alice"
    );
    let pipeline = s.wait_pipelinerun_done("ship").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
    let update = updated_to(fakes, &ts, "Approved by alice").await;
    assert!(
        !update.to_string().contains("\"actions\""),
        "no buttons once decided: {update}"
    );
    reply_containing(fakes, &format!("You approved {}/ship-approve", s.namespace)).await;
    assert_eq!(
        posts(fakes, &s, "ship").len(),
        1,
        "updated in place, never posted again"
    );
}

#[tokio::test]
async fn unmapped_or_ineligible_people_and_forged_or_replayed_requests_decide_nothing() {
    let s = scenario("slack_refused").await;
    let fakes = set_up(&s).await;
    gate_notifying(&s, "guarded", "release-slack").await;
    let ts = posted(fakes, &s, "guarded").await;
    let url = interactions_url();

    // Slack's signature is what makes a request Slack's: anything else is 401.
    for signing in [
        Signing::WrongSecret,
        Signing::Missing,
        Signing::Stale(Duration::from_secs(600)),
    ] {
        let (status, _) = fakes
            .slack
            .click(&url, ALICE, CHANNEL, &ts, "approve", signing)
            .await
            .unwrap();
        assert_eq!(status, 401, "{signing:?}");
    }
    // Someone Slack knows but the mapping does not.
    fakes
        .slack
        .click(&url, NOBODY, CHANNEL, &ts, "approve", Signing::Valid)
        .await
        .unwrap();
    reply_containing(
        fakes,
        &format!("Your Slack account ({NOBODY}) is not mapped"),
    )
    .await;
    // mallory is mapped, but not an approver: the webhook says no, as it does to kubectl.
    fakes
        .slack
        .click(&url, MALLORY, CHANNEL, &ts, "approve", Signing::Valid)
        .await
        .unwrap();
    let denied = reply_containing(fakes, "Not recorded: ").await;
    assert!(
        denied["text"].as_str().unwrap().contains("mallory"),
        "{denied}"
    );
    // A delivery Slack repeats (the same signed request) is acted on once at most.
    let sent = fakes.slack.last_interaction().unwrap();
    assert_eq!(fakes.slack.replay(&url, &sent).await.unwrap().0, 200);

    let gate = s.customruns().get("guarded-approve").await.unwrap();
    assert_eq!(succeeded_reason(&gate), Some("AwaitingApproval"));
    let ledger = gate
        .metadata
        .annotations
        .unwrap_or_default()
        .get(LEDGER_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    assert!(!ledger.contains("\"user\""), "nothing recorded: {ledger}");

    // alice decides with a comment, in the modal.
    fakes
        .slack
        .click(&url, ALICE, CHANNEL, &ts, "comment", Signing::Valid)
        .await
        .unwrap();
    let view = fakes.slack.views().pop().expect("the modal opened");
    let view_id = view["id"].as_str().unwrap().to_string();
    let (status, body) = fakes
        .slack
        .submit_view(
            &url,
            ALICE,
            &view_id,
            &[
                ("decision", "decision", "reject"),
                ("comment", "comment", "not before the freeze ends"),
            ],
            Signing::Valid,
        )
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, ""), "the modal closes");
    let gate = s.wait_gate_reason("guarded-approve", "Rejected").await;
    assert!(result(&gate, "comments").contains("not before the freeze ends"));
    // A delivery Slack repeats (the same signed request) is acted on once: deciding again
    // would answer that the gate already ended; the repeat gets the empty acknowledgement.
    let sent = fakes.slack.last_interaction().unwrap();
    assert_eq!(
        fakes.slack.replay(&url, &sent).await.unwrap(),
        (200, String::new())
    );
    let ledger = s
        .customruns()
        .get("guarded-approve")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()[LEDGER_ANNOTATION]
        .clone();
    assert_eq!(
        ledger.matches("\"user\"").count(),
        1,
        "one record: {ledger}"
    );
    updated_to(fakes, &ts, "Rejected by alice").await;
}

#[tokio::test]
async fn a_restarted_controller_updates_the_message_it_posted_instead_of_posting_again() {
    let s = scenario("slack_restart").await;
    let fakes = set_up(&s).await;
    gate_notifying(&s, "steady", "release-slack").await;
    let ts = posted(fakes, &s, "steady").await;
    message_recorded(&s, "steady-approve", &ts).await;
    // mallory, who may patch CustomRuns, relabels the gate to make approvers believe it is
    // another run (labels never reach the webhook): what the message shows was frozen.
    let mallory = s.as_user("mallory", &[]).await;
    kube::Api::<tekton_approval::api::CustomRun>::namespaced(mallory, &s.namespace)
        .patch(
            "steady-approve",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {
                "tekton.dev/pipelineRun": "prod-release", "tekton.dev/pipeline": "prod"}}})),
        )
        .await
        .expect("an editor may relabel a CustomRun");
    s.script(&["approval.sh", "restart", "controller"]).await;
    let alice = s.as_user("alice", &[]).await;
    s.annotate(
        &alice,
        "steady-approve",
        "approval.tekton.dev/approve",
        "after the restart",
    )
    .await
    .expect("alice approves");
    s.wait_gate_reason("steady-approve", "Approved").await;
    let update = updated_to(fakes, &ts, "Approved by alice").await;
    let shown = update.to_string();
    assert!(
        shown.contains(&format!("{}/steady", s.namespace)) && !shown.contains("prod-release"),
        "the run the gate started with: {shown}"
    );
    assert_eq!(
        posts(fakes, &s, "steady").len(),
        1,
        "the restart did not post again"
    );
}

#[tokio::test]
async fn webhook_notices_are_signed_and_cloudevents_are_valid() {
    let s = scenario("notify_sinks").await;
    let fakes = set_up(&s).await;
    // The receiver is down for the first delivery: it is tried again.
    fakes.receiver.fail_next(1);
    let gate = gate_notifying(&s, "audited", "audit, events").await;
    let uid = gate.metadata.uid.clone().unwrap();
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "audited-approve", "approval.tekton.dev/approve", "")
        .await
        .expect("alice approves");
    s.wait_gate_reason("audited-approve", "Approved").await;

    let ended = format!("{uid}.2");
    let hook = fakes
        .receiver
        .wait_for(
            |d| d.path == "/hook" && d.status == 200 && d.body.contains(&ended),
            WAIT,
        )
        .await
        .expect("the webhook gets the ending");
    let hooks: Vec<Value> = fakes
        .receiver
        .deliveries()
        .into_iter()
        .filter(|d| d.path == "/hook" && d.status == 200 && d.body.contains(&uid))
        .map(|d| {
            assert!(d.signature_valid, "signed with the sink's key: {d:?}");
            serde_json::from_str(&d.body).unwrap()
        })
        .collect();
    let kinds: Vec<&str> = hooks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["waiting", "decision", "ended"]);
    assert_eq!(hooks[1]["decision"]["user"], "alice");
    assert_eq!(hooks[2]["gate"]["status"], "Approved");
    assert!(hook.signature_valid);

    fakes
        .receiver
        .wait_for(
            |d| d.path == "/events" && d.status == 200 && d.body.contains(&ended),
            WAIT,
        )
        .await
        .expect("the CloudEvents sink gets the ending");
    let types: Vec<String> = fakes
        .receiver
        .deliveries()
        .into_iter()
        .filter(|d| d.path == "/events" && d.status == 200 && d.body.contains(&uid))
        .map(|d| {
            let event = validate_cloudevent(&d.headers, &d.body)
                .unwrap_or_else(|e| panic!("a valid CloudEvent: {e}: {}", d.body));
            event["type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        types,
        [
            "dev.tekton.approval.gate.waiting.v1",
            "dev.tekton.approval.gate.decision.v1",
            "dev.tekton.approval.gate.ended.v1"
        ]
    );
}

#[tokio::test]
async fn a_sink_that_is_down_or_not_configured_delays_no_decision_and_is_reported() {
    let s = scenario("notify_down").await;
    let fakes = set_up(&s).await;
    // `kept` is kept for another namespace: this one reaches nothing through it, and is
    // not even told it exists.
    gate_notifying(&s, "undelivered", "down, no-such-sink, kept").await;
    let alice = s.as_user("alice", &[]).await;
    s.annotate(
        &alice,
        "undelivered-approve",
        "approval.tekton.dev/approve",
        "",
    )
    .await
    .expect("alice approves");
    // Decided while the notifier still retries the sink that is down.
    s.wait_gate_reason("undelivered-approve", "Approved").await;
    let deadline = std::time::Instant::now() + WAIT;
    let reported = loop {
        let failures: Vec<String> = s
            .event_reasons("undelivered-approve")
            .await
            .into_iter()
            .filter(|(reason, _)| reason == "NotificationFailed")
            .map(|(_, message)| message)
            .collect();
        let unknown = failures.iter().any(|m| {
            m.contains(&format!(
                "names sink `no-such-sink`, which is not configured for namespace {} (the sinks \
                 it may use are audit, down, events, release-slack)",
                s.namespace
            ))
        });
        let kept = failures
            .iter()
            .any(|m| m.contains("names sink `kept`, which is not configured"));
        let down = failures
            .iter()
            .any(|m| m.starts_with("notifying sink `down` (webhook) failed: unreachable"));
        if unknown && kept && down {
            break failures;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "NotificationFailed events: {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        reported
            .iter()
            .all(|m| !m.contains(HOOK_KEY) && !m.contains(BOT_TOKEN)),
        "no secret in events: {reported:?}"
    );
    assert!(
        reported
            .iter()
            .all(|m| !m.contains("kept,") && !m.contains("kept)")),
        "the sink kept for another team is not listed: {reported:?}"
    );
    assert!(
        fakes
            .slack
            .calls()
            .iter()
            .all(|c| c.body["channel"] != "C0OTHERTEAM"),
        "nothing reached the other team's channel"
    );
}

#[tokio::test]
async fn a_click_on_the_message_of_a_deleted_run_never_decides_the_run_that_took_its_name() {
    let s = scenario("slack_reused_name").await;
    let fakes = set_up(&s).await;
    gate_notifying(&s, "reused", "release-slack").await;
    let ts = posted(fakes, &s, "reused").await;
    // The run is deleted and another one starts under the same name.
    let delete = kube::api::DeleteParams::default();
    s.pipelineruns().delete("reused", &delete).await.unwrap();
    let _ = s.customruns().delete("reused-approve", &delete).await;
    let deadline = std::time::Instant::now() + WAIT;
    while s
        .customruns()
        .get_opt("reused-approve")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the old gate is never gone"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let newer = gate_notifying(&s, "reused", "release-slack").await;

    fakes
        .slack
        .click(
            &interactions_url(),
            ALICE,
            CHANNEL,
            &ts,
            "approve",
            Signing::Valid,
        )
        .await
        .unwrap();
    reply_containing(
        fakes,
        &format!("{}/reused-approve no longer exists", s.namespace),
    )
    .await;
    let gate = s.customruns().get("reused-approve").await.unwrap();
    assert_eq!(gate.metadata.uid, newer.metadata.uid);
    assert_eq!(succeeded_reason(&gate), Some("AwaitingApproval"));
    let ledger = gate
        .metadata
        .annotations
        .unwrap_or_default()
        .get(LEDGER_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    assert!(
        !ledger.contains("\"user\""),
        "nothing recorded on the newer run: {ledger}"
    );
}
