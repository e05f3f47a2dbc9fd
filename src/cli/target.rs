//! Which gate a NAME means: a CustomRun name, or `pipelinerun/<name>` for the gate of a
//! PipelineRun. Pure: the cluster layer fetches the candidates, this decides among them.

use crate::api::CustomRun;
use crate::approval::classify;

use super::exit::CliError;

/// The label Tekton puts on the CustomRuns of a PipelineRun.
pub const PIPELINE_RUN_LABEL: &str = "tekton.dev/pipelineRun";
/// The label Tekton puts on a CustomRun: the pipeline task it runs.
pub use crate::approval::PIPELINE_TASK_LABEL;

/// What a NAME on the command line refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A CustomRun, by name.
    CustomRun(String),
    /// The gate of a PipelineRun, found by its label.
    PipelineRun(String),
}

impl Target {
    /// Reads a NAME: `gate`, `customrun/gate`, `pipelinerun/release` or `pr/release`
    /// (kubectl's `kind/name`, with the short names tkn uses).
    pub fn parse(text: &str) -> Result<Self, CliError> {
        let usage = |why: &str| {
            CliError::Usage(format!(
                "{why} `{text}`: use a CustomRun name, or pipelinerun/<name> for the gate of a PipelineRun"
            ))
        };
        let (kind, name) = match text.split_once('/') {
            None => ("customrun", text),
            Some((kind, name)) => (kind, name),
        };
        if name.is_empty() || name.contains('/') {
            return Err(usage("no gate name in"));
        }
        match kind.to_ascii_lowercase().as_str() {
            "customrun" | "customruns" | "customrun.tekton.dev" | "customruns.tekton.dev" => {
                Ok(Self::CustomRun(name.into()))
            }
            "pipelinerun"
            | "pipelineruns"
            | "pr"
            | "pipelinerun.tekton.dev"
            | "pipelineruns.tekton.dev" => Ok(Self::PipelineRun(name.into())),
            _ => Err(usage("unknown kind in")),
        }
    }

    /// The label selector that finds the candidates of a PipelineRun target.
    pub fn label_selector(&self) -> Option<String> {
        match self {
            Self::CustomRun(_) => None,
            Self::PipelineRun(name) => Some(format!("{PIPELINE_RUN_LABEL}={name}")),
        }
    }
}

/// Picks the gate a target means from what the cluster returned: the named CustomRun
/// (`None` if it does not exist), or the CustomRuns labelled with the PipelineRun.
pub fn choose(
    target: &Target,
    namespace: &str,
    found: Vec<CustomRun>,
) -> Result<CustomRun, CliError> {
    match target {
        Target::CustomRun(name) => {
            let run = found.into_iter().next().ok_or_else(|| {
                CliError::NotFound(format!(
                    "customrun {name} not found in namespace {namespace}"
                ))
            })?;
            if classify(&run.spec).is_none() {
                return Err(CliError::NotFound(format!(
                    "customrun {name} in namespace {namespace} is not an approval gate"
                )));
            }
            Ok(run)
        }
        Target::PipelineRun(pipeline_run) => {
            let mut gates: Vec<CustomRun> = found
                .into_iter()
                .filter(|run| classify(&run.spec).is_some())
                .collect();
            match gates.len() {
                0 => Err(CliError::NotFound(format!(
                    "pipelinerun {pipeline_run} has no approval gate in namespace {namespace} \
                     (it may not exist, or not have reached its gate yet)"
                ))),
                1 => Ok(gates.remove(0)),
                _ => {
                    gates.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
                    let listed: Vec<String> = gates
                        .iter()
                        .map(|gate| {
                            let name = gate.metadata.name.as_deref().unwrap_or_default();
                            match label(gate, PIPELINE_TASK_LABEL) {
                                Some(task) => format!("  {name} (task {task})"),
                                None => format!("  {name}"),
                            }
                        })
                        .collect();
                    Err(CliError::Usage(format!(
                        "pipelinerun {pipeline_run} has {} approval gates; name one of them:\n{}",
                        gates.len(),
                        listed.join("\n")
                    )))
                }
            }
        }
    }
}

