//! Every rule of the protocol's "Deciding" section, with the exact decision or message.

use super::*;
use crate::approval::PolicyLookup;
use crate::approval::plan::plan;
use crate::approval::seal::gate_admission;
use crate::approval::testing::{admitted, keys, sealed};

const CONTROLLER: &str = "system:serviceaccount:tekton-approval:approval-controller";
const TEKTON: &str = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller";

fn now() -> DateTime<Utc> {
    "2026-11-22T10:05:00.123456Z".parse().unwrap()
}

fn admission() -> Admission {
    Admission {
        controller_username: CONTROLLER.into(),
        trusted_creators: vec![TEKTON.into()],
        direct_creators: Approvers::default(),
    }
}

fn fresh_gate() -> CustomRun {
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": "release-approve", "namespace": "ci", "uid": "uid-1",
                     "labels": {"tekton.dev/pipelineRun": "release"},
                     "annotations": {"team": "payments"}},
        "spec": {
            "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
            "params": [
                {"name": "approvers", "value": ["alice", "group:release-managers"]},
                {"name": "minApprovals", "value": "2"}
            ],
            "timeout": "1h0m0s"
        }
    }))
    .unwrap()
}

/// A gate the controller started at 10:00.
fn waiting_gate() -> CustomRun {
    started(fresh_gate())
}

/// `run` as the webhook admits it and the controller leaves it when it starts the gate at
/// 10:00.
fn started(run: CustomRun) -> CustomRun {
    let mut run = admitted(run);
    let plan = plan(
        &run,
        PolicyLookup::NotNeeded,
        &keys(),
        "2026-11-22T10:00:00Z".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(plan.not_admitted, None);
    run.status = Some(plan.status);
    run
}

/// `run` with these records in its ledger, sealed by the webhook.
fn with_records(run: &CustomRun, records: &[(&str, Decision, &str)]) -> CustomRun {
    let records: Vec<Record> = records
        .iter()
        .map(|(user, decision, time)| {
            sealed(
                run,
                Record {
                    user: user.to_string(),
                    groups: vec![],
                    decision: *decision,
                    comment: String::new(),
                    time: time.parse().unwrap(),
                    effective_at: None,
                    inputs: Default::default(),
                    seal: String::new(),
                },
            )
        })
        .collect();
    with_annotation(
        run,
        LEDGER_ANNOTATION,
        &Ledger::new(records).to_annotation(),
    )
}

/// What the API server stores after applying an admitted write.
fn applied(run: &CustomRun, mutation: &Mutation) -> CustomRun {
    let Mutation::Patch { operations, .. } = mutation else {
        return run.clone();
    };
    let mut value = serde_json::to_value(run).unwrap();
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(operations.clone())).unwrap();
    json_patch::patch(&mut value, &patch).unwrap();
    serde_json::from_value(value).unwrap()
}

fn create(new: &CustomRun, requester: Requester<'_>) -> Result<Mutation, Denial> {
    admission().admit(Operation::Create, None, new, requester, &keys(), now())
}

fn with_annotation(run: &CustomRun, key: &str, value: &str) -> CustomRun {
    let mut next = run.clone();
    next.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
    next
}

fn user<'a>(username: &'a str, groups: &'a [String]) -> Requester<'a> {
    Requester { username, groups }
}

fn update(old: &CustomRun, new: &CustomRun, requester: Requester<'_>) -> Result<Mutation, Denial> {
    admission().admit(Operation::Update, Some(old), new, requester, &keys(), now())
}

fn denial(result: Result<Mutation, Denial>) -> String {
    result.expect_err("a denial").0
}

fn recorded_ledger(mutation: &Mutation) -> Vec<Record> {
    let Mutation::Patch { operations, .. } = mutation else {
        panic!("expected a patch, got {mutation:?}")
    };
    let add = operations
        .iter()
        .find(|op| op["op"] == "add")
        .expect("a ledger write");
    Ledger::parse_lenient(add["value"].as_str())
        .0
        .records()
        .to_vec()
}

