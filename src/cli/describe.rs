//! The `describe` text: what a gate asks, who may decide, who did, and how it ended. Pure:
//! a view, the current identity and the time in, text out.

use chrono::{DateTime, Utc};

use super::table::time_left;
use super::text::{clean, columns, timestamp, timestamp_relative};
use super::view::{GateView, Identity};
use crate::approval::ledger::Record;

const LABEL_WIDTH: usize = 15;

/// The describe text. `identity` is `None` when the current user could not be found out.
pub fn describe(view: &GateView, identity: Option<&Identity>, now: DateTime<Utc>) -> String {
    let mut out = Text::default();
    out.field("Name", &view.name);
    out.field("Namespace", &view.namespace);
    out.field("PipelineRun", view.pipeline_run.as_deref().unwrap_or("-"));
    out.field(
        "Pipeline task",
        view.pipeline_task.as_deref().unwrap_or("-"),
    );
    out.field("Status", &view.status);
    if !view.status_message.is_empty() {
        out.field("", &view.status_message);
    }
    out.field(
        "Message",
        if view.message.is_empty() {
            "-"
        } else {
            &view.message
        },
    );
    match view.min_approvals {
        Some(required) => {
            out.field("Approvers", &view.approvers.join(", "));
            let plural = if required == 1 { "" } else { "s" };
            out.field(
                "Quorum",
                &format!("{required} approval{plural} ({} received)", view.approvals),
            );
        }
        // The approvers are frozen when the controller starts the gate; before that (or if
        // the gate is invalid) the params are not yet a policy anyone should rely on.
        None => out.field(
            "Approvers",
            "- (not known until the controller starts the gate)",
        ),
    }
    if let Some(policy) = &view.policy {
        out.field("Policy", &format!("Approval {policy}"));
    }
    if let (Some(on_timeout), Some(on_reject)) = (view.on_timeout, view.on_reject) {
        out.field("On timeout", &to_word(&on_timeout));
        out.field("On reject", &to_word(&on_reject));
    }
    if let Some(window) = &view.approval_window {
        let state = match view.window_open {
            _ if view.ended => String::new(),
            Some(true) => " (open now)".into(),
            _ => " (closed now: approvals wait until it opens)".into(),
        };
        out.field("Window", &format!("{window}{state}"));
    }
    if !view.ended {
        out.field("You", &you(view, identity));
    }
    if let Some(created) = view.created {
        out.field("Created", &timestamp_relative(created, now));
    }
    if let Some(started) = view.started {
        out.field("Started", &timestamp_relative(started, now));
    }
    let deadline = match view.deadline {
        Some(deadline) if !view.ended => match time_left(view, now).as_str() {
            "passed" => format!("{} (passed)", timestamp(deadline)),
            left => format!("{} ({left} left)", timestamp(deadline)),
        },
        Some(deadline) => timestamp(deadline),
        None if view.started.is_some() => "none".into(),
        None => "-".into(),
    };
    out.field("Deadline", &deadline);
    if let Some(completed) = view.completed {
        out.field("Completed", &timestamp_relative(completed, now));
    }
    if view.attempts > 1 {
        out.field("Attempt", &format!("{} of {}", view.attempt, view.attempts));
    }
    for (i, pending) in view.pending.iter().enumerate() {
        let when = match pending.takes_effect {
            Some(at) if at > now => format!(
                "takes effect at {} (in {})",
                timestamp(at),
                super::text::human_duration(at - now)
            ),
            Some(at) => format!("takes effect at {}", timestamp(at)),
            None => "waits for the approval window, which does not open within two years".into(),
        };
        let label = if i == 0 { "Waiting until" } else { "" };
        out.field(label, &format!("{}'s approval {when}", pending.user));
    }

    if !view.inputs.is_empty() {
        out.section("Inputs");
        let mut rows = vec![vec![
            "NAME".to_string(),
            "VALUES".into(),
            "DEFAULT".into(),
            "DESCRIPTION".into(),
        ]];
        for input in &view.inputs {
            let mut values = if input.choices.is_empty() {
                "any".to_string()
            } else {
                input.choices.join("|")
            };
            if let Some(pattern) = &input.pattern {
                values.push_str(&format!(" matching {pattern}"));
            }
            rows.push(vec![
                clean(&input.name),
                clean(&values),
                match (&input.default, input.required) {
                    (_, true) => "(required)".into(),
                    (Some(default), _) => clean(default),
                    (None, false) => "-".into(),
                },
                clean(&input.description),
            ]);
        }
        out.block(&columns(&rows), 2);
    }

    out.section("Decisions");
    if !view.decisions.is_empty() {
        out.block(&timeline(&view.decisions), 2);
    }
    if let Some(error) = &view.ledger_error {
        out.line(&format!("  {}", clean(error)));
    } else if view.decisions.is_empty() {
        out.line("  none yet");
    }

    out.section("Results");
    if view.results.is_empty() {
        out.line(if view.ended { "  none" } else { "  none yet" });
    } else {
        let rows: Vec<Vec<String>> = view
            .results
            .iter()
            .map(|r| vec![format!("{}:", clean(&r.name)), clean(&r.value)])
            .collect();
        out.block(&columns(&rows), 2);
    }

    if !view.earlier_attempts.is_empty() {
        out.section("Earlier attempts");
        for (i, attempt) in view.earlier_attempts.iter().enumerate() {
            let when = attempt
                .completed
                .map(|t| format!(" at {}", timestamp(t)))
                .unwrap_or_default();
            out.line(&format!(
                "  {}. {}{when}: {}",
                i + 1,
                clean(&attempt.status),
                clean(&attempt.status_message)
            ));
            if !attempt.decisions.is_empty() {
                out.block(&timeline(&attempt.decisions), 5);
            }
        }
    }
    out.0
}

