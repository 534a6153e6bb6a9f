//! `reflex`: run any Reflex function on any event file, locally, exactly as the
//! platform would deliver it. No Docker.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use reflex_core::{HandleError, Outcome};
use reflex_runtime::Invocation;

/// Exit status: the event was handled (acted, planned or ignored).
const HANDLED: u8 = 0;
/// Exit status: an action failed.
const ACTION_FAILED: u8 = 1;
/// Exit status: bad input or configuration; the one-line error says what to fix.
const BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "reflex",
    version,
    about = "Run Reflex auto-remediation functions locally on event files."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one function once on one payload and print the outcome JSON.
    ///
    /// Exit status: 0 handled (acted, planned or ignored), 1 an action failed,
    /// 2 bad input (with a one-line error on stderr).
    Invoke {
        /// The function to run (see `reflex functions`).
        function: String,
        /// The event payload file, exactly as the platform delivers it; `-` reads stdin.
        event_file: PathBuf,
        /// Plan only: change nothing (sets REFLEX_DRY_RUN=true).
        #[arg(long)]
        dry_run: bool,
        /// Time budget in seconds, like a Lambda timeout: bounds retries and waits.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// List the functions and the triggers each accepts.
    Functions,
}

const FUNCTIONS: &[(&str, &[&str])] = &[
    (close_open_ports::NAME, close_open_ports::TRIGGERS),
    (alert_to_slack::NAME, alert_to_slack::TRIGGERS),
    (
        drain_before_maintenance::NAME,
        drain_before_maintenance::TRIGGERS,
    ),
    (block_ssh_bruteforce::NAME, block_ssh_bruteforce::TRIGGERS),
];

/// Builds a function's dependencies from `env`, once.
async fn build(
    name: &str,
    env: &impl reflex_core::settings::Lookup,
) -> Result<Box<dyn reflex_runtime::Function>, reflex_core::ConfigError> {
    Ok(if name == alert_to_slack::NAME {
        Box::new(alert_to_slack::Deps::from_lookup(env).await?)
    } else if name == drain_before_maintenance::NAME {
        Box::new(drain_before_maintenance::Deps::from_lookup(env).await?)
    } else if name == block_ssh_bruteforce::NAME {
        Box::new(block_ssh_bruteforce::Deps::from_lookup(env).await?)
    } else {
        Box::new(close_open_ports::Deps::from_lookup(env).await?)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Functions => {
            for (name, triggers) in FUNCTIONS {
                println!("{name}");
                for t in *triggers {
                    println!("  {t}");
                }
            }
            ExitCode::from(HANDLED)
        }
        Command::Invoke {
            function,
            event_file,
            dry_run,
            timeout,
        } => invoke(
            &function,
            &event_file,
            dry_run,
            Duration::from_secs(timeout),
        ),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("reflex: {message}");
    ExitCode::from(BAD_INPUT)
}

fn read_payload(path: &PathBuf) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
    } else {
        buf = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    }
    Ok(buf)
}

fn invoke(function: &str, path: &PathBuf, dry_run: bool, budget: Duration) -> ExitCode {
    if !FUNCTIONS.iter().any(|(n, _)| *n == function) {
        let names: Vec<&str> = FUNCTIONS.iter().map(|(n, _)| *n).collect();
        return fail(&format!(
            "unknown function '{function}'; known: {}",
            names.join(", ")
        ));
    }
    let raw = match read_payload(path) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    reflex_runtime::init_tracing("warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let result: Result<Outcome, String> = runtime.block_on(async {
        // `--dry-run` overrides REFLEX_DRY_RUN; everything else comes from the environment.
        let lookup = move |name: &str| {
            if dry_run && name == "REFLEX_DRY_RUN" {
                Some("true".to_string())
            } else {
                reflex_runtime::env_lookup(name)
            }
        };
        let function = build(function, &lookup)
            .await
            .map_err(|e| format!("configuration: {e}"))?;
        let invocation = Invocation::with_budget(budget);
        function
            .handle(&raw, &invocation)
            .await
            .map_err(|e| match e {
                HandleError::BadInput(p) => format!("bad input: {p}"),
                other => other.to_string(),
            })
    });
    match result {
        Ok(outcome) => {
            reflex_runtime::audit(&outcome);
            println!(
                "{}",
                serde_json::to_string_pretty(&outcome).unwrap_or_default()
            );
            ExitCode::from(if outcome.has_failures() {
                ACTION_FAILED
            } else {
                HANDLED
            })
        }
        Err(e) => fail(&e),
    }
}
