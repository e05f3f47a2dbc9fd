//! A stand-in for Slack on loopback, for the chat scenarios: the Web API methods an approval
//! bot calls, the response URLs Slack hands out with each interaction, and the interaction
//! requests Slack sends to the app when a person clicks a button or submits a modal, signed
//! with the app's signing secret the way Slack signs them.
//!
//! It owns the state of a one-app workspace: the messages the bot posted (as last posted or
//! updated), the trigger ids and response URLs it issued, the modals it opened, and a log of
//! every call. It is strict where Slack is strict (bearer tokens; trigger ids that work once
//! and expire after three seconds; three seconds for the app to acknowledge an interaction;
//! five uses of a response URL), so a bot that passes here has not merely passed a lenient
//! mock. It must not grow beyond what the controller uses: no conversations, users, files or
//! Events API.
//!
//! Formats follow Slack's documentation: "Verifying requests from Slack", the `block_actions`
//! and `view_submission` payload references, the `chat.postMessage`, `chat.update` and
//! `views.open` method references (arguments, responses, error names), "Modifying messages"
//! (response URLs) and "Rate limits".

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

/// The workspace's id, as in every payload's `team.id` and `user.team_id`.
pub const TEAM_ID: &str = "T0APPRE2E";
/// The workspace's domain (`team.domain`).
pub const TEAM_DOMAIN: &str = "approval-e2e";
/// The app's id (`api_app_id` of every interaction payload).
pub const API_APP_ID: &str = "A0APPRE2E";
/// The bot's id, on every message the bot posts.
pub const BOT_ID: &str = "B0APPRE2E";
/// The bot user's id: the `user` of every message the bot posts.
pub const BOT_USER_ID: &str = "U0APPRBOT";
/// The deprecated verification token Slack still puts in every payload's `token`; an app
/// must not authenticate requests by it (only by the signature).
pub const VERIFICATION_TOKEN: &str = "e2eVerificationTokenDoNotTrust";
/// How long Slack waits for the app to acknowledge an interaction before it shows the user
/// an error: `click` and `submit_view` fail past it.
pub const ACK_DEADLINE: Duration = Duration::from_secs(3);
/// How long a trigger id can be exchanged (`views.open`) after Slack issued it.
pub const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);
/// How many times a response URL may be used.
pub const RESPONSE_URL_USES: usize = 5;

/// The Web API methods this fake serves; any other is `unknown_method`.
const METHODS: [&str; 4] = ["auth.test", "chat.postMessage", "chat.update", "views.open"];

/// Arguments that form-encoded calls carry as JSON-encoded strings ("A JSON-based array of
/// structured blocks, presented as a URL-encoded string"); JSON calls may pass them either way.
const JSON_ARGUMENTS: [&str; 4] = ["blocks", "attachments", "view", "metadata"];

/// Element types whose state is a `value` string in `view.state.values`.
const VALUE_INPUTS: [&str; 4] = [
    "plain_text_input",
    "email_text_input",
    "url_text_input",
    "number_input",
];

/// Element types whose state is a `selected_option` in `view.state.values`.
const OPTION_INPUTS: [&str; 2] = ["static_select", "radio_buttons"];

/// One Web API call the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The method, e.g. `chat.postMessage`.
    pub method: String,
    /// The arguments: the JSON body, or the form fields (JSON-encoded ones decoded); the raw
    /// body as a string if it could not be parsed.
    pub body: Value,
    /// Whether the call carried the bot token.
    pub authorized: bool,
    /// The HTTP status answered: 200 (Slack answers errors with 200 and `ok: false`), 429
    /// or 503 while `set_health` says so.
    pub status: u16,
    /// The `error` answered, `None` when the call succeeded (`ok: true`).
    pub error: Option<String>,
    /// The JSON answered (`ts` of a posted message is here).
    pub answer: Value,
}

/// What the Web API does with calls (`set_health`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Calls are served.
    Up,
    /// Every call is an HTTP 503.
    Down,
    /// Every call is an HTTP 429 with `Retry-After: 1`, as Slack rate-limits.
    RateLimited,
}

/// How an interaction request is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signing {
    /// Signed now with the app's signing secret, as Slack signs.
    Valid,
    /// Signed now with a different secret.
    WrongSecret,
    /// A valid signature over a timestamp this long ago (a replayed or delayed request).
    Stale(Duration),
    /// Neither `X-Slack-Request-Timestamp` nor `X-Slack-Signature`.
    Missing,
}

/// An interaction request exactly as sent, so that a test can replay it unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentInteraction {
    /// The form-encoded body (`payload=<json>`).
    pub body: String,
    /// `X-Slack-Request-Timestamp`; empty when it was not sent.
    pub timestamp: String,
    /// `X-Slack-Signature`; empty when it was not sent.
    pub signature: String,
}

/// Slack's request signature: `v0=` + lowercase hex HMAC-SHA256(signing secret,
/// `v0:{timestamp}:{body}`), as in the `X-Slack-Signature` header.
pub fn signature(signing_secret: &str, timestamp: &str, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_secret.as_bytes());
    let tag = hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex(tag.as_ref()))
}

/// A fake Slack workspace with one app installed, serving on `127.0.0.1:<free port>` until
/// the runtime ends. Clones share the workspace.
#[derive(Clone)]
pub struct FakeSlack {
    shared: Arc<Shared>,
    address: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// What the server and every clone of the handle share.
struct Shared {
    bot_token: String,
    signing_secret: String,
    workspace: Mutex<Workspace>,
    /// Woken on every new call or reply, for the waits.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Workspace> {
        // A test that panicked while holding the lock already failed; its state is still
        // worth reading in the other tests' messages.
        self.workspace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The workspace's state.
struct Workspace {
    health: Health,
    calls: Vec<Call>,
    /// By (channel, ts): the message as Slack would show it (`type`, `user`, `ts`, `text`,
    /// `blocks`, ...).
    messages: HashMap<(String, String), Value>,
    /// Unix seconds at start: message timestamps count up from here.
    ts_base: u64,
    ts_sequence: u64,
    triggers: HashMap<String, Trigger>,
    views: Vec<OpenedView>,
    external_ids: HashSet<String>,
    /// Indexed by the number in `/response/<n>`.
    response_urls: Vec<ResponseUrl>,
    replies: Vec<Value>,
    last_interaction: Option<SentInteraction>,
    id_sequence: u64,
}

struct Trigger {
    user_id: String,
    issued: Instant,
    exchanged: bool,
}

struct OpenedView {
    /// The view as `views.open` answered it (with `id`, `hash`, `state`, ...).
    view: Value,
    /// Whose screen it is on: only they can submit it.
    user_id: String,
    closed: bool,
}

/// Where a response URL's replies go: the message whose button was clicked, if any.
struct ResponseUrl {
    message: Option<(String, String)>,
    uses: usize,
}

/// A Web API error: the `error` code and, as Slack adds for `invalid_arguments`, messages.
struct ApiError {
    code: &'static str,
    messages: Vec<String>,
}

impl ApiError {
    fn new(code: &'static str) -> ApiError {
        ApiError {
            code,
            messages: Vec::new(),
        }
    }

