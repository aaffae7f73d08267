//! bcrypt, off the async workers, with admission control in front.
//!
//! Hashing and verifying run in `spawn_blocking` inside the caller's tracing span, at most
//! `bcrypt_concurrency` at once (more wait their turn instead of piling threads onto the CPU).
//! At most `queue` requests wait for a turn; one more is refused at once ([`Refused::Overloaded`]),
//! so that a login storm gets quick 503s instead of answers that come after the caller gave up.
//! A verify with a deadline never starts bcrypt once the deadline has passed, nor when it
//! would pass before bcrypt ends, by the measured run time ([`Refused::Expired`]): the CPU goes
//! to callers still waiting. A caller that disconnects
//! drops the future, which leaves the queue at once.
//! A login for an unknown address verifies against a dummy hash of the configured cost, so that
//! it takes as long as a login with a wrong password and does not reveal which addresses exist.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use service_kit::metrics::{gauge, histogram};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Span;

use crate::metrics;

/// Why a verify did not run.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Every worker is busy and the queue is full.
    #[error("too many logins at once, try again shortly")]
    Overloaded,
    /// The caller's deadline passed before a worker was free.
    #[error("the caller's deadline passed before the password could be checked")]
    Expired,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Hashes new passwords and checks given ones; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    /// bcrypt cost of new hashes.
    cost: u32,
    /// A hash of no one's password, at `cost`: what unknown addresses are checked against.
    dummy_hash: Arc<str>,
    /// Bounds the bcrypt computations running at once.
    permits: Arc<Semaphore>,
    /// Verifies admitted and not finished (running or waiting for a permit).
    admitted: Arc<AtomicUsize>,
    /// Most verifies admitted at once: the workers plus the queue in front of them.
    capacity: usize,
    /// How long one bcrypt run takes here, in microseconds: measured at start-up, then a moving
    /// average of the verifies. A verify whose caller would be gone before it ends is not started.
    run_time: Arc<AtomicU64>,
}

/// One admitted verify; leaving (done, refused or dropped) frees its place.
struct Admission(Arc<AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// Computes the dummy hash once (one bcrypt run at `cost`); `queue` verifies may wait for
    /// one of the `concurrency` workers.
    pub async fn new(cost: u32, concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        // No permit at all would make every request wait forever.
        anyhow::ensure!(concurrency >= 1, "bcrypt concurrency must be at least 1");
        let permits = Arc::new(Semaphore::new(concurrency));
        let dummy = format!("no user has this password {}", std::process::id());
        let started = Instant::now();
        let dummy_hash = blocking(&permits, move || bcrypt::hash(dummy, cost)).await?.context("bcrypt cost")?;
        let run_time = Arc::new(AtomicU64::new(micros(started.elapsed())));
        let admitted = Arc::new(AtomicUsize::new(0));
        Ok(Self { cost, dummy_hash: dummy_hash.into(), permits, admitted, capacity: concurrency + queue, run_time })
    }

    /// A new hash of `password` at the configured cost.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let cost = self.cost;
        blocking(&self.permits, move || bcrypt::hash(password, cost)).await?.context("cannot hash the password")
    }

    /// Whether `password` matches `stored_hash`; with no stored hash (unknown user) the same
    /// work is done against the dummy hash and the answer is always `false`.
    /// A stored hash that does not parse counts as no match and is logged.
    /// Refused at once when the queue is full; refused without a bcrypt run when `deadline`
    /// passes before a worker is free.
    pub async fn verify(
        &self,
        password: String,
        stored_hash: Option<String>,
        deadline: Option<Instant>,
    ) -> Result<bool, Refused> {
        let _admission = self.admit()?;
        // bcrypt would compare only the first 72 bytes; no stored password is longer (see
        // `contract::validate::MAX_PASSWORD_CHARS`), so a longer one is wrong: the dummy's work.
        let stored_hash = stored_hash.filter(|_| password.len() <= contract::validate::MAX_PASSWORD_BYTES);
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let permit = self.permits.clone().acquire_owned();
        let waiting = Waiting::enter();
        let permit = match deadline {
            _ if deadline.is_some_and(|deadline| deadline <= Instant::now()) => return Err(Refused::Expired),
            Some(deadline) => tokio::time::timeout_at(deadline.into(), permit).await.map_err(|_| Refused::Expired)?,
            None => permit.await,
        }
        .context("the bcrypt limiter is closed")?;
        drop(waiting);
        // Waiting may have taken the caller's budget; a verify that ends after it is wasted work.
        let run_time = Duration::from_micros(self.run_time.load(Ordering::Acquire));
        if deadline.is_some_and(|deadline| deadline <= Instant::now() + run_time) {
            return Err(Refused::Expired);
        }
        let started = Instant::now();
        let outcome = run_blocking(permit, move || bcrypt::verify(password, &hash)).await?;
        let took = started.elapsed();
        histogram!(metrics::BCRYPT_VERIFY_DURATION).record(took);
        let sample = micros(took);
        // A moving average over about four runs: follows a machine that gets busier, but one
        // slow run does not turn callers away.
        let _ = self.run_time.fetch_update(Ordering::AcqRel, Ordering::Acquire, |average| {
            Some((average.saturating_mul(3).saturating_add(sample)) / 4)
        });
        match outcome {
            Ok(matches) => Ok(known && matches),
            Err(error) => {
                tracing::error!(%error, "the stored password hash is not a bcrypt hash");
                Ok(false)
            }
        }
    }
}

