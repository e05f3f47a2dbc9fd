//! The notification scenarios' stand-ins and set-up: a Slack stand-in and a webhook
//! receiver served by a runtime of their own (each test has its own runtime, and they must
//! outlive every one), the sinks and the Slack endpoint's files as their ConfigMaps and
//! Secrets would be mounted, and waits on what Slack was sent.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::slack::{Call, FakeSlack};
use crate::{Scenario, WAIT, gate_task, noop_task};

pub const BOT_TOKEN: &str = "xoxb-e2e-bot-token";
pub const SIGNING_SECRET: &str = "e2e-slack-signing-secret";
pub const HOOK_KEY: &str = "e2e-webhook-signing-key";
pub const CHANNEL: &str = "C0RELEASES";
pub const ALICE: &str = "U0ALICE";
pub const MALLORY: &str = "U0MALLORY";
pub const NOBODY: &str = "U0NOBODY";

/// The stand-ins.
pub struct Fakes {
    /// Slack's Web API and interactivity.
    pub slack: FakeSlack,
    /// The webhook and CloudEvents sinks' receiver.
    pub receiver: Receiver,
}

/// The stand-ins, served by a runtime of their own: each test has its own runtime, and the
/// stand-ins must outlive every one of them.
pub fn fakes() -> &'static Fakes {
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

/// The cluster's state directory (`APPROVAL_STATE`).
pub fn state_dir() -> std::path::PathBuf {
    std::env::var("APPROVAL_STATE")
        .expect("set by e2e.sh")
        .into()
}

/// Writes the sinks and the Slack endpoint's files (as their ConfigMaps and Secrets would
/// be mounted) and starts the endpoint, once for the scenarios of this binary.
pub async fn set_up(s: &Scenario) -> &'static Fakes {
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
                 - name: down\n  webhook: {{url: 'http://127.0.0.1:{}/', signingSecretKey: audit-key}}\n\
                 - name: kept\n  namespaces: [another-team]\n  slack: {{channel: C0OTHERTEAM, tokenSecretKey: slack-bot-token}}\n",
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
            // Restarted: one started by an earlier binary knows an earlier stand-in.
            s.script(&["approval.sh", "restart", "slack"]).await;
        })
        .await;
    fakes
}

/// A port nobody listens on: bound, then closed.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Where the Slack endpoint takes interactions.
pub fn interactions_url() -> String {
    let addr = std::fs::read_to_string(state_dir().join("slack-addr")).unwrap();
    format!("http://{}/slack/interactions", addr.trim())
}

/// A PipelineRun `name` whose gate (approvers: alice) notifies `sinks`; waits until it waits.
pub async fn gate_notifying(
    s: &Scenario,
    name: &str,
    sinks: &str,
) -> tekton_approval::api::CustomRun {
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
pub fn posts(fakes: &Fakes, s: &Scenario, run: &str) -> Vec<Call> {
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
pub async fn posted(fakes: &Fakes, s: &Scenario, run: &str) -> String {
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

/// Waits until the message `ts` is updated to start with `headline`.
pub async fn updated_to(fakes: &Fakes, ts: &str, headline: &str) -> Value {
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

/// Waits for a reply (to a response URL) containing `text`.
pub async fn reply_containing(fakes: &Fakes, text: &str) -> Value {
    fakes
        .slack
        .wait_for_reply(
            |reply| reply["text"].as_str().is_some_and(|t| t.contains(text)),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("an answer saying `{text}`: {e}"))
}

/// Waits until gate `name` records the message `ts` in its status (a process that stops
/// between posting and recording posts again: at least once).
pub async fn message_recorded(s: &Scenario, name: &str, ts: &str) {
    let recorded = ts.to_string();
    let gate = s
        .wait_customrun(name, "the message recorded in the status", move |run| {
            run.status
                .as_ref()
                .and_then(|s| s.extra_fields.as_ref())
                .is_some_and(|f| f["notified"]["release-slack"]["ts"] == recorded.as_str())
        })
        .await;
    let notified = &gate.status.unwrap().extra_fields.unwrap()["notified"]["release-slack"];
    assert_eq!(notified["channel"], CHANNEL, "{notified}");
}
