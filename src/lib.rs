#![forbid(unsafe_code)]
//! An approval gate for Tekton pipelines: a custom task controller that holds a `CustomRun`
//! until approvers decide, with no pod.

/// Wire types: Tekton's CustomRun, our Approval CRD, time formats.
pub mod api;
/// The pure core: params, policy, ledger, outcome, plan.
pub mod approval;
/// The webhook's serving certificate in a cluster: decide, issue, keep in a Secret.
pub mod certs;
/// Deciding from a chat: Slack's interactive buttons, verified and acted on as the person.
pub mod chat;
/// `kubectl-approval` / `tkn-approval`: list, describe, approve and reject gates.
pub mod cli;
/// The reconciler: watch, plan, apply.
pub mod controller;
/// Deciding a gate as a user: the one write path of the CLI, the web page and chat.
pub mod deciding;
/// Events on CustomRuns.
pub mod events;
/// The seal keys, kept in a Secret shared by the webhook and the controller.
pub mod keys;
/// Prometheus metrics.
pub mod metrics;
/// Notifications of gates to Slack, webhooks and CloudEvents sinks.
pub mod notify;
/// /healthz, /readyz, /metrics.
pub mod probes;
/// Our Secrets: their data, and the objects we write.
pub mod secrets;
/// Logging.
pub mod telemetry;
/// The web page: decide as yourself, behind an authenticating proxy.
pub mod ui;
/// The admission webhook: HTTPS, AdmissionReview, TLS reload.
pub mod webhook;
