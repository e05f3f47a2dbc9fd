//! The reconciler: watches CustomRuns, asks the pure core for a plan, and applies it (one
//! status write, its events, a ledger clean-up after a retry). It keeps no state of its own:
//! everything it needs is in the CustomRun, so a restart loses nothing (the deadlines it
//! remembers are planned again from the CustomRuns when it starts or takes the Lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::api::CustomRun;
use crate::api::watched::{Content, WatchedRun};
use crate::approval::admission::PIPELINE_RUN_LABEL;
use crate::approval::plan::{GateEvent, Severity, event_reason};
use crate::approval::plan::{LedgerCleanup, Plan, plan_with, policy_to_look_up, supersede_line};
use crate::approval::{KIND, LEDGER_ANNOTATION, PolicyLookup, classify};
use crate::events::EventPublisher;
use crate::keys::KeySource;

pub mod deadlines;
pub mod leader;
pub mod supersede;
use crate::metrics::Metrics;
use deadlines::Deadlines;
use leader::Leader;

/// How often a status write is re-planned after a conflict before the reconcile gives up
/// (and is requeued): someone else is writing the same object in a tight loop.
const MAX_CONFLICTS: usize = 5;

/// What the reconciler needs.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Where events go.
    pub events: EventPublisher,
    /// Where numbers go.
    pub metrics: Arc<Metrics>,
    /// The time; a parameter so tests control it.
    pub clock: fn() -> DateTime<Utc>,
    /// The seal keys, to verify what the webhook wrote.
    pub keys: Arc<KeySource>,
    /// Whether this replica reconciles (only the leader does).
    pub leader: Leader,
    /// When waiting gates are due again.
    pub deadlines: Arc<Deadlines>,
    /// Waiting gates that supersede each other.
    pub lines: Arc<supersede::Lines>,
    /// Where gates with notification sinks are handed once planned (none: notifications
    /// are not configured).
    pub notifier: Option<crate::notify::Notifier>,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a CustomRun or a policy failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was read.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// The status write failed.
    #[error("writing the status of {name}: {source}")]
    WriteStatus {
        /// The CustomRun.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writes kept conflicting.
    #[error("the status of {0} changed under every write ({MAX_CONFLICTS} tries)")]
    Conflicts(String),
}

impl Error {
    /// A metrics label.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Conflicts(_) => "conflict",
            Error::Read { source, .. } | Error::WriteStatus { source, .. } => match source {
                kube::Error::Api(status) if status.code == 403 || status.code == 401 => "forbidden",
                kube::Error::Api(status) if status.code == 422 || status.code == 400 => "rejected",
                kube::Error::Api(status) if status.code == 409 => "conflict",
                kube::Error::Api(_) => "api",
                _ => "transport",
            },
        }
    }

    /// Permanent errors need a person (RBAC, a webhook refusing us): retrying fast helps
    /// nobody. Everything else is retried soon.
    pub fn is_permanent(&self) -> bool {
        matches!(self.category(), "forbidden" | "rejected")
    }
}

/// Gates reconciled at the same time.
const RECONCILE_CONCURRENCY: u16 = 16;

