//! Lambda adapter: build the dependencies once per cold start, then serve.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    reflex_runtime::init_tracing("info");
    let deps = &close_open_ports::Deps::from_env().await?;
    reflex_runtime::run_lambda(close_open_ports::NAME, |raw, inv| async move {
        close_open_ports::handle(deps, &raw, &inv).await
    })
    .await
}
