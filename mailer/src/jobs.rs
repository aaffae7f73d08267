//! The mail jobs the broker queued on RabbitMQ while the mailer could not take a mail
//! ([`contract::mail::MailJob`]), and what the mailer does with each one. The consuming loop
//! (connect, prefetch, manual acks, reconnect) is `service_kit::amqp::consumer`'s.
//!
//! The policy, kept in [`after_failure`]:
//! - a job is acked only after the SMTP server accepted its mail;
//! - an SMTP outage or a transient refusal (connect error, timeout, a 4xx reply) is retried
//!   with backoff, without end, holding the message: an outage never dead-letters a mail, and
//!   the prefetch window stops the mailer taking more while it waits;
//! - a permanent refusal of the mail itself (a 5xx reply to MAIL, RCPT or DATA) and a body that
//!   is no job are rejected without requeue, to the dead-letter queue, where they wait for a
//!   human. A 5xx while opening the session (AUTH refused: wrong credentials) is the mailer's
//!   configuration, not the mail's fault: retried, so that fixing it sends the held mail.
//!
//! Sent ids: the ids this process sent are remembered ([`SENT_IDS_CAPACITY`] at most, each for
//! [`SENT_IDS_LIFETIME`]), so a job redelivered to this process (an ack lost with its channel,
//! a job queued twice under one id) is acked without a second send. What remains
//! at-least-once: a job redelivered to another replica, or to this one after a restart (the
//! record is in memory), or one whose ack was lost between the SMTP server's acceptance and the
//! ack after a crash, is sent again; so is a send that timed out after the server had in fact
//! accepted it, and two copies of one id in hand at once (RabbitMQ does not deliver a message
//! again while it is in hand, so only a job published twice could do that). SMTP itself has no idempotency key, so a shared record would only narrow this.

use std::time::Duration;

use contract::mail::MailJob;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use moka::sync::Cache;
use service_kit::amqp::consumer;
use service_kit::retry::RetryPolicy;
use uuid::Uuid;

use crate::smtp::SmtpError;
use crate::state::AppState;

/// Most ids remembered at once; beyond it the least used are forgotten first. An id and its
/// entry take well under 100 bytes, so this is a few MiB at most.
pub const SENT_IDS_CAPACITY: u64 = 100_000;
/// How long a sent id is remembered: far longer than a redelivery takes (seconds).
pub const SENT_IDS_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do after a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Wait, then send again: the server is down or asked to come back later.
    Retry,
    /// Reject to the dead-letter queue: the server will never take this mail.
    DeadLetter,
}

/// The failure policy in one place: only a 5xx reply to the mail itself is final.
pub fn after_failure(error: &SmtpError) -> AfterFailure {
    match error {
        SmtpError::Refused { code, about_the_mail: true, .. } if code.starts_with('5') => AfterFailure::DeadLetter,
        SmtpError::Refused { .. } | SmtpError::Unreachable(_) | SmtpError::Timeout(_) => AfterFailure::Retry,
    }
}

/// How one delivery ended.
#[derive(Debug)]
enum Verdict {
    /// The SMTP server accepted the mail, now or earlier (a redelivery): ack.
    Sent { id: Uuid, again: bool },
    /// Never sendable: reject without requeue.
    DeadLetter { reason: String },
}

/// Sends queued jobs; cheap to clone, one clone per delivery task.
#[derive(Clone)]
pub struct JobHandler {
    /// The SMTP pool, the templates and the default sender, shared with `/send`.
    state: AppState,
    /// The ids this process sent (see the module doc).
    sent: Cache<Uuid, ()>,
    /// The delays between sends of one job while the SMTP server is down.
    backoff: RetryPolicy,
}

impl JobHandler {
    pub fn new(state: AppState, backoff: RetryPolicy) -> Self {
        let sent = Cache::builder().max_capacity(SENT_IDS_CAPACITY).time_to_live(SENT_IDS_LIFETIME).build();
        Self { state, sent, backoff }
    }

    async fn process(&self, body: &[u8]) -> Verdict {
        let job: MailJob = match serde_json::from_slice(body) {
            Ok(job) => job,
            Err(error) => return Verdict::DeadLetter { reason: format!("not a mail job: {error}") },
        };
        let id = job.id;
        tracing::Span::current().record("job_id", tracing::field::display(id));
        if self.sent.contains_key(&id) {
            return Verdict::Sent { id, again: true };
        }
        let message = match self.state.compose(job.mail) {
            Ok((_, message)) => message,
            Err(error) => return Verdict::DeadLetter { reason: format!("cannot compose the mail: {error:#}") },
        };
        let mut delays = self.backoff.delays();
        loop {
            let error = match self.state.mailer.send(message.clone()).await {
                Ok(()) => {
                    self.sent.insert(id, ());
                    return Verdict::Sent { id, again: false };
                }
                Err(error) => error,
            };
            match after_failure(&error) {
                AfterFailure::DeadLetter => return Verdict::DeadLetter { reason: format!("{error:?}") },
                AfterFailure::Retry => {
                    let delay = delays.next().unwrap_or(self.backoff.max_delay);
                    tracing::warn!(?error, retry_in_ms = delay.as_millis() as u64, "cannot send a queued mail yet");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

impl consumer::Handler for JobHandler {
    /// Sends the job's mail, then acks; or rejects it to the dead-letter queue. An ack or reject
    /// that fails (the channel closed meanwhile) leaves the job to RabbitMQ, which redelivers it.
    #[tracing::instrument(name = "mailer.job", skip_all, fields(redelivered = delivery.redelivered, job_id = tracing::field::Empty))]
    async fn handle(&self, delivery: Delivery) {
        match self.process(&delivery.data).await {
            Verdict::Sent { id, again } => {
                tracing::info!(%id, again, "queued mail sent");
                if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(%error, "cannot ack a sent job; RabbitMQ will redeliver it");
                }
            }
            Verdict::DeadLetter { reason } => {
                tracing::warn!(%reason, "dead-lettering the job");
                if let Err(error) = delivery.reject(BasicRejectOptions { requeue: false }).await {
                    tracing::warn!(%error, "cannot reject the job; RabbitMQ will redeliver it");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> SmtpError {
        SmtpError::Refused { code: code.into(), about_the_mail: true, source: format!("{code} no").into() }
    }

    #[test]
    fn only_a_permanent_refusal_dead_letters_a_job() {
        let cases = [
            (refused("550"), AfterFailure::DeadLetter, "mailbox unavailable"),
            (refused("554"), AfterFailure::DeadLetter, "transaction failed"),
            (refused("421"), AfterFailure::Retry, "service not available, closing"),
            (refused("451"), AfterFailure::Retry, "local error, try later"),
            (
                SmtpError::Refused { code: "535".into(), about_the_mail: false, source: "bad credentials".into() },
                AfterFailure::Retry,
                "AUTH refused: our configuration, not the mail",
            ),
            (SmtpError::Unreachable("connection refused".into()), AfterFailure::Retry, "server down"),
            (SmtpError::Timeout(Duration::from_secs(1)), AfterFailure::Retry, "no answer"),
        ];
        for (error, expected, why) in cases {
            assert_eq!(after_failure(&error), expected, "{why}");
        }
    }
}
