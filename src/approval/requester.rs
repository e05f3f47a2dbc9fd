//! Who started a run: the `approval.tekton.dev/requested-by` stamp. The webhook writes the
//! creating user's name on PipelineRun and CustomRun CREATE; Tekton copies a PipelineRun's
//! annotations to the CustomRuns it creates; the gate freezes the value when it starts.
//! Nobody may write or change the stamp themselves. Pure, like the rest of the core.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::admission::{Denial, Operation, annotation_pointer};
use super::seal::{Keyring, Naming, Verdict, stamp_message};
use super::{REQUESTED_BY_ANNOTATION, REQUESTED_BY_SEAL_ANNOTATION};

/// Where a stamp is written: the run's namespace and naming, and the keys that seal it.
#[derive(Clone, Copy, Debug)]
pub struct Stamping<'a> {
    /// The keys in force.
    pub keys: &'a Keyring,
    /// The run's namespace.
    pub namespace: &'a str,
    /// The run's name or generateName, as created.
    pub naming: Naming<'a>,
}

/// The JSON patch operations that stamp (and seal) a newly created object, or the denial
/// of a forged or changed stamp.
///
/// `trusted_creator` is true when the requester is Tekton's controller creating a run on a
/// PipelineRun's behalf: the stamp it copies is checked with [`verified_copy`] instead.
pub fn stamp(
    operation: Operation,
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
    requester: &str,
    trusted_creator: bool,
    what: &str,
    stamping: Stamping<'_>,
) -> Result<Vec<Value>, Denial> {
    let written = requested_by(new);
    match operation {
        Operation::Update => {
            if written != requested_by(old) || stamp_seal(new) != stamp_seal(old) {
                return Err(Denial(format!(
                    "{REQUESTED_BY_ANNOTATION} of {what} cannot be set or changed: it records \
                     who started the run, written once by the approval webhook"
                )));
            }
            Ok(Vec::new())
        }
        Operation::Create if trusted_creator => Ok(Vec::new()),
        Operation::Create => match written {
            Some(user) if user != requester => Err(Denial(format!(
                "{REQUESTED_BY_ANNOTATION} is set by the approval webhook to the user who creates \
                 {what}: remove it (it says {user}, but you are {requester})"
            ))),
            // Writing one's own name is what the webhook would write; the seal is always ours.
            _ => {
                let seal = format!(
                    "{};{}",
                    stamping.naming.to_text(),
                    stamping.keys.seal(&stamp_message(
                        stamping.namespace,
                        stamping.naming,
                        requester
                    ))
                );
                Ok(match new {
                    Some(_) => vec![
                        json!({"op": "add", "path": annotation_pointer(REQUESTED_BY_ANNOTATION), "value": requester}),
                        json!({"op": "add", "path": annotation_pointer(REQUESTED_BY_SEAL_ANNOTATION), "value": seal}),
                    ],
                    None => vec![json!({
                        "op": "add",
                        "path": "/metadata/annotations",
                        "value": {REQUESTED_BY_ANNOTATION: requester, REQUESTED_BY_SEAL_ANNOTATION: seal},
                    })],
                })
            }
        },
    }
}

/// The requester named by a stamp that Tekton copied from a PipelineRun onto a run it
/// creates, if the stamp's seal shows our webhook wrote it for that PipelineRun (its
/// namespace, and a naming that fits `pipeline_run`, the name in Tekton's
/// `tekton.dev/pipelineRun` label). `None` for a missing, unsealed or copied-over stamp:
/// for example one merged in from a Pipeline's own annotations while the stamping webhook
/// was down.
pub fn verified_copy<'a>(
    annotations: Option<&'a BTreeMap<String, String>>,
    keys: &Keyring,
    namespace: &str,
    pipeline_run: Option<&str>,
) -> Option<&'a str> {
    let user = requested_by(annotations)?;
    let (naming, seal) = annotations?
        .get(REQUESTED_BY_SEAL_ANNOTATION)?
        .split_once(';')?;
    let naming = Naming::from_text(naming)?;
    if !naming.fits(pipeline_run?) {
        return None;
    }
    let verdict = keys.verify(&stamp_message(namespace, naming, user), Some(seal));
    (verdict == Verdict::Valid).then_some(user)
}

