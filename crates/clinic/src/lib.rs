//! The use cases: one function per thing a person does at the clinic, each
//! checking who asks ([`actor::Caller`]), validating, writing through `store`
//! and auditing. Everything above (`web`, the demo loader, the CLI) reaches
//! the clinic's data through the [`Clinic`] handle, never the store.

use std::sync::Arc;
use std::time::Duration;

use store::Store;

pub mod account;
pub mod actor;
pub mod audit_log;
pub mod billing;
pub mod documents;
pub mod error;
pub mod feeds;
pub mod intake;
pub mod intentions;
pub mod jobs;
pub mod leads;
pub mod mailer;
pub mod measures;
pub mod outbox;
pub mod outcomes;
pub mod passwords;
pub mod patients;
pub mod portal;
pub mod protocols;
pub mod scheduling;
pub mod settings;
pub mod staff;
pub mod substances;
pub mod today;
pub mod treatment;

pub use error::Error;

/// The clinic's settings the use cases read; the binary builds them from
/// its configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub max_failed_logins: i64,
    pub lockout: Duration,
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

impl Default for Config {
    fn default() -> Self {
        Config {
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
            max_failed_logins: domain::auth::DEFAULT_MAX_FAILED_LOGINS,
            lockout: Duration::from_secs(domain::auth::DEFAULT_LOCKOUT_MINUTES as u64 * 60),
            auth_cache_ttl: Duration::from_secs(2),
            public_url: "http://127.0.0.1:8080".into(),
            public_per_minute: 10,
        }
    }
}

/// The clinic: its data and the services its use cases share. One pointer,
/// cheap to clone for every request.
#[derive(Clone)]
pub struct Clinic(Arc<Shared>);

impl std::ops::Deref for Clinic {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`Clinic`] points to.
#[derive(Clone)]
pub struct Shared {
    pub(crate) store: Store,
    pub cfg: Arc<Config>,
    pub passwords: passwords::Hasher,
    pub auth_cache: actor::AuthCache,
    pub mailer: mailer::Mailer,
    /// Every loaded instrument version (shipped and the clinic's own files).
    pub instruments: Arc<domain::instruments::Registry>,
    /// Every loaded protocol version (shipped, the clinic's files, and the
    /// versions admins added); see [`Clinic::protocols`].
    pub protocol_set: protocols::ProtocolSet,
    /// Limits submissions to the public pages per source address.
    pub public_limiter: Arc<governor::DefaultKeyedRateLimiter<String>>,
    /// Announces treatment-day changes to connected boards and chair views.
    pub floor: treatment::FloorHub,
    /// Stores monitor readings of concurrent requests in one transaction.
    pub ingest: treatment::IngestQueue,
}

impl Clinic {
    pub fn new(store: Store, cfg: Config) -> Self {
        let per_minute = std::num::NonZeroU32::new(cfg.public_per_minute.max(1))
            .unwrap_or(std::num::NonZeroU32::MIN);
        Clinic(Arc::new(Shared {
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
            passwords: passwords::Hasher::new(),
            auth_cache: actor::AuthCache::default(),
            mailer: mailer::Mailer::Off,
            floor: treatment::FloorHub::default(),
            ingest: treatment::IngestQueue::default(),
        }))
    }

    pub fn with_mailer(mut self, m: mailer::Mailer) -> Self {
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

    pub fn with_instruments(mut self, r: domain::instruments::Registry) -> Self {
        Arc::make_mut(&mut self.0).instruments = Arc::new(r);
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

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }
}

/// The records use cases answer with: read-only rows of the store, by
/// feature. Callers see the data; the store itself stays inside this crate.
pub mod records {
    pub use store::{
        auth, billing, intake, intentions, leads, measures, org, patients, scheduling, substances,
        treatment,
    };
}