    fn invalid_arguments(message: impl Into<String>) -> ApiError {
        ApiError {
            code: "invalid_arguments",
            messages: vec![format!("[ERROR] {}", message.into())],
        }
    }
}

/// A call's parsed arguments, and the `token` form field (Slack accepts the token as a POST
/// parameter of form-encoded calls; JSON calls must use the Authorization header).
struct Arguments {
    values: Map<String, Value>,
    form_token: Option<String>,
}

impl FakeSlack {
    /// Binds 127.0.0.1:0 and serves until the runtime ends. Calls must carry `bot_token`;
    /// interactions are signed with `signing_secret`.
    pub async fn start(bot_token: &str, signing_secret: &str) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Slack: binding a loopback port");
        let address = listener.local_addr().expect("fake Slack: local address");
        let shared = Arc::new(Shared {
            bot_token: bot_token.to_owned(),
            signing_secret: signing_secret.to_owned(),
            workspace: Mutex::new(Workspace {
                health: Health::Up,
                calls: Vec::new(),
                messages: HashMap::new(),
                ts_base: unix_now().as_secs(),
                ts_sequence: 0,
                triggers: HashMap::new(),
                views: Vec::new(),
                external_ids: HashSet::new(),
                response_urls: Vec::new(),
                replies: Vec::new(),
                last_interaction: None,
                id_sequence: 0,
            }),
            changed: Notify::new(),
        });
        let server = shared.clone();
        crate::serve::spawn_http1(listener, "fake Slack", move |request| {
            serve(server.clone(), request)
        });
        FakeSlack {
            shared,
            address,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Base URL of the Web API, ending in a slash: `http://127.0.0.1:PORT/api/` (methods
    /// are `POST {base}chat.postMessage` and so on, as on `https://slack.com/api/`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.address)
    }

    /// Every Web API call received so far, in order, whatever it was answered.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Waits up to `timeout` for a call of `method` that succeeded (HTTP 200, `ok: true`)
    /// and whose body satisfies `matches`, and returns its body; calls refused (bad token,
    /// bad arguments, 429, 503) do not count, so a test waits past a bot's retries. On
    /// timeout the error lists every call seen.
    pub async fn wait_for_call(
        &self,
        method: &str,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let found = self
            .wait(timeout, |workspace| {
                workspace
                    .calls
                    .iter()
                    .find(|c| {
                        c.method == method
                            && c.status == 200
                            && c.error.is_none()
                            && matches(&c.body)
                    })
                    .map(|c| c.body.clone())
            })
            .await;
        found.ok_or_else(|| {
            anyhow!(
                "no successful {method} matching within {timeout:?}; calls seen: {}",
                describe_calls(&self.calls())
            )
        })
    }

    /// The current content of a posted message, by channel and ts: the message as last
    /// posted or updated (`text`, `blocks`, `attachments`, plus `type`, `user`, `bot_id`,
    /// `ts`), or `None` if there is none (or a response URL deleted it).
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.shared
            .lock()
            .messages
            .get(&(channel.to_owned(), ts.to_owned()))
            .cloned()
    }

    /// Makes the Web API unavailable (HTTP 503) or rate-limited (HTTP 429 with
    /// `Retry-After: 1`) until set back to `Up`. Response URLs are not affected.
    pub fn set_health(&self, health: Health) {
        self.shared.lock().health = health;
    }

    /// The JSON bodies accepted at the response URLs this fake handed out, in order.
    pub fn replies(&self) -> Vec<Value> {
        self.shared.lock().replies.clone()
    }

    /// Waits up to `timeout` for an accepted reply satisfying `matches`; on timeout the
    /// error lists the replies seen.
    pub async fn wait_for_reply(
        &self,
        matches: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let found = self
            .wait(timeout, |workspace| {
                workspace.replies.iter().find(|r| matches(r)).cloned()
            })
            .await;
        found.ok_or_else(|| {
            anyhow!(
                "no reply matching within {timeout:?}; replies seen: {:?}",
                self.replies()
            )
        })
    }

    /// Clicks button `action_id` of the posted message (`channel`, `ts`) as Slack user
    /// `user_id`: builds the `block_actions` payload Slack sends (the button's `block_id`,
    /// `value` and `text` from the stored message; a fresh `trigger_id`; a `response_url` on
    /// this fake; `container`, `channel`, `message`, `state`, `team`, `user`, `api_app_id`,
    /// `token`), form-encodes it as `payload=<json>` and POSTs it to `interactions_url`
    /// signed as `signing` says. Returns the app's HTTP status and body. Err if the message
    /// or the button does not exist, or if the app does not answer within `ACK_DEADLINE`.
    pub async fn click(
        &self,
        interactions_url: &str,
        user_id: &str,
        channel: &str,
        ts: &str,
        action_id: &str,
        signing: Signing,
    ) -> anyhow::Result<(u16, String)> {
        let payload = {
            let mut workspace = self.shared.lock();
            let key = (channel.to_owned(), ts.to_owned());
            let Some(message) = workspace.messages.get(&key).cloned() else {
                let mut posted: Vec<_> = workspace.messages.keys().collect();
                posted.sort();
                bail!("no message {ts} in {channel} to click; messages: {posted:?}");
            };
            let Some((block_id, button)) = find_button(&message, action_id) else {
                bail!("message {ts} in {channel} has no button {action_id}: {message}");
            };
            let mut action = json!({
                "action_id": action_id,
                "block_id": block_id,
                "text": button["text"],
                "type": "button",
                "action_ts": slack_time(unix_now()),
            });
            // Slack leaves `value` out when the button has none.
            if let Some(value) = button.get("value") {
                action["value"] = value.clone();
            }
            let trigger_id = workspace.issue_trigger(user_id);
            let response_url = workspace.issue_response_url(self.address, Some(key));
            json!({
                "type": "block_actions",
                "user": user(user_id),
                "api_app_id": API_APP_ID,
                "token": VERIFICATION_TOKEN,
                "container": {
                    "type": "message",
                    "message_ts": ts,
                    "channel_id": channel,
                    "is_ephemeral": false,
                },
                "trigger_id": trigger_id,
                "team": team(),
                "enterprise": null,
                "is_enterprise_install": false,
                "channel": {"id": channel, "name": channel.trim_start_matches('#')},
                "message": message,
                "state": {"values": {}},
                "response_url": response_url,
                "actions": [action],
            })
        };
        self.post_signed(interactions_url, &form_payload(&payload), signing)
            .await
    }

    /// The modals opened through `views.open` (each `view` as answered, with the `id`,
    /// `hash` and `state` this fake assigned; after an `update` response, as updated), in
    /// order.
    pub fn views(&self) -> Vec<Value> {
        self.shared
            .lock()
            .views
            .iter()
            .map(|v| v.view.clone())
            .collect()
    }

