//! HTTP for people and systems: askama + htmx pages, the JSON API under
//! `/api/v1`, auth, security headers, request ids, metrics. No SQL and no
//! use case here: every data access goes through a `clinic` use case.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use clinic::Clinic;

pub mod api;
pub mod auth;
pub mod ctx;
pub mod error;
pub mod json;
pub mod metrics;
pub mod pages;
pub mod ui;

// The journeys, each with its pages and API.
mod account;
mod admin;
mod billing;
mod front;
mod intake;
mod measures;
mod patients;
mod portal;
mod scheduling;
mod substances;
mod today;
mod treatment;

/// Settings of the HTTP layer alone; the clinic's own are [`clinic::Config`].
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (set when served behind TLS).
    pub secure_cookies: bool,
    /// Trust `X-Forwarded-For` for the source address (behind a proxy only).
    pub trust_proxy: bool,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            secure_cookies: false,
            trust_proxy: false,
            body_limit: 64 * 1024,
        }
    }
}

/// Shared by every request: the clinic and what serving it over HTTP needs.
/// One pointer: axum clones the state for every extractor and middleware
/// that asks for it.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points to.
pub struct Shared {
    pub clinic: Clinic,
    pub web: WebConfig,
    pub metrics: metrics::Metrics,
}

impl std::ops::Deref for AppState {
    type Target = Clinic;

    fn deref(&self) -> &Clinic {
        &self.0.clinic
    }
}

impl AppState {
    pub fn new(clinic: Clinic, web: WebConfig) -> Self {
        AppState(Arc::new(Shared {
            clinic,
            web,
            metrics: metrics::Metrics::new(),
        }))
    }

    /// The clinic this server serves.
    pub fn clinic(&self) -> &Clinic {
        &self.0.clinic
    }

    /// The HTTP layer's settings.
    pub fn web(&self) -> &WebConfig {
        &self.0.web
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let limit = state.web().body_limit;
    Router::new()
        .merge(pages::routes())
        .nest("/api/v1", api::routes())
        .route("/api/openapi.json", axum::routing::get(api::openapi))
        .route(
            "/calendar/{file}",
            axum::routing::get(scheduling::feeds::serve),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(ctx::readyz))
        .route(
            "/static/{hash}/{file}",
            axum::routing::get(ui::assets::serve),
        )
        .route("/favicon.ico", axum::routing::get(ui::assets::favicon))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ctx::middleware,
        ))
        .with_state(state)
}
