//! `GET /logs?limit=&before=&trace_id=`: newest first, `limit` (default 20, at most 100)
//! entries older than the entry `before`; the next page is `before=<id of the last entry>`. A
//! `before` that is no entry's id is a 404, as `GET /logs/{id}` of it is. `trace_id` (32
//! lowercase hex digits) keeps only the entries caused by the request of that trace; any other
//! value is a 400.
//! `GET /logs/{id}`: one entry, 404 when absent, 400 when the id is malformed.

use actix_web::error::QueryPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use contract::Envelope;
use serde::Deserialize;

use super::ApiError;
use crate::service::LogService;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
    before: Option<String>,
    trace_id: Option<String>,
}

/// Query strings that do not parse get a 400 in the envelope, naming the problem.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _req| {
        let message = match &error {
            // The query is the caller's: no value quoted back at length.
            QueryPayloadError::Deserialize(e) => {
                format!("invalid query string: {}", contract::validate::without_values(&e.to_string()))
            }
            other => format!("invalid query string: {other}"),
        };
        actix_web::error::InternalError::from_response(
            error,
            service_kit::http::error(StatusCode::BAD_REQUEST, message),
        )
        .into()
    })
}

#[tracing::instrument(name = "GET /logs", skip(logs))]
pub async fn list(logs: web::Data<LogService>, query: web::Query<ListQuery>) -> Result<HttpResponse, ApiError> {
    let ListQuery { limit, before, trace_id } = query.into_inner();
    let entries = logs.recent(limit, before.filter(|b| !b.trim().is_empty()), trace_id).await?;
    let message = format!("{} entries", entries.len());
    Ok(HttpResponse::Ok().json(Envelope::with_data(message, entries)))
}

#[tracing::instrument(name = "GET /logs/{id}", skip(logs))]
pub async fn get(logs: web::Data<LogService>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let entry = logs.get(&id).await?;
    Ok(HttpResponse::Ok().json(Envelope::with_data("found", entry)))
}
