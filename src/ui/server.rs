//! The web page's HTTP side: who asks (from the proxy), what they may read (a
//! SubjectAccessReview per namespace, cached briefly), the gates (a watch cache), live
//! updates (server-sent events), and decisions, written through [`crate::deciding`] as the
//! signed-in user. The UI's own service account can read and impersonate, never decide: a
//! decision is the user's, and the webhook judges it as theirs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::csrf::Csrf;
use super::identity::{ProxyHeaders, Unidentified};
use super::pages::{self, Filters, Frame, Notice, PipelineSummary};
use crate::api::CustomRun;
use crate::approval::classify;
use crate::approval::ledger::Decision;
use crate::cli::decide::Extras;
use crate::cli::exit::CliError;
use crate::cli::view::{GateView, Identity};
use crate::deciding::{self, Acting, Ask};

/// How long a "may this user read that namespace" answer is reused.
const ACCESS_TTL: Duration = Duration::from_secs(30);

/// What the page is configured with.
pub struct Settings {
    /// Where it listens (behind the proxy: loopback in the proxy's pod).
    pub addr: SocketAddr,
    /// How the proxy passes the user on.
    pub proxy: ProxyHeaders,
    /// Form tokens (keyed from the proxy's secret, so replicas agree).
    pub csrf: Csrf,
    /// The Tekton Dashboard's base URL, for links to PipelineRuns.
    pub dashboard: Option<String>,
}

struct Ui {
    client: Client,
    /// Every CustomRun as the API server sent it: read as a gate only when shown, so that a
    /// run no CustomRun type accepts (another controller's) cannot break the watch.
    runs: Store<DynamicObject>,
    changes: broadcast::Sender<String>,
    proxy: ProxyHeaders,
    csrf: Csrf,
    dashboard: Option<String>,
    access: Mutex<HashMap<(String, String), (bool, Instant)>>,
}

/// Serves the page until `shutdown`.
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let resource = customruns();
    let writer = reflector::store::Writer::new(resource.clone());
    let reader = writer.as_reader();
    let (changes, _) = broadcast::channel(1024);
    let ui = Arc::new(Ui {
        client: client.clone(),
        runs: reader,
        changes: changes.clone(),
        proxy: settings.proxy,
        csrf: settings.csrf,
        dashboard: settings.dashboard,
        access: Mutex::new(HashMap::new()),
    });
    let api = Api::<DynamicObject>::all_with(client, &resource);
    let watch = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .for_each(move |event| {
            match event {
                Ok(object) if as_gate(&object).is_some() => {
                    let key = format!(
                        "{}/{}",
                        object.namespace().unwrap_or_default(),
                        object.name_any()
                    );
                    let _ = changes.send(key);
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "ui: watch of CustomRuns failed; retrying"),
            }
            async {}
        });
    tokio::spawn(watch);
    let listener = tokio::net::TcpListener::bind(settings.addr).await?;
    info!(addr = %settings.addr, "approval ui listening");
    axum::serve(listener, router(ui))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn customruns() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tekton.dev", "v1beta1", "CustomRun"),
        "customruns",
    )
}

/// The gate a watched object is, if it is one and reads as a CustomRun.
fn as_gate(object: &DynamicObject) -> Option<CustomRun> {
    let run: CustomRun = serde_json::to_value(object)
        .ok()
        .and_then(|value| serde_json::from_value(value).ok())?;
    classify(&run.spec)?;
    Some(run)
}

fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(waiting))
        .route("/gates", get(all))
        .route("/gates/{namespace}/{name}", get(gate))
        .route("/gates/{namespace}/{name}/decision", post(decide))
        .route("/events", get(events))
        .route("/static/style.css", get(|| async { css(pages::STYLE) }))
        .route("/static/live.js", get(|| async { js(pages::LIVE_JS) }))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ui)
}

/// No framing, no sniffing, nothing from elsewhere: the page is all its own.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn css(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], body).into_response()
}

