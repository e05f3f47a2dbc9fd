//! A receiver on loopback for the controller's notification sinks: the generic webhook
//! (checked against its documented HMAC signature) and CloudEvents (checked against the
//! CloudEvents 1.0 spec: core attributes, the JSON event format and the HTTP binding's
//! structured mode).
//!
//! It owns a log of every delivery, as received, and can refuse the next few with a 503 so
//! a test sees the controller retry. It judges nothing on its own: a delivery with a bad
//! signature is recorded and answered like any other (a test decides what it means), and
//! `validate_cloudevent` is a function a test calls on a delivery.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use ring::hmac;
use serde_json::{Map, Value};
use tokio::sync::Notify;

/// The generic webhook's timestamp header (unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-approval-timestamp";
/// The generic webhook's signature header (`v1=<hex>`).
pub const SIGNATURE_HEADER: &str = "x-approval-signature";
/// How far a signed timestamp may be from now, either way.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The media type of a structured-mode CloudEvent in JSON.
const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// The attributes every CloudEvent has.
const REQUIRED_ATTRIBUTES: [&str; 4] = ["id", "source", "specversion", "type"];
/// "Attribute names SHOULD NOT exceed 20 characters": enforced, since our own events are
/// what is checked.
const MAX_ATTRIBUTE_NAME: usize = 20;

/// One request the receiver got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The HTTP method.
    pub method: String,
    /// The path and query, e.g. `/hooks/approvals`.
    pub path: String,
    /// Every header in order received, names lowercased; a repeated header appears once per
    /// value.
    pub headers: Vec<(String, String)>,
    /// The body (invalid UTF-8 replaced).
    pub body: String,
    /// Whether the generic webhook signature verifies with the receiver's key
    /// (`verify_signature`).
    pub signature_valid: bool,
    /// What the receiver answered: 200, or 503 while `fail_next` lasted.
    pub status: u16,
}

