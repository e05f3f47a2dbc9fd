//! The plan: from a CustomRun as it is now (and the time), the status it should have, the
//! events to publish, the ledger clean-up after a retry, and when to look again.
//!
//! Everything is derived from the object: the frozen policy and attempt data live in
//! `status.extraFields`, decisions in the ledger annotation. Planning the same object twice
//! gives the same plan, whether or not this process saw it before.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::admission::PIPELINE_RUN_LABEL;
use super::admission::rfc3339;
use super::gate::{Gate, PolicyLookup, classify, resolve};
use super::inputs;
use super::ledger::{Decision, Ledger, Record};
use super::outcome::{Held, Outcome, Tally, evaluate};
use super::policy::{OnReject, OnSupersede, OnTimeout, Origin, Policy};
use super::seal::{self, Keyring, Verdict, gate_admission, record_message};
use super::{
    ADMITTED_ANNOTATION, APPROVE_ANNOTATION, LEDGER_ANNOTATION, PIPELINE_LABEL,
    PIPELINE_TASK_LABEL, REJECT_ANNOTATION, REQUESTED_BY_ANNOTATION,
};
use crate::api::customrun::{RUN_CANCELLED, SUCCEEDED};
use crate::api::time::{format_go_duration, kube_now, kube_time};
use crate::api::{Condition, CustomRun, CustomRunStatus, RunResult};

/// Condition reasons: the protocol's status table.
pub mod reason {
    /// Waiting for decisions.
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// Quorum reached.
    pub const APPROVED: &str = "Approved";
    /// Vetoed.
    pub const REJECTED: &str = "Rejected";
    /// Deadline with `onTimeout: fail` (Tekton's own reason).
    pub const TIMED_OUT: &str = "CustomRunTimedOut";
    /// Deadline with `onTimeout: approve`.
    pub const APPROVED_ON_TIMEOUT: &str = "ApprovedOnTimeout";
    /// Deadline with `onTimeout: reject`.
    pub const REJECTED_ON_TIMEOUT: &str = "RejectedOnTimeout";
    /// Cancelled by Tekton or a user (Tekton's own reason).
    pub const CANCELLED: &str = "CustomRunCancelled";
    /// A newer run reached the same gate (`supersede`).
    pub const SUPERSEDED: &str = "Superseded";
    /// Bad params, policy or ledger.
    pub const INVALID: &str = "InvalidApproval";
}

/// Event reasons: the protocol's events list.
pub mod event_reason {
    /// The gate started waiting (or reopened for a retry).
    pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// A decision was counted.
    pub const DECISION_RECORDED: &str = "DecisionRecorded";
    /// An approval was recorded that takes effect later (deferred, or outside the window).
    pub const APPROVAL_DEFERRED: &str = "ApprovalDeferred";
    /// Approved (by people).
    pub const APPROVED: &str = "Approved";
    /// Rejected (by people).
    pub const REJECTED: &str = "Rejected";
    /// The deadline passed.
    pub const TIMED_OUT: &str = "TimedOut";
    /// A newer run reached the same gate.
    pub const SUPERSEDED: &str = "Superseded";
    /// Bad params, policy or ledger.
    pub const INVALID_APPROVAL: &str = "InvalidApproval";
    /// A gate without the webhook's admission seal: left alone.
    pub const NOT_ADMITTED: &str = "NotAdmitted";
    /// A ledger record the webhook did not write (no valid seal): ignored.
    pub const UNVERIFIED_DECISION: &str = "UnverifiedDecision";
}

/// Result names: the protocol's results table.
pub mod result {
    /// `approved`, `rejected`, `timed-out` or `superseded`.
    pub const DECISION: &str = "decision";
    /// JSON array of users.
    pub const APPROVED_BY: &str = "approvedBy";
    /// JSON array of users.
    pub const REJECTED_BY: &str = "rejectedBy";
    /// JSON array of `"user: comment"`.
    pub const COMMENTS: &str = "comments";
    /// RFC 3339.
    pub const DECIDED_AT: &str = "decidedAt";
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Nothing to worry about.
    Normal,
    /// Someone should look.
    Warning,
}

/// An event to publish on the CustomRun.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateEvent {
    /// Normal or Warning.
    pub severity: Severity,
    /// One of [`event_reason`].
    pub reason: &'static str,
    /// What happened, for people.
    pub message: String,
}

/// How an attempt ended, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    /// A metrics label: `approved`, `rejected`, `timed_out`, `approved_on_timeout`,
    /// `rejected_on_timeout`, `cancelled`, `invalid`.
    pub outcome: &'static str,
    /// From the attempt's start to the decision.
    pub waited: Option<std::time::Duration>,
}