fn js(body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    )
        .into_response()
}

fn not_signed_in(why: &Unidentified) -> Response {
    refused(StatusCode::UNAUTHORIZED, "Not signed in", &why.to_string())
}

fn refused(status: StatusCode, title: &str, message: &str) -> Response {
    (status, Html(pages::refusal(title, message))).into_response()
}

impl Ui {
    /// The signed-in user.
    fn me(&self, headers: &HeaderMap) -> Result<Identity, Unidentified> {
        self.proxy.identify(headers)
    }

    /// Whether `me` may read the gates of `namespace` (as `kubectl get customruns` would
    /// let them): the page shows nobody what they could not see themselves.
    async fn may_read(&self, me: &Identity, namespace: &str) -> bool {
        let key = (
            format!("{}|{}", me.username, me.groups.join(",")),
            namespace.to_string(),
        );
        if let Some((allowed, at)) = self.access.lock().expect("not poisoned").get(&key)
            && at.elapsed() < ACCESS_TTL
        {
            return *allowed;
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(me.username.clone()),
                groups: Some(me.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    verb: Some("get".into()),
                    group: Some("tekton.dev".into()),
                    resource: Some("customruns".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let allowed = match api.create(&PostParams::default(), &review).await {
            Ok(answer) => answer.status.is_some_and(|s| s.allowed),
            Err(e) => {
                // Fail closed, and do not remember a failure.
                warn!(error = %e, "ui: SubjectAccessReview failed");
                return false;
            }
        };
        let mut access = self.access.lock().expect("not poisoned");
        access.retain(|_, (_, at)| at.elapsed() < ACCESS_TTL);
        access.insert(key, (allowed, Instant::now()));
        allowed
    }

    /// The views of the gates `me` may read, sorted by namespace and name.
    async fn readable(&self, me: &Identity) -> Vec<GateView> {
        let now = Utc::now();
        let mut views: Vec<GateView> = self
            .runs
            .state()
            .iter()
            .filter_map(|object| as_gate(object))
            .map(|run| GateView::new(&run, Some(me), now))
            .collect();
        let mut namespaces: Vec<String> = views.iter().map(|v| v.namespace.clone()).collect();
        namespaces.sort();
        namespaces.dedup();
        let mut readable = Vec::new();
        for namespace in namespaces {
            if self.may_read(me, &namespace).await {
                readable.push(namespace);
            }
        }
        views.retain(|v| readable.contains(&v.namespace));
        views.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        views
    }

    /// A gate `me` may read.
    async fn gate(&self, me: &Identity, namespace: &str, name: &str) -> Option<CustomRun> {
        let run = self.run(namespace, name)?;
        self.may_read(me, namespace).await.then_some(run)
    }

    fn run(&self, namespace: &str, name: &str) -> Option<CustomRun> {
        let key = ObjectRef::new_with(name, customruns()).within(namespace);
        as_gate(&*self.runs.get(&key)?)
    }

    /// The gate's PipelineRun and its tasks' states, read with the UI's own rights.
    async fn pipeline(&self, view: &GateView) -> Option<PipelineSummary> {
        let name = view.pipeline_run.as_deref()?;
        let resource = |kind: &str, plural: &str| {
            ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("tekton.dev", "v1", kind),
                plural,
            )
        };
        let runs: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &view.namespace,
            &resource("PipelineRun", "pipelineruns"),
        );
        let run = runs.get_opt(name).await.ok().flatten()?;
        let status = run.data.get("status");
        let reason = |status: Option<&serde_json::Value>| {
            status
                .and_then(|s| s["conditions"].as_array())
                .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded"))
                .and_then(|c| c["reason"].as_str())
                .unwrap_or("Pending")
                .to_string()
        };
        let task_runs: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &view.namespace,
            &resource("TaskRun", "taskruns"),
        );
        let mut tasks = Vec::new();
        let children = status
            .and_then(|s| s["childReferences"].as_array())
            .cloned()
            .unwrap_or_default();
        for child in children {
            let kind = child["kind"].as_str().unwrap_or_default().to_string();
            let child_name = child["name"].as_str().unwrap_or_default();
            let task = child["pipelineTaskName"]
                .as_str()
                .unwrap_or(child_name)
                .to_string();
            let state = match kind.as_str() {
                "CustomRun" => {
                    let key = ObjectRef::new_with(child_name, customruns()).within(&view.namespace);
                    self.runs
                        .get(&key)
                        .map(|object| reason(object.data.get("status")))
                        .unwrap_or_else(|| "Pending".into())
                }
                "TaskRun" => match task_runs.get_opt(child_name).await {
                    Ok(Some(task_run)) => reason(task_run.data.get("status")),
                    _ => "unknown".into(),
                },
                _ => "unknown".into(),
            };
            tasks.push((task, kind, state));
        }
        Some(PipelineSummary {
            name: name.to_string(),
            state: reason(status),
            tasks,
        })
    }

