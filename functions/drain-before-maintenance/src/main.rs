//! Lambda adapter: build the dependencies once per cold start, then serve.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    reflex_runtime::init_tracing("info");
    let deps = &drain_before_maintenance::Deps::from_env().await?;
    reflex_runtime::run_lambda(drain_before_maintenance::NAME, |raw, inv| async move {
        drain_before_maintenance::handle(deps, &raw, &inv).await
    })
    .await
}
