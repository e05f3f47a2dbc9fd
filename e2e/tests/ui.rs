//! The web page in a real headless Chromium, against the real control plane: alice signs in
//! (through a stand-in for oauth2-proxy that sets her headers and the shared secret), sees
//! the waiting gate, approves with a comment; a second browser session (mallory, who may
//! read but not decide) sees no button, has a forged decision denied by the webhook, and
//! watches the gate flip without reloading.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use approval_e2e::browser::{Browser, chromium};
use approval_e2e::proxy::identity_proxy;
use approval_e2e::*;
use fantoccini::Locator;
use serde_json::json;

const SECRET_HEADER: &str = "X-Approval-Proxy-Secret";

/// Starts the page once for the scenarios of this binary (they run at the same time).
async fn start_ui(s: &Scenario) {
    static STARTED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    STARTED
        .get_or_init(|| s.script(&["approval.sh", "start", "ui"]))
        .await;
}

fn state_file(name: &str) -> String {
    let state = std::env::var("APPROVAL_STATE").expect("set by e2e.sh");
    std::fs::read_to_string(format!("{state}/{name}"))
        .unwrap_or_else(|e| panic!("{state}/{name}: {e}"))
        .trim()
        .to_string()
}

fn logs_dir() -> std::path::PathBuf {
    let state = std::env::var("APPROVAL_STATE").expect("set by e2e.sh");
    std::path::PathBuf::from(state).join("logs")
}

/// The page as `user` (in `groups`) sees it through the sign-in proxy.
async fn signed_in(ui: SocketAddr, secret: &str, user: &str, groups: &str) -> String {
    let mut headers = vec![
        ("X-Forwarded-User".to_string(), user.to_string()),
        (SECRET_HEADER.to_string(), secret.to_string()),
    ];
    if !groups.is_empty() {
        headers.push(("X-Forwarded-Groups".to_string(), groups.to_string()));
    }
    format!("http://{}", identity_proxy(ui, headers).await)
}