/// Reconciles one watched CustomRun: a gate is planned, a gate that cannot be read is
/// reported and left alone, anything else is none of our business.
pub async fn reconcile_watched(run: Arc<WatchedRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    // A follower keeps its cache warm and acts on nothing; when it becomes the leader,
    // every gate is reconciled anew.
    if !ctx.leader.is_leader() {
        return Ok(Action::await_change());
    }
    let (why, uid) = match &run.content {
        Content::Gate(gate) => match gate.read() {
            Ok(gate) => return reconcile(gate, ctx).await,
            Err(e) => (e, None),
        },
        Content::EndedUntold(gate) => {
            if let (Some(notifier), Ok(gate)) = (&ctx.notifier, gate.read()) {
                notifier.observe(&gate);
            }
            return Ok(Action::await_change());
        }
        Content::Ended | Content::Other => return Ok(Action::await_change()),
        Content::Unreadable { why, uid } => (why.clone(), uid.clone()),
    };
    let namespace = run.metadata.namespace.clone().unwrap_or_default();
    let name = run.metadata.name.clone().unwrap_or_default();
    warn!(%namespace, %name, %why, "gate cannot be read: left alone");
    ctx.metrics.unverified("unreadable", 1);
    let stub = CustomRun {
        metadata: ObjectMeta {
            uid,
            ..run.metadata.clone()
        },
        spec: Default::default(),
        status: None,
    };
    let event = GateEvent {
        severity: Severity::Warning,
        reason: event_reason::INVALID_APPROVAL,
        message: format!(
            "this gate cannot be read as a CustomRun ({why}); the approval webhook \
             refuses such gates, so it was written around it: the controller leaves it \
             alone. Start a new PipelineRun"
        ),
    };
    if let Err(e) = ctx.events.publish(&stub, &event, (ctx.clock)()).await {
        warn!(%namespace, %name, error = %e, "publishing event failed");
    }
    Ok(Action::await_change())
}

/// Reconciles one gate.
pub async fn reconcile(mut run: CustomRun, ctx: Arc<Context>) -> Result<Action, Error> {
    if classify(&run.spec).is_none() {
        return Ok(Action::await_change());
    }
    let name = run.name_any();
    let namespace = run.namespace().unwrap_or_default();
    let api: Api<CustomRun> = Api::namespaced(ctx.client.clone(), &namespace);
    for _ in 0..MAX_CONFLICTS {
        if !ctx.leader.is_leader() {
            return Ok(Action::await_change());
        }
        let policy = look_up_policy(&ctx, &run).await?;
        let now = (ctx.clock)();
        let line = run.status.as_ref().and_then(supersede_line);
        let superseded_by = line
            .as_deref()
            .and_then(|key| ctx.lines.newer(waiting_on(&run, key)));
        let planned = |keys: &crate::approval::seal::Keyring| {
            plan_with(
                &run,
                policy.as_lookup(),
                keys,
                now,
                superseded_by.as_deref(),
            )
        };
        let Some(mut plan) = planned(&ctx.keys.keyring()) else {
            return Ok(Action::await_change());
        };
        // A seal made with a key we do not hold yet (rotated since we read the keys): read
        // them again and plan once more, so that a genuine record is never taken for a
        // forgery.
        if let Some(id) = plan.unknown_key.clone()
            && ctx.keys.learn(&[id]).await
        {
            plan = match planned(&ctx.keys.keyring()) {
                Some(plan) => plan,
                None => return Ok(Action::await_change()),
            };
        }
        if let Some(why) = &plan.not_admitted {
            warn!(%namespace, %name, %why, "gate not admitted by the webhook: left alone");
            ctx.metrics.unverified("gate", 1);
            announce(&ctx, &run, &plan).await;
            return Ok(Action::await_change());
        }
        if plan.unverified_records > 0 {
            warn!(%namespace, %name, count = plan.unverified_records,
                  "ledger records without a valid seal ignored");
            ctx.metrics
                .unverified("record", plan.unverified_records as u64);
        }
        let unchanged = run.status.as_ref().is_some_and(|s| *s == plan.status);
        if !unchanged {
            let mut desired = run.clone();
            desired.status = Some(plan.status.clone());
            match api
                .replace_status(&name, &PostParams::default(), &desired)
                .await
            {
                Ok(written) => {
                    announce(&ctx, &written, &plan).await;
                    run = written;
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    debug!(%namespace, %name, "status conflict; planning again from the latest version");
                    run = api.get(&name).await.map_err(|source| Error::Read {
                        what: format!("CustomRun {namespace}/{name}"),
                        source,
                    })?;
                    continue;
                }
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    return Ok(Action::await_change());
                }
                Err(source) => return Err(Error::WriteStatus { name, source }),
            }
        }
        if let Some(cleanup) = &plan.ledger_cleanup {
            clean_ledger(&api, &run, cleanup).await;
        }
        let due = plan
            .requeue_at
            .map(|at| tokio::time::Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO));
        ctx.deadlines.set(&namespace, &name, due);
        follow_line(&ctx, &run, line.as_deref(), &plan);
        // After the write: the notifier tells the sinks what the status now says, in the
        // background (a sink that is down never holds up a decision).
        if let Some(notifier) = &ctx.notifier {
            notifier.observe(&run);
        }
        return Ok(Action::await_change());
    }
    Err(Error::Conflicts(name))
}

