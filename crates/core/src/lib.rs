//! Reflex core: the model every function shares.
//!
//! Events are parsed into a [`Signal`], a pure `decide` turns it into a [`Plan`] of
//! [`Action`]s under a [`policy`], an executor carries them out, and the result is an
//! [`Outcome`]. Nothing in this crate performs I/O.

pub mod alert;
pub mod error;
pub mod json;
pub mod model;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod settings;
pub mod signal;

pub use alert::{ActivityEvent, Alert, AlertContext, AlertSchema, AlertState};
pub use error::{CloudError, CloudErrorKind, HandleError, ParseError};
pub use model::{
    Access, Direction, GroupState, NsgRule, NsgState, PortSpan, Protocol, RuleSpec, SgRule, Source,
    Tag,
};
pub use outcome::{ActionRecord, ActionStatus, NotificationRecord, NotificationStatus, Outcome};
pub use plan::{Action, Plan, Step};
pub use policy::{ExposurePolicy, Offence, PortSet};
pub use settings::{ConfigError, Secret};
pub use signal::{Actor, OpenedRule, Parsed, Signal, SignalKind};
