//! The seal keys in the API server: one Secret (`approval-seal-key` in our namespace) that
//! the webhook seals with and the controller verifies with. Created by whichever process
//! starts first (the first create wins, the others read it), re-read every minute and at
//! once when a seal names a key this process does not hold yet (another replica rotated),
//! and rotated by `approval-controller rotate-seal-key`: a new current key, the old one kept
//! as `previous` so that what it sealed still verifies.
//!
//! Whoever can read this Secret can forge seals: it is readable only by the controller's
//! service account (and cluster administrators). Key material never reaches a log.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use ring::rand::{SecureRandom, SystemRandom};
use tracing::{info, warn};

use crate::approval::seal::{KEY_BYTES, Key, KeyError, Keyring, format_key, parse_key};
use crate::secrets;

/// The data entry holding the key that seals.
pub const CURRENT: &str = "current";
/// The data entry holding the key it replaced, which still verifies.
pub const PREVIOUS: &str = "previous";
/// How often the Secret is re-read.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// A seal naming an unknown key makes us re-read the Secret at most this often.
const LEARN_INTERVAL: Duration = Duration::from_secs(2);

/// Reads the keyring from the Secret's data.
pub fn keyring_from_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Keyring, KeyError> {
    let key = |name: &str| -> Result<Option<Key>, KeyError> {
        data.get(name)
            .map(|bytes| parse_key(&String::from_utf8_lossy(bytes)))
            .transpose()
    };
    let current = key(CURRENT)?.ok_or(KeyError::Malformed)?;
    Ok(Keyring::new(current, key(PREVIOUS)?))
}

/// The Secret's data with a fresh current key, and the current one (if any) kept as the
/// previous key.
pub fn rotated_data(
    existing: Option<&BTreeMap<String, Vec<u8>>>,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let random = SystemRandom::new();
    let mut secret = [0u8; KEY_BYTES];
    random
        .fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let mut id = [0u8; 4];
    random
        .fill(&mut id)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut data = BTreeMap::new();
    data.insert(CURRENT.to_string(), format_key(&id, &secret).into_bytes());
    if let Some(current) = existing.and_then(|d| d.get(CURRENT)) {
        data.insert(PREVIOUS.to_string(), current.clone());
    }
    Ok(data)
}

/// The keys in force, kept in step with the Secret.
pub struct KeySource {
    api: Api<Secret>,
    name: String,
    keyring: RwLock<Arc<Keyring>>,
    last_read: std::sync::Mutex<Instant>,
}

impl KeySource {
    /// Reads the Secret, creating it with a fresh key if it does not exist yet.
    pub async fn ensure(client: Client, namespace: &str, name: &str) -> anyhow::Result<Arc<Self>> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        for _ in 0..5 {
            if let Some(secret) = api
                .get_opt(name)
                .await
                .with_context(|| format!("reading Secret {namespace}/{name}"))?
            {
                let keyring = keyring_from_data(&secrets::data(&secret))
                    .with_context(|| format!("the seal keys in Secret {namespace}/{name}"))?;
                info!(
                    secret = name,
                    key = keyring.current().id(),
                    "seal keys loaded"
                );
                return Ok(Arc::new(Self {
                    api,
                    name: name.to_string(),
                    keyring: RwLock::new(Arc::new(keyring)),
                    last_read: std::sync::Mutex::new(Instant::now()),
                }));
            }
            let secret = secrets::owned(name, namespace, "Opaque", rotated_data(None)?, None);
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => info!(secret = name, "seal keys created"),
                // Another replica created it first: read theirs.
                Err(kube::Error::Api(status)) if status.is_already_exists() => {}
                Err(e) => return Err(e).context(format!("creating Secret {namespace}/{name}")),
            }
        }
        anyhow::bail!("Secret {namespace}/{name} kept changing under us")
    }

    /// A source that starts with `keyring` instead of reading the Secret (tests; it reads
    /// the Secret only when asked to refresh).
    pub fn with_keyring(
        client: Client,
        namespace: &str,
        name: &str,
        keyring: Keyring,
    ) -> Arc<Self> {
        Arc::new(Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            keyring: RwLock::new(Arc::new(keyring)),
            last_read: std::sync::Mutex::new(Instant::now()),
        })
    }

    /// The keys in force now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring.read().expect("not poisoned").clone()
    }

    /// Re-reads the Secret; a broken one is an error and the keys in force stay.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        *self.last_read.lock().expect("not poisoned") = Instant::now();
        let secret = self.api.get(&self.name).await?;
        let keyring = keyring_from_data(&secrets::data(&secret))?;
        let changed = self.keyring().current().id() != keyring.current().id();
        if changed {
            info!(secret = %self.name, key = keyring.current().id(), "seal keys rotated");
        }
        *self.keyring.write().expect("not poisoned") = Arc::new(keyring);
        Ok(())
    }

    /// Makes sure every key in `ids` is held, re-reading the Secret (at most every two
    /// seconds) if one is not: another replica may have rotated. Unknown ids that remain are
    /// someone else's, and what they sealed does not verify.
    pub async fn learn(&self, ids: &[String]) -> bool {
        let keyring = self.keyring();
        if ids.iter().all(|id| keyring.knows(id)) {
            return false;
        }
        if self.last_read.lock().expect("not poisoned").elapsed() < LEARN_INTERVAL {
            return false;
        }
        match self.refresh().await {
            Ok(()) => {
                let keyring = self.keyring();
                ids.iter().any(|id| keyring.knows(id))
            }
            Err(e) => {
                warn!(secret = %self.name, error = %e, "re-reading the seal keys failed");
                false
            }
        }
    }

    /// Re-reads the Secret every [`REFRESH_INTERVAL`], forever.
    pub async fn maintain(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(e) = self.refresh().await {
                warn!(secret = %self.name, error = %e, "re-reading the seal keys failed; keeping the ones in force");
            }
        }
    }
}

/// Replaces the current key with a new one; the old one becomes the previous key. Returns
/// the new key's id. Processes pick it up within [`REFRESH_INTERVAL`], or at once when they
/// meet a seal made with it.
pub async fn rotate(client: Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let existing = api
        .get(name)
        .await
        .with_context(|| format!("reading Secret {namespace}/{name}"))?;
    let data = rotated_data(Some(&secrets::data(&existing)))?;
    let id = keyring_from_data(&data)?.current().id().to_string();
    let secret = secrets::owned(name, namespace, "Opaque", data, existing.resource_version());
    // The resourceVersion makes a concurrent rotation fail instead of losing a key.
    api.replace(name, &PostParams::default(), &secret)
        .await
        .with_context(|| format!("writing Secret {namespace}/{name}"))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_keeps_the_old_key_as_previous_and_both_verify() {
        let first = rotated_data(None).unwrap();
        assert!(!first.contains_key(PREVIOUS));
        let before = keyring_from_data(&first).unwrap();
        let second = rotated_data(Some(&first)).unwrap();
        let after = keyring_from_data(&second).unwrap();
        assert_ne!(before.current().id(), after.current().id());
        assert_eq!(after.previous().unwrap().id(), before.current().id());
        assert_eq!(second[PREVIOUS], first[CURRENT]);
    }

    #[test]
    fn a_secret_without_a_current_key_is_an_error() {
        assert_eq!(
            keyring_from_data(&BTreeMap::new()).unwrap_err(),
            KeyError::Malformed
        );
        let broken: BTreeMap<String, Vec<u8>> =
            [(CURRENT.to_string(), b"k1.too-short".to_vec())].into();
        assert!(keyring_from_data(&broken).is_err());
    }
}
