//! The controller's API calls against a mocked API server: method, URL and body of each.

use super::*;
use crate::api::watched::WatchedRun;
use crate::approval::plan;
use crate::approval::testing::{admitted, keys, sealed};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::json;
use tower_test::mock;

type Handle = mock::Handle<Request<Body>, Response<Body>>;

const RUN_PATH: &str = "/apis/tekton.dev/v1beta1/namespaces/ci/customruns/release-approve";

fn fixed_now() -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

fn context() -> (Arc<Context>, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context {
        events: EventPublisher::new(client.clone(), "test-instance".into()),
        client: client.clone(),
        metrics: Arc::new(Metrics::default()),
        clock: fixed_now,
        keys: KeySource::with_keyring(
            client.clone(),
            "tekton-approval",
            "approval-seal-key",
            keys(),
        ),
        leader: Leader::always(),
        deadlines: Default::default(),
        lines: Default::default(),
        notifier: None,
    };
    (Arc::new(ctx), handle)
}

/// The gate of [`gate`] is due again at its deadline, an hour after [`fixed_now`].
fn assert_due_in_an_hour(ctx: &Context) {
    let due = ctx
        .deadlines
        .due_at("ci", "release-approve")
        .expect("a deadline");
    let left = due - tokio::time::Instant::now();
    assert!(
        left <= Duration::from_secs(3600) && left > Duration::from_secs(3590),
        "{left:?}"
    );
}

fn gate(status: Option<Value>) -> CustomRun {
    let mut run = json!({
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": "release-approve", "namespace": "ci", "resourceVersion": "7", "uid": "u-1"},
        "spec": {
            "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
            "params": [{"name": "approvers", "value": ["alice"]}],
            "timeout": "1h0m0s",
            "serviceAccountName": "default"
        }
    });
    if let Some(status) = status {
        run["status"] = status;
    }
    admitted(serde_json::from_value(run).unwrap())
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn respond(send: mock::SendResponse<Response<Body>>, status: StatusCode, body: Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict",
           "message": "the object has been modified", "code": 409})
}

#[tokio::test]
async fn a_new_gate_gets_its_full_status_written_then_an_event() {
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("a status write");
        assert_eq!(request.method(), Method::PUT);
        assert_eq!(request.uri().path(), format!("{RUN_PATH}/status"));
        let body = body_json(request).await;
        // The whole object, with the resourceVersion read: a stale write must conflict.
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert_eq!(body["spec"]["serviceAccountName"], "default");
        assert_eq!(
            body["status"]["conditions"],
            json!([{"type": "Succeeded", "status": "Unknown", "reason": "AwaitingApproval",
                    "message": "Waiting for 1 more approval (0 of 1) from alice",
                    "lastTransitionTime": "2026-11-22T10:00:00Z"}])
        );
        assert_eq!(body["status"]["startTime"], "2026-11-22T10:00:00Z");
        assert_eq!(
            body["status"]["extraFields"]["deadline"],
            "2026-11-22T11:00:00Z"
        );
        let mut written = body.clone();
        written["metadata"]["resourceVersion"] = json!("8");
        respond(send, StatusCode::OK, written);

        let (request, send) = handle.next_request().await.expect("an event");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri().path(),
            "/apis/events.k8s.io/v1/namespaces/ci/events"
        );
        let event = body_json(request).await;
        assert_eq!(event["reason"], "AwaitingApproval");
        assert_eq!(event["type"], "Normal");
        assert_eq!(
            event["note"],
            "Waiting for 1 more approval (0 of 1) from alice"
        );
        assert_eq!(event["regarding"]["kind"], "CustomRun");
        assert_eq!(event["regarding"]["uid"], "u-1");
        assert_eq!(
            event["reportingController"],
            "approval.tekton.dev/approval-controller"
        );
        assert_eq!(event["reportingInstance"], "test-instance");
        respond(send, StatusCode::CREATED, event);
        assert!(handle.next_request().await.is_none(), "no further calls");
    });
    let action = reconcile(gate(None), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_due_in_an_hour(&ctx);
    drop(ctx); // the mock API server's handle ends with the last client
    server.await.unwrap();
}

