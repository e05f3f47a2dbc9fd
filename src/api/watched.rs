//! What the controller's watch holds for each CustomRun: a gate still in progress, as
//! compact JSON; a gate that cannot be read, with why; or, for every other CustomRun and
//! for gates that have ended, only its name.
//!
//! The watch sees all CustomRuns of the cluster, including other custom task controllers'
//! with fields our types would refuse (Tekton accepts `retries: -1`). Reading each object
//! leniently means that no object can fail the watch's list for the others, and a run that
//! is not ours costs a few bytes of cache, not its spec and status.
//!
//! The cache is most of the controller's memory, so it holds only what a reconcile needs.
//! A gate in progress is kept as the JSON the API server sent, without `managedFields`, and
//! read into a [`CustomRun`] when it is reconciled: the parsed form, with a map node for
//! each of its labels, annotations and unknown fields, takes about three times as much (and
//! a reconcile copies it anyway when it writes). An ended gate has nothing left to do: its
//! name is enough.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::CustomRun;
use crate::approval::GROUP;
use crate::approval::classify;
use crate::approval::plan::has_ended;

/// One CustomRun as the watch keeps it.
#[derive(Clone, Debug)]
pub struct WatchedRun {
    /// Its name, namespace, UID and resourceVersion: what the cache's key and an event's
    /// reference need.
    pub metadata: ObjectMeta,
    /// What it is.
    pub content: Content,
}

/// What a watched CustomRun is.
#[derive(Clone, Debug)]
pub enum Content {
    /// One of our gates, still in progress.
    Gate(CompactGate),
    /// One of our gates that has ended (`Succeeded` is `True` or `False`).
    Ended,
    /// One of our gates (its custom task is of our group) that does not read as a
    /// CustomRun: why.
    Unreadable(String),
    /// Another controller's run: none of our business.
    Other,
}

/// A gate in progress as the API server sent it, without `managedFields`, as compact JSON.
#[derive(Clone, Debug)]
pub struct CompactGate(Box<str>);

impl CompactGate {
    /// The gate. It was read as a CustomRun when it was cached, so this fails only if the
    /// types changed under a running process, which they cannot.
    pub fn read(&self) -> Result<CustomRun, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a gate has at least its metadata.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl WatchedRun {
    /// Reads a CustomRun as the API server sent it.
    pub fn from_value(mut value: Value) -> Self {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            // Most of a CustomRun's size, and never read.
            meta.remove("managedFields");
        }
        let metadata = key_metadata(&value);
        let content = if !references_our_group(&value) {
            Content::Other
        } else {
            match serde_json::from_value::<CustomRun>(value) {
                Ok(run) if classify(&run.spec).is_none() => Content::Other,
                Ok(run) if run.status.as_ref().is_some_and(has_ended) => Content::Ended,
                Ok(run) => match serde_json::to_string(&run) {
                    Ok(json) => Content::Gate(CompactGate(json.into_boxed_str())),
                    Err(e) => Content::Unreadable(e.to_string()),
                },
                Err(e) => Content::Unreadable(e.to_string()),
            }
        };
        Self { metadata, content }
    }

    /// The gate in progress, if this is one.
    pub fn gate(&self) -> Option<&CompactGate> {
        match &self.content {
            Content::Gate(gate) => Some(gate),
            _ => None,
        }
    }
}

/// The metadata the cache keeps of every object.
fn key_metadata(value: &Value) -> ObjectMeta {
    let field = |name: &str| value["metadata"][name].as_str().map(ToString::to_string);
    ObjectMeta {
        name: field("name"),
        namespace: field("namespace"),
        uid: field("uid"),
        resource_version: field("resourceVersion"),
        ..Default::default()
    }
}

/// Whether `customRef` or `customSpec` names our API group (any version or kind: those are
/// ours to fail).
fn references_our_group(run: &Value) -> bool {
    let spec = &run["spec"];
    ["customRef", "customSpec"].iter().any(|field| {
        spec[field]["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .is_some_and(|(group, _)| group == GROUP)
    })
}

impl<'de> Deserialize<'de> for WatchedRun {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::from_value)
    }
}

