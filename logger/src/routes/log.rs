//! `POST /log {"name", "data", "level"?}` → 202 `{"error":false,"message":"logged","data":{"id"}}`.

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
    let id = logs.write(payload.into_entry(None, None), None).await?;
    Ok(service_kit::http::envelope(StatusCode::ACCEPTED, &Envelope::with_data("logged", json!({ "id": id }))))
}
