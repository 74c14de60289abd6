//! The audit trail's storage: an append-only, hash-chained table.
//!
//! Reads are audited through [`AuditSink`], a single writer task that commits
//! whatever events have queued up in one transaction (group commit) and only
//! then lets each waiting request answer. Writes to patient data append their
//! audit rows inside their own transaction with [`append_in_tx!`], so data
//! and its audit record commit or fail together.

use domain::audit::{chain_hash, verify_chain, Action, AuditRecord, ChainBreak, GENESIS};
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
            at: domain::time::now_micros(),
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

const COLUMNS: &str =
    "seq, id, at, org_id, actor_user_id, actor_label, actor_role, clinic_id, patient_id, \
     action, object_type, object_id, outcome, source_ip, request_id, detail, prev_hash, hash";
const NCOLS: usize = 18;
/// Rows per INSERT statement; bounds the number of distinct prepared statements.
const CHUNK: usize = 32;

/// Gives each event its place in the chain after (`seq`, `hash`).
pub(crate) fn chain_records(
    mut seq: i64,
    mut hash: String,
    events: &[NewAuditEvent],
) -> Vec<AuditRecord> {
    events
        .iter()
        .map(|e| {
            seq += 1;
            let mut r = AuditRecord {
                seq,
                id: domain::ids::EventId::new().to_string(),
                at: e.at,
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
                prev_hash: hash.clone(),
                hash: String::new(),
            };
            r.hash = chain_hash(&hash, &r);
            hash = r.hash.clone();
            r
        })
        .collect()
}

pub(crate) fn insert_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|r| format!("({})", placeholders(r * NCOLS + 1, NCOLS)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO audit_events ({COLUMNS}) VALUES {values}")
}

/// Inserts chained records in chunks inside an open transaction `$tx`.
#[doc(hidden)]
#[macro_export]
macro_rules! insert_records {
    ($tx:expr, $records:expr) => {
        for chunk in $records.chunks($crate::audit::chunk_size()) {
            let sql = $crate::audit::insert_sql(chunk.len());
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.seq)
                    .bind(&r.id)
                    .bind(r.at)
                    .bind(&r.org_id)
                    .bind(&r.actor_user_id)
                    .bind(&r.actor_label)
                    .bind(&r.actor_role)
                    .bind(&r.clinic_id)
                    .bind(&r.patient_id)
                    .bind(&r.action)
                    .bind(&r.object_type)
                    .bind(&r.object_id)
                    .bind(&r.outcome)
                    .bind(&r.source_ip)
                    .bind(&r.request_id)
                    .bind(&r.detail)
                    .bind(&r.prev_hash)
                    .bind(&r.hash);
            }
            q.execute(&mut *$tx).await?;
        }
    };
}

