//! The HTTP layer with AdmissionReview bodies shaped exactly as the API server sends them.

use super::*;
use crate::approval::testing::{keys as test_keys, sealed};
use axum::body::Body;
use axum::http::Request;
use base64::Engine;
use serde_json::json;
use tower::ServiceExt;

const CONTROLLER: &str = "system:serviceaccount:tekton-approval:approval-controller";
const TEKTON: &str = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller";

fn admission() -> Admission {
    Admission {
        controller_username: CONTROLLER.into(),
        trusted_creators: vec![TEKTON.into()],
        direct_creators: Default::default(),
    }
}

/// The webhook with the tests' keys, and the API server it would re-read them from.
fn webhook() -> (Arc<Webhook>, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let client = kube::Client::new(service, "default");
    let keys = KeySource::with_keyring(client, "tekton-approval", "approval-seal-key", test_keys());
    (
        Arc::new(Webhook {
            admission: admission(),
            keys,
        }),
        handle,
    )
}

type ApiHandle =
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;

fn waiting_gate(annotations: Value) -> Value {
    json!({
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {
            "name": "release-approve", "namespace": "ci", "uid": "5c1e8a4e-1b1c-4c5e-9d1a-0d6b2f7d1e11",
            "resourceVersion": "1234", "generation": 1, "creationTimestamp": "2026-11-22T10:00:00Z",
            "labels": {"tekton.dev/pipelineRun": "release", "tekton.dev/pipelineTask": "approve"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "name": "release",
                                 "uid": "0b5b4f1e-7f1a-4a43-9d0e-5b8f5e2b3c44", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
            "params": [{"name": "approvers", "value": ["alice", "group:release-managers"]}],
            "serviceAccountName": "default",
            "timeout": "1h0m0s"
        },
        "status": {
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "AwaitingApproval",
                            "message": "Waiting for 1 more approval (0 of 1) from alice, group:release-managers",
                            "lastTransitionTime": "2026-11-22T10:00:00Z"}],
            "startTime": "2026-11-22T10:00:00Z",
            "extraFields": {"approvers": ["alice", "group:release-managers"], "minApprovals": 1,
                            "onTimeout": "fail", "onReject": "fail", "timeout": "1h0m0s",
                            "deadline": "2099-11-22T11:00:00Z", "recorded": 0}
        }
    })
}

fn review_body(username: &str, groups: &[&str], new_annotations: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "tekton.dev", "version": "v1beta1", "kind": "CustomRun"},
            "resource": {"group": "tekton.dev", "version": "v1beta1", "resource": "customruns"},
            "requestKind": {"group": "tekton.dev", "version": "v1beta1", "kind": "CustomRun"},
            "requestResource": {"group": "tekton.dev", "version": "v1beta1", "resource": "customruns"},
            "name": "release-approve",
            "namespace": "ci",
            "operation": "UPDATE",
            "userInfo": {"username": username, "uid": "a1b2", "groups": groups},
            "object": waiting_gate(new_annotations),
            "oldObject": waiting_gate(json!({})),
            "dryRun": false,
            "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl-annotate"}
        }
    }))
    .unwrap()
}

async fn post(body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    post_to(webhook().0, body).await
}