    /// Submits the open modal `view_id` as `user_id` (the person it was opened for) with
    /// `values`, each (block_id, action_id, value): the value of a text input, or the option
    /// `value` of a `static_select` or `radio_buttons` element, sent as Slack sends it
    /// (`selected_option` with the option's `text` and `value`). Inputs not given keep their
    /// initial value or are `null`, as in Slack's `state.values`; a required input left
    /// empty is an Err, because Slack would not let the person submit. Builds the
    /// `view_submission` payload (`view` with `id`, `callback_id`, `private_metadata`,
    /// `state.values`, `hash`; `user`, `team`, `api_app_id`, `token`, `trigger_id`,
    /// `response_urls`), form-encodes and signs it, and POSTs it to `interactions_url`.
    /// Returns the app's status and body. As Slack does, an empty 200 or a `clear` closes the
    /// modal, an `update` replaces it, a `push` opens another; `errors` leaves it open.
    pub async fn submit_view(
        &self,
        interactions_url: &str,
        user_id: &str,
        view_id: &str,
        values: &[(&str, &str, &str)],
        signing: Signing,
    ) -> anyhow::Result<(u16, String)> {
        let payload = {
            let mut workspace = self.shared.lock();
            let Some(opened) = workspace.views.iter().find(|v| v.view["id"] == view_id) else {
                let ids: Vec<_> = workspace
                    .views
                    .iter()
                    .map(|v| v.view["id"].clone())
                    .collect();
                bail!("no view {view_id} was opened; views: {ids:?}");
            };
            if opened.user_id != user_id {
                bail!(
                    "view {view_id} is on {}'s screen, {user_id} cannot submit it",
                    opened.user_id
                );
            }
            if opened.closed {
                bail!("view {view_id} is closed: it was already submitted");
            }
            let mut view = opened.view.clone();
            view["state"] = json!({"values": view_state(&view, values)?});
            let trigger_id = workspace.issue_trigger(user_id);
            json!({
                "type": "view_submission",
                "team": team(),
                "user": user(user_id),
                "api_app_id": API_APP_ID,
                "token": VERIFICATION_TOKEN,
                "trigger_id": trigger_id,
                "view": view,
                "response_urls": [],
                "enterprise": null,
                "is_enterprise_install": false,
            })
        };
        let (status, body) = self
            .post_signed(interactions_url, &form_payload(&payload), signing)
            .await?;
        if status == 200 {
            self.shared.lock().after_submission(view_id, user_id, &body);
        }
        Ok((status, body))
    }

    /// POSTs an already-built form body to `url` with Slack's signature headers as `signing`
    /// says, for attacks (tampered or forged payloads). Returns status and body; Err if the
    /// app does not answer within `ACK_DEADLINE`.
    pub async fn post_signed(
        &self,
        url: &str,
        body: &str,
        signing: Signing,
    ) -> anyhow::Result<(u16, String)> {
        let now = unix_now().as_secs();
        let (timestamp, signature) = match signing {
            Signing::Valid => (now.to_string(), self.sign(&now.to_string(), body)),
            Signing::WrongSecret => {
                let wrong = format!("not-{}", self.shared.signing_secret);
                (now.to_string(), signature(&wrong, &now.to_string(), body))
            }
            Signing::Stale(age) => {
                let then = now.saturating_sub(age.as_secs()).to_string();
                let signed = self.sign(&then, body);
                (then, signed)
            }
            Signing::Missing => (String::new(), String::new()),
        };
        let sent = SentInteraction {
            body: body.to_owned(),
            timestamp,
            signature,
        };
        self.shared.lock().last_interaction = Some(sent.clone());
        self.replay(url, &sent).await
    }

    /// The last interaction request sent (by `click`, `submit_view` or `post_signed`), so a
    /// test can replay it unchanged.
    pub fn last_interaction(&self) -> Option<SentInteraction> {
        self.shared.lock().last_interaction.clone()
    }

    /// Sends `sent` again to `url`, byte for byte with the same signature headers (a replay
    /// attack). Returns status and body.
    pub async fn replay(&self, url: &str, sent: &SentInteraction) -> anyhow::Result<(u16, String)> {
        let mut request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::USER_AGENT,
                "Slackbot 1.0 (+https://api.slack.com/robots)",
            );
        if !sent.timestamp.is_empty() {
            request = request.header("X-Slack-Request-Timestamp", &sent.timestamp);
        }
        if !sent.signature.is_empty() {
            request = request.header("X-Slack-Signature", &sent.signature);
        }
        let request = request
            .body(Full::new(Bytes::from(sent.body.clone())))
            .with_context(|| format!("building a request to {url}"))?;
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        match tokio::time::timeout(ACK_DEADLINE, exchange).await {
            Ok(answer) => answer.with_context(|| format!("sending an interaction to {url}")),
            Err(_) => bail!(
                "{url} did not answer the interaction within {ACK_DEADLINE:?}: Slack would \
                 show the person an error"
            ),
        }
    }

    fn sign(&self, timestamp: &str, body: &str) -> String {
        signature(&self.shared.signing_secret, timestamp, body)
    }

    /// Polls `found` on every change until it yields or `timeout` passes.
    async fn wait<T>(
        &self,
        timeout: Duration,
        found: impl Fn(&Workspace) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a change between the look and the wait is not
            // missed.
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(value) = found(&self.shared.lock()) {
                return Some(value);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }
}

impl Workspace {
    /// Runs an authorized call of a known method.
    fn call(&mut self, method: &str, arguments: &Map<String, Value>) -> Result<Value, ApiError> {
        match method {
            "auth.test" => Ok(json!({
                "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
                "team": "Approval e2e",
                "user": "approval-bot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": false,
            })),
            "chat.postMessage" => self.post_message(arguments),
            "chat.update" => self.update_message(arguments),
            "views.open" => self.open_view(arguments),
            _ => Err(ApiError::new("unknown_method")),
        }
    }

    fn post_message(&mut self, arguments: &Map<String, Value>) -> Result<Value, ApiError> {
        let channel =
            string_argument(arguments, "channel").ok_or(ApiError::new("channel_not_found"))?;
        let content = Content::from_arguments(arguments)?;
        if content.is_empty() {
            return Err(ApiError::new("no_text"));
        }
        let ts = self.next_ts();
        let mut message = json!({
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": API_APP_ID,
            "team": TEAM_ID,
            "ts": ts,
            "text": content.text.clone().unwrap_or_default(),
        });
        if let Some(thread_ts) = string_argument(arguments, "thread_ts") {
            message["thread_ts"] = json!(thread_ts);
        }
        content.apply(&mut message);
        self.messages
            .insert((channel.to_owned(), ts.clone()), message.clone());
        Ok(json!({"channel": channel, "ts": ts, "message": message}))
    }

    fn update_message(&mut self, arguments: &Map<String, Value>) -> Result<Value, ApiError> {
        let channel =
            string_argument(arguments, "channel").ok_or(ApiError::new("channel_not_found"))?;
        let ts = string_argument(arguments, "ts").ok_or(ApiError::new("message_not_found"))?;
        if !self.messages.keys().any(|(c, _)| c == channel) {
            return Err(ApiError::new("channel_not_found"));
        }
        let content = Content::from_arguments(arguments)?;
        let key = (channel.to_owned(), ts.to_owned());
        let message = self
            .messages
            .get_mut(&key)
            .ok_or(ApiError::new("message_not_found"))?;
        if content.is_absent() {
            return Err(ApiError::new("no_text"));
        }
        content.apply(message);
        let message = message.clone();
        Ok(json!({"channel": channel, "ts": ts, "text": message["text"], "message": message}))
    }

