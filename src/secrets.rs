//! Our Secrets as the API server holds them (the serving certificate, the seal keys): their
//! data as bytes, and the object we create or replace, labelled as ours.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

/// The Secret's data, as bytes.
pub fn data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// A Secret of ours to create (`resource_version: None`) or to replace, guarded by the
/// resourceVersion it was planned from.
pub fn owned(
    name: &str,
    namespace: &str,
    type_: &str,
    data: BTreeMap<String, Vec<u8>>,
    resource_version: Option<String>,
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            resource_version,
            labels: Some(
                [(
                    "app.kubernetes.io/part-of".to_string(),
                    "tekton-approval".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some(type_.to_string()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_through_the_secret() {
        let data: BTreeMap<String, Vec<u8>> = [("current".to_string(), b"k1.x".to_vec())].into();
        let secret = owned("s", "ns", "Opaque", data.clone(), Some("7".into()));
        assert_eq!(super::data(&secret), data);
        assert_eq!(secret.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(
            secret.metadata.labels.unwrap()["app.kubernetes.io/part-of"],
            "tekton-approval"
        );
    }
}
