//! The admission webhook's HTTPS server: AdmissionReview v1 in, [`Admission::admit`] on it,
//! AdmissionReview with a JSON patch or a denial out.
//!
//! TLS comes from certificate and key files, re-read when they change (cert-manager and
//! Secret volumes rotate them in place). Requests are bounded in size and time; a request
//! that cannot be read is answered with an error, never a panic, and never allowed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation as KubeOperation};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::api::CustomRun;
use crate::approval::admission::{Admission, Mutation, Operation, Requester};
use crate::approval::gate::resolve;
use crate::approval::params::Settings;
use crate::approval::requester::Stamping;
use crate::approval::seal::{self, Keyring, Naming};
use crate::approval::{PolicyLookup, classify};
use crate::keys::KeySource;

/// The path the API server posts reviews to.
pub const ADMIT_PATH: &str = "/admit";
/// Two objects of at most ~1.5 MiB each, plus the envelope.
const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;
/// The API server's own timeout for us is shorter; this only stops stuck clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// How long in-flight admission requests may take to finish after a shutdown signal: the
/// API server gives us at most `timeoutSeconds` (5) for each.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(6);

/// Why a review could not be answered normally.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not an AdmissionReview with a request.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
}

/// Answers one AdmissionReview body. Requests for objects that are not CustomRuns, or
/// that cannot be read as one, are denied: we fail closed.
pub fn review(
    admission: &Admission,
    body: &[u8],
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Result<Value, ReviewError> {
    Ok(answer(admission, &parse(body)?, keys, now))
}

/// Answers one parsed AdmissionRequest.
fn answer(
    admission: &Admission,
    request: &AdmissionRequest<DynamicObject>,
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Value {
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let mut warnings = warnings(request);
    let mut response = match judge(admission, request, keys, now) {
        Ok(Mutation::Unchanged) => json!({"uid": request.uid, "allowed": true}),
        Ok(Mutation::Patch {
            operations,
            recorded,
            warning,
        }) => {
            if let Some(record) = &recorded {
                info!(namespace, name = %request.name, user = %record.user,
                      decision = ?record.decision, "decision recorded");
            }
            let patch = serde_json::to_vec(&operations).expect("JSON values serialise");
            warnings.extend(warning);
            json!({
                "uid": request.uid,
                "allowed": true,
                "patchType": "JSONPatch",
                // Go's []byte: base64 in JSON.
                "patch": base64::engine::general_purpose::STANDARD.encode(patch),
            })
        }
        Err(denial) => {
            info!(namespace, name = %request.name,
                  user = request.user_info.username.as_deref().unwrap_or_default(), %denial, "write denied");
            json!({
                "uid": request.uid,
                "allowed": false,
                "status": {"code": 403, "reason": "Forbidden", "message": denial.to_string()},
            })
        }
    };
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ReviewError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    review
        .try_into()
        .map_err(|_| ReviewError::Malformed("no request in the review".into()))
}

/// The ids of the keys named by seals on the objects of a request: the keys the webhook
/// must hold to judge it.
fn key_ids(request: &AdmissionRequest<DynamicObject>) -> Vec<String> {
    let annotations =
        |o: &Option<DynamicObject>| o.as_ref().and_then(|o| o.metadata.annotations.clone());
    let mut ids = seal::key_ids(annotations(&request.old_object).as_ref());
    ids.extend(seal::key_ids(annotations(&request.object).as_ref()));
    ids
}

/// Admission warnings (kubectl prints them): approver lists that make more people
/// approvers than they seem to, on Approval policies and on gates created with one.
fn warnings(request: &AdmissionRequest<DynamicObject>) -> Vec<String> {
    if request.operation != KubeOperation::Create && request.operation != KubeOperation::Update {
        return Vec::new();
    }
    let Some(object) = &request.object else {
        return Vec::new();
    };
    let approvers = match request.kind.kind.as_str() {
        "Approval" => {
            let spec = object.data.get("spec").cloned().unwrap_or_default();
            Settings::from_spec(&spec).0.approvers().cloned()
        }
        "CustomRun" if request.operation == KubeOperation::Create => {
            let run: Option<CustomRun> = serde_json::to_value(object)
                .ok()
                .and_then(|v| serde_json::from_value(v).ok());
            run.and_then(|run| {
                let gate = classify(&run.spec)?;
                resolve(&gate, &run.spec, "", PolicyLookup::NotNeeded)
                    .ok()
                    .map(|policy| policy.approvers)
            })
        }
        _ => None,
    };
    approvers.map(|a| a.warnings()).unwrap_or_default()
}

fn judge(
    admission: &Admission,
    request: &AdmissionRequest<DynamicObject>,
    keys: &Keyring,
    now: DateTime<Utc>,
) -> Result<Mutation, crate::approval::admission::Denial> {
    use crate::approval::admission::Denial;
    let operation = match request.operation {
        KubeOperation::Create => Operation::Create,
        KubeOperation::Update => Operation::Update,
        // Deletes and connects are not registered; if they come anyway they are no decision.
        _ => return Ok(Mutation::Unchanged),
    };
    // Approval policies are registered for their warnings only.
    if request.kind.kind == "Approval" {
        return Ok(Mutation::Unchanged);
    }
    let username = request.user_info.username.as_deref().unwrap_or_default();
    if username.is_empty() {
        return Err(Denial("the request has no authenticated user".into()));
    }
    let groups = request.user_info.groups.clone().unwrap_or_default();
    let requester = Requester {
        username,
        groups: &groups,
    };
    if request.kind.kind == "PipelineRun" {
        let annotations =
            |o: &Option<DynamicObject>| o.as_ref().and_then(|o| o.metadata.annotations.clone());
        let new_annotations = annotations(&request.object);
        let generate_name = request
            .object
            .as_ref()
            .and_then(|o| o.metadata.generate_name.as_deref());
        let stamping = Stamping {
            keys,
            namespace: request.namespace.as_deref().unwrap_or_default(),
            naming: Naming::of(Some(request.name.as_str()), generate_name),
        };
        return admission.admit_pipelinerun(
            operation,
            annotations(&request.old_object).as_ref(),
            new_annotations.as_ref(),
            requester,
            stamping,
        );
    }
    let read = |object: &Option<DynamicObject>| -> Result<Option<CustomRun>, Denial> {
        object
            .as_ref()
            .map(|o| {
                serde_json::to_value(o)
                    .and_then(serde_json::from_value)
                    .map_err(|e| {
                        Denial(format!(
                            "the approval webhook cannot read this CustomRun: {e}"
                        ))
                    })
            })
            .transpose()
    };
    let new = read(&request.object)?.ok_or_else(|| Denial("the review has no object".into()))?;
    let old = read(&request.old_object)?;
    admission.admit(operation, old.as_ref(), &new, requester, keys, now)
}

/// What the webhook's handler needs.
pub struct Webhook {
    /// The rules.
    pub admission: Admission,
    /// The seal keys.
    pub keys: Arc<KeySource>,
}

/// The router (no TLS): POST [`ADMIT_PATH`].
pub fn router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route(ADMIT_PATH, post(admit))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(webhook)
}

async fn admit(State(webhook): State<Arc<Webhook>>, body: Bytes) -> Response {
    let request = match parse(&body) {
        Ok(request) => request,
        Err(e) => {
            warn!(error = %e, "unreadable admission request");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    // A seal made with a key we do not hold yet (another replica rotated): re-read the
    // keys first, so that a genuine record is never taken for a forgery.
    webhook.keys.learn(&key_ids(&request)).await;
    let keys = webhook.keys.keyring();
    axum::Json(answer(&webhook.admission, &request, &keys, Utc::now())).into_response()
}

/// The serving certificate, swapped in place: re-read when its files change (local mode),
/// or set from the certificate Secret (in a cluster, by `certs::cluster::maintain`).
#[derive(Debug)]
pub struct ReloadingCert {
    files: Option<(PathBuf, PathBuf)>,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ReloadingCert {
    /// Loads the files once; fails if they cannot be used.
    pub fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Self> {
        let key = load_certified_key(cert_file, key_file)?;
        Ok(Self {
            files: Some((cert_file.to_path_buf(), key_file.to_path_buf())),
            current: RwLock::new((Arc::new(key), modified(cert_file, key_file))),
        })
    }

    /// A certificate held in memory (PEM text), replaced with [`Self::set_pem`].
    pub fn from_pem(cert: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            files: None,
            current: RwLock::new((Arc::new(certified_key_from_pem(cert, key)?), None)),
        })
    }

    /// Serves this pair from now on; a broken pair is an error and the old one stays.
    pub fn set_pem(&self, cert: &str, key: &str) -> anyhow::Result<()> {
        let key = certified_key_from_pem(cert, key)?;
        self.current.write().expect("not poisoned").0 = Arc::new(key);
        Ok(())
    }

    /// Re-reads the files if they changed. A broken new pair is logged and the old one kept.
    pub fn refresh(&self) -> bool {
        let Some((cert_file, key_file)) = &self.files else {
            return false;
        };
        let stamp = modified(cert_file, key_file);
        if stamp == self.current.read().expect("not poisoned").1 {
            return false;
        }
        match load_certified_key(cert_file, key_file) {
            Ok(key) => {
                *self.current.write().expect("not poisoned") = (Arc::new(key), stamp);
                info!(cert = %cert_file.display(), "serving certificate reloaded");
                true
            }
            Err(e) => {
                warn!(error = %e, "new serving certificate unusable; keeping the old one");
                false
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("not poisoned").0.clone())
    }
}

fn modified(cert_file: &Path, key_file: &Path) -> Option<SystemTime> {
    let cert = std::fs::metadata(cert_file)
        .and_then(|m| m.modified())
        .ok()?;
    let key = std::fs::metadata(key_file)
        .and_then(|m| m.modified())
        .ok()?;
    Some(cert.max(key))
}

fn load_certified_key(cert_file: &Path, key_file: &Path) -> anyhow::Result<CertifiedKey> {
    use anyhow::Context as _;
    let cert = std::fs::read_to_string(cert_file)
        .with_context(|| format!("reading certificate {}", cert_file.display()))?;
    let key = std::fs::read_to_string(key_file)
        .with_context(|| format!("reading private key {}", key_file.display()))?;
    certified_key_from_pem(&cert, &key)
        .with_context(|| format!("using {} and {}", cert_file.display(), key_file.display()))
}

/// A certificate chain and private key (PEM) as rustls serves them.
pub fn certified_key_from_pem(cert: &str, key: &str) -> anyhow::Result<CertifiedKey> {
    use anyhow::Context as _;
    let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the certificate")?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the PEM text");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).context("parsing the private key")?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key).context("unsupported private key")?;
    Ok(CertifiedKey::new(certs, signing_key))
}

