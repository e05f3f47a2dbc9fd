//! Our `Approval` CRD (`approval.tekton.dev/v1alpha1`): a named policy that the platform team
//! owns, referenced by gates with `taskRef.name`. The CRD YAML in `config/300-crd.yaml` is
//! generated from these types (`approval-controller crd`); a test fails when it drifts.
//!
//! The controller does not deserialise policies into this type: it reads the raw spec with
//! the same reader as params, so an object written before the schema tightened still fails
//! its gates with a message that says what to fix instead of a decode error.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who may approve, how many must, and what a deadline means, for every gate that names
/// this policy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "approval.tekton.dev",
    version = "v1alpha1",
    kind = "Approval",
    plural = "approvals",
    singular = "approval",
    namespaced,
    doc = "A named approval policy that gates reference with taskRef.name.",
    printcolumn = r#"{"name":"Approvers","type":"string","jsonPath":".spec.approvers","description":"Users and group:<name> entries whose decision counts"}"#,
    printcolumn = r#"{"name":"Min","type":"integer","jsonPath":".spec.minApprovals","description":"Distinct approvals needed"}"#,
    printcolumn = r#"{"name":"Timeout","type":"string","jsonPath":".spec.timeout","description":"Default deadline of a gate"}"#,
    printcolumn = r#"{"name":"Self-Approval","type":"boolean","jsonPath":".spec.allowSelfApproval","description":"Whether the run's requester may approve it"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    /// User names as the API server authenticates them, or `group:<name>` entries.
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub approvers: Vec<String>,
    /// Distinct eligible users who must approve (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_approvals: Option<u32>,
    /// What approvers are asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the deadline means: `fail` (default), `reject` or `approve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["fail", "reject", "approve"]))]
    pub on_timeout: Option<String>,
    /// What a rejection means: `fail` (default) or `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["fail", "continue"]))]
    pub on_reject: Option<String>,
    /// The deadline of a gate whose pipeline task sets no timeout, as a Go duration
    /// (`24h`, `1h30m`); `0s` means none. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub timeout: Option<String>,
    /// Whether the user who started the run may approve it (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_self_approval: Option<bool>,
    /// When approvals take effect: an approval given outside the window is recorded and
    /// takes effect when it opens; a rejection always at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_window: Option<ApprovalWindow>,
    /// Values an approver gives with an approval, published as `input-<name>` results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<ApprovalInput>>,
    /// Whether a newer run waiting at the same gate ends an older waiting one
    /// (`Superseded`); default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersede: Option<bool>,
    /// Which gates supersede each other in a namespace (default: the Pipeline's name and the
    /// pipeline task's, `<pipeline>/<task>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub supersede_key: Option<String>,
    /// What being superseded means: `fail` (default) or `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["fail", "continue"]))]
    pub on_supersede: Option<String>,
    /// Notification sinks to tell when the gate waits, on each decision and when it ends:
    /// names from the platform team's `approval-notifications` ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Vec<String>>,
}

/// Weekdays and hours in a time zone, and blackout dates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalWindow {
    /// An IANA time zone name (`Europe/Berlin`, `UTC`).
    #[schemars(length(min = 1))]
    pub time_zone: String,
    /// `Mon`..`Sun`, or ranges such as `Mon-Fri`; every day when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// `HH:MM-HH:MM` in the time zone (`09:00-17:00`, or `22:00-06:00` across midnight);
    /// all day when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$"))]
    pub hours: Option<String>,
    /// Dates (in the time zone, inclusive) on which no approval takes effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blackouts: Option<Vec<ApprovalBlackout>>,
}

