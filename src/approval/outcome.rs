//! Evaluating an attempt's ledger against its frozen policy and deadline: the gate ends at
//! the first record after which it is approved (quorum) or rejected (any veto), or at the
//! deadline. Records after the end are ignored.
//!
//! Records count when they take effect, not when they were admitted: an approval the
//! approver deferred (`effectiveAt`), or one given while the policy's approval window is
//! closed, takes effect later; a rejection always at once. An approval that has not taken
//! effect yet is replaced by its user's next decision, so an approver can bring it forward,
//! move it, or turn it into a rejection.

use chrono::{DateTime, Utc};

use crate::api::time::kube_now;

use super::ledger::{Decision, Record};
use super::policy::Policy;

/// How an attempt stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet.
    Waiting,
    /// Enough distinct eligible users approved.
    Approved {
        /// When the deciding record was admitted.
        at: DateTime<Utc>,
    },
    /// An eligible user's latest decision is a rejection.
    Rejected {
        /// Who vetoed.
        by: String,
        /// Their comment.
        comment: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The deadline passed first.
    TimedOut {
        /// The deadline.
        at: DateTime<Utc>,
    },
}

/// The result of reading a ledger: the outcome, plus what the status and results report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// How it stands.
    pub outcome: Outcome,
    /// Users whose latest counted decision is approve, in the order they first approved.
    pub approved_by: Vec<String>,
    /// Users whose latest counted decision is reject.
    pub rejected_by: Vec<String>,
    /// Eligible records in effect up to the end (or all of them while waiting), in the
    /// order they took effect.
    pub counted: Vec<Record>,
    /// While waiting: approvals recorded but not in effect yet, with when they take effect
    /// (`None`: the approval window does not open within the horizon), soonest first.
    pub pending: Vec<Held>,
    /// Approvals whose effect was held back from their admission (deferred, or outside the
    /// window), admitted up to the end, in the order they were admitted: each is announced
    /// once.
    pub held: Vec<Held>,
}

/// An approval that did not take effect when it was admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The record.
    pub record: Record,
    /// When it takes effect; `None` when the approval window does not open in time.
    pub at: Option<DateTime<Utc>>,
}

impl Held {
    /// Whether the approval window (not the approver) held it back.
    pub fn by_window(&self) -> bool {
        self.at != Some(requested(&self.record))
    }
}

impl Tally {
    /// Approvals so far.
    pub fn received(&self) -> u32 {
        self.approved_by.len() as u32
    }

    /// `"alice: ship it"` for each counted record with a comment.
    pub fn comments(&self) -> Vec<String> {
        self.counted
            .iter()
            .filter(|r| !r.comment.is_empty())
            .map(|r| format!("{}: {}", r.user, r.comment))
            .collect()
    }
}

/// When a record asks to take effect: the second of its admission, or later if the approver
/// deferred it. Plans run on whole seconds (what status stores), and a decision admitted at
/// 10:00:00.250 takes effect in the plan that sees it, not one second later; the stored
/// completion time then still reproduces the outcome.
fn requested(record: &Record) -> DateTime<Utc> {
    let admitted = kube_now(record.time);
    match record.decision {
        Decision::Approve => record.effective_at.map_or(admitted, |at| at.max(admitted)),
        Decision::Reject => admitted,
    }
}

/// When a record takes effect under `policy`: rejections at once, approvals when asked and
/// the approval window is open. `None`: not within the window's horizon.
pub fn takes_effect(policy: &Policy, record: &Record) -> Option<DateTime<Utc>> {
    let asked = requested(record);
    match (&policy.approval_window, record.decision) {
        (Some(window), Decision::Approve) => window.next_open(asked),
        _ => Some(asked),
    }
}

