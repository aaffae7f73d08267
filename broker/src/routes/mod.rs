//! The broker's routes, one module per endpoint. `/health` and `/ready` come from service-kit.

use actix_web::middleware::from_fn;
use actix_web::web;
use contract::paths::broker;

use crate::state::AppState;
use crate::timing;

pub mod handle;
pub mod openapi;
pub mod root;

/// Registers the routes and `state`, which the handlers share. Each path is one `web::resource`,
/// so that a method it does not declare gets 405 with `Allow` (in the envelope). The two the
/// test page calls answer with `Server-Timing`.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    cfg.app_data(state)
        .service(web::resource(broker::ROOT).wrap(from_fn(timing::server_timing)).route(web::post().to(root::hit)))
        .service(web::resource(broker::PING).route(web::get().to(root::ping)))
        .service(
            web::resource(broker::HANDLE).wrap(from_fn(timing::server_timing)).route(web::post().to(handle::handle)),
        )
        .service(web::resource(broker::OPENAPI).route(web::get().to(openapi::openapi_json)));
}
