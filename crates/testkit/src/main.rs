//! `reflex-slack-sink [PORT]`: a local Slack incoming-webhook stand-in that prints
//! every message it receives. Used by `make demo`.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().context("usage: reflex-slack-sink [PORT]")?,
        None => 0,
    };
    let sink = reflex_testkit::SlackSink::start_on(port, true).await;
    println!("Slack stand-in listening: {}", sink.webhook_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
