//! The one retrier every HTTP client shares (Slack, ARM, the managed-identity
//! endpoint): 429 honouring `Retry-After`, 5xx and connection failures with
//! exponential backoff, all bounded by the deadline.
//!
//! Alertmanager retried 429s without reading `Retry-After` for years (#2111, #2205);
//! here the server's wait is obeyed exactly, and when it would outlive the
//! invocation the failure is reported at once instead of sleeping past the deadline.

use std::time::{Duration, Instant};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T = ()> {
    /// Done, with the response's value.
    Delivered(T),
    /// 429: wait at least this long (from `Retry-After`) before trying again.
    RateLimited(Duration),
    /// 5xx, timeout, connection failure: back off and try again.
    Transient(String),
    /// 4xx other than 429: retrying cannot help.
    Rejected(String),
}

/// The final result of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub attempts: u32,
    /// `None` when delivered.
    pub error: Option<String>,
    /// Whether the final failure could succeed later.
    pub retryable: bool,
}

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub max_attempts: u32,
    /// Used when a 429 carries no (or an unreadable) `Retry-After`.
    pub default_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_attempts: 8,
            default_retry_after: Duration::from_secs(1),
        }
    }
}

/// Parses `Retry-After` as delta-seconds (the form Slack and ARM send). HTTP dates
/// are not used by either; they fall back to the default.
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs).or_else(|| {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    })
}

/// A final failure of [`retry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaveUp {
    pub attempts: u32,
    pub error: String,
    /// Whether a later try could succeed (rate limit, 5xx, deadline).
    pub retryable: bool,
}

/// Runs `attempt` until it delivers, is rejected, runs out of attempts (429s do not
/// count), or the next wait would pass `deadline`. `attempt` gets the time left, to bound its own I/O.
/// On success, returns the value and the number of attempts it took.
pub async fn retry<T, F, Fut>(
    policy: RetryPolicy,
    deadline: Instant,
    mut attempt: F,
) -> Result<(T, u32), GaveUp>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Attempt<T>>,
{
    let mut backoff = policy.first_backoff;
    let mut attempts = 0;
    let gave_up = |attempts, error, retryable| GaveUp {
        attempts,
        error,
        retryable,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(gave_up(attempts, "deadline reached".into(), true));
        }
        attempts += 1;
        let (wait, why, limited) = match attempt(left).await {
            Attempt::Delivered(value) => return Ok((value, attempts)),
            Attempt::Rejected(e) => return Err(gave_up(attempts, e, false)),
            // Never sooner than asked, and never a busy loop on `Retry-After: 0`.
            Attempt::RateLimited(d) => (
                d.max(policy.first_backoff),
                format!("rate limited (Retry-After {}s)", d.as_secs_f64()),
                true,
            ),
            Attempt::Transient(e) => {
                let d = backoff;
                backoff = (backoff * 2).min(policy.max_backoff);
                (d, e, false)
            }
        };
        // A rate limit is the server pacing us, not failing: only the deadline bounds
        // it (a burst of 50 alarms at Slack's 1 message/s needs 50 s of patience).
        if !limited && attempts >= policy.max_attempts {
            let e = format!("{why}; gave up after {attempts} attempts");
            return Err(gave_up(attempts, e, true));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if wait >= left {
            let e = format!(
                "{why}; the next try in {:.1}s would pass the deadline ({:.1}s left)",
                wait.as_secs_f64(),
                left.as_secs_f64()
            );
            return Err(gave_up(attempts, e, true));
        }
        tokio::time::sleep(wait).await;
    }
}

/// [`retry`] for deliveries that return nothing: the record a notifier reports.
pub async fn deliver<F, Fut>(policy: RetryPolicy, deadline: Instant, attempt: F) -> Delivery
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    match retry(policy, deadline, attempt).await {
        Ok(((), attempts)) => Delivery {
            attempts,
            error: None,
            retryable: false,
        },
        Err(g) => Delivery {
            attempts: g.attempts,
            error: Some(g.error),
            retryable: g.retryable,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            max_attempts: 5,
            default_retry_after: Duration::from_millis(1),
        }
    }

    async fn run(script: Vec<Attempt>, policy: RetryPolicy, budget: Duration) -> Delivery {
        let script = Mutex::new(script.into_iter());
        deliver(policy, Instant::now() + budget, |_| {
            let next = script
                .lock()
                .ok()
                .and_then(|mut s| s.next())
                .unwrap_or(Attempt::Delivered(()));
            async move { next }
        })
        .await
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_delivered() {
        let d = run(
            vec![
                Attempt::Transient("500".into()),
                Attempt::Transient("502".into()),
            ],
            fast(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            d,
            Delivery {
                attempts: 3,
                error: None,
                retryable: false
            }
        );
    }

    #[tokio::test]
    async fn rejections_are_not_retried() {
        let d = run(
            vec![Attempt::Rejected("404 no_service".into())],
            fast(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(d.attempts, 1);
        assert!(!d.retryable);
        assert_eq!(d.error.as_deref(), Some("404 no_service"));
    }

    #[tokio::test]
    async fn a_retry_after_longer_than_the_time_left_fails_at_once() {
        let start = Instant::now();
        let d = run(
            vec![Attempt::RateLimited(Duration::from_secs(30))],
            fast(),
            Duration::from_secs(2),
        )
        .await;
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "it must not sleep past the deadline"
        );
        assert_eq!(d.attempts, 1);
        assert!(d.retryable);
        assert!(
            d.error
                .unwrap_or_default()
                .contains("would pass the deadline")
        );
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let d = run(
            vec![Attempt::Transient("500".into()); 10],
            fast(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(d.attempts, 5);
        assert!(
            d.error
                .unwrap_or_default()
                .contains("gave up after 5 attempts")
        );
    }

    #[tokio::test]
    async fn rate_limits_do_not_use_up_attempts_only_the_deadline_bounds_them() {
        let d = run(
            vec![Attempt::RateLimited(Duration::from_millis(1)); 12],
            fast(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!((d.attempts, d.error), (13, None));
    }

    #[test]
    fn retry_after_parses_seconds() {
        assert_eq!(parse_retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(Some(" 0.5 ")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(Some("-1")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
