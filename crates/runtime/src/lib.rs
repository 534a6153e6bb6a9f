//! Adapter glue shared by every function's entry points (Lambda, CLI, Azure host):
//! telemetry in one place, the audit line, invocation deadlines, and the Lambda
//! adapter that maps outcomes and errors onto Lambda's retry semantics.

pub mod http;
pub mod retry;

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use reflex_core::{HandleError, Outcome};
use serde_json::{Value, json};

/// One invocation's context.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// When the platform will stop the invocation (minus a safety margin): every wait,
    /// retry and notification is bounded by it.
    pub deadline: Instant,
    pub request_id: Option<String>,
}

impl Invocation {
    /// An invocation with `budget` from now (CLI, tests).
    pub fn with_budget(budget: Duration) -> Self {
        Self {
            deadline: Instant::now() + budget,
            request_id: None,
        }
    }
}

/// A function as every adapter sees it: a name and a `handle` on raw payloads. The
/// CLI and the Azure host keep a registry of these; Lambda binaries call one directly.
#[async_trait::async_trait]
pub trait Function: Send + Sync {
    /// The function's name: crate, binary, Lambda function and Azure folder.
    fn name(&self) -> &'static str;
    /// More Azure function folders this function answers, each with its own trigger
    /// (the drain's timer-triggered resume). Empty by default.
    fn also_serves(&self) -> &'static [&'static str] {
        &[]
    }
    /// Handles one payload exactly as the platform delivered it.
    async fn handle(&self, raw: &[u8], invocation: &Invocation) -> Result<Outcome, HandleError>;
}

/// Time kept back from the platform deadline to log and return the outcome.
const SAFETY_MARGIN: Duration = Duration::from_millis(750);

/// Sets up JSON logs on stderr, once. `REFLEX_LOG` (or `RUST_LOG`) overrides
/// `default_level`: tests and the CLI stay quiet unless asked.
pub fn init_tracing(default_level: &str) {
    let filter = std::env::var("REFLEX_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string());
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process environment as a settings lookup.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Logs the outcome as one structured line: the audit trail.
pub fn audit(outcome: &Outcome) {
    let json = serde_json::to_string(outcome).unwrap_or_default();
    if outcome.has_failures() {
        tracing::error!(function = %outcome.function, trigger = %outcome.trigger, outcome = %json, "Remediation outcome");
    } else {
        tracing::info!(function = %outcome.function, trigger = %outcome.trigger, outcome = %json, "Remediation outcome");
    }
}

/// The outcome returned for a payload that could not be parsed: logged, returned,
/// and not retried (a retry would fail the same way).
pub fn bad_input_outcome(function: &str, error: &HandleError) -> Value {
    json!({"function": function, "error": error.to_string(), "retryable": false})
}

/// Earliest plausible absolute deadline in epoch milliseconds (2001-09-09). Smaller
/// values are not timestamps.
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The time an invocation has, from `Lambda-Runtime-Deadline-Ms`, minus the safety
/// margin. Lambda sends an absolute epoch-milliseconds deadline; `cargo lambda watch`
/// (1.9) sends its timeout as a relative duration (`600000`), which read as a
/// timestamp lies in 1970 and would leave no time at all, so small values are taken
/// as relative.
pub fn time_left(deadline_ms: u64, now: SystemTime) -> Duration {
    let total = if deadline_ms < EPOCH_MS_FLOOR {
        Duration::from_millis(deadline_ms)
    } else {
        (SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms))
            .duration_since(now)
            .unwrap_or_default()
    };
    total.saturating_sub(SAFETY_MARGIN)
}

/// Runs a function as a Lambda binary. The handler gets the raw payload and the
/// invocation; an error goes back to Lambda (for retry or the DLQ) only when a retry
/// can help.
pub async fn run_lambda<F, Fut>(
    function: &'static str,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Vec<u8>, Invocation) -> Fut,
    Fut: Future<Output = Result<Outcome, HandleError>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = time_left(event.context.deadline, SystemTime::now());
        tracing::debug!(
            deadline_ms = event.context.deadline,
            left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
            "Invocation received"
        );
        let invocation = Invocation {
            deadline: Instant::now() + left,
            request_id: Some(event.context.request_id.clone()),
        };
        let raw = serde_json::to_vec(&event.payload).unwrap_or_default();
        lambda_result(function, handler(raw, invocation).await)
    }))
    .await
}

/// Maps a handler result onto Lambda's contract.
pub fn lambda_result(
    function: &str,
    result: Result<Outcome, HandleError>,
) -> Result<Value, Diagnostic> {
    match result {
        Ok(outcome) => {
            audit(&outcome);
            if outcome.needs_retry() {
                return Err(Diagnostic {
                    error_type: "Retryable".into(),
                    error_message:
                        "an action failed with a retryable error; see the outcome log line".into(),
                });
            }
            Ok(serde_json::to_value(&outcome).unwrap_or_default())
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(function, error = %e, "Invocation failed; a retry may help");
            Err(Diagnostic {
                error_type: "Retryable".into(),
                error_message: e.to_string(),
            })
        }
        Err(e) => {
            tracing::error!(function, error = %e, "Invocation failed; not retrying");
            Ok(bad_input_outcome(function, &e))
        }
    }
}

#[cfg(test)]
mod tests {
    use reflex_core::ParseError;

    use super::*;

    #[test]
    fn the_deadline_is_absolute_epoch_ms_or_a_relative_emulator_timeout() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_536_152);
        let in_10s = 1_795_536_162_000;
        assert_eq!(time_left(in_10s, now), Duration::from_millis(9_250));
        assert_eq!(
            time_left(1_795_536_000_000, now),
            Duration::ZERO,
            "already past"
        );
        assert_eq!(
            time_left(600_000, now),
            Duration::from_millis(599_250),
            "cargo lambda watch"
        );
        assert_eq!(time_left(0, now), Duration::ZERO);
    }

    #[test]
    fn bad_input_is_returned_not_retried() {
        let r = lambda_result(
            "f",
            Err(HandleError::BadInput(ParseError::at("detail", "missing"))),
        );
        let v = r.unwrap_or_default();
        assert_eq!(v["error"], "bad input: detail: missing");
        assert_eq!(v["retryable"], false);
    }

    #[test]
    fn retryable_errors_go_back_to_lambda() {
        let r = lambda_result("f", Err(HandleError::Retryable("Throttling".into())));
        assert_eq!(r.err().map(|d| d.error_type), Some("Retryable".to_string()));
    }

    #[test]
    fn handled_outcomes_are_returned() {
        let o = Outcome::ignored("f", "t", false, "nothing");
        let v = lambda_result("f", Ok(o)).unwrap_or_default();
        assert_eq!(v["ignored"], "nothing");
    }
}
