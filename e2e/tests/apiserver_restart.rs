//! kube-apiserver restarted under the controller and the webhook (SIGTERM, then SIGKILL):
//! neither process restarts, and every decision made afterwards lands. The only scenario of
//! its binary: no other scenario may see the API server go away.

use approval_e2e::*;
use serde_json::json;

const GATES: usize = 10;

fn pid(name: &str) -> String {
    let state = std::env::var("APPROVAL_STATE").expect("set by e2e.sh");
    std::fs::read_to_string(format!("{state}/run/{name}.pid"))
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn the_controller_rides_out_api_server_restarts_and_every_decision_lands() {
    let s = scenario("apiserver_restart").await;
    let controller = pid("approval-controller");
    let webhook = pid("approval-webhook");
    for (round, signal) in ["TERM", "KILL"].into_iter().enumerate() {
        let names: Vec<String> = (0..GATES).map(|i| format!("r{round}-{i}")).collect();
        for name in &names {
            s.start_pipeline(
                name,
                json!({"tasks": [gate_task("approve", &[], json!([{"name": "approvers", "value": ["alice"]}]))]}),
                json!({}),
            )
            .await;
        }
        for name in &names {
            s.wait_gate_reason(&format!("{name}-approve"), "AwaitingApproval")
                .await;
        }
        s.script(&["restart-apiserver.sh", signal]).await;
        let alice = s.as_user("alice", &[]).await;
        for (i, name) in names.iter().enumerate() {
            let key = if i % 2 == 0 {
                "approval.tekton.dev/approve"
            } else {
                "approval.tekton.dev/reject"
            };
            s.annotate(&alice, &format!("{name}-approve"), key, "after the restart")
                .await
                .unwrap_or_else(|e| panic!("{name} after SIG{signal}: {e}"));
        }
        for (i, name) in names.iter().enumerate() {
            let reason = if i % 2 == 0 { "Approved" } else { "Rejected" };
            s.wait_gate_reason(&format!("{name}-approve"), reason).await;
        }
    }
    assert_eq!(
        pid("approval-controller"),
        controller,
        "the controller kept running"
    );
    assert_eq!(pid("approval-webhook"), webhook, "the webhook kept running");
    let alive = command_output("kill", &["-0", &controller]).await;
    assert!(alive.is_ok(), "controller pid {controller} is gone");
}
