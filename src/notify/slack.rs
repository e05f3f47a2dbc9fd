//! Slack: the message a gate posts (Block Kit), updated in place as it progresses, and the
//! one Web API client that both notifications and interactivity ([`crate::chat`]) use.
//!
//! Everything a user wrote (the gate's message, comments, names) is escaped as Slack asks
//! (`&`, `<`, `>`), so a pipeline author cannot turn a message into `@channel` or a
//! disguised link.

use serde_json::{Value, json};

use super::config::SecretText;
use super::http::{Http, Retry, SendError, json as parse_json};
use super::notice::Subject;
use crate::approval::ledger::Decision;
use crate::approval::plan::reason;

/// The button that approves.
pub const APPROVE: &str = "approve";
/// The button that rejects.
pub const REJECT: &str = "reject";
/// The button that opens the modal for a decision with a comment.
pub const COMMENT: &str = "comment";
/// The actions block's id.
pub const ACTIONS_BLOCK: &str = "approval-actions";

/// Which gate a button acts on: its value is `<namespace>/<name>/<uid>`, so a click on an
/// old message never acts on a newer run that reuses the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateRef {
    /// The namespace.
    pub namespace: String,
    /// The CustomRun.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

impl GateRef {
    /// The button value.
    pub fn value(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.name, self.uid)
    }

    /// Reads a button value.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.splitn(3, '/');
        let (namespace, name, uid) = (parts.next()?, parts.next()?, parts.next()?);
        if [namespace, name, uid]
            .iter()
            .any(|p| p.is_empty() || p.contains('/'))
        {
            return None;
        }
        Some(Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        })
    }
}

/// Escapes text for Slack's `mrkdwn` and `plain_text`.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack's limits: a header's text, a section's text, a field.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;

fn clip(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut clipped: String = text.chars().take(max - 1).collect();
    clipped.push('…');
    clipped
}

/// The headline: what the gate asks, or how it ended.
pub fn headline(subject: &Subject<'_>) -> String {
    let gate = subject.gate;
    let by = |decision: Decision| {
        let mut users: Vec<&str> = Vec::new();
        for record in gate.decisions.iter().filter(|r| r.decision == decision) {
            if !users.contains(&record.user.as_str()) {
                users.push(&record.user);
            }
        }
        users.join(", ")
    };
    match gate.status.as_str() {
        reason::APPROVED => format!("Approved by {}", by(Decision::Approve)),
        reason::REJECTED => format!("Rejected by {}", by(Decision::Reject)),
        reason::APPROVED_ON_TIMEOUT => "Approved: the deadline passed".into(),
        reason::REJECTED_ON_TIMEOUT => "Rejected: the deadline passed".into(),
        reason::TIMED_OUT => "Timed out".into(),
        reason::CANCELLED => "Cancelled".into(),
        reason::SUPERSEDED => "Superseded by a newer run".into(),
        reason::INVALID => "Invalid approval gate".into(),
        _ => "Approval needed".into(),
    }
}

