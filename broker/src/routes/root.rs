//! `POST /` and `GET /ping`: the broker answers, without touching a downstream.

use actix_web::HttpResponse;
use contract::{Envelope, paths};

/// The frontend's "Test Broker" button.
#[utoipa::path(
    post,
    path = paths::broker::ROOT,
    tag = "broker",
    responses((status = 200, description = "\"Hit the broker\"", body = Envelope)),
)]
pub async fn hit() -> HttpResponse {
    HttpResponse::Ok().json(Envelope::ok("Hit the broker"))
}

/// A heartbeat for load balancers: the process answers (see also `/health` and `/ready`).
#[utoipa::path(
    get,
    path = paths::broker::PING,
    tag = "operations",
    responses((status = 200, description = "\"pong\"", body = Envelope)),
)]
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok().json(Envelope::ok("pong"))
}
