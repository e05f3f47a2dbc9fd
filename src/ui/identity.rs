//! Who is asking the web page: the user an authenticating proxy in front of it (oauth2-proxy,
//! or any OIDC proxy) verified. The proxy's headers are believed only on a request that also
//! carries the proxy's shared secret, which the browser never sees: a request that reaches
//! the page some other way, with headers of its own making, is refused. Pure.

use http::HeaderMap;
use ring::hmac;

use crate::cli::view::Identity;

/// How the proxy passes the identity on.
#[derive(Clone)]
pub struct ProxyHeaders {
    /// The header with the user name (oauth2-proxy: `X-Forwarded-User`).
    pub user: String,
    /// The header with the groups, comma-separated (oauth2-proxy: `X-Forwarded-Groups`).
    pub groups: String,
    /// The header with the shared secret.
    pub secret_header: String,
    /// The shared secret, as the proxy sends it.
    secret: hmac::Tag,
    /// A key to compare secrets with in constant time.
    key: hmac::Key,
    /// Prepended to the user name, as the API server's `--oidc-username-prefix` does.
    pub username_prefix: String,
    /// Prepended to each group, as `--oidc-groups-prefix` does.
    pub groups_prefix: String,
}

/// Why a request carries no identity we believe.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unidentified {
    /// No secret, or the wrong one: not from our proxy.
    #[error(
        "this page is reached through the sign-in proxy only: the request did not come from it"
    )]
    NotFromProxy,
    /// From the proxy, but without a user.
    #[error("the sign-in proxy sent no user name: sign in again")]
    NoUser,
}

impl ProxyHeaders {
    /// `secret` is the shared secret, at least 16 bytes.
    pub fn new(user: &str, groups: &str, secret_header: &str, secret: &[u8]) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system has randomness");
        Self {
            user: user.to_ascii_lowercase(),
            groups: groups.to_ascii_lowercase(),
            secret_header: secret_header.to_ascii_lowercase(),
            secret: hmac::sign(&key, secret),
            key,
            username_prefix: String::new(),
            groups_prefix: String::new(),
        }
    }

    /// With the prefixes the API server's OIDC settings use, so that the impersonated user is
    /// the one RBAC and the approver lists know.
    pub fn with_prefixes(mut self, username: &str, groups: &str) -> Self {
        self.username_prefix = username.to_string();
        self.groups_prefix = groups.to_string();
        self
    }

    /// The verified user of a request.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Identity, Unidentified> {
        let given = headers
            .get(&self.secret_header)
            .ok_or(Unidentified::NotFromProxy)?;
        hmac::verify(&self.key, given.as_bytes(), self.secret.as_ref())
            .map_err(|_| Unidentified::NotFromProxy)?;
        let text = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        let user = text(&self.user);
        let user = user.trim();
        if user.is_empty() {
            return Err(Unidentified::NoUser);
        }
        let mut groups: Vec<String> = text(&self.groups)
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| format!("{}{g}", self.groups_prefix))
            .collect();
        groups.dedup();
        Ok(Identity {
            username: format!("{}{user}", self.username_prefix),
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy() -> ProxyHeaders {
        ProxyHeaders::new(
            "X-Forwarded-User",
            "X-Forwarded-Groups",
            "X-Approval-Proxy-Secret",
            b"0123456789abcdef-secret",
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_proxys_user_and_groups_are_believed_with_its_secret() {
        let identity = proxy()
            .identify(&headers(&[
                ("x-approval-proxy-secret", "0123456789abcdef-secret"),
                ("x-forwarded-user", "alice"),
                ("x-forwarded-groups", "release-managers, sre"),
            ]))
            .unwrap();
        assert_eq!(identity.username, "alice");
        assert_eq!(identity.groups, ["release-managers", "sre"]);
    }

    #[test]
    fn headers_without_the_secret_are_not_believed() {
        for secret in [None, Some("guess"), Some("0123456789abcdef-secreT")] {
            let mut pairs = vec![("x-forwarded-user", "mallory")];
            if let Some(secret) = secret {
                pairs.push(("x-approval-proxy-secret", secret));
            }
            assert_eq!(
                proxy().identify(&headers(&pairs)),
                Err(Unidentified::NotFromProxy),
                "{secret:?}"
            );
        }
    }

    #[test]
    fn a_request_from_the_proxy_without_a_user_is_refused() {
        let only_secret = headers(&[("x-approval-proxy-secret", "0123456789abcdef-secret")]);
        assert_eq!(proxy().identify(&only_secret), Err(Unidentified::NoUser));
    }

    #[test]
    fn prefixes_make_the_names_rbac_knows() {
        let identity = proxy()
            .with_prefixes("oidc:", "oidc:")
            .identify(&headers(&[
                ("x-approval-proxy-secret", "0123456789abcdef-secret"),
                ("x-forwarded-user", "alice@example.com"),
                ("x-forwarded-groups", "release-managers"),
            ]))
            .unwrap();
        assert_eq!(identity.username, "oidc:alice@example.com");
        assert_eq!(identity.groups, ["oidc:release-managers"]);
    }
}
