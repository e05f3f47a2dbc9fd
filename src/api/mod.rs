//! Wire types: Tekton's `CustomRun`, our `Approval` CRD and Kubernetes time formats. No logic beyond (de)serialising.

pub mod approval;
pub mod customrun;
pub mod time;
pub mod watched;

pub use customrun::{
    Condition, CustomRef, CustomRun, CustomRunSpec, CustomRunStatus, EmbeddedCustomSpec, Param,
    ParamValue, RunResult,
};
