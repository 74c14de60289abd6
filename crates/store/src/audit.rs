//! The audit trail's storage: an append-only, hash-chained table.
//!
//! Reads are audited through [`AuditSink`], a single writer task that commits
//! whatever events have queued up in one transaction (group commit) and only
//! then lets each waiting request answer. Writes to patient data record their
//! audit events inside their own transaction with [`append_in_tx!`], so data
//! and its audit record commit or fail together.
//!
//! On SQLite the chain lives in a file of its own ([`trail_file`]), written
//! only by the writer thread: a commit there leaves the data file, and so
//! every reader's page cache and memory map of it, untouched. A write
//! transaction on the data file cannot also commit to the trail file
//! atomically (SQLite's multi-file commit is not atomic in WAL mode), so it
//! puts its events in the data file's `audit_outbox`; the writer moves them
//! into the chain within a quarter of a second, and at once whenever the
//! trail is read ([`Store::audit_events`], [`Store::audit_verify`]).

use domain::audit::{chain_hash, verify_chain, Action, AuditRecord, ChainBreak};
use tokio::sync::{mpsc, oneshot};

use crate::{on_pool, placeholders, Pool, Result, Store, StoreError};

/// An event before the chain writer gives it a place.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: i64,
    pub org_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_label: String,
    pub actor_role: Option<String>,
    pub clinic_id: Option<String>,
    pub patient_id: Option<String>,
    pub action: Action,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub outcome: &'static str,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

impl NewAuditEvent {
    pub fn new(action: Action, actor_label: impl Into<String>) -> Self {
        NewAuditEvent {
            // Stamped by the store's clock when recorded (see `stamp`).
            at: 0,
            org_id: None,
            actor_user_id: None,
            actor_label: actor_label.into(),
            actor_role: None,
            clinic_id: None,
            patient_id: None,
            action,
            object_type: None,
            object_id: None,
            outcome: "ok",
            source_ip: None,
            request_id: None,
            detail: None,
        }
    }
}

/// An event's time: its own when it has one (a loader of past records sets
/// it), otherwise `now` as the store's clock reads when it is recorded.
#[doc(hidden)]
pub fn stamp(at: i64, now: i64) -> i64 {
    if at == 0 {
        now
    } else {
        at
    }
}

/// An event's columns as stored (`e` the row): the words that recur by their
/// `audit_terms` id, the hash as 32 bytes (migration 0004 of the trail).
const STORED: &str = "e.seq, e.id, e.at, e.org_t, e.actor_t, e.label_t, e.role_t, e.clinic_t, \
     e.patient_t, e.action_t, e.object_type_t, e.object_t, e.outcome_t, e.ip_t, e.request_id, \
     e.detail, e.hash";

/// The words of a record kept in `audit_terms`, in the order of the `*_t` columns.
fn terms_of(r: &AuditRecord) -> [Option<&str>; 11] {
    [
        r.org_id.as_deref(),
        r.actor_user_id.as_deref(),
        Some(r.actor_label.as_str()),
        r.actor_role.as_deref(),
        r.clinic_id.as_deref(),
        r.patient_id.as_deref(),
        Some(r.action.as_str()),
        r.object_type.as_deref(),
        r.object_id.as_deref(),
        Some(r.outcome.as_str()),
        r.source_ip.as_deref(),
    ]
}

const TERM_COLUMNS: [&str; 11] = [
    "org_t",
    "actor_t",
    "label_t",
    "role_t",
    "clinic_t",
    "patient_t",
    "action_t",
    "object_type_t",
    "object_t",
    "outcome_t",
    "ip_t",
];

/// A record's hash as stored (32 bytes); a malformed one as its text, which
/// then fails verification rather than the write.
fn hash_bytes(hash: &str) -> Vec<u8> {
    hex::decode(hash).unwrap_or_else(|_| hash.as_bytes().to_vec())
}

/// The file that holds the audit trail of the SQLite database at `data`:
/// `clinic.db` keeps its trail in `clinic-audit.db`.
pub fn trail_file(data: &std::path::Path) -> std::path::PathBuf {
    let stem = data
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match data.extension() {
        Some(ext) => format!("{stem}-audit.{}", ext.to_string_lossy()),
        None => format!("{stem}-audit"),
    };
    data.with_file_name(name)
}

/// Gives each event its place in the chain after (`seq`, `hash`).
pub(crate) fn chain_records(
    seq: i64,
    hash: String,
    events: &[NewAuditEvent],
    now: i64,
) -> Vec<AuditRecord> {
    let mut records: Vec<AuditRecord> = events.iter().map(|e| unlinked(e, now)).collect();
    link(seq, hash, &mut records);
    records
}

/// Places records, in order, in the chain after (`seq`, `hash`).
fn link(mut seq: i64, mut hash: String, records: &mut [AuditRecord]) {
    for r in records {
        seq += 1;
        r.seq = seq;
        r.prev_hash = hash;
        r.hash = chain_hash(&r.prev_hash, r);
        hash = r.hash.clone();
    }
}

