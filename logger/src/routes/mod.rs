//! The HTTP API: `POST /log`, `GET /logs`, `GET /logs/{id}`, besides `/health` and `/ready`.

mod log;
mod logs;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, ResponseError, web};
use contract::log::LogError;
use contract::paths::logger;

use crate::service::LogService;

/// Adds the routes and the [`LogService`] they share.
pub fn configure(cfg: &mut web::ServiceConfig, logs: web::Data<LogService>) {
    cfg.app_data(logs)
        .app_data(logs::query_config())
        // The Go original's authentication service posts its entries without a Content-Type.
        .service(
            web::resource(logger::LOG)
                .wrap(from_fn(service_kit::http::untyped_body_is_json))
                .route(web::post().to(log::write)),
        )
        .service(web::resource(logger::LOGS).route(web::get().to(logs::list)))
        .service(web::resource(logger::LOG_BY_ID).route(web::get().to(logs::get)));
}

/// A failed logger operation as an HTTP answer. All three routes fail the same ways (bad input,
/// no such entry, store down), so they share this one type rather than one enum each.
#[derive(thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] LogError);

impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        service_kit::http::error_chain_fmt(self, f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            LogError::Invalid(_) => StatusCode::BAD_REQUEST,
            LogError::NotFound(_) => StatusCode::NOT_FOUND,
            LogError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        service_kit::http::error_response(self)
    }
}
