//! Notifications: telling approvers (and anything else) that a gate waits, that someone
//! decided, and how it ended. Sinks are Slack (one message per gate, updated in place), a
//! generic HTTPS webhook and CloudEvents. This module never decides anything: what to say
//! is [`notice`] and [`slack`]'s pure rendering, where to say it is [`config`], and the
//! delivery loop only sends and remembers what it sent in the gate's status.

pub mod config;
pub mod http;
pub mod notice;
pub mod notifier;
pub mod progress;
pub mod slack;

pub use notifier::Notifier;
