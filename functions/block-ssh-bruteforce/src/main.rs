//! Lambda adapter: build the dependencies once per cold start, then serve.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    reflex_runtime::init_tracing("info");
    let deps = &block_ssh_bruteforce::Deps::from_env().await?;
    reflex_runtime::run_lambda(block_ssh_bruteforce::NAME, |raw, inv| async move {
        block_ssh_bruteforce::handle(deps, &raw, &inv).await
    })
    .await
}
