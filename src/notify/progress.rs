//! What a sink has been told about a gate, as kept in the gate's status
//! (`status.extraFields.notified.<sink>`), and what it must be told next. Pure.
//!
//! Slack gets one message per gate: posted once (its `channel` and `ts` remembered), then
//! updated whenever what it would show changes (a digest of the last body sent tells).
//! Webhook and CloudEvents sinks get every notice in order; `sent` counts those delivered.

use ring::digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::Target;
use super::notice::{Notice, Subject, notices};
use super::slack;

/// A sink's progress on one gate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Notices delivered (webhook and CloudEvents sinks).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sent: usize,
    /// The Slack channel the message was posted in (as Slack answered: its ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The Slack message's timestamp, its ID within the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// A digest of the message body Slack last accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    /// Set once the sink was told everything of an ended gate: until then, an ended gate is
    /// looked at again when the controller starts (see [`crate::approval::plan::Attempt::untold`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
    /// Why the sink is not told (it is not configured), once reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Progress {
    /// Reads a sink's progress from the status; anything unreadable is no progress (the
    /// worst that follows is a repeated notice, never a lost one).
    pub fn from_status(value: Option<&Value>) -> Self {
        value
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}

impl Progress {
    /// The whole record for a merge patch: fields that are not set are `null`, so that a
    /// patch clears what the record no longer holds.
    pub fn as_patch(&self) -> Value {
        let mut value = serde_json::json!({
            "sent": null, "channel": null, "ts": null, "shown": null, "ended": null, "problem": null,
        });
        if let Value::Object(set) = serde_json::to_value(self).expect("a record serialises") {
            for (key, field) in set {
                value[key] = field;
            }
        }
        value
    }

    /// The further along of two records of the same sink (what this process remembers
    /// sending, and what a gate's copy says): a copy read before our own write landed must
    /// not make us post a second message. On a tie, `other` (the status).
    pub fn furthest(self, other: Progress) -> Progress {
        let rank = |p: &Progress| (p.ts.is_some(), p.sent);
        if rank(&self) > rank(&other) {
            self
        } else {
            other
        }
    }
}

/// What to do next for one sink.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Nothing: the sink knows everything.
    Nothing,
    /// Post the gate's Slack message (`chat.postMessage`).
    Post {
        /// The body.
        body: Value,
        /// Its digest, to remember.
        digest: String,
    },
    /// Update it (`chat.update`).
    Update {
        /// The body, with `channel` and `ts`.
        body: Value,
        /// Its digest.
        digest: String,
    },
    /// Deliver these notices, in order.
    Deliver(Vec<Notice>),
}

/// The next step for `target`, told `progress` so far about `subject`.
pub fn next(target: &Target, subject: &Subject<'_>, progress: &Progress) -> Step {
    let notices = notices(subject.gate);
    if notices.is_empty() {
        return Step::Nothing;
    }
    match target {
        Target::Slack { channel, .. } => {
            let mut body = slack::message(subject, progress.channel.as_deref().unwrap_or(channel));
            let digest = digest_of(&body);
            match (&progress.channel, &progress.ts) {
                (Some(_), Some(_)) if progress.shown.as_deref() == Some(digest.as_str()) => {
                    Step::Nothing
                }
                (Some(_), Some(ts)) => {
                    body["ts"] = ts.clone().into();
                    Step::Update { body, digest }
                }
                _ => Step::Post { body, digest },
            }
        }
        Target::Webhook { .. } | Target::CloudEvents { .. } => {
            let rest: Vec<Notice> = notices.into_iter().skip(progress.sent).collect();
            if rest.is_empty() {
                Step::Nothing
            } else {
                Step::Deliver(rest)
            }
        }
    }
}

