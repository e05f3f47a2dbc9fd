//! `approve` and `reject`, the pure parts: whether to try at all, the annotation patch, what
//! the API server's answer means, and when the controller has reported the outcome.
//! The webhook decides whether a decision counts; nothing here second-guesses it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::exit::CliError;
use super::view::ledger_text;
use crate::api::CustomRun;
use crate::api::customrun::RUN_CANCELLED;
use crate::approval::admission::ended_message;
use crate::approval::ledger::{Decision, Ledger, Record};
use crate::approval::outcome::{Outcome, evaluate};
use crate::approval::plan::{Attempt, has_ended, reason};
use crate::approval::{
    APPROVE_ANNOTATION, EFFECTIVE_AT_ANNOTATION, INPUT_ANNOTATION_PREFIX, REJECT_ANNOTATION,
};

/// The annotation that carries a decision.
pub fn input_annotation(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => APPROVE_ANNOTATION,
        Decision::Reject => REJECT_ANNOTATION,
    }
}

/// Refuses, before writing anything, to decide a gate that already ended: the webhook would
/// deny it with the same words, and without a webhook the annotation would be left behind.
pub fn check_open(run: &CustomRun) -> Result<(), CliError> {
    // Named as the webhook names gates, so both say the same thing.
    let name = format!(
        "gate {}/{}",
        run.metadata.namespace.as_deref().unwrap_or_default(),
        run.metadata.name.as_deref().unwrap_or_default()
    );
    let status = run.status.clone().unwrap_or_default();
    if has_ended(&status) {
        return Err(CliError::Ended(ended_message(&name, &status)));
    }
    if run.spec.status.as_deref() == Some(RUN_CANCELLED) {
        return Err(CliError::Ended(format!(
            "{name} was cancelled: there is nothing to decide"
        )));
    }
    Ok(())
}

/// What only an approval can say besides its comment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// Values for the gate's inputs, by name.
    pub inputs: Vec<(String, String)>,
    /// The `effective-at` annotation's value: an RFC 3339 time or a Go duration.
    pub effective_at: Option<String>,
}

/// The merge patch `kubectl annotate --overwrite` would send. The other input annotation is
/// removed in the same write: one left over from a time without the webhook would otherwise
/// make this write carry both, which the webhook refuses.
pub fn patch(decision: Decision, comment: &str, extras: &Extras) -> Value {
    let (set, clear) = match decision {
        Decision::Approve => (APPROVE_ANNOTATION, REJECT_ANNOTATION),
        Decision::Reject => (REJECT_ANNOTATION, APPROVE_ANNOTATION),
    };
    let mut annotations = json!({set: comment, clear: null});
    for (name, value) in &extras.inputs {
        annotations[format!("{INPUT_ANNOTATION_PREFIX}{name}")] = json!(value);
    }
    if let Some(at) = &extras.effective_at {
        annotations[EFFECTIVE_AT_ANNOTATION] = json!(at);
    }
    json!({"metadata": {"annotations": annotations}})
}

/// The records of the current attempt (the ledger less what earlier attempts consumed).
fn current_records(run: &CustomRun) -> Vec<Record> {
    let (ledger, _) = Ledger::parse_lenient(ledger_text(run));
    let status = run.status.clone().unwrap_or_default();
    ledger.without(&Attempt::archived_records(&status))
}

/// A decision the webhook recorded, and what to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The record the webhook appended (with the identity it took from the request).
    pub record: Record,
    /// Attempts archived when it was written: one more means the attempt ended and reopened.
    retries_before: usize,
    /// Counted records of the attempt once the controller has read this one.
    counted: usize,
    /// Held-back approvals of the attempt once the controller has read this one.
    held: usize,
}

