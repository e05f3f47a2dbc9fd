//! The end-to-end harness: each scenario gets its own namespace on the real control plane
//! that `e2e/scripts/e2e.sh` started, clients for the suite's people (by impersonation, so
//! the webhook sees them exactly as it would see real users), and waits on conditions
//! through watches with timeouts, never sleeps.
//!
//! Tasks other than gates are real TaskRuns where the scenario is about a pipeline's flow
//! (`work::work_task`: pods on the local node), and elsewhere `Noop` custom tasks completed
//! by a small runner in this harness, at once: there the gate is what is under test.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{Condition, await_condition};
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};
use tekton_approval::api::{CustomRun, CustomRunStatus, RunResult};

pub use tekton_approval::api;

pub mod browser;
pub mod image;
pub mod notifying;
pub mod proxy;
pub mod receiver;
pub mod serve;
pub mod slack;
pub mod work;

pub use work::{node_or_skip, step_image, work_task};

/// The custom task the harness completes at once (stands in for build and deploy steps).
pub const NOOP_API_VERSION: &str = "e2e.approval.dev/v1";

/// How long any single wait may take before the scenario fails.
pub const WAIT: Duration = Duration::from_secs(90);

/// A scenario: a namespace, clients, and a report of how it went.
pub struct Scenario {
    name: &'static str,
    /// The scenario's own namespace.
    pub namespace: String,
    /// A cluster-admin client (creates pipelines, reads everything).
    pub admin: Client,
    started: Instant,
    noop_runner: tokio::task::JoinHandle<()>,
}

/// Starts a scenario: a fresh namespace and a Noop runner in it.
pub async fn scenario(name: &'static str) -> Scenario {
    let admin = Client::try_default().await.expect(
        "no cluster: run the suite with `make e2e` (KUBECONFIG must point at the e2e cluster)",
    );
    let suffix = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let short: String = name.replace('_', "-").chars().take(40).collect();
    let namespace = format!("{}-{suffix}", short.trim_end_matches('-'));
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .expect("creating the scenario namespace");
    if step_image().is_some() {
        // With ServiceAccount admission a pod needs its service account, which
        // kube-controller-manager makes for a new namespace a moment later.
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &namespace);
        let made = await_condition(accounts, "default", |sa: Option<&ServiceAccount>| {
            sa.is_some()
        });
        tokio::time::timeout(WAIT, made)
            .await
            .expect("timed out waiting for the namespace's default ServiceAccount")
            .expect("watching ServiceAccounts");
    }
    let noop_runner = tokio::spawn(run_noop_tasks(Api::namespaced(admin.clone(), &namespace)));
    eprintln!("e2e: {name} started in namespace {namespace}");
    Scenario {
        name,
        namespace,
        admin,
        started: Instant::now(),
        noop_runner,
    }
}

impl Scenario {
    /// A client acting as `user` in `groups` (impersonation: the API server, and so the
    /// webhook, sees exactly this identity).
    pub async fn as_user(&self, user: &str, groups: &[&str]) -> Client {
        let mut config = Config::infer().await.expect("kubeconfig");
        config.auth_info.impersonate = Some(user.to_string());
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
        Client::try_from(config).expect("client")
    }

    /// CustomRuns of this namespace.
    pub fn customruns(&self) -> Api<CustomRun> {
        Api::namespaced(self.admin.clone(), &self.namespace)
    }

