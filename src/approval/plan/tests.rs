//! The protocol's tables, row by row, as plans.

use super::*;
use crate::approval::testing::{admitted, keys, sealed};
use serde_json::{Value, json};

const T0: &str = "2026-11-22T10:00:00Z";

fn at(offset_secs: i64) -> DateTime<Utc> {
    T0.parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(offset_secs)
}

/// A CustomRun as the webhook admitted it.
fn run_with(spec: Value) -> CustomRun {
    admitted(
        serde_json::from_value(json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {"name": "release-approve", "namespace": "ci"},
            "spec": spec,
        }))
        .unwrap(),
    )
}

fn gate(params: Value) -> CustomRun {
    run_with(json!({
        "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
        "params": params,
        "timeout": "24h0m0s",
    }))
}

fn two_approver_gate() -> CustomRun {
    gate(json!([
        {"name": "approvers", "value": ["alice", "group:release-managers"]},
        {"name": "minApprovals", "value": "2"},
        {"name": "message", "value": "Release v1.2 to production?"},
    ]))
}

fn single_approver_gate(extra: &[(&str, &str)]) -> CustomRun {
    let mut params = vec![json!({"name": "approvers", "value": ["alice", "bob", "carol"]})];
    params.extend(extra.iter().map(|(n, v)| json!({"name": n, "value": v})));
    gate(Value::Array(params))
}

fn plan_at(run: &CustomRun, now: DateTime<Utc>) -> Plan {
    plan(run, PolicyLookup::NotNeeded, &keys(), now).expect("a gate")
}

/// What the API layer does with a plan: write the status, clean the ledger.
fn apply(run: &CustomRun, plan: &Plan) -> CustomRun {
    let mut next = run.clone();
    next.status = Some(plan.status.clone());
    if let Some(cleanup) = &plan.ledger_cleanup {
        let annotations = next
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        match &cleanup.remaining {
            Some(value) => annotations.insert(LEDGER_ANNOTATION.into(), value.clone()),
            None => annotations.remove(LEDGER_ANNOTATION),
        };
    }
    next
}

/// Starts the gate at T0.
fn started(run: CustomRun) -> CustomRun {
    apply(&run, &plan_at(&run, at(0)))
}

fn decide(
    run: CustomRun,
    user: &str,
    groups: &[&str],
    decision: &str,
    comment: &str,
    secs: i64,
) -> CustomRun {
    decide_with(
        run,
        user,
        decision,
        secs,
        json!({"groups": groups, "comment": comment}),
    )
}

fn approve(run: CustomRun, user: &str, secs: i64) -> CustomRun {
    decide(run, user, &[], "approve", "", secs)
}

fn succeeded(plan: &Plan) -> (&str, &str, &str) {
    let c = plan.status.succeeded().expect("a Succeeded condition");
    assert_eq!(plan.status.conditions.len(), 1, "exactly one condition");
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

fn result<'a>(plan: &'a Plan, name: &str) -> &'a str {
    plan.status
        .results
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.value.as_str())
        .unwrap_or_else(|| panic!("no result {name}"))
}

fn events(plan: &Plan) -> Vec<(Severity, &str, &str)> {
    plan.events
        .iter()
        .map(|e| (e.severity, e.reason, e.message.as_str()))
        .collect()
}

// ---- starting --------------------------------------------------------------------------

#[test]
fn a_new_gate_waits_with_its_policy_frozen() {
    let plan = plan_at(&two_approver_gate(), at(0));
    assert_eq!(
        succeeded(&plan),
        (
            "Unknown",
            "AwaitingApproval",
            "Waiting for 2 more approvals (0 of 2) from alice, group:release-managers: Release v1.2 to production?"
        )
    );
    assert_eq!(plan.status.start_time, Some(at(0)));
    assert_eq!(plan.status.completion_time, None);
    assert!(plan.status.results.is_empty());
    assert_eq!(
        plan.status.extra_fields,
        Some(
            json!({"approvers": ["alice", "group:release-managers"], "minApprovals": 2,
                    "message": "Release v1.2 to production?", "onTimeout": "fail", "onReject": "fail",
                    "timeout": "24h0m0s", "allowSelfApproval": true,
                    "deadline": "2026-11-23T10:00:00Z", "recorded": 0})
        )
    );
    assert_eq!(
        events(&plan),
        [(
            Severity::Normal,
            "AwaitingApproval",
            "Waiting for 2 more approvals (0 of 2) from alice, group:release-managers: Release v1.2 to production?"
        )]
    );
    assert_eq!(plan.requeue_at, Some(at(86_400)));
    assert_eq!(plan.ending, None);
}

#[test]
fn the_start_time_is_stored_in_whole_seconds() {
    let now = at(0) + chrono::Duration::milliseconds(750);
    let plan = plan_at(&two_approver_gate(), now);
    assert_eq!(plan.status.start_time, Some(at(0)));
}

#[test]
fn a_run_without_timeout_gets_tektons_default_hour_and_zero_means_no_deadline() {
    let mut run = two_approver_gate();
    run.spec.timeout = None;
    let plan = plan_at(&admitted(run.clone()), at(0));
    assert_eq!(plan.requeue_at, Some(at(3600)));
    run.spec.timeout = Some("0s".into());
    let run = admitted(run);
    let plan = plan_at(&run, at(0));
    assert_eq!(plan.requeue_at, None);
    assert_eq!(
        plan.status.extra_fields.as_ref().unwrap()["deadline"],
        Value::Null
    );
    let later = plan_at(&apply(&run, &plan), at(10 * 86_400));
    assert_eq!(succeeded(&later).1, "AwaitingApproval");
}

#[test]
fn customruns_that_are_not_gates_are_never_planned() {
    let other = run_with(json!({"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"}}));
    assert_eq!(plan(&other, PolicyLookup::NotNeeded, &keys(), at(0)), None);
}

// ---- the status table ------------------------------------------------------------------

#[test]
fn waiting_reports_progress_and_keeps_its_transition_time() {
    let run = approve(started(two_approver_gate()), "alice", 60);
    let plan = plan_at(&run, at(61));
    assert_eq!(
        succeeded(&plan),
        (
            "Unknown",
            "AwaitingApproval",
            "Waiting for 1 more approval (1 of 2) from alice, group:release-managers: Release v1.2 to production?"
        )
    );
    assert_eq!(
        plan.status.succeeded().unwrap().last_transition_time,
        Some(at(0))
    );
    assert_eq!(
        events(&plan),
        [(
            Severity::Normal,
            "DecisionRecorded",
            "alice approved (1 of 2)"
        )]
    );
    assert_eq!(plan.requeue_at, Some(at(86_400)));
}

