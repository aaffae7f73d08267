//! The test page in a real browser: headless Chromium driven through chromedriver (fantoccini,
//! plain HTTP to the local driver) against the RUNNING stack (`bash project/stack.sh up --detach`).
//!
//! The test starts its own chromedriver on a free port (a `ChildServer`: killed with its process
//! group on drop, its output printed when the test fails), opens the page (`E2E_FRONTEND_URL`,
//! default http://localhost:8081), clicks every button and checks what a person would read: the
//! Received pane's message, the status badge, the Output line, the Sent pane; then that the
//! entries the Test Log and Test Event clicks stored (found in MongoDB) show up in the live log
//! view; that each answer's hops (`Server-Timing`) are drawn beside it, one bar per hop, with its
//! trace id (`traceresponse`); and that a click on a log entry shows the entry's trace id. A
//! screenshot of the page is saved to
//! `<target>/screenshots/test-page.png`, also when an assertion fails.
//!
//! `E2E_CHROMEDRIVER` and `E2E_CHROMIUM` override the binaries (default the Debian packages');
//! `E2E_MONGO_DB` names the stack's MongoDB database (default the wiring's; a stack started with
//! `STACK_PORT_OFFSET=N` has `<name>_N`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use mongodb::bson::{self, Bson, Document, doc};
use serde_json::{Value, json};
use service_kit::testing::{self, ChildServer, ScratchDir, eventually, free_port, stored_logs};
use service_kit::wiring;

const E2E_FRONTEND_URL: &str = "E2E_FRONTEND_URL";
const E2E_CHROMEDRIVER: &str = "E2E_CHROMEDRIVER";
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const E2E_CHROMIUM: &str = "E2E_CHROMIUM";
const E2E_MONGO_DB: &str = "E2E_MONGO_DB";
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
const START_THE_STACK: &str = "start the stack: bash project/stack.sh up --detach";
/// How long chromedriver may take to listen.
const DRIVER_START: Duration = Duration::from_secs(10);
/// How long the page may take to show an answer or a new log row (the view polls every 2 s).
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The entry the page's Test Log and Test Event buttons send (the Go original's demo payload).
const DEMO_NAME: &str = "event";
const DEMO_DATA: &str = "Some kind of data";

/// A setting from the environment, without a trailing slash.
fn env_or(key: &str, default: &str) -> String {
    service_kit::testing::env_or(key, default).trim_end_matches('/').to_owned()
}

/// A chromedriver of this test's own, with a fresh Chromium profile directory.
struct ChromeDriver {
    /// Declared before the profile: dropped (killed, with its Chromium) first.
    server: ChildServer,
    port: u16,
    profile: ScratchDir,
}

impl ChromeDriver {
    /// Starts chromedriver on a free port and returns once that port accepts connections.
    async fn start() -> Self {
        let binary = env_or(E2E_CHROMEDRIVER, DEFAULT_CHROMEDRIVER);
        let port = free_port();
        let profile = ScratchDir::new("chromium-profile");
        let mut command = Command::new(&binary);
        command
            .arg(format!("--port={port}"))
            // Its log on stderr, which the fixture keeps for a failure message; Chromium's own
            // output too (a crash leaves its reason there).
            .arg("--log-path=/dev/stderr")
            .arg("--enable-chrome-logs");
        let what = format!("chromedriver ({binary}; apt install chromium-driver)");
        let server = ChildServer::start(&what, command, &[port], DRIVER_START).await;
        Self { server, port, profile }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A headless Chromium session.
    async fn session(&self) -> Client {
        let chromium = env_or(E2E_CHROMIUM, DEFAULT_CHROMIUM);
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", self.profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object") };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("no Chromium session ({e}); chromedriver's output:\n{}", self.server.output()))
    }
}

/// `<workspace target dir>/screenshots/test-page.png`.
fn screenshot_path() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target dir holds tmp/");
    target.join("screenshots").join("test-page.png")
}

/// One button and what the page must show after its click.
struct Click {
    /// The `REQUESTS` key in app.js (`btn-<key>`, `data-action` on the Received pane).
    key: &'static str,
    button: &'static str,
    /// The status badge.
    status: &'static str,
    /// The envelope's message in the Received pane.
    message: &'static str,
    /// The body the Sent pane shows (`None`: no body).
    sent: Option<Value>,
    /// The hops the waterfall shows, from the answer's `Server-Timing`, `total` last.
    hops: &'static [&'static str],
}

