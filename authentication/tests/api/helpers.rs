//! `spawn_app()`: the service on a free port with a database of its own.

use std::time::Duration;

use authentication::{Application, DatabaseSettings, Settings};
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use service_kit::HttpSettings;
use service_kit::testing::{Answer, TestPostgres};

/// The cheapest bcrypt cost: tests that do not measure cost stay fast.
pub const TEST_COST: u32 = 4;

pub const SEED_EMAIL: &str = authentication::migrations::SEED_EMAIL;
pub const SEED_PASSWORD: &str = authentication::migrations::SEED_PASSWORD;

pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The service's own database; dropped with the app.
    pub db: TestPostgres,
    pub http: reqwest::Client,
}

/// Settings for a service on a free loopback port using `dsn`.
pub fn settings(dsn: &str, cost: u32) -> Settings {
    Settings {
        http: HttpSettings::ephemeral(),
        database: DatabaseSettings::new(dsn),
        bcrypt_cost: cost,
        bcrypt_concurrency: 2,
        bcrypt_queue: 2 * authentication::settings::QUEUE_PER_WORKER,
        tokens: Default::default(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_cost(TEST_COST).await
}

pub async fn spawn_app_with_cost(cost: u32) -> TestApp {
    let db = TestPostgres::create().await;
    let settings = settings(&db.url, cost);
    spawn_with(settings, db).await
}

/// Starts the service with `settings`; `db` is the database it uses (kept alive by the app).
pub async fn spawn_with(settings: Settings, db: TestPostgres) -> TestApp {
    service_kit::telemetry::init_for_tests();
    let application = Application::build(settings).await.expect("the service starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    TestApp { address, db, http: http_client() }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client")
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        let request = self.http.post(format!("{}{path}", self.address)).json(body);
        Answer::read(request.send().await.expect("the request is answered")).await
    }

    /// A body sent as it is, with the given content type (or none).
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
        let mut request = self.http.post(format!("{}{path}", self.address)).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        Answer::read(request.send().await.expect("the request is answered")).await
    }

    pub async fn authenticate(&self, email: &str, password: &str) -> Answer {
        self.post_json("/authenticate", &json!({"email": email, "password": password})).await
    }

    pub async fn register(&self, body: &Value) -> Answer {
        self.post_json("/users", body).await
    }

    /// Registers an active user with `password` and returns its address.
    pub async fn registered_user(&self, password: &str, active: bool) -> String {
        let email = format!("{}@example.com", service_kit::testing::unique_name("user"));
        let response =
            self.register(&json!({"email": email, "password": password, "first_name": "Ada", "active": active})).await;
        assert_eq!(response.status, 201, "registration of {email}");
        email
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::read(self.http.get(format!("{}{path}", self.address)).send().await.expect("the request is answered"))
            .await
    }
}
