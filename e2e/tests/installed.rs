//! The install path a platform team takes, for real: our image on the node, `kubectl apply
//! -k` of config/ (through the overlay e2e/manifests/install, which only swaps the image),
//! both Deployments Ready, the webhook reached through its Service with the certificate it
//! made itself, a gate approved end to end, and the controller's leader failing over
//! between real pods. e2e.sh runs it alone, after the rest of the suite, with the local
//! controller and webhook processes stopped and their registration removed: only the pods
//! can make this pass.

use std::time::{Duration, Instant};

use approval_e2e::*;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;
use tekton_approval::approval::{APPROVE_ANNOTATION, LEDGER_ANNOTATION};

const NAMESPACE: &str = "tekton-approval";

#[tokio::test]
#[ignore = "run by e2e.sh on its own, after the suite, with the local processes stopped"]
async fn config_applied_with_kubectl_apply_k_runs_gates_and_fails_over_between_pods() {
    if node_or_skip("the install scenario").is_none() {
        return;
    }
    let s = scenario("installed").await;
    let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").expect("set by e2e.sh");
    let overlay = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/install");
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(s.admin.clone());
    assert!(
        webhooks
            .get_opt("approval.tekton.dev")
            .await
            .unwrap()
            .is_none(),
        "the local webhook's registration must be gone before the install"
    );

    let output = command_output(&kubectl, &["apply", "-k", overlay])
        .await
        .expect("kubectl apply -k e2e/manifests/install");
    assert!(
        output.contains("deployment.apps/approval-controller created"),
        "{output}"
    );

    let deployments: Api<Deployment> = Api::namespaced(s.admin.clone(), NAMESPACE);
    for name in ["approval-controller", "approval-webhook"] {
        wait_until(&format!("both replicas of {name} Ready"), || async {
            let d = deployments.get(name).await.unwrap();
            let status = d.status.unwrap_or_default();
            status.ready_replicas == Some(2) && status.updated_replicas == Some(2)
        })
        .await;
    }

    // The webhook made its CA and serving certificate (--tls-secret), and the API server
    // reaches it only through the Service, trusting that CA.
    let secrets: Api<Secret> = Api::namespaced(s.admin.clone(), NAMESPACE);
    let tls = secrets
        .get("approval-webhook-tls")
        .await
        .expect("the webhook's TLS Secret");
    let ca = tls.data.as_ref().unwrap()["ca.crt"].0.clone();
    // Injected by the webhook's maintenance loop, which may run just after readiness.
    wait_until("the caBundle injected", || async {
        let registration = webhooks.get("approval.tekton.dev").await.unwrap();
        registration
            .webhooks
            .unwrap_or_default()
            .iter()
            .all(|w| w.client_config.ca_bundle.is_some())
    })
    .await;
    let registration = webhooks.get("approval.tekton.dev").await.unwrap();
    for webhook in registration.webhooks.unwrap() {
        let client = webhook.client_config;
        assert_eq!(client.url, None, "registered by Service, not by URL");
        let service = client.service.expect("a Service reference");
        assert_eq!(
            (service.namespace.as_str(), service.name.as_str()),
            (NAMESPACE, "approval-webhook")
        );
        assert_eq!(
            client.ca_bundle.map(|b| b.0),
            Some(ca.clone()),
            "caBundle is the Secret's CA"
        );
    }

    let pods: Api<Pod> = Api::namespaced(s.admin.clone(), NAMESPACE);
    let controllers = ListParams::default().labels("app.kubernetes.io/name=approval-controller");
    let controller_pods = pod_names(&pods, &controllers).await;
    wait_until("a controller pod to lead", || async {
        s.lease_holder()
            .await
            .is_some_and(|h| controller_pods.contains(&h))
    })
    .await;
    let leader = s.lease_holder().await.unwrap();

    approve_a_release(&s, "release").await;

    // SIGTERM to the leader (what a rollout or a drain does): another replica leads (the
    // other one, or the replacement the Deployment starts, whichever takes the released
    // Lease first), and the next gate is decided as before.
    pods.delete(&leader, &DeleteParams::default())
        .await
        .expect("deleting the leader");
    wait_until("another controller pod to take the Lease", || async {
        let current = pod_names(&pods, &controllers).await;
        s.lease_holder()
            .await
            .is_some_and(|h| h != leader && current.contains(&h))
    })
    .await;
    approve_a_release(&s, "after-failover").await;
    wait_until("the Deployment to replace the deleted pod", || async {
        let names = pod_names(&pods, &controllers).await;
        let d = deployments.get("approval-controller").await.unwrap();
        !names.contains(&leader) && d.status.unwrap_or_default().ready_replicas == Some(2)
    })
    .await;
}

/// build -> approve -> deploy, as pods: mallory is refused by the webhook (so it is in the
/// path), alice's approval is recorded and lets the deploy pod run.
async fn approve_a_release(s: &Scenario, name: &str) {
    s.start_pipeline(
        name,
        json!({"tasks": [
            work_task("build", &[], json!([])),
            gate_task("approve", &["build"], json!([{"name": "approvers", "value": ["alice"]}])),
            work_task("deploy", &["approve"], json!([
                {"name": "approved-by", "value": "$(tasks.approve.results.approvedBy[*])"},
            ])),
        ]}),
        json!({}),
    )
    .await;
    let gate = format!("{name}-approve");
    s.wait_gate_reason(&gate, "AwaitingApproval").await;
    let mallory = s.as_user("mallory", &[]).await;
    let refused = s
        .annotate(&mallory, &gate, APPROVE_ANNOTATION, "")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("mallory may not decide gate "),
        "{refused}"
    );
    let alice = s.as_user("alice", &[]).await;
    s.annotate(&alice, &gate, APPROVE_ANNOTATION, "ship it")
        .await
        .expect("alice may approve");
    let run = s.wait_pipelinerun_done(name).await;
    assert_eq!(
        pipelinerun_condition(&run).unwrap(),
        ("True".into(), "Succeeded".into())
    );
    let gate = s.customruns().get(&gate).await.unwrap();
    assert!(gate.metadata.annotations.unwrap()[LEDGER_ANNOTATION].contains(r#""user":"alice""#));
    let deploy = s.task_succeeded(&format!("{name}-deploy")).await;
    assert_eq!(deploy.results["approved-by"], r#"["alice"]"#);
}

async fn pod_names(pods: &Api<Pod>, selector: &ListParams) -> Vec<String> {
    pods.list(selector)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Polls `check` until it holds: Deployment and Lease states have no single object to watch.
async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
