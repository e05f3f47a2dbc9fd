//! Wire types: Tekton's `CustomRun` and Kubernetes time formats. No logic beyond (de)serialising.

pub mod customrun;
pub mod time;

pub use customrun::{
    Condition, CustomRef, CustomRun, CustomRunSpec, CustomRunStatus, EmbeddedCustomSpec, Param,
    ParamValue, RunResult,
};
