//! `approval-controller`: the reconciler (and, by flag, the admission webhook) of Tekton
//! approval gates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::Parser;
use futures::FutureExt;
use tekton_approval::approval::admission::Admission;
use tekton_approval::approval::eligibility::{Approver, Approvers};
use tekton_approval::certs::{self, cluster::CertSettings};
use tekton_approval::controller::leader::{Election, Leader};
use tekton_approval::controller::{self, Context, Scope, WatchHealth};
use tekton_approval::events::EventPublisher;
use tekton_approval::keys::{self, KeySource};
use tekton_approval::metrics::Metrics;
use tekton_approval::probes::{self, Probes};
use tekton_approval::telemetry::{self, LogFormat};
use tekton_approval::webhook::{self, ReloadingCert, Webhook};

/// Holds Tekton CustomRuns of kind Approval until approvers decide: no pod, no polling.
/// The admission webhook records who decided; it runs in the same process or on its own.
///
/// Examples:
///   approval-controller --tls-secret approval-webhook-tls                # both parts, in a cluster
///   approval-controller --tls-cert-file tls.crt --tls-key-file tls.key   # both parts, local
///   approval-controller --components controller -n ci -n release         # reconciler only
///   approval-controller --components webhook --tls-cert-file tls.crt --tls-key-file tls.key
///   approval-controller --components ui --ui-proxy-secret-file /etc/proxy/secret   # web page
///   approval-controller --components slack --slack-signing-secret-file /etc/slack/signing-secret
// jemalloc keeps the resident set close to what the watch cache really holds: with glibc's
// allocator the controller held ~10% more at 10,000 gates (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long a clean shutdown may take: longer than the webhook's drain delay (5 s in
/// config/) and its drain of in-flight admission requests (6 s), well within a Pod's default
/// 30 s termination grace period.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Which parts to run (comma-separated): the reconciler, the admission webhook, or both.
    #[arg(long, env = "APPROVAL_COMPONENTS", value_enum, value_delimiter = ',',
          default_values_t = [Component::Controller, Component::Webhook])]
    components: Vec<Component>,

    /// Namespaces to watch (repeat or comma-separate); all namespaces when absent.
    #[arg(
        short,
        long = "namespace",
        env = "APPROVAL_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,

    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "APPROVAL_PROBE_ADDR", default_value = "0.0.0.0:8080")]
    probe_addr: SocketAddr,

    /// Log format (the level comes from RUST_LOG, default info).
    #[arg(long, env = "APPROVAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// After SIGTERM the webhook reports not ready at once but keeps taking connections for
    /// this long (a Service's endpoints take a moment to drop a terminating pod), then
    /// finishes the requests in flight.
    #[arg(long, env = "APPROVAL_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    drain_delay: HumanDuration,

    /// Address the admission webhook serves HTTPS on.
    #[arg(long, env = "APPROVAL_WEBHOOK_ADDR", default_value = "0.0.0.0:8443")]
    webhook_addr: SocketAddr,

    /// The webhook's serving certificate (PEM); re-read when it changes. Local mode: with
    /// --tls-key-file, instead of --tls-secret.
    #[arg(long, env = "APPROVAL_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,

    /// The webhook's private key (PEM); re-read when it changes.
    #[arg(long, env = "APPROVAL_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,

    /// In a cluster: the Secret that holds the webhook's CA and serving certificate. It is
    /// created if missing, shared by replicas, renewed before expiry, and its CA is
    /// injected into --webhook-configuration.
    #[arg(long, env = "APPROVAL_TLS_SECRET", conflicts_with = "tls_cert_file")]
    tls_secret: Option<String>,

    /// The namespace of --tls-secret, --seal-key-secret and --service-name.
    #[arg(long, env = "POD_NAMESPACE", default_value = "tekton-approval")]
    tls_secret_namespace: String,

    /// The Service the API server reaches the webhook through (the certificate names it).
    #[arg(
        long,
        env = "APPROVAL_SERVICE_NAME",
        default_value = "approval-webhook"
    )]
    service_name: String,

    /// The MutatingWebhookConfiguration whose caBundle is kept in step with --tls-secret.
    #[arg(
        long,
        env = "APPROVAL_WEBHOOK_CONFIGURATION",
        default_value = "approval.tekton.dev"
    )]
    webhook_configuration: String,

    /// The controller's own username: the only identity allowed to rewrite a gate's ledger.
    #[arg(
        long,
        env = "APPROVAL_CONTROLLER_USERNAME",
        default_value = "system:serviceaccount:tekton-approval:approval-controller"
    )]
    controller_username: String,

    /// Users that create runs on a PipelineRun's behalf: the requested-by stamp they copy
    /// from the PipelineRun is kept (repeat or comma-separate).
    #[arg(
        long = "trusted-creator",
        env = "APPROVAL_TRUSTED_CREATORS",
        value_delimiter = ',',
        default_value = "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller"
    )]
    trusted_creators: Vec<String>,

    /// Users (and `group:<name>` entries) who may also create gate CustomRuns directly,
    /// without a PipelineRun (repeat or comma-separate). Off by default: only Tekton's
    /// controller (--trusted-creator) creates gates. Meant for benchmarks and tests.
    #[arg(
        long = "direct-gate-creator",
        env = "APPROVAL_DIRECT_GATE_CREATORS",
        value_delimiter = ','
    )]
    direct_gate_creators: Vec<String>,

    /// The Secret (in --tls-secret-namespace) holding the keys the webhook seals decisions,
    /// requester stamps and admitted gates with, and the controller verifies them with.
    /// Created on first start; rotate with `approval-controller rotate-seal-key`.
    #[arg(
        long,
        env = "APPROVAL_SEAL_KEY_SECRET",
        default_value = "approval-seal-key"
    )]
    seal_key_secret: String,

    /// Elect a leader among controller replicas through a Lease (in --tls-secret-namespace):
    /// all replicas watch, only the leader reconciles. Off for a single replica.
    #[arg(long, env = "APPROVAL_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,

    /// The Lease the controller replicas elect their leader with.
    #[arg(
        long,
        env = "APPROVAL_LEADER_ELECTION_LEASE",
        default_value = "approval-controller"
    )]
    leader_election_lease: String,

    /// A kubeconfig to use instead of KUBECONFIG / in-cluster configuration.
    #[arg(long, env = "APPROVAL_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Address the web page serves plain HTTP on: behind the sign-in proxy, on loopback in
    /// the proxy's pod.
    #[arg(long, env = "APPROVAL_UI_ADDR", default_value = "127.0.0.1:8090")]
    ui_addr: SocketAddr,

    /// A file holding the secret the sign-in proxy sends with every request (at least 16
    /// bytes): only requests that carry it are believed. Required for the ui component.
    #[arg(long, env = "APPROVAL_UI_PROXY_SECRET_FILE")]
    ui_proxy_secret_file: Option<PathBuf>,

    /// The header the proxy sends its secret in.
    #[arg(
        long,
        env = "APPROVAL_UI_PROXY_SECRET_HEADER",
        default_value = "X-Approval-Proxy-Secret"
    )]
    ui_proxy_secret_header: String,

    /// The header the proxy names the signed-in user in (oauth2-proxy: X-Forwarded-User).
    #[arg(
        long,
        env = "APPROVAL_UI_USER_HEADER",
        default_value = "X-Forwarded-User"
    )]
    ui_user_header: String,

    /// The header the proxy lists the user's groups in, comma-separated.
    #[arg(
        long,
        env = "APPROVAL_UI_GROUPS_HEADER",
        default_value = "X-Forwarded-Groups"
    )]
    ui_groups_header: String,

    /// Prepended to the proxy's user name (as the API server's --oidc-username-prefix).
    #[arg(long, env = "APPROVAL_UI_USERNAME_PREFIX", default_value = "")]
    ui_username_prefix: String,

    /// Prepended to each of the proxy's groups (as the API server's --oidc-groups-prefix).
    #[arg(long, env = "APPROVAL_UI_GROUPS_PREFIX", default_value = "")]
    ui_groups_prefix: String,

    /// The Tekton Dashboard's base URL: the web page links PipelineRuns there.
    #[arg(long, env = "APPROVAL_UI_DASHBOARD_URL")]
    ui_dashboard_url: Option<String>,

    /// The mounted `approval-notifications` ConfigMap (its `sinks.yaml`): the controller
    /// notifies the sinks gates name. No notifications without it.
    #[arg(long, env = "APPROVAL_NOTIFICATIONS_CONFIG")]
    notifications_config: Option<PathBuf>,

    /// The mounted `approval-notifications` Secret: the tokens and keys `sinks.yaml` names.
    #[arg(
        long,
        env = "APPROVAL_NOTIFICATIONS_SECRETS",
        default_value = "/etc/approval/notification-secrets"
    )]
    notifications_secrets: PathBuf,

    /// Address the Slack interactivity endpoint serves plain HTTP on (behind the Ingress).
    #[arg(long, env = "APPROVAL_SLACK_ADDR", default_value = "0.0.0.0:8092")]
    slack_addr: SocketAddr,

    /// A file holding the Slack app's signing secret. Required for the slack component.
    #[arg(long, env = "APPROVAL_SLACK_SIGNING_SECRET_FILE")]
    slack_signing_secret_file: Option<PathBuf>,

    /// A file holding the Slack bot token (to open the comment form). Required for the
    /// slack component.
    #[arg(long, env = "APPROVAL_SLACK_TOKEN_FILE")]
    slack_token_file: Option<PathBuf>,

    /// The mounted `users.yaml` mapping Slack user IDs to Kubernetes users and groups.
    #[arg(
        long,
        env = "APPROVAL_SLACK_USERS_FILE",
        default_value = "/etc/approval/slack-users/users.yaml"
    )]
    slack_users_file: PathBuf,

    /// Slack's Web API.
    #[arg(long, env = "APPROVAL_SLACK_API_URL", default_value = tekton_approval::notify::config::SLACK_API)]
    slack_api_url: String,

    /// Where the response URLs in Slack's payloads must point; no answer goes elsewhere.
    #[arg(
        long,
        env = "APPROVAL_SLACK_RESPONSE_URL_PREFIX",
        default_value = "https://hooks.slack.com/"
    )]
    slack_response_url_prefix: String,

    /// Tells replicas apart in events (defaults to the pod or host name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

