//! A caller's deadline across a REST hop, in the spirit of gRPC's `grpc-timeout`: the caller
//! sends the time it will still wait as `Request-Timeout: <milliseconds>`, and the service
//! turns it back into an [`Instant`] on arrival, so that it can drop work nobody waits for.

use std::time::{Duration, Instant};

use actix_web::HttpRequest;

/// The header's name, written by the broker and read by the services. A plain string: the
/// broker's HTTP client and actix use different `http` crate versions.
pub const REQUEST_TIMEOUT: &str = "request-timeout";

/// The header's value for a caller that waits `remaining` more.
pub fn header_value(remaining: Duration) -> String {
    remaining.as_millis().to_string()
}

/// When the caller of `request` stops waiting: `None` without a (readable) header, which
/// leaves the service's own limits in charge. `0` means the caller is already gone.
pub fn from_request(request: &HttpRequest) -> Option<Instant> {
    let millis: u64 = request.headers().get(REQUEST_TIMEOUT)?.to_str().ok()?.trim().parse().ok()?;
    Some(Instant::now() + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn the_header_round_trips_and_garbage_is_ignored() {
        let value = header_value(Duration::from_micros(1_500_900));
        assert_eq!(value, "1500");
        let before = Instant::now();
        let request = TestRequest::default().insert_header((REQUEST_TIMEOUT, value)).to_http_request();
        let deadline = from_request(&request).expect("a deadline");
        assert!(deadline >= before + Duration::from_millis(1500));
        assert!(deadline <= Instant::now() + Duration::from_millis(1500));

        for garbage in ["soon", "-1", ""] {
            let request = TestRequest::default().insert_header((REQUEST_TIMEOUT, garbage)).to_http_request();
            assert_eq!(from_request(&request), None, "{garbage:?}");
        }
        assert_eq!(from_request(&TestRequest::default().to_http_request()), None);
    }
}
