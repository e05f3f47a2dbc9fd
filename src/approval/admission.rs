//! Admission: the rules the webhook enforces on writes to a gate. The API server tells us
//! who is asking; only that identity is ever recorded. Pure: the HTTP layer passes the
//! request in and sends the answer back.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};

use super::eligibility::Approvers;
use super::inputs;
use super::ledger::{Decision, Ledger, Record};
use super::outcome::{Outcome, evaluate, takes_effect};
use super::plan::{Attempt, has_ended, reason};
use super::policy::SelfApproval;
use super::requester::{Stamping, stamp, unstamp, verified_copy};
use super::seal::{self, Keyring, Naming, Verdict, admission_message, record_message, sealed_spec};
use super::{
    ADMITTED_ANNOTATION, APPROVE_ANNOTATION, EFFECTIVE_AT_ANNOTATION, INPUT_ANNOTATION_PREFIX,
    LEDGER_ANNOTATION, REJECT_ANNOTATION, REQUESTED_BY_ANNOTATION, classify,
};
use crate::api::customrun::RUN_CANCELLED;
use crate::api::time::parse_go_duration;
use crate::api::{CustomRun, CustomRunSpec};

/// The longest comment recorded with a decision, in bytes: a comment is a sentence, and
/// every byte of it lives in the gate's annotations (and its events and results).
pub const MAX_COMMENT_BYTES: usize = 1024;
/// The API server's limit on all annotations of an object together.
pub const ANNOTATIONS_LIMIT: usize = 256 * 1024;
/// Room an approval must leave under [`ANNOTATIONS_LIMIT`], so that a veto always fits.
pub const VETO_RESERVE: usize = 32 * 1024;
/// Tekton's label naming the PipelineRun a run belongs to.
pub const PIPELINE_RUN_LABEL: &str = "tekton.dev/pipelineRun";
/// How far ahead an approver may defer an approval.
pub const MAX_DEFERRAL_DAYS: i64 = 366;

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
        /// What the writer should know (kubectl prints admission warnings): an approval that
        /// takes effect later says when.
        warning: Option<String>,
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
    /// Users that create runs on a PipelineRun's behalf (Tekton's controller): the only
    /// ones that create gates, and whose copied requested-by stamp is kept (once its seal
    /// verifies).
    pub trusted_creators: Vec<String>,
    /// Users and `group:` entries that may also create gates directly (an explicit opt-in,
    /// for benchmarks and tests; empty by default).
    pub direct_creators: Approvers,
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
        stamping: Stamping<'_>,
    ) -> Result<Mutation, Denial> {
        let name = match stamping.naming {
            Naming::Name(name) => name.to_string(),
            Naming::GenerateName(prefix) => format!("{prefix}*"),
        };
        let operations = stamp(
            operation,
            old,
            new,
            requester.username,
            self.trusts(requester),
            &format!("PipelineRun {}/{name}", stamping.namespace),
            stamping,
        )?;
        Ok(patch_or_unchanged(operations, None))
    }

    /// Judges one write to a CustomRun. `keys` seal what the webhook writes and verify what
    /// it reads.
    pub fn admit(
        &self,
        operation: Operation,
        old: Option<&CustomRun>,
        new: &CustomRun,
        requester: Requester<'_>,
        keys: &Keyring,
        now: DateTime<Utc>,
    ) -> Result<Mutation, Denial> {
        let was_gate = old.is_some_and(|o| classify(&o.spec).is_some());
        if !was_gate && classify(&new.spec).is_none() {
            return Ok(Mutation::Unchanged);
        }
        let old = match (operation, old) {
            (Operation::Create, _) | (Operation::Update, None) => {
                return self.admit_creation(new, requester, keys);
            }
            (Operation::Update, Some(old)) => old,
        };
        let is_controller = requester.username == self.controller_username;
        let name = gate_name(new);
        if without_cancellation(&old.spec) != without_cancellation(&new.spec) {
            return Err(Denial(format!(
                "the spec of {name} cannot change after it is created (only Tekton's \
                 cancellation fields spec.status and spec.statusMessage may): start a new \
                 PipelineRun instead"
            )));
        }
        if cancellation(&old.spec) != cancellation(&new.spec) {
            self.check_cancellation(old, &name, requester)?;
        }
        stamp(
            Operation::Update,
            old.metadata.annotations.as_ref(),
            new.metadata.annotations.as_ref(),
            requester.username,
            false,
            &name,
            Stamping {
                keys,
                namespace: "",
                naming: Naming::Name(""),
            },
        )?;
        if annotation(new, ADMITTED_ANNOTATION) != annotation(old, ADMITTED_ANNOTATION) {
            return Err(Denial(format!(
                "{ADMITTED_ANNOTATION} of {name} cannot be set or changed: it is the approval \
                 webhook's seal on the gate it admitted"
            )));
        }
        let new_ledger = annotation(new, LEDGER_ANNOTATION);
        if new_ledger != annotation(old, LEDGER_ANNOTATION) && !is_controller {
            return Err(Denial(format!(
                "{LEDGER_ANNOTATION} of {name} is written only by the approval webhook: to \
                 decide, annotate {APPROVE_ANNOTATION} or {REJECT_ANNOTATION} instead"
            )));
        }
        // Input annotations that were already there (from a time without this webhook) are
        // not a decision by whoever writes now: they are dropped, never recorded.
        let (fresh, stale): (Vec<&str>, Vec<&str>) =
            decisions(new).partition(|input| annotation(new, input) != annotation(old, input));
        let (fresh_extras, stale_extras): (Vec<&str>, Vec<&str>) = approval_extras(new)
            .partition(|extra| annotation(new, extra) != annotation(old, extra));
        let mut operations: Vec<Value> = stale
            .iter()
            .chain(&stale_extras)
            .map(|input| remove(input))
            .collect();
        if let Some(extra) = fresh_extras.first() {
            match fresh.as_slice() {
                [] => {
                    return Err(Denial(format!(
                        "{extra} on {name} goes with an approval: set it together with \
                         {APPROVE_ANNOTATION} in one request (kubectl approval approve --input \
                         name=value --at <time>)"
                    )));
                }
                [REJECT_ANNOTATION] => {
                    return Err(Denial(format!(
                        "{extra} cannot go with a rejection on {name}: a rejection takes effect \
                         at once and gives no inputs; remove it"
                    )));
                }
                _ => {}
            }
        }
        let mut warning = None;
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
                let effective_at = match annotation(new, EFFECTIVE_AT_ANNOTATION)
                    .filter(|_| fresh_extras.contains(&EFFECTIVE_AT_ANNOTATION))
                {
                    Some(text) => parse_effective_at(text, now.trunc_subsecs(3)).map_err(Denial)?,
                    None => None,
                };
                let given_inputs = fresh_extras
                    .iter()
                    .filter_map(|key| {
                        let name = key.strip_prefix(INPUT_ANNOTATION_PREFIX)?;
                        Some((name.to_string(), annotation(new, key)?.to_string()))
                    })
                    .collect();
                let asked = Ask {
                    old,
                    new,
                    name: &name,
                    input,
                    decision,
                    comment,
                    effective_at,
                    inputs: given_inputs,
                };
                let (record, ledger, held) = self.decide(asked, requester, keys, now)?;
                warning = held;
                operations.push(remove(input));
                operations.extend(fresh_extras.iter().map(|extra| remove(extra)));
                operations.push(json!({
                    "op": "add",
                    "path": annotation_pointer(LEDGER_ANNOTATION),
                    "value": ledger.to_annotation(),
                }));
                Some(record)
            }
            _ => unreachable!("there are two input annotations"),
        };
        Ok(match patch_or_unchanged(operations, recorded) {
            Mutation::Patch {
                operations,
                recorded,
                ..
            } => Mutation::Patch {
                operations,
                recorded,
                warning,
            },
            unchanged => unchanged,
        })
    }

    /// A new gate: only Tekton (or an opted-in direct creator) makes one, and the webhook
    /// seals what it admitted, so that the controller can tell.
    fn admit_creation(
        &self,
        new: &CustomRun,
        requester: Requester<'_>,
        keys: &Keyring,
    ) -> Result<Mutation, Denial> {
        let name = gate_name(new);
        let trusted = self.trusts(requester);
        if !trusted
            && !self
                .direct_creators
                .admits(requester.username, requester.groups)
        {
            return Err(Denial(format!(
                "{user} may not create {name} directly: approval gates are created by Tekton \
                 when a PipelineRun reaches a pipeline task with taskRef {{apiVersion: \
                 approval.tekton.dev/v1alpha1, kind: Approval}}. Put the gate in a Pipeline \
                 and start a PipelineRun (the platform team can allow direct gates with the \
                 webhook's --direct-gate-creator)",
                user = requester.username,
            )));
        }
        if annotation(new, LEDGER_ANNOTATION).is_some() {
            return Err(Denial(format!(
                "{LEDGER_ANNOTATION} cannot be set when {name} is created: it is written \
                 only by the approval webhook when approvers decide"
            )));
        }
        let first_decision: Option<&str> = decisions(new).next();
        if let Some(input) = first_decision.or_else(|| approval_extras(new).next()) {
            return Err(Denial(format!(
                "{input} cannot be set when {name} is created: decide once the gate is \
                 waiting, with kubectl annotate customrun ... {input}=\"comment\""
            )));
        }
        let namespace = new.metadata.namespace.as_deref().unwrap_or_default();
        let naming = Naming::of(
            new.metadata.name.as_deref(),
            new.metadata.generate_name.as_deref(),
        );
        let annotations = new.metadata.annotations.as_ref();
        let mut operations = Vec::new();
        if annotations.is_none() {
            operations.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
        }
        let requested_by = if trusted {
            let pipeline_run = new
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(PIPELINE_RUN_LABEL))
                .map(String::as_str);
            let verified = verified_copy(annotations, keys, namespace, pipeline_run);
            if verified.is_none() {
                // A stamp we cannot vouch for would let the requester pass for someone
                // else: the gate knows no requester instead (and fails closed).
                operations.extend(annotations.map(unstamp).unwrap_or_default());
            }
            verified.map(str::to_string)
        } else {
            let stamping = Stamping {
                keys,
                namespace,
                naming,
            };
            operations.extend(stamp(
                Operation::Create,
                None,
                Some(annotations.unwrap_or(&BTreeMap::new())),
                requester.username,
                false,
                &name,
                stamping,
            )?);
            Some(requester.username.to_string())
        };
        let spec = sealed_spec(&new.spec);
        let sealed = keys.seal(&admission_message(
            namespace,
            naming,
            &spec,
            requested_by.as_deref(),
        ));
        operations.push(json!({
            "op": "add",
            "path": annotation_pointer(ADMITTED_ANNOTATION),
            "value": sealed,
        }));
        Ok(patch_or_unchanged(operations, None))
    }

    /// Cancelling a gate directly is a veto: only Tekton (propagating its PipelineRun's
    /// cancellation or timeout) or one of the gate's approvers may.
    fn check_cancellation(
        &self,
        old: &CustomRun,
        name: &str,
        requester: Requester<'_>,
    ) -> Result<(), Denial> {
        if self.trusts(requester) {
            return Ok(());
        }
        let status = old.status.clone().unwrap_or_default();
        let approvers = Attempt::of(&status)
            .and_then(Result::ok)
            .filter(|_| status.start_time.is_some())
            .map(|attempt| attempt.policy.approvers);
        if approvers
            .as_ref()
            .is_some_and(|a| a.admits(requester.username, requester.groups))
        {
            return Ok(());
        }
        let pipeline_run = old
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PIPELINE_RUN_LABEL))
            .map(String::as_str)
            .unwrap_or("<pipelinerun>");
        let who = match approvers {
            Some(approvers) => format!("one of its approvers ({approvers})"),
            None => "its approvers (once it is waiting)".to_string(),
        };
        Err(Denial(format!(
            "{user} may not cancel {name}: only Tekton (when the PipelineRun is cancelled or \
             times out) or {who} may. To stop the pipeline, cancel the PipelineRun: tkn \
             pipelinerun cancel {pipeline_run}",
            user = requester.username,
        )))
    }

    /// Checks that a decision may be made now by this requester, and records it (sealed).
    /// The message is set when the approval takes effect later, and says when.
    fn decide(
        &self,
        ask: Ask<'_>,
        requester: Requester<'_>,
        keys: &Keyring,
        now: DateTime<Utc>,
    ) -> Result<(Record, Ledger, Option<String>), Denial> {
        let Ask {
            old,
            new,
            name,
            input,
            decision,
            comment,
            effective_at,
            inputs: given_inputs,
        } = ask;
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
        if comment.len() > MAX_COMMENT_BYTES {
            return Err(Denial(format!(
                "the comment in {input} on {name} is {} bytes; at most {MAX_COMMENT_BYTES} are \
                 recorded: shorten it (link to a longer note instead)",
                comment.len()
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
                        "{name} does not know who started its run (no verifiable \
                         {REQUESTED_BY_ANNOTATION}: it was created while the approval webhook \
                         was not stamping runs) and {policy_name} does not allow \
                         self-approval, so no approval can be recorded: start a new run"
                    )));
                }
            }
        }
        let gate = seal::Gate {
            uid: old.metadata.uid.as_deref().unwrap_or_default(),
            namespace: old.metadata.namespace.as_deref().unwrap_or_default(),
            name: old.metadata.name.as_deref().unwrap_or_default(),
        };
        // Only records the webhook sealed for this very object are kept and weighed: the
        // rest was written around it, and must neither count nor take up room.
        let (written, _) = Ledger::parse_lenient(annotation(old, LEDGER_ANNOTATION));
        let mut ledger = Ledger::new(
            written
                .records()
                .iter()
                .filter(|r| keys.verify(&record_message(gate, r), Some(&r.seal)) == Verdict::Valid)
                .cloned()
                .collect(),
        );
        let archived = Attempt::archived_records(&status);
        let now = now.trunc_subsecs(3);
        let current = ledger.without(&archived);
        // The controller may not have written the end yet; the ledger already knows it.
        let tally = evaluate(policy, &current, attempt.deadline, now);
        match tally.outcome {
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
        if let Some(at) = effective_at {
            if attempt.deadline.is_some_and(|deadline| at > deadline) {
                return Err(Denial(format!(
                    "{name} times out at {}, before {}: an approval deferred past the deadline \
                     would never count; approve for an earlier time",
                    rfc3339(attempt.deadline.unwrap_or(at)),
                    rfc3339(at),
                )));
            }
            if at > now + chrono::Duration::days(MAX_DEFERRAL_DAYS) {
                return Err(Denial(format!(
                    "{EFFECTIVE_AT_ANNOTATION} {} on {name} is more than {MAX_DEFERRAL_DAYS} days \
                     ahead: approve for an earlier time",
                    rfc3339(at)
                )));
            }
        }
        if decision == Decision::Approve {
            // One approval per user and attempt: repeating it changes nothing, and must not
            // grow the ledger. An approval that has not taken effect yet may be replaced
            // (brought forward, or moved).
            if let Some(earlier) = tally.counted.iter().find(|r| r.user == requester.username) {
                return Err(Denial(format!(
                    "{user} already approved {name} at {at} ({received} of {required}): an \
                     approval counts once, nothing was changed",
                    user = requester.username,
                    at = rfc3339(earlier.time),
                    received = tally.received(),
                    required = policy.min_approvals,
                )));
            }
        }
        let chosen = match decision {
            Decision::Approve => {
                // The values the other approvals of this attempt carry (in effect or not).
                let agreed = tally
                    .counted
                    .iter()
                    .chain(tally.pending.iter().map(|held| &held.record))
                    .find(|r| r.decision == Decision::Approve && r.user != requester.username)
                    .map(|r| (r.user.as_str(), &r.inputs));
                inputs::choose(&policy.inputs, &given_inputs, agreed)
                    .map_err(|why| Denial(format!("{why} ({name})")))?
            }
            Decision::Reject => BTreeMap::new(),
        };
        let mut record = Record {
            user: requester.username.to_string(),
            groups: policy.approvers.matching_groups(requester.groups),
            decision,
            comment,
            time: now,
            effective_at,
            inputs: chosen,
            seal: String::new(),
        };
        let held = match takes_effect(policy, &record) {
            // At once: the second it is admitted in.
            Some(at) if at <= now => None,
            Some(at) if attempt.deadline.is_some_and(|d| at > d) => Some(format!(
                "{name}: the approval window ({}) opens only at {}, after the deadline {}: \
                 this approval is recorded but will not count",
                window_text(policy),
                rfc3339(at),
                rfc3339(attempt.deadline.unwrap_or(at)),
            )),
            Some(at) if effective_at.is_some_and(|asked| asked == at) => Some(format!(
                "{name}: this approval takes effect at {}; a rejection before then wins",
                rfc3339(at)
            )),
            Some(at) => Some(format!(
                "{name}: the approval window ({}) is closed; this approval takes effect at {}, \
                 when it opens (a rejection before then wins)",
                window_text(policy),
                rfc3339(at)
            )),
            None => Some(format!(
                "{name}: the approval window ({}) does not open within two years: this approval \
                 is recorded but will not count",
                window_text(policy)
            )),
        };
        record.seal = keys.seal(&record_message(gate, &record));
        ledger.push(record.clone());
        let size = annotations_size_after(new, input, &ledger.to_annotation());
        let limit = match decision {
            Decision::Approve => ANNOTATIONS_LIMIT - VETO_RESERVE,
            Decision::Reject => ANNOTATIONS_LIMIT,
        };
        if size > limit {
            return Err(Denial(format!(
                "{name} has no room left for this {what}: its annotations would take {size} \
                 bytes, and approvals may use at most {limit} so that a rejection always fits. \
                 {advice}",
                what = if decision == Decision::Approve {
                    "approval"
                } else {
                    "rejection"
                },
                advice = if decision == Decision::Approve {
                    "Reject it, or shorten the comment"
                } else {
                    "Reject without a comment"
                },
            )));
        }
        Ok((record, ledger, held))
    }
}

