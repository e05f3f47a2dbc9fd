//! Who may decide: approver entries (`alice`, `group:release-managers`) and the check of a
//! requester's identity against them. Identity always comes from the API server, never from
//! anything a user wrote.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const GROUP_PREFIX: &str = "group:";

/// One entry of a gate's `approvers` list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Approver {
    /// A user name exactly as the API server authenticates it.
    User(String),
    /// Every member of a group, written `group:<name>`.
    Group(String),
}

impl Approver {
    /// Reads one entry; `None` for an entry with no name (`""`, `group:`).
    pub fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        match entry.strip_prefix(GROUP_PREFIX) {
            Some(group) if !group.trim().is_empty() => Some(Self::Group(group.trim().to_string())),
            Some(_) => None,
            None if entry.is_empty() => None,
            None => Some(Self::User(entry.to_string())),
        }
    }
}

impl fmt::Display for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(user) => f.write_str(user),
            Self::Group(group) => write!(f, "{GROUP_PREFIX}{group}"),
        }
    }
}

impl Serialize for Approver {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Approver {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entry = String::deserialize(deserializer)?;
        Self::parse(&entry)
            .ok_or_else(|| serde::de::Error::custom(format!("empty approver entry `{entry}`")))
    }
}

/// The approvers of a gate, in the order they were written, without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Approvers(Vec<Approver>);

impl Approvers {
    /// Builds the list, dropping repeated entries.
    pub fn new(entries: impl IntoIterator<Item = Approver>) -> Self {
        let mut unique: Vec<Approver> = Vec::new();
        for entry in entries {
            if !unique.contains(&entry) {
                unique.push(entry);
            }
        }
        Self(unique)
    }

    /// The entries.
    pub fn entries(&self) -> &[Approver] {
        &self.0
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The users listed by name.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|a| match a {
            Approver::User(user) => Some(user.as_str()),
            Approver::Group(_) => None,
        })
    }

    /// True when at least one group is listed: the set of possible approvers is open.
    pub fn has_groups(&self) -> bool {
        self.0.iter().any(|a| matches!(a, Approver::Group(_)))
    }

    /// Whether a requester with this identity may decide.
    pub fn admits(&self, user: &str, groups: &[String]) -> bool {
        self.users().any(|u| u == user) || !self.matching_groups(groups).is_empty()
    }

    /// The requester's groups that are listed: what the ledger records as the reason a user
    /// was eligible (their other groups are none of the gate's business).
    pub fn matching_groups(&self, groups: &[String]) -> Vec<String> {
        groups
            .iter()
            .filter(|g| {
                self.0
                    .iter()
                    .any(|a| matches!(a, Approver::Group(listed) if listed == *g))
            })
            .cloned()
            .collect()
    }
}

impl Approvers {
    /// What a reader of the list may not see: entries that make whoever can act as a
    /// service account, or everyone, an approver. Shown as admission warnings.
    pub fn warnings(&self) -> Vec<String> {
        const ADVICE: &str = "list people instead; if a robot must approve, require \
                              minApprovals: 2 so that it never approves alone (README, Security model)";
        self.0
            .iter()
            .filter_map(|entry| match entry {
                Approver::User(user) => {
                    let rest = user.strip_prefix("system:serviceaccount:")?;
                    let namespace = rest.split(':').next().unwrap_or_default();
                    Some(format!(
                        "approver `{user}` is a service account: everyone who may impersonate \
                         it, read its tokens or run pods as it (the editors of namespace \
                         {namespace}) can approve as it, and a requester can approve under that \
                         second identity; {ADVICE}"
                    ))
                }
                Approver::Group(group) if group == "system:serviceaccounts" => Some(format!(
                    "approver `group:{group}` makes every service account of the cluster an \
                     approver, and so everyone who can act as one; {ADVICE}"
                )),
                Approver::Group(group) if group.starts_with("system:serviceaccounts:") => {
                    Some(format!(
                        "approver `group:{group}` makes every service account of namespace {} \
                         an approver, and so everyone who can act as one (its editors); {ADVICE}",
                        &group["system:serviceaccounts:".len()..]
                    ))
                }
                Approver::Group(group)
                    if group == "system:authenticated" || group == "system:unauthenticated" =>
                {
                    Some(format!(
                        "approver `group:{group}` makes everyone an approver: the gate protects \
                         nothing; {ADVICE}"
                    ))
                }
                Approver::Group(_) => None,
            })
            .collect()
    }
}

impl fmt::Display for Approvers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{entry}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approvers(entries: &[&str]) -> Approvers {
        Approvers::new(entries.iter().map(|e| Approver::parse(e).unwrap()))
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|g| g.to_string()).collect()
    }

    #[test]
    fn entries_parse_as_users_or_groups() {
        assert_eq!(
            Approver::parse("alice"),
            Some(Approver::User("alice".into()))
        );
        assert_eq!(
            Approver::parse(" group:release-managers "),
            Some(Approver::Group("release-managers".into()))
        );
        assert_eq!(
            Approver::parse("system:serviceaccount:ci:bot"),
            Some(Approver::User("system:serviceaccount:ci:bot".into()))
        );
        assert_eq!(Approver::parse(""), None);
        assert_eq!(Approver::parse("group:"), None);
        assert_eq!(Approver::parse("group: "), None);
    }

    #[test]
    fn a_listed_user_is_eligible_and_others_are_not() {
        let list = approvers(&["alice", "group:release-managers"]);
        assert!(list.admits("alice", &[]));
        assert!(!list.admits("mallory", &groups(&["system:authenticated"])));
        // A group named like a user does not make that user eligible, and vice versa.
        assert!(!list.admits("release-managers", &[]));
        assert!(!list.admits("bob", &groups(&["alice"])));
    }

    #[test]
    fn a_member_of_a_listed_group_is_eligible() {
        let list = approvers(&["alice", "group:release-managers"]);
        assert!(list.admits("bob", &groups(&["qa", "release-managers"])));
        assert_eq!(
            list.matching_groups(&groups(&["qa", "release-managers", "system:authenticated"])),
            groups(&["release-managers"])
        );
    }

    #[test]
    fn repeated_entries_are_listed_once_and_display_in_order() {
        let list = approvers(&["alice", "group:qa", "alice", "bob"]);
        assert_eq!(list.to_string(), "alice, group:qa, bob");
        assert_eq!(list.users().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(list.has_groups());
        assert!(!approvers(&["alice"]).has_groups());
    }

    #[test]
    fn service_accounts_and_everyone_groups_are_warned_about_and_people_are_not() {
        let list = approvers(&[
            "alice",
            "group:release-managers",
            "system:serviceaccount:ci:bot",
            "group:system:serviceaccounts:ci",
            "group:system:serviceaccounts",
            "group:system:authenticated",
        ]);
        let warnings = list.warnings();
        assert_eq!(warnings.len(), 4, "{warnings:#?}");
        assert!(warnings[0].starts_with(
            "approver `system:serviceaccount:ci:bot` is a service account: everyone who may \
             impersonate it, read its tokens or run pods as it (the editors of namespace ci)"
        ));
        assert!(warnings[0].ends_with(
            "require minApprovals: 2 so that it never approves alone (README, Security model)"
        ));
        assert!(warnings[1].contains("every service account of namespace ci"));
        assert!(warnings[2].contains("every service account of the cluster"));
        assert!(warnings[3].contains("makes everyone an approver"));
        assert!(approvers(&["alice", "group:sre"]).warnings().is_empty());
    }
}