#[test]
fn approved_by_quorum_succeeds_with_every_result() {
    let run = started(two_approver_gate());
    let run = decide(run, "alice", &[], "approve", "ship it", 60);
    let run = decide(run, "bob", &["release-managers"], "approve", "", 120);
    let plan = plan_at(&run, at(121));
    assert_eq!(
        succeeded(&plan),
        ("True", "Approved", "Approved by alice, bob")
    );
    assert_eq!(plan.status.completion_time, Some(at(121)));
    assert_eq!(plan.status.start_time, Some(at(0)));
    assert_eq!(result(&plan, "decision"), "approved");
    assert_eq!(result(&plan, "approvedBy"), r#"["alice","bob"]"#);
    assert_eq!(result(&plan, "rejectedBy"), "[]");
    assert_eq!(result(&plan, "comments"), r#"["alice: ship it"]"#);
    assert_eq!(result(&plan, "decidedAt"), "2026-11-22T10:02:00Z");
    assert_eq!(
        events(&plan),
        [
            (
                Severity::Normal,
                "DecisionRecorded",
                "alice approved (1 of 2): ship it"
            ),
            (
                Severity::Normal,
                "DecisionRecorded",
                "bob approved (2 of 2)"
            ),
            (Severity::Normal, "Approved", "Approved by alice, bob"),
        ]
    );
    assert_eq!(plan.requeue_at, None);
    assert_eq!(plan.ending.as_ref().unwrap().outcome, "approved");
    assert_eq!(
        plan.ending.as_ref().unwrap().waited,
        Some(std::time::Duration::from_secs(120))
    );
}

#[test]
fn a_decision_takes_effect_within_the_second_it_was_recorded() {
    let run = started(single_approver_gate(&[]));
    let recorded = json!({"time": "2026-11-22T10:01:00.250Z"});
    let run = decide_with(run, "alice", "approve", 60, recorded);
    // Seen 150 ms later: approved at once, not when the clock reaches 10:01:01.
    let plan = plan_at(&run, at(60) + chrono::Duration::milliseconds(400));
    assert_eq!(succeeded(&plan), ("True", "Approved", "Approved by alice"));
    assert_eq!(plan.status.completion_time, Some(at(60)));
    assert_eq!(plan.requeue_at, None);
}

#[test]
fn rejected_with_on_reject_fail_fails() {
    let run = started(single_approver_gate(&[]));
    let run = decide(run, "carol", &[], "reject", "not during the freeze", 30);
    let plan = plan_at(&run, at(31));
    assert_eq!(
        succeeded(&plan),
        (
            "False",
            "Rejected",
            "Rejected by carol: not during the freeze"
        )
    );
    assert_eq!(result(&plan, "decision"), "rejected");
    assert_eq!(result(&plan, "rejectedBy"), r#"["carol"]"#);
    assert_eq!(
        result(&plan, "comments"),
        r#"["carol: not during the freeze"]"#
    );
    assert_eq!(result(&plan, "decidedAt"), "2026-11-22T10:00:30Z");
    assert_eq!(
        events(&plan),
        [
            (
                Severity::Normal,
                "DecisionRecorded",
                "carol rejected: not during the freeze"
            ),
            (
                Severity::Warning,
                "Rejected",
                "Rejected by carol: not during the freeze"
            ),
        ]
    );
    assert_eq!(plan.ending.unwrap().outcome, "rejected");
}

#[test]
fn rejected_with_on_reject_continue_succeeds_with_decision_rejected() {
    let run = started(single_approver_gate(&[("onReject", "continue")]));
    let run = decide(run, "carol", &[], "reject", "", 30);
    let plan = plan_at(&run, at(31));
    assert_eq!(succeeded(&plan), ("True", "Rejected", "Rejected by carol"));
    assert_eq!(result(&plan, "decision"), "rejected");
}

#[test]
fn the_deadline_with_on_timeout_fail_times_out() {
    let run = approve(started(two_approver_gate()), "alice", 60);
    let plan = plan_at(&run, at(86_400));
    assert_eq!(
        succeeded(&plan),
        (
            "False",
            "CustomRunTimedOut",
            "No decision within 24h0m0s (1 of 2 approvals)"
        )
    );
    assert_eq!(result(&plan, "decision"), "timed-out");
    assert_eq!(result(&plan, "approvedBy"), r#"["alice"]"#);
    assert_eq!(result(&plan, "decidedAt"), "2026-11-23T10:00:00Z");
    assert_eq!(
        events(&plan),
        [
            (
                Severity::Normal,
                "DecisionRecorded",
                "alice approved (1 of 2)"
            ),
            (
                Severity::Warning,
                "TimedOut",
                "No decision within 24h0m0s (1 of 2 approvals)"
            ),
        ]
    );
    assert_eq!(plan.ending.unwrap().outcome, "timed_out");
}

#[test]
fn the_deadline_with_on_timeout_approve_succeeds() {
    let run = started(single_approver_gate(&[("onTimeout", "approve")]));
    let plan = plan_at(&run, at(86_400 + 5));
    assert_eq!(
        succeeded(&plan),
        (
            "True",
            "ApprovedOnTimeout",
            "No decision within 24h0m0s (0 of 1 approvals): approved on timeout (onTimeout: approve)"
        )
    );
    assert_eq!(result(&plan, "decision"), "approved");
    assert_eq!(events(&plan)[0].1, "TimedOut");
    assert_eq!(plan.ending.unwrap().outcome, "approved_on_timeout");
}

#[test]
fn the_deadline_with_on_timeout_reject_is_a_rejection_both_ways() {
    let fail = started(single_approver_gate(&[("onTimeout", "reject")]));
    let plan = plan_at(&fail, at(86_400));
    assert_eq!(
        succeeded(&plan),
        (
            "False",
            "RejectedOnTimeout",
            "No decision within 24h0m0s (0 of 1 approvals): rejected on timeout (onTimeout: reject)"
        )
    );
    assert_eq!(result(&plan, "decision"), "rejected");
    let continuing = started(single_approver_gate(&[
        ("onTimeout", "reject"),
        ("onReject", "continue"),
    ]));
    let plan = plan_at(&continuing, at(86_400));
    assert_eq!(succeeded(&plan).0, "True");
    assert_eq!(succeeded(&plan).1, "RejectedOnTimeout");
    assert_eq!(plan.ending.unwrap().outcome, "rejected_on_timeout");
}

#[test]
fn cancellation_uses_tektons_reason_and_message() {
    let mut run = approve(started(two_approver_gate()), "alice", 60);
    run.spec.status = Some("RunCancelled".into());
    run.spec.status_message =
        Some("CustomRun cancelled as the PipelineRun it belongs to has been cancelled.".into());
    let plan = plan_at(&run, at(90));
    assert_eq!(
        succeeded(&plan),
        (
            "False",
            "CustomRunCancelled",
            "CustomRun cancelled as the PipelineRun it belongs to has been cancelled."
        )
    );
    assert_eq!(plan.status.start_time, Some(at(0)));
    assert_eq!(plan.status.completion_time, Some(at(90)));
    assert!(plan.events.is_empty());
    assert_eq!(plan.ending.unwrap().outcome, "cancelled");
}

#[test]
fn a_gate_cancelled_before_it_started_is_cancelled_with_a_default_message() {
    let mut run = gate(json!([{"name": "minApproval", "value": "2"}]));
    run.spec.status = Some("RunCancelled".into());
    let plan = plan_at(&run, at(5));
    assert_eq!(
        succeeded(&plan),
        ("False", "CustomRunCancelled", "CustomRun cancelled")
    );
    assert_eq!(plan.status.start_time, Some(at(5)));
}

#[test]
fn invalid_params_fail_at_once_with_what_to_fix() {
    let run = gate(json!([
        {"name": "approvers", "value": ["alice"]},
        {"name": "minApproval", "value": "2"},
    ]));
    let plan = plan_at(&run, at(0));
    let message = "unknown param `minApproval`; did you mean `minApprovals`?";
    assert_eq!(succeeded(&plan), ("False", "InvalidApproval", message));
    assert_eq!(plan.status.start_time, Some(at(0)));
    assert_eq!(plan.status.completion_time, Some(at(0)));
    assert_eq!(
        events(&plan),
        [(Severity::Warning, "InvalidApproval", message)]
    );
    assert_eq!(plan.ending.unwrap().outcome, "invalid");
}

#[test]
fn every_kind_of_invalid_input_fails_with_its_message() {
    let cases: Vec<(CustomRun, &str)> = vec![
        (
            gate(json!([])),
            "`approvers` is required: list user names or `group:<name>` entries, e.g. [\"alice\", \"group:release-managers\"]",
        ),
        (
            gate(
                json!([{"name": "approvers", "value": "alice"}, {"name": "minApprovals", "value": "2"}]),
            ),
            "`minApprovals` is 2 but only 1 user is listed (alice) and no group: the gate could never be approved; lower minApprovals or add approvers",
        ),
        (
            gate(
                json!([{"name": "approvers", "value": "alice"}, {"name": "minApprovals", "value": "0"}]),
            ),
            "`minApprovals` must be a whole number of at least 1, got `0`",
        ),
        (
            gate(
                json!([{"name": "approvers", "value": "alice"}, {"name": "onTimeout", "value": "later"}]),
            ),
            "`onTimeout` must be one of fail, reject, approve, got `later`",
        ),
        (
            run_with(
                json!({"customRef": {"apiVersion": "approval.tekton.dev/v2", "kind": "Approval"}}),
            ),
            "unsupported version `approval.tekton.dev/v2`: this controller serves approval.tekton.dev/v1alpha1 (kind Approval)",
        ),
        (
            run_with(
                json!({"customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "name": "production"}}),
            ),
            "Approval production not found in namespace ci",
        ),
        (
            run_with(
                json!({"customSpec": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
                                            "spec": {"approvers": ["alice"], "minAprovals": 1}}}),
            ),
            "unknown spec field `minAprovals`; did you mean `minApprovals`?",
        ),
    ];
    for (run, message) in cases {
        let plan = plan_at(&run, at(0));
        assert_eq!(succeeded(&plan), ("False", "InvalidApproval", message));
        assert_eq!(plan.events[0].reason, "InvalidApproval");
    }
}

#[test]
fn an_embedded_spec_gate_waits_like_an_inline_one() {
    let run = run_with(json!({
        "customSpec": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
                       "spec": {"approvers": ["alice"], "timeout": "2h"}},
    }));
    let plan = plan_at(&run, at(0));
    assert_eq!(
        succeeded(&plan).2,
        "Waiting for 1 more approval (0 of 1) from alice"
    );
    assert_eq!(plan.requeue_at, Some(at(7200)));
}

#[test]
fn a_named_policy_is_frozen_when_the_gate_starts() {
    let mut run = run_with(json!({
        "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "name": "production"},
        "params": [{"name": "message", "value": "Ship v2?"}],
    }));
    run.metadata.annotations =
        Some([(REQUESTED_BY_ANNOTATION.to_string(), "dave".to_string())].into());
    let run = admitted(run);
    assert_eq!(policy_to_look_up(&run), Some("production"));
    let policy = json!({"approvers": ["group:sre"], "minApprovals": 1, "timeout": "30m"});
    let first = plan(&run, PolicyLookup::Found(&policy), &keys(), at(0)).unwrap();
    assert_eq!(
        succeeded(&first).2,
        "Waiting for 1 more approval (0 of 1) from group:sre: Ship v2?"
    );
    let run = apply(&run, &first);
    assert_eq!(
        policy_to_look_up(&run),
        None,
        "frozen: no lookup needed any more"
    );
    // The policy is deleted meanwhile: the running gate does not notice.
    let later = plan(&run, PolicyLookup::NotNeeded, &keys(), at(60)).unwrap();
    assert_eq!(later.status, first.status);
    let approved = plan_at(&decide(run, "bob", &["sre"], "approve", "", 90), at(91));
    assert_eq!(
        succeeded(&approved),
        ("True", "Approved", "Approved by bob")
    );
}

// ---- the ledger and the end ------------------------------------------------------------

#[test]
fn a_ledger_edited_around_the_webhook_neither_opens_nor_blocks_the_gate() {
    let run = started(single_approver_gate(&[]));
    let unsealed = json!({"user": "alice", "decision": "approve", "time": at(5).to_rfc3339()});
    let forged_veto = json!({"user": "bob", "decision": "reject", "time": at(6).to_rfc3339(),
                             "seal": "test.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"});
    let foreign_key = json!({"user": "carol", "decision": "approve", "time": at(7).to_rfc3339(),
                             "seal": "k9.AAAA"});
    let mut forged = run.clone();
    forged.metadata.annotations.as_mut().unwrap().insert(
        LEDGER_ANNOTATION.into(),
        json!([unsealed, forged_veto, {"user": "mallory"}, foreign_key]).to_string(),
    );
    let plan = plan_at(&forged, at(10));
    assert_eq!(
        succeeded(&plan),
        (
            "Unknown",
            "AwaitingApproval",
            "Waiting for 1 more approval (0 of 1) from alice, bob, carol"
        )
    );
    assert_eq!(plan.unverified_records, 4);
    assert_eq!(
        plan.unknown_key.as_deref(),
        Some("k9"),
        "the controller re-reads its keys"
    );
    assert_eq!(
        events(&plan),
        [
            (
                Severity::Warning,
                "UnverifiedDecision",
                "ignored an entry of approval.tekton.dev/decisions: record 3 is malformed (missing field `decision`)"
            ),
            (
                Severity::Warning,
                "UnverifiedDecision",
                "ignored a record in approval.tekton.dev/decisions claiming alice approved: it has no seal, so the approval webhook did not write it for this gate; it does not count"
            ),
            (
                Severity::Warning,
                "UnverifiedDecision",
                "ignored a record in approval.tekton.dev/decisions claiming bob rejected: its seal does not match, so the approval webhook did not write it for this gate; it does not count"
            ),
            (
                Severity::Warning,
                "UnverifiedDecision",
                "ignored a record in approval.tekton.dev/decisions claiming carol approved: its seal names key k9, which this controller does not hold, so the approval webhook did not write it for this gate; it does not count"
            ),
        ]
    );
    // Announced once: planning the written status again says nothing new.
    let again = plan_at(&apply(&forged, &plan), at(11));
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert_eq!(again.unverified_records, 0);
    // A genuine decision still decides.
    let approved = plan_at(&approve(apply(&forged, &plan), "alice", 20), at(21));
    assert_eq!(
        succeeded(&approved),
        ("True", "Approved", "Approved by alice")
    );
    // Not even JSON: ignored, announced, and the gate keeps waiting.
    let mut garbled = run.clone();
    garbled
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(LEDGER_ANNOTATION.into(), "{".into());
    let plan = plan_at(&garbled, at(10));
    assert_eq!(succeeded(&plan).1, "AwaitingApproval");
    assert!(
        events(&plan)[0]
            .2
            .starts_with("ignored an entry of approval.tekton.dev/decisions: not a JSON array")
    );
}

#[test]
fn a_record_copied_from_another_gate_does_not_count() {
    let run = started(single_approver_gate(&[]));
    let other = admitted({
        let mut other = run.clone();
        other.metadata.uid = Some("uid-of-the-deleted-gate".into());
        other
    });
    // alice approved the gate that was deleted; its record is replayed onto this one.
    let replayed = approve(other, "alice", 5);
    let mut run = run;
    run.metadata.annotations.as_mut().unwrap().insert(
        LEDGER_ANNOTATION.into(),
        replayed.metadata.annotations.unwrap()[LEDGER_ANNOTATION].clone(),
    );
    let plan = plan_at(&run, at(10));
    assert_eq!(succeeded(&plan).1, "AwaitingApproval");
    assert_eq!(plan.unverified_records, 1);
}

#[test]
fn a_gate_the_webhook_did_not_admit_is_left_alone_with_a_warning() {
    let mut unsealed = two_approver_gate();
    unsealed
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(ADMITTED_ANNOTATION);
    let plan = plan_at(&unsealed, at(0));
    assert_eq!(
        plan.status,
        CustomRunStatus::default(),
        "no status is written"
    );
    assert_eq!(plan.requeue_at, None);
    let message = plan.not_admitted.clone().unwrap();
    assert_eq!(
        message,
        "not started: the approval webhook did not admit this gate (it has no \
         approval.tekton.dev/admitted seal). It was created while the webhook was not running, \
         or edited around it, so nothing in it can be trusted. Gates are created by Tekton from \
         a Pipeline: start a new PipelineRun"
    );
    assert_eq!(
        events(&plan),
        [(Severity::Warning, "NotAdmitted", message.as_str())]
    );
    // Loosened after admission (the webhook bypassed): the seal no longer matches.
    let mut loosened = two_approver_gate();
    loosened.spec.params =
        serde_json::from_value(json!([{"name": "approvers", "value": ["mallory"]}])).unwrap();
    let plan = plan_at(&loosened, at(0));
    assert!(
        plan.not_admitted
            .unwrap()
            .contains("seal does not match the gate")
    );
    // A requester stamp added afterwards is a change too.
    let mut restamped = two_approver_gate();
    restamped
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(REQUESTED_BY_ANNOTATION.into(), "bob".into());
    assert!(plan_at(&restamped, at(0)).not_admitted.is_some());
    // Tekton's cancellation is not a change the seal covers: a cancelled gate still ends.
    let mut cancelled = two_approver_gate();
    cancelled.spec.status = Some("RunCancelled".into());
    assert_eq!(
        succeeded(&plan_at(&cancelled, at(0))).1,
        "CustomRunCancelled"
    );
}

#[test]
fn a_gate_made_with_generate_name_verifies_against_its_prefix() {
    let mut run = two_approver_gate();
    run.metadata.annotations = None;
    run.metadata.name = None;
    run.metadata.generate_name = Some("release-".into());
    // The webhook seals what it sees at CREATE: no name yet.
    let message = seal::admission_message(
        "ci",
        seal::Naming::GenerateName("release-"),
        &seal::sealed_spec(&run.spec),
        None,
    );
    run.metadata.annotations =
        Some([(ADMITTED_ANNOTATION.to_string(), keys().seal(&message))].into());
    run.metadata.name = Some("release-x7k2p".into());
    run.metadata.uid = Some("uid-2".into());
    assert_eq!(succeeded(&plan_at(&run, at(0))).1, "AwaitingApproval");
}

#[test]
fn an_ended_gate_is_never_rewritten() {
    let run = approve(started(single_approver_gate(&[])), "alice", 10);
    let ended = apply(&run, &plan_at(&run, at(11)));
    let mut later = decide(ended.clone(), "carol", &[], "reject", "too late", 20);
    later.spec.status = Some("RunCancelled".into());
    let plan = plan_at(&later, at(86_400 * 2));
    assert_eq!(Some(&plan.status), ended.status.as_ref());
    assert!(plan.events.is_empty());
    assert_eq!(plan.requeue_at, None);
    assert_eq!(plan.ending, None);
}

#[test]
fn replanning_an_applied_plan_changes_nothing_and_says_nothing() {
    let states = [
        started(two_approver_gate()),
        approve(started(two_approver_gate()), "alice", 10),
        approve(
            approve(started(two_approver_gate()), "alice", 10),
            "bob",
            11,
        ),
        gate(json!([])),
    ];
    for run in states {
        let first = plan_at(&run, at(30));
        let again = plan_at(&apply(&run, &first), at(40));
        assert_eq!(again.status, first.status);
        assert!(again.events.is_empty(), "{:?}", again.events);
        assert_eq!(again.ledger_cleanup, None);
    }
}

#[test]
fn the_plan_is_the_same_whether_or_not_the_controller_saw_earlier_states() {
    // One controller reconciled after every decision; another (restarted) sees only the end.
    let base = started(two_approver_gate());
    let mut watched = base.clone();
    for (user, groups, secs) in [
        ("alice", &[][..], 10),
        ("alice", &[][..], 20),
        ("dave", &["release-managers"][..], 30),
    ] {
        watched = decide(watched, user, groups, "approve", "", secs);
        watched = apply(&watched, &plan_at(&watched, at(secs + 1)));
    }
    let mut unseen = base;
    for (user, groups, secs) in [
        ("alice", &[][..], 10),
        ("alice", &[][..], 20),
        ("dave", &["release-managers"][..], 30),
    ] {
        unseen = decide(unseen, user, groups, "approve", "", secs);
    }
    let unseen_plan = plan_at(&unseen, at(31));
    let mut expected = watched.status.clone().unwrap();
    // Only the completion time (when the controller looked) may differ; here it is the same.
    expected.completion_time = Some(at(31));
    expected.conditions[0].last_transition_time = Some(at(31));
    assert_eq!(unseen_plan.status, expected);
    assert_eq!(
        succeeded(&unseen_plan),
        ("True", "Approved", "Approved by alice, dave")
    );
}

#[test]
fn an_unrecorded_input_annotation_means_the_webhook_is_missing() {
    let mut run = started(single_approver_gate(&[]));
    run.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPROVE_ANNOTATION.into(), "ship it".into());
    let plan = plan_at(&run, at(5));
    assert_eq!(
        succeeded(&plan),
        (
            "Unknown",
            "AwaitingApproval",
            "Waiting for 1 more approval (0 of 1) from alice, bob, carol (approval.tekton.dev/approve is on this CustomRun but was not recorded: the approval webhook is not installed or not reachable, and only decisions it records count)"
        )
    );
}

#[test]
fn unreadable_attempt_data_fails_closed() {
    let mut run = started(single_approver_gate(&[]));
    run.status.as_mut().unwrap().extra_fields = Some(json!({"approvers": "nobody"}));
    let plan = plan_at(&run, at(5));
    assert_eq!(succeeded(&plan).1, "InvalidApproval");
    assert!(
        succeeded(&plan)
            .2
            .starts_with("status.extraFields of this gate is unreadable")
    );
}

#[test]
fn a_policy_edit_after_the_start_does_not_change_the_gate() {
    let run = started(single_approver_gate(&[]));
    let mut edited = run.clone();
    edited.spec.params =
        serde_json::from_value(json!([{"name": "approvers", "value": ["mallory"]}])).unwrap();
    let plan = plan_at(&approve(edited, "mallory", 10), at(11));
    assert_eq!(succeeded(&plan).1, "AwaitingApproval");
    assert!(plan.events.is_empty());
}

// ---- retries ---------------------------------------------------------------------------

fn retrying_gate(retries: u32) -> CustomRun {
    let mut run = single_approver_gate(&[]);
    run.spec.retries = retries;
    started(admitted(run))
}

#[test]
fn a_failed_attempt_with_retries_left_is_reopened_and_archived() {
    let run = decide(
        retrying_gate(1),
        "carol",
        &[],
        "reject",
        "fix the tests",
        30,
    );
    let plan = plan_at(&run, at(40));
    assert_eq!(
        succeeded(&plan),
        (
            "Unknown",
            "AwaitingApproval",
            "Waiting for 1 more approval (0 of 1) from alice, bob, carol"
        )
    );
    assert_eq!(plan.status.start_time, Some(at(40)));
    assert_eq!(plan.status.completion_time, None);
    assert!(plan.status.results.is_empty());
    assert_eq!(plan.requeue_at, Some(at(40 + 86_400)));
    let archived = &plan.status.retries_status;
    assert_eq!(archived.len(), 1);
    let first = &archived[0];
    assert_eq!(first.succeeded().unwrap().status, "False");
    assert_eq!(first.succeeded().unwrap().reason, "Rejected");
    assert_eq!(first.start_time, Some(at(0)));
    assert_eq!(first.completion_time, Some(at(40)));
    assert!(
        first
            .results
            .iter()
            .any(|r| r.name == "decision" && r.value == "rejected")
    );
    let archived_attempt = Attempt::of(first).unwrap().unwrap();
    assert_eq!(archived_attempt.decisions.len(), 1);
    assert_eq!(archived_attempt.decisions[0].user, "carol");
    assert_eq!(
        plan.ledger_cleanup,
        Some(LedgerCleanup {
            expected: run.metadata.annotations.as_ref().unwrap()[LEDGER_ANNOTATION].clone(),
            remaining: None
        })
    );
    assert_eq!(
        events(&plan),
        [
            (
                Severity::Normal,
                "DecisionRecorded",
                "carol rejected: fix the tests"
            ),
            (
                Severity::Warning,
                "Rejected",
                "Rejected by carol: fix the tests"
            ),
            (
                Severity::Normal,
                "AwaitingApproval",
                "Reopened for attempt 2 of 2: Waiting for 1 more approval (0 of 1) from alice, bob, carol"
            ),
        ]
    );
    assert_eq!(plan.ending.unwrap().outcome, "rejected");
}

#[test]
fn a_reopened_gate_can_then_be_approved() {
    let run = decide(retrying_gate(1), "carol", &[], "reject", "", 30);
    let reopened = apply(&run, &plan_at(&run, at(40)));
    assert!(
        !reopened
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .contains_key(LEDGER_ANNOTATION)
    );
    let plan = plan_at(&approve(reopened, "alice", 50), at(51));
    assert_eq!(succeeded(&plan), ("True", "Approved", "Approved by alice"));
    assert_eq!(plan.status.retries_status.len(), 1);
    assert_eq!(plan.status.start_time, Some(at(40)));
}

#[test]
fn the_last_attempts_failure_fails_the_run() {
    let run = decide(retrying_gate(1), "carol", &[], "reject", "", 30);
    let reopened = apply(&run, &plan_at(&run, at(40)));
    let plan = plan_at(&reopened, at(40 + 86_400));
    assert_eq!(
        succeeded(&plan),
        (
            "False",
            "CustomRunTimedOut",
            "No decision within 24h0m0s (0 of 1 approvals)"
        )
    );
    assert_eq!(plan.status.retries_status.len(), 1);
    assert_eq!(plan.status.completion_time, Some(at(40 + 86_400)));
}

#[test]
fn a_timeout_with_retries_left_reopens_too() {
    let plan = plan_at(&retrying_gate(2), at(86_400));
    assert_eq!(succeeded(&plan).1, "AwaitingApproval");
    assert_eq!(
        plan.status.retries_status[0].succeeded().unwrap().reason,
        "CustomRunTimedOut"
    );
    assert_eq!(plan.ledger_cleanup, None, "nothing to clear");
}

#[test]
fn approvals_never_retry_and_invalid_gates_never_retry() {
    let approved = plan_at(&approve(retrying_gate(3), "alice", 5), at(6));
    assert_eq!(succeeded(&approved).1, "Approved");
    assert!(approved.status.retries_status.is_empty());
    let mut invalid = gate(json!([]));
    invalid.spec.retries = 3;
    assert_eq!(succeeded(&plan_at(&admitted(invalid), at(0))).0, "False");
}

#[test]
fn records_of_an_archived_attempt_never_count_again_even_if_the_ledger_was_not_cleared() {
    // The controller stopped after archiving attempt 1 but before clearing the ledger.
    let run = decide(retrying_gate(1), "carol", &[], "reject", "", 30);
    let plan = plan_at(&run, at(40));
    let mut half_applied = run.clone();
    half_applied.status = Some(plan.status.clone());
    let next = plan_at(&half_applied, at(50));
    assert_eq!(succeeded(&next).1, "AwaitingApproval");
    assert!(next.events.is_empty());
    assert_eq!(next.ledger_cleanup.as_ref().unwrap().remaining, None);
    // A decision for attempt 2 made before the clean-up stays, the old ones go.
    let with_new = approve(half_applied, "bob", 45);
    let next = plan_at(&with_new, at(50));
    assert_eq!(succeeded(&next), ("True", "Approved", "Approved by bob"));
    let remaining = next.ledger_cleanup.unwrap().remaining.unwrap();
    assert!(
        remaining.contains("bob") && !remaining.contains("carol"),
        "{remaining}"
    );
}

// ---- approvals that take effect later, and inputs ----------------------------------------

/// Appends a sealed record with extra fields (`effectiveAt`, `inputs`).
fn decide_with(
    mut run: CustomRun,
    user: &str,
    decision: &str,
    secs: i64,
    extra: Value,
) -> CustomRun {
    let mut fields = json!({"user": user, "decision": decision, "time": at(secs).to_rfc3339()});
    fields
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let record: Record = serde_json::from_value(fields).unwrap();
    let mut ledger: Vec<Value> = run
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEDGER_ANNOTATION))
        .map(|text| serde_json::from_str(text).unwrap())
        .unwrap_or_default();
    ledger.push(serde_json::to_value(sealed(&run, record)).unwrap());
    run.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(LEDGER_ANNOTATION.into(), Value::Array(ledger).to_string());
    run
}

#[test]
fn a_deferred_approval_is_announced_waits_and_approves_at_its_time() {
    let run = started(single_approver_gate(&[]));
    let run = decide_with(
        run,
        "alice",
        "approve",
        60,
        json!({"effectiveAt": at(3600).to_rfc3339(), "comment": "after the window"}),
    );
    let plan = plan_at(&run, at(61));
    assert_eq!(
        succeeded(&plan),
        (
            "Unknown",
            "AwaitingApproval",
            "Waiting for 1 more approval (0 of 1) from alice, bob, carol; alice's approval takes effect at 2026-11-22T11:00:00Z (deferred)"
        )
    );
    assert_eq!(
        events(&plan),
        [(
            Severity::Normal,
            "ApprovalDeferred",
            "alice approved; it takes effect at 2026-11-22T11:00:00Z, as the approver asked: after the window"
        )]
    );
    assert_eq!(
        plan.requeue_at,
        Some(at(3600)),
        "woken when it takes effect"
    );
    let run = apply(&run, &plan);
    assert!(plan_at(&run, at(62)).events.is_empty(), "announced once");
    let plan = plan_at(&run, at(3600));
    assert_eq!(succeeded(&plan), ("True", "Approved", "Approved by alice"));
    assert_eq!(result(&plan, "decidedAt"), "2026-11-22T11:00:00Z");
    assert_eq!(
        events(&plan),
        [
            (
                Severity::Normal,
                "DecisionRecorded",
                "alice approved (1 of 1): after the window"
            ),
            (Severity::Normal, "Approved", "Approved by alice"),
        ]
    );
}

#[test]
fn a_rejection_before_a_deferred_approval_takes_effect_ends_the_gate_at_once() {
    let run = started(single_approver_gate(&[]));
    let run = decide_with(
        run,
        "alice",
        "approve",
        60,
        json!({"effectiveAt": at(3600).to_rfc3339()}),
    );
    let run = apply(&run, &plan_at(&run, at(61)));
    let run = decide(run, "bob", &[], "reject", "not today", 120);
    let plan = plan_at(&run, at(121));
    assert_eq!(
        succeeded(&plan),
        ("False", "Rejected", "Rejected by bob: not today")
    );
    assert_eq!(result(&plan, "approvedBy"), "[]");
}

#[test]
fn the_deadline_comes_first_when_it_is_before_a_deferred_approval() {
    let run = started(single_approver_gate(&[]));
    let late = at(86_400 + 60).to_rfc3339();
    let run = decide_with(run, "alice", "approve", 60, json!({"effectiveAt": late}));
    let plan = plan_at(&run, at(61));
    assert!(succeeded(&plan).2.ends_with(
        "; alice's approval would take effect at 2026-11-23T10:01:00Z, after the deadline: it will not count"
    ));
    assert_eq!(plan.requeue_at, Some(at(86_400)));
}

fn windowed_gate() -> CustomRun {
    // 10:00 UTC is T0: the window opens at 10:30.
    run_with(json!({
        "customSpec": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
                       "spec": {"approvers": ["alice", "bob"],
                                "approvalWindow": {"timeZone": "UTC", "hours": "10:30-17:00"}}},
        "timeout": "24h0m0s",
    }))
}

