//! Reading a gate's settings from params, an embedded spec or a named policy, and turning
//! them into a [`Policy`]. Every mistake a pipeline author can make is a [`Problem`] whose
//! message says what to fix: a typo must never silently mean a weaker gate.

use std::time::Duration;

use serde_json::Value;

use super::eligibility::{Approver, Approvers};
use super::inputs::{self, Input};
use super::policy::{DEFAULT_TIMEOUT, OnReject, OnSupersede, OnTimeout, Policy};
use super::tighten;
use super::window::Window;
use crate::api::time::parse_go_duration;
use crate::api::{Param, ParamValue};

/// The settings a pipeline author can write, with their migration aliases.
const SETTINGS: [(&str, Setting); 11] = [
    ("approvers", Setting::Approvers),
    ("minApprovals", Setting::MinApprovals),
    ("message", Setting::Message),
    ("onTimeout", Setting::OnTimeout),
    ("onReject", Setting::OnReject),
    ("allowSelfApproval", Setting::AllowSelfApproval),
    ("inputs", Setting::Inputs),
    ("supersede", Setting::Supersede),
    ("supersedeKey", Setting::SupersedeKey),
    ("onSupersede", Setting::OnSupersede),
    ("notify", Setting::Notify),
];
/// Names OpenShift's manual-approval-gate uses for the same settings.
const ALIASES: [(&str, Setting); 2] = [
    ("numberOfApprovalsRequired", Setting::MinApprovals),
    ("description", Setting::Message),
];
/// Fields only a spec (embedded or an `Approval` object) has.
const SPEC_ONLY: [&str; 2] = ["timeout", "approvalWindow"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    Approvers,
    MinApprovals,
    Message,
    OnTimeout,
    OnReject,
    AllowSelfApproval,
    Inputs,
    Supersede,
    SupersedeKey,
    OnSupersede,
    Notify,
}

impl Setting {
    fn name(self) -> &'static str {
        SETTINGS
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or_default()
    }
}

