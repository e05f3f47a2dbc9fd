//! The controller killed while gates wait: decisions recorded meanwhile by the webhook (its
//! own process) are honoured after the restart, each gate ends once. A separate test binary
//! so that no other scenario runs while the controller is down.

use approval_e2e::*;
use serde_json::json;

const GATES: usize = 20;

#[tokio::test]
async fn a_killed_controller_loses_nothing_and_ends_each_gate_once() {
    let s = scenario("controller_restart").await;
    for i in 0..GATES {
        let params = json!([{"name": "approvers", "value": ["alice", "carol"]}]);
        s.start_pipeline(
            &format!("release-{i}"),
            json!({"tasks": [gate_task("approve", &[], params)]}),
            json!({}),
        )
        .await;
    }
    for i in 0..GATES {
        s.wait_gate_reason(&format!("release-{i}-approve"), "AwaitingApproval")
            .await;
    }
    s.script(&["approval.sh", "kill", "controller"]).await;

    let alice = s.as_user("alice", &[]).await;
    let carol = s.as_user("carol", &[]).await;
    for i in 0..GATES {
        let (who, key) = if i % 2 == 0 {
            (&alice, "approval.tekton.dev/approve")
        } else {
            (&carol, "approval.tekton.dev/reject")
        };
        s.annotate(
            who,
            &format!("release-{i}-approve"),
            key,
            "while the controller was down",
        )
        .await
        .expect("the webhook records decisions without the controller");
    }
    let untouched = s.customruns().get("release-0-approve").await.unwrap();
    assert_eq!(
        succeeded_reason(&untouched),
        Some("AwaitingApproval"),
        "nobody acted while the controller was down"
    );

    s.script(&["approval.sh", "start", "controller"]).await;
    for i in 0..GATES {
        let name = format!("release-{i}-approve");
        let expected = if i % 2 == 0 { "Approved" } else { "Rejected" };
        s.wait_gate_reason(&name, expected).await;
        let pipeline = s.wait_pipelinerun_done(&format!("release-{i}")).await;
        assert_eq!(
            pipelinerun_condition(&pipeline).unwrap().0,
            if i % 2 == 0 { "True" } else { "False" }
        );
        // Events are published after the status write they describe.
        s.wait_event(&name, expected).await;
        let reasons = s.event_reason_names(&name).await;
        assert_eq!(
            reasons,
            ["AwaitingApproval", "DecisionRecorded", expected],
            "{name}: each event once"
        );
    }
}