/// A blackout: `from` to `to`, inclusive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalBlackout {
    /// The first date, `YYYY-MM-DD`.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub from: String,
    /// The last date (default: `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub to: Option<String>,
    /// Why, shown to approvers (`year-end freeze`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One input an approver gives with an approval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalInput {
    /// Letters, digits, `-` and `_` (at most 40); the result is `input-<name>`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9]([-A-Za-z0-9_]{0,38}[A-Za-z0-9])?$"))]
    pub name: String,
    /// What to give, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When set, the value must be one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    /// The value when the approver gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Whether an approval must give a value (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// A regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// The CRD manifest as checked in under `config/`, with the header that says how it is made.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let body = serde_json::to_value(Approval::crd()).expect("a CRD serialises");
    format!(
        "# Generated by `approval-controller crd` from src/api/approval.rs: do not edit.\n\
         # `make crd` regenerates it; `cargo test` fails when it drifts from the types.\n{}",
        to_yaml(&body, 0)
    )
}

/// A small YAML emitter for JSON values: the CRD is plain data (maps, lists, strings,
/// numbers, booleans), and emitting it ourselves keeps a YAML crate out of the binary.
fn to_yaml(value: &serde_json::Value, indent: usize) -> String {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::Object(inner) if !inner.is_empty() => {
                        out += &format!("{pad}{key}:\n{}", to_yaml(value, indent + 2));
                    }
                    Value::Array(items) if !items.is_empty() => {
                        out += &format!("{pad}{key}:\n{}", to_yaml(value, indent));
                    }
                    scalar => out += &format!("{pad}{key}: {}\n", scalar_yaml(scalar)),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let nested = to_yaml(item, indent + 2);
                match item {
                    Value::Object(inner) if !inner.is_empty() => {
                        // The first key goes on the dash line, the rest keep their indent.
                        out += &format!("{pad}- {}", &nested[indent + 2..]);
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out += &format!("{pad}-\n{nested}");
                    }
                    scalar => out += &format!("{pad}- {}\n", scalar_yaml(scalar)),
                }
            }
        }
        scalar => out += &format!("{pad}{}\n", scalar_yaml(scalar)),
    }
    out
}

/// A scalar, or an empty map or list, in flow style; strings as JSON strings (valid YAML).
fn scalar_yaml(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) if is_plain(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Strings that YAML reads back as the same string without quotes.
fn is_plain(text: &str) -> bool {
    let reserved = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
    ];
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./<>".contains(c))
        && !text.starts_with(|c: char| c.is_ascii_digit() || "-.<>".contains(c))
        && !reserved.contains(&text.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_crd_matches_the_types() {
        let checked_in = include_str!("../../config/300-crd.yaml");
        assert!(
            checked_in == crd_yaml(),
            "config/300-crd.yaml drifted from src/api/approval.rs: run `make crd` and commit it"
        );
    }

    #[test]
    fn the_schema_validates_what_the_protocol_requires() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(Approval::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["required"], serde_json::json!(["approvers"]));
        assert_eq!(
            spec["properties"]["minApprovals"]["minimum"].as_f64(),
            Some(1.0)
        );
        assert_eq!(spec["properties"]["approvers"]["minItems"], 1);
        assert_eq!(
            spec["properties"]["onTimeout"]["enum"],
            serde_json::json!(["fail", "reject", "approve"])
        );
        assert_eq!(
            spec["properties"]["onReject"]["enum"],
            serde_json::json!(["fail", "continue"])
        );
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["metadata"]["name"], "approvals.approval.tekton.dev");
    }

    #[test]
    fn yaml_of_nested_lists_and_maps_reads_back_as_the_same_json() {
        let value = serde_json::json!({
            "a": [{"b": 1, "c": ["x", "true", "1.0"]}, [], {}],
            "d": {"e": null, "f": "with: colon", "g": false, "h": "group:admins"},
        });
        let yaml = to_yaml(&value, 0);
        assert_eq!(
            yaml,
            "a:\n- b: 1\n  c:\n  - x\n  - \"true\"\n  - \"1.0\"\n- []\n- {}\nd:\n  e: null\n  f: \"with: colon\"\n  g: false\n  h: \"group:admins\"\n"
        );
    }
}
