//! Errors that cross the function boundary.

use std::fmt;

/// An input payload that cannot be understood. `path` names the field, e.g.
/// `detail.requestParameters.ipPermissions.items[0].fromPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// JSON path of the offending field; empty for the document itself.
    pub path: String,
    /// What was wrong with it.
    pub message: String,
}

impl ParseError {
    /// An error about the field at `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a function could not produce an outcome.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The payload is malformed. Retrying cannot help: log it and stop.
    #[error("bad input: {0}")]
    BadInput(#[from] ParseError),
    /// A dependency failed in a way a retry may fix (throttling, 5xx, timeout), before
    /// anything was changed.
    #[error("{0}")]
    Retryable(String),
    /// A dependency failed in a way a retry will not fix (permissions, configuration).
    #[error("{0}")]
    Fatal(String),
}

impl HandleError {
    /// Whether the platform should deliver the event again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// How a cloud call failed, in terms the executor can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudErrorKind {
    /// The thing is not there (already revoked, deleted).
    NotFound,
    /// Rate limited after the client's own retries.
    Throttled,
    /// 5xx, timeouts, connection failures after the client's own retries.
    Transient,
    /// Access denied or unauthorised: fix the permissions.
    Denied,
    /// Anything else, e.g. a validation error.
    Other,
}

/// A failed cloud call, with the provider's error code and message. Never contains
/// credentials or secret URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CloudError {
    pub kind: CloudErrorKind,
    pub code: String,
    pub message: String,
}

impl CloudError {
    pub fn new(kind: CloudErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    /// Whether a later retry may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            CloudErrorKind::Throttled | CloudErrorKind::Transient
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == CloudErrorKind::NotFound
    }
}

impl From<crate::store::StoreError> for HandleError {
    fn from(e: crate::store::StoreError) -> Self {
        let crate::store::StoreError { message, retryable } = e;
        if retryable {
            Self::Retryable(format!("state store: {message}"))
        } else {
            Self::Fatal(format!("state store: {message}"))
        }
    }
}

impl From<CloudError> for HandleError {
    fn from(e: CloudError) -> Self {
        if e.is_retryable() {
            Self::Retryable(e.to_string())
        } else {
            Self::Fatal(e.to_string())
        }
    }
}
