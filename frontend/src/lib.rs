//! The test page of the system, served by a small actix-web app.
//!
//! - [`settings`]: the port, the broker's URL as the *browser* sees it (`BROKER_URL`) and the
//!   mail catcher's UI (`MAILCATCHER_URL`), both parsed into [`settings::PublicUrl`].
//! - [`page`]: the HTML template, rendered once at start-up with both URLs HTML-escaped into
//!   it, and the Content-Security-Policy that allows exactly the broker besides the page itself.
//! - [`routes`]: `GET /` (the page) and `GET /static/{file}` (CSS, JS, icon). Every asset is
//!   compiled into the binary (`include_str!`), so the page works offline and needs no CDN.
//! - [`startup`]: `Application::build` binds (port 0 in tests) and `run_until_stopped` serves,
//!   with `/health` and `/ready` from `service-kit`.
//!
//! The page's script (`assets/app.js`) reads the broker URL from the `<body>` element's
//! `data-broker-url` attribute, calls `POST /` and `POST /handle`, shows the exact JSON sent
//! and received with the status code, and polls the broker's `logs` action every two seconds.
#![forbid(unsafe_code)]

pub mod page;
pub mod routes;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