#[test]
fn an_approvers_annotation_becomes_a_ledger_record_with_their_identity() {
    let old = waiting_gate();
    let new = with_annotation(&old, APPROVE_ANNOTATION, " ship it ");
    let mutation = update(&old, &new, user("alice", &[])).unwrap();
    let record = sealed(
        &old,
        Record {
            user: "alice".into(),
            groups: vec![],
            decision: Decision::Approve,
            effective_at: None,
            inputs: Default::default(),
            comment: "ship it".into(),
            time: "2026-11-22T10:05:00.123Z".parse().unwrap(),
            seal: String::new(),
        },
    );
    assert!(record.seal.starts_with("test."));
    assert_eq!(
        mutation,
        Mutation::Patch {
            operations: vec![
                json!({"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1approve"}),
                json!({"op": "add", "path": "/metadata/annotations/approval.tekton.dev~1decisions",
                       "value": format!(r#"[{{"user":"alice","decision":"approve","comment":"ship it","time":"2026-11-22T10:05:00.123Z","seal":"{}"}}]"#, record.seal)}),
            ],
            recorded: Some(record),
            warning: None,
        }
    );
}

#[test]
fn a_group_member_is_recorded_with_the_group_that_made_them_eligible() {
    let old = waiting_gate();
    let new = with_annotation(&old, REJECT_ANNOTATION, "not during the freeze");
    let groups = vec![
        "system:authenticated".to_string(),
        "release-managers".to_string(),
    ];
    let ledger = recorded_ledger(&update(&old, &new, user("bob", &groups)).unwrap());
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].user, "bob");
    assert_eq!(ledger[0].groups, ["release-managers"]);
    assert_eq!(ledger[0].decision, Decision::Reject);
    assert_eq!(ledger[0].comment, "not during the freeze");
}

#[test]
fn a_new_record_is_appended_after_earlier_ones() {
    let old = waiting_gate();
    let first = with_annotation(&old, APPROVE_ANNOTATION, "");
    let Mutation::Patch { operations, .. } = update(&old, &first, user("alice", &[])).unwrap()
    else {
        panic!()
    };
    let ledger_text = operations[1]["value"].as_str().unwrap();
    let after_alice = with_annotation(&old, LEDGER_ANNOTATION, ledger_text);
    let second = with_annotation(&after_alice, APPROVE_ANNOTATION, "lgtm");
    let groups = vec!["release-managers".to_string()];
    let ledger = recorded_ledger(&update(&after_alice, &second, user("bob", &groups)).unwrap());
    assert_eq!(
        ledger.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
}

#[test]
fn a_non_approver_is_denied_with_the_gates_approvers() {
    let old = waiting_gate();
    let new = with_annotation(&old, APPROVE_ANNOTATION, "trust me");
    let groups = vec!["qa".to_string(), "system:authenticated".to_string()];
    assert_eq!(
        denial(update(&old, &new, user("mallory", &groups))),
        "mallory may not decide gate ci/release-approve: its approvers are alice, \
         group:release-managers. Ask one of them to approve; being able to annotate is not being an approver"
    );
    let new = with_annotation(&old, REJECT_ANNOTATION, "");
    assert!(
        denial(update(&old, &new, user("mallory", &groups))).contains("Ask one of them to reject")
    );
}

#[test]
fn the_identity_is_never_taken_from_the_annotation() {
    let old = waiting_gate();
    let new = with_annotation(&old, APPROVE_ANNOTATION, r#"{"user":"alice"}"#);
    assert!(update(&old, &new, user("mallory", &[])).is_err());
    let ledger = recorded_ledger(&update(&old, &new, user("alice", &[])).unwrap());
    assert_eq!(ledger[0].user, "alice");
    assert_eq!(ledger[0].comment, r#"{"user":"alice"}"#);
}

#[test]
fn a_decision_on_an_ended_gate_is_denied_with_who_ended_it() {
    let mut old = waiting_gate();
    let ended: crate::api::CustomRunStatus = serde_json::from_value(json!({
        "conditions": [{"type": "Succeeded", "status": "True", "reason": "Approved", "message": "Approved by alice, bob"}],
        "startTime": "2026-11-22T10:00:00Z",
        "completionTime": "2026-11-22T10:02:00Z",
        "results": [{"name": "approvedBy", "value": "[\"alice\",\"bob\"]"}]
    }))
    .unwrap();
    old.status = Some(ended);
    let new = with_annotation(&old, REJECT_ANNOTATION, "wait");
    assert_eq!(
        denial(update(&old, &new, user("alice", &[]))),
        "gate ci/release-approve was approved at 2026-11-22T10:02:00Z by alice, bob: no decision can be recorded any more"
    );
}

#[test]
fn every_kind_of_end_explains_itself() {
    let cases = [
        (
            "False",
            "Rejected",
            r#"[{"name": "rejectedBy", "value": "[\"carol\"]"}]"#,
            "was rejected at 2026-11-22T10:02:00Z by carol",
        ),
        (
            "False",
            "CustomRunTimedOut",
            "[]",
            "timed out at 2026-11-22T10:02:00Z (CustomRunTimedOut)",
        ),
        (
            "False",
            "CustomRunCancelled",
            "[]",
            "was cancelled at 2026-11-22T10:02:00Z",
        ),
        (
            "False",
            "InvalidApproval",
            "[]",
            "ended at 2026-11-22T10:02:00Z (InvalidApproval: bad)",
        ),
    ];
    for (status, reason, results, expected) in cases {
        let mut old = waiting_gate();
        old.status = Some(
            serde_json::from_value(json!({
                "conditions": [{"type": "Succeeded", "status": status, "reason": reason, "message": "bad"}],
                "completionTime": "2026-11-22T10:02:00Z",
                "results": serde_json::from_str::<Value>(results).unwrap(),
            }))
            .unwrap(),
        );
        let new = with_annotation(&old, APPROVE_ANNOTATION, "");
        assert_eq!(
            denial(update(&old, &new, user("alice", &[]))),
            format!("gate ci/release-approve {expected}: no decision can be recorded any more")
        );
    }
}

#[test]
fn a_decision_after_the_ledger_decided_or_the_deadline_passed_is_denied() {
    let old = waiting_gate();
    let rejected = with_records(&old, &[("alice", Decision::Reject, "2026-11-22T10:01:00Z")]);
    let new = with_annotation(&rejected, APPROVE_ANNOTATION, "");
    assert_eq!(
        denial(update(
            &rejected,
            &new,
            user("bob", &["release-managers".into()])
        )),
        "gate ci/release-approve is already rejected by alice: the decision is being recorded"
    );
    let late = admission().admit(
        Operation::Update,
        Some(&old),
        &with_annotation(&old, APPROVE_ANNOTATION, ""),
        user("alice", &[]),
        &keys(),
        "2026-11-22T11:00:01Z".parse().unwrap(),
    );
    assert_eq!(
        denial(late),
        "gate ci/release-approve timed out at 2026-11-22T11:00:00Z: no decision can be recorded"
    );
}

#[test]
fn a_decision_on_a_gate_not_yet_started_or_cancelled_is_denied() {
    let old = fresh_gate();
    let new = with_annotation(&old, APPROVE_ANNOTATION, "");
    assert!(
        denial(update(&old, &new, user("alice", &[])))
            .starts_with("gate ci/release-approve has not started waiting yet")
    );
    let mut cancelled = waiting_gate();
    cancelled.spec.status = Some("RunCancelled".into());
    let new = with_annotation(&cancelled, APPROVE_ANNOTATION, "");
    assert_eq!(
        denial(update(&cancelled, &new, user("alice", &[]))),
        "gate ci/release-approve was cancelled: there is nothing to decide"
    );
}

#[test]
fn approving_and_rejecting_at_once_is_denied() {
    let old = waiting_gate();
    let new = with_annotation(
        &with_annotation(&old, APPROVE_ANNOTATION, ""),
        REJECT_ANNOTATION,
        "",
    );
    assert_eq!(
        denial(update(&old, &new, user("alice", &[]))),
        "set either approval.tekton.dev/approve or approval.tekton.dev/reject on gate ci/release-approve, not both"
    );
}

#[test]
fn a_forged_ledger_is_denied_to_anyone_but_the_controller() {
    let old = waiting_gate();
    let forged = with_annotation(
        &old,
        LEDGER_ANNOTATION,
        r#"[{"user":"alice","decision":"approve","time":"2026-11-22T10:01:00Z"}]"#,
    );
    let message = "approval.tekton.dev/decisions of gate ci/release-approve is written only by the approval \
                   webhook: to decide, annotate approval.tekton.dev/approve or approval.tekton.dev/reject instead";
    assert_eq!(denial(update(&old, &forged, user("mallory", &[]))), message);
    // Even an approver may not write it directly: the record would not be the webhook's.
    assert_eq!(denial(update(&old, &forged, user("alice", &[]))), message);
    let mut removed = forged.clone();
    removed
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(LEDGER_ANNOTATION);
    assert_eq!(
        denial(update(&forged, &removed, user("mallory", &[]))),
        message
    );
    assert_eq!(
        update(&forged, &removed, user(CONTROLLER, &[])),
        Ok(Mutation::Unchanged)
    );
}

#[test]
fn a_ledger_or_an_input_on_create_is_denied_with_what_to_do() {
    let forged = with_annotation(&fresh_gate(), LEDGER_ANNOTATION, "[]");
    assert_eq!(
        denial(create(&forged, user(TEKTON, &[]))),
        "approval.tekton.dev/decisions cannot be set when gate ci/release-approve is created: it is written only by the approval webhook when approvers decide"
    );
    let new = with_annotation(&fresh_gate(), APPROVE_ANNOTATION, "pre-approved");
    assert_eq!(
        denial(create(&new, user(TEKTON, &[]))),
        "approval.tekton.dev/approve cannot be set when gate ci/release-approve is created: decide once the gate is waiting, with kubectl annotate customrun ... approval.tekton.dev/approve=\"comment\""
    );
}

#[test]
fn only_tekton_creates_gates_and_others_are_told_how_to_get_one() {
    for (who, groups) in [
        ("mallory", vec![]),
        (CONTROLLER, vec![]),
        ("alice", vec!["release-managers".to_string()]),
    ] {
        assert_eq!(
            denial(create(&fresh_gate(), user(who, &groups))),
            format!(
                "{who} may not create gate ci/release-approve directly: approval gates are \
                 created by Tekton when a PipelineRun reaches a pipeline task with taskRef \
                 {{apiVersion: approval.tekton.dev/v1alpha1, kind: Approval}}. Put the gate in a \
                 Pipeline and start a PipelineRun (the platform team can allow direct gates with \
                 the webhook's --direct-gate-creator)"
            )
        );
    }
    // Other CustomRuns are none of our business.
    let mut other = fresh_gate();
    other.spec.custom_ref.as_mut().unwrap().api_version = "example.dev/v1".into();
    assert_eq!(
        create(&other, user("mallory", &[])),
        Ok(Mutation::Unchanged)
    );
}

#[test]
fn a_gate_tekton_creates_is_sealed_and_the_controller_starts_it() {
    let mutation = create(&fresh_gate(), user(TEKTON, &[])).unwrap();
    let stored = applied(&fresh_gate(), &mutation);
    assert!(
        stored.metadata.annotations.as_ref().unwrap()[ADMITTED_ANNOTATION].starts_with("test.")
    );
    assert_eq!(gate_admission(&stored, &keys()), Verdict::Valid);
    // Without any annotations too.
    let mut bare = fresh_gate();
    bare.metadata.annotations = None;
    let stored = applied(&bare, &create(&bare, user(TEKTON, &[])).unwrap());
    assert_eq!(gate_admission(&stored, &keys()), Verdict::Valid);
    // An admission seal brought along is replaced by ours.
    let brought = with_annotation(&fresh_gate(), ADMITTED_ANNOTATION, "test.forged");
    let stored = applied(&brought, &create(&brought, user(TEKTON, &[])).unwrap());
    assert_eq!(gate_admission(&stored, &keys()), Verdict::Valid);
}

#[test]
fn direct_gates_are_an_explicit_opt_in_by_user_or_group() {
    use crate::approval::eligibility::Approver;
    let admission = Admission {
        direct_creators: Approvers::new([
            Approver::User("bench".into()),
            Approver::Group("gate-makers".into()),
        ]),
        ..admission()
    };
    let gate = fresh_gate();
    let by = |requester| admission.admit(Operation::Create, None, &gate, requester, &keys(), now());
    let stored = applied(&gate, &by(user("bench", &[])).unwrap());
    let annotations = stored.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        annotations[REQUESTED_BY_ANNOTATION], "bench",
        "stamped like a PipelineRun"
    );
    assert_eq!(gate_admission(&stored, &keys()), Verdict::Valid);
    let makers = ["gate-makers".to_string()];
    assert!(by(user("carol", &makers)).is_ok());
    let others = ["other".to_string()];
    assert!(by(user("mallory", &others)).is_err());
}

#[test]
fn tektons_copy_of_the_stamp_is_kept_only_with_our_seal_for_its_pipelinerun() {
    use crate::approval::requester::{Stamping, stamp};
    use crate::approval::seal::Naming;
    // The PipelineRun `release` as the webhook stamped it at its creation.
    let keys = keys();
    let stamping = Stamping {
        keys: &keys,
        namespace: "ci",
        naming: Naming::Name("release"),
    };
    let ops = stamp(
        Operation::Create,
        None,
        None,
        "dave",
        false,
        "PipelineRun ci/release",
        stamping,
    )
    .unwrap();
    let stamp_annotations = ops[0]["value"].as_object().unwrap().clone();
    let mut copied = fresh_gate();
    for (key, value) in &stamp_annotations {
        copied = with_annotation(&copied, key, value.as_str().unwrap());
    }
    let stored = applied(&copied, &create(&copied, user(TEKTON, &[])).unwrap());
    assert_eq!(
        stored.metadata.annotations.as_ref().unwrap()[REQUESTED_BY_ANNOTATION],
        "dave"
    );
    assert_eq!(gate_admission(&stored, &keys), Verdict::Valid);
    let started = started_as_stored(stored);
    let policy = Attempt::of(started.status.as_ref().unwrap())
        .unwrap()
        .unwrap()
        .policy;
    assert_eq!(policy.requested_by.as_deref(), Some("dave"));
    // The same stamp on a gate of another PipelineRun (carried over through a Pipeline's
    // annotations), or a stamp written by hand: removed, and the gate knows no requester.
    let mut elsewhere = copied.clone();
    elsewhere.metadata.labels = Some(
        [(
            "tekton.dev/pipelineRun".to_string(),
            "release-2".to_string(),
        )]
        .into(),
    );
    let by_hand = with_annotation(&fresh_gate(), REQUESTED_BY_ANNOTATION, "bob");
    for gate in [elsewhere, by_hand] {
        let stored = applied(&gate, &create(&gate, user(TEKTON, &[])).unwrap());
        let annotations = stored.metadata.annotations.as_ref().unwrap();
        assert!(
            !annotations.contains_key(REQUESTED_BY_ANNOTATION),
            "{annotations:?}"
        );
        assert!(!annotations.contains_key(crate::approval::REQUESTED_BY_SEAL_ANNOTATION));
        assert_eq!(gate_admission(&stored, &keys), Verdict::Valid);
    }
}

/// A stored gate (already sealed) as the controller starts it.
fn started_as_stored(mut run: CustomRun) -> CustomRun {
    let plan = plan(
        &run,
        PolicyLookup::NotNeeded,
        &keys(),
        "2026-11-22T10:00:00Z".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(plan.not_admitted, None);
    run.status = Some(plan.status);
    run
}

#[test]
fn the_admission_seal_cannot_be_added_changed_or_removed() {
    let old = waiting_gate();
    let changed = with_annotation(&old, ADMITTED_ANNOTATION, "test.other");
    let mut removed = old.clone();
    removed
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(ADMITTED_ANNOTATION);
    for new in [changed, removed] {
        for who in [TEKTON, CONTROLLER, "alice"] {
            assert_eq!(
                denial(update(&old, &new, user(who, &[]))),
                "approval.tekton.dev/admitted of gate ci/release-approve cannot be set or changed: it is the approval webhook's seal on the gate it admitted"
            );
        }
    }
}

#[test]
fn the_spec_of_a_gate_is_immutable_except_for_cancellation() {
    let old = waiting_gate();
    let mut widened = old.clone();
    widened.spec.params[0].value = crate::api::ParamValue::Array(vec!["mallory".into()]);
    assert_eq!(
        denial(update(&old, &widened, user("alice", &[]))),
        "the spec of gate ci/release-approve cannot change after it is created (only Tekton's cancellation \
         fields spec.status and spec.statusMessage may): start a new PipelineRun instead"
    );
    let mut escaped = old.clone();
    escaped.spec.custom_ref.as_mut().unwrap().api_version = "example.dev/v1".into();
    assert!(
        update(&old, &escaped, user("mallory", &[])).is_err(),
        "cannot stop being a gate"
    );
    let mut cancelled = old.clone();
    cancelled.spec.status = Some("RunCancelled".into());
    cancelled.spec.status_message = Some("PipelineRun cancelled".into());
    let tekton = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller";
    assert_eq!(
        update(&old, &cancelled, user(tekton, &[])),
        Ok(Mutation::Unchanged)
    );
}

#[test]
fn stale_input_annotations_are_dropped_not_recorded() {
    // Set while the webhook was not installed; now Tekton cancels the run.
    let old = with_annotation(&waiting_gate(), APPROVE_ANNOTATION, "ship it");
    let mut new = old.clone();
    new.spec.status = Some("RunCancelled".into());
    let tekton = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller";
    assert_eq!(
        update(&old, &new, user(tekton, &[])),
        Ok(Mutation::Patch {
            operations: vec![
                json!({"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1approve"})
            ],
            recorded: None,
            warning: None,
        })
    );
}

#[test]
fn other_changes_to_a_gate_pass_unchanged() {
    let old = waiting_gate();
    let new = with_annotation(&old, "team", "checkout");
    assert_eq!(
        update(&old, &new, user("mallory", &[])),
        Ok(Mutation::Unchanged)
    );
}

#[test]
fn customruns_of_other_tasks_are_never_judged() {
    let mut other = fresh_gate();
    other.spec.custom_ref.as_mut().unwrap().api_version = "example.dev/v1".into();
    let new = with_annotation(&other, LEDGER_ANNOTATION, "anything");
    assert_eq!(
        update(&other, &new, user("mallory", &[])),
        Ok(Mutation::Unchanged)
    );
}

#[test]
fn records_the_webhook_did_not_seal_neither_count_nor_stay_nor_block() {
    // Written around the webhook: an unsealed approval by alice, a forged veto, garbage.
    let old = with_annotation(
        &waiting_gate(),
        LEDGER_ANNOTATION,
        r#"[{"user":"alice","decision":"approve","time":"2026-11-22T10:01:00Z"},
            {"user":"carol","decision":"reject","time":"2026-11-22T10:02:00Z","seal":"test.AAAA"},
            {"user":"x"}]"#,
    );
    // The forged veto does not make the gate "already rejected", alice's unsealed approval
    // is not hers yet, and only sealed records remain.
    let approve = with_annotation(&old, APPROVE_ANNOTATION, "");
    let ledger = recorded_ledger(&update(&old, &approve, user("alice", &[])).unwrap());
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].user, "alice");
    assert!(ledger[0].seal.starts_with("test."));
    // Not even JSON: the next decision starts a clean ledger.
    let garbled = with_annotation(&waiting_gate(), LEDGER_ANNOTATION, "{broken");
    let approve = with_annotation(&garbled, APPROVE_ANNOTATION, "");
    assert_eq!(
        recorded_ledger(&update(&garbled, &approve, user("alice", &[])).unwrap()).len(),
        1
    );
}

#[test]
fn a_repeated_approval_is_denied_and_leaves_the_gate_to_the_others() {
    let mut gate = waiting_gate();
    let approve = with_annotation(&gate, APPROVE_ANNOTATION, "go");
    gate = applied(
        &approve,
        &update(&gate, &approve, user("alice", &[])).unwrap(),
    );
    for comment in ["go", "go!", ""] {
        let again = with_annotation(&gate, APPROVE_ANNOTATION, comment);
        assert_eq!(
            denial(update(&gate, &again, user("alice", &[]))),
            "alice already approved gate ci/release-approve at 2026-11-22T10:05:00Z (1 of 2): \
             an approval counts once, nothing was changed"
        );
    }
    // She may still change her mind, and the others still decide.
    let reject = with_annotation(&gate, REJECT_ANNOTATION, "found a bug");
    assert_eq!(
        recorded_ledger(&update(&gate, &reject, user("alice", &[])).unwrap()).len(),
        2
    );
    let managers = ["release-managers".to_string()];
    let bob = with_annotation(&gate, APPROVE_ANNOTATION, "");
    assert_eq!(
        recorded_ledger(&update(&gate, &bob, user("bob", &managers)).unwrap()).len(),
        2
    );
}

#[test]
fn a_comment_over_one_kib_is_denied_with_its_size() {
    let old = waiting_gate();
    let at_limit = with_annotation(&old, APPROVE_ANNOTATION, &"é".repeat(512));
    assert!(update(&old, &at_limit, user("alice", &[])).is_ok());
    let long = with_annotation(&old, REJECT_ANNOTATION, &"x".repeat(2048));
    assert_eq!(
        denial(update(&old, &long, user("alice", &[]))),
        "the comment in approval.tekton.dev/reject on gate ci/release-approve is 2048 bytes; at \
         most 1024 are recorded: shorten it (link to a longer note instead)"
    );
}

#[test]
fn approvals_stop_short_of_the_annotation_limit_so_that_a_veto_always_fits() {
    // Someone else's annotations (copied from the PipelineRun) fill most of the room.
    let old = with_annotation(
        &waiting_gate(),
        "big",
        &"x".repeat(ANNOTATIONS_LIMIT - VETO_RESERVE - 300),
    );
    let approve = with_annotation(&old, APPROVE_ANNOTATION, &"y".repeat(500));
    let message = denial(update(&old, &approve, user("alice", &[])));
    assert!(
        message.starts_with(
            "gate ci/release-approve has no room left for this approval: its annotations would take"
        ),
        "{message}"
    );
    assert!(message.ends_with("Reject it, or shorten the comment"));
    let reject = with_annotation(&old, REJECT_ANNOTATION, &"no ".repeat(300));
    assert_eq!(
        recorded_ledger(&update(&old, &reject, user("alice", &[])).unwrap())[0].decision,
        Decision::Reject
    );
    let full = with_annotation(&waiting_gate(), "big", &"x".repeat(ANNOTATIONS_LIMIT));
    let reject = with_annotation(&full, REJECT_ANNOTATION, "no");
    assert!(
        denial(update(&full, &reject, user("alice", &[]))).ends_with("Reject without a comment")
    );
}

#[test]
fn a_direct_cancellation_is_only_tektons_or_an_approvers() {
    let old = waiting_gate();
    let mut cancelled = old.clone();
    cancelled.spec.status = Some("RunCancelled".into());
    cancelled.spec.status_message = Some("stop".into());
    assert_eq!(
        denial(update(&old, &cancelled, user("mallory", &[]))),
        "mallory may not cancel gate ci/release-approve: only Tekton (when the PipelineRun is \
         cancelled or times out) or one of its approvers (alice, group:release-managers) may. To \
         stop the pipeline, cancel the PipelineRun: tkn pipelinerun cancel release"
    );
    assert_eq!(
        update(&old, &cancelled, user(TEKTON, &[])),
        Ok(Mutation::Unchanged)
    );
    assert_eq!(
        update(&old, &cancelled, user("alice", &[])),
        Ok(Mutation::Unchanged)
    );
    assert_eq!(
        update(&old, &cancelled, user("bob", &["release-managers".into()])),
        Ok(Mutation::Unchanged)
    );
    // Only the message, or taking it back, is a change to the cancellation too.
    let mut message_only = old.clone();
    message_only.spec.status_message = Some("x".into());
    assert!(update(&old, &message_only, user("mallory", &[])).is_err());
    assert!(update(&cancelled, &old, user("mallory", &[])).is_err());
    // Before the gate waits, its approvers are not known yet: only Tekton.
    let fresh = admitted(fresh_gate());
    let mut cancelled = fresh.clone();
    cancelled.spec.status = Some("RunCancelled".into());
    assert!(
        denial(update(&fresh, &cancelled, user("alice", &[])))
            .contains("only Tekton (when the PipelineRun is cancelled or times out) or its approvers (once it is waiting) may")
    );
}

mod properties {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    fn annotation_key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(APPROVE_ANNOTATION.to_string()),
            Just(REJECT_ANNOTATION.to_string()),
            Just(LEDGER_ANNOTATION.to_string()),
            Just("approval.tekton.dev/other".to_string()),
            "[a-z./-]{1,20}",
        ]
    }

    fn ledger_text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".*",
            Just("[]".to_string()),
            vec(("[a-z]{1,6}", prop::bool::ANY, 0u32..120), 0..4).prop_map(|records| {
                let records: Vec<Value> = records
                    .into_iter()
                    .map(|(user, approve, minute)| json!({
                        "user": user,
                        "decision": if approve { "approve" } else { "reject" },
                        "time": (chrono::DateTime::<Utc>::from_timestamp(1_795_341_600, 0).unwrap()
                            + chrono::Duration::minutes(minute.into())).to_rfc3339(),
                    }))
                    .collect();
                Value::Array(records).to_string()
            }),
        ]
    }

    fn annotations() -> impl Strategy<Value = std::collections::BTreeMap<String, String>> {
        btree_map(annotation_key(), ledger_text(), 0..5)
    }

    proptest! {
        #[test]
        fn admit_never_panics_and_records_only_the_requester(
            old_annotations in annotations(),
            new_annotations in annotations(),
            username in prop_oneof![Just("alice".to_string()), Just("mallory".to_string()), Just(CONTROLLER.to_string()), "[a-z:]{0,12}"],
            groups in vec(prop_oneof![Just("release-managers".to_string()), "[a-z]{1,8}"], 0..3),
            started in prop::bool::ANY,
        ) {
            let mut old = if started { waiting_gate() } else { fresh_gate() };
            old.metadata.annotations = Some(old_annotations);
            let mut new = old.clone();
            new.metadata.annotations = Some(new_annotations);
            let requester = Requester { username: &username, groups: &groups };
            for operation in [Operation::Create, Operation::Update] {
                let old = (operation == Operation::Update).then_some(&old);
                if let Ok(Mutation::Patch { operations, recorded, .. }) =
                    admission().admit(operation, old, &new, requester, &keys(), now())
                {
                    if let Some(record) = recorded {
                        prop_assert_eq!(&record.user, &username);
                    }
                    let ledger_path = "/metadata/annotations/approval.tekton.dev~1decisions";
                    for op in operations.iter().filter(|op| op["op"] == "add" && op["path"] == ledger_path) {
                        let (ledger, unreadable) = Ledger::parse_lenient(op["value"].as_str());
                        prop_assert!(unreadable.is_empty(), "the webhook writes only records");
                        let last = ledger.records().last().unwrap();
                        prop_assert_eq!(&last.user, &username);
                    }
                }
            }
        }
    }
}

