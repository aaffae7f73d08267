//! `Server-Timing` on the answers of `POST /` and `POST /handle`: each hop the request made and
//! how long it took, in ms with one decimal, then the handler's `total`
//! (`auth;dur=231.4, event;dur=1.2, total;dur=233.0`). Browsers' developer tools draw it, and
//! the test page shows it as a waterfall.
//!
//! The middleware [`server_timing`] scopes a [`Recorder`] (a task-local) around the handler;
//! [`crate::breaker::Breaker::hop`], which every hop goes through, records into it; the header
//! is written once, when the answer is made, for an error answer too. Outside a request (the
//! readiness probes) recording finds no recorder and does nothing. A task spawned for the request
//! ([`carry`]) records into the same list while the answer is not yet made.
//!
//! Hop names are fixed ([`Hop`]), never anything a caller sent. The list has a fixed capacity
//! ([`MAX_HOPS`]): an action makes at most three hops (`mail`: the mailer, then the mail job),
//! so a hop past it is dropped rather than the list grown.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use service_kit::http::SERVER_TIMING;

use crate::downstream::Service;

/// Hops one answer lists at most.
pub const MAX_HOPS: usize = 6;

/// One hop as `Server-Timing` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// REST to authentication.
    Auth,
    /// tarpc: storing an entry.
    Log,
    /// tarpc: listing entries.
    Logs,
    /// REST to the mailer.
    Mail,
    /// An event published to RabbitMQ, up to its confirm.
    Event,
    /// A mail job published to RabbitMQ, up to its confirm.
    MailJob,
}

impl Hop {
    /// The hop a downstream call of `action` (its metrics label) is: the logger's two calls
    /// and RabbitMQ's two kinds of message are told apart by the action.
    pub fn of(service: Service, action: &str) -> Self {
        match service {
            Service::Authentication => Hop::Auth,
            Service::Logger if action == "logs" => Hop::Logs,
            Service::Logger => Hop::Log,
            Service::Mailer => Hop::Mail,
            Service::RabbitMq if action == "mail" => Hop::MailJob,
            Service::RabbitMq => Hop::Event,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hop::Auth => "auth",
            Hop::Log => "log",
            Hop::Logs => "logs",
            Hop::Mail => "mail",
            Hop::Event => "event",
            Hop::MailJob => "mail-job",
        }
    }
}

/// The hops of one request so far, in the order they ended.
#[derive(Debug, Default)]
struct Hops {
    hops: [Option<(Hop, Duration)>; MAX_HOPS],
    len: usize,
}

impl Hops {
    fn push(&mut self, hop: Hop, took: Duration) {
        if let Some(slot) = self.hops.get_mut(self.len) {
            *slot = Some((hop, took));
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (Hop, Duration)> + '_ {
        self.hops.iter().flatten().copied()
    }
}

/// One request's hops; clones share them (a task spawned for the request records into them).
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Hops>>);

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Hops> {
        // A few plain values, consistent after every statement.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The `Server-Timing` value: every hop recorded so far, then `total`.
    pub fn header(&self, total: Duration) -> String {
        header(self.lock().iter(), total)
    }
}

tokio::task_local! {
    static RECORDER: Recorder;
}

/// Records a hop into the current request's list; nothing outside a request.
pub fn record(hop: Hop, took: Duration) {
    let _ = RECORDER.try_with(|recorder| recorder.lock().push(hop, took));
}

/// `future`, recording into the current request's list wherever it runs (for `tokio::spawn`).
pub fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let recorder = RECORDER.try_with(Recorder::clone).ok();
    async move {
        match recorder {
            Some(recorder) => RECORDER.scope(recorder, future).await,
            None => future.await,
        }
    }
}

/// `name;dur=1.2` per hop, comma-separated, `total` last.
pub fn header(hops: impl Iterator<Item = (Hop, Duration)>, total: Duration) -> String {
    let mut value = String::with_capacity(96);
    for (hop, took) in hops {
        let _ = write!(value, "{};dur={:.1}, ", hop.name(), millis(took));
    }
    let _ = write!(value, "total;dur={:.1}", millis(total));
    value
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Middleware on the broker's own routes: records the hops the handler makes and names them,
/// with the handler's total, in `Server-Timing`, whatever the answer.
pub async fn server_timing(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let recorder = Recorder::default();
    let mut response = RECORDER.scope(recorder.clone(), next.call(request)).await?;
    if let Ok(value) = HeaderValue::from_str(&recorder.header(started.elapsed())) {
        response.headers_mut().insert(HeaderName::from_static(SERVER_TIMING), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_lists_each_hop_with_one_decimal_then_the_total() {
        let cases = [
            (vec![], Duration::from_micros(260), "total;dur=0.3", "no hop: the total only"),
            (
                vec![(Hop::Auth, Duration::from_micros(231_449)), (Hop::Event, Duration::from_micros(1_160))],
                Duration::from_micros(233_000),
                "auth;dur=231.4, event;dur=1.2, total;dur=233.0",
                "two hops, in the order they ended",
            ),
            (
                vec![(Hop::Mail, Duration::from_millis(3)), (Hop::MailJob, Duration::from_micros(1_960))],
                Duration::from_secs(2),
                "mail;dur=3.0, mail-job;dur=2.0, total;dur=2000.0",
                "the mail's fallback",
            ),
            (
                vec![(Hop::Log, Duration::ZERO), (Hop::Logs, Duration::from_nanos(40))],
                Duration::from_nanos(50),
                "log;dur=0.0, logs;dur=0.0, total;dur=0.0",
                "under a microsecond",
            ),
        ];
        for (hops, total, expected, why) in cases {
            assert_eq!(header(hops.into_iter(), total), expected, "{why}");
        }
    }

    #[test]
    fn each_downstream_call_has_its_hop_name() {
        let cases = [
            (Service::Authentication, "auth", "auth"),
            (Service::Logger, "log", "log"),
            (Service::Logger, "logs", "logs"),
            (Service::Mailer, "mail", "mail"),
            (Service::RabbitMq, "event", "event"),
            (Service::RabbitMq, "log", "event"),
            (Service::RabbitMq, "auth", "event"),
            (Service::RabbitMq, "mail", "mail-job"),
        ];
        for (service, action, name) in cases {
            assert_eq!(Hop::of(service, action).name(), name, "{service} for {action}");
        }
    }

    #[tokio::test]
    async fn hops_are_recorded_in_the_scope_of_a_request_only() {
        record(Hop::Auth, Duration::from_millis(1));
        let recorder = Recorder::default();
        RECORDER
            .scope(recorder.clone(), async {
                record(Hop::Log, Duration::from_millis(2));
                tokio::spawn(carry(async { record(Hop::Event, Duration::from_millis(3)) })).await.unwrap();
                // Not carried: not this request's.
                tokio::spawn(async { record(Hop::Mail, Duration::from_millis(4)) }).await.unwrap();
            })
            .await;
        assert_eq!(recorder.header(Duration::from_millis(9)), "log;dur=2.0, event;dur=3.0, total;dur=9.0");
    }

    #[test]
    fn a_hop_past_the_capacity_is_dropped() {
        let mut hops = Hops::default();
        for _ in 0..MAX_HOPS + 2 {
            hops.push(Hop::Log, Duration::from_millis(1));
        }
        assert_eq!(hops.iter().count(), MAX_HOPS);
    }
}
