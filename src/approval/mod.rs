//! The pure core: a gate's settings, who may decide, the ledger, the outcome and the plan.
//! No I/O, no clock reads, no async: state and time in, decisions out.

pub mod admission;
pub mod eligibility;
pub mod gate;
pub mod inputs;
pub mod ledger;
pub mod outcome;
pub mod params;
pub mod plan;
pub mod policy;
pub mod requester;
pub mod seal;
pub mod tighten;
pub mod window;

/// Our API group.
pub const GROUP: &str = "approval.tekton.dev";
/// The one `apiVersion` we serve.
pub const API_VERSION: &str = "approval.tekton.dev/v1alpha1";
/// The one kind we serve.
pub const KIND: &str = "Approval";
/// Input annotation: an approver's "go", with an optional comment as its value.
pub const APPROVE_ANNOTATION: &str = "approval.tekton.dev/approve";
/// Input annotation: an approver's "no-go", with an optional comment as its value.
pub const REJECT_ANNOTATION: &str = "approval.tekton.dev/reject";
/// Input annotation, with an approval only: when it takes effect, an RFC 3339 time or a Go
/// duration from now (`2h`).
pub const EFFECTIVE_AT_ANNOTATION: &str = "approval.tekton.dev/effective-at";
/// Input annotations, with an approval only: `approval.tekton.dev/input-<name>` gives the
/// value of the gate's input `<name>`.
pub const INPUT_ANNOTATION_PREFIX: &str = "approval.tekton.dev/input-";
/// The ledger: decisions recorded by the webhook, a JSON array.
pub const LEDGER_ANNOTATION: &str = "approval.tekton.dev/decisions";
/// Who started the run: stamped by the webhook on PipelineRun and CustomRun CREATE, copied
/// by Tekton from a PipelineRun to its CustomRuns, frozen into the gate when it starts.
pub const REQUESTED_BY_ANNOTATION: &str = "approval.tekton.dev/requested-by";
/// The webhook's seal over the requested-by stamp: `<naming>;<seal>` (see [`seal`]).
pub const REQUESTED_BY_SEAL_ANNOTATION: &str = "approval.tekton.dev/requested-by-seal";
/// The webhook's seal over a gate it admitted at CREATE: the controller starts only gates
/// that carry a valid one.
pub const ADMITTED_ANNOTATION: &str = "approval.tekton.dev/admitted";

/// Tekton's label naming the Pipeline of a run (the PipelineRun's name when its spec is
/// embedded).
pub const PIPELINE_LABEL: &str = "tekton.dev/pipeline";
/// Tekton's label naming the pipeline task a run executes.
pub const PIPELINE_TASK_LABEL: &str = "tekton.dev/pipelineTask";

pub use gate::{Gate, PolicyLookup, classify};
pub use plan::{Plan, plan};

/// Helpers for tests across the core: one keyring, gates sealed as the webhook admits them,
/// records sealed as the webhook records them.
#[cfg(test)]
pub(crate) mod testing {
    use super::ledger::Record;
    use super::seal::{self, Key, Keyring, Naming};
    use super::{ADMITTED_ANNOTATION, REQUESTED_BY_ANNOTATION};
    use crate::api::CustomRun;

    /// The keyring of the tests' webhook and controller.
    pub fn keys() -> Keyring {
        Keyring::new(Key::new("test", &[7; 32]).unwrap(), None)
    }

    /// `run` with a UID and the admission seal the webhook gives it at CREATE (over its
    /// spec and requested-by stamp as they are now).
    pub fn admitted(mut run: CustomRun) -> CustomRun {
        run.metadata.uid.get_or_insert_with(|| "uid-1".into());
        let annotations = run
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        let message = seal::admission_message(
            run.metadata.namespace.as_deref().unwrap_or_default(),
            Naming::Name(run.metadata.name.as_deref().unwrap_or_default()),
            &seal::sealed_spec(&run.spec),
            annotations.get(REQUESTED_BY_ANNOTATION).map(String::as_str),
        );
        annotations.insert(ADMITTED_ANNOTATION.into(), keys().seal(&message));
        run
    }

    /// `record` sealed for `run`, as the webhook writes it.
    pub fn sealed(run: &CustomRun, mut record: Record) -> Record {
        let gate = seal::Gate {
            uid: run.metadata.uid.as_deref().unwrap_or_default(),
            namespace: run.metadata.namespace.as_deref().unwrap_or_default(),
            name: run.metadata.name.as_deref().unwrap_or_default(),
        };
        record.seal = keys().seal(&seal::record_message(gate, &record));
        record
    }
}
