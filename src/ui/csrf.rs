//! Tokens against cross-site request forgery: every form of the page carries one, bound to
//! the signed-in user and valid for a few hours, and every state-changing request must bring
//! it back. A page on another site cannot read one, so it cannot make a browser decide.
//! Pure: the key and the time are parameters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use ring::hmac;

/// How long a form stays valid.
pub const VALIDITY: Duration = Duration::hours(8);

/// Makes and checks tokens with one key (shared by the page's replicas).
#[derive(Clone)]
pub struct Csrf {
    key: hmac::Key,
}

impl Csrf {
    /// A key derived from `secret` (the proxy's shared secret, which every replica holds).
    pub fn new(secret: &[u8]) -> Self {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let key = hmac::sign(&derive, b"approval-ui csrf v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
        }
    }

    fn message(user: &str, expires: i64) -> String {
        format!("{expires}\n{user}")
    }

    /// A token for `user`'s forms.
    pub fn issue(&self, user: &str, now: DateTime<Utc>) -> String {
        let expires = (now + VALIDITY).timestamp();
        let tag = hmac::sign(&self.key, Self::message(user, expires).as_bytes());
        format!("{expires}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Whether `token` was issued for `user` and has not expired.
    pub fn verify(&self, user: &str, token: &str, now: DateTime<Utc>) -> bool {
        let Some((expires, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), URL_SAFE_NO_PAD.decode(tag)) else {
            return false;
        };
        expires > now.timestamp()
            && hmac::verify(&self.key, Self::message(user, expires).as_bytes(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-01T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_token_verifies_for_its_user_until_it_expires() {
        let csrf = Csrf::new(b"the proxy secret");
        let token = csrf.issue("alice", now());
        assert!(csrf.verify("alice", &token, now()));
        assert!(csrf.verify("alice", &token, now() + VALIDITY - Duration::seconds(1)));
        assert!(!csrf.verify("alice", &token, now() + VALIDITY));
        assert!(!csrf.verify("mallory", &token, now()), "bound to the user");
        // Another replica with the same secret accepts it; another secret does not.
        assert!(Csrf::new(b"the proxy secret").verify("alice", &token, now()));
        assert!(!Csrf::new(b"another secret").verify("alice", &token, now()));
    }

    #[test]
    fn malformed_or_altered_tokens_are_refused() {
        let csrf = Csrf::new(b"the proxy secret");
        let token = csrf.issue("alice", now());
        let (expires, tag) = token.split_once('.').unwrap();
        let later = format!("{}.{tag}", expires.parse::<i64>().unwrap() + 3600);
        for bad in ["", "x", "1.2", "abc.def", &later] {
            assert!(!csrf.verify("alice", bad, now()), "{bad}");
        }
    }
}
