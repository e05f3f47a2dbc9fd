//! The Slack interactivity endpoint (`POST /slack/interactions`): verify, map, decide as
//! the person, answer only them. The thin layer around [`super::verify`],
//! [`super::payload`] and [`super::users`]; decisions go through [`crate::deciding`].
//!
//! Slack wants an answer within three seconds: a button click is acknowledged at once and
//! its outcome sent to the click's `response_url` (an ephemeral message, seen only by the
//! person who clicked); a submitted modal is answered in the response itself (closed, or
//! kept open with the reason under the comment field).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::payload::{self, Ask, Interaction, Unusable};
use super::users::Users;
use super::verify::{self, Replays};
use crate::api::CustomRun;
use crate::approval::ledger::Decision;
use crate::cli::decide::Extras;
use crate::cli::exit::CliError;
use crate::cli::view::Identity;
use crate::deciding::{self, Acting};
use crate::metrics::Metrics;
use crate::notify::config::SecretText;
use crate::notify::http::{Http, Retry};
use crate::notify::slack::{self, GateRef, SlackApi};

/// The largest interaction body read (Slack's are a few KiB; a modal with its blocks more).
const MAX_BODY: usize = 256 * 1024;

/// How the endpoint is set up.
pub struct Settings {
    /// Where it listens (plain HTTP; TLS ends at the Ingress in front).
    pub addr: SocketAddr,
    /// The Slack app's signing secret.
    pub signing_secret: SecretText,
    /// The bot token, to open the comment modal.
    pub token: SecretText,
    /// The mounted `users.yaml` (Slack user ID -> Kubernetes user and groups).
    pub users_file: PathBuf,
    /// Slack's Web API base URL, ending in `/`.
    pub api_url: String,
    /// Where `response_url`s must point (Slack's `https://hooks.slack.com/`): the endpoint
    /// posts nowhere else, whatever a payload says.
    pub response_url_prefix: String,
}

struct Chat {
    client: Client,
    settings: Settings,
    http: Http,
    metrics: Arc<Metrics>,
    replays: Mutex<Replays>,
}

/// Serves the endpoint until `shutdown`.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = settings.addr;
    let chat = Arc::new(Chat {
        client,
        settings,
        http: Http::new()?,
        metrics,
        replays: Mutex::default(),
    });
    let app = router(chat);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(%addr, "serving Slack interactions");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn router(chat: Arc<Chat>) -> Router {
    Router::new()
        .route("/slack/interactions", post(interaction))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(chat)
}

async fn interaction(State(chat): State<Arc<Chat>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-slack-signature");
    let now = Utc::now().timestamp();
    if let Err(refused) = verify::verify(
        chat.settings.signing_secret.expose().as_bytes(),
        header("x-slack-request-timestamp"),
        signature,
        &body,
        now,
    ) {
        warn!(%refused, "Slack interaction refused");
        chat.metrics.chat_decision("refused");
        return (StatusCode::UNAUTHORIZED, refused.to_string()).into_response();
    }
    let signature = signature.unwrap_or_default();
    if !chat
        .replays
        .lock()
        .expect("not poisoned")
        .first(signature, now)
    {
        // Slack sent it again (our answer was slow): it was acted on once already.
        chat.metrics.chat_decision("duplicate");
        return StatusCode::OK.into_response();
    }
    let interaction = match payload::parse(&body) {
        Ok(interaction) => interaction,
        Err(Unusable::Ignored) => return StatusCode::OK.into_response(),
        Err(Unusable::NoDecision) => return modal_error(&Unusable::NoDecision.to_string()),
        Err(Unusable::Malformed) => {
            return (StatusCode::BAD_REQUEST, Unusable::Malformed.to_string()).into_response();
        }
    };
    match interaction.ask.clone() {
        Ask::Submit { decision, comment } => {
            match chat.decide(&interaction, decision, &comment).await {
                Ok(_) => StatusCode::OK.into_response(),
                Err(why) => modal_error(&why),
            }
        }
        Ask::OpenModal { trigger_id } => match chat.open_modal(&interaction, &trigger_id).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(why) => {
                chat.reply(&interaction, &why).await;
                StatusCode::OK.into_response()
            }
        },
        Ask::Decide(decision) => {
            // Acknowledged now; the outcome goes to the person through the response URL.
            tokio::spawn(async move {
                let answer = match chat.decide(&interaction, decision, "").await {
                    Ok(line) => line,
                    Err(why) => why,
                };
                chat.reply(&interaction, &answer).await;
            });
            StatusCode::OK.into_response()
        }
    }
}

