//! Which CustomRuns are gates, and where a gate's settings come from.

use serde_json::Value;

use super::params::{Problem, Settings};
use super::policy::Policy;
use super::{API_VERSION, GROUP, KIND};
use crate::api::CustomRunSpec;
use crate::api::time::parse_go_duration;

/// A CustomRun of ours, by where its settings live.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate<'a> {
    /// `taskRef {apiVersion, kind}`: settings in params.
    Inline,
    /// `taskSpec {apiVersion, kind, spec}`: settings in the embedded spec (and params).
    Embedded(Option<&'a Value>),
    /// `taskRef {apiVersion, kind, name}`: settings in an `Approval` object.
    Named(&'a str),
    /// Our group, but a version or kind we do not serve: it fails with this message.
    Unsupported(String),
}

/// `None` for CustomRuns that are not ours: those are never touched.
pub fn classify(spec: &CustomRunSpec) -> Option<Gate<'_>> {
    let (api_version, kind, gate) = match (&spec.custom_ref, &spec.custom_spec) {
        (Some(r), _) if is_our_group(&r.api_version) => {
            let gate = if r.name.is_empty() {
                Gate::Inline
            } else {
                Gate::Named(&r.name)
            };
            (&r.api_version, &r.kind, gate)
        }
        (_, Some(s)) if is_our_group(&s.api_version) => {
            (&s.api_version, &s.kind, Gate::Embedded(s.spec.as_ref()))
        }
        _ => return None,
    };
    if api_version != API_VERSION {
        return Some(Gate::Unsupported(format!(
            "unsupported version `{api_version}`: this controller serves {API_VERSION} (kind {KIND})"
        )));
    }
    if kind != KIND {
        return Some(Gate::Unsupported(format!(
            "unsupported kind `{kind}` in {API_VERSION}: the only kind is {KIND}"
        )));
    }
    Some(gate)
}

fn is_our_group(api_version: &str) -> bool {
    api_version.split_once('/').map(|(group, _)| group) == Some(GROUP)
}

/// The outcome of looking up a named policy, done by the API layer before planning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PolicyLookup<'a> {
    /// The gate is not named, or its policy is already frozen: nothing was looked up.
    NotNeeded,
    /// The `Approval` object's spec.
    Found(&'a Value),
    /// No such `Approval` in the gate's namespace.
    Missing,
}

/// Resolves a gate's policy from its params, embedded spec or named policy.
pub fn resolve(
    gate: &Gate<'_>,
    spec: &CustomRunSpec,
    namespace: &str,
    lookup: PolicyLookup<'_>,
) -> Result<Policy, Vec<Problem>> {
    let run_timeout = match spec.timeout.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            parse_go_duration(text)
                .map_err(|_| vec![Problem::InvalidRunTimeout(text.to_string())])?,
        ),
    };
    let (params, mut problems) = Settings::from_params(&spec.params);
    let (settings, policy_name) = match gate {
        Gate::Inline => (params, None),
        Gate::Embedded(embedded) => {
            let (embedded, spec_problems) = match embedded {
                Some(value) => Settings::from_spec(value),
                None => (Settings::default(), Vec::new()),
            };
            problems.extend(spec_problems);
            let (merged, merge_problems) = params.merge_embedded(embedded);
            problems.extend(merge_problems);
            (merged, None)
        }
        Gate::Named(name) => {
            let policy = match lookup {
                PolicyLookup::Found(value) => value,
                PolicyLookup::Missing | PolicyLookup::NotNeeded => {
                    return Err(vec![Problem::PolicyNotFound {
                        name: name.to_string(),
                        namespace: namespace.to_string(),
                    }]);
                }
            };
            let (policy, policy_problems) = Settings::from_spec(policy);
            problems.extend(policy_problems.into_iter().map(|p| in_policy(name, p)));
            let (merged, override_problems) = params.over_policy(name, policy);
            problems.extend(override_problems);
            (merged, Some(*name))
        }
        Gate::Unsupported(message) => return Err(vec![Problem::Unsupported(message.clone())]),
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    settings.into_policy(run_timeout, policy_name)
}

