//! A named policy only ever gets stricter through the pipeline. Its owners set what the
//! deadline and a rejection mean and how long approvers have; a pipeline task may ask for
//! more (fail instead of approve on timeout, fail instead of continue on rejection, a
//! deadline that gives an automatic approval later or a failure sooner), never for less.
//!
//! "Stricter" means "harder to get through the gate without the approvers":
//! - `onTimeout`: `approve` -> `reject` -> `fail`;
//! - `onReject`: `continue` -> `fail`;
//! - the deadline: with `onTimeout: approve` a later one (none at all is the strictest),
//!   otherwise an earlier one (none at all is the loosest).

use std::time::Duration;

use super::params::Problem;
use super::policy::{OnReject, OnTimeout};

fn on_timeout_rank(action: OnTimeout) -> u8 {
    match action {
        OnTimeout::Approve => 0,
        OnTimeout::Reject => 1,
        OnTimeout::Fail => 2,
    }
}

fn on_reject_rank(action: OnReject) -> u8 {
    match action {
        OnReject::Continue => 0,
        OnReject::Fail => 1,
    }
}

/// `onTimeout` of a named gate: the param's if it is at least as strict as the policy's.
pub fn on_timeout(
    policy_name: &str,
    policy: OnTimeout,
    param: Option<OnTimeout>,
) -> Result<OnTimeout, Problem> {
    match param {
        None => Ok(policy),
        Some(param) if on_timeout_rank(param) >= on_timeout_rank(policy) => Ok(param),
        Some(param) => Err(Problem::Loosens {
            setting: "onTimeout",
            value: on_timeout_name(param),
            policy: policy_name.to_string(),
            policy_value: on_timeout_name(policy),
            order: "approve -> reject -> fail",
        }),
    }
}

/// `onReject` of a named gate: the param's if it is at least as strict as the policy's.
pub fn on_reject(
    policy_name: &str,
    policy: OnReject,
    param: Option<OnReject>,
) -> Result<OnReject, Problem> {
    match param {
        None => Ok(policy),
        Some(param) if on_reject_rank(param) >= on_reject_rank(policy) => Ok(param),
        Some(param) => Err(Problem::Loosens {
            setting: "onReject",
            value: on_reject_name(param),
            policy: policy_name.to_string(),
            policy_value: on_reject_name(policy),
            order: "continue -> fail",
        }),
    }
}

/// The timeout of a named gate, from the policy's `timeout` and the CustomRun's
/// `spec.timeout`, given the `onTimeout` in force: the stricter of the two.
///
/// Never an error: Tekton fills `spec.timeout` from the pipeline task's `timeout`, from
/// `taskRunSpecs`, or from the PipelineRun's blanket `timeouts.tasks`, and the CustomRun
/// does not say which. A blanket setting is no attack, so failing the gate for it would
/// break pipelines that did nothing wrong; taking the stricter value means a looser one
/// never takes effect, whichever way it came. `None` when neither is set.
pub fn timeout(
    policy: Option<Duration>,
    run: Option<Duration>,
    on_timeout: OnTimeout,
) -> Option<Duration> {
    let (policy, run) = match (policy, run) {
        (Some(policy), Some(run)) => (policy, run),
        (one, other) => return one.or(other),
    };
    // Zero means no deadline: as a number it must sort after every real deadline.
    let key = |d: Duration| if d.is_zero() { Duration::MAX } else { d };
    Some(match on_timeout {
        OnTimeout::Approve => std::cmp::max_by_key(policy, run, |d| key(*d)),
        OnTimeout::Reject | OnTimeout::Fail => std::cmp::min_by_key(policy, run, |d| key(*d)),
    })
}

fn on_timeout_name(action: OnTimeout) -> &'static str {
    match action {
        OnTimeout::Approve => "approve",
        OnTimeout::Reject => "reject",
        OnTimeout::Fail => "fail",
    }
}