/// Keeps the modal open with the reason under its comment field.
fn modal_error(why: &str) -> Response {
    let why: String = why.chars().take(300).collect();
    axum::Json(json!({"response_action": "errors", "errors": {"comment": why}})).into_response()
}

impl Chat {
    /// Who the Slack user is, by the platform team's mapping.
    fn identity(&self, slack_user: &str) -> Result<Identity, String> {
        let text = std::fs::read_to_string(&self.settings.users_file).map_err(|e| {
            warn!(file = %self.settings.users_file.display(), error = %e,
                  "the Slack user mapping cannot be read: nobody can decide from Slack");
            "The Slack user mapping cannot be read: nothing was recorded. Ask your platform team to create approval-slack-users.".to_string()
        })?;
        let users = Users::parse(&text).map_err(|e| {
            warn!(error = %e, "the Slack user mapping is unusable: nobody can decide from Slack");
            "The Slack user mapping is unusable: nothing was recorded. Ask your platform team to fix users.yaml in approval-slack-users.".to_string()
        })?;
        users.identity(slack_user).cloned().ok_or_else(|| {
            self.metrics.chat_decision("unmapped");
            format!(
                "Your Slack account ({slack_user}) is not mapped to a Kubernetes user: nothing \
                 was recorded. Ask your platform team to add it to approval-slack-users."
            )
        })
    }

    /// The gate a message's button names, if it still exists as the same run.
    async fn gate(&self, gate: &GateRef) -> Result<CustomRun, String> {
        let api: Api<CustomRun> = Api::namespaced(self.client.clone(), &gate.namespace);
        let gone = || {
            self.metrics.chat_decision("ended");
            format!(
                "{}/{} no longer exists: this message is about a run that was deleted.",
                gate.namespace, gate.name
            )
        };
        match api.get_opt(&gate.name).await {
            Ok(Some(run)) if run.metadata.uid.as_deref() == Some(gate.uid.as_str()) => Ok(run),
            Ok(_) => Err(gone()),
            Err(error) => {
                warn!(%error, namespace = %gate.namespace, name = %gate.name, "reading a gate for Slack failed");
                Err("The gate could not be read just now: nothing was recorded; try again.".into())
            }
        }
    }

    /// Decides as the mapped person; the line to show them.
    async fn decide(
        &self,
        interaction: &Interaction,
        decision: Decision,
        comment: &str,
    ) -> Result<String, String> {
        let identity = self.identity(&interaction.user)?;
        let run = self.gate(&interaction.gate).await?;
        let extras = Extras::default();
        let ask = deciding::Ask {
            decision,
            comment,
            extras: &extras,
            field_manager: "approval-slack",
        };
        let gate = format!("{}/{}", interaction.gate.namespace, interaction.gate.name);
        match deciding::decide(&self.client, Acting::AsUser(&identity), &run, ask).await {
            Ok((after, recorded)) => {
                self.metrics.chat_decision("recorded");
                info!(gate = %gate, slack_user = %interaction.user, user = %recorded.record.user,
                      decision = ?decision, "slack: decision recorded");
                let report = recorded
                    .progress(&after)
                    .unwrap_or_else(|| recorded.unconfirmed());
                Ok(format!(
                    "You {} {gate}. {}",
                    decision.past_tense(),
                    capitalised(&report.line(&gate))
                ))
            }
            Err(error) => {
                let outcome = match &error {
                    CliError::Denied(_) => "denied",
                    CliError::Ended(_) | CliError::NotFound(_) => "ended",
                    _ => "failed",
                };
                self.metrics.chat_decision(outcome);
                info!(gate = %gate, slack_user = %interaction.user, user = %identity.username,
                      outcome, "slack: decision not recorded");
                Err(format!("Not recorded: {error}"))
            }
        }
    }

