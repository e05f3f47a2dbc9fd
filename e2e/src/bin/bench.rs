//! `make bench`: the workloads of BENCHMARKS.md against one system at a time (ours, or
//! OpenShift's manual-approval-gate), on the local control plane that
//! `e2e/scripts/bench.sh` started; and `report`, which renders bench/results.json as
//! BENCHMARKS.md.
//!
//! It measures from outside, as users would see it: gates are CustomRuns created directly,
//! a decision is each system's own approve request made as an approver (by impersonation),
//! and a gate is waiting or decided when a watch shows its `Succeeded` condition saying so.
//! It knows nothing of either system beyond those public paths and the process ids.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The user every gate names as its approver (bench.sh grants it the RBAC to decide).
const APPROVER: &str = "bench-approver";
/// Quiet time between the last gate acknowledged and the idle measurement.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(about = "Benchmarks of the approval gate against manual-approval-gate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every workload against one running system and record the numbers.
    Run(RunArgs),
    /// Render the recorded numbers as BENCHMARKS.md.
    Report {
        #[arg(long)]
        results: PathBuf,
        /// Hand-written analysis appended to the generated tables.
        #[arg(long)]
        analysis: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    system: System,
    /// How many gates wait at once.
    #[arg(long)]
    gates: usize,
    /// An existing, empty namespace for the gates.
    #[arg(long)]
    namespace: String,
    /// The JSON file to merge this run's numbers into.
    #[arg(long)]
    results: PathBuf,
    /// The commit of our controller that is measured.
    #[arg(long)]
    commit: String,
    /// `name=pid-file` of each process of the system (re-read after a restart).
    #[arg(long = "pid", value_parser = parse_pid_file, required = true)]
    pids: Vec<(String, PathBuf)>,
    /// Shell command that succeeds once the controller is ready.
    #[arg(long)]
    ready_command: String,
    /// Shell command that SIGKILLs the controller.
    #[arg(long)]
    kill_controller: String,
    /// Shell command that starts the controller again.
    #[arg(long)]
    start_controller: String,
    #[arg(long, default_value_t = 50)]
    create_concurrency: usize,
    #[arg(long, default_value_t = 200)]
    decisions: usize,
    #[arg(long, default_value_t = 1000)]
    burst: usize,
    /// Approve requests in flight at once during the burst.
    #[arg(long, default_value_t = 100)]
    burst_concurrency: usize,
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// Shell command that starts a second controller replica (a follower); with
    /// --follower-pid, the failover workload runs last: the leader is SIGKILLed
    /// (--kill-controller) while the follower is ready.
    #[arg(long, requires = "follower_pid")]
    start_follower: Option<String>,
    /// The follower's pid file.
    #[arg(long, requires = "start_follower")]
    follower_pid: Option<PathBuf>,
}

fn parse_pid_file(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected name=pid-file, got {arg}"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}

/// The system under test.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum System {
    /// This repository's approval-controller.
    Ours,
    /// OpenShift's manual-approval-gate.
    Mag,
}

impl System {
    fn title(self) -> &'static str {
        match self {
            System::Ours => "approval-controller (ours)",
            System::Mag => "manual-approval-gate",
        }
    }

    /// A gate as each system's documentation writes one, one approver, no deadline soon.
    fn gate(self, name: &str) -> Value {
        let (custom_ref, params) = match self {
            System::Ours => (
                json!({"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"}),
                json!([{"name": "approvers", "value": [APPROVER]}]),
            ),
            System::Mag => (
                json!({"apiVersion": "openshift-pipelines.org/v1alpha1", "kind": "ApprovalTask"}),
                json!([
                    {"name": "approvers", "value": [APPROVER]},
                    {"name": "numberOfApprovalsRequired", "value": "1"},
                ]),
            ),
        };
        json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {"name": name},
            "spec": {"customRef": custom_ref, "params": params, "timeout": "24h"},
        })
    }

    /// The approver's request, returning when the API server has answered it.
    async fn approve(self, approver: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
        match self {
            // What `kubectl annotate` and our plugin send.
            System::Ours => {
                let patch =
                    json!({"metadata": {"annotations": {"approval.tekton.dev/approve": "bench"}}});
                customruns(approver, namespace)
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            // What `tkn approvaltask approve` does: read the ApprovalTask, set this
            // approver's input, update it. The read is not part of the latency.
            System::Mag => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(approver.clone(), namespace, &approval_task_resource());
                let mut task = api.get(name).await?;
                let approvers = task
                    .data
                    .pointer_mut("/spec/approvers")
                    .and_then(Value::as_array_mut)
                    .ok_or_else(|| anyhow!("ApprovalTask {name} has no approvers yet"))?;
                for approver in approvers.iter_mut().filter(|a| a["name"] == APPROVER) {
                    approver["input"] = json!("approve");
                }
                api.replace(name, &PostParams::default(), &task).await?;
            }
        }
        Ok(())
    }
}

