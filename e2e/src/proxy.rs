//! The identity proxy in front of the web UI in browser tests: a plain-HTTP/1.1 reverse
//! proxy on loopback that stands in for oauth2-proxy. It replaces whatever identity headers
//! the browser sent with the ones the test chose, so a test drives the UI as a given person
//! and the browser (or a test playing an attacker) cannot forge an identity.
//!
//! Bodies are streamed frame by frame in both directions, never buffered: the UI's live
//! updates are server-sent events (`text/event-stream`), a response that never ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What the proxy answers with: the upstream's body as it arrives, or its own short error.
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1): a proxy
/// must not pass them on. Framing (`transfer-encoding`) is hyper's to choose on each side.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Starts a reverse proxy on `127.0.0.1:<free port>` that forwards every request to
/// `http://{upstream}` with the identity headers `inject` (name, value; a name may repeat,
/// e.g. one `X-Forwarded-Groups` per group) in place of any the client sent under those
/// names, and streams the response back. Returns the proxy's address; it serves until the
/// runtime shuts down. An unreachable upstream is a 502.
pub async fn identity_proxy(upstream: SocketAddr, inject: Vec<(String, String)>) -> SocketAddr {
    // A bad header in a test's own table is the test's bug: fail at once, not per request.
    let inject: Arc<[(HeaderName, HeaderValue)]> = inject
        .into_iter()
        .map(|(name, value)| {
            let parsed = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            );
            match parsed {
                (Ok(name), Ok(value)) => (name, value),
                _ => panic!("identity_proxy: invalid header {name}: {value}"),
            }
        })
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("identity_proxy: binding a loopback port");
    let address = listener
        .local_addr()
        .expect("identity_proxy: local address");
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build_http();
    crate::serve::spawn_http1(listener, "identity_proxy", move |request| {
        forward(client.clone(), upstream, inject.clone(), request)
    });
    address
}

/// Forwards one request to the upstream and hands back its response as it streams in.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    upstream: SocketAddr,
    inject: Arc<[(HeaderName, HeaderValue)]>,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let uri: Uri = match format!("http://{upstream}{path}").parse() {
        Ok(uri) => uri,
        Err(error) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                format!("bad target: {error}"),
            ));
        }
    };
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    strip_hop_by_hop(headers);
    // HeaderName is lowercase whatever the client sent, so this removes `X-Forwarded-User`,
    // `x-forwarded-user` and every other spelling, all values of each.
    for (name, _) in inject.iter() {
        headers.remove(name);
    }
    for (name, value) in inject.iter() {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        header::HOST,
        HeaderValue::try_from(upstream.to_string()).expect("a socket address is a valid header"),
    );
    match client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // Incoming yields each frame as it arrives, and hyper's server writes (and
            // flushes) it before waiting for the next: nothing is held back.
            Ok(Response::from_parts(parts, body.boxed()))
        }
        Err(error) => Ok(text(
            StatusCode::BAD_GATEWAY,
            format!("identity proxy: upstream {upstream}: {error}\n"),
        )),
    }
}

/// Removes the hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in named {
        headers.remove(name);
    }
}

/// A short plain-text response of the proxy's own.
fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::StreamExt as _;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;
    use tokio::sync::oneshot;

    use super::*;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::time::Duration;

    /// An upstream that answers at once with a first chunk describing the request it saw,
    /// and sends a second chunk only when the test releases it: if the proxy buffered the
    /// body, the first chunk would never reach the test.
    async fn upstream(release: oneshot::Receiver<()>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let release = Arc::new(Mutex::new(Some(release)));
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |request: Request<Incoming>| {
                let release = release.lock().unwrap().take();
                async move {
                    let values = |name: &str| -> Vec<String> {
                        request
                            .headers()
                            .get_all(name)
                            .iter()
                            .map(|v| v.to_str().unwrap().to_string())
                            .collect()
                    };
                    let first = format!(
                        "{} {} host={:?} user={:?} groups={:?}",
                        request.method(),
                        request.uri(),
                        values("host"),
                        values("x-forwarded-user"),
                        values("x-forwarded-groups"),
                    );
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let first = format!("{first} body={}\n", String::from_utf8_lossy(&body));
                    let chunks = futures::stream::once(async move { first })
                        .chain(futures::stream::once(async move {
                            release.expect("one request").await.unwrap();
                            "second\n".to_string()
                        }))
                        .map(|chunk| Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))));
                    let mut response = Response::new(StreamBody::new(chunks));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/event-stream"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
                .unwrap();
        });
        address
    }

    fn client() -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    /// The next data frame of a body, failing (not hanging) if it does not come.
    async fn next_chunk(body: &mut Incoming) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("a chunk within 5s: the proxy must stream, not buffer")
            .expect("a frame")
            .unwrap();
        String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn identity_headers_are_replaced_and_the_body_streams() {
        let (release, released) = oneshot::channel();
        let upstream = upstream(released).await;
        let proxy = identity_proxy(
            upstream,
            vec![
                ("X-Forwarded-User".into(), "alice".into()),
                ("X-Forwarded-Groups".into(), "dev".into()),
                ("X-Forwarded-Groups".into(), "ops".into()),
            ],
        )
        .await;

        let request = Request::post(format!("http://{proxy}/events?since=3"))
            .header("x-forwarded-user", "mallory")
            .header("X-Forwarded-User", "root")
            .header("x-forwarded-groups", "admins")
            .body(Full::new(Bytes::from("ping")))
            .unwrap();
        let response = client().request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        let mut body = response.into_body();

        assert_eq!(
            next_chunk(&mut body).await,
            format!(
                "POST /events?since=3 host=[\"{upstream}\"] user=[\"alice\"] \
                 groups=[\"dev\", \"ops\"] body=ping\n"
            )
        );
        release.send(()).unwrap();
        assert_eq!(next_chunk(&mut body).await, "second\n");
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_502() {
        // A port that was just free: nothing listens there now.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = identity_proxy(closed, vec![]).await;
        let response = client()
            .get(format!("http://{proxy}/").parse().unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("identity proxy: upstream"),
            "{body:?}"
        );
    }
}