    /// Opens the modal for a decision with a comment.
    async fn open_modal(&self, interaction: &Interaction, trigger_id: &str) -> Result<(), String> {
        self.identity(&interaction.user)?;
        let run = self.gate(&interaction.gate).await?;
        let question = crate::approval::plan::Attempt::of(
            run.status.as_ref().ok_or("the gate has not started")?,
        )
        .and_then(Result::ok)
        .map(|a| a.policy.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            format!(
                "Decide {}/{}",
                interaction.gate.namespace, interaction.gate.name
            )
        });
        let api = SlackApi {
            http: &self.http,
            base: &self.settings.api_url,
            token: &self.settings.token,
            // The trigger is good for three seconds: no time for a second try.
            retry: Retry {
                tries: 1,
                ..Retry::default()
            },
        };
        let body = json!({"trigger_id": trigger_id, "view": slack::comment_modal(&interaction.gate, &question)});
        api.call("views.open", &body).await.map(|_| ()).map_err(|error| {
            warn!(%error, "opening the Slack modal failed");
            format!("The comment form could not be opened ({error}): use Approve or Reject, or try again.")
        })
    }

    /// Tells only the person who clicked.
    async fn reply(&self, interaction: &Interaction, text: &str) {
        let Some(url) = interaction.response_url.as_deref() else {
            return;
        };
        if !url.starts_with(&self.settings.response_url_prefix) {
            warn!(
                "a Slack response_url outside {} was not used",
                self.settings.response_url_prefix
            );
            return;
        }
        let body: Value = json!({"response_type": "ephemeral", "replace_original": false, "text": slack::escape(text)});
        let body = serde_json::to_vec(&body).expect("JSON always serialises");
        if let Err(error) = self.http.post(url, &[], "application/json", body).await {
            warn!(%error, "answering in Slack failed");
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    const SECRET: &str = "test-signing-secret";

    type Handle = tower_test::mock::Handle<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >;

    fn chat(users_file: PathBuf) -> (Arc<Chat>, Handle) {
        let (service, handle) = tower_test::mock::pair();
        let chat = Chat {
            client: Client::new(service, "default"),
            settings: Settings {
                addr: "127.0.0.1:0".parse().unwrap(),
                signing_secret: SecretText::new(SECRET),
                token: SecretText::new("xoxb-test"),
                users_file,
                api_url: "http://127.0.0.1:9/api/".into(),
                response_url_prefix: "https://hooks.slack.com/".into(),
            },
            http: Http::new().unwrap(),
            metrics: Arc::new(Metrics::default()),
            replays: Mutex::default(),
        };
        (Arc::new(chat), handle)
    }

    fn signed(body: &str, timestamp: i64, secret: &str) -> Request<Body> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = ring::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Request::post("/slack/interactions")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", format!("v0={hex}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn submission(user: &str) -> String {
        let payload = json!({
            "type": "view_submission",
            "user": {"id": user, "username": "alice"},
            "view": {
                "id": "V1", "callback_id": "approval-decision", "private_metadata": "ci/release-approve/uid-1",
                "state": {"values": {
                    "decision": {"decision": {"type": "radio_buttons", "selected_option": {"value": "approve"}}},
                    "comment": {"comment": {"type": "plain_text_input", "value": "ship it"}},
                }},
            },
        });
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
    }

    async fn send(chat: Arc<Chat>, request: Request<Body>) -> (StatusCode, String) {
        let response = router(chat).oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    fn users_file(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("approval-chat-{}-{name}.yaml", std::process::id()));
        std::fs::write(
            &path,
            "U0ALICE: {username: alice, groups: [release-managers]}\n",
        )
        .unwrap();
        path
    }

    #[tokio::test]
    async fn forged_stale_or_unsigned_requests_get_401_and_no_api_call() {
        let (chat, mut handle) = chat(users_file("forged"));
        let now = Utc::now().timestamp();
        let body = submission("U0ALICE");
        for request in [
            signed(&body, now, "another-secret"),
            signed(&body, now - 600, SECRET),
            Request::post("/slack/interactions")
                .body(Body::from(body.clone()))
                .unwrap(),
        ] {
            let (status, _) = send(chat.clone(), request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        drop(chat);
        assert!(
            handle.next_request().await.is_none(),
            "nothing asked of the API server"
        );
    }

    #[tokio::test]
    async fn an_unmapped_user_is_told_so_and_nothing_is_asked_of_the_api_server() {
        let (chat, mut handle) = chat(users_file("unmapped"));
        let (status, body) = send(
            chat.clone(),
            signed(&submission("U0NOBODY"), Utc::now().timestamp(), SECRET),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["response_action"], "errors");
        assert!(
            answer["errors"]["comment"]
                .as_str()
                .unwrap()
                .contains("(U0NOBODY) is not mapped"),
            "{answer}"
        );
        drop(chat);
        assert!(handle.next_request().await.is_none());
    }

    #[tokio::test]
    async fn a_decision_is_written_as_the_mapped_person_and_a_denial_is_shown_in_the_webhooks_words()
     {
        let (chat, mut handle) = chat(users_file("decide"));
        let request = signed(&submission("U0ALICE"), Utc::now().timestamp(), SECRET);
        let api = tokio::spawn(async move {
            // The gate the modal names, read with the endpoint's own identity.
            let (read, reply) = handle.next_request().await.expect("the gate is read");
            assert_eq!(read.method(), http::Method::GET);
            assert_eq!(
                read.uri().path(),
                "/apis/tekton.dev/v1beta1/namespaces/ci/customruns/release-approve"
            );
            assert!(read.headers().get("impersonate-user").is_none());
            let mut gate = crate::cli::view::tests::waiting_gate();
            gate["metadata"]["uid"] = json!("uid-1");
            reply.send_response(http::Response::new(kube::client::Body::from(
                serde_json::to_vec(&gate).unwrap(),
            )));
            // The decision, as alice.
            let (write, reply) = handle
                .next_request()
                .await
                .expect("the decision is written");
            assert_eq!(write.method(), http::Method::PATCH);
            assert_eq!(write.headers()["impersonate-user"], "alice");
            let groups: Vec<_> = write
                .headers()
                .get_all("impersonate-group")
                .iter()
                .collect();
            assert_eq!(groups, ["release-managers"]);
            let body = axum::body::to_bytes(axum::body::Body::new(write.into_body()), usize::MAX)
                .await
                .unwrap();
            let patch: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                patch["metadata"]["uid"], "uid-1",
                "only the gate the message is about"
            );
            assert_eq!(
                patch["metadata"]["annotations"]["approval.tekton.dev/approve"],
                "ship it"
            );
            let denial = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403, "reason": "Forbidden",
                "message": "admission webhook \"decisions.approval.tekton.dev\" denied the request: alice may not approve: she started this run"});
            let mut response = http::Response::new(kube::client::Body::from(
                serde_json::to_vec(&denial).unwrap(),
            ));
            *response.status_mut() = http::StatusCode::FORBIDDEN;
            reply.send_response(response);
            // Read again after the denial, to tell an ended gate from a denial.
            if let Some((_, reply)) = handle.next_request().await {
                reply.send_response(http::Response::new(kube::client::Body::from(
                    serde_json::to_vec(&gate).unwrap(),
                )));
            }
        });
        let (status, body) = send(chat.clone(), request).await;
        drop(chat);
        api.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert!(
            answer["errors"]["comment"]
                .as_str()
                .unwrap()
                .contains("she started this run"),
            "{answer}"
        );
    }
}
