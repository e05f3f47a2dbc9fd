//! Tekton's `CustomRun` (`tekton.dev/v1beta1`), written by hand because Tekton owns the CRD.
//!
//! Only the fields the gate reads or writes are typed; everything else is kept in `rest`
//! maps so that an object read from the API server and written back loses nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time::kube_time;

/// The value Tekton writes into `spec.status` to cancel a run.
pub const RUN_CANCELLED: &str = "RunCancelled";

/// The condition type Tekton reads: the only condition a CustomRun carries.
pub const SUCCEEDED: &str = "Succeeded";

/// `CustomRun.spec`, as Tekton defines it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tekton.dev",
    version = "v1beta1",
    kind = "CustomRun",
    plural = "customruns",
    namespaced,
    status = "CustomRunStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CustomRunSpec {
    /// A reference to the custom task (`apiVersion`, `kind`, optional `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ref: Option<CustomRef>,
    /// An embedded custom task spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_spec: Option<EmbeddedCustomSpec>,
    /// Params, after Tekton substituted variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// `RunCancelled` when Tekton (or a user) cancels the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why the run was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// How many times a failed attempt is retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// A Go duration string such as `1h0m0s`; `None` means Tekton's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Fields we do not use (`serviceAccountName`, `workspaces`, ...), kept as they are.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `spec.customRef`: Tekton's `TaskRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomRef {
    /// `approval.tekton.dev/v1alpha1` for our gates.
    #[serde(default)]
    pub api_version: String,
    /// `Approval` for our gates.
    #[serde(default)]
    pub kind: String,
    /// The name of a policy object; empty for inline gates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Resolver fields and anything else Tekton adds.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// `spec.customSpec`: an embedded custom task (`taskSpec` in the Pipeline).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedCustomSpec {
    /// `approval.tekton.dev/v1alpha1` for our gates.
    #[serde(default)]
    pub api_version: String,
    /// `Approval` for our gates.
    #[serde(default)]
    pub kind: String,
    /// The raw spec, read by the approval core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Value>,
    /// `metadata` and anything else Tekton adds.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// A param: a name and a string, array or object value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The param's name.
    pub name: String,
    /// The param's value.
    pub value: ParamValue,
}

/// Tekton's `ParamValue`: it serialises as a bare string, array or object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// `value: "2"`
    String(String),
    /// `value: ["alice", "bob"]`
    Array(Vec<String>),
    /// `value: {key: value}`
    Object(BTreeMap<String, String>),
}

/// `CustomRun.status`: Tekton's `CustomRunStatus` (knative `duckv1.Status` plus run fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomRunStatus {
    /// The `Succeeded` condition (always the whole list is written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the current attempt started.
    #[serde(
        default,
        with = "kube_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<DateTime<Utc>>,
    /// When the run ended.
    #[serde(
        default,
        with = "kube_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub completion_time: Option<DateTime<Utc>>,
    /// Results, read by later tasks as `$(tasks.<name>.results.<result>)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<RunResult>,
    /// Earlier attempts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries_status: Vec<CustomRunStatus>,
    /// Free JSON owned by the custom task: the frozen policy of the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_fields: Option<Value>,
    /// `observedGeneration`, `annotations` and fields we do not own.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

impl CustomRunStatus {
    /// The `Succeeded` condition, if any.
    pub fn succeeded(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == SUCCEEDED)
    }
}

/// A knative condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Succeeded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A PascalCase reason such as `AwaitingApproval`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed.
    #[serde(
        default,
        with = "kube_time::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// `severity` and anything else.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// One result: results are strings; JSON arrays become array results in Tekton.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// The result's name.
    pub name: String,
    /// The result's value.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tekton_customrun() -> Value {
        // Shaped as Tekton's pipelinerun reconciler creates it, with a status we wrote.
        json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {"name": "release-approve", "namespace": "ci", "resourceVersion": "42",
                         "labels": {"tekton.dev/pipelineRun": "release"}},
            "spec": {
                "customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
                "params": [
                    {"name": "approvers", "value": ["alice", "group:release-managers"]},
                    {"name": "minApprovals", "value": "2"},
                    {"name": "labels", "value": {"env": "prod"}}
                ],
                "serviceAccountName": "default",
                "timeout": "24h0m0s",
                "retries": 1
            },
            "status": {
                "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "AwaitingApproval",
                                "message": "Waiting", "lastTransitionTime": "2026-11-22T10:00:00Z",
                                "severity": ""}],
                "startTime": "2026-11-22T10:00:00Z",
                "observedGeneration": 1,
                "extraFields": {"minApprovals": 2}
            }
        })
    }

    #[test]
    fn a_tekton_customrun_round_trips_without_losing_fields() {
        let original = tekton_customrun();
        let run: CustomRun = serde_json::from_value(original.clone()).unwrap();
        assert_eq!(run.spec.timeout.as_deref(), Some("24h0m0s"));
        assert_eq!(run.spec.retries, 1);
        assert_eq!(
            run.spec.params[0].value,
            ParamValue::Array(vec!["alice".into(), "group:release-managers".into()])
        );
        assert_eq!(run.spec.params[1].value, ParamValue::String("2".into()));
        assert!(matches!(run.spec.params[2].value, ParamValue::Object(_)));
        let status = run.status.as_ref().unwrap();
        assert_eq!(status.succeeded().unwrap().reason, "AwaitingApproval");
        assert_eq!(serde_json::to_value(&run).unwrap(), original);
    }

    #[test]
    fn an_embedded_spec_keeps_its_raw_spec() {
        let run: CustomRunSpec = serde_json::from_value(json!({
            "customSpec": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval",
                           "metadata": {"labels": {"a": "b"}}, "spec": {"approvers": ["alice"]}}
        }))
        .unwrap();
        let embedded = run.custom_spec.unwrap();
        assert_eq!(embedded.kind, "Approval");
        assert_eq!(embedded.spec, Some(json!({"approvers": ["alice"]})));
        assert!(embedded.rest.contains_key("metadata"));
    }
}
