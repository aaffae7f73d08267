use mailer::{Application, Settings};
use service_kit::{Env, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    let _telemetry = telemetry::init("mailer", &env);
    let settings = Settings::from_env(&env)?;
    tracing::info!(?settings, "starting");
    let application = Application::build(settings).await?;
    tracing::info!(port = application.port(), "mailer listening");
    application.run_until_stopped().await
}
