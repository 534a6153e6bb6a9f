//! The real `reflex-agent` binary: a hook command never inherits the drain
//! function's key from the agent's environment unless it is configured to get it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use reflex_testkit::{ImdsFake, azure_event, not_before_in};

const KEY: &str = "S3CR3T-function-key";

/// Runs `reflex-agent --once` with a drain hook that writes the key it sees (or
/// `none`) to a file, and returns what it wrote.
async fn key_seen_by_the_hook(extra_env: &[(&str, &str)]) -> String {
    let imds = ImdsFake::start("vm-web-1").await;
    imds.put_event(azure_event(
        "E-1",
        "Redeploy",
        "vm-web-1",
        &not_before_in(600),
        -1,
    ));
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "reflex-agent-hook-env-{}-{}",
        std::process::id(),
        extra_env.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("seen");
    let hook = format!(
        "echo \"${{REFLEX_AGENT_FUNCTION_KEY:-none}}\" > {}",
        out.display()
    );
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_reflex-agent"))
        .args(["--cloud", "azure", "--once", "--drain-hook", &hook])
        .env("REFLEX_IMDS_ENDPOINT", imds.endpoint())
        .env("REFLEX_AGENT_FUNCTION_KEY", KEY)
        .envs(extra_env.iter().copied())
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let seen = std::fs::read_to_string(&out).unwrap().trim().to_string();
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_does_not_inherit_the_function_key() {
    assert_eq!(key_seen_by_the_hook(&[]).await, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_gets_the_function_key_only_when_configured() {
    assert_eq!(
        key_seen_by_the_hook(&[("REFLEX_AGENT_HOOKS_GET_KEY", "true")]).await,
        KEY
    );
}
