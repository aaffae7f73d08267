//! The REST hops (authentication, mailer): one pooled HTTP client shared by both, a timeout per
//! hop, and the answer's envelope decoded into a typed result or a [`DownstreamError`].
//!
//! The hop's timeout is the request's budget, and the service is told how much of it is left
//! (`Request-Timeout`, [`service_kit::deadline`]), less a tenth kept for the answer's way back,
//! so that it gives up on work the broker would no longer wait for and answers before the
//! broker's own timer fires.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use contract::Envelope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DownstreamError, Service, root_cause};

/// One REST downstream: its base URL and timeout, over the shared connection pool.
#[derive(Debug, Clone)]
pub struct RestService {
    /// Named in every error message.
    service: Service,
    /// `http://host:port`, without a trailing slash.
    base_url: String,
    /// Bounds a whole call: connecting, sending, and reading the answer.
    timeout: Duration,
    /// Shared by every hop: a `reqwest::Client` is a handle to one connection pool.
    http: reqwest::Client,
}

/// What the service is told it has left of the budget ending at `deadline`: nine tenths of the
/// remaining time, the rest being the answer's way back.
fn downstream_budget(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()) * 9 / 10
}

/// The one HTTP client of the broker: keep-alive connections reused across requests.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        // Under actix-web's default keep-alive (5 s): a connection the service is closing as idle
        // must not be reused, or the request fails with "connection closed before message
        // completed" (seen as a 502 in the login storm test).
        .pool_idle_timeout(Duration::from_secs(4))
        .tcp_nodelay(true)
        // A service never redirects; following one would only hide a misconfigured URL.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("broker/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl RestService {
    pub fn new(service: Service, base_url: &str, timeout: Duration, http: reqwest::Client) -> Self {
        Self { service, base_url: base_url.trim_end_matches('/').to_owned(), timeout, http }
    }

    /// The shared connection pool (the JWKS fetch uses it too).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// `POST {base}{path}` with a JSON body; a 2xx envelope's `data` decoded as `T`.
    #[tracing::instrument(name = "rest.post", skip(self, body), fields(service = %self.service, base_url = %self.base_url))]
    pub async fn post<B, T>(&self, path: &str, body: &B) -> Result<Envelope<T>, DownstreamError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let deadline = Instant::now() + self.timeout;
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .timeout(self.timeout)
            .header(
                service_kit::deadline::REQUEST_TIMEOUT,
                service_kit::deadline::header_value(downstream_budget(deadline)),
            )
            .json(body);
        // The hop's span (`rest.post`) is the parent of the service's request span.
        if let Some(traceparent) = service_kit::trace::traceparent(&tracing::Span::current()) {
            request = request.header(service_kit::trace::TRACEPARENT, traceparent);
        }
        let (status, bytes) = self.exchange(request).await?;
        let service = self.service;
        if status.is_success() {
            let unreadable =
                |e: serde_json::Error| DownstreamError::Failed { service, reason: format!("unreadable answer: {e}") };
            // Through `Value`: `Envelope<T>`'s derived `Deserialize` would ask for `T: Default`.
            let envelope: Envelope = serde_json::from_slice(&bytes).map_err(unreadable)?;
            let data = envelope.data.map(serde_json::from_value).transpose().map_err(unreadable)?;
            return Ok(Envelope { error: envelope.error, message: envelope.message, data });
        }
        let message = serde_json::from_slice::<Envelope>(&bytes)
            .map(|envelope| envelope.message)
            .unwrap_or_else(|_| format!("answered {status}"));
        tracing::warn!(%status, %message, "downstream refused the request");
        if status.is_client_error() {
            Err(DownstreamError::Rejected { service, status, message })
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            Err(DownstreamError::Unavailable { service, message })
        } else {
            Err(DownstreamError::Failed { service, reason: message })
        }
    }

    /// `GET {base}/health`: the service is up and answering. For the broker's `/ready`.
    pub async fn health(&self) -> Result<(), String> {
        let request = self.http.get(format!("{}{}", self.base_url, contract::paths::HEALTH)).timeout(self.timeout);
        match self.exchange(request).await {
            Ok((status, _)) if status.is_success() => Ok(()),
            Ok((status, _)) => Err(format!("answered {status}")),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Sends the request and reads the whole answer, within the timeout.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, actix_web::web::Bytes), DownstreamError> {
        let (service, timeout) = (self.service, self.timeout);
        let failed = |error: reqwest::Error| {
            tracing::warn!(error = %root_cause(&error), "downstream call failed");
            if error.is_timeout() {
                DownstreamError::Timeout { service, timeout }
            } else {
                DownstreamError::Unreachable { service, reason: root_cause(&error) }
            }
        };
        let response = request.send().await.map_err(failed)?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = response.bytes().await.map_err(failed)?;
        Ok((status, bytes))
    }
}