/// Replace the ledger annotation: `expected` is its current value (the write must fail if it
/// changed meanwhile), `remaining` its new value (`None` removes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerCleanup {
    /// The value planned from.
    pub expected: String,
    /// The records of the current attempt.
    pub remaining: Option<String>,
}

/// What the API layer should do.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status the CustomRun should have; write it only if it differs.
    pub status: CustomRunStatus,
    /// Events to publish once the status is written.
    pub events: Vec<GateEvent>,
    /// Look again at this time (the deadline), even if nothing changes.
    pub requeue_at: Option<DateTime<Utc>>,
    /// Remove records of earlier attempts from the ledger (after a retry).
    pub ledger_cleanup: Option<LedgerCleanup>,
    /// Set when this plan ends an attempt.
    pub ending: Option<Ending>,
    /// Set when the gate is left alone because the webhook did not admit it: why. The
    /// status is kept as it is; the events say so.
    pub not_admitted: Option<String>,
    /// Ledger records found not to be the webhook's since the last plan (for a metric).
    pub unverified_records: usize,
    /// A seal names a key the keyring does not hold: re-read the keys and plan again.
    pub unknown_key: Option<String>,
}

impl Plan {
    fn keep(status: CustomRunStatus) -> Self {
        Self {
            status,
            events: Vec::new(),
            requeue_at: None,
            ledger_cleanup: None,
            ending: None,
            not_admitted: None,
            unverified_records: 0,
            unknown_key: None,
        }
    }
}

/// What the controller keeps in `status.extraFields` for an attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The frozen policy.
    #[serde(flatten)]
    pub policy: Policy,
    /// `startTime + timeout`, for people and the CLI; absent without a deadline.
    #[serde(
        default,
        with = "kube_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deadline: Option<DateTime<Utc>>,
    /// Counted records already announced by a `DecisionRecorded` event.
    #[serde(default)]
    pub recorded: usize,
    /// Ledger entries already announced as not the webhook's (`UnverifiedDecision`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unverified: usize,
    /// Held-back approvals already announced by an `ApprovalDeferred` event.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held: usize,
    /// What the notifier delivered to each sink (its own record, opaque here: the plan only
    /// carries it, and over to the next attempt, so that a restart neither repeats nor
    /// loses a notification and a retried gate keeps its chat message).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notified: BTreeMap<String, serde_json::Value>,
    /// In `retriesStatus` only: the records this attempt consumed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Record>,
}

impl Attempt {
    /// Reads the attempt data of a status, if it has any.
    pub fn of(status: &CustomRunStatus) -> Option<Result<Attempt, serde_json::Error>> {
        status.extra_fields.clone().map(serde_json::from_value)
    }

    /// The records consumed by the attempts archived in a status (`status.retriesStatus`):
    /// they are history, not part of the current attempt's ledger.
    pub fn archived_records(status: &CustomRunStatus) -> Vec<Record> {
        status
            .retries_status
            .iter()
            .filter_map(|s| Attempt::of(s)?.ok())
            .flat_map(|a| a.decisions)
            .collect()
    }

    /// The attempt of a gate whose policy names notification sinks; `None` for the others,
    /// found without reading their attempt (most gates notify nobody, and this is asked on
    /// every reconcile and every watch event of an ended gate).
    pub fn notifying(status: &CustomRunStatus) -> Option<Attempt> {
        let names_sinks = status
            .extra_fields
            .as_ref()
            .is_some_and(|fields| fields.get("notify").is_some());
        names_sinks
            .then(|| Attempt::of(status)?.ok())
            .flatten()
            .filter(|attempt| !attempt.policy.notify.is_empty())
    }

    /// Whether a sink the policy names has not been told everything of the ended gate yet:
    /// the notifier marks each sink's record `ended: true` once it has (an ended gate that
    /// is untold is looked at again when the controller starts).
    pub fn untold(&self) -> bool {
        self.policy.notify.iter().any(|sink| {
            self.notified
                .get(sink)
                .and_then(|record| record.get("ended"))
                .and_then(serde_json::Value::as_bool)
                != Some(true)
        })
    }

    fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("attempt always serialises")
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The state of a gate, in the protocol's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for `required - received` more approvals.
    Waiting {
        /// Distinct approvals so far.
        received: u32,
        /// minApprovals.
        required: u32,
    },
    /// Approved by people.
    Approved,
    /// Rejected by a person.
    Rejected,
    /// The deadline passed; what it means is the policy's `onTimeout`.
    TimedOut(OnTimeout),
    /// Cancelled by Tekton.
    Cancelled,
    /// A newer run waits at the same gate: this PipelineRun.
    Superseded(String),
    /// Bad input: the message says what to fix.
    Invalid(String),
}