/// Reads the object the API server returned for the patch (after the webhook mutated it).
/// `before` is the gate as read before writing.
pub fn recorded(
    before: &CustomRun,
    after: &CustomRun,
    decision: Decision,
    now: DateTime<Utc>,
) -> Result<Recorded, CliError> {
    let name = after.metadata.name.as_deref().unwrap_or_default();
    let input = input_annotation(decision);
    let records = current_records(after);
    // The webhook appends; the controller only ever removes records of archived attempts.
    // So a last record that was not there before is the one this write added.
    let all = |run: &CustomRun| Ledger::parse_lenient(ledger_text(run)).0;
    let (earlier, now_there) = (all(before), all(after));
    let added = now_there
        .records()
        .last()
        .filter(|last| !earlier.records().contains(last))
        .cloned();
    let Some(record) = added else {
        let still_there = after
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(input));
        return Err(CliError::Other(if still_there {
            format!(
                "{input} was written on {name} but not recorded: the approval webhook is not \
                 installed or did not run, and only decisions it records count"
            )
        } else {
            format!(
                "{input} was already on {name} with the same value from before the webhook \
                 ran, so the webhook dropped it instead of recording it: run the command again"
            )
        }));
    };
    let status = after.status.clone().unwrap_or_default();
    let (counted, held) = match Attempt::of(&status).and_then(Result::ok) {
        Some(attempt) => {
            let tally = evaluate(&attempt.policy, &records, attempt.deadline, now);
            (tally.counted.len(), tally.held.len())
        }
        None => (records.len(), 0),
    };
    Ok(Recorded {
        record,
        retries_before: status.retries_status.len(),
        counted,
        held,
    })
}

/// What to tell the approver after their decision was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The gate ended: its condition's reason and message.
    Ended {
        /// The reason (`Approved`, `Rejected`, ...).
        reason: String,
        /// The controller's message.
        message: String,
    },
    /// An attempt ended and the gate reopened for the next one (`spec.retries`).
    Reopened {
        /// How the attempt ended.
        message: String,
        /// The attempt now waiting, from 1.
        attempt: usize,
        /// 1 + `spec.retries`.
        attempts: u32,
    },
    /// Counted; the gate waits for more.
    Waiting {
        /// The controller's message (`Waiting for 1 more approval (1 of 2) ...`).
        message: String,
    },
    /// Recorded, but the controller has not reported within the wait.
    Unconfirmed {
        /// The record.
        record: Record,
    },
}

impl Recorded {
    /// The report, once the controller has reacted to the decision in `run`; `None` while
    /// it has not.
    pub fn progress(&self, run: &CustomRun) -> Option<Report> {
        let status = run.status.as_ref()?;
        let condition = status.succeeded()?;
        if has_ended(status) {
            return Some(Report::Ended {
                reason: condition.reason.clone(),
                message: condition.message.clone(),
            });
        }
        if status.retries_status.len() > self.retries_before {
            let ended = status.retries_status.last()?.succeeded()?;
            return Some(Report::Reopened {
                message: ended.message.clone(),
                attempt: status.retries_status.len() + 1,
                attempts: run.spec.retries + 1,
            });
        }
        let attempt = Attempt::of(status)?.ok()?;
        (attempt.recorded >= self.counted && attempt.held >= self.held).then(|| Report::Waiting {
            message: condition.message.clone(),
        })
    }

    /// The report when the wait is over without word from the controller.
    pub fn unconfirmed(&self) -> Report {
        Report::Unconfirmed {
            record: self.record.clone(),
        }
    }
}

impl Report {
    /// One line for the approver, starting with what happened: `recorded`, `approved`,
    /// `rejected` (or how else the gate ended).
    pub fn line(&self, gate: &str) -> String {
        match self {
            Self::Ended { reason, message } => {
                let word = match reason.as_str() {
                    reason::APPROVED | reason::APPROVED_ON_TIMEOUT => "approved",
                    reason::REJECTED | reason::REJECTED_ON_TIMEOUT => "rejected",
                    reason::TIMED_OUT => "timed out",
                    reason::CANCELLED => "cancelled",
                    _ => "ended",
                };
                format!("{word}: {message}")
            }
            Self::Reopened {
                message,
                attempt,
                attempts,
            } => {
                format!("rejected: {message}; {gate} reopened for attempt {attempt} of {attempts}")
            }
            Self::Waiting { message } => format!("recorded: {message}"),
            Self::Unconfirmed { record } => format!(
                "recorded: {} {} {gate}; the approval controller has not updated the gate yet \
                 (is it running?)",
                record.user,
                record.decision.past_tense()
            ),
        }
    }
}

