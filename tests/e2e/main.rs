//! End to end: the real `reflex` binary against moto in server mode and a local Slack
//! stand-in, and the Azure custom handler against the ARM stand-in. Every test starts its own moto on a free loopback port (state is per
//! process, so tests cannot see each other's groups) and stops it on drop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alert_to_slack;
mod azure_host;
mod bad_input;
mod drain;
mod drain_contention;
mod ssh;
mod support;
mod trust;

mod close_open_ports;