/// A gate's ledger, split into the records the webhook sealed and what is not its.
pub struct Sealed {
    /// The ledger as parsed (every readable record).
    pub ledger: Ledger,
    /// Records with a valid seal, in ledger order.
    pub verified: Vec<Record>,
    /// What was ignored, and why (for `UnverifiedDecision`).
    pub ignored: Vec<String>,
    /// A seal made with a key we do not hold (rotated since we read the keys).
    pub unknown_key: Option<String>,
}

/// Reads a gate's ledger and keeps only what the webhook sealed: a ledger edited around the
/// webhook can neither open nor block the gate, nor show up as a decision anywhere.
pub fn sealed_records(run: &CustomRun, keys: &Keyring) -> Sealed {
    let ledger_text = run
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEDGER_ANNOTATION));
    let (ledger, unreadable) = Ledger::parse_lenient(ledger_text.map(String::as_str));
    let identity = seal::Gate {
        uid: run.metadata.uid.as_deref().unwrap_or_default(),
        namespace: run.metadata.namespace.as_deref().unwrap_or_default(),
        name: run.metadata.name.as_deref().unwrap_or_default(),
    };
    let mut unknown_key = None;
    let mut ignored: Vec<String> = unreadable
        .into_iter()
        .map(|why| format!("ignored an entry of {LEDGER_ANNOTATION}: {why}"))
        .collect();
    let mut verified = Vec::new();
    for record in ledger.records() {
        match keys.verify(&record_message(identity, record), Some(&record.seal)) {
            Verdict::Valid => verified.push(record.clone()),
            verdict => {
                if let Verdict::UnknownKey(id) = &verdict {
                    unknown_key = Some(id.clone());
                }
                ignored.push(unverified_message(record, &verdict));
            }
        }
    }
    Sealed {
        ledger,
        verified,
        ignored,
        unknown_key,
    }
}

/// `run` with only the sealed records in its ledger: what notifications may show.
pub fn with_sealed_ledger(run: &CustomRun, keys: &Keyring) -> CustomRun {
    let mut clean = run.clone();
    let verified = sealed_records(run, keys).verified;
    if let Some(annotations) = clean.metadata.annotations.as_mut() {
        if verified.is_empty() {
            annotations.remove(LEDGER_ANNOTATION);
        } else {
            annotations.insert(
                LEDGER_ANNOTATION.to_string(),
                Ledger::new(verified).to_annotation(),
            );
        }
    }
    clean
}

/// Is this status final? Ended gates are never reopened or rewritten.
pub fn has_ended(status: &CustomRunStatus) -> bool {
    status
        .succeeded()
        .is_some_and(|c| c.status == "True" || c.status == "False")
}

/// The gate's policy name if the API layer must look it up before planning: a named gate
/// that has not frozen its policy yet.
pub fn policy_to_look_up(run: &CustomRun) -> Option<&str> {
    let status = run.status.as_ref();
    let frozen = status.is_some_and(|s| s.start_time.is_some() && s.extra_fields.is_some());
    match classify(&run.spec)? {
        Gate::Named(name) if !frozen && !status.is_some_and(has_ended) => Some(name),
        _ => None,
    }
}