/// Serves the webhook over TLS until `shutdown` resolves. `serving` is true while the
/// listener takes connections (readiness); after the signal it turns false at once, new
/// connections are still taken for `drain_delay` (while the Service's endpoints catch up),
/// then the requests in flight are finished.
pub async fn serve(
    addr: SocketAddr,
    cert: Arc<ReloadingCert>,
    webhook: Arc<Webhook>,
    serving: Arc<AtomicBool>,
    drain_delay: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert.clone());
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(addr).await?;
    serving.store(true, Ordering::SeqCst);
    info!(%addr, path = ADMIT_PATH, "serving the admission webhook");
    let service = TowerToHyperService::new(router(webhook));
    let reload = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CERT_CHECK_INTERVAL);
        loop {
            ticks.tick().await;
            cert.refresh();
        }
    });
    // Connections in flight when the shutdown comes are finished (HTTP/2: GOAWAY, then the
    // open streams complete), for at most DRAIN_TIMEOUT.
    let connections = GracefulShutdown::new();
    let stop_accepting = async move {
        shutdown.await;
        serving.store(false, Ordering::SeqCst);
        if !drain_delay.is_zero() {
            info!(delay = ?drain_delay, "not ready; still accepting while endpoints update");
            tokio::time::sleep(drain_delay).await;
        }
    };
    tokio::pin!(stop_accepting);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => { warn!(error = %e, "accept failed"); continue; }
            },
            () = &mut stop_accepting => break,
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        let watcher = connections.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return debug!(%peer, "TLS handshake timed out"),
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT);
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    info!(
        open = connections.count(),
        "webhook draining its connections"
    );
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.shutdown())
        .await
        .is_err()
    {
        warn!("webhook connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    reload.abort();
    Ok(())
}

#[cfg(test)]
mod tests;