async fn post_to(webhook: Arc<Webhook>, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let response = router(webhook)
        .oneshot(
            Request::post(ADMIT_PATH)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

#[tokio::test]
async fn an_approval_is_answered_with_a_json_patch_recording_the_requester() {
    let body = review_body(
        "bob",
        &["release-managers", "system:authenticated"],
        json!({"approval.tekton.dev/approve": "ship it"}),
    );
    let (status, bytes) = post(body).await;
    assert_eq!(status, StatusCode::OK);
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let response = &review["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch[0],
        json!({"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1approve"})
    );
    assert_eq!(patch[1]["op"], "add");
    assert_eq!(
        patch[1]["path"],
        "/metadata/annotations/approval.tekton.dev~1decisions"
    );
    let ledger: Value = serde_json::from_str(patch[1]["value"].as_str().unwrap()).unwrap();
    assert_eq!(ledger[0]["user"], "bob");
    assert_eq!(ledger[0]["groups"], json!(["release-managers"]));
    assert_eq!(ledger[0]["decision"], "approve");
    assert_eq!(ledger[0]["comment"], "ship it");
}

#[tokio::test]
async fn a_deferred_approval_is_admitted_with_a_warning_kubectl_prints() {
    let body = review_body(
        "alice",
        &["system:authenticated"],
        json!({"approval.tekton.dev/approve": "", "approval.tekton.dev/effective-at": "30m"}),
    );
    let (status, bytes) = post(body).await;
    assert_eq!(status, StatusCode::OK);
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["response"]["allowed"], true);
    let warnings = review["response"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with("gate ci/release-approve: this approval takes effect at ")
            && warning.ends_with("; a rejection before then wins"),
        "{warning}"
    );
}

#[tokio::test]
async fn a_non_approver_gets_a_denial_with_the_protocols_message() {
    let body = review_body(
        "mallory",
        &["system:authenticated"],
        json!({"approval.tekton.dev/approve": ""}),
    );
    let (status, bytes) = post(body).await;
    assert_eq!(status, StatusCode::OK);
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    let response = &review["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(
        response["status"]["message"],
        "mallory may not decide gate ci/release-approve: its approvers are alice, group:release-managers. \
         Ask one of them to approve; being able to annotate is not being an approver"
    );
    assert!(response.get("patch").is_none() || response["patch"].is_null());
}

#[tokio::test]
async fn malformed_reviews_get_a_clean_error() {
    for body in [
        b"not json".to_vec(),
        br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#.to_vec(),
        vec![],
    ] {
        let (status, bytes) = post(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            String::from_utf8(bytes)
                .unwrap()
                .starts_with("malformed AdmissionReview")
        );
    }
}

#[tokio::test]
async fn an_object_that_is_not_a_readable_customrun_is_denied() {
    let mut body: Value = serde_json::from_slice(&review_body("alice", &[], json!({}))).unwrap();
    body["request"]["object"]["spec"]["params"] = json!("not a list");
    let (status, bytes) = post(serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["response"]["allowed"], false);
    assert!(
        review["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the approval webhook cannot read this CustomRun")
    );
}

#[tokio::test]
async fn an_oversized_review_is_refused() {
    let (status, _) = post(vec![b' '; MAX_REVIEW_BYTES + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn the_serving_certificate_is_reloaded_when_its_files_change() {
    let dir = std::env::temp_dir().join(format!("approval-webhook-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
    let write_pair = |name: &str| {
        let pair = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(&cert_file, pair.cert.pem()).unwrap();
        std::fs::write(&key_file, pair.signing_key.serialize_pem()).unwrap();
        pair.cert.der().to_vec()
    };
    let first = write_pair("first.example");
    let cert = ReloadingCert::load(&cert_file, &key_file).unwrap();
    let serving = |cert: &ReloadingCert| cert.current.read().unwrap().0.cert[0].to_vec();
    assert_eq!(serving(&cert), first);
    assert!(!cert.refresh(), "unchanged files are not re-read");

    // Make sure the modification time moves even on coarse-grained file systems.
    let later = SystemTime::now() + Duration::from_secs(5);
    let second = write_pair("second.example");
    for file in [&cert_file, &key_file] {
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    assert!(cert.refresh());
    assert_eq!(serving(&cert), second);

    std::fs::write(&key_file, "garbage").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&key_file)
        .unwrap()
        .set_modified(later + Duration::from_secs(5))
        .unwrap();
    assert!(!cert.refresh(), "a broken pair is not taken");
    assert_eq!(serving(&cert), second);
    assert!(ReloadingCert::load(&cert_file, &key_file).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pipelinerun_create_body(username: &str, annotations: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "1f0e2d3c-0000-4000-8000-000000000001",
            "kind": {"group": "tekton.dev", "version": "v1", "kind": "PipelineRun"},
            "resource": {"group": "tekton.dev", "version": "v1", "resource": "pipelineruns"},
            "name": "release",
            "namespace": "ci",
            "operation": "CREATE",
            "userInfo": {"username": username, "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"name": "release", "namespace": "ci", "annotations": annotations},
                "spec": {"pipelineRef": {"name": "release"}}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_new_pipelinerun_is_stamped_with_its_creator_and_a_forged_stamp_is_denied() {
    let (status, bytes) = post(pipelinerun_create_body("dave", json!({"team": "web"}))).await;
    assert_eq!(status, StatusCode::OK);
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["response"]["allowed"], true);
    let patch = base64::engine::general_purpose::STANDARD
        .decode(review["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch[0],
        json!({"op": "add", "path": "/metadata/annotations/approval.tekton.dev~1requested-by", "value": "dave"})
    );
    assert_eq!(
        patch[1]["path"],
        "/metadata/annotations/approval.tekton.dev~1requested-by-seal"
    );
    assert!(
        patch[1]["value"]
            .as_str()
            .unwrap()
            .starts_with("name=release;test.")
    );

    let forged = json!({"approval.tekton.dev/requested-by": "bob"});
    let (_, bytes) = post(pipelinerun_create_body("mallory", forged)).await;
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(
        review["response"]["status"]["message"],
        "approval.tekton.dev/requested-by is set by the approval webhook to the user who creates \
         PipelineRun ci/release: remove it (it says bob, but you are mallory)"
    );
}

fn create_body(kind: &str, resource: &str, username: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "1f0e2d3c-0000-4000-8000-000000000002",
            "kind": {"group": "approval.tekton.dev", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "approval.tekton.dev", "version": "v1alpha1", "resource": resource},
            "name": "production",
            "namespace": "ci",
            "operation": "CREATE",
            "userInfo": {"username": username, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn a_policy_listing_a_service_account_is_admitted_with_a_warning_kubectl_prints() {
    let policy = json!({
        "apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
        "metadata": {"name": "production", "namespace": "ci"},
        "spec": {"approvers": ["alice", "system:serviceaccount:ci:deployer"]}
    });
    let (_, bytes) = post(create_body("Approval", "approvals", "erin", policy)).await;
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["response"]["allowed"], true);
    assert!(review["response"].get("patch").is_none());
    let warnings = review["response"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("approver `system:serviceaccount:ci:deployer` is a service account")
    );
}

#[tokio::test]
async fn a_gate_created_by_hand_is_denied() {
    let mut gate = waiting_gate(json!({}));
    gate.as_object_mut().unwrap().remove("status");
    let mut body: Value =
        serde_json::from_slice(&create_body("CustomRun", "customruns", "mallory", gate)).unwrap();
    body["request"]["kind"] =
        json!({"group": "tekton.dev", "version": "v1beta1", "kind": "CustomRun"});
    let (_, bytes) = post(serde_json::to_vec(&body).unwrap()).await;
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(review["response"]["allowed"], false);
    assert!(
        review["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("mallory may not create gate ci/release-approve directly")
    );
}

#[tokio::test]
async fn a_seal_made_with_a_newer_key_makes_the_webhook_reread_the_keys() {
    use crate::approval::seal::{Key, Keyring, format_key};
    // Another replica rotated to key `k2` and sealed alice's approval with it.
    let rotated = Keyring::new(
        Key::new("k2", &[2; 32]).unwrap(),
        Some(test_keys().current().clone()),
    );
    let gate: crate::api::CustomRun = serde_json::from_value(waiting_gate(json!({}))).unwrap();
    let record: crate::approval::ledger::Record = serde_json::from_value(
        json!({"user": "alice", "decision": "approve", "time": "2026-11-22T10:01:00Z"}),
    )
    .unwrap();
    let mut record = sealed(&gate, record);
    let gate_id = crate::approval::seal::Gate {
        uid: gate.metadata.uid.as_deref().unwrap(),
        namespace: "ci",
        name: "release-approve",
    };
    record.seal = rotated.seal(&crate::approval::seal::record_message(gate_id, &record));
    let ledger = serde_json::to_string(&[record]).unwrap();
    let mut body: Value = serde_json::from_slice(&review_body(
        "alice",
        &[],
        json!({"approval.tekton.dev/decisions": ledger, "approval.tekton.dev/approve": "again"}),
    ))
    .unwrap();
    body["request"]["oldObject"]["metadata"]["annotations"] =
        json!({"approval.tekton.dev/decisions": ledger});
    let (webhook, mut api) = webhook();
    // Past the re-read interval.
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_secs(3)).await;
    let server = tokio::spawn(async move {
        let (request, send) = api.next_request().await.expect("the keys are re-read");
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/tekton-approval/secrets/approval-seal-key"
        );
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "approval-seal-key", "namespace": "tekton-approval"},
        "data": {
            "current": base64::engine::general_purpose::STANDARD.encode(format_key("k2", &[2; 32])),
            "previous": base64::engine::general_purpose::STANDARD.encode(format_key("test", &[7; 32])),
        }});
        send.send_response(
            http::Response::builder()
                .body(kube::client::Body::from(
                    serde_json::to_vec(&secret).unwrap(),
                ))
                .unwrap(),
        );
    });
    let (_, bytes) = post_to(webhook, serde_json::to_vec(&body).unwrap()).await;
    server.await.unwrap();
    let review: Value = serde_json::from_slice(&bytes).unwrap();
    // alice's approval under the new key is hers: her second one changes nothing.
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(
        review["response"]["status"]["message"],
        "gate ci/release-approve is already approved: the decision is being recorded"
    );
}