/// A gate started from params that forbid self-approval, requested by `requester`.
fn gate_requested_by(requester: Option<&str>) -> CustomRun {
    let mut run = fresh_gate();
    run.spec.params.push(
        serde_json::from_value(json!({"name": "allowSelfApproval", "value": "false"})).unwrap(),
    );
    if let Some(requester) = requester {
        run = with_annotation(&run, REQUESTED_BY_ANNOTATION, requester);
    }
    started(run)
}

#[test]
fn the_requester_may_not_approve_their_own_run_when_self_approval_is_forbidden() {
    let old = gate_requested_by(Some("dave"));
    let managers = ["release-managers".to_string()];
    let approve = with_annotation(&old, APPROVE_ANNOTATION, "lgtm");
    assert_eq!(
        denial(update(&old, &approve, user("dave", &managers))),
        "dave started the run of gate ci/release-approve and this gate does not allow \
         self-approval: ask another of its approvers (alice, group:release-managers)"
    );
    // Another approver may; the requester may still reject their own run.
    assert_eq!(
        recorded_ledger(&update(&old, &approve, user("alice", &[])).unwrap())[0].user,
        "alice"
    );
    let reject = with_annotation(&old, REJECT_ANNOTATION, "wrong build");
    assert_eq!(
        recorded_ledger(&update(&old, &reject, user("dave", &managers)).unwrap())[0].decision,
        Decision::Reject
    );
}