/// The gate on its supersede line.
fn waiting_on<'a>(run: &'a CustomRun, key: &'a str) -> supersede::Waiting<'a> {
    supersede::Waiting {
        namespace: run.metadata.namespace.as_deref().unwrap_or_default(),
        key,
        created: run
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| crate::api::time::from_jiff(t.0))
            .unwrap_or_default(),
        name: run.metadata.name.as_deref().unwrap_or_default(),
        pipeline_run: run
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PIPELINE_RUN_LABEL))
            .map(String::as_str)
            .unwrap_or_default(),
    }
}

/// Keeps the supersede lines up to date once a plan is applied: a gate that (still) waits
/// is on its line, and the older gates there are planned again at once, to end
/// `Superseded`; a gate that ended leaves its line.
fn follow_line(ctx: &Context, run: &CustomRun, line_before: Option<&str>, plan: &Plan) {
    let namespace = run.metadata.namespace.as_deref().unwrap_or_default();
    match supersede_line(&plan.status) {
        Some(key) => {
            let gate = waiting_on(run, &key);
            let now = tokio::time::Instant::now();
            for older in ctx.lines.waiting(gate) {
                ctx.deadlines.set(namespace, &older, Some(now));
            }
            // Started after a newer gate of its line (a restart plans in any order).
            if line_before.is_none() && ctx.lines.newer(gate).is_some() {
                ctx.deadlines.set(namespace, gate.name, Some(now));
            }
        }
        None => {
            if let Some(key) = line_before {
                let gate = waiting_on(run, key);
                ctx.lines.ended(namespace, key, gate.created, gate.name);
            }
        }
    }
}

/// Events and metrics, after the status they describe is stored.
async fn announce(ctx: &Context, run: &CustomRun, plan: &Plan) {
    for event in &plan.events {
        // Each event is stamped when it is published, not with the plan's time: one plan
        // can carry several (DecisionRecorded, then Approved), and their names and order
        // come from the stamp.
        let published = (ctx.clock)();
        // An event is information, not state: failing to publish one must not redo the
        // status write (which would publish the others twice).
        if let Err(e) = ctx.events.publish(run, event, published).await {
            warn!(name = %run.name_any(), reason = event.reason, error = %e, "publishing event failed");
            ctx.metrics.reconcile_error("event");
        }
    }
    if let Some(ending) = &plan.ending {
        info!(namespace = %run.namespace().unwrap_or_default(), name = %run.name_any(),
              outcome = ending.outcome, "gate attempt ended");
        ctx.metrics.ended(ending.outcome, ending.waited);
    }
}

/// Removes records of archived attempts, only if the ledger is still what was planned from.
async fn clean_ledger(api: &Api<CustomRun>, run: &CustomRun, cleanup: &LedgerCleanup) {
    let path = format!(
        "/metadata/annotations/{}",
        LEDGER_ANNOTATION.replace('/', "~1")
    );
    let change = match &cleanup.remaining {
        Some(value) => json!({"op": "replace", "path": path, "value": value}),
        None => json!({"op": "remove", "path": path}),
    };
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": path, "value": cleanup.expected},
        change,
    ]))
    .expect("a well-formed JSON patch");
    // A failed test means a decision arrived meanwhile: the watch brings it, and the next
    // plan asks for the clean-up again. Archived records never count twice either way.
    if let Err(e) = api
        .patch(
            &run.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        debug!(name = %run.name_any(), error = %e, "ledger clean-up deferred");
    }
}

