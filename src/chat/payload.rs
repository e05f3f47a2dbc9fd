//! What a Slack interaction asks for, read from its (verified) body: `payload=<JSON>`,
//! form-encoded. Only what we act on is read: the Slack user ID (mapped to a person by
//! [`super::users`], never taken from a name in the payload), the button or the modal, the
//! gate it names, and where to answer.

use serde_json::Value;

use crate::approval::ledger::Decision;
use crate::notify::slack::{APPROVE, COMMENT, GateRef, REJECT};

/// What the person asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Approve or reject now, without a comment.
    Decide(Decision),
    /// Open the modal to decide with a comment.
    OpenModal {
        /// The trigger that lets us open it (valid for three seconds).
        trigger_id: String,
    },
    /// Decide as the modal says.
    Submit {
        /// Approve or reject.
        decision: Decision,
        /// The comment (may be empty).
        comment: String,
    },
}

/// One interaction we act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interaction {
    /// The Slack user ID.
    pub user: String,
    /// The gate.
    pub gate: GateRef,
    /// What they asked for.
    pub ask: Ask,
    /// Where to answer only them (`response_url`), for button clicks.
    pub response_url: Option<String>,
}

/// Why a payload is not acted on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// Not a payload at all.
    #[error("the body holds no interaction payload")]
    Malformed,
    /// An interaction of another kind (a link button, a modal closed): nothing to do.
    #[error("nothing to do for this interaction")]
    Ignored,
    /// A modal submitted without a decision.
    #[error("choose Approve or Reject")]
    NoDecision,
}

/// Reads a form-encoded interaction body.
pub fn parse(body: &[u8]) -> Result<Interaction, Unusable> {
    let payload = form_urlencoded::parse(body)
        .find(|(key, _)| key == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or(Unusable::Malformed)?;
    let payload: Value = serde_json::from_str(&payload).map_err(|_| Unusable::Malformed)?;
    let user = payload["user"]["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or(Unusable::Malformed)?
        .to_string();
    match payload["type"].as_str() {
        Some("block_actions") => {
            let action = &payload["actions"][0];
            let gate = action["value"]
                .as_str()
                .and_then(GateRef::parse)
                .ok_or(Unusable::Ignored)?;
            let ask = match action["action_id"].as_str() {
                Some(APPROVE) => Ask::Decide(Decision::Approve),
                Some(REJECT) => Ask::Decide(Decision::Reject),
                Some(COMMENT) => Ask::OpenModal {
                    trigger_id: payload["trigger_id"]
                        .as_str()
                        .ok_or(Unusable::Malformed)?
                        .to_string(),
                },
                _ => return Err(Unusable::Ignored),
            };
            Ok(Interaction {
                user,
                gate,
                ask,
                response_url: payload["response_url"].as_str().map(str::to_string),
            })
        }
        Some("view_submission") if payload["view"]["callback_id"] == "approval-decision" => {
            let view = &payload["view"];
            let gate = view["private_metadata"]
                .as_str()
                .and_then(GateRef::parse)
                .ok_or(Unusable::Malformed)?;
            let values = &view["state"]["values"];
            let decision = match values["decision"]["decision"]["selected_option"]["value"].as_str()
            {
                Some(APPROVE) => Decision::Approve,
                Some(REJECT) => Decision::Reject,
                _ => return Err(Unusable::NoDecision),
            };
            let comment = values["comment"]["comment"]["value"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_string();
            Ok(Interaction {
                user,
                gate,
                ask: Ask::Submit { decision, comment },
                response_url: None,
            })
        }
        _ => Err(Unusable::Ignored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(payload: &Value) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    fn click(action_id: &str, value: &str) -> Value {
        json!({
            "type": "block_actions",
            "user": {"id": "U0123", "username": "not-believed", "team_id": "T1"},
            "trigger_id": "1.2.abc",
            "response_url": "https://hooks.slack.com/actions/T1/1/x",
            "container": {"type": "message", "message_ts": "1.000100", "channel_id": "C1"},
            "actions": [{"action_id": action_id, "block_id": "approval-actions", "value": value, "type": "button", "action_ts": "1.2"}],
        })
    }

    #[test]
    fn buttons_approve_reject_or_open_the_modal_for_the_gate_they_name() {
        let approve = parse(&form(&click(APPROVE, "ci/run-approve/u-1"))).unwrap();
        assert_eq!(approve.user, "U0123");
        assert_eq!(
            approve.gate,
            GateRef {
                namespace: "ci".into(),
                name: "run-approve".into(),
                uid: "u-1".into()
            }
        );
        assert_eq!(approve.ask, Ask::Decide(Decision::Approve));
        assert_eq!(
            approve.response_url.as_deref(),
            Some("https://hooks.slack.com/actions/T1/1/x")
        );
        assert_eq!(
            parse(&form(&click(REJECT, "ci/r/u"))).unwrap().ask,
            Ask::Decide(Decision::Reject)
        );
        assert_eq!(
            parse(&form(&click(COMMENT, "ci/r/u"))).unwrap().ask,
            Ask::OpenModal {
                trigger_id: "1.2.abc".into()
            }
        );
    }

    #[test]
    fn a_submitted_modal_decides_with_its_comment() {
        let submission = json!({
            "type": "view_submission",
            "user": {"id": "U0123"},
            "view": {
                "id": "V1", "callback_id": "approval-decision", "private_metadata": "ci/r/u",
                "state": {"values": {
                    "decision": {"decision": {"type": "radio_buttons", "selected_option": {"value": "reject"}}},
                    "comment": {"comment": {"type": "plain_text_input", "value": "  not on a Friday  "}},
                }},
            },
        });
        let interaction = parse(&form(&submission)).unwrap();
        assert_eq!(
            interaction.ask,
            Ask::Submit {
                decision: Decision::Reject,
                comment: "not on a Friday".into()
            }
        );
        let mut undecided = submission.clone();
        undecided["view"]["state"]["values"]["decision"]["decision"]["selected_option"] =
            Value::Null;
        assert_eq!(parse(&form(&undecided)), Err(Unusable::NoDecision));
        let mut foreign = submission;
        foreign["view"]["callback_id"] = "someone-elses".into();
        assert_eq!(parse(&form(&foreign)), Err(Unusable::Ignored));
    }

    #[test]
    fn other_interactions_are_ignored_and_garbage_is_malformed() {
        assert_eq!(
            parse(&form(&click("open", "ci/r/u"))),
            Err(Unusable::Ignored)
        );
        assert_eq!(
            parse(&form(&click(APPROVE, "not-a-gate"))),
            Err(Unusable::Ignored)
        );
        assert_eq!(
            parse(&form(&json!({"type": "view_closed", "user": {"id": "U1"}}))),
            Err(Unusable::Ignored)
        );
        assert_eq!(parse(b"payload=%7Bnot-json"), Err(Unusable::Malformed));
        assert_eq!(parse(b"token=abc"), Err(Unusable::Malformed));
        let mut anonymous = click(APPROVE, "ci/r/u");
        anonymous["user"] = json!({});
        assert_eq!(parse(&form(&anonymous)), Err(Unusable::Malformed));
    }
}
