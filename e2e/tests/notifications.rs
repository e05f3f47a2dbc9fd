//! Notifications and chat approvals against the real control plane, with local stand-ins
//! for Slack's Web API (which also sends interaction payloads, signed as Slack signs them)
//! and for a webhook receiver. A gate posts one Slack message; a mapped approver's click
//! approves it and the message becomes "Approved by alice"; unmapped and ineligible people,
//! forged and replayed requests decide nothing; a restarted controller does not post again;
//! the generic webhook's notices are signed and the CloudEvents are valid.

use std::sync::OnceLock;
use std::time::Duration;

use approval_e2e::receiver::{Receiver, validate_cloudevent};
use approval_e2e::slack::{FakeSlack, Signing};
use approval_e2e::*;
use serde_json::{Value, json};
use tekton_approval::approval::LEDGER_ANNOTATION;

const BOT_TOKEN: &str = "xoxb-e2e-bot-token";
const SIGNING_SECRET: &str = "e2e-slack-signing-secret";
const HOOK_KEY: &str = "e2e-webhook-signing-key";
const CHANNEL: &str = "C0RELEASES";
const ALICE: &str = "U0ALICE";
const MALLORY: &str = "U0MALLORY";
const NOBODY: &str = "U0NOBODY";

struct Fakes {
    slack: FakeSlack,
    receiver: Receiver,
}

/// The stand-ins, served by a runtime of their own: each test has its own runtime, and the
/// stand-ins must outlive every one of them.
fn fakes() -> &'static Fakes {
    static FAKES: OnceLock<Fakes> = OnceLock::new();
    FAKES.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime for the stand-ins");
            runtime.block_on(async {
                let slack = FakeSlack::start(BOT_TOKEN, SIGNING_SECRET).await;
                let receiver = Receiver::start(HOOK_KEY).await;
                tx.send(Fakes { slack, receiver }).unwrap();
                std::future::pending::<()>().await
            });
        });
        rx.recv().expect("the stand-ins started")
    })
}

fn state_dir() -> std::path::PathBuf {
    std::env::var("APPROVAL_STATE")
        .expect("set by e2e.sh")
        .into()
}

/// Writes the sinks and the Slack endpoint's files (as their ConfigMaps and Secrets would
/// be mounted) and starts the endpoint, once for the scenarios of this binary.
async fn set_up(s: &Scenario) -> &'static Fakes {
    static STARTED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let fakes = fakes();
    STARTED
        .get_or_init(|| async {
            let state = state_dir();
            let notifications = state.join("notifications");
            std::fs::create_dir_all(notifications.join("config")).unwrap();
            std::fs::create_dir_all(notifications.join("secrets")).unwrap();
            let sinks = format!(
                "slackApiUrl: '{}'\nsinks:\n\
                 - name: release-slack\n  slack: {{channel: {CHANNEL}, tokenSecretKey: slack-bot-token}}\n\
                 - name: audit\n  webhook: {{url: '{}hook', signingSecretKey: audit-key}}\n\
                 - name: events\n  cloudEvents: {{url: '{}events'}}\n\
                 - name: down\n  webhook: {{url: 'http://127.0.0.1:{}/', signingSecretKey: audit-key}}\n",
                fakes.slack.api_url(),
                fakes.receiver.url(),
                fakes.receiver.url(),
                closed_port()
            );
            std::fs::write(notifications.join("config/sinks.yaml"), sinks).unwrap();
            std::fs::write(notifications.join("secrets/slack-bot-token"), BOT_TOKEN).unwrap();
            std::fs::write(notifications.join("secrets/audit-key"), HOOK_KEY).unwrap();
            let slack = state.join("slack");
            std::fs::create_dir_all(&slack).unwrap();
            std::fs::write(slack.join("signing-secret"), SIGNING_SECRET).unwrap();
            std::fs::write(slack.join("bot-token"), BOT_TOKEN).unwrap();
            std::fs::write(slack.join("api-url"), fakes.slack.api_url()).unwrap();
            std::fs::write(
                slack.join("users.yaml"),
                format!("{ALICE}: {{username: alice}}\n{MALLORY}: {{username: mallory}}\n"),
            )
            .unwrap();
            s.script(&["approval.sh", "start", "slack"]).await;
        })
        .await;
    fakes
}