    fn open_view(&mut self, arguments: &Map<String, Value>) -> Result<Value, ApiError> {
        let trigger_id = string_argument(arguments, "trigger_id")
            .ok_or_else(|| ApiError::invalid_arguments("missing required field: trigger_id"))?
            .to_owned();
        let view = match arguments.get("view") {
            Some(Value::Object(view)) => view.clone(),
            Some(_) => return Err(ApiError::invalid_arguments("view must be a JSON object")),
            None => return Err(ApiError::invalid_arguments("missing required field: view")),
        };
        if view.get("type").and_then(Value::as_str) != Some("modal") {
            return Err(ApiError::invalid_arguments("view.type must be modal"));
        }
        if !view.get("title").is_some_and(Value::is_object) {
            return Err(ApiError::invalid_arguments("missing required field: title"));
        }
        let Some(Value::Array(blocks)) = view.get("blocks") else {
            return Err(ApiError::invalid_arguments(
                "missing required field: blocks",
            ));
        };
        check_blocks(blocks).map_err(|_| ApiError::invalid_arguments("invalid blocks"))?;
        let external_id = view
            .get("external_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !external_id.is_empty() && self.external_ids.contains(&external_id) {
            return Err(ApiError::new("duplicate_external_id"));
        }
        let trigger = self
            .triggers
            .get_mut(&trigger_id)
            .ok_or(ApiError::new("invalid_trigger_id"))?;
        if trigger.exchanged {
            return Err(ApiError::new("exchanged_trigger_id"));
        }
        if trigger.issued.elapsed() > TRIGGER_LIFETIME {
            return Err(ApiError::new("expired_trigger_id"));
        }
        trigger.exchanged = true;
        let user_id = trigger.user_id.clone();
        if !external_id.is_empty() {
            self.external_ids.insert(external_id.clone());
        }
        let id = format!("V{}", random_string(10, UPPER_ALPHANUMERIC));
        let opened = Self::view_as_answered(&id, &view, &id);
        self.views.push(OpenedView {
            view: opened.clone(),
            user_id,
            closed: false,
        });
        Ok(json!({"view": opened}))
    }

    /// `view` (as the app sent it) the way Slack answers and later sends it: with an id, a
    /// hash, generated block ids, the defaults filled in, and empty state.
    fn view_as_answered(id: &str, view: &Map<String, Value>, root_view_id: &str) -> Value {
        let field = |name: &str, default: Value| view.get(name).cloned().unwrap_or(default);
        let blocks = with_block_ids(
            view.get("blocks")
                .and_then(Value::as_array)
                .map_or(&[][..], |b| b),
        );
        json!({
            "id": id,
            "team_id": TEAM_ID,
            "type": "modal",
            "blocks": blocks,
            "private_metadata": field("private_metadata", json!("")),
            "callback_id": field("callback_id", json!("")),
            "state": {"values": {}},
            "hash": format!("{}.{}", unix_now().as_secs(), random_string(8, ALPHANUMERIC)),
            "title": field("title", Value::Null),
            "clear_on_close": field("clear_on_close", json!(false)),
            "notify_on_close": field("notify_on_close", json!(false)),
            "close": field("close", Value::Null),
            "submit": field("submit", Value::Null),
            "previous_view_id": null,
            "root_view_id": root_view_id,
            "app_id": API_APP_ID,
            "external_id": field("external_id", json!("")),
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        })
    }

    /// Slack's handling of the app's answer to a view submission (`response_action`).
    fn after_submission(&mut self, view_id: &str, user_id: &str, body: &str) {
        let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let Some(index) = self.views.iter().position(|v| v.view["id"] == view_id) else {
            return;
        };
        match answer["response_action"].as_str() {
            // An empty acknowledgement closes the modal.
            None if body.trim().is_empty() => self.views[index].closed = true,
            Some("clear") => self.views[index].closed = true,
            Some("update") => {
                if let Some(new) = answer["view"].as_object() {
                    let root = self.views[index].view["root_view_id"].clone();
                    let root = root.as_str().unwrap_or(view_id).to_owned();
                    self.views[index].view = Self::view_as_answered(view_id, new, &root);
                }
            }
            Some("push") => {
                if let Some(new) = answer["view"].as_object() {
                    let id = format!("V{}", random_string(10, UPPER_ALPHANUMERIC));
                    let mut pushed = Self::view_as_answered(&id, new, view_id);
                    pushed["previous_view_id"] = json!(view_id);
                    self.views.push(OpenedView {
                        view: pushed,
                        user_id: user_id.to_owned(),
                        closed: false,
                    });
                }
            }
            // `errors` (shown next to the inputs) or an answer Slack cannot use: the modal
            // stays open.
            _ => {}
        }
    }

    /// A message timestamp: unique and increasing, like `1764590000.000100`.
    fn next_ts(&mut self) -> String {
        self.ts_sequence += 1;
        let micros = self.ts_sequence * 100;
        format!(
            "{}.{:06}",
            self.ts_base + micros / 1_000_000,
            micros % 1_000_000
        )
    }

    /// A fresh trigger id in Slack's format (`132456.7890123.abcdef`), good for one
    /// `views.open` by this user within `TRIGGER_LIFETIME`.
    fn issue_trigger(&mut self, user_id: &str) -> String {
        self.id_sequence += 1;
        let trigger_id = format!(
            "{}.{}.{}",
            self.ts_base * 10 + self.id_sequence,
            unix_now().as_millis(),
            random_string(32, LOWER_HEX)
        );
        self.triggers.insert(
            trigger_id.clone(),
            Trigger {
                user_id: user_id.to_owned(),
                issued: Instant::now(),
                exchanged: false,
            },
        );
        trigger_id
    }

    fn issue_response_url(
        &mut self,
        address: SocketAddr,
        message: Option<(String, String)>,
    ) -> String {
        self.response_urls.push(ResponseUrl { message, uses: 0 });
        format!("http://{address}/response/{}", self.response_urls.len() - 1)
    }
}

/// The content arguments of `chat.postMessage` and `chat.update`.
struct Content {
    text: Option<String>,
    blocks: Option<Vec<Value>>,
    attachments: Option<Vec<Value>>,
}

impl Content {
    fn from_arguments(arguments: &Map<String, Value>) -> Result<Content, ApiError> {
        let list = |name: &str, error: &'static str| match arguments.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.clone())),
            Some(_) => Err(ApiError::new(error)),
        };
        let blocks = list("blocks", "invalid_blocks_format")?;
        if let Some(blocks) = &blocks {
            check_blocks(blocks).map_err(|_| ApiError::new("invalid_blocks"))?;
        }
        Ok(Content {
            text: arguments
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned),
            blocks,
            attachments: list("attachments", "invalid_attachments")?,
        })
    }

    /// No text, blocks or attachments to show: `no_text` for a new message.
    fn is_empty(&self) -> bool {
        self.text.as_deref().unwrap_or_default().is_empty()
            && self.blocks.as_ref().is_none_or(Vec::is_empty)
            && self.attachments.as_ref().is_none_or(Vec::is_empty)
    }

    /// None of the content arguments given: `no_text` for an update.
    fn is_absent(&self) -> bool {
        self.text.is_none() && self.blocks.is_none() && self.attachments.is_none()
    }

    /// Writes the given content into `message`: text replaces text; blocks and attachments
    /// replace the previous ones when given, an empty array removes them, and left out they
    /// are retained (as `chat.update` documents).
    fn apply(&self, message: &mut Value) {
        if let Some(text) = &self.text {
            message["text"] = json!(text);
        }
        let Some(message) = message.as_object_mut() else {
            return;
        };
        if let Some(blocks) = &self.blocks {
            if blocks.is_empty() {
                message.remove("blocks");
            } else {
                message.insert("blocks".into(), Value::Array(with_block_ids(blocks)));
            }
        }
        if let Some(attachments) = &self.attachments {
            if attachments.is_empty() {
                message.remove("attachments");
            } else {
                message.insert("attachments".into(), Value::Array(attachments.clone()));
            }
        }
    }
}

/// Serves one request: the Web API under `/api/`, response URLs under `/response/`.
async fn serve(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("reading the body: {error}"),
            ));
        }
    };
    Ok(if let Some(method) = path.strip_prefix("/api/") {
        web_api(&shared, method, &parts.headers, &body)
    } else if let Some(index) = path.strip_prefix("/response/") {
        response_url(&shared, index, &body)
    } else {
        text(StatusCode::NOT_FOUND, "not_found".into())
    })
}

