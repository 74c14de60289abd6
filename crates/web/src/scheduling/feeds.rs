//! iCalendar feeds over HTTP: `GET /calendar/{token}.ics` (the use case is
//! [`clinic::feeds`]).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ctx::current_request_id;
use crate::error::Error;
use crate::AppState;

/// `GET /calendar/{token}.ics`
pub async fn serve(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    match clinic::feeds::render(&state, &file, current_request_id()).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            body,
        )
            .into_response(),
        Err(Error::NotFound) => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This calendar link is not valid or has been revoked. Ask your clinic for a new one.\n",
        )
            .into_response(),
        Err(e) => crate::error::PageError(e).into_response(),
    }
}
