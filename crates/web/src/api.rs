//! The JSON API under `/api/v1`, by journey (each journey's `api` module
//! has its routes; the shared plumbing is [`crate::json`]), described by
//! `/api/openapi.json`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::{ApiError, Error};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(crate::patients::api::routes())
        .merge(crate::admin::api::routes())
        .merge(crate::scheduling::api::routes())
        .merge(crate::measures::api::routes())
        .merge(crate::measures::outcomes::api_routes())
        .merge(crate::intake::eligibility::routes())
        .merge(crate::intake::api::routes())
        .merge(crate::intake::codes::api_routes())
        .merge(crate::treatment::api::routes())
        .merge(crate::treatment::intention::api_routes())
        .merge(crate::substances::api::routes())
        .merge(crate::billing::api::routes())
        .fallback(|| async { ApiError(Error::NotFound) })
}

static OPENAPI: &str = include_str!("../openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
