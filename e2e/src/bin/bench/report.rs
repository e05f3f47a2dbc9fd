//! BENCHMARKS.md, bench/results.json (the summary) and bench/*.svg, all computed from the
//! runs' raw records (bench/runs/*.json), so that every number has one source.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::charts::{Chart, Series, cdf};
use crate::model::{MemoryPoint, RestartKind, Run, System, Window};
use crate::stats::{Spread, Verdict, compare, fit, percentile};

/// The processes of the control plane; every other process a run records is the system's.
const CONTROL_PLANE: [&str; 2] = ["etcd", "kube-apiserver"];
const MIB: f64 = 1024.0 * 1024.0;

/// How a row reads its number from one run's record (None: not measured in that run).
type Reading = Box<dyn Fn(&Run) -> Option<f64>>;

/// One line of the table: a number every run yields (or not).
struct Row {
    section: &'static str,
    name: String,
    unit: &'static str,
    value: Reading,
}

fn row(
    section: &'static str,
    name: impl Into<String>,
    unit: &'static str,
    value: impl Fn(&Run) -> Option<f64> + 'static,
) -> Row {
    Row {
        section,
        name: name.into(),
        unit,
        value: Box::new(value),
    }
}

/// How much of a window's count is above the baseline's rate over the same time.
fn above_baseline(window: &Window, baseline: &Window, count: impl Fn(&Window) -> f64) -> f64 {
    count(window) - count(baseline) / baseline.seconds * window.seconds
}

fn cpu(window: &Window, control_plane: bool) -> f64 {
    window
        .cpu_seconds
        .iter()
        .filter(|(name, _)| CONTROL_PLANE.contains(&name.as_str()) == control_plane)
        .map(|(_, seconds)| seconds)
        .sum()
}

/// CPU per decision in ms: the control plane's above the baseline's rate, the system's all
/// of it. The system's idle rate is not subtracted: MAG's idle work is a periodic resync of
/// every gate, which the decisions displace rather than add to, so subtracting it would
/// cancel its decisions' own cost (its CPU during the decisions is at its idle rate).
fn cpu_per_decision(run: &Run, control_plane: bool) -> Option<f64> {
    let count = run.decisions.user_ms.len() as f64;
    let spent = if control_plane {
        above_baseline(&run.decisions.cost, &run.baseline, |w| cpu(w, true))
    } else {
        cpu(&run.decisions.cost, false)
    };
    (count > 0.0).then(|| spent / count * 1000.0)
}

fn at_n(run: &Run) -> Option<&MemoryPoint> {
    run.ladder.iter().find(|p| p.gates == run.gates)
}

fn restart(run: &Run, kind: RestartKind) -> Option<&crate::model::Restart> {
    run.restarts.iter().find(|r| r.kind == kind)
}

fn level(run: &Run, concurrency: usize) -> Option<&crate::model::SweepLevel> {
    run.sweep.iter().find(|l| l.concurrency == concurrency)
}