/// Whether the reader may decide, and why not.
fn you(view: &GateView, identity: Option<&Identity>) -> String {
    match (identity, view.can_decide) {
        (Some(me), Some(true)) => format!("{} may decide", me.username),
        (Some(me), Some(false)) => format!("{} may not decide (not an approver)", me.username),
        (Some(me), None) => format!("{} (approvers not known yet)", me.username),
        (None, _) => "unknown (the API server did not say who you are)".into(),
    }
}

/// The ledger as a timeline: TIME, USER, DECISION, COMMENT; EFFECTIVE-AT and INPUTS when a
/// record has them.
fn timeline(records: &[Record]) -> String {
    let deferred = records.iter().any(|r| r.effective_at.is_some());
    let with_inputs = records.iter().any(|r| !r.inputs.is_empty());
    let mut header = vec!["TIME".to_string(), "USER".into(), "DECISION".into()];
    if deferred {
        header.push("EFFECTIVE-AT".into());
    }
    if with_inputs {
        header.push("INPUTS".into());
    }
    header.push("COMMENT".into());
    let mut rows = vec![header];
    for record in records {
        let mut row = vec![
            timestamp(record.time),
            clean(&record.user),
            serde_json::to_value(record.decision)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ];
        if deferred {
            row.push(
                record
                    .effective_at
                    .map(timestamp)
                    .unwrap_or_else(|| "-".into()),
            );
        }
        if with_inputs {
            row.push(clean(&crate::approval::inputs::describe(&record.inputs)));
        }
        row.push(clean(&record.comment));
        rows.push(row);
    }
    columns(&rows)
}

/// The protocol's spelling of a policy enum (`fail`, `continue`, ...).
fn to_word<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The text being built.
#[derive(Default)]
struct Text(String);

impl Text {
    fn field(&mut self, label: &str, value: &str) {
        let label = if label.is_empty() {
            String::new()
        } else {
            format!("{label}:")
        };
        self.line(&format!("{label:<LABEL_WIDTH$} {}", clean(value)));
    }

    fn section(&mut self, title: &str) {
        self.0.push('\n');
        self.line(&format!("{title}:"));
    }

    fn line(&mut self, text: &str) {
        self.0.push_str(text.trim_end());
        self.0.push('\n');
    }

