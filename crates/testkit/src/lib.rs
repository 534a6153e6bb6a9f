//! Local stand-ins for tests and the demo.
//!
//! - [`SlackSink`]: an HTTP server that speaks the Slack incoming-webhook protocol
//!   (`POST` JSON, answers `ok`), records every request, and answers 429 with
//!   `Retry-After`, 5xx, or slowly, on demand.
//! - [`ArmFake`]: ARM for NSGs (GET, DELETE, async operations, 404, 429) and the
//!   managed-identity token endpoint.
//! - [`Moto`]: starts `moto_server` on a free loopback port and stops it on drop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: failing loudly is the point

pub mod arm;
mod moto;
mod slack;

pub use arm::{ArmFake, ArmReply, DeleteMode};
pub use moto::Moto;
pub use slack::{Recorded, Reply, SlackSink, print_message};
