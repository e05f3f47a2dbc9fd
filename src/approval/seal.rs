//! Seals: HMAC-SHA256 tags the webhook puts on what it writes (ledger records, the
//! requested-by stamp, the admission of a gate), so that the controller can tell the
//! webhook's writes from anyone else's. A record written while the webhook was bypassed
//! (its configuration removed during an upgrade, a later mutating webhook, someone
//! impersonating the controller) carries no valid seal, and never counts.
//!
//! Pure: the keys are passed in ([`Keyring`]); where they live is the API layer's business
//! (`crate::keys`). A seal names the key that made it, so keys can be rotated: the webhook
//! seals with the current key, and both sides verify with the current or the previous one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde_json::{Value, json};

use std::collections::BTreeMap;

use super::ledger::{Ledger, Record};
use super::{
    ADMITTED_ANNOTATION, LEDGER_ANNOTATION, REQUESTED_BY_ANNOTATION, REQUESTED_BY_SEAL_ANNOTATION,
};
use crate::api::{CustomRun, CustomRunSpec};

/// Bytes of a freshly made key: as long as the HMAC-SHA256 output.
pub const KEY_BYTES: usize = 32;

/// One key: an id (named in every seal it makes) and the secret.
#[derive(Clone)]
pub struct Key {
    id: String,
    secret: hmac::Key,
}

