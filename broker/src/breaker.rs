//! A circuit breaker per downstream: a service that keeps failing is not called for a while, so
//! that callers get an immediate 503 instead of each paying a connection attempt or a timeout.
//!
//! Closed (calls go through) → open after `BREAKER_FAILURES` consecutive failures, or when at
//! least `BREAKER_FAILURE_PERCENT` of the calls of a `BREAKER_WINDOW_MS` window failed, once the
//! window has `BREAKER_MIN_CALLS` (a flaky service that succeeds now and then); calls are then
//! refused at once for `BREAKER_OPEN_MS` → half-open (at most `BREAKER_HALF_OPEN_TRIALS`
//! calls go through at a time, the others are refused) → closed once that many trials
//! succeeded, or open again at the first failed one. `BREAKER=off` lets every call through.
//!
//! Written here rather than taken from `failsafe` (1.3, last released in 2024; tower has no
//! breaker): its half-open state lets every call through instead of a bounded number of
//! trials, and it exposes neither the state nor when an open breaker half-opens, which `/ready`
//! and `Retry-After` need.
//!
//! What counts as a failure is [`DownstreamError::is_failure`]: unreachable, timeout, a 5xx.
//! A 4xx is the service doing its job, and a 503 is a service that is up and shedding load
//! (authentication's bcrypt queue): opening the circuit on it would turn a short overload
//! into `BREAKER_OPEN_MS` of refusals, and the service already says when to come back.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;
use service_kit::settings;

use crate::downstream::{DownstreamError, Service};
use crate::metrics::{self, CircuitState};
use crate::timing::{self, Hop};

/// The breakers' settings; one section of the broker's `Settings`, the same for every downstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BreakerSettings {
    /// `off` lets every call through (`on` by default).
    #[serde(rename = "BREAKER", deserialize_with = "service_kit::settings::on_off")]
    pub enabled: bool,
    /// Consecutive failures that open the circuit.
    #[serde(rename = "BREAKER_FAILURES", deserialize_with = "settings::count")]
    pub failures: u32,
    /// The share of a window's calls, in percent (1 to 100), whose failure opens the circuit.
    #[serde(rename = "BREAKER_FAILURE_PERCENT", deserialize_with = "percent")]
    pub failure_percent: u32,
    /// The window those calls are counted over; a new one starts when it is over (fixed windows).
    #[serde(rename = "BREAKER_WINDOW_MS", deserialize_with = "settings::positive_millis")]
    pub window: Duration,
    /// Calls a window needs before its share counts: two calls are no trend.
    #[serde(rename = "BREAKER_MIN_CALLS", deserialize_with = "settings::count")]
    pub min_calls: u32,
    /// How long an open circuit refuses calls before it lets trials through.
    #[serde(rename = "BREAKER_OPEN_MS", deserialize_with = "settings::positive_millis")]
    pub open_for: Duration,
    /// Trials let through at a time when half-open; that many successes close the circuit.
    #[serde(rename = "BREAKER_HALF_OPEN_TRIALS", deserialize_with = "settings::count")]
    pub half_open_trials: u32,
}

impl Default for BreakerSettings {
    /// Five failures in a row is a service that is down, not a request that was unlucky; ten
    /// seconds is long enough to spare it, short enough that a restarted one is used again soon.
    fn default() -> Self {
        Self {
            enabled: true,
            failures: 5,
            failure_percent: 50,
            window: Duration::from_secs(10),
            min_calls: 20,
            open_for: Duration::from_secs(10),
            half_open_trials: 1,
        }
    }
}

fn percent<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    match u32::deserialize(deserializer)? {
        percent @ 1..=100 => Ok(percent),
        _ => Err(serde::de::Error::custom("must be a percentage from 1 to 100")),
    }
}

impl BreakerSettings {
    /// Every call goes through: for tests about what a failing downstream itself answers.
    pub fn off() -> Self {
        Self { enabled: false, ..Self::default() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `failures` in a row so far, and the current window's counts.
    Closed {
        failures: u32,
        window: Window,
    },
    Open {
        until: Instant,
    },
    /// `admitted` trials in flight, `succeeded` of them done and successful.
    HalfOpen {
        admitted: u32,
        succeeded: u32,
    },
}

/// The calls of one fixed window of the closed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    started: Instant,
    calls: u32,
    failed: u32,
}

impl Window {
    fn new() -> Self {
        Self { started: Instant::now(), calls: 0, failed: 0 }
    }
}

impl State {
    fn closed() -> Self {
        State::Closed { failures: 0, window: Window::new() }
    }
}

/// One downstream's breaker; clones share the state.
#[derive(Debug, Clone)]
pub struct Breaker {
    service: Service,
    settings: BreakerSettings,
    state: Arc<Mutex<State>>,
}

/// A call let through, to be settled with its outcome; dropped unsettled (the caller went
/// away), it frees its trial slot without counting either way.
struct Permit<'a> {
    breaker: &'a Breaker,
    trial: bool,
    settled: bool,
}