/// Plans a CustomRun; `None` if it is not a gate (never touch it). `keys` verify the
/// webhook's seals: a gate starts only with its admission seal, and only sealed decisions
/// count.
pub fn plan(
    run: &CustomRun,
    lookup: PolicyLookup<'_>,
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Option<Plan> {
    plan_with(run, lookup, keys, now, None)
}

/// The gates that supersede each other with this one: its namespace and frozen key, if its
/// policy has `supersede` and it is waiting.
pub fn supersede_line(status: &CustomRunStatus) -> Option<String> {
    if has_ended(status) || status.start_time.is_none() {
        return None;
    }
    let attempt = Attempt::of(status)?.ok()?;
    attempt
        .policy
        .supersede
        .then_some(attempt.policy.supersede_key)
        .flatten()
}

/// [`plan`], knowing whether a newer run waits at the same gate (`superseded_by`: its
/// PipelineRun). The API layer finds that out; a gate whose policy does not supersede
/// ignores it.
pub fn plan_with(
    run: &CustomRun,
    lookup: PolicyLookup<'_>,
    keys: &Keyring,
    now: DateTime<Utc>,
    superseded_by: Option<&str>,
) -> Option<Plan> {
    let gate = classify(&run.spec)?;
    let now = kube_now(now);
    let current = run.status.clone().unwrap_or_default();
    if has_ended(&current) {
        return Some(Plan::keep(current));
    }
    if run.spec.status.as_deref() == Some(RUN_CANCELLED) {
        return Some(cancelled(run, current, now));
    }
    let attempt = match Attempt::of(&current).filter(|_| current.start_time.is_some()) {
        Some(Ok(attempt)) => attempt,
        Some(Err(e)) => {
            return Some(invalid(
                current,
                now,
                format!(
                    "status.extraFields of this gate is unreadable ({e}); only the approval controller writes it"
                ),
            ));
        }
        None => {
            match gate_admission(run, keys) {
                Verdict::Valid => {}
                verdict => return Some(not_admitted(current, verdict)),
            }
            let namespace = run.metadata.namespace.as_deref().unwrap_or_default();
            match resolve(&gate, &run.spec, namespace, lookup) {
                Ok(mut policy) => {
                    policy.requested_by = run
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(REQUESTED_BY_ANNOTATION))
                        .cloned();
                    let label = |key: &str| run.metadata.labels.as_ref()?.get(key).cloned();
                    let origin = Origin {
                        pipeline_run: label(PIPELINE_RUN_LABEL),
                        pipeline: label(PIPELINE_LABEL),
                        pipeline_task: label(PIPELINE_TASK_LABEL),
                    };
                    policy.origin = (origin != Origin::default()).then_some(origin);
                    if policy.supersede && policy.supersede_key.is_none() {
                        // Tekton's labels: the Pipeline (the PipelineRun's name when its
                        // spec is embedded) and the pipeline task. A gate without them (made
                        // directly) supersedes nothing.
                        policy.supersede_key = label(PIPELINE_LABEL)
                            .zip(label(PIPELINE_TASK_LABEL))
                            .map(|(pipeline, task)| format!("{pipeline}/{task}"));
                    }
                    let deadline = policy.deadline_after().map(|d| now + d);
                    Attempt {
                        policy,
                        deadline,
                        recorded: 0,
                        unverified: 0,
                        held: 0,
                        notified: BTreeMap::new(),
                        decisions: Vec::new(),
                    }
                }
                Err(problems) => {
                    let message = problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Some(invalid(current, now, message));
                }
            }
        }
    };
    let annotations = run.metadata.annotations.as_ref();
    // A ledger edited around the webhook can neither open nor block the gate: what is not
    // the webhook's is reported and ignored, never an error.
    let ledger_text = annotations.and_then(|a| a.get(LEDGER_ANNOTATION));
    let Sealed {
        ledger,
        verified,
        ignored,
        unknown_key,
    } = sealed_records(run, keys);
    let archived = Attempt::archived_records(&current);
    let records = Ledger::new(verified).without(&archived);
    let unrecorded_input = [APPROVE_ANNOTATION, REJECT_ANNOTATION]
        .into_iter()
        .find(|a| annotations.is_some_and(|m| m.contains_key(*a)));
    let mut planner = Planner {
        run,
        current,
        attempt,
        records,
        now,
        events: Vec::new(),
    };
    let unverified_records = planner.announce_unverified(&ignored);
    let mut plan = planner.plan(unrecorded_input, superseded_by);
    plan.unverified_records = unverified_records;
    plan.unknown_key = unknown_key;
    // Records of archived attempts leave the ledger once their archive is in the status; if
    // this process stopped between the two writes, the next plan finishes the job.
    let archived_now = Attempt::archived_records(&plan.status);
    let remaining = Ledger::new(ledger.without(&archived_now));
    if remaining.records().len() != ledger.records().len() {
        plan.ledger_cleanup = Some(LedgerCleanup {
            expected: ledger_text.cloned().unwrap_or_default(),
            remaining: (!remaining.records().is_empty()).then(|| remaining.to_annotation()),
        });
    }
    Some(plan)
}

struct Planner<'a> {
    run: &'a CustomRun,
    current: CustomRunStatus,
    attempt: Attempt,
    records: Vec<Record>,
    now: DateTime<Utc>,
    events: Vec<GateEvent>,
}