fn in_policy(name: &str, problem: Problem) -> Problem {
    Problem::InPolicy {
        policy: name.to_string(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CustomRef, EmbeddedCustomSpec};
    use serde_json::json;
    use std::time::Duration;

    fn with_ref(api_version: &str, kind: &str, name: &str) -> CustomRunSpec {
        CustomRunSpec {
            custom_ref: Some(CustomRef {
                api_version: api_version.into(),
                kind: kind.into(),
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn our_kind_is_a_gate_by_ref_or_embedded_spec() {
        assert_eq!(
            classify(&with_ref("approval.tekton.dev/v1alpha1", "Approval", "")),
            Some(Gate::Inline)
        );
        assert_eq!(
            classify(&with_ref(
                "approval.tekton.dev/v1alpha1",
                "Approval",
                "production"
            )),
            Some(Gate::Named("production"))
        );
        let embedded = CustomRunSpec {
            custom_spec: Some(EmbeddedCustomSpec {
                api_version: "approval.tekton.dev/v1alpha1".into(),
                kind: "Approval".into(),
                spec: Some(json!({"approvers": ["alice"]})),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(classify(&embedded), Some(Gate::Embedded(Some(_)))));
    }

    #[test]
    fn other_groups_are_not_ours() {
        assert_eq!(classify(&with_ref("example.dev/v1", "Wait", "")), None);
        assert_eq!(
            classify(&with_ref(
                "approval.tekton.dev.evil/v1alpha1",
                "Approval",
                ""
            )),
            None
        );
        assert_eq!(classify(&with_ref("", "", "")), None);
        assert_eq!(classify(&CustomRunSpec::default()), None);
    }

    #[test]
    fn other_versions_and_kinds_of_our_group_are_ours_but_unsupported() {
        let Some(Gate::Unsupported(message)) =
            classify(&with_ref("approval.tekton.dev/v2", "Approval", ""))
        else {
            panic!("expected unsupported");
        };
        assert_eq!(
            message,
            "unsupported version `approval.tekton.dev/v2`: this controller serves approval.tekton.dev/v1alpha1 (kind Approval)"
        );
        let Some(Gate::Unsupported(message)) =
            classify(&with_ref("approval.tekton.dev/v1alpha1", "Vote", ""))
        else {
            panic!("expected unsupported");
        };
        assert_eq!(
            message,
            "unsupported kind `Vote` in approval.tekton.dev/v1alpha1: the only kind is Approval"
        );
    }

    #[test]
    fn a_named_policy_is_resolved_from_the_lookup() {
        let spec = with_ref("approval.tekton.dev/v1alpha1", "Approval", "production");
        let policy_spec = json!({"approvers": ["group:sre"], "minApprovals": 2, "timeout": "2h"});
        let policy = resolve(
            &Gate::Named("production"),
            &spec,
            "ci",
            PolicyLookup::Found(&policy_spec),
        )
        .unwrap();
        assert_eq!(policy.min_approvals, 2);
        assert_eq!(policy.timeout, Duration::from_secs(7200));
        assert_eq!(policy.policy.as_deref(), Some("production"));
        let missing = resolve(
            &Gate::Named("production"),
            &spec,
            "ci",
            PolicyLookup::Missing,
        );
        assert_eq!(
            missing.unwrap_err()[0].to_string(),
            "Approval production not found in namespace ci"
        );
    }

    #[test]
    fn a_broken_named_policy_names_itself() {
        let spec = with_ref("approval.tekton.dev/v1alpha1", "Approval", "production");
        let policy_spec = json!({"approvers": ["group:sre"], "onTimeout": "later"});
        let err = resolve(
            &Gate::Named("production"),
            &spec,
            "ci",
            PolicyLookup::Found(&policy_spec),
        )
        .unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "Approval production: `onTimeout` must be one of fail, reject, approve, got `later`"
        );
    }

    #[test]
    fn an_unreadable_run_timeout_is_a_problem() {
        let mut spec = with_ref("approval.tekton.dev/v1alpha1", "Approval", "");
        spec.timeout = Some("forever".into());
        let err = resolve(&Gate::Inline, &spec, "ci", PolicyLookup::NotNeeded).unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "the CustomRun's spec.timeout `forever` is not a duration"
        );
    }
}
