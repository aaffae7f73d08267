//! `POST /log {"name", "data", "level"?}` → 202 `{"error":false,"message":"logged","data":{"id"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use contract::Envelope;
use contract::log::LogPayload;
use serde_json::json;

use super::ApiError;
use crate::service::LogService;

#[tracing::instrument(name = "POST /log", skip_all, fields(name = %payload.name))]
pub async fn write(logs: web::Data<LogService>, payload: web::Json<LogPayload>) -> Result<HttpResponse, ApiError> {
    let id = logs.write(payload.into_inner().into_entry(None)).await?;
    Ok(service_kit::http::envelope(StatusCode::ACCEPTED, &Envelope::with_data("logged", json!({ "id": id }))))
}