impl Planner<'_> {
    fn plan(&mut self, unrecorded_input: Option<&str>, superseded_by: Option<&str>) -> Plan {
        let policy = &self.attempt.policy.clone();
        let start = self.current.start_time.unwrap_or(self.now);
        let tally = evaluate(policy, &self.records, self.attempt.deadline, self.now);
        if self.current.start_time.is_none() {
            self.event(
                Severity::Normal,
                event_reason::AWAITING_APPROVAL,
                waiting_message(policy, 0),
            );
        }
        self.announce_held(&tally);
        self.announce_decisions(&tally);
        let state = match &tally.outcome {
            Outcome::Waiting => match superseded_by {
                Some(newer) if policy.supersede => State::Superseded(newer.to_string()),
                _ => State::Waiting {
                    received: tally.received(),
                    required: policy.min_approvals,
                },
            },
            Outcome::Approved { .. } => State::Approved,
            Outcome::Rejected { .. } => State::Rejected,
            Outcome::TimedOut { .. } => State::TimedOut(policy.on_timeout),
        };
        match state {
            State::Waiting { received, .. } => {
                let mut message = waiting_message(policy, received);
                message.push_str(&pending_message(&tally.pending, self.attempt.deadline));
                if let Some(annotation) = unrecorded_input {
                    message.push_str(&format!(
                        " ({annotation} is on this CustomRun but was not recorded: the approval \
                         webhook is not installed or not reachable, and only decisions it records count)"
                    ));
                }
                let status = self.waiting_status(start, message);
                // The next held approval to take effect, or the deadline, whichever is first.
                let next_effect = tally.pending.first().and_then(|h| h.at);
                Plan {
                    status,
                    events: std::mem::take(&mut self.events),
                    requeue_at: match (next_effect, self.attempt.deadline) {
                        (Some(at), Some(deadline)) => Some(at.min(deadline)),
                        (at, deadline) => at.or(deadline),
                    },
                    ledger_cleanup: None,
                    ending: None,
                    not_admitted: None,
                    unverified_records: 0,
                    unknown_key: None,
                }
            }
            ended => self.end(start, &ended, &tally),
        }
    }

    /// One `UnverifiedDecision` per ledger entry that is not the webhook's, not announced
    /// before; returns how many are new.
    fn announce_unverified(&mut self, ignored: &[String]) -> usize {
        let new = ignored.get(self.attempt.unverified..).unwrap_or_default();
        for message in new {
            self.event(
                Severity::Warning,
                event_reason::UNVERIFIED_DECISION,
                message.clone(),
            );
        }
        self.attempt.unverified = ignored.len();
        new.len()
    }

    fn event(&mut self, severity: Severity, reason: &'static str, message: String) {
        self.events.push(GateEvent {
            severity,
            reason,
            message,
        });
    }

    /// One `ApprovalDeferred` per held-back approval not announced before.
    fn announce_held(&mut self, tally: &Tally) {
        let policy = self.attempt.policy.clone();
        for held in tally.held.iter().skip(self.attempt.held) {
            let mut message = format!(
                "{} approved; it {}",
                held.record.user,
                takes_effect_text(&policy, held, self.attempt.deadline)
            );
            if !held.record.comment.is_empty() {
                message.push_str(&format!(": {}", held.record.comment));
            }
            self.event(Severity::Normal, event_reason::APPROVAL_DEFERRED, message);
        }
        self.attempt.held = self.attempt.held.max(tally.held.len());
    }

    /// One `DecisionRecorded` per counted record not announced before.
    fn announce_decisions(&mut self, tally: &Tally) {
        let policy = self.attempt.policy.clone();
        for i in self.attempt.recorded..tally.counted.len() {
            let record = &tally.counted[i];
            let received = evaluate(&policy, &tally.counted[..=i], None, self.now).received();
            let mut message = format!("{} {}", record.user, record.decision.past_tense());
            if record.decision == Decision::Approve {
                message.push_str(&format!(" ({received} of {})", policy.min_approvals));
            }
            if !record.comment.is_empty() {
                message.push_str(&format!(": {}", record.comment));
            }
            self.event(Severity::Normal, event_reason::DECISION_RECORDED, message);
        }
        self.attempt.recorded = tally.counted.len();
    }

    fn waiting_status(&self, start: DateTime<Utc>, message: String) -> CustomRunStatus {
        let previous = self.current.succeeded();
        // lastTransitionTime moves only when `status` does: a new vote is not a transition.
        let since = previous
            .filter(|c| c.status == "Unknown" && self.current.start_time.is_some())
            .and_then(|c| c.last_transition_time)
            .unwrap_or(self.now);
        CustomRunStatus {
            conditions: vec![condition(
                "Unknown",
                reason::AWAITING_APPROVAL,
                message,
                since,
            )],
            start_time: Some(start),
            completion_time: None,
            results: Vec::new(),
            retries_status: self.current.retries_status.clone(),
            extra_fields: Some(self.attempt.to_value()),
            rest: self.current.rest.clone(),
        }
    }

    fn end(&mut self, start: DateTime<Utc>, state: &State, tally: &Tally) -> Plan {
        let policy = self.attempt.policy.clone();
        let (succeeded, reason_text, message, event) = describe_end(&policy, state, tally);
        let decided_at = match tally.outcome {
            Outcome::Approved { at } | Outcome::Rejected { at, .. } | Outcome::TimedOut { at } => {
                at
            }
            Outcome::Waiting => self.now,
        };
        self.event(event.0, event.1, message.clone());
        let ending = Some(Ending {
            outcome: metrics_label(state),
            waited: (decided_at - start).to_std().ok(),
        });
        let ended = CustomRunStatus {
            conditions: vec![condition(
                if succeeded { "True" } else { "False" },
                reason_text,
                message,
                self.now,
            )],
            start_time: Some(start),
            completion_time: Some(self.now),
            results: results(&policy, state, tally, decided_at),
            retries_status: self.current.retries_status.clone(),
            extra_fields: Some(self.attempt.to_value()),
            rest: self.current.rest.clone(),
        };
        let attempts_used = self.current.retries_status.len() as u32;
        // A superseded run is not retried: the newer run waits in its place.
        let superseded = matches!(state, State::Superseded(_));
        if succeeded || superseded || attempts_used >= self.run.spec.retries {
            return Plan {
                status: ended,
                events: std::mem::take(&mut self.events),
                requeue_at: None,
                ledger_cleanup: None,
                ending,
                not_admitted: None,
                unverified_records: 0,
                unknown_key: None,
            };
        }
        self.reopen(ended, ending)
    }

    /// Archives a failed attempt and starts the next one with the same frozen policy.
    fn reopen(&mut self, mut ended: CustomRunStatus, ending: Option<Ending>) -> Plan {
        let mut archived_attempt = self.attempt.clone();
        archived_attempt.decisions = self.records.clone();
        let notified = std::mem::take(&mut archived_attempt.notified);
        ended.extra_fields = Some(archived_attempt.to_value());
        ended.retries_status = Vec::new();
        let mut retries_status = self.current.retries_status.clone();
        retries_status.push(ended);
        let policy = self.attempt.policy.clone();
        let next = Attempt {
            deadline: policy.deadline_after().map(|d| self.now + d),
            policy,
            recorded: 0,
            unverified: 0,
            held: 0,
            notified,
            decisions: Vec::new(),
        };
        let attempt_number = retries_status.len() + 1;
        let total = self.run.spec.retries as usize + 1;
        let message = waiting_message(&next.policy, 0);
        self.event(
            Severity::Normal,
            event_reason::AWAITING_APPROVAL,
            format!("Reopened for attempt {attempt_number} of {total}: {message}"),
        );
        let status = CustomRunStatus {
            conditions: vec![condition(
                "Unknown",
                reason::AWAITING_APPROVAL,
                message,
                self.now,
            )],
            start_time: Some(self.now),
            completion_time: None,
            results: Vec::new(),
            retries_status,
            extra_fields: Some(next.to_value()),
            rest: self.current.rest.clone(),
        };
        Plan {
            requeue_at: next.deadline,
            status,
            events: std::mem::take(&mut self.events),
            ledger_cleanup: None,
            ending,
            not_admitted: None,
            unverified_records: 0,
            unknown_key: None,
        }
    }
}

