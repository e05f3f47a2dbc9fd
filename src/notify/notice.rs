//! What a gate's notifications say: its notices (it waits, each decision, it ends), in an
//! order that never changes as the gate progresses, and the JSON a generic webhook or a
//! CloudEvents sink receives for each. Pure: a gate (as [`GateView`]) in, values out.
//!
//! Notice `n` of a gate is always the same notice, so a sink's progress is one number
//! (notices delivered), and a redelivery after a restart carries the same id: receivers
//! deduplicate on `X-Approval-Delivery` or the CloudEvent `id`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::approval::ledger::Record;
use crate::cli::view::GateView;

/// Our CloudEvent types: `dev.tekton.approval.gate.<kind>.v1`, as Tekton names its own
/// (`dev.tekton.event.taskrun.started.v1`).
pub const CLOUDEVENT_TYPE_PREFIX: &str = "dev.tekton.approval.gate.";

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// The gate started waiting.
    Waiting,
    /// Someone decided.
    Decision(Record),
    /// The gate ended (its status says how).
    Ended,
}

impl Kind {
    /// The name in bodies, headers and CloudEvent types.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Waiting => "waiting",
            Kind::Decision(_) => "decision",
            Kind::Ended => "ended",
        }
    }
}

/// One notice of a gate.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Its place among the gate's notices, from 0.
    pub sequence: usize,
    /// What happened.
    pub kind: Kind,
    /// When.
    pub time: Option<DateTime<Utc>>,
}

/// A gate's notices so far: `waiting` once it started, each decision of every attempt in
/// the order admitted, and `ended` once it ended.
pub fn notices(gate: &GateView) -> Vec<Notice> {
    let mut kinds = Vec::new();
    if gate.started.is_some() || gate.ended {
        kinds.push((Kind::Waiting, gate.started.or(gate.created)));
    }
    let decisions = gate
        .earlier_attempts
        .iter()
        .flat_map(|attempt| attempt.decisions.iter())
        .chain(gate.decisions.iter());
    for record in decisions {
        kinds.push((Kind::Decision(record.clone()), Some(record.time)));
    }
    if gate.ended {
        kinds.push((Kind::Ended, gate.completed));
    }
    kinds
        .into_iter()
        .enumerate()
        .map(|(sequence, (kind, time))| Notice {
            sequence,
            kind,
            time,
        })
        .collect()
}

/// A gate's identity in notifications.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The gate.
    pub gate: &'a GateView,
    /// The CustomRun's UID: names and notices are reused when a run is deleted and created
    /// again; the UID is not.
    pub uid: &'a str,
    /// The web page's base URL, if there is one.
    pub ui_url: Option<&'a str>,
}

impl Subject<'_> {
    /// The id of a notice: the same for every delivery of it.
    pub fn delivery_id(&self, notice: &Notice) -> String {
        format!("{}.{}", self.uid, notice.sequence)
    }

    /// The gate's page, when there is a web page.
    pub fn page(&self) -> Option<String> {
        self.ui_url
            .map(|base| format!("{base}/gates/{}/{}", self.gate.namespace, self.gate.name))
    }

    /// The gate as notifications describe it.
    pub fn gate_json(&self) -> Value {
        let gate = self.gate;
        let mut value = json!({
            "namespace": gate.namespace,
            "name": gate.name,
            "uid": self.uid,
            "status": gate.status,
            "ended": gate.ended,
            "approvers": gate.approvers,
            "approvals": gate.approvals,
        });
        let optional = [
            ("pipelineRun", gate.pipeline_run.clone().map(Value::from)),
            ("pipeline", gate.pipeline.clone().map(Value::from)),
            ("pipelineTask", gate.pipeline_task.clone().map(Value::from)),
            ("message", non_empty(&gate.message)),
            ("statusMessage", non_empty(&gate.status_message)),
            ("minApprovals", gate.min_approvals.map(Value::from)),
            ("requestedBy", gate.requested_by.clone().map(Value::from)),
            ("deadline", gate.deadline.map(|t| Value::from(rfc3339(t)))),
            ("completed", gate.completed.map(|t| Value::from(rfc3339(t)))),
            ("url", self.page().map(Value::from)),
        ];
        for (name, field) in optional {
            if let Some(field) = field {
                value[name] = field;
            }
        }
        value
    }

    /// The generic webhook's body for `notice` (the schema README documents).
    pub fn webhook_body(&self, notice: &Notice) -> Value {
        let mut body = json!({
            "type": notice.kind.name(),
            "id": self.delivery_id(notice),
            "sequence": notice.sequence,
            "gate": self.gate_json(),
        });
        if let Some(time) = notice.time {
            body["time"] = rfc3339(time).into();
        }
        if let Kind::Decision(record) = &notice.kind {
            body["decision"] = decision_json(record);
        }
        body
    }

    /// `notice` as a structured-mode CloudEvent (CloudEvents 1.0, JSON format).
    pub fn cloudevent(&self, notice: &Notice) -> Value {
        let mut event = json!({
            "specversion": "1.0",
            "id": self.delivery_id(notice),
            "source": format!(
                "/apis/tekton.dev/v1beta1/namespaces/{}/customruns/{}",
                self.gate.namespace, self.gate.name
            ),
            "type": format!("{CLOUDEVENT_TYPE_PREFIX}{}.v1", notice.kind.name()),
            "subject": format!("{}/{}", self.gate.namespace, self.gate.name),
            "datacontenttype": "application/json",
            "data": self.webhook_body(notice),
        });
        if let Some(time) = notice.time {
            event["time"] = rfc3339(time).into();
        }
        event
    }
}

