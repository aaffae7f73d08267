//! Retries written once: exponential, capped, jittered delays, with every failed attempt
//! logged. A policy either gives up after a number of retries ([`RetryPolicy::STARTUP`]) or
//! never does ([`RetryPolicy::forever`]), the one spelling of "retry without end".

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before the first retry; each next one doubles, up to `max_delay`.
    pub min_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
    /// Attempts after the first one; `None` retries until it succeeds.
    pub max_retries: Option<usize>,
}

impl RetryPolicy {
    /// At start-up: a dependency may take a while (containers starting together), about a minute.
    pub const STARTUP: RetryPolicy =
        RetryPolicy { min_delay: Duration::from_millis(100), max_delay: Duration::from_secs(5), max_retries: Some(16) };

    /// Retries without end, for what must come back (a lost connection, a logger that is down).
    pub const fn forever(min_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy { min_delay, max_delay, max_retries: None }
    }

    /// The delays between attempts, for a loop that decides itself when to stop: endless for a
    /// policy that retries forever.
    pub fn delays(self) -> impl Iterator<Item = Duration> {
        self.backoff().build()
    }

    fn backoff(self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::default().with_min_delay(self.min_delay).with_max_delay(self.max_delay);
        match self.max_retries {
            Some(retries) => builder.with_max_times(retries),
            None => builder.without_max_times(),
        }
        .with_jitter()
    }
}

/// Runs `attempt` until it succeeds or the policy gives up; logs each failure with `what`.
pub async fn retry<T, E, F, Fut>(what: &str, policy: RetryPolicy, attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    attempt
        .retry(policy.backoff())
        .notify(|error: &E, delay: Duration| {
            tracing::warn!(what, %error, retry_in_ms = delay.as_millis() as u64, "attempt failed, retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const FAST: RetryPolicy =
        RetryPolicy { min_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2), max_retries: Some(3) };

    #[tokio::test]
    async fn retries_until_success() {
        let calls = AtomicUsize::new(0);
        let result: Result<usize, String> = retry("test", FAST, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 { Err(format!("failure {n}")) } else { Ok(n) }
        })
        .await;
        assert_eq!(result, Ok(2));
    }

    #[tokio::test]
    async fn gives_up_after_the_last_retry_with_the_last_error() {
        let calls = AtomicUsize::new(0);
        let result: Result<(), String> =
            retry("test", FAST, || async { Err(format!("failure {}", calls.fetch_add(1, Ordering::SeqCst))) }).await;
        assert_eq!(result, Err("failure 3".to_owned()));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_policy_without_end_keeps_retrying() {
        let calls = AtomicUsize::new(0);
        let forever = RetryPolicy::forever(Duration::from_millis(1), Duration::from_millis(2));
        let result: Result<usize, String> = retry("test", forever, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 50 { Err(format!("failure {n}")) } else { Ok(n) }
        })
        .await;
        assert_eq!(result, Ok(50));
        // Jitter adds at most the delay itself: capped at twice `max_delay`, and never exhausted.
        let delays: Vec<Duration> = forever.delays().take(1_000).collect();
        assert_eq!(delays.len(), 1_000);
        assert!(delays.iter().all(|delay| *delay <= Duration::from_millis(4)), "{delays:?}");
    }
}