/// Waits until the element matching `css` has `text`.
async fn until_text(browser: &Browser, css: &str, text: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = match browser.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if found == text {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` never read `{text}` (last: `{found}`)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn alice_approves_in_the_browser_and_mallory_sees_it_live_but_cannot_decide() {
    assert!(
        chromium().is_some(),
        "no Chromium/ChromeDriver: e2e.sh installs them (e2e/scripts/browser.sh)"
    );
    let s = scenario("web_ui").await;
    start_ui(&s).await;
    let ui: SocketAddr = state_file("ui-addr").parse().unwrap();
    let secret = state_file("ui-proxy-secret");
    s.start_pipeline(
        "release",
        json!({"tasks": [
            gate_task("approve", &[], json!([
                {"name": "approvers", "value": ["alice"]},
                {"name": "message", "value": "Release v1.2 to production?"},
            ])),
            noop_task("deploy", &["approve"]),
        ]}),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let gate_path = format!("/gates/{}/release-approve", s.namespace);
    // Other scenarios' gates wait for alice too (the cluster is shared): find ours.
    let ours = format!(
        r#"article.gate[data-gate="{}/release-approve"]"#,
        s.namespace
    );

    // Without the proxy (no secret), nobody is believed, whatever the headers say.
    let direct = command_output(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "X-Forwarded-User: alice",
            &format!("http://{ui}/"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(direct, "401");

    let alice_url = signed_in(ui, &secret, "alice", "").await;
    let mallory_url = signed_in(ui, &secret, "mallory", "").await;
    let alice = Browser::start().await.expect("a browser for alice");
    let mallory = Browser::start().await.expect("a browser for mallory");

    // mallory reads the gate, without a button, and keeps the page open.
    mallory
        .client
        .goto(&format!("{mallory_url}{gate_path}"))
        .await
        .unwrap();
    until_text(&mallory, &format!("{ours} .reason"), "AwaitingApproval").await;
    assert!(
        mallory
            .client
            .find(Locator::Css(&format!("{ours} button.approve")))
            .await
            .is_err(),
        "mallory sees no approve button"
    );
    mallory
        .client
        .execute("window.stillTheSamePage = true; return true;", vec![])
        .await
        .unwrap();
    // A forged decision from her page (with a valid form token: the worst case) reaches the
    // API server as mallory, and the webhook denies it.
    let token = tekton_approval::ui::csrf::Csrf::new(secret.as_bytes())
        .issue("mallory", chrono::Utc::now());
    let forged = mallory
        .client
        .execute(
            "const body = new URLSearchParams({csrf: arguments[1], decision: 'approve', comment: 'forged'});
             return fetch(arguments[0], {method: 'POST', body}).then(async r => [r.status, await r.text()]);",
            vec![json!(format!("{gate_path}/decision")), json!(token)],
        )
        .await
        .unwrap();
    assert_eq!(forged[0], 403, "{forged}");
    assert!(
        forged[1]
            .as_str()
            .unwrap()
            .contains("mallory may not decide"),
        "the webhook's own words: {forged}"
    );

    // alice sees the gate waiting for her, and approves with a comment.
    alice.client.goto(&format!("{alice_url}/")).await.unwrap();
    until_text(&alice, &format!("{ours} .reason"), "AwaitingApproval").await;
    let listed = alice
        .client
        .find(Locator::Css(&format!("{ours} h2 a")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(listed, format!("{} / release-approve", s.namespace));
    alice
        .screenshot(&logs_dir().join("ui-waiting-for-me.png"))
        .await
        .unwrap();
    alice
        .client
        .find(Locator::Css(&format!(
            "{ours} form.decide textarea[name=comment]"
        )))
        .await
        .unwrap()
        .send_keys("ship it")
        .await
        .unwrap();
    alice
        .client
        .find(Locator::Css(&format!("{ours} button.approve")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&alice, "p.notice", "Your approval is recorded.").await;

    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "True");
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(result(&gate, "approvedBy"), r#"["alice"]"#);
    assert_eq!(result(&gate, "comments"), r#"["alice: ship it"]"#);
    let ledger = &gate.metadata.annotations.as_ref().unwrap()["approval.tekton.dev/decisions"];
    assert!(ledger.contains(r#""user":"alice""#), "{ledger}");
    assert!(!ledger.contains("mallory"), "{ledger}");

    // Both pages follow without a reload.
    until_text(&alice, &format!("{ours} .reason"), "Approved").await;
    until_text(&mallory, &format!("{ours} .reason"), "Approved").await;
    let same = mallory
        .client
        .execute("return window.stillTheSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(true), "mallory's page was not reloaded");
    alice
        .screenshot(&logs_dir().join("ui-gate.png"))
        .await
        .unwrap();
    alice.close().await;
    mallory.close().await;
}

#[tokio::test]
async fn the_pages_service_account_reads_and_impersonates_but_cannot_decide() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let s = scenario("web_ui_rbac").await;
    start_ui(&s).await;
    let reviews: kube::Api<SubjectAccessReview> = kube::Api::all(s.admin.clone());
    let may = |verb: &str, group: &str, resource: &str| {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some("system:serviceaccount:tekton-approval:approval-ui".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(s.namespace.clone()),
                    verb: Some(verb.into()),
                    group: Some(group.into()),
                    resource: Some(resource.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviews = reviews.clone();
        async move {
            reviews
                .create(&Default::default(), &review)
                .await
                .unwrap()
                .status
                .unwrap()
                .allowed
        }
    };
    assert!(may("watch", "tekton.dev", "customruns").await);
    assert!(may("impersonate", "", "users").await);
    for verb in ["patch", "update", "create", "delete"] {
        assert!(
            !may(verb, "tekton.dev", "customruns").await,
            "the page's own identity may not {verb} CustomRuns"
        );
    }
    assert!(!may("update", "tekton.dev", "customruns/status").await);
}

#[tokio::test]
async fn someone_who_may_not_read_the_namespace_sees_none_of_its_gates() {
    let s = scenario("web_ui_unreadable").await;
    start_ui(&s).await;
    let ui: SocketAddr = state_file("ui-addr").parse().unwrap();
    let secret = state_file("ui-proxy-secret");
    // eve is an approver of the gate, but has no RBAC at all: she may not read it.
    s.start_gate(
        "release",
        json!([{"name": "approvers", "value": ["eve", "alice"]}]),
    )
    .await;
    let curl = |base: String, path: String| async move {
        command_output(
            "curl",
            &["-s", "-w", "\n%{http_code}", &format!("{base}{path}")],
        )
        .await
        .unwrap()
    };
    let eve = signed_in(ui, &secret, "eve", "").await;
    let gate_path = format!("/gates/{}/release-approve", s.namespace);
    let page = curl(eve.clone(), gate_path.clone()).await;
    assert!(page.ends_with("\n404"), "{page}");
    assert!(page.contains("that you may read"), "{page}");
    let listed = curl(eve.clone(), format!("/gates?namespace={}", s.namespace)).await;
    assert!(
        listed.ends_with("\n200") && !listed.contains("release-approve"),
        "{listed}"
    );
    let waiting = curl(eve, "/".into()).await;
    assert!(!waiting.contains("release-approve"), "{waiting}");
    // alice may read it, and sees it waiting for her.
    let alice = signed_in(ui, &secret, "alice", "").await;
    let waiting = curl(alice, "/".into()).await;
    assert!(waiting.contains(&gate_path), "{waiting}");
}
