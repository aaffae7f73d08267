//! One function per `/handle` action: the hop it makes and what the caller gets back.

use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use contract::Envelope;
use contract::auth::Credentials;
use contract::event::LogEvent;
use contract::handle::LogsQuery;
use contract::log::{EntryId, Level, LogPayload, TraceId};
use contract::mail::{MailJob, MailPayload};
use contract::paths;
use contract::token::SignedIn;
use service_kit::amqp::PublishError;
use service_kit::http::envelope;
use tracing::Instrument;

use super::HandleError;
use crate::breaker::Breaker;
use crate::downstream::{DownstreamError, Downstreams, Service, go_original};
use crate::{metrics, timing};

/// The name of the events that record login attempts.
pub const LOGIN_EVENT_NAME: &str = "authentication";

/// `auth`: checks the credentials with the authentication service; a wrong pair is a 401.
/// Every answered attempt is recorded as an event (never with the password); the answer waits
/// for it at most [`LOGIN_EVENT_WAIT`].
#[tracing::instrument(name = "action.auth", skip_all, fields(email = %credentials.email))]
pub async fn auth(downstreams: &Downstreams, credentials: Credentials) -> Result<HttpResponse, HandleError> {
    let answer = downstreams
        .breakers
        .auth
        .hop("auth", downstreams.auth.post::<_, SignedIn>(paths::authentication::AUTHENTICATE, &credentials))
        .await;
    let email = &credentials.email;
    match answer {
        Ok(Envelope { data: Some(user), .. }) => {
            // Recorded as the subject of the token just issued (authentication signs `sub` = id).
            let sub = user.token.is_some().then(|| user.user.id.to_string());
            emit_login_event(downstreams, Level::Info, format!("{email} logged in"), sub).await;
            Ok(envelope(StatusCode::ACCEPTED, &Envelope::with_data("Authenticated!", user)))
        }
        Ok(Envelope { data: None, .. }) => Err(DownstreamError::Failed {
            service: Service::Authentication,
            reason: "it accepted the credentials but sent no user".into(),
        }
        .into()),
        // Ours answers 401, the Go original 400 `invalid credentials`: the caller gets 401 for both.
        Err(error) if go_original::is_wrong_credentials(&error) => {
            emit_login_event(downstreams, Level::Warning, format!("failed login for {email}"), None).await;
            Err(HandleError::InvalidCredentials)
        }
        Err(error) => Err(error.into()),
    }
}

/// How long the answer to `auth` waits for its login event to be confirmed: long enough for a
/// publish to a RabbitMQ that is up (a few ms; so the answer's `Server-Timing` names the hop),
/// short next to the password check (bcrypt, ~230 ms), so a RabbitMQ that hangs adds little to
/// a login until its circuit opens.
pub const LOGIN_EVENT_WAIT: Duration = Duration::from_millis(250);

/// Publishes a login event in a task of its own: a failure to publish is logged, not returned,
/// and the publish goes on when the answer stops waiting for it ([`LOGIN_EVENT_WAIT`]) or the
/// caller goes away. The publisher's timeout bounds the task.
async fn emit_login_event(downstreams: &Downstreams, level: Level, data: String, sub: Option<String>) {
    // A constant name and an address with a few words are always within the log limits.
    let (Ok(name), Ok(data)) = (LOGIN_EVENT_NAME.parse(), data.parse()) else {
        return tracing::warn!("the login event is outside the log limits; not recorded");
    };
    let event = LogEvent::new(LogPayload { name, data, level: Some(level) }, sub);
    let (events, breaker) = (downstreams.events.clone(), downstreams.breakers.rabbit.clone());
    let span = tracing::info_span!("login_event", event_id = %event.id);
    let published = tokio::spawn(timing::carry(
        async move {
            if let Err(error) = publish(&breaker, "auth", events.publish(&event)).await {
                tracing::warn!(%error, "could not record the login attempt");
            }
        }
        .instrument(span),
    ));
    // Dropping the handle (on the timeout) leaves the task running.
    if tokio::time::timeout(LOGIN_EVENT_WAIT, published).await.is_err() {
        tracing::info!(wait_ms = LOGIN_EVENT_WAIT.as_millis(), "the login event is not confirmed yet; answering");
    }
}

/// `log`: stores the entry, with the caller's token subject, through the logger's RPC server.
///
/// When the logger cannot be reached or its circuit is open, the entry takes the event path
/// instead (published with an event id, stored by the listener once the logger is back), so
/// an accepted entry is not lost to a logger outage. Not on a timeout or a store error: the
/// logger may have stored the entry, and the event would store it a second time. A connection
/// that broke mid-call is the one ambiguous case taken: the entry is stored twice only if the
/// logger stored it and died before answering.
#[tracing::instrument(name = "action.log", skip_all, fields(name = payload.name.as_str()))]
pub async fn log(
    downstreams: &Downstreams,
    payload: LogPayload,
    sub: Option<String>,
) -> Result<HttpResponse, HandleError> {
    // The request's trace (the caller's `traceparent`, or the broker's own).
    let entry = payload.clone().into_entry(None, sub.clone()).in_trace(service_kit::trace::current_trace_id());
    // Boxed, as the fallback below: each layer around a future (breaker, measurement) holds it
    // twice (as its argument and as what it awaits), and the action's future is moved once
    // more into its box; inline, every `log` copied kilobytes of futures (callgrind: memcpy
    // was most of the broker's instructions per `log`). Behind a box they move a pointer.
    let write = Box::pin(downstreams.logger.write_log(entry));
    match downstreams.breakers.logger.hop("log", write).await {
        Ok(_) => Ok(envelope(StatusCode::ACCEPTED, &Envelope::ok("logged"))),
        Err(error) if error.not_taken() => Box::pin(log_via_rabbitmq(downstreams, payload, sub, error)).await,
        Err(error) => Err(error.into()),
    }
}