impl Resource for WatchedRun {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        CustomRun::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        CustomRun::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        CustomRun::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        CustomRun::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(spec: Value) -> Value {
        json!({"apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun",
               "metadata": {"name": "r", "namespace": "ci", "uid": "u", "resourceVersion": "3",
                            "labels": {"a": "b"}, "managedFields": [{"manager": "tekton"}]},
               "spec": spec})
    }

    fn approval() -> Value {
        json!({"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"})
    }

    #[test]
    fn another_controllers_run_that_our_types_refuse_is_kept_as_a_name_only() {
        let foreign = run(
            json!({"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"},
                                 "retries": -1}),
        );
        let watched: WatchedRun = serde_json::from_value(foreign).unwrap();
        assert!(matches!(watched.content, Content::Other));
        assert_eq!(watched.metadata.name.as_deref(), Some("r"));
        assert_eq!(watched.metadata.resource_version.as_deref(), Some("3"));
        assert_eq!(
            watched.metadata.labels, None,
            "nothing but the name is kept"
        );
    }

    #[test]
    fn a_list_with_a_malformed_item_reads_every_other_item() {
        let list: Vec<WatchedRun> = serde_json::from_value(json!([
            run(json!({"customRef": {"apiVersion": "example.dev/v1", "kind": "Wait"}, "retries": -1})),
            run(json!({"customRef": approval(), "retries": -1})),
            run(json!({"customRef": approval(),
                       "params": [{"name": "approvers", "value": ["alice"]}]})),
        ]))
        .unwrap();
        assert!(matches!(list[0].content, Content::Other));
        let Content::Unreadable(why) = &list[1].content else {
            panic!("{:?}", list[1])
        };
        assert!(why.contains("invalid value: integer `-1`"), "{why}");
        assert_eq!(list[1].metadata.name.as_deref(), Some("r"));
        let gate = list[2].gate().expect("a gate").read().unwrap();
        assert_eq!(gate.spec.params.len(), 1);
        assert_eq!(list[2].metadata.uid.as_deref(), Some("u"));
    }

    #[test]
    fn a_gate_in_progress_is_kept_whole_but_for_its_managed_fields() {
        let mut value = run(
            json!({"customRef": approval(), "serviceAccountName": "default",
                                   "params": [{"name": "approvers", "value": ["alice"]}]}),
        );
        value["metadata"]["annotations"] = json!({"approval.tekton.dev/admitted": "seal"});
        value["status"] = json!({"conditions": [{"type": "Succeeded", "status": "Unknown",
                                                 "reason": "AwaitingApproval"}],
                                 "extraFields": {"minApprovals": 1}});
        let watched = WatchedRun::from_value(value.clone());
        let gate = watched.gate().expect("a gate in progress");
        value["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(serde_json::to_value(gate.read().unwrap()).unwrap(), value);
        assert!(!gate.is_empty());
        assert!(
            gate.len() < serde_json::to_string(&value).unwrap().len() + 1,
            "compact JSON"
        );
        assert_eq!(
            watched.metadata.annotations, None,
            "the key holds no copy of the gate"
        );
    }

    #[test]
    fn an_ended_gate_is_kept_as_a_name_only() {
        for status in ["True", "False"] {
            let mut value = run(json!({"customRef": approval()}));
            value["status"] = json!({"conditions": [{"type": "Succeeded", "status": status}]});
            let watched = WatchedRun::from_value(value);
            assert!(matches!(watched.content, Content::Ended), "{status}");
            assert_eq!(watched.metadata.name.as_deref(), Some("r"));
        }
    }

    #[test]
    fn a_run_of_our_group_but_another_kind_is_ours_to_fail() {
        let value = run(
            json!({"customRef": {"apiVersion": "approval.tekton.dev/v1alpha1",
                                             "kind": "Other"}}),
        );
        assert!(WatchedRun::from_value(value).gate().is_some());
    }

    #[test]
    fn an_embedded_spec_of_our_group_is_ours() {
        let embedded = run(
            json!({"customSpec": {"apiVersion": "approval.tekton.dev/v2", "kind": "Approval"}}),
        );
        let watched = WatchedRun::from_value(embedded);
        assert!(watched.gate().is_some());
    }
}