fn customruns(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("tekton.dev", "v1beta1", "CustomRun");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

fn approval_task_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("openshift-pipelines.org", "v1alpha1", "ApprovalTask");
    ApiResource::from_gvk(&gvk)
}

fn gate_name(index: usize) -> String {
    format!("gate-{index:05}")
}

// ---- observing gates -------------------------------------------------------------------

/// What a gate's `Succeeded` condition says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unseen,
    Waiting,
    Succeeded,
}

fn phase(run: &DynamicObject) -> Phase {
    let status = run.data["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Succeeded"))
        .and_then(|condition| condition["status"].as_str());
    match status {
        Some("Unknown") => Phase::Waiting,
        Some("True") => Phase::Succeeded,
        _ => Phase::Unseen,
    }
}

/// When the watch first showed each gate waiting, and decided.
#[derive(Default)]
struct Gates {
    waiting_since: HashMap<String, Instant>,
    succeeded_at: HashMap<String, Instant>,
}

impl Gates {
    fn observe(&mut self, name: String, phase: Phase, at: Instant) {
        match phase {
            Phase::Unseen => {}
            Phase::Waiting => {
                self.waiting_since.entry(name).or_insert(at);
            }
            Phase::Succeeded => {
                self.succeeded_at.entry(name).or_insert(at);
            }
        }
    }

    /// Gates waiting now: shown waiting and not yet decided.
    fn waiting(&self) -> usize {
        self.waiting_since
            .keys()
            .filter(|name| !self.succeeded_at.contains_key(*name))
            .count()
    }
}

/// Follows every CustomRun of the namespace; the timestamps are taken as events arrive.
fn follow_gates(client: Client, namespace: &str) -> watch::Receiver<Gates> {
    let (sender, receiver) = watch::channel(Gates::default());
    let runs = customruns(&client, namespace);
    tokio::spawn(async move {
        let mut events = watcher(runs, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) => {
                    let (name, phase) =
                        (run.metadata.name.clone().unwrap_or_default(), phase(&run));
                    if phase != Phase::Unseen {
                        sender.send_modify(|gates| gates.observe(name, phase, Instant::now()));
                    }
                }
                Ok(_) => {}
                Err(error) => eprintln!("bench: watch error (retrying): {error}"),
            }
        }
    });
    receiver
}

/// Waits until `done` holds for the observed gates.
async fn wait_gates(
    gates: &mut watch::Receiver<Gates>,
    what: &str,
    limit: Duration,
    done: impl FnMut(&Gates) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(limit, gates.wait_for(done))
        .await
        .map_err(|_| anyhow!("timed out after {limit:?} waiting for {what}"))?
        .map_err(|_| anyhow!("the watch ended while waiting for {what}"))?;
    Ok(())
}

// ---- processes --------------------------------------------------------------------------

/// One process's CPU time and resident memory, from /proc.
struct Sample {
    cpu_seconds: f64,
    rss_mib: f64,
}

fn sample(pid: u32, ticks_per_second: f64) -> anyhow::Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is the 3rd field of the
    // line, utime and stime the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?
        .parse()?;
    Ok(Sample {
        cpu_seconds: ticks / ticks_per_second,
        rss_mib: rss_kib / 1024.0,
    })
}

fn read_pid(file: &Path) -> anyhow::Result<u32> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(text.trim().parse()?)
}

