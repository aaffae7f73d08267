//! `GET /openapi.json`: the broker's API as an OpenAPI document, generated from the contract
//! types (`contract` with its `openapi` feature) and the route annotations, never by hand.

use actix_web::{HttpResponse, web};
use contract::Envelope;
use contract::auth::{Credentials, User};
use contract::handle::{HandleRequest, LogsQuery};
use contract::log::{EntryId, Level, LogPayload, StoredEntry, TraceId};
use contract::mail::MailPayload;
use contract::paths;
use contract::token::SignedIn;
use serde_json::Value;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::{handle, root};
use crate::state::AppState;

/// The document's source: every path and the schemas they use.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "broker",
        description = "The gateway of the microservices system: `POST /handle` dispatches each action to \
                       authentication (REST), logger (tarpc), mailer (REST) or RabbitMQ (AMQP). Every \
                       answer, success or failure, is the envelope `{\"error\", \"message\", \"data\"?}`.",
    ),
    modifiers(&AnyValue, &BearerToken),
    paths(handle::handle, root::hit, root::ping, health, ready, openapi_json),
    components(schemas(
        Envelope, HandleRequest, Credentials, LogPayload, Level, MailPayload, LogsQuery, EntryId, TraceId, User,
        SignedIn, StoredEntry
    )),
    tags(
        (name = "broker", description = "What the frontend calls."),
        (name = "operations", description = "Liveness, readiness and this document."),
    ),
)]
pub struct ApiDoc;

/// The `bearer` security scheme `/handle` names: the access token of the `auth` action.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("`data.token` of the `auth` action, as `Authorization: Bearer <token>`."))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Registers the schema of `serde_json::Value` (any JSON), which the envelope's default `data`
/// refers to; utoipa's `components(schemas(...))` cannot list it.
struct AnyValue;

impl Modify for AnyValue {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.schemas.insert(Value::name().into_owned(), Value::schema());
        }
    }
}

/// The document as the JSON text `GET /openapi.json` serves; rendered once, at start-up.
pub fn render_json() -> serde_json::Result<web::Bytes> {
    ApiDoc::openapi().to_pretty_json().map(web::Bytes::from)
}

#[utoipa::path(
    get,
    path = paths::broker::OPENAPI,
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json")),
)]
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(state.openapi_json.clone())
}

// `/health` and `/ready` are served by service-kit; these stubs only describe them.

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = paths::HEALTH,
    tag = "operations",
    responses((status = 200, description = "\"ok\"", body = Envelope)),
)]
#[allow(dead_code)]
fn health() {}

/// Readiness: the broker serves. `data` maps each downstream (authentication, logger, mailer,
/// RabbitMQ) to "ok" or the reason it failed, followed by its circuit's state; a downstream that
/// is down is shown, not gating (each action then has its degraded answer).
#[utoipa::path(
    get,
    path = paths::READY,
    tag = "operations",
    responses(
        (status = 200, description = "\"ready\"; `data` names each downstream's state (`ok`, or what failed \
                                      and its circuit's state: `circuit closed`, `circuit open, retry in 7 s`, \
                                      `circuit half-open`).", body = Envelope),
    ),
)]
#[allow(dead_code)]
fn ready() {}
