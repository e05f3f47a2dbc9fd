//! `approval-controller`: the reconciler (and, by flag, the admission webhook) of Tekton
//! approval gates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::Parser;
use futures::FutureExt;
use tekton_approval::controller::{self, Context, Scope};
use tekton_approval::events::EventPublisher;
use tekton_approval::metrics::Metrics;
use tekton_approval::probes::{self, Probes};
use tekton_approval::telemetry::{self, LogFormat};

/// Holds Tekton CustomRuns of kind Approval until approvers decide: no pod, no polling.
///
/// Examples:
///   approval-controller                          # watch all namespaces
///   approval-controller -n ci -n release         # only these namespaces
///   approval-controller --log-format json
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
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

    /// A kubeconfig to use instead of KUBECONFIG / in-cluster configuration.
    #[arg(long, env = "APPROVAL_KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,

    /// Tells replicas apart in events (defaults to the pod or host name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format);
    let client = client(args.kubeconfig.as_deref()).await?;
    let instance = args.instance.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "approval-controller".into())
    });
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let stores = Arc::default();
    let shutdown = shutdown_signal().shared();

    let ctx = Arc::new(Context {
        client: client.clone(),
        events: EventPublisher::new(client, instance),
        metrics: metrics.clone(),
        clock: chrono::Utc::now,
    });
    let scope = if args.namespaces.is_empty() {
        Scope::AllNamespaces
    } else {
        Scope::Namespaces(args.namespaces.clone())
    };
    tracing::info!(?scope, "starting approval controller");
    let probes = Probes {
        ready: ready.clone(),
        metrics,
        stores: Arc::clone(&stores),
    };
    let server = probes::serve(args.probe_addr, probes, shutdown.clone());
    let reconciler = controller::run(ctx, scope, ready, stores, shutdown.clone());
    let (served, ()) = tokio::join!(server, reconciler);
    served.context("probe server")?;
    tracing::info!("stopped");
    Ok(())
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