#[test]
fn an_approval_outside_the_window_waits_until_it_opens() {
    let run = started(windowed_gate());
    let waiting = succeeded(&plan_at(&run, at(1))).2.to_string();
    assert_eq!(
        waiting,
        "Waiting for 1 more approval (0 of 1) from alice, bob (approvals take effect 10:30-17:00 UTC)"
    );
    let run = approve(run, "alice", 60);
    let plan = plan_at(&run, at(61));
    assert_eq!(
        succeeded(&plan).2,
        "Waiting for 1 more approval (0 of 1) from alice, bob (approvals take effect 10:30-17:00 UTC); alice's approval takes effect at 2026-11-22T10:30:00Z, when the approval window opens"
    );
    assert_eq!(
        events(&plan),
        [(
            Severity::Normal,
            "ApprovalDeferred",
            "alice approved; it takes effect at 2026-11-22T10:30:00Z, when the approval window (10:30-17:00 UTC) opens"
        )]
    );
    assert_eq!(plan.requeue_at, Some(at(1800)));
    let run = apply(&run, &plan);
    let plan = plan_at(&run, at(1800));
    assert_eq!(succeeded(&plan), ("True", "Approved", "Approved by alice"));
    assert_eq!(result(&plan, "decidedAt"), "2026-11-22T10:30:00Z");
}

