//! The delivery loop. The reconciler hands it each gate it has planned ([`Notifier::observe`],
//! which never waits); one task per gate sends what its sinks have not been told, then
//! records that in the gate's status with a merge patch of
//! `status.extraFields.notified`. The plan carries that record along, so a restart, a
//! failover or a retry of the gate neither repeats nor loses a notice; only a process that
//! dies between a send and its record sends that one again (at least once).
//!
//! A sink that is down delays nobody: decisions never wait for this loop, each send has a
//! timeout, and retries are bounded ([`super::http::Retry`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use ring::hmac;
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::config::{Files, Sinks, Target};
use super::http::{Http, Retry, SendError};
use super::notice::{Notice, Subject};
use super::progress::{Progress, Step, next};
use super::slack::SlackApi;
use crate::api::CustomRun;
use crate::approval::plan::with_sealed_ledger;
use crate::approval::plan::{Attempt, GateEvent, Severity};
use crate::cli::view::GateView;
use crate::controller::leader::Leader;
use crate::events::EventPublisher;
use crate::keys::KeySource;
use crate::metrics::Metrics;

/// The event reason of a notification that could not be delivered.
pub const NOTIFICATION_FAILED: &str = "NotificationFailed";

/// Gates whose notifications are sent at the same time (most of a task's time is spent
/// waiting on a receiver, or between retries of one that is down).
const CONCURRENCY: usize = 64;

/// What the loop needs.
pub struct Settings {
    /// Where the configuration is mounted.
    pub files: Files,
    /// How sends are retried.
    pub retry: Retry,
    /// The seal keys: notifications show only the decisions the webhook sealed.
    pub keys: Arc<KeySource>,
    /// Only the leader sends: a replica that lost the Lease stops before its next send.
    pub leader: Leader,
}

/// Sends gates' notifications in the background.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    events: EventPublisher,
    metrics: Arc<Metrics>,
    http: Http,
    settings: Settings,
    clock: fn() -> DateTime<Utc>,
    /// Gates with a task running: the newest copy it should look at next, if any.
    running: Mutex<HashMap<GateKey, Option<Arc<CustomRun>>>>,
    /// What this process sent, by gate (and its UID): newer than a copy of the gate read
    /// before our own status write landed. Forgotten a while after the gate ended.
    sent: Mutex<HashMap<GateKey, Remembered>>,
    permits: Semaphore,
}

impl Notifier {
    /// A notifier writing with `client` (the controller's: it alone may write gate status).
    pub fn new(
        client: Client,
        events: EventPublisher,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> std::io::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                events,
                metrics,
                http: Http::new()?,
                settings,
                clock: Utc::now,
                running: Mutex::default(),
                sent: Mutex::default(),
                permits: Semaphore::new(CONCURRENCY),
            }),
        })
    }

    /// Takes note of a gate as just planned; returns at once. Gates without sinks cost a
    /// look at their frozen policy.
    pub fn observe(&self, run: &CustomRun) {
        if run.status.as_ref().and_then(Attempt::notifying).is_none() {
            return;
        }
        let key = (run.namespace().unwrap_or_default(), run.name_any());
        let run = Arc::new(run.clone());
        {
            let mut running = self.inner.running.lock().expect("not poisoned");
            if let Some(newest) = running.get_mut(&key) {
                *newest = Some(run);
                return;
            }
            running.insert(key.clone(), None);
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut run = run;
            loop {
                {
                    let _permit = inner.permits.acquire().await.expect("never closed");
                    inner.deliver(&run).await;
                }
                let mut running = inner.running.lock().expect("not poisoned");
                match running.get_mut(&key).and_then(Option::take) {
                    Some(newer) => run = newer,
                    None => {
                        running.remove(&key);
                        return;
                    }
                }
            }
        });
    }
}

/// A gate's namespace and name.
type GateKey = (String, String);

/// What was sent for one gate.
struct Remembered {
    uid: String,
    progress: BTreeMap<String, Progress>,
    /// When the gate was seen ended with everything sent.
    finished: Option<DateTime<Utc>>,
    /// When the gate was last looked at.
    seen: DateTime<Utc>,
}

/// How long an ended gate's record is kept: longer than any watch lag.
const FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// How long a gate not looked at is kept (one deleted before it ended).
const FORGET_UNSEEN: chrono::TimeDelta = chrono::TimeDelta::hours(24);

