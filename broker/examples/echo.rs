//! The baseline of the broker's load figures: a bare actix-web server whose `POST /` answers
//! with the body it got, with no middleware, no routing beyond that, no downstream.
//!
//! `cargo run --release -p broker --example echo -- 18090`, then load it like the broker;
//! `project/bench/run.sh` runs it as the floor of the whole-system benchmark.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn echo(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(18090);
    HttpServer::new(|| App::new().route("/", web::post().to(echo))).bind(("127.0.0.1", port))?.run().await
}
