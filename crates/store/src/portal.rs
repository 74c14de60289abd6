//! The patient portal's storage: single-use sign-in links and the sessions
//! they open. A link's token and a session's id are stored only as hashes.

use domain::ids::{ClinicId, OrgId, PatientId, UserId};

use crate::audit::NewAuditEvent;
use crate::org::parse_id;
use crate::{append_in_tx, on_pool, Result, Store};

/// A sign-in link to create, with the e-mail job that carries its token.
#[derive(Debug, Clone)]
pub struct NewPortalLink {
    pub id: String,
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub token_hash: String,
    pub created_by: Option<UserId>,
    pub expires_at: i64,
}

/// A signed-in patient: whose session, at which clinic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    pub org_id: OrgId,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub csrf_token: String,
    pub last_seen_at: i64,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    org_id: String,
    clinic_id: String,
    patient_id: String,
    csrf_token: String,
    last_seen_at: i64,
}

/// The session a used link opens.
#[derive(Debug, Clone)]
pub struct NewPortalSession {
    pub id_hash: String,
    pub csrf_token: String,
    pub absolute_expires_at: i64,
}

impl Store {
    /// Stores a link, its e-mail job and its audit record together.
    pub async fn insert_portal_link(
        &self,
        l: &NewPortalLink,
        jobs: &[crate::outbox::NewJob],
        audit: Vec<NewAuditEvent>,
    ) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO portal_links (id, clinic_id, patient_id, token_hash, created_by, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&l.id).bind(l.clinic.to_string()).bind(l.patient.to_string()).bind(&l.token_hash)
                .bind(l.created_by.map(|u| u.to_string())).bind(now).bind(l.expires_at)
                .execute(&mut *tx).await?;
            crate::insert_jobs!(tx, jobs, self.now())?;
            append_in_tx!(tx, &audit, self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Whether a link with this hash exists, is unused and has not expired.
    pub async fn portal_link_open(&self, hash: &str, now: i64) -> Result<bool> {
        let n: i64 = on_pool!(self.read(), p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM portal_links WHERE (token_hash = $1 OR mail_token_hash = $1) \
                 AND used_at IS NULL AND expires_at > $2")
                .bind(hash).bind(now).fetch_one(p).await?
        });
        Ok(n > 0)
    }

    /// Uses a link once: marks it used and opens a session for its patient in
    /// one transaction. `None` when the link is unknown, used or expired (a
    /// second use of the same link, even at the same instant, gets `None`).
    /// `audit` is completed with the clinic and patient of the link.
    pub async fn use_portal_link(
        &self,
        hash: &str,
        session: &NewPortalSession,
        mut audit: NewAuditEvent,
    ) -> Result<Option<(ClinicId, PatientId)>> {
        let now = self.now();
        let found: Option<(String, String)> = on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let row: Option<(String, String)> = sqlx::query_as(
                "UPDATE portal_links SET used_at = $2 WHERE (token_hash = $1 OR mail_token_hash = $1) AND used_at IS NULL \
                 AND expires_at > $2 RETURNING clinic_id, patient_id")
                .bind(hash).bind(now).fetch_optional(&mut *tx).await?;
            if let Some((clinic, patient)) = &row {
                let org: String = sqlx::query_scalar("SELECT org_id FROM clinics WHERE id = $1")
                    .bind(clinic).fetch_one(&mut *tx).await?;
                sqlx::query("INSERT INTO portal_sessions (id_hash, clinic_id, patient_id, csrf_token, \
                     created_at, last_seen_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)")
                    .bind(&session.id_hash).bind(clinic).bind(patient).bind(&session.csrf_token)
                    .bind(now).bind(session.absolute_expires_at)
                    .execute(&mut *tx).await?;
                // Ended and expired sessions of this patient go now.
                sqlx::query("DELETE FROM portal_sessions WHERE patient_id = $1 \
                     AND (absolute_expires_at < $2 OR ended_at IS NOT NULL)")
                    .bind(patient).bind(now).execute(&mut *tx).await?;
                audit.org_id = Some(org);
                audit.clinic_id = Some(clinic.clone());
                audit.patient_id = Some(patient.clone());
                append_in_tx!(tx, &[audit], self.now())?;
            }
            tx.commit().await?;
            row
        });
        found
            .map(|(c, p)| Ok((parse_id(&c)?, parse_id(&p)?)))
            .transpose()
    }

    /// The live portal session for a cookie's hash: not ended, within its
    /// absolute lifetime and used within `idle` microseconds.
    pub async fn portal_session(
        &self,
        hash: &str,
        now: i64,
        idle: i64,
    ) -> Result<Option<PortalSession>> {
        let row: Option<SessionRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT c.org_id, s.clinic_id, s.patient_id, s.csrf_token, s.last_seen_at \
                 FROM portal_sessions s JOIN clinics c ON c.id = s.clinic_id \
                 WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.absolute_expires_at > $2 AND s.last_seen_at > $3")
                .bind(hash).bind(now).bind(now - idle).fetch_optional(p).await?
        });
        row.map(|r| {
            Ok(PortalSession {
                org_id: parse_id(&r.org_id)?,
                clinic_id: parse_id(&r.clinic_id)?,
                patient_id: parse_id(&r.patient_id)?,
                csrf_token: r.csrf_token,
                last_seen_at: r.last_seen_at,
            })
        })
        .transpose()
    }

    pub async fn touch_portal_session(&self, hash: &str, now: i64) -> Result<()> {
        on_pool!(self.write(), p => {
            sqlx::query("UPDATE portal_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(hash).bind(now).execute(p).await?;
        });
        Ok(())
    }

    pub async fn end_portal_session(&self, hash: &str, audit: NewAuditEvent) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE portal_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL")
                .bind(hash).bind(now).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The clinic's patients whose e-mail address is `email` (ignoring case).
    pub async fn patients_with_email(
        &self,
        clinic: ClinicId,
        email: &str,
    ) -> Result<Vec<PatientId>> {
        let ids: Vec<String> = on_pool!(self.read(), p => {
            sqlx::query_scalar("SELECT id FROM patients WHERE clinic_id = $1 AND LOWER(email) = LOWER($2) \
                 ORDER BY id LIMIT 5")
                .bind(clinic.to_string()).bind(email.trim()).fetch_all(p).await?
        });
        ids.iter().map(|i| parse_id(i)).collect()
    }
}