/// Removes a stamp (and its seal) that cannot be trusted.
pub fn unstamp(annotations: &BTreeMap<String, String>) -> Vec<Value> {
    [REQUESTED_BY_ANNOTATION, REQUESTED_BY_SEAL_ANNOTATION]
        .into_iter()
        .filter(|key| annotations.contains_key(*key))
        .map(|key| json!({"op": "remove", "path": annotation_pointer(key)}))
        .collect()
}

fn stamp_seal(annotations: Option<&BTreeMap<String, String>>) -> Option<&str> {
    annotations?
        .get(REQUESTED_BY_SEAL_ANNOTATION)
        .map(String::as_str)
}

/// The stamp's user, as written (not verified).
pub fn requested_by(annotations: Option<&BTreeMap<String, String>>) -> Option<&str> {
    annotations?
        .get(REQUESTED_BY_ANNOTATION)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::seal::Key;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn keys() -> Keyring {
        Keyring::new(Key::new("k1", &[1; 32]).unwrap(), None)
    }

    fn stamping(keys: &Keyring) -> Stamping<'_> {
        Stamping {
            keys,
            namespace: "ci",
            naming: Naming::GenerateName("release-"),
        }
    }

    /// Applies stamp operations to annotations, as the API server would.
    fn apply(before: Option<&BTreeMap<String, String>>, ops: &[Value]) -> BTreeMap<String, String> {
        let mut object = json!({"metadata": {"annotations": before}});
        if before.is_none() {
            object["metadata"] = json!({});
        }
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec())).unwrap();
        json_patch::patch(&mut object, &patch).unwrap();
        serde_json::from_value(object["metadata"]["annotations"].clone()).unwrap()
    }

    #[test]
    fn creating_a_run_stamps_and_seals_the_creator() {
        let keys = keys();
        for before in [None, Some(annotations(&[("team", "web")]))] {
            let ops = stamp(
                Operation::Create,
                None,
                before.as_ref(),
                "dave",
                false,
                "x",
                stamping(&keys),
            )
            .unwrap();
            let after = apply(before.as_ref(), &ops);
            assert_eq!(after[REQUESTED_BY_ANNOTATION], "dave");
            assert!(after[REQUESTED_BY_SEAL_ANNOTATION].starts_with("generateName=release-;k1."));
            // Tekton copies both to the gates of release-x7k2p: the copy verifies.
            assert_eq!(
                verified_copy(Some(&after), &keys, "ci", Some("release-x7k2p")),
                Some("dave")
            );
        }
    }

    #[test]
    fn a_forged_stamp_on_create_is_denied_with_who_you_are() {
        let keys = keys();
        let forged = annotations(&[(REQUESTED_BY_ANNOTATION, "bob")]);
        let denial = stamp(
            Operation::Create,
            None,
            Some(&forged),
            "mallory",
            false,
            "PipelineRun ci/release",
            stamping(&keys),
        )
        .unwrap_err();
        assert_eq!(
            denial.0,
            "approval.tekton.dev/requested-by is set by the approval webhook to the user who \
             creates PipelineRun ci/release: remove it (it says bob, but you are mallory)"
        );
        // Writing one's own name is what the webhook would write: allowed, and sealed by us
        // (a seal brought along is replaced).
        let honest = annotations(&[
            (REQUESTED_BY_ANNOTATION, "mallory"),
            (
                REQUESTED_BY_SEAL_ANNOTATION,
                "generateName=release-;k1.forged",
            ),
        ]);
        let ops = stamp(
            Operation::Create,
            None,
            Some(&honest),
            "mallory",
            false,
            "x",
            stamping(&keys),
        )
        .unwrap();
        let after = apply(Some(&honest), &ops);
        assert_eq!(
            verified_copy(Some(&after), &keys, "ci", Some("release-abcde")),
            Some("mallory")
        );
    }

    #[test]
    fn tekton_creating_a_gate_keeps_the_stamp_copied_from_the_pipelinerun() {
        let copied = annotations(&[(REQUESTED_BY_ANNOTATION, "dave")]);
        let keys = keys();
        let ops = stamp(
            Operation::Create,
            None,
            Some(&copied),
            "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller",
            true,
            "x",
            stamping(&keys),
        )
        .unwrap();
        assert!(ops.is_empty());
    }

    #[test]
    fn a_copied_stamp_counts_only_with_our_seal_for_that_pipelinerun() {
        let keys = keys();
        let sealed = |naming: Naming<'_>, user: &str| {
            annotations(&[
                (REQUESTED_BY_ANNOTATION, user),
                (
                    REQUESTED_BY_SEAL_ANNOTATION,
                    &format!(
                        "{};{}",
                        naming.to_text(),
                        keys.seal(&stamp_message("ci", naming, user))
                    ),
                ),
            ])
        };
        let bobs = sealed(Naming::Name("release-1"), "bob");
        assert_eq!(
            verified_copy(Some(&bobs), &keys, "ci", Some("release-1")),
            Some("bob")
        );
        // Carried over to another run (merged in from a Pipeline's annotations).
        assert_eq!(
            verified_copy(Some(&bobs), &keys, "ci", Some("release-2")),
            None
        );
        assert_eq!(
            verified_copy(Some(&bobs), &keys, "prod", Some("release-1")),
            None
        );
        assert_eq!(verified_copy(Some(&bobs), &keys, "ci", None), None);
        // Another user's name under bob's seal.
        let mut renamed = bobs.clone();
        renamed.insert(REQUESTED_BY_ANNOTATION.into(), "dave".into());
        assert_eq!(
            verified_copy(Some(&renamed), &keys, "ci", Some("release-1")),
            None
        );
        // Written by hand, with no seal or another key's.
        let unsealed = annotations(&[(REQUESTED_BY_ANNOTATION, "bob")]);
        assert_eq!(
            verified_copy(Some(&unsealed), &keys, "ci", Some("release-1")),
            None
        );
        let other_keys = Keyring::new(Key::new("k1", &[9; 32]).unwrap(), None);
        assert_eq!(
            verified_copy(Some(&bobs), &other_keys, "ci", Some("release-1")),
            None
        );
        assert_eq!(
            unstamp(&bobs),
            [
                json!({"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1requested-by"}),
                json!({"op": "remove", "path": "/metadata/annotations/approval.tekton.dev~1requested-by-seal"}),
            ]
        );
    }

    #[test]
    fn the_stamp_and_its_seal_cannot_be_added_changed_or_removed_later() {
        let keys = keys();
        let stamped = annotations(&[
            (REQUESTED_BY_ANNOTATION, "dave"),
            (REQUESTED_BY_SEAL_ANNOTATION, "s"),
        ]);
        let changed = annotations(&[
            (REQUESTED_BY_ANNOTATION, "bob"),
            (REQUESTED_BY_SEAL_ANNOTATION, "s"),
        ]);
        let reseal = annotations(&[
            (REQUESTED_BY_ANNOTATION, "dave"),
            (REQUESTED_BY_SEAL_ANNOTATION, "t"),
        ]);
        let none = annotations(&[]);
        for (old, new) in [
            (&stamped, &changed),
            (&stamped, &none),
            (&none, &changed),
            (&stamped, &reseal),
        ] {
            let denial = stamp(
                Operation::Update,
                Some(old),
                Some(new),
                "dave",
                false,
                "gate ci/g",
                stamping(&keys),
            )
            .unwrap_err();
            assert_eq!(
                denial.0,
                "approval.tekton.dev/requested-by of gate ci/g cannot be set or changed: it \
                 records who started the run, written once by the approval webhook"
            );
        }
        // Even Tekton may not change it after creation.
        assert!(
            stamp(
                Operation::Update,
                Some(&stamped),
                Some(&changed),
                "tekton",
                true,
                "x",
                stamping(&keys)
            )
            .is_err()
        );
        assert!(
            stamp(
                Operation::Update,
                Some(&stamped),
                Some(&stamped),
                "dave",
                false,
                "x",
                stamping(&keys)
            )
            .unwrap()
            .is_empty()
        );
    }
}
