//! Leader election: every controller replica watches (its cache stays warm), only the holder
//! of the Lease `tekton-approval/approval-controller` reconciles. The Lease is kept by
//! `kube-lease-manager` (server-side apply, so two replicas never both take it); a replica
//! that stops releases it, one that dies loses it when it expires.
//!
//! Fencing: a replica that still believes it leads after losing the Lease (paused, cut off)
//! can at worst write a status planned from an object version the new leader has not
//! changed: every status write carries the resourceVersion it was planned on, so a write
//! over anyone else's is refused, and planning is a pure function of the object and the
//! time, so two replicas plan the same status.

use std::time::Duration;

use futures::Stream;
use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// How long a Lease stays valid after its holder last renewed it: the longest a dead
/// leader's gates wait for a new one, so it bounds how late a deadline can be applied
/// (the chaos soak with 300 gates saw 16 s past a deadline with 10 s).
pub const LEASE_DURATION: Duration = Duration::from_secs(6);
/// How long before expiry the holder renews it (every 4 s: one small write).
pub const LEASE_GRACE: Duration = Duration::from_secs(2);

/// Whether this replica leads, as the reconciler asks it.
#[derive(Clone, Debug)]
pub struct Leader(Option<watch::Receiver<bool>>);

impl Leader {
    /// Leads always: no election (a single replica, tests).
    pub fn always() -> Self {
        Self(None)
    }

    /// Whether this replica may reconcile now.
    pub fn is_leader(&self) -> bool {
        self.0.as_ref().is_none_or(|rx| *rx.borrow())
    }

    /// One item each time this replica becomes the leader: the reconciler then looks at
    /// every gate (a follower has skipped them all).
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let receiver = self.0.clone();
        futures::stream::unfold(receiver, |receiver| async move {
            let mut rx = receiver?;
            loop {
                if rx.changed().await.is_err() {
                    return None;
                }
                if *rx.borrow_and_update() {
                    return Some(((), Some(rx)));
                }
            }
        })
    }
}

/// The running election: its task holds, renews and finally releases the Lease.
pub struct Election {
    receiver: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Joins the election for Lease `name` in `namespace` as `identity` (unique per replica:
    /// the pod name).
    pub async fn start(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
    ) -> anyhow::Result<(Self, Leader)> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_DURATION.as_secs())
            .with_grace(LEASE_GRACE.as_secs())
            .build()
            .await?;
        let (receiver, task) = manager.watch().await;
        let mut log = receiver.clone();
        let identity = identity.to_string();
        tokio::spawn(async move {
            while log.changed().await.is_ok() {
                if *log.borrow_and_update() {
                    info!(%identity, "leading: reconciling gates");
                } else {
                    warn!(%identity, "no longer leading: only watching");
                }
            }
        });
        let leader = Leader(Some(receiver.clone()));
        Ok((Self { receiver, task }, leader))
    }

    /// Releases the Lease (if held) so that another replica takes over at once, waiting at
    /// most `timeout`. Every [`Leader`] must be dropped first: the election ends when the
    /// last receiver goes.
    pub async fn stop(self, timeout: Duration) {
        drop(self.receiver);
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(Ok(_))) => info!("lease released"),
            Ok(Ok(Err(e))) => warn!(error = %e, "releasing the lease failed; it expires by itself"),
            Ok(Err(e)) => warn!(error = %e, "the election task failed"),
            Err(_) => warn!("the lease was not released in time; it expires by itself"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_replica_reconciles_only_while_it_leads_and_hears_when_it_starts() {
        assert!(Leader::always().is_leader());
        let (sender, receiver) = watch::channel(false);
        let leader = Leader(Some(receiver));
        assert!(!leader.is_leader());
        let mut gained = Box::pin(leader.gained());
        sender.send(true).unwrap();
        assert_eq!(gained.next().await, Some(()));
        assert!(leader.is_leader());
        sender.send(false).unwrap();
        assert!(!leader.is_leader());
        sender.send(true).unwrap();
        assert_eq!(gained.next().await, Some(()));
        drop(sender);
        assert_eq!(gained.next().await, None);
        assert_eq!(Box::pin(Leader::always().gained()).next().await, None);
    }
}