#[tokio::test]
async fn nothing_is_written_when_nothing_changed() {
    let (ctx, mut handle) = context();
    let run = gate(None);
    let planned = plan(&run, PolicyLookup::NotNeeded, &keys(), fixed_now()).unwrap();
    let settled = gate(Some(serde_json::to_value(&planned.status).unwrap()));
    let action = reconcile(settled, ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_due_in_an_hour(&ctx);
    drop(ctx); // the mock API server's handle ends with the last client
    assert!(handle.next_request().await.is_none(), "no API call at all");
}

#[tokio::test]
async fn customruns_of_other_custom_tasks_are_never_touched() {
    let (ctx, mut handle) = context();
    let mut other = gate(None);
    other.spec.custom_ref.as_mut().unwrap().api_version = "example.dev/v1".into();
    let action = reconcile(other, ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(handle.next_request().await.is_none());
}

#[tokio::test]
async fn a_conflict_is_retried_from_the_latest_version_never_lost() {
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::PUT);
        respond(send, StatusCode::CONFLICT, conflict());

        // Re-read: meanwhile alice approved (the webhook appended to the ledger).
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), RUN_PATH);
        let record: crate::approval::ledger::Record = serde_json::from_value(
            json!({"user":"alice","decision":"approve","time":"2026-11-22T10:00:00Z"}),
        )
        .unwrap();
        let ledger = serde_json::to_string(&[sealed(&gate(None), record)]).unwrap();
        let mut latest = serde_json::to_value(gate(None)).unwrap();
        latest["metadata"]["resourceVersion"] = json!("9");
        latest["metadata"]["annotations"]["approval.tekton.dev/decisions"] = json!(ledger);
        respond(send, StatusCode::OK, latest);

        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::PUT);
        let body = body_json(request).await;
        assert_eq!(body["metadata"]["resourceVersion"], "9");
        assert_eq!(body["status"]["conditions"][0]["reason"], "Approved");
        assert_eq!(body["status"]["conditions"][0]["status"], "True");
        respond(send, StatusCode::OK, body);

        let mut reasons = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            assert_eq!(request.method(), Method::POST);
            let event = body_json(request).await;
            reasons.push(event["reason"].as_str().unwrap().to_string());
            respond(send, StatusCode::CREATED, event);
        }
        assert_eq!(
            reasons,
            ["AwaitingApproval", "DecisionRecorded", "Approved"]
        );
    });
    let action = reconcile(gate(None), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        ctx.metrics
            .encode()
            .contains(r#"approval_decisions_total{outcome="approved"} 1"#)
    );
    drop(ctx);
    server.await.unwrap();
}

#[tokio::test]
async fn a_retry_clears_the_archived_records_with_a_guarded_patch() {
    let (ctx, mut handle) = context();
    let mut run = gate(None);
    run.spec.retries = 1;
    let run = admitted(run);
    let record: crate::approval::ledger::Record = serde_json::from_value(
        json!({"user":"alice","decision":"reject","time":"2026-11-22T09:59:00Z"}),
    )
    .unwrap();
    let ledger = serde_json::to_string(&[sealed(&run, record)]).unwrap();
    let mut run = run;
    let started = plan(
        &run,
        PolicyLookup::NotNeeded,
        &keys(),
        fixed_now() - chrono::Duration::minutes(5),
    )
    .unwrap();
    run.status = Some(started.status);
    run.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(LEDGER_ANNOTATION.to_string(), ledger.clone());
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::PUT);
        let body = body_json(request).await;
        assert_eq!(
            body["status"]["retriesStatus"][0]["conditions"][0]["reason"],
            "Rejected"
        );
        respond(send, StatusCode::OK, body);
        for _ in 0..3 {
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), Method::POST, "events");
            respond(send, StatusCode::CREATED, json!({}));
        }
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(request.uri().path(), RUN_PATH);
        assert_eq!(
            request.headers()["content-type"],
            "application/json-patch+json"
        );
        assert_eq!(
            body_json(request).await,
            json!([
                {"op": "test", "path": "/metadata/annotations/approval.tekton.dev~1decisions", "value": ledger},
                {"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1decisions"}
            ])
        );
        respond(send, StatusCode::OK, json!({}));
    });
    reconcile(run, ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_forbidden_write_is_a_permanent_error_with_a_category() {
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (_, send) = handle.next_request().await.unwrap();
        respond(
            send,
            StatusCode::FORBIDDEN,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "Forbidden", "message": "customruns.tekton.dev is forbidden", "code": 403}),
        );
    });
    let error = reconcile(gate(None), ctx.clone()).await.unwrap_err();
    server.await.unwrap();
    assert_eq!(error.category(), "forbidden");
    assert!(error.is_permanent());
    let watched = WatchedRun::from_value(serde_json::to_value(gate(None)).unwrap());
    let action = error_policy(Arc::new(watched), &error, ctx.clone());
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    assert!(
        ctx.metrics
            .encode()
            .contains(r#"approval_reconcile_errors_total{category="forbidden"} 1"#)
    );
}