fn clicks() -> Vec<Click> {
    let demo_log = json!({"name": DEMO_NAME, "data": DEMO_DATA});
    vec![
        Click {
            key: "broker",
            button: "Test Broker",
            status: "200 OK",
            message: "Hit the broker",
            sent: None,
            hops: &["total"],
        },
        Click {
            key: "auth",
            button: "Test Auth",
            status: "202 Accepted",
            message: "Authenticated!",
            sent: Some(json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}})),
            // The password check, then the login event.
            hops: &["auth", "event", "total"],
        },
        Click {
            key: "log",
            button: "Test Log",
            status: "202 Accepted",
            message: "logged",
            sent: Some(json!({"action": "log", "log": demo_log})),
            hops: &["log", "total"],
        },
        Click {
            key: "event",
            button: "Test Event",
            status: "202 Accepted",
            message: "logged via RabbitMQ",
            sent: Some(json!({"action": "event", "log": demo_log})),
            hops: &["event", "total"],
        },
        Click {
            key: "mail",
            button: "Test Mail",
            status: "202 Accepted",
            message: "Message sent to you@there.com",
            sent: Some(json!({"action": "mail", "mail": {
                "from": "me@example.com", "to": "you@there.com", "subject": "Test email", "message": "Hello world!"
            }})),
            hops: &["mail", "total"],
        },
    ]
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("the text of {css}: {e}"))
}

/// Waits until the page shows the element `css`.
async fn wait_for(client: &Client, css: &str, what: &str) {
    if let Err(error) = client.wait().at_most(PAGE_TIMEOUT).for_element(Locator::Css(css)).await {
        panic!("the page never showed {what} ({css}): {error}");
    }
}

/// The log entries named like the demo payload that were created since `since`.
async fn demo_entries_since(logs: &mongodb::Database, since: bson::DateTime) -> Vec<Document> {
    let filter = doc! { "name": DEMO_NAME, "created_at": { "$gte": since } };
    stored_logs(logs, filter).await.into_iter().filter(|entry| entry.get_str("data") == Ok(DEMO_DATA)).collect()
}

fn has_event_id(entry: &Document) -> bool {
    entry.get_str("event_id").is_ok()
}

/// The waterfall of the last answer: each hop's name, the text beside its bar and the bar's
/// width, read at one instant.
async fn waterfall(client: &Client) -> Vec<(String, String, String)> {
    let hops = client
        .execute(
            "return Array.from(document.querySelectorAll('#timing li.hop')).map((li) =>
                [li.dataset.hop, li.querySelector('.hop-ms')?.textContent ?? '',
                 li.querySelector('.hop-fill')?.style.width ?? '']);",
            vec![],
        )
        .await
        .expect("read the waterfall");
    serde_json::from_value(hops).expect("a list of [name, ms, width]")
}

/// Checks that the waterfall shows `expected` (one bar per hop, its duration in ms, `total` a
/// full bar) and returns the trace id shown beside it.
async fn assert_waterfall(client: &Client, expected: &[&str], what: &str) -> String {
    let hops = waterfall(client).await;
    let names: Vec<&str> = hops.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, expected, "{what}: the waterfall's hops {hops:?}");
    for (name, ms, width) in &hops {
        let number = ms.strip_suffix(" ms").unwrap_or_else(|| panic!("{what}: {name} shows {ms:?}, not ms"));
        assert!(number.parse::<f64>().is_ok() && number.contains('.'), "{what}: {name}: {ms:?}");
        let percent: f64 = width
            .strip_suffix('%')
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{what}: {name}'s bar is {width:?} wide"));
        assert!((0.0..=100.0).contains(&percent), "{what}: {name}'s bar is {width} wide");
        if name == "total" {
            assert_eq!(percent, 100.0, "{what}: the total is the whole bar");
        }
    }
    let trace_id = client
        .find(Locator::Id("trace-id"))
        .await
        .expect("the trace id")
        .attr("data-trace-id")
        .await
        .expect("read data-trace-id")
        .unwrap_or_else(|| panic!("{what}: no trace id shown beside the hops"));
    assert!(trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()), "{what}: trace {trace_id:?}");
    assert_eq!(text(client, "#trace-id").await, trace_id, "{what}: the trace id as text");
    trace_id
}

/// Clicks the row `css` of the live log view and returns what the page then shows of the
/// entry's trace: the entry's id and the text of its trace id. In one script: the view
/// re-renders every poll.
async fn click_entry(client: &Client, css: &str) -> (String, String) {
    let shown = client
        .execute(
            "const row = document.querySelector(arguments[0]);
             if (!row) return null;
             row.click();
             const shown = document.getElementById('entry-trace');
             return [shown.dataset.entryId ?? '', document.getElementById('entry-trace-id')?.textContent ?? ''];",
            vec![Value::from(css)],
        )
        .await
        .expect("click the entry");
    serde_json::from_value(shown).unwrap_or_else(|e| panic!("the row {css} vanished before its click ({e})"))
}

