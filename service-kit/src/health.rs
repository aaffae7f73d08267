//! `GET /health` answers while the process runs; `GET /ready` only when every dependency
//! answers, so that orchestrators route traffic to ready replicas only. A secondary duty (the
//! mailer's queued jobs) is [reported](Readiness::report) beside the checks without gating:
//! its outage must not take the replica's main work out of rotation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use contract::{Envelope, paths};
use futures::future::{BoxFuture, join_all};
use serde_json::{Map, Value};

/// How long one readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Named checks of a service's dependencies.
#[derive(Clone, Default)]
pub struct Readiness {
    /// Name, check, and whether a failure makes the service unready.
    checks: Vec<(&'static str, CheckFn, bool)>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check; `Err` carries a reason shown in the `/ready` body.
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(check())), true));
        self
    }

    /// Adds an entry shown in the `/ready` body like a check, whose failure does not make the
    /// service unready.
    pub fn report<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(check())), false));
        self
    }

    /// Runs every check concurrently, each bounded by [`CHECK_TIMEOUT`].
    pub async fn run(&self) -> (bool, Map<String, Value>) {
        let results = join_all(self.checks.iter().map(|(name, check, gates)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (*name, outcome, *gates)
        }))
        .await;
        let ready = results.iter().all(|(_, outcome, gates)| outcome.is_ok() || !gates);
        let report = results
            .into_iter()
            .map(|(name, outcome, _)| (name.to_owned(), Value::String(outcome.err().unwrap_or_else(|| "ok".into()))))
            .collect();
        (ready, report)
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Envelope::ok("ok"))
}

async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let (ready, report) = readiness.run().await;
    let (status, message) = if ready {
        (StatusCode::OK, "ready")
    } else {
        let failed: Vec<&String> = report.iter().filter(|(_, v)| *v != "ok").map(|(k, _)| k).collect();
        tracing::warn!(?failed, "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    let body = Envelope { error: !ready, message: message.to_owned(), data: Some(Value::Object(report)) };
    HttpResponse::build(status).json(body)
}

/// Adds `/health` and `/ready`.
pub fn routes(readiness: Readiness) -> impl Fn(&mut web::ServiceConfig) + Clone {
    let readiness = web::Data::new(readiness);
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(readiness.clone())
            .service(web::resource(paths::HEALTH).route(web::get().to(health)))
            .service(web::resource(paths::READY).route(web::get().to(ready)));
    }
}