fn ticks_per_second() -> anyhow::Result<f64> {
    let output = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()?;
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

async fn shell(command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(command)
        .status()
        .await?;
    if !status.success() {
        bail!("`{command}` failed: {status}");
    }
    Ok(())
}

async fn is_ready(command: &str) -> bool {
    let probe = tokio::process::Command::new("bash")
        .args(["-c", command])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    matches!(probe.await, Ok(status) if status.success())
}

// ---- results ----------------------------------------------------------------------------

/// Everything `make bench` recorded: the machine, versions, and one entry per system and N.
#[derive(Serialize, Deserialize, Default)]
struct Results {
    date: String,
    machine: Machine,
    versions: HashMap<String, String>,
    runs: Vec<RunResult>,
}

#[derive(Serialize, Deserialize, Default)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
    kernel: String,
}

#[derive(Serialize, Deserialize)]
struct RunResult {
    system: System,
    gates: usize,
    date: String,
    /// Creating the N CustomRuns (50 requests in flight).
    create_seconds: f64,
    /// From the first create until the watch showed every gate waiting.
    acknowledge_seconds: f64,
    idle: Idle,
    decision: Decision,
    burst: Burst,
    restart: Restart,
    /// Absent for systems (or results) without a follower replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failover: Option<Failover>,
}

#[derive(Serialize, Deserialize)]
struct Idle {
    window_seconds: u64,
    processes: Vec<ProcessIdle>,
    rss_mib: f64,
    cpu_seconds: f64,
}

#[derive(Serialize, Deserialize)]
struct ProcessIdle {
    name: String,
    rss_mib: f64,
    rss_peak_mib: f64,
    cpu_seconds: f64,
}

#[derive(Serialize, Deserialize)]
struct Decision {
    count: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Serialize, Deserialize)]
struct Burst {
    count: usize,
    concurrency: usize,
    seconds: f64,
}

#[derive(Serialize, Deserialize)]
struct Restart {
    /// From starting the killed controller until its readiness probe answered.
    ready_seconds: f64,
    /// From starting it until an approval made after it was ready was shown Succeeded.
    honoured_seconds: f64,
    /// Resident memory of all the system's processes once the restarted controller has
    /// relisted the N gates (read after the decision-latency workload). Absent from
    /// results recorded before it was measured.
    #[serde(default)]
    rss_mib: f64,
}

#[derive(Serialize, Deserialize)]
struct Failover {
    /// From the SIGKILL of the leader (an approval sent right after it) until the watch
    /// showed that approval's gate Succeeded: the follower took over and applied it.
    seconds: f64,
    /// The follower's resident memory once it was ready (its cache holds the N gates).
    follower_rss_mib: f64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: read("/proc/cpuinfo")
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|value| value.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
    }
}

/// The pinned tool versions (e2e/versions.env), plus the commit of ours that ran.
fn versions(commit: &str) -> anyhow::Result<HashMap<String, String>> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("versions.env");
    let mut versions: HashMap<String, String> = std::fs::read_to_string(&file)?
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    versions.insert("APPROVAL_CONTROLLER_COMMIT".into(), commit.to_string());
    Ok(versions)
}

fn now_utc() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M UTC")
        .to_string()
}

fn merge_into(file: &Path, commit: &str, run: RunResult) -> anyhow::Result<()> {
    let mut results: Results = match std::fs::read_to_string(file) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?
        }
        Err(_) => Results::default(),
    };
    results
        .runs
        .retain(|r| !(r.system == run.system && r.gates == run.gates));
    results.runs.push(run);
    results
        .runs
        .sort_by_key(|r| (r.gates, r.system == System::Mag));
    results.date = now_utc();
    results.machine = machine();
    results.versions = versions(commit)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(file, serde_json::to_string_pretty(&results)? + "\n")?;
    Ok(())
}

// ---- the workloads ----------------------------------------------------------------------

struct Bench {
    args: RunArgs,
    admin: Client,
    approver: Client,
    gates: watch::Receiver<Gates>,
}

impl Bench {
    fn log(&self, message: impl std::fmt::Display) {
        eprintln!(
            "[bench {:?} N={}] {message}",
            self.args.system, self.args.gates
        );
    }

