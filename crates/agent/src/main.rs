use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reflex_agent::Args;

/// How long `--once` keeps retrying a throttled or not-yet-enabled service.
const ONCE_LIMIT: Duration = Duration::from_secs(300);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let env = |k: &str| std::env::var(k).ok();
    let mut watcher = match args.watcher(&env) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("reflex-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = async {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    };
    let once = args.once.then_some(ONCE_LIMIT);
    match watcher.run(args.interval, once, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflex-agent: {e}");
            ExitCode::from(1)
        }
    }
}
