//! Admission: the rules the webhook enforces on writes to a gate. The API server tells us
//! who is asking; only that identity is ever recorded. Pure: the HTTP layer passes the
//! request in and sends the answer back.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};

use super::ledger::{Decision, Ledger, Record};
use super::outcome::{Outcome, evaluate};
use super::plan::{Attempt, has_ended, reason};
use super::policy::SelfApproval;
use super::requester::stamp;
use super::{
    APPROVE_ANNOTATION, LEDGER_ANNOTATION, REJECT_ANNOTATION, REQUESTED_BY_ANNOTATION, classify,
};
use crate::api::customrun::RUN_CANCELLED;
use crate::api::{CustomRun, CustomRunSpec};

/// The requester, from the AdmissionReview's `userInfo`: the only identity we trust.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    /// `userInfo.username`.
    pub username: &'a str,
    /// `userInfo.groups`.
    pub groups: &'a [String],
}

/// The kind of write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A new CustomRun.
    Create,
    /// A change to an existing one.
    Update,
}

/// An admitted write, possibly changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Admit as is.
    Unchanged,
    /// Admit with this JSON patch applied (RFC 6902 operations).
    Patch {
        /// The operations.
        operations: Vec<Value>,
        /// The decision recorded, if the write was one.
        recorded: Option<Record>,
    },
}

/// A refused write; the message reaches the user as the API server's error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial(pub String);

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the webhook knows besides the request.
#[derive(Clone, Debug)]
pub struct Admission {
    /// The controller's own username: the only one that may rewrite the ledger.
    pub controller_username: String,
    /// Users that create runs on a PipelineRun's behalf (Tekton's controller): the
    /// requested-by stamp they copy is kept as it is.
    pub trusted_creators: Vec<String>,
}

impl Admission {
    fn trusts(&self, requester: Requester<'_>) -> bool {
        self.trusted_creators
            .iter()
            .any(|user| user == requester.username)
    }

    /// Judges one write to a PipelineRun: only its requested-by stamp is our business.
    pub fn admit_pipelinerun(
        &self,
        operation: Operation,
        old: Option<&BTreeMap<String, String>>,
        new: Option<&BTreeMap<String, String>>,
        requester: Requester<'_>,
        name: &str,
    ) -> Result<Mutation, Denial> {
        let operations = stamp(
            operation,
            old,
            new,
            requester.username,
            self.trusts(requester),
            &format!("PipelineRun {name}"),
        )?;
        Ok(if operations.is_empty() {
            Mutation::Unchanged
        } else {
            Mutation::Patch {
                operations,
                recorded: None,
            }
        })
    }

