//! Chaos: two controller replicas, and the leader SIGKILLed every 0.2-3 s (then started
//! again after up to 12 s, so that the other replica sometimes takes over) while a driver decides a mix of gates: quorums, retries 0-2, timeouts 5-30 s,
//! every onTimeout, some PipelineRuns cancelled. At the end an oracle built on the pure core
//! checks every gate: it ended; its status is what its own ledger and deadline say
//! (`evaluate`); every decision the API server accepted was recorded once; each earlier
//! attempt failed as its ledger says; nothing stayed Running past its deadline + 10 s.
//!
//! `CHAOS_GATES` (default 40; `make chaos` runs 300) and `CHAOS_SEED` (default: the time,
//! printed) make a run repeatable. The only scenario of its binary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use approval_e2e::*;
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tekton_approval::api::CustomRun;
use tekton_approval::approval::ledger::{Ledger, Record};
use tekton_approval::approval::outcome::{Outcome, evaluate};
use tekton_approval::approval::plan::{Attempt, reason};
use tekton_approval::approval::policy::{OnReject, OnTimeout};
use tekton_approval::approval::seal::{self, Keyring, Verdict};
use tokio::sync::Mutex;

/// What the driver does to one gate.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    /// Enough approvals (alice, and bob when two are needed), each attempt.
    Approve,
    /// bob rejects, each attempt.
    Reject,
    /// Nothing: the deadline decides.
    Wait,
    /// The PipelineRun is cancelled.
    Cancel,
}

#[derive(Clone, Debug)]
struct Plan {
    name: String,
    act: Act,
    min_approvals: u32,
    retries: u32,
    timeout_secs: u64,
    on_timeout: &'static str,
    on_reject: &'static str,
}

fn plans(count: usize, rng: &mut fastrand::Rng) -> Vec<Plan> {
    (0..count)
        .map(|i| Plan {
            name: format!("g{i}"),
            act: match rng.u8(0..10) {
                0..=3 => Act::Approve,
                4..=5 => Act::Reject,
                6..=8 => Act::Wait,
                _ => Act::Cancel,
            },
            min_approvals: rng.u32(1..=2),
            retries: rng.u32(0..=2),
            timeout_secs: rng.u64(5..=30),
            on_timeout: ["fail", "reject", "approve"][rng.usize(0..3)],
            on_reject: ["fail", "continue"][rng.usize(0..2)],
        })
        .collect()
}

fn pipeline(plan: &Plan) -> Value {
    json!({"tasks": [{
        "name": "approve",
        "retries": plan.retries,
        "timeout": format!("{}s", plan.timeout_secs),
        "taskRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
        "params": [
            {"name": "approvers", "value": ["alice", "bob"]},
            {"name": "minApprovals", "value": plan.min_approvals.to_string()},
            {"name": "onTimeout", "value": plan.on_timeout},
            {"name": "onReject", "value": plan.on_reject},
        ],
    }]})
}

/// The controller replica that holds the Lease, as approval.sh names it.
async fn leader(admin: &kube::Client) -> Option<&'static str> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "tekton-approval");
    let holder = leases
        .get_opt("approval-controller")
        .await
        .ok()??
        .spec?
        .holder_identity?;
    match holder.as_str() {
        "local-controller" => Some("controller"),
        "local-controller-2" => Some("controller-2"),
        _ => None,
    }
}

fn ended(run: &CustomRun) -> bool {
    run.status
        .as_ref()
        .and_then(|s| s.succeeded())
        .is_some_and(|c| c.status != "Unknown")
}

fn attempts(run: &CustomRun) -> usize {
    run.status
        .as_ref()
        .map(|s| s.retries_status.len() + 1)
        .unwrap_or(0)
}

/// Decisions the API server accepted: (gate, user, comment).
type Accepted = Arc<Mutex<BTreeSet<(String, String, String)>>>;

