//! Deciding from Slack. Slack's interactive buttons (and the modal for a comment) arrive
//! here signed with the app's signing secret; the Slack user is mapped to a Kubernetes
//! identity by the platform team's mapping, and the decision is written by impersonating
//! that identity through [`crate::deciding`], the path the CLI and the web page take. So
//! the admission webhook judges a click exactly as it judges `kubectl`: this component
//! holds no right to decide of its own.

pub mod payload;
pub mod server;
pub mod users;
pub mod verify;