/// Our generic webhook's signature (the documented contract): headers `X-Approval-Timestamp:
/// <unix seconds>` and `X-Approval-Signature: v1=<lowercase hex HMAC-SHA256(key,
/// "v1:{timestamp}:{body}")>`. Valid when each header appears exactly once, the HMAC matches
/// (compared in constant time) and the timestamp is within five minutes of now.
pub fn verify_signature(key: &str, headers: &[(String, String)], body: &str) -> bool {
    let (Some(timestamp), Some(signature)) = (
        only_header(headers, TIMESTAMP_HEADER),
        only_header(headers, SIGNATURE_HEADER),
    ) else {
        return false;
    };
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (Ok(signed_at), Ok(now)) = (
        timestamp.parse::<u64>(),
        SystemTime::now().duration_since(UNIX_EPOCH),
    ) else {
        return false;
    };
    if now.as_secs().abs_diff(signed_at) > SIGNATURE_TOLERANCE.as_secs() {
        return false;
    }
    let Some(tag) = signature.strip_prefix("v1=").and_then(lowercase_hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    hmac::verify(&key, format!("v1:{timestamp}:{body}").as_bytes(), &tag).is_ok()
}

/// Validates a structured-mode CloudEvent per CloudEvents 1.0 (the core spec, the JSON event
/// format and the HTTP protocol binding): Content-Type `application/cloudevents+json`
/// (parameters such as `charset` allowed); a JSON object with `specversion` "1.0", a
/// non-empty string `id`, a non-empty URI-reference `source` and a non-empty string `type`;
/// if present, `datacontenttype` a media type, `dataschema` an absolute URI, `subject` a
/// non-empty string, `time` an RFC 3339 timestamp; attribute names of `a`-`z` and `0`-`9`, at
/// most 20 characters, values strings, booleans or 32-bit integers (`null` is unset); `data`
/// any JSON, `data_base64` a base64 string, not both. Returns the event, or which rule failed.
pub fn validate_cloudevent(headers: &[(String, String)], body: &str) -> Result<Value, String> {
    let content_types: Vec<&str> = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
        .collect();
    let [content_type] = content_types[..] else {
        return Err(format!(
            "a structured-mode event needs one Content-Type header, got {content_types:?}"
        ));
    };
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(CLOUDEVENTS_JSON) {
        return Err(format!(
            "Content-Type is `{content_type}`, not {CLOUDEVENTS_JSON} (structured mode)"
        ));
    }
    let event: Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(attributes) = event.as_object() else {
        return Err("the event is not a JSON object".into());
    };
    for (name, value) in attributes {
        if name == "data" || name == "data_base64" {
            continue;
        }
        check_attribute_name(name)?;
        // The required attributes are strings: checked as such below, with a plainer message.
        if !REQUIRED_ATTRIBUTES.contains(&name.as_str()) {
            check_attribute_value(name, value)?;
        }
    }
    for name in REQUIRED_ATTRIBUTES {
        let value = attribute(attributes, name)
            .ok_or_else(|| format!("missing required attribute `{name}`"))?;
        let Some(value) = value.as_str() else {
            return Err(format!(
                "required attribute `{name}` must be a string, got {value}"
            ));
        };
        if value.is_empty() {
            return Err(format!("required attribute `{name}` must not be empty"));
        }
    }
    let specversion = attributes["specversion"].as_str().unwrap_or_default();
    if specversion != "1.0" {
        return Err(format!("specversion is `{specversion}`, expected `1.0`"));
    }
    let source = attributes["source"].as_str().unwrap_or_default();
    if !is_uri_reference(source) {
        return Err(format!(
            "source `{source}` is not a URI-reference (RFC 3986)"
        ));
    }
    if let Some(value) = attribute(attributes, "datacontenttype") {
        let value = optional_string(value, "datacontenttype")?;
        if !is_media_type(value) {
            return Err(format!(
                "datacontenttype `{value}` is not a media type (RFC 2046)"
            ));
        }
    }
    if let Some(value) = attribute(attributes, "dataschema") {
        let value = optional_string(value, "dataschema")?;
        if !is_absolute_uri(value) {
            return Err(format!(
                "dataschema `{value}` is not an absolute URI (RFC 3986)"
            ));
        }
    }
    if let Some(value) = attribute(attributes, "subject")
        && optional_string(value, "subject")?.is_empty()
    {
        return Err("subject must not be empty when present".into());
    }
    if let Some(value) = attribute(attributes, "time") {
        let value = optional_string(value, "time")?;
        if chrono::DateTime::parse_from_rfc3339(value).is_err() {
            return Err(format!("time `{value}` is not an RFC 3339 timestamp"));
        }
    }
    match (attributes.get("data"), attributes.get("data_base64")) {
        (Some(_), Some(_)) => return Err("`data` and `data_base64` are mutually exclusive".into()),
        (None, Some(Value::String(encoded))) if !is_base64(encoded) => {
            return Err("data_base64 is not base64 (RFC 4648)".into());
        }
        (None, Some(Value::String(_))) => {}
        (None, Some(other)) => return Err(format!("data_base64 must be a string, got {other}")),
        _ => {}
    }
    Ok(event)
}

/// A webhook receiver on `127.0.0.1:<free port>`, serving until the runtime ends; clones
/// share the log.
#[derive(Clone)]
pub struct Receiver {
    shared: Arc<Shared>,
    address: SocketAddr,
}

struct Shared {
    key: String,
    log: Mutex<Log>,
    /// Woken on every delivery, for `wait_for`.
    changed: Notify,
}

struct Log {
    deliveries: Vec<Delivery>,
    fail_next: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Log> {
        // A test that panicked while holding the lock already failed; the log is still
        // worth reading.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Receiver {
    /// Binds 127.0.0.1:0; `key` is the HMAC key of the generic webhook signature.
    pub async fn start(key: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("receiver: binding a loopback port");
        let address = listener.local_addr().expect("receiver: local address");
        let shared = Arc::new(Shared {
            key: key.to_owned(),
            log: Mutex::new(Log {
                deliveries: Vec::new(),
                fail_next: 0,
            }),
            changed: Notify::new(),
        });
        let server = shared.clone();
        crate::serve::spawn_http1(listener, "receiver", move |request| {
            receive(server.clone(), request)
        });
        Receiver { shared, address }
    }

    /// `http://127.0.0.1:PORT/`; any path under it is accepted and recorded.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Every request received so far, in order (those answered 503 too).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Waits up to `timeout` for a delivery satisfying `matches` (503'd ones included:
    /// check `status` to skip them); on timeout the error lists the deliveries seen.
    pub async fn wait_for(
        &self,
        matches: impl Fn(&Delivery) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a delivery between the look and the wait is not
            // missed.
            let changed = self.shared.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(found) = self.shared.lock().deliveries.iter().find(|d| matches(d)) {
                return Ok(found.clone());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let seen: Vec<String> = self
                    .deliveries()
                    .iter()
                    .map(|d| format!("{} {} -> {}: {}", d.method, d.path, d.status, d.body))
                    .collect();
                return Err(anyhow!(
                    "no delivery matching within {timeout:?}; deliveries seen: {seen:#?}"
                ));
            }
        }
    }

    /// Answers the next `n` requests with HTTP 503 (to test retries), recording them too.
    pub fn fail_next(&self, n: usize) {
        self.shared.lock().fail_next = n;
    }
}

/// Records one request and answers it.
async fn receive(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // HeaderName is lowercase whatever the sender wrote.
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = match request.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(error) => format!("<the body could not be read: {error}>"),
    };
    let signature_valid = verify_signature(&shared.key, &headers, &body);
    let mut log = shared.lock();
    let status = if log.fail_next > 0 {
        log.fail_next -= 1;
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    log.deliveries.push(Delivery {
        method,
        path,
        headers,
        body,
        signature_valid,
        status: status.as_u16(),
    });
    drop(log);
    shared.changed.notify_waiters();
    let mut response = Response::new(Full::new(Bytes::from(
        status.canonical_reason().unwrap_or_default(),
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// The value of header `name` if it appears exactly once.
fn only_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str());
    let value = values.next()?;
    values.next().is_none().then_some(value)
}

/// Bytes from lowercase hex; None for uppercase, odd lengths or other characters.
fn lowercase_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// An attribute's value, `None` when absent or `null` (the JSON format: "it MUST be treated
/// as the equivalent of unset or omitted").
fn attribute<'a>(attributes: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    attributes.get(name).filter(|v| !v.is_null())
}

fn optional_string<'a>(value: &'a Value, name: &str) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("`{name}` must be a string, got {value}"))
}

