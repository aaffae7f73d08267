use authentication::{Application, Settings};
use service_kit::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = service_kit::telemetry::init("authentication", &env);
    let settings = Settings::from_env(&env)?;
    tracing::info!(?settings, "starting");
    let application = Application::build(settings).await?;
    application.run_until_stopped().await
}