/// A label's value.
pub fn label<'a>(run: &'a CustomRun, key: &str) -> Option<&'a str> {
    run.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(key))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(name: &str, api_version: &str, task: &str) -> CustomRun {
        serde_json::from_value(json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "CustomRun",
            "metadata": {"name": name, "namespace": "ci",
                         "labels": {PIPELINE_RUN_LABEL: "release", PIPELINE_TASK_LABEL: task}},
            "spec": {"customRef": {"apiVersion": api_version, "kind": "Approval"}}
        }))
        .unwrap()
    }

    fn gate(name: &str, task: &str) -> CustomRun {
        run(name, "approval.tekton.dev/v1alpha1", task)
    }

    #[test]
    fn names_are_customruns_unless_they_say_pipelinerun() {
        assert_eq!(Target::parse("gate"), Ok(Target::CustomRun("gate".into())));
        assert_eq!(
            Target::parse("customrun/gate"),
            Ok(Target::CustomRun("gate".into()))
        );
        for text in [
            "pipelinerun/release",
            "PipelineRun/release",
            "pr/release",
            "pipelineruns/release",
        ] {
            assert_eq!(
                Target::parse(text),
                Ok(Target::PipelineRun("release".into())),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_names_are_usage_errors_that_say_what_is_accepted() {
        for text in ["taskrun/x", "pipelinerun/", "/x", "pipelinerun/a/b", ""] {
            let err = Target::parse(text).unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{text}");
            assert!(
                err.to_string().contains("pipelinerun/<name>"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn a_pipelinerun_target_selects_by_label() {
        assert_eq!(
            Target::parse("pr/release")
                .unwrap()
                .label_selector()
                .as_deref(),
            Some("tekton.dev/pipelineRun=release")
        );
        assert_eq!(Target::parse("gate").unwrap().label_selector(), None);
    }

    #[test]
    fn a_named_customrun_must_exist_and_be_a_gate() {
        let target = Target::CustomRun("x".into());
        let chosen = choose(&target, "ci", vec![gate("x", "approve")]).unwrap();
        assert_eq!(chosen.metadata.name.as_deref(), Some("x"));
        assert_eq!(
            choose(&target, "ci", vec![]).unwrap_err(),
            CliError::NotFound("customrun x not found in namespace ci".into())
        );
        assert_eq!(
            choose(&target, "ci", vec![run("x", "example.dev/v1", "build")]).unwrap_err(),
            CliError::NotFound("customrun x in namespace ci is not an approval gate".into())
        );
    }

    #[test]
    fn the_only_gate_of_a_pipelinerun_is_chosen_among_other_customruns() {
        let target = Target::PipelineRun("release".into());
        let found = vec![
            run("build", "example.dev/v1", "build"),
            gate("approve", "approve"),
        ];
        let chosen = choose(&target, "ci", found).unwrap();
        assert_eq!(chosen.metadata.name.as_deref(), Some("approve"));
    }

    #[test]
    fn a_pipelinerun_without_a_gate_is_not_found() {
        let target = Target::PipelineRun("release".into());
        let err = choose(&target, "ci", vec![run("build", "example.dev/v1", "build")]).unwrap_err();
        assert!(matches!(err, CliError::NotFound(_)));
        assert_eq!(
            err.to_string(),
            "pipelinerun release has no approval gate in namespace ci (it may not exist, or not \
             have reached its gate yet)"
        );
    }

    #[test]
    fn several_gates_of_a_pipelinerun_are_listed_in_the_error() {
        let target = Target::PipelineRun("release".into());
        let found = vec![
            gate("release-prod", "approve-prod"),
            gate("release-qa", "approve-qa"),
        ];
        let err = choose(&target, "ci", found).unwrap_err();
        assert_eq!(
            err,
            CliError::Usage(
                "pipelinerun release has 2 approval gates; name one of them:\n  \
                 release-prod (task approve-prod)\n  release-qa (task approve-qa)"
                    .into()
            )
        );
    }
}
