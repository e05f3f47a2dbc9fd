//! What the driver reads besides the API objects: processes' CPU time and memory from
//! /proc, and kube-apiserver's and etcd's own Prometheus metrics. A `Snapshot` is taken at
//! each end of a window; `Window::between` is the difference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use kube::Client;
use prometheus_parse::{Sample, Scrape, Value};

use crate::model::{Memory, Window};

/// A process by the pid file its start script writes (read again each time: a restart
/// writes a new one).
#[derive(Clone, Debug)]
pub struct Process {
    pub name: String,
    pub pid_file: PathBuf,
}

impl Process {
    pub fn parse(arg: &str) -> Result<Process, String> {
        let (name, path) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected name=pid-file, got {arg}"))?;
        Ok(Process {
            name: name.to_string(),
            pid_file: PathBuf::from(path),
        })
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        read_pid(&self.pid_file)
    }
}

pub fn read_pid(file: &Path) -> anyhow::Result<u32> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(text.trim().parse()?)
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_ticks(&stat).map(|ticks| ticks / ticks_per_second())
}

/// Fields after the command name (which may hold spaces and parentheses): utime and stime
/// are the 14th and 15th of the line.
fn cpu_ticks(stat: &str) -> anyhow::Result<f64> {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("unreadable /proc/PID/stat"))?
        .1
        .split_whitespace()
        .collect();
    let field = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/PID/stat"))?
            .parse()?)
    };
    Ok(field(11)? + field(12)?)
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_memory(&status).ok_or_else(|| anyhow!("no VmRSS/RssAnon/VmHWM in /proc/{pid}/status"))
}

fn parse_memory(status: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Memory {
        vm_rss: kib("VmRSS")?,
        rss_anon: kib("RssAnon")?,
        vm_hwm: kib("VmHWM")?,
    })
}

/// Reads the metrics and the processes.
pub struct Probe {
    pub admin: Client,
    pub etcd_metrics: String,
    /// The system's processes and the control plane's: CPU is read for all of them.
    pub processes: Vec<Process>,
    http: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
}

/// Counters and gauges at one instant.
pub struct Snapshot {
    at: Instant,
    apiserver: Vec<Sample>,
    etcd: Vec<Sample>,
    cpu: BTreeMap<String, f64>,
}

impl Probe {
    pub fn new(admin: Client, etcd_metrics: String, processes: Vec<Process>) -> Probe {
        Probe {
            admin,
            etcd_metrics,
            processes,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn etcd_text(&self) -> anyhow::Result<String> {
        let uri: hyper::Uri = self.etcd_metrics.parse()?;
        let response = self.http.get(uri).await?;
        let body = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(body.to_vec())?)
    }

    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let request = hyper::Request::get("/metrics").body(Vec::new())?;
        let apiserver = self.admin.request_text(request).await?;
        let etcd = self.etcd_text().await.context("reading etcd's /metrics")?;
        let mut cpu = BTreeMap::new();
        for process in &self.processes {
            // A process that is down (between a kill and its start) has no time to add.
            if let Ok(seconds) = process.pid().and_then(cpu_seconds) {
                cpu.insert(process.name.clone(), seconds);
            }
        }
        Ok(Snapshot {
            at: Instant::now(),
            apiserver: parse(&apiserver)?,
            etcd: parse(&etcd)?,
            cpu,
        })
    }

    /// etcd's database size in use, in bytes.
    pub async fn etcd_db_in_use(&self) -> anyhow::Result<f64> {
        let samples = parse(&self.etcd_text().await?)?;
        Ok(sum(
            &samples,
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            |_| true,
        ))
    }
}

fn parse(text: &str) -> anyhow::Result<Vec<Sample>> {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    Ok(Scrape::parse(lines)?.samples)
}

fn scalar(value: &Value) -> f64 {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(_) | Value::Summary(_) => 0.0,
    }
}

fn sum(samples: &[Sample], metric: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric && keep(s))
        .map(|s| scalar(&s.value))
        .sum()
}

/// Sums of one metric by a key made from each sample's labels (None: not counted).
fn by(
    samples: &[Sample],
    metric: &str,
    key: impl Fn(&Sample) -> Option<String>,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.metric == metric) {
        if let Some(k) = key(sample) {
            *out.entry(k).or_insert(0.0) += scalar(&sample.value);
        }
    }
    out
}

fn label<'a>(sample: &'a Sample, name: &str) -> &'a str {
    sample.labels.get(name).unwrap_or("")
}

