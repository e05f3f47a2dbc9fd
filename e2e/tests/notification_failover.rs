//! Two controller replicas and a gate that posted its Slack message: the leader is killed
//! (SIGKILL, no chance to release its Lease); the follower takes over and updates the
//! message the old leader posted instead of posting another. The only scenario of its
//! binary: it kills a controller, which no other scenario may see.

use approval_e2e::notifying::*;
use approval_e2e::*;

#[tokio::test]
async fn after_a_failover_the_new_leader_updates_the_message_the_old_one_posted() {
    let s = scenario("notify_failover").await;
    let fakes = set_up(&s).await;
    s.script(&["approval.sh", "start", "controller-2"]).await;
    s.until_lease_held_by("local-controller").await;
    gate_notifying(&s, "handover", "release-slack").await;
    let ts = posted(fakes, &s, "handover").await;
    message_recorded(&s, "handover-approve", &ts).await;

    s.script(&["approval.sh", "kill", "controller"]).await;
    let alice = s.as_user("alice", &[]).await;
    s.annotate(
        &alice,
        "handover-approve",
        "approval.tekton.dev/approve",
        "",
    )
    .await
    .expect("the webhook records decisions without any controller");
    s.wait_gate_reason("handover-approve", "Approved").await;
    s.until_lease_held_by("local-controller-2").await;
    updated_to(fakes, &ts, "Approved by alice").await;
    assert_eq!(
        posts(fakes, &s, "handover").len(),
        1,
        "the new leader did not post again"
    );

    // Back to one replica, as the other scenarios expect.
    s.script(&["approval.sh", "start", "controller"]).await;
    s.script(&["approval.sh", "stop", "controller-2"]).await;
    s.until_lease_held_by("local-controller").await;
}
