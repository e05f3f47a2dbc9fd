//! No object that is not one of our gates can stop the gates, and a signalled controller
//! stops whatever state it is in. The only scenario of its binary: it restarts the
//! controller, which no other scenario may see.

use std::process::Stdio;
use std::time::{Duration, Instant};

use approval_e2e::*;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tekton_approval::api::CustomRun;

#[tokio::test]
async fn a_malformed_foreign_customrun_never_stops_the_gates_and_sigterm_always_stops() {
    let s = scenario("tolerance_foreign_customrun").await;
    // Another custom task's run, with a field our types refuse (Tekton accepts it).
    let foreign: CustomRun = serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun",
        "metadata": {"name": "odd-wait", "namespace": s.namespace},
        "spec": {"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"}}
    }))
    .unwrap();
    // Written as raw JSON: our own type could not even express `retries: -1`.
    let mut raw = serde_json::to_value(&foreign).unwrap();
    raw["spec"]["retries"] = json!(-1);
    let dynamic: kube::api::DynamicObject = serde_json::from_value(raw).unwrap();
    let resource = kube::api::ApiResource::erase::<CustomRun>(&());
    Api::<kube::api::DynamicObject>::namespaced_with(s.admin.clone(), &s.namespace, &resource)
        .create(&PostParams::default(), &dynamic)
        .await
        .expect("the API server accepts retries: -1");

    // A restart lists every CustomRun: the controller must come ready (the script waits for
    // /readyz) with that run among them.
    let started = Instant::now();
    s.script(&["approval.sh", "restart", "controller"]).await;
    record_measurement(
        "controller restart (SIGTERM, start, ready) with a foreign retries: -1 run",
        started.elapsed(),
    );
    s.start_gate(
        "release",
        json!([{"name": "approvers", "value": ["alice"]}]),
    )
    .await;
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, "release-approve", "approval.tekton.dev/approve", "")
        .await
        .expect("alice approves");
    s.wait_gate_reason("release-approve", "Approved").await;
    let foreign = s.customruns().get_opt("odd-wait").await;
    assert!(
        foreign.is_err(),
        "our own type still refuses it: the point is that the watch does not"
    );

    // A controller whose identity may read its seal key but not list CustomRuns: its
    // first list fails forever (with backoff). SIGTERM must still end it.
    let state = std::env::var("APPROVAL_STATE").expect("set by e2e.sh");
    let kubeconfig = format!("{state}/no-list.kubeconfig");
    let admin_config = std::fs::read_to_string(format!("{state}/kubeconfig")).unwrap();
    let impersonating = admin_config.replace(
        "client-key: ",
        "as: e2e-no-list\n    as-groups: [system:authenticated]\n    client-key: ",
    );
    std::fs::write(&kubeconfig, impersonating).unwrap();
    let rbac = json!({
    "apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "e2e-no-list", "namespace": "tekton-approval"},
         "rules": [{"apiGroups": [""], "resources": ["secrets"],
                    "resourceNames": ["approval-seal-key"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "e2e-no-list", "namespace": "tekton-approval"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "e2e-no-list"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "e2e-no-list"}]}
    ]});
    let file = format!("{state}/no-list-rbac.json");
    std::fs::write(&file, rbac.to_string()).unwrap();
    let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").expect("set by e2e.sh");
    command_output(&kubectl, &["apply", "-f", &file])
        .await
        .expect("RBAC for the list-less controller");
    let scripts = std::env::var("APPROVAL_E2E_SCRIPTS").unwrap();
    let binary = std::env::var("APPROVAL_BIN")
        .unwrap_or_else(|_| format!("{scripts}/../../target/debug/approval-controller"));
    let log = std::fs::File::create(format!("{state}/logs/no-list-controller.log")).unwrap();
    let mut child = tokio::process::Command::new(binary)
        .args([
            "--components",
            "controller",
            "--kubeconfig",
            &kubeconfig,
            "--probe-addr",
            "127.0.0.1:0",
            "--leader-election",
            "false",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_path = format!("{state}/logs/no-list-controller.log");
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("watch failed; retrying")
    {
        assert!(Instant::now() < deadline, "the list never failed");
        assert!(child.try_wait().unwrap().is_none(), "it exited by itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().unwrap().to_string();
    let signalled = Instant::now();
    command_output("kill", &["-TERM", &pid]).await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("SIGTERM ends a controller stuck in its first list")
        .unwrap();
    record_measurement(
        "SIGTERM to exit, controller stuck in its first list",
        signalled.elapsed(),
    );
    assert!(
        status.success(),
        "a clean stop, not the grace period's: {status}"
    );
}
