//! Evaluating an attempt's ledger against its frozen policy and deadline: the gate ends at
//! the first record after which it is approved (quorum) or rejected (any veto), or at the
//! deadline. Records after the end are ignored.

use chrono::{DateTime, Utc};

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
    /// Eligible records up to the end (or all of them while waiting), in order.
    pub counted: Vec<Record>,
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

/// Reads an attempt's records in order. `deadline` is `None` for gates without one.
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
    };
    for record in records {
        if deadline.is_some_and(|d| record.time > d) {
            break;
        }
        // The webhook admits only eligible users; checking again means a record that got
        // in some other way still cannot count.
        if !policy.approvers.admits(&record.user, &record.groups) {
            continue;
        }
        if record.decision == Decision::Approve && policy.self_approval_bar(&record.user).is_some()
        {
            continue;
        }
        tally.counted.push(record.clone());
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
                at: record.time,
            };
            return tally;
        }
        if tally.received() >= policy.min_approvals {
            tally.outcome = Outcome::Approved { at: record.time };
            return tally;
        }
    }
    if let Some(deadline) = deadline.filter(|d| now >= *d) {
        tally.outcome = Outcome::TimedOut { at: deadline };
    }
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
        }
    }

    fn record(user: &str, groups: &[&str], decision: Decision, minute: u32) -> Record {
        Record {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            decision,
            comment: String::new(),
            time: time(minute),
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
}
