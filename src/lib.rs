#![forbid(unsafe_code)]
//! An approval gate for Tekton pipelines: a custom task controller that holds a `CustomRun`
//! until approvers decide, with no pod.

/// Wire types: Tekton's CustomRun, time formats.
pub mod api;
/// The pure core: params, policy, ledger, outcome, plan.
pub mod approval;
