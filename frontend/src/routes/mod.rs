//! One file per endpoint (`/health` and `/ready` come from `service_kit`). The paths are the
//! page's own, not a contract between services, so they are written here rather than in
//! `contract::paths`.

mod assets;
mod index;

use actix_web::web;

pub use assets::{ASSETS, Asset, asset};
pub use index::index;

use crate::page::Page;

/// Adds the page, its assets, and the rendered [`Page`] they serve.
pub fn configure(cfg: &mut web::ServiceConfig, page: web::Data<Page>) {
    cfg.app_data(page)
        .service(web::resource("/").route(web::get().to(index)))
        .service(web::resource("/index.html").route(web::get().to(index)))
        .service(web::resource("/static/{file}").route(web::get().to(asset)));
}