/// Reads an attempt's records (in the order they were admitted). `deadline` is `None` for
/// gates without one.
pub fn evaluate(
    policy: &Policy,
    records: &[Record],
    deadline: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Tally {
    let mut tally = Tally {
        outcome: Outcome::Waiting,
        approved_by: Vec::new(),
        rejected_by: Vec::new(),
        counted: Vec::new(),
        pending: Vec::new(),
        held: Vec::new(),
    };
    // The webhook admits only eligible users; checking again means a record that got in
    // some other way still cannot count.
    let eligible: Vec<(&Record, Option<DateTime<Utc>>)> = records
        .iter()
        .filter(|r| policy.approvers.admits(&r.user, &r.groups))
        .filter(|r| r.decision == Decision::Reject || policy.self_approval_bar(&r.user).is_none())
        .map(|r| (r, takes_effect(policy, r)))
        .collect();
    let held: Vec<Held> = eligible
        .iter()
        .filter(|(r, at)| *at != Some(r.time))
        .map(|(r, at)| Held {
            record: (*r).clone(),
            at: *at,
        })
        .collect();
    let mut in_order: Vec<(&Record, Option<DateTime<Utc>>)> = eligible
        .iter()
        .enumerate()
        .filter(|(i, (record, at))| {
            // A later decision of the same user, admitted before this one took effect,
            // replaces it.
            !eligible[i + 1..]
                .iter()
                .any(|(later, _)| later.user == record.user && at.is_none_or(|at| later.time < at))
        })
        .map(|(_, entry)| *entry)
        .collect();
    // Stable: records taking effect at the same time keep their admission order.
    in_order.sort_by_key(|(_, at)| at.unwrap_or(DateTime::<Utc>::MAX_UTC));
    let mut end = None;
    for (position, (record, at)) in in_order.iter().enumerate() {
        let at = match at {
            Some(at) if *at <= now && deadline.is_none_or(|d| *at <= d) => *at,
            _ => {
                tally.pending = in_order[position..]
                    .iter()
                    .map(|(record, at)| Held {
                        record: (*record).clone(),
                        at: *at,
                    })
                    .collect();
                break;
            }
        };
        tally.counted.push((*record).clone());
        // A user's latest record replaces their earlier one: one user, one vote.
        tally.approved_by.retain(|u| u != &record.user);
        tally.rejected_by.retain(|u| u != &record.user);
        match record.decision {
            Decision::Approve => tally.approved_by.push(record.user.clone()),
            Decision::Reject => tally.rejected_by.push(record.user.clone()),
        }
        if record.decision == Decision::Reject {
            tally.outcome = Outcome::Rejected {
                by: record.user.clone(),
                comment: record.comment.clone(),
                at,
            };
            end = Some(at);
            break;
        }
        if tally.received() >= policy.min_approvals {
            tally.outcome = Outcome::Approved { at };
            end = Some(at);
            break;
        }
    }
    if end.is_none()
        && let Some(deadline) = deadline.filter(|d| now >= *d)
    {
        tally.outcome = Outcome::TimedOut { at: deadline };
        end = Some(deadline);
    }
    if end.is_some() {
        tally.pending.clear();
    }
    tally.held = held
        .into_iter()
        .filter(|h| end.is_none_or(|end| h.record.time <= end))
        .collect();
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::eligibility::{Approver, Approvers};
    use std::time::Duration;

    fn time(minute: u32) -> DateTime<Utc> {
        format!("2026-11-22T10:{minute:02}:00Z").parse().unwrap()
    }

    fn policy(approvers: &[&str], min_approvals: u32) -> Policy {
        Policy {
            approvers: Approvers::new(approvers.iter().map(|a| Approver::parse(a).unwrap())),
            min_approvals,
            message: String::new(),
            on_timeout: Default::default(),
            on_reject: Default::default(),
            timeout: Duration::from_secs(3600),
            policy: None,
            allow_self_approval: true,
            requested_by: None,
            approval_window: None,
            inputs: Vec::new(),
            supersede: false,
            supersede_key: None,
            on_supersede: Default::default(),
            notify: Vec::new(),
            origin: None,
        }
    }

    fn record(user: &str, groups: &[&str], decision: Decision, minute: u32) -> Record {
        Record {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            decision,
            comment: String::new(),
            time: time(minute),
            effective_at: None,
            inputs: Default::default(),
            seal: String::new(),
        }
    }

    use Decision::{Approve, Reject};

    #[test]
    fn no_records_is_waiting() {
        let tally = evaluate(&policy(&["alice"], 1), &[], Some(time(59)), time(1));
        assert_eq!(tally.outcome, Outcome::Waiting);
        assert_eq!(tally.received(), 0);
    }

    #[test]
    fn one_approval_of_one_required_approves() {
        let records = [record("alice", &[], Approve, 1)];
        let tally = evaluate(&policy(&["alice"], 1), &records, None, time(2));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(1) });
        assert_eq!(tally.approved_by, ["alice"]);
    }

    #[test]
    fn second_approval_from_same_user_does_not_count_twice() {
        let records = [
            record("alice", &[], Approve, 1),
            record("alice", &[], Approve, 2),
        ];
        let tally = evaluate(&policy(&["alice", "bob"], 2), &records, None, time(3));
        assert_eq!(tally.outcome, Outcome::Waiting);
        assert_eq!(tally.approved_by, ["alice"]);
        assert_eq!(tally.counted.len(), 2);
    }

    #[test]
    fn quorum_reached_exactly_approves_at_the_deciding_record() {
        let records = [
            record("alice", &[], Approve, 1),
            record("bob", &["sre"], Approve, 2),
        ];
        let tally = evaluate(&policy(&["alice", "group:sre"], 2), &records, None, time(3));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(2) });
        assert_eq!(tally.approved_by, ["alice", "bob"]);
    }

    #[test]
    fn approve_then_reject_by_one_user_is_a_rejection() {
        let records = [
            record("alice", &[], Approve, 1),
            record("alice", &[], Reject, 2),
        ];
        let tally = evaluate(&policy(&["alice", "bob"], 2), &records, None, time(3));
        assert_eq!(
            tally.outcome,
            Outcome::Rejected {
                by: "alice".into(),
                comment: String::new(),
                at: time(2)
            }
        );
        assert!(tally.approved_by.is_empty());
        assert_eq!(tally.rejected_by, ["alice"]);
    }

    #[test]
    fn one_rejection_vetoes_even_after_approvals() {
        let mut veto = record("carol", &[], Reject, 2);
        veto.comment = "not during the freeze".into();
        let records = [record("alice", &[], Approve, 1), veto];
        let tally = evaluate(
            &policy(&["alice", "carol", "bob"], 2),
            &records,
            None,
            time(3),
        );
        assert!(
            matches!(tally.outcome, Outcome::Rejected { ref by, ref comment, .. }
            if by == "carol" && comment == "not during the freeze")
        );
        assert_eq!(tally.approved_by, ["alice"]);
        assert_eq!(tally.comments(), ["carol: not during the freeze"]);
    }

    #[test]
    fn a_user_in_two_listed_groups_counts_once() {
        let records = [record("bob", &["sre", "release-managers"], Approve, 1)];
        let tally = evaluate(
            &policy(&["group:sre", "group:release-managers"], 2),
            &records,
            None,
            time(2),
        );
        assert_eq!(tally.outcome, Outcome::Waiting);
        assert_eq!(tally.received(), 1);
    }

    #[test]
    fn records_after_the_end_are_ignored() {
        let records = [
            record("alice", &[], Approve, 1),
            record("carol", &[], Reject, 2),
            record("bob", &[], Approve, 3),
        ];
        let tally = evaluate(
            &policy(&["alice", "bob", "carol"], 1),
            &records,
            None,
            time(4),
        );
        assert_eq!(tally.outcome, Outcome::Approved { at: time(1) });
        assert_eq!(tally.counted.len(), 1);
        assert!(tally.rejected_by.is_empty());
    }

    #[test]
    fn records_after_the_deadline_are_ignored() {
        let records = [record("alice", &[], Approve, 31)];
        let tally = evaluate(&policy(&["alice"], 1), &records, Some(time(30)), time(32));
        assert_eq!(tally.outcome, Outcome::TimedOut { at: time(30) });
        assert!(tally.approved_by.is_empty());
    }

    #[test]
    fn a_decision_at_the_deadline_still_counts() {
        let records = [record("alice", &[], Approve, 30)];
        let tally = evaluate(&policy(&["alice"], 1), &records, Some(time(30)), time(31));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(30) });
    }

    #[test]
    fn the_deadline_passing_with_no_decision_times_out() {
        let records = [record("alice", &[], Approve, 1)];
        let waiting = evaluate(
            &policy(&["alice", "bob"], 2),
            &records,
            Some(time(30)),
            time(29),
        );
        assert_eq!(waiting.outcome, Outcome::Waiting);
        let timed_out = evaluate(
            &policy(&["alice", "bob"], 2),
            &records,
            Some(time(30)),
            time(30),
        );
        assert_eq!(timed_out.outcome, Outcome::TimedOut { at: time(30) });
        assert_eq!(timed_out.received(), 1);
    }

    #[test]
    fn records_of_ineligible_users_never_count() {
        let records = [
            record("mallory", &["qa"], Reject, 1),
            record("mallory", &["qa"], Approve, 2),
        ];
        let tally = evaluate(&policy(&["alice", "group:sre"], 1), &records, None, time(3));
        assert_eq!(tally.outcome, Outcome::Waiting);
        assert!(tally.counted.is_empty());
    }

    #[test]
    fn the_requesters_own_approval_never_counts_when_self_approval_is_forbidden() {
        let mut forbidding = policy(&["alice", "dave"], 1);
        forbidding.allow_self_approval = false;
        forbidding.requested_by = Some("dave".into());
        let records = [record("dave", &[], Approve, 1)];
        let tally = evaluate(&forbidding, &records, None, time(2));
        assert_eq!(tally.outcome, Outcome::Waiting);
        // The requester may still stop their own run.
        let records = [record("dave", &[], Reject, 1)];
        assert!(matches!(
            evaluate(&forbidding, &records, None, time(2)).outcome,
            Outcome::Rejected { .. }
        ));
        let records = [
            record("dave", &[], Approve, 1),
            record("alice", &[], Approve, 2),
        ];
        let tally = evaluate(&forbidding, &records, None, time(3));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(2) });
        assert_eq!(tally.approved_by, ["alice"]);
        // Allowed: the requester's approval counts like anyone's.
        let mut allowing = forbidding.clone();
        allowing.allow_self_approval = true;
        let records = [record("dave", &[], Approve, 1)];
        assert_eq!(
            evaluate(&allowing, &records, None, time(2)).outcome,
            Outcome::Approved { at: time(1) }
        );
    }

    #[test]
    fn with_an_unknown_requester_no_approval_counts_when_self_approval_is_forbidden() {
        let mut forbidding = policy(&["alice"], 1);
        forbidding.allow_self_approval = false;
        let records = [record("alice", &[], Approve, 1)];
        assert_eq!(
            evaluate(&forbidding, &records, None, time(2)).outcome,
            Outcome::Waiting
        );
    }

    fn deferred(user: &str, minute: u32, until: u32) -> Record {
        let mut record = record(user, &[], Approve, minute);
        record.effective_at = Some(time(until));
        record
    }

    #[test]
    fn a_deferred_approval_counts_from_its_time_on() {
        let records = [deferred("alice", 1, 30)];
        let waiting = evaluate(&policy(&["alice"], 1), &records, None, time(29));
        assert_eq!(waiting.outcome, Outcome::Waiting);
        assert_eq!(waiting.received(), 0);
        assert_eq!(waiting.pending.len(), 1);
        assert_eq!(waiting.pending[0].at, Some(time(30)));
        assert_eq!(waiting.held, waiting.pending);
        let approved = evaluate(&policy(&["alice"], 1), &records, None, time(30));
        assert_eq!(approved.outcome, Outcome::Approved { at: time(30) });
        assert!(approved.pending.is_empty());
        assert_eq!(approved.held.len(), 1, "still announced as held back");
    }

    #[test]
    fn a_rejection_before_a_deferred_approval_takes_effect_wins() {
        let records = [deferred("alice", 1, 30), record("bob", &[], Reject, 10)];
        let tally = evaluate(&policy(&["alice", "bob"], 1), &records, None, time(40));
        assert!(
            matches!(tally.outcome, Outcome::Rejected { ref by, at, .. } if by == "bob" && at == time(10))
        );
        // The approver's own rejection replaces their deferred approval.
        let records = [deferred("alice", 1, 30), record("alice", &[], Reject, 10)];
        let tally = evaluate(&policy(&["alice"], 1), &records, None, time(40));
        assert!(matches!(tally.outcome, Outcome::Rejected { ref by, .. } if by == "alice"));
        // A rejection after it took effect comes too late.
        let records = [deferred("alice", 1, 30), record("bob", &[], Reject, 31)];
        let tally = evaluate(&policy(&["alice", "bob"], 1), &records, None, time(40));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(30) });
    }

    #[test]
    fn a_later_decision_of_the_approver_replaces_a_deferred_approval() {
        // Brought forward.
        let records = [deferred("alice", 1, 30), record("alice", &[], Approve, 5)];
        let tally = evaluate(&policy(&["alice"], 1), &records, None, time(6));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(5) });
        // Moved later.
        let records = [deferred("alice", 1, 30), deferred("alice", 5, 45)];
        let tally = evaluate(&policy(&["alice"], 1), &records, None, time(40));
        assert_eq!(tally.outcome, Outcome::Waiting);
        assert_eq!(tally.pending.len(), 1);
        assert_eq!(tally.pending[0].at, Some(time(45)));
        assert_eq!(tally.held.len(), 2);
    }

    #[test]
    fn a_deferred_approval_counts_from_its_time_in_a_quorum() {
        let records = [deferred("alice", 1, 30), record("bob", &[], Approve, 10)];
        let half = evaluate(&policy(&["alice", "bob"], 2), &records, None, time(20));
        assert_eq!(half.outcome, Outcome::Waiting);
        assert_eq!(half.approved_by, ["bob"]);
        let tally = evaluate(&policy(&["alice", "bob"], 2), &records, None, time(30));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(30) });
        assert_eq!(
            tally.approved_by,
            ["bob", "alice"],
            "in the order they took effect"
        );
    }

    #[test]
    fn a_deferred_approval_after_the_deadline_never_counts() {
        let records = [deferred("alice", 1, 45)];
        let tally = evaluate(&policy(&["alice"], 1), &records, Some(time(40)), time(40));
        assert_eq!(tally.outcome, Outcome::TimedOut { at: time(40) });
        assert!(tally.pending.is_empty());
    }

    #[test]
    fn a_time_already_past_is_no_deferral() {
        let records = [deferred("alice", 10, 5)];
        let tally = evaluate(&policy(&["alice"], 1), &records, None, time(10));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(10) });
        assert!(tally.held.is_empty());
    }

    fn windowed(approvers: &[&str], min_approvals: u32, hours: &str) -> Policy {
        let mut policy = policy(approvers, min_approvals);
        policy.approval_window = Some(
            serde_json::from_value(serde_json::json!({"timeZone": "UTC", "hours": hours})).unwrap(),
        );
        policy
    }

    #[test]
    fn an_approval_outside_the_window_takes_effect_when_it_opens() {
        let policy = windowed(&["alice", "bob"], 1, "10:20-17:00");
        let records = [record("alice", &[], Approve, 1)];
        let waiting = evaluate(&policy, &records, None, time(19));
        assert_eq!(waiting.outcome, Outcome::Waiting);
        assert_eq!(waiting.pending[0].at, Some(time(20)));
        assert!(waiting.pending[0].by_window());
        assert_eq!(
            evaluate(&policy, &records, None, time(20)).outcome,
            Outcome::Approved { at: time(20) }
        );
        // A deferral into the closed window waits for both.
        let records = [deferred("alice", 1, 5)];
        let tally = evaluate(&policy, &records, None, time(6));
        assert_eq!(tally.pending[0].at, Some(time(20)));
        // Inside the window an approval counts at once.
        let records = [record("alice", &[], Approve, 25)];
        let tally = evaluate(&policy, &records, None, time(26));
        assert_eq!(tally.outcome, Outcome::Approved { at: time(25) });
        assert!(tally.held.is_empty());
    }

    #[test]
    fn a_rejection_outside_the_window_takes_effect_at_once() {
        let policy = windowed(&["alice", "bob"], 1, "10:20-17:00");
        let records = [
            record("alice", &[], Approve, 1),
            record("bob", &[], Reject, 2),
        ];
        let tally = evaluate(&policy, &records, None, time(3));
        assert!(
            matches!(tally.outcome, Outcome::Rejected { ref by, at, .. } if by == "bob" && at == time(2))
        );
        assert!(tally.pending.is_empty());
        assert_eq!(
            tally.held.len(),
            1,
            "alice's held approval was admitted before the end"
        );
    }

    #[test]
    fn records_admitted_after_the_end_are_not_announced_as_held() {
        let policy = windowed(&["alice", "bob"], 1, "10:20-17:00");
        let records = [
            record("bob", &[], Reject, 2),
            record("alice", &[], Approve, 3),
        ];
        let tally = evaluate(&policy, &records, None, time(4));
        assert!(tally.held.is_empty());
    }
}
