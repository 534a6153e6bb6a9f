//! Azure for Reflex: Monitor alert payloads (common and legacy schemas) parsed into
//! the core [`Alert`](reflex_core::Alert) model, ARM resource ids, and a small ARM
//! client with managed-identity tokens, retries and long-running operations.

pub mod alerts;
pub mod arm;
pub mod drain;
pub mod notice;
pub mod nsg;
pub mod resource;
pub mod scheduled;
pub mod table;

pub use arm::ArmClient;
pub use nsg::{ArmNsgs, NetworkSecurityGroups};
pub use resource::NsgRef;
