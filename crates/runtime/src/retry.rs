//! The one retrier every HTTP client shares (Slack, ARM, the managed-identity
//! endpoint): 429 honouring `Retry-After`, 5xx and connection failures with
//! exponential backoff, all bounded by the deadline.
//!
//! Alertmanager retried 429s without reading `Retry-After` for years (#2111, #2205);
//! here the server's wait is obeyed (never sooner than asked), and when it would
//! outlive the invocation the failure is reported at once instead of sleeping past the
//! deadline. A server's answer is untrusted input: `Retry-After` is clamped, and waits
//! carry jitter so that many functions throttled together do not retry in lockstep.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The longest `Retry-After` taken at its word. A larger (or infinite) value means
/// this long, which the deadline then refuses: the point is only that no server
/// answer can overflow a `Duration` (a panic, and with `panic = "abort"` every request
/// in flight in the Azure host with it).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The most jitter added on top of a server's `Retry-After`.
const MAX_RATE_LIMIT_JITTER: Duration = Duration::from_secs(1);

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
    /// The backoff after the first transient failure (jittered down to as little as
    /// half), and the least wait after a 429.
    pub first_backoff: Duration,
    /// The backoff doubles up to this (before jitter).
    pub max_backoff: Duration,
    /// Tries in all, not counting 429s (only the deadline bounds those).
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

/// Parses `Retry-After`: delta-seconds (what Slack and ARM send; fractions are
/// accepted) or an HTTP date (RFC 9110, e.g. `Wed, 21 Oct 2015 07:28:00 GMT`: the time
/// until then, zero when it has passed). Values are clamped to [`MAX_RETRY_AFTER`].
/// `None` for a missing or unreadable value (negative, `NaN`, text): the caller's
/// default applies.
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    parse_retry_after_at(value, SystemTime::now())
}

/// [`parse_retry_after`] with the current time given, for HTTP dates.
pub fn parse_retry_after_at(value: Option<&str>, now: SystemTime) -> Option<Duration> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: a u64 overflow is still "very long", not unreadable.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    if let Ok(secs) = v.parse::<f64>() {
        // `-1` and `NaN` are unreadable; `inf` and `1e30` are "very long".
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER),
        );
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// A random number in [0, 1) for jitter. Cheap and not cryptographic: `RandomState`
/// is seeded from the OS once per thread, and the counter makes each draw differ.
pub fn jitter_draw() -> f64 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
    // The top 53 bits: exactly representable, so the result stays below 1.
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `whole` scaled by `fraction` (clamped to [0, 1]), never more than `whole`.
fn part_of(whole: Duration, fraction: f64) -> Duration {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    Duration::try_from_secs_f64(whole.as_secs_f64() * fraction)
        .unwrap_or(whole)
        .min(whole)
}

/// The wait after a transient failure: "equal jitter" on the exponential backoff,
/// half of `backoff` plus a random part of the other half, so it stays within
/// [backoff / 2, backoff] and never drops to a busy loop.
pub fn backoff_wait(backoff: Duration, draw: f64) -> Duration {
    let half = backoff / 2;
    half + part_of(backoff - half, draw)
}

