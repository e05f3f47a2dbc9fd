//! Inputs: values an approver gives with an approval (`target=production`), declared by the
//! gate, checked by the webhook, recorded in the ledger and published as results.
//!
//! With a quorum, all approvals carry the same values: the first approval chooses them, a
//! later one that gives none agrees with it, and one that gives different values is denied.
//! So the values a later task reads are the ones every approver approved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The longest value an approver may give, in bytes: it lives in the gate's annotations and
/// results.
pub const MAX_VALUE_BYTES: usize = 1024;
/// The longest input name: `input-<name>` must be a valid annotation name (63 characters).
pub const MAX_NAME_CHARS: usize = 40;
/// The result (and annotation) of one input is this prefix and its name.
pub const PREFIX: &str = "input-";

/// One input a gate asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    /// Letters, digits, `-` and `_`; the result is `input-<name>`.
    pub name: String,
    /// What to give, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// When set, the value must be one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// The value when the approver gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Whether an approval must give a value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// A regular expression the whole value must match (Rust `regex` syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

impl Input {
    fn matcher(&self) -> Option<Result<regex::Regex, regex::Error>> {
        let pattern = self.pattern.as_deref()?;
        Some(
            regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
                .size_limit(1 << 20)
                .build(),
        )
    }

    /// Why `value` is not acceptable, if it is not.
    fn check(&self, value: &str) -> Result<(), String> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "input `{}` is {} bytes; at most {MAX_VALUE_BYTES} are recorded",
                self.name,
                value.len()
            ));
        }
        if !self.choices.is_empty() && !self.choices.iter().any(|c| c == value) {
            return Err(format!(
                "input `{}` must be one of {}, got `{value}`",
                self.name,
                self.choices.join(", ")
            ));
        }
        if let Some(Ok(matcher)) = self.matcher()
            && !matcher.is_match(value)
        {
            return Err(format!(
                "input `{}` must match `{}`, got `{value}`",
                self.name,
                self.pattern.as_deref().unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// `target=<staging|production>` for messages that say what to give.
    pub fn usage(&self) -> String {
        if self.choices.is_empty() {
            format!("{}=<value>", self.name)
        } else {
            format!("{}=<{}>", self.name, self.choices.join("|"))
        }
    }
}

/// Checks the declared inputs of a gate: names unique and well formed, defaults acceptable,
/// patterns compile.
pub fn validate(inputs: &[Input]) -> Result<(), String> {
    for (i, input) in inputs.iter().enumerate() {
        let name = &input.name;
        let well_formed = !name.is_empty()
            && name.len() <= MAX_NAME_CHARS
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !well_formed {
            return Err(format!(
                "input name `{name}` must be 1 to {MAX_NAME_CHARS} letters, digits, `-` or `_`, \
                 starting and ending with a letter or digit"
            ));
        }
        if inputs[..i].iter().any(|other| &other.name == name) {
            return Err(format!("input `{name}` is declared twice: keep one"));
        }
        if let Some(Err(e)) = input.matcher() {
            let first_line = e.to_string().lines().last().unwrap_or_default().to_string();
            return Err(format!(
                "input `{name}`: `pattern` is not a regular expression ({})",
                first_line.trim()
            ));
        }
        if input.required && input.default.is_some() {
            return Err(format!(
                "input `{name}` is required and has a default: a default is used only when \
                 an approver gives no value, so drop one of them"
            ));
        }
        if let Some(default) = &input.default {
            input
                .check(default)
                .map_err(|e| format!("the default of {e}"))?;
        }
    }
    Ok(())
}

/// The values an approval records: `given` checked against what the gate declares, with
/// `agreed` (the values earlier approvals of this attempt recorded) and defaults filled in.
/// The error says what to fix.
pub fn choose(
    declared: &[Input],
    given: &BTreeMap<String, String>,
    agreed: Option<(&str, &BTreeMap<String, String>)>,
) -> Result<BTreeMap<String, String>, String> {
    if let Some(unknown) = given
        .keys()
        .find(|n| !declared.iter().any(|i| &i.name == *n))
    {
        return Err(if declared.is_empty() {
            format!("this gate asks for no inputs, so `{unknown}` cannot be given")
        } else {
            format!(
                "unknown input `{unknown}`: this gate asks for {}",
                declared
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    if let Some((by, agreed)) = agreed {
        if let Some((name, value)) = given.iter().find(|(n, v)| agreed.get(*n) != Some(*v)) {
            return Err(format!(
                "{by} approved with {}; input `{name}`=`{value}` differs: every approval of a \
                 gate carries the same inputs, so approve with the same values (or none), or \
                 reject",
                describe(agreed),
            ));
        }
        return Ok(agreed.clone());
    }
    let mut chosen = BTreeMap::new();
    for input in declared {
        let value = match (given.get(&input.name), &input.default) {
            (Some(value), _) => value.clone(),
            (None, Some(default)) => default.clone(),
            (None, None) if input.required => {
                return Err(format!(
                    "input `{}` is required{}: approve with --input {} (annotation \
                     approval.tekton.dev/{PREFIX}{})",
                    input.name,
                    if input.description.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", input.description)
                    },
                    input.usage(),
                    input.name,
                ));
            }
            (None, None) => continue,
        };
        input.check(&value)?;
        chosen.insert(input.name.clone(), value);
    }
    Ok(chosen)
}

/// `target=production, ticket=OPS-1`
pub fn describe(values: &BTreeMap<String, String>) -> String {
    values
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the gate publishes for its inputs: every declared input, with the deciding
/// approval's value, else its default, else empty (so a later task's reference always
/// resolves); and all of them as one JSON object.
pub fn published(
    declared: &[Input],
    decided: Option<&BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    let values: BTreeMap<String, String> = declared
        .iter()
        .map(|input| {
            let value = decided
                .and_then(|d| d.get(&input.name))
                .or(input.default.as_ref())
                .cloned()
                .unwrap_or_default();
            (input.name.clone(), value)
        })
        .collect();
    let mut results: Vec<(String, String)> = declared
        .iter()
        .map(|input| {
            (
                format!("{PREFIX}{}", input.name),
                values[&input.name].clone(),
            )
        })
        .collect();
    results.push((
        "inputs".to_string(),
        serde_json::to_string(&values).expect("strings serialise"),
    ));
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared() -> Vec<Input> {
        serde_json::from_value(json!([
            {"name": "target", "description": "where to deploy", "choices": ["staging", "production"], "required": true},
            {"name": "ticket", "pattern": "OPS-[0-9]+"},
            {"name": "replicas", "default": "3", "pattern": "[0-9]+"},
        ]))
        .unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_approval_records_what_it_gave_and_the_defaults() {
        let chosen = choose(&declared(), &values(&[("target", "production")]), None).unwrap();
        assert_eq!(
            chosen,
            values(&[("target", "production"), ("replicas", "3")])
        );
        let chosen = choose(
            &declared(),
            &values(&[
                ("target", "staging"),
                ("ticket", "OPS-12"),
                ("replicas", "5"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            chosen,
            values(&[
                ("target", "staging"),
                ("ticket", "OPS-12"),
                ("replicas", "5")
            ])
        );
    }

    #[test]
    fn bad_inputs_are_denied_naming_the_problem() {
        let rows: [(&[(&str, &str)], &str); 5] = [
            (
                &[],
                "input `target` is required (where to deploy): approve with --input target=<staging|production> (annotation approval.tekton.dev/input-target)",
            ),
            (
                &[("target", "prod")],
                "input `target` must be one of staging, production, got `prod`",
            ),
            (
                &[("target", "staging"), ("ticket", "JIRA-1")],
                "input `ticket` must match `OPS-[0-9]+`, got `JIRA-1`",
            ),
            (
                &[("target", "staging"), ("ticket", "xOPS-1")],
                "input `ticket` must match `OPS-[0-9]+`, got `xOPS-1`",
            ),
            (
                &[("target", "staging"), ("region", "eu")],
                "unknown input `region`: this gate asks for target, ticket, replicas",
            ),
        ];
        for (given, expected) in rows {
            assert_eq!(
                choose(&declared(), &values(given), None).unwrap_err(),
                expected
            );
        }
        assert_eq!(
            choose(&[], &values(&[("target", "x")]), None).unwrap_err(),
            "this gate asks for no inputs, so `target` cannot be given"
        );
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let mut free: Vec<Input> = declared();
        free[0].choices.clear();
        assert!(
            choose(&free, &values(&[("target", &long)]), None)
                .unwrap_err()
                .contains("at most 1024 are recorded")
        );
    }

    #[test]
    fn later_approvals_agree_with_the_first_or_are_denied() {
        let first = values(&[("target", "production"), ("replicas", "3")]);
        let agreed = Some(("alice", &first));
        assert_eq!(choose(&declared(), &values(&[]), agreed).unwrap(), first);
        assert_eq!(
            choose(&declared(), &values(&[("target", "production")]), agreed).unwrap(),
            first
        );
        assert_eq!(
            choose(&declared(), &values(&[("target", "staging")]), agreed).unwrap_err(),
            "alice approved with replicas=3, target=production; input `target`=`staging` \
             differs: every approval of a gate carries the same inputs, so approve with the \
             same values (or none), or reject"
        );
        // Giving an optional value the first approval left out is a difference too.
        assert!(choose(&declared(), &values(&[("ticket", "OPS-1")]), agreed).is_err());
    }

    #[test]
    fn declarations_are_checked_when_the_gate_starts() {
        let rows = [
            (
                json!([{"name": "bad name"}]),
                "input name `bad name` must be",
            ),
            (json!([{"name": ""}]), "input name `` must be"),
            (
                json!([{"name": "a"}, {"name": "a"}]),
                "input `a` is declared twice",
            ),
            (
                json!([{"name": "a", "pattern": "("}]),
                "input `a`: `pattern` is not a regular expression",
            ),
            (
                json!([{"name": "a", "required": true, "default": "x"}]),
                "input `a` is required and has a default",
            ),
            (
                json!([{"name": "a", "choices": ["x"], "default": "y"}]),
                "the default of input `a` must be one of x, got `y`",
            ),
        ];
        for (inputs, expected) in rows {
            let inputs: Vec<Input> = serde_json::from_value(inputs.clone()).unwrap();
            let err = validate(&inputs).unwrap_err();
            assert!(err.starts_with(expected), "{inputs:?}: {err}");
        }
        validate(&declared()).unwrap();
        assert!(
            serde_json::from_value::<Vec<Input>>(json!([{"name": "a", "choice": ["x"]}]))
                .unwrap_err()
                .to_string()
                .contains("unknown field `choice`")
        );
    }

    #[test]
    fn every_declared_input_is_published_even_without_an_approval() {
        let decided = values(&[("target", "production"), ("replicas", "3")]);
        assert_eq!(
            published(&declared(), Some(&decided)),
            [
                ("input-target".to_string(), "production".to_string()),
                ("input-ticket".to_string(), String::new()),
                ("input-replicas".to_string(), "3".to_string()),
                (
                    "inputs".to_string(),
                    r#"{"replicas":"3","target":"production","ticket":""}"#.to_string()
                ),
            ]
        );
        let undecided = published(&declared(), None);
        assert_eq!(undecided[0], ("input-target".to_string(), String::new()));
        assert_eq!(
            undecided[2],
            ("input-replicas".to_string(), "3".to_string())
        );
    }
}
