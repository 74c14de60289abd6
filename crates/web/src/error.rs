//! The clinic's one error type ([`clinic::Error`]), rendered two ways: `application/problem+json` for the API
//! and a calm error page (or a redirect to sign in) for browsers. The user
//! sees what to do; the log keeps the cause.

use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use crate::ctx::current_request_id;

pub use clinic::error::{stored, stored_opt};
pub use clinic::Error;

fn status(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A template that failed to render: an error on our side.
pub fn template(e: askama::Error) -> Error {
    Error::Internal(format!("template: {e}"))
}

/// The API rendering: RFC 9457 problem details.
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        e.log();
        let status = status(&e);
        let mut body = json!({
            "type": "about:blank",
            "title": e.title(),
            "status": status.as_u16(),
            "detail": e.detail(),
            "request_id": current_request_id(),
        });
        match &e {
            Error::Invalid(errs) => body["errors"] = json!(errs),
            Error::BadRequest {
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
        if matches!(e, Error::Unauthenticated) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The browser rendering: sign-in redirect or an error page with the request id.
pub struct PageError(pub Error);

impl<E: Into<Error>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        if matches!(e, Error::Unauthenticated) {
            return Redirect::to("/login").into_response();
        }
        e.log();
        let status = status(&e);
        let page = ErrorPage {
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

/// The calm error page: what happened, what to do, and the request id to
/// quote.
#[derive(askama::Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    title: String,
    detail: String,
    status: u16,
    request_id: String,
}

/// Anything no route answers: problem details under `/api/`, the error
/// page elsewhere.
pub async fn not_found(req: axum::extract::Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        ApiError(Error::NotFound).into_response()
    } else {
        PageError(Error::NotFound).into_response()
    }
}
