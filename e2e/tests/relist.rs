//! A forced relist: the controller is frozen (SIGSTOP); kube-apiserver is restarted, so the
//! frozen controller's watch connection is gone; approvers decide; etcd's history is
//! compacted. When the controller thaws (SIGCONT) its watch cannot resume where it stopped:
//! the API server answers 410 Gone, the controller lists again, and applies every decision
//! made meanwhile, each exactly once. The only scenario of its binary: no other scenario may
//! see the controller stop or the API server go away.

use approval_e2e::*;
use serde_json::json;

/// A gate of the scenario: its quorum, the decisions made while the controller is frozen
/// (user, verb), and how it ends.
struct Gate {
    name: &'static str,
    min_approvals: &'static str,
    decisions: &'static [(&'static str, &'static str)],
    outcome: &'static str,
}

const fn gate(
    name: &'static str,
    min_approvals: &'static str,
    decisions: &'static [(&'static str, &'static str)],
    outcome: &'static str,
) -> Gate {
    Gate {
        name,
        min_approvals,
        decisions,
        outcome,
    }
}

const GATES: [Gate; 6] = [
    gate(
        "both-0",
        "2",
        &[("alice", "approve"), ("bob", "approve")],
        "Approved",
    ),
    gate(
        "both-1",
        "2",
        &[("bob", "approve"), ("alice", "approve")],
        "Approved",
    ),
    gate("one-0", "1", &[("alice", "approve")], "Approved"),
    gate("one-1", "1", &[("bob", "reject")], "Rejected"),
    gate(
        "veto-0",
        "2",
        &[("alice", "approve"), ("bob", "reject")],
        "Rejected",
    ),
    gate("half-0", "2", &[("alice", "approve")], "AwaitingApproval"),
];

fn state_file(path: &str) -> String {
    let state = std::env::var("APPROVAL_STATE").expect("set by e2e.sh");
    std::fs::read_to_string(format!("{state}/{path}")).unwrap()
}

#[tokio::test]
async fn decisions_made_while_the_controller_was_frozen_past_a_compaction_apply_once() {
    let s = scenario("relist").await;
    for g in &GATES {
        s.start_gate(
            g.name,
            json!([{"name": "approvers", "value": ["alice", "bob"]},
                   {"name": "minApprovals", "value": g.min_approvals}]),
        )
        .await;
    }
    let controller = state_file("run/approval-controller.pid").trim().to_string();
    command_output("kill", &["-STOP", &controller])
        .await
        .unwrap();
    // SIGKILL: on SIGTERM the API server spends a minute trying to end the frozen
    // controller's watch cleanly (the SIGTERM case is the apiserver_restart scenario's).
    // Restarted before the decisions, it cannot have sent them down the old watch.
    s.script(&["restart-apiserver.sh", "KILL"]).await;
    for Gate {
        name, decisions, ..
    } in &GATES
    {
        for (user, verb) in decisions.iter() {
            let client = s.as_user(user, &[]).await;
            let key = format!("approval.tekton.dev/{verb}");
            s.annotate(&client, &format!("{name}-approve"), &key, "while frozen")
                .await
                .unwrap_or_else(|e| panic!("{user} on {name}: {e}"));
        }
    }
    s.script(&["compact-etcd.sh"]).await;
    let log_before = state_file("logs/approval-controller.log").len();
    command_output("kill", &["-CONT", &controller])
        .await
        .unwrap();

    for &Gate {
        name,
        decisions,
        outcome,
        ..
    } in &GATES
    {
        let gate = format!("{name}-approve");
        // Events are published after the status write, in order: once the last is there,
        // so are the others.
        if outcome == "AwaitingApproval" {
            s.wait_event(&gate, "DecisionRecorded").await;
        } else {
            s.wait_gate_reason(&gate, outcome).await;
            s.wait_event(&gate, outcome).await;
        }
        let events = s.event_reason_names(&gate).await;
        let count = |reason: &str| events.iter().filter(|r| *r == reason).count();
        assert_eq!(
            count("DecisionRecorded"),
            decisions.len(),
            "{gate}: each decision once: {events:?}"
        );
        let endings = count("Approved") + count("Rejected");
        assert_eq!(
            endings,
            usize::from(outcome != "AwaitingApproval"),
            "{gate}: {events:?}"
        );
    }
    let gate = s.customruns().get("half-0-approve").await.unwrap();
    assert_eq!(succeeded_reason(&gate), Some("AwaitingApproval"));
    assert!(
        condition(&gate).2.contains("1 of 2"),
        "quorum progress after the relist: {:?}",
        condition(&gate)
    );

    let log = state_file("logs/approval-controller.log");
    let since: Vec<&str> = log[log_before..].lines().collect();
    let relisted = since
        .iter()
        .position(|l| l.contains("watch failed") && l.contains("Expired"))
        .unwrap_or_else(|| {
            panic!(
                "the watch resumed without a 410 relist; the scenario proves nothing: {since:#?}"
            )
        });
    let first_ending = since
        .iter()
        .position(|l| l.contains(&s.namespace) && l.contains("gate attempt ended"))
        .expect("gates ended");
    assert!(
        relisted < first_ending,
        "a gate ended before the relist, so it learned of a decision another way: {since:#?}"
    );
    assert_eq!(
        state_file("run/approval-controller.pid").trim(),
        controller,
        "the same controller process"
    );
}
