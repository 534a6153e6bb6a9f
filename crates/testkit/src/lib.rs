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
mod azurite;
mod moto;
mod slack;
mod store;

pub use arm::{ArmFake, ArmReply, DeleteMode};
pub use azurite::{AZURITE_KEY, Azurite};
pub use moto::Moto;
pub use slack::{
    BOT_TOKEN, Posted, Recorded, Reply, SlackSink, blocks, channel_id, print_message,
    render_message,
};
pub use store::store_contract;

/// Every `.json` file below `dir`, sorted: the fixture sweeps use it.
pub fn json_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}
