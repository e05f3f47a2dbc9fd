//! `make bench`: the workloads of BENCHMARKS.md against one system at a time (ours, or
//! OpenShift's manual-approval-gate) on a control plane that `e2e/scripts/bench.sh` started
//! for that run alone; and `report`, which turns every run's raw record into BENCHMARKS.md,
//! bench/results.json and the charts.
//!
//! It measures from outside, as users would see it: gates are CustomRuns created directly,
//! a decision is each system's own approve request made as an approver (by impersonation),
//! and a gate is waiting or decided when a watch shows its `Succeeded` condition saying so.
//! The cost on the control plane comes from kube-apiserver's and etcd's own metrics and
//! /proc.

mod charts;
mod gates;
mod model;
mod probe;
mod report;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{DeleteParams, PostParams};
use kube::{Client, Config};
use tokio::sync::watch;

use gates::{APPROVER, Gates, floor_name, gate_name};
use model::{
    Creation, Decisions, Machine, MemoryPoint, Restart, RestartKind, Run, SweepLevel, System,
    Window,
};
use probe::{Probe, Process};

#[derive(Parser)]
#[command(about = "Benchmarks of the approval gate against manual-approval-gate")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every workload against one system and write its raw record.
    Run(Box<RunArgs>),
    /// Render BENCHMARKS.md, bench/results.json and the charts from the runs' records.
    Report {
        /// The directory of the runs' records (bench/runs).
        #[arg(long)]
        runs: PathBuf,
        /// Hand-written analysis appended to the generated tables.
        #[arg(long)]
        analysis: PathBuf,
        /// The directory the summary and the charts are written to (bench).
        #[arg(long)]
        out_dir: PathBuf,
        /// The document (BENCHMARKS.md).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum)]
    system: System,
    /// Which run of this system this is (1, 2, 3...).
    #[arg(long)]
    run: usize,
    /// An existing, empty namespace for the gates.
    #[arg(long)]
    namespace: String,
    /// The run's record (bench/runs/<system>-<run>.json).
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    commit: String,
    /// Which CPUs each party is pinned to, as the caller set it (recorded).
    #[arg(long, default_value = "none")]
    pinning: String,
    /// Gates waiting during the steady-state workloads.
    #[arg(long, default_value_t = 10_000)]
    gates: usize,
    /// Memory steps up to --gates (its last step), in waiting gates.
    #[arg(long, value_delimiter = ',', default_value = "0,1000,10000")]
    ladder: Vec<usize>,
    /// Memory steps after the workloads (decided gates deleted first), e.g. 30000.
    #[arg(long, value_delimiter = ',')]
    beyond: Vec<usize>,
    /// Sequential decisions (and as many floor samples).
    #[arg(long, default_value_t = 1000)]
    decisions: usize,
    /// Approvals in flight at once, one level after the other.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    sweep: Vec<usize>,
    /// Approvals per sweep level: 10 x its concurrency, within [200, this].
    #[arg(long, default_value_t = 1000)]
    sweep_max: usize,
    #[arg(long, default_value_t = 50)]
    create_concurrency: usize,
    /// Covers a cycle of kube-controller-manager's periodic discovery (every 30 s).
    #[arg(long, default_value_t = 30)]
    baseline_seconds: u64,
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    /// Quiet time after gates are acknowledged, before memory or idle is read.
    #[arg(long, default_value_t = 10)]
    settle_seconds: u64,
    /// `name=pid-file` of each part of the system: controller first (its memory is summed).
    #[arg(long = "pid", value_parser = Process::parse, required = true)]
    pids: Vec<Process>,
    /// `name=pid-file` of etcd and kube-apiserver (their CPU time is read).
    #[arg(long = "control-plane-pid", value_parser = Process::parse)]
    control_plane: Vec<Process>,
    #[arg(long)]
    etcd_metrics: String,
    /// Shell commands: start the whole system; SIGTERM, SIGKILL and start its controller;
    /// start a second controller replica and its pid file.
    #[arg(long)]
    start_system: String,
    #[arg(long)]
    stop_controller: String,
    #[arg(long)]
    kill_controller: String,
    #[arg(long)]
    start_controller: String,
    #[arg(long)]
    start_follower: String,
    #[arg(long)]
    follower_pid: PathBuf,
    /// The controller's log and the follower's (appended to across restarts).
    #[arg(long)]
    controller_log: PathBuf,
    #[arg(long)]
    follower_log: PathBuf,
    /// What the controller logs once its caches are synced, and once it leads: both, since
    /// its start, are "ready" (able to act), read the same way for both systems.
    #[arg(long)]
    synced_pattern: String,
    #[arg(long)]
    leading_pattern: String,
    /// The system's logs, searched for client-go's throttling lines.
    #[arg(long = "log")]
    logs: Vec<PathBuf>,
}

