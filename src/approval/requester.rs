//! Who started a run: the `approval.tekton.dev/requested-by` stamp. The webhook writes the
//! creating user's name on PipelineRun and CustomRun CREATE; Tekton copies a PipelineRun's
//! annotations to the CustomRuns it creates; the gate freezes the value when it starts.
//! Nobody may write or change the stamp themselves. Pure, like the rest of the core.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::REQUESTED_BY_ANNOTATION;
use super::admission::{Denial, Operation, annotation_pointer};

/// The JSON patch operations that stamp a newly created object, or the denial of a forged
/// or changed stamp.
///
/// `trusted_creator` is true when the requester is Tekton's controller creating a run on a
/// PipelineRun's behalf: the stamp it copies was checked when the PipelineRun was created.
pub fn stamp(
    operation: Operation,
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
    requester: &str,
    trusted_creator: bool,
    what: &str,
) -> Result<Vec<Value>, Denial> {
    let written = requested_by(new);
    match operation {
        Operation::Update => {
            if written != requested_by(old) {
                return Err(Denial(format!(
                    "{REQUESTED_BY_ANNOTATION} of {what} cannot be set or changed: it records \
                     who started the run, written once by the approval webhook"
                )));
            }
            Ok(Vec::new())
        }
        Operation::Create if trusted_creator => Ok(Vec::new()),
        Operation::Create => match written {
            Some(user) if user == requester => Ok(Vec::new()),
            Some(user) => Err(Denial(format!(
                "{REQUESTED_BY_ANNOTATION} is set by the approval webhook to the user who creates \
                 {what}: remove it (it says {user}, but you are {requester})"
            ))),
            None if new.is_some() => Ok(vec![json!({
                "op": "add",
                "path": annotation_pointer(REQUESTED_BY_ANNOTATION),
                "value": requester,
            })]),
            None => Ok(vec![json!({
                "op": "add",
                "path": "/metadata/annotations",
                "value": {REQUESTED_BY_ANNOTATION: requester},
            })]),
        },
    }
}

fn requested_by(annotations: Option<&BTreeMap<String, String>>) -> Option<&str> {
    annotations?
        .get(REQUESTED_BY_ANNOTATION)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn creating_a_run_stamps_the_creator() {
        let ops = stamp(Operation::Create, None, None, "dave", false, "x").unwrap();
        assert_eq!(
            ops,
            [
                json!({"op": "add", "path": "/metadata/annotations", "value": {"approval.tekton.dev/requested-by": "dave"}})
            ]
        );
        let existing = annotations(&[("team", "web")]);
        let ops = stamp(Operation::Create, None, Some(&existing), "dave", false, "x").unwrap();
        assert_eq!(
            ops,
            [
                json!({"op": "add", "path": "/metadata/annotations/approval.tekton.dev~1requested-by", "value": "dave"})
            ]
        );
    }

    #[test]
    fn a_forged_stamp_on_create_is_denied_with_who_you_are() {
        let forged = annotations(&[(REQUESTED_BY_ANNOTATION, "bob")]);
        let denial = stamp(
            Operation::Create,
            None,
            Some(&forged),
            "mallory",
            false,
            "PipelineRun ci/release",
        )
        .unwrap_err();
        assert_eq!(
            denial.0,
            "approval.tekton.dev/requested-by is set by the approval webhook to the user who \
             creates PipelineRun ci/release: remove it (it says bob, but you are mallory)"
        );
        // Writing one's own name is what the webhook would write: allowed, nothing to add.
        let honest = annotations(&[(REQUESTED_BY_ANNOTATION, "mallory")]);
        assert_eq!(
            stamp(
                Operation::Create,
                None,
                Some(&honest),
                "mallory",
                false,
                "x"
            )
            .unwrap(),
            Vec::<Value>::new()
        );
    }

    #[test]
    fn tekton_creating_a_gate_keeps_the_stamp_copied_from_the_pipelinerun() {
        let copied = annotations(&[(REQUESTED_BY_ANNOTATION, "dave")]);
        let ops = stamp(
            Operation::Create,
            None,
            Some(&copied),
            "system:serviceaccount:tekton-pipelines:tekton-pipelines-controller",
            true,
            "x",
        )
        .unwrap();
        assert!(ops.is_empty());
    }

    #[test]
    fn the_stamp_cannot_be_added_changed_or_removed_later() {
        let stamped = annotations(&[(REQUESTED_BY_ANNOTATION, "dave")]);
        let changed = annotations(&[(REQUESTED_BY_ANNOTATION, "bob")]);
        let none = annotations(&[]);
        for (old, new) in [(&stamped, &changed), (&stamped, &none), (&none, &changed)] {
            let denial = stamp(
                Operation::Update,
                Some(old),
                Some(new),
                "dave",
                false,
                "gate ci/g",
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
                "x"
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
                "x"
            )
            .unwrap()
            .is_empty()
        );
    }
}