fn rows(concurrencies: &[usize]) -> Vec<Row> {
    let lat = |pick: fn(&Run) -> &Vec<f64>, q: f64| move |r: &Run| percentile(pick(r), q);
    fn user(r: &Run) -> &Vec<f64> {
        &r.decisions.user_ms
    }
    fn controller(r: &Run) -> &Vec<f64> {
        &r.decisions.controller_ms
    }
    fn floor(r: &Run) -> &Vec<f64> {
        &r.floor_ms
    }
    let section = "Decision latency, one at a time, N gates waiting";
    let mut rows = vec![];
    for (q, label) in [(50.0, "p50"), (95.0, "p95"), (99.0, "p99"), (100.0, "max")] {
        rows.push(row(
            section,
            format!("user-visible {label}"),
            "ms",
            lat(user, q),
        ));
    }
    for (q, label) in [(50.0, "p50"), (95.0, "p95"), (99.0, "p99"), (100.0, "max")] {
        rows.push(row(
            section,
            format!("controller-only {label}"),
            "ms",
            lat(controller, q),
        ));
    }
    rows.push(row(
        section,
        "floor p50 (the driver writes the status)",
        "ms",
        lat(floor, 50.0),
    ));
    rows.push(row(section, "floor p99", "ms", lat(floor, 99.0)));
    rows.push(row(
        section,
        "user-visible p50 above the floor's",
        "ms",
        |r| Some(percentile(&r.decisions.user_ms, 50.0)? - percentile(&r.floor_ms, 50.0)?),
    ));

    let section = "Cost on the control plane (above the baseline without the system)";
    let idle_rate = |r: &Run| {
        r.idle.requests_total() / r.idle.seconds - r.baseline.requests_total() / r.baseline.seconds
    };
    rows.push(row(section, "idle API requests/s", "req/s", move |r| {
        Some(idle_rate(r))
    }));
    rows.push(row(
        section,
        "idle API requests/s per 1,000 gates",
        "req/s",
        move |r| Some(idle_rate(r) / (r.gates as f64 / 1000.0)),
    ));
    rows.push(row(section, "idle CPU, the system", "ms/s", |r| {
        Some(cpu(&r.idle, false) / r.idle.seconds * 1000.0)
    }));
    rows.push(row(
        section,
        "idle CPU, kube-apiserver + etcd",
        "ms/s",
        |r| Some(above_baseline(&r.idle, &r.baseline, |w| cpu(w, true)) / r.idle.seconds * 1000.0),
    ));
    rows.push(row(section, "open watches", "watches", |r| {
        Some(r.idle.watches.values().sum::<f64>() - r.baseline.watches.values().sum::<f64>())
    }));
    rows.push(row(
        section,
        "etcd writes per gate created (the create included)",
        "writes",
        |r| {
            Some(
                above_baseline(&r.create.cost, &r.baseline, Window::writes_total)
                    / r.create.gates as f64,
            )
        },
    ));
    rows.push(row(
        section,
        "etcd writes per decision (the approver's included)",
        "writes",
        |r| {
            let count = r.decisions.user_ms.len() as f64;
            Some(above_baseline(&r.decisions.cost, &r.baseline, Window::writes_total) / count)
        },
    ));
    rows.push(row(
        section,
        "etcd writes per decision by the system",
        "writes",
        |r| {
            let count = r.decisions.user_ms.len() as f64;
            Some(above_baseline(&r.decisions.cost, &r.baseline, Window::writes_total) / count - 1.0)
        },
    ));
    rows.push(row(
        section,
        "etcd puts per decision (etcd's own count)",
        "puts",
        |r| {
            let count = r.decisions.user_ms.len() as f64;
            Some(above_baseline(&r.decisions.cost, &r.baseline, |w| w.etcd_puts) / count)
        },
    ));
    rows.push(row(
        section,
        "webhook admissions per decision",
        "calls",
        |r| {
            let count = r.decisions.user_ms.len() as f64;
            Some(r.decisions.cost.admissions.values().sum::<f64>() / count)
        },
    ));
    rows.push(row(section, "CPU per decision, the system", "ms", |r| {
        cpu_per_decision(r, false)
    }));
    rows.push(row(
        section,
        "CPU per decision, kube-apiserver + etcd",
        "ms",
        |r| cpu_per_decision(r, true),
    ));
    rows.push(row(section, "CPU per decision, all", "ms", |r| {
        Some(cpu_per_decision(r, false)? + cpu_per_decision(r, true)?)
    }));

    let section = "Memory (one replica of each part: controller + webhook)";
    let mem = |field: fn(&crate::model::Memory) -> u64| {
        move |r: &Run| at_n(r).map(|p| p.total(field) as f64 / 1024.0)
    };
    rows.push(row(section, "VmRSS at N", "MiB", mem(|m| m.vm_rss)));
    // Each part's own: both of ours are one binary, whose file pages count in each VmRSS.
    for part in ["controller", "webhook"] {
        rows.push(row(
            section,
            format!("VmRSS at N, {part}"),
            "MiB",
            move |r| Some(at_n(r)?.processes.get(part)?.vm_rss as f64 / 1024.0),
        ));
    }
    rows.push(row(section, "RssAnon at N", "MiB", mem(|m| m.rss_anon)));
    rows.push(row(section, "VmHWM (peak) at N", "MiB", mem(|m| m.vm_hwm)));
    rows.push(row(
        section,
        "RssAnon per waiting gate (fitted over the run's steps)",
        "bytes",
        |r| {
            let points: Vec<(f64, f64)> = r
                .ladder
                .iter()
                .map(|p| (p.gates as f64, p.total(|m| m.rss_anon) as f64 * 1024.0))
                .collect();
            fit(&points).map(|(slope, _)| slope)
        },
    ));
    rows.push(row(
        section,
        "etcd in use per waiting gate (fitted)",
        "bytes",
        |r| {
            let points: Vec<(f64, f64)> = r
                .ladder
                .iter()
                .map(|p| (p.gates as f64, p.etcd_db_in_use_bytes))
                .collect();
            fit(&points).map(|(slope, _)| slope)
        },
    ));
    rows.push(row(
        section,
        "follower replica's VmRSS, ready",
        "MiB",
        |r| Some(restart(r, RestartKind::Failover)?.follower?.vm_rss as f64 / 1024.0),
    ));

    let section = "Creating gates (the ladder's last step, 50 requests in flight)";
    rows.push(row(section, "created", "gates/s", |r| {
        Some(r.create.gates as f64 / r.create.create_seconds)
    }));
    rows.push(row(
        section,
        "acknowledged (shown waiting)",
        "gates/s",
        |r| Some(r.create.gates as f64 / r.create.acknowledge_seconds),
    ));

    let section = "Restart (a decision made while no process leads)";
    for kind in [
        RestartKind::Sigterm,
        RestartKind::Sigkill,
        RestartKind::Failover,
    ] {
        rows.push(row(
            section,
            format!("{}: ready (leads)", kind.text()),
            "s",
            move |r| Some(restart(r, kind)?.ready_seconds),
        ));
        rows.push(row(
            section,
            format!("{}: decision honoured", kind.text()),
            "s",
            move |r| Some(restart(r, kind)?.honoured_seconds),
        ));
    }

    let section = "Throughput: approvals in flight at once, each until Succeeded";
    for &c in concurrencies {
        rows.push(row(
            section,
            format!("{c} in flight: decisions/s"),
            "1/s",
            move |r| Some(level(r, c)?.decisions_per_second()),
        ));
        rows.push(row(
            section,
            format!("{c} in flight: p50"),
            "ms",
            move |r| percentile(&level(r, c)?.latencies_ms, 50.0),
        ));
        rows.push(row(
            section,
            format!("{c} in flight: p99"),
            "ms",
            move |r| percentile(&level(r, c)?.latencies_ms, 99.0),
        ));
        rows.push(row(
            section,
            format!("{c} in flight: requests refused with 429"),
            "requests",
            move |r| Some(level(r, c)?.retried_429 as f64),
        ));
    }
    rows.push(row(
        section,
        "approvals whose connection dropped, all levels",
        "requests",
        |r| Some(r.sweep.iter().map(|l| l.retried_dropped).sum::<usize>() as f64),
    ));

    let section = "Fairness checks";
    rows.push(row(
        section,
        "client-side throttling lines in the system's logs",
        "lines",
        |r| Some(r.throttling_log_lines as f64),
    ));
    rows
}

