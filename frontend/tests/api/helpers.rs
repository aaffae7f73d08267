use frontend::settings::PublicUrl;
use frontend::{Application, Settings};
use service_kit::HttpSettings;

pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.address)).send().await.expect("the frontend answers")
    }
}

/// A frontend on a free port that points the page at `broker_url`.
pub async fn spawn_app_with_broker(broker_url: &str) -> TestApp {
    service_kit::telemetry::init_for_tests();
    let settings = Settings {
        http: HttpSettings::ephemeral(),
        broker_url: PublicUrl::parse(broker_url).expect("a valid broker URL"),
        mailcatcher_url: PublicUrl::parse("http://localhost:8025").expect("a valid URL"),
    };
    let application = Application::build(settings).await.expect("the frontend builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    TestApp { address, http: reqwest::Client::new() }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_broker("http://localhost:8080").await
}