    /// Judges one write to a CustomRun.
    pub fn admit(
        &self,
        operation: Operation,
        old: Option<&CustomRun>,
        new: &CustomRun,
        requester: Requester<'_>,
        now: DateTime<Utc>,
    ) -> Result<Mutation, Denial> {
        let was_gate = old.is_some_and(|o| classify(&o.spec).is_some());
        if !was_gate && classify(&new.spec).is_none() {
            return Ok(Mutation::Unchanged);
        }
        let is_controller = requester.username == self.controller_username;
        let name = gate_name(new);
        let new_ledger = annotation(new, LEDGER_ANNOTATION);
        let old = match (operation, old) {
            (Operation::Create, _) | (Operation::Update, None) => {
                if new_ledger.is_some() && !is_controller {
                    return Err(Denial(format!(
                        "{LEDGER_ANNOTATION} cannot be set when {name} is created: it is written \
                         only by the approval webhook when approvers decide"
                    )));
                }
                if let Some(input) = inputs(new).next() {
                    return Err(Denial(format!(
                        "{input} cannot be set when {name} is created: decide once the gate is \
                         waiting, with kubectl annotate customrun ... {input}=\"comment\""
                    )));
                }
                let operations = stamp(
                    Operation::Create,
                    None,
                    new.metadata.annotations.as_ref(),
                    requester.username,
                    self.trusts(requester),
                    &name,
                )?;
                return Ok(if operations.is_empty() {
                    Mutation::Unchanged
                } else {
                    Mutation::Patch {
                        operations,
                        recorded: None,
                    }
                });
            }
            (Operation::Update, Some(old)) => old,
        };
        if without_cancellation(&old.spec) != without_cancellation(&new.spec) {
            return Err(Denial(format!(
                "the spec of {name} cannot change after it is created (only Tekton's \
                 cancellation fields spec.status and spec.statusMessage may): start a new \
                 PipelineRun instead"
            )));
        }
        stamp(
            Operation::Update,
            old.metadata.annotations.as_ref(),
            new.metadata.annotations.as_ref(),
            requester.username,
            false,
            &name,
        )?;
        if new_ledger != annotation(old, LEDGER_ANNOTATION) && !is_controller {
            return Err(Denial(format!(
                "{LEDGER_ANNOTATION} of {name} is written only by the approval webhook: to \
                 decide, annotate {APPROVE_ANNOTATION} or {REJECT_ANNOTATION} instead"
            )));
        }
        // Input annotations that were already there (from a time without this webhook) are
        // not a decision by whoever writes now: they are dropped, never recorded.
        let (fresh, stale): (Vec<&str>, Vec<&str>) =
            inputs(new).partition(|input| annotation(new, input) != annotation(old, input));
        let mut operations: Vec<Value> = stale.iter().map(|input| remove(input)).collect();
        let recorded = match fresh.as_slice() {
            [] => None,
            [_, _] => {
                return Err(Denial(format!(
                    "set either {APPROVE_ANNOTATION} or {REJECT_ANNOTATION} on {name}, not both"
                )));
            }
            [input] => {
                let decision = if *input == APPROVE_ANNOTATION {
                    Decision::Approve
                } else {
                    Decision::Reject
                };
                let comment = annotation(new, input)
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let (record, ledger) =
                    self.decide(old, &name, decision, comment, requester, now)?;
                operations.push(remove(input));
                operations.push(json!({
                    "op": "add",
                    "path": annotation_pointer(LEDGER_ANNOTATION),
                    "value": ledger.to_annotation(),
                }));
                Some(record)
            }
            _ => unreachable!("there are two input annotations"),
        };
        if operations.is_empty() {
            return Ok(Mutation::Unchanged);
        }
        Ok(Mutation::Patch {
            operations,
            recorded,
        })
    }

    /// Checks that a decision may be made now by this requester, and records it.
    fn decide(
        &self,
        old: &CustomRun,
        name: &str,
        decision: Decision,
        comment: String,
        requester: Requester<'_>,
        now: DateTime<Utc>,
    ) -> Result<(Record, Ledger), Denial> {
        let status = old.status.clone().unwrap_or_default();
        if has_ended(&status) {
            return Err(Denial(ended_message(name, &status)));
        }
        if old.spec.status.as_deref() == Some(RUN_CANCELLED) {
            return Err(Denial(format!(
                "{name} was cancelled: there is nothing to decide"
            )));
        }
        let attempt = match Attempt::of(&status).filter(|_| status.start_time.is_some()) {
            Some(Ok(attempt)) => attempt,
            Some(Err(_)) => {
                return Err(Denial(format!(
                    "{name} has unreadable gate data in its status: no decision can be recorded"
                )));
            }
            None => {
                return Err(Denial(format!(
                    "{name} has not started waiting yet (the approval controller has not seen \
                     it, or is not running): try again in a moment"
                )));
            }
        };
        let policy = &attempt.policy;
        if !policy
            .approvers
            .admits(requester.username, requester.groups)
        {
            return Err(Denial(format!(
                "{user} may not decide {name}: its approvers are {approvers}. Ask one of them \
                 to {verb}; being able to annotate is not being an approver",
                user = requester.username,
                approvers = policy.approvers,
                verb = if decision == Decision::Approve {
                    "approve"
                } else {
                    "reject"
                },
            )));
        }
        if decision == Decision::Approve {
            let policy_name = match &policy.policy {
                Some(name) => format!("Approval policy {name}"),
                None => "this gate".to_string(),
            };
            match policy.self_approval_bar(requester.username) {
                None => {}
                Some(SelfApproval::OwnRun) => {
                    return Err(Denial(format!(
                        "{user} started the run of {name} and {policy_name} does not allow \
                         self-approval: ask another of its approvers ({approvers})",
                        user = requester.username,
                        approvers = policy.approvers,
                    )));
                }
                Some(SelfApproval::UnknownRequester) => {
                    return Err(Denial(format!(
                        "{name} does not know who started its run (no {REQUESTED_BY_ANNOTATION}: \
                         it was created while the approval webhook was not stamping runs) and \
                         {policy_name} does not allow self-approval, so no approval can be \
                         recorded: start a new run"
                    )));
                }
            }
        }
        let mut ledger = Ledger::parse(annotation(old, LEDGER_ANNOTATION))
            .map_err(|e| Denial(format!("{name} cannot take decisions: {e}")))?;
        let archived = Attempt::archived_records(&status);
        let now = now.trunc_subsecs(3);
        let current = ledger.without(&archived);
        // The controller may not have written the end yet; the ledger already knows it.
        match evaluate(policy, &current, attempt.deadline, now).outcome {
            Outcome::Waiting => {}
            Outcome::Approved { .. } => {
                return Err(Denial(format!(
                    "{name} is already approved: the decision is being recorded"
                )));
            }
            Outcome::Rejected { by, .. } => {
                return Err(Denial(format!(
                    "{name} is already rejected by {by}: the decision is being recorded"
                )));
            }
            Outcome::TimedOut { at } => {
                return Err(Denial(format!(
                    "{name} timed out at {}: no decision can be recorded",
                    rfc3339(at)
                )));
            }
        }
        let record = Record {
            user: requester.username.to_string(),
            groups: policy.approvers.matching_groups(requester.groups),
            decision,
            comment,
            time: now,
        };
        ledger.push(record.clone());
        Ok((record, ledger))
    }
}