/// An event as a record without its place in the chain.
fn unlinked(e: &NewAuditEvent, now: i64) -> AuditRecord {
    AuditRecord {
        seq: 0,
        id: domain::ids::EventId::new().to_string(),
        at: stamp(e.at, now),
        org_id: e.org_id.clone(),
        actor_user_id: e.actor_user_id.clone(),
        actor_label: e.actor_label.clone(),
        actor_role: e.actor_role.clone(),
        clinic_id: e.clinic_id.clone(),
        patient_id: e.patient_id.clone(),
        action: e.action.as_str().to_string(),
        object_type: e.object_type.clone(),
        object_id: e.object_id.clone(),
        outcome: e.outcome.to_string(),
        source_ip: e.source_ip.clone(),
        request_id: e.request_id.clone(),
        detail: e.detail.clone(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Which backend a connection talks to, for the SQL that differs.
pub trait Dialect {
    const SQLITE: bool;

    /// Inserts chained records inside the connection's open transaction.
    fn insert_records<'c>(
        &'c mut self,
        records: &'c [AuditRecord],
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'c;
}

impl Dialect for sqlx::SqliteConnection {
    const SQLITE: bool = true;

    /// Row by row: each missing word added to `audit_terms`, then the row
    /// naming them. (The audit writer of a SQLite file has its own path,
    /// `sqlite_writer`; this one serves a store without a file.)
    async fn insert_records(&mut self, records: &[AuditRecord]) -> Result<()> {
        let insert = format!(
            "INSERT INTO audit_events (seq, id, at, {}, request_id, detail, hash) VALUES ($1, $2, $3, {}, $15, $16, $17)",
            TERM_COLUMNS.join(", "),
            (4..15)
                .map(|i| format!("(SELECT id FROM audit_terms WHERE term = ${i})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for r in records {
            for t in terms_of(r).into_iter().flatten() {
                sqlx::query(
                    "INSERT INTO audit_terms (term) SELECT $1 \
                     WHERE NOT EXISTS (SELECT 1 FROM audit_terms WHERE term = $1)",
                )
                .bind(t)
                .execute(&mut *self)
                .await?;
            }
            let mut q = sqlx::query(&insert).bind(r.seq).bind(&r.id).bind(r.at);
            for t in terms_of(r) {
                q = q.bind(t);
            }
            q.bind(&r.request_id)
                .bind(&r.detail)
                .bind(hash_bytes(&r.hash))
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }
}

impl Dialect for sqlx::PgConnection {
    const SQLITE: bool = false;

    /// Two statements for any number of records, a column per array, so
    /// the connection prepares each once whatever the batch's size: the
    /// missing words into `audit_terms`, then the rows naming them.
    async fn insert_records(&mut self, records: &[AuditRecord]) -> Result<()> {
        fn col<'a, T>(rows: &'a [AuditRecord], f: impl Fn(&'a AuditRecord) -> T) -> Vec<T> {
            rows.iter().map(f).collect()
        }
        if records.is_empty() {
            return Ok(());
        }
        let words: Vec<&str> = records
            .iter()
            .flat_map(|r| terms_of(r).into_iter().flatten())
            .collect();
        sqlx::query(
            "INSERT INTO audit_terms (term) SELECT DISTINCT t FROM UNNEST($1::text[]) AS t \
             ORDER BY t ON CONFLICT (term) DO NOTHING",
        )
        .bind(words)
        .execute(&mut *self)
        .await?;
        let mut q = sqlx::query(INSERT_RECORDS_PG)
            .bind(col(records, |r| r.seq))
            .bind(col(records, |r| r.id.as_str()))
            .bind(col(records, |r| r.at));
        for i in 0..TERM_COLUMNS.len() {
            q = q.bind(col(records, |r| terms_of(r)[i]));
        }
        q.bind(col(records, |r| r.request_id.as_deref()))
            .bind(col(records, |r| r.detail.as_deref()))
            .bind(col(records, |r| hash_bytes(&r.hash)))
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

const INSERT_RECORDS_PG: &str =
    "INSERT INTO audit_events (seq, id, at, org_t, actor_t, label_t, role_t, clinic_t, patient_t, \
     action_t, object_type_t, object_t, outcome_t, ip_t, request_id, detail, hash) \
     SELECT r.seq, r.id, r.at, \
     (SELECT id FROM audit_terms WHERE term = r.org), (SELECT id FROM audit_terms WHERE term = r.actor), \
     (SELECT id FROM audit_terms WHERE term = r.label), (SELECT id FROM audit_terms WHERE term = r.role), \
     (SELECT id FROM audit_terms WHERE term = r.clinic), (SELECT id FROM audit_terms WHERE term = r.patient), \
     (SELECT id FROM audit_terms WHERE term = r.action), (SELECT id FROM audit_terms WHERE term = r.object_type), \
     (SELECT id FROM audit_terms WHERE term = r.object), (SELECT id FROM audit_terms WHERE term = r.outcome), \
     (SELECT id FROM audit_terms WHERE term = r.ip), r.request_id, r.detail, r.hash \
     FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
     $14::text[], $15::text[], $16::text[], $17::bytea[]) AS r(seq, id, at, org, actor, label, \
     role, clinic, patient, action, object_type, object, outcome, ip, request_id, detail, hash)";

#[doc(hidden)]
pub fn is_sqlite<C: Dialect>(_: &C) -> bool {
    C::SQLITE
}

const OUTBOX_COLUMNS: &str = "at, org_id, actor_user_id, actor_label, actor_role, clinic_id, \
     patient_id, action, object_type, object_id, outcome, source_ip, request_id, detail";
const OUTBOX_NCOLS: usize = 14;

#[doc(hidden)]
pub fn outbox_insert_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|r| format!("({})", placeholders(r * OUTBOX_NCOLS + 1, OUTBOX_NCOLS)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO audit_outbox ({OUTBOX_COLUMNS}) VALUES {values}")
}

/// Records events inside an open transaction `$tx` (a `sqlx::Transaction` of
/// either backend), so they commit or roll back with it.
///
/// PostgreSQL: appends them to the chain, locking the chain head first, so
/// concurrent appenders (other instances, the CLI) queue rather than fork it.
/// SQLite: puts them in the data file's outbox, from which the audit writer
/// moves them into the chain in the trail file.
#[macro_export]
macro_rules! append_in_tx {
    ($tx:expr, $events:expr, $now:expr) => {{
        let events: &[$crate::audit::NewAuditEvent] = $events;
        let now: i64 = $now;
        let result: $crate::Result<()> = async {
            if events.is_empty() {
                return Ok(());
            }
            if $crate::audit::is_sqlite(&*$tx) {
                for chunk in events.chunks($crate::audit::chunk_size()) {
                    let sql = $crate::audit::outbox_insert_sql(chunk.len());
                    let mut q = sqlx::query(&sql);
                    for e in chunk {
                        q = q
                            .bind($crate::audit::stamp(e.at, now))
                            .bind(&e.org_id)
                            .bind(&e.actor_user_id)
                            .bind(&e.actor_label)
                            .bind(&e.actor_role)
                            .bind(&e.clinic_id)
                            .bind(&e.patient_id)
                            .bind(e.action.as_str())
                            .bind(&e.object_type)
                            .bind(&e.object_id)
                            .bind(e.outcome)
                            .bind(&e.source_ip)
                            .bind(&e.request_id)
                            .bind(&e.detail);
                    }
                    q.execute(&mut *$tx).await?;
                }
                return Ok(());
            }
            let (seq, hash): (i64, String) =
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
                    .fetch_one(&mut *$tx)
                    .await?;
            let records = $crate::audit::chain_records(seq, hash, events, now);
            $crate::audit::Dialect::insert_records(&mut *$tx, &records).await?;
            if let Some(last) = records.last() {
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(last.seq)
                    .bind(&last.hash)
                    .execute(&mut *$tx)
                    .await?;
            }
            Ok(())
        }
        .await;
        result
    }};
}

/// Rows per outbox INSERT statement; bounds the number of distinct prepared statements.
const CHUNK: usize = 32;

#[doc(hidden)]
pub fn chunk_size() -> usize {
    CHUNK
}

type Reply = oneshot::Sender<std::result::Result<(), String>>;

enum Msg {
    Append(Vec<NewAuditEvent>, Reply),
    /// Answers once everything sent before it is in the chain, including the
    /// outbox (SQLite) as committed at that moment.
    Flush(oneshot::Sender<()>),
    /// Time to move the outbox into the chain (SQLite).
    Tick,
}

/// How often the SQLite writer looks for outbox events to move.
const OUTBOX_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Handle to the single chain-writer task.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    stats: std::sync::Arc<WriterStats>,
    /// SQLite: while set, the writer leaves the outbox where it is (a backup
    /// copies the trail, then the data file with the events still to move).
    hold_outbox: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Counters of the writer: how many transactions carried how many events.
#[derive(Default, Debug)]
pub struct WriterStats {
    pub batches: std::sync::atomic::AtomicU64,
    pub events: std::sync::atomic::AtomicU64,
}

/// Most events committed in one transaction.
const MAX_BATCH: usize = 1024;

impl AuditSink {
    /// Starts the writer: on SQLite a dedicated thread with its own
    /// connections to the data file `sqlite_file` and its trail file,
    /// elsewhere a task on the runtime.
    pub(crate) fn start(pool: Pool, sqlite_file: Option<std::path::PathBuf>) -> AuditSink {
        let (tx, rx) = mpsc::channel(4096);
        let stats = std::sync::Arc::new(WriterStats::default());
        let hold_outbox = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        match sqlite_file {
            Some(path) => {
                let st = stats.clone();
                let cleaner = sqlite_writer::OutboxCleaner::new(pool);
                let held = hold_outbox.clone();
                let spawned = std::thread::Builder::new()
                    .name("audit-writer".into())
                    .spawn(move || sqlite_writer::run(path, rx, st, cleaner, held));
                if let Err(e) = spawned {
                    // Without a writer every audited request fails (503): nothing is
                    // shown unaudited.
                    tracing::error!(cause = %e, "cannot start the audit writer thread");
                }
                // The ticker holds only a weak handle, so dropping the last
                // sink still ends the writer, and the ticker after it.
                let weak = tx.downgrade();
                let ticker = std::thread::Builder::new()
                    .name("audit-outbox".into())
                    .spawn(move || loop {
                        std::thread::sleep(OUTBOX_EVERY);
                        let Some(tx) = weak.upgrade() else { break };
                        // A full queue means the writer is busy; the next tick comes soon.
                        let _ = tx.try_send(Msg::Tick);
                    });
                if let Err(e) = ticker {
                    tracing::error!(cause = %e, "cannot start the audit outbox ticker");
                }
            }
            None => {
                tokio::spawn(run_writer(pool, rx, stats.clone()));
            }
        }
        AuditSink {
            tx,
            stats,
            hold_outbox,
        }
    }

    /// Stops (or resumes) moving the outbox into the chain; once stopping
    /// returns, no move is under way.
    pub(crate) async fn hold_outbox(&self, hold: bool) {
        self.hold_outbox
            .store(hold, std::sync::atomic::Ordering::SeqCst);
        self.flush().await;
    }

    /// Appends events and returns once they are committed.
    pub async fn record(&self, events: Vec<NewAuditEvent>) -> Result<()> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Msg::Append(events, reply))
            .await
            .map_err(|_| StoreError::AuditUnavailable)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(cause)) => {
                tracing::error!(%cause, "audit batch failed");
                Err(StoreError::AuditUnavailable)
            }
            Err(_) => Err(StoreError::AuditUnavailable),
        }
    }

    pub(crate) async fn flush(&self) {
        let (reply, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(reply)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// A batch this large means requests are queueing; the next one lingers.
const LINGER_ABOVE: usize = 4;
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// The messages one commit answers.
#[derive(Default)]
struct Batch {
    events: Vec<NewAuditEvent>,
    replies: Vec<Reply>,
    flushes: Vec<oneshot::Sender<()>>,
    /// A tick or a flush asked for the outbox to be moved.
    outbox: bool,
}

impl Batch {
    fn take(&mut self, m: Msg) {
        match m {
            Msg::Append(mut e, r) => {
                self.events.append(&mut e);
                self.replies.push(r);
            }
            Msg::Flush(r) => {
                self.flushes.push(r);
                self.outbox = true;
            }
            Msg::Tick => self.outbox = true,
        }
    }

    /// Takes whatever is queued now, up to the batch limit.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        while self.events.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => self.take(m),
                Err(_) => break,
            }
        }
    }

    /// Under load (the previous batch was large), waiting a moment for more
    /// events makes commits fewer and larger.
    fn should_linger(&self, last_batch: usize) -> bool {
        last_batch >= LINGER_ABOVE && self.events.len() < MAX_BATCH
    }

    fn answer(self, outcome: std::result::Result<(), String>) {
        for r in self.replies {
            let _ = r.send(outcome.clone());
        }
        for f in self.flushes {
            let _ = f.send(());
        }
    }

    fn count(&self, stats: &WriterStats) {
        use std::sync::atomic::Ordering::Relaxed;
        stats.batches.fetch_add(1, Relaxed);
        stats.events.fetch_add(self.events.len() as u64, Relaxed);
    }
}

async fn run_writer(pool: Pool, mut rx: mpsc::Receiver<Msg>, stats: std::sync::Arc<WriterStats>) {
    let mut last_batch = 0usize;
    let mut head: Option<(i64, String)> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = Batch::default();
        batch.take(first);
        batch.drain(&mut rx);
        if batch.should_linger(last_batch) {
            tokio::time::sleep(LINGER).await;
            batch.drain(&mut rx);
        }
        last_batch = batch.events.len();
        let outcome = if batch.events.is_empty() {
            Ok(())
        } else {
            batch.count(&stats);
            let r = write_batch(&pool, &batch.events, &mut head).await;
            if r.is_err() {
                // Whatever the head is now, it is read afresh next time.
                head = None;
            }
            r.map_err(|e| e.to_string())
        };
        batch.answer(outcome);
    }
}

/// Commits one batch. The writer remembers the chain head it last wrote, so
/// the usual commit is four statements: BEGIN, a conditional head update that
/// succeeds only if nobody else appended meanwhile, the INSERT, COMMIT. If
/// another writer (a write transaction, the CLI, another instance) moved the
/// head, the batch is rolled back and appended the general way.
async fn write_batch(
    pool: &Pool,
    events: &[NewAuditEvent],
    head: &mut Option<(i64, String)>,
) -> Result<()> {
    if let Some((seq, hash)) = head.clone() {
        // Events reach the writer stamped (`Store::audit`, the outbox).
        let records = chain_records(seq, hash.clone(), events, 0);
        let Some(last) = records.last() else {
            return Ok(());
        };
        let (new_seq, new_hash) = (last.seq, last.hash.clone());
        let done: bool = on_pool!(pool, p => async {
            let mut tx = p.begin().await?;
            let moved = sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4")
                .bind(new_seq)
                .bind(&new_hash)
                .bind(seq)
                .bind(&hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved != 1 {
                tx.rollback().await?;
                return Ok::<bool, crate::StoreError>(false);
            }
            Dialect::insert_records(&mut *tx, &records).await?;
            tx.commit().await?;
            Ok(true)
        }
        .await)?;
        if done {
            *head = Some((new_seq, new_hash));
            return Ok(());
        }
    }
    // The general path: lock the head, read it, append, and remember the new head.
    let tip: (i64, String) = on_pool!(pool, p => async {
        let mut tx = p.begin().await?;
        append_in_tx!(tx, events, 0)?;
        let tip: (i64, String) = sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, crate::StoreError>(tip)
    }
    .await)?;
    *head = Some(tip);
    Ok(())
}

/// Filters for reading the trail; all optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org_id: Option<String>,
    pub patient_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only rows of these clinics, plus rows with no clinic when `include_orgwide`.
    pub clinics: Vec<String>,
    pub include_orgwide: bool,
    /// Newest first, strictly below this seq (paging).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    Intact {
        events: i64,
    },
    Broken(ChainBreak),
    /// The head says the chain is longer (or shorter) than the rows: rows at the end removed.
    Truncated {
        head_seq: i64,
        last_seq: i64,
    },
}

/// A row as stored: the recurring words by their `audit_terms` id.
#[derive(sqlx::FromRow)]
struct Stored {
    seq: i64,
    id: String,
    at: i64,
    org_t: Option<i64>,
    actor_t: Option<i64>,
    label_t: i64,
    role_t: Option<i64>,
    clinic_t: Option<i64>,
    patient_t: Option<i64>,
    action_t: i64,
    object_type_t: Option<i64>,
    object_t: Option<i64>,
    outcome_t: i64,
    ip_t: Option<i64>,
    request_id: Option<String>,
    detail: Option<String>,
    hash: Vec<u8>,
}

impl Stored {
    fn term_ids(&self) -> impl Iterator<Item = i64> {
        [
            self.org_t,
            self.actor_t,
            Some(self.label_t),
            self.role_t,
            self.clinic_t,
            self.patient_t,
            Some(self.action_t),
            self.object_type_t,
            self.object_t,
            Some(self.outcome_t),
            self.ip_t,
        ]
        .into_iter()
        .flatten()
    }
}

/// The words of `audit_terms` read so far, by id.
#[derive(Default)]
struct Terms(std::collections::HashMap<i64, String>);

impl Terms {
    /// Reads the words of `rows` not yet known.
    async fn load<'a>(
        &mut self,
        pool: &Pool,
        rows: impl IntoIterator<Item = &'a Stored>,
    ) -> Result<()> {
        let mut missing: Vec<i64> = rows
            .into_iter()
            .flat_map(Stored::term_ids)
            .filter(|id| !self.0.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for chunk in missing.chunks(500) {
            let sql = format!(
                "SELECT id, term FROM audit_terms WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let found: Vec<(i64, String)> = on_pool!(pool, p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await?
            });
            self.0.extend(found);
        }
        Ok(())
    }

    /// The word; one that is missing reads as such, and so fails the
    /// hash of its row rather than the read.
    fn get(&self, id: i64) -> String {
        self.0
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("<missing audit term {id}>"))
    }

    fn opt(&self, id: Option<i64>) -> Option<String> {
        id.map(|i| self.get(i))
    }

    /// The record a stored row holds, linked after `prev_hash`.
    fn record(&self, r: Stored, prev_hash: String) -> AuditRecord {
        AuditRecord {
            seq: r.seq,
            id: r.id,
            at: r.at,
            org_id: self.opt(r.org_t),
            actor_user_id: self.opt(r.actor_t),
            actor_label: self.get(r.label_t),
            actor_role: self.opt(r.role_t),
            clinic_id: self.opt(r.clinic_t),
            patient_id: self.opt(r.patient_t),
            action: self.get(r.action_t),
            object_type: self.opt(r.object_type_t),
            object_id: self.opt(r.object_t),
            outcome: self.get(r.outcome_t),
            source_ip: self.opt(r.ip_t),
            request_id: r.request_id,
            detail: r.detail,
            prev_hash,
            hash: hex::encode(&r.hash),
        }
    }
}

