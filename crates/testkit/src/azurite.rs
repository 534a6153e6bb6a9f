use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::moto::free_port;

/// Azurite's development account key (public, documented).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An `azurite-table` process (Azure Table storage emulator, in memory) on a free
/// loopback port, stopped on drop.
#[derive(Debug)]
pub struct Azurite {
    child: Child,
    port: u16,
}

impl Azurite {
    /// Finds `azurite-table` (`$REFLEX_AZURITE`, then `.tools/node_modules/.bin` in the
    /// workspace) and starts it. Panics with what to do if it is missing.
    pub fn start() -> Self {
        let bin = std::env::var("REFLEX_AZURITE").map_or_else(
            |_| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../.tools/node_modules/.bin/azurite-table")
            },
            PathBuf::from,
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--tableHost", "127.0.0.1", "--tablePort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}. Run `make tools` (it installs azurite into .tools) or set REFLEX_AZURITE.",
                    bin.display()
                )
            });
        let a = Self { child, port };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "azurite-table did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        a
    }

    /// A connection string for the development account on this instance.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};TableEndpoint=http://127.0.0.1:{}/devstoreaccount1",
            self.port
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