/// A port nobody listens on: bound, then closed.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn interactions_url() -> String {
    let addr = std::fs::read_to_string(state_dir().join("slack-addr")).unwrap();
    format!("http://{}/slack/interactions", addr.trim())
}

/// A PipelineRun `name` whose gate (approvers: alice) notifies `sinks`; waits until it waits.
async fn gate_notifying(s: &Scenario, name: &str, sinks: &str) -> tekton_approval::api::CustomRun {
    s.start_pipeline(
        name,
        json!({"tasks": [
            gate_task("approve", &[], json!([
                {"name": "approvers", "value": ["alice"]},
                {"name": "message", "value": "Ship it?"},
                {"name": "notify", "value": sinks},
            ])),
            noop_task("deploy", &["approve"]),
        ]}),
        json!({}),
    )
    .await;
    s.wait_gate_reason(&format!("{name}-approve"), "AwaitingApproval")
        .await
}

/// The messages posted about PipelineRun `run` of this scenario.
fn posts(fakes: &Fakes, s: &Scenario, run: &str) -> Vec<approval_e2e::slack::Call> {
    let mark = format!("{}/{run}", s.namespace);
    fakes
        .slack
        .calls()
        .into_iter()
        .filter(|c| c.method == "chat.postMessage" && c.error.is_none())
        .filter(|c| c.body["text"].as_str().is_some_and(|t| t.contains(&mark)))
        .collect()
}

/// Waits for the one message about `run` and returns its `ts`.
async fn posted(fakes: &Fakes, s: &Scenario, run: &str) -> String {
    let mark = format!("{}/{run}", s.namespace);
    fakes
        .slack
        .wait_for_call(
            "chat.postMessage",
            |body| body["text"].as_str().is_some_and(|t| t.contains(&mark)),
            WAIT,
        )
        .await
        .expect("the gate posts its message");
    let calls = posts(fakes, s, run);
    assert_eq!(calls.len(), 1, "one message per gate: {calls:?}");
    calls[0].answer["ts"].as_str().unwrap().to_string()
}

async fn updated_to(fakes: &Fakes, ts: &str, headline: &str) -> Value {
    fakes
        .slack
        .wait_for_call(
            "chat.update",
            |body| {
                body["ts"] == ts
                    && body["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(headline))
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("the message becomes `{headline}`: {e}"))
}

async fn reply_containing(fakes: &Fakes, text: &str) -> Value {
    fakes
        .slack
        .wait_for_reply(
            |reply| reply["text"].as_str().is_some_and(|t| t.contains(text)),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("an answer saying `{text}`: {e}"))
}

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
    // The message's reference is in the gate's status (a process that stops between posting
    // and recording it posts again: at least once).
    let recorded = ts.clone();
    let gate = s
        .wait_customrun(
            "steady-approve",
            "the message recorded in the status",
            move |run| {
                run.status
                    .as_ref()
                    .and_then(|s| s.extra_fields.as_ref())
                    .is_some_and(|f| f["notified"]["release-slack"]["ts"] == recorded.as_str())
            },
        )
        .await;
    let notified = &gate.status.unwrap().extra_fields.unwrap()["notified"]["release-slack"];
    assert_eq!(notified["channel"], CHANNEL, "{notified}");
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
    updated_to(fakes, &ts, "Approved by alice").await;
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
    set_up(&s).await;
    gate_notifying(&s, "undelivered", "down, no-such-sink").await;
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
        let down = failures
            .iter()
            .any(|m| m.starts_with("notifying sink `down` (webhook) failed: unreachable"));
        if unknown && down {
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
}
