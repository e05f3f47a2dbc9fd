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

/// Whether the suite must have the node: under CI a missing node fails the scenarios that
/// need one instead of skipping them.
pub fn node_required() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// The step image, or `None` after saying loudly that `scenario` is skipped for want of a
/// node. Under CI it panics instead: there a missing node is a failure, never a skip.
pub fn node_or_skip(scenario: &str) -> Option<String> {
    let image = step_image();
    if image.is_none() {
        assert!(
            !node_required(),
            "{scenario} needs the node, and CI=true: the control plane came up without one \
             (cluster-up.sh said why)"
        );
        eprintln!("e2e: SKIPPED {scenario}: the control plane has no node (cluster-up.sh said why)");
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

/// The step reads each param from an environment variable, never from its script's text:
/// values (a gate's results) carry quotes and brackets that would otherwise be shell code.
fn work_task_spec(name: &str, params: &Value, image: &str) -> Value {
    let names: Vec<&str> = params
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    let mut script = format!("#!/bin/sh\nset -eu\necho \"{name}: running in pod $(hostname)\"\n");
    let mut env = Vec::new();
    for (i, param) in names.iter().enumerate() {
        env.push(json!({"name": format!("PARAM_{i}"), "value": format!("$(params.{param})")}));
        script.push_str(&format!(
            "echo \"{name}: {param}=$PARAM_{i}\"\nprintf '%s' \"$PARAM_{i}\" > $(results.{param}.path)\n"
        ));
    }
    json!({
        "params": names.iter().map(|n| json!({"name": n, "type": "string"})).collect::<Vec<_>>(),
        "results": names.iter().map(|n| json!({"name": n, "type": "string"})).collect::<Vec<_>>(),
        "steps": [{"name": "run", "image": image, "env": env, "script": script}],
    })
}

/// How one pipeline task's run ended: a TaskRun or a CustomRun, by the name Tekton gives
/// it (`<pipelinerun>-<task>`).
#[derive(Debug)]
pub struct TaskOutcome {
    /// `Succeeded` condition's status and reason.
    pub status: String,
    pub reason: String,
    pub results: BTreeMap<String, String>,
    /// The TaskRun's pod, when it ran one.
    pub pod: Option<String>,
}

fn taskrun_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("tekton.dev", "v1", "TaskRun"), "taskruns")
}

impl Scenario {
    /// TaskRuns of this namespace.
    pub fn taskruns(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.admin.clone(), &self.namespace, &taskrun_resource())
    }

    /// The outcome of the run `name` of an ordinary task, or `None` if it never ran.
    pub async fn task_outcome(&self, name: &str) -> Option<TaskOutcome> {
        if let Some(run) = self.taskruns().get_opt(name).await.expect("reading a TaskRun") {
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
                reason: condition["reason"].as_str().unwrap_or_default().into(),
                results,
                pod: status["podName"].as_str().map(String::from),
            });
        }
        let run: CustomRun = self.customruns().get_opt(name).await.expect("reading a CustomRun")?;
        let status = run.status.unwrap_or_default();
        let (condition_status, reason) = status
            .succeeded()
            .map(|c| (c.status.clone(), c.reason.clone()))
            .unwrap_or_default();
        Some(TaskOutcome {
            status: condition_status,
            reason,
            results: status.results.into_iter().map(|r| (r.name, r.value)).collect(),
            pod: None,
        })
    }

    /// The outcome of the ordinary task run `name`, which must have succeeded.
    pub async fn task_succeeded(&self, name: &str) -> TaskOutcome {
        let outcome = self
            .task_outcome(name)
            .await
            .unwrap_or_else(|| panic!("{name} never ran"));
        assert_eq!(outcome.status, "True", "{name} did not succeed: {outcome:?}");
        outcome
    }

    /// What the step of TaskRun pod `pod` printed, read as `kubectl logs` reads it (the
    /// API server asks the kubelet).
    pub async fn pod_log(&self, pod: &str) -> String {
        let kubectl = std::env::var("APPROVAL_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        command_output(&kubectl, &["-n", &self.namespace, "logs", pod, "-c", "step-run"])
            .await
            .unwrap_or_else(|e| panic!("reading the log of pod {pod}: {e:#}"))
    }
}
