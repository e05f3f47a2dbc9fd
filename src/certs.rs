//! The webhook's serving certificate in a cluster: a CA and a leaf for the Service's DNS
//! names, kept in one Secret that every replica shares. This module decides (create, keep,
//! renew) and issues; `certs::cluster` reads and writes the Secret and the caBundle.
//!
//! The CA lives ten years and is renewed a year before it expires; the leaf lives one year
//! and is renewed thirty days before. Renewing only the leaf keeps the caBundle unchanged,
//! so the API server never sees a certificate it does not trust.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub mod cluster;

/// Secret keys: the standard TLS pair, plus the CA that signs it.
pub const TLS_CERT: &str = "tls.crt";
/// The leaf's private key.
pub const TLS_KEY: &str = "tls.key";
/// The CA certificate: what the webhook configuration's caBundle holds.
pub const CA_CERT: &str = "ca.crt";
/// The CA's key, kept so that leaves can be renewed without changing the caBundle.
pub const CA_KEY: &str = "ca.key";

const DAY: Duration = Duration::from_secs(86_400);
/// How long a CA is valid.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Renew the CA this long before it expires.
pub const CA_RENEW_BEFORE: Duration = Duration::from_secs(365 * 86_400);
/// How long a serving certificate is valid.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 86_400);
/// Renew the serving certificate this long before it expires.
pub const LEAF_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// What to do with the Secret as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertPlan {
    /// It is good: serve it.
    Keep,
    /// The CA is good but the leaf expires soon or lacks a name: issue a new leaf with the
    /// same CA (the caBundle stays the same).
    RenewLeaf(String),
    /// Missing, unreadable, or the CA expires soon: a new CA and leaf.
    Issue(String),
}

/// The contents of the Secret, as PEM text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The CA certificate.
    pub ca_cert: String,
    /// The CA's private key.
    pub ca_key: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving certificate's private key.
    pub key: String,
}

impl Bundle {
    /// Reads Secret data; `None` if a key is missing or not UTF-8.
    pub fn from_data(data: &BTreeMap<String, Vec<u8>>) -> Option<Self> {
        let text = |key: &str| String::from_utf8(data.get(key)?.clone()).ok();
        Some(Self {
            ca_cert: text(CA_CERT)?,
            ca_key: text(CA_KEY)?,
            cert: text(TLS_CERT)?,
            key: text(TLS_KEY)?,
        })
    }

    /// The Secret data.
    pub fn to_data(&self) -> BTreeMap<String, Vec<u8>> {
        [
            (CA_CERT, &self.ca_cert),
            (CA_KEY, &self.ca_key),
            (TLS_CERT, &self.cert),
            (TLS_KEY, &self.key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone().into_bytes()))
        .collect()
    }
}

/// The facts the plan needs from a certificate.
struct Facts {
    not_after: DateTime<Utc>,
    dns_names: Vec<String>,
}

fn facts(pem: &str) -> Result<Facts, String> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("not a certificate: {e}"))?;
    let not_after = DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or("an expiry out of range")?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Facts {
        not_after,
        dns_names,
    })
}

/// Decides what to do with the Secret's data (`None`: no Secret) for a Service reached
/// as `dns_names`, at `now`.
pub fn plan(
    data: Option<&BTreeMap<String, Vec<u8>>>,
    dns_names: &[String],
    now: DateTime<Utc>,
) -> CertPlan {
    let Some(data) = data else {
        return CertPlan::Issue("no certificate yet".into());
    };
    let Some(bundle) = Bundle::from_data(data) else {
        return CertPlan::Issue(format!(
            "the Secret lacks one of {CA_CERT}, {CA_KEY}, {TLS_CERT}, {TLS_KEY}"
        ));
    };
    let ca = match facts(&bundle.ca_cert) {
        Ok(ca) => ca,
        Err(e) => return CertPlan::Issue(format!("the CA certificate is unreadable: {e}")),
    };
    if KeyPair::from_pem(&bundle.ca_key).is_err() {
        return CertPlan::Issue("the CA key is unreadable".into());
    }
    if ca.not_after - now < chrono::Duration::from_std(CA_RENEW_BEFORE).expect("fits") {
        return CertPlan::Issue(format!("the CA expires at {}", ca.not_after));
    }
    let leaf = match facts(&bundle.cert) {
        Ok(leaf) => leaf,
        Err(e) => return CertPlan::RenewLeaf(format!("the certificate is unreadable: {e}")),
    };
    if KeyPair::from_pem(&bundle.key).is_err() {
        return CertPlan::RenewLeaf("the key is unreadable".into());
    }
    if leaf.not_after - now < chrono::Duration::from_std(LEAF_RENEW_BEFORE).expect("fits") {
        return CertPlan::RenewLeaf(format!("the certificate expires at {}", leaf.not_after));
    }
    if let Some(missing) = dns_names.iter().find(|n| !leaf.dns_names.contains(n)) {
        return CertPlan::RenewLeaf(format!("the certificate does not name {missing}"));
    }
    CertPlan::Keep
}

