//! The only part of the CLI that talks to the API server: connecting as kubectl would, reading
//! gates, asking who the user is, and watching for a decision's outcome; the decision itself
//! is written by [`crate::deciding`], the path the web page takes too. Every decision about
//! what the answers mean is made by the pure modules next to this one.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::await_condition;
use kube::{Client, Config};

use super::args::{Connection, kubeconfig_files};
use super::exit::CliError;
use super::target::{Target, choose};
use super::view::Identity;
use crate::api::CustomRun;
use crate::approval::classify;

/// A connection to the cluster, with the namespace commands act in.
pub struct Cluster {
    client: Client,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
}

impl Cluster {
    /// Connects as kubectl would with the same flags: `--kubeconfig`, else the existing files
    /// of `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account;
    /// `--context`, `--cluster`, `--user` pick from the kubeconfig; `--as`/`--as-group`
    /// impersonate.
    pub async fn connect(connection: &Connection) -> Result<Self, CliError> {
        let options = KubeConfigOptions {
            context: connection.context.clone(),
            cluster: connection.cluster.clone(),
            user: connection.user.clone(),
        };
        let picks_from_kubeconfig =
            options.context.is_some() || options.cluster.is_some() || options.user.is_some();
        let files = kubeconfig_files(
            connection.kubeconfig.as_deref(),
            std::env::var_os("KUBECONFIG").as_deref(),
            |path| path.exists(),
        )?;
        let config = match files {
            Some(files) => {
                let mut merged = Kubeconfig::default();
                for path in &files {
                    let file = Kubeconfig::read_from(path).map_err(|e| {
                        CliError::Other(format!("reading kubeconfig {}: {e}", path.display()))
                    })?;
                    merged = merged
                        .merge(file)
                        .map_err(|e| CliError::Other(format!("merging kubeconfig files: {e}")))?;
                }
                Config::from_custom_kubeconfig(merged, &options)
                    .await
                    .map_err(|e| CliError::Other(format!("kubeconfig: {e}")))?
            }
            // Named parts exist only in a kubeconfig: no in-cluster fallback for them.
            None if picks_from_kubeconfig => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| CliError::Other(format!("kubeconfig: {e}")))?,
            None => Config::infer().await.map_err(|e| {
                CliError::Other(format!(
                    "no Kubernetes configuration found (set KUBECONFIG or pass --kubeconfig): {e}"
                ))
            })?,
        };
        let mut config = config;
        if let Some(user) = &connection.impersonate {
            config.auth_info.impersonate = Some(user.clone());
            config.auth_info.impersonate_groups = (!connection.impersonate_groups.is_empty())
                .then(|| connection.impersonate_groups.clone());
        }
        let namespace = connection
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config)
            .map_err(|e| CliError::Other(format!("cannot build a client: {e}")))?;
        Ok(Self { client, namespace })
    }

    fn customruns(&self, namespace: Option<&str>) -> Api<CustomRun> {
        match namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }

    /// Who the API server says the user is (with `--as`, the impersonated user). `None` when
    /// it will not say (SelfSubjectReview needs Kubernetes 1.28+ and may be forbidden):
    /// listing still works, only the CAN-DECIDE column is unknown.
    pub async fn identity(&self) -> Option<Identity> {
        let reviews: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let review = reviews
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .ok()?;
        let user = review.status?.user_info?;
        Some(Identity {
            username: user.username?,
            groups: user.groups.unwrap_or_default(),
        })
    }

    /// The gates in a namespace, or in all of them.
    pub async fn gates(&self, namespace: Option<&str>) -> Result<Vec<CustomRun>, CliError> {
        // Gates carry no label of their own to select on: Tekton labels CustomRuns by
        // pipeline, not by custom task kind, so the filtering happens here.
        let runs = self
            .customruns(namespace)
            .list(&ListParams::default())
            .await?;
        Ok(runs
            .items
            .into_iter()
            .filter(|run| classify(&run.spec).is_some())
            .collect())
    }

    /// The gate a NAME means, in this cluster's namespace.
    pub async fn find(&self, target: &Target) -> Result<CustomRun, CliError> {
        let api = self.customruns(Some(&self.namespace));
        let found = match target {
            Target::CustomRun(name) => api.get_opt(name).await?.into_iter().collect(),
            Target::PipelineRun(_) => {
                let selector = target.label_selector().unwrap_or_default();
                api.list(&ListParams::default().labels(&selector))
                    .await?
                    .items
            }
        };
        choose(target, &self.namespace, found)
    }

    /// Writes a decision on `gate` with the user's own credentials (or `--as`), through the
    /// path every channel takes, and returns the gate as stored and what was recorded.
    pub async fn decide(
        &self,
        gate: &CustomRun,
        ask: crate::deciding::Ask<'_>,
    ) -> Result<(CustomRun, super::decide::Recorded), CliError> {
        crate::deciding::decide(&self.client, crate::deciding::Acting::AsClient, gate, ask).await
    }

    /// Watches a gate until `done` says so, for at most `wait`; the object that satisfied it.
    pub async fn wait_for(
        &self,
        name: &str,
        wait: Duration,
        done: impl Fn(&CustomRun) -> bool,
    ) -> Option<CustomRun> {
        if wait.is_zero() {
            return None;
        }
        let api = self.customruns(Some(&self.namespace));
        let watch = await_condition(api, name, move |run: Option<&CustomRun>| {
            run.is_some_and(&done)
        });
        tokio::time::timeout(wait, watch).await.ok()?.ok()?
    }
}
