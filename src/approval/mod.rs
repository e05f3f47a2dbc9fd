//! The pure core: a gate's settings, who may decide, the ledger, the outcome and the plan.
//! No I/O, no clock reads, no async: state and time in, decisions out.

pub mod admission;
pub mod eligibility;
pub mod gate;
pub mod ledger;
pub mod outcome;
pub mod params;
pub mod plan;
pub mod policy;
pub mod requester;

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
/// The ledger: decisions recorded by the webhook, a JSON array.
pub const LEDGER_ANNOTATION: &str = "approval.tekton.dev/decisions";
/// Who started the run: stamped by the webhook on PipelineRun and CustomRun CREATE, copied
/// by Tekton from a PipelineRun to its CustomRuns, frozen into the gate when it starts.
pub const REQUESTED_BY_ANNOTATION: &str = "approval.tekton.dev/requested-by";

pub use gate::{Gate, PolicyLookup, classify};
pub use plan::{Plan, plan};