/// The `chat.postMessage` / `chat.update` body for the gate's message in `channel`.
pub fn message(subject: &Subject<'_>, channel: &str) -> Value {
    let gate = subject.gate;
    let run = gate.pipeline_run.as_deref().unwrap_or(&gate.name);
    let headline = headline(subject);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(format!("{headline}: {run}"), HEADER_MAX)},
    })];
    if !gate.message.is_empty() {
        blocks.push(section(&escape(&gate.message)));
    }
    let mut fields = Vec::new();
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            fields.push(
                json!({"type": "mrkdwn", "text": clip(format!("*{name}*\n{value}"), FIELD_MAX)}),
            );
        }
    };
    field("PipelineRun", escape(&format!("{}/{run}", gate.namespace)));
    field(
        "Pipeline",
        gate.pipeline.as_deref().map(escape).unwrap_or_default(),
    );
    field(
        "Requested by",
        gate.requested_by.as_deref().map(escape).unwrap_or_default(),
    );
    field("Approvers", escape(&gate.approvers.join(", ")));
    if let Some(required) = gate.min_approvals {
        field("Approvals", format!("{} of {required}", gate.approvals));
    }
    if let Some(deadline) = gate.deadline.filter(|_| !gate.ended) {
        // Slack shows the date in each reader's own time zone; the fallback is UTC.
        field(
            "Deadline",
            format!(
                "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
                deadline.timestamp(),
                deadline.format("%Y-%m-%d %H:%M UTC")
            ),
        );
    }
    blocks.push(json!({"type": "section", "fields": fields}));
    let decisions: Vec<String> = gate
        .decisions
        .iter()
        .map(|record| {
            let comment = if record.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&record.comment))
            };
            format!(
                "• *{}* {}{comment}",
                escape(&record.user),
                record.decision.past_tense()
            )
        })
        .collect();
    if !decisions.is_empty() {
        blocks.push(section(&decisions.join("\n")));
    }
    if gate.ended {
        if !gate.status_message.is_empty() {
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": clip(escape(&gate.status_message), FIELD_MAX)}],
            }));
        }
    } else if gate.started.is_some() {
        let value = GateRef {
            namespace: gate.namespace.clone(),
            name: gate.name.clone(),
            uid: subject.uid.to_string(),
        }
        .value();
        let mut buttons = vec![
            button(APPROVE, "Approve", &value, Some("primary")),
            button(REJECT, "Reject", &value, Some("danger")),
            button(COMMENT, "Decide with a comment…", &value, None),
        ];
        if let Some(page) = subject.page() {
            buttons.push(json!({
                "type": "button", "action_id": "open",
                "text": {"type": "plain_text", "text": "Open"}, "url": page,
            }));
        }
        blocks.push(json!({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": buttons}));
    }
    json!({
        "channel": channel,
        // The notification's text (and what screen readers read first).
        "text": clip(escape(&format!("{headline}: {}/{run}", gate.namespace)), SECTION_MAX),
        "blocks": blocks,
        "unfurl_links": false,
    })
}

/// A section of (escaped) text; `verbatim` so that Slack turns no bare URL or `#channel`
/// in it into a link.
fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text.to_string(), SECTION_MAX), "verbatim": true}})
}

fn button(action: &str, text: &str, value: &str, style: Option<&str>) -> Value {
    let mut button = json!({
        "type": "button",
        "action_id": action,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    });
    if let Some(style) = style {
        button["style"] = style.into();
    }
    button
}

/// The modal asking for a decision with a comment; `private_metadata` carries the gate.
pub fn comment_modal(gate: &GateRef, title: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": "approval-decision",
        "private_metadata": gate.value(),
        "title": {"type": "plain_text", "text": "Approval"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(escape(title), SECTION_MAX)}},
            {
                "type": "input", "block_id": "decision", "label": {"type": "plain_text", "text": "Decision"},
                "element": {
                    "type": "radio_buttons", "action_id": "decision",
                    "options": [
                        {"text": {"type": "plain_text", "text": "Approve"}, "value": APPROVE},
                        {"text": {"type": "plain_text", "text": "Reject"}, "value": REJECT},
                    ],
                },
            },
            {
                "type": "input", "block_id": "comment", "optional": true,
                "label": {"type": "plain_text", "text": "Comment"},
                "element": {"type": "plain_text_input", "action_id": "comment", "multiline": true, "max_length": 1000},
            },
        ],
    })
}

/// Slack's Web API, as one bot.
pub struct SlackApi<'a> {
    /// The HTTP client.
    pub http: &'a Http,
    /// The API's base URL, ending in `/`.
    pub base: &'a str,
    /// The bot token.
    pub token: &'a SecretText,
    /// How to retry.
    pub retry: Retry,
}