/// The wait after a 429: never sooner than the server asked (and at least `floor`,
/// so `Retry-After: 0` is not a busy loop), plus up to a tenth more (at most a second)
/// so that functions throttled together spread out.
pub fn rate_limit_wait(retry_after: Duration, floor: Duration, draw: f64) -> Duration {
    let base = retry_after.max(floor);
    let spread = (base / 10).min(MAX_RATE_LIMIT_JITTER);
    base.saturating_add(part_of(spread, draw))
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
/// On success, returns the value and the number of attempts it took. Waits are
/// jittered ([`backoff_wait`], [`rate_limit_wait`]).
pub async fn retry<T, F, Fut>(
    policy: RetryPolicy,
    deadline: Instant,
    attempt: F,
) -> Result<(T, u32), GaveUp>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = Attempt<T>>,
{
    retry_with(policy, deadline, attempt, jitter_draw).await
}

/// [`retry`] with the random source given (tests pin it).
async fn retry_with<T, F, Fut>(
    policy: RetryPolicy,
    deadline: Instant,
    mut attempt: F,
    mut draw: impl FnMut() -> f64,
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
                rate_limit_wait(d, policy.first_backoff, draw()),
                format!("rate limited (Retry-After {}s)", d.as_secs_f64()),
                true,
            ),
            Attempt::Transient(e) => {
                let d = backoff_wait(backoff, draw());
                backoff = backoff.saturating_mul(2).min(policy.max_backoff);
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
        assert_eq!(parse_retry_after(Some("0")), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(Some("-1")), None);
        assert_eq!(parse_retry_after(Some("")), None);
        assert_eq!(parse_retry_after(Some("soon")), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn a_retry_after_of_1e30_does_not_panic_and_is_clamped() {
        assert_eq!(parse_retry_after(Some("1e30")), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn hostile_retry_after_values_are_clamped_or_unreadable_never_a_panic() {
        let huge = "9".repeat(400);
        for (value, want) in [
            ("inf", Some(MAX_RETRY_AFTER)),
            ("+Infinity", Some(MAX_RETRY_AFTER)),
            ("1e308", Some(MAX_RETRY_AFTER)),
            ("18446744073709551616", Some(MAX_RETRY_AFTER)),
            (huge.as_str(), Some(MAX_RETRY_AFTER)),
            ("4000", Some(MAX_RETRY_AFTER)),
            ("NaN", None),
            ("-1", None),
            ("-inf", None),
            ("-0.5", None),
            ("1e-30", Some(Duration::ZERO)),
        ] {
            assert_eq!(parse_retry_after(Some(value)), want, "{value}");
        }
    }

    #[test]
    fn a_retry_after_http_date_is_the_time_until_then() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:27:30 GMT")
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let at = |v| parse_retry_after_at(Some(v), now);
        assert_eq!(
            at("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms RFC 9110 still requires recipients to read.
        assert_eq!(
            at("Wednesday, 21-Oct-15 07:28:00 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            at("Wed Oct 21 07:28:00 2015"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(at("Tue, 20 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
        assert_eq!(at("Wed, 32 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn a_retry_after_of_zero_gets_the_minimum_backoff() {
        let floor = Duration::from_millis(250);
        for _ in 0..1000 {
            let w = rate_limit_wait(Duration::ZERO, floor, jitter_draw());
            assert!(w >= floor && w <= floor + floor / 10, "{w:?}");
        }
    }

    #[tokio::test]
    async fn a_retry_after_of_zero_is_not_a_busy_loop() {
        let policy = RetryPolicy {
            first_backoff: Duration::from_millis(40),
            ..fast()
        };
        let d = run(
            vec![Attempt::RateLimited(Duration::ZERO); 1000],
            policy,
            Duration::from_millis(300),
        )
        .await;
        // 300 ms of patience at 40 ms or more a wait is at most 8 tries.
        assert!(d.attempts <= 8, "{d:?}");
        assert!(d.retryable);
    }

    #[test]
    fn rate_limit_jitter_never_waits_less_than_the_server_asked() {
        let floor = Duration::from_millis(250);
        let waits: Vec<Duration> = (0..1000)
            .map(|_| rate_limit_wait(Duration::from_secs(2), floor, jitter_draw()))
            .collect();
        for w in &waits {
            assert!(
                *w >= Duration::from_secs(2) && *w <= Duration::from_millis(2200),
                "{w:?}"
            );
        }
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter: {waits:?}");
        // A long wait gets at most a second more.
        let long = rate_limit_wait(MAX_RETRY_AFTER, floor, 0.999_999);
        assert!(long <= MAX_RETRY_AFTER + Duration::from_secs(1), "{long:?}");
    }

    #[test]
    fn backoff_jitter_stays_between_half_and_the_whole_backoff() {
        let backoff = Duration::from_secs(4);
        let waits: Vec<Duration> = (0..1000)
            .map(|_| backoff_wait(backoff, jitter_draw()))
            .collect();
        for w in &waits {
            assert!(*w >= backoff / 2 && *w <= backoff, "{w:?}");
        }
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter: {waits:?}");
        // Out-of-range draws and extreme backoffs are clamped, not a panic.
        assert_eq!(backoff_wait(backoff, f64::NAN), backoff / 2);
        assert_eq!(backoff_wait(backoff, 7.0), backoff);
        assert!(backoff_wait(Duration::MAX, 0.5) <= Duration::MAX);
        assert!(rate_limit_wait(Duration::MAX, Duration::MAX, 1.0) == Duration::MAX);
    }

    #[test]
    fn jitter_draws_are_in_the_unit_interval_and_differ() {
        let draws: Vec<f64> = (0..1000).map(|_| jitter_draw()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        assert!(draws.iter().any(|d| *d < 0.5) && draws.iter().any(|d| *d >= 0.5));
    }

    #[tokio::test]
    async fn every_wait_of_the_retrier_is_jittered() {
        let draws = std::cell::Cell::new(0);
        let script = Mutex::new(
            vec![
                Attempt::Transient("500".into()),
                Attempt::RateLimited(Duration::ZERO),
                Attempt::Delivered(()),
            ]
            .into_iter(),
        );
        let r = retry_with(
            fast(),
            Instant::now() + Duration::from_secs(5),
            |_| {
                let next = script
                    .lock()
                    .ok()
                    .and_then(|mut s| s.next())
                    .unwrap_or(Attempt::Delivered(()));
                async move { next }
            },
            || {
                draws.set(draws.get() + 1);
                0.5
            },
        )
        .await;
        assert_eq!(r.map(|(_, n)| n), Ok(3));
        assert_eq!(draws.get(), 2);
    }

    #[tokio::test]
    async fn a_huge_rate_limit_wait_fails_at_once_without_overflow() {
        let d = run(
            vec![Attempt::RateLimited(Duration::MAX)],
            fast(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(d.attempts, 1);
        assert!(
            d.error
                .unwrap_or_default()
                .contains("would pass the deadline")
        );
    }
}