/// `(succeeded, reason, message, (event severity, event reason))` of an ended attempt.
fn describe_end(
    policy: &Policy,
    state: &State,
    tally: &Tally,
) -> (bool, &'static str, String, (Severity, &'static str)) {
    let continue_on_reject = policy.on_reject == OnReject::Continue;
    let timed_out = || {
        format!(
            "No decision within {} ({} of {} approvals)",
            format_go_duration(policy.timeout),
            tally.received(),
            policy.min_approvals
        )
    };
    match state {
        State::Approved => (
            true,
            reason::APPROVED,
            format!("Approved by {}", tally.approved_by.join(", ")),
            (Severity::Normal, event_reason::APPROVED),
        ),
        State::Rejected => {
            let Outcome::Rejected { by, comment, .. } = &tally.outcome else {
                unreachable!("a rejected state comes from a rejected outcome")
            };
            let mut message = format!("Rejected by {by}");
            if !comment.is_empty() {
                message.push_str(&format!(": {comment}"));
            }
            (
                continue_on_reject,
                reason::REJECTED,
                message,
                (Severity::Warning, event_reason::REJECTED),
            )
        }
        State::TimedOut(OnTimeout::Fail) => (
            false,
            reason::TIMED_OUT,
            timed_out(),
            (Severity::Warning, event_reason::TIMED_OUT),
        ),
        State::TimedOut(OnTimeout::Approve) => (
            true,
            reason::APPROVED_ON_TIMEOUT,
            format!("{}: approved on timeout (onTimeout: approve)", timed_out()),
            (Severity::Warning, event_reason::TIMED_OUT),
        ),
        State::TimedOut(OnTimeout::Reject) => (
            continue_on_reject,
            reason::REJECTED_ON_TIMEOUT,
            format!("{}: rejected on timeout (onTimeout: reject)", timed_out()),
            (Severity::Warning, event_reason::TIMED_OUT),
        ),
        State::Superseded(newer) => (
            policy.on_supersede == OnSupersede::Continue,
            reason::SUPERSEDED,
            format!(
                "Superseded by PipelineRun {newer}, a newer run waiting at the same gate ({} of \
                 {} approvals)",
                tally.received(),
                policy.min_approvals
            ),
            (Severity::Normal, event_reason::SUPERSEDED),
        ),
        State::Waiting { .. } | State::Cancelled | State::Invalid(_) => {
            unreachable!("only decided states end an attempt here")
        }
    }
}

