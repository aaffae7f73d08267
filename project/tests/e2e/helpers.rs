//! The running stack as the tests see it: the broker's and the authentication service's base
//! URLs, and the stores behind them.

use std::time::{Duration, SystemTime};

use mongodb::bson::{self, Document, doc};
use serde_json::{Value, json};
use service_kit::testing::{self, eventually, stored_logs, unique_name};
use service_kit::wiring;

/// Base URL of the broker (default: its local port, [`wiring::BROKER_PORT`]).
pub const E2E_BROKER_URL: &str = "E2E_BROKER_URL";
/// Base URL of the authentication service, for registering users (default: [`wiring::AUTH_URL`]).
pub const E2E_AUTH_URL: &str = "E2E_AUTH_URL";
/// The logger's MongoDB database (default: [`wiring::MONGO_DB`]); a stack started with
/// `STACK_PORT_OFFSET=N` uses `<it>_N`.
pub const E2E_MONGO_DB: &str = "E2E_MONGO_DB";
/// How long an asynchronous effect (an event through RabbitMQ, a mail) may take to show.
pub const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What to do when the stack is not running.
pub const START_THE_STACK: &str = "start the stack: bash project/stack.sh up --detach";

/// A base URL from the environment, without a trailing slash.
fn url_or(key: &str, default: &str) -> String {
    testing::env_or(key, default).trim_end_matches('/').to_owned()
}

pub use service_kit::testing::Answer;

/// The running stack.
pub struct Stack {
    pub broker_url: String,
    pub auth_url: String,
    pub http: reqwest::Client,
    /// The logger's database, read directly.
    pub logs: mongodb::Database,
    /// When the test started (a second early, for the store's clock granularity): entries
    /// created since then are the only ones a test scans whole.
    pub started: bson::DateTime,
}

/// Connects to the running stack; fails with [`START_THE_STACK`] when the broker does not answer.
pub async fn stack() -> Stack {
    let started = bson::DateTime::from_system_time(SystemTime::now() - Duration::from_secs(1));
    let broker_url = url_or(E2E_BROKER_URL, &format!("http://{}:{}", wiring::LOCAL_HOST, wiring::BROKER_PORT));
    let auth_url = url_or(E2E_AUTH_URL, wiring::AUTH_URL);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
    let ping = format!("{broker_url}/ping");
    match http.get(&ping).send().await {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => panic!("the broker answered {} to GET {ping}: {START_THE_STACK}", response.status()),
        Err(error) => panic!("the broker is not reachable at {broker_url} ({error}): {START_THE_STACK}"),
    }
    let mongo_url = testing::mongo_url();
    let client = mongodb::Client::with_uri_str(&mongo_url)
        .await
        .unwrap_or_else(|e| panic!("a MongoDB client for {mongo_url}: {e}"));
    let logs = client.database(&testing::env_or(E2E_MONGO_DB, wiring::MONGO_DB));
    Stack { broker_url, auth_url, http, logs, started }
}

/// A user registered through the authentication service, with the password in clear.
pub struct Registered {
    pub email: String,
    pub password: String,
    /// The user as `POST /users` answered it.
    pub user: Value,
}

impl Stack {
    /// `POST {broker}/handle` with a JSON body.
    pub async fn handle(&self, body: &Value) -> Answer {
        self.post(&format!("{}/handle", self.broker_url), body).await
    }

    /// As [`Stack::handle`], signed in as the seed user first: `logs` and `mail` need a token
    /// with the stack's default `PROTECTED_ACTIONS`.
    pub async fn handle_signed_in(&self, body: &Value) -> Answer {
        let login =
            serde_json::json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
        let answer = self.handle(&login).await;
        assert_eq!(answer.status, 202, "the seed user signs in: {}", answer.body);
        let token = answer.body["data"]["token"].as_str().expect("a login answers with a token");
        let url = format!("{}/handle", self.broker_url);
        let request = self.http.post(&url).bearer_auth(token).json(body);
        Answer::read(request.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"))).await
    }

    async fn post(&self, url: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}: {START_THE_STACK}"));
        Answer::read(response).await
    }

    /// Registers a new, active user with a unique address and password (`POST /users`).
    pub async fn register(&self) -> Registered {
        let email = format!("{}@example.com", unique_name("e2e-user"));
        let password = unique_name("pw");
        let answer = self
            .post(
                &format!("{}/users", self.auth_url),
                &json!({"email": email, "first_name": "End", "last_name": "Toend", "password": password}),
            )
            .await;
        assert_eq!(answer.status, 201, "registering {email}: {}", answer.body);
        assert_eq!(answer.body["data"]["email"], email.as_str(), "{}", answer.body);
        Registered { email, password, user: answer.body["data"].clone() }
    }

    /// The log entries matching `filter`, straight from MongoDB.
    pub async fn entries(&self, filter: Document) -> Vec<Document> {
        stored_logs(&self.logs, filter).await
    }

    /// Every entry created since the test started.
    pub async fn entries_since_start(&self) -> Vec<Document> {
        self.entries(doc! { "created_at": { "$gte": self.started } }).await
    }

    /// Waits until exactly one entry matches `filter` and returns it.
    pub async fn wait_for_entry(&self, what: &str, filter: Document) -> Document {
        eventually(what, EFFECT_TIMEOUT, || {
            let filter = filter.clone();
            async move {
                let mut found = self.entries(filter).await;
                assert!(found.len() <= 1, "{what}: stored more than once: {found:?}");
                found.pop()
            }
        })
        .await
    }

    /// A client of the authentication service's database.
    pub async fn users_db(&self) -> tokio_postgres::Client {
        let admin = testing::pg_admin_url();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{}", wiring::POSTGRES_DB),
            None => panic!("{} must end with /<database>: {admin}", testing::TEST_PG_URL),
        };
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        tokio::spawn(connection);
        client
    }
}

/// Panics when `document` holds `secret` anywhere (any field, any depth).
pub fn assert_not_stored(document: &Document, secret: &str, what: &str) {
    let text = document.to_string();
    assert!(!text.contains(secret), "{what} was stored: {text}");
}
