//! Prometheus metrics: gates waiting, decisions by outcome, time to decision, reconcile
//! errors by category. Labels are `&'static str`: never free text, never unbounded.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabels {
    category: &'static str,
}

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    gates_waiting: Gauge<i64, AtomicI64>,
    decisions: Family<OutcomeLabels, Counter>,
    decision_seconds: Histogram,
    reconcile_errors: Family<CategoryLabels, Counter>,
    unverified: Family<KindLabels, Counter>,
    watch_errors: Counter,
    watch_event_age: Gauge<i64, AtomicI64>,
    notifications: Family<NotificationLabels, Counter>,
    chat_decisions: Family<OutcomeLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    sink: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("approval");
        let gates_waiting = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "gates_waiting",
            "Gates waiting for a decision",
            gates_waiting.clone(),
        );
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "decisions",
            "Attempts ended, by outcome (approved, rejected, timed_out, approved_on_timeout, rejected_on_timeout, cancelled, invalid, superseded)",
            decisions.clone(),
        );
        // 1 s to about 12 days: people decide in minutes to days.
        let decision_seconds = Histogram::new(exponential_buckets(1.0, 4.0, 12));
        registry.register(
            "decision_duration_seconds",
            "Time from the start of an attempt to its decision",
            decision_seconds.clone(),
        );
        let reconcile_errors = Family::<CategoryLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconcile failures by category",
            reconcile_errors.clone(),
        );
        let unverified = Family::<KindLabels, Counter>::default();
        registry.register(
            "unverified",
            "Things ignored because the webhook did not write them: gates not admitted (kind=gate), gates that cannot be read (kind=unreadable), ledger records without a valid seal (kind=record)",
            unverified.clone(),
        );
        let watch_errors = Counter::default();
        registry.register(
            "watch_errors",
            "Failures of the CustomRun watch (each is retried with backoff)",
            watch_errors.clone(),
        );
        let watch_event_age = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "watch_last_event_age_seconds",
            "Seconds since the CustomRun watch last delivered an event or a list (grows on an idle cluster; a steady rise with watch_errors means a broken watch)",
            watch_event_age.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notification deliveries by sink kind (slack, webhook, cloudevents; config when the configuration is unusable) and result (sent, failed after its retries)",
            notifications.clone(),
        );
        let chat_decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "chat_decisions",
            "Decisions asked for from chat, by outcome (recorded, denied, unmapped, ended, refused, duplicate)",
            chat_decisions.clone(),
        );
        Self {
            notifications,
            chat_decisions,
            watch_errors,
            watch_event_age,
            registry,
            gates_waiting,
            decisions,
            decision_seconds,
            reconcile_errors,
            unverified,
        }
    }
}

impl Metrics {
    /// Unsealed things were found and ignored (`gate` or `record`).
    pub fn unverified(&self, kind: &'static str, count: u64) {
        self.unverified
            .get_or_create(&KindLabels { kind })
            .inc_by(count);
    }

    /// The watch failed once.
    pub fn watch_error(&self) {
        self.watch_errors.inc();
    }

    /// Sets the age of the watch's last event (at scrape time).
    pub fn set_watch_event_age(&self, seconds: i64) {
        self.watch_event_age.set(seconds);
    }

    /// An attempt ended.
    pub fn ended(&self, outcome: &'static str, waited: Option<Duration>) {
        self.decisions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        if let Some(waited) = waited {
            self.decision_seconds.observe(waited.as_secs_f64());
        }
    }

    /// A notification was delivered (or failed after its retries).
    pub fn notification(&self, sink: &'static str, sent: bool) {
        let result = if sent { "sent" } else { "failed" };
        self.notifications
            .get_or_create(&NotificationLabels { sink, result })
            .inc();
    }

    /// A decision asked for from chat ended so.
    pub fn chat_decision(&self, outcome: &'static str) {
        self.chat_decisions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A reconcile failed.
    pub fn reconcile_error(&self, category: &'static str) {
        self.reconcile_errors
            .get_or_create(&CategoryLabels { category })
            .inc();
    }

    /// Sets the waiting-gates gauge (counted from the watch cache at scrape time).
    pub fn set_waiting(&self, waiting: usize) {
        self.gates_waiting.set(waiting as i64);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_their_labels() {
        let metrics = Metrics::default();
        metrics.set_waiting(3);
        metrics.ended("approved", Some(Duration::from_secs(90)));
        metrics.ended("cancelled", None);
        metrics.reconcile_error("conflict");
        metrics.notification("slack", true);
        metrics.notification("webhook", false);
        metrics.chat_decision("unmapped");
        let text = metrics.encode();
        for line in [
            r#"approval_notifications_total{sink="slack",result="sent"} 1"#,
            r#"approval_notifications_total{sink="webhook",result="failed"} 1"#,
            r#"approval_chat_decisions_total{outcome="unmapped"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.contains("approval_gates_waiting 3"), "{text}");
        assert!(
            text.contains(r#"approval_decisions_total{outcome="approved"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"approval_decisions_total{outcome="cancelled"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("approval_decision_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"approval_reconcile_errors_total{category="conflict"} 1"#),
            "{text}"
        );
    }
}
