//! `GET /static/{file}`: the page's CSS, script and icon, compiled into the binary.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};
use service_kit::http::error;

/// A file the page loads.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every asset; nothing is read from disk at run time.
pub const ASSETS: [Asset; 3] = [
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", body: include_str!("../../assets/style.css") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("../../assets/app.js") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_str!("../../assets/favicon.svg") },
];

pub async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|asset| asset.name == name.as_str()) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            // Small files, served from memory: revalidating costs nothing and a rebuilt binary
            // never leaves a stale script in the browser.
            .insert_header(CacheControl(vec![CacheDirective::NoCache]))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(asset.body),
        None => error(actix_web::http::StatusCode::NOT_FOUND, format!("no asset named {:?}", name.as_str())),
    }
}
