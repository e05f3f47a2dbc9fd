//! When each waiting gate must be reconciled again: its deadline. The controller keeps these
//! itself instead of returning `Action::requeue` to kube-runtime, whose scheduler holds two
//! copies of the gate's `ObjectRef` (name, namespace, resourceVersion, each a heap string)
//! for every pending requeue: about 450 bytes per waiting gate, most of the leader's memory
//! beyond its cache. Here a gate costs its key once and two small index entries.
//!
//! Entries are hints, never state: a deadline that fires for a gate that was decided,
//! deleted or re-planned meanwhile just reconciles it, and planning is a pure function of the
//! object and the time, so a spurious wake-up changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::watched::WatchedRun;

/// The deadlines of waiting gates, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Deadlines {
    index: Mutex<Index>,
    changed: Notify,
}

impl Deadlines {
    /// Sets (or, with `None`, forgets) when the gate `namespace/name` is due.
    pub fn set(&self, namespace: &str, name: &str, due: Option<Instant>) {
        let mut index = self.index();
        let earliest_before = index.earliest();
        index.set(&key(namespace, name), due);
        let moved = index.earliest() != earliest_before;
        drop(index);
        if moved {
            self.changed.notify_one();
        }
    }

    /// When the gate `namespace/name` is due, if it has a deadline.
    pub fn due_at(&self, namespace: &str, name: &str) -> Option<Instant> {
        self.index().by_gate.get(&key(namespace, name)).copied()
    }

    /// Whether no gate has a deadline.
    pub fn is_empty(&self) -> bool {
        self.index().by_gate.is_empty()
    }

    /// The gates as they fall due, each once per deadline set; never ends.
    pub fn due(self: Arc<Self>) -> impl Stream<Item = ObjectRef<WatchedRun>> + Send + 'static {
        futures::stream::unfold(
            (self, Vec::<Arc<str>>::new()),
            |(deadlines, mut ready)| async move {
                loop {
                    if let Some(key) = ready.pop() {
                        return Some((object_ref(&key), (deadlines, ready)));
                    }
                    // Registered before the index is read, so that a change between the
                    // two is not missed.
                    let changed = deadlines.changed.notified();
                    let earliest = deadlines.index().earliest();
                    match earliest {
                        Some(at) if at <= Instant::now() => {
                            ready = deadlines.index().take_due(Instant::now());
                        }
                        Some(at) => {
                            tokio::select! {
                                () = tokio::time::sleep_until(at) => {}
                                () = changed => {}
                            }
                        }
                        None => changed.await,
                    }
                }
            },
        )
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().expect("not poisoned")
    }
}

fn key(namespace: &str, name: &str) -> Arc<str> {
    format!("{namespace}/{name}").into()
}

fn object_ref(key: &str) -> ObjectRef<WatchedRun> {
    // Names and namespaces never contain '/'.
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ObjectRef::new(name).within(namespace)
}

/// The pure part: deadlines indexed by gate and by time.
#[derive(Debug, Default)]
struct Index {
    by_gate: HashMap<Arc<str>, Instant>,
    by_time: BTreeSet<(Instant, Arc<str>)>,
}

impl Index {
    fn set(&mut self, key: &Arc<str>, due: Option<Instant>) {
        if let Some(old) = self.by_gate.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
        if let Some(at) = due {
            self.by_gate.insert(key.clone(), at);
            self.by_time.insert((at, key.clone()));
        }
    }

    fn earliest(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns every gate due at `now`.
    fn take_due(&mut self, now: Instant) -> Vec<Arc<str>> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first()
            && *at <= now
        {
            let (_, key) = self.by_time.pop_first().expect("just seen");
            self.by_gate.remove(&key);
            due.push(key);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::time::Duration;

    #[test]
    fn a_gate_has_one_deadline_the_latest_set() {
        let mut index = Index::default();
        let t0 = Instant::now();
        let gate = key("ci", "release-approve");
        index.set(&gate, Some(t0 + Duration::from_secs(60)));
        index.set(&gate, Some(t0 + Duration::from_secs(30)));
        assert_eq!(index.by_gate.len(), 1);
        assert_eq!(index.by_time.len(), 1);
        assert_eq!(index.earliest(), Some(t0 + Duration::from_secs(30)));
        index.set(&gate, None);
        assert_eq!(index.earliest(), None);
        assert!(index.by_gate.is_empty());
    }

    #[test]
    fn due_gates_are_taken_in_deadline_order_and_the_rest_stay() {
        let mut index = Index::default();
        let t0 = Instant::now();
        for (name, secs) in [("c", 30), ("a", 10), ("b", 20), ("later", 90)] {
            index.set(&key("ci", name), Some(t0 + Duration::from_secs(secs)));
        }
        let due = index.take_due(t0 + Duration::from_secs(30));
        assert_eq!(due, vec![key("ci", "a"), key("ci", "b"), key("ci", "c")]);
        assert_eq!(index.earliest(), Some(t0 + Duration::from_secs(90)));
        assert!(index.take_due(t0 + Duration::from_secs(89)).is_empty());
        assert_eq!(index.by_gate.len(), 1);
    }

    #[test]
    fn two_gates_may_share_a_deadline() {
        let mut index = Index::default();
        let at = Instant::now();
        index.set(&key("ci", "a"), Some(at));
        index.set(&key("prod", "a"), Some(at));
        assert_eq!(index.take_due(at).len(), 2);
    }

    #[test]
    fn a_key_is_a_namespaced_object_ref() {
        assert_eq!(
            object_ref(&key("ci", "release-approve")),
            ObjectRef::new("release-approve").within("ci")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gates_come_out_when_due_also_when_set_while_waiting() {
        let deadlines = Arc::new(Deadlines::default());
        let start = Instant::now();
        deadlines.set("ci", "late", Some(start + Duration::from_secs(3600)));
        let mut due = Box::pin(deadlines.clone().due());
        let setter = {
            let deadlines = deadlines.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                // Sooner than what the stream is sleeping towards: it must wake up.
                deadlines.set("ci", "soon", Some(Instant::now() + Duration::from_secs(10)));
                deadlines.set(
                    "ci",
                    "forgotten",
                    Some(Instant::now() + Duration::from_secs(1)),
                );
                deadlines.set("ci", "forgotten", None);
            })
        };
        let first = due.next().await.unwrap();
        assert_eq!(first, ObjectRef::new("soon").within("ci"));
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        let second = due.next().await.unwrap();
        assert_eq!(second, ObjectRef::new("late").within("ci"));
        assert_eq!(start.elapsed(), Duration::from_secs(3600));
        assert!(deadlines.is_empty());
        setter.await.unwrap();
    }
}