#[derive(Serialize)]
struct SummaryRow {
    section: &'static str,
    name: String,
    unit: &'static str,
    ours: Option<SpreadJson>,
    mag: Option<SpreadJson>,
    /// "exceeds", "within" or "unknown" (fewer than two runs of one).
    difference: Option<&'static str>,
}

#[derive(Serialize)]
struct SpreadJson {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

impl From<Spread> for SpreadJson {
    fn from(s: Spread) -> Self {
        SpreadJson {
            median: s.median,
            min: s.min,
            max: s.max,
            runs: s.runs,
        }
    }
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Exceeds => "exceeds",
        Verdict::Within => "within",
        Verdict::Unknown => "unknown",
    }
}

/// A number for the table: 3 significant digits, no exponent.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 || magnitude == 0.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn cell(spread: Option<Spread>) -> String {
    match spread {
        None => "not run".to_string(),
        Some(s) if s.runs == 1 => number(s.median),
        Some(s) => format!("{} ({}–{})", number(s.median), number(s.min), number(s.max)),
    }
}

fn ratio(ours: Option<Spread>, mag: Option<Spread>) -> String {
    match (ours, mag) {
        (Some(o), Some(m)) if o.median > 0.0 && m.median >= 0.0 => {
            format!("{:.1}x", m.median / o.median)
        }
        _ => "-".to_string(),
    }
}