/// A walk through the trail ([`Store::audit_walk`]): the words read so far.
#[derive(Default)]
pub struct AuditWalk(Terms);

/// `column` holds the id of the word bound as `param`.
fn term_is(column: &str, param: &str) -> String {
    format!("{column} = (SELECT id FROM audit_terms WHERE term = {param})")
}

impl Store {
    /// (transactions, events) committed by the group-commit writer so far.
    pub fn audit_writer_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.audit.stats.batches.load(Relaxed),
            self.audit.stats.events.load(Relaxed),
        )
    }

    /// Appends events and waits until they are durably committed.
    pub async fn audit(&self, mut events: Vec<NewAuditEvent>) -> Result<()> {
        let now = self.now();
        for e in &mut events {
            e.at = stamp(e.at, now);
        }
        self.audit.record(events).await
    }

    /// Waits until every event recorded so far, including those of committed
    /// write transactions, is in the chain.
    pub async fn audit_flush(&self) {
        self.audit.flush().await
    }

    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut sql = format!(
            "SELECT {STORED}, p.hash AS prev FROM audit_events e \
             LEFT JOIN audit_events p ON p.seq = e.seq - 1 WHERE 1 = 1"
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if f.org_id.is_some() {
            sql += &format!(" AND {}", term_is("e.org_t", &next()));
        }
        if f.patient_id.is_some() {
            sql += &format!(" AND {}", term_is("e.patient_t", &next()));
        }
        if f.actor_user_id.is_some() {
            sql += &format!(" AND {}", term_is("e.actor_t", &next()));
        }
        if f.action.is_some() {
            sql += &format!(" AND {}", term_is("e.action_t", &next()));
        }
        if f.from.is_some() {
            sql += &format!(" AND e.at >= {}", next());
        }
        if f.to.is_some() {
            sql += &format!(" AND e.at < {}", next());
        }
        if f.before_seq.is_some() {
            sql += &format!(" AND e.seq < {}", next());
        }
        let clinic_params: Vec<String> = f.clinics.iter().map(|_| next()).collect();
        let scope = if clinic_params.is_empty() {
            "1 = 0".to_string()
        } else {
            format!(
                "e.clinic_t IN (SELECT id FROM audit_terms WHERE term IN ({}))",
                clinic_params.join(", ")
            )
        };
        if f.include_orgwide {
            sql += &format!(" AND ({scope} OR e.clinic_t IS NULL)");
        } else {
            sql += &format!(" AND {scope}");
        }
        sql += &format!(" ORDER BY e.seq DESC LIMIT {}", next());
        // Events of writes committed so far are in the chain before it is read.
        self.audit.flush().await;
        let rows: Vec<(Stored, Option<Vec<u8>>)> = on_pool!(self.trail(), p => {
            let mut q = sqlx::query(&sql);
            if let Some(v) = &f.org_id { q = q.bind(v); }
            if let Some(v) = &f.patient_id { q = q.bind(v); }
            if let Some(v) = &f.actor_user_id { q = q.bind(v); }
            if let Some(v) = &f.action { q = q.bind(v); }
            if let Some(v) = f.from { q = q.bind(v); }
            if let Some(v) = f.to { q = q.bind(v); }
            if let Some(v) = f.before_seq { q = q.bind(v); }
            for c in &f.clinics { q = q.bind(c); }
            let rows = q.bind(f.limit.clamp(1, 1000)).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                use sqlx::{FromRow, Row};
                out.push((Stored::from_row(r)?, r.try_get("prev")?));
            }
            out
        });
        let (base_seq, base_hash) = self.audit_base().await?;
        let mut terms = Terms::default();
        terms
            .load(self.trail(), rows.iter().map(|(s, _)| s))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(r, prev)| {
                // The row before is this one's link; before the first live
                // row, the archives' last hash (the genesis hash at first).
                let prev = match prev {
                    Some(h) => hex::encode(h),
                    None if r.seq - 1 == base_seq => base_hash.clone(),
                    None => String::new(),
                };
                terms.record(r, prev)
            })
            .collect())
    }

    /// The rows after `after` = (seq, hash) up to `upto`, at most `limit`, in
    /// order, each linked to the stored hash of the row before it.
    pub async fn audit_walk(
        &self,
        walk: &mut AuditWalk,
        after: &(i64, String),
        upto: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let sql = format!(
            "SELECT {STORED} FROM audit_events e WHERE e.seq > $1 AND e.seq <= $2 ORDER BY e.seq LIMIT $3"
        );
        let rows: Vec<Stored> = on_pool!(self.trail(), p => {
            sqlx::query_as::<_, Stored>(&sql).bind(after.0).bind(upto).bind(limit).fetch_all(p).await?
        });
        walk.0.load(self.trail(), &rows).await?;
        let mut prev = after.1.clone();
        Ok(rows
            .into_iter()
            .map(|r| {
                let rec = walk.0.record(r, std::mem::take(&mut prev));
                prev = rec.hash.clone();
                rec
            })
            .collect())
    }

    /// The first live row: (seq, when), if there is one.
    pub async fn audit_first_live(&self) -> Result<Option<(i64, i64)>> {
        self.audit.flush().await;
        Ok(on_pool!(self.trail(), p => {
            sqlx::query_as("SELECT seq, at FROM audit_events WHERE seq > (SELECT seq FROM audit_base WHERE id = 1) ORDER BY seq LIMIT 1")
                .fetch_optional(p).await?
        }))
    }

    /// The last row recorded before `at` (microseconds), if any.
    pub async fn audit_last_before(&self, at: i64) -> Result<Option<i64>> {
        Ok(on_pool!(self.trail(), p => {
            sqlx::query_scalar("SELECT MAX(seq) FROM audit_events WHERE at < $1").bind(at).fetch_one(p).await?
        }))
    }

    /// Removes the rows up to `seq` (whose hash is `hash`) from the live
    /// trail once an archive holds them: the base moves there and the rows
    /// go, in one transaction, and the removal is itself audited.
    pub async fn audit_prune(&self, seq: i64, hash: &str, audit: NewAuditEvent) -> Result<u64> {
        self.audit.flush().await;
        let (base, _) = self.audit_base().await?;
        let removed = on_pool!(self.trail(), p => {
            let mut tx = p.begin().await?;
            let moved = sqlx::query("UPDATE audit_base SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3")
                .bind(seq).bind(hash).bind(base).execute(&mut *tx).await?.rows_affected();
            if moved != 1 {
                return Err(domain::DomainError::Conflict("another archive moved the audit base meanwhile".into()).into());
            }
            let n = sqlx::query("DELETE FROM audit_events WHERE seq <= $1").bind(seq).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        });
        self.audit(vec![audit]).await?;
        Ok(removed)
    }

    /// The bytes the trail's rows and indexes take: on SQLite the trail
    /// file's pages in use, on PostgreSQL its tables with their indexes.
    /// With the size of SQLite's write-ahead log beside it (0 elsewhere).
    pub async fn audit_trail_bytes(&self) -> Result<(u64, u64)> {
        self.audit.flush().await;
        match self.trail() {
            Pool::Sqlite(p) => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(p).await?;
                let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                    .fetch_one(p)
                    .await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(p).await?;
                let wal = self
                    .sqlite_file
                    .as_ref()
                    .map(|f| {
                        let mut name = trail_file(f).into_os_string();
                        name.push("-wal");
                        std::fs::metadata(name).map(|m| m.len()).unwrap_or(0)
                    })
                    .unwrap_or(0);
                Ok((((pages - free) * size) as u64, wal))
            }
            Pool::Postgres(p) => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT (pg_total_relation_size('audit_events') + \
                     pg_total_relation_size('audit_terms'))::int8",
                )
                .fetch_one(p)
                .await?;
                Ok((n as u64, 0))
            }
        }
    }

    /// Where the live trail begins: (the last archived row's seq, its hash);
    /// (0, the genesis hash) before anything is archived.
    pub async fn audit_base(&self) -> Result<(i64, String)> {
        Ok(on_pool!(self.trail(), p => {
            sqlx::query_as("SELECT seq, hash FROM audit_base WHERE id = 1").fetch_one(p).await?
        }))
    }

    /// Walks the whole chain in order and checks every link and hash, then
    /// that the head agrees with the last row.
    pub async fn audit_verify(&self) -> Result<VerifyOutcome> {
        self.audit.flush().await;
        let mut tip = self.audit_base().await?;
        let mut count = 0i64;
        let mut walk = AuditWalk::default();
        loop {
            let records = self.audit_walk(&mut walk, &tip, i64::MAX, 5000).await?;
            if records.is_empty() {
                break;
            }
            count += records.len() as i64;
            match verify_chain(tip.clone(), &records) {
                Ok(t) => tip = t,
                Err(b) => return Ok(VerifyOutcome::Broken(b)),
            }
        }
        let (head_seq, head_hash): (i64, String) = on_pool!(self.trail(), p => {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(p).await?
        });
        if head_seq != tip.0 || head_hash != tip.1 {
            return Ok(VerifyOutcome::Truncated {
                head_seq,
                last_seq: tip.0,
            });
        }
        Ok(VerifyOutcome::Intact { events: count })
    }
}

