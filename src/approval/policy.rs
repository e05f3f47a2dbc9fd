//! A gate's policy: who may decide, how many must approve, and what the deadline means.
//! It is frozen into `status.extraFields` when the gate starts; later evaluation reads only
//! the frozen copy, so editing params or a named policy cannot change a running gate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::eligibility::Approvers;
use super::inputs::Input;
use super::window::Window;
use crate::api::time::{format_go_duration, parse_go_duration};

/// Tekton's default when a run has no timeout: one hour.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the deadline means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// Fail the run (`CustomRunTimedOut`).
    #[default]
    Fail,
    /// Treat the deadline as a rejection (`RejectedOnTimeout`).
    Reject,
    /// Treat the deadline as an approval (`ApprovedOnTimeout`).
    Approve,
}

/// What a rejection means for the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnReject {
    /// The run fails, and the pipeline with it.
    #[default]
    Fail,
    /// The run succeeds with `decision=rejected`, so `when` expressions can branch.
    Continue,
}

/// What being superseded by a newer run means for the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSupersede {
    /// The run fails (`Superseded`), and the pipeline with it.
    #[default]
    Fail,
    /// The run succeeds with `decision=superseded`, so `when` expressions can branch.
    Continue,
}

/// The settings a gate is evaluated with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Who may decide.
    pub approvers: Approvers,
    /// Distinct eligible users who must approve.
    pub min_approvals: u32,
    /// What approvers are asked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// What the deadline means.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// What a rejection means.
    #[serde(default)]
    pub on_reject: OnReject,
    /// From the start of an attempt to its deadline; zero means none.
    #[serde(with = "go_duration")]
    pub timeout: Duration,
    /// The named `Approval` policy this was resolved from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Whether the user who started the run may approve it. Frozen gates from before this
    /// field existed allowed it.
    #[serde(default = "allowed")]
    pub allow_self_approval: bool,
    /// Who started the run (`approval.tekton.dev/requested-by`, stamped by the webhook),
    /// frozen when the gate starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Which run the gate belongs to (Tekton's labels), frozen when it starts: labels can be
    /// edited later by anyone who may patch CustomRuns, and what approvers are shown (in
    /// notifications) must not change under them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// When approvals take effect (see [`super::window`]); always, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_window: Option<Window>,
    /// What an approver gives with an approval (see [`super::inputs`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    /// Whether a newer run waiting at the same gate ends this one (`Superseded`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub supersede: bool,
    /// Which gates supersede each other (within a namespace): as set, or frozen at the start
    /// from the gate's Pipeline and pipeline task (`<pipeline>/<task>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersede_key: Option<String>,
    /// What being superseded means.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_supersede: OnSupersede,
    /// The notification sinks (by name, as the platform team configured them) told when
    /// the gate waits, on each decision, and when it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

/// The run a gate belongs to, from Tekton's labels at the start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// `tekton.dev/pipelineRun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_run: Option<String>,
    /// `tekton.dev/pipeline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// `tekton.dev/pipelineTask`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_task: Option<String>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn allowed() -> bool {
    true
}

/// Why a listed approver's approval does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfApproval {
    /// They started the run, and the policy forbids approving one's own run.
    OwnRun,
    /// Nobody knows who started the run (it was created while the webhook was not
    /// stamping), so self-approval cannot be ruled out: fail closed.
    UnknownRequester,
}

impl Policy {
    /// Whether `user`'s approval is barred by the self-approval rule. Rejections never are:
    /// stopping one's own run is always allowed.
    pub fn self_approval_bar(&self, user: &str) -> Option<SelfApproval> {
        if self.allow_self_approval {
            return None;
        }
        match &self.requested_by {
            Some(requester) if requester == user => Some(SelfApproval::OwnRun),
            Some(_) => None,
            None => Some(SelfApproval::UnknownRequester),
        }
    }

    /// `None` when the gate waits forever (`timeout: 0s`).
    pub fn deadline_after(&self) -> Option<Duration> {
        (!self.timeout.is_zero()).then_some(self.timeout)
    }
}

mod go_duration {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_go_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_go_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::eligibility::Approver;
    use serde_json::json;

    #[test]
    fn a_policy_freezes_to_readable_json_and_back() {
        let policy = Policy {
            approvers: Approvers::new([
                Approver::User("alice".into()),
                Approver::Group("release-managers".into()),
            ]),
            min_approvals: 2,
            message: "Release v1.2?".into(),
            on_timeout: OnTimeout::Approve,
            on_reject: OnReject::Continue,
            timeout: Duration::from_secs(86_400),
            policy: None,
            allow_self_approval: false,
            requested_by: Some("dave".into()),
            approval_window: None,
            inputs: Vec::new(),
            supersede: false,
            supersede_key: None,
            on_supersede: OnSupersede::Fail,
            notify: Vec::new(),
            origin: None,
        };
        let frozen = serde_json::to_value(&policy).unwrap();
        assert_eq!(
            frozen,
            json!({"approvers": ["alice", "group:release-managers"], "minApprovals": 2,
                   "message": "Release v1.2?", "onTimeout": "approve", "onReject": "continue",
                   "timeout": "24h0m0s", "allowSelfApproval": false, "requestedBy": "dave"})
        );
        assert_eq!(serde_json::from_value::<Policy>(frozen).unwrap(), policy);
    }

    #[test]
    fn a_zero_timeout_has_no_deadline() {
        let policy: Policy = serde_json::from_value(
            json!({"approvers": ["alice"], "minApprovals": 1, "timeout": "0s"}),
        )
        .unwrap();
        assert_eq!(policy.deadline_after(), None);
        assert_eq!(policy.on_timeout, OnTimeout::Fail);
        assert_eq!(policy.on_reject, OnReject::Fail);
        assert!(
            policy.allow_self_approval,
            "gates frozen before the field existed keep allowing it"
        );
    }

    #[test]
    fn self_approval_is_barred_only_for_the_requester_and_only_when_forbidden() {
        let mut policy: Policy = serde_json::from_value(json!({
            "approvers": ["alice", "dave"], "minApprovals": 1, "timeout": "1h",
            "allowSelfApproval": false, "requestedBy": "dave"}))
        .unwrap();
        assert_eq!(policy.self_approval_bar("dave"), Some(SelfApproval::OwnRun));
        assert_eq!(policy.self_approval_bar("alice"), None);
        policy.requested_by = None;
        assert_eq!(
            policy.self_approval_bar("alice"),
            Some(SelfApproval::UnknownRequester),
            "an unknown requester fails closed"
        );
        policy.allow_self_approval = true;
        assert_eq!(policy.self_approval_bar("alice"), None);
        policy.requested_by = Some("dave".into());
        assert_eq!(policy.self_approval_bar("dave"), None);
    }
}