impl SlackApi<'_> {
    /// Calls `method` with a JSON body; Slack's `ok: false` is an error with its code.
    ///
    /// `chat.postMessage` is tried again only after failures that prove nothing was posted
    /// (no connection, a rate limit, Slack unavailable): after a timeout or Slack's
    /// `fatal_error` the message may exist, and a second try would post it twice.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SendError> {
        let creates = method == "chat.postMessage";
        let url = format!("{}{method}", self.base);
        let body = serde_json::to_vec(body).expect("JSON always serialises");
        let authorization = format!("Bearer {}", self.token.expose());
        self.retry
            .run(|| async {
                let response = self
                    .http
                    .post(
                        &url,
                        &[("authorization", authorization.clone())],
                        "application/json; charset=utf-8",
                        body.clone(),
                    )
                    .await
                    .map_err(|error| {
                        if creates {
                            unless_nothing_posted(error)
                        } else {
                            error
                        }
                    })?;
                let answer = parse_json(&response)?;
                if answer["ok"] == true {
                    return Ok(answer);
                }
                let code = answer["error"]
                    .as_str()
                    .unwrap_or("unknown_error")
                    .to_string();
                Err(SendError {
                    category: "slack",
                    retryable: matches!(
                        code.as_str(),
                        "ratelimited"
                            | "internal_error"
                            | "fatal_error"
                            | "service_unavailable"
                            | "request_timeout"
                    ),
                    detail: Some(code),
                    retry_after: None,
                })
            })
            .await
    }
}

