//! bcrypt, off the async workers.
//!
//! Hashing and verifying run in `spawn_blocking` inside the caller's tracing span, at most
//! `bcrypt_concurrency` at once (more wait their turn instead of piling threads onto the CPU).
//! A login for an unknown address verifies against a dummy hash of the configured cost, so that
//! it takes as long as a login with a wrong password and does not reveal which addresses exist.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Semaphore;
use tracing::Span;

/// Hashes new passwords and checks given ones; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    /// bcrypt cost of new hashes.
    cost: u32,
    /// A hash of no one's password, at `cost`: what unknown addresses are checked against.
    dummy_hash: Arc<str>,
    /// Bounds the bcrypt computations running at once.
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    /// Computes the dummy hash once (one bcrypt run at `cost`).
    pub async fn new(cost: u32, concurrency: usize) -> anyhow::Result<Self> {
        // No permit at all would make every request wait forever.
        anyhow::ensure!(concurrency >= 1, "bcrypt concurrency must be at least 1");
        let permits = Arc::new(Semaphore::new(concurrency));
        let dummy = format!("no user has this password {}", std::process::id());
        let dummy_hash = blocking(&permits, move || bcrypt::hash(dummy, cost)).await?.context("bcrypt cost")?;
        Ok(Self { cost, dummy_hash: dummy_hash.into(), permits })
    }

    /// A new hash of `password` at the configured cost.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let cost = self.cost;
        blocking(&self.permits, move || bcrypt::hash(password, cost)).await?.context("cannot hash the password")
    }

    /// Whether `password` matches `stored_hash`; with no stored hash (unknown user) the same
    /// work is done against the dummy hash and the answer is always `false`.
    /// A stored hash that does not parse counts as no match and is logged.
    pub async fn verify(&self, password: String, stored_hash: Option<String>) -> anyhow::Result<bool> {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let outcome = blocking(&self.permits, move || bcrypt::verify(password, &hash)).await?;
        match outcome {
            Ok(matches) => Ok(known && matches),
            Err(error) => {
                tracing::error!(%error, "the stored password hash is not a bcrypt hash");
                Ok(false)
            }
        }
    }
}

/// Runs `work` on the blocking pool, in the current span, once a permit is free.
async fn blocking<T: Send + 'static>(
    permits: &Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let _permit = permits.acquire().await.context("the bcrypt limiter is closed")?;
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work)).await.context("the bcrypt task failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hasher = PasswordHasher::new(4, 2).await.unwrap();
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert!(hasher.verify("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("wrong horse".into(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches() {
        let hasher = PasswordHasher::new(4, 1).await.unwrap();
        let dummy_password = format!("no user has this password {}", std::process::id());
        assert!(!hasher.verify(dummy_password, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_does_not_match() {
        let hasher = PasswordHasher::new(4, 1).await.unwrap();
        assert!(!hasher.verify("x".into(), Some("not a hash".into())).await.unwrap());
    }

    #[tokio::test]
    async fn an_invalid_cost_is_an_error() {
        assert!(PasswordHasher::new(3, 1).await.is_err());
    }
}