/// One Web API call: health, then the method, the body, the token, then the method's own
/// checks; every call is recorded.
fn web_api(
    shared: &Shared,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let arguments = parse_arguments(headers, body);
    let form_token = arguments.as_ref().ok().and_then(|a| a.form_token.clone());
    let token = bearer_token(headers).or(form_token);
    let authorized = token.as_deref() == Some(shared.bot_token.as_str());
    let recorded = match &arguments {
        Ok(arguments) => Value::Object(arguments.values.clone()),
        Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
    };
    let mut workspace = shared.lock();
    let (status, outcome) = match workspace.health {
        Health::Down => (
            StatusCode::SERVICE_UNAVAILABLE,
            Err(ApiError::new("service_unavailable")),
        ),
        Health::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            Err(ApiError::new("ratelimited")),
        ),
        Health::Up => {
            let outcome = if !METHODS.contains(&method) {
                Err(ApiError::new("unknown_method"))
            } else {
                match (arguments, token) {
                    (Err(code), _) => Err(ApiError::new(code)),
                    (Ok(_), None) => Err(ApiError::new("not_authed")),
                    (Ok(_), Some(_)) if !authorized => Err(ApiError::new("invalid_auth")),
                    (Ok(arguments), Some(_)) => workspace.call(method, &arguments.values),
                }
            };
            (StatusCode::OK, outcome)
        }
    };
    let (answer, error) = match outcome {
        Ok(mut answer) => {
            answer["ok"] = json!(true);
            (answer, None)
        }
        Err(error) => {
            let mut answer = json!({"ok": false, "error": error.code});
            if !error.messages.is_empty() {
                answer["response_metadata"] = json!({"messages": error.messages});
            }
            (answer, Some(error.code.to_owned()))
        }
    };
    workspace.calls.push(Call {
        method: method.to_owned(),
        body: recorded,
        authorized,
        status: status.as_u16(),
        error,
        answer: answer.clone(),
    });
    drop(workspace);
    shared.changed.notify_waiters();
    let mut response = json_response(status, &answer);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A POST to a response URL: recorded in `replies` and, with `replace_original` or
/// `delete_original`, applied to the message whose button was clicked.
fn response_url(shared: &Shared, index: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let mut workspace = shared.lock();
    let Some(index) = index
        .parse::<usize>()
        .ok()
        .filter(|i| *i < workspace.response_urls.len())
    else {
        return text(StatusCode::NOT_FOUND, "no_such_response_url".into());
    };
    if workspace.response_urls[index].uses >= RESPONSE_URL_USES {
        return text(StatusCode::NOT_FOUND, "used_url".into());
    }
    let Ok(reply @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return text(StatusCode::BAD_REQUEST, "invalid_payload".into());
    };
    let deletes = is_true(&reply["delete_original"]);
    let content = match reply.as_object().map(Content::from_arguments) {
        Some(Ok(content)) => content,
        _ => return text(StatusCode::BAD_REQUEST, "invalid_blocks".into()),
    };
    if !deletes && content.is_empty() {
        return text(StatusCode::BAD_REQUEST, "no_text".into());
    }
    workspace.response_urls[index].uses += 1;
    if let Some(key) = workspace.response_urls[index].message.clone() {
        if deletes {
            workspace.messages.remove(&key);
        } else if is_true(&reply["replace_original"])
            && let Some(message) = workspace.messages.get_mut(&key)
        {
            // Replacing is a new rendering of the message: what is not sent is gone.
            if let Some(message) = message.as_object_mut() {
                message.remove("blocks");
                message.remove("attachments");
            }
            content.apply(message);
        }
    }
    workspace.replies.push(reply);
    drop(workspace);
    shared.changed.notify_waiters();
    text(StatusCode::OK, "ok".into())
}

/// The call's arguments by its Content-Type; Err is the Slack error code.
fn parse_arguments(headers: &HeaderMap, body: &[u8]) -> Result<Arguments, &'static str> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let (mut values, form_token) = match content_type.as_deref() {
        None if body.is_empty() => (Map::new(), None),
        None => return Err("missing_post_type"),
        Some("application/json") => match serde_json::from_slice(body) {
            Ok(Value::Object(values)) => (values, None),
            _ => return Err("invalid_json"),
        },
        Some("application/x-www-form-urlencoded") => {
            let mut values = Map::new();
            for (name, value) in form_urlencoded::parse(body) {
                values.insert(name.into_owned(), Value::String(value.into_owned()));
            }
            let token = values
                .get("token")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (values, token)
        }
        Some(_) => return Err("invalid_post_type"),
    };
    for name in JSON_ARGUMENTS {
        if let Some(Value::String(encoded)) = values.get(name)
            && let Ok(decoded) = serde_json::from_str::<Value>(encoded)
        {
            values.insert(name.to_owned(), decoded);
        }
    }
    Ok(Arguments { values, form_token })
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// A non-empty string argument.
fn string_argument<'a>(arguments: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Block Kit's minimum: every block is an object with a `type`.
fn check_blocks(blocks: &[Value]) -> Result<(), ()> {
    let valid = blocks.iter().all(|b| {
        b.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    });
    if valid { Ok(()) } else { Err(()) }
}

/// The blocks with a generated `block_id` where the app gave none ("If not specified, a
/// block_id will be generated").
fn with_block_ids(blocks: &[Value]) -> Vec<Value> {
    blocks
        .iter()
        .map(|block| {
            let mut block = block.clone();
            if let Some(fields) = block.as_object_mut()
                && !fields.contains_key("block_id")
            {
                fields.insert("block_id".into(), json!(random_string(5, ALPHANUMERIC)));
            }
            block
        })
        .collect()
}