fn metrics_label(state: &State) -> &'static str {
    match state {
        State::Waiting { .. } => "waiting",
        State::Approved => "approved",
        State::Rejected => "rejected",
        State::TimedOut(OnTimeout::Fail) => "timed_out",
        State::TimedOut(OnTimeout::Approve) => "approved_on_timeout",
        State::TimedOut(OnTimeout::Reject) => "rejected_on_timeout",
        State::Cancelled => "cancelled",
        State::Invalid(_) => "invalid",
        State::Superseded(_) => "superseded",
    }
}

/// `Waiting for 1 more approval (1 of 2) from alice, group:release-managers: Release v1.2?`,
/// and when approvals take effect if the policy has a window.
pub fn waiting_message(policy: &Policy, received: u32) -> String {
    let missing = policy.min_approvals.saturating_sub(received);
    let plural = if missing == 1 { "" } else { "s" };
    let mut message = format!(
        "Waiting for {missing} more approval{plural} ({received} of {}) from {}",
        policy.min_approvals, policy.approvers
    );
    if !policy.message.is_empty() {
        message.push_str(&format!(": {}", policy.message));
    }
    if let Some(window) = &policy.approval_window {
        message.push_str(&format!(" (approvals take effect {window})"));
    }
    message
}

/// `; alice's approval takes effect at ...` for each approval held back, soonest first.
fn pending_message(pending: &[Held], deadline: Option<DateTime<Utc>>) -> String {
    pending
        .iter()
        .map(|held| {
            let when = match held.at {
                None => "waits for the approval window, which does not open within two years"
                    .to_string(),
                Some(at) if deadline.is_some_and(|d| at > d) => format!(
                    "would take effect at {}, after the deadline: it will not count",
                    rfc3339(at)
                ),
                Some(at) if held.by_window() => format!(
                    "takes effect at {}, when the approval window opens",
                    rfc3339(at)
                ),
                Some(at) => format!("takes effect at {} (deferred)", rfc3339(at)),
            };
            format!("; {}'s approval {when}", held.record.user)
        })
        .collect()
}

/// `takes effect at <time>, when the approval window (...) opens` for an event.
fn takes_effect_text(policy: &Policy, held: &Held, deadline: Option<DateTime<Utc>>) -> String {
    let window = policy
        .approval_window
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    match held.at {
        None => format!(
            "waits for the approval window ({window}), which does not open within two years"
        ),
        Some(at) if deadline.is_some_and(|d| at > d) => format!(
            "would take effect at {} when the approval window ({window}) opens, after the \
             deadline {}: it will not count",
            rfc3339(at),
            deadline.map(rfc3339).unwrap_or_default()
        ),
        Some(at) if held.by_window() => format!(
            "takes effect at {}, when the approval window ({window}) opens",
            rfc3339(at)
        ),
        Some(at) => format!("takes effect at {}, as the approver asked", rfc3339(at)),
    }
}

