//! What the controller's watch holds for each CustomRun: a gate still in progress, as
//! compressed JSON; a gate that cannot be read, with why; or, for every other CustomRun and
//! for gates that have ended, only its name.
//!
//! The watch sees all CustomRuns of the cluster, including other custom task controllers'
//! with fields our types would refuse (Tekton accepts `retries: -1`). Reading each object
//! leniently means that no object can fail the watch's list for the others, and a run that
//! is not ours costs a few bytes of cache, not its spec and status.
//!
//! The cache is most of the controller's memory, so it holds only what a reconcile needs.
//! An ended gate has nothing left to do: its name is enough. A gate in progress is kept as
//! the JSON the API server sent, without `managedFields`, compressed, and read into a
//! [`CustomRun`] when it is reconciled. Parsed, a gate takes about 3.5 KiB (a map node for
//! each of its labels, annotations and unknown fields); as JSON 1 to 2 KiB (a waiting gate of
//! `make bench`: 1,134 bytes; one Tekton made for a pipeline task with three params: 1,871);
//! compressed about 0.2 KiB. Gates resemble each other so closely that LZ4, given a typical
//! gate as its dictionary, finds almost everything but names, UIDs, times and seals in it;
//! compressing one takes microseconds, and happens once per watch event.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::CustomRun;
use crate::approval::GROUP;
use crate::approval::classify;
use crate::approval::plan::{Attempt, has_ended};

/// One CustomRun as the watch keeps it.
#[derive(Clone, Debug)]
pub struct WatchedRun {
    /// Its name, namespace and resourceVersion: what the cache's key and the watch need
    /// (each is kept once more in the key).
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
    /// An ended gate whose notification sinks have not all been told how it ended (the
    /// process that ended it stopped first): kept until the notifier has told them.
    EndedUntold(CompactGate),
    /// One of our gates (its custom task is of our group) that does not read as a
    /// CustomRun.
    Unreadable {
        /// Why.
        why: String,
        /// Its UID, for the event that reports it (the cache's key has none).
        uid: Option<String>,
    },
    /// Another controller's run: none of our business.
    Other,
}

/// A gate in progress as the API server sent it, without `managedFields`: its JSON,
/// compressed with [`dictionary`].
#[derive(Clone, Debug)]
pub struct CompactGate(Box<[u8]>);

impl CompactGate {
    /// Compresses a gate.
    pub fn new(run: &CustomRun) -> Result<Self, serde_json::Error> {
        let json = serde_json::to_vec(run)?;
        Ok(Self(
            lz4_flex::block::compress_prepend_size_with_dict(&json, dictionary())
                .into_boxed_slice(),
        ))
    }

    /// The gate. It was read as a CustomRun when it was cached, so this fails only if the
    /// types changed under a running process, which they cannot.
    pub fn read(&self) -> Result<CustomRun, String> {
        let json = lz4_flex::block::decompress_size_prepended_with_dict(&self.0, dictionary())
            .map_err(|e| format!("the cached gate does not decompress: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| e.to_string())
    }
}

/// A typical gate (a Tekton-made CustomRun with our status and two ledger records) as we
/// serialize gates, so that its fields come in the order of theirs.
fn dictionary() -> &'static [u8] {
    static DICTIONARY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let sample: CustomRun = serde_json::from_str(include_str!("gate-dictionary.json"))
            .expect("gate-dictionary.json is a CustomRun (a unit test reads it)");
        serde_json::to_vec(&sample).expect("a CustomRun serializes")
    });
    &DICTIONARY
}

