//! Local stand-ins for tests and the demo.
//!
//! - [`SlackSink`]: an HTTP server that speaks the Slack incoming-webhook protocol
//!   (`POST` JSON, answers `ok`), records every request, and answers 429 with
//!   `Retry-After`, 5xx, or slowly, on demand.
//! - [`ArmFake`]: ARM for NSGs (GET, DELETE, async operations, 404, 429) and the
//!   managed-identity token endpoint.
//! - [`ImdsFake`]: Azure IMDS scheduled events and AWS IMDSv2 for `reflex-agent`.
//! - [`KubeFake`]: the Kubernetes API endpoints of a node drain (nodes, pods,
//!   evictions with PDB refusals).
//! - [`Witness`]: a listener that must never be reached (it records what reached it).
//! - [`Moto`]: starts `moto_server` on a free loopback port and stops it on drop.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: failing loudly is the point

pub mod arm;
mod azurite;
pub mod imds;
pub mod kube;
mod lifecycle;
mod moto;
mod slack;
mod store;
mod witness;

pub use arm::{ArmFake, ArmReply, ArmRequest, DeleteMode};
pub use azurite::{AZURITE_KEY, Azurite};
pub use imds::{ImdsFake, ImdsReply, azure_event, not_before_in};
pub use kube::{KubeFake, node_doc, pod_doc};
pub use lifecycle::{AsgFront, LifecycleCall};
pub use moto::Moto;
pub use slack::{
    BOT_TOKEN, Posted, Recorded, Reply, SlackSink, blocks, channel_id, print_message,
    render_message,
};
pub use store::store_contract;
pub use witness::Witness;

/// Serves `app` on loopback (`port` 0 = any free port) until the handle is aborted.
pub(crate) async fn serve(
    port: u16,
    app: axum::Router,
    what: &str,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("bind the {what} on loopback: {e}"));
    let addr = listener.local_addr().expect("a bound address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// Decodes `%XX` escapes and `+` (form encoding).
pub(crate) fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An Event Grid delivery under `events/azure/event-grid/`: a JSON array, which only
/// drain-before-maintenance takes; the other functions reject it as bad input
/// ("expected a JSON object, found an array").
pub fn is_event_grid_batch(path: &std::path::Path, raw: &[u8]) -> bool {
    path.components().any(|c| c.as_os_str() == "event-grid")
        && raw.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

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