/// The state as `/ready` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Closed,
    Open { retry_after: Duration },
    HalfOpen,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Closed => f.write_str("circuit closed"),
            Status::Open { retry_after } => write!(f, "circuit open, retry in {} s", whole_seconds(*retry_after)),
            Status::HalfOpen => f.write_str("circuit half-open"),
        }
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` carries.
pub fn whole_seconds(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000).max(1) as u64
}

impl Breaker {
    pub fn new(service: Service, settings: &BreakerSettings) -> Self {
        metrics::record_circuit(service, CircuitState::Closed);
        Self { service, settings: settings.clone(), state: Arc::new(Mutex::new(State::closed())) }
    }

    /// Runs `hop` unless the circuit is open, and counts its outcome. `hop` is a future not
    /// yet polled, so a refused call costs nothing. Private: every hop goes through
    /// [`Breaker::hop`], which measures it.
    async fn call<T, E>(&self, hop: impl Future<Output = Result<T, E>>) -> Result<T, DownstreamError>
    where
        E: Into<DownstreamError>,
    {
        if !self.settings.enabled {
            return hop.await.map_err(Into::into);
        }
        let mut permit = self.admit()?;
        let outcome = hop.await.map_err(Into::into);
        permit.settle(outcome.as_ref().err().is_some_and(DownstreamError::is_failure));
        outcome
    }

    /// [`Breaker::call`], measured: the hop's duration by `action` and outcome
    /// ([`metrics::DOWNSTREAM_DURATION`]), and in the answer's `Server-Timing` ([`timing`]).
    /// Every hop of `/handle` goes through this.
    pub async fn hop<T, E>(
        &self,
        action: &'static str,
        hop: impl Future<Output = Result<T, E>>,
    ) -> Result<T, DownstreamError>
    where
        E: Into<DownstreamError>,
    {
        let started = Instant::now();
        let outcome = self.call(hop).await;
        let took = started.elapsed();
        metrics::record_hop(self.service, action, metrics::outcome(&outcome), took);
        timing::record(Hop::of(self.service, action), took);
        outcome
    }

    /// The state now (an open circuit whose interval is over shows as half-open).
    pub fn status(&self) -> Status {
        match *self.lock() {
            _ if !self.settings.enabled => Status::Closed,
            State::Closed { .. } => Status::Closed,
            State::Open { until } if until > Instant::now() => {
                Status::Open { retry_after: until.saturating_duration_since(Instant::now()) }
            }
            State::Open { .. } | State::HalfOpen { .. } => Status::HalfOpen,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few integers, consistent after every statement: a panic elsewhere
        // while it was held leaves nothing half-written.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn admit(&self) -> Result<Permit<'_>, DownstreamError> {
        let mut state = self.lock();
        let now = Instant::now();
        let trial = match *state {
            State::Closed { .. } => false,
            State::Open { until } if until > now => return Err(self.refusal(until - now)),
            State::Open { .. } => {
                tracing::info!(service = %self.service, "circuit half-open: letting trials through");
                *state = State::HalfOpen { admitted: 0, succeeded: 0 };
                metrics::record_circuit(self.service, CircuitState::HalfOpen);
                true
            }
            State::HalfOpen { .. } => true,
        };
        if let State::HalfOpen { admitted, .. } = &mut *state {
            if *admitted >= self.settings.half_open_trials {
                // The trials in flight will decide soon; the caller is told to come back then.
                return Err(self.refusal(Duration::from_secs(1)));
            }
            *admitted += 1;
        }
        Ok(Permit { breaker: self, trial, settled: false })
    }

    fn refusal(&self, retry_after: Duration) -> DownstreamError {
        DownstreamError::CircuitOpen { service: self.service, retry_after }
    }

    fn open(&self, state: &mut State, why: &str) {
        *state = State::Open { until: Instant::now() + self.settings.open_for };
        metrics::record_circuit(self.service, CircuitState::Open);
        tracing::warn!(service = %self.service, open_ms = self.settings.open_for.as_millis() as u64,
            "circuit open: {why}; calls are refused until it half-opens");
    }
}

impl Permit<'_> {
    fn settle(&mut self, failed: bool) {
        self.settled = true;
        let breaker = self.breaker;
        let mut state = breaker.lock();
        match (*state, failed) {
            (State::Closed { failures, mut window }, failed) => {
                let settings = &breaker.settings;
                if window.started.elapsed() >= settings.window {
                    window = Window::new();
                }
                window.calls += 1;
                window.failed += u32::from(failed);
                let failures = if failed { failures + 1 } else { 0 };
                let share = u64::from(window.failed) * 100 / u64::from(window.calls);
                if failures >= settings.failures {
                    breaker.open(&mut state, &format!("{failures} consecutive failures"));
                } else if failed && window.calls >= settings.min_calls && share >= u64::from(settings.failure_percent) {
                    breaker.open(&mut state, &format!("{} of {} calls failed", window.failed, window.calls));
                } else {
                    *state = State::Closed { failures, window };
                }
            }
            (State::HalfOpen { .. }, true) if self.trial => breaker.open(&mut state, "a trial failed"),
            (State::HalfOpen { admitted, succeeded }, false) if self.trial => {
                if succeeded + 1 >= breaker.settings.half_open_trials {
                    *state = State::closed();
                    metrics::record_circuit(breaker.service, CircuitState::Closed);
                    tracing::info!(service = %breaker.service, "circuit closed: the trials succeeded");
                } else {
                    *state = State::HalfOpen { admitted, succeeded: succeeded + 1 };
                }
            }
            // A call admitted in another state than the one it ends in (e.g. one let through
            // while closed that ends after the circuit opened): the state has moved on already.
            _ => {}
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.settled || !self.trial {
            return;
        }
        if let State::HalfOpen { admitted, succeeded } = &mut *self.breaker.lock() {
            *admitted = admitted.saturating_sub(1).max(*succeeded);
        }
    }
}

/// One breaker per downstream.
#[derive(Debug, Clone)]
pub struct Breakers {
    pub auth: Breaker,
    pub logger: Breaker,
    pub mailer: Breaker,
    pub rabbit: Breaker,
}

impl Breakers {
    pub fn new(settings: &BreakerSettings) -> Self {
        Self {
            auth: Breaker::new(Service::Authentication, settings),
            logger: Breaker::new(Service::Logger, settings),
            mailer: Breaker::new(Service::Mailer, settings),
            rabbit: Breaker::new(Service::RabbitMq, settings),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;

    use super::*;

    fn breaker(failures: u32, open_ms: u64, trials: u32) -> Breaker {
        let settings = BreakerSettings {
            failures,
            open_for: Duration::from_millis(open_ms),
            half_open_trials: trials,
            ..BreakerSettings::default()
        };
        Breaker::new(Service::Mailer, &settings)
    }

    fn down() -> DownstreamError {
        DownstreamError::Unreachable { service: Service::Mailer, reason: "Connection refused".into() }
    }

    async fn fail(breaker: &Breaker) -> DownstreamError {
        breaker.call(async { Err::<(), _>(down()) }).await.unwrap_err()
    }

    async fn succeed(breaker: &Breaker) -> Result<(), DownstreamError> {
        breaker.call(async { Ok::<_, DownstreamError>(()) }).await
    }

    fn is_refusal(error: &DownstreamError) -> bool {
        matches!(error, DownstreamError::CircuitOpen { .. })
    }

    #[tokio::test]
    async fn opens_after_the_consecutive_failures_and_refuses_without_calling() {
        let breaker = breaker(3, 60_000, 1);
        for _ in 0..3 {
            assert!(!is_refusal(&fail(&breaker).await));
        }
        assert!(matches!(breaker.status(), Status::Open { .. }), "{:?}", breaker.status());
        let called = std::sync::atomic::AtomicBool::new(false);
        let refused = breaker
            .call(async {
                called.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, DownstreamError>(())
            })
            .await
            .unwrap_err();
        assert!(is_refusal(&refused) && !called.into_inner(), "{refused:?}");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.to_string(), "mailer unavailable: circuit open, retry in 60 s");
    }

    #[tokio::test]
    async fn a_success_resets_the_count() {
        let breaker = breaker(3, 60_000, 1);
        for _ in 0..5 {
            fail(&breaker).await;
            fail(&breaker).await;
            succeed(&breaker).await.unwrap();
        }
        assert_eq!(breaker.status(), Status::Closed);
    }

    #[tokio::test]
    async fn a_failure_share_over_the_window_opens_a_flaky_service_s_circuit() {
        let settings = BreakerSettings { failure_percent: 50, min_calls: 6, ..BreakerSettings::default() };
        let breaker = Breaker::new(Service::Mailer, &settings);
        // Never five failures in a row; two of three calls fail.
        for _ in 0..2 {
            fail(&breaker).await;
            fail(&breaker).await;
            succeed(&breaker).await.unwrap();
        }
        assert_eq!(breaker.status(), Status::Closed, "6 calls, 4 failed, but the last one succeeded");
        fail(&breaker).await;
        assert!(matches!(breaker.status(), Status::Open { .. }), "{:?}", breaker.status());
    }

    #[tokio::test]
    async fn a_share_below_the_threshold_or_with_too_few_calls_does_not_open() {
        let settings = BreakerSettings { failure_percent: 50, min_calls: 10, ..BreakerSettings::default() };
        let breaker = Breaker::new(Service::Mailer, &settings);
        for _ in 0..2 {
            fail(&breaker).await;
            fail(&breaker).await;
            succeed(&breaker).await.unwrap();
        }
        assert_eq!(breaker.status(), Status::Closed, "4 failures of 6, but fewer than 10 calls");
        let breaker = Breaker::new(Service::Mailer, &BreakerSettings { min_calls: 4, ..settings });
        for _ in 0..10 {
            for _ in 0..2 {
                succeed(&breaker).await.unwrap();
            }
            fail(&breaker).await;
        }
        assert_eq!(breaker.status(), Status::Closed, "a third failed, under half");
    }

    #[tokio::test]
    async fn refusals_by_the_service_and_overload_are_not_failures() {
        let breaker = breaker(1, 60_000, 1);
        let rejected = DownstreamError::Rejected {
            service: Service::Authentication,
            status: StatusCode::UNAUTHORIZED,
            message: "invalid credentials".into(),
        };
        let overloaded = DownstreamError::Unavailable { service: Service::Authentication, message: "busy".into() };
        for error in [rejected, overloaded] {
            breaker.call(async { Err::<(), _>(error) }).await.unwrap_err();
        }
        assert_eq!(breaker.status(), Status::Closed);
        let failures = [
            DownstreamError::Timeout { service: Service::Mailer, timeout: Duration::from_secs(1) },
            DownstreamError::Failed { service: Service::Mailer, reason: "500".into() },
        ];
        for error in failures {
            assert!(error.is_failure(), "{error:?}");
        }
    }

    #[tokio::test]
    async fn half_opens_after_the_interval_then_closes_on_the_trials_success() {
        let breaker = breaker(1, 50, 2);
        fail(&breaker).await;
        assert!(is_refusal(&succeed(&breaker).await.unwrap_err()));
        tokio::time::sleep(Duration::from_millis(60)).await; // the open interval itself, under test
        assert_eq!(breaker.status(), Status::HalfOpen);
        succeed(&breaker).await.unwrap();
        assert_eq!(breaker.status(), Status::HalfOpen, "one trial of two succeeded");
        succeed(&breaker).await.unwrap();
        assert_eq!(breaker.status(), Status::Closed);
    }

    #[tokio::test]
    async fn a_failed_trial_opens_again() {
        let breaker = breaker(1, 50, 1);
        fail(&breaker).await;
        tokio::time::sleep(Duration::from_millis(60)).await; // the open interval itself, under test
        assert!(!is_refusal(&fail(&breaker).await), "the trial went through");
        assert!(matches!(breaker.status(), Status::Open { .. }), "{:?}", breaker.status());
    }

    #[tokio::test]
    async fn half_open_lets_only_the_trials_through_and_a_dropped_one_frees_its_slot() {
        let breaker = breaker(1, 1, 1);
        fail(&breaker).await;
        tokio::time::sleep(Duration::from_millis(5)).await; // past the 1 ms open interval
        // Polled once, the trial is admitted and waits on a channel nobody answers.
        let (_release, wait) = tokio::sync::oneshot::channel::<()>();
        let mut trial = Box::pin(breaker.call(async { wait.await.map_err(|_| down()) }));
        assert!(futures::poll!(&mut trial).is_pending());
        assert!(is_refusal(&succeed(&breaker).await.unwrap_err()), "a second trial is refused");
        drop(trial);
        succeed(&breaker).await.unwrap();
        assert_eq!(breaker.status(), Status::Closed);
    }

    #[tokio::test]
    async fn off_lets_everything_through() {
        let breaker = Breaker::new(Service::Mailer, &BreakerSettings::off());
        for _ in 0..20 {
            assert!(!is_refusal(&fail(&breaker).await));
        }
        assert_eq!(breaker.status(), Status::Closed);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(6001)), 7);
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
    }
}