/// Appends events to the chain inside an open transaction `$tx` (a
/// `sqlx::Transaction` of either backend). Locks the chain head first, so
/// concurrent appenders (other instances, the CLI) queue rather than fork it.
#[macro_export]
macro_rules! append_in_tx {
    ($tx:expr, $events:expr) => {{
        let events: &[$crate::audit::NewAuditEvent] = $events;
        let result: $crate::Result<()> = async {
            if events.is_empty() {
                return Ok(());
            }
            sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
                .execute(&mut *$tx)
                .await?;
            let (seq, hash): (i64, String) =
                sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_one(&mut *$tx)
                    .await?;
            let records = $crate::audit::chain_records(seq, hash, events);
            $crate::insert_records!($tx, &records);
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

#[doc(hidden)]
pub fn chunk_size() -> usize {
    CHUNK
}

type Reply = oneshot::Sender<std::result::Result<(), String>>;

enum Msg {
    Append(Vec<NewAuditEvent>, Reply),
    Flush(oneshot::Sender<()>),
}

/// Handle to the single chain-writer task.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    stats: std::sync::Arc<WriterStats>,
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
    /// connection to `sqlite_file`, elsewhere a task on the runtime.
    pub(crate) fn start(pool: Pool, sqlite_file: Option<std::path::PathBuf>) -> AuditSink {
        let (tx, rx) = mpsc::channel(4096);
        let stats = std::sync::Arc::new(WriterStats::default());
        match sqlite_file {
            Some(path) => {
                let st = stats.clone();
                let spawned = std::thread::Builder::new()
                    .name("audit-writer".into())
                    .spawn(move || sqlite_writer::run(path, rx, st));
                if let Err(e) = spawned {
                    // Without a writer every audited request fails (503): nothing is
                    // shown unaudited.
                    tracing::error!(cause = %e, "cannot start the audit writer thread");
                }
            }
            None => {
                tokio::spawn(run_writer(pool, rx, stats.clone()));
            }
        }
        AuditSink { tx, stats }
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
}

impl Batch {
    fn take(&mut self, m: Msg) {
        match m {
            Msg::Append(mut e, r) => {
                self.events.append(&mut e);
                self.replies.push(r);
            }
            Msg::Flush(r) => self.flushes.push(r),
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
        let records = chain_records(seq, hash.clone(), events);
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
            crate::insert_records!(tx, &records);
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
        append_in_tx!(tx, events)?;
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

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    id: String,
    at: i64,
    org_id: Option<String>,
    actor_user_id: Option<String>,
    actor_label: String,
    actor_role: Option<String>,
    clinic_id: Option<String>,
    patient_id: Option<String>,
    action: String,
    object_type: Option<String>,
    object_id: Option<String>,
    outcome: String,
    source_ip: Option<String>,
    request_id: Option<String>,
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

fn to_record(r: Row) -> AuditRecord {
    AuditRecord {
        seq: r.seq,
        id: r.id,
        at: r.at,
        org_id: r.org_id,
        actor_user_id: r.actor_user_id,
        actor_label: r.actor_label,
        actor_role: r.actor_role,
        clinic_id: r.clinic_id,
        patient_id: r.patient_id,
        action: r.action,
        object_type: r.object_type,
        object_id: r.object_id,
        outcome: r.outcome,
        source_ip: r.source_ip,
        request_id: r.request_id,
        detail: r.detail,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
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
    pub async fn audit(&self, events: Vec<NewAuditEvent>) -> Result<()> {
        self.audit.record(events).await
    }

    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_events WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if f.org_id.is_some() {
            sql += &format!(" AND org_id = {}", next());
        }
        if f.patient_id.is_some() {
            sql += &format!(" AND patient_id = {}", next());
        }
        if f.actor_user_id.is_some() {
            sql += &format!(" AND actor_user_id = {}", next());
        }
        if f.action.is_some() {
            sql += &format!(" AND action = {}", next());
        }
        if f.from.is_some() {
            sql += &format!(" AND at >= {}", next());
        }
        if f.to.is_some() {
            sql += &format!(" AND at < {}", next());
        }
        if f.before_seq.is_some() {
            sql += &format!(" AND seq < {}", next());
        }
        let clinic_params: Vec<String> = f.clinics.iter().map(|_| next()).collect();
        let scope = if clinic_params.is_empty() {
            "1 = 0".to_string()
        } else {
            format!("clinic_id IN ({})", clinic_params.join(", "))
        };
        if f.include_orgwide {
            sql += &format!(" AND ({scope} OR clinic_id IS NULL)");
        } else {
            sql += &format!(" AND {scope}");
        }
        sql += &format!(" ORDER BY seq DESC LIMIT {}", next());
        let rows: Vec<Row> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as::<_, Row>(&sql);
            if let Some(v) = &f.org_id { q = q.bind(v); }
            if let Some(v) = &f.patient_id { q = q.bind(v); }
            if let Some(v) = &f.actor_user_id { q = q.bind(v); }
            if let Some(v) = &f.action { q = q.bind(v); }
            if let Some(v) = f.from { q = q.bind(v); }
            if let Some(v) = f.to { q = q.bind(v); }
            if let Some(v) = f.before_seq { q = q.bind(v); }
            for c in &f.clinics { q = q.bind(c); }
            q.bind(f.limit.clamp(1, 1000)).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(to_record).collect())
    }

    /// Walks the whole chain in order and checks every link and hash, then
    /// that the head agrees with the last row.
    pub async fn audit_verify(&self) -> Result<VerifyOutcome> {
        self.audit.flush().await;
        let mut tip = (0i64, GENESIS.to_string());
        let mut count = 0i64;
        loop {
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 5000"
            );
            let rows: Vec<Row> = on_pool!(self.read(), p => {
                sqlx::query_as::<_, Row>(&sql).bind(tip.0).fetch_all(p).await?
            });
            if rows.is_empty() {
                break;
            }
            let records: Vec<AuditRecord> = rows.into_iter().map(to_record).collect();
            count += records.len() as i64;
            match verify_chain(tip.clone(), &records) {
                Ok(t) => tip = t,
                Err(b) => return Ok(VerifyOutcome::Broken(b)),
            }
        }
        let (head_seq, head_hash): (i64, String) = on_pool!(self.read(), p => {
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

/// The SQLite writer: one OS thread owning one connection. A batch is a single
/// `BEGIN IMMEDIATE` transaction run without leaving the thread, so its cost is
/// SQLite's work and one fsync, not a hand-off per statement.
pub(crate) mod sqlite_writer {
    use super::*;
    use rusqlite::{params, Connection, TransactionBehavior};

    const INSERT: &str =
        "INSERT INTO audit_events (seq, id, at, org_id, actor_user_id, actor_label, \
         actor_role, clinic_id, patient_id, action, object_type, object_id, outcome, source_ip, \
         request_id, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
         ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

    pub(crate) fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
        let c = Connection::open(path)?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "FULL")?;
        c.pragma_update(None, "foreign_keys", "ON")?;
        Ok(c)
    }

    pub(super) fn run(
        path: std::path::PathBuf,
        mut rx: mpsc::Receiver<Msg>,
        stats: std::sync::Arc<WriterStats>,
    ) {
        let mut conn = match open(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(cause = %e, "the audit writer cannot open the database");
                None
            }
        };
        let mut last_batch = 0usize;
        while let Some(first) = rx.blocking_recv() {
            let mut batch = Batch::default();
            batch.take(first);
            batch.drain(&mut rx);
            if batch.should_linger(last_batch) {
                std::thread::sleep(LINGER);
                batch.drain(&mut rx);
            }
            last_batch = batch.events.len();
            let outcome = match (&mut conn, batch.events.is_empty()) {
                (_, true) => Ok(()),
                (None, false) => Err("the audit writer has no database connection".to_string()),
                (Some(c), false) => {
                    batch.count(&stats);
                    commit(c, &batch.events).map_err(|e| e.to_string())
                }
            };
            batch.answer(outcome);
        }
    }

    fn commit(conn: &mut Connection, events: &[NewAuditEvent]) -> rusqlite::Result<()> {
        // IMMEDIATE takes the write lock first, so the head read below stays true.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        append(&tx, events)?;
        tx.commit()
    }

    /// Appends events to the chain inside a rusqlite transaction that holds
    /// the write lock (begun IMMEDIATE), so they commit with its other writes.
    pub(crate) fn append(
        tx: &rusqlite::Transaction,
        events: &[NewAuditEvent],
    ) -> rusqlite::Result<()> {
        let (seq, hash) =
            tx.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
        let records = chain_records(seq, hash, events);
        let Some(last) = records.last() else {
            return Ok(());
        };
        tx.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
            params![last.seq, last.hash],
        )?;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for r in &records {
                stmt.execute(params![
                    r.seq,
                    r.id,
                    r.at,
                    r.org_id,
                    r.actor_user_id,
                    r.actor_label,
                    r.actor_role,
                    r.clinic_id,
                    r.patient_id,
                    r.action,
                    r.object_type,
                    r.object_id,
                    r.outcome,
                    r.source_ip,
                    r.request_id,
                    r.detail,
                    r.prev_hash,
                    r.hash
                ])?;
            }
        }
        Ok(())
    }
}
