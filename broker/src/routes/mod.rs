//! The broker's routes, one module per endpoint. `/health` and `/ready` come from service-kit.

use actix_web::web;
use contract::paths::broker;

use crate::state::AppState;

pub mod handle;
pub mod openapi;
pub mod root;

/// Registers the routes and `state`, which the handlers share.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    cfg.app_data(state)
        .route(broker::ROOT, web::post().to(root::hit))
        .route(broker::PING, web::get().to(root::ping))
        .route(broker::HANDLE, web::post().to(handle::handle))
        .route(broker::OPENAPI, web::get().to(openapi::openapi_json));
}