#[tokio::test]
async fn a_named_gate_looks_up_its_policy_once_then_freezes_it() {
    let (ctx, mut handle) = context();
    let mut run = gate(None);
    run.spec.custom_ref.as_mut().unwrap().name = "production".into();
    run.spec.params.clear();
    let run = admitted(run);
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(
            request.uri().path(),
            "/apis/approval.tekton.dev/v1alpha1/namespaces/ci/approvals/production"
        );
        respond(
            send,
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "message": "not found", "code": 404}),
        );
        let (request, send) = handle.next_request().await.unwrap();
        let body = body_json(request).await;
        assert_eq!(body["status"]["conditions"][0]["reason"], "InvalidApproval");
        assert_eq!(
            body["status"]["conditions"][0]["message"],
            "Approval production not found in namespace ci"
        );
        respond(send, StatusCode::OK, body);
        let (request, send) = handle.next_request().await.unwrap();
        let event = body_json(request).await;
        assert_eq!(event["reason"], "InvalidApproval");
        assert_eq!(event["type"], "Warning");
        respond(send, StatusCode::CREATED, event);
    });
    reconcile(run, ctx).await.unwrap();
    server.await.unwrap();
}

#[test]
fn waiting_gates_are_counted_from_the_cache() {
    let (reader, mut writer) = reflector::store::<WatchedRun>();
    let waiting = gate(Some(
        json!({"conditions": [{"type": "Succeeded", "status": "Unknown"}]}),
    ));
    let mut done = gate(Some(
        json!({"conditions": [{"type": "Succeeded", "status": "True"}]}),
    ));
    done.metadata.name = Some("done".into());
    let mut other = gate(None);
    other.metadata.name = Some("other".into());
    other.spec.custom_ref.as_mut().unwrap().api_version = "example.dev/v1".into();
    for run in [waiting, done, other] {
        let watched = WatchedRun::from_value(serde_json::to_value(run).unwrap());
        writer.apply_watcher_event(&watcher::Event::Apply(watched));
    }
    assert_eq!(count_waiting(&[reader]), 1);
}

#[tokio::test]
async fn a_gate_that_cannot_be_read_is_reported_and_left_alone() {
    let (ctx, mut handle) = context();
    let mut value = serde_json::to_value(gate(None)).unwrap();
    value["spec"]["retries"] = json!(-1);
    let watched = WatchedRun::from_value(value);
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri().path(),
            "/apis/events.k8s.io/v1/namespaces/ci/events"
        );
        let event = body_json(request).await;
        assert_eq!(event["reason"], "InvalidApproval");
        assert_eq!(event["type"], "Warning");
        assert_eq!(
            event["regarding"]["uid"], "u-1",
            "the cache's key has no UID"
        );
        assert!(
            event["note"].as_str().unwrap().starts_with(
                "this gate cannot be read as a CustomRun (invalid value: integer `-1`"
            ),
            "{event}"
        );
        respond(send, StatusCode::CREATED, event);
        assert!(handle.next_request().await.is_none(), "no status write");
    });
    let action = reconcile_watched(Arc::new(watched), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    server.await.unwrap();
}

