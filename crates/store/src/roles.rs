//! PostgreSQL roles. A table's owner can switch off its triggers (`ALTER
//! TABLE … DISABLE TRIGGER`), and a superuser can set
//! `session_replication_role = replica`, which silences every trigger; the
//! append-only guards of the audit trail, the Schedule III ledger, signed
//! notes and billing hold only against a role that is neither. So the
//! schema's owner applies the migrations and grants the app's role what it
//! needs (rows, not the schema), and Stillwater serves as that role.

use sqlx::Connection;

use crate::{on_pool, Pool, Result, Store, POSTGRES_MIGRATIONS};

/// Quotes a role name as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Applies the migrations as the schema's owner (`owner_url`) and grants
/// `runtime_role` reading and writing rows of every table, nothing more:
/// it may not alter, drop or disable anything. Safe to run again.
pub async fn migrate_as_owner(owner_url: &str, runtime_role: &str) -> Result<()> {
    let mut c = sqlx::PgConnection::connect(owner_url).await?;
    POSTGRES_MIGRATIONS.run(&mut c).await?;
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut c)
        .await?;
    if me != runtime_role {
        let r = ident(runtime_role);
        for sql in [
            format!("GRANT USAGE ON SCHEMA public TO {r}"),
            format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r}"),
            format!("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {r}"),
        ] {
            sqlx::query(&sql).execute(&mut c).await?;
        }
    }
    c.close().await?;
    Ok(())
}

impl Store {
    /// The role this store connects as (PostgreSQL; `None` on SQLite).
    pub async fn pg_role(&self) -> Result<Option<String>> {
        Ok(match self.write() {
            Pool::Postgres(p) => Some(
                sqlx::query_scalar("SELECT current_user::text")
                    .fetch_one(p)
                    .await?,
            ),
            Pool::Sqlite(_) => None,
        })
    }

    /// Why the role this store connects as could switch off the guard
    /// triggers (a superuser; owner, or member of the owner, of a table),
    /// or `None` when it cannot (and on SQLite).
    pub async fn pg_role_can_unguard(&self) -> Result<Option<String>> {
        let Pool::Postgres(p) = self.write() else {
            return Ok(None);
        };
        let (superuser, owned): (bool, i64) = sqlx::query_as(
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
             (SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public' \
              AND pg_has_role(current_user, tableowner, 'USAGE'))",
        )
        .fetch_one(p)
        .await?;
        Ok(if superuser {
            Some("the app's database role is a superuser".into())
        } else if owned > 0 {
            Some(format!("the app's database role owns {owned} tables"))
        } else {
            None
        })
    }

    /// How many migrations the database lacks. PostgreSQL only (SQLite
    /// always migrates at start): a role that owns nothing cannot run the
    /// migrator at all, so it looks first.
    pub async fn pending_migrations(&self) -> Result<usize> {
        let applied: Vec<i64> = on_pool!(self.write(), p => {
            let exists: bool = sqlx::query_scalar(
                "SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
            )
            .fetch_one(p)
            .await?;
            if exists {
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(p)
                    .await?
            } else {
                vec![]
            }
        });
        Ok(POSTGRES_MIGRATIONS
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }
}