    fn frame<'a>(&'a self, me: &'a Identity, csrf: &'a str) -> Frame<'a> {
        Frame {
            me,
            now: Utc::now(),
            csrf,
            dashboard: self.dashboard.as_deref(),
        }
    }
}

/// `live.js` asks for the `<main>` only.
fn whole(headers: &HeaderMap) -> bool {
    !headers.contains_key("x-fragment")
}

async fn waiting(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let me = match ui.me(&headers) {
        Ok(me) => me,
        Err(why) => return not_signed_in(&why),
    };
    let views: Vec<GateView> = ui
        .readable(&me)
        .await
        .into_iter()
        .filter(|v| !v.ended && v.can_decide == Some(true))
        .collect();
    let csrf = ui.csrf.issue(&me.username, Utc::now());
    let frame = ui.frame(&me, &csrf);
    Html(pages::page(
        &frame,
        "Waiting for me",
        pages::waiting(&frame, &views),
        whole(&headers),
    ))
    .into_response()
}

#[derive(Deserialize, Default)]
struct FilterQuery {
    namespace: Option<String>,
    state: Option<String>,
    pipeline: Option<String>,
}

async fn all(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Query(query): Query<FilterQuery>,
) -> Response {
    let me = match ui.me(&headers) {
        Ok(me) => me,
        Err(why) => return not_signed_in(&why),
    };
    let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let filters = Filters {
        namespace: nonempty(query.namespace),
        state: nonempty(query.state),
        pipeline: nonempty(query.pipeline),
    };
    let views: Vec<GateView> = ui
        .readable(&me)
        .await
        .into_iter()
        .filter(|v| filters.admit(v))
        .collect();
    let csrf = ui.csrf.issue(&me.username, Utc::now());
    let frame = ui.frame(&me, &csrf);
    Html(pages::page(
        &frame,
        "All gates",
        pages::all(&frame, &views, &filters),
        whole(&headers),
    ))
    .into_response()
}

#[derive(Deserialize, Default)]
struct GateQuery {
    recorded: Option<String>,
}

async fn gate(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<GateQuery>,
) -> Response {
    let me = match ui.me(&headers) {
        Ok(me) => me,
        Err(why) => return not_signed_in(&why),
    };
    let notice = match query.recorded.as_deref() {
        Some("approve") => Some(Notice::Recorded("Your approval is recorded.".into())),
        Some("reject") => Some(Notice::Recorded("Your rejection is recorded.".into())),
        _ => None,
    };
    show_gate(
        &ui,
        &me,
        &namespace,
        &name,
        notice,
        StatusCode::OK,
        whole(&headers),
    )
    .await
}