impl Key {
    /// A key from its id and secret bytes. The id must be non-empty and have no `.`.
    pub fn new(id: &str, secret: &[u8]) -> Result<Self, KeyError> {
        if id.is_empty() || id.contains('.') || !id.is_ascii() {
            return Err(KeyError::BadId(id.to_string()));
        }
        if secret.len() < 16 {
            return Err(KeyError::TooShort(secret.len()));
        }
        Ok(Self {
            id: id.to_string(),
            secret: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for Key {
    // Never the secret: keys must not reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The id is empty or contains a `.` (the separator in seals).
    #[error("a key id must be non-empty ASCII without `.`, got `{0}`")]
    BadId(String),
    /// Fewer than 16 bytes of secret.
    #[error("a key needs at least 16 bytes of secret, got {0}")]
    TooShort(usize),
    /// Not `<id>.<base64url secret>`.
    #[error("a key is written `<id>.<base64url secret>`")]
    Malformed,
}

/// The keys in force: the current one seals, it and the previous one verify.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: Key,
    previous: Option<Key>,
}

/// What checking a seal found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Made by one of our keys over exactly this content.
    Valid,
    /// No seal at all.
    Missing,
    /// Names a key this keyring does not hold: a key newer than ours (re-read the keys and
    /// check again), or one rotated out long ago.
    UnknownKey(String),
    /// Not made by our key over this content: forged, copied, or the content changed.
    Invalid,
}

impl Keyring {
    /// A keyring with the key that seals, and the one it replaced (still verifies).
    pub fn new(current: Key, previous: Option<Key>) -> Self {
        Self { current, previous }
    }

    /// The key that seals.
    pub fn current(&self) -> &Key {
        &self.current
    }

    /// The key that only verifies, if any.
    pub fn previous(&self) -> Option<&Key> {
        self.previous.as_ref()
    }

    /// Whether a key with this id is held.
    pub fn knows(&self, id: &str) -> bool {
        self.key(id).is_some()
    }

    fn key(&self, id: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.id == id)
    }

    /// `<key id>.<base64url tag>` over `message`.
    pub fn seal(&self, message: &Message) -> String {
        let tag = hmac::sign(&self.current.secret, message.0.as_bytes());
        format!(
            "{}.{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Checks `seal` against `message` (in constant time).
    pub fn verify(&self, message: &Message, seal: Option<&str>) -> Verdict {
        let Some(seal) = seal.filter(|s| !s.is_empty()) else {
            return Verdict::Missing;
        };
        let Some((id, tag)) = seal.split_once('.') else {
            return Verdict::Invalid;
        };
        let Some(key) = self.key(id) else {
            return Verdict::UnknownKey(id.to_string());
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return Verdict::Invalid;
        };
        match hmac::verify(&key.secret, message.0.as_bytes(), &tag) {
            Ok(()) => Verdict::Valid,
            Err(_) => Verdict::Invalid,
        }
    }
}

/// Reads a key written `<id>.<base64url secret>` (as the key Secret stores it).
pub fn parse_key(text: &str) -> Result<Key, KeyError> {
    let (id, secret) = text.trim().split_once('.').ok_or(KeyError::Malformed)?;
    let secret = URL_SAFE_NO_PAD
        .decode(secret)
        .map_err(|_| KeyError::Malformed)?;
    Key::new(id, &secret)
}

/// Writes a key as [`parse_key`] reads it.
pub fn format_key(id: &str, secret: &[u8]) -> String {
    format!("{id}.{}", URL_SAFE_NO_PAD.encode(secret))
}

/// What a seal covers: canonical JSON (keys sorted, no spaces) with a `seal` field naming
/// the kind, so that a seal of one kind can never pass for another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message(String);

impl Message {
    fn of(kind: &str, mut fields: Value) -> Self {
        fields["seal"] = Value::String(format!("approval.tekton.dev/{kind}/v1"));
        Self(canonical_json(&fields))
    }
}

/// Which object a seal is about. Records bind the UID, so that they cannot be carried over
/// to another object of the same name (one deleted and created again).
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    /// `metadata.uid`.
    pub uid: &'a str,
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
}

/// The content of a ledger record's seal: the record (all but the seal) and its gate.
pub fn record_message(gate: Gate<'_>, record: &Record) -> Message {
    let millis = |t: chrono::DateTime<chrono::Utc>| {
        // Milliseconds, as the webhook records them: the form that round-trips.
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut content = json!({
        "uid": gate.uid,
        "namespace": gate.namespace,
        "name": gate.name,
        "user": record.user,
        "groups": record.groups,
        "decision": record.decision,
        "comment": record.comment,
        "time": millis(record.time),
    });
    // Fields added later are sealed only when a record has them, so that the seals of
    // records written before they existed stay valid.
    if let Some(at) = record.effective_at {
        content["effectiveAt"] = json!(millis(at));
    }
    if !record.inputs.is_empty() {
        content["inputs"] = json!(record.inputs);
    }
    Message::of("record", content)
}

/// How an object was named when it was created: its UID does not exist yet when a mutating
/// webhook sees the request, and with `generateName` not even its name does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming<'a> {
    /// `metadata.name` as requested.
    Name(&'a str),
    /// `metadata.generateName`: the name is this prefix plus what the API server adds.
    GenerateName(&'a str),
}

impl<'a> Naming<'a> {
    /// The naming of a create request: the name if given, else the prefix.
    pub fn of(name: Option<&'a str>, generate_name: Option<&'a str>) -> Self {
        match (name.filter(|n| !n.is_empty()), generate_name) {
            (Some(name), _) => Self::Name(name),
            (None, prefix) => Self::GenerateName(prefix.unwrap_or_default()),
        }
    }

    /// Whether an object now called `name` could have been created with this naming.
    pub fn fits(&self, name: &str) -> bool {
        match self {
            Self::Name(requested) => *requested == name,
            Self::GenerateName(prefix) => name.starts_with(prefix) && name.len() > prefix.len(),
        }
    }

    fn to_value(self) -> Value {
        match self {
            Self::Name(name) => json!({"name": name}),
            Self::GenerateName(prefix) => json!({"generateName": prefix}),
        }
    }

    /// `name=...` or `generateName=...`, as kept beside a stamp's seal.
    pub fn to_text(self) -> String {
        match self {
            Self::Name(name) => format!("name={name}"),
            Self::GenerateName(prefix) => format!("generateName={prefix}"),
        }
    }

    /// Reads [`Self::to_text`].
    pub fn from_text(text: &'a str) -> Option<Self> {
        match text.split_once('=')? {
            ("name", name) => Some(Self::Name(name)),
            ("generateName", prefix) => Some(Self::GenerateName(prefix)),
            _ => None,
        }
    }
}

/// The content of the requested-by stamp's seal: who created which run. The PipelineRun's
/// UID does not exist yet when it is stamped, so the seal binds its namespace and naming;
/// Tekton copies both annotations to the gates it creates, which carry the PipelineRun's
/// name in a label to check the naming against.
pub fn stamp_message(namespace: &str, naming: Naming<'_>, user: &str) -> Message {
    Message::of(
        "requested-by",
        json!({"namespace": namespace, "run": naming.to_value(), "user": user}),
    )
}

/// The content of a gate's admission seal: everything the gate's policy comes from (the spec,
/// without Tekton's cancellation fields) and who started the run, as the webhook admitted
/// them at CREATE.
pub fn admission_message(
    namespace: &str,
    naming: Naming<'_>,
    spec: &Value,
    requested_by: Option<&str>,
) -> Message {
    Message::of(
        "admitted",
        json!({"namespace": namespace, "gate": naming.to_value(), "spec": spec,
               "requestedBy": requested_by}),
    )
}

/// The spec as the admission seal covers it: without Tekton's cancellation fields
/// (`spec.status`, `spec.statusMessage`), which may change later.
pub fn sealed_spec(spec: &CustomRunSpec) -> Value {
    let kept = CustomRunSpec {
        status: None,
        status_message: None,
        ..spec.clone()
    };
    serde_json::to_value(kept).expect("a spec serialises")
}

/// Whether a gate carries the webhook's admission seal over what it is now: its spec (but
/// cancellation), namespace, name (or the generateName it came from) and requester.
pub fn gate_admission(run: &CustomRun, keys: &Keyring) -> Verdict {
    let annotations = run.metadata.annotations.as_ref();
    let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    let namespace = run.metadata.namespace.as_deref().unwrap_or_default();
    let name = run.metadata.name.as_deref().unwrap_or_default();
    let spec = sealed_spec(&run.spec);
    let requested_by = get(REQUESTED_BY_ANNOTATION);
    let seal = get(ADMITTED_ANNOTATION);
    let by_name = keys.verify(
        &admission_message(namespace, Naming::Name(name), &spec, requested_by),
        seal,
    );
    match run.metadata.generate_name.as_deref() {
        Some(prefix) if by_name == Verdict::Invalid && Naming::GenerateName(prefix).fits(name) => {
            keys.verify(
                &admission_message(namespace, Naming::GenerateName(prefix), &spec, requested_by),
                seal,
            )
        }
        _ => by_name,
    }
}

/// The ids of the keys that the seals on these annotations name (the admission seal, the
/// stamp's, each ledger record's): what the API layer must hold before judging them.
pub fn key_ids(annotations: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let Some(annotations) = annotations else {
        return Vec::new();
    };
    let id = |seal: &str| seal.split_once('.').map(|(id, _)| id.to_string());
    let mut ids: Vec<String> = Vec::new();
    ids.extend(annotations.get(ADMITTED_ANNOTATION).and_then(|s| id(s)));
    ids.extend(
        annotations
            .get(REQUESTED_BY_SEAL_ANNOTATION)
            .and_then(|s| s.split_once(';'))
            .and_then(|(_, seal)| id(seal)),
    );
    let (ledger, _) = Ledger::parse_lenient(annotations.get(LEDGER_ANNOTATION).map(String::as_str));
    ids.extend(ledger.records().iter().filter_map(|r| id(&r.seal)));
    ids.sort();
    ids.dedup();
    ids
}

/// JSON with object keys sorted at every level and no whitespace: one text per value,
/// whatever order the fields arrived in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ledger::Decision;

    pub(crate) fn keyring() -> Keyring {
        Keyring::new(Key::new("k2", &[2; 32]).unwrap(), None)
    }

    fn record(user: &str, decision: Decision) -> Record {
        Record {
            user: user.into(),
            groups: vec!["release-managers".into()],
            decision,
            comment: "ship it".into(),
            time: "2026-11-22T10:00:00.250Z".parse().unwrap(),
            effective_at: None,
            inputs: Default::default(),
            seal: String::new(),
        }
    }

    const GATE: Gate<'static> = Gate {
        uid: "0b6c-uid",
        namespace: "ci",
        name: "release-approve",
    };

    #[test]
    fn a_record_without_the_later_fields_keeps_the_seal_it_had_before_they_existed() {
        // The message of a record as sealed before effectiveAt and inputs existed.
        let before = Message::of(
            "record",
            json!({"uid": GATE.uid, "namespace": GATE.namespace, "name": GATE.name,
                   "user": "alice", "groups": ["release-managers"], "decision": "approve",
                   "comment": "ship it", "time": "2026-11-22T10:00:00.250Z"}),
        );
        let keys = keyring();
        let seal = keys.seal(&before);
        assert_eq!(
            keys.verify(
                &record_message(GATE, &record("alice", Decision::Approve)),
                Some(&seal)
            ),
            Verdict::Valid
        );
        let mut deferred = record("alice", Decision::Approve);
        deferred.effective_at = Some("2026-11-22T12:00:00Z".parse().unwrap());
        deferred.inputs.insert("target".into(), "production".into());
        let sealed = keys.seal(&record_message(GATE, &deferred));
        assert_eq!(
            keys.verify(&record_message(GATE, &deferred), Some(&sealed)),
            Verdict::Valid
        );
    }

    #[test]
    fn a_sealed_record_verifies_and_any_change_breaks_it() {
        let keys = keyring();
        let original = record("alice", Decision::Approve);
        let seal = keys.seal(&record_message(GATE, &original));
        assert!(seal.starts_with("k2."), "{seal}");
        assert_eq!(
            keys.verify(&record_message(GATE, &original), Some(&seal)),
            Verdict::Valid
        );
        let mut changes: Vec<Record> = Vec::new();
        for change in [
            |r: &mut Record| r.user = "mallory".into(),
            |r: &mut Record| r.groups.clear(),
            |r: &mut Record| r.decision = Decision::Reject,
            |r: &mut Record| r.comment.push('!'),
            |r: &mut Record| r.time += chrono::Duration::milliseconds(1),
            |r: &mut Record| r.effective_at = Some(r.time + chrono::Duration::hours(1)),
            |r: &mut Record| {
                r.inputs.insert("target".into(), "production".into());
            },
        ] {
            let mut changed = original.clone();
            change(&mut changed);
            changes.push(changed);
        }
        for changed in changes {
            assert_eq!(
                keys.verify(&record_message(GATE, &changed), Some(&seal)),
                Verdict::Invalid,
                "{changed:?}"
            );
        }
        // The same record on another object (a gate deleted and created again has a new UID).
        let recreated = Gate {
            uid: "another-uid",
            ..GATE
        };
        assert_eq!(
            keys.verify(&record_message(recreated, &original), Some(&seal)),
            Verdict::Invalid
        );
    }

    #[test]
    fn a_seal_made_with_another_secret_under_our_key_id_is_invalid() {
        let forger = Keyring::new(Key::new("k2", &[9; 32]).unwrap(), None);
        let message = record_message(GATE, &record("mallory", Decision::Approve));
        assert_eq!(
            keyring().verify(&message, Some(&forger.seal(&message))),
            Verdict::Invalid
        );
    }

    #[test]
    fn missing_garbled_and_unknown_key_seals_are_told_apart() {
        let keys = keyring();
        let message = record_message(GATE, &record("alice", Decision::Approve));
        assert_eq!(keys.verify(&message, None), Verdict::Missing);
        assert_eq!(keys.verify(&message, Some("")), Verdict::Missing);
        assert_eq!(keys.verify(&message, Some("no-dot")), Verdict::Invalid);
        assert_eq!(keys.verify(&message, Some("k2.!!!")), Verdict::Invalid);
        assert_eq!(keys.verify(&message, Some("k2.AAAA")), Verdict::Invalid);
        assert_eq!(
            keys.verify(&message, Some("k3.AAAA")),
            Verdict::UnknownKey("k3".into())
        );
    }

    #[test]
    fn after_a_rotation_the_previous_key_still_verifies_and_the_new_one_seals() {
        let old = keyring();
        let message = record_message(GATE, &record("alice", Decision::Approve));
        let old_seal = old.seal(&message);
        let rotated = Keyring::new(
            Key::new("k3", &[3; 32]).unwrap(),
            Some(old.current().clone()),
        );
        assert_eq!(rotated.verify(&message, Some(&old_seal)), Verdict::Valid);
        let new_seal = rotated.seal(&message);
        assert!(new_seal.starts_with("k3."));
        assert_eq!(rotated.verify(&message, Some(&new_seal)), Verdict::Valid);
        // A process that has not re-read the keys yet learns that it should.
        assert_eq!(
            old.verify(&message, Some(&new_seal)),
            Verdict::UnknownKey("k3".into())
        );
        // Two rotations later the oldest key is gone.
        let twice = Keyring::new(
            Key::new("k4", &[4; 32]).unwrap(),
            Some(rotated.current().clone()),
        );
        assert_eq!(
            twice.verify(&message, Some(&old_seal)),
            Verdict::UnknownKey("k2".into())
        );
    }

    #[test]
    fn seals_of_one_kind_never_pass_for_another() {
        let keys = keyring();
        let stamp = stamp_message("ci", Naming::Name("release"), "dave");
        let seal = keys.seal(&stamp);
        let admitted = admission_message("ci", Naming::Name("release"), &json!({}), Some("dave"));
        assert_eq!(keys.verify(&admitted, Some(&seal)), Verdict::Invalid);
        assert_eq!(keys.verify(&stamp, Some(&seal)), Verdict::Valid);
        assert_eq!(
            keys.verify(
                &stamp_message("ci", Naming::GenerateName("release"), "dave"),
                Some(&seal)
            ),
            Verdict::Invalid
        );
        assert_eq!(
            keys.verify(
                &stamp_message("prod", Naming::Name("release"), "dave"),
                Some(&seal)
            ),
            Verdict::Invalid
        );
    }

    #[test]
    fn the_admission_seal_covers_the_spec_in_any_field_order_and_the_requester() {
        let keys = keyring();
        let spec = json!({"customRef": {"kind": "Approval", "apiVersion": "approval.tekton.dev/v1alpha1"}, "timeout": "1h0m0s"});
        let reordered: Value = serde_json::from_str(
            r#"{"timeout":"1h0m0s","customRef":{"apiVersion":"approval.tekton.dev/v1alpha1","kind":"Approval"}}"#,
        )
        .unwrap();
        let seal = keys.seal(&admission_message(
            "ci",
            Naming::Name("g"),
            &spec,
            Some("dave"),
        ));
        let check = |spec: &Value, requester: Option<&str>| {
            keys.verify(
                &admission_message("ci", Naming::Name("g"), spec, requester),
                Some(&seal),
            )
        };
        assert_eq!(check(&reordered, Some("dave")), Verdict::Valid);
        assert_eq!(check(&spec, Some("bob")), Verdict::Invalid);
        assert_eq!(check(&spec, None), Verdict::Invalid);
        let mut loosened = spec.clone();
        loosened["timeout"] = json!("1s");
        assert_eq!(check(&loosened, Some("dave")), Verdict::Invalid);
    }

    #[test]
    fn the_key_ids_named_by_a_gates_seals_are_found() {
        let annotations: BTreeMap<String, String> = [
            (ADMITTED_ANNOTATION, "k1.abc"),
            (REQUESTED_BY_SEAL_ANNOTATION, "name=r;k0.abc"),
            (
                LEDGER_ANNOTATION,
                r#"[{"user":"a","decision":"approve","time":"2026-11-22T10:00:00Z","seal":"k3.x"},
                    {"user":"b","decision":"approve","time":"2026-11-22T10:00:00Z","seal":"k1.y"}]"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(key_ids(Some(&annotations)), ["k0", "k1", "k3"]);
        assert!(key_ids(None).is_empty());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value: Value = serde_json::from_str(r#"{"b":[{"z":1,"a":"x\"y"}],"a":null}"#).unwrap();
        assert_eq!(
            canonical_json(&value),
            r#"{"a":null,"b":[{"a":"x\"y","z":1}]}"#
        );
    }

    #[test]
    fn naming_fits_the_name_it_produced() {
        assert!(Naming::Name("release").fits("release"));
        assert!(!Naming::Name("release").fits("release-x"));
        assert!(Naming::GenerateName("release-").fits("release-x7k2p"));
        assert!(!Naming::GenerateName("release-").fits("release-"));
        assert!(!Naming::GenerateName("release-").fits("other-x7k2p"));
        assert_eq!(
            Naming::of(Some(""), Some("release-")),
            Naming::GenerateName("release-")
        );
        for naming in [Naming::Name("a=b"), Naming::GenerateName("p-")] {
            assert_eq!(Naming::from_text(&naming.to_text()), Some(naming));
        }
        assert_eq!(Naming::from_text("uid=1"), None);
    }

    #[test]
    fn keys_round_trip_through_their_text_and_never_print_the_secret() {
        let text = format_key("k7", &[7; 32]);
        let key = parse_key(&text).unwrap();
        assert_eq!(key.id(), "k7");
        assert_eq!(format!("{key:?}"), "Key(k7)");
        assert_eq!(parse_key("k7").unwrap_err(), KeyError::Malformed);
        assert_eq!(
            parse_key(&format_key("k7", &[7; 8])).unwrap_err(),
            KeyError::TooShort(8)
        );
        assert_eq!(
            Key::new("a.b", &[1; 32]).unwrap_err(),
            KeyError::BadId("a.b".into())
        );
    }
}
