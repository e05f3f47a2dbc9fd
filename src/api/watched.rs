//! What the controller's watch holds for each CustomRun: a gate, fully read; a gate that
//! cannot be read, with why; or, for every other CustomRun, only its name.
//!
//! The watch sees all CustomRuns of the cluster, including other custom task controllers'
//! with fields our types would refuse (Tekton accepts `retries: -1`). Reading each object
//! leniently means that no object can fail the watch's list for the others, and a run that
//! is not ours costs a few bytes of cache, not its spec and status.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::CustomRun;
use crate::approval::GROUP;

/// One CustomRun as the watch keeps it.
#[derive(Clone, Debug)]
pub struct WatchedRun {
    /// Its metadata: all of it for gates; name, namespace, UID and resourceVersion for
    /// others.
    pub metadata: ObjectMeta,
    /// What it is.
    pub content: Content,
}

/// What a watched CustomRun is.
#[derive(Clone, Debug)]
pub enum Content {
    /// One of our gates.
    Gate(Arc<CustomRun>),
    /// One of our gates (its custom task is of our group) that does not read as a
    /// CustomRun: why.
    Unreadable(String),
    /// Another controller's run: none of our business.
    Other,
}

impl WatchedRun {
    /// Reads a CustomRun as the API server sent it.
    pub fn from_value(value: Value) -> Self {
        let metadata: ObjectMeta = value
            .get("metadata")
            .cloned()
            .and_then(|m| serde_json::from_value(m).ok())
            .unwrap_or_default();
        if !references_our_group(&value) {
            return Self {
                metadata: ObjectMeta {
                    name: metadata.name,
                    namespace: metadata.namespace,
                    uid: metadata.uid,
                    resource_version: metadata.resource_version,
                    ..Default::default()
                },
                content: Content::Other,
            };
        }
        let content = match serde_json::from_value::<CustomRun>(value) {
            Ok(mut run) => {
                // managedFields are most of a CustomRun's size and we never read them.
                run.metadata.managed_fields = None;
                Content::Gate(Arc::new(run))
            }
            Err(e) => Content::Unreadable(e.to_string()),
        };
        let metadata = match &content {
            Content::Gate(run) => run.metadata.clone(),
            _ => ObjectMeta {
                managed_fields: None,
                ..metadata
            },
        };
        Self { metadata, content }
    }

    /// The gate, if this is one that reads.
    pub fn gate(&self) -> Option<&Arc<CustomRun>> {
        match &self.content {
            Content::Gate(run) => Some(run),
            _ => None,
        }
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
            run(json!({"customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
                       "retries": -1})),
            run(json!({"customRef": {"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"},
                       "params": [{"name": "approvers", "value": ["alice"]}]})),
        ]))
        .unwrap();
        assert!(matches!(list[0].content, Content::Other));
        let Content::Unreadable(why) = &list[1].content else {
            panic!("{:?}", list[1])
        };
        assert!(why.contains("invalid value: integer `-1`"), "{why}");
        assert_eq!(list[1].metadata.labels.as_ref().unwrap()["a"], "b");
        let gate = list[2].gate().expect("a gate");
        assert_eq!(gate.spec.params.len(), 1);
        assert_eq!(gate.metadata.managed_fields, None);
        assert_eq!(list[2].metadata.uid.as_deref(), Some("u"));
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
