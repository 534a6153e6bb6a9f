//! Reflex core: the model every function shares.
//!
//! Events are parsed into a [`Signal`], a pure `decide` turns it into a [`Plan`] of
//! [`Action`]s under a [`policy`], an executor carries them out, and the result is an
//! [`Outcome`]. Nothing in this crate performs I/O.

pub mod alert;
pub mod error;
pub mod ids;
pub mod json;
pub mod maintenance;
pub mod model;
pub mod notice;
pub mod outcome;
pub mod plan;
pub mod policy;
pub mod route;
pub mod settings;
pub mod signal;
pub mod store;

pub use alert::{ActivityEvent, Alert, AlertContext, AlertSchema, AlertState};
pub use error::{CloudError, CloudErrorKind, HandleError, ParseError};
pub use model::{
    Access, Direction, GroupState, NsgRule, NsgState, PortSpan, Protocol, RuleSpec, SgRule, Source,
    Tag,
};
pub use notice::{Level, Link, Notice, NoticeKind, NoticeState, Noticed};
pub use outcome::{
    ActionRecord, ActionStatus, DrainState, NotificationRecord, NotificationStatus, Outcome,
};
pub use plan::{Action, Plan, Step};
pub use policy::{ExposurePolicy, Offence, PortSet, PrefixLists};
pub use route::{Route, Routes, Target};
pub use settings::{ConfigError, Secret};
pub use signal::{Actor, OpenedRule, Parsed, Signal, SignalKind};
pub use store::{MemoryStore, Store, StoreError, ThreadRef};
