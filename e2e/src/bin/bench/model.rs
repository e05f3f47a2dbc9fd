//! What one run of `make bench` records (bench/runs/<system>-<run>.json): raw samples and
//! counter deltas, nothing summarised. The report computes every number from these files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The system under test.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize, Deserialize, Debug,
)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// This repository's approval-controller.
    Ours,
    /// OpenShift's manual-approval-gate.
    Mag,
}

impl System {
    pub fn title(self) -> &'static str {
        match self {
            System::Ours => "ours",
            System::Mag => "MAG",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

/// One run: one system on a control plane of its own (fresh etcd), start to finish.
#[derive(Serialize, Deserialize, Debug)]
pub struct Run {
    pub system: System,
    /// 1, 2, 3...: runs alternate between the systems.
    pub run: usize,
    pub date: String,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    /// Which CPUs each party was pinned to (taskset), as bench.sh set it.
    pub pinning: String,
    /// The N at which the steady-state workloads ran.
    pub gates: usize,
    /// The control plane with the system stopped: what the others' numbers are relative to.
    pub baseline: Window,
    /// Waiting gates, counted up: 0, 1,000, 10,000 (and more after the workloads, in run 1).
    pub ladder: Vec<MemoryPoint>,
    /// Creating the gates of the ladder's last step up to N, and the system acknowledging them.
    pub create: Creation,
    /// N gates waiting, nothing happening.
    pub idle: Window,
    /// Sequential decisions at N waiting: raw samples and what they cost.
    pub decisions: Decisions,
    /// The same round trip with nobody in between: the driver writes the status itself
    /// (after the baseline, before the system starts; those runs are deleted again).
    pub floor_ms: Vec<f64>,
    pub restarts: Vec<Restart>,
    pub sweep: Vec<SweepLevel>,
    /// client-go's "due to client-side throttling" lines in the system's logs during the run.
    pub throttling_log_lines: usize,
}

/// Counter deltas over a window of time, and the gauges at its end.
#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub struct Window {
    pub seconds: f64,
    /// kube-apiserver's apiserver_request_total by "VERB resource[/subresource]" (WATCH excluded:
    /// a watch counts once, when it starts).
    pub requests: BTreeMap<String, f64>,
    /// Writes kube-apiserver made to etcd (etcd_requests_total less errors, create + update +
    /// delete) by resource.
    pub storage_writes: BTreeMap<String, f64>,
    /// etcd's own etcd_mvcc_put_total.
    pub etcd_puts: f64,
    /// apiserver_longrunning_requests{verb="WATCH"} by resource at the window's end.
    pub watches: BTreeMap<String, f64>,
    /// Admission webhook calls (apiserver_admission_webhook_admission_duration_seconds_count)
    /// by webhook name.
    pub admissions: BTreeMap<String, f64>,
    /// utime + stime of each process over the window (system's and control plane's).
    pub cpu_seconds: BTreeMap<String, f64>,
}

impl Window {
    pub fn requests_total(&self) -> f64 {
        self.requests.values().sum()
    }

    pub fn writes_total(&self) -> f64 {
        self.storage_writes.values().sum()
    }
}

/// Memory of each process, from /proc/PID/status, in KiB.
#[derive(Serialize, Deserialize, Clone, Copy, Default, Debug)]
pub struct Memory {
    pub vm_rss: u64,
    pub rss_anon: u64,
    pub vm_hwm: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MemoryPoint {
    /// Gates waiting (decided gates are deleted before a step beyond N).
    pub gates: usize,
    pub processes: BTreeMap<String, Memory>,
    /// etcd_mvcc_db_total_size_in_use_in_bytes.
    pub etcd_db_in_use_bytes: f64,
}

impl MemoryPoint {
    /// The system's processes together (one replica of each part).
    pub fn total(&self, field: fn(&Memory) -> u64) -> u64 {
        self.processes.values().map(field).sum()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Creation {
    pub gates: usize,
    /// Creating them (bounded concurrency).
    pub create_seconds: f64,
    /// From the first create until the watch showed every one waiting.
    pub acknowledge_seconds: f64,
    pub cost: Window,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Decisions {
    /// From the approver's first request until the watch shows the gate Succeeded.
    pub user_ms: Vec<f64>,
    /// From the approve response until the watch shows the gate Succeeded.
    pub controller_ms: Vec<f64>,
    pub cost: Window,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum RestartKind {
    /// The controller is stopped with SIGTERM and started again.
    Sigterm,
    /// The controller is SIGKILLed and started again.
    Sigkill,
    /// A second replica is ready; the leader is SIGKILLed.
    Failover,
}

impl RestartKind {
    pub fn text(self) -> &'static str {
        match self {
            RestartKind::Sigterm => "SIGTERM, then start",
            RestartKind::Sigkill => "SIGKILL, then start",
            RestartKind::Failover => "failover (leader SIGKILLed, follower ready)",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Restart {
    pub kind: RestartKind,
    /// From the start (of the new process, or the kill in a failover) until that process
    /// has logged both that its caches are synced and that it leads: able to act.
    pub ready_seconds: f64,
    /// From the same instant until a decision made while no process led was shown Succeeded.
    pub honoured_seconds: f64,
    /// The follower's memory once it was ready (failover only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follower: Option<Memory>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SweepLevel {
    /// Approvals in flight at once.
    pub concurrency: usize,
    /// Each approval's request-sent to watch-shows-Succeeded time.
    pub latencies_ms: Vec<f64>,
    /// From the first request until every gate of the level was shown Succeeded.
    pub seconds: f64,
    /// Requests refused with 429 (API Priority and Fairness) and sent again.
    pub retried_429: usize,
    /// MAG's read-modify-write refused with 409 (the controller wrote in between) and redone.
    pub retried_409: usize,
    /// Approvals whose connection dropped before the answer came; each was then found applied
    /// or sent again.
    #[serde(default)]
    pub retried_dropped: usize,
}

impl SweepLevel {
    pub fn decisions_per_second(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.seconds
    }
}