/// One verify in [`metrics::BCRYPT_QUEUE_DEPTH`] until it has a worker or leaves.
struct Waiting;

impl Waiting {
    fn enter() -> Self {
        gauge!(metrics::BCRYPT_QUEUE_DEPTH).increment(1.0);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        gauge!(metrics::BCRYPT_QUEUE_DEPTH).decrement(1.0);
    }
}

impl PasswordHasher {
    /// A place among the admitted verifies, or [`Refused::Overloaded`] when all are taken.
    fn admit(&self) -> Result<Admission, Refused> {
        let capacity = self.capacity;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < capacity).then_some(n + 1))
            .map_err(|_| Refused::Overloaded)?;
        Ok(Admission(self.admitted.clone()))
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Runs `work` on the blocking pool, in the current span, once a permit is free.
async fn blocking<T: Send + 'static>(
    permits: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let permit = permits.clone().acquire_owned().await.context("the bcrypt limiter is closed")?;
    run_blocking(permit, work).await
}

/// Runs `work` on the blocking pool, in the current span. The permit goes with it: a caller
/// that leaves cannot stop bcrypt, and its worker stays taken until bcrypt is done.
async fn run_blocking<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let span = Span::current();
    let work = move || {
        let _permit = permit;
        span.in_scope(work)
    };
    tokio::task::spawn_blocking(work).await.context("the bcrypt task failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hasher = PasswordHasher::new(4, 2, 0).await.unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert!(hasher.verify("correct horse".into(), Some(hash.clone()), None).await.unwrap());
        assert!(!hasher.verify("wrong horse".into(), Some(hash), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_password_longer_than_bcrypt_reads_never_matches_its_first_72_bytes() {
        let hasher = PasswordHasher::new(4, 1, 1).await.unwrap();
        let stored = "x".repeat(72);
        let hash = hasher.hash(stored.clone()).await.unwrap();
        assert!(hasher.verify(stored.clone(), Some(hash.clone()), None).await.unwrap());
        let longer = format!("{stored}é");
        assert!(bcrypt::verify(&longer, &hash).unwrap(), "bcrypt alone, truncating, says it matches");
        assert!(!hasher.verify(longer, Some(hash), None).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches() {
        let hasher = PasswordHasher::new(4, 1, 0).await.unwrap();
        let dummy_password = format!("no user has this password {}", std::process::id());
        assert!(!hasher.verify(dummy_password, None, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_does_not_match() {
        let hasher = PasswordHasher::new(4, 1, 0).await.unwrap();
        assert!(!hasher.verify("x".into(), Some("not a hash".into()), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_passed_deadline_is_refused_without_a_bcrypt_run() {
        // Cost 14 takes a second or more: a refusal within 100ms cannot have run bcrypt.
        let hasher = PasswordHasher::new(4, 1, 0).await.unwrap();
        let hash = bcrypt::hash("pw", 14).unwrap();
        let started = Instant::now();
        let refused = hasher.verify("pw".into(), Some(hash), Some(Instant::now())).await;
        assert!(matches!(refused, Err(Refused::Expired)), "{refused:?}");
        assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn beyond_the_workers_and_the_queue_a_verify_is_refused_at_once() {
        // One worker and a queue of one: a third verify finds no place.
        let hasher = PasswordHasher::new(4, 1, 1).await.unwrap();
        let permit = hasher.permits.clone().acquire_owned().await.unwrap();
        let running = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.verify("a".into(), None, None).await }
        });
        let queued = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.verify("b".into(), None, None).await }
        });
        service_kit::testing::eventually("both verifies are admitted", Duration::from_secs(5), || async {
            (hasher.admitted.load(Ordering::Acquire) == 2).then_some(())
        })
        .await;
        let refused = hasher.verify("c".into(), None, None).await;
        assert!(matches!(refused, Err(Refused::Overloaded)), "{refused:?}");
        // A caller that goes away frees its place.
        queued.abort();
        let _ = queued.await;
        assert_eq!(hasher.admitted.load(Ordering::Acquire), 1);
        drop(permit);
        assert!(!running.await.unwrap().unwrap());
        assert_eq!(hasher.admitted.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn an_invalid_cost_is_an_error() {
        assert!(PasswordHasher::new(3, 1, 0).await.is_err());
    }
}