/// A short digest of a body: enough to tell "changed" from "unchanged".
fn digest_of(body: &Value) -> String {
    let bytes = serde_json::to_vec(body).expect("JSON always serialises");
    let hash = digest::digest(&digest::SHA256, &bytes);
    hash.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::view::GateView;
    use crate::cli::view::tests as fixtures;
    use crate::notify::config::SecretText;

    fn slack() -> Target {
        Target::Slack {
            channel: "releases".into(),
            token: SecretText::new("xoxb"),
        }
    }

    fn webhook() -> Target {
        Target::Webhook {
            url: "https://example.com".into(),
            key: SecretText::new("k"),
        }
    }

    fn subject(gate: &GateView) -> Subject<'_> {
        Subject {
            gate,
            uid: "u",
            ui_url: None,
        }
    }

    #[test]
    fn a_slack_message_is_posted_once_then_updated_only_when_it_would_change() {
        let gate = GateView::new(
            &fixtures::run(fixtures::waiting_gate()),
            None,
            fixtures::now(),
        );
        let Step::Post { body, digest } = next(&slack(), &subject(&gate), &Progress::default())
        else {
            panic!("a first message is posted");
        };
        assert_eq!(body["channel"], "releases");
        assert!(body.get("ts").is_none());
        let posted = Progress {
            channel: Some("C0123".into()),
            ts: Some("1700000000.000100".into()),
            shown: Some(digest),
            ..Progress::default()
        };
        // Slack answered with the channel's ID: the update names that, not the configured name.
        let stale = Progress {
            shown: Some("old".into()),
            ..posted.clone()
        };
        let Step::Update { body, digest } = next(&slack(), &subject(&gate), &stale) else {
            panic!("a changed message is updated");
        };
        assert_eq!(
            (body["channel"].as_str(), body["ts"].as_str()),
            (Some("C0123"), Some("1700000000.000100"))
        );
        assert_eq!(
            next(
                &slack(),
                &subject(&gate),
                &Progress {
                    shown: Some(digest),
                    ..posted
                }
            ),
            Step::Nothing
        );
    }

    #[test]
    fn webhook_sinks_get_the_notices_they_have_not_had() {
        let gate = GateView::new(
            &fixtures::run(fixtures::rejected_gate()),
            None,
            fixtures::now(),
        );
        let all = notices(&gate);
        let Step::Deliver(first) = next(&webhook(), &subject(&gate), &Progress::default()) else {
            panic!("notices to deliver");
        };
        assert_eq!(first, all);
        let Step::Deliver(rest) = next(
            &webhook(),
            &subject(&gate),
            &Progress {
                sent: 2,
                ..Progress::default()
            },
        ) else {
            panic!("the rest to deliver");
        };
        assert_eq!(rest.first().unwrap().sequence, 2);
        assert_eq!(
            next(
                &webhook(),
                &subject(&gate),
                &Progress {
                    sent: all.len(),
                    ..Progress::default()
                }
            ),
            Step::Nothing
        );
    }

    #[test]
    fn a_gate_not_started_tells_nobody_yet() {
        let gate = GateView::new(
            &fixtures::run(fixtures::pending_gate()),
            None,
            fixtures::now(),
        );
        assert_eq!(
            next(&slack(), &subject(&gate), &Progress::default()),
            Step::Nothing
        );
        assert_eq!(
            next(&webhook(), &subject(&gate), &Progress::default()),
            Step::Nothing
        );
    }

    #[test]
    fn a_stale_copy_never_wins_over_what_was_sent() {
        let posted = Progress {
            channel: Some("C1".into()),
            ts: Some("1.2".into()),
            ..Progress::default()
        };
        assert_eq!(posted.clone().furthest(Progress::default()), posted);
        assert_eq!(Progress::default().furthest(posted.clone()), posted);
        let three = Progress {
            sent: 3,
            ..Progress::default()
        };
        let one = Progress {
            sent: 1,
            ..Progress::default()
        };
        assert_eq!(three.clone().furthest(one.clone()), three);
        assert_eq!(one.furthest(three.clone()), three);
        let shown = Progress {
            shown: Some("new".into()),
            ..posted.clone()
        };
        assert_eq!(
            posted.furthest(shown.clone()),
            shown,
            "a tie goes to the status"
        );
    }

    #[test]
    fn a_patch_clears_what_the_record_no_longer_holds() {
        let progress = Progress {
            sent: 2,
            ended: true,
            ..Progress::default()
        };
        let patch = progress.as_patch();
        assert_eq!(patch["sent"], 2);
        assert_eq!(patch["ended"], true);
        assert_eq!(patch["problem"], Value::Null);
        assert_eq!(patch["ts"], Value::Null);
        let fields = serde_json::to_value(Progress {
            sent: 1,
            channel: Some("C".into()),
            ts: Some("1".into()),
            shown: Some("d".into()),
            ended: true,
            problem: Some("p".into()),
        })
        .unwrap();
        assert_eq!(
            fields.as_object().unwrap().keys().collect::<Vec<_>>(),
            patch.as_object().unwrap().keys().collect::<Vec<_>>(),
            "the patch names every field"
        );
    }

    #[test]
    fn unreadable_progress_is_no_progress() {
        assert_eq!(
            Progress::from_status(Some(&serde_json::json!("garbage"))),
            Progress::default()
        );
        assert_eq!(Progress::from_status(None), Progress::default());
        let kept = Progress {
            sent: 3,
            ..Progress::default()
        };
        assert_eq!(
            Progress::from_status(Some(&serde_json::to_value(&kept).unwrap())),
            kept
        );
    }
}
