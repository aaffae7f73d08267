use logger::{Application, Settings};
use service_kit::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = service_kit::telemetry::init("logger", &env);
    let settings = Settings::from_env(&env)?;
    tracing::info!(?settings, "starting");
    Application::build(settings).await?.run_until_stopped().await
}