/// Carries out a plan that is not `Keep`: a new leaf signed by the existing CA, or a new CA
/// and leaf. Key generation is random; nothing else is read from the outside.
pub fn issue(
    plan: &CertPlan,
    existing: Option<&BTreeMap<String, Vec<u8>>>,
    dns_names: &[String],
    now: DateTime<Utc>,
) -> Result<Bundle, rcgen::Error> {
    let reuse_ca = matches!(plan, CertPlan::RenewLeaf(_))
        .then(|| existing.and_then(Bundle::from_data))
        .flatten();
    let (ca_cert, ca_key) = match reuse_ca {
        Some(bundle) => (bundle.ca_cert, KeyPair::from_pem(&bundle.ca_key)?),
        None => {
            let key = KeyPair::generate()?;
            let cert = ca_params(now)?.self_signed(&key)?;
            (cert.pem(), key)
        }
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, &ca_key)?;
    let mut leaf = CertificateParams::new(dns_names.to_vec())?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().cloned().unwrap_or_default(),
    );
    leaf.not_before = to_offset(now - DAY);
    leaf.not_after = to_offset(now + LEAF_LIFETIME);
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(Bundle {
        ca_cert,
        ca_key: ca_key.serialize_pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn ca_params(now: DateTime<Utc>) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "tekton-approval-webhook-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // A day of slack for clocks that disagree.
    params.not_before = to_offset(now - DAY);
    params.not_after = to_offset(now + CA_LIFETIME);
    Ok(params)
}

fn to_offset(time: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(time.timestamp())
        .expect("certificate times are in range")
}

/// The names the API server uses to reach a Service.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn names() -> Vec<String> {
        service_dns_names("approval-controller", "tekton-approval")
    }

    fn issued_at(at: DateTime<Utc>) -> BTreeMap<String, Vec<u8>> {
        let plan = plan(None, &names(), at);
        issue(&plan, None, &names(), at).unwrap().to_data()
    }

    #[test]
    fn no_secret_means_a_new_ca_and_certificate() {
        assert_eq!(
            plan(None, &names(), now()),
            CertPlan::Issue("no certificate yet".into())
        );
    }

    #[test]
    fn a_fresh_certificate_is_kept_across_restarts() {
        let data = issued_at(now());
        assert_eq!(plan(Some(&data), &names(), now()), CertPlan::Keep);
        let later = now() + chrono::Duration::days(300);
        assert_eq!(plan(Some(&data), &names(), later), CertPlan::Keep);
    }

    #[test]
    fn the_leaf_is_renewed_thirty_days_before_it_expires_with_the_same_ca() {
        let data = issued_at(now());
        let late = now() + chrono::Duration::days(336);
        let decision = plan(Some(&data), &names(), late);
        assert!(
            matches!(&decision, CertPlan::RenewLeaf(why) if why.starts_with("the certificate expires at 2027-11-23")),
            "{decision:?}"
        );
        let renewed = issue(&decision, Some(&data), &names(), late).unwrap();
        let before = Bundle::from_data(&data).unwrap();
        assert_eq!(renewed.ca_cert, before.ca_cert, "the caBundle stays valid");
        assert_ne!(renewed.cert, before.cert);
        assert_eq!(
            plan(Some(&renewed.to_data()), &names(), late),
            CertPlan::Keep
        );
    }

    #[test]
    fn the_ca_is_replaced_a_year_before_it_expires() {
        let data = issued_at(now());
        let late = now() + chrono::Duration::days(9 * 365 + 10);
        let decision = plan(Some(&data), &names(), late);
        assert!(
            matches!(&decision, CertPlan::Issue(why) if why.starts_with("the CA expires at")),
            "{decision:?}"
        );
        let renewed = issue(&decision, Some(&data), &names(), late).unwrap();
        assert_ne!(renewed.ca_cert, Bundle::from_data(&data).unwrap().ca_cert);
    }

    #[test]
    fn a_certificate_for_another_service_name_is_renewed() {
        let data = issued_at(now());
        let other = service_dns_names("approval-webhook", "tekton-approval");
        assert_eq!(
            plan(Some(&data), &other, now()),
            CertPlan::RenewLeaf(
                "the certificate does not name approval-webhook.tekton-approval.svc".into()
            )
        );
    }

    #[test]
    fn damaged_secrets_are_replaced_not_served() {
        let mut data = issued_at(now());
        data.insert(TLS_CERT.into(), b"garbage".to_vec());
        assert!(matches!(
            plan(Some(&data), &names(), now()),
            CertPlan::RenewLeaf(_)
        ));
        data.insert(CA_CERT.into(), b"garbage".to_vec());
        assert!(matches!(
            plan(Some(&data), &names(), now()),
            CertPlan::Issue(_)
        ));
        data.remove(CA_KEY);
        assert_eq!(
            plan(Some(&data), &names(), now()),
            CertPlan::Issue("the Secret lacks one of ca.crt, ca.key, tls.crt, tls.key".into())
        );
    }

    #[test]
    fn the_issued_certificate_is_one_rustls_serves_and_the_ca_verifies() {
        let bundle = Bundle::from_data(&issued_at(now())).unwrap();
        let leaf = facts(&bundle.cert).unwrap();
        assert_eq!(leaf.dns_names, names());
        assert!(crate::webhook::certified_key_from_pem(&bundle.cert, &bundle.key).is_ok());
        // The leaf chains to the CA: verify its signature with the CA's public key.
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(bundle.ca_cert.as_bytes()).unwrap();
        let ca = ca_pem.parse_x509().unwrap();
        let (_, leaf_pem) = x509_parser::pem::parse_x509_pem(bundle.cert.as_bytes()).unwrap();
        let leaf = leaf_pem.parse_x509().unwrap();
        assert_eq!(leaf.issuer(), ca.subject());
        leaf.verify_signature(Some(ca.public_key())).unwrap();
    }
}