async fn show_gate(
    ui: &Ui,
    me: &Identity,
    namespace: &str,
    name: &str,
    notice: Option<Notice>,
    status: StatusCode,
    whole: bool,
) -> Response {
    let Some(run) = ui.gate(me, namespace, name).await else {
        return refused(
            StatusCode::NOT_FOUND,
            "No such gate",
            &format!("there is no gate {namespace}/{name} that you may read"),
        );
    };
    let view = GateView::new(&run, Some(me), Utc::now());
    let pipeline = ui.pipeline(&view).await;
    let csrf = ui.csrf.issue(&me.username, Utc::now());
    let frame = ui.frame(me, &csrf);
    let main = pages::gate(&frame, &view, pipeline.as_ref(), notice.as_ref());
    let title = format!("{namespace}/{name}");
    (status, Html(pages::page(&frame, &title, main, whole))).into_response()
}

async fn decide(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let me = match ui.me(&headers) {
        Ok(me) => me,
        Err(why) => return not_signed_in(&why),
    };
    // A form from another site: the browser says so, and it cannot know the token.
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v != "same-origin" && v != "none");
    let token = form.get("csrf").map(String::as_str).unwrap_or_default();
    if cross_site || !ui.csrf.verify(&me.username, token, Utc::now()) {
        return refused(
            StatusCode::FORBIDDEN,
            "Form expired",
            "this form expired or did not come from this page: reload the page and decide again",
        );
    }
    let decision = match form.get("decision").map(String::as_str) {
        Some("approve") => Decision::Approve,
        Some("reject") => Decision::Reject,
        _ => {
            return refused(
                StatusCode::BAD_REQUEST,
                "No decision",
                "choose Approve or Reject",
            );
        }
    };
    let Some(run) = ui.gate(&me, &namespace, &name).await else {
        return refused(
            StatusCode::NOT_FOUND,
            "No such gate",
            &format!("there is no gate {namespace}/{name} that you may read"),
        );
    };
    let extras = Extras {
        inputs: form
            .iter()
            .filter(|_| decision == Decision::Approve)
            .filter_map(|(key, value)| {
                Some((key.strip_prefix("input-")?.to_string(), value.clone()))
            })
            .filter(|(_, value)| !value.is_empty())
            .collect(),
        effective_at: None,
    };
    let comment = form.get("comment").map(|c| c.trim()).unwrap_or_default();
    let ask = Ask {
        decision,
        comment,
        extras: &extras,
        field_manager: "approval-ui",
    };
    match deciding::decide(&ui.client, Acting::AsUser(&me), &run, ask).await {
        Ok((_, recorded)) => {
            info!(%namespace, %name, user = %recorded.record.user, decision = ?decision,
                  "ui: decision recorded");
            let word = if decision == Decision::Approve {
                "approve"
            } else {
                "reject"
            };
            Redirect::to(&format!("/gates/{namespace}/{name}?recorded={word}")).into_response()
        }
        Err(error) => {
            let status = match &error {
                CliError::Denied(_) => StatusCode::FORBIDDEN,
                CliError::Ended(_) => StatusCode::CONFLICT,
                CliError::NotFound(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_GATEWAY,
            };
            info!(%namespace, %name, user = %me.username, %error, "ui: decision refused");
            let notice = Notice::Denied(error.to_string());
            show_gate(&ui, &me, &namespace, &name, Some(notice), status, true).await
        }
    }
}