/// The naming convention for attributes.
fn check_attribute_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "attribute name `{name}` must consist of lower-case letters a-z and digits 0-9"
        ));
    }
    if name.len() > MAX_ATTRIBUTE_NAME {
        return Err(format!(
            "attribute name `{name}` is longer than {MAX_ATTRIBUTE_NAME} characters"
        ));
    }
    Ok(())
}

/// The type system, as the JSON format maps it, for one attribute's value.
fn check_attribute_value(name: &str, value: &Value) -> Result<(), String> {
    match value {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::Number(n) if n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()) => Ok(()),
        Value::String(s) if s.chars().any(|c| c.is_control()) => Err(format!(
            "attribute `{name}` contains a control character, which a String must not"
        )),
        Value::String(_) => Ok(()),
        other => Err(format!(
            "attribute `{name}` is {other}: attribute values are strings, booleans or 32-bit integers"
        )),
    }
}

/// RFC 3986's URI-reference: only its characters, well-formed percent-escapes, at most one
/// `#`, and a scheme if a colon comes before the first `/`, `?` or `#`.
fn is_uri_reference(text: &str) -> bool {
    let allowed = |c: u8| c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&c);
    let bytes = text.as_bytes();
    if !bytes.iter().all(|c| allowed(*c)) || text.matches('#').count() > 1 {
        return false;
    }
    let escapes_ok = bytes.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let before_path = text.split(['/', '?', '#']).next().unwrap_or_default();
    escapes_ok
        && before_path
            .split_once(':')
            .is_none_or(|(scheme, _)| is_scheme(scheme))
}

/// RFC 3986's absolute-URI: a scheme, and no fragment.
fn is_absolute_uri(text: &str) -> bool {
    is_uri_reference(text)
        && !text.contains('#')
        && text
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.contains(['/', '?']) && is_scheme(scheme))
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|c| c.is_ascii_alphabetic())
        && bytes.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// RFC 2045/2046's `type "/" subtype *(";" parameter)`, tokens of printable ASCII without
/// tspecials.
fn is_media_type(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|c| c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&c))
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let type_ok = essence
        .split_once('/')
        .is_some_and(|(kind, subtype)| token(kind) && token(subtype));
    type_ok
        && parts.all(|p| {
            p.trim()
                .split_once('=')
                .is_some_and(|(name, value)| token(name) && !value.is_empty())
        })
}

/// RFC 4648 base64 with padding.
fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

#[cfg(test)]
mod tests {
    use hyper_util::client::legacy::Client;
    use serde_json::json;

    use super::*;

    const KEY: &str = "e2e-webhook-key";

