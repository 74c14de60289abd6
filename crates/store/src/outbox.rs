//! The outbox: jobs committed with the change that caused them, claimed by
//! one worker at a time on either backend, finished with an outcome.

use crate::{on_pool, Result, Store};

/// A job to enqueue. `dedupe_key` makes enqueueing idempotent.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub dedupe_key: String,
    pub payload: String,
    pub run_at: i64,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub attempts: i32,
}

/// Inserts jobs inside an open transaction `$tx` (same on both backends).
#[doc(hidden)]
#[macro_export]
macro_rules! insert_jobs {
    ($tx:expr, $jobs:expr, $now:expr) => {{
        let jobs: &[$crate::outbox::NewJob] = $jobs;
        let now: i64 = $now;
        let result: $crate::Result<()> = async {
            for j in jobs {
                sqlx::query(
                    "INSERT INTO outbox (id, kind, dedupe_key, payload, run_at, attempts, created_at) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (dedupe_key) DO NOTHING",
                )
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(j.kind)
                .bind(&j.dedupe_key)
                .bind(&j.payload)
                .bind(j.run_at)
                .bind(now)
                .execute(&mut *$tx)
                .await?;
            }
            Ok(())
        }
        .await;
        result
    }};
}

/// A finished link job forgets its payload (which link went to whom).
/// Jobs never carry a link's token: the worker makes it as it sends.
const FORGET: &str =
    "CASE WHEN kind IN ('questionnaire_link', 'patient_link') THEN '{}' ELSE payload END";

/// The tables of links sent by e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTable {
    Questionnaire,
    Patient,
    Portal,
}

impl LinkTable {
    fn table(self) -> &'static str {
        match self {
            LinkTable::Questionnaire => "questionnaire_links",
            LinkTable::Patient => "patient_links",
            LinkTable::Portal => "portal_links",
        }
    }
}

impl Store {
    /// Gives a link the hash of the token its e-mail is about to carry (made
    /// by the worker as it sends, so no job ever holds a token). False when
    /// the link is gone, used or expired: then no e-mail goes.
    pub async fn set_mail_token(&self, table: LinkTable, id: &str, hash: &str) -> Result<bool> {
        let sql = format!(
            "UPDATE {} SET mail_token_hash = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $3",
            table.table()
        );
        let now = self.now();
        let n = on_pool!(self.write(), p => {
            sqlx::query(&sql).bind(id).bind(hash).bind(now).execute(p).await?.rows_affected()
        });
        Ok(n == 1)
    }

    /// The payloads of one kind of job, done or not (for operators and tests).
    pub async fn job_payloads(&self, kind: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT payload FROM outbox WHERE kind = $1 ORDER BY created_at")
                .bind(kind).fetch_all(p).await?
        });
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Claims up to `limit` jobs due at `now` for `lease` microseconds. A
    /// worker that dies leaves its jobs to be claimed again when the lease
    /// ends; PostgreSQL skips rows another instance has locked.
    pub async fn claim_jobs(&self, now: i64, lease: i64, limit: i64) -> Result<Vec<Job>> {
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM outbox WHERE done_at IS NULL AND run_at <= $2 \
              AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY run_at, id LIMIT $3{lock}) \
             RETURNING id, kind, payload, attempts"
        );
        let rows: Vec<(String, String, String, i32)> = on_pool!(self.write(), p => {
            sqlx::query_as(&sql).bind(now + lease).bind(now).bind(limit).fetch_all(p).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, kind, payload, attempts)| Job {
                id,
                kind,
                payload,
                attempts,
            })
            .collect())
    }

    /// Marks a job done with what happened ("sent", "skipped: ...").
    pub async fn finish_job(&self, id: &str, outcome: &str) -> Result<()> {
        on_pool!(self.write(), p => {
            sqlx::query(&format!("UPDATE outbox SET done_at = $2, outcome = $3, claimed_until = NULL, \
                 payload = {FORGET} WHERE id = $1"))
                .bind(id).bind(self.now()).bind(outcome).execute(p).await?;
        });
        Ok(())
    }

    /// Records a failed attempt; the job runs again at `retry_at`, or is
    /// given up (done, outcome "failed") after too many attempts.
    pub async fn fail_job(
        &self,
        id: &str,
        error: &str,
        retry_at: i64,
        give_up: bool,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            if give_up {
                sqlx::query(&format!("UPDATE outbox SET done_at = $2, outcome = 'failed', last_error = $3, \
                     claimed_until = NULL, payload = {FORGET} WHERE id = $1"))
                    .bind(id).bind(self.now()).bind(error).execute(p).await?;
            } else {
                sqlx::query("UPDATE outbox SET run_at = $2, last_error = $3, claimed_until = NULL WHERE id = $1")
                    .bind(id).bind(retry_at).bind(error).execute(p).await?;
            }
        });
        Ok(())
    }

    /// Jobs by kind and outcome, for tests and the operator (`None`: pending).
    pub async fn count_jobs(&self, kind: &str, outcome: Option<&str>) -> Result<i64> {
        let (n,): (i64,) = on_pool!(self.read(), p => {
            match outcome {
                Some(o) => sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE kind = $1 AND outcome = $2").bind(kind).bind(o).fetch_one(p).await?,
                None => sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE kind = $1 AND done_at IS NULL").bind(kind).fetch_one(p).await?,
            }
        });
        Ok(n)
    }
}