impl WatchedRun {
    /// Reads a CustomRun as the API server sent it.
    pub fn from_value(mut value: Value) -> Self {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            // Most of a CustomRun's size, and never read.
            meta.remove("managedFields");
        }
        let metadata = key_metadata(&value);
        let uid = value["metadata"]["uid"].as_str().map(ToString::to_string);
        let unreadable = |why: String| Content::Unreadable { why, uid };
        let content = if !references_our_group(&value) {
            Content::Other
        } else {
            match serde_json::from_value::<CustomRun>(value) {
                Ok(run) if classify(&run.spec).is_none() => Content::Other,
                Ok(run) if run.status.as_ref().is_some_and(has_ended) => {
                    let untold = run
                        .status
                        .as_ref()
                        .and_then(Attempt::notifying)
                        .is_some_and(|attempt| attempt.untold());
                    match untold.then(|| CompactGate::new(&run)) {
                        Some(Ok(gate)) => Content::EndedUntold(gate),
                        _ => Content::Ended,
                    }
                }
                Ok(run) => match CompactGate::new(&run) {
                    Ok(gate) => Content::Gate(gate),
                    Err(e) => unreadable(e.to_string()),
                },
                Err(e) => unreadable(e.to_string()),
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
        let Content::Unreadable { why, uid } = &list[1].content else {
            panic!("{:?}", list[1])
        };
        assert!(why.contains("invalid value: integer `-1`"), "{why}");
        assert_eq!(uid.as_deref(), Some("u"));
        assert_eq!(list[1].metadata.name.as_deref(), Some("r"));
        let gate = list[2].gate().expect("a gate").read().unwrap();
        assert_eq!(gate.spec.params.len(), 1);
        assert_eq!(gate.metadata.uid.as_deref(), Some("u"));
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
        assert!(!gate.0.is_empty());
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
    fn an_ended_gate_whose_sinks_were_not_all_told_is_kept_until_they_are() {
        let ended = |notified: Value| {
            let mut value = run(json!({"customRef": approval()}));
            value["status"] = json!({
                "conditions": [{"type": "Succeeded", "status": "True", "reason": "Approved"}],
                "extraFields": {"approvers": ["alice"], "minApprovals": 1, "timeout": "1h",
                                "notify": ["release-slack", "audit"], "notified": notified},
            });
            WatchedRun::from_value(value).content
        };
        let told = json!({"release-slack": {"ts": "1.2", "ended": true}, "audit": {"sent": 3, "ended": true}});
        assert!(matches!(ended(told), Content::Ended));
        let half = json!({"release-slack": {"ts": "1.2", "ended": true}, "audit": {"sent": 2}});
        let Content::EndedUntold(gate) = ended(half) else {
            panic!("kept: audit was not told the ending");
        };
        assert_eq!(gate.read().unwrap().metadata.name.as_deref(), Some("r"));
        assert!(matches!(ended(json!({})), Content::EndedUntold(_)));
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

    #[test]
    fn a_tekton_gate_compresses_to_a_fraction_of_its_json() {
        let mut sample: Value = serde_json::from_str(include_str!("gate-dictionary.json")).unwrap();
        // Another gate of another pipeline, with other names, UIDs, times and seals.
        sample["metadata"]["name"] = json!("deploy-x7k2p-approve");
        sample["metadata"]["uid"] = json!("5d2c0f4e-1b7a-4c39-9e8d-0f6a2b3c4d5e");
        sample["metadata"]["annotations"]["approval.tekton.dev/admitted"] =
            json!("9f8e7d6c.Z3Jx1mQ0v8c-Kp2WbYt5sLr9NfHa6Ue4oDi7gCj0kBw");
        sample["metadata"]["creationTimestamp"] = json!("2026-12-03T17:21:09Z");
        sample["spec"]["params"][2]["value"] = json!("Deploy v2.0.1 to staging?");
        let json = serde_json::to_string(&sample).unwrap();
        let gate = WatchedRun::from_value(sample.clone());
        let gate = gate.gate().expect("a gate in progress");
        assert!(
            gate.0.len() * 3 < json.len(),
            "{} bytes compressed, {} as JSON",
            gate.0.len(),
            json.len()
        );
        assert_eq!(serde_json::to_value(gate.read().unwrap()).unwrap(), sample);
    }

    #[test]
    fn a_gate_unlike_the_dictionary_still_reads_back_whole() {
        let mut value = run(json!({"customRef": approval(), "retries": 2,
                                   "params": [{"name": "approvers", "value": ["ünïcödé"]}]}));
        value["metadata"]["annotations"] =
            json!({"approval.tekton.dev/decisions": "x".repeat(100_000)});
        value["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        let watched = WatchedRun::from_value(value.clone());
        let read = watched.gate().unwrap().read().unwrap();
        assert_eq!(serde_json::to_value(read).unwrap(), value);
    }
}
