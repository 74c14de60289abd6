//! Storage on SQLite or PostgreSQL with one behaviour. SQL is written once
//! where the dialects agree (`$1` placeholders work on both) and the same
//! sqlx code runs against either pool through [`on_pool!`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub mod audit;
pub mod auth;
pub mod billing;
pub mod eligibility;
pub mod fanout;
pub mod intake;
pub mod intentions;
pub mod leads;
pub mod measures;
pub mod org;
pub mod outbox;
pub mod outcomes;
pub mod patients;
pub mod portal;
pub mod protocols;
pub mod roles;
pub mod scheduling;
pub mod seal;
pub mod substances;
pub mod treatment;
pub mod verify;

pub use domain;

/// Runs the same body against whichever backend a [`Pool`] holds. The body is
/// compiled once per backend, so it may use backend-specific row types freely.
#[macro_export]
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::Pool::Sqlite($p) => $body,
            $crate::Pool::Postgres($p) => $body,
        }
    };
}

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Store errors: domain errors (bad input, not found, conflict) pass through;
/// database failures keep their cause for the log, never for the user.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Domain(#[from] domain::DomainError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the audit writer has stopped")]
    AuditUnavailable,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(sqlx::Error::Protocol(format!("sqlite: {e}")))
    }
}

/// Whether a database error is a unique violation on a constraint whose name
/// (PostgreSQL) or message (SQLite: "UNIQUE constraint failed: t.col") mentions `needle`.
pub(crate) fn is_unique_violation(e: &sqlx::Error, needle: &str) -> bool {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            d.constraint().is_some_and(|c| c.contains(needle)) || d.message().contains(needle)
        }
        _ => false,
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path` or a file path for SQLite; `postgres://...` for PostgreSQL.
    pub url: String,
    pub max_connections: u32,
    /// Where "now" comes from (the system's clock unless a test or a loader
    /// of past records says otherwise).
    pub clock: domain::time::Clock,
}

#[derive(Clone)]
pub struct Store {
    read: Pool,
    write: Pool,
    /// Where the audit trail is: the same database on PostgreSQL, the trail
    /// file ([`audit::trail_file`]) on SQLite.
    trail: Pool,
    backend: Backend,
    audit: audit::AuditSink,
    /// The SQLite file, for long reads done with rusqlite on a blocking
    /// thread (sqlx hands every row across threads one by one).
    sqlite_file: Option<std::sync::Arc<std::path::PathBuf>>,
    /// SQLite only: a connection for hot bulk writes (monitor readings) run
    /// with rusqlite on a blocking thread, one transaction per batch with no
    /// hand-off per statement. Opened at first use.
    sqlite_bulk: Option<std::sync::Arc<std::sync::Mutex<Option<rusqlite::Connection>>>>,
    /// SQLite only: read-only rusqlite connections kept between reads done
    /// on blocking threads ([`Store::on_sqlite_reader`]); opening one parses
    /// the whole schema, which costs more than a short read.
    sqlite_readers: std::sync::Arc<std::sync::Mutex<Vec<rusqlite::Connection>>>,
    /// Every time the store writes (and every use case reads) comes from here.
    clock: domain::time::Clock,
}

/// Read connections kept for reuse; more are opened while all are busy.
const KEPT_SQLITE_READERS: usize = 4;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_TRAIL_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/sqlite_trail");

