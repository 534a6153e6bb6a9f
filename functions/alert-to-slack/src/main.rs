//! Lambda adapter: build the dependencies once per cold start, then serve.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    reflex_runtime::init_tracing("info");
    let deps = &alert_to_slack::Deps::from_env().await?;
    reflex_runtime::run_lambda(alert_to_slack::NAME, |raw, inv| async move {
        alert_to_slack::handle(deps, &raw, &inv).await
    })
    .await
}