/// The interactive elements of a block: an input's element, an actions block's elements, a
/// section's accessory.
fn elements(block: &Value) -> Vec<&Value> {
    match block["type"].as_str() {
        Some("input") => block.get("element").into_iter().collect(),
        Some("actions") => block["elements"]
            .as_array()
            .map(|e| e.iter().collect())
            .unwrap_or_default(),
        Some("section") => block.get("accessory").into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The button `action_id` of a message and the id of its block.
fn find_button<'a>(message: &'a Value, action_id: &str) -> Option<(&'a str, &'a Value)> {
    message["blocks"].as_array()?.iter().find_map(|block| {
        let button = elements(block)
            .into_iter()
            .find(|e| e["type"] == "button" && e["action_id"] == action_id)?;
        Some((block["block_id"].as_str()?, button))
    })
}

/// `view.state.values` for a submission with `given` (block_id, action_id, value) values.
fn view_state(view: &Value, given: &[(&str, &str, &str)]) -> anyhow::Result<Value> {
    let view_id = view["id"].as_str().unwrap_or_default();
    let mut unused: Vec<_> = given.to_vec();
    let mut values = Map::new();
    for block in view["blocks"].as_array().into_iter().flatten() {
        let block_id = block["block_id"].as_str().unwrap_or_default();
        let required = block["type"] == "input" && !is_true(&block["optional"]);
        for element in elements(block) {
            let kind = element["type"].as_str().unwrap_or_default();
            let action_id = element["action_id"].as_str().unwrap_or_default();
            let value = given
                .iter()
                .find(|(b, a, _)| *b == block_id && *a == action_id)
                .map(|(_, _, v)| *v);
            unused.retain(|(b, a, _)| !(*b == block_id && *a == action_id));
            let state = if VALUE_INPUTS.contains(&kind) {
                let value = value
                    .map(|v| json!(v))
                    .or_else(|| element.get("initial_value").cloned())
                    .unwrap_or(Value::Null);
                if required && value.as_str().is_none_or(str::is_empty) {
                    bail!(
                        "input {block_id}/{action_id} of view {view_id} is required: Slack would not let the person submit it empty"
                    );
                }
                json!({"type": kind, "value": value})
            } else if OPTION_INPUTS.contains(&kind) {
                let selected = match value {
                    Some(value) => option(element, value).cloned().ok_or_else(|| {
                        anyhow!("{kind} {block_id}/{action_id} of view {view_id} has no option {value:?}: {element}")
                    })?,
                    None => element.get("initial_option").cloned().unwrap_or(Value::Null),
                };
                if required && selected.is_null() {
                    bail!(
                        "input {block_id}/{action_id} of view {view_id} is required: Slack would not let the person submit without a choice"
                    );
                }
                json!({"type": kind, "selected_option": selected})
            } else if value.is_some() {
                bail!(
                    "{kind} {block_id}/{action_id} of view {view_id}: this fake can only fill {VALUE_INPUTS:?} and {OPTION_INPUTS:?}"
                );
            } else {
                continue;
            };
            values
                .entry(block_id.to_owned())
                .or_insert_with(|| json!({}))[action_id] = state;
        }
    }
    if let Some((block_id, action_id, _)) = unused.first() {
        bail!("view {view_id} has no input {block_id}/{action_id}");
    }
    Ok(Value::Object(values))
}

/// The option with `value` of a select or radio group (in `options` or `option_groups`).
fn option<'a>(element: &'a Value, value: &str) -> Option<&'a Value> {
    let direct = element["options"].as_array().into_iter().flatten();
    let grouped = element["option_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["options"].as_array().into_iter().flatten());
    direct.chain(grouped).find(|o| o["value"] == value)
}

/// `payload=<json>`, form-encoded as Slack sends interactions.
fn form_payload(payload: &Value) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

fn user(user_id: &str) -> Value {
    json!({"id": user_id, "username": user_id, "name": user_id, "team_id": TEAM_ID})
}

fn team() -> Value {
    json!({"id": TEAM_ID, "domain": TEAM_DOMAIN})
}

/// A JSON `true` or Slack's form-encoded `"true"`.
fn is_true(value: &Value) -> bool {
    value.as_bool() == Some(true) || value.as_str() == Some("true")
}

