//! `reflex-imds-fake [PORT] [VM_NAME]`: the instance-metadata stand-in (Azure
//! scheduled events, AWS IMDSv2) as a process, for `make demo` and `make bench`.
//! Its state is read with `GET /_reflex/state` and changed with `PUT /_reflex/state`
//! (`{"azure_events": [...], "spot": {...}|null, "maintenance": [...], "rebalance": ...}`).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = "usage: reflex-imds-fake [PORT] [VM_NAME]";
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next() {
        Some(p) => p.parse().context(usage)?,
        None => 0,
    };
    let vm = args.next().unwrap_or_else(|| "vm-web-1".into());
    let imds = reflex_testkit::ImdsFake::start_on(port, &vm).await;
    println!("IMDS stand-in listening: {} (VM {vm})", imds.endpoint());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