/// Waits until the live log view shows one of the stored `entries` (the click's own; another
/// run or a person clicking the same button at the same moment may have added more), checks
/// its cells, and that a click on it shows its trace id: that of the request (`trace_id`, from
/// the answer's `traceresponse`), which the stored entry carries.
async fn assert_in_log_view(client: &Client, entries: &[Document], via_rabbitmq: bool, trace_id: &str) {
    let rows: Vec<String> = entries
        .iter()
        .map(|entry| format!("#logs tr[data-id=\"{}\"]", entry.get_object_id("_id").expect("an ObjectId").to_hex()))
        .collect();
    let any = rows.join(", ");
    wait_for(client, &any, "the new entry in the live log view").await;
    // The view re-renders every poll, so an element found in one command may be gone by the
    // next (CI failed on a stale element): one script reads the row's cells at one instant.
    let cells = client
        .execute(
            "const row = document.querySelector(arguments[0]);
             if (!row) return null;
             const text = (css) => row.querySelector(css)?.textContent ?? null;
             return { name: text('.entry-name'), level: text('.col-level'), data: text('.col-data'),
                      tags: row.querySelectorAll('.tag').length };",
            vec![Value::from(any.as_str())],
        )
        .await
        .expect("read the row's cells");
    assert!(!cells.is_null(), "the row {any} vanished after it was shown");
    assert_eq!(cells["name"], DEMO_NAME, "{cells}");
    assert_eq!(cells["level"], "INFO", "{cells}");
    assert_eq!(cells["data"], DEMO_DATA, "{cells}");
    assert_eq!(cells["tags"], u64::from(via_rabbitmq), "a `via RabbitMQ` tag only on the entry of an event: {cells}");

    let (id, shown) = click_entry(client, &any).await;
    let entry = entries
        .iter()
        .find(|entry| entry.get_object_id("_id").is_ok_and(|oid| oid.to_hex() == id))
        .unwrap_or_else(|| panic!("the click showed the trace of {id:?}, not of a clicked entry"));
    assert_eq!(entry.get_str("trace_id"), Ok(trace_id), "the entry carries its request's trace: {entry}");
    assert_eq!(shown, trace_id, "the click shows the request's trace id");
}

/// Clicks every button and checks what the page shows.
async fn click_every_button(client: Client, page: String, logs: mongodb::Database) {
    client.goto(&page).await.unwrap_or_else(|e| panic!("open {page}: {e}"));
    assert_eq!(client.title().await.expect("a title"), "Test microservices");
    wait_for(&client, "body[data-ready=\"true\"]", "its script running").await;
    let broker_url = client
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .attr("data-broker-url")
        .await
        .expect("read data-broker-url")
        .expect("the broker URL injected into the page");

    // The live log view asked the broker (CORS allows the page) and was told to sign in: `logs`
    // is protected by default.
    let state = log_view_state(&client).await;
    assert!(state.starts_with("broker answered 401") && state.contains("Test Auth"), "the log view: {state:?}");

    // A protected action clicked before Test Auth: the 401 and what to do.
    client.find(Locator::Id("btn-mail")).await.expect("the button").click().await.expect("click Test Mail");
    wait_for(&client, "#received[data-action=\"mail\"]", "the answer to Test Mail before Test Auth").await;
    assert_eq!(text(&client, "#status").await, "401 Unauthorized", "Test Mail first: status badge");
    let line = text(&client, "#output li.line:first-child .line-message").await;
    assert!(line.contains("needs a token") && line.contains("click Test Auth first"), "Test Mail first: {line:?}");
    assert_waterfall(&client, &["total"], "Test Mail first: refused before any hop").await;

    for (index, click) in clicks().into_iter().enumerate() {
        let since = bson::DateTime::from_system_time(SystemTime::now() - Duration::from_secs(1));
        // The demo entries stored before the click (the margin above reaches back): not the click's.
        let before: Vec<Bson> =
            demo_entries_since(&logs, since).await.into_iter().filter_map(|e| e.get("_id").cloned()).collect();
        let button = client.find(Locator::Id(&format!("btn-{}", click.key))).await.expect("the button");
        assert_eq!(button.text().await.expect("its label"), click.button);
        button.click().await.unwrap_or_else(|e| panic!("click {}: {e}", click.button));
        let received = format!("#received[data-action=\"{}\"]", click.key);
        wait_for(&client, &received, &format!("the answer to {}", click.button)).await;

        let what = click.button;
        let body: Value = serde_json::from_str(&text(&client, "#received").await)
            .unwrap_or_else(|e| panic!("{what}: the Received pane is not JSON ({e})"));
        assert_eq!(body["message"], click.message, "{what}: Received pane {body}");
        assert_eq!(body["error"], false, "{what}: Received pane {body}");
        assert_eq!(text(&client, "#status").await, click.status, "{what}: status badge");
        let trace_id = assert_waterfall(&client, click.hops, what).await;
        let badge = client.find(Locator::Id("status")).await.expect("the badge").attr("class").await.expect("class");
        assert!(badge.is_some_and(|c| c.contains("badge-ok")), "{what}: the badge shows success");

        let target = text(&client, "#sent-target").await;
        let path = if click.sent.is_some() { "/handle" } else { "/" };
        assert_eq!(target, format!("POST {broker_url}{path}"), "{what}: Sent target");
        let sent = text(&client, "#sent").await;
        match &click.sent {
            Some(expected) => {
                let shown: Value =
                    serde_json::from_str(&sent).unwrap_or_else(|e| panic!("{what}: Sent is not JSON ({e})"));
                assert_eq!(&shown, expected, "{what}: Sent pane");
            }
            None => assert_eq!(sent, "(empty body)", "{what}: Sent pane"),
        }

        let lines = client.find_all(Locator::Css("#output li.line")).await.expect("the Output lines");
        assert_eq!(lines.len(), index + 2, "{what}: one Output line per click");
        let newest = "#output li.line:first-child";
        assert_eq!(text(&client, &format!("{newest} .line-action")).await, click.key, "{what}: Output line");
        assert_eq!(text(&client, &format!("{newest} .line-message")).await, click.message, "{what}: Output line");
        assert_eq!(
            Some(text(&client, &format!("{newest} .line-status")).await.as_str()),
            click.status.split(' ').next(),
            "{what}: Output line status"
        );

        if click.key == "auth" {
            // Signed in: the log view now loads.
            let state = eventually("the log view to load after Test Auth", PAGE_TIMEOUT, || {
                let client = client.clone();
                async move { Some(text(&client, "#logs-state").await).filter(|state| state.starts_with("updated")) }
            })
            .await;
            assert!(state.starts_with("updated"), "{state:?}");
        }

        // The entries the Test Log and Test Event clicks stored, found in MongoDB, in the live view.
        if click.key == "log" || click.key == "event" {
            let via_rabbitmq = click.key == "event";
            let entries = eventually(&format!("the entry of {what} in MongoDB"), PAGE_TIMEOUT, || {
                let (logs, before) = (logs.clone(), &before);
                async move {
                    let found: Vec<Document> = demo_entries_since(&logs, since)
                        .await
                        .into_iter()
                        .filter(|e| {
                            has_event_id(e) == via_rabbitmq && e.get("_id").is_some_and(|id| !before.contains(id))
                        })
                        .collect();
                    (!found.is_empty()).then_some(found)
                }
            })
            .await;
            assert_in_log_view(&client, &entries, via_rabbitmq, &trace_id).await;
        }
    }
}