fn describe_calls(calls: &[Call]) -> String {
    let lines: Vec<String> = calls
        .iter()
        .map(|c| {
            let mut body = c.body.to_string();
            if body.len() > 300 {
                let end = (0..=300)
                    .rev()
                    .find(|i| body.is_char_boundary(*i))
                    .unwrap_or(0);
                body.truncate(end);
                body.push('…');
            }
            format!(
                "{} -> {} {} (authorized: {}) {body}",
                c.method,
                c.status,
                c.error.as_deref().unwrap_or("ok"),
                c.authorized
            )
        })
        .collect();
    if lines.is_empty() {
        "none".into()
    } else {
        format!("\n  {}", lines.join("\n  "))
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

/// Slack's `seconds.microseconds` timestamps (`action_ts`).
fn slack_time(since_epoch: Duration) -> String {
    format!(
        "{}.{:06}",
        since_epoch.as_secs(),
        since_epoch.subsec_micros()
    )
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER_HEX: &[u8] = b"0123456789abcdef";

/// `length` random characters of `alphabet`: ids nobody can guess, as Slack's are.
fn random_string(length: usize, alphabet: &[u8]) -> String {
    let mut bytes = vec![0u8; length];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source");
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    const TOKEN: &str = "xoxb-e2e-bot-token";
    const SECRET: &str = "e2e-signing-secret";
    const WAIT: Duration = Duration::from_secs(5);

    /// What the test app received: the signature headers, the raw body and its payload.
    struct Received {
        timestamp: String,
        signature: String,
        body: String,
        payload: Value,
    }

    /// A minimal Slack app: it checks each interaction's signature independently of
    /// `signature()` (ring's own verify over the documented basestring), refuses a bad one
    /// with 401, hands the request to the test and acknowledges with `answer`.
    async fn app(answer: &'static str) -> (String, mpsc::UnboundedReceiver<Received>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let sender = sender.clone();
                let service =
                    service_fn(move |request| interaction(request, sender.clone(), answer));
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        (format!("http://{address}/slack/interactions"), receiver)
    }

    /// The test app's handling of one interaction request.
    async fn interaction(
        request: Request<Incoming>,
        sender: mpsc::UnboundedSender<Received>,
        answer: &'static str,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let header = |name: &str| {
            let value = request.headers().get(name);
            value
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(header("content-type"), "application/x-www-form-urlencoded");
        let (timestamp, signature) = (
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
        );
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let verified = verify(&timestamp, &body, &signature);
        let payload = form_urlencoded::parse(body.as_bytes())
            .find(|(name, _)| name == "payload")
            .map(|(_, json)| serde_json::from_str(&json).unwrap())
            .unwrap_or(Value::Null);
        sender
            .send(Received {
                timestamp,
                signature,
                body,
                payload,
            })
            .unwrap();
        let (status, text) = match verified {
            true => (StatusCode::OK, answer),
            false => (StatusCode::UNAUTHORIZED, "bad signature"),
        };
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = status;
        Ok(response)
    }

    /// Slack's check, written apart from `signature()`: HMAC-SHA256 of `v0:{ts}:{body}`.
    fn verify(timestamp: &str, body: &str, signature: &str) -> bool {
        let Some(hex) = signature.strip_prefix("v0=") else {
            return false;
        };
        let tag: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
        let basestring = format!("v0:{timestamp}:{body}");
        tag.is_some_and(|tag| hmac::verify(&key, basestring.as_bytes(), &tag).is_ok())
    }

    /// Calls a Web API method as the controller would: JSON body, bearer token.
    async fn api(
        slack: &FakeSlack,
        token: Option<&str>,
        method: &str,
        body: Value,
    ) -> (u16, HeaderMap, Value) {
        let mut request = Request::post(format!("{}{method}", slack.api_url()))
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = slack.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    async fn post_json(slack: &FakeSlack, url: &str, body: Value) -> (u16, String) {
        let request = Request::post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = slack.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn approval_blocks() -> Value {
        json!([
            {"type": "section", "text": {"type": "mrkdwn", "text": "*deploy-prod* waits for approval"}},
            {"type": "actions", "block_id": "decision", "elements": [
                {"type": "button", "action_id": "approve", "style": "primary",
                 "text": {"type": "plain_text", "text": "Approve"}, "value": "team-a/deploy-prod-approve"},
                {"type": "button", "action_id": "reject", "style": "danger",
                 "text": {"type": "plain_text", "text": "Reject"}, "value": "team-a/deploy-prod-approve"},
            ]},
        ])
    }

    #[test]
    fn signature_reproduces_the_example_in_slacks_documentation() {
        // "Verifying requests from Slack": the documented secret, timestamp, slash-command
        // body and resulting X-Slack-Signature.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[tokio::test]
    async fn a_posted_message_is_updated_and_its_button_clicked_with_a_signed_block_actions_payload()
     {
        let slack = FakeSlack::start(TOKEN, SECRET).await;
        let (status, _, posted) = api(
            &slack,
            Some(TOKEN),
            "chat.postMessage",
            json!({"channel": "C0RELEASES", "text": "deploy-prod waits", "blocks": approval_blocks()}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(posted["ok"], true, "{posted}");
        assert_eq!(posted["channel"], "C0RELEASES");
        let ts = posted["ts"].as_str().unwrap().to_owned();
        assert_eq!(posted["message"]["ts"], ts.as_str());
        assert_eq!(posted["message"]["text"], "deploy-prod waits");
        // The section had no block_id: Slack generates one.
        assert!(
            posted["message"]["blocks"][0]["block_id"].is_string(),
            "{posted}"
        );

        let (_, _, updated) = api(
            &slack,
            Some(TOKEN),
            "chat.update",
            json!({"channel": "C0RELEASES", "ts": ts, "text": "deploy-prod waits (1 of 2)"}),
        )
        .await;
        assert_eq!(updated["ok"], true, "{updated}");
        assert_eq!(updated["ts"], ts.as_str());
        assert_eq!(updated["text"], "deploy-prod waits (1 of 2)");
        let message = slack.message("C0RELEASES", &ts).unwrap();
        assert_eq!(message["text"], "deploy-prod waits (1 of 2)");
        // Blocks left out of chat.update are retained.
        assert_eq!(message["blocks"][1]["block_id"], "decision");
        let second = api(
            &slack,
            Some(TOKEN),
            "chat.postMessage",
            json!({"channel": "C0RELEASES", "text": "x"}),
        )
        .await;
        assert!(
            second.2["ts"].as_str().unwrap() > ts.as_str(),
            "timestamps increase"
        );

        let (url, mut received) = app("").await;
        let answer = slack
            .click(
                &url,
                "U0ALICE",
                "C0RELEASES",
                &ts,
                "approve",
                Signing::Valid,
            )
            .await
            .unwrap();
        assert_eq!(
            answer,
            (200, String::new()),
            "the app verified the signature"
        );
        let received = received.recv().await.unwrap();
        let payload = &received.payload;
        assert_eq!(payload["type"], "block_actions");
        assert_eq!(payload["user"]["id"], "U0ALICE");
        assert_eq!(payload["actions"][0]["action_id"], "approve");
        assert_eq!(payload["actions"][0]["block_id"], "decision");
        assert_eq!(payload["actions"][0]["value"], "team-a/deploy-prod-approve");
        assert_eq!(payload["actions"][0]["text"]["text"], "Approve");
        assert_eq!(payload["container"]["message_ts"], ts.as_str());
        assert_eq!(payload["container"]["channel_id"], "C0RELEASES");
        assert_eq!(payload["channel"]["id"], "C0RELEASES");
        assert_eq!(payload["message"]["text"], "deploy-prod waits (1 of 2)");
        assert_eq!(payload["api_app_id"], API_APP_ID);
        assert_eq!(payload["team"]["id"], TEAM_ID);
        let response_url = payload["response_url"].as_str().unwrap();
        assert!(
            response_url.starts_with(&format!("http://{}/response/", slack.address)),
            "{response_url}"
        );
        assert!(payload["trigger_id"].as_str().unwrap().split('.').count() == 3);

        // The app answers through the response URL: recorded, and replace_original
        // re-renders the clicked message.
        let (status, body) = post_json(
            &slack,
            response_url,
            json!({"replace_original": true, "text": "Approved by <@U0ALICE>"}),
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        let reply = slack
            .wait_for_reply(|r| r["text"] == "Approved by <@U0ALICE>", WAIT)
            .await
            .unwrap();
        assert_eq!(reply["replace_original"], true);
        let message = slack.message("C0RELEASES", &ts).unwrap();
        assert_eq!(message["text"], "Approved by <@U0ALICE>");
        assert!(
            message.get("blocks").is_none(),
            "the replacement has no buttons: {message}"
        );

        // What was sent can be replayed byte for byte.
        let sent = slack.last_interaction().unwrap();
        assert_eq!(
            (sent.timestamp.as_str(), sent.signature.as_str()),
            (received.timestamp.as_str(), received.signature.as_str())
        );
        assert_eq!(sent.body, received.body);
        assert!(sent.body.starts_with("payload=%7B"), "{}", sent.body);
        let polled = slack
            .wait_for_call("chat.update", |b| b["ts"] == ts.as_str(), WAIT)
            .await
            .unwrap();
        assert_eq!(polled["text"], "deploy-prod waits (1 of 2)");
    }

    #[tokio::test]
    async fn signing_variants_are_refused_by_an_app_that_checks_signatures() {
        let slack = FakeSlack::start(TOKEN, SECRET).await;
        let (_, _, posted) = api(
            &slack,
            Some(TOKEN),
            "chat.postMessage",
            json!({"channel": "C1", "blocks": approval_blocks()}),
        )
        .await;
        let ts = posted["ts"].as_str().unwrap();
        let (url, mut received) = app("").await;
        for signing in [Signing::WrongSecret, Signing::Missing] {
            let (status, _) = slack
                .click(&url, "U0MALLORY", "C1", ts, "reject", signing)
                .await
                .unwrap();
            assert_eq!(status, 401, "{signing:?}");
            received.recv().await.unwrap();
        }
        let (status, _) = slack
            .click(
                &url,
                "U0ALICE",
                "C1",
                ts,
                "approve",
                Signing::Stale(Duration::from_secs(600)),
            )
            .await
            .unwrap();
        // The signature is valid: only the timestamp gives the replay away.
        assert_eq!(status, 200);
        let stale = received.recv().await.unwrap();
        let age = unix_now().as_secs() - stale.timestamp.parse::<u64>().unwrap();
        assert!((600..=605).contains(&age), "{age}");

        let missing = slack
            .click(&url, "U0ALICE", "C1", ts, "no-such-button", Signing::Valid)
            .await;
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("no button no-such-button")
        );
        let missing = slack
            .click(&url, "U0ALICE", "C1", "1.000001", "approve", Signing::Valid)
            .await;
        assert!(missing.unwrap_err().to_string().contains("no message"));
    }

    #[tokio::test]
    async fn a_wrong_or_missing_token_is_refused_and_recorded() {
        let slack = FakeSlack::start(TOKEN, SECRET).await;
        let (status, _, answer) = api(
            &slack,
            Some("xoxb-stolen"),
            "chat.postMessage",
            json!({"channel": "C1", "text": "hi"}),
        )
        .await;
        assert_eq!(status, 200, "Slack answers errors with HTTP 200");
        assert_eq!(answer, json!({"ok": false, "error": "invalid_auth"}));
        let (_, _, answer) = api(
            &slack,
            None,
            "chat.postMessage",
            json!({"channel": "C1", "text": "hi"}),
        )
        .await;
        assert_eq!(answer, json!({"ok": false, "error": "not_authed"}));
        // A token in a JSON body does not count: JSON calls must use the header.
        let (_, _, answer) = api(
            &slack,
            None,
            "chat.postMessage",
            json!({"token": TOKEN, "channel": "C1", "text": "hi"}),
        )
        .await;
        assert_eq!(answer["error"], "not_authed");

        let calls = slack.calls();
        assert_eq!(calls.len(), 3);
        assert!(
            calls
                .iter()
                .all(|c| !c.authorized && c.method == "chat.postMessage")
        );
        assert_eq!(calls[0].error.as_deref(), Some("invalid_auth"));
        assert!(
            slack.shared.lock().messages.is_empty(),
            "nothing was posted"
        );
        let waited = slack
            .wait_for_call("chat.postMessage", |_| true, Duration::from_millis(100))
            .await;
        let error = waited.unwrap_err().to_string();
        assert!(
            error.contains("invalid_auth") && error.contains("not_authed"),
            "{error}"
        );

        // The form-encoded way: token as a POST parameter, blocks as a JSON string.
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", TOKEN)
            .append_pair("channel", "C1")
            .append_pair("blocks", &approval_blocks().to_string())
            .finish();
        let request = Request::post(format!("{}chat.postMessage", slack.api_url()))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .unwrap();
        let response = slack.client.request(request).await.unwrap();
        let answer: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(answer["ok"], true, "{answer}");
        assert_eq!(
            answer["message"]["blocks"][1]["elements"][0]["action_id"],
            "approve"
        );
    }

    #[tokio::test]
    async fn web_api_errors_use_slacks_names() {
        let slack = FakeSlack::start(TOKEN, SECRET).await;
        let call = |method: &'static str, body: Value| {
            let slack = slack.clone();
            async move { api(&slack, Some(TOKEN), method, body).await.2["error"].clone() }
        };
        assert_eq!(
            call("chat.postMessage", json!({"channel": "C1"})).await,
            "no_text"
        );
        assert_eq!(
            call("chat.postMessage", json!({"text": "hi"})).await,
            "channel_not_found"
        );
        assert_eq!(
            call(
                "chat.update",
                json!({"channel": "C1", "ts": "1.1", "text": "x"})
            )
            .await,
            "channel_not_found"
        );
        assert_eq!(
            call("chat.postMessage", json!({"channel": "C1", "text": "hi"})).await,
            Value::Null
        );
        assert_eq!(
            call(
                "chat.update",
                json!({"channel": "C1", "ts": "1.1", "text": "x"})
            )
            .await,
            "message_not_found"
        );
        assert_eq!(call("chat.delete", json!({})).await, "unknown_method");
        let modal = json!({"type": "modal", "title": {"type": "plain_text", "text": "Approve"}, "blocks": []});
        assert_eq!(
            call(
                "views.open",
                json!({"trigger_id": "1.2.abc", "view": modal})
            )
            .await,
            "invalid_trigger_id"
        );
        assert_eq!(
            call("views.open", json!({"view": modal})).await,
            "invalid_arguments"
        );

        slack.set_health(Health::RateLimited);
        let (status, headers, answer) = api(&slack, Some(TOKEN), "auth.test", json!({})).await;
        assert_eq!(
            (status, &headers[header::RETRY_AFTER]),
            (429, &HeaderValue::from_static("1"))
        );
        assert_eq!(answer["error"], "ratelimited");
        slack.set_health(Health::Down);
        assert_eq!(
            api(&slack, Some(TOKEN), "auth.test", json!({})).await.0,
            503
        );
        slack.set_health(Health::Up);
        let (status, _, answer) = api(&slack, Some(TOKEN), "auth.test", json!({})).await;
        assert_eq!((status, &answer["user_id"]), (200, &json!(BOT_USER_ID)));
        let statuses: Vec<u16> = slack
            .calls()
            .iter()
            .rev()
            .take(3)
            .map(|c| c.status)
            .collect();
        assert_eq!(statuses, [200, 503, 429]);
    }

    #[tokio::test]
    async fn a_modal_opened_from_a_click_is_submitted_with_slacks_state_values() {
        let slack = FakeSlack::start(TOKEN, SECRET).await;
        let (_, _, posted) = api(
            &slack,
            Some(TOKEN),
            "chat.postMessage",
            json!({"channel": "C1", "text": "t", "blocks": approval_blocks()}),
        )
        .await;
        let ts = posted["ts"].as_str().unwrap();
        let (url, mut received) = app("").await;
        slack
            .click(&url, "U0BOB", "C1", ts, "reject", Signing::Valid)
            .await
            .unwrap();
        let trigger_id = received.recv().await.unwrap().payload["trigger_id"].clone();

        let modal = json!({
            "type": "modal",
            "callback_id": "reject-reason",
            "private_metadata": "team-a/deploy-prod-approve",
            "title": {"type": "plain_text", "text": "Reject"},
            "submit": {"type": "plain_text", "text": "Reject"},
            "blocks": [
                {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Why?"},
                 "element": {"type": "plain_text_input", "action_id": "text"}},
                {"type": "input", "block_id": "severity", "label": {"type": "plain_text", "text": "Severity"},
                 "element": {"type": "static_select", "action_id": "choice", "options": [
                    {"text": {"type": "plain_text", "text": "Minor"}, "value": "minor"},
                    {"text": {"type": "plain_text", "text": "Blocker"}, "value": "blocker"}]}},
                {"type": "input", "block_id": "note", "optional": true, "label": {"type": "plain_text", "text": "Note"},
                 "element": {"type": "plain_text_input", "action_id": "text"}},
            ],
        });
        let (_, _, opened) = api(
            &slack,
            Some(TOKEN),
            "views.open",
            json!({"trigger_id": trigger_id, "view": modal}),
        )
        .await;
        assert_eq!(opened["ok"], true, "{opened}");
        let view_id = opened["view"]["id"].as_str().unwrap().to_owned();
        assert!(view_id.starts_with('V'));
        assert_eq!(slack.views(), vec![opened["view"].clone()]);
        let (_, _, again) = api(
            &slack,
            Some(TOKEN),
            "views.open",
            json!({"trigger_id": trigger_id, "view": modal}),
        )
        .await;
        assert_eq!(again["error"], "exchanged_trigger_id");

        let empty = slack
            .submit_view(
                &url,
                "U0BOB",
                &view_id,
                &[("severity", "choice", "minor")],
                Signing::Valid,
            )
            .await;
        assert!(empty.unwrap_err().to_string().contains("required"));
        let other = slack
            .submit_view(&url, "U0MALLORY", &view_id, &[], Signing::Valid)
            .await;
        assert!(other.unwrap_err().to_string().contains("U0BOB's screen"));
        let values = [
            ("reason", "text", "tests are red"),
            ("severity", "choice", "blocker"),
        ];
        let answer = slack
            .submit_view(&url, "U0BOB", &view_id, &values, Signing::Valid)
            .await
            .unwrap();
        assert_eq!(answer.0, 200);
        let payload = received.recv().await.unwrap().payload;
        assert_eq!(payload["type"], "view_submission");
        assert_eq!(payload["user"]["id"], "U0BOB");
        assert_eq!(payload["view"]["id"], view_id.as_str());
        assert_eq!(payload["view"]["callback_id"], "reject-reason");
        assert_eq!(
            payload["view"]["private_metadata"],
            "team-a/deploy-prod-approve"
        );
        assert_eq!(payload["view"]["hash"], opened["view"]["hash"]);
        let state = &payload["view"]["state"]["values"];
        assert_eq!(
            state["reason"]["text"],
            json!({"type": "plain_text_input", "value": "tests are red"})
        );
        assert_eq!(
            state["severity"]["choice"],
            json!({"type": "static_select", "selected_option":
                {"text": {"type": "plain_text", "text": "Blocker"}, "value": "blocker"}})
        );
        assert_eq!(
            state["note"]["text"],
            json!({"type": "plain_text_input", "value": null})
        );
        // The empty acknowledgement closed the modal.
        let closed = slack
            .submit_view(&url, "U0BOB", &view_id, &values, Signing::Valid)
            .await;
        assert!(closed.unwrap_err().to_string().contains("closed"));
    }
}
