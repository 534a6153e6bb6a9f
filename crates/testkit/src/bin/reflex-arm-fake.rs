//! `reflex-arm-fake [PORT]`: the ARM + managed-identity stand-in as a process, for
//! `make demo`. Prints its base URL and serves until Ctrl-C.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().context("usage: reflex-arm-fake [PORT]")?,
        None => 0,
    };
    let arm = reflex_testkit::ArmFake::start_on(port).await;
    println!("ARM stand-in listening: {}", arm.endpoint());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
