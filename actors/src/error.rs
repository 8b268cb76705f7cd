//! Why a filing was not scored: the one error every ingest path maps to its answer, and the stable codes of
//! the refusals (the HTTP layer's error table, NATS dead letters and bulk jobs' error rows all carry them).

use std::{fmt, time::Duration};

use serde::Serialize;

/// The stable code of a refused filing: `error.code` over HTTP, `Pdscore-Reason-Code` on a dead letter, the
/// `code` of a bulk job's error row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// A value is missing, malformed or out of range; the rejection names the field.
    ValidationError,
    /// A string holds a control character (U+0000-U+001F, U+007F-U+009F).
    ControlCharacter,
    /// The model asked for (or its 5-year partner) is not loaded.
    UnknownModel,
    /// The model could not score the filing's inputs.
    ModelError,
    /// The company is gone (deleted while its filing was in flight), or could not be created.
    NotFound,
    /// The idempotency key was used before for another filing.
    Conflict,
    /// The database refused a value of the filing.
    UnstorableFiling,
    /// A bulk file's row repeats an earlier row's company and period.
    DuplicateRow,
}

impl RejectCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "VALIDATION_ERROR",
            Self::ControlCharacter => "CONTROL_CHARACTER",
            Self::UnknownModel => "UNKNOWN_MODEL",
            Self::ModelError => "MODEL_ERROR",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::UnstorableFiling => "UNSTORABLE_FILING",
            Self::DuplicateRow => "DUPLICATE_ROW",
        }
    }
}

/// Serialized as its text ([`RejectCode::as_str`], the one spelling of each code).
impl Serialize for RejectCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a filing cannot be scored: a client error, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejected {
    pub code: RejectCode,
    pub message: String,
    /// The field at fault, when there is one.
    pub field: Option<String>,
}

impl Rejected {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: RejectCode::ValidationError,
            message: message.into(),
            field: Some(field.into()),
        }
    }
}

/// Why a filing was not scored. The ingest path decides the answer: HTTP status, or JetStream Nak/Term.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// The filing itself is wrong (client error; dead letter on NATS).
    #[error(transparent)]
    Rejected(Rejected),
    #[error("unknown tenant")]
    UnknownTenant,
    #[error("the tenant is deactivated")]
    TenantInactive,
    /// The tenant is over its rate limit: retry after the delay.
    #[error("rate limit exceeded; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The tenant's queue is full: retry after the delay.
    #[error("the tenant's queue is full; retry in {retry_after:?}")]
    Overloaded { retry_after: Duration },
    /// A dependency failed (database, pool): nothing was committed; retry.
    #[error("{0}")]
    Unavailable(String),
}
