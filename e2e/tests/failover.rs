//! Two controller replicas: the leader is killed (SIGKILL, no chance to release its Lease)
//! while a gate waits; the follower, whose cache is warm, takes over when the Lease expires
//! and applies the decision made meanwhile. The only scenario of its binary: it kills a
//! controller, which no other scenario may see.

use std::time::Instant;

use approval_e2e::*;
use serde_json::json;

#[tokio::test]
async fn the_follower_takes_over_when_the_leader_is_killed() {
    let s = scenario("failover").await;
    s.script(&["approval.sh", "start", "controller-2"]).await;
    s.until_lease_held_by("local-controller").await;
    s.start_gate(
        "release",
        json!([{"name": "approvers", "value": ["alice"]}]),
    )
    .await;

    s.script(&["approval.sh", "kill", "controller"]).await;
    let killed = Instant::now();
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", "approval.tekton.dev/approve", "")
        .await
        .expect("the webhook records decisions without any controller");
    let gate = s.wait_gate_reason("release-approve", "Approved").await;
    let failover = killed.elapsed();
    record_measurement("failover: leader SIGKILLed -> decision applied", failover);
    assert_eq!(result(&gate, "approvedBy"), r#"["alice"]"#);
    assert_eq!(
        s.lease_holder().await.as_deref(),
        Some("local-controller-2")
    );
    // Events are published after the status write they describe.
    s.wait_event("release-approve", "Approved").await;
    let events = s.event_reason_names("release-approve").await;
    assert_eq!(
        events.iter().filter(|r| *r == "Approved").count(),
        1,
        "ended once: {events:?}"
    );

    // Back to one replica, as the other scenarios expect: the restarted controller takes
    // over from the stopped one, which releases the Lease.
    s.script(&["approval.sh", "start", "controller"]).await;
    s.script(&["approval.sh", "stop", "controller-2"]).await;
    s.until_lease_held_by("local-controller").await;
}