/// `<name> was approved at <time> by alice, bob: no decision can be recorded any more`, and
/// the like for every end. The CLI tells an approver the same before it even tries.
/// `status` must have ended (see [`has_ended`]).
pub fn ended_message(name: &str, status: &crate::api::CustomRunStatus) -> String {
    let condition = status.succeeded().expect("an ended status has a condition");
    let at = status
        .completion_time
        .map(rfc3339)
        .unwrap_or_else(|| "an earlier time".into());
    let result = |key: &str| -> String {
        let value = status
            .results
            .iter()
            .find(|r| r.name == key)
            .map(|r| r.value.as_str());
        value
            .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok())
            .map(|users| users.join(", "))
            .unwrap_or_default()
    };
    let what = match condition.reason.as_str() {
        reason::APPROVED => format!("was approved at {at} by {}", result("approvedBy")),
        reason::REJECTED => format!("was rejected at {at} by {}", result("rejectedBy")),
        reason::TIMED_OUT | reason::APPROVED_ON_TIMEOUT | reason::REJECTED_ON_TIMEOUT => {
            format!("timed out at {at} ({})", condition.reason)
        }
        reason::CANCELLED => format!("was cancelled at {at}"),
        other => format!("ended at {at} ({other}: {})", condition.message),
    };
    format!("{name} {what}: no decision can be recorded any more")
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn gate_name(run: &CustomRun) -> String {
    format!(
        "gate {}/{}",
        run.metadata.namespace.as_deref().unwrap_or_default(),
        run.metadata.name.as_deref().unwrap_or_default()
    )
}

fn annotation<'a>(run: &'a CustomRun, key: &str) -> Option<&'a str> {
    run.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn inputs(run: &CustomRun) -> impl Iterator<Item = &'static str> + '_ {
    [APPROVE_ANNOTATION, REJECT_ANNOTATION]
        .into_iter()
        .filter(|a| annotation(run, a).is_some())
}

fn without_cancellation(spec: &CustomRunSpec) -> CustomRunSpec {
    CustomRunSpec {
        status: None,
        status_message: None,
        ..spec.clone()
    }
}

/// A JSON pointer to an annotation.
pub(super) fn annotation_pointer(key: &str) -> String {
    format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

fn remove(key: &str) -> Value {
    json!({"op": "remove", "path": annotation_pointer(key)})
}

#[cfg(test)]
mod tests;