#[tokio::test]
async fn another_controllers_run_costs_no_api_call() {
    let (ctx, mut handle) = context();
    let foreign = json!({"apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun",
        "metadata": {"name": "wait", "namespace": "ci"},
        "spec": {"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"}, "retries": -1}});
    let action = reconcile_watched(Arc::new(WatchedRun::from_value(foreign)), ctx)
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(handle.next_request().await.is_none());
}

#[test]
fn readiness_turns_false_when_the_watch_stays_broken() {
    let health = WatchHealth::default();
    let t0 = fixed_now();
    assert_eq!(
        health.readiness(t0),
        Err("watch caches not synced yet".into())
    );
    health.synced();
    health.event(t0);
    assert_eq!(health.readiness(t0), Ok(()));
    health.error(t0 + chrono::Duration::seconds(10));
    health.error(t0 + chrono::Duration::seconds(30));
    assert_eq!(
        health.readiness(t0 + chrono::Duration::seconds(69)),
        Ok(()),
        "a short outage"
    );
    assert_eq!(
        health.readiness(t0 + chrono::Duration::seconds(70)),
        Err("the CustomRun watch has been failing for 60s (see the log)".into())
    );
    assert_eq!(
        health.last_event_age(t0 + chrono::Duration::seconds(70)),
        Some(70)
    );
    health.event(t0 + chrono::Duration::seconds(71));
    assert_eq!(health.readiness(t0 + chrono::Duration::seconds(72)), Ok(()));
}

/// A gate of PipelineRun `pipeline_run` at the `approve` task of Pipeline `release`, with
/// `supersede` on, created `minute` minutes after 10:00.
fn superseding_gate(pipeline_run: &str, minute: u32, status: Option<Value>) -> CustomRun {
    let mut run = json!({
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": format!("{pipeline_run}-approve"), "namespace": "ci",
                     "resourceVersion": "7", "uid": format!("u-{pipeline_run}"),
                     "creationTimestamp": format!("2026-11-22T10:{minute:02}:00Z"),
                     "labels": {"tekton.dev/pipeline": "release", "tekton.dev/pipelineTask": "approve",
                                "tekton.dev/pipelineRun": pipeline_run}},
        "spec": {
            "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
            "params": [{"name": "approvers", "value": ["alice"]}, {"name": "supersede", "value": "true"}],
            "timeout": "1h0m0s",
        }
    });
    if let Some(status) = status {
        run["status"] = status;
    }
    admitted(serde_json::from_value(run).unwrap())
}

/// Answers every request: status writes with the object written, events as created; returns
/// the reasons of the conditions written, in order.
async fn serve_all(mut handle: Handle) -> Vec<String> {
    let mut reasons = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let is_status = request.uri().path().ends_with("/status");
        let body = body_json(request).await;
        if is_status {
            reasons.push(
                body["status"]["conditions"][0]["reason"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            respond(send, StatusCode::OK, body);
        } else {
            respond(send, StatusCode::CREATED, body);
        }
    }
    reasons
}

#[tokio::test]
async fn a_newer_gate_starting_wakes_the_older_one_which_ends_superseded() {
    let (ctx, handle) = context();
    let server = tokio::spawn(serve_all(handle));
    // The older gate starts and takes its place on the line.
    let older = superseding_gate("release-1", 1, None);
    reconcile(older.clone(), ctx.clone()).await.unwrap();
    assert_eq!(ctx.lines.len(), 1);
    let started_older = plan(&older, PolicyLookup::NotNeeded, &keys(), fixed_now()).unwrap();
    // The newer one starts: the older one is due at once.
    reconcile(superseding_gate("release-2", 2, None), ctx.clone())
        .await
        .unwrap();
    assert_eq!(ctx.lines.len(), 2);
    let due = ctx
        .deadlines
        .due_at("ci", "release-1-approve")
        .expect("woken");
    assert!(due <= tokio::time::Instant::now());
    // Planned again, it ends Superseded and leaves the line.
    let mut waiting = older;
    waiting.status = Some(started_older.status);
    reconcile(waiting, ctx.clone()).await.unwrap();
    assert_eq!(ctx.lines.len(), 1);
    drop(ctx);
    assert_eq!(
        server.await.unwrap(),
        ["AwaitingApproval", "AwaitingApproval", "Superseded"]
    );
}