/// `log`'s fallback: the entry as an event through RabbitMQ.
async fn log_via_rabbitmq(
    downstreams: &Downstreams,
    payload: LogPayload,
    sub: Option<String>,
    not_taken: DownstreamError,
) -> Result<HttpResponse, HandleError> {
    let event = LogEvent::new(payload, sub);
    let publish = downstreams.events.publish(&event);
    instead_via_rabbitmq(&downstreams.breakers.rabbit, "log", not_taken, event.id, publish).await?;
    Ok(envelope(StatusCode::ACCEPTED, &Envelope::ok(LOGGED_VIA_FALLBACK)))
}

/// The answer to a `log` stored through the event path because the logger was unavailable.
pub const LOGGED_VIA_FALLBACK: &str = "logged via RabbitMQ (logger unavailable)";

/// `event`: publishes the entry, with the caller's token subject, to RabbitMQ and answers once
/// the broker confirmed it.
#[tracing::instrument(name = "action.event", skip_all, fields(name = payload.name.as_str()))]
pub async fn event(
    downstreams: &Downstreams,
    payload: LogPayload,
    sub: Option<String>,
) -> Result<HttpResponse, HandleError> {
    let event = LogEvent::new(payload, sub);
    publish(&downstreams.breakers.rabbit, "event", downstreams.events.publish(&event)).await?;
    tracing::debug!(event_id = %event.id, "event published");
    Ok(envelope(StatusCode::ACCEPTED, &Envelope::ok("logged via RabbitMQ")))
}

/// `mail`: hands the mail to the mailer, which sends it before answering (202 "Message sent").
/// When the mailer cannot take it (unreachable, its circuit open, or it answered 503), the mail
/// is queued on RabbitMQ as a [`MailJob`], publisher-confirmed, for the mailer to send once back
/// (202 "Message queued"). A 4xx is the caller's error and is passed through. A timeout is not
/// queued: the mailer may have sent the mail, and queueing it would send it twice; so the
/// direct path carries no job id. If RabbitMQ cannot take the job either, the caller gets the
/// mailer's error (502, or 503 with `Retry-After`): the mail was neither sent nor queued.
#[tracing::instrument(name = "action.mail", skip_all, fields(to = %mail.to))]
pub async fn mail(downstreams: &Downstreams, mail: MailPayload) -> Result<HttpResponse, HandleError> {
    let direct = downstreams
        .breakers
        .mailer
        .hop("mail", downstreams.mailer.post::<_, serde_json::Value>(paths::mailer::SEND, &mail))
        .await;
    let not_taken = match direct {
        Ok(_) => return Ok(envelope(StatusCode::ACCEPTED, &Envelope::ok(format!("Message sent to {}", mail.to)))),
        Err(error) if error.not_taken() => error,
        Err(error) => return Err(error.into()),
    };
    let job = MailJob::new(mail);
    let publish = downstreams.mail_jobs.publish_mail(&job);
    instead_via_rabbitmq(&downstreams.breakers.rabbit, "mail", not_taken, job.id, publish).await?;
    Ok(envelope(StatusCode::ACCEPTED, &Envelope::ok(format!("Message queued for {}", job.mail.to))))
}

/// `logs`: the newest entries first, older than `before` when given (no such entry: 404), only
/// those of the trace `trace_id` when given.
#[tracing::instrument(name = "action.logs", skip_all, fields(limit = query.effective_limit(), before = ?query.before, trace_id = ?query.trace_id))]
pub async fn logs(downstreams: &Downstreams, query: LogsQuery) -> Result<HttpResponse, HandleError> {
    let limit = query.effective_limit();
    let before = query.before.map(EntryId::into_inner);
    let trace_id = query.trace_id.map(TraceId::into_inner);
    let entries = downstreams.breakers.logger.hop("logs", downstreams.logger.recent(limit, before, trace_id)).await?;
    Ok(envelope(StatusCode::OK, &Envelope::with_data("recent log entries", entries)))
}

/// The fallback of `log` and `mail`: publishes through RabbitMQ (message `id`) what the direct
/// hop did not take ([`DownstreamError::not_taken`]). The direct hop's error when RabbitMQ
/// cannot take it either: that is why the work was not done.
async fn instead_via_rabbitmq(
    breaker: &Breaker,
    action: &'static str,
    not_taken: DownstreamError,
    id: impl std::fmt::Display,
    publish: impl Future<Output = Result<(), PublishError>>,
) -> Result<(), HandleError> {
    match self::publish(breaker, action, publish).await {
        Ok(()) => {
            tracing::info!(action, %id, reason = %not_taken, "not taken directly: sent through RabbitMQ instead");
            Ok(())
        }
        Err(queue_error) => {
            tracing::warn!(action, %id, reason = %not_taken, %queue_error, "RabbitMQ cannot take it either");
            Err(not_taken.into())
        }
    }
}

/// Runs a confirmed publish (an event, or a mail job for `mail`) through RabbitMQ's breaker and
/// counts it ([`metrics::EVENTS_PUBLISHED`] by action), with the time to the confirm of a
/// publish the breaker let through.
async fn publish(
    breaker: &Breaker,
    action: &'static str,
    publish: impl Future<Output = Result<(), PublishError>>,
) -> Result<(), DownstreamError> {
    let confirmed = async {
        let started = Instant::now();
        let confirmed = publish.await.map_err(DownstreamError::from);
        metrics::record_confirm(metrics::outcome(&confirmed), started.elapsed());
        confirmed
    };
    let published = breaker.hop(action, confirmed).await;
    metrics::record_publish(action, metrics::outcome(&published));
    published
}
