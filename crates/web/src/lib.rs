//! HTTP for people and systems: askama + htmx pages, the JSON API under
//! `/api/v1`, auth, security headers, request ids, metrics. No SQL here: every
//! data access goes through `store`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use store::Store;

pub mod api;
pub mod assets;
pub mod auth;
pub mod billing;
pub mod ctx;
pub mod eligibility;
pub mod error;
pub mod feeds;
pub mod instruments;
pub mod leads;
pub mod metrics;
pub mod outbox;
pub mod pages;
pub mod passwords;
pub mod patients;
pub mod pdf;
pub mod portal;
pub mod pretreatment;
pub mod protocols;
pub mod scheduling;
pub mod substances;
pub mod treatment;
pub mod views;

/// Settings the web layer needs; the binary builds them from its configuration.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (set when served behind TLS).
    pub secure_cookies: bool,
    /// Trust `X-Forwarded-For` for the source address (behind a proxy only).
    pub trust_proxy: bool,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub max_failed_logins: i64,
    pub lockout: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a looked-up session or token is trusted before it is looked up
    /// again. Sign-out, password and role changes on this instance clear it at
    /// once; changes made elsewhere (another instance, the CLI) take effect
    /// within this time. Zero turns the cache off.
    pub auth_cache_ttl: Duration,
    /// The address patients reach this server at, for links in e-mails.
    pub public_url: String,
    /// Submissions per minute one address may make to the public pages
    /// (self-assessment, consultation booking, questionnaire links).
    pub public_per_minute: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            secure_cookies: false,
            trust_proxy: false,
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
            max_failed_logins: domain::auth::DEFAULT_MAX_FAILED_LOGINS,
            lockout: Duration::from_secs(domain::auth::DEFAULT_LOCKOUT_MINUTES as u64 * 60),
            body_limit: 64 * 1024,
            auth_cache_ttl: Duration::from_secs(2),
            public_url: "http://127.0.0.1:8080".into(),
            public_per_minute: 10,
        }
    }
}

/// Shared by every request. Holds nothing another app instance would need.
/// One pointer: axum clones the state for every extractor and middleware
/// that asks for it, and a clone of the fields themselves was some twenty
/// reference counts to bump and drop each time.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub cfg: Arc<WebConfig>,
    pub metrics: metrics::Metrics,
    pub passwords: passwords::Hasher,
    pub auth_cache: auth::AuthCache,
    pub mailer: outbox::Mailer,
    /// Every loaded instrument version (shipped and the clinic's own files).
    pub instruments: Arc<domain::instruments::Registry>,
    /// Every loaded protocol version (shipped, the clinic's files, and the
    /// versions admins added); see [`AppState::protocols`].
    pub protocol_set: protocols::ProtocolSet,
    /// Limits submissions to the public pages per source address.
    pub public_limiter: Arc<governor::DefaultKeyedRateLimiter<String>>,
    /// Announces treatment-day changes to connected boards and chair views.
    pub floor: treatment::FloorHub,
    /// Stores monitor readings of concurrent requests in one transaction.
    pub ingest: treatment::IngestQueue,
}

impl AppState {
    pub fn with_mailer(mut self, m: outbox::Mailer) -> Self {
        Arc::make_mut(&mut self.0).mailer = m;
        self
    }

    /// The shipped protocols plus the clinic's `files` (validated by the
    /// caller); versions stored in the database join them on [`protocols::reload`].
    pub fn with_protocols(
        mut self,
        p: domain::protocols::Protocols,
        files: Vec<(String, String)>,
    ) -> Self {
        Arc::make_mut(&mut self.0).protocol_set = protocols::ProtocolSet::new(p, files);
        self
    }

    /// Now, by the store's clock (microseconds since the epoch): the one
    /// "now" every use case reads, so that a test or a loader of past
    /// records can set it.
    pub fn now(&self) -> i64 {
        self.store.now()
    }

    /// The protocol versions loaded now.
    pub fn protocols(&self) -> Arc<domain::protocols::Protocols> {
        self.protocol_set.get()
    }

    pub fn with_instruments(mut self, r: domain::instruments::Registry) -> Self {
        Arc::make_mut(&mut self.0).instruments = Arc::new(r);
        self
    }

    pub fn new(store: Store, cfg: WebConfig) -> Self {
        let per_minute = std::num::NonZeroU32::new(cfg.public_per_minute.max(1))
            .unwrap_or(std::num::NonZeroU32::MIN);
        AppState(Arc::new(Shared {
            instruments: Arc::new(domain::instruments::Registry::builtin()),
            protocol_set: protocols::ProtocolSet::new(
                domain::protocols::Protocols::builtin(),
                vec![],
            ),
            public_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute,
            ))),
            store,
            cfg: Arc::new(cfg),
            metrics: metrics::Metrics::new(),
            passwords: passwords::Hasher::new(),
            auth_cache: auth::AuthCache::default(),
            mailer: outbox::Mailer::Off,
            floor: treatment::FloorHub::default(),
            ingest: treatment::IngestQueue::default(),
        }))
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let limit = state.cfg.body_limit;
    Router::new()
        .merge(pages::routes())
        .nest("/api/v1", api::routes())
        .route("/api/openapi.json", axum::routing::get(api::openapi))
        .route("/calendar/{file}", axum::routing::get(feeds::serve))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(ctx::readyz))
        .route("/static/{hash}/{file}", axum::routing::get(assets::serve))
        .route("/favicon.ico", axum::routing::get(assets::favicon))
        .fallback(ctx::not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ctx::middleware,
        ))
        .with_state(state)
}
