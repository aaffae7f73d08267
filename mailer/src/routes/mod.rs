//! One file per endpoint (`/health` and `/ready` come from `service_kit`).

mod send;

use actix_web::web;
use contract::paths::mailer;

pub use send::{SendError, send};

use crate::state::AppState;

/// Adds `POST /send` and `state`, which it uses.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    cfg.app_data(state).service(web::resource(mailer::SEND).route(web::post().to(send)));
}
