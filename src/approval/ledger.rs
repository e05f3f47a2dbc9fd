//! The ledger: the `approval.tekton.dev/decisions` annotation, a JSON array of decision
//! records appended by the admission webhook. It is the only input the controller trusts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an approver decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Go.
    Approve,
    /// No-go: one eligible rejection ends the gate.
    Reject,
}

impl Decision {
    /// The past tense used in messages (`alice approved`).
    pub fn past_tense(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
        }
    }
}

/// One decision, as the webhook recorded it from the API request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `userInfo.username` of the request.
    pub user: String,
    /// The requester's groups that made them eligible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Approve or reject.
    pub decision: Decision,
    /// The annotation's value: an optional comment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// When the webhook admitted the decision.
    pub time: DateTime<Utc>,
    /// An approval the approver deferred: it takes effect at this time, not before.
    #[serde(
        default,
        rename = "effectiveAt",
        skip_serializing_if = "Option::is_none"
    )]
    pub effective_at: Option<DateTime<Utc>>,
    /// The values an approval gave for the gate's inputs (see [`super::inputs`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// The webhook's seal over the record and its gate (see [`super::seal`]): a record
    /// without a valid one was not written by the webhook and never counts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub seal: String,
}

/// The records of a gate, in the order they were admitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    records: Vec<Record>,
}

impl Ledger {
    /// Wraps records (oldest first).
    pub fn new(records: Vec<Record>) -> Self {
        Self { records }
    }

    /// Reads the annotation's value one record at a time: a record that is not well formed
    /// is skipped and described, never an error for the whole ledger. Only a value that is
    /// not a JSON array at all yields no records. The controller and webhook read ledgers
    /// this way, so that a ledger edited around the webhook can never block a gate.
    pub fn parse_lenient(annotation: Option<&str>) -> (Self, Vec<String>) {
        let text = annotation.unwrap_or_default();
        if text.trim().is_empty() {
            return (Self::default(), Vec::new());
        }
        let items: Vec<serde_json::Value> = match serde_json::from_str(text) {
            Ok(items) => items,
            Err(e) => return (Self::default(), vec![format!("not a JSON array ({e})")]),
        };
        let mut ledger = Self::default();
        let mut unreadable = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match serde_json::from_value::<Record>(item) {
                Ok(record) => ledger.records.push(record),
                Err(e) => unreadable.push(format!("record {} is malformed ({e})", i + 1)),
            }
        }
        (ledger, unreadable)
    }

    /// The records, oldest first.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(&self.records).expect("records always serialise")
    }

    /// Appends a record (the webhook's only way to change a ledger).
    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    /// The records not consumed by an earlier attempt: those are archived in
    /// `status.retriesStatus`, and may still be here if the controller stopped between
    /// archiving them and clearing them from the annotation.
    pub fn without(&self, archived: &[Record]) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| !archived.contains(r))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_example_parses() {
        let (ledger, unreadable) = Ledger::parse_lenient(Some(
            r#"[{"user":"alice","groups":["release-managers"],"decision":"approve","comment":"ship it","time":"2026-11-22T10:00:00Z"}]"#,
        ));
        assert!(unreadable.is_empty());
        let record = &ledger.records()[0];
        assert_eq!(record.user, "alice");
        assert_eq!(record.groups, ["release-managers"]);
        assert_eq!(record.decision, Decision::Approve);
        assert_eq!(record.comment, "ship it");
        assert_eq!(record.time.to_rfc3339(), "2026-11-22T10:00:00+00:00");
    }

    #[test]
    fn a_missing_or_blank_annotation_is_an_empty_ledger() {
        for text in [None, Some(" "), Some("[]")] {
            assert_eq!(Ledger::parse_lenient(text), (Ledger::default(), vec![]));
        }
    }

    #[test]
    fn malformed_ledgers_yield_no_record_and_say_what_is_wrong() {
        let cases = [
            "not json",
            "{}",
            r#"[{"user":"alice"}]"#,
            r#"[{"user":"alice","decision":"maybe","time":"2026-11-22T10:00:00Z"}]"#,
            r#"[{"user":"alice","decision":"approve","time":"yesterday"}]"#,
        ];
        for text in cases {
            let (ledger, unreadable) = Ledger::parse_lenient(Some(text));
            assert!(ledger.records().is_empty(), "{text}");
            assert_eq!(unreadable.len(), 1, "{text}: {unreadable:?}");
            assert!(
                unreadable[0].starts_with("not a JSON array")
                    || unreadable[0].starts_with("record 1 is malformed"),
                "{text}: {unreadable:?}"
            );
        }
    }

    #[test]
    fn records_round_trip_through_the_annotation() {
        let mut ledger = Ledger::default();
        ledger.push(Record {
            user: "carol".into(),
            groups: vec![],
            decision: Decision::Reject,
            comment: String::new(),
            time: "2026-11-22T10:00:00.250Z".parse().unwrap(),
            effective_at: None,
            inputs: Default::default(),
            seal: String::new(),
        });
        let text = ledger.to_annotation();
        assert_eq!(
            text,
            r#"[{"user":"carol","decision":"reject","time":"2026-11-22T10:00:00.250Z"}]"#
        );
        assert_eq!(Ledger::parse_lenient(Some(&text)), (ledger, vec![]));
    }

    #[test]
    fn a_lenient_read_keeps_the_well_formed_records_and_describes_the_others() {
        let (ledger, unreadable) = Ledger::parse_lenient(Some(
            r#"[{"user":"alice","decision":"approve","time":"2026-11-22T10:00:00Z","seal":"k1.x"},
                {"user":"mallory"}, 7]"#,
        ));
        assert_eq!(ledger.records().len(), 1);
        assert_eq!(ledger.records()[0].seal, "k1.x");
        assert_eq!(unreadable.len(), 2);
        assert!(
            unreadable[0].starts_with("record 2 is malformed"),
            "{unreadable:?}"
        );
        let (ledger, unreadable) = Ledger::parse_lenient(Some("{not json"));
        assert!(ledger.records().is_empty());
        assert!(unreadable[0].starts_with("not a JSON array"));
        assert_eq!(Ledger::parse_lenient(None).0, Ledger::default());
    }
}
