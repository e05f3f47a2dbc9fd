//! What can go wrong, how it is told to the user, and the exit code for each (documented in
//! `--help`, see [`super::args::EXIT_CODES_HELP`]). Pure.

/// The failures a script may want to tell apart.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    /// The command line is wrong, or a NAME is ambiguous.
    #[error("{0}")]
    Usage(String),
    /// The API server refused: the approval webhook's (or RBAC's) message, as is.
    #[error("{0}")]
    Denied(String),
    /// No such gate.
    #[error("{0}")]
    NotFound(String),
    /// The gate ended: nothing to decide any more.
    #[error("{0}")]
    Ended(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Other(_) => 1,
            Self::Usage(_) => 2,
            Self::Denied(_) => 3,
            Self::NotFound(_) => 4,
            Self::Ended(_) => 5,
        }
    }

    /// What to print on stderr. A denial is printed exactly as the webhook wrote it: it is
    /// addressed to the approver, and prefixes would only be noise.
    pub fn report(&self) -> String {
        match self {
            Self::Denied(message) => message.clone(),
            other => format!("error: {other}"),
        }
    }

    /// Classifies an error the API server returned. `code` and `message` are those of its
    /// `Status`; `reason` its machine-readable reason (`Forbidden`, `NotFound`, ...).
    pub fn from_api(code: u16, reason: &str, message: &str) -> Self {
        if let Some(denial) = webhook_denial(message) {
            return Self::Denied(denial.to_string());
        }
        match (code, reason) {
            (404, _) | (_, "NotFound") => Self::NotFound(message.to_string()),
            (403, _) | (_, "Forbidden") => Self::Denied(message.to_string()),
            _ => Self::Other(message.to_string()),
        }
    }
}

impl From<kube::Error> for CliError {
    fn from(error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) => {
                Self::from_api(status.code, &status.reason, &status.message)
            }
            _ => Self::Other(error.to_string()),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        Self::Other(format!("{error:#}"))
    }
}

/// The webhook's own words from an API server message. The API server wraps them as
/// `admission webhook "<name>" denied the request: <message>`; everything before the
/// message is about plumbing the approver did not ask about.
pub fn webhook_denial(message: &str) -> Option<&str> {
    const DENIED: &str = " denied the request: ";
    let rest = message.strip_prefix("admission webhook ")?;
    let (_, denial) = rest.split_once(DENIED)?;
    Some(denial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_as_documented() {
        let cases = [
            (CliError::Other("x".into()), 1),
            (CliError::Usage("x".into()), 2),
            (CliError::Denied("x".into()), 3),
            (CliError::NotFound("x".into()), 4),
            (CliError::Ended("x".into()), 5),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
            assert!(
                super::super::args::EXIT_CODES_HELP.contains(&format!("\n  {code}  ")),
                "code {code} is documented"
            );
        }
    }

    #[test]
    fn a_webhook_denial_is_reported_in_the_webhooks_own_words() {
        let message = "admission webhook \"customruns.approval.tekton.dev\" denied the request: \
                       mallory may not decide release-approve: its approvers are alice, bob. Ask \
                       one of them to approve; being able to annotate is not being an approver";
        let error = CliError::from_api(403, "Forbidden", message);
        assert_eq!(error.exit_code(), 3);
        assert_eq!(
            error.report(),
            "mallory may not decide release-approve: its approvers are alice, bob. Ask one of \
             them to approve; being able to annotate is not being an approver"
        );
        // The API server uses 400 when the webhook sets no code; the denial is the same.
        let error = CliError::from_api(400, "BadRequest", message);
        assert_eq!(error.exit_code(), 3);
    }

    #[test]
    fn rbac_refusals_are_denials_and_missing_objects_are_not_found() {
        let rbac = "customruns.tekton.dev \"gate\" is forbidden: User \"eve\" cannot patch \
                    resource \"customruns\" in API group \"tekton.dev\" in the namespace \"ci\"";
        assert_eq!(
            CliError::from_api(403, "Forbidden", rbac),
            CliError::Denied(rbac.into())
        );
        assert_eq!(
            CliError::from_api(404, "NotFound", "customruns.tekton.dev \"x\" not found"),
            CliError::NotFound("customruns.tekton.dev \"x\" not found".into())
        );
        assert_eq!(
            CliError::from_api(500, "InternalError", "etcd is sad"),
            CliError::Other("etcd is sad".into())
        );
    }

    #[test]
    fn other_errors_are_prefixed_like_kubectls() {
        assert_eq!(
            CliError::NotFound("customrun x not found".into()).report(),
            "error: customrun x not found"
        );
    }

    #[test]
    fn messages_that_merely_mention_a_webhook_are_not_denials() {
        assert_eq!(
            webhook_denial("failed calling webhook \"x\": connection refused"),
            None
        );
        assert_eq!(webhook_denial("admission webhook \"x\" is slow"), None);
    }
}
