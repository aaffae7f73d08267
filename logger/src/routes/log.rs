//! `POST /log {"name", "data", "level"?}` → 202 `{"error":false,"message":"logged","data":{"id"}}`.
//! The entry records the request's trace id.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use contract::log::{LogError, LogPayload};
use contract::{Envelope, validate};
use serde_json::json;

use super::ApiError;
use crate::service::LogService;

#[tracing::instrument(name = "POST /log", skip_all, fields(name = tracing::field::Empty))]
pub async fn write(logs: web::Data<LogService>, body: web::Json<validate::JsonBody>) -> Result<HttpResponse, ApiError> {
    let payload: LogPayload = validate::from_value(body.into_inner().into_inner()).map_err(LogError::from)?;
    tracing::Span::current().record("name", payload.name.as_str());
    // The request's trace (its caller's, from `traceparent`, or its own).
    let entry = payload.into_entry(None, None).in_trace(service_kit::trace::current_trace_id());
    let id = logs.write(entry, None).await?;
    Ok(service_kit::http::envelope(StatusCode::ACCEPTED, &Envelope::with_data("logged", json!({ "id": id }))))
}