/// The SQLite writer: one OS thread owning a connection to the trail file
/// and one to the data file (for the outbox). A batch is a single
/// `BEGIN IMMEDIATE` transaction on the trail file run without leaving the
/// thread, so its cost is SQLite's work and one fsync, not a hand-off per
/// statement.
pub(crate) mod sqlite_writer {
    use super::*;
    use rusqlite::{params, Connection, TransactionBehavior};

    const INSERT: &str = "INSERT INTO audit_events (seq, id, at, org_t, actor_t, label_t, \
         role_t, clinic_t, patient_t, action_t, object_type_t, object_t, outcome_t, ip_t, \
         request_id, detail, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
         ?13, ?14, ?15, ?16, ?17)";

    /// The ids of `audit_terms` words the writer has used. Words are never
    /// changed or removed, so an id once read stays true; one added in a
    /// transaction that then fails is forgotten (see [`TermCache::forget_fresh`]).
    #[derive(Default)]
    pub(super) struct TermCache {
        ids: std::collections::HashMap<String, i64>,
        fresh: Vec<String>,
    }

    impl TermCache {
        /// The word's id, adding the word if the trail lacks it.
        fn id(&mut self, tx: &rusqlite::Transaction, term: &str) -> rusqlite::Result<i64> {
            if let Some(id) = self.ids.get(term) {
                return Ok(*id);
            }
            let mut find = tx.prepare_cached("SELECT id FROM audit_terms WHERE term = ?1")?;
            let id = match find.query_row([term], |r| r.get(0)) {
                Ok(id) => id,
                Err(rusqlite::Error::QueryReturnedNoRows) => {
                    tx.prepare_cached("INSERT INTO audit_terms (term) VALUES (?1)")?
                        .execute([term])?;
                    self.fresh.push(term.to_string());
                    tx.last_insert_rowid()
                }
                Err(e) => return Err(e),
            };
            self.ids.insert(term.to_string(), id);
            Ok(id)
        }

        fn opt(
            &mut self,
            tx: &rusqlite::Transaction,
            term: Option<&str>,
        ) -> rusqlite::Result<Option<i64>> {
            term.map(|t| self.id(tx, t)).transpose()
        }

        /// After a commit: the words it added are there for good.
        fn keep_fresh(&mut self) {
            self.fresh.clear();
        }

        /// After a failed transaction: the words it added are not there.
        fn forget_fresh(&mut self) {
            for t in self.fresh.drain(..) {
                self.ids.remove(&t);
            }
        }
    }

    const INSERT_OUTBOX: &str = "INSERT INTO audit_outbox (at, org_id, actor_user_id, \
         actor_label, actor_role, clinic_id, patient_id, action, object_type, object_id, outcome, \
         source_ip, request_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
         ?12, ?13, ?14)";

    /// Outbox events moved per trail transaction.
    const MOVE_CHUNK: i64 = 512;

    pub(crate) fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
        let c = Connection::open(path)?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "FULL")?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        // After a complete checkpoint the log starts again from its head;
        // this cuts the file back too, so a burst does not leave it large.
        c.pragma_update(None, "journal_size_limit", WAL_LIMIT)?;
        Ok(c)
    }

    /// The size (bytes) a write-ahead log is cut back to once checkpointed.
    pub(crate) const WAL_LIMIT: i64 = 32 * 1024 * 1024;

    /// Deletes moved events from the outbox through the store's one writer
    /// connection to the data file. The writer thread itself only reads the
    /// data file: a second writer there would make a write transaction that
    /// read first fail with "database is locked" when it tries to write
    /// after the other's commit (SQLite cannot upgrade a stale snapshot, and
    /// waiting does not help).
    #[derive(Clone)]
    pub(super) struct OutboxCleaner {
        runtime: Option<tokio::runtime::Handle>,
        pool: Pool,
    }

    impl OutboxCleaner {
        pub(super) fn new(pool: Pool) -> Self {
            OutboxCleaner {
                runtime: tokio::runtime::Handle::try_current().ok(),
                pool,
            }
        }

        /// Deletes the outbox rows up to `oid` without waiting for it; rows
        /// a failed delete leaves are deleted next time.
        fn delete_up_to(&self, oid: i64) {
            let (Some(rt), Pool::Sqlite(p)) = (&self.runtime, &self.pool) else {
                return;
            };
            let p = p.clone();
            rt.spawn(async move {
                // The mark first (it only moves forward): rows above it
                // refuse to be deleted (migration 0017).
                let done = async {
                    let mut tx = p.begin().await?;
                    sqlx::query("UPDATE audit_outbox_cleared SET upto = MAX(upto, $1) WHERE id = 1")
                        .bind(oid)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM audit_outbox WHERE oid <= $1")
                        .bind(oid)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
                .await;
                match done {
                    // A closed store leaves them for its next start.
                    Ok(_) | Err(sqlx::Error::PoolClosed) => {}
                    Err(e) => {
                        tracing::warn!(cause = %e, "clearing the audit outbox failed; retried later")
                    }
                }
            });
        }
    }

    pub(super) fn run(
        data: std::path::PathBuf,
        mut rx: mpsc::Receiver<Msg>,
        stats: std::sync::Arc<WriterStats>,
        cleaner: OutboxCleaner,
        held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let trail = trail_file(&data);
        // Read-only: the outbox is deleted through the store's writer (see OutboxCleaner).
        let mut conns = match (open(&trail), crate::open_sqlite_reader(&data)) {
            (Ok(t), Ok(d)) => Some((t, d)),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(cause = %e, "the audit writer cannot open the database");
                None
            }
        };
        let checkpointer = match &conns {
            Some((t, _)) => Checkpointer::start(trail.clone(), t),
            None => None,
        };
        let syncer = match &conns {
            Some((t, _)) => Syncer::start(&trail, t, cleaner.clone()),
            None => None,
        };
        let mut last_batch = 0usize;
        let mut terms = TermCache::default();
        while let Some(first) = rx.blocking_recv() {
            let mut batch = Batch::default();
            batch.take(first);
            batch.drain(&mut rx);
            if batch.should_linger(last_batch) {
                std::thread::sleep(LINGER);
                batch.drain(&mut rx);
            }
            last_batch = batch.events.len();
            let mut moved = None;
            let holding = held.load(std::sync::atomic::Ordering::SeqCst);
            if let (Some((trail, data)), true, false) = (&mut conns, batch.outbox, holding) {
                match move_outbox(trail, &mut terms, data) {
                    Ok(m) => moved = m,
                    // Before the data file is migrated there is no outbox yet.
                    Err(e) if e.to_string().contains("no such table") => {
                        tracing::debug!(cause = %e, "no audit outbox yet");
                    }
                    Err(e) => tracing::error!(cause = %e, "moving the audit outbox failed"),
                }
            }
            let outcome = match (&mut conns, batch.events.is_empty()) {
                (_, true) => Ok(()),
                (None, false) => Err("the audit writer has no database connection".to_string()),
                (Some((trail, _)), false) => {
                    batch.count(&stats);
                    commit(trail, &mut terms, &batch.events).map_err(|e| e.to_string())
                }
            };
            let done = Committed {
                batch,
                outcome,
                moved,
            };
            let wrote = done.wrote();
            match &syncer {
                Some(s) => s.send(done),
                None => done.finish(Ok(()), &cleaner),
            }
            if let (Some(cp), Some((trail, _)), true) = (&checkpointer, &conns, wrote) {
                cp.committed(trail);
            }
        }
    }

    /// A commit of the writer and what waits for it to be on disk: the
    /// answers, and clearing the outbox rows it moved.
    struct Committed {
        batch: Batch,
        outcome: std::result::Result<(), String>,
        /// Outbox rows up to this id are in the chain.
        moved: Option<i64>,
    }

    impl Committed {
        /// Whether the trail was written (else there is nothing to sync).
        fn wrote(&self) -> bool {
            self.moved.is_some() || !self.batch.events.is_empty()
        }

        fn finish(self, synced: std::result::Result<(), String>, cleaner: &OutboxCleaner) {
            if let (Ok(()), Some(oid)) = (&synced, self.moved) {
                cleaner.delete_up_to(oid);
            }
            self.batch.answer(self.outcome.and(synced));
        }
    }

    /// Makes the writer's commits durable on a thread of its own. The
    /// writer commits with `synchronous = NORMAL` (no sync in the commit)
    /// and hands each commit here; this thread syncs the trail's log once for
    /// everything committed meanwhile and only then answers the requests. So
    /// the writer builds and commits the next batch while the disk syncs the
    /// last, and one sync serves several commits. Nothing is answered before
    /// the log holding it is on disk, as with `synchronous = FULL`.
    struct Syncer {
        tx: std::sync::mpsc::Sender<Committed>,
    }

    impl Syncer {
        /// Starts the thread; `None` (the writer keeps syncing in its
        /// commits) if the log is not a write-ahead log or the thread cannot
        /// start.
        fn start(
            trail: &std::path::Path,
            writer: &Connection,
            cleaner: OutboxCleaner,
        ) -> Option<Syncer> {
            let mode: String = writer
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .ok()?;
            if !mode.eq_ignore_ascii_case("wal") {
                return None;
            }
            let mut wal = WalFile::new(trail);
            let (tx, rx) = std::sync::mpsc::channel::<Committed>();
            let spawned = std::thread::Builder::new()
                .name("audit-sync".into())
                .spawn(move || {
                    // Ends when the writer drops its sender, after the rest.
                    while let Ok(first) = rx.recv() {
                        let mut group = vec![first];
                        group.extend(rx.try_iter());
                        let synced = if group.iter().any(Committed::wrote) {
                            wal.sync().map_err(|e| {
                                tracing::error!(cause = %e, "syncing the audit log failed");
                                format!("syncing the audit log: {e}")
                            })
                        } else {
                            Ok(())
                        };
                        for d in group {
                            d.finish(synced.clone(), &cleaner);
                        }
                    }
                });
            match spawned {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(cause = %e, "no audit sync thread; commits sync themselves");
                    return None;
                }
            }
            // Only once the thread runs: until then every commit syncs.
            writer
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| tracing::warn!(cause = %e, "commits keep syncing themselves"))
                .ok()?;
            Some(Syncer { tx })
        }

        fn send(&self, done: Committed) {
            if let Err(std::sync::mpsc::SendError(done)) = self.tx.send(done) {
                done.batch
                    .answer(Err("the audit sync thread has stopped".into()));
            }
        }
    }

    /// The trail's write-ahead log, opened for syncing. SQLite keeps the
    /// file while a connection is open (the writer's is); should it ever be
    /// replaced, the new file is opened.
    struct WalFile {
        path: std::path::PathBuf,
        open: Option<(std::fs::File, (u64, u64))>,
    }

    impl WalFile {
        fn new(db: &std::path::Path) -> WalFile {
            let mut name = db.as_os_str().to_owned();
            name.push("-wal");
            WalFile {
                path: name.into(),
                open: None,
            }
        }

        fn sync(&mut self) -> std::io::Result<()> {
            use std::os::unix::fs::MetadataExt;
            let now = std::fs::metadata(&self.path)?;
            let id = (now.dev(), now.ino());
            if !matches!(&self.open, Some((_, was)) if *was == id) {
                let f = std::fs::File::open(&self.path)?;
                let m = f.metadata()?;
                self.open = Some((f, (m.dev(), m.ino())));
            }
            match &self.open {
                Some((f, _)) => f.sync_data(),
                None => Ok(()),
            }
        }
    }

    /// How long the checkpointer lets commits gather before copying them.
    const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(25);

    /// Commits after which the writer checkpoints itself, when the
    /// checkpointer has not kept up.
    const SELF_CHECKPOINT_AFTER: u64 = 64;

    /// Copies the trail's write-ahead log back into the file on a thread of
    /// its own. SQLite's automatic checkpoint runs inside the commit that
    /// crosses 1,000 log pages; an audit commit touches about 90 (the
    /// patient index is spread over the file), so every tenth commit copied
    /// a thousand pages and synced the file, 7 to 30 ms that every request
    /// in the batch, and every one queued behind it, waited for.
    struct Checkpointer {
        nudge: std::sync::mpsc::SyncSender<()>,
        /// Commits since a checkpoint last copied the whole log.
        pending: std::sync::Arc<std::sync::atomic::AtomicU64>,
        /// Held by whichever of the thread and the writer is checkpointing:
        /// SQLite lets one checkpoint run at a time and answers any other at
        /// once with "busy", so without it the writer's catch-up found the
        /// thread's checkpoint running nearly every time and never ran.
        running: std::sync::Arc<std::sync::Mutex<()>>,
        /// The trail's write-ahead log, whose size says when the writer
        /// must start it afresh.
        wal: std::path::PathBuf,
    }

    impl Checkpointer {
        /// Starts the thread and turns the writer's automatic checkpoints
        /// off; `None` (automatic checkpoints kept) if either fails.
        fn start(path: std::path::PathBuf, writer: &Connection) -> Option<Checkpointer> {
            use std::sync::atomic::Ordering::Relaxed;
            let c = open(&path)
                .map_err(|e| tracing::warn!(cause = %e, "no audit checkpointer"))
                .ok()?;
            let (nudge, rx) = std::sync::mpsc::sync_channel::<()>(1);
            let pending = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let done = pending.clone();
            let running = std::sync::Arc::new(std::sync::Mutex::new(()));
            let mine = running.clone();
            std::thread::Builder::new()
                .name("audit-checkpoint".into())
                .spawn(move || {
                    // Ends when the writer drops its sender.
                    while rx.recv().is_ok() {
                        std::thread::sleep(CHECKPOINT_EVERY);
                        let _ = rx.try_recv();
                        let _turn = mine.lock().unwrap_or_else(|p| p.into_inner());
                        match checkpoint(&c) {
                            Ok(true) => done.store(0, Relaxed),
                            // Commits kept landing: the writer takes over
                            // once enough have (see `committed`).
                            Ok(false) => {}
                            Err(e) => tracing::warn!(cause = %e, "audit checkpoint failed"),
                        }
                    }
                })
                .map_err(|e| tracing::warn!(cause = %e, "no audit checkpointer"))
                .ok()?;
            writer
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(|e| tracing::warn!(cause = %e, "automatic checkpoints stay on"))
                .ok()?;
            let mut wal = path.into_os_string();
            wal.push("-wal");
            Some(Checkpointer {
                nudge,
                pending,
                running,
                wal: wal.into(),
            })
        }

        /// After each commit of the writer.
        fn committed(&self, writer: &Connection) {
            use std::sync::atomic::Ordering::Relaxed;
            let _ = self.nudge.try_send(());
            // The log starts afresh only when a write transaction begins on
            // a wholly copied log. Under a sustained load the writer's next
            // transaction begins before the thread's checkpoint ends, every
            // time, and the log grows without end (a soak reached 13.6 GB
            // with every checkpoint complete). So once the log is past its
            // limit, or the thread has not finished a checkpoint in a while,
            // the writer copies the rest itself between its own commits.
            let long = std::fs::metadata(&self.wal).is_ok_and(|m| m.len() > WAL_LIMIT as u64);
            if self.pending.fetch_add(1, Relaxed) + 1 > SELF_CHECKPOINT_AFTER || long {
                // Waits for a checkpoint of the thread's to end; no commit
                // lands meanwhile, so this one copies the whole log.
                let _turn = self.running.lock().unwrap_or_else(|p| p.into_inner());
                match checkpoint(writer) {
                    Ok(true) => self.pending.store(0, Relaxed),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(cause = %e, "audit checkpoint failed"),
                }
            }
        }
    }

    /// Passive checkpoints until the whole log is copied. Commits landing
    /// meanwhile add pages, so a round may leave a few; the next catches up,
    /// and the commit after a complete one starts the log afresh (cut back
    /// to [`WAL_LIMIT`]). Whether the whole log was copied.
    fn checkpoint(c: &Connection) -> rusqlite::Result<bool> {
        for _ in 0..8 {
            let (busy, log, copied): (i64, i64, i64) =
                c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            if copied >= log {
                return Ok(true);
            }
            if busy != 0 {
                break;
            }
        }
        Ok(false)
    }

    fn commit(
        trail: &mut Connection,
        terms: &mut TermCache,
        events: &[NewAuditEvent],
    ) -> rusqlite::Result<()> {
        let done = (|| {
            // IMMEDIATE takes the write lock first, so the head read below stays true.
            let tx = trail.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (seq, hash) = head(&tx)?;
            let records = chain_records(seq, hash, events, 0);
            insert_chained(&tx, terms, &records)?;
            tx.commit()
        })();
        match &done {
            Ok(()) => terms.keep_fresh(),
            Err(_) => terms.forget_fresh(),
        }
        done
    }

    /// The chain's tip in the trail file.
    fn head(tx: &rusqlite::Transaction) -> rusqlite::Result<(i64, String)> {
        tx.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    /// Inserts linked records and moves the head to the last of them.
    fn insert_chained(
        tx: &rusqlite::Transaction,
        terms: &mut TermCache,
        records: &[AuditRecord],
    ) -> rusqlite::Result<()> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        tx.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
            params![last.seq, last.hash],
        )?;
        let mut stmt = tx.prepare_cached(INSERT)?;
        for r in records {
            stmt.execute(params![
                r.seq,
                r.id,
                r.at,
                terms.opt(tx, r.org_id.as_deref())?,
                terms.opt(tx, r.actor_user_id.as_deref())?,
                terms.id(tx, &r.actor_label)?,
                terms.opt(tx, r.actor_role.as_deref())?,
                terms.opt(tx, r.clinic_id.as_deref())?,
                terms.opt(tx, r.patient_id.as_deref())?,
                terms.id(tx, &r.action)?,
                terms.opt(tx, r.object_type.as_deref())?,
                terms.opt(tx, r.object_id.as_deref())?,
                terms.id(tx, &r.outcome)?,
                terms.opt(tx, r.source_ip.as_deref())?,
                r.request_id,
                r.detail,
                hash_bytes(&r.hash)
            ])?;
        }
        Ok(())
    }

    /// Moves every committed outbox event of the data file into the chain,
    /// oldest first. Each chunk commits in the trail file together with how
    /// far the outbox has been moved, so the events are appended exactly
    /// once. Returns the outbox id up to which rows are in the chain: they
    /// are deleted from the outbox once the trail's commits are on disk (a
    /// failed delete is retried later and never appends twice).
    fn move_outbox(
        trail: &mut Connection,
        terms: &mut TermCache,
        data: &Connection,
    ) -> rusqlite::Result<Option<i64>> {
        let moved = move_outbox_chunks(trail, terms, data);
        match &moved {
            Ok(_) => terms.keep_fresh(),
            Err(_) => terms.forget_fresh(),
        }
        moved
    }

    fn move_outbox_chunks(
        trail: &mut Connection,
        terms: &mut TermCache,
        data: &Connection,
    ) -> rusqlite::Result<Option<i64>> {
        loop {
            let tx = trail.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let moved: i64 =
                tx.query_row("SELECT oid FROM audit_outbox_moved WHERE id = 1", [], |r| {
                    r.get(0)
                })?;
            let mut records = Vec::new();
            let mut last_oid = moved;
            {
                let mut stmt = data.prepare_cached(
                    "SELECT oid, at, org_id, actor_user_id, actor_label, actor_role, clinic_id, \
                     patient_id, action, object_type, object_id, outcome, source_ip, request_id, \
                     detail FROM audit_outbox WHERE oid > ?1 ORDER BY oid LIMIT ?2",
                )?;
                let mut rows = stmt.query(params![moved, MOVE_CHUNK])?;
                while let Some(r) = rows.next()? {
                    last_oid = r.get(0)?;
                    records.push(AuditRecord {
                        seq: 0,
                        id: domain::ids::EventId::new().to_string(),
                        at: r.get(1)?,
                        org_id: r.get(2)?,
                        actor_user_id: r.get(3)?,
                        actor_label: r.get(4)?,
                        actor_role: r.get(5)?,
                        clinic_id: r.get(6)?,
                        patient_id: r.get(7)?,
                        action: r.get(8)?,
                        object_type: r.get(9)?,
                        object_id: r.get(10)?,
                        outcome: r.get(11)?,
                        source_ip: r.get(12)?,
                        request_id: r.get(13)?,
                        detail: r.get(14)?,
                        prev_hash: String::new(),
                        hash: String::new(),
                    });
                }
            }
            if records.is_empty() {
                drop(tx);
                // Rows an earlier failed delete left behind.
                let oldest: Option<i64> =
                    data.query_row("SELECT MIN(oid) FROM audit_outbox", [], |r| r.get(0))?;
                return Ok(oldest.is_some_and(|o| o <= moved).then_some(moved));
            }
            let n = records.len() as i64;
            let (seq, hash) = head(&tx)?;
            link(seq, hash, &mut records);
            insert_chained(&tx, terms, &records)?;
            tx.execute(
                "UPDATE audit_outbox_moved SET oid = ?1 WHERE id = 1",
                [last_oid],
            )?;
            tx.commit()?;
            terms.keep_fresh();
            if n < MOVE_CHUNK {
                return Ok(Some(last_oid));
            }
        }
    }

    /// Records events in the data file's outbox inside a rusqlite
    /// transaction on it, so they commit with its other writes.
    pub(crate) fn append(
        tx: &rusqlite::Transaction,
        events: &[NewAuditEvent],
    ) -> rusqlite::Result<()> {
        let mut stmt = tx.prepare_cached(INSERT_OUTBOX)?;
        for e in events {
            stmt.execute(params![
                e.at,
                e.org_id,
                e.actor_user_id,
                e.actor_label,
                e.actor_role,
                e.clinic_id,
                e.patient_id,
                e.action.as_str(),
                e.object_type,
                e.object_id,
                e.outcome,
                e.source_ip,
                e.request_id,
                e.detail
            ])?;
        }
        Ok(())
    }

    /// Makes the next outbox `oid` of the data file higher than any the trail
    /// has moved. They agree unless the files were restored from a backup
    /// (the data file is copied before the trail file, so the trail may have
    /// moved events the data copy never numbered); without this, new events
    /// would get numbers the writer takes for already moved.
    pub(crate) fn align_outbox(data: &std::path::Path) -> crate::Result<()> {
        let c = open(data)?;
        c.execute(
            "ATTACH DATABASE ?1 AS trail",
            [trail_file(data).to_string_lossy().as_ref()],
        )?;
        let moved: i64 = c.query_row(
            "SELECT oid FROM trail.audit_outbox_moved WHERE id = 1",
            [],
            |r| r.get(0),
        )?;
        let numbered: Option<i64> = c.query_row(
            "SELECT MAX(seq) FROM main.sqlite_sequence WHERE name = 'audit_outbox'",
            [],
            |r| r.get(0),
        )?;
        if numbered.unwrap_or(0) < moved {
            c.execute(
                "DELETE FROM main.sqlite_sequence WHERE name = 'audit_outbox'",
                [],
            )?;
            c.execute(
                "INSERT INTO main.sqlite_sequence (name, seq) VALUES ('audit_outbox', ?1)",
                [moved],
            )?;
        }
        Ok(())
    }

    /// Copies an audit trail kept in the data file (before the trail had a
    /// file of its own) into the trail file. Returns an error, and so stops
    /// the migration that drops the old tables, unless the trail file then
    /// holds the same chain.
    pub(crate) fn carry_trail_over(data: &std::path::Path) -> crate::Result<()> {
        let c = open(data)?;
        let old: bool = c.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_head')",
            [],
            |r| r.get(0),
        )?;
        if !old {
            return Ok(());
        }
        let trail = trail_file(data);
        c.execute(
            "ATTACH DATABASE ?1 AS trail",
            [trail.to_string_lossy().as_ref()],
        )?;
        let mut c = c;
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let tip = |db: &str| {
            tx.query_row(
                &format!("SELECT seq, hash FROM {db}.audit_head WHERE id = 1"),
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
        };
        let (old_tip, new_tip) = (tip("main")?, tip("trail")?);
        if old_tip.0 == 0 || old_tip == new_tip {
            return Ok(());
        }
        if new_tip.0 != 0 {
            return Err(domain::DomainError::Conflict(format!(
                "both {} and {} hold an audit trail (up to event {} and {}); not merging them",
                data.display(),
                trail.display(),
                old_tip.0,
                new_tip.0
            ))
            .into());
        }
        // The old rows, compacted as migration 0004 of the trail does.
        let words = [
            "org_id",
            "actor_user_id",
            "actor_label",
            "actor_role",
            "clinic_id",
            "patient_id",
            "action",
            "object_type",
            "object_id",
            "outcome",
            "source_ip",
        ];
        let all = words
            .iter()
            .map(|w| format!("SELECT {w} AS v FROM main.audit_events"))
            .collect::<Vec<_>>()
            .join(" UNION ");
        tx.execute(
            &format!(
                "INSERT INTO trail.audit_terms (term) SELECT v FROM ({all}) \
                 WHERE v IS NOT NULL AND v NOT IN (SELECT term FROM trail.audit_terms) ORDER BY v"
            ),
            [],
        )?;
        let ids = words
            .iter()
            .map(|w| format!("(SELECT id FROM trail.audit_terms WHERE term = e.{w})"))
            .collect::<Vec<_>>()
            .join(", ");
        tx.execute(
            &format!(
                "INSERT INTO trail.audit_events (seq, id, at, {}, request_id, detail, hash) \
                 SELECT e.seq, e.id, e.at, {ids}, e.request_id, e.detail, unhex(e.hash) \
                 FROM main.audit_events e ORDER BY e.seq",
                TERM_COLUMNS.join(", ")
            ),
            [],
        )?;
        tx.execute(
            "UPDATE trail.audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
            params![old_tip.0, old_tip.1],
        )?;
        tx.commit()?;
        Ok(())
    }
}
