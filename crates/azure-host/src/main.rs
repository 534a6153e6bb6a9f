//! `reflex-azure-host`: the custom handler the Azure Functions host starts
//! (host.json `customHandler`). Listens on `FUNCTIONS_CUSTOMHANDLER_PORT`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reflex_azure_host::{AppState, Auth, app};
use reflex_runtime::{Function, env_lookup};

/// Port for local runs when the Functions host does not set one.
const DEFAULT_PORT: u16 = 7071;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    reflex_runtime::init_tracing("info");
    let port = match std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT") {
        Ok(p) => p.parse::<u16>().with_context(|| {
            format!("FUNCTIONS_CUSTOMHANDLER_PORT='{p}': expected a port number")
        })?,
        Err(_) => DEFAULT_PORT,
    };
    // Azure cuts HTTP triggers at 230 s; stop retrying well before.
    let budget = match std::env::var("REFLEX_TIMEOUT_SECS") {
        Ok(s) => Duration::from_secs(
            s.parse()
                .with_context(|| format!("REFLEX_TIMEOUT_SECS='{s}': expected seconds"))?,
        ),
        Err(_) => Duration::from_secs(200),
    };
    let close_open_ports = close_open_ports::Deps::from_lookup(&env_lookup)
        .await
        .context("close-open-ports configuration")?;
    let alert_to_slack = alert_to_slack::Deps::from_lookup(&env_lookup)
        .await
        .context("alert-to-slack configuration")?;
    let drain = drain_before_maintenance::Deps::from_lookup(&env_lookup)
        .await
        .context("drain-before-maintenance configuration")?;
    let functions: Vec<Arc<dyn Function>> = vec![
        Arc::new(close_open_ports),
        Arc::new(alert_to_slack),
        Arc::new(drain),
    ];
    let auth = Auth::from_lookup(&env_lookup).context("webhook authentication")?;
    let state = AppState::new(functions, auth, budget);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    tracing::info!(port, "Reflex custom handler listening");
    axum::serve(listener, app(Arc::new(state)))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("server failed")
}