fn spread_of(runs: &[&Run], row: &Row) -> Option<Spread> {
    let values: Vec<f64> = runs.iter().filter_map(|r| (row.value)(r)).collect();
    Spread::of(&values)
}

/// One of our targets at N = 10,000, read from the median of ours.
struct Target {
    text: &'static str,
    row: &'static str,
    bound: f64,
}

const TARGETS: &[Target] = &[
    Target {
        text: "steady-state user-visible p99 <= 20 ms",
        row: "user-visible p99",
        bound: 20.0,
    },
    Target {
        text: "VmRSS (controller + webhook) <= 40 MiB",
        row: "VmRSS at N",
        bound: 40.0,
    },
    Target {
        text: "<= 1 idle API request/s per 1,000 gates",
        row: "idle API requests/s per 1,000 gates",
        bound: 1.0,
    },
    Target {
        text: "<= 2 etcd writes per decision caused by our controller",
        row: "etcd writes per decision by the system",
        bound: 2.0,
    },
];

pub fn load(dir: &Path) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)?;
            runs.push(
                serde_json::from_str::<Run>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    if runs.is_empty() {
        bail!("no run records in {}", dir.display());
    }
    runs.sort_by(|a, b| (&a.date, a.run, a.system).cmp(&(&b.date, b.run, b.system)));
    Ok(runs)
}

pub fn write(runs_dir: &Path, analysis: &Path, out_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let runs = load(runs_dir)?;
    let analysis = std::fs::read_to_string(analysis)
        .with_context(|| format!("reading {}", analysis.display()))?;
    let (document, summary) = render(&runs, &analysis);
    std::fs::write(out, document)?;
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    for (file, chart) in charts(&runs) {
        chart.write_svg(&out_dir.join(file))?;
    }
    Ok(())
}

fn of(runs: &[Run], system: System) -> Vec<&Run> {
    runs.iter().filter(|r| r.system == system).collect()
}

fn concurrencies(runs: &[Run]) -> Vec<usize> {
    let set: BTreeSet<usize> = runs
        .iter()
        .flat_map(|r| r.sweep.iter().map(|l| l.concurrency))
        .collect();
    set.into_iter().collect()
}

#[derive(Serialize)]
pub struct Summary {
    runs: Vec<(System, usize, String)>,
    rows: Vec<SummaryRow>,
}