#[test]
fn a_rejection_outside_the_window_ends_the_gate_at_once() {
    let run = started(windowed_gate());
    let run = approve(run, "alice", 60);
    let run = apply(&run, &plan_at(&run, at(61)));
    let run = decide(run, "bob", &[], "reject", "", 120);
    let plan = plan_at(&run, at(121));
    assert_eq!(succeeded(&plan), ("False", "Rejected", "Rejected by bob"));
    assert_eq!(result(&plan, "decidedAt"), "2026-11-22T10:02:00Z");
}

fn gate_with_inputs() -> CustomRun {
    gate(json!([
        {"name": "approvers", "value": ["alice", "bob"]},
        {"name": "minApprovals", "value": "2"},
        {"name": "inputs", "value": "- {name: target, choices: [staging, production], required: true}\n- {name: replicas, default: \"3\"}\n"},
    ]))
}

#[test]
fn the_deciding_approvals_inputs_are_published_as_results() {
    let run = started(gate_with_inputs());
    let chosen = json!({"inputs": {"target": "production", "replicas": "3"}});
    let run = decide_with(run, "alice", "approve", 60, chosen.clone());
    let run = decide_with(run, "bob", "approve", 120, chosen);
    let plan = plan_at(&run, at(121));
    assert_eq!(succeeded(&plan).1, "Approved");
    assert_eq!(result(&plan, "input-target"), "production");
    assert_eq!(result(&plan, "input-replicas"), "3");
    assert_eq!(
        result(&plan, "inputs"),
        r#"{"replicas":"3","target":"production"}"#
    );
}