impl Store {
    /// Opens the database and starts the audit writer. Does not migrate.
    pub async fn connect(cfg: &StoreConfig) -> Result<Store> {
        let url = cfg.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(cfg.max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            let p = Pool::Postgres(pool);
            Ok(Self::assemble(
                p.clone(),
                p.clone(),
                p,
                Backend::Postgres,
                None,
                cfg.clock.clone(),
            ))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            let base = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a committed audit batch survives power loss.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                .pragma("temp_store", "memory")
                .pragma(
                    "journal_size_limit",
                    audit::sqlite_writer::WAL_LIMIT.to_string(),
                )
                // Every audit commit empties every reader's page cache, and the
                // emptying costs in proportion to the cache: 1 MB measured best
                // (16 MB: 4.6k audited reads/s, 1 MB: 5.7-6.6k, 256 kB: 4.4k).
                .pragma("cache_size", "-1000")
                // With the file mapped, re-reading a page after that is a memory
                // access, not a syscall (patient search 2.4x faster).
                .pragma("mmap_size", "1073741824");
            // One writer connection (SQLite allows one writer at a time; queueing
            // in the pool is cheaper than lock retries), several readers.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(base.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(cfg.max_connections.clamp(1, 4))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(base.clone().read_only(false))
                .await?;
            // The trail file: read for the audit pages and `audit verify`,
            // migrated here; the audit writer thread writes it.
            let trail_path = audit::trail_file(std::path::Path::new(path));
            let trail = SqlitePoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(base.filename(&trail_path))
                .await?;
            Ok(Self::assemble(
                Pool::Sqlite(read),
                Pool::Sqlite(write),
                Pool::Sqlite(trail),
                Backend::Sqlite,
                Some(std::path::PathBuf::from(path)),
                cfg.clock.clone(),
            ))
        }
    }

    fn assemble(
        read: Pool,
        write: Pool,
        trail: Pool,
        backend: Backend,
        sqlite_file: Option<std::path::PathBuf>,
        clock: domain::time::Clock,
    ) -> Store {
        let file = sqlite_file.clone().map(std::sync::Arc::new);
        let sqlite_bulk = file
            .as_ref()
            .map(|_| std::sync::Arc::new(std::sync::Mutex::new(None)));
        let audit = audit::AuditSink::start(write.clone(), sqlite_file);
        Store {
            sqlite_file: file,
            sqlite_bulk,
            sqlite_readers: Default::default(),
            read,
            write,
            trail,
            backend,
            audit,
            clock,
        }
    }

    /// The clock this store (and everything built on it) reads.
    pub fn clock(&self) -> &domain::time::Clock {
        &self.clock
    }