/// A change event (`ns/name`) for every gate change the user may read.
async fn events(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let me = match ui.me(&headers) {
        Ok(me) => me,
        Err(why) => return not_signed_in(&why),
    };
    let receiver = ui.changes.subscribe();
    debug!(user = %me.username, "ui: live updates subscribed");
    let stream = changes_for(ui, me, receiver);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn changes_for(
    ui: Arc<Ui>,
    me: Identity,
    receiver: broadcast::Receiver<String>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures::stream::unfold((ui, me, receiver), |(ui, me, mut receiver)| async move {
        loop {
            match receiver.recv().await {
                Ok(key) => {
                    let namespace = key.split('/').next().unwrap_or_default().to_string();
                    if ui.may_read(&me, &namespace).await {
                        debug!(user = %me.username, gate = %key, "ui: live update sent");
                        let event = Event::default().event("gate").data(key);
                        return Some((Ok(event), (ui, me, receiver)));
                    }
                }
                // Missed some: tell the page to refresh everything it shows.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let event = Event::default().event("gate").data("*");
                    return Some((Ok(event), (ui, me, receiver)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    const SECRET: &[u8] = b"0123456789abcdef-secret";

    /// The page with an API server that must never be called.
    fn ui() -> (
        Arc<Ui>,
        tower_test::mock::Handle<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >,
    ) {
        let (service, handle) = tower_test::mock::pair();
        let writer = reflector::store::Writer::new(customruns());
        let ui = Ui {
            client: Client::new(service, "default"),
            runs: writer.as_reader(),
            changes: broadcast::channel(8).0,
            proxy: ProxyHeaders::new(
                "X-Forwarded-User",
                "X-Forwarded-Groups",
                "X-Approval-Proxy-Secret",
                SECRET,
            ),
            csrf: Csrf::new(SECRET),
            dashboard: None,
            access: Mutex::new(HashMap::new()),
        };
        (Arc::new(ui), handle)
    }

    async fn send(ui: Arc<Ui>, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = router(ui).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn identity_headers_without_the_proxys_secret_get_401_and_no_api_call() {
        let (ui, mut handle) = ui();
        let request = Request::get("/")
            .header("x-forwarded-user", "alice")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(ui.clone(), request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            body.contains("reached through the sign-in proxy only"),
            "{body}"
        );
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        drop(ui);
        assert!(
            handle.next_request().await.is_none(),
            "nothing asked of the API server"
        );
    }

    #[tokio::test]
    async fn a_decision_without_a_valid_form_token_is_refused_before_anything_is_written() {
        let (ui, mut handle) = ui();
        let post = |body: &str, site: &str| {
            Request::post("/gates/ci/release-approve/decision")
                .header("x-forwarded-user", "alice")
                .header(
                    "x-approval-proxy-secret",
                    std::str::from_utf8(SECRET).unwrap(),
                )
                .header("content-type", "application/x-www-form-urlencoded")
                .header("sec-fetch-site", site)
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let (status, _, body) = send(
            ui.clone(),
            post("decision=approve&csrf=forged", "same-origin"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body.contains("this form expired or did not come from this page"),
            "{body}"
        );
        // A valid token for alice, from another site: refused too.
        let token = Csrf::new(SECRET).issue("alice", Utc::now());
        let (status, _, _) = send(
            ui.clone(),
            post(&format!("decision=approve&csrf={token}"), "cross-site"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // mallory's token is not alice's.
        let token = Csrf::new(SECRET).issue("mallory", Utc::now());
        let (status, _, _) = send(
            ui.clone(),
            post(&format!("decision=approve&csrf={token}"), "same-origin"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        drop(ui);
        assert!(handle.next_request().await.is_none(), "nothing written");
    }

    #[test]
    fn a_run_no_customrun_type_accepts_is_no_gate_and_no_error() {
        // Tekton accepts `retries: -1`; our types do not. Kept raw in the cache, it is
        // simply not shown (it once broke the page's whole watch).
        let foreign: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun",
            "metadata": {"name": "odd", "namespace": "ci"},
            "spec": {"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"}, "retries": -1}
        }))
        .unwrap();
        assert!(as_gate(&foreign).is_none());
        let gate: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun",
            "metadata": {"name": "release-approve", "namespace": "ci"},
            "spec": {"customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"}}
        }))
        .unwrap();
        assert!(as_gate(&gate).is_some());
    }

    #[tokio::test]
    async fn the_static_files_are_served_with_their_types() {
        let (ui, _handle) = ui();
        let (status, headers, body) = send(
            ui.clone(),
            Request::get("/static/live.js").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(body.contains("EventSource"));
        let (_, headers, _) = send(
            ui,
            Request::get("/static/style.css")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    }
}