/// One-shot commands instead of running.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print the Approval CRD (YAML), as checked in at config/300-crd.yaml.
    Crd,
    /// Replace the current seal key with a new one (the old one still verifies what it
    /// sealed); running processes pick it up within a minute.
    RotateSealKey,
}

/// A part of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Component {
    /// Reconciles gates.
    Controller,
    /// Records decisions (admission webhook).
    Webhook,
    /// The web page approvers decide on (behind a sign-in proxy).
    Ui,
    /// Slack's interactive buttons (behind an Ingress Slack can reach).
    Slack,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Command::Crd) => {
            print!("{}", tekton_approval::api::approval::crd_yaml());
            return Ok(());
        }
        Some(Command::RotateSealKey) => {
            let client = client(args.kubeconfig.as_deref()).await?;
            let id =
                keys::rotate(client, &args.tls_secret_namespace, &args.seal_key_secret).await?;
            println!(
                "Secret {}/{}: key {id} now seals; the previous key still verifies",
                args.tls_secret_namespace, args.seal_key_secret
            );
            return Ok(());
        }
        None => {}
    }
    telemetry::init(args.log_format);
    let direct_gate_creators = Approvers::new(
        args.direct_gate_creators
            .iter()
            .map(|entry| {
                Approver::parse(entry).with_context(|| {
                    format!("--direct-gate-creator `{entry}`: write a user name or group:<name>")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let runs = |c| args.components.contains(&c);
    let shutdown = shutdown_signal().shared();
    // Whatever is stuck (a list that never ends, an API call that never answers), a
    // signalled process is gone within SHUTDOWN_GRACE.
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            tracing::error!(grace = ?SHUTDOWN_GRACE, "still stopping after the grace period: exiting");
            std::process::exit(1);
        }
    });
    let metrics = Arc::new(Metrics::default());
    let health = runs(Component::Controller).then(|| Arc::new(WatchHealth::default()));
    let webhook_serving = runs(Component::Webhook).then(|| Arc::new(AtomicBool::new(false)));
    let stores = Arc::default();
    let probes = Probes {
        health: health.clone(),
        webhook_serving: webhook_serving.clone(),
        metrics: metrics.clone(),
        stores: Arc::clone(&stores),
    };
    let server = probes::serve(args.probe_addr, probes, shutdown.clone());
    // One copy of the seal keys (and one refresh loop) for whichever parts run here.
    let seal_keys = tokio::sync::OnceCell::new();
    let seal_keys = || seal_keys.get_or_try_init(|| load_seal_keys(&args));

    let webhook = async {
        if !runs(Component::Webhook) {
            return Ok(());
        }
        let cert = match (&args.tls_cert_file, &args.tls_key_file, &args.tls_secret) {
            (Some(cert), Some(key), _) => Arc::new(ReloadingCert::load(cert, key)?),
            (_, _, Some(secret)) => {
                let client = client(args.kubeconfig.as_deref()).await?;
                let settings = CertSettings {
                    namespace: args.tls_secret_namespace.clone(),
                    secret: secret.clone(),
                    service: args.service_name.clone(),
                    webhook_configuration: args.webhook_configuration.clone(),
                };
                let bundle =
                    certs::cluster::ensure_secret(&client, &settings, chrono::Utc::now()).await?;
                let cert = Arc::new(ReloadingCert::from_pem(&bundle.cert, &bundle.key)?);
                // The caBundle is injected by the maintenance loop, which retries until the
                // webhook configuration exists (it may be applied after this Deployment).
                tokio::spawn(certs::cluster::maintain(
                    client,
                    settings,
                    cert.clone(),
                    chrono::Utc::now,
                ));
                cert
            }
            _ => anyhow::bail!(
                "the webhook needs a serving certificate: --tls-secret NAME in a cluster, or \
                 --tls-cert-file and --tls-key-file"
            ),
        };
        let keys = seal_keys().await?.clone();
        let webhook = Arc::new(Webhook {
            admission: Admission {
                controller_username: args.controller_username.clone(),
                trusted_creators: args.trusted_creators.clone(),
                direct_creators: direct_gate_creators.clone(),
            },
            keys,
        });
        tracing::info!(controller_username = %args.controller_username,
                       direct_gate_creators = %direct_gate_creators, "starting admission webhook");
        let serving = webhook_serving.clone().expect("the webhook runs");
        webhook::serve(
            args.webhook_addr,
            cert,
            webhook,
            serving,
            args.drain_delay.into(),
            shutdown.clone(),
        )
        .await
    };
    let reconciler = async {
        if !runs(Component::Controller) {
            return Ok(());
        }
        let client = client(args.kubeconfig.as_deref()).await?;
        let instance = args.instance.clone().unwrap_or_else(|| {
            std::env::var("HOSTNAME").unwrap_or_else(|_| "approval-controller".into())
        });
        let (election, leader) = if args.leader_election {
            let (election, leader) = Election::start(
                client.clone(),
                &args.tls_secret_namespace,
                &args.leader_election_lease,
                &instance,
            )
            .await
            .context("joining the leader election")?;
            (Some(election), leader)
        } else {
            (None, Leader::always())
        };
        let events = EventPublisher::new(client.clone(), instance);
        let notifier = match &args.notifications_config {
            Some(config_dir) => Some(tekton_approval::notify::Notifier::new(
                client.clone(),
                events.clone(),
                metrics.clone(),
                tekton_approval::notify::notifier::Settings {
                    files: tekton_approval::notify::config::Files {
                        config_dir: config_dir.clone(),
                        secret_dir: args.notifications_secrets.clone(),
                    },
                    retry: Default::default(),
                    keys: seal_keys().await?.clone(),
                    leader: leader.clone(),
                },
            )?),
            None => None,
        };
        let ctx = Arc::new(Context {
            client: client.clone(),
            events,
            metrics: metrics.clone(),
            clock: chrono::Utc::now,
            keys: seal_keys().await?.clone(),
            leader,
            deadlines: Default::default(),
            lines: Default::default(),
            notifier,
        });
        let scope = if args.namespaces.is_empty() {
            Scope::AllNamespaces
        } else {
            Scope::Namespaces(args.namespaces.clone())
        };
        tracing::info!(?scope, "starting approval controller");
        let health = health.clone().expect("the controller runs");
        controller::run(ctx, scope, health, stores.clone(), shutdown.clone()).await;
        if let Some(election) = election {
            // Released, another replica takes over at once instead of after the Lease
            // expires.
            election.stop(std::time::Duration::from_secs(3)).await;
        }
        anyhow::Ok(())
    };
    let ui = async {
        if !runs(Component::Ui) {
            return Ok(());
        }
        let path = args.ui_proxy_secret_file.as_deref().context(
            "the ui component needs --ui-proxy-secret-file: the secret its sign-in proxy sends",
        )?;
        let secret = std::fs::read(path)
            .with_context(|| format!("reading --ui-proxy-secret-file {}", path.display()))?;
        let secret = secret.trim_ascii();
        anyhow::ensure!(
            secret.len() >= 16,
            "--ui-proxy-secret-file {} holds {} bytes; use at least 16 random bytes",
            path.display(),
            secret.len()
        );
        let proxy = tekton_approval::ui::identity::ProxyHeaders::new(
            &args.ui_user_header,
            &args.ui_groups_header,
            &args.ui_proxy_secret_header,
            secret,
        )
        .with_prefixes(&args.ui_username_prefix, &args.ui_groups_prefix);
        let settings = tekton_approval::ui::Settings {
            addr: args.ui_addr,
            proxy,
            csrf: tekton_approval::ui::csrf::Csrf::new(secret),
            dashboard: args.ui_dashboard_url.clone(),
        };
        let client = client(args.kubeconfig.as_deref()).await?;
        tekton_approval::ui::run(client, settings, shutdown.clone()).await
    };
    let chat = async {
        if !runs(Component::Slack) {
            return Ok(());
        }
        let read = |flag: &str, path: Option<&std::path::Path>| -> anyhow::Result<String> {
            let path = path.with_context(|| format!("the slack component needs {flag}"))?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {flag} {}", path.display()))?;
            let text = text.trim().to_string();
            anyhow::ensure!(!text.is_empty(), "{flag} {} is empty", path.display());
            Ok(text)
        };
        let settings = tekton_approval::chat::server::Settings {
            addr: args.slack_addr,
            signing_secret: tekton_approval::notify::config::SecretText::new(read(
                "--slack-signing-secret-file",
                args.slack_signing_secret_file.as_deref(),
            )?),
            token: tekton_approval::notify::config::SecretText::new(read(
                "--slack-token-file",
                args.slack_token_file.as_deref(),
            )?),
            users_file: args.slack_users_file.clone(),
            api_url: if args.slack_api_url.ends_with('/') {
                args.slack_api_url.clone()
            } else {
                format!("{}/", args.slack_api_url)
            },
            response_url_prefix: args.slack_response_url_prefix.clone(),
        };
        let client = client(args.kubeconfig.as_deref()).await?;
        tekton_approval::chat::server::run(client, settings, metrics.clone(), shutdown.clone())
            .await
    };
    // Whichever part fails first stops the process: a half-running gate keeper is worse
    // than a restarted one.
    tokio::try_join!(
        async { server.await.context("probe server") },
        async { webhook.await.context("admission webhook") },
        async { reconciler.await.context("controller") },
        async { ui.await.context("web page") },
        async { chat.await.context("Slack interactivity") },
    )?;
    tracing::info!("stopped");
    Ok(())
}

/// A duration flag (`5s`, `1m`): Go's syntax, as everywhere in Kubernetes.
#[derive(Clone, Copy, Debug)]
struct HumanDuration(std::time::Duration);

impl From<HumanDuration> for std::time::Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

fn parse_duration(text: &str) -> Result<HumanDuration, String> {
    tekton_approval::api::time::parse_go_duration(text)
        .map(HumanDuration)
        .map_err(|e| e.to_string())
}

/// The seal keys from their Secret (created if missing), kept fresh in the background.
async fn load_seal_keys(args: &Args) -> anyhow::Result<Arc<KeySource>> {
    let client = client(args.kubeconfig.as_deref()).await?;
    let keys = KeySource::ensure(client, &args.tls_secret_namespace, &args.seal_key_secret).await?;
    tokio::spawn(keys.clone().maintain());
    Ok(keys)
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration found (set KUBECONFIG or run in a cluster)")?,
    };
    Ok(kube::Client::try_from(config)?)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}
