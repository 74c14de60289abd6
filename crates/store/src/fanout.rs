//! Treatment-floor events between app instances: PostgreSQL's NOTIFY carries
//! them, LISTEN receives them. On SQLite there is one instance and nothing to
//! carry.

use crate::{Pool, Result, Store};

/// The channel the floor's events travel on.
pub const FLOOR_CHANNEL: &str = "stillwater_floor";

/// A NOTIFY payload is limited to 8000 bytes; a batch is split well below.
const MAX_PAYLOADS: usize = 500;

impl Store {
    /// Whether events must travel between instances (PostgreSQL).
    pub fn fans_out(&self) -> bool {
        matches!(self.write(), Pool::Postgres(_))
    }

    /// Sends each payload on the floor channel (one statement per batch).
    /// The statement is its own transaction, and it commits without waiting
    /// for the log to reach the disk: the events are hints for the boards
    /// (which refresh on their own), they change no data, and the readings
    /// they announce were committed durably before. So a board on another
    /// instance hears of a reading without a second disk flush per batch.
    pub async fn notify_floor(&self, payloads: &[String]) -> Result<()> {
        let Pool::Postgres(p) = self.write() else {
            return Ok(());
        };
        for chunk in payloads.chunks(MAX_PAYLOADS) {
            sqlx::query(
                "SELECT pg_notify($1, x) FROM \
                 (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit, \
                 UNNEST($2::text[]) AS x",
            )
            .bind(FLOOR_CHANNEL)
            .bind(chunk)
            .execute(p)
            .await?;
        }
        Ok(())
    }

    /// Listens on the floor channel and hands each payload to `deliver`,
    /// reconnecting after a lost connection (events sent meanwhile are
    /// missed; the boards also refresh on their own). Runs until `deliver`
    /// returns `false`. Does nothing on SQLite.
    pub async fn listen_floor(&self, mut deliver: impl FnMut(&str) -> bool) -> Result<()> {
        let Pool::Postgres(p) = self.write() else {
            return Ok(());
        };
        let mut l = sqlx::postgres::PgListener::connect_with(p).await?;
        l.listen(FLOOR_CHANNEL).await?;
        loop {
            let n = l.recv().await?;
            if !deliver(n.payload()) {
                return Ok(());
            }
        }
    }
}
