//! The notification sinks, as the platform team configures them: `sinks.yaml` from the
//! `approval-notifications` ConfigMap, and the secrets it names (bot tokens, signing keys)
//! from the `approval-notifications` Secret, both mounted as files. They are read again for
//! every delivery (two small files), so an edit takes effect without a restart.
//!
//! Secrets are held as [`SecretText`], whose `Debug` and `Display` never show the value:
//! they cannot reach a log line, an event or an error by accident.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::approval::params::is_sink_name;

/// Slack's Web API.
pub const SLACK_API: &str = "https://slack.com/api/";

/// A secret's value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends or keys with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// Where notifications of one sink go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Slack channel, one message per gate, updated as it progresses.
    Slack {
        /// The channel ID (`C0123456789`) or name.
        channel: String,
        /// The bot token (`xoxb-...`).
        token: SecretText,
    },
    /// A JSON POST per notice, signed with HMAC-SHA256.
    Webhook {
        /// Where to POST.
        url: String,
        /// The signing key.
        key: SecretText,
    },
    /// A structured-mode CloudEvent per notice.
    CloudEvents {
        /// Where to POST.
        url: String,
    },
}

impl Target {
    /// A metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Slack { .. } => "slack",
            Target::Webhook { .. } => "webhook",
            Target::CloudEvents { .. } => "cloudevents",
        }
    }
}

/// A configured sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    /// Where it goes.
    pub target: Target,
    /// The namespaces whose gates may use it; all when empty.
    pub namespaces: Vec<String>,
}

/// The configured sinks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sinks {
    /// By name.
    pub sinks: BTreeMap<String, Sink>,
    /// Slack's Web API base URL, ending in `/`.
    pub slack_api: String,
    /// The web page's base URL, for links in messages.
    pub ui_url: Option<String>,
}

impl Sinks {
    /// The sink `name`, if gates of `namespace` may use it.
    pub fn get(&self, name: &str, namespace: &str) -> Option<&Target> {
        self.sinks
            .get(name)
            .filter(|sink| {
                sink.namespaces.is_empty() || sink.namespaces.iter().any(|n| n == namespace)
            })
            .map(|sink| &sink.target)
    }

