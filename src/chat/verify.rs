//! Is this request from Slack? Slack signs every request with the app's signing secret:
//! `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<timestamp>:<body>")>`, with the
//! timestamp in `X-Slack-Request-Timestamp`. A request more than five minutes from our
//! clock is refused, so a recorded request cannot be replayed later; within those five
//! minutes, [`Replays`] refuses a second delivery of the same signature.

use std::collections::HashMap;

use ring::hmac;

/// How far a request's timestamp may be from our clock.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a request is not believed. Each is answered 401, saying no more than that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No timestamp or signature.
    #[error("the request is not signed")]
    Unsigned,
    /// Too old (or from the future).
    #[error("the request's timestamp is more than five minutes off")]
    Stale,
    /// The signature does not match.
    #[error("the request's signature does not match")]
    BadSignature,
}

/// Checks a request's signature (constant-time) and age.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refused::Unsigned);
    };
    let sent: i64 = timestamp.trim().parse().map_err(|_| Refused::Unsigned)?;
    if (now - sent).abs() > TOLERANCE_SECONDS {
        return Err(Refused::Stale);
    }
    let tag = signature
        .strip_prefix("v0=")
        .and_then(decode_hex)
        .ok_or(Refused::BadSignature)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = Vec::with_capacity(body.len() + timestamp.len() + 4);
    signed.extend_from_slice(b"v0:");
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b':');
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &tag).map_err(|_| Refused::BadSignature)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Signatures already acted on, for as long as their requests are fresh: Slack delivers a
/// request again when our answer is slow, and each delivery carries the same signature.
#[derive(Debug, Default)]
pub struct Replays {
    seen: HashMap<String, i64>,
}

impl Replays {
    /// Whether `signature` (a verified one) is new; remembers it. Forgets those past the
    /// tolerance. Hex digits are compared without case: `v0=AB..` is `v0=ab..`.
    pub fn first(&mut self, signature: &str, now: i64) -> bool {
        self.seen.retain(|_, at| now - *at <= 2 * TOLERANCE_SECONDS);
        match self.seen.entry(signature.to_ascii_lowercase()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Slack's "Verifying requests from Slack".
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const SENT: i64 = 1531420618;

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(
            verify(
                SECRET.as_bytes(),
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                SENT + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_body_a_wrong_secret_or_a_malformed_signature_is_refused() {
        let now = SENT;
        let tampered = BODY.replace("roadrunner", "coyote");
        let cases = [
            (SECRET, SIGNATURE, tampered.as_str()),
            ("another-secret", SIGNATURE, BODY),
            (
                SECRET,
                "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                BODY,
            ),
            (SECRET, "v0=a2114d", BODY),
            (SECRET, "v0=zz", BODY),
            (
                SECRET,
                "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                BODY,
            ),
        ];
        for (secret, signature, body) in cases {
            assert_eq!(
                verify(
                    secret.as_bytes(),
                    Some(TIMESTAMP),
                    Some(signature),
                    body.as_bytes(),
                    now
                ),
                Err(Refused::BadSignature),
                "{secret} {signature}"
            );
        }
    }

    #[test]
    fn a_request_older_or_newer_than_five_minutes_is_refused_even_when_signed() {
        let check = |now| {
            verify(
                SECRET.as_bytes(),
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now,
            )
        };
        assert_eq!(check(SENT + 300), Ok(()));
        assert_eq!(check(SENT + 301), Err(Refused::Stale));
        assert_eq!(check(SENT - 301), Err(Refused::Stale));
    }

    #[test]
    fn an_unsigned_request_is_refused() {
        assert_eq!(
            verify(b"s", None, Some(SIGNATURE), b"", SENT),
            Err(Refused::Unsigned)
        );
        assert_eq!(
            verify(b"s", Some(TIMESTAMP), None, b"", SENT),
            Err(Refused::Unsigned)
        );
        assert_eq!(
            verify(b"s", Some("yesterday"), Some(SIGNATURE), b"", SENT),
            Err(Refused::Unsigned)
        );
    }

    #[test]
    fn a_second_delivery_of_the_same_request_is_a_replay_until_it_is_stale_anyway() {
        let mut replays = Replays::default();
        assert!(replays.first("v0=aa", 100));
        assert!(!replays.first("v0=aa", 150));
        assert!(replays.first("v0=bb", 150));
        assert!(!replays.first("v0=AA", 160), "the same tag in capitals");
        assert!(
            replays.first("v0=aa", 100 + 2 * TOLERANCE_SECONDS + 1),
            "forgotten once stale"
        );
    }
}
