//! Protocol versions added by clinic admins. The text is stored as written
//! and validated by the domain on the way in and again when loaded.

use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::{append_in_tx, is_unique_violation, on_pool, Result, Store};

/// A protocol version to store.
#[derive(Debug, Clone)]
pub struct NewProtocolVersion {
    pub id: String,
    pub protocol_id: String,
    pub version: i64,
    pub file_name: String,
    pub body: String,
    pub sha256: String,
    pub created_by: String,
    /// The organisation it belongs to.
    pub org_id: String,
}

/// A stored protocol version, with who added it and who approved it
/// (their usernames).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredProtocol {
    pub protocol_id: String,
    pub version: i64,
    pub file_name: String,
    pub body: String,
    pub sha256: String,
    pub created_by: String,
    pub created_at: i64,
    pub org_id: Option<String>,
    /// `draft` until a medical director approves it, then `approved`.
    pub status: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
}

impl Store {
    /// Stores a version with its audit record; a version number already
    /// taken is a conflict.
    pub async fn insert_protocol_version(
        &self,
        p: &NewProtocolVersion,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let now = self.now();
        let r: Result<()> = on_pool!(self.write(), pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO protocol_versions (id, protocol_id, version, file_name, body, sha256, \
                 created_by, created_at, org_id, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'draft')")
                .bind(&p.id).bind(&p.protocol_id).bind(p.version).bind(&p.file_name).bind(&p.body)
                .bind(&p.sha256).bind(&p.created_by).bind(now).bind(&p.org_id)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(crate::StoreError::Db(e)) if is_unique_violation(&e, "protocol_versions") => {
                Err(DomainError::Conflict(format!(
                    "version {} of {} was added meanwhile; give yours the next version",
                    p.version, p.protocol_id
                ))
                .into())
            }
            other => other,
        }
    }

    /// Every stored version, oldest first.
    pub async fn protocol_versions(&self) -> Result<Vec<StoredProtocol>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT v.protocol_id, v.version, v.file_name, v.body, v.sha256, \
                 u.username AS created_by, v.created_at, v.org_id, v.status, a.username AS approved_by, \
                 v.approved_at FROM protocol_versions v \
                 JOIN users u ON u.id = v.created_by LEFT JOIN users a ON a.id = v.approved_by \
                 ORDER BY v.created_at, v.id")
                .fetch_all(p).await?
        }))
    }

    /// How many versions are approved (other instances compare it to reload).
    pub async fn count_protocol_versions(&self) -> Result<i64> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM protocol_versions WHERE status = 'approved'").fetch_one(p).await?
        }))
    }

    /// Approves an organisation's draft; a version already approved, or
    /// another organisation's, is a conflict.
    pub async fn approve_protocol_version(
        &self,
        org: &str,
        protocol_id: &str,
        version: i64,
        by: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE protocol_versions SET status = 'approved', approved_by = $4, approved_at = $5 \
                 WHERE protocol_id = $1 AND version = $2 AND org_id = $3 AND status = 'draft'")
                .bind(protocol_id).bind(version).bind(org).bind(by).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::Conflict(format!(
                    "{protocol_id} version {version} is not a draft of this organisation"
                )).into());
            }
            append_in_tx!(tx, &[audit], now)?;
            tx.commit().await?;
        });
        Ok(())
    }
}