impl Inner {
    async fn deliver(&self, run: &CustomRun) {
        let namespace = run.namespace().unwrap_or_default();
        let name = run.name_any();
        let sinks = match self.settings.files.load() {
            Ok(sinks) => sinks,
            Err(error) => {
                // The message names files and keys, never a value.
                warn!(%namespace, %name, %error, "notification configuration unusable: nothing sent");
                self.metrics.notification("config", false);
                return;
            }
        };
        let now = (self.clock)();
        // What approvers read is what counts: records the webhook did not seal are left out.
        let shown = with_sealed_ledger(run, &self.settings.keys.keyring());
        let gate = GateView::new(&shown, None, now);
        let uid = run.uid().unwrap_or_default();
        let subject = Subject {
            gate: &gate,
            uid: &uid,
            ui_url: sinks.ui_url.as_deref(),
        };
        let Some(attempt) = run.status.as_ref().and_then(Attempt::notifying) else {
            return;
        };
        let recorded = attempt.notified;
        let key = (namespace.clone(), name.clone());
        let remembered: BTreeMap<String, Progress> = {
            let sent = self.sent.lock().expect("not poisoned");
            sent.get(&key)
                .filter(|r| r.uid == uid)
                .map(|r| r.progress.clone())
                .unwrap_or_default()
        };
        // Sinks are told side by side, and each one's progress is recorded as soon as it is
        // done: one that is down (retrying) holds up no other, nor the record of a post.
        let tellings = attempt.policy.notify.into_iter().map(|sink| {
            let in_status = Progress::from_status(recorded.get(&sink));
            let before = match remembered.get(&sink) {
                Some(sent) => sent.clone().furthest(in_status.clone()),
                None => in_status.clone(),
            };
            let (sinks, subject) = (&sinks, &subject);
            let (namespace, name) = (namespace.as_str(), name.as_str());
            async move {
                let after = self.tell(run, sinks, &sink, subject, before).await;
                if after != in_status {
                    self.record(namespace, name, &sink, &after).await;
                }
                (sink, after)
            }
        });
        let all: BTreeMap<String, Progress> = futures::future::join_all(tellings)
            .await
            .into_iter()
            .collect();
        self.remember(key, uid.clone(), all, gate.ended.then_some(now), now);
    }

