//! The ordinary tasks of the scenarios' pipelines (build, deploy, report): real TaskRuns
//! whose pods run on the local node, or, where the control plane has no node, `Noop`
//! custom tasks the harness completes. Both echo their params as results of the same
//! names, so a scenario asserts the same things either way.

use std::collections::BTreeMap;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use crate::{NOOP_API_VERSION, Scenario, api::CustomRun, command_output};

/// The image the node runs steps in, when the control plane has a node (e2e.sh sets it
/// from what node-up.sh loaded).
pub fn step_image() -> Option<String> {
    std::env::var("APPROVAL_E2E_STEP_IMAGE")
        .ok()
        .filter(|image| !image.is_empty())
}

/// Whether the suite must have the node (as cluster-up.sh decides it): there a missing node
/// fails the scenarios that need one instead of skipping them.
pub fn node_required() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
        || std::env::var("APPROVAL_REQUIRE_NODE").is_ok_and(|v| v == "1")
}

/// The step image, or `None` for a scenario that cannot run without a node: it is recorded
/// as skipped in `logs/e2e-skipped.txt`, which e2e.sh prints and counts (a test's own
/// output is captured). Where the node is required it panics instead.
pub fn node_or_skip(scenario: &str) -> Option<String> {
    let image = step_image();
    if image.is_none() {
        assert!(
            !node_required(),
            "{scenario} needs the node, and the node is required here: the control plane \
             came up without one (cluster-up.sh said why)"
        );
        if let Ok(state) = std::env::var("APPROVAL_STATE") {
            use std::io::Write as _;
            let mut skipped = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(format!("{state}/logs/e2e-skipped.txt"))
                .expect("recording a skipped scenario");
            writeln!(skipped, "SKIPPED {scenario}: the control plane has no node")
                .expect("recording a skipped scenario");
        }
    }
    image
}

/// An ordinary pipeline task with `params` (`[{"name": ..., "value": ...}]`): a TaskRun
/// whose one busybox step prints what it got and writes each param as a result of the
/// same name, or a `Noop` custom task doing the same without a node.
pub fn work_task(name: &str, run_after: &[&str], params: Value) -> Value {
    let mut task = json!({"name": name, "runAfter": run_after, "params": params});
    match step_image() {
        None => task["taskRef"] = json!({"apiVersion": NOOP_API_VERSION, "kind": "Noop"}),
        Some(image) => task["taskSpec"] = work_task_spec(name, &params, &image),
    }
    task
}

/// String params reach the step as environment variables, never through its script's text:
/// values carry quotes and brackets that would otherwise be shell code. An array param (a
/// reference ending in `[*]`, as a gate's `approvedBy`, `rejectedBy` and `comments` are
/// used) gets a step of its own whose arguments are its elements, the way `samples/` pass
/// them; that step writes them back as a JSON array, which is what the `Noop` runner echoes
/// for an array too.
fn work_task_spec(name: &str, params: &Value, image: &str) -> Value {
    let params: Vec<(&str, bool)> = params
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let is_array = p["value"].as_str().is_some_and(|v| v.ends_with("[*])"));
            Some((p["name"].as_str()?, is_array))
        })
        .collect();
    assert!(
        params
            .iter()
            .all(|(p, _)| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')),
        "param names of a work task are letters, digits and dashes: {params:?}"
    );
    let mut script = format!("#!/bin/sh\nset -eu\necho \"{name}: running in pod $(hostname)\"\n");
    let mut env = Vec::new();
    let mut steps = Vec::new();
    for (i, (param, is_array)) in params.iter().enumerate() {
        if *is_array {
            steps.push(json!({
                "name": format!("array-{i}"),
                "image": image,
                "args": [format!("$(params.{param}[*])")],
                "script": format!(
                    "#!/bin/sh\nset -eu\n{JSON_ARRAY_OF_ARGS}echo \"{name}: {param}=$json\"\n\
                     printf '%s' \"$json\" > $(results.{param}.path)\n"
                ),
            }));
        } else {
            env.push(json!({"name": format!("PARAM_{i}"), "value": format!("$(params.{param})")}));
            script.push_str(&format!(
                "echo \"{name}: {param}=$PARAM_{i}\"\nprintf '%s' \"$PARAM_{i}\" > $(results.{param}.path)\n"
            ));
        }
    }
    steps.insert(
        0,
        json!({"name": "run", "image": image, "env": env, "script": script}),
    );
    let declared = |kind_of: fn(bool) -> &'static str| -> Vec<Value> {
        params
            .iter()
            .map(|(n, is_array)| json!({"name": n, "type": kind_of(*is_array)}))
            .collect()
    };
    json!({
        "params": declared(|is_array| if is_array { "array" } else { "string" }),
        "results": declared(|_| "string"),
        "steps": steps,
    })
}

/// Sets `json` to the step's arguments as a JSON array of strings: backslashes, quotes,
/// tabs, carriage returns and newlines escaped (busybox's sed; `:a;N;$!ba` joins lines).
const JSON_ARRAY_OF_ARGS: &str = r#"json=""
for element in "$@"; do
  escaped="$(printf '%s' "$element" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' -e 's/\r/\\r/g' | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/\\n/g')"
  json="${json:+$json,}\"$escaped\""