    /// PipelineRuns of this namespace.
    pub fn pipelineruns(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.admin.clone(), &self.namespace, &pipelinerun_resource())
    }

    /// Creates a PipelineRun `name` with an embedded pipeline spec, as the admin.
    pub async fn start_pipeline(
        &self,
        name: &str,
        pipeline_spec: Value,
        extra_spec: Value,
    ) -> DynamicObject {
        self.start_pipeline_as(&self.admin, name, pipeline_spec, extra_spec, json!({}))
            .await
            .expect("creating the PipelineRun")
    }

    /// Creates a PipelineRun `name` as `client`, with `annotations`.
    pub async fn start_pipeline_as(
        &self,
        client: &Client,
        name: &str,
        pipeline_spec: Value,
        extra_spec: Value,
        annotations: Value,
    ) -> Result<DynamicObject, kube::Error> {
        let mut spec = json!({"pipelineSpec": pipeline_spec});
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
            spec.extend(extra);
        }
        let run: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
            "spec": spec,
        }))
        .unwrap();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &self.namespace, &pipelinerun_resource());
        api.create(&PostParams::default(), &run).await
    }

    /// Starts PipelineRun `name` whose one task is the gate `approve` with `params`, as the
    /// admin, and waits until the gate `<name>-approve` waits.
    pub async fn start_gate(&self, name: &str, params: Value) -> CustomRun {
        self.start_pipeline(
            name,
            json!({"tasks": [gate_task("approve", &[], params)]}),
            json!({}),
        )
        .await;
        self.wait_gate_reason(&format!("{name}-approve"), "AwaitingApproval")
            .await
    }

    /// Waits until CustomRun `name` satisfies `ready`; `what` names the expectation.
    pub async fn wait_customrun(
        &self,
        name: &str,
        what: &str,
        ready: impl Fn(&CustomRun) -> bool + Send + 'static,
    ) -> CustomRun {
        let condition = move |run: Option<&CustomRun>| run.is_some_and(&ready);
        self.wait(self.customruns(), name, what, condition).await
    }

    /// Waits until the gate `name` shows `reason`.
    pub async fn wait_gate_reason(&self, name: &str, reason: &'static str) -> CustomRun {
        self.wait_customrun(name, reason, move |run| {
            succeeded_reason(run) == Some(reason)
        })
        .await
    }

    /// Waits until the PipelineRun `name` has finished (Succeeded True or False).
    pub async fn wait_pipelinerun_done(&self, name: &str) -> DynamicObject {
        let condition = |run: Option<&DynamicObject>| {
            run.and_then(pipelinerun_condition)
                .is_some_and(|(status, _)| status != "Unknown")
        };
        self.wait(
            self.pipelineruns(),
            name,
            "the PipelineRun to finish",
            condition,
        )
        .await
    }

    /// Waits until the PipelineRun `name`'s status lists the child run `child`.
    pub async fn wait_pipelinerun_lists_child(&self, name: &str, child: &str) -> DynamicObject {
        let child = child.to_string();
        let condition = move |run: Option<&DynamicObject>| {
            run.and_then(|r| r.data["status"]["childReferences"].as_array().cloned())
                .is_some_and(|children| children.iter().any(|c| c["name"] == child.as_str()))
        };
        self.wait(
            self.pipelineruns(),
            name,
            "the PipelineRun's status to list its child",
            condition,
        )
        .await
    }

    /// Waits until the PipelineRun `name` has a Succeeded condition of any kind: Tekton has
    /// validated it and started (Running) or ended it.
    pub async fn wait_pipelinerun_running_or_done(&self, name: &str) -> DynamicObject {
        let condition = |run: Option<&DynamicObject>| {
            run.and_then(pipelinerun_condition)
                .is_some_and(|(_, reason)| !reason.is_empty() && reason != "Started")
        };
        self.wait(
            self.pipelineruns(),
            name,
            "Tekton to start the PipelineRun",
            condition,
        )
        .await
    }

    async fn wait<K>(&self, api: Api<K>, name: &str, what: &str, condition: impl Condition<K>) -> K
    where
        K: kube::Resource + Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + 'static,
    {
        match tokio::time::timeout(WAIT, await_condition(api.clone(), name, condition)).await {
            Ok(Ok(Some(object))) => object,
            Ok(Ok(None)) => panic!("{name} was deleted while waiting for {what}"),
            Ok(Err(e)) => panic!("watching {name} for {what}: {e}"),
            Err(_) => {
                let last = api.get_opt(name).await.ok().flatten();
                panic!("timed out after {WAIT:?} waiting for {name}: {what}; last seen: {last:#?}")
            }
        }
    }

    /// Sets an annotation on CustomRun `name` as `client`, like `kubectl annotate --overwrite`.
    pub async fn annotate(
        &self,
        client: &Client,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<CustomRun, kube::Error> {
        let api: Api<CustomRun> = Api::namespaced(client.clone(), &self.namespace);
        let patch = json!({"metadata": {"annotations": {key: value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    }

    /// Sets several annotations on CustomRun `name` as `client` in one write (a decision
    /// with its inputs or effect time, as `kubectl annotate` with several pairs).
    pub async fn annotate_all(
        &self,
        client: &Client,
        name: &str,
        annotations: Value,
    ) -> Result<CustomRun, kube::Error> {
        let api: Api<CustomRun> = Api::namespaced(client.clone(), &self.namespace);
        let patch = json!({"metadata": {"annotations": annotations}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
    }

    /// Who holds the controllers' Lease (`approval-controller` in `tekton-approval`).
    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(self.admin.clone(), "tekton-approval");
        leases
            .get_opt("approval-controller")
            .await
            .expect("reading the Lease")
            .and_then(|lease| lease.spec?.holder_identity)
    }

    /// Waits until `who` holds the controllers' Lease.
    pub async fn until_lease_held_by(&self, who: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let holder = self.lease_holder().await;
            if holder.as_deref() == Some(who) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{who} never took the Lease ({holder:?})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The reasons of events on `object_name`, oldest first.
    pub async fn event_reasons(&self, object_name: &str) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.admin.clone(), &self.namespace);
        let mut events: Vec<_> = api
            .list(&Default::default())
            .await
            .expect("listing events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object_name))
            .collect();
        events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        events
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Waits for an event with `reason` on `object_name` and returns its note (a watch on
    /// the namespace's events, with the usual timeout).
    pub async fn wait_event(&self, object_name: &str, reason: &str) -> String {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.admin.clone(), &self.namespace);
        let matching = |event: &k8s_openapi::api::events::v1::Event| {
            event.reason.as_deref() == Some(reason)
                && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object_name)
        };
        let search = async {
            let mut events = std::pin::pin!(watcher::watcher(api, Default::default()));
            while let Some(event) = events.next().await {
                if let Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) = event
                    && matching(&e)
                {
                    return e.note.unwrap_or_default();
                }
            }
            panic!("the event watch on {} ended", self.namespace)
        };
        match tokio::time::timeout(WAIT, search).await {
            Ok(note) => note,
            Err(_) => panic!(
                "timed out after {WAIT:?} waiting for a {reason} event on {object_name}; events: {:?}",
                self.event_reasons(object_name).await
            ),
        }
    }

    /// Just the reasons of events on `object_name`, oldest first.
    pub async fn event_reason_names(&self, object_name: &str) -> Vec<String> {
        self.event_reasons(object_name)
            .await
            .into_iter()
            .map(|(reason, _)| reason)
            .collect()
    }

    /// Runs a shell script of the harness (e2e/scripts), e.g. to kill the controller.
    pub async fn script(&self, args: &[&str]) {
        script(args).await
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.noop_runner.abort();
        let secs = self.started.elapsed().as_secs_f64();
        let verdict = if std::thread::panicking() {
            eprintln!(
                "e2e: {} FAILED after {secs:.1}s (namespace {})",
                self.name, self.namespace
            );
            print_logs(&self.namespace);
            "FAILED"
        } else {
            "passed"
        };
        record_duration(verdict, self.name, secs);
    }
}

/// Appends one line per scenario to `$APPROVAL_STATE/logs/e2e-durations.txt`, which e2e.sh
/// prints at the end: cargo test shows a passing test's own output only on failure.
fn record_duration(verdict: &str, name: &str, secs: f64) {
    use std::io::Write as _;
    let Ok(state) = std::env::var("APPROVAL_STATE") else {
        return;
    };
    let line = format!("{verdict:<6} {secs:>6.1}s  {name}\n");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{state}/logs/e2e-durations.txt"))
    {
        // One write per line: parallel scenarios never interleave within a line.
        let _ = file.write_all(line.as_bytes());
    }
}

/// Runs a shell script of the harness (e2e/scripts), e.g. to kill the controller.
pub async fn script(args: &[&str]) {
    let scripts =
        std::env::var("APPROVAL_E2E_SCRIPTS").expect("APPROVAL_E2E_SCRIPTS (set by e2e.sh)");
    let status = tokio::process::Command::new(format!("{scripts}/{}", args[0]))
        .args(&args[1..])
        .status()
        .await
        .expect("running a harness script");
    assert!(status.success(), "{args:?} failed: {status}");
}

/// Appends a measured duration to `$APPROVAL_STATE/logs/e2e-measurements.txt`, which
/// e2e.sh prints at the end (a passing test's own output is not shown).
pub fn record_measurement(what: &str, took: Duration) {
    use std::io::Write as _;
    let Ok(state) = std::env::var("APPROVAL_STATE") else {
        return;
    };
    let line = format!("{:>8.2}s  {what}\n", took.as_secs_f64());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{state}/logs/e2e-measurements.txt"))
    {
        let _ = file.write_all(line.as_bytes());
    }
}

/// On failure: the lines of each component's log that mention the scenario's namespace.
fn print_logs(namespace: &str) {
    let Ok(state) = std::env::var("APPROVAL_STATE") else {
        return;
    };
    for log in [
        "approval-controller",
        "approval-controller-2",
        "approval-webhook",
        "approval-webhook-2",
        "tekton-controller",
    ] {
        let path = format!("{state}/logs/{log}.log");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(namespace)).collect();
        eprintln!(
            "---- {path}: {} lines about {namespace} (last 40) ----",
            lines.len()
        );
        for line in lines.iter().rev().take(40).rev() {
            eprintln!("{line}");
        }
    }
}

/// `(status, reason)` of a PipelineRun's Succeeded condition.
pub fn pipelinerun_condition(run: &DynamicObject) -> Option<(String, String)> {
    let conditions = run.data.get("status")?.get("conditions")?.as_array()?;
    let succeeded = conditions.iter().find(|c| c["type"] == "Succeeded")?;
    Some((
        succeeded["status"].as_str().unwrap_or_default().to_string(),
        succeeded["reason"].as_str().unwrap_or_default().to_string(),
    ))
}

/// The reason of a CustomRun's Succeeded condition.
pub fn succeeded_reason(run: &CustomRun) -> Option<&str> {
    run.status.as_ref()?.succeeded().map(|c| c.reason.as_str())
}

/// `(status, reason, message)` of a CustomRun's Succeeded condition.
pub fn condition(run: &CustomRun) -> (String, String, String) {
    let c = run
        .status
        .as_ref()
        .and_then(|s| s.succeeded())
        .expect("a Succeeded condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// A result's value.
pub fn result<'a>(run: &'a CustomRun, name: &str) -> &'a str {
    run.status
        .as_ref()
        .and_then(|s| s.results.iter().find(|r| r.name == name))
        .map(|r| r.value.as_str())
        .unwrap_or_else(|| panic!("{} has no result {name}: {:?}", run.name_any(), run.status))
}

/// A pipeline task running the gate with these params.
pub fn gate_task(name: &str, run_after: &[&str], params: Value) -> Value {
    json!({
        "name": name,
        "runAfter": run_after,
        "taskRef": {"apiVersion": tekton_approval::approval::API_VERSION, "kind": "Approval"},
        "params": params,
    })
}

/// A pipeline task completed at once by the harness; its params come back as results.
pub fn noop_task(name: &str, run_after: &[&str]) -> Value {
    json!({"name": name, "runAfter": run_after, "taskRef": {"apiVersion": NOOP_API_VERSION, "kind": "Noop"}})
}

fn pipelinerun_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tekton.dev", "v1", "PipelineRun"),
        "pipelineruns",
    )
}

/// Completes every `Noop` CustomRun of a namespace: Succeeded, params echoed as results.
async fn run_noop_tasks(api: Api<CustomRun>) {
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), Default::default()));
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) = event else {
            continue;
        };
        let is_noop = run
            .spec
            .custom_ref
            .as_ref()
            .is_some_and(|r| r.api_version == NOOP_API_VERSION);
        if !is_noop || run.status.as_ref().is_some_and(|s| s.succeeded().is_some()) {
            continue;
        }
        let now = chrono_now();
        let results = run
            .spec
            .params
            .iter()
            .map(|p| RunResult {
                name: p.name.clone(),
                value: match &p.value {
                    api::ParamValue::String(s) => s.clone(),
                    other => serde_json::to_string(other).unwrap(),
                },
            })
            .collect();
        let status: CustomRunStatus = serde_json::from_value(json!({
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Done", "lastTransitionTime": now}],
            "startTime": now, "completionTime": now,
        }))
        .unwrap();
        let mut done = run.clone();
        done.status = Some(CustomRunStatus { results, ..status });
        let _ = api
            .replace_status(&run.name_any(), &PostParams::default(), &done)
            .await;
    }
}

fn chrono_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Runs a command and returns its stdout, failing with its stderr.
pub async fn command_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        return Err(anyhow!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
