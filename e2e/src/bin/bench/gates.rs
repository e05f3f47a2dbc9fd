//! The gates as users see them: each system's CustomRun, each system's approve request made
//! as an approver, and a watch that timestamps the moment a gate is shown waiting or decided.
//! It knows nothing of either system beyond those public paths.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::model::System;
use tekton_approval::approval::LEDGER_ANNOTATION;
use tekton_approval::approval::ledger::{Decision, Ledger};

/// The user every gate names as its approver (bench.sh grants it the RBAC to decide).
pub const APPROVER: &str = "bench-approver";

pub fn customruns(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("tekton.dev", "v1beta1", "CustomRun");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

fn approval_tasks(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("openshift-pipelines.org", "v1alpha1", "ApprovalTask");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

pub fn gate_name(index: usize) -> String {
    format!("gate-{index:06}")
}

pub fn floor_name(index: usize) -> String {
    format!("floor-{index:05}")
}

fn customrun(name: &str, custom_ref: Value, params: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "tekton.dev/v1beta1",
        "kind": "CustomRun",
        "metadata": {"name": name},
        "spec": {"customRef": custom_ref, "params": params, "timeout": "24h"},
    }))
    .expect("a CustomRun is a valid object")
}

/// A gate as each system's documentation writes one: one approver, no deadline soon.
pub fn gate(system: System, name: &str) -> DynamicObject {
    match system {
        System::Ours => customrun(
            name,
            json!({"apiVersion": "approval.tekton.dev/v1alpha1", "kind": "Approval"}),
            json!([{"name": "approvers", "value": [APPROVER]}]),
        ),
        System::Mag => customrun(
            name,
            json!({"apiVersion": "openshift-pipelines.org/v1alpha1", "kind": "ApprovalTask"}),
            json!([
                {"name": "approvers", "value": [APPROVER]},
                {"name": "numberOfApprovalsRequired", "value": "1"},
            ]),
        ),
    }
}

/// A CustomRun of a kind no controller handles: the floor's, whose status the driver writes.
pub fn floor_gate(name: &str) -> DynamicObject {
    customrun(
        name,
        json!({"apiVersion": "bench.approval.local/v1", "kind": "Nothing"}),
        json!([]),
    )
}

/// The floor's decision: what a controller's status write is, done by the driver.
pub async fn write_succeeded(admin: &Client, namespace: &str, name: &str) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let status = json!({"status": {"conditions": [{
        "type": "Succeeded", "status": "True", "reason": "Floor", "lastTransitionTime": now,
    }]}});
    customruns(admin, namespace)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

/// Requests an approve took again, and why.
#[derive(Default, Clone, Copy)]
pub struct Retries {
    pub too_many: usize,
    pub conflicts: usize,
    pub dropped: usize,
}

/// The connection failed before an answer came: the request may or may not have been applied.
fn dropped(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<kube::Error>(),
        Some(kube::Error::Service(_) | kube::Error::HyperError(_))
    )
}

fn status_code(error: &anyhow::Error) -> Option<u16> {
    match error.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(response)) => Some(response.code),
        _ => None,
    }
}