fn on_reject_name(action: OnReject) -> &'static str {
    match action {
        OnReject::Continue => "continue",
        OnReject::Fail => "fail",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const NONE: Duration = Duration::ZERO;

    #[test]
    fn on_timeout_params_may_only_tighten_a_policy() {
        use OnTimeout::*;
        // policy x param -> the value in force, or the loosening named
        let table = [
            (Approve, None, Ok(Approve)),
            (Approve, Some(Approve), Ok(Approve)),
            (Approve, Some(Reject), Ok(Reject)),
            (Approve, Some(Fail), Ok(Fail)),
            (Reject, None, Ok(Reject)),
            (Reject, Some(Approve), Err("approve")),
            (Reject, Some(Reject), Ok(Reject)),
            (Reject, Some(Fail), Ok(Fail)),
            (Fail, None, Ok(Fail)),
            (Fail, Some(Approve), Err("approve")),
            (Fail, Some(Reject), Err("reject")),
            (Fail, Some(Fail), Ok(Fail)),
        ];
        for (policy, param, expected) in table {
            let got = on_timeout("production", policy, param);
            match expected {
                Ok(value) => assert_eq!(got, Ok(value), "{policy:?} x {param:?}"),
                Err(value) => assert_eq!(
                    got.unwrap_err().to_string(),
                    format!(
                        "param `onTimeout: {value}` would loosen Approval policy `production` \
                         (onTimeout: {}): params may only make a policy stricter (onTimeout \
                         approve -> reject -> fail); remove the param or ask the policy's owners",
                        on_timeout_name(policy)
                    ),
                    "{policy:?} x {param:?}"
                ),
            }
        }
    }

    #[test]
    fn on_reject_params_may_only_tighten_a_policy() {
        use OnReject::*;
        let table = [
            (Continue, None, Some(Continue)),
            (Continue, Some(Continue), Some(Continue)),
            (Continue, Some(Fail), Some(Fail)),
            (Fail, None, Some(Fail)),
            (Fail, Some(Continue), None),
            (Fail, Some(Fail), Some(Fail)),
        ];
        for (policy, param, expected) in table {
            let got = on_reject("production", policy, param);
            match expected {
                Some(value) => assert_eq!(got, Ok(value), "{policy:?} x {param:?}"),
                None => assert_eq!(
                    got.unwrap_err().to_string(),
                    "param `onReject: continue` would loosen Approval policy `production` \
                     (onReject: fail): params may only make a policy stricter (onReject \
                     continue -> fail); remove the param or ask the policy's owners"
                ),
            }
        }
    }

    #[test]
    fn the_stricter_timeout_wins_by_what_the_deadline_means() {
        use OnTimeout::*;
        let s = Duration::from_secs;
        // (policy, run, onTimeout) -> timeout in force
        let table = [
            // An automatic approval: later is stricter, none is strictest.
            (Some(24 * HOUR), Some(s(3)), Approve, Some(24 * HOUR)),
            (Some(HOUR), Some(48 * HOUR), Approve, Some(48 * HOUR)),
            (Some(HOUR), Some(NONE), Approve, Some(NONE)),
            (Some(NONE), Some(s(3)), Approve, Some(NONE)),
            // A failure or rejection: sooner is stricter, none is loosest.
            (Some(HOUR), Some(48 * HOUR), Fail, Some(HOUR)),
            (Some(24 * HOUR), Some(s(3)), Fail, Some(s(3))),
            (Some(HOUR), Some(NONE), Reject, Some(HOUR)),
            (Some(NONE), Some(s(3)), Reject, Some(s(3))),
            (Some(HOUR), Some(s(60)), Reject, Some(s(60))),
            // One side unset: the other.
            (None, Some(s(3)), Approve, Some(s(3))),
            (Some(HOUR), None, Fail, Some(HOUR)),
            (None, None, Fail, None),
        ];
        for (policy, run, on_timeout, expected) in table {
            assert_eq!(
                timeout(policy, run, on_timeout),
                expected,
                "policy {policy:?}, run {run:?}, onTimeout {on_timeout:?}"
            );
        }
    }
}