pub fn render(runs: &[Run], analysis: &str) -> (String, Summary) {
    let (ours, mag) = (of(runs, System::Ours), of(runs, System::Mag));
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line("# Benchmarks: approval-controller vs manual-approval-gate\n");
    line("Generated by `make bench` from the raw records in [`bench/runs/`](bench/runs/) (every");
    line("sample and counter of every run); the summary of the tables below is");
    line(
        "[`bench/results.json`](bench/results.json). Do not edit by hand: the analysis at the end",
    );
    line("comes from [`bench/analysis.md`](bench/analysis.md).\n");
    let first = &runs[0];
    let m = &first.machine;
    let dates: BTreeSet<&str> = runs.iter().map(|r| r.date.as_str()).collect();
    line(&format!(
        "- Runs: {} (in this order: {}), {} to {}",
        runs.len(),
        runs.iter()
            .map(|r| format!("{} {}", r.system.title(), r.run))
            .collect::<Vec<_>>()
            .join(", "),
        dates.first().copied().unwrap_or(""),
        dates.last().copied().unwrap_or("")
    ));
    line(&format!(
        "- Machine: {} CPUs ({}), {} GiB memory, Linux {}",
        m.cpus, m.cpu_model, m.memory_gib, m.kernel
    ));
    line(&format!("- CPU pinning: {}", first.pinning));
    let versions: Vec<String> = first
        .versions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    line(&format!("- Versions: {}", versions.join(", ")));
    line(&format!(
        "- N = {} gates waiting during the steady-state workloads; one approver each.\n",
        first.gates
    ));
    line("Cells are the median over the runs, with the smallest and largest run in brackets.");
    line("**Beyond spread** says whether every run of one system is below every run of the");
    line("other (yes), or the ranges overlap (no). MAG / ours above 1 means ours is lower:");
    line(
        "faster, smaller, cheaper; in the rates (gates/s, decisions/s), below 1 means ours is higher.\n",
    );

    let mut summary_rows = Vec::new();
    let mut section = "";
    for row in rows(&concurrencies(runs)) {
        if row.section != section {
            section = row.section;
            line(&format!("\n### {section}\n"));
            line("| | unit | ours | MAG | MAG / ours | beyond spread |");
            line("|---|---|---:|---:|---:|---|");
        }
        let (o, g) = (spread_of(&ours, &row), spread_of(&mag, &row));
        let verdict = match (&o, &g) {
            (Some(o), Some(g)) => Some(compare(o, g)),
            _ => None,
        };
        let shown = match verdict {
            Some(Verdict::Exceeds) => "yes",
            Some(Verdict::Within) => "no",
            _ => "-",
        };
        line(&format!(
            "| {} | {} | {} | {} | {} | {shown} |",
            row.name,
            row.unit,
            cell(o),
            cell(g),
            ratio(o, g)
        ));
        summary_rows.push(SummaryRow {
            section: row.section,
            name: row.name.clone(),
            unit: row.unit,
            ours: o.map(Into::into),
            mag: g.map(Into::into),
            difference: verdict.map(verdict_text),
        });
    }

    line("\n### Memory against waiting gates (median over the runs that reached each N)\n");
    line("| system | N | runs | VmRSS MiB | RssAnon MiB | VmHWM MiB | etcd in use MiB |");
    line("|---|---:|---:|---:|---:|---:|---:|");
    for (system, system_runs) in [(System::Ours, &ours), (System::Mag, &mag)] {
        for (n, points) in ladder_points(system_runs) {
            let median = |f: &dyn Fn(&MemoryPoint) -> f64| {
                let values: Vec<f64> = points.iter().map(|p| f(p)).collect();
                number(median_of(&values))
            };
            line(&format!(
                "| {} | {n} | {} | {} | {} | {} | {} |",
                system.title(),
                points.len(),
                median(&|p| p.total(|m| m.vm_rss) as f64 / 1024.0),
                median(&|p| p.total(|m| m.rss_anon) as f64 / 1024.0),
                median(&|p| p.total(|m| m.vm_hwm) as f64 / 1024.0),
                median(&|p| p.etcd_db_in_use_bytes / MIB),
            ));
        }
    }

    line("\n## Our targets at N = 10,000 (medians of ours)\n");
    for target in TARGETS {
        let found = summary_rows.iter().find(|r| r.name == target.row);
        let verdict = match found.and_then(|r| r.ours.as_ref()) {
            None => "not measured".to_string(),
            Some(s) if s.median <= target.bound => format!(
                "**met** ({} {})",
                number(s.median),
                found.map_or("", |r| r.unit)
            ),
            Some(s) => format!(
                "**missed** ({} {})",
                number(s.median),
                found.map_or("", |r| r.unit)
            ),
        };
        line(&format!("- {}: {verdict}", target.text));
    }
    line("\n## Charts\n");
    for (file, chart) in charts(runs) {
        line(&format!("![{}](bench/{file})\n", chart.title));
    }
    line("");
    out.push_str(analysis);
    let summary = Summary {
        runs: runs
            .iter()
            .map(|r| (r.system, r.run, r.date.clone()))
            .collect(),
        rows: summary_rows,
    };
    (out, summary)
}

/// Each N some run of the system measured, with those runs' points.
fn ladder_points<'a>(runs: &[&'a Run]) -> Vec<(usize, Vec<&'a MemoryPoint>)> {
    let ns: BTreeSet<usize> = runs
        .iter()
        .flat_map(|r| r.ladder.iter().map(|p| p.gates))
        .collect();
    ns.into_iter()
        .map(|n| {
            let points = runs
                .iter()
                .filter_map(|r| r.ladder.iter().find(|p| p.gates == n))
                .collect();
            (n, points)
        })
        .collect()
}