    fn sign(key: &str, timestamp: u64, body: &str) -> Vec<(String, String)> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
        let tag = hmac::sign(&key, format!("v1:{timestamp}:{body}").as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        vec![
            ("content-type".into(), "application/json".into()),
            (TIMESTAMP_HEADER.into(), timestamp.to_string()),
            (SIGNATURE_HEADER.into(), format!("v1={hex}")),
        ]
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn structured() -> Vec<(String, String)> {
        vec![(
            "content-type".into(),
            "application/cloudevents+json; charset=UTF-8".into(),
        )]
    }

    /// A CloudEvent as the controller might send one, with every optional attribute.
    fn event() -> Value {
        json!({
            "specversion": "1.0",
            "id": "team-a/deploy-prod-approve/approved/1",
            "source": "/apis/tekton.dev/v1beta1/namespaces/team-a/customruns/deploy-prod-approve",
            "type": "dev.approval.gate.approved.v1",
            "subject": "deploy-prod-approve",
            "time": "2025-12-01T10:15:30.123Z",
            "datacontenttype": "application/json",
            "dataschema": "https://approval.dev/schemas/gate-event/v1.json",
            "approvalnamespace": "team-a",
            "approvals": 2,
            "data": {"gate": "deploy-prod-approve", "approvers": ["alice", "bob"]},
        })
    }

    fn without(name: &str) -> String {
        let mut event = event();
        event.as_object_mut().unwrap().remove(name);
        event.to_string()
    }

    fn with(name: &str, value: Value) -> String {
        let mut event = event();
        event[name] = value;
        event.to_string()
    }

    #[test]
    fn a_correctly_signed_body_verifies() {
        let body = r#"{"gate":"deploy-prod-approve","outcome":"approved"}"#;
        assert!(verify_signature(KEY, &sign(KEY, now(), body), body));
        // Header names are case-insensitive.
        let shouted: Vec<_> = sign(KEY, now(), body)
            .into_iter()
            .map(|(n, v)| (n.to_uppercase(), v))
            .collect();
        assert!(verify_signature(KEY, &shouted, body));
    }

    #[test]
    fn a_tampered_body_a_wrong_key_or_a_stale_timestamp_does_not_verify() {
        let body = r#"{"gate":"deploy-prod-approve","outcome":"approved"}"#;
        let tampered = body.replace("approved", "rejected");
        assert!(!verify_signature(KEY, &sign(KEY, now(), body), &tampered));
        assert!(!verify_signature(
            KEY,
            &sign("another-key", now(), body),
            body
        ));
        assert!(!verify_signature(KEY, &sign(KEY, now() - 301, body), body));
        assert!(!verify_signature(KEY, &sign(KEY, now() + 301, body), body));
        assert!(verify_signature(KEY, &sign(KEY, now() - 290, body), body));

        let mut uppercase = sign(KEY, now(), body);
        uppercase[2].1 = uppercase[2].1.to_uppercase().replace("V1=", "v1=");
        assert!(
            !verify_signature(KEY, &uppercase, body),
            "the hex is lowercase"
        );
        let mut unversioned = sign(KEY, now(), body);
        unversioned[2].1 = unversioned[2].1.replace("v1=", "");
        assert!(!verify_signature(KEY, &unversioned, body));
        let mut doubled = sign(KEY, now(), body);
        doubled.push((SIGNATURE_HEADER.into(), "v1=00".into()));
        assert!(
            !verify_signature(KEY, &doubled, body),
            "one signature header, not two"
        );
        assert!(!verify_signature(KEY, &sign(KEY, now(), body)[..2], body));
    }

    #[test]
    fn a_valid_cloudevent_passes() {
        let parsed = validate_cloudevent(&structured(), &event().to_string()).unwrap();
        assert_eq!(parsed, event());
        // The minimum: the four required attributes, no data, a null optional attribute,
        // and the spec's own kinds of source.
        for source in [
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "1-555-123-4567",
            "mailto:cncf-wg-serverless@lists.cncf.io",
        ] {
            let minimal = json!({"specversion": "1.0", "id": "1", "source": source, "type": "t", "subject": null});
            let headers = vec![("Content-Type".into(), "application/cloudevents+json".into())];
            validate_cloudevent(&headers, &minimal.to_string()).unwrap();
        }
        let binary = with("data_base64", json!("aGVsbG8="));
        let binary: Value = serde_json::from_str(&binary).unwrap();
        let mut binary = binary.as_object().unwrap().clone();
        binary.remove("data");
        validate_cloudevent(&structured(), &Value::Object(binary).to_string()).unwrap();
    }

    #[test]
    fn each_missing_required_attribute_is_named() {
        for name in REQUIRED_ATTRIBUTES {
            let error = validate_cloudevent(&structured(), &without(name)).unwrap_err();
            assert_eq!(error, format!("missing required attribute `{name}`"));
            let error = validate_cloudevent(&structured(), &with(name, Value::Null)).unwrap_err();
            assert_eq!(
                error,
                format!("missing required attribute `{name}`"),
                "null is unset"
            );
            let error = validate_cloudevent(&structured(), &with(name, json!(""))).unwrap_err();
            assert!(
                error.contains(&format!("`{name}` must not be empty")),
                "{error}"
            );
        }
    }

    #[test]
    fn each_broken_rule_is_reported() {
        let cases = [
            (
                with("time", json!("2025-12-01 10:15")),
                "time `2025-12-01 10:15` is not an RFC 3339 timestamp",
            ),
            (
                with("time", json!("2025-12-01T10:15:30")),
                "is not an RFC 3339 timestamp",
            ),
            (
                with("specversion", json!("0.3")),
                "specversion is `0.3`, expected `1.0`",
            ),
            (
                with("specversion", json!(1.0)),
                "required attribute `specversion` must be a string",
            ),
            (
                with("approvalNamespace", json!("team-a")),
                "attribute name `approvalNamespace` must consist of lower-case letters",
            ),
            (
                with("approval_namespace", json!("team-a")),
                "must consist of lower-case letters",
            ),
            (
                with("approvalnamespacefortheteam", json!("x")),
                "is longer than 20 characters",
            ),
            (
                with("approvers", json!(["alice"])),
                "attribute values are strings, booleans or 32-bit integers",
            ),
            (
                with("approvals", json!(1.5)),
                "attribute values are strings, booleans or 32-bit integers",
            ),
            (
                with("approvals", json!(4_294_967_296_i64)),
                "32-bit integers",
            ),
            (with("source", json!("not a uri")), "is not a URI-reference"),
            (with("source", json!("%zz")), "is not a URI-reference"),
            (
                with("dataschema", json!("/schemas/v1.json")),
                "is not an absolute URI",
            ),
            (with("subject", json!("")), "subject must not be empty"),
            (
                with("datacontenttype", json!("json")),
                "is not a media type",
            ),
            (with("data_base64", json!("aGVsbG8=")), "mutually exclusive"),
            ("[]".to_owned(), "the event is not a JSON object"),
            ("{".to_owned(), "the body is not JSON"),
        ];
        for (body, expected) in cases {
            let error = validate_cloudevent(&structured(), &body).unwrap_err();
            assert!(error.contains(expected), "{body}: {error}");
        }
        for content_type in [
            "application/json",
            "text/plain",
            "application/cloudevents-batch+json",
        ] {
            let headers = vec![("content-type".to_owned(), content_type.to_owned())];
            let error = validate_cloudevent(&headers, &event().to_string()).unwrap_err();
            assert!(
                error.contains("not application/cloudevents+json"),
                "{error}"
            );
        }
        let error = validate_cloudevent(&[], &event().to_string()).unwrap_err();
        assert!(error.contains("one Content-Type header"), "{error}");
    }

    #[tokio::test]
    async fn fail_next_answers_503_then_200_and_records_both() {
        let receiver = Receiver::start(KEY).await;
        let client: Client<_, Full<Bytes>> =
            Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let body = r#"{"outcome":"approved"}"#;
        let post = || {
            let mut request = Request::post(format!("{}hooks/approvals?attempt=1", receiver.url()));
            for (name, value) in sign(KEY, now(), body) {
                request = request.header(name, value);
            }
            client.request(request.body(Full::new(Bytes::from(body))).unwrap())
        };
        receiver.fail_next(1);
        assert_eq!(
            post().await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(post().await.unwrap().status(), StatusCode::OK);

        let accepted = receiver
            .wait_for(|d| d.status == 200, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(accepted.method, "POST");
        assert_eq!(accepted.path, "/hooks/approvals?attempt=1");
        assert_eq!(accepted.body, body);
        assert!(accepted.signature_valid);
        assert!(
            accepted
                .headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        let statuses: Vec<u16> = receiver.deliveries().iter().map(|d| d.status).collect();
        assert_eq!(statuses, [503, 200]);
        let timeout = receiver
            .wait_for(|d| d.path == "/never", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(
            timeout.to_string().contains("/hooks/approvals"),
            "{timeout}"
        );
    }
}
