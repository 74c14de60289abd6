//! The one application error. Every use case answers with it; `web` renders
//! it as problem details for the API or a calm page for browsers. The user
//! sees what to do; the log keeps the cause.

use domain::{DomainError, FieldError};
use store::StoreError;

#[derive(Debug)]
pub enum Error {
    Unauthenticated,
    Forbidden,
    NotFound,
    Invalid(Vec<FieldError>),
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    Conflict(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Unavailable,
    Internal(String),
}

/// A JSON value the store holds, read back. One that does not parse is
/// damaged data: an error (logged with what it was), never a default that
/// makes part of a record silently vanish.
pub fn stored<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, Error> {
    serde_json::from_str(json)
        .map_err(|e| Error::Internal(format!("the stored {what} does not parse: {e}")))
}

/// [`stored`] for a value that may be absent.
pub fn stored_opt<T: serde::de::DeserializeOwned>(
    what: &str,
    json: Option<&str>,
) -> Result<Option<T>, Error> {
    json.map(|j| stored(what, j)).transpose()
}

impl Error {
    pub fn bad(detail: impl Into<String>, field: Option<&str>) -> Self {
        Error::BadRequest {
            detail: detail.into(),
            field: field.map(str::to_string),
        }
    }

    /// The HTTP status that stands for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthenticated => 401,
            Error::Forbidden => 403,
            Error::NotFound => 404,
            Error::Invalid(_) => 422,
            Error::BadRequest { .. } => 400,
            Error::Conflict(_) => 409,
            Error::PayloadTooLarge => 413,
            Error::UnsupportedMediaType => 415,
            Error::TooManyRequests => 429,
            Error::Unavailable => 503,
            Error::Internal(_) => 500,
        }
    }

    /// A short title for the person who sees it.
    pub fn title(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "Sign-in required",
            Error::Forbidden => "Not allowed",
            Error::NotFound => "Not found",
            Error::Invalid(_) => "Some fields need attention",
            Error::BadRequest { .. } => "The request could not be read",
            Error::Conflict(_) => "Conflict",
            Error::PayloadTooLarge => "Request too large",
            Error::UnsupportedMediaType => "Unsupported content type",
            Error::TooManyRequests => "Too many requests",
            Error::Unavailable => "Temporarily unavailable",
            Error::Internal(_) => "Something went wrong on our side",
        }
    }

    /// What went wrong and what to do, without the internal cause.
    pub fn detail(&self) -> String {
        match self {
            Error::Unauthenticated => "Sign in, or send a valid bearer token.".into(),
            Error::Forbidden => "Your role does not allow this here.".into(),
            Error::NotFound => "There is nothing here, or you do not have access to it.".into(),
            Error::Invalid(errs) => errs
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            Error::BadRequest { detail, .. } => detail.clone(),
            Error::Conflict(d) => d.clone(),
            Error::PayloadTooLarge => "The request body is larger than this server accepts.".into(),
            Error::UnsupportedMediaType => "Send the body as application/json.".into(),
            Error::TooManyRequests => "Slow down and try again in a minute.".into(),
            Error::Unavailable => {
                "The record of access could not be written, so nothing was shown or changed. Try again shortly.".into()
            }
            Error::Internal(_) => "The error has been logged with its request id.".into(),
        }
    }

    /// Logs the cause of an error on our side; the rest are the caller's.
    pub fn log(&self) {
        match self {
            Error::Internal(cause) => tracing::error!(%cause, "internal error"),
            Error::Unavailable => tracing::error!("audit unavailable"),
            _ => {}
        }
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Invalid(vec![e])
    }
}

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errs) => Error::Invalid(errs),
            DomainError::NotFound => Error::NotFound,
            DomainError::Forbidden => Error::Forbidden,
            DomainError::Conflict(c) => Error::Conflict(c),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => d.into(),
            StoreError::AuditUnavailable => Error::Unavailable,
            other => Error::Internal(other.to_string()),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Internal(cause) => write!(f, "{}: {cause}", self.title()),
            _ => write!(f, "{}: {}", self.title(), self.detail()),
        }
    }
}

impl std::error::Error for Error {}
