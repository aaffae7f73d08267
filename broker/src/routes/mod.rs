//! The broker's routes, one module per endpoint. `/health` and `/ready` come from service-kit.

use actix_web::web;

pub mod handle;
pub mod openapi;
pub mod root;

/// Registers the routes; `state` holds what the handlers share.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    downstreams: web::Data<crate::Downstreams>,
    document: web::Data<openapi::Document>,
) {
    cfg.app_data(downstreams)
        .app_data(document)
        .route("/", web::post().to(root::hit))
        .route("/ping", web::get().to(root::ping))
        .route("/handle", web::post().to(handle::handle))
        .route("/openapi.json", web::get().to(openapi::openapi_json));
}
