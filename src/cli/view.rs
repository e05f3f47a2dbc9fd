//! A gate as the approver sees it: the facts `list`, `describe` and `-o json|yaml` show, read
//! once from a CustomRun with the library's own rules (frozen attempt, ledger, eligibility).
//! Pure: the identity comes from the cluster layer, and nothing here reads the clock.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::target::{PIPELINE_RUN_LABEL, PIPELINE_TASK_LABEL, label};
use crate::api::time::from_jiff;
use crate::api::{CustomRun, RunResult};
use crate::approval::LEDGER_ANNOTATION;
use crate::approval::inputs::Input;
use crate::approval::ledger::{Ledger, Record};
use crate::approval::outcome::evaluate;
use crate::approval::plan::{Attempt, has_ended};
use crate::approval::policy::{OnReject, OnTimeout, Origin};

/// Who is asking, as the API server authenticates them (from a SelfSubjectReview; with
/// `--as`, the impersonated user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The user name.
    pub username: String,
    /// The groups.
    pub groups: Vec<String>,
}

/// A started gate's frozen value; a gate not started yet has only the live one.
fn frozen<'a>(
    origin: Option<&Origin>,
    field: impl FnOnce(&Origin) -> &Option<String>,
    live: impl FnOnce() -> Option<&'a str>,
) -> Option<String> {
    match origin {
        Some(origin) => field(origin).clone(),
        None => live().map(str::to_string),
    }
}

/// The status reason shown for a gate the controller has not started yet.
pub const PENDING: &str = "Pending";

/// One gate, ready to print.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateView {
    /// The CustomRun's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The PipelineRun it belongs to (label `tekton.dev/pipelineRun`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_run: Option<String>,
    /// The pipeline task it runs (label `tekton.dev/pipelineTask`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_task: Option<String>,
    /// The Pipeline (label `tekton.dev/pipeline`; a PipelineRun with an embedded spec is its
    /// own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Who started the run, as frozen when the gate started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The `Succeeded` condition's reason (`AwaitingApproval`, `Approved`, ...), or `Pending`.
    pub status: String,
    /// The condition's message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    /// True once the gate was decided, timed out, failed or was cancelled.
    pub ended: bool,
    /// What approvers are asked (the frozen `message`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The frozen approvers (empty before the gate starts, or when it is invalid).
    pub approvers: Vec<String>,
    /// The frozen quorum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_approvals: Option<u32>,
    /// Distinct eligible users whose latest decision is approve.
    pub approvals: u32,
    /// The named `Approval` policy the gate uses, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What the deadline means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
    /// What a rejection means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<OnReject>,
    /// When the CustomRun was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// When the current attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// When the current attempt times out (none: no deadline, or not started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// When the gate ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<DateTime<Utc>>,
    /// The current attempt, from 1.
    pub attempt: u32,
    /// 1 + `spec.retries`.
    pub attempts: u32,
    /// Whether the current user may decide now: `None` when that is not known (no identity,
    /// or the gate has not frozen its approvers yet).
    pub can_decide: Option<bool>,
    /// When approvals take effect (the frozen window), if the policy has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_window: Option<String>,
    /// Whether the window is open now (none without a window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_open: Option<bool>,
    /// What an approver gives with an approval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    /// Approvals recorded that have not taken effect yet, soonest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingApproval>,
    /// When the first of them takes effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_until: Option<DateTime<Utc>>,
    /// The current attempt's decisions, oldest first.
    pub decisions: Vec<Record>,
    /// Why the ledger could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_error: Option<String>,
    /// Results, in the order the controller wrote them.
    pub results: Vec<RunResult>,
    /// Attempts that ended and were retried, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<EarlierAttempt>,
}

/// An approval that takes effect later (deferred, or outside the approval window).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    /// Who approved.
    pub user: String,
    /// When it takes effect; none if the window does not open within two years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub takes_effect: Option<DateTime<Utc>>,
}