fn window_text(policy: &super::policy::Policy) -> String {
    policy
        .approval_window
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// A decision asked for by an input annotation.
struct Ask<'a> {
    old: &'a CustomRun,
    new: &'a CustomRun,
    name: &'a str,
    input: &'a str,
    decision: Decision,
    comment: String,
    /// When the approver wants the approval to take effect (`None`: at once).
    effective_at: Option<DateTime<Utc>>,
    /// Input values given with an approval, by input name.
    inputs: BTreeMap<String, String>,
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

/// A time as the messages of the core write it: RFC 3339, whole seconds, `Z`.
pub(super) fn rfc3339(time: DateTime<Utc>) -> String {
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

/// The decision annotations (approve, reject) set on `run`.
fn decisions(run: &CustomRun) -> impl Iterator<Item = &'static str> + '_ {
    [APPROVE_ANNOTATION, REJECT_ANNOTATION]
        .into_iter()
        .filter(|a| annotation(run, a).is_some())
}

/// The annotations that go with an approval (`effective-at`, `input-<name>`) set on `run`.
fn approval_extras(run: &CustomRun) -> impl Iterator<Item = &str> + '_ {
    run.metadata
        .annotations
        .iter()
        .flatten()
        .map(|(key, _)| key.as_str())
        .filter(|key| *key == EFFECTIVE_AT_ANNOTATION || key.starts_with(INPUT_ANNOTATION_PREFIX))
}

fn patch_or_unchanged(operations: Vec<Value>, recorded: Option<Record>) -> Mutation {
    if operations.is_empty() {
        Mutation::Unchanged
    } else {
        Mutation::Patch {
            operations,
            recorded,
            warning: None,
        }
    }
}

/// When an approval asks to take effect: `None` for at once. `text` is an RFC 3339 time
/// or a Go duration from `now`.
fn parse_effective_at(text: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    let text = text.trim();
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => match parse_go_duration(text) {
            Ok(after) => now + chrono::Duration::from_std(after).map_err(|e| e.to_string())?,
            Err(_) => {
                return Err(format!(
                    "{EFFECTIVE_AT_ANNOTATION} must be an RFC 3339 time (2026-12-01T09:00:00Z) \
                     or a duration from now (2h, 30m), got `{text}`"
                ));
            }
        },
    };
    Ok((at > now).then(|| at.trunc_subsecs(3)))
}

/// Bytes of all annotations once `input` is consumed and the ledger is `ledger`, counted
/// as the API server counts them (keys and values).
fn annotations_size_after(new: &CustomRun, input: &str, ledger: &str) -> usize {
    let annotations = new.metadata.annotations.iter().flatten();
    annotations
        .filter(|(key, _)| key.as_str() != input && key.as_str() != LEDGER_ANNOTATION)
        .map(|(key, value)| key.len() + value.len())
        .sum::<usize>()
        + LEDGER_ANNOTATION.len()
        + ledger.len()
}

fn cancellation(spec: &CustomRunSpec) -> (Option<&str>, Option<&str>) {
    (spec.status.as_deref(), spec.status_message.as_deref())
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
