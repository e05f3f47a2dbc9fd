//! Deciding a gate as a user: the one path every channel takes. The CLI writes with its own
//! credentials (kubectl's, or `--as`); the web page (and chat) write by impersonating the
//! user they verified, so that the API server, and with it the admission webhook, sees that
//! user and enforces approvers, quorum and self-approval exactly as for `kubectl`. What the
//! answers mean is decided by the pure rules in [`crate::cli::decide`].

use chrono::Utc;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::api::CustomRun;
use crate::approval::ledger::Decision;
use crate::cli::decide::{self, Extras, Recorded};
use crate::cli::exit::CliError;
use crate::cli::view::Identity;

/// Whose decision it is.
#[derive(Clone, Copy, Debug)]
pub enum Acting<'a> {
    /// Whoever the client authenticates as.
    AsClient,
    /// This user, by impersonation (the client needs `impersonate` on users and groups).
    AsUser(&'a Identity),
}

/// A decision to write.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// Approve or reject.
    pub decision: Decision,
    /// The comment (may be empty).
    pub comment: &'a str,
    /// Inputs and effect time of an approval.
    pub extras: &'a Extras,
    /// Who writes, for `managedFields` (`kubectl-approval`, `approval-ui`).
    pub field_manager: &'a str,
}

/// Writes a decision on `gate` (as read just before) and reads what the webhook recorded.
/// An ended gate is refused before anything is written; a denial is the webhook's message,
/// or `Ended` when the gate ended meanwhile.
pub async fn decide(
    client: &Client,
    acting: Acting<'_>,
    gate: &CustomRun,
    ask: Ask<'_>,
) -> Result<(CustomRun, Recorded), CliError> {
    decide::check_open(gate)?;
    let namespace = gate.metadata.namespace.clone().unwrap_or_default();
    let name = gate.metadata.name.clone().unwrap_or_default();
    let mut patch = decide::patch(ask.decision, ask.comment, ask.extras);
    // The gate as read, not one made since under the same name: the API server refuses a
    // patch whose UID is not the object's.
    if let Some(uid) = &gate.metadata.uid {
        patch["metadata"]["uid"] = uid.clone().into();
    }
    let api: Api<CustomRun> = Api::namespaced(as_acting(client, acting)?, &namespace);
    let params = PatchParams {
        field_manager: Some(ask.field_manager.into()),
        ..PatchParams::default()
    };
    let after = match api.patch(&name, &params, &Patch::Merge(&patch)).await {
        Ok(after) => after,
        Err(error) => {
            let error = CliError::from(error);
            if !matches!(error, CliError::Denied(_)) {
                return Err(error);
            }
            // Read again (with the client's own rights: the user may not read): a gate that
            // ended between our read and the write is "already ended".
            let refreshed = Api::<CustomRun>::namespaced(client.clone(), &namespace)
                .get_opt(&name)
                .await
                .ok()
                .flatten();
            return Err(decide::denied(error, refreshed.as_ref(), Utc::now()));
        }
    };
    let recorded = decide::recorded(gate, &after, ask.decision, Utc::now())?;
    Ok((after, recorded))
}

/// The client to write with: `client` itself, or a copy whose every request carries the
/// impersonation headers of `user`.
fn as_acting(client: &Client, acting: Acting<'_>) -> Result<Client, CliError> {
    match acting {
        Acting::AsClient => Ok(client.clone()),
        Acting::AsUser(user) => Ok(impersonating(client, user)),
    }
}

/// `client` acting as `user`: the `Impersonate-User` and `Impersonate-Group` headers on every
/// request. Groups are the user's as the verified source gave them; the API server adds
/// `system:authenticated` itself.
pub fn impersonating(client: &Client, user: &Identity) -> Client {
    let inner = client.clone();
    let username = user.username.clone();
    let groups = user.groups.clone();
    let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
        let headers = request.headers_mut();
        // Anything the caller set is replaced: only the verified identity goes out.
        headers.remove("impersonate-user");
        headers.remove("impersonate-group");
        let mut valid = true;
        match http::HeaderValue::from_str(&username) {
            Ok(value) => {
                headers.insert("impersonate-user", value);
            }
            Err(_) => valid = false,
        }
        for group in &groups {
            match http::HeaderValue::from_str(group) {
                Ok(value) => {
                    headers.append("impersonate-group", value);
                }
                Err(_) => valid = false,
            }
        }
        let inner = inner.clone();
        async move {
            // A name that cannot be a header is never sent as someone else: fail closed.
            if !valid {
                return Err(kube::Error::Service(
                    "the user name or a group cannot be sent as an impersonation header".into(),
                ));
            }
            inner.send(request).await
        }
    });
    Client::new(service, client.default_namespace().to_string())
}
