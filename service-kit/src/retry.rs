//! Connect-with-retry: exponential, capped, with every failed attempt logged.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Attempts after the first one.
    pub max_retries: usize,
}

impl RetryPolicy {
    /// At start-up: a dependency may take a while (containers starting together), about a minute.
    pub const STARTUP: RetryPolicy =
        RetryPolicy { min_delay: Duration::from_millis(100), max_delay: Duration::from_secs(5), max_retries: 16 };

    /// In a request or a message handler: a few quick attempts.
    pub const QUICK: RetryPolicy =
        RetryPolicy { min_delay: Duration::from_millis(50), max_delay: Duration::from_millis(500), max_retries: 3 };

    fn backoff(self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
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
        RetryPolicy { min_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2), max_retries: 3 };

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
}