done
json="[$json]"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a step's script the way the step's busybox sh runs it, with Tekton's
    /// substitutions done by hand; returns its output.
    fn run_step(
        step: &Value,
        args: &[&str],
        env: &[(&str, &str)],
        results: &std::path::Path,
    ) -> String {
        let mut script = step["script"]
            .as_str()
            .unwrap()
            .replace("$(hostname)", "test");
        for name in ["artifact", "approved-by", "comments"] {
            let path = results.join(name);
            script = script.replace(&format!("$(results.{name}.path)"), path.to_str().unwrap());
        }
        let output = std::process::Command::new("/bin/busybox")
            .args(["sh", "-c", &script, "sh"])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("busybox: e2e/scripts/images.sh installs Debian's busybox-static");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn the_steps_echo_string_and_array_params_as_the_noop_runner_does() {
        let spec = work_task_spec(
            "deploy",
            &json!([
                {"name": "artifact", "value": "$(tasks.build.results.artifact)"},
                {"name": "approved-by", "value": "$(tasks.approve.results.approvedBy[*])"},
                {"name": "comments", "value": "$(tasks.approve.results.comments[*])"},
            ]),
            "busybox",
        );
        assert_eq!(
            spec["params"][1],
            json!({"name": "approved-by", "type": "array"})
        );
        let steps = spec["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 3, "one step for the strings, one per array");
        assert_eq!(steps[1]["args"], json!(["$(params.approved-by[*])"]));
        let results = tempfile::tempdir().unwrap();
        let read = |name: &str| std::fs::read_to_string(results.path().join(name)).unwrap();

        let out = run_step(
            &steps[0],
            &[],
            &[("PARAM_0", "app \"1\".tar $(x)")],
            results.path(),
        );
        assert_eq!(read("artifact"), "app \"1\".tar $(x)");
        assert!(out.contains("deploy: artifact=app \"1\".tar $(x)"), "{out}");

        let awkward = [
            "alice",
            r#"bob "the" \builder"#,
            "line one\nline two\ttab",
            "--param-1",
            "",
        ];
        run_step(&steps[1], &awkward, &[], results.path());
        let approved: Vec<String> = serde_json::from_str(&read("approved-by")).unwrap();
        assert_eq!(approved, awkward);

        run_step(&steps[2], &[], &[], results.path());
        assert_eq!(read("comments"), "[]");
    }
}

/// How one pipeline task's run ended: a TaskRun or a CustomRun, by the name Tekton gives
/// it (`<pipelinerun>-<task>`).
#[derive(Debug)]
pub struct TaskOutcome {
    /// The `Succeeded` condition's status.
    pub status: String,
    pub results: BTreeMap<String, String>,
    /// The TaskRun's pod, when it ran one.
    pub pod: Option<String>,
}

fn taskrun_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("tekton.dev", "v1", "TaskRun"),
        "taskruns",
    )
}

impl Scenario {
    /// TaskRuns of this namespace.
    pub fn taskruns(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.admin.clone(), &self.namespace, &taskrun_resource())
    }

    /// The outcome of the run `name` of an ordinary task, or `None` if it never ran.
    pub async fn task_outcome(&self, name: &str) -> Option<TaskOutcome> {
        if let Some(run) = self
            .taskruns()
            .get_opt(name)
            .await
            .expect("reading a TaskRun")
        {
            let status = &run.data["status"];
            let condition = status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Succeeded"))
                .cloned()
                .unwrap_or_default();
            let results = status["results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let value = match &r["value"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (r["name"].as_str().unwrap_or_default().to_string(), value)
                })
                .collect();
            return Some(TaskOutcome {
                status: condition["status"].as_str().unwrap_or_default().into(),
                results,
                pod: status["podName"].as_str().map(String::from),
            });
        }
        let run: CustomRun = self
            .customruns()
            .get_opt(name)
            .await
            .expect("reading a CustomRun")?;
        let status = run.status.unwrap_or_default();
        let condition_status = status
            .succeeded()
            .map(|c| c.status.clone())
            .unwrap_or_default();
        Some(TaskOutcome {
            status: condition_status,
            results: status
                .results
                .into_iter()
                .map(|r| (r.name, r.value))
                .collect(),
            pod: None,
        })
    }

    /// The outcome of the ordinary task run `name`, which must have succeeded.
    pub async fn task_succeeded(&self, name: &str) -> TaskOutcome {
        let outcome = self
            .task_outcome(name)
            .await
            .unwrap_or_else(|| panic!("{name} never ran"));
        assert_eq!(
            outcome.status, "True",
            "{name} did not succeed: {outcome:?}"
        );
        outcome
    }

    /// What the containers of TaskRun pod `pod` printed (every step, and Tekton's init
    /// containers), read as `kubectl logs` reads it: the API server asks the kubelet.
    pub async fn pod_log(&self, pod: &str) -> String {
        let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        command_output(
            &kubectl,
            &["-n", &self.namespace, "logs", pod, "--all-containers"],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the log of pod {pod}: {e:#}"))
    }
}