    /// Creates gates `range` with bounded concurrency.
    async fn create(&self, range: std::ops::Range<usize>) -> anyhow::Result<()> {
        let runs = customruns(&self.admin, &self.args.namespace);
        stream::iter(range.map(|i| {
            let runs = runs.clone();
            let gate: DynamicObject = serde_json::from_value(self.args.system.gate(&gate_name(i)))
                .expect("a gate is a valid object");
            async move { runs.create(&PostParams::default(), &gate).await }
        }))
        .buffer_unordered(self.args.create_concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await?;
        Ok(())
    }

    async fn approve_and_wait(&mut self, name: &str, limit: Duration) -> anyhow::Result<Duration> {
        let system = self.args.system;
        system
            .approve(&self.approver, &self.args.namespace, name)
            .await?;
        let answered = Instant::now();
        wait_gates(&mut self.gates, name, limit, |g| {
            g.succeeded_at.contains_key(name)
        })
        .await?;
        let succeeded = self.gates.borrow().succeeded_at[name];
        // The watch can deliver the new status before the approve response is read.
        Ok(succeeded.saturating_duration_since(answered))
    }

    /// 1. acknowledge: N gates created, until all are shown waiting.
    async fn acknowledge(&mut self) -> anyhow::Result<(f64, f64)> {
        let n = self.args.gates;
        let start = Instant::now();
        self.create(0..n).await?;
        let created = start.elapsed();
        self.log(format!("created {n} gates in {created:.1?}"));
        let limit = Duration::from_secs(600 + n as u64 / 5);
        wait_gates(&mut self.gates, "every gate waiting", limit, |g| {
            g.waiting() >= n
        })
        .await?;
        let acknowledged = self
            .gates
            .borrow()
            .waiting_since
            .values()
            .max()
            .copied()
            .unwrap_or(start);
        Ok((created.as_secs_f64(), (acknowledged - start).as_secs_f64()))
    }

    /// 2. idle: CPU and memory of each process over the window, nothing happening.
    async fn idle(&self) -> anyhow::Result<Idle> {
        tokio::time::sleep(SETTLE).await;
        let ticks = ticks_per_second()?;
        let pids: Vec<(String, u32)> = self
            .args
            .pids
            .iter()
            .map(|(name, file)| Ok((name.clone(), read_pid(file)?)))
            .collect::<anyhow::Result<_>>()?;
        let first: Vec<Sample> = pids
            .iter()
            .map(|(_, pid)| sample(*pid, ticks))
            .collect::<Result<_, _>>()?;
        let mut peaks = vec![0.0f64; pids.len()];
        let mut last = Vec::new();
        for _ in 0..self.args.idle_seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            last = pids
                .iter()
                .map(|(_, pid)| sample(*pid, ticks))
                .collect::<Result<_, _>>()?;
            for (peak, now) in peaks.iter_mut().zip(&last) {
                *peak = peak.max(now.rss_mib);
            }
        }
        let processes: Vec<ProcessIdle> = pids
            .iter()
            .zip(first.iter().zip(&last))
            .zip(&peaks)
            .map(|(((name, _), (first, last)), peak)| ProcessIdle {
                name: name.clone(),
                rss_mib: round(last.rss_mib, 1),
                rss_peak_mib: round(*peak, 1),
                cpu_seconds: round(last.cpu_seconds - first.cpu_seconds, 2),
            })
            .collect();
        Ok(Idle {
            window_seconds: self.args.idle_seconds,
            rss_mib: round(processes.iter().map(|p| p.rss_mib).sum(), 1),
            cpu_seconds: round(processes.iter().map(|p| p.cpu_seconds).sum(), 2),
            processes,
        })
    }

    /// Resident memory of all the system's processes now, in MiB.
    fn rss_now(&self) -> anyhow::Result<f64> {
        let ticks = ticks_per_second()?;
        let mut total = 0.0;
        for (_, file) in &self.args.pids {
            total += sample(read_pid(file)?, ticks)?.rss_mib;
        }
        Ok(round(total, 1))
    }

