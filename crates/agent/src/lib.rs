//! `reflex-agent`: watches the instance metadata service for scheduled maintenance
//! and reacts within about a second: it logs each event, runs the drain hook, and
//! only then approves the event (Azure); when the event is over it runs the recover
//! hook.
//!
//! Azure: IMDS Scheduled Events (`/metadata/scheduledevents`), compared by `EventId`
//! and filtered to this VM. AWS: IMDSv2 spot `instance-action`, scheduled
//! maintenance and rebalance recommendations.

pub mod args;
pub mod hooks;
pub mod journal;
pub mod source;
pub mod watch;

#[cfg(test)]
mod tests;

pub use args::Args;
pub use watch::Watcher;