    /// Now, by [`Store::clock`] (microseconds since the epoch).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub async fn migrate(&self) -> Result<()> {
        match (&self.write, &self.trail, &self.sqlite_file) {
            (Pool::Sqlite(p), Pool::Sqlite(t), Some(file)) => {
                SQLITE_TRAIL_MIGRATIONS.run(t).await?;
                // A data file from before the trail had a file of its own.
                let data = file.clone();
                tokio::task::spawn_blocking(move || audit::sqlite_writer::carry_trail_over(&data))
                    .await
                    .map_err(|e| StoreError::Db(sqlx::Error::Protocol(e.to_string())))??;
                SQLITE_MIGRATIONS.run(p).await?;
                let file = file.clone();
                tokio::task::spawn_blocking(move || audit::sqlite_writer::align_outbox(&file))
                    .await
                    .map_err(|e| StoreError::Db(sqlx::Error::Protocol(e.to_string())))??;
            }
            (Pool::Postgres(p), ..) => POSTGRES_MIGRATIONS.run(p).await?,
            _ => {
                return Err(StoreError::Db(sqlx::Error::Protocol(
                    "a SQLite store without its file".into(),
                )))
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn read(&self) -> &Pool {
        &self.read
    }

    pub(crate) fn write(&self) -> &Pool {
        &self.write
    }

    /// Whether [`Store::on_sqlite_bulk`] is available (SQLite).
    pub(crate) fn has_sqlite_bulk(&self) -> bool {
        self.sqlite_bulk.is_some() && self.sqlite_file.is_some()
    }

    /// Runs `f` on the SQLite bulk-write connection on a blocking thread.
    /// `f` begins and commits its own transaction.
    pub(crate) async fn on_sqlite_bulk<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (Some(slot), Some(file)) = (self.sqlite_bulk.clone(), self.sqlite_file.clone()) else {
            return Err(StoreError::Db(sqlx::Error::Protocol(
                "the bulk writer needs SQLite".into(),
            )));
        };
        let joined = tokio::task::spawn_blocking(move || {
            let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = Some(audit::sqlite_writer::open(&file)?);
            }
            match guard.as_mut() {
                Some(c) => f(c),
                None => Err(rusqlite::Error::InvalidQuery),
            }
        })
        .await;
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(StoreError::Db(sqlx::Error::Protocol(e.to_string()))),
        }
    }

    /// Runs `f` on a read-only rusqlite connection to the SQLite file on a
    /// blocking thread: for reads with many rows, which through sqlx would
    /// cross threads one row at a time. The connection is reused afterwards;
    /// a transaction `f` left open is rolled back first.
    pub(crate) async fn on_sqlite_reader<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> T + Send + 'static,
    {
        let Some(file) = self.sqlite_file.clone() else {
            return Err(StoreError::Db(sqlx::Error::Protocol(
                "a rusqlite reader needs SQLite".into(),
            )));
        };
        let kept = self.sqlite_readers.clone();
        let out = tokio::task::spawn_blocking(move || with_kept_reader(&kept, &file, f))
            .await
            .map_err(|e| StoreError::Db(sqlx::Error::Protocol(e.to_string())))?;
        Ok(out?)
    }

    /// SQLite only: runs a read of a few rows by key on a kept read-only
    /// rusqlite connection right here on the calling thread; `None` on
    /// PostgreSQL. A point read from a warm page cache takes microseconds,
    /// less than the two thread hand-offs sqlx makes for it.
    pub(crate) fn sqlite_point_read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<Result<T>> {
        let file = self.sqlite_file.as_ref()?;
        Some(match with_kept_reader(&self.sqlite_readers, file, f) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) | Err(e) => Err(e.into()),
        })
    }

    /// The same database with every rusqlite fast path turned off, so that
    /// each read and write goes through sqlx: for the tests that hold each
    /// fast path against its twin on the same SQLite file. Never used to
    /// serve.
    pub fn without_fast_paths(&self) -> Store {
        let mut twin = self.clone();
        twin.sqlite_file = None;
        twin.sqlite_bulk = None;
        twin
    }

    /// The writer pool, for tests and tools that must reach below the API
    /// (schema comparison, tamper tests). Never used by request handlers.
    pub fn raw_pool(&self) -> &Pool {
        &self.write
    }

    /// The pool of the audit trail's database (the trail file on SQLite,
    /// the one database on PostgreSQL), for the same tests and tools.
    pub fn raw_trail_pool(&self) -> &Pool {
        &self.trail
    }

    pub(crate) fn trail(&self) -> &Pool {
        &self.trail
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(&self.read, p => { sqlx::query("SELECT 1").execute(p).await?; });
        Ok(())
    }

    /// Online backup of a SQLite database to a new file (`VACUUM INTO`),
    /// and of its audit trail to the new file's trail file. The data file is
    /// copied first: an outbox event it holds is either still in the outbox
    /// of the copy or already in the trail copied after it, so none is lost
    /// and (thanks to the trail's record of how far it moved the outbox)
    /// none is appended twice after a restore.
    pub async fn backup_to(&self, path: &str) -> Result<()> {
        match (&self.write, &self.trail) {
            (Pool::Sqlite(p), Pool::Sqlite(t)) => {
                let trail = audit::trail_file(std::path::Path::new(path));
                if trail.exists() {
                    return Err(domain::DomainError::Conflict(format!(
                        "{} exists already; choose a new file name",
                        trail.display()
                    ))
                    .into());
                }
                // The pair must agree: the trail first, with every event
                // moved so far, then the data file, which holds the events
                // of its writes not yet moved in its outbox. Moves wait
                // meanwhile, so no event falls between the two copies, and
                // the trail never holds events of rows the data file lacks.
                self.audit.hold_outbox(true).await;
                let r: Result<()> = async {
                    sqlx::query("VACUUM INTO $1")
                        .bind(trail.to_string_lossy().as_ref())
                        .execute(t)
                        .await?;
                    sqlx::query("VACUUM INTO $1").bind(path).execute(p).await?;
                    Ok(())
                }
                .await;
                self.audit.hold_outbox(false).await;
                r
            }
            _ => Err(domain::DomainError::Conflict(
                "online backup of PostgreSQL is done with pg_dump".into(),
            )
            .into()),
        }
    }

    /// Waits until every audit event handed to the writer so far is committed,
    /// then closes the pools.
    pub async fn close(&self) {
        self.audit.flush().await;
        on_pool!(&self.read, p => p.close().await);
        on_pool!(&self.write, p => p.close().await);
        on_pool!(&self.trail, p => p.close().await);
    }
}

