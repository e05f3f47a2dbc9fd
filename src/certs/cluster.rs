//! The API side of the serving certificate: one Secret shared by all replicas, and the
//! caBundle of our MutatingWebhookConfiguration. Replicas agree through the API server's
//! optimistic concurrency: the first create wins (the others read it), a renewal is a
//! PUT with the resourceVersion that was planned on (a conflict means re-plan).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use super::{Bundle, CertPlan, issue, plan, service_dns_names};
use crate::secrets;
use crate::webhook::ReloadingCert;

/// How often the Secret is checked for renewal (and for another replica's renewal).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(600);
/// How soon a failed check is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(15);

/// Where the certificate lives and whom it serves.
#[derive(Clone, Debug)]
pub struct CertSettings {
    /// Namespace of the Secret and the Service.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The Service the API server calls the webhook through.
    pub service: String,
    /// The MutatingWebhookConfiguration whose caBundle is kept in step.
    pub webhook_configuration: String,
}

/// Makes sure the Secret holds a usable certificate and returns it. Safe to call from
/// several replicas at once: they end up serving the same Secret.
pub async fn ensure_secret(
    client: &Client,
    settings: &CertSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<Bundle> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let names = service_dns_names(&settings.service, &settings.namespace);
    for _ in 0..5 {
        let existing = api
            .get_opt(&settings.secret)
            .await
            .with_context(|| format!("reading Secret {}", settings.secret))?;
        let data = existing.as_ref().map(secrets::data);
        let decision = plan(data.as_ref(), &names, now);
        let reason = match &decision {
            CertPlan::Keep => {
                return Bundle::from_data(data.as_ref().expect("kept data exists"))
                    .context("a kept Secret is readable");
            }
            CertPlan::RenewLeaf(reason) | CertPlan::Issue(reason) => reason.clone(),
        };
        let bundle = issue(&decision, data.as_ref(), &names, now)?;
        let secret = secrets::owned(
            &settings.secret,
            &settings.namespace,
            "kubernetes.io/tls",
            bundle.to_data().into_iter().collect(),
            existing.as_ref().and_then(|s| s.resource_version()),
        );
        let written = match existing {
            None => api.create(&PostParams::default(), &secret).await,
            Some(_) => {
                api.replace(&settings.secret, &PostParams::default(), &secret)
                    .await
            }
        };
        match written {
            Ok(_) => {
                info!(secret = %settings.secret, %reason, "serving certificate written");
                return Ok(bundle);
            }
            // Another replica wrote first: read what it wrote.
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                continue;
            }
            Err(e) => return Err(e).context(format!("writing Secret {}", settings.secret)),
        }
    }
    anyhow::bail!(
        "Secret {} kept changing under us; giving up for now",
        settings.secret
    )
}

/// Sets the caBundle of every webhook in the configuration to `ca_pem`. Returns whether
/// anything changed.
pub async fn inject_ca_bundle(client: &Client, name: &str, ca_pem: &str) -> anyhow::Result<bool> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for _ in 0..5 {
        let mut config = api
            .get(name)
            .await
            .with_context(|| format!("reading MutatingWebhookConfiguration {name}"))?;
        let mut changed = false;
        for webhook in config.webhooks.iter_mut().flatten() {
            let wanted = ByteString(ca_pem.as_bytes().to_vec());
            if webhook.client_config.ca_bundle.as_ref() != Some(&wanted) {
                webhook.client_config.ca_bundle = Some(wanted);
                changed = true;
            }
        }
        if !changed {
            return Ok(false);
        }
        match api.replace(name, &PostParams::default(), &config).await {
            Ok(_) => {
                info!(configuration = name, "caBundle injected");
                return Ok(true);
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => continue,
            Err(e) => return Err(e).context(format!("updating {name}")),
        }
    }
    anyhow::bail!("MutatingWebhookConfiguration {name} kept changing under us")
}

/// Keeps the served certificate, the Secret and the caBundle in step: now, then every
/// [`CHECK_INTERVAL`], and every [`RETRY_INTERVAL`] after a failure (for instance while the
/// webhook configuration is not applied yet). The webhook keeps serving the certificate it
/// has meanwhile.
pub async fn maintain(
    client: Client,
    settings: CertSettings,
    cert: Arc<ReloadingCert>,
    clock: fn() -> DateTime<Utc>,
) {
    loop {
        let wait = match refresh(&client, &settings, &cert, clock()).await {
            Ok(_) => CHECK_INTERVAL,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "serving certificate check failed; retrying soon");
                RETRY_INTERVAL
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// One check: the Secret (created or renewed if needed), the served pair, the caBundle.
pub async fn refresh(
    client: &Client,
    settings: &CertSettings,
    cert: &ReloadingCert,
    now: DateTime<Utc>,
) -> anyhow::Result<Bundle> {
    let bundle = ensure_secret(client, settings, now).await?;
    cert.set_pem(&bundle.cert, &bundle.key)?;
    inject_ca_bundle(client, &settings.webhook_configuration, &bundle.ca_cert).await?;
    Ok(bundle)
}
