//! Sending notifications over HTTP(S): one client for every sink, a timeout per request,
//! and bounded retries with backoff. A failure is described by a category and, for Slack,
//! its error code: never the request, whose headers hold tokens and signatures.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body read (Slack's answers are a few KiB).
const MAX_RESPONSE: usize = 1 << 20;

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{category}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct SendError {
    /// A metrics label: `unreachable`, `timeout`, `status`, `slack`, `rejected`.
    pub category: &'static str,
    /// What the receiver said (an HTTP status, Slack's error code).
    pub detail: Option<String>,
    /// Whether trying again can help.
    pub retryable: bool,
    /// How long the receiver asked us to wait.
    pub retry_after: Option<Duration>,
}

impl SendError {
    fn transient(category: &'static str, detail: impl Into<String>) -> Self {
        Self {
            category,
            detail: Some(detail.into()),
            retryable: true,
            retry_after: None,
        }
    }
}

/// A response: status and body.
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// The HTTP client of notifications.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Http {
    /// A client trusting the system's CA bundle; plain HTTP only where the configuration
    /// allowed it (loopback, see [`super::config`]).
    pub fn new() -> std::io::Result<Self> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// POSTs `body` with `headers`; a 2xx answer is success, anything else an error.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Response, SendError> {
        let mut request = http::Request::post(url).header(http::header::CONTENT_TYPE, content_type);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| SendError {
                category: "rejected",
                detail: Some("the request cannot be built (check the URL)".into()),
                retryable: false,
                retry_after: None,
            })?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| SendError::transient("timeout", "no answer in 10s"))?
            .map_err(|e| SendError::transient("unreachable", connect_error(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = tokio::time::timeout(
            REQUEST_TIMEOUT,
            http_body_util::Limited::new(response.into_body(), MAX_RESPONSE).collect(),
        )
        .await
        .map_err(|_| SendError::transient("timeout", "the answer did not finish in 10s"))?
        .map_err(|_| SendError::transient("unreachable", "the answer broke off"))?
        .to_bytes();
        if status.is_success() {
            return Ok(Response {
                status: status.as_u16(),
                body,
            });
        }
        Err(SendError {
            category: "status",
            detail: Some(format!("HTTP {}", status.as_u16())),
            // A 4xx other than a rate limit or a timeout is our request's fault: sending it
            // again gets the same answer.
            retryable: status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408,
            retry_after,
        })
    }
}

/// A connection error without the URL (which could hold a credential in its userinfo).
fn connect_error(error: &hyper_util::client::legacy::Error) -> String {
    if error.is_connect() {
        "cannot connect".into()
    } else {
        "the connection failed".into()
    }
}

/// Retries: how many tries, and the first pause (doubled after each failure).
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Tries in all.
    pub tries: u32,
    /// The pause after the first failure.
    pub first_pause: Duration,
    /// The longest pause (a receiver's `Retry-After` is capped by it too).
    pub max_pause: Duration,
}

impl Default for Retry {
    /// Five tries within about half a minute: a sink that is down for longer is tried again
    /// at the gate's next change, or the next start of the controller.
    fn default() -> Self {
        Self {
            tries: 5,
            first_pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(15),
        }
    }
}

impl Retry {
    /// Runs `send` until it succeeds, fails for good, or the tries are spent.
    pub async fn run<T, F, Fut>(&self, mut send: F) -> Result<T, SendError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SendError>>,
    {
        let mut pause = self.first_pause;
        let mut tried = 0;
        loop {
            tried += 1;
            match send().await {
                Ok(value) => return Ok(value),
                Err(error) if !error.retryable || tried >= self.tries => return Err(error),
                Err(error) => {
                    let wait = error.retry_after.unwrap_or(pause).min(self.max_pause);
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(self.max_pause);
                }
            }
        }
    }
}

/// Parses a JSON answer.
pub fn json(response: &Response) -> Result<Value, SendError> {
    serde_json::from_slice(&response.body).map_err(|_| SendError {
        category: "rejected",
        detail: Some("the answer is not JSON".into()),
        retryable: true,
        retry_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick() -> Retry {
        Retry {
            tries: 3,
            first_pause: Duration::from_millis(1),
            max_pause: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn a_transient_failure_is_tried_again_until_the_tries_are_spent() {
        let tries = AtomicU32::new(0);
        let result: Result<(), SendError> = quick()
            .run(|| async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(SendError::transient("unreachable", "cannot connect"))
            })
            .await;
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert_eq!(
            result.unwrap_err().to_string(),
            "unreachable: cannot connect"
        );
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_tried_again_and_success_ends_the_tries() {
        let tries = AtomicU32::new(0);
        let result: Result<(), SendError> = quick()
            .run(|| async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(SendError {
                    category: "slack",
                    detail: Some("channel_not_found".into()),
                    retryable: false,
                    retry_after: None,
                })
            })
            .await;
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        assert_eq!(result.unwrap_err().category, "slack");
        let tries = AtomicU32::new(0);
        let result = quick()
            .run(|| async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(SendError::transient("timeout", "no answer")),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(result.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_reported_without_the_url() {
        let http = Http::new().unwrap();
        // A port nobody listens on (bound then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://user:hunter2@127.0.0.1:{port}/hook");
        let error = http
            .post(&url, &[], "application/json", b"{}".to_vec())
            .await
            .unwrap_err();
        assert_eq!(error.category, "unreachable");
        assert!(error.retryable);
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