/// The live log view's state line once it has asked the broker.
async fn log_view_state(client: &Client) -> String {
    eventually("the live log view to load", PAGE_TIMEOUT, || {
        let client = client.clone();
        async move {
            let state = text(&client, "#logs-state").await;
            (state.starts_with("updated") || state.starts_with("broker")).then_some(state)
        }
    })
    .await
}

/// Makes the window as tall as the page (bounded), so that the screenshot shows all of it.
async fn fit_window_to_page(client: &Client) {
    let script = "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];";
    let Ok(sizes) = client.execute(script, vec![]).await else { return };
    let (Some(page), Some(frame)) = (sizes[0].as_u64(), sizes[1].as_u64()) else { return };
    let Ok((width, _)) = client.get_window_size().await else { return };
    let height = u32::try_from((page + frame).min(4000)).unwrap_or(4000);
    let _ = client.set_window_size(u32::try_from(width).unwrap_or(1280), height).await;
}

#[tokio::test]
async fn the_test_page_shows_the_answer_to_every_button_and_the_new_log_entries() {
    // As a person opens it: by `localhost`, as the wiring's public URLs are.
    let page = env_or(E2E_FRONTEND_URL, &format!("http://localhost:{}", wiring::FRONTEND_PORT));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    match http.get(&page).send().await {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => panic!("the frontend answered {} at {page}: {START_THE_STACK}", response.status()),
        Err(error) => panic!("the frontend is not reachable at {page} ({error}): {START_THE_STACK}"),
    }
    let mongo = mongodb::Client::with_uri_str(testing::mongo_url()).await.expect("a MongoDB client");
    let logs = mongo.database(&env_or(E2E_MONGO_DB, wiring::MONGO_DB));

    let driver = ChromeDriver::start().await;
    let client = driver.session().await;
    // In a task of its own, so that a failed assertion still leaves a screenshot behind.
    let outcome = tokio::spawn(click_every_button(client.clone(), page, logs)).await;

    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().expect("a directory")).expect("create the screenshots directory");
    fit_window_to_page(&client).await;
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("screenshot: {}", path.display());
    let closed = client.close().await;

    if let Err(error) = outcome {
        eprintln!("screenshot of the failure: {}", path.display());
        std::panic::resume_unwind(error.into_panic());
    }
    closed.expect("close the browser session");
}
