//! Publishing the plan's events as `events.k8s.io/v1` Events on the CustomRun.
//!
//! Written here rather than with kube's `Recorder`: that one folds repeated events of the
//! same reason into a series and keeps the first note, which would turn "bob approved
//! (2 of 2)" into a second count of "alice approved (1 of 2)".

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

use crate::api::CustomRun;
use crate::api::time::to_jiff;
use crate::approval::plan::{GateEvent, Severity};

/// The `reportingController` of our events.
pub const REPORTING_CONTROLLER: &str = "approval.tekton.dev/approval-controller";

/// Creates Events for gates.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    instance: String,
}

impl EventPublisher {
    /// `instance` tells replicas apart (the pod name in a cluster).
    pub fn new(client: Client, instance: String) -> Self {
        Self { client, instance }
    }

    /// Publishes one event about `run`.
    pub async fn publish(
        &self,
        run: &CustomRun,
        event: &GateEvent,
        now: DateTime<Utc>,
    ) -> kube::Result<()> {
        let namespace = run.namespace().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &self.event(run, event, now))
            .await?;
        Ok(())
    }

    fn event(&self, run: &CustomRun, event: &GateEvent, now: DateTime<Utc>) -> Event {
        let regarding = ObjectReference {
            api_version: Some(CustomRun::api_version(&()).into_owned()),
            kind: Some(CustomRun::kind(&()).into_owned()),
            name: Some(run.name_any()),
            namespace: run.namespace(),
            uid: run.uid(),
            resource_version: run.resource_version(),
            ..Default::default()
        };
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{nanos:x}", run.name_any())),
                namespace: run.namespace(),
                ..Default::default()
            },
            action: Some(event.reason.to_string()),
            reason: Some(event.reason.to_string()),
            note: Some(truncate(&event.message, 1000)),
            type_: Some(match event.severity {
                Severity::Normal => "Normal".into(),
                Severity::Warning => "Warning".into(),
            }),
            event_time: Some(MicroTime(to_jiff(now))),
            regarding: Some(regarding),
            reporting_controller: Some(REPORTING_CONTROLLER.into()),
            reporting_instance: Some(truncate(&self.instance, 128)),
            ..Default::default()
        }
    }
}

/// The API server refuses notes over 1 kB; a long comment must not lose the event.
fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut end = max_bytes - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let text = "é".repeat(600);
        let cut = truncate(&text, 1000);
        assert!(cut.len() <= 1000);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate("short", 1000), "short");
    }
}