    fn block(&mut self, text: &str, indent: usize) {
        for line in text.lines() {
            self.line(&format!("{:indent$}{line}", ""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::view::tests::{alice, mallory, pending_gate, rejected_gate, run, waiting_gate};

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn golden_describe_of_a_waiting_gate() {
        let view = GateView::new(&run(waiting_gate()), Some(&alice()), now());
        let expected = "\
Name:           release-x7k2p-approve
Namespace:      ci
PipelineRun:    release-x7k2p
Pipeline task:  approve-release
Status:         AwaitingApproval
                Waiting for 1 more approval (1 of 2) from alice, group:release-managers: Release v1.2 to production?
Message:        Release v1.2 to production?
Approvers:      alice, group:release-managers
Quorum:         2 approvals (1 received)
On timeout:     fail
On reject:      fail
You:            alice may decide
Created:        2026-11-22T10:00:00Z (120m ago)
Started:        2026-11-22T10:00:01Z (119m ago)
Deadline:       2026-11-23T10:00:01Z (22h left)

Decisions:
  TIME                   USER   DECISION   COMMENT
  2026-11-22T10:20:00Z   bob    approve    tests are green

Results:
  none yet
";
        assert_eq!(describe(&view, Some(&alice()), now()), expected);
    }

    #[test]
    fn golden_describe_of_a_gate_rejected_after_a_retry() {
        let view = GateView::new(&run(rejected_gate()), Some(&mallory()), now());
        let expected = "\
Name:           deploy-q9z-gate
Namespace:      prod
PipelineRun:    deploy-q9z
Pipeline task:  gate
Status:         Rejected
                Rejected by carol: not during the freeze
Message:        -
Approvers:      carol, dave
Quorum:         1 approval (0 received)
Policy:         Approval production
On timeout:     fail
On reject:      fail
Created:        2026-11-20T08:00:00Z (2d4h ago)
Started:        2026-11-20T12:00:00Z (2d ago)
Deadline:       none
Completed:      2026-11-21T09:00:00Z (27h ago)
Attempt:        2 of 2

Decisions:
  TIME                   USER    DECISION   COMMENT
  2026-11-21T09:00:00Z   carol   reject     not during the freeze

Results:
  decision:     rejected
  approvedBy:   []
  rejectedBy:   [\"carol\"]
  comments:     [\"carol: not during the freeze\"]
  decidedAt:    2026-11-21T09:00:00Z

Earlier attempts:
  1. Rejected at 2026-11-20T12:00:00Z: Rejected by dave
     TIME                   USER   DECISION   COMMENT
     2026-11-20T12:00:00Z   dave   reject
";
        assert_eq!(describe(&view, Some(&mallory()), now()), expected);
    }

    #[test]
    fn golden_describe_of_a_gate_not_started_for_an_unknown_user() {
        let view = GateView::new(&run(pending_gate()), None, now());
        let expected = "\
Name:           hotfix-gate
Namespace:      ci
PipelineRun:    -
Pipeline task:  -
Status:         Pending
Message:        -
Approvers:      - (not known until the controller starts the gate)
You:            unknown (the API server did not say who you are)
Created:        2026-11-22T11:59:30Z (30s ago)
Deadline:       -

Decisions:
  none yet

Results:
  none yet
";
        assert_eq!(describe(&view, None, now()), expected);
    }

    #[test]
    fn a_non_approver_is_told_so_and_a_passed_deadline_says_passed() {
        let view = GateView::new(&run(waiting_gate()), Some(&mallory()), now());
        let late: DateTime<Utc> = "2026-11-23T11:00:00Z".parse().unwrap();
        let text = describe(&view, Some(&mallory()), late);
        assert!(
            text.contains("You:            mallory may not decide (not an approver)\n"),
            "{text}"
        );
        assert!(
            text.contains("Deadline:       2026-11-23T10:00:01Z (passed)\n"),
            "{text}"
        );
    }

    #[test]
    fn golden_describe_of_a_gate_with_a_window_inputs_and_held_approvals() {
        use crate::cli::view::tests::windowed_gate;
        let view = GateView::new(&run(windowed_gate()), Some(&alice()), now());
        let expected = "\
Name:           release-x7k2p-approve
Namespace:      ci
PipelineRun:    release-x7k2p
Pipeline task:  approve-release
Status:         AwaitingApproval
                Waiting for 1 more approval (1 of 2) from alice, group:release-managers: Release v1.2 to production?
Message:        Release v1.2 to production?
Approvers:      alice, group:release-managers
Quorum:         2 approvals (0 received)
On timeout:     fail
On reject:      fail
Window:         Mon-Fri 09:00-17:00 UTC (closed now: approvals wait until it opens)
You:            alice may decide
Created:        2026-11-22T10:00:00Z (120m ago)
Started:        2026-11-22T10:00:01Z (119m ago)
Deadline:       2026-11-23T10:00:01Z (22h left)
Waiting until:  bob's approval takes effect at 2026-11-23T09:00:00Z (in 21h)
                alice's approval takes effect at 2026-11-23T09:00:00Z (in 21h)

Inputs:
  NAME       VALUES               DEFAULT      DESCRIPTION
  target     staging|production   (required)   where to deploy
  replicas   any                  3

Decisions:
  TIME                   USER    DECISION   EFFECTIVE-AT           INPUTS                          COMMENT
  2026-11-22T10:20:00Z   bob     approve    -                      replicas=3, target=production
  2026-11-22T11:00:00Z   alice   approve    2026-11-22T13:30:00Z   replicas=3, target=production

Results:
  none yet
";
        assert_eq!(describe(&view, Some(&alice()), now()), expected);
    }
}
