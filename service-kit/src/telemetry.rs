//! Structured logs: JSON lines by default, human-readable with `LOG_FORMAT=pretty` (multi-line)
//! or `LOG_FORMAT=compact` (one line per event).

use tracing_subscriber::EnvFilter;

use crate::settings::{Env, LOG_FORMAT, RUST_LOG};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(service: &str, env: &Env) {
    let filter = EnvFilter::try_new(env.get(RUST_LOG).unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let installed = match env.get(LOG_FORMAT) {
        Some("pretty") => builder.pretty().try_init(),
        // One line per event: what `project/stack.sh` shows, prefixed with the service's name.
        Some("compact") => builder.compact().try_init(),
        _ => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    if installed.is_ok() {
        tracing::info!(service, "telemetry initialised");
    }
}

/// For tests: logs go to the test's output only when `TEST_LOG` is set; safe to call often.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}