/// A read-only rusqlite connection with the file mapped.
pub(crate) fn open_sqlite_reader(file: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.pragma_update(None, "mmap_size", 1_073_741_824i64)?;
    Ok(c)
}

/// Runs `f` on a kept read-only connection (opening one when all are in
/// use) and keeps it again afterwards; a transaction `f` left open is rolled
/// back first.
fn with_kept_reader<T>(
    kept: &std::sync::Mutex<Vec<rusqlite::Connection>>,
    file: &std::path::Path,
    f: impl FnOnce(&rusqlite::Connection) -> T,
) -> rusqlite::Result<T> {
    let taken = kept.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let c = match taken {
        Some(c) => c,
        None => open_sqlite_reader(file)?,
    };
    let out = f(&c);
    if c.is_autocommit() || c.execute_batch("ROLLBACK").is_ok() {
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < KEPT_SQLITE_READERS {
            kept.push(c);
        }
    }
    Ok(out)
}

/// Escapes LIKE wildcards so user text matches literally (`ESCAPE '\'`).
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `$a, $b, ...` for `n` parameters starting at `start`.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creating and dropping scratch PostgreSQL databases, for tests and
/// benchmarks that each want an empty database of their own.
pub mod provision {
    use sqlx::Connection;

    fn with_db(url: &str, db: &str) -> String {
        // Replace the path (database name) of a postgres:// URL, keeping any query.
        let (base, query) = url
            .split_once('?')
            .map(|(a, b)| (a, Some(b)))
            .unwrap_or((url, None));
        let head = match base.rfind('/') {
            Some(i) if i > "postgres://".len() => &base[..i],
            _ => base,
        };
        match query {
            Some(q) => format!("{head}/{db}?{q}"),
            None => format!("{head}/{db}"),
        }
    }

    /// Creates database `name` on the server of `admin_url`; returns its URL.
    pub async fn create_pg_database(admin_url: &str, name: &str) -> crate::Result<String> {
        let mut c = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut c)
            .await?;
        c.close().await?;
        Ok(with_db(admin_url, name))
    }

    pub async fn drop_pg_database(admin_url: &str, name: &str) -> crate::Result<()> {
        let mut c = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut c)
            .await?;
        c.close().await?;
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn database_name_is_replaced() {
            assert_eq!(
                super::with_db("postgres://u@h:5432/test", "x"),
                "postgres://u@h:5432/x"
            );
            assert_eq!(
                super::with_db("postgres://u@h/test?sslmode=disable", "x"),
                "postgres://u@h/x?sslmode=disable"
            );
        }
    }
}

impl Store {
    /// How many audit events record `action` (benchmarks check every request was audited).
    pub async fn count_audit(&self, action: &str) -> Result<i64> {
        self.audit.flush().await;
        let (n,): (i64,) = on_pool!(self.trail(), p => {
            sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action_t = (SELECT id FROM audit_terms WHERE term = $1)").bind(action).fetch_one(p).await?
        });
        Ok(n)
    }
}