    /// Records one sink's progress in the gate's status (the whole record: fields that are
    /// gone are cleared).
    async fn record(&self, namespace: &str, name: &str, sink: &str, progress: &Progress) {
        if !self.settings.leader.is_leader() {
            return;
        }
        let patch = json!({"status": {"extraFields": {"notified": {sink: progress.as_patch()}}}});
        let api: Api<CustomRun> = Api::namespaced(self.client.clone(), namespace);
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => debug!(%namespace, %name, %sink, "notification progress recorded"),
            // Sent but not recorded: the next look sends it again (at least once).
            Err(error) => {
                warn!(%namespace, %name, %sink, %error, "recording notification progress failed")
            }
        }
    }

    /// Keeps what was sent for a gate, and forgets gates that ended long enough ago.
    fn remember(
        &self,
        key: GateKey,
        uid: String,
        progress: BTreeMap<String, Progress>,
        finished: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let mut sent = self.sent.lock().expect("not poisoned");
        // Ended gates a while after, and gates not seen for a day (deleted before they
        // ended) are forgotten.
        sent.retain(|_, r| {
            r.finished.is_none_or(|at| now - at < FORGET_AFTER) && now - r.seen < FORGET_UNSEEN
        });
        sent.insert(
            key,
            Remembered {
                uid,
                progress,
                finished,
                seen: now,
            },
        );
    }

    /// Tells one sink what it has not been told; returns its progress after.
    async fn tell(
        &self,
        run: &CustomRun,
        sinks: &Sinks,
        sink: &str,
        subject: &Subject<'_>,
        mut progress: Progress,
    ) -> Progress {
        let namespace = subject.gate.namespace.as_str();
        let Some(target) = sinks.get(sink, namespace) else {
            let problem = format!(
                "the gate's `notify` names sink `{sink}`, which is not configured for namespace \
                 {namespace} ({})",
                sinks.names_for(namespace)
            );
            if progress.problem.as_deref() != Some(problem.as_str()) {
                self.report(run, problem.clone()).await;
                progress.problem = Some(problem);
            }
            // Nothing more can be done for it once the gate ended.
            progress.ended = subject.gate.ended;
            return progress;
        };
        // A replica that lost the Lease sends nothing more: the new leader takes over from
        // what the status records.
        if !self.settings.leader.is_leader() {
            return progress;
        }
        progress.problem = None;
        let step = next(target, subject, &progress);
        let sent_something = step != Step::Nothing;
        let result = match (target, step) {
            (_, Step::Nothing) => Ok(()),
            (Target::Slack { token, .. }, step @ (Step::Post { .. } | Step::Update { .. })) => {
                let api = SlackApi {
                    http: &self.http,
                    base: &sinks.slack_api,
                    token,
                    retry: self.settings.retry,
                };
                self.show_in_slack(&api, target, subject, &mut progress, step)
                    .await
            }
            // `next` posts only to Slack, and delivers notices only to the others.
            (_, Step::Post { .. } | Step::Update { .. }) => Ok(()),
            (_, Step::Deliver(notices)) => {
                let mut result = Ok(());
                for notice in notices {
                    match self.send_notice(target, subject, &notice).await {
                        Ok(()) => progress.sent = notice.sequence + 1,
                        Err(error) => {
                            result = Err(error);
                            break;
                        }
                    }
                }
                result
            }
        };
        if sent_something {
            self.metrics.notification(target.kind(), result.is_ok());
        }
        progress.ended = subject.gate.ended && result.is_ok();
        if let Err(error) = result {
            self.report(
                run,
                format!(
                    "notifying sink `{sink}` ({}) failed: {error}",
                    target.kind()
                ),
            )
            .await;
        }
        progress
    }

    /// Posts or updates the gate's Slack message. A message someone deleted is posted anew.
    async fn show_in_slack(
        &self,
        api: &SlackApi<'_>,
        target: &Target,
        subject: &Subject<'_>,
        progress: &mut Progress,
        mut step: Step,
    ) -> Result<(), SendError> {
        loop {
            let (method, body, digest) = match step {
                Step::Post { body, digest } => ("chat.postMessage", body, digest),
                Step::Update { body, digest } => ("chat.update", body, digest),
                _ => return Ok(()),
            };
            match api.call(method, &body).await {
                Ok(answer) => {
                    let field = |name: &str| answer[name].as_str().map(str::to_string);
                    progress.channel = field("channel").or(progress.channel.take());
                    progress.ts = field("ts").or(progress.ts.take());
                    progress.shown = Some(digest);
                    return Ok(());
                }
                Err(error)
                    if method == "chat.update"
                        && error.detail.as_deref() == Some("message_not_found") =>
                {
                    progress.channel = None;
                    progress.ts = None;
                    progress.shown = None;
                    step = next(target, subject, progress);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One notice to a webhook or CloudEvents sink.
    async fn send_notice(
        &self,
        target: &Target,
        subject: &Subject<'_>,
        notice: &Notice,
    ) -> Result<(), SendError> {
        let id = subject.delivery_id(notice);
        let (url, content_type, body, key) = match target {
            Target::Webhook { url, key } => (
                url,
                "application/json",
                subject.webhook_body(notice),
                Some(key),
            ),
            Target::CloudEvents { url } => (
                url,
                "application/cloudevents+json; charset=utf-8",
                subject.cloudevent(notice),
                None,
            ),
            Target::Slack { .. } => return Ok(()),
        };
        let body = serde_json::to_vec(&body).expect("JSON always serialises");
        self.settings
            .retry
            .run(|| async {
                // Signed afresh for every try: the timestamp says when it was sent.
                let mut headers = vec![
                    ("x-approval-delivery", id.clone()),
                    ("x-approval-event", notice.kind.name().to_string()),
                ];
                if let Some(key) = key {
                    let timestamp = (self.clock)().timestamp().to_string();
                    headers.push((
                        "x-approval-signature",
                        signature(key.expose(), &timestamp, &body),
                    ));
                    headers.push(("x-approval-timestamp", timestamp));
                }
                self.http
                    .post(url, &headers, content_type, body.clone())
                    .await
                    .map(|_| ())
            })
            .await
    }

    async fn report(&self, run: &CustomRun, message: String) {
        warn!(namespace = %run.namespace().unwrap_or_default(), name = %run.name_any(), %message);
        let event = GateEvent {
            severity: Severity::Warning,
            reason: NOTIFICATION_FAILED,
            message,
        };
        if let Err(error) = self.events.publish(run, &event, (self.clock)()).await {
            warn!(%error, "publishing event failed");
        }
    }
}

/// The generic webhook's signature: `v1=` and the lowercase hex HMAC-SHA256, keyed with the
/// sink's secret, of `v1:<timestamp>:<body>` (Slack's scheme, with our version tag).
pub fn signature(key: &str, timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(b"v1:");
    context.update(timestamp.as_bytes());
    context.update(b":");
    context.update(body);
    let tag = context.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_signature_is_hmac_sha256_of_version_timestamp_and_body() {
        // Computed independently: printf 'v1:1700000000:{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", "1700000000", br#"{"a":1}"#),
            "v1=d9557872749208eb6fd1b4949933064d21edc4f53ab77a187f5569f605c14ec1"
        );
    }
}