#[test]
fn with_no_known_requester_approvals_are_refused_when_self_approval_is_forbidden() {
    let old = gate_requested_by(None);
    let approve = with_annotation(&old, APPROVE_ANNOTATION, "");
    assert_eq!(
        denial(update(&old, &approve, user("alice", &[]))),
        "gate ci/release-approve does not know who started its run (no verifiable \
         approval.tekton.dev/requested-by: it was created while the approval webhook was not \
         stamping runs) and this gate does not allow self-approval, so no approval can be \
         recorded: start a new run"
    );
}

#[test]
fn self_approval_is_allowed_by_default_on_inline_gates() {
    let old = started(with_annotation(
        &fresh_gate(),
        REQUESTED_BY_ANNOTATION,
        "alice",
    ));
    let approve = with_annotation(&old, APPROVE_ANNOTATION, "mine");
    assert_eq!(
        recorded_ledger(&update(&old, &approve, user("alice", &[])).unwrap())[0].user,
        "alice"
    );
}

#[test]
fn a_forged_stamp_on_a_direct_gate_is_denied_and_nobody_changes_it_later() {
    let admission = Admission {
        direct_creators: Approvers::new([crate::approval::eligibility::Approver::User(
            "mallory".into(),
        )]),
        ..admission()
    };
    let forged = with_annotation(&fresh_gate(), REQUESTED_BY_ANNOTATION, "bob");
    assert_eq!(
        denial(admission.admit(
            Operation::Create,
            None,
            &forged,
            user("mallory", &[]),
            &keys(),
            now()
        )),
        "approval.tekton.dev/requested-by is set by the approval webhook to the user who creates \
         gate ci/release-approve: remove it (it says bob, but you are mallory)"
    );
    let waiting = gate_requested_by(Some("dave"));
    let changed = with_annotation(&waiting, REQUESTED_BY_ANNOTATION, "bob");
    assert_eq!(
        denial(update(&waiting, &changed, user("dave", &[]))),
        "approval.tekton.dev/requested-by of gate ci/release-approve cannot be set or changed: \
         it records who started the run, written once by the approval webhook"
    );
}

