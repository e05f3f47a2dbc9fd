//! Who a Slack user is in Kubernetes: the platform team's mapping, `users.yaml` from the
//! `approval-slack-users` ConfigMap (mounted, read again for every interaction):
//!
//! ```yaml
//! U0123ABCD: {username: alice, groups: [release-managers]}
//! U0456EFGH: {username: bob}
//! ```
//!
//! Only this mapping makes a Slack user someone: a Slack display name or email in the
//! request is never believed. Unmapped users can do nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cli::view::Identity;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    username: String,
    #[serde(default)]
    groups: Vec<String>,
}

/// The mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    by_slack_id: BTreeMap<String, Identity>,
}

impl Users {
    /// Reads `users.yaml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let entries: BTreeMap<String, Entry> = serde_saphyr::from_str(text).map_err(|e| {
            format!(
                "users.yaml must map Slack user IDs to {{username, groups}}: {}",
                e.to_string().lines().next().unwrap_or_default()
            )
        })?;
        let mut by_slack_id = BTreeMap::new();
        for (id, entry) in entries {
            if entry.username.trim().is_empty() || entry.username.starts_with("system:") {
                return Err(format!(
                    "users.yaml: {id} must map to a person's user name, not `{}`",
                    entry.username
                ));
            }
            if let Some(group) = entry.groups.iter().find(|g| g.starts_with("system:")) {
                return Err(format!("users.yaml: {id} may not be given group `{group}`"));
            }
            by_slack_id.insert(
                id,
                Identity {
                    username: entry.username,
                    groups: entry.groups,
                },
            );
        }
        Ok(Self { by_slack_id })
    }

    /// The Kubernetes identity of a Slack user ID, if mapped.
    pub fn identity(&self, slack_user: &str) -> Option<&Identity> {
        self.by_slack_id.get(slack_user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_users_get_their_name_and_groups_and_nobody_else_is_anyone() {
        let users = Users::parse(
            "U0123ABCD: {username: alice, groups: [release-managers]}\nU0456: {username: bob}\n",
        )
        .unwrap();
        assert_eq!(
            users.identity("U0123ABCD"),
            Some(&Identity {
                username: "alice".into(),
                groups: vec!["release-managers".into()]
            })
        );
        assert_eq!(
            users.identity("U0456").unwrap().groups,
            Vec::<String>::new()
        );
        assert_eq!(users.identity("u0123abcd"), None);
        assert_eq!(users.identity("UNKNOWN"), None);
        assert_eq!(Users::parse("").unwrap(), Users::default());
    }

    #[test]
    fn the_mapping_cannot_make_anyone_a_system_identity() {
        let cases = [
            (
                "U1: {username: 'system:serviceaccount:tekton-approval:approval-controller'}",
                "a person's user name",
            ),
            ("U1: {username: ''}", "a person's user name"),
            (
                "U1: {username: eve, groups: ['system:masters']}",
                "may not be given group `system:masters`",
            ),
            ("U1: alice", "users.yaml must map Slack user IDs"),
            (
                "U1: {username: a, email: x}",
                "users.yaml must map Slack user IDs",
            ),
        ];
        for (yaml, expected) in cases {
            let error = Users::parse(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}