/// `error` made final unless it proves the request never got to post anything.
fn unless_nothing_posted(mut error: SendError) -> SendError {
    let nothing_posted = match error.category {
        "unreachable" => error.detail.as_deref() == Some("cannot connect"),
        "status" => matches!(error.detail.as_deref(), Some("HTTP 429" | "HTTP 503")),
        _ => false,
    };
    error.retryable &= nothing_posted;
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::view::GateView;
    use crate::cli::view::tests as fixtures;

    fn subject_of(gate: &GateView) -> Subject<'_> {
        Subject {
            gate,
            uid: "u-1",
            ui_url: Some("https://approvals.example.com"),
        }
    }

    fn actions(message: &Value) -> Vec<String> {
        message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().unwrap().clone())
            .map(|e| e["action_id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_waiting_gate_asks_with_buttons_that_name_the_gate_and_its_uid() {
        let gate = GateView::new(
            &fixtures::run(fixtures::waiting_gate()),
            None,
            fixtures::now(),
        );
        let message = message(&subject_of(&gate), "C1");
        assert_eq!(message["channel"], "C1");
        assert!(
            message["text"]
                .as_str()
                .unwrap()
                .starts_with("Approval needed: ")
        );
        assert_eq!(actions(&message), [APPROVE, REJECT, COMMENT, "open"]);
        let approve = &message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap()["elements"][0];
        let gate_ref = GateRef::parse(approve["value"].as_str().unwrap()).unwrap();
        assert_eq!(
            (
                gate_ref.namespace.as_str(),
                gate_ref.name.as_str(),
                gate_ref.uid.as_str()
            ),
            (gate.namespace.as_str(), gate.name.as_str(), "u-1")
        );
        let shown = message.to_string();
        assert!(
            shown.contains(&format!(
                "{} of {}",
                gate.approvals,
                gate.min_approvals.unwrap()
            )),
            "{shown}"
        );
        assert!(
            shown.contains("<!date^"),
            "the deadline in each reader's zone: {shown}"
        );
    }

    #[test]
    fn an_ended_gate_says_who_decided_and_has_no_buttons() {
        let gate = GateView::new(
            &fixtures::run(fixtures::rejected_gate()),
            None,
            fixtures::now(),
        );
        let message = message(&subject_of(&gate), "C1");
        assert!(actions(&message).is_empty());
        let rejecter = &gate
            .decisions
            .iter()
            .find(|r| r.decision == Decision::Reject)
            .unwrap()
            .user;
        assert_eq!(
            headline(&subject_of(&gate)),
            format!("Rejected by {rejecter}")
        );
    }

    #[test]
    fn each_ending_has_its_headline() {
        let mut gate = GateView::new(
            &fixtures::run(fixtures::waiting_gate()),
            None,
            fixtures::now(),
        );
        let approver = gate.decisions[0].user.clone();
        let cases = [
            (reason::APPROVED, format!("Approved by {approver}")),
            (
                reason::APPROVED_ON_TIMEOUT,
                "Approved: the deadline passed".into(),
            ),
            (
                reason::REJECTED_ON_TIMEOUT,
                "Rejected: the deadline passed".into(),
            ),
            (reason::TIMED_OUT, "Timed out".into()),
            (reason::CANCELLED, "Cancelled".into()),
            (reason::SUPERSEDED, "Superseded by a newer run".into()),
            (reason::INVALID, "Invalid approval gate".into()),
            (reason::AWAITING_APPROVAL, "Approval needed".into()),
        ];
        for (status, expected) in cases {
            gate.status = status.into();
            assert_eq!(headline(&subject_of(&gate)), expected, "{status}");
        }
    }

    #[test]
    fn what_users_wrote_cannot_mention_everyone_or_disguise_a_link() {
        let mut gate = GateView::new(
            &fixtures::run(fixtures::waiting_gate()),
            None,
            fixtures::now(),
        );
        gate.message = "<!channel> deploy? <https://evil.example|docs> & more".into();
        gate.decisions[0].comment = "<@U123> looks fine".into();
        let shown = message(&subject_of(&gate), "C1").to_string();
        assert!(
            !shown.contains("<!channel>")
                && !shown.contains("<https://evil")
                && !shown.contains("<@U123>"),
            "{shown}"
        );
        assert!(
            shown.contains("&lt;!channel&gt; deploy? &lt;https://evil.example|docs&gt; &amp; more"),
            "{shown}"
        );
    }

    #[test]
    fn long_texts_are_clipped_to_slacks_limits() {
        let mut gate = GateView::new(
            &fixtures::run(fixtures::waiting_gate()),
            None,
            fixtures::now(),
        );
        gate.message = "x".repeat(5000);
        gate.pipeline_run = Some("p".repeat(400));
        let message = message(&subject_of(&gate), "C1");
        let header = message["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), HEADER_MAX);
        assert_eq!(
            message["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            SECTION_MAX
        );
    }

    #[test]
    fn a_message_is_posted_again_only_when_nothing_can_have_been_posted() {
        let error = |category, detail: &str| SendError {
            category,
            detail: Some(detail.into()),
            retryable: true,
            retry_after: None,
        };
        for (category, detail) in [
            ("unreachable", "cannot connect"),
            ("status", "HTTP 429"),
            ("status", "HTTP 503"),
        ] {
            assert!(
                unless_nothing_posted(error(category, detail)).retryable,
                "{detail}"
            );
        }
        for (category, detail) in [
            ("timeout", "no answer in 10s"),
            ("unreachable", "the connection failed"),
            ("status", "HTTP 500"),
            ("status", "HTTP 502"),
        ] {
            assert!(
                !unless_nothing_posted(error(category, detail)).retryable,
                "{detail}"
            );
        }
    }

    #[test]
    fn button_values_are_read_back_and_malformed_ones_refused() {
        let gate_ref = GateRef {
            namespace: "ci".into(),
            name: "run-approve".into(),
            uid: "8f0c".into(),
        };
        assert_eq!(GateRef::parse(&gate_ref.value()), Some(gate_ref));
        for bad in [
            "",
            "ci",
            "ci/run",
            "ci//u",
            "/run/u",
            "ci/run/",
            "ci/run/u/x",
        ] {
            assert_eq!(GateRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_modal_carries_the_gate_and_asks_for_a_decision_and_a_comment() {
        let gate_ref = GateRef {
            namespace: "ci".into(),
            name: "r".into(),
            uid: "u".into(),
        };
        let modal = comment_modal(&gate_ref, "Deploy <v2>?");
        assert_eq!(modal["private_metadata"], "ci/r/u");
        assert_eq!(modal["blocks"][1]["block_id"], "decision");
        assert_eq!(modal["blocks"][2]["element"]["type"], "plain_text_input");
        assert_eq!(modal["blocks"][0]["text"]["text"], "Deploy &lt;v2&gt;?");
    }
}