#[test]
fn pipelineruns_are_stamped_and_sealed_with_their_creator() {
    use crate::approval::requester::{Stamping, verified_copy};
    use crate::approval::seal::Naming;
    let keys = keys();
    let stamping = Stamping {
        keys: &keys,
        namespace: "ci",
        naming: Naming::GenerateName("release-"),
    };
    let annotations: std::collections::BTreeMap<String, String> =
        [("team".to_string(), "web".to_string())].into();
    let Ok(Mutation::Patch {
        operations,
        recorded: None,
        ..
    }) = admission().admit_pipelinerun(
        Operation::Create,
        None,
        Some(&annotations),
        user("dave", &[]),
        stamping,
    )
    else {
        panic!("a stamp")
    };
    assert_eq!(
        operations[0],
        json!({"op": "add", "path": "/metadata/annotations/approval.tekton.dev~1requested-by", "value": "dave"})
    );
    let mut stored = annotations.clone();
    stored.insert(REQUESTED_BY_ANNOTATION.into(), "dave".into());
    stored.insert(
        crate::approval::REQUESTED_BY_SEAL_ANNOTATION.into(),
        operations[1]["value"].as_str().unwrap().into(),
    );
    assert_eq!(
        verified_copy(Some(&stored), &keys, "ci", Some("release-abcde")),
        Some("dave")
    );
    let forged: std::collections::BTreeMap<String, String> =
        [(REQUESTED_BY_ANNOTATION.to_string(), "bob".to_string())].into();
    assert_eq!(
        denial(admission().admit_pipelinerun(
            Operation::Create,
            None,
            Some(&forged),
            user("mallory", &[]),
            Stamping {
                naming: Naming::Name("release"),
                ..stamping
            }
        )),
        "approval.tekton.dev/requested-by is set by the approval webhook to the user who creates \
         PipelineRun ci/release: remove it (it says bob, but you are mallory)"
    );
}

