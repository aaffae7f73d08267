//! A server with every service's middleware and one route, `POST /` (the broker's "Hit the
//! broker"), with or without the HTTP server metrics: what `bench/metrics_cost.sh` measures.
//!
//!     metrics_cost <port> on|off

use actix_web::{HttpResponse, web};
use contract::Envelope;
use service_kit::server::HttpService;
use service_kit::{HttpSettings, Readiness};

fn configure(cfg: &mut web::ServiceConfig, _: web::Data<()>) {
    cfg.route("/", web::post().to(|| async { HttpResponse::Ok().json(Envelope::ok("Hit the broker")) }));
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect("usage: metrics_cost <port> on|off");
    let on = match args.next().as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => panic!("usage: metrics_cost <port> on|off"),
    };
    let settings = HttpSettings { port, ..HttpSettings::ephemeral() };
    let (listener, _) = service_kit::server::bind(&settings)?;
    let service = HttpService::new(&settings, Readiness::new()).workers(1);
    let service = if on { service } else { service.without_http_metrics() };
    service.run(listener, (), configure)?.await
}