#[tokio::test]
async fn the_leader_killed_again_and_again_loses_no_decision_and_ends_every_gate_as_its_ledger_says()
 {
    let s = scenario("chaos").await;
    let count: usize = std::env::var("CHAOS_GATES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    eprintln!("e2e: chaos with {count} gates, CHAOS_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let plans = plans(count, &mut rng);
    s.script(&["approval.sh", "start", "controller-2"]).await;
    let chaos_started = Instant::now();
    for plan in &plans {
        s.start_pipeline(&plan.name, pipeline(plan), json!({}))
            .await;
    }

    // The killer: SIGKILL the leader, start it again, every 0.2-3 s, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let takeovers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let stop = stop.clone();
        let kills = kills.clone();
        let takeovers = takeovers.clone();
        let admin = s.admin.clone();
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(rng.u64(200..=3000))).await;
                if let Some(part) = leader(&admin).await {
                    script(&["approval.sh", "kill", part]).await;
                    kills.fetch_add(1, Ordering::SeqCst);
                    // Down for a while, often past the Lease's 6 s: then the follower takes
                    // over; a quick restart keeps the Lease (same identity).
                    tokio::time::sleep(Duration::from_millis(rng.u64(0..=12_000))).await;
                    script(&["approval.sh", "start", part]).await;
                    if leader(&admin).await.is_some_and(|now| now != part) {
                        takeovers.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };

    // The driver: each gate's action, once per attempt, a random moment into the attempt.
    let accepted: Accepted = Arc::default();
    let alice = s.as_user("alice", &[]).await;
    let bob = s.as_user("bob", &[]).await;
    let mut drivers = tokio::task::JoinSet::new();
    for plan in plans.clone() {
        let (runs, alice, bob, admin) = (
            s.customruns(),
            Api::<CustomRun>::namespaced(alice.clone(), &s.namespace),
            Api::<CustomRun>::namespaced(bob.clone(), &s.namespace),
            s.pipelineruns(),
        );
        let accepted = accepted.clone();
        let delay = rng.u64(500..=plan.timeout_secs * 1000 * 2 / 3);
        drivers.spawn(async move {
            let gate = format!("{}-approve", plan.name);
            let mut acted_on = 0;
            let deadline = Instant::now() + Duration::from_secs(300);
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let Ok(Some(run)) = runs.get_opt(&gate).await else {
                    continue;
                };
                if ended(&run) {
                    return;
                }
                let attempt = attempts(&run);
                if attempt == 0 || attempt == acted_on {
                    continue;
                }
                let started = run.status.as_ref().and_then(|s| s.start_time);
                let Some(started) = started else { continue };
                if Utc::now() < started + chrono::Duration::milliseconds(delay as i64) {
                    continue;
                }
                acted_on = attempt;
                let decide = |api: &Api<CustomRun>, user: &str, key: &str| {
                    let api = api.clone();
                    let comment = format!("{gate} attempt {attempt} by {user}");
                    let (user, key) = (user.to_string(), key.to_string());
                    let accepted = accepted.clone();
                    let gate = gate.clone();
                    async move {
                        let patch = json!({"metadata": {"annotations": {key: comment.clone()}}});
                        if api
                            .patch(&gate, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .is_ok()
                        {
                            accepted.lock().await.insert((gate, user, comment));
                        }
                    }
                };
                match plan.act {
                    Act::Approve => {
                        decide(&alice, "alice", "approval.tekton.dev/approve").await;
                        if plan.min_approvals == 2 {
                            decide(&bob, "bob", "approval.tekton.dev/approve").await;
                        }
                    }
                    Act::Reject => decide(&bob, "bob", "approval.tekton.dev/reject").await,
                    Act::Wait => {}
                    Act::Cancel => {
                        let patch = json!({"spec": {"status": "Cancelled"}});
                        let _ = admin
                            .patch(&plan.name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await;
                        return;
                    }
                }
            }
        });
    }
    while drivers.join_next().await.is_some() {}

    // Every gate ends; then the chaos stops.
    let budget = Instant::now() + Duration::from_secs(240);
    loop {
        let runs = s.customruns().list(&Default::default()).await.unwrap();
        let open: Vec<String> = runs
            .items
            .iter()
            .filter(|r| !ended(r))
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        if open.is_empty() && runs.items.len() == count {
            break;
        }
        assert!(
            Instant::now() < budget,
            "{} gates never ended: {open:?}",
            open.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::SeqCst);
    killer.await.unwrap();
    record_measurement(
        &format!(
            "chaos: {count} gates started and ended, the leader SIGKILLed {} times, the \
             other replica took over {} times",
            kills.load(Ordering::SeqCst),
            takeovers.load(Ordering::SeqCst)
        ),
        chaos_started.elapsed(),
    );

    // The oracle.
    let secrets: Api<Secret> = Api::namespaced(s.admin.clone(), "tekton-approval");
    let data: BTreeMap<String, Vec<u8>> = secrets
        .get("approval-seal-key")
        .await
        .unwrap()
        .data
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let keys = tekton_approval::keys::keyring_from_data(&data).unwrap();
    let accepted = accepted.lock().await.clone();
    let mut recorded: BTreeSet<(String, String, String)> = BTreeSet::new();
    for plan in &plans {
        let gate = format!("{}-approve", plan.name);
        let run = s.customruns().get(&gate).await.unwrap();
        let records = check_gate(&run, plan, &keys);
        for record in records {
            let entry = (gate.clone(), record.user.clone(), record.comment.clone());
            assert!(
                recorded.insert(entry.clone()),
                "{gate}: {entry:?} counted twice"
            );
        }
    }
    let lost: Vec<_> = accepted.difference(&recorded).collect();
    assert!(lost.is_empty(), "accepted but never recorded: {lost:?}");
    s.script(&["approval.sh", "start", "controller"]).await;
    s.script(&["approval.sh", "stop", "controller-2"]).await;
}

/// Checks one ended gate against its own ledger; returns the records it holds (all attempts).
fn check_gate(run: &CustomRun, plan: &Plan, keys: &Keyring) -> Vec<Record> {
    let name = run.metadata.name.clone().unwrap();
    let status = run.status.clone().unwrap();
    let condition = status.succeeded().unwrap().clone();
    assert_ne!(condition.status, "Unknown", "{name} ended");
    if plan.act == Act::Cancel && condition.reason == reason::CANCELLED {
        return Vec::new();
    }
    let attempt = Attempt::of(&status).unwrap().unwrap();
    let identity = seal::Gate {
        uid: run.metadata.uid.as_deref().unwrap(),
        namespace: run.metadata.namespace.as_deref().unwrap(),
        name: &name,
    };
    let ledger_text = run
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("approval.tekton.dev/decisions"))
        .map(String::as_str);
    let (ledger, _) = Ledger::parse_lenient(ledger_text);
    let archived = Attempt::archived_records(&status);
    let verified: Vec<Record> = ledger
        .records()
        .iter()
        .filter(|r| {
            keys.verify(&seal::record_message(identity, r), Some(&r.seal)) == Verdict::Valid
        })
        .cloned()
        .collect();
    assert_eq!(
        verified.len(),
        ledger.records().len(),
        "{name}: only sealed records"
    );
    let current = Ledger::new(verified).without(&archived);
    let completion = status.completion_time.unwrap();
    let tally = evaluate(&attempt.policy, &current, attempt.deadline, completion);
    let expected = match (&tally.outcome, attempt.policy.on_timeout) {
        (Outcome::Approved { .. }, _) => reason::APPROVED,
        (Outcome::Rejected { .. }, _) => reason::REJECTED,
        (Outcome::TimedOut { .. }, OnTimeout::Fail) => reason::TIMED_OUT,
        (Outcome::TimedOut { .. }, OnTimeout::Approve) => reason::APPROVED_ON_TIMEOUT,
        (Outcome::TimedOut { .. }, OnTimeout::Reject) => reason::REJECTED_ON_TIMEOUT,
        (Outcome::Waiting, _) => panic!("{name}: ended, but its ledger still waits: {status:?}"),
    };
    // Cancelled by Tekton while a decision was on its way is the one other honest end.
    if condition.reason != reason::CANCELLED {
        assert_eq!(condition.reason, expected, "{name}: {plan:?} {status:?}");
        let approved_by = serde_json::to_string(&tally.approved_by).unwrap();
        let result = status
            .results
            .iter()
            .find(|r| r.name == "approvedBy")
            .unwrap();
        assert_eq!(result.value, approved_by, "{name}: approvedBy");
    }
    if let (Outcome::TimedOut { at }, Some(deadline)) = (&tally.outcome, attempt.deadline) {
        assert!(
            completion <= deadline + chrono::Duration::seconds(10),
            "{name}: Running {}s past its deadline {at}",
            (completion - deadline).num_seconds()
        );
    }
    // Each earlier attempt failed, as its own records and deadline say.
    for archived_status in &status.retries_status {
        let old = Attempt::of(archived_status).unwrap().unwrap();
        let at: DateTime<Utc> = archived_status.completion_time.unwrap();
        let tally = evaluate(&old.policy, &old.decisions, old.deadline, at);
        let failed = match tally.outcome {
            Outcome::Rejected { .. } => old.policy.on_reject == OnReject::Fail,
            Outcome::TimedOut { .. } => old.policy.on_timeout != OnTimeout::Approve,
            _ => false,
        };
        assert!(
            failed,
            "{name}: an archived attempt that did not fail: {tally:?}"
        );
    }
    archived.into_iter().chain(current).collect()
}