// ---- deferred approvals, windows and inputs ----------------------------------------------

fn with_annotations(run: &CustomRun, pairs: &[(&str, &str)]) -> CustomRun {
    pairs.iter().fold(run.clone(), |run, (key, value)| {
        with_annotation(&run, key, value)
    })
}

fn alice() -> Requester<'static> {
    user("alice", &[])
}

#[test]
fn a_deferred_approval_is_recorded_with_its_time_and_the_inputs_are_consumed() {
    let old = waiting_gate();
    for (value, expected) in [
        ("2026-11-22T10:30:00Z", "2026-11-22T10:30:00Z"),
        ("20m", "2026-11-22T10:25:00.123Z"),
    ] {
        let new = with_annotations(
            &old,
            &[(APPROVE_ANNOTATION, ""), (EFFECTIVE_AT_ANNOTATION, value)],
        );
        let mutation = update(&old, &new, alice()).unwrap();
        let Mutation::Patch {
            operations,
            recorded: Some(record),
            warning,
        } = &mutation
        else {
            panic!("{mutation:?}")
        };
        assert_eq!(
            record.effective_at,
            Some(expected.parse().unwrap()),
            "{value}"
        );
        assert_eq!(
            warning.as_deref(),
            Some(format!("gate ci/release-approve: this approval takes effect at {}Z; a rejection before then wins", &expected[..19]).as_str())
        );
        assert!(operations.contains(&json!({"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1effective-at"})));
        let stored = applied(&new, &mutation);
        assert_eq!(
            recorded_ledger(&mutation)[0].effective_at,
            record.effective_at
        );
        assert!(annotation(&stored, EFFECTIVE_AT_ANNOTATION).is_none());
    }
    // A time already past is an approval at once.
    let new = with_annotations(
        &old,
        &[
            (APPROVE_ANNOTATION, ""),
            (EFFECTIVE_AT_ANNOTATION, "2026-11-22T09:00:00Z"),
        ],
    );
    let Ok(Mutation::Patch {
        recorded: Some(record),
        warning: None,
        ..
    }) = update(&old, &new, alice())
    else {
        panic!("an immediate approval")
    };
    assert_eq!(record.effective_at, None);
}