/// A named policy's spec, fetched when a gate still has to freeze it.
enum FetchedPolicy {
    NotNeeded,
    Found(Value),
    Missing,
}

impl FetchedPolicy {
    fn as_lookup(&self) -> PolicyLookup<'_> {
        match self {
            Self::NotNeeded => PolicyLookup::NotNeeded,
            Self::Found(spec) => PolicyLookup::Found(spec),
            Self::Missing => PolicyLookup::Missing,
        }
    }
}

async fn look_up_policy(ctx: &Context, run: &CustomRun) -> Result<FetchedPolicy, Error> {
    let Some(name) = policy_to_look_up(run) else {
        return Ok(FetchedPolicy::NotNeeded);
    };
    let namespace = run.namespace().unwrap_or_default();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(crate::approval::GROUP, "v1alpha1", KIND),
        "approvals",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    match api.get_opt(name).await {
        Ok(Some(policy)) => Ok(FetchedPolicy::Found(
            policy.data.get("spec").cloned().unwrap_or(Value::Null),
        )),
        Ok(None) => Ok(FetchedPolicy::Missing),
        // Without the Approval CRD installed the API server answers 404 for the resource.
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(FetchedPolicy::Missing),
        Err(source) => Err(Error::Read {
            what: format!("Approval {namespace}/{name}"),
            source,
        }),
    }
}

/// Decides what to do after a failed reconcile.
pub fn error_policy(run: Arc<WatchedRun>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_error(error.category());
    warn!(namespace = %run.namespace().unwrap_or_default(), name = %run.name_any(),
          category = error.category(), %error, "reconcile failed");
    if error.is_permanent() {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(Duration::from_secs(5))
    }
}

/// Counts gates that are waiting, from the watch caches (no API call).
pub fn count_waiting(stores: &[Store<WatchedRun>]) -> usize {
    stores
        .iter()
        .flat_map(|store| store.state())
        .filter(|run| run.gate().is_some())
        .count()
}

/// Where to watch.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every namespace.
    AllNamespaces,
    /// Only these.
    Namespaces(Vec<String>),
}

