//! The web page approvers decide on, as themselves: "waiting for me", all gates, one gate
//! with its timeline, Approve and Reject. Its own component (`--components ui`), behind an
//! authenticating proxy (oauth2-proxy or any OIDC proxy) whose headers it believes only with
//! the proxy's shared secret. It reads with its own service account and writes every
//! decision by impersonating the signed-in user, through the same path as the CLI, so the
//! admission webhook judges the user, never the page.

pub mod csrf;
pub mod identity;
pub mod pages;
pub mod server;

pub use server::{Settings, run};
