//! The in-cluster serving certificate against the real API server: Secret created once by
//! racing replicas, reused across restarts, the leaf renewed before expiry with the CA (and
//! so the caBundle) unchanged, and the controller's RBAC allowing exactly that. Pods cannot
//! run here, so the library code a pod would run is called directly.

use std::sync::Arc;

use approval_e2e::*;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use tekton_approval::certs::cluster::{CertSettings, refresh};
use tekton_approval::certs::{self, CertPlan};
use tekton_approval::webhook::ReloadingCert;

fn served_placeholder() -> Arc<ReloadingCert> {
    let names = certs::service_dns_names("placeholder", "none");
    let now = chrono::Utc::now();
    let bundle = certs::issue(&CertPlan::Issue("test".into()), None, &names, now).unwrap();
    Arc::new(ReloadingCert::from_pem(&bundle.cert, &bundle.key).unwrap())
}

#[tokio::test]
async fn replicas_share_one_secret_the_ca_bundle_is_injected_and_the_leaf_renews_in_place() {
    let s = scenario("certificates").await;
    // A registration of our own that matches nothing, so the suite's webhook is untouched.
    let configuration = format!("approval-tls-{}", s.namespace);
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(s.admin.clone());
    let registration = serde_json::from_value(json!({
        "metadata": {"name": configuration},
        "webhooks": [{
            "name": "nothing.approval.tekton.dev",
            "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Ignore",
            "clientConfig": {"url": "https://127.0.0.1:1/admit"},
            "rules": [{"apiGroups": ["e2e.approval.dev"], "apiVersions": ["v1"],
                       "resources": ["nothings"], "operations": ["CREATE"]}],
        }],
    }))
    .unwrap();
    configurations
        .create(&PostParams::default(), &registration)
        .await
        .unwrap();
    let settings = CertSettings {
        namespace: s.namespace.clone(),
        secret: "approval-webhook-tls".into(),
        service: "approval-controller".into(),
        webhook_configuration: configuration.clone(),
    };
    let now = chrono::Utc::now();

    // Two replicas start at once: one creates, the other reads what it created.
    let (first, second) = (served_placeholder(), served_placeholder());
    let (a, b) = tokio::join!(
        refresh(&s.admin, &settings, &first, now),
        refresh(&s.admin, &settings, &second, now)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both replicas serve the one Secret");
    let secrets: Api<Secret> = Api::namespaced(s.admin.clone(), &s.namespace);
    let secret = secrets.get("approval-webhook-tls").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<&String> = secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    let ca_bundle = |config: MutatingWebhookConfiguration| {
        String::from_utf8(
            config.webhooks.unwrap()[0]
                .client_config
                .ca_bundle
                .clone()
                .expect("a caBundle")
                .0,
        )
        .unwrap()
    };
    assert_eq!(
        ca_bundle(configurations.get(&configuration).await.unwrap()),
        a.ca_cert
    );

    // A restart reuses it.
    let restarted = refresh(&s.admin, &settings, &served_placeholder(), now)
        .await
        .unwrap();
    assert_eq!(restarted, a);
    let version = secrets
        .get("approval-webhook-tls")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(
        version, secret.metadata.resource_version,
        "nothing rewritten"
    );

    // Thirty days before the leaf expires it is renewed; the CA and caBundle stay.
    let late = now + chrono::Duration::days(340);
    let renewed = refresh(&s.admin, &settings, &first, late).await.unwrap();
    assert_ne!(renewed.cert, a.cert);
    assert_eq!(renewed.ca_cert, a.ca_cert);
    assert_eq!(
        ca_bundle(configurations.get(&configuration).await.unwrap()),
        a.ca_cert
    );
    let stored = secrets.get("approval-webhook-tls").await.unwrap();
    assert_eq!(
        stored.data.unwrap()["tls.crt"].0,
        renewed.cert.as_bytes(),
        "the renewal is stored for the other replicas"
    );
    configurations
        .delete(&configuration, &DeleteParams::default())
        .await
        .unwrap();
}

/// Whether the controller's service account may `verb` the `resource` named `name`.
async fn controller_may(
    s: &Scenario,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> bool {
    let reviews: Api<SubjectAccessReview> = Api::all(s.admin.clone());
    let review = serde_json::from_value(json!({
        "spec": {
            "user": "system:serviceaccount:tekton-approval:approval-controller",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:tekton-approval"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                   "namespace": namespace, "name": name},
        }
    }))
    .unwrap();
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.unwrap().allowed
}

#[tokio::test]
async fn the_controllers_rbac_reaches_its_own_secret_and_registration_and_nothing_else() {
    let s = scenario("certificate_rbac").await;
    let own = Some("tekton-approval");
    for verb in ["get", "update", "create"] {
        assert!(
            controller_may(&s, verb, "", "secrets", own, "approval-webhook-tls").await,
            "{verb} its Secret"
        );
    }
    for (verb, namespace, name) in [
        ("get", own, "another-secret"),
        ("update", own, "another-secret"),
        ("get", Some("default"), "approval-webhook-tls"),
        ("list", own, ""),
    ] {
        assert!(
            !controller_may(&s, verb, "", "secrets", namespace, name).await,
            "{verb} {name} in {namespace:?} must be denied"
        );
    }
    let group = "admissionregistration.k8s.io";
    let resource = "mutatingwebhookconfigurations";
    assert!(controller_may(&s, "update", group, resource, None, "approval.tekton.dev").await);
    assert!(!controller_may(&s, "update", group, resource, None, "someone-else").await);
    assert!(!controller_may(&s, "create", group, resource, None, "").await);
}