    /// 5. restart: SIGKILL the controller, start it, until ready and an approval is honoured.
    async fn restart(&mut self, gate: &str) -> anyhow::Result<Restart> {
        shell(&self.args.kill_controller).await?;
        let start = Instant::now();
        // The start script waits for readiness itself, polling every 0.5 s; asking here
        // every 50 ms keeps its granularity out of the number.
        let mut starter = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&self.args.start_controller)
            .spawn()?;
        while !is_ready(&self.args.ready_command).await {
            if let Some(status) = starter.try_wait()?.filter(|status| !status.success()) {
                bail!("`{}` failed: {status}", self.args.start_controller);
            }
            if start.elapsed() > Duration::from_secs(300) {
                bail!("the controller was not ready 300 s after its start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ready = start.elapsed();
        // A killed knative controller takes over only when its old leader lease expires.
        self.approve_and_wait(gate, Duration::from_secs(300))
            .await?;
        let honoured = start.elapsed();
        if !starter.wait().await?.success() {
            bail!("`{}` failed", self.args.start_controller);
        }
        Ok(Restart {
            ready_seconds: round(ready.as_secs_f64(), 2),
            honoured_seconds: round(honoured.as_secs_f64(), 2),
            rss_mib: 0.0, // read later, see `rss_now`
        })
    }

    /// 3. decision latency: approve gates one at a time.
    async fn decisions(&mut self, names: &[String]) -> anyhow::Result<Decision> {
        let mut latencies = Vec::with_capacity(names.len());
        for name in names {
            latencies.push(
                self.approve_and_wait(name, Duration::from_secs(60))
                    .await?
                    .as_secs_f64()
                    * 1000.0,
            );
        }
        latencies.sort_by(f64::total_cmp);
        Ok(Decision {
            count: latencies.len(),
            p50_ms: round(percentile(&latencies, 50.0), 1),
            p95_ms: round(percentile(&latencies, 95.0), 1),
            p99_ms: round(percentile(&latencies, 99.0), 1),
            max_ms: round(percentile(&latencies, 100.0), 1),
        })
    }

    /// 4. burst: approve many gates at once, until all are shown Succeeded.
    async fn burst(&mut self, names: Vec<String>) -> anyhow::Result<Burst> {
        let (system, namespace) = (self.args.system, self.args.namespace.clone());
        let approver = self.approver.clone();
        let start = Instant::now();
        stream::iter(
            names
                .iter()
                .map(|name| system.approve(&approver, &namespace, name)),
        )
        .buffer_unordered(self.args.burst_concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await?;
        let limit = Duration::from_secs(600);
        wait_gates(&mut self.gates, "every burst gate Succeeded", limit, |g| {
            names.iter().all(|name| g.succeeded_at.contains_key(name))
        })
        .await?;
        Ok(Burst {
            count: names.len(),
            concurrency: self.args.burst_concurrency,
            seconds: round(start.elapsed().as_secs_f64(), 2),
        })
    }

    /// Workload 6, failover: with a follower replica started and ready (its cache warm),
    /// the leader is SIGKILLed and a gate approved at once, timed until the follower has
    /// applied it.
    async fn failover(
        &mut self,
        gate: &str,
        start_follower: &str,
        follower_pid: &Path,
    ) -> anyhow::Result<Failover> {
        shell(start_follower).await?;
        let follower_rss_mib = round(
            sample(read_pid(follower_pid)?, ticks_per_second()?)?.rss_mib,
            1,
        );
        shell(&self.args.kill_controller).await?;
        let killed = Instant::now();
        // The follower waits out the Lease the killed leader held; approve_and_wait's clock
        // starts after the approve request, so the failover is timed from the kill here.
        self.approve_and_wait(gate, Duration::from_secs(120))
            .await?;
        Ok(Failover {
            seconds: round(killed.elapsed().as_secs_f64(), 2),
            follower_rss_mib,
        })
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let admin = Client::try_default()
        .await
        .context("no cluster (KUBECONFIG)")?;
    let mut config = Config::infer().await?;
    config.auth_info.impersonate = Some(APPROVER.to_string());
    let approver = Client::try_from(config)?;
    let gates = follow_gates(admin.clone(), &args.namespace);
    let (n, decisions, burst) = (args.gates, args.decisions, args.burst);
    if n < decisions + 2 {
        bail!("--gates must exceed --decisions by 2 (a gate for the restart)");
    }
    let commit = args.commit.clone();
    let results = args.results.clone();
    let mut bench = Bench {
        args,
        admin,
        approver,
        gates,
    };

    let (create_seconds, acknowledge_seconds) = bench.acknowledge().await?;
    bench.log(format!("all {n} waiting after {acknowledge_seconds:.2} s"));
    let idle = bench.idle().await?;
    bench.log(format!(
        "idle: {:.1} MiB, {:.2} CPU s",
        idle.rss_mib, idle.cpu_seconds
    ));
    let mut restart = bench.restart(&gate_name(n - 1)).await?;
    bench.log(format!(
        "restart: ready {:.2} s, honoured {:.2} s",
        restart.ready_seconds, restart.honoured_seconds
    ));
    let names: Vec<String> = (0..decisions).map(gate_name).collect();
    let decision = bench.decisions(&names).await?;
    // A restarted controller lists the N gates at once instead of receiving them one by one.
    restart.rss_mib = bench.rss_now()?;
    bench.log(format!(
        "decisions: p50 {} ms, p99 {} ms",
        decision.p50_ms, decision.p99_ms
    ));

    // Back to N waiting, so that the burst, too, runs against N gates.
    let top_up = decisions + 1;
    bench.create(n..n + top_up).await?;
    wait_gates(
        &mut bench.gates,
        "the new gates waiting",
        Duration::from_secs(600),
        |g| g.waiting() >= n,
    )
    .await?;
    let burst_names: Vec<String> = (decisions..n - 1)
        .chain(n..n + top_up)
        .take(burst)
        .map(gate_name)
        .collect();
    let burst = bench.burst(burst_names).await?;
    bench.log(format!("burst of {}: {:.2} s", burst.count, burst.seconds));

    let failover = match (
        bench.args.start_follower.clone(),
        bench.args.follower_pid.clone(),
    ) {
        (Some(start), Some(pid)) => {
            let gate = gate_name(n + top_up);
            bench.create(n + top_up..n + top_up + 1).await?;
            wait_gates(
                &mut bench.gates,
                "the failover gate waiting",
                Duration::from_secs(60),
                |g| g.waiting() >= 1,
            )
            .await?;
            let failover = bench.failover(&gate, &start, &pid).await?;
            bench.log(format!(
                "failover: {:.2} s (follower {:.1} MiB)",
                failover.seconds, failover.follower_rss_mib
            ));
            Some(failover)
        }
        _ => None,
    };

    let run = RunResult {
        system: bench.args.system,
        gates: n,
        date: now_utc(),
        create_seconds: round(create_seconds, 2),
        acknowledge_seconds: round(acknowledge_seconds, 2),
        idle,
        decision,
        burst,
        restart,
        failover,
    };
    merge_into(&results, &commit, run)
}

// ---- the report -------------------------------------------------------------------------

/// A row of the table: how to read one number from a run, and its unit.
struct Row {
    workload: &'static str,
    unit: &'static str,
    value: fn(&RunResult) -> Option<f64>,
}

const ROWS: &[Row] = &[
    Row {
        workload: "0. creating the N CustomRuns (50 in flight; ours stamps each in its webhook)",
        unit: "s",
        value: |r| Some(r.create_seconds),
    },
    Row {
        workload: "1. acknowledge: all N gates waiting",
        unit: "s",
        value: |r| Some(r.acknowledge_seconds),
    },
    Row {
        workload: "2. idle RSS, controller + webhook",
        unit: "MiB",
        value: |r| Some(r.idle.rss_mib),
    },
    Row {
        workload: "2. idle CPU over 60 s, controller + webhook",
        unit: "s",
        value: |r| Some(r.idle.cpu_seconds),
    },
    Row {
        workload: "3. decision latency p50",
        unit: "ms",
        value: |r| Some(r.decision.p50_ms),
    },
    Row {
        workload: "3. decision latency p95",
        unit: "ms",
        value: |r| Some(r.decision.p95_ms),
    },
    Row {
        workload: "3. decision latency p99",
        unit: "ms",
        value: |r| Some(r.decision.p99_ms),
    },
    Row {
        workload: "3. decision latency max",
        unit: "ms",
        value: |r| Some(r.decision.max_ms),
    },
    Row {
        workload: "4. burst: 1,000 approvals until all Succeeded",
        unit: "s",
        value: |r| Some(r.burst.seconds),
    },
    Row {
        workload: "5. restart: controller ready",
        unit: "s",
        value: |r| Some(r.restart.ready_seconds),
    },
    Row {
        workload: "5. restart: ready and an approval honoured",
        unit: "s",
        value: |r| Some(r.restart.honoured_seconds),
    },
    Row {
        workload: "5. RSS after the restart, controller + webhook",
        unit: "MiB",
        value: |r| Some(r.restart.rss_mib),
    },
    Row {
        workload: "5. RSS of the follower replica, ready (cache warm)",
        unit: "MiB",
        value: |r| r.failover.as_ref().map(|f| f.follower_rss_mib),
    },
    Row {
        workload: "6. failover: leader SIGKILLed until an approval is honoured by the follower",
        unit: "s",
        value: |r| r.failover.as_ref().map(|f| f.seconds),
    },
];

/// One of our targets at N = 10,000: the number, its bound, and whether the bound is strict.
struct Target {
    text: &'static str,
    unit: &'static str,
    bound: f64,
    strict: bool,
    value: fn(&RunResult) -> Option<f64>,
}

impl Target {
    fn met(&self, value: f64) -> bool {
        if self.strict {
            value < self.bound
        } else {
            value <= self.bound
        }
    }
}

const TARGETS: &[Target] = &[
    Target {
        text: "p99 decision latency <= 100 ms",
        unit: "ms",
        bound: 100.0,
        strict: false,
        value: |r| Some(r.decision.p99_ms),
    },
    Target {
        text: "RSS (controller + webhook, one replica each) <= 40 MiB",
        unit: "MiB",
        bound: 40.0,
        strict: false,
        value: |r| Some(r.idle.rss_mib),
    },
    Target {
        text: "idle CPU over 60 s < 0.5 s",
        unit: "s",
        bound: 0.5,
        strict: true,
        value: |r| Some(r.idle.cpu_seconds),
    },
    Target {
        text: "ready after restart <= 10 s",
        unit: "s",
        bound: 10.0,
        strict: false,
        value: |r| Some(r.restart.ready_seconds),
    },
    Target {
        text: "failover (leader SIGKILLed until an approval is honoured) <= 15 s",
        unit: "s",
        bound: 15.0,
        strict: false,
        value: |r| r.failover.as_ref().map(|f| f.seconds),
    },
];

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn render(results: &Results, analysis: &str) -> String {
    let mut out = String::new();
    let line = |out: &mut String, text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line(
        &mut out,
        "# Benchmarks: approval-controller vs manual-approval-gate\n",
    );
    line(
        &mut out,
        "Generated by `make bench` from [`bench/results.json`](bench/results.json) (do not edit by hand;",
    );
    line(
        &mut out,
        "the analysis at the end comes from [`bench/analysis.md`](bench/analysis.md)).\n",
    );
    let m = &results.machine;
    line(&mut out, &format!("- Date: {}", results.date));
    line(
        &mut out,
        &format!(
            "- Machine: {} CPUs ({}), {} GiB memory, Linux {}; shared with other work",
            m.cpus, m.cpu_model, m.memory_gib, m.kernel
        ),
    );
    let mut versions: Vec<_> = results.versions.iter().collect();
    versions.sort();
    let versions: Vec<String> = versions.iter().map(|(k, v)| format!("{k}={v}")).collect();
    line(&mut out, &format!("- Versions: {}", versions.join(", ")));
    line(
        &mut out,
        "- Both systems ran one after the other on the same etcd + kube-apiserver; gates are CustomRuns created directly, one approver each.\n",
    );

    let mut sizes: Vec<usize> = results.runs.iter().map(|r| r.gates).collect();
    sizes.dedup();
    let find = |system, n| {
        results
            .runs
            .iter()
            .find(|r| r.system == system && r.gates == n)
    };
    let mut header = String::from("| workload | unit |");
    let mut rule = String::from("|---|---|");
    for n in &sizes {
        header += &format!(" ours N={n} | MAG N={n} | MAG / ours |");
        rule += "---:|---:|---:|";
    }
    line(&mut out, &header);
    line(&mut out, &rule);
    for row in ROWS {
        let mut cells = format!("| {} | {} |", row.workload, row.unit);
        for n in &sizes {
            let ours = find(System::Ours, *n).and_then(row.value);
            let mag = find(System::Mag, *n).and_then(row.value);
            let show = |v: Option<f64>| v.map_or("not run".to_string(), number);
            let ratio = match (ours, mag) {
                (Some(o), Some(m)) if o > 0.0 => format!("{:.1}x", m / o),
                // Only CPU time reads 0: below the kernel's 10 ms accounting tick.
                (Some(_), Some(m)) if m > 0.0 => format!("> {:.0}x", m / 0.01),
                (Some(_), Some(_)) => "both 0".to_string(),
                _ => "-".to_string(),
            };
            cells += &format!(" {} | {} | {ratio} |", show(ours), show(mag));
        }
        line(&mut out, &cells);
    }
    line(
        &mut out,
        "\nMAG / ours above 1 means ours is lower (faster, smaller) by that factor.\n",
    );

    line(&mut out, "## Processes at idle (N gates waiting, 60 s)\n");
    line(
        &mut out,
        "| system | N | process | RSS MiB (end) | RSS MiB (peak) | CPU s |",
    );
    line(&mut out, "|---|---:|---|---:|---:|---:|");
    for run in &results.runs {
        for p in &run.idle.processes {
            line(
                &mut out,
                &format!(
                    "| {} | {} | {} | {} | {} | {} |",
                    run.system.title(),
                    run.gates,
                    p.name,
                    p.rss_mib,
                    p.rss_peak_mib,
                    p.cpu_seconds
                ),
            );
        }
    }
    line(&mut out, "");

    line(&mut out, "## Our targets at N = 10,000\n");
    let ours_10k = find(System::Ours, 10_000);
    for target in TARGETS {
        let verdict = match ours_10k.map(target.value) {
            None => "not measured (N = 10,000 not run)".to_string(),
            Some(None) => "not measured (no result of this workload)".to_string(),
            Some(Some(v)) if target.met(v) => format!("**met** ({} {})", number(v), target.unit),
            Some(Some(v)) => format!("**missed** ({} {})", number(v), target.unit),
        };
        line(&mut out, &format!("- {}: {verdict}", target.text));
    }
    line(&mut out, "");
    out + analysis
}

fn report(results: &Path, analysis: &Path, out: &Path) -> anyhow::Result<()> {
    let results: Results = serde_json::from_str(&std::fs::read_to_string(results)?)?;
    let analysis = std::fs::read_to_string(analysis)
        .with_context(|| format!("reading {}", analysis.display()))?;
    std::fs::write(out, render(&results, &analysis))?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Report {
            results,
            analysis,
            out,
        } => report(&results, &analysis, &out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_pick_observed_values() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 100.0);
        assert_eq!(percentile(&values, 99.0), 198.0);
        assert_eq!(percentile(&values, 100.0), 200.0);
    }

    #[test]
    fn a_gate_is_waiting_while_succeeded_is_unknown_and_decided_when_true() {
        let run = |status: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun", "metadata": {"name": "g"},
                "status": {"conditions": [{"type": "Succeeded", "status": status}]},
            }))
            .unwrap()
        };
        assert!(phase(&run("Unknown")) == Phase::Waiting);
        assert!(phase(&run("True")) == Phase::Succeeded);
        assert!(phase(&run("False")) == Phase::Unseen);
    }

    #[test]
    fn the_idle_cpu_bound_is_strict_and_the_memory_bound_inclusive() {
        let cpu = TARGETS
            .iter()
            .find(|t| t.text.starts_with("idle CPU"))
            .unwrap();
        assert!(!cpu.met(0.5));
        assert!(cpu.met(0.49));
        let rss = TARGETS.iter().find(|t| t.text.starts_with("RSS")).unwrap();
        assert!(rss.met(40.0));
        assert!(!rss.met(40.1));
    }

    #[test]
    fn a_decided_gate_no_longer_counts_as_waiting() {
        let mut gates = Gates::default();
        let now = Instant::now();
        gates.observe("a".into(), Phase::Waiting, now);
        gates.observe("b".into(), Phase::Waiting, now);
        gates.observe("a".into(), Phase::Succeeded, now);
        assert_eq!(gates.waiting(), 1);
    }
}