/// Runs the reconciler until `shutdown` resolves. `health` learns when each watch has
/// delivered its first list, and how the watches fare after that.
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    health: Arc<WatchHealth>,
    stores_out: Arc<std::sync::Mutex<Vec<Store<WatchedRun>>>>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    // One watch per namespace, or one for all (`None`).
    let namespaces: Vec<Option<String>> = match &scope {
        Scope::AllNamespaces => vec![None],
        Scope::Namespaces(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut controllers = Vec::new();
    let mut stores = Vec::new();
    // Due gates go to the controller of their namespace.
    let mut routes = Vec::new();
    for namespace in namespaces {
        let api: Api<WatchedRun> = match &namespace {
            None => Api::all(ctx.client.clone()),
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        };
        let (due_tx, due_rx) = futures::channel::mpsc::unbounded();
        routes.push((namespace, due_tx));
        let (reader, writer) = reflector::store();
        let watch_health = health.clone();
        let metrics = ctx.metrics.clone();
        let stream = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .inspect(move |event| {
                let now = (chrono::Utc::now)();
                match event {
                    Ok(_) => watch_health.event(now),
                    Err(e) => {
                        // The watcher retries with backoff; we say so, and readiness
                        // turns false if it stays broken.
                        warn!(error = %e, "watch failed; retrying");
                        metrics.watch_error();
                        watch_health.error(now);
                    }
                }
            })
            .reflect(writer)
            .applied_objects();
        stores.push(reader.clone());
        let controller = Controller::for_stream(stream, reader)
            // Bounded: after a restart every gate is reconciled at once, and unbounded
            // concurrency would hold a working copy of each at the same time.
            .with_config(
                kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
            )
            .graceful_shutdown_on(shutdown.clone())
            .reconcile_all_on(ctx.leader.gained())
            .reconcile_on(due_rx)
            .run(reconcile_watched, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    debug!(error = %e, "controller stream");
                }
            });
        controllers.push(controller);
    }
    stores_out
        .lock()
        .expect("not poisoned")
        .extend(stores.iter().cloned());
    // Polled in this task, beside the controllers: a store's readiness is one oneshot
    // receiver shared by its clones, which wakes only the task that polled it last (the
    // controllers wait on it too). It never ends by itself, so that a first list that never
    // succeeds cannot hold up the shutdown: the controllers end, and so does this.
    let synced = health.clone();
    let readiness = async move {
        for store in &stores {
            if store.wait_until_ready().await.is_err() {
                return futures::future::pending().await;
            }
        }
        health.synced();
        info!("watch caches synced: ready");
        futures::future::pending::<()>().await
    };
    // The controllers stop gracefully (finishing reconciles in flight) once they run; while
    // they still wait for a first list there is nothing in flight, and they would not
    // notice the signal: stop right away.
    let unsynced_shutdown = async move {
        shutdown.await;
        if synced.is_synced() {
            futures::future::pending::<()>().await;
        }
        info!("stopping before the first list completed");
    };
    let mut due = Box::pin(ctx.deadlines.clone().due());
    let route_due = async move {
        while let Some(gate) = due.next().await {
            for (namespace, to) in &routes {
                if namespace.is_none() || *namespace == gate.namespace {
                    let _ = to.unbounded_send(gate.clone());
                }
            }
        }
    };
    tokio::select! {
        _ = futures::future::join_all(controllers) => {}
        () = route_due => {}
        () = readiness => {}
        () = unsynced_shutdown => {}
    }
}

/// How the watches fare, for readiness and metrics. Times are Unix seconds.
#[derive(Debug, Default)]
pub struct WatchHealth {
    synced: AtomicBool,
    /// When the watch started failing without an event since; 0 while it works.
    broken_since: AtomicI64,
    /// The last event or list the watch delivered.
    last_event: AtomicI64,
}

/// How long a watch may stay broken before the process reports itself not ready.
pub const BROKEN_WATCH_BOUND: Duration = Duration::from_secs(60);

impl WatchHealth {
    /// The watch delivered something: it works.
    pub fn event(&self, now: DateTime<Utc>) {
        self.broken_since.store(0, Ordering::SeqCst);
        self.last_event.store(now.timestamp(), Ordering::SeqCst);
    }

    /// The watch failed (the first failure of a streak starts the clock).
    pub fn error(&self, now: DateTime<Utc>) {
        let _ = self.broken_since.compare_exchange(
            0,
            now.timestamp(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Every watch delivered its first list.
    pub fn synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    /// Whether every watch delivered its first list.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// Ready, or why not.
    pub fn readiness(&self, now: DateTime<Utc>) -> Result<(), String> {
        if !self.synced.load(Ordering::SeqCst) {
            return Err("watch caches not synced yet".into());
        }
        let since = self.broken_since.load(Ordering::SeqCst);
        let broken_for = now.timestamp() - since;
        if since != 0 && broken_for >= BROKEN_WATCH_BOUND.as_secs() as i64 {
            return Err(format!(
                "the CustomRun watch has been failing for {broken_for}s (see the log)"
            ));
        }
        Ok(())
    }

    /// Seconds since the watch last delivered an event or list (`None` before the first).
    pub fn last_event_age(&self, now: DateTime<Utc>) -> Option<i64> {
        let last = self.last_event.load(Ordering::SeqCst);
        (last != 0).then(|| now.timestamp() - last)
    }
}

#[cfg(test)]
mod tests;