#[test]
fn inputs_are_published_with_their_defaults_when_nobody_approved() {
    let run = started(gate_with_inputs());
    let run = decide(run, "bob", &[], "reject", "", 60);
    let plan = plan_at(&run, at(61));
    assert_eq!(succeeded(&plan).1, "Rejected");
    assert_eq!(result(&plan, "input-target"), "");
    assert_eq!(result(&plan, "input-replicas"), "3");
    // A gate without inputs publishes none.
    let plain = apply(
        &started(single_approver_gate(&[])),
        &plan_at(
            &approve(started(single_approver_gate(&[])), "alice", 5),
            at(6),
        ),
    );
    assert!(
        plain
            .status
            .unwrap()
            .results
            .iter()
            .all(|r| !r.name.starts_with("input"))
    );
}

#[test]
fn invalid_inputs_or_windows_fail_the_gate_with_what_to_fix() {
    let rows = [
        (
            gate(
                json!([{"name": "approvers", "value": ["alice"]}, {"name": "inputs", "value": "- {name: target, choice: [a]}"}]),
            ),
            "`inputs`: the param must hold a YAML list of {name, description, choices, default, required, pattern}",
        ),
        (
            run_with(
                json!({"customSpec": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
                "spec": {"approvers": ["alice"], "approvalWindow": {"timeZone": "Europe/Nowhere"}}}}),
            ),
            "`approvalWindow`: `timeZone` `Europe/Nowhere` is not in the tz database",
        ),
        (
            gate(
                json!([{"name": "approvers", "value": ["alice"]}, {"name": "approvalWindow", "value": "Mon-Fri"}]),
            ),
            "unknown param `approvalWindow`",
        ),
    ];
    for (run, expected) in rows {
        let plan = plan_at(&run, at(0));
        let (status, reason, message) = succeeded(&plan);
        assert_eq!((status, reason), ("False", "InvalidApproval"));
        assert!(message.starts_with(expected), "{message}");
    }
}