/// The exit error for a write the API server denied: `Ended` when the gate (read again after
/// the denial) has ended or its ledger already decided it, a plain denial otherwise.
pub fn denied(denial: CliError, refreshed: Option<&CustomRun>, now: DateTime<Utc>) -> CliError {
    let CliError::Denied(message) = denial else {
        return denial;
    };
    let decided = refreshed.is_some_and(|run| {
        if check_open(run).is_err() {
            return true;
        }
        let status = run.status.clone().unwrap_or_default();
        Attempt::of(&status)
            .and_then(Result::ok)
            .is_some_and(|attempt| {
                evaluate(
                    &attempt.policy,
                    &current_records(run),
                    attempt.deadline,
                    now,
                )
                .outcome
                    != Outcome::Waiting
            })
    });
    if decided {
        CliError::Ended(message)
    } else {
        CliError::Denied(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::LEDGER_ANNOTATION;
    use crate::cli::view::tests::{rejected_gate, run, waiting_gate};

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    /// The waiting gate after the webhook recorded `user`'s decision.
    fn after_decision(user: &str, groups: &[&str], decision: &str, comment: &str) -> CustomRun {
        let mut value = waiting_gate();
        let ledger = value["metadata"]["annotations"][LEDGER_ANNOTATION]
            .as_str()
            .unwrap()
            .trim_end_matches(']')
            .to_string();
        let groups = json!(groups);
        value["metadata"]["annotations"][LEDGER_ANNOTATION] = json!(format!(
            r#"{ledger},{{"user":"{user}","groups":{groups},"decision":"{decision}","comment":"{comment}","time":"2026-11-22T11:59:59Z"}}]"#
        ));
        run(value)
    }

    #[test]
    fn the_patch_sets_one_input_and_clears_the_other() {
        assert_eq!(
            patch(Decision::Approve, "ship it", &Extras::default()),
            json!({"metadata": {"annotations": {
                "approval.tekton.dev/approve": "ship it", "approval.tekton.dev/reject": null}}})
        );
        assert_eq!(
            patch(Decision::Reject, "", &Extras::default()),
            json!({"metadata": {"annotations": {
                "approval.tekton.dev/reject": "", "approval.tekton.dev/approve": null}}})
        );
    }

    #[test]
    fn an_approvals_inputs_and_time_go_in_the_same_patch() {
        let extras = Extras {
            inputs: vec![("target".into(), "production".into())],
            effective_at: Some("2h".into()),
        };
        assert_eq!(
            patch(Decision::Approve, "", &extras),
            json!({"metadata": {"annotations": {
                "approval.tekton.dev/approve": "", "approval.tekton.dev/reject": null,
                "approval.tekton.dev/input-target": "production",
                "approval.tekton.dev/effective-at": "2h"}}})
        );
    }

    #[test]
    fn an_ended_gate_is_not_written_to() {
        let err = check_open(&run(rejected_gate())).unwrap_err();
        assert_eq!(err.exit_code(), 5);
        assert_eq!(
            err.to_string(),
            "gate prod/deploy-q9z-gate was rejected at 2026-11-21T09:00:00Z by carol: no decision \
             can be recorded any more"
        );
        let mut cancelled = waiting_gate();
        cancelled["spec"]["status"] = json!("RunCancelled");
        assert_eq!(check_open(&run(cancelled)).unwrap_err().exit_code(), 5);
        assert_eq!(check_open(&run(waiting_gate())), Ok(()));
    }

    #[test]
    fn a_recorded_decision_is_the_webhooks_last_record() {
        let before = run(waiting_gate());
        let after = after_decision("alice", &[], "approve", "ship it");
        let recorded = recorded(&before, &after, Decision::Approve, now()).unwrap();
        assert_eq!(recorded.record.user, "alice");
        assert_eq!(recorded.record.comment, "ship it");
        assert_eq!(recorded.counted, 2);
    }

    #[test]
    fn an_input_left_in_place_means_no_webhook_recorded_it() {
        let before = run(waiting_gate());
        let mut value = waiting_gate();
        value["metadata"]["annotations"][APPROVE_ANNOTATION] = json!("ship it");
        let err = recorded(&before, &run(value), Decision::Approve, now()).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string()
                .contains("the approval webhook is not installed"),
            "{err}"
        );
        // Gone without a record: the webhook dropped a stale annotation of the same value.
        let err = recorded(&before, &before, Decision::Approve, now()).unwrap_err();
        assert!(err.to_string().contains("run the command again"), "{err}");
    }

    #[test]
    fn the_controller_has_reported_once_it_counted_the_record() {
        let before = run(waiting_gate());
        // bob approves again: his earlier approval is replaced, the gate still waits.
        let after = after_decision("bob", &["release-managers"], "approve", "still green");
        let recorded = recorded(&before, &after, Decision::Approve, now()).unwrap();
        assert_eq!(recorded.counted, 2);
        // Not yet: extraFields.recorded is still 1.
        assert_eq!(recorded.progress(&after), None);
        let mut counted = serde_json::to_value(&after).unwrap();
        counted["status"]["extraFields"]["recorded"] = json!(2);
        counted["status"]["conditions"][0]["message"] =
            json!("Waiting for 1 more approval (1 of 2)");
        let report = recorded.progress(&run(counted)).unwrap();
        assert_eq!(
            report.line("gate"),
            "recorded: Waiting for 1 more approval (1 of 2)"
        );
    }

    #[test]
    fn an_ended_gate_reports_its_outcome() {
        let before = run(waiting_gate());
        let after = after_decision("alice", &[], "approve", "");
        let recorded = recorded(&before, &after, Decision::Approve, now()).unwrap();
        let mut ended = serde_json::to_value(&after).unwrap();
        ended["status"]["conditions"] = json!([{"type": "Succeeded", "status": "True",
            "reason": "Approved", "message": "Approved by bob, alice"}]);
        let report = recorded.progress(&run(ended)).unwrap();
        assert_eq!(report.line("gate"), "approved: Approved by bob, alice");
        let rejected = Report::Ended {
            reason: "Rejected".into(),
            message: "Rejected by carol: no".into(),
        };
        assert_eq!(rejected.line("gate"), "rejected: Rejected by carol: no");
    }

    #[test]
    fn a_rejection_that_reopens_the_gate_says_so() {
        let before = run(waiting_gate());
        let after = after_decision("alice", &[], "reject", "flaky");
        let recorded = recorded(&before, &after, Decision::Reject, now()).unwrap();
        let mut reopened = serde_json::to_value(&after).unwrap();
        reopened["spec"]["retries"] = json!(2);
        reopened["status"]["retriesStatus"] = json!([{"conditions": [{"type": "Succeeded",
            "status": "False", "reason": "Rejected", "message": "Rejected by alice: flaky"}]}]);
        let report = recorded.progress(&run(reopened)).unwrap();
        assert_eq!(
            report.line("gate"),
            "rejected: Rejected by alice: flaky; gate reopened for attempt 2 of 3"
        );
    }

    #[test]
    fn without_word_from_the_controller_the_record_is_reported() {
        let before = run(waiting_gate());
        let after = after_decision("alice", &[], "approve", "");
        let recorded = recorded(&before, &after, Decision::Approve, now()).unwrap();
        assert_eq!(
            recorded.unconfirmed().line("ci/gate"),
            "recorded: alice approved ci/gate; the approval controller has not updated the gate \
             yet (is it running?)"
        );
    }

    #[test]
    fn a_denial_on_a_gate_that_ended_meanwhile_is_already_ended() {
        let denial = || CliError::Denied("nope".into());
        assert_eq!(
            denied(denial(), Some(&run(rejected_gate())), now()),
            CliError::Ended("nope".into())
        );
        // Decided by the ledger, not yet by the controller.
        let approved = after_decision("alice", &[], "approve", "");
        assert_eq!(
            denied(denial(), Some(&approved), now()),
            CliError::Ended("nope".into())
        );
        assert_eq!(
            denied(denial(), Some(&run(waiting_gate())), now()),
            CliError::Denied("nope".into())
        );
        assert_eq!(
            denied(denial(), None, now()),
            CliError::Denied("nope".into())
        );
        assert_eq!(
            denied(CliError::Other("x".into()), None, now()),
            CliError::Other("x".into())
        );
    }
}