/// Something wrong with a gate's settings; the gate fails with `InvalidApproval` and this
/// message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A param or spec field we do not know.
    #[error("unknown {place} `{name}`; {}", suggestion_text(.suggestion))]
    Unknown {
        /// `param` or `spec field`.
        place: &'static str,
        /// What was written.
        name: String,
        /// The closest known name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A notification sink name that cannot be one.
    #[error(
        "`notify` entry `{0}` is not a sink name: sinks are named with lowercase letters, \
         digits and `-` (e.g. `release-slack`)"
    )]
    InvalidSinkName(String),
    /// No approvers at all.
    #[error(
        "`approvers` is required: list user names or `group:<name>` entries, \
         e.g. [\"alice\", \"group:release-managers\"]"
    )]
    MissingApprovers,
    /// An entry such as `""` or `group:`.
    #[error("approver entry `{0}` has no name: write a user name or `group:<name>`")]
    EmptyApprover(String),
    /// minApprovals that is not a whole number >= 1.
    #[error("`minApprovals` must be a whole number of at least 1, got `{0}`")]
    InvalidMinApprovals(String),
    /// More approvals required than users who could ever give them.
    #[error(
        "`minApprovals` is {required} but only {listed} user{s} {are} listed ({users}) and no \
         group: the gate could never be approved; lower minApprovals or add approvers",
        s = if *.listed == 1 { "" } else { "s" },
        are = if *.listed == 1 { "is" } else { "are" }
    )]
    UnreachableQuorum {
        /// minApprovals.
        required: u32,
        /// How many users are listed.
        listed: usize,
        /// The listed users.
        users: String,
    },
    /// A value outside an enum.
    #[error("`{name}` must be one of {allowed}, got `{value}`")]
    InvalidChoice {
        /// The setting.
        name: &'static str,
        /// What was written.
        value: String,
        /// The accepted values.
        allowed: &'static str,
    },
    /// A string setting given an array or object, or similar.
    #[error("`{name}` must be {expected}, got {got}")]
    WrongType {
        /// The setting.
        name: String,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        got: &'static str,
    },
    /// The same setting twice (a param repeated, or a name and its alias).
    #[error("`{first}` and `{second}` set the same thing: keep one")]
    Repeated {
        /// One name.
        first: String,
        /// The other name.
        second: String,
    },
    /// Set both in params and in the embedded spec.
    #[error("`{0}` is set both in params and in the embedded spec: set it in one place")]
    SetTwice(&'static str),
    /// Params of a named policy gate trying to change who decides.
    #[error(
        "param `{param}` cannot override Approval policy `{policy}`: its approvers, \
         minApprovals and allowSelfApproval are set by the policy's owners; remove the param"
    )]
    PolicyOverride {
        /// The param.
        param: String,
        /// The policy's name.
        policy: String,
    },
    /// Params of a named policy gate trying to make it looser (see [`super::tighten`]).
    #[error(
        "param `{setting}: {value}` would loosen Approval policy `{policy}` \
         ({setting}: {policy_value}): params may only make a policy stricter ({setting} \
         {order}); remove the param or ask the policy's owners"
    )]
    Loosens {
        /// `onTimeout` or `onReject`.
        setting: &'static str,
        /// What the param asks for.
        value: &'static str,
        /// The policy's name.
        policy: String,
        /// What the policy says.
        policy_value: &'static str,
        /// From loosest to strictest.
        order: &'static str,
    },
    /// A named policy that does not exist.
    #[error("Approval {name} not found in namespace {namespace}")]
    PolicyNotFound {
        /// The policy's name.
        name: String,
        /// The gate's namespace.
        namespace: String,
    },
    /// A spec `timeout` that is not a duration.
    #[error("`timeout`: {0}")]
    InvalidTimeout(String),
    /// An `approvalWindow` that cannot be read.
    #[error("`approvalWindow`: {0}")]
    InvalidWindow(String),
    /// `inputs` that cannot be read or are inconsistent.
    #[error("`inputs`: {0}")]
    InvalidInputs(String),
    /// Params of a named policy gate setting what the policy already sets (inputs,
    /// supersession).
    #[error(
        "param `{param}` cannot replace what Approval policy `{policy}` sets: remove the param \
         (the policy's owners decide it)"
    )]
    SetByPolicy {
        /// The param.
        param: &'static str,
        /// The policy's name.
        policy: String,
    },
    /// `spec.timeout` of the CustomRun is not a duration.
    #[error("the CustomRun's spec.timeout `{0}` is not a duration")]
    InvalidRunTimeout(String),
    /// Our group, but a version or kind this controller does not serve.
    #[error("{0}")]
    Unsupported(String),
    /// A problem inside a named policy object: its owners must fix it.
    #[error("Approval {policy}: {problem}")]
    InPolicy {
        /// The policy's name.
        policy: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The embedded spec is not an object.
    #[error("the embedded Approval spec must be an object with the Approval fields, got {0}")]
    SpecNotObject(&'static str),
}

fn suggestion_text(suggestion: &Option<&'static str>) -> String {
    match suggestion {
        Some(name) => format!("did you mean `{name}`?"),
        None => format!(
            "known: {}",
            SETTINGS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Settings as written, before defaults; `None` means not set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    approvers: Option<Approvers>,
    min_approvals: Option<u32>,
    message: Option<String>,
    on_timeout: Option<OnTimeout>,
    on_reject: Option<OnReject>,
    timeout: Option<Duration>,
    allow_self_approval: Option<bool>,
    approval_window: Option<Window>,
    inputs: Option<Vec<Input>>,
    supersede: Option<bool>,
    supersede_key: Option<String>,
    on_supersede: Option<OnSupersede>,
    notify: Option<Vec<String>>,
}

/// A value from a param (strings and arrays) or a spec field (any JSON).
enum Raw<'a> {
    Param(&'a ParamValue),
    Json(&'a Value),
}

impl Raw<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Raw::Param(ParamValue::String(_)) | Raw::Json(Value::String(_)) => "a string",
            Raw::Param(ParamValue::Array(_)) | Raw::Json(Value::Array(_)) => "an array",
            Raw::Param(ParamValue::Object(_)) | Raw::Json(Value::Object(_)) => "an object",
            Raw::Json(Value::Number(_)) => "a number",
            Raw::Json(Value::Bool(_)) => "a boolean",
            Raw::Json(Value::Null) => "null",
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Raw::Param(ParamValue::String(s)) | Raw::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

impl Settings {
    /// Reads params; unknown, repeated or ill-typed params are problems.
    pub fn from_params(params: &[Param]) -> (Self, Vec<Problem>) {
        let mut reader = Reader::new("param");
        for param in params {
            reader.read(&param.name, Raw::Param(&param.value));
        }
        reader.finish()
    }

    /// Reads a spec object (embedded in the CustomRun, or an `Approval` object's spec).
    pub fn from_spec(spec: &Value) -> (Self, Vec<Problem>) {
        let Value::Object(fields) = spec else {
            return (
                Self::default(),
                vec![Problem::SpecNotObject(Raw::Json(spec).kind())],
            );
        };
        let mut reader = Reader::new("spec field");
        for (name, value) in fields {
            reader.read(name, Raw::Json(value));
        }
        reader.finish()
    }

    /// The approvers, if set.
    pub fn approvers(&self) -> Option<&Approvers> {
        self.approvers.as_ref()
    }

    /// The names set here that only a policy's owners may set.
    fn governance_fields(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.approvers.is_some() {
            names.push("approvers");
        }
        if self.min_approvals.is_some() {
            names.push("minApprovals");
        }
        // Whether the requester may wave their own run through is the owners' call too.
        if self.allow_self_approval.is_some() {
            names.push("allowSelfApproval");
        }
        names
    }

    /// Combines params with an embedded spec: both come from the pipeline author, so a field
    /// may be set in either, but not both (which of the two would win is not obvious).
    pub fn merge_embedded(self, spec: Settings) -> (Self, Vec<Problem>) {
        let mut problems = Vec::new();
        macro_rules! one_of {
            ($field:ident, $name:literal) => {
                match (self.$field, spec.$field) {
                    (Some(_), Some(_)) => {
                        problems.push(Problem::SetTwice($name));
                        None
                    }
                    (a, b) => a.or(b),
                }
            };
        }
        let merged = Settings {
            approvers: one_of!(approvers, "approvers"),
            min_approvals: one_of!(min_approvals, "minApprovals"),
            message: one_of!(message, "message"),
            on_timeout: one_of!(on_timeout, "onTimeout"),
            on_reject: one_of!(on_reject, "onReject"),
            timeout: one_of!(timeout, "timeout"),
            allow_self_approval: one_of!(allow_self_approval, "allowSelfApproval"),
            approval_window: one_of!(approval_window, "approvalWindow"),
            inputs: one_of!(inputs, "inputs"),
            supersede: one_of!(supersede, "supersede"),
            supersede_key: one_of!(supersede_key, "supersedeKey"),
            on_supersede: one_of!(on_supersede, "onSupersede"),
            notify: one_of!(notify, "notify"),
        };
        (merged, problems)
    }

    /// Lays params over a named policy: params may set the message, and make what the
    /// deadline and a rejection mean stricter ([`tighten`]), never looser; never who decides.
    pub fn over_policy(self, policy_name: &str, policy: Settings) -> (Self, Vec<Problem>) {
        let mut problems: Vec<Problem> = self
            .governance_fields()
            .into_iter()
            .map(|param| Problem::PolicyOverride {
                param: param.to_string(),
                policy: policy_name.to_string(),
            })
            .collect();
        let on_timeout = tighten::on_timeout(
            policy_name,
            policy.on_timeout.unwrap_or_default(),
            self.on_timeout,
        )
        .map_err(|p| problems.push(p))
        .ok();
        let on_reject = tighten::on_reject(
            policy_name,
            policy.on_reject.unwrap_or_default(),
            self.on_reject,
        )
        .map_err(|p| problems.push(p))
        .ok();
        let merged = Settings {
            approvers: policy.approvers,
            min_approvals: policy.min_approvals,
            message: self.message.or(policy.message),
            on_timeout,
            on_reject,
            timeout: policy.timeout,
            allow_self_approval: policy.allow_self_approval,
            // The window is the policy's: params cannot name one (it is a spec field).
            approval_window: policy.approval_window,
            inputs: policys_unless_unset(
                &mut problems,
                policy_name,
                "inputs",
                policy.inputs,
                self.inputs,
            ),
            supersede: policys_unless_unset(
                &mut problems,
                policy_name,
                "supersede",
                policy.supersede,
                self.supersede,
            ),
            supersede_key: policys_unless_unset(
                &mut problems,
                policy_name,
                "supersedeKey",
                policy.supersede_key,
                self.supersede_key,
            ),
            on_supersede: policys_unless_unset(
                &mut problems,
                policy_name,
                "onSupersede",
                policy.on_supersede,
                self.on_supersede,
            ),
            notify: policys_unless_unset(
                &mut problems,
                policy_name,
                "notify",
                policy.notify,
                self.notify,
            ),
        };
        (merged, problems)
    }

    /// Applies defaults and checks the whole.
    ///
    /// (A param may set what a named policy leaves unset among inputs and supersession, but
    /// never replace what it sets: see [`policys_unless_unset`].) `run_timeout` is the CustomRun's
    /// `spec.timeout`: for a named policy the stricter of it and the policy's `timeout` is in
    /// force ([`tighten::timeout`]); otherwise it wins over an embedded spec's `timeout`.
    pub fn into_policy(
        self,
        run_timeout: Option<Duration>,
        policy_name: Option<&str>,
    ) -> Result<Policy, Vec<Problem>> {
        let approvers = match self.approvers {
            Some(list) if !list.is_empty() => list,
            _ => return Err(vec![Problem::MissingApprovers]),
        };
        let min_approvals = self.min_approvals.unwrap_or(1);
        let on_timeout = self.on_timeout.unwrap_or_default();
        if !approvers.has_groups() {
            let users: Vec<&str> = approvers.users().collect();
            if users.len() < min_approvals as usize {
                return Err(vec![Problem::UnreachableQuorum {
                    required: min_approvals,
                    listed: users.len(),
                    users: users.join(", "),
                }]);
            }
        }
        Ok(Policy {
            approvers,
            min_approvals,
            message: self.message.unwrap_or_default(),
            on_timeout,
            on_reject: self.on_reject.unwrap_or_default(),
            timeout: match policy_name {
                Some(_) => tighten::timeout(self.timeout, run_timeout, on_timeout),
                None => run_timeout.or(self.timeout),
            }
            .unwrap_or(DEFAULT_TIMEOUT),
            // A named policy's owners are not the run's author: by default the requester
            // may not approve. An inline gate's author chose the approvers anyway, so
            // forbidding it there is opt-in.
            allow_self_approval: self.allow_self_approval.unwrap_or(policy_name.is_none()),
            policy: policy_name.map(str::to_string),
            requested_by: None,
            approval_window: self.approval_window,
            inputs: self.inputs.unwrap_or_default(),
            supersede: self.supersede.unwrap_or(false),
            supersede_key: self.supersede_key,
            on_supersede: self.on_supersede.unwrap_or_default(),
            notify: self.notify.unwrap_or_default(),
            origin: None,
        })
    }
}

/// A named policy's value of a setting params may add but not replace.
fn policys_unless_unset<T>(
    problems: &mut Vec<Problem>,
    policy_name: &str,
    param: &'static str,
    policy: Option<T>,
    params: Option<T>,
) -> Option<T> {
    match (policy, params) {
        (Some(_), Some(_)) => {
            problems.push(Problem::SetByPolicy {
                param,
                policy: policy_name.to_string(),
            });
            None
        }
        (policy, params) => policy.or(params),
    }
}

/// Collects settings and problems while reading one source.
struct Reader {
    place: &'static str,
    settings: Settings,
    seen: Vec<(Setting, String)>,
    problems: Vec<Problem>,
}

impl Reader {
    fn new(place: &'static str) -> Self {
        Self {
            place,
            settings: Settings::default(),
            seen: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn finish(self) -> (Settings, Vec<Problem>) {
        (self.settings, self.problems)
    }

    fn read(&mut self, name: &str, raw: Raw<'_>) {
        if self.place == "spec field" && SPEC_ONLY.contains(&name) {
            match name {
                "timeout" => self.read_timeout(raw),
                _ => self.read_window(raw),
            }
            return;
        }
        let Some(setting) = lookup(name) else {
            self.problems.push(Problem::Unknown {
                place: self.place,
                name: name.to_string(),
                suggestion: closest_name(name),
            });
            return;
        };
        if let Some((_, first)) = self.seen.iter().find(|(s, _)| *s == setting) {
            self.problems.push(Problem::Repeated {
                first: first.clone(),
                second: name.to_string(),
            });
            return;
        }
        self.seen.push((setting, name.to_string()));
        if let Err(problem) = self.apply(setting, name, &raw) {
            self.problems.push(problem);
        }
    }

    fn read_window(&mut self, raw: Raw<'_>) {
        let Raw::Json(value) = raw else {
            return;
        };
        match serde_json::from_value::<Window>(value.clone()) {
            Ok(window) => self.settings.approval_window = Some(window),
            Err(e) => self.problems.push(Problem::InvalidWindow(e.to_string())),
        }
    }

    fn read_timeout(&mut self, raw: Raw<'_>) {
        match raw.as_str().map(parse_go_duration) {
            Some(Ok(timeout)) => self.settings.timeout = Some(timeout),
            Some(Err(e)) => self.problems.push(Problem::InvalidTimeout(e.to_string())),
            None => self
                .problems
                .push(wrong_type("timeout", "a duration string", &raw)),
        }
    }

    fn apply(&mut self, setting: Setting, name: &str, raw: &Raw<'_>) -> Result<(), Problem> {
        let settings = &mut self.settings;
        match setting {
            Setting::Approvers => settings.approvers = Some(read_approvers(raw)?),
            Setting::MinApprovals => settings.min_approvals = Some(read_min_approvals(name, raw)?),
            Setting::Message => {
                let text = raw
                    .as_str()
                    .ok_or_else(|| wrong_type(name, "a string", raw))?;
                settings.message = Some(text.to_string());
            }
            Setting::OnTimeout => {
                let allowed = "fail, reject, approve";
                settings.on_timeout = Some(match choice(name, raw)? {
                    "fail" => OnTimeout::Fail,
                    "reject" => OnTimeout::Reject,
                    "approve" => OnTimeout::Approve,
                    other => return Err(invalid_choice("onTimeout", other, allowed)),
                });
            }
            Setting::AllowSelfApproval => {
                settings.allow_self_approval = Some(match raw {
                    Raw::Json(Value::Bool(b)) => *b,
                    _ => match choice(name, raw)? {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(invalid_choice("allowSelfApproval", other, "true, false"));
                        }
                    },
                });
            }
            Setting::Inputs => settings.inputs = Some(read_inputs(raw)?),
            Setting::Supersede => {
                settings.supersede = Some(match raw {
                    Raw::Json(Value::Bool(b)) => *b,
                    _ => match choice(name, raw)? {
                        "true" => true,
                        "false" => false,
                        other => return Err(invalid_choice("supersede", other, "true, false")),
                    },
                });
            }
            Setting::SupersedeKey => {
                let key = choice(name, raw)?;
                if key.is_empty() {
                    return Err(wrong_type(name, "a non-empty string", raw));
                }
                settings.supersede_key = Some(key.to_string());
            }
            Setting::OnSupersede => {
                settings.on_supersede = Some(match choice(name, raw)? {
                    "fail" => OnSupersede::Fail,
                    "continue" => OnSupersede::Continue,
                    other => return Err(invalid_choice("onSupersede", other, "fail, continue")),
                });
            }
            Setting::Notify => settings.notify = Some(read_sink_names(name, raw)?),
            Setting::OnReject => {
                let allowed = "fail, continue";
                settings.on_reject = Some(match choice(name, raw)? {
                    "fail" => OnReject::Fail,
                    "continue" => OnReject::Continue,
                    other => return Err(invalid_choice("onReject", other, allowed)),
                });
            }
        }
        Ok(())
    }
}

fn lookup(name: &str) -> Option<Setting> {
    SETTINGS
        .iter()
        .chain(ALIASES.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

fn wrong_type(name: &str, expected: &'static str, raw: &Raw<'_>) -> Problem {
    Problem::WrongType {
        name: name.to_string(),
        expected,
        got: raw.kind(),
    }
}

fn invalid_choice(name: &'static str, value: &str, allowed: &'static str) -> Problem {
    Problem::InvalidChoice {
        name,
        value: value.to_string(),
        allowed,
    }
}

fn choice<'a>(name: &str, raw: &'a Raw<'_>) -> Result<&'a str, Problem> {
    let text = raw
        .as_str()
        .ok_or_else(|| wrong_type(name, "a string", raw))?;
    Ok(text.trim())
}

fn read_approvers(raw: &Raw<'_>) -> Result<Approvers, Problem> {
    let entries: Vec<&str> = match raw {
        Raw::Param(ParamValue::Array(items)) => items.iter().map(String::as_str).collect(),
        Raw::Json(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| wrong_type("approvers", "a list of strings", &Raw::Json(item)))
            })
            .collect::<Result<_, _>>()?,
        // A comma-separated string: what manual-approval-gate and `$(params.x)` of a
        // string param give.
        _ => match raw.as_str() {
            Some(text) => text.split(',').filter(|e| !e.trim().is_empty()).collect(),
            None => {
                return Err(wrong_type(
                    "approvers",
                    "a list or a comma-separated string",
                    raw,
                ));
            }
        },
    };
    let approvers = entries
        .iter()
        .map(|entry| {
            Approver::parse(entry).ok_or_else(|| Problem::EmptyApprover(entry.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Approvers::new(approvers))
}

/// A list in a spec; in a param, a string holding a YAML (or JSON) list.
fn read_inputs(raw: &Raw<'_>) -> Result<Vec<Input>, Problem> {
    let inputs: Vec<Input> = match raw {
        Raw::Json(value @ Value::Array(_)) => serde_json::from_value((*value).clone())
            .map_err(|e| Problem::InvalidInputs(e.to_string()))?,
        Raw::Param(ParamValue::String(text)) => serde_saphyr::from_str(text).map_err(|e| {
            let e = e.to_string();
            Problem::InvalidInputs(format!(
                "the param must hold a YAML list of {{name, description, choices, default, \
                 required, pattern}} ({})",
                e.lines().next().unwrap_or_default()
            ))
        })?,
        _ => {
            return Err(wrong_type(
                "inputs",
                "a list (a YAML string in a param)",
                raw,
            ));
        }
    };
    inputs::validate(&inputs).map_err(Problem::InvalidInputs)?;
    Ok(inputs)
}

/// Sink names: an array, or a string of names separated by commas (a param is usually a
/// string). Whether each sink exists is the notifier's to say: sinks are the platform team's
/// configuration, and may change while gates wait.
fn read_sink_names(name: &str, raw: &Raw<'_>) -> Result<Vec<String>, Problem> {
    let names: Vec<String> = match raw {
        Raw::Param(ParamValue::Array(items)) => items.clone(),
        Raw::Json(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| wrong_type(name, "a list of sink names", raw))?,
        _ => raw
            .as_str()
            .ok_or_else(|| wrong_type(name, "a list of sink names", raw))?
            .split(',')
            .map(|part| part.trim().to_string())
            .filter(|part| !part.is_empty())
            .collect(),
    };
    match names.iter().find(|n| !is_sink_name(n)) {
        Some(bad) => Err(Problem::InvalidSinkName(bad.clone())),
        None => Ok(names),
    }
}

/// A sink's name as the notification configuration spells them: a DNS label.
pub fn is_sink_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn read_min_approvals(name: &str, raw: &Raw<'_>) -> Result<u32, Problem> {
    let text = match raw {
        Raw::Json(Value::Number(n)) => n.to_string(),
        _ => raw
            .as_str()
            .ok_or_else(|| wrong_type(name, "a whole number", raw))?
            .trim()
            .to_string(),
    };
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(Problem::InvalidMinApprovals(text)),
    }
}

/// The known name closest to a typo, if it is plausibly what was meant.
fn closest_name(name: &str) -> Option<&'static str> {
    let lowered = name.to_ascii_lowercase();
    SETTINGS
        .iter()
        .chain(ALIASES.iter())
        .map(|(known, setting)| {
            (
                edit_distance(&lowered, &known.to_ascii_lowercase()),
                setting.name(),
            )
        })
        .filter(|(distance, known)| *distance <= (known.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param(name: &str, value: Value) -> Param {
        Param {
            name: name.into(),
            value: serde_json::from_value(value).unwrap(),
        }
    }

    fn policy_from(params: &[Param]) -> Result<Policy, Vec<Problem>> {
        let (settings, problems) = Settings::from_params(params);
        if !problems.is_empty() {
            return Err(problems);
        }
        settings.into_policy(None, None)
    }

    fn messages(problems: Vec<Problem>) -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn approvers_may_be_an_array_or_a_comma_separated_string() {
        let from_array = policy_from(&[param("approvers", json!(["alice", "group:sre"]))]).unwrap();
        let from_string = policy_from(&[param("approvers", json!("alice, group:sre,"))]).unwrap();
        assert_eq!(from_array.approvers, from_string.approvers);
        assert_eq!(from_array.approvers.to_string(), "alice, group:sre");
    }

    #[test]
    fn defaults_apply_when_only_approvers_are_given() {
        let policy = policy_from(&[param("approvers", json!(["alice"]))]).unwrap();
        assert_eq!(policy.min_approvals, 1);
        assert_eq!(policy.message, "");
        assert_eq!(policy.on_timeout, OnTimeout::Fail);
        assert_eq!(policy.on_reject, OnReject::Fail);
        assert_eq!(policy.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn every_setting_is_read() {
        let policy = policy_from(&[
            param("approvers", json!(["alice", "bob"])),
            param("minApprovals", json!("2")),
            param("message", json!("Ship?")),
            param("onTimeout", json!("approve")),
            param("onReject", json!("continue")),
        ])
        .unwrap();
        assert_eq!(policy.min_approvals, 2);
        assert_eq!(policy.message, "Ship?");
        assert_eq!(policy.on_timeout, OnTimeout::Approve);
        assert_eq!(policy.on_reject, OnReject::Continue);
        let reject = policy_from(&[
            param("approvers", json!("alice")),
            param("onTimeout", json!("reject")),
            param("onReject", json!("fail")),
        ])
        .unwrap();
        assert_eq!(reject.on_timeout, OnTimeout::Reject);
        assert_eq!(reject.on_reject, OnReject::Fail);
    }

    #[test]
    fn manual_approval_gate_aliases_mean_the_same() {
        let policy = policy_from(&[
            param("approvers", json!(["alice", "bob"])),
            param("numberOfApprovalsRequired", json!("2")),
            param("description", json!("Deploy?")),
        ])
        .unwrap();
        assert_eq!(policy.min_approvals, 2);
        assert_eq!(policy.message, "Deploy?");
    }

    #[test]
    fn a_name_and_its_alias_together_are_an_error() {
        let err = policy_from(&[
            param("approvers", json!(["alice", "bob"])),
            param("minApprovals", json!("1")),
            param("numberOfApprovalsRequired", json!("2")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["`minApprovals` and `numberOfApprovalsRequired` set the same thing: keep one"]
        );
    }

    #[test]
    fn a_typo_is_an_error_with_a_suggestion_never_a_default() {
        let err = policy_from(&[
            param("approvers", json!(["alice", "bob"])),
            param("minApproval", json!("2")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["unknown param `minApproval`; did you mean `minApprovals`?"]
        );
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("ontimeout", json!("fail")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["unknown param `ontimeout`; did you mean `onTimeout`?"]
        );
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("approver", json!("b")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["unknown param `approver`; did you mean `approvers`?"]
        );
    }

    #[test]
    fn an_unknown_name_far_from_any_lists_the_known_ones() {
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("colour", json!("blue")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            [
                "unknown param `colour`; known: approvers, minApprovals, message, onTimeout, onReject, allowSelfApproval, inputs, supersede, supersedeKey, onSupersede, notify"
            ]
        );
    }

    #[test]
    fn missing_or_empty_approvers_are_an_error() {
        for params in [
            vec![],
            vec![param("approvers", json!([]))],
            vec![param("approvers", json!(" , "))],
        ] {
            let err = policy_from(&params).unwrap_err();
            assert_eq!(
                messages(err),
                [
                    "`approvers` is required: list user names or `group:<name>` entries, e.g. [\"alice\", \"group:release-managers\"]"
                ]
            );
        }
        let err = policy_from(&[param("approvers", json!(["alice", "group:"]))]).unwrap_err();
        assert_eq!(
            messages(err),
            ["approver entry `group:` has no name: write a user name or `group:<name>`"]
        );
    }

    #[test]
    fn min_approvals_must_be_a_whole_number_of_at_least_one() {
        for bad in ["0", "-1", "two", "1.5", ""] {
            let err = policy_from(&[
                param("approvers", json!(["a"])),
                param("minApprovals", json!(bad)),
            ])
            .unwrap_err();
            assert_eq!(
                messages(err),
                [format!(
                    "`minApprovals` must be a whole number of at least 1, got `{bad}`"
                )]
            );
        }
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("minApprovals", json!(["1"])),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["`minApprovals` must be a whole number, got an array"]
        );
    }

    #[test]
    fn min_approvals_above_the_listed_users_is_an_error_unless_a_group_is_listed() {
        let err = policy_from(&[
            param("approvers", json!(["alice", "bob"])),
            param("minApprovals", json!("3")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            [
                "`minApprovals` is 3 but only 2 users are listed (alice, bob) and no group: the gate could never be approved; lower minApprovals or add approvers"
            ]
        );
        let err = policy_from(&[
            param("approvers", json!("alice")),
            param("minApprovals", json!("2")),
        ])
        .unwrap_err();
        assert!(messages(err)[0].contains("only 1 user is listed (alice)"));
        let with_group = policy_from(&[
            param("approvers", json!(["alice", "group:sre"])),
            param("minApprovals", json!("3")),
        ]);
        assert_eq!(with_group.unwrap().min_approvals, 3);
        let exact = policy_from(&[
            param("approvers", json!(["alice", "bob"])),
            param("minApprovals", json!("2")),
        ]);
        assert_eq!(exact.unwrap().min_approvals, 2);
    }

    #[test]
    fn enum_settings_name_the_allowed_values() {
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("onTimeout", json!("aprove")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["`onTimeout` must be one of fail, reject, approve, got `aprove`"]
        );
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("onReject", json!("ignore")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["`onReject` must be one of fail, continue, got `ignore`"]
        );
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("message", json!(["x"])),
        ])
        .unwrap_err();
        assert_eq!(messages(err), ["`message` must be a string, got an array"]);
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("minApproval", json!("2")),
            param("onReject", json!("maybe")),
        ])
        .unwrap_err();
        assert_eq!(err.len(), 2);
    }

    #[test]
    fn a_repeated_param_is_an_error() {
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("approvers", json!(["b"])),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["`approvers` and `approvers` set the same thing: keep one"]
        );
    }

    #[test]
    fn an_embedded_spec_takes_json_numbers_and_a_timeout() {
        let (spec, problems) = Settings::from_spec(&json!({
            "approvers": ["alice", "bob"], "minApprovals": 2, "timeout": "30m"
        }));
        assert!(problems.is_empty());
        let policy = spec.into_policy(None, None).unwrap();
        assert_eq!(policy.min_approvals, 2);
        assert_eq!(policy.timeout, Duration::from_secs(1800));
    }

    #[test]
    fn the_runs_own_timeout_wins_over_the_spec_timeout() {
        let (spec, _) = Settings::from_spec(&json!({"approvers": ["alice"], "timeout": "30m"}));
        let policy = spec
            .into_policy(Some(Duration::from_secs(60)), None)
            .unwrap();
        assert_eq!(policy.timeout, Duration::from_secs(60));
    }

    #[test]
    fn embedded_spec_problems_name_the_field() {
        let (_, problems) = Settings::from_spec(&json!({"aprovers": ["alice"], "timeout": "soon"}));
        assert_eq!(
            messages(problems),
            [
                "unknown spec field `aprovers`; did you mean `approvers`?",
                "`timeout`: invalid duration `soon`: use a Go duration such as `30m`, `1h30m` or `24h` (`0s` for none)"
            ]
        );
        let (_, problems) = Settings::from_spec(&json!(["alice"]));
        assert_eq!(
            messages(problems),
            ["the embedded Approval spec must be an object with the Approval fields, got an array"]
        );
        let (_, problems) = Settings::from_spec(&json!({"approvers": ["alice", 3]}));
        assert_eq!(
            messages(problems),
            ["`approvers` must be a list of strings, got a number"]
        );
    }

    #[test]
    fn timeout_is_not_a_param() {
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("timeout", json!("1h")),
        ])
        .unwrap_err();
        assert!(messages(err)[0].starts_with("unknown param `timeout`"));
    }

    #[test]
    fn a_setting_in_params_and_embedded_spec_is_an_error() {
        let (params, _) = Settings::from_params(&[param("approvers", json!(["a"]))]);
        let (spec, _) = Settings::from_spec(&json!({"approvers": ["b"], "message": "m"}));
        let (merged, problems) = params.merge_embedded(spec);
        assert_eq!(
            messages(problems),
            ["`approvers` is set both in params and in the embedded spec: set it in one place"]
        );
        assert_eq!(merged.message.as_deref(), Some("m"));
    }

    #[test]
    fn params_cannot_widen_a_named_policy() {
        let (policy, _) =
            Settings::from_spec(&json!({"approvers": ["group:sre"], "minApprovals": 2}));
        let (params, _) = Settings::from_params(&[
            param("approvers", json!(["mallory"])),
            param("numberOfApprovalsRequired", json!("1")),
            param("allowSelfApproval", json!("true")),
            param("message", json!("Release v2?")),
        ]);
        let (merged, problems) = params.over_policy("production", policy);
        assert_eq!(
            messages(problems),
            [
                "param `approvers` cannot override Approval policy `production`: its approvers, minApprovals and allowSelfApproval are set by the policy's owners; remove the param",
                "param `minApprovals` cannot override Approval policy `production`: its approvers, minApprovals and allowSelfApproval are set by the policy's owners; remove the param",
                "param `allowSelfApproval` cannot override Approval policy `production`: its approvers, minApprovals and allowSelfApproval are set by the policy's owners; remove the param"
            ]
        );
        let policy = merged.into_policy(None, Some("production")).unwrap();
        assert_eq!(policy.approvers.to_string(), "group:sre");
        assert_eq!(policy.message, "Release v2?");
        assert_eq!(policy.policy.as_deref(), Some("production"));
        assert!(
            !policy.allow_self_approval,
            "a named policy forbids self-approval unless it says otherwise"
        );
    }

    #[test]
    fn params_may_add_inputs_and_supersession_a_named_policy_leaves_unset_but_not_replace_them() {
        let (policy, problems) = Settings::from_spec(&json!({"approvers": ["group:sre"],
            "inputs": [{"name": "target"}], "supersede": true,
            "approvalWindow": {"timeZone": "UTC", "hours": "09:00-17:00"}}));
        assert!(problems.is_empty(), "{problems:?}");
        let (params, _) = Settings::from_params(&[
            param("inputs", json!("[{name: ticket}]")),
            param("supersede", json!("false")),
            param("onSupersede", json!("continue")),
        ]);
        let (merged, problems) = params.over_policy("production", policy);
        assert_eq!(
            messages(problems),
            [
                "param `inputs` cannot replace what Approval policy `production` sets: remove the param (the policy's owners decide it)",
                "param `supersede` cannot replace what Approval policy `production` sets: remove the param (the policy's owners decide it)",
            ]
        );
        let policy = merged.into_policy(None, Some("production")).unwrap();
        assert_eq!(
            policy.on_supersede,
            OnSupersede::Continue,
            "unset by the policy: the param's"
        );
        assert!(
            policy.approval_window.is_some(),
            "the window is the policy's"
        );
    }

    #[test]
    fn notify_names_sinks_and_nothing_else() {
        let listed = |value: Value| {
            policy_from(&[param("approvers", json!(["a"])), param("notify", value)])
                .map(|p| p.notify)
        };
        assert_eq!(
            listed(json!("release-slack, audit")).unwrap(),
            ["release-slack", "audit"]
        );
        assert_eq!(listed(json!(["events"])).unwrap(), ["events"]);
        assert_eq!(listed(json!("")).unwrap(), Vec::<String>::new());
        // A gate can only name what the platform team configured: never a URL or a channel.
        for bad in ["https://evil.example/hook", "#general", "Release", "a b"] {
            let problems = listed(json!(bad)).unwrap_err();
            assert!(
                messages(problems)[0].contains("is not a sink name"),
                "{bad}"
            );
        }
        let (spec, problems) =
            Settings::from_spec(&json!({"approvers": ["a"], "notify": ["audit"]}));
        assert!(problems.is_empty(), "{problems:?}");
        let (params, _) = Settings::from_params(&[param("notify", json!("other"))]);
        let (_, problems) = params.over_policy("production", spec);
        assert_eq!(
            messages(problems),
            [
                "param `notify` cannot replace what Approval policy `production` sets: remove the param (the policy's owners decide it)"
            ]
        );
    }

    #[test]
    fn inputs_are_a_yaml_string_in_params_and_a_list_in_specs() {
        let policy = policy_from(&[
            param("approvers", json!(["a"])),
            param(
                "inputs",
                json!("- name: target\n  choices: [staging, production]\n"),
            ),
        ])
        .unwrap();
        assert_eq!(policy.inputs[0].choices, ["staging", "production"]);
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("inputs", json!(["x"])),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["`inputs` must be a list (a YAML string in a param), got an array"]
        );
        let (_, problems) =
            Settings::from_spec(&json!({"approvers": ["a"], "inputs": [{"name": "a b"}]}));
        assert!(messages(problems)[0].starts_with("`inputs`: input name `a b` must be"));
    }

    #[test]
    fn allow_self_approval_is_a_boolean_string_in_params_and_a_boolean_in_specs() {
        let policy = policy_from(&[
            param("approvers", json!(["a"])),
            param("allowSelfApproval", json!("false")),
        ])
        .unwrap();
        assert!(!policy.allow_self_approval);
        assert!(
            policy_from(&[param("approvers", json!(["a"]))])
                .unwrap()
                .allow_self_approval,
            "inline gates allow it by default"
        );
        let err = policy_from(&[
            param("approvers", json!(["a"])),
            param("allowSelfApproval", json!("maybe")),
        ])
        .unwrap_err();
        assert_eq!(
            messages(err),
            ["`allowSelfApproval` must be one of true, false, got `maybe`"]
        );
        let (spec, problems) =
            Settings::from_spec(&json!({"approvers": ["a"], "allowSelfApproval": true}));
        assert!(problems.is_empty());
        assert!(
            spec.into_policy(None, Some("p"))
                .unwrap()
                .allow_self_approval
        );
    }
}
