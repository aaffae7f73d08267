//! [`capture_logs`]: the process's log lines, as a service writes them (JSON, with the span's
//! fields), kept for the test to read: for checks on what a request writes to the log.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// The lines logged since [`capture_logs`].
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("the log buffer").clone();
        String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs the services' JSON log format at `info` as the process's subscriber, writing into
/// the returned buffer. Call first in the test (nextest runs each test in a process of its own);
/// panics if a subscriber is installed already (`TEST_LOG` set).
pub fn capture_logs() -> CapturedLogs {
    let logs = CapturedLogs::default();
    crate::telemetry::json_subscriber(tracing_subscriber::EnvFilter::new("info"), logs.clone())
        .try_init()
        .expect("no other subscriber (unset TEST_LOG for this test)");
    logs
}