/// The approver's request, returning when the API server has answered it. A 429 (API
/// Priority and Fairness at saturation) is sent again after a pause, as client-go does; a
/// 409 on MAG's read-modify-write is redone from the read, as a retrying client would. After
/// a dropped connection it is sent again only if the API server does not show it applied:
/// our webhook refuses a second approval by the same user.
pub async fn approve(
    system: System,
    approver: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Retries> {
    let mut retries = Retries::default();
    loop {
        let attempt = approve_once(system, approver, namespace, name).await;
        if attempt.as_ref().is_err_and(dropped) {
            retries.dropped += 1;
            if approved(system, approver, namespace, name).await? {
                return Ok(retries);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        match attempt.as_ref().err().and_then(status_code) {
            None => return attempt.map(|()| retries),
            Some(429) => {
                retries.too_many += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Some(409) => retries.conflicts += 1,
            Some(_) => return attempt.map(|()| retries),
        }
        if retries.too_many + retries.conflicts + retries.dropped > 1000 {
            return Err(anyhow!("approving {name}: over 1,000 retries"));
        }
    }
}

async fn approve_once(
    system: System,
    approver: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    match system {
        // What `kubectl annotate` and our plugin send.
        System::Ours => {
            let patch =
                json!({"metadata": {"annotations": {"approval.tekton.dev/approve": "bench"}}});
            customruns(approver, namespace)
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        // What `tkn approvaltask approve` does: read the ApprovalTask, set this approver's
        // input, update it.
        System::Mag => {
            let api = approval_tasks(approver, namespace);
            let mut task = api.get(name).await?;
            let approvers = task
                .data
                .pointer_mut("/spec/approvers")
                .and_then(Value::as_array_mut)
                .ok_or_else(|| anyhow!("ApprovalTask {name} has no approvers yet"))?;
            for approver in approvers.iter_mut().filter(|a| a["name"] == APPROVER) {
                approver["input"] = json!("approve");
            }
            api.replace(name, &PostParams::default(), &task).await?;
        }
    }
    Ok(())
}

/// Whether the API server shows the approver's approval of `name` applied.
async fn approved(
    system: System,
    approver: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<bool> {
    Ok(match system {
        // The webhook turns the approve annotation into a record of the ledger.
        System::Ours => {
            let run = customruns(approver, namespace).get(name).await?;
            let annotation = run.annotations().get(LEDGER_ANNOTATION).map(String::as_str);
            let (ledger, _) = Ledger::parse_lenient(annotation);
            ledger
                .records()
                .iter()
                .any(|r| r.user == APPROVER && r.decision == Decision::Approve)
        }
        System::Mag => {
            let task = approval_tasks(approver, namespace).get(name).await?;
            task.data
                .pointer("/spec/approvers")
                .and_then(Value::as_array)
                .is_some_and(|approvers| {
                    approvers
                        .iter()
                        .any(|a| a["name"] == APPROVER && a["input"] == "approve")
                })
        }
    })
}

/// What a gate's `Succeeded` condition says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Unseen,
    Waiting,
    Succeeded,
}

pub fn phase(run: &DynamicObject) -> Phase {
    let status = run.data["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Succeeded"))
        .and_then(|condition| condition["status"].as_str());
    match status {
        Some("Unknown") => Phase::Waiting,
        Some("True") => Phase::Succeeded,
        _ => Phase::Unseen,
    }
}

/// When the watch first showed each gate waiting, and decided.
#[derive(Default)]
pub struct Gates {
    pub waiting_since: HashMap<String, Instant>,
    pub succeeded_at: HashMap<String, Instant>,
}

impl Gates {
    pub fn observe(&mut self, name: String, phase: Phase, at: Instant) {
        match phase {
            Phase::Unseen => {}
            Phase::Waiting => {
                self.waiting_since.entry(name).or_insert(at);
            }
            Phase::Succeeded => {
                self.succeeded_at.entry(name).or_insert(at);
            }
        }
    }

    /// Gates waiting now: shown waiting and not yet decided.
    pub fn waiting(&self) -> usize {
        self.waiting_since
            .keys()
            .filter(|name| !self.succeeded_at.contains_key(*name))
            .count()
    }

    /// Decided gates (floor gates included), which the driver deletes before a memory step.
    pub fn decided(&self) -> Vec<String> {
        self.succeeded_at.keys().cloned().collect()
    }

    pub fn forget(&mut self, name: &str) {
        self.waiting_since.remove(name);
        self.succeeded_at.remove(name);
    }
}

/// Follows every CustomRun of the namespace; the timestamps are taken as events arrive.
pub fn follow(client: Client, namespace: &str) -> watch::Receiver<Gates> {
    let (sender, receiver) = watch::channel(Gates::default());
    let runs = customruns(&client, namespace);
    tokio::spawn(async move {
        let mut events = watcher(runs, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) => {
                    let (name, phase) = (run.name_any(), phase(&run));
                    if phase != Phase::Unseen {
                        sender.send_modify(|gates| gates.observe(name, phase, Instant::now()));
                    }
                }
                Ok(watcher::Event::Delete(run)) => {
                    sender.send_modify(|gates| gates.forget(&run.name_any()));
                }
                Ok(_) => {}
                Err(error) => eprintln!("bench: watch error (retrying): {error}"),
            }
        }
    });
    receiver
}

/// Waits until `done` holds for the observed gates.
pub async fn wait(
    gates: &mut watch::Receiver<Gates>,
    what: &str,
    limit: Duration,
    done: impl FnMut(&Gates) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(limit, gates.wait_for(done))
        .await
        .map_err(|_| anyhow!("timed out after {limit:?} waiting for {what}"))?
        .map_err(|_| anyhow!("the watch ended while waiting for {what}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_connection_counts_as_dropped_and_an_answer_keeps_its_code() {
        let refused = kube::Error::Api(
            kube::core::Status::failure("too many requests", "TooManyRequests")
                .with_code(429)
                .boxed(),
        );
        let refused = anyhow::Error::from(refused);
        assert!(!dropped(&refused));
        assert_eq!(status_code(&refused), Some(429));
        let closed = anyhow::Error::from(kube::Error::Service(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection closed before message completed",
        ))));
        assert!(dropped(&closed));
        assert_eq!(status_code(&closed), None);
        assert!(!dropped(&anyhow!("ApprovalTask g has no approvers yet")));
    }

    #[test]
    fn a_gate_is_waiting_while_succeeded_is_unknown_and_decided_when_true() {
        let run = |status: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "tekton.dev/v1beta1", "kind": "CustomRun", "metadata": {"name": "g"},
                "status": {"conditions": [{"type": "Succeeded", "status": status}]},
            }))
            .unwrap()
        };
        assert_eq!(phase(&run("Unknown")), Phase::Waiting);
        assert_eq!(phase(&run("True")), Phase::Succeeded);
        assert_eq!(phase(&run("False")), Phase::Unseen);
        assert_eq!(phase(&floor_gate("f")), Phase::Unseen);
    }

    #[test]
    fn a_decided_gate_no_longer_counts_as_waiting_and_a_forgotten_one_not_at_all() {
        let mut gates = Gates::default();
        let now = Instant::now();
        gates.observe("a".into(), Phase::Waiting, now);
        gates.observe("b".into(), Phase::Waiting, now);
        gates.observe("a".into(), Phase::Succeeded, now);
        assert_eq!(gates.waiting(), 1);
        assert_eq!(gates.decided(), vec!["a".to_string()]);
        gates.forget("a");
        assert!(gates.decided().is_empty());
        assert_eq!(gates.waiting(), 1);
    }

    #[test]
    fn gate_names_sort_in_creation_order_up_to_a_million() {
        assert!(gate_name(99_999) < gate_name(100_000));
        assert_eq!(gate_name(7), "gate-000007");
    }
}