    /// The names gates of `namespace` may use, for an error that says which: a namespace
    /// learns nothing of sinks kept for others.
    pub fn names_for(&self, namespace: &str) -> String {
        let names: Vec<&str> = self
            .sinks
            .keys()
            .filter(|name| self.get(name, namespace).is_some())
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            return "none is configured for this namespace".into();
        }
        format!("the sinks it may use are {}", names.join(", "))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    #[serde(default)]
    slack_api_url: Option<String>,
    #[serde(default)]
    ui_url: Option<String>,
    #[serde(default)]
    sinks: Vec<SinkEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SinkEntry {
    name: String,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    slack: Option<SlackEntry>,
    #[serde(default)]
    webhook: Option<WebhookEntry>,
    #[serde(default)]
    cloud_events: Option<CloudEventsEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SlackEntry {
    channel: String,
    token_secret_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WebhookEntry {
    url: String,
    signing_secret_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CloudEventsEntry {
    url: String,
}

/// Why the configuration cannot be used. The messages name files, sinks and keys, never a
/// secret's value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `sinks.yaml` does not parse.
    #[error("sinks.yaml: {0}")]
    Syntax(String),
    /// A sink is wrong.
    #[error("sinks.yaml: sink `{sink}`: {problem}")]
    Sink {
        /// Its name.
        sink: String,
        /// What to fix.
        problem: String,
    },
    /// A URL is not one we send to.
    #[error("sinks.yaml: {0}")]
    Url(String),
}

/// Reads the sinks from `sinks_yaml` and the secrets it names from `secret` (key -> value).
pub fn parse(
    sinks_yaml: &str,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Sinks, ConfigError> {
    let file: File = serde_saphyr::from_str(sinks_yaml).map_err(|e| {
        ConfigError::Syntax(e.to_string().lines().next().unwrap_or_default().to_string())
    })?;
    let slack_api = match file.slack_api_url {
        Some(url) => {
            check_url("slackApiUrl", &url)?;
            if url.ends_with('/') {
                url
            } else {
                format!("{url}/")
            }
        }
        None => SLACK_API.to_string(),
    };
    let mut sinks = BTreeMap::new();
    for entry in file.sinks {
        let name = entry.name.clone();
        let fail = |problem: String| ConfigError::Sink {
            sink: name.clone(),
            problem,
        };
        if !is_sink_name(&name) {
            return Err(fail(
                "a sink's name is lowercase letters, digits and `-`".into(),
            ));
        }
        let read = |key: &str| {
            secret(key).map(SecretText::new).ok_or_else(|| {
                fail(format!(
                    "key `{key}` is not in the approval-notifications Secret"
                ))
            })
        };
        let target = match (entry.slack, entry.webhook, entry.cloud_events) {
            (Some(slack), None, None) => Target::Slack {
                channel: slack.channel,
                token: read(&slack.token_secret_key)?,
            },
            (None, Some(webhook), None) => {
                check_url(&format!("sink `{name}` url"), &webhook.url)?;
                Target::Webhook {
                    url: webhook.url,
                    key: read(&webhook.signing_secret_key)?,
                }
            }
            (None, None, Some(events)) => {
                check_url(&format!("sink `{name}` url"), &events.url)?;
                Target::CloudEvents { url: events.url }
            }
            _ => {
                return Err(fail(
                    "give exactly one of `slack`, `webhook` or `cloudEvents`".into(),
                ));
            }
        };
        let sink = Sink {
            target,
            namespaces: entry.namespaces,
        };
        if sinks.insert(name.clone(), sink).is_some() {
            return Err(fail("the name is used twice".into()));
        }
    }
    Ok(Sinks {
        sinks,
        slack_api,
        ui_url: file.ui_url.map(|u| u.trim_end_matches('/').to_string()),
    })
}

/// HTTPS, or plain HTTP to this machine only (a test's stand-in, a sidecar): a bot token or
/// a gate's details never cross a network in clear text.
fn check_url(what: &str, url: &str) -> Result<(), ConfigError> {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Err(ConfigError::Url(format!("{what} is not a URL")));
    };
    // Named by scheme and host only: a URL's path, query or user part may hold a token.
    let url = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("?"),
        uri.host().unwrap_or("?")
    );
    let loopback = matches!(
        uri.host(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(ConfigError::Url(format!(
            "{what} `{url}` must be https:// (http:// only to 127.0.0.1 or localhost)"
        ))),
    }
}

/// Where the mounted files are.
#[derive(Clone, Debug)]
pub struct Files {
    /// The ConfigMap's mount: `sinks.yaml`.
    pub config_dir: PathBuf,
    /// The Secret's mount: one file per key.
    pub secret_dir: PathBuf,
}

impl Files {
    /// Reads the configuration now. No `sinks.yaml` means no sinks.
    pub fn load(&self) -> Result<Sinks, ConfigError> {
        let path = self.config_dir.join("sinks.yaml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Sinks::default()),
            Err(e) => {
                return Err(ConfigError::Syntax(format!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        };
        let secret_dir = self.secret_dir.clone();
        parse(&text, &|key| read_secret(&secret_dir, key))
    }
}

/// A Secret key's file. Keys are file names: anything with a path in it is not a key.
fn read_secret(dir: &Path, key: &str) -> Option<String> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(dir.join(key))
        .ok()
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(key: &str) -> Option<String> {
        match key {
            "slack-bot-token" => Some("xoxb-very-secret".into()),
            "audit-key" => Some("hmac-very-secret".into()),
            _ => None,
        }
    }

    const SINKS: &str = "
uiUrl: https://approvals.example.com/
sinks:
- name: release-slack
  slack: {channel: C0123, tokenSecretKey: slack-bot-token}
- name: audit
  webhook: {url: 'https://audit.example.com/hook', signingSecretKey: audit-key}
- name: events
  cloudEvents: {url: 'http://127.0.0.1:8080/'}
";

    #[test]
    fn sinks_are_read_with_their_secrets() {
        let sinks = parse(SINKS, &secrets).unwrap();
        assert_eq!(sinks.slack_api, SLACK_API);
        assert_eq!(
            sinks.ui_url.as_deref(),
            Some("https://approvals.example.com")
        );
        assert_eq!(
            sinks.get("release-slack", "ci"),
            Some(&Target::Slack {
                channel: "C0123".into(),
                token: SecretText::new("xoxb-very-secret")
            })
        );
        assert_eq!(sinks.get("audit", "ci").unwrap().kind(), "webhook");
        assert_eq!(sinks.get("events", "ci").unwrap().kind(), "cloudevents");
        assert_eq!(
            sinks.names_for("ci"),
            "the sinks it may use are audit, events, release-slack"
        );
        assert_eq!(
            Sinks::default().names_for("ci"),
            "none is configured for this namespace"
        );
    }

    #[test]
    fn a_sink_kept_for_some_namespaces_is_not_anyone_elses() {
        let sinks = parse(
            "sinks: [{name: prod-slack, namespaces: [release], slack: {channel: C1, tokenSecretKey: slack-bot-token}}, {name: events, cloudEvents: {url: 'https://x'}}]",
            &secrets,
        )
        .unwrap();
        assert!(sinks.get("prod-slack", "release").is_some());
        assert_eq!(sinks.get("prod-slack", "sandbox"), None);
        assert_eq!(
            sinks.names_for("sandbox"),
            "the sinks it may use are events"
        );
        assert_eq!(
            sinks.names_for("release"),
            "the sinks it may use are events, prod-slack"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output_or_errors() {
        let sinks = parse(SINKS, &secrets).unwrap();
        let shown = format!("{sinks:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let missing = parse(SINKS, &|key| (key != "audit-key").then(|| "x".into())).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "sinks.yaml: sink `audit`: key `audit-key` is not in the approval-notifications Secret"
        );
    }

    #[test]
    fn each_mistake_says_what_to_fix() {
        let cases = [
            (
                "sinks: [{name: a}]",
                "sink `a`: give exactly one of `slack`, `webhook` or `cloudEvents`",
            ),
            (
                "sinks: [{name: a, cloudEvents: {url: 'https://x'}, webhook: {url: 'https://x', signingSecretKey: audit-key}}]",
                "sink `a`: give exactly one of",
            ),
            (
                "sinks: [{name: Bad_Name, cloudEvents: {url: 'https://x'}}]",
                "lowercase letters",
            ),
            (
                "sinks: [{name: a, cloudEvents: {url: 'https://x'}}, {name: a, cloudEvents: {url: 'https://y'}}]",
                "the name is used twice",
            ),
            (
                "sinks: [{name: a, cloudEvents: {url: 'http://example.com/'}}]",
                "must be https:// (http:// only to 127.0.0.1 or localhost)",
            ),
            (
                "sinks: [{name: a, cloudEvents: {url: 'http://user:hunter2@example.com/x?token=t0k'}}]",
                "sink `a` url `http://example.com` must be https://",
            ),
            (
                "slackApiUrl: 'ftp://x'\nsinks: []",
                "slackApiUrl `ftp://x` must be https://",
            ),
            ("sinks: [{name: a, colour: red}]", "sinks.yaml: "),
            ("sink: []", "sinks.yaml: "),
        ];
        for (yaml, expected) in cases {
            let error = parse(yaml, &secrets).unwrap_err().to_string();
            assert!(error.contains(expected), "{yaml}: {error}");
            assert!(
                !error.contains("hunter2") && !error.contains("t0k"),
                "{error}"
            );
        }
    }

    #[test]
    fn missing_files_mean_no_sinks_and_keys_are_plain_file_names() {
        let dir = std::env::temp_dir().join(format!("approval-sinks-{}", std::process::id()));
        let files = Files {
            config_dir: dir.join("none"),
            secret_dir: dir.join("none"),
        };
        assert_eq!(files.load().unwrap(), Sinks::default());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "xoxb-1\n").unwrap();
        assert_eq!(read_secret(&dir, "token").as_deref(), Some("xoxb-1"));
        assert_eq!(read_secret(&dir, "../token"), None);
        assert_eq!(read_secret(&dir, ".hidden"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