#[test]
fn a_deferral_that_cannot_count_or_make_sense_is_denied() {
    let old = waiting_gate();
    let rows = [
        (
            "tomorrow",
            "approval.tekton.dev/effective-at must be an RFC 3339 time (2026-12-01T09:00:00Z) or a duration from now (2h, 30m), got `tomorrow`",
        ),
        (
            "2h",
            "gate ci/release-approve times out at 2026-11-22T11:00:00Z, before 2026-11-22T12:05:00Z: an approval deferred past the deadline would never count; approve for an earlier time",
        ),
    ];
    for (value, expected) in rows {
        let new = with_annotations(
            &old,
            &[(APPROVE_ANNOTATION, ""), (EFFECTIVE_AT_ANNOTATION, value)],
        );
        assert_eq!(denial(update(&old, &new, alice())), expected);
    }
    let new = with_annotations(
        &old,
        &[(REJECT_ANNOTATION, ""), (EFFECTIVE_AT_ANNOTATION, "5m")],
    );
    assert_eq!(
        denial(update(&old, &new, alice())),
        "approval.tekton.dev/effective-at cannot go with a rejection on gate ci/release-approve: a rejection takes effect at once and gives no inputs; remove it"
    );
    let new = with_annotations(&old, &[(EFFECTIVE_AT_ANNOTATION, "5m")]);
    assert!(denial(update(&old, &new, alice())).starts_with(
        "approval.tekton.dev/effective-at on gate ci/release-approve goes with an approval"
    ));
    // Nothing is recorded either way, even for someone who is no approver.
    let target = input("target");
    let new = with_annotations(&old, &[(target.as_str(), "x")]);
    assert!(update(&old, &new, user("mallory", &[])).is_err());
}

#[test]
fn a_pending_approval_may_be_replaced_but_one_in_effect_may_not() {
    let old = waiting_gate();
    let new = with_annotations(
        &old,
        &[(APPROVE_ANNOTATION, ""), (EFFECTIVE_AT_ANNOTATION, "20m")],
    );
    let deferred = applied(&new, &update(&old, &new, alice()).unwrap());
    let again = with_annotation(&deferred, APPROVE_ANNOTATION, "now, please");
    let mutation = update(&deferred, &again, alice()).unwrap();
    let ledger = recorded_ledger(&mutation);
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[1].effective_at, None);
    let approved = applied(&again, &mutation);
    let third = with_annotation(&approved, APPROVE_ANNOTATION, "");
    assert!(denial(update(&approved, &third, alice())).starts_with("alice already approved"));
}

fn gate_with(spec: Value) -> CustomRun {
    let mut run = fresh_gate();
    run.spec.custom_ref = None;
    run.spec.params.clear();
    run.spec.custom_spec = Some(
        serde_json::from_value(json!({
            "apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval", "spec": spec,
        }))
        .unwrap(),
    );
    started(run)
}

