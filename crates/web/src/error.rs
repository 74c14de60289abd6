//! One error type, rendered two ways: `application/problem+json` for the API
//! and a calm error page (or a redirect to sign in) for browsers. The user
//! sees what to do; the log keeps the cause.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use domain::{DomainError, FieldError};
use serde_json::json;
use store::StoreError;

use crate::ctx::current_request_id;

#[derive(Debug)]
pub enum WebError {
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
pub fn stored<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, WebError> {
    serde_json::from_str(json)
        .map_err(|e| WebError::Internal(format!("the stored {what} does not parse: {e}")))
}

/// [`stored`] for a value that may be absent.
pub fn stored_opt<T: serde::de::DeserializeOwned>(
    what: &str,
    json: Option<&str>,
) -> Result<Option<T>, WebError> {
    json.map(|j| stored(what, j)).transpose()
}

impl WebError {
    pub fn bad(detail: impl Into<String>, field: Option<&str>) -> Self {
        WebError::BadRequest {
            detail: detail.into(),
            field: field.map(str::to_string),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Unauthenticated => StatusCode::UNAUTHORIZED,
            WebError::Forbidden => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            WebError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            WebError::Unauthenticated => "Sign-in required",
            WebError::Forbidden => "Not allowed",
            WebError::NotFound => "Not found",
            WebError::Invalid(_) => "Some fields need attention",
            WebError::BadRequest { .. } => "The request could not be read",
            WebError::Conflict(_) => "Conflict",
            WebError::PayloadTooLarge => "Request too large",
            WebError::UnsupportedMediaType => "Unsupported content type",
            WebError::TooManyRequests => "Too many requests",
            WebError::Unavailable => "Temporarily unavailable",
            WebError::Internal(_) => "Something went wrong on our side",
        }
    }

    fn detail(&self) -> String {
        match self {
            WebError::Unauthenticated => "Sign in, or send a valid bearer token.".into(),
            WebError::Forbidden => "Your role does not allow this here.".into(),
            WebError::NotFound => "There is nothing here, or you do not have access to it.".into(),
            WebError::Invalid(errs) => errs
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            WebError::BadRequest { detail, .. } => detail.clone(),
            WebError::Conflict(d) => d.clone(),
            WebError::PayloadTooLarge => "The request body is larger than this server accepts.".into(),
            WebError::UnsupportedMediaType => "Send the body as application/json.".into(),
            WebError::TooManyRequests => "Slow down and try again in a minute.".into(),
            WebError::Unavailable => {
                "The record of access could not be written, so nothing was shown or changed. Try again shortly.".into()
            }
            WebError::Internal(_) => "The error has been logged with its request id.".into(),
        }
    }

    fn log(&self) {
        match self {
            WebError::Internal(cause) => tracing::error!(%cause, "internal error"),
            WebError::Unavailable => tracing::error!("audit unavailable"),
            _ => {}
        }
    }
}

impl From<FieldError> for WebError {
    fn from(e: FieldError) -> Self {
        WebError::Invalid(vec![e])
    }
}

impl From<DomainError> for WebError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errs) => WebError::Invalid(errs),
            DomainError::NotFound => WebError::NotFound,
            DomainError::Forbidden => WebError::Forbidden,
            DomainError::Conflict(c) => WebError::Conflict(c),
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => d.into(),
            StoreError::AuditUnavailable => WebError::Unavailable,
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

/// The API rendering: RFC 9457 problem details.
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        e.log();
        let status = e.status();
        let mut body = json!({
            "type": "about:blank",
            "title": e.title(),
            "status": status.as_u16(),
            "detail": e.detail(),
            "request_id": current_request_id(),
        });
        match &e {
            WebError::Invalid(errs) => body["errors"] = json!(errs),
            WebError::BadRequest {
                field: Some(f),
                detail,
            } => body["errors"] = json!([{ "field": f, "message": detail }]),
            _ => {}
        }
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if matches!(e, WebError::Unauthenticated) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The browser rendering: sign-in redirect or an error page with the request id.
pub struct PageError(pub WebError);

impl<E: Into<WebError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        if matches!(e, WebError::Unauthenticated) {
            return Redirect::to("/login").into_response();
        }
        e.log();
        let status = e.status();
        let page = crate::views::ErrorPage {
            title: e.title().to_string(),
            detail: e.detail(),
            status: status.as_u16(),
            request_id: current_request_id(),
        };
        let html = askama::Template::render(&page)
            .unwrap_or_else(|_| format!("<h1>{}</h1>", status.as_u16()));
        (status, Html(html)).into_response()
    }
}