/// A decision in notifications: never its seal (an integrity check, of no use outside).
fn decision_json(record: &Record) -> Value {
    let mut value = json!({
        "user": record.user,
        "decision": record.decision,
        "time": rfc3339(record.time),
    });
    if !record.comment.is_empty() {
        value["comment"] = record.comment.clone().into();
    }
    if let Some(at) = record.effective_at {
        value["effectiveAt"] = rfc3339(at).into();
    }
    if !record.inputs.is_empty() {
        value["inputs"] = json!(record.inputs);
    }
    value
}

fn non_empty(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| Value::from(text))
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::view::tests as fixtures;

    fn view(value: Value) -> GateView {
        GateView::new(&fixtures::run(value), None, fixtures::now())
    }

    #[test]
    fn a_waiting_gate_has_its_waiting_notice_then_one_per_decision() {
        let gate = view(fixtures::waiting_gate());
        let notices = notices(&gate);
        let kinds: Vec<&str> = notices.iter().map(|n| n.kind.name()).collect();
        let mut expected = vec!["waiting"];
        expected.extend(gate.decisions.iter().map(|_| "decision"));
        assert_eq!(kinds, expected);
        assert_eq!(notices[0].time, gate.started);
        assert!(notices.iter().enumerate().all(|(i, n)| n.sequence == i));
    }

    #[test]
    fn an_ended_gate_ends_with_its_ended_notice_after_every_attempts_decisions() {
        let gate = view(fixtures::rejected_gate());
        let notices = notices(&gate);
        assert_eq!(notices.first().unwrap().kind, Kind::Waiting);
        assert_eq!(notices.last().unwrap().kind, Kind::Ended);
        assert_eq!(notices.last().unwrap().time, gate.completed);
        let decided = gate
            .earlier_attempts
            .iter()
            .map(|a| a.decisions.len())
            .sum::<usize>()
            + gate.decisions.len();
        assert_eq!(notices.len(), decided + 2);
    }

    #[test]
    fn a_gate_not_started_has_no_notices() {
        assert!(notices(&view(fixtures::pending_gate())).is_empty());
    }

    #[test]
    fn the_webhook_body_describes_the_gate_and_the_decision_without_its_seal() {
        let gate = view(fixtures::waiting_gate());
        let subject = Subject {
            gate: &gate,
            uid: "u-1",
            ui_url: Some("https://approvals.example.com"),
        };
        let notices = notices(&gate);
        let decision = notices
            .iter()
            .find(|n| n.kind.name() == "decision")
            .unwrap();
        let body = subject.webhook_body(decision);
        assert_eq!(body["type"], "decision");
        assert_eq!(body["id"], format!("u-1.{}", decision.sequence));
        assert_eq!(body["gate"]["namespace"], gate.namespace);
        assert_eq!(body["gate"]["uid"], "u-1");
        assert_eq!(
            body["gate"]["url"],
            format!(
                "https://approvals.example.com/gates/{}/{}",
                gate.namespace, gate.name
            )
        );
        assert_eq!(body["gate"]["approvers"], json!(gate.approvers));
        assert_eq!(body["decision"]["user"], gate.decisions[0].user);
        assert!(body["decision"].get("seal").is_none());
        assert!(
            !body.to_string().contains(&gate.decisions[0].seal)
                || gate.decisions[0].seal.is_empty()
        );
    }

    #[test]
    fn a_cloudevent_has_the_required_attributes_and_our_type() {
        let gate = view(fixtures::rejected_gate());
        let subject = Subject {
            gate: &gate,
            uid: "u-2",
            ui_url: None,
        };
        let ended = notices(&gate).pop().unwrap();
        let event = subject.cloudevent(&ended);
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["type"], "dev.tekton.approval.gate.ended.v1");
        assert_eq!(event["id"], format!("u-2.{}", ended.sequence));
        assert_eq!(
            event["source"],
            format!(
                "/apis/tekton.dev/v1beta1/namespaces/{}/customruns/{}",
                gate.namespace, gate.name
            )
        );
        assert_eq!(event["data"]["gate"]["status"], gate.status);
        assert!(event["data"]["gate"].get("url").is_none());
        assert!(event["time"].as_str().unwrap().ends_with('Z'));
    }
}