#[test]
fn an_approval_outside_the_window_is_recorded_with_a_warning_saying_when() {
    // now() is 10:05 UTC.
    let old = gate_with(
        json!({"approvers": ["alice"], "approvalWindow": {"timeZone": "UTC", "hours": "10:30-17:00"}}),
    );
    let new = with_annotation(&old, APPROVE_ANNOTATION, "");
    let Ok(Mutation::Patch {
        recorded: Some(record),
        warning: Some(warning),
        ..
    }) = update(&old, &new, alice())
    else {
        panic!("recorded with a warning")
    };
    assert_eq!(
        record.effective_at, None,
        "the window is the policy's, not the record's"
    );
    assert_eq!(
        warning,
        "gate ci/release-approve: the approval window (10:30-17:00 UTC) is closed; this approval takes effect at 2026-11-22T10:30:00Z, when it opens (a rejection before then wins)"
    );
    // A window that opens only after the deadline: recorded, with a warning that it will not count.
    let late = gate_with(
        json!({"approvers": ["alice"], "approvalWindow": {"timeZone": "UTC", "hours": "11:30-17:00"}}),
    );
    let new = with_annotation(&late, APPROVE_ANNOTATION, "");
    let Ok(Mutation::Patch {
        warning: Some(warning),
        ..
    }) = update(&late, &new, alice())
    else {
        panic!("recorded with a warning")
    };
    assert!(
        warning.ends_with(
            "after the deadline 2026-11-22T11:00:00Z: this approval is recorded but will not count"
        ),
        "{warning}"
    );
}

fn gate_with_inputs() -> CustomRun {
    gate_with(
        json!({"approvers": ["alice", "bob", "carol"], "minApprovals": 2, "inputs": [
            {"name": "target", "choices": ["staging", "production"], "required": true},
            {"name": "replicas", "default": "3", "pattern": "[0-9]+"},
        ]}),
    )
}

fn input(name: &str) -> String {
    format!("{INPUT_ANNOTATION_PREFIX}{name}")
}

#[test]
fn inputs_are_checked_and_recorded_with_defaults() {
    let old = gate_with_inputs();
    let new = with_annotations(
        &old,
        &[(APPROVE_ANNOTATION, ""), (&input("target"), "production")],
    );
    let mutation = update(&old, &new, alice()).unwrap();
    let record = &recorded_ledger(&mutation)[0];
    assert_eq!(
        record.inputs,
        [
            ("replicas".to_string(), "3".to_string()),
            ("target".to_string(), "production".to_string())
        ]
        .into()
    );
    let stored = applied(&new, &mutation);
    assert!(
        annotation(&stored, &input("target")).is_none(),
        "the input annotation is consumed"
    );
    let rows: [(&[(&str, &str)], &str); 4] = [
        (
            &[],
            "input `target` is required: approve with --input target=<staging|production> (annotation approval.tekton.dev/input-target) (gate ci/release-approve)",
        ),
        (
            &[("target", "prod")],
            "input `target` must be one of staging, production, got `prod` (gate ci/release-approve)",
        ),
        (
            &[("target", "staging"), ("replicas", "many")],
            "input `replicas` must match `[0-9]+`, got `many` (gate ci/release-approve)",
        ),
        (
            &[("target", "staging"), ("region", "eu")],
            "unknown input `region`: this gate asks for target, replicas (gate ci/release-approve)",
        ),
    ];
    for (given, expected) in rows {
        let keys: Vec<(String, &str)> = given.iter().map(|(n, v)| (input(n), *v)).collect();
        let mut pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        pairs.push((APPROVE_ANNOTATION, ""));
        let new = with_annotations(&old, &pairs);
        assert_eq!(denial(update(&old, &new, alice())), expected);
    }
}

#[test]
fn with_a_quorum_every_approval_carries_the_first_approvals_inputs() {
    let old = gate_with_inputs();
    let new = with_annotations(
        &old,
        &[(APPROVE_ANNOTATION, ""), (&input("target"), "production")],
    );
    let first = applied(&new, &update(&old, &new, alice()).unwrap());
    // Bob gives none: he agrees with alice's.
    let bob = with_annotation(&first, APPROVE_ANNOTATION, "");
    let ledger = recorded_ledger(&update(&first, &bob, user("bob", &[])).unwrap());
    assert_eq!(ledger[1].inputs, ledger[0].inputs);
    // Carol's differ: denied, nothing recorded.
    let carol = with_annotations(
        &first,
        &[(APPROVE_ANNOTATION, ""), (&input("target"), "staging")],
    );
    assert_eq!(
        denial(update(&first, &carol, user("carol", &[]))),
        "alice approved with replicas=3, target=production; input `target`=`staging` differs: every approval of a gate carries the same inputs, so approve with the same values (or none), or reject (gate ci/release-approve)"
    );
}

#[test]
fn a_gate_without_inputs_refuses_them() {
    let old = waiting_gate();
    let new = with_annotations(&old, &[(APPROVE_ANNOTATION, ""), (&input("target"), "x")]);
    assert_eq!(
        denial(update(&old, &new, alice())),
        "this gate asks for no inputs, so `target` cannot be given (gate ci/release-approve)"
    );
}

#[test]
fn approval_extras_left_over_from_a_time_without_the_webhook_are_dropped_not_recorded() {
    let old = with_annotations(&waiting_gate(), &[(EFFECTIVE_AT_ANNOTATION, "1m")]);
    let new = with_annotation(&old, "team", "checkout");
    let Ok(Mutation::Patch {
        operations,
        recorded: None,
        ..
    }) = update(&old, &new, user("mallory", &[]))
    else {
        panic!("the leftover is removed")
    };
    assert_eq!(
        operations,
        [
            json!({"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1effective-at"})
        ]
    );
}

#[test]
fn approval_extras_cannot_be_set_when_a_gate_is_created() {
    let new = with_annotation(&fresh_gate(), EFFECTIVE_AT_ANNOTATION, "1h");
    assert!(denial(create(&new, user(TEKTON, &[]))).starts_with(
        "approval.tekton.dev/effective-at cannot be set when gate ci/release-approve is created"
    ));
}