struct Bench {
    args: RunArgs,
    admin: Client,
    approver: Client,
    gates: watch::Receiver<Gates>,
    probe: Probe,
    /// The next gate index to create, and to decide.
    created: usize,
    decided: usize,
}

fn log(args: &RunArgs, message: impl std::fmt::Display) {
    eprintln!("[bench {} run {}] {message}", args.system.title(), args.run);
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

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Bench {
    fn log(&self, message: impl std::fmt::Display) {
        log(&self.args, message);
    }

    async fn create(&self, names: Vec<String>, floor: bool) -> anyhow::Result<()> {
        let runs = gates::customruns(&self.admin, &self.args.namespace);
        let system = self.args.system;
        stream::iter(names.into_iter().map(|name| {
            let runs = runs.clone();
            let object = if floor {
                gates::floor_gate(&name)
            } else {
                gates::gate(system, &name)
            };
            async move { runs.create(&PostParams::default(), &object).await }
        }))
        .buffer_unordered(self.args.create_concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await?;
        Ok(())
    }

    /// Creates gates until `n` are waiting; returns (create, acknowledge) times.
    async fn top_up(&mut self, n: usize) -> anyhow::Result<(Duration, Duration)> {
        let missing = n.saturating_sub(self.gates.borrow().waiting());
        let start = Instant::now();
        let names: Vec<String> = (self.created..self.created + missing)
            .map(gate_name)
            .collect();
        self.created += missing;
        self.create(names, false).await?;
        let created = start.elapsed();
        let limit = Duration::from_secs(600 + missing as u64 / 5);
        gates::wait(&mut self.gates, "gates waiting", limit, |g| {
            g.waiting() >= n
        })
        .await?;
        Ok((created, start.elapsed()))
    }

    /// The next waiting gate, in creation order.
    fn next_waiting(&mut self) -> anyhow::Result<String> {
        let gates = self.gates.borrow();
        while self.decided < self.created {
            let name = gate_name(self.decided);
            self.decided += 1;
            if gates.waiting_since.contains_key(&name) && !gates.succeeded_at.contains_key(&name) {
                return Ok(name);
            }
        }
        Err(anyhow!("no waiting gate left"))
    }

    async fn window(&self, seconds: u64) -> anyhow::Result<Window> {
        let start = self.probe.snapshot().await?;
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        Ok(Window::between(&start, &self.probe.snapshot().await?))
    }

    async fn memory_point(&self, gates: usize) -> anyhow::Result<MemoryPoint> {
        let mut processes = BTreeMap::new();
        for process in &self.args.pids {
            processes.insert(process.name.clone(), probe::memory(process.pid()?)?);
        }
        let point = MemoryPoint {
            gates,
            processes,
            etcd_db_in_use_bytes: self.probe.etcd_db_in_use().await?,
        };
        self.log(format!(
            "N={gates}: RssAnon {} KiB, etcd in use {:.1} MiB",
            point.total(|m| m.rss_anon),
            point.etcd_db_in_use_bytes / 1048576.0
        ));
        Ok(point)
    }

    async fn settle(&self) {
        tokio::time::sleep(Duration::from_secs(self.args.settle_seconds)).await;
    }

    /// Sequential decisions: user-visible and controller-only, with what they cost.
    async fn decisions(&mut self) -> anyhow::Result<Decisions> {
        let (system, namespace) = (self.args.system, self.args.namespace.clone());
        let mut user_ms = Vec::with_capacity(self.args.decisions);
        let mut controller_ms = Vec::with_capacity(self.args.decisions);
        let start = self.probe.snapshot().await?;
        for _ in 0..self.args.decisions {
            let name = self.next_waiting()?;
            let sent = Instant::now();
            gates::approve(system, &self.approver, &namespace, &name).await?;
            let answered = Instant::now();
            let succeeded = self.succeeded(&name, Duration::from_secs(60)).await?;
            user_ms.push(millis(succeeded.saturating_duration_since(sent)));
            // The watch can deliver the new status before the approve response is read.
            controller_ms.push(millis(succeeded.saturating_duration_since(answered)));
        }
        let cost = Window::between(&start, &self.probe.snapshot().await?);
        Ok(Decisions {
            user_ms,
            controller_ms,
            cost,
        })
    }

    async fn succeeded(&mut self, name: &str, limit: Duration) -> anyhow::Result<Instant> {
        gates::wait(&mut self.gates, name, limit, |g| {
            g.succeeded_at.contains_key(name)
        })
        .await?;
        Ok(self.gates.borrow().succeeded_at[name])
    }

    /// The floor: the driver itself writes what a controller would, on a gate nobody handles.
    async fn floor(&mut self) -> anyhow::Result<Vec<f64>> {
        let names: Vec<String> = (0..self.args.decisions).map(floor_name).collect();
        self.create(names.clone(), true).await?;
        let mut samples = Vec::with_capacity(names.len());
        for name in &names {
            let sent = Instant::now();
            gates::write_succeeded(&self.admin, &self.args.namespace, name).await?;
            let succeeded = self.succeeded(name, Duration::from_secs(60)).await?;
            samples.push(millis(succeeded.saturating_duration_since(sent)));
        }
        Ok(samples)
    }

    /// Whether `log` says, after `synced_from` and `leading_from` (byte offsets), that the
    /// process synced its caches and leads.
    fn leads(&self, log: &Path, synced_from: u64, leading_from: u64) -> bool {
        let text = std::fs::read(log).unwrap_or_default();
        let after = |offset: u64| {
            String::from_utf8_lossy(&text[(offset as usize).min(text.len())..]).into_owned()
        };
        after(synced_from).contains(&self.args.synced_pattern)
            && after(leading_from).contains(&self.args.leading_pattern)
    }

    /// From `start` until the process logging to `log` leads (ready) and `gate` is
    /// Succeeded.
    async fn recover(
        &mut self,
        kind: RestartKind,
        start: Instant,
        (log, synced_from, leading_from): (&Path, u64, u64),
        gate: &str,
    ) -> anyhow::Result<Restart> {
        let mut ready = None;
        loop {
            if ready.is_none() && self.leads(log, synced_from, leading_from) {
                ready = Some(start.elapsed());
            }
            let succeeded = self.gates.borrow().succeeded_at.get(gate).copied();
            if let (Some(ready), Some(succeeded)) = (ready, succeeded) {
                return Ok(Restart {
                    kind,
                    ready_seconds: ready.as_secs_f64(),
                    honoured_seconds: (succeeded - start).as_secs_f64(),
                    follower: None,
                });
            }
            if start.elapsed() > Duration::from_secs(300) {
                bail!("{kind:?}: not recovered 300 s after the start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn approve(&self, gate: &str) -> anyhow::Result<()> {
        let (system, namespace) = (self.args.system, &self.args.namespace);
        gates::approve(system, &self.approver, namespace, gate).await?;
        Ok(())
    }

    /// SIGTERM or SIGKILL, a decision while no process leads, then the start.
    async fn restart(&mut self, kind: RestartKind) -> anyhow::Result<Restart> {
        let gate = self.next_waiting()?;
        match kind {
            RestartKind::Sigterm => shell(&self.args.stop_controller).await?,
            _ => shell(&self.args.kill_controller).await?,
        }
        self.approve(&gate).await?;
        let log = self.args.controller_log.clone();
        let offset = log_size(&log);
        let start = Instant::now();
        let mut starter = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&self.args.start_controller)
            .spawn()?;
        let restart = self
            .recover(kind, start, (&log, offset, offset), &gate)
            .await?;
        if !starter.wait().await?.success() {
            bail!("`{}` failed", self.args.start_controller);
        }
        Ok(restart)
    }

    /// A second replica ready; the leader SIGKILLed, a decision made at once.
    async fn failover(&mut self) -> anyhow::Result<Restart> {
        let gate = self.next_waiting()?;
        let log = self.args.follower_log.clone();
        let started_at = log_size(&log);
        shell(&self.args.start_follower).await?;
        self.settle().await;
        let follower = probe::memory(probe::read_pid(&self.args.follower_pid)?)?;
        let killed_at = log_size(&log);
        shell(&self.args.kill_controller).await?;
        let start = Instant::now();
        self.approve(&gate).await?;
        let mut restart = self
            .recover(
                RestartKind::Failover,
                start,
                (&log, started_at, killed_at),
                &gate,
            )
            .await?;
        restart.follower = Some(follower);
        // The follower leads from now on: its memory and CPU are the controller's.
        let controller = &mut self.args.pids[0];
        controller.pid_file = self.args.follower_pid.clone();
        let follower = controller.clone();
        if let Some(p) = self
            .probe
            .processes
            .iter_mut()
            .find(|p| p.name == follower.name)
        {
            *p = follower;
        }
        Ok(restart)
    }

    /// Approvals with `concurrency` in flight, each until its gate is shown Succeeded.
    async fn sweep_level(&mut self, concurrency: usize) -> anyhow::Result<SweepLevel> {
        let count = (concurrency * 10).clamp(200, self.args.sweep_max.max(200));
        let n = self.args.gates.max(count);
        self.top_up(n).await?;
        let names: Vec<String> = (0..count)
            .map(|_| self.next_waiting())
            .collect::<anyhow::Result<_>>()?;
        let (system, namespace) = (self.args.system, self.args.namespace.clone());
        let start = Instant::now();
        let results: Vec<(String, Instant, gates::Retries)> =
            stream::iter(names.iter().map(|name| {
                let (approver, namespace, mut gates) =
                    (self.approver.clone(), namespace.clone(), self.gates.clone());
                async move {
                    let sent = Instant::now();
                    let retries = gates::approve(system, &approver, &namespace, name).await?;
                    gates::wait(&mut gates, name, Duration::from_secs(600), |g| {
                        g.succeeded_at.contains_key(name)
                    })
                    .await?;
                    anyhow::Ok((name.clone(), sent, retries))
                }
            }))
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        let gates = self.gates.borrow();
        let succeeded = |name: &str| gates.succeeded_at[name];
        let last = results
            .iter()
            .map(|(name, ..)| succeeded(name))
            .max()
            .unwrap_or(start);
        Ok(SweepLevel {
            concurrency,
            latencies_ms: results
                .iter()
                .map(|(name, sent, _)| millis(succeeded(name).saturating_duration_since(*sent)))
                .collect(),
            seconds: (last - start).as_secs_f64(),
            retried_429: results.iter().map(|r| r.2.too_many).sum(),
            retried_409: results.iter().map(|r| r.2.conflicts).sum(),
            retried_dropped: results.iter().map(|r| r.2.dropped).sum(),
        })
    }

    /// Deletes every decided gate (floor gates too), so that a memory step counts waiting ones.
    async fn delete_decided(&mut self) -> anyhow::Result<()> {
        let decided = self.gates.borrow().decided();
        let runs = gates::customruns(&self.admin, &self.args.namespace);
        stream::iter(decided.iter().map(|name| {
            let runs = runs.clone();
            async move {
                runs.delete(name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
        }))
        .buffer_unordered(self.args.create_concurrency)
        .try_for_each(|()| async { Ok(()) })
        .await?;
        // The watch forgets a gate when it shows its deletion.
        gates::wait(
            &mut self.gates,
            "the decided gates deleted",
            Duration::from_secs(600),
            |g| {
                decided
                    .iter()
                    .all(|name| !g.succeeded_at.contains_key(name))
            },
        )
        .await
    }
}

fn log_size(file: &Path) -> u64 {
    std::fs::metadata(file).map_or(0, |m| m.len())
}

fn throttling_lines(logs: &[(PathBuf, u64)]) -> usize {
    logs.iter()
        .map(|(file, offset)| {
            let text = std::fs::read(file).unwrap_or_default();
            let tail =
                String::from_utf8_lossy(&text[(*offset as usize).min(text.len())..]).into_owned();
            tail.lines()
                .filter(|line| line.contains("due to client-side throttling"))
                .count()
        })
        .sum()
}

fn machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Machine {
        // The machine's, not this process's (the driver itself is pinned to one CPU).
        cpus: read("/proc/cpuinfo")
            .lines()
            .filter(|line| line.starts_with("processor"))
            .count(),
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
fn versions(commit: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("versions.env");
    let mut versions: BTreeMap<String, String> = std::fs::read_to_string(&file)?
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

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.ladder.last() != Some(&args.gates) {
        bail!("--ladder must end at --gates ({})", args.gates);
    }
    let admin = Client::try_default()
        .await
        .context("no cluster (KUBECONFIG)")?;
    let mut config = Config::infer().await?;
    config.auth_info.impersonate = Some(APPROVER.to_string());
    let approver = Client::try_from(config)?;
    let gates = gates::follow(admin.clone(), &args.namespace);
    let processes = args
        .pids
        .iter()
        .chain(&args.control_plane)
        .cloned()
        .collect();
    let probe = Probe::new(admin.clone(), args.etcd_metrics.clone(), processes);
    let logs: Vec<(PathBuf, u64)> = args
        .logs
        .iter()
        .map(|f| (f.clone(), std::fs::metadata(f).map_or(0, |m| m.len())))
        .collect();
    let mut bench = Bench {
        args,
        admin,
        approver,
        gates,
        probe,
        created: 0,
        decided: 0,
    };

    bench.log("baseline: the control plane without the system");
    let baseline = bench.window(bench.args.baseline_seconds).await?;
    // Before the system starts: MAG reconciles every CustomRun, and answers one of a kind it
    // does not handle with an error, a Warning event and requeues with backoff until the run
    // is deleted. That would be its load, not the floor's.
    let floor_ms = bench.floor().await?;
    bench.log(format!(
        "floor: p50 {:?} ms",
        stats::percentile(&floor_ms, 50.0)
    ));
    bench.delete_decided().await?;
    shell(&bench.args.start_system).await?;

    let mut ladder = Vec::new();
    let mut create = None;
    for step in bench.args.ladder.clone() {
        let before = bench.probe.snapshot().await?;
        let already = bench.gates.borrow().waiting();
        let (created, acknowledged) = bench.top_up(step).await?;
        let cost = Window::between(&before, &bench.probe.snapshot().await?);
        if step == bench.args.gates && step > already {
            bench.log(format!(
                "{} gates created in {created:.1?}, all waiting after {acknowledged:.1?}",
                step - already
            ));
            create = Some(Creation {
                gates: step - already,
                create_seconds: created.as_secs_f64(),
                acknowledge_seconds: acknowledged.as_secs_f64(),
                cost,
            });
        }
        bench.settle().await;
        ladder.push(bench.memory_point(step).await?);
    }
    let create = create.ok_or_else(|| anyhow!("the ladder created no gates up to --gates"))?;

    let idle = bench.window(bench.args.idle_seconds).await?;
    bench.log(format!(
        "idle: {:.2} requests/s",
        idle.requests_total() / idle.seconds
    ));
    let decisions = bench.decisions().await?;
    bench.log(format!(
        "decisions: p50 {:?} ms, p99 {:?} ms",
        stats::percentile(&decisions.user_ms, 50.0),
        stats::percentile(&decisions.user_ms, 99.0)
    ));
    let n = bench.args.gates;
    let mut restarts = Vec::new();
    for kind in [RestartKind::Sigterm, RestartKind::Sigkill] {
        bench.top_up(n).await?;
        let restart = bench.restart(kind).await?;
        bench.log(format!(
            "{kind:?}: ready {:.2} s, honoured {:.2} s",
            restart.ready_seconds, restart.honoured_seconds
        ));
        restarts.push(restart);
    }
    bench.top_up(n).await?;
    let failover = bench.failover().await?;
    bench.log(format!(
        "failover: ready {:.2} s, honoured {:.2} s",
        failover.ready_seconds, failover.honoured_seconds
    ));
    restarts.push(failover);

    let mut sweep = Vec::new();
    for concurrency in bench.args.sweep.clone() {
        let level = bench.sweep_level(concurrency).await?;
        bench.log(format!(
            "{concurrency} in flight: {:.0} decisions/s, p99 {:?} ms, {} 429s, {} dropped",
            level.decisions_per_second(),
            stats::percentile(&level.latencies_ms, 99.0),
            level.retried_429,
            level.retried_dropped
        ));
        sweep.push(level);
    }

    for step in bench.args.beyond.clone() {
        bench.delete_decided().await?;
        bench.top_up(step).await?;
        bench.settle().await;
        ladder.push(bench.memory_point(step).await?);
    }

    let record = Run {
        system: bench.args.system,
        run: bench.args.run,
        date: now_utc(),
        machine: machine(),
        versions: versions(&bench.args.commit)?,
        pinning: bench.args.pinning.clone(),
        gates: n,
        baseline,
        ladder,
        create,
        idle,
        decisions,
        floor_ms,
        restarts,
        sweep,
        throttling_log_lines: throttling_lines(&logs),
    };
    if let Some(dir) = bench.args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&bench.args.out, serde_json::to_string(&record)? + "\n")?;
    bench.log(format!("recorded {}", bench.args.out.display()));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(*args).await,
        Command::Report {
            runs,
            analysis,
            out_dir,
            out,
        } => report::write(&runs, &analysis, &out_dir, &out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_sh_s_arguments_parse_into_lists_and_processes() {
        let cli = Cli::try_parse_from([
            "bench",
            "run",
            "--system",
            "mag",
            "--run",
            "2",
            "--namespace",
            "bench",
            "--out",
            "o.json",
            "--commit",
            "abc",
            "--ladder",
            "0,100,300",
            "--gates",
            "300",
            "--beyond",
            "600,900",
            "--sweep",
            "1,10",
            "--pid",
            "controller=c.pid",
            "--pid",
            "webhook=w.pid",
            "--control-plane-pid",
            "etcd=e.pid",
            "--etcd-metrics",
            "http://127.0.0.1:1/metrics",
            "--start-system",
            "s",
            "--stop-controller",
            "t",
            "--kill-controller",
            "k",
            "--start-controller",
            "c",
            "--start-follower",
            "f",
            "--follower-pid",
            "f.pid",
            "--controller-log",
            "c.log",
            "--follower-log",
            "f.log",
            "--synced-pattern",
            "synced",
            "--leading-pattern",
            "leads",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            (args.ladder, args.beyond, args.sweep),
            (vec![0, 100, 300], vec![600, 900], vec![1, 10])
        );
        assert_eq!(args.pids[1].name, "webhook");
        assert_eq!(args.decisions, 1000);
        assert!(Cli::try_parse_from(["bench", "run", "--system", "nobody"]).is_err());
    }
}