fn median_of(values: &[f64]) -> f64 {
    Spread::of(values).map_or(0.0, |s| s.median)
}

fn charts(runs: &[Run]) -> Vec<(&'static str, Chart<'static>)> {
    let systems = [System::Ours, System::Mag];
    let pooled = |system: System, pick: fn(&Run) -> &Vec<f64>| -> Vec<f64> {
        of(runs, system)
            .iter()
            .flat_map(|r| pick(r).iter().copied())
            .collect()
    };
    let mut latency = Vec::new();
    for system in systems {
        let samples = pooled(system, |r| &r.decisions.user_ms);
        if !samples.is_empty() {
            latency.push(Series {
                name: format!("{} (user-visible)", system.title()),
                points: cdf(&samples),
                markers: false,
            });
        }
    }
    for system in systems {
        let samples = pooled(system, |r| &r.floor_ms);
        if !samples.is_empty() {
            latency.push(Series {
                name: format!("floor on {}'s control plane", system.title()),
                points: cdf(&samples),
                markers: false,
            });
        }
    }
    let mut memory = Vec::new();
    let mut throughput = Vec::new();
    let mut p99 = Vec::new();
    for system in systems {
        let system_runs = of(runs, system);
        if system_runs.is_empty() {
            continue;
        }
        let points = ladder_points(&system_runs)
            .into_iter()
            .map(|(n, points)| {
                let values: Vec<f64> = points
                    .iter()
                    .map(|p| p.total(|m| m.rss_anon) as f64 / 1024.0)
                    .collect();
                (n as f64, median_of(&values))
            })
            .collect();
        memory.push(Series {
            name: system.title().to_string(),
            points,
            markers: true,
        });
        let by_level = |f: &dyn Fn(&crate::model::SweepLevel) -> Option<f64>| -> Vec<(f64, f64)> {
            concurrencies(runs)
                .into_iter()
                .filter_map(|c| {
                    let values: Vec<f64> =
                        system_runs.iter().filter_map(|r| f(level(r, c)?)).collect();
                    (!values.is_empty()).then(|| (c as f64, median_of(&values)))
                })
                .collect()
        };
        throughput.push(Series {
            name: system.title().to_string(),
            points: by_level(&|l| Some(l.decisions_per_second())),
            markers: true,
        });
        p99.push(Series {
            name: system.title().to_string(),
            points: by_level(&|l| percentile(&l.latencies_ms, 99.0)),
            markers: true,
        });
    }
    vec![
        (
            "latency-cdf.svg",
            Chart {
                title: "Decision latency, one at a time (CDF, all runs)",
                x_label: "ms from the approve request until the watch shows Succeeded",
                y_label: "fraction of decisions",
                log_x: true,
                log_y: false,
                series: latency,
            },
        ),
        (
            "memory.svg",
            Chart {
                title: "RssAnon of controller + webhook against waiting gates",
                x_label: "gates waiting",
                y_label: "MiB",
                log_x: false,
                log_y: false,
                series: memory,
            },
        ),
        (
            "throughput.svg",
            Chart {
                title: "Decisions per second against approvals in flight",
                x_label: "approvals in flight",
                y_label: "decisions/s",
                log_x: true,
                log_y: false,
                series: throughput,
            },
        ),
        (
            "sweep-p99.svg",
            Chart {
                title: "p99 per-approval latency against approvals in flight",
                x_label: "approvals in flight",
                y_label: "ms",
                log_x: true,
                log_y: true,
                series: p99,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Creation, Decisions, Machine, Memory, Restart, SweepLevel};

    fn window(seconds: f64, requests: f64, writes: f64, cpu: &[(&str, f64)]) -> Window {
        Window {
            seconds,
            requests: BTreeMap::from([("GET leases.coordination.k8s.io".to_string(), requests)]),
            storage_writes: BTreeMap::from([("customruns.tekton.dev".to_string(), writes)]),
            etcd_puts: writes,
            watches: BTreeMap::from([("customruns.tekton.dev".to_string(), requests)]),
            admissions: BTreeMap::from([("decisions.approval.tekton.dev".to_string(), 100.0)]),
            cpu_seconds: cpu.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    /// A run whose every latency is `ms`, with `writes` per decision and `kib` per gate.
    fn run(system: System, n: usize, ms: f64, writes: f64) -> Run {
        let memory = |gates: usize| MemoryPoint {
            gates,
            processes: BTreeMap::from([(
                "controller".to_string(),
                Memory {
                    vm_rss: 10_240 + gates as u64,
                    rss_anon: 5_120 + gates as u64,
                    vm_hwm: 20_480,
                },
            )]),
            etcd_db_in_use_bytes: 1e6 + gates as f64 * 2000.0,
        };
        Run {
            system,
            run: n,
            date: format!("2026-12-01 2{n}:00 UTC"),
            machine: Machine::default(),
            versions: BTreeMap::new(),
            pinning: "none".into(),
            gates: 10_000,
            // 1 request/s and 1 write/s of the control plane's own.
            baseline: window(10.0, 10.0, 10.0, &[("etcd", 1.0), ("kube-apiserver", 1.0)]),
            ladder: vec![memory(0), memory(10_000)],
            create: Creation {
                gates: 1000,
                create_seconds: 2.0,
                acknowledge_seconds: 4.0,
                cost: window(4.0, 0.0, 2004.0, &[]),
            },
            // 3 requests/s over 60 s: 2 above the baseline, 0.2 per 1,000 gates.
            // 0.4 CPU s/s of kube-apiserver's: 0.2 above the baseline's.
            idle: window(
                60.0,
                180.0,
                60.0,
                &[("controller", 0.6), ("kube-apiserver", 24.0)],
            ),
            decisions: Decisions {
                user_ms: vec![ms; 100],
                controller_ms: vec![ms / 2.0; 100],
                // 100 decisions in 10 s: 10 baseline writes, then `writes` + 1 each.
                cost: window(
                    10.0,
                    0.0,
                    10.0 + 100.0 * (writes + 1.0),
                    &[("controller", 0.6), ("etcd", 2.5)],
                ),
            },
            floor_ms: vec![1.0; 100],
            restarts: vec![Restart {
                kind: RestartKind::Sigkill,
                ready_seconds: 0.5,
                honoured_seconds: 0.7,
                follower: None,
            }],
            sweep: vec![SweepLevel {
                concurrency: 10,
                latencies_ms: vec![ms; 200],
                seconds: 2.0,
                retried_429: 0,
                retried_409: 0,
                retried_dropped: 0,
            }],
            throttling_log_lines: 0,
        }
    }

    fn table_row<'a>(document: &'a str, name: &str) -> &'a str {
        document
            .lines()
            .find(|line| line.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row {name} in\n{document}"))
    }

    #[test]
    fn every_row_is_computed_from_the_raw_records_above_the_baseline() {
        let runs = [run(System::Ours, 1, 5.0, 1.0)];
        let (document, _) = render(&runs, "");
        assert!(table_row(&document, "user-visible p99").contains("| 5.00 |"));
        assert!(table_row(&document, "controller-only p50").contains("| 2.50 |"));
        assert!(table_row(&document, "user-visible p50 above the floor's").contains("| 4.00 |"));
        assert!(table_row(&document, "idle API requests/s").contains("| 2.00 |"));
        assert!(table_row(&document, "idle API requests/s per 1,000 gates").contains("| 0.200 |"));
        assert!(table_row(&document, "open watches").contains("| 170 |"));
        // 2004 writes in 4 s, 4 of them the baseline's, for 1,000 gates.
        assert!(
            table_row(
                &document,
                "etcd writes per gate created (the create included)"
            )
            .contains("| 2.00 |")
        );
        assert!(
            table_row(&document, "etcd writes per decision by the system").contains("| 1.00 |")
        );
        // 0.6 CPU s over 10 s for 100 decisions, the idle 0.01/s not subtracted: 6 ms.
        assert!(table_row(&document, "CPU per decision, the system").contains("| 6.00 |"));
        assert!(table_row(&document, "idle CPU, the system").contains("| 10.0 |"));
        assert!(table_row(&document, "idle CPU, kube-apiserver + etcd").contains("| 200 |"));
        assert!(table_row(&document, "VmRSS at N, controller").contains("| 19.8 |"));
        assert!(
            table_row(&document, "CPU per decision, kube-apiserver + etcd").contains("| 5.00 |")
        );
        assert!(
            table_row(
                &document,
                "RssAnon per waiting gate (fitted over the run's steps)"
            )
            .contains("| 1024 |")
        );
        assert!(table_row(&document, "etcd in use per waiting gate (fitted)").contains("| 2000 |"));
        assert!(
            table_row(&document, "SIGKILL, then start: decision honoured").contains("| 0.700 |")
        );
        assert!(table_row(&document, "SIGTERM, then start: ready (leads)").contains("| not run |"));
        assert!(table_row(&document, "10 in flight: decisions/s").contains("| 100 |"));
    }

    #[test]
    fn a_difference_is_beyond_spread_only_when_the_runs_do_not_overlap() {
        let runs = [
            run(System::Ours, 1, 5.0, 1.0),
            run(System::Mag, 1, 20.0, 1.0),
            run(System::Ours, 2, 6.0, 1.0),
            run(System::Mag, 2, 5.5, 1.0),
        ];
        let (document, summary) = render(&runs, "the analysis\n");
        let p99 = table_row(&document, "user-visible p99");
        assert!(
            p99.contains("| 5.50 (5.00–6.00) | 12.8 (5.50–20.0) | 2.3x | no |"),
            "{p99}"
        );
        let floor = table_row(&document, "floor p50 (the driver writes the status)");
        assert!(floor.ends_with("| no |"), "{floor}");
        assert!(document.ends_with("the analysis\n"));
        let row = summary
            .rows
            .iter()
            .find(|r| r.name == "user-visible p99")
            .unwrap();
        assert_eq!(row.difference, Some("within"));

        let apart = [
            run(System::Ours, 1, 5.0, 1.0),
            run(System::Mag, 1, 20.0, 1.0),
            run(System::Ours, 2, 6.0, 1.0),
            run(System::Mag, 2, 30.0, 1.0),
        ];
        let (document, _) = render(&apart, "");
        assert!(table_row(&document, "user-visible p99").ends_with("| yes |"));
    }

    #[test]
    fn the_targets_read_the_median_of_ours() {
        let (met, _) = render(&[run(System::Ours, 1, 5.0, 1.0)], "");
        assert!(met.contains("- steady-state user-visible p99 <= 20 ms: **met** (5.00 ms)"));
        assert!(met.contains(
            "- <= 2 etcd writes per decision caused by our controller: **met** (1.00 writes)"
        ));
        let (missed, _) = render(&[run(System::Ours, 1, 25.0, 3.0)], "");
        assert!(missed.contains("p99 <= 20 ms: **missed** (25.0 ms)"));
        assert!(missed.contains("caused by our controller: **missed** (3.00 writes)"));
        assert!(missed.contains("- VmRSS (controller + webhook) <= 40 MiB: **met** (19.8 MiB)"));
    }

    #[test]
    fn the_charts_have_a_series_per_system_and_floor() {
        let runs = [
            run(System::Ours, 1, 5.0, 1.0),
            run(System::Mag, 1, 20.0, 1.0),
        ];
        let charts = charts(&runs);
        let names: Vec<&str> = charts.iter().map(|(file, _)| *file).collect();
        assert_eq!(
            names,
            [
                "latency-cdf.svg",
                "memory.svg",
                "throughput.svg",
                "sweep-p99.svg"
            ]
        );
        assert_eq!(charts[0].1.series.len(), 4);
        assert_eq!(
            charts[1].1.series[0].points,
            vec![(0.0, 5.0), (10_000.0, 5_120.0 / 1024.0 + 10_000.0 / 1024.0)]
        );
        assert_eq!(charts[2].1.series[1].points, vec![(10.0, 100.0)]);
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(number(1234.6), "1235");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.2345), "1.23");
        assert_eq!(number(0.01234), "0.012");
        assert_eq!(number(0.0), "0.00");
        assert_eq!(number(-2.5), "-2.50");
    }
}
