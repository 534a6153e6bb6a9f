//! `reflex-slack-sink [PORT]`: a local Slack stand-in for `make demo`. It takes
//! incoming-webhook posts and the Web API's `chat.postMessage` / `chat.update`
//! (bot token `xoxb-reflex-test-token`), prints each message it receives, and serves
//! the workspace as threaded conversations at `GET /_reflex/conversations`.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().context("usage: reflex-slack-sink [PORT]")?,
        None => 0,
    };
    let sink = reflex_testkit::SlackSink::start_on(port, true).await;
    println!("Slack stand-in listening: {}", sink.webhook_url());
    println!(
        "Web API: {} (bot token {}); conversations: http://{}/_reflex/conversations",
        sink.api_url(),
        reflex_testkit::BOT_TOKEN,
        sink.addr()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