/// An attempt archived in `status.retriesStatus`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EarlierAttempt {
    /// Its condition's reason.
    pub status: String,
    /// Its condition's message.
    pub status_message: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<DateTime<Utc>>,
    /// The decisions it consumed.
    pub decisions: Vec<Record>,
}

impl GateView {
    /// Reads a gate. `identity` is `None` when the current user could not be found out.
    pub fn new(run: &CustomRun, identity: Option<&Identity>, now: DateTime<Utc>) -> Self {
        let status = run.status.clone().unwrap_or_default();
        let condition = status.succeeded();
        let ended = has_ended(&status);
        // The attempt data means something only once the controller started the attempt;
        // a leftover from before a reset must not pass for the current policy.
        let attempt = Attempt::of(&status)
            .filter(|_| status.start_time.is_some())
            .and_then(Result::ok);
        let archived = Attempt::archived_records(&status);
        // As written: the CLI holds no seal key, so a record written around the webhook shows
        // here too (the controller ignores it and says so in an UnverifiedDecision event).
        let (ledger, unreadable) = Ledger::parse_lenient(ledger_text(run));
        let decisions = ledger.without(&archived);
        let ledger_error = (!unreadable.is_empty()).then(|| {
            format!(
                "the ledger annotation {LEDGER_ANNOTATION} has entries that are not records: {}",
                unreadable.join("; ")
            )
        });
        // The deadline is left out: this counts votes in effect, whether or not the
        // controller has ended the gate yet.
        let tally = attempt
            .as_ref()
            .map(|a| evaluate(&a.policy, &decisions, None, now));
        let approvals = tally.as_ref().map_or(0, |t| t.received());
        let pending: Vec<PendingApproval> = tally
            .iter()
            .filter(|_| !ended)
            .flat_map(|t| &t.pending)
            .map(|held| PendingApproval {
                user: held.record.user.clone(),
                takes_effect: held.at,
            })
            .collect();
        let can_decide = match (&attempt, identity) {
            _ if ended => Some(false),
            (Some(attempt), Some(me)) => {
                Some(attempt.policy.approvers.admits(&me.username, &me.groups))
            }
            _ => None,
        };
        let policy = attempt.as_ref().map(|a| &a.policy);
        let origin = policy.map(|p| p.origin.clone().unwrap_or_default());
        let origin = origin.as_ref();
        GateView {
            name: run.metadata.name.clone().unwrap_or_default(),
            namespace: run.metadata.namespace.clone().unwrap_or_default(),
            // As frozen when the gate started (labels may be edited since), else (not started
            // yet) Tekton's labels.
            pipeline_run: frozen(
                origin,
                |o| &o.pipeline_run,
                || label(run, PIPELINE_RUN_LABEL),
            ),
            pipeline_task: frozen(
                origin,
                |o| &o.pipeline_task,
                || label(run, PIPELINE_TASK_LABEL),
            ),
            pipeline: frozen(
                origin,
                |o| &o.pipeline,
                || label(run, crate::approval::PIPELINE_LABEL),
            ),
            requested_by: policy.and_then(|p| p.requested_by.clone()),
            status: condition
                .map(|c| c.reason.clone())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| PENDING.into()),
            status_message: condition.map(|c| c.message.clone()).unwrap_or_default(),
            ended,
            message: policy.map(|p| p.message.clone()).unwrap_or_default(),
            approvers: policy
                .map(|p| {
                    p.approvers
                        .entries()
                        .iter()
                        .map(ToString::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            min_approvals: policy.map(|p| p.min_approvals),
            approvals,
            policy: policy.and_then(|p| p.policy.clone()),
            on_timeout: policy.map(|p| p.on_timeout),
            on_reject: policy.map(|p| p.on_reject),
            created: run
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| from_jiff(t.0)),
            started: status.start_time,
            deadline: attempt.as_ref().and_then(|a| a.deadline),
            completed: status.completion_time,
            attempt: status.retries_status.len() as u32 + 1,
            attempts: run.spec.retries + 1,
            can_decide,
            approval_window: policy
                .and_then(|p| p.approval_window.as_ref())
                .map(ToString::to_string),
            window_open: policy
                .and_then(|p| p.approval_window.as_ref())
                .map(|w| w.is_open(now)),
            inputs: policy.map(|p| p.inputs.clone()).unwrap_or_default(),
            waiting_until: pending.first().and_then(|p| p.takes_effect),
            pending,
            decisions,
            ledger_error,
            results: status.results.clone(),
            earlier_attempts: status
                .retries_status
                .iter()
                .map(|s| {
                    let condition = s.succeeded();
                    EarlierAttempt {
                        status: condition.map(|c| c.reason.clone()).unwrap_or_default(),
                        status_message: condition.map(|c| c.message.clone()).unwrap_or_default(),
                        completed: s.completion_time,
                        decisions: Attempt::of(s)
                            .and_then(Result::ok)
                            .map(|a| a.decisions)
                            .unwrap_or_default(),
                    }
                })
                .collect(),
        }
    }
}

/// The ledger annotation's value, if any.
pub fn ledger_text(run: &CustomRun) -> Option<&str> {
    run.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEDGER_ANNOTATION))
        .map(String::as_str)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A waiting two-approver gate with one approval, as the controller and webhook leave it.
    pub fn waiting_gate() -> Value {
        json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {
                "name": "release-x7k2p-approve", "namespace": "ci",
                "creationTimestamp": "2026-11-22T10:00:00Z",
                "labels": {"tekton.dev/pipelineRun": "release-x7k2p",
                           "tekton.dev/pipelineTask": "approve-release"},
                "annotations": {"approval.tekton.dev/decisions":
                    r#"[{"user":"bob","groups":["release-managers"],"decision":"approve","comment":"tests are green","time":"2026-11-22T10:20:00Z"}]"#}
            },
            "spec": {
                "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
                "params": [{"name": "approvers", "value": ["alice", "group:release-managers"]},
                           {"name": "minApprovals", "value": "2"}],
                "timeout": "24h0m0s"
            },
            "status": {
                "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "AwaitingApproval",
                    "message": "Waiting for 1 more approval (1 of 2) from alice, group:release-managers: Release v1.2 to production?",
                    "lastTransitionTime": "2026-11-22T10:00:01Z"}],
                "startTime": "2026-11-22T10:00:01Z",
                "extraFields": {"approvers": ["alice", "group:release-managers"], "minApprovals": 2,
                    "message": "Release v1.2 to production?", "onTimeout": "fail", "onReject": "fail",
                    "timeout": "24h0m0s", "deadline": "2026-11-23T10:00:01Z", "recorded": 1,
                    "origin": {"pipelineRun": "release-x7k2p", "pipelineTask": "approve-release"}}
            }
        })
    }

    /// The waiting gate with an approval window (closed at `now()`, 12:00 UTC), inputs, and
    /// alice's approval deferred to 13:30.
    pub fn windowed_gate() -> Value {
        let mut gate = waiting_gate();
        gate["status"]["extraFields"]["approvalWindow"] =
            json!({"timeZone": "UTC", "days": ["Mon-Fri"], "hours": "09:00-17:00"});
        gate["status"]["extraFields"]["inputs"] = json!([
            {"name": "target", "description": "where to deploy", "choices": ["staging", "production"], "required": true},
            {"name": "replicas", "default": "3"}]);
        gate["metadata"]["annotations"]["approval.tekton.dev/decisions"] = json!(
            r#"[{"user":"bob","groups":["release-managers"],"decision":"approve","time":"2026-11-22T10:20:00Z","inputs":{"replicas":"3","target":"production"}},{"user":"alice","decision":"approve","time":"2026-11-22T11:00:00Z","effectiveAt":"2026-11-22T13:30:00Z","inputs":{"replicas":"3","target":"production"}}]"#
        );
        gate
    }

    /// A gate rejected on its second attempt, its first attempt archived.
    pub fn rejected_gate() -> Value {
        json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {
                "name": "deploy-q9z-gate", "namespace": "prod",
                "creationTimestamp": "2026-11-20T08:00:00Z",
                "labels": {"tekton.dev/pipelineRun": "deploy-q9z", "tekton.dev/pipelineTask": "gate"},
                "annotations": {"approval.tekton.dev/decisions":
                    r#"[{"user":"carol","decision":"reject","comment":"not during the freeze","time":"2026-11-21T09:00:00Z"}]"#}
            },
            "spec": {
                "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "name": "production"},
                "retries": 1
            },
            "status": {
                "conditions": [{"type": "Succeeded", "status": "False", "reason": "Rejected",
                    "message": "Rejected by carol: not during the freeze"}],
                "startTime": "2026-11-20T12:00:00Z",
                "completionTime": "2026-11-21T09:00:00Z",
                "results": [{"name": "decision", "value": "rejected"},
                            {"name": "approvedBy", "value": "[]"},
                            {"name": "rejectedBy", "value": "[\"carol\"]"},
                            {"name": "comments", "value": "[\"carol: not during the freeze\"]"},
                            {"name": "decidedAt", "value": "2026-11-21T09:00:00Z"}],
                "extraFields": {"approvers": ["carol", "dave"], "minApprovals": 1,
                    "onTimeout": "fail", "onReject": "fail", "timeout": "0s", "policy": "production",
                    "recorded": 1, "origin": {"pipelineRun": "deploy-q9z", "pipelineTask": "gate"}},
                "retriesStatus": [{
                    "conditions": [{"type": "Succeeded", "status": "False", "reason": "Rejected",
                        "message": "Rejected by dave"}],
                    "startTime": "2026-11-20T08:00:01Z",
                    "completionTime": "2026-11-20T12:00:00Z",
                    "extraFields": {"approvers": ["carol", "dave"], "minApprovals": 1,
                        "timeout": "0s", "policy": "production", "recorded": 1,
                        "decisions": [{"user": "dave", "decision": "reject", "time": "2026-11-20T12:00:00Z"}]}
                }]
            }
        })
    }

    /// A gate the controller has not seen yet.
    pub fn pending_gate() -> Value {
        json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {"name": "hotfix-gate", "namespace": "ci",
                         "creationTimestamp": "2026-11-22T11:59:30Z"},
            "spec": {"customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"}}
        })
    }

    pub fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    pub fn run(value: Value) -> CustomRun {
        serde_json::from_value(value).unwrap()
    }

    pub fn alice() -> Identity {
        Identity {
            username: "alice".into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    pub fn mallory() -> Identity {
        Identity {
            username: "mallory".into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    #[test]
    fn a_waiting_gate_reads_its_frozen_policy_and_ledger() {
        let view = GateView::new(&run(waiting_gate()), Some(&alice()), now());
        assert_eq!(view.status, "AwaitingApproval");
        assert!(!view.ended);
        assert_eq!(view.approvers, ["alice", "group:release-managers"]);
        assert_eq!(view.min_approvals, Some(2));
        assert_eq!(view.approvals, 1);
        assert_eq!(view.pipeline_run.as_deref(), Some("release-x7k2p"));
        assert_eq!(view.pipeline_task.as_deref(), Some("approve-release"));
        assert_eq!(view.deadline, Some("2026-11-23T10:00:01Z".parse().unwrap()));
        assert_eq!(view.decisions.len(), 1);
        assert_eq!(view.can_decide, Some(true));
    }

    #[test]
    fn only_eligible_users_may_decide_a_waiting_gate() {
        let gate = run(waiting_gate());
        assert_eq!(
            GateView::new(&gate, Some(&mallory()), now()).can_decide,
            Some(false)
        );
        let member = Identity {
            username: "erin".into(),
            groups: vec!["release-managers".into()],
        };
        assert_eq!(
            GateView::new(&gate, Some(&member), now()).can_decide,
            Some(true)
        );
        assert_eq!(GateView::new(&gate, None, now()).can_decide, None);
    }

    #[test]
    fn a_started_gate_shows_the_run_it_started_with_whatever_its_labels_say_now() {
        let mut gate = waiting_gate();
        gate["metadata"]["labels"]["tekton.dev/pipelineRun"] = json!("prod-release");
        gate["metadata"]["labels"]["tekton.dev/pipeline"] = json!("prod");
        let view = GateView::new(&run(gate), None, now());
        assert_eq!(view.pipeline_run.as_deref(), Some("release-x7k2p"));
        assert_eq!(view.pipeline, None, "not there when it started");
        let pending = GateView::new(&run(pending_with_labels()), None, now());
        assert_eq!(
            pending.pipeline_run.as_deref(),
            Some("hotfix"),
            "not started: the labels"
        );
    }

    fn pending_with_labels() -> Value {
        let mut gate = pending_gate();
        gate["metadata"]["labels"] = json!({"tekton.dev/pipelineRun": "hotfix"});
        gate
    }

    #[test]
    fn nobody_may_decide_an_ended_gate() {
        let carol = Identity {
            username: "carol".into(),
            groups: vec![],
        };
        let view = GateView::new(&run(rejected_gate()), Some(&carol), now());
        assert!(view.ended);
        assert_eq!(view.can_decide, Some(false));
    }

    #[test]
    fn archived_decisions_belong_to_earlier_attempts_only() {
        let view = GateView::new(&run(rejected_gate()), None, now());
        assert_eq!(view.attempt, 2);
        assert_eq!(view.attempts, 2);
        assert_eq!(view.decisions.len(), 1);
        assert_eq!(view.decisions[0].user, "carol");
        assert_eq!(view.earlier_attempts.len(), 1);
        assert_eq!(view.earlier_attempts[0].decisions[0].user, "dave");
        assert_eq!(view.policy.as_deref(), Some("production"));
        assert_eq!(view.deadline, None);
    }

    #[test]
    fn a_gate_not_started_yet_is_pending_and_undecidable_to_tell() {
        let view = GateView::new(&run(pending_gate()), Some(&alice()), now());
        assert_eq!(view.status, PENDING);
        assert!(!view.ended);
        assert!(view.approvers.is_empty());
        assert_eq!(view.min_approvals, None);
        assert_eq!(view.can_decide, None);
    }

    #[test]
    fn a_malformed_ledger_is_reported_not_trusted() {
        let mut value = waiting_gate();
        value["metadata"]["annotations"]["approval.tekton.dev/decisions"] = json!("not json");
        let view = GateView::new(&run(value), None, now());
        assert!(view.decisions.is_empty());
        assert_eq!(view.approvals, 0);
        assert_eq!(
            view.ledger_error.unwrap(),
            "the ledger annotation approval.tekton.dev/decisions has entries that are not \
             records: not a JSON array (expected ident at line 1 column 2)"
        );
    }

    #[test]
    fn a_held_approval_is_pending_until_it_takes_effect() {
        // 2026-11-22 is a Sunday: the Mon-Fri window is closed, so bob's approval waits too.
        let view = GateView::new(&run(windowed_gate()), Some(&alice()), now());
        assert_eq!(view.approvals, 0);
        assert_eq!(view.window_open, Some(false));
        assert_eq!(
            view.pending,
            [
                PendingApproval {
                    user: "bob".into(),
                    takes_effect: Some("2026-11-23T09:00:00Z".parse().unwrap())
                },
                PendingApproval {
                    user: "alice".into(),
                    takes_effect: Some("2026-11-23T09:00:00Z".parse().unwrap())
                },
            ]
        );
        assert_eq!(view.waiting_until, view.pending[0].takes_effect);
        assert_eq!(view.inputs.len(), 2);
        // On Monday at 14:00 both are in effect.
        let monday = "2026-11-23T14:00:00Z".parse().unwrap();
        let view = GateView::new(&run(windowed_gate()), Some(&alice()), monday);
        assert_eq!(view.approvals, 2);
        assert!(view.pending.is_empty());
        assert_eq!(view.waiting_until, None);
    }
}