fn results(
    policy: &Policy,
    state: &State,
    tally: &Tally,
    decided_at: DateTime<Utc>,
) -> Vec<RunResult> {
    let decision = match state {
        State::Approved | State::TimedOut(OnTimeout::Approve) => "approved",
        State::Rejected | State::TimedOut(OnTimeout::Reject) => "rejected",
        State::Superseded(_) => "superseded",
        _ => "timed-out",
    };
    let json = |items: &[String]| serde_json::to_string(items).expect("strings serialise");
    // Every approval carries the same inputs (the webhook sees to it): the deciding one's
    // are the gate's.
    let decided_inputs = match state {
        State::Approved => tally.counted.last().map(|r| &r.inputs),
        _ => None,
    };
    let inputs = if policy.inputs.is_empty() {
        Vec::new()
    } else {
        inputs::published(&policy.inputs, decided_inputs)
    }
    .into_iter()
    .map(|(name, value)| RunResult { name, value });
    let mut results = vec![
        RunResult {
            name: result::DECISION.into(),
            value: decision.into(),
        },
        RunResult {
            name: result::APPROVED_BY.into(),
            value: json(&tally.approved_by),
        },
        RunResult {
            name: result::REJECTED_BY.into(),
            value: json(&tally.rejected_by),
        },
        RunResult {
            name: result::COMMENTS.into(),
            value: json(&tally.comments()),
        },
        RunResult {
            name: result::DECIDED_AT.into(),
            value: decided_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    ];
    results.extend(inputs);
    results
}

fn condition(status: &str, reason: &str, message: String, since: DateTime<Utc>) -> Condition {
    Condition {
        type_: SUCCEEDED.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: Some(since),
        rest: Default::default(),
    }
}

fn cancelled(run: &CustomRun, current: CustomRunStatus, now: DateTime<Utc>) -> Plan {
    let message = run
        .spec
        .status_message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "CustomRun cancelled".into());
    let start = current.start_time.unwrap_or(now);
    let waited = (now - start).to_std().ok();
    let status = CustomRunStatus {
        conditions: vec![condition("False", reason::CANCELLED, message, now)],
        start_time: Some(start),
        completion_time: Some(now),
        ..current
    };
    Plan {
        ending: Some(Ending {
            outcome: metrics_label(&State::Cancelled),
            waited,
        }),
        ..Plan::keep(status)
    }
}

/// `ignored a decision record claiming alice approved: ...`
fn unverified_message(record: &Record, verdict: &Verdict) -> String {
    let why = match verdict {
        Verdict::Missing => "it has no seal".to_string(),
        Verdict::UnknownKey(id) => {
            format!("its seal names key {id}, which this controller does not hold")
        }
        Verdict::Invalid | Verdict::Valid => "its seal does not match".to_string(),
    };
    format!(
        "ignored a record in {LEDGER_ANNOTATION} claiming {} {}: {why}, so the approval \
         webhook did not write it for this gate; it does not count",
        record.user,
        record.decision.past_tense(),
    )
}

/// A gate the webhook did not admit: its status stays as it is, and a Warning says why.
fn not_admitted(current: CustomRunStatus, verdict: Verdict) -> Plan {
    let why = match &verdict {
        Verdict::Missing => format!("it has no {ADMITTED_ANNOTATION} seal"),
        Verdict::UnknownKey(id) => format!(
            "its {ADMITTED_ANNOTATION} seal names key {id}, which this controller does not hold"
        ),
        Verdict::Invalid | Verdict::Valid => format!(
            "its {ADMITTED_ANNOTATION} seal does not match the gate (its spec or requester changed, or the seal was copied from another gate)"
        ),
    };
    let message = format!(
        "not started: the approval webhook did not admit this gate ({why}). It was created \
         while the webhook was not running, or edited around it, so nothing in it can be \
         trusted. Gates are created by Tekton from a Pipeline: start a new PipelineRun"
    );
    Plan {
        events: vec![GateEvent {
            severity: Severity::Warning,
            reason: event_reason::NOT_ADMITTED,
            message: message.clone(),
        }],
        not_admitted: Some(message),
        unknown_key: match verdict {
            Verdict::UnknownKey(id) => Some(id),
            _ => None,
        },
        ..Plan::keep(current)
    }
}

fn invalid(current: CustomRunStatus, now: DateTime<Utc>, message: String) -> Plan {
    let state = State::Invalid(message.clone());
    let status = CustomRunStatus {
        conditions: vec![condition("False", reason::INVALID, message.clone(), now)],
        start_time: Some(current.start_time.unwrap_or(now)),
        completion_time: Some(now),
        ..current
    };
    Plan {
        events: vec![GateEvent {
            severity: Severity::Warning,
            reason: event_reason::INVALID_APPROVAL,
            message,
        }],
        ending: Some(Ending {
            outcome: metrics_label(&state),
            waited: None,
        }),
        ..Plan::keep(status)
    }
}

#[cfg(test)]
mod tests;