fn resource(sample: &Sample) -> String {
    let (resource, group) = (label(sample, "resource"), label(sample, "group"));
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn request_key(sample: &Sample) -> Option<String> {
    let verb = label(sample, "verb");
    if verb == "WATCH" {
        return None;
    }
    let subresource = label(sample, "subresource");
    let mut key = format!("{verb} {}", resource(sample));
    if !subresource.is_empty() {
        key = format!("{key}/{subresource}");
    }
    Some(key)
}

fn write_key(sample: &Sample) -> Option<String> {
    matches!(label(sample, "operation"), "create" | "update" | "delete").then(|| resource(sample))
}

/// b - a per key, dropping keys that did not change.
fn delta(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    b.iter()
        .map(|(k, v)| (k.clone(), v - a.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

impl Window {
    pub fn between(a: &Snapshot, b: &Snapshot) -> Window {
        let requests = |s: &Snapshot| by(&s.apiserver, "apiserver_request_total", request_key);
        let writes = |s: &Snapshot| {
            let done = by(&s.apiserver, "etcd_requests_total", write_key);
            let failed = by(&s.apiserver, "etcd_request_errors_total", write_key);
            delta(&failed, &done)
        };
        let admissions = |s: &Snapshot| {
            by(
                &s.apiserver,
                "apiserver_admission_webhook_admission_duration_seconds_count",
                |sample| Some(label(sample, "name").to_string()),
            )
        };
        let watches = by(&b.apiserver, "apiserver_longrunning_requests", |s| {
            (label(s, "verb") == "WATCH").then(|| resource(s))
        });
        let puts = |s: &Snapshot| sum(&s.etcd, "etcd_mvcc_put_total", |_| true);
        Window {
            seconds: (b.at - a.at).as_secs_f64(),
            requests: delta(&requests(a), &requests(b)),
            storage_writes: delta(&writes(a), &writes(b)),
            etcd_puts: puts(b) - puts(a),
            watches: watches.into_iter().filter(|(_, v)| *v != 0.0).collect(),
            admissions: delta(&admissions(a), &admissions(b)),
            cpu_seconds: b
                .cpu
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v - a.cpu.get(k)?)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APISERVER: &str = r#"# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="tekton.dev",resource="customruns",scope="resource",subresource="",verb="PATCH",version="v1beta1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="tekton.dev",resource="customruns",scope="resource",subresource="status",verb="PATCH",version="v1beta1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="tekton.dev",resource="customruns",scope="namespace",subresource="",verb="WATCH",version="v1beta1"} 2
# TYPE etcd_requests_total counter
etcd_requests_total{group="tekton.dev",operation="update",resource="customruns"} 10
etcd_requests_total{group="tekton.dev",operation="get",resource="customruns"} 99
etcd_requests_total{group="",operation="create",resource="events"} 4
# TYPE etcd_request_errors_total counter
etcd_request_errors_total{group="tekton.dev",operation="update",resource="customruns"} 1
# TYPE apiserver_longrunning_requests gauge
apiserver_longrunning_requests{component="apiserver",group="tekton.dev",resource="customruns",scope="namespace",subresource="",verb="WATCH",version="v1beta1"} 3
# TYPE apiserver_admission_webhook_admission_duration_seconds histogram
apiserver_admission_webhook_admission_duration_seconds_bucket{name="decisions.approval.tekton.dev",operation="UPDATE",rejected="false",type="validating",le="+Inf"} 5
apiserver_admission_webhook_admission_duration_seconds_sum{name="decisions.approval.tekton.dev",operation="UPDATE",rejected="false",type="validating"} 0.1
apiserver_admission_webhook_admission_duration_seconds_count{name="decisions.approval.tekton.dev",operation="UPDATE",rejected="false",type="validating"} 5
"#;

    fn snapshot(apiserver: &str, etcd: &str, cpu: f64) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            apiserver: parse(apiserver).unwrap(),
            etcd: parse(etcd).unwrap(),
            cpu: BTreeMap::from([("controller".to_string(), cpu)]),
        }
    }

    #[test]
    fn a_window_counts_requests_writes_less_errors_watches_and_admissions() {
        let before = snapshot(
            "",
            "# TYPE etcd_mvcc_put_total counter\netcd_mvcc_put_total 100\n",
            1.0,
        );
        let after = snapshot(
            APISERVER,
            "# TYPE etcd_mvcc_put_total counter\netcd_mvcc_put_total 112\n",
            1.5,
        );
        let window = Window::between(&before, &after);
        assert_eq!(
            window.requests,
            BTreeMap::from([
                ("PATCH customruns.tekton.dev".to_string(), 7.0),
                ("PATCH customruns.tekton.dev/status".to_string(), 3.0),
            ])
        );
        assert_eq!(
            window.storage_writes,
            BTreeMap::from([
                ("customruns.tekton.dev".to_string(), 9.0),
                ("events".to_string(), 4.0),
            ])
        );
        assert_eq!(window.etcd_puts, 12.0);
        assert_eq!(window.watches["customruns.tekton.dev"], 3.0);
        assert_eq!(window.admissions["decisions.approval.tekton.dev"], 5.0);
        assert_eq!(window.cpu_seconds["controller"], 0.5);
    }

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(cpu_ticks(stat).unwrap(), 300.0);
        assert!(cpu_ticks("42 (x) S 1").is_err());
    }

    #[test]
    fn memory_reads_the_three_sizes_in_kib() {
        let status = "Name:\tx\nVmHWM:\t  9000 kB\nVmRSS:\t  8000 kB\nRssAnon:\t  5000 kB\n";
        let memory = parse_memory(status).unwrap();
        assert_eq!(
            (memory.vm_rss, memory.rss_anon, memory.vm_hwm),
            (8000, 5000, 9000)
        );
        assert!(parse_memory("VmRSS:\t1 kB\n").is_none());
    }
}
