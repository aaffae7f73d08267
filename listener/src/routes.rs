//! The listener's HTTP routes: none of its own yet. It serves `/health` and `/ready` (from
//! `service_kit`); its work is the consumer, not requests. Registered like every other
//! service's routes, so that the next endpoint has its place.

use actix_web::web;

/// Adds the listener's routes (none besides service-kit's); its handlers share no state.
pub fn configure(_cfg: &mut web::ServiceConfig, _state: web::Data<()>) {}
