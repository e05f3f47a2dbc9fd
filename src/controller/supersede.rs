//! Which waiting gates supersede each other: for every line (a namespace and a frozen
//! supersede key, by default `<pipeline>/<pipeline task>`), the gates waiting on it, oldest
//! first. The controller fills it as it plans gates whose policy has `supersede`; a gate
//! that starts waiting wakes the older ones on its line, which then end `Superseded`.
//!
//! Like the deadlines, entries are hints rebuilt from the objects: after a restart every gate
//! is planned again and registers itself. A gate deleted while waiting leaves its entry
//! until the process restarts (a few dozen bytes), and can then still end older gates of
//! its line: as it would have, had they been planned before it was deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Gates on one line, by (creation time, name): the newest last.
type Line = BTreeMap<(DateTime<Utc>, String), String>;

/// The waiting gates of each line.
#[derive(Debug, Default)]
pub struct Lines {
    lines: Mutex<HashMap<(String, String), Line>>,
}

/// A waiting gate on a line.
#[derive(Clone, Copy, Debug)]
pub struct Waiting<'a> {
    /// The gate's namespace.
    pub namespace: &'a str,
    /// Its frozen supersede key.
    pub key: &'a str,
    /// When the gate was created: later is newer.
    pub created: DateTime<Utc>,
    /// Its name (orders gates created in the same second).
    pub name: &'a str,
    /// Its PipelineRun, named in the message of the gates it supersedes.
    pub pipeline_run: &'a str,
}

impl Lines {
    fn lines(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Line>> {
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `gate` as waiting; returns the older gates on its line (to plan again).
    pub fn waiting(&self, gate: Waiting<'_>) -> Vec<String> {
        let mut lines = self.lines();
        let line = lines
            .entry((gate.namespace.to_string(), gate.key.to_string()))
            .or_default();
        line.insert(
            (gate.created, gate.name.to_string()),
            gate.pipeline_run.to_string(),
        );
        line.range(..(gate.created, gate.name.to_string()))
            .map(|((_, name), _)| name.clone())
            .collect()
    }

    /// The PipelineRun of the newest gate waiting on `gate`'s line, if it is newer than
    /// `gate`.
    pub fn newer(&self, gate: Waiting<'_>) -> Option<String> {
        let lines = self.lines();
        let line = lines.get(&(gate.namespace.to_string(), gate.key.to_string()))?;
        let ((created, name), pipeline_run) = line.last_key_value()?;
        ((*created, name.as_str()) > (gate.created, gate.name)).then(|| pipeline_run.clone())
    }

    /// Forgets `gate`: it ended.
    pub fn ended(&self, namespace: &str, key: &str, created: DateTime<Utc>, name: &str) {
        let mut lines = self.lines();
        let line_key = (namespace.to_string(), key.to_string());
        if let Some(line) = lines.get_mut(&line_key) {
            line.remove(&(created, name.to_string()));
            if line.is_empty() {
                lines.remove(&line_key);
            }
        }
    }

    /// Gates on all lines.
    pub fn len(&self) -> usize {
        self.lines().values().map(BTreeMap::len).sum()
    }

    /// Whether no gate waits on any line.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate<'a>(name: &'a str, minute: u32, key: &'a str) -> Waiting<'a> {
        Waiting {
            namespace: "ci",
            key,
            created: format!("2026-12-01T10:{minute:02}:00Z").parse().unwrap(),
            name,
            pipeline_run: name.trim_end_matches("-approve"),
        }
    }

    #[test]
    fn a_newer_gate_on_the_line_supersedes_the_older_ones() {
        let lines = Lines::default();
        assert!(
            lines
                .waiting(gate("a-approve", 1, "release/approve"))
                .is_empty()
        );
        assert_eq!(lines.newer(gate("a-approve", 1, "release/approve")), None);
        assert_eq!(
            lines.waiting(gate("b-approve", 2, "release/approve")),
            ["a-approve"]
        );
        assert_eq!(
            lines.newer(gate("a-approve", 1, "release/approve")),
            Some("b".into())
        );
        assert_eq!(lines.newer(gate("b-approve", 2, "release/approve")), None);
        // Another line, or another namespace, is not affected.
        assert!(
            lines
                .waiting(gate("c-approve", 3, "hotfix/approve"))
                .is_empty()
        );
        let mut other = gate("d-approve", 4, "release/approve");
        other.namespace = "prod";
        assert!(lines.waiting(other).is_empty());
        assert_eq!(
            lines.newer(gate("a-approve", 1, "release/approve")),
            Some("b".into())
        );
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn an_older_gate_registered_late_still_learns_of_the_newer_one() {
        let lines = Lines::default();
        lines.waiting(gate("b-approve", 2, "release/approve"));
        assert!(
            lines
                .waiting(gate("a-approve", 1, "release/approve"))
                .is_empty()
        );
        assert_eq!(
            lines.newer(gate("a-approve", 1, "release/approve")),
            Some("b".into())
        );
    }

    #[test]
    fn an_ended_gate_leaves_its_line() {
        let lines = Lines::default();
        let a = gate("a-approve", 1, "release/approve");
        let b = gate("b-approve", 2, "release/approve");
        lines.waiting(a);
        lines.waiting(b);
        lines.ended("ci", "release/approve", b.created, "b-approve");
        assert_eq!(lines.newer(a), None);
        lines.ended("ci", "release/approve", a.created, "a-approve");
        assert!(lines.is_empty());
    }

    #[test]
    fn gates_created_in_the_same_second_are_ordered_by_name() {
        let lines = Lines::default();
        lines.waiting(gate("a-approve", 1, "k"));
        assert_eq!(lines.waiting(gate("b-approve", 1, "k")), ["a-approve"]);
    }
}