// ---- supersede -------------------------------------------------------------------------------

fn superseding_gate(extra: &[(&str, &str)]) -> CustomRun {
    let mut run = single_approver_gate(extra);
    run.metadata.labels = Some(
        [
            ("tekton.dev/pipeline", "release"),
            ("tekton.dev/pipelineTask", "approve"),
            ("tekton.dev/pipelineRun", "release-1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into(),
    );
    admitted(run)
}

fn plan_superseded(run: &CustomRun, now: DateTime<Utc>, by: Option<&str>) -> Plan {
    plan_with(run, PolicyLookup::NotNeeded, &keys(), now, by).expect("a gate")
}

#[test]
fn the_supersede_key_is_frozen_from_the_pipeline_and_task_when_the_gate_starts() {
    let run = started(superseding_gate(&[("supersede", "true")]));
    let status = run.status.clone().unwrap();
    assert_eq!(supersede_line(&status).as_deref(), Some("release/approve"));
    let keyed = started(superseding_gate(&[
        ("supersede", "true"),
        ("supersedeKey", "prod-deploy"),
    ]));
    assert_eq!(
        supersede_line(keyed.status.as_ref().unwrap()).as_deref(),
        Some("prod-deploy")
    );
    let off = started(superseding_gate(&[]));
    assert_eq!(supersede_line(off.status.as_ref().unwrap()), None);
    // A gate Tekton did not make has no Pipeline: it supersedes nothing.
    let direct = started(single_approver_gate(&[("supersede", "true")]));
    assert_eq!(supersede_line(direct.status.as_ref().unwrap()), None);
    // An ended gate is on no line.
    let approved = approve(run, "alice", 5);
    let ended = apply(&approved, &plan_at(&approved, at(6)));
    assert_eq!(supersede_line(ended.status.as_ref().unwrap()), None);
}

#[test]
fn a_newer_run_supersedes_a_waiting_gate() {
    let run = started(superseding_gate(&[
        ("supersede", "true"),
        ("minApprovals", "2"),
    ]));
    let run = approve(run, "alice", 5);
    let plan = plan_superseded(&run, at(10), Some("release-2"));
    assert_eq!(
        succeeded(&plan),
        (
            "False",
            "Superseded",
            "Superseded by PipelineRun release-2, a newer run waiting at the same gate (1 of 2 approvals)"
        )
    );
    assert_eq!(result(&plan, "decision"), "superseded");
    assert_eq!(
        events(&plan).last().copied(),
        Some((
            Severity::Normal,
            "Superseded",
            "Superseded by PipelineRun release-2, a newer run waiting at the same gate (1 of 2 approvals)"
        ))
    );
    assert_eq!(plan.ending.as_ref().unwrap().outcome, "superseded");
}

#[test]
fn on_supersede_continue_succeeds_so_that_the_pipeline_can_branch() {
    let run = started(superseding_gate(&[
        ("supersede", "true"),
        ("onSupersede", "continue"),
    ]));
    let plan = plan_superseded(&run, at(10), Some("release-2"));
    assert_eq!(succeeded(&plan).0, "True");
    assert_eq!(succeeded(&plan).1, "Superseded");
    assert_eq!(result(&plan, "decision"), "superseded");
}

#[test]
fn only_a_waiting_gate_whose_policy_supersedes_is_superseded() {
    let off = started(superseding_gate(&[]));
    assert_eq!(
        succeeded(&plan_superseded(&off, at(10), Some("release-2"))).1,
        "AwaitingApproval"
    );
    // Decided before the newer run came: the decision stands.
    let run = approve(
        started(superseding_gate(&[("supersede", "true")])),
        "alice",
        5,
    );
    assert_eq!(
        succeeded(&plan_superseded(&run, at(10), Some("release-2"))).1,
        "Approved"
    );
}

#[test]
fn a_superseded_gate_is_not_retried() {
    let mut run = superseding_gate(&[("supersede", "true")]);
    run.spec.retries = 2;
    let run = started(admitted(run));
    let plan = plan_superseded(&run, at(10), Some("release-2"));
    assert_eq!(succeeded(&plan).1, "Superseded");
    assert!(plan.status.retries_status.is_empty());
}

#[test]
fn supersede_settings_are_checked() {
    let rows = [
        (
            vec![("supersede", "yes")],
            "`supersede` must be one of true, false, got `yes`",
        ),
        (
            vec![("onSupersede", "ignore")],
            "`onSupersede` must be one of fail, continue, got `ignore`",
        ),
    ];
    for (params, expected) in rows {
        let plan = plan_at(&single_approver_gate(&params), at(0));
        assert_eq!(succeeded(&plan), ("False", "InvalidApproval", expected));
    }
}

#[test]
fn the_run_a_gate_belongs_to_is_frozen_when_it_starts_and_labels_edited_later_change_nothing() {
    let run = started(superseding_gate(&[]));
    let frozen = |run: &CustomRun| {
        Attempt::of(run.status.as_ref().unwrap())
            .unwrap()
            .unwrap()
            .policy
            .origin
    };
    let origin = frozen(&run).expect("frozen from Tekton's labels");
    assert_eq!(origin.pipeline.as_deref(), Some("release"));
    assert_eq!(origin.pipeline_task.as_deref(), Some("approve"));
    let mut relabelled = run.clone();
    relabelled
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("tekton.dev/pipeline".into(), "prod".into());
    let replanned = apply(&relabelled, &plan_at(&relabelled, at(5)));
    assert_eq!(frozen(&replanned), Some(origin));
    // A gate Tekton did not make has nothing to freeze.
    let direct = started(single_approver_gate(&[]));
    assert_eq!(frozen(&direct), None);
}

#[test]
fn what_notifications_show_has_only_the_records_the_webhook_sealed() {
    let run = approve(started(two_approver_gate()), "alice", 5);
    let mut forged = run.clone();
    let annotations = forged.metadata.annotations.as_mut().unwrap();
    let mut records: Vec<Value> = serde_json::from_str(&annotations[LEDGER_ANNOTATION]).unwrap();
    records.push(json!({"user": "cto", "decision": "approve", "time": "2026-11-22T10:00:09Z", "seal": "v1:k1:forged"}));
    annotations.insert(
        LEDGER_ANNOTATION.into(),
        serde_json::to_string(&records).unwrap(),
    );
    let shown = with_sealed_ledger(&forged, &keys());
    let (ledger, _) = Ledger::parse_lenient(
        shown
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(LEDGER_ANNOTATION)
            .map(String::as_str),
    );
    let users: Vec<&str> = ledger.records().iter().map(|r| r.user.as_str()).collect();
    assert_eq!(users, ["alice"]);
    // Nothing sealed: no ledger at all.
    let mut all_forged = forged.clone();
    all_forged.metadata.annotations.as_mut().unwrap().insert(
        LEDGER_ANNOTATION.into(),
        serde_json::to_string(&records[1..]).unwrap(),
    );
    let shown = with_sealed_ledger(&all_forged, &keys());
    assert!(
        !shown
            .metadata
            .annotations
            .unwrap()
            .contains_key(LEDGER_ANNOTATION)
    );
}

#[test]
fn only_a_gate_whose_policy_names_sinks_is_read_as_notifying() {
    let quiet = started(single_approver_gate(&[]));
    assert!(Attempt::notifying(quiet.status.as_ref().unwrap()).is_none());
    let told = started(single_approver_gate(&[("notify", "release-slack")]));
    let attempt = Attempt::notifying(told.status.as_ref().unwrap()).expect("it notifies");
    assert_eq!(attempt.policy.notify, ["release-slack"]);
    assert!(attempt.untold(), "nothing told yet");
}
