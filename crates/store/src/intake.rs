//! Before the first dose: assessment parts, consent documents and
//! signatures, patient links for the parts a patient fills at home, and
//! treatment plans. Every write goes with its audit record in one
//! transaction; versions are numbered inside the transaction and a unique key
//! refuses a second writer of the same version.

use domain::ids::{ClinicId, PatientId, UserId};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::{append_in_tx, is_unique_violation, on_pool, Result, Store, StoreError};

fn conflict(m: &str) -> StoreError {
    DomainError::Conflict(m.into()).into()
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

// ---- Assessment -------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AssessmentPart {
    pub id: String,
    pub part: String,
    pub version: i64,
    pub data: String,
    pub source: String,
    pub entered_by: Option<String>,
    pub created_at: i64,
}

// ---- Consent ----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct ConsentDocument {
    pub id: String,
    pub clinic_id: String,
    pub route: String,
    pub version: i64,
    pub title: String,
    pub source: String,
    pub body: String,
    pub sha256: String,
    pub witness_required: bool,
    pub published_by: String,
    pub published_at: i64,
}

const DOC_COLUMNS: &str =
    "d.id, d.clinic_id, d.route, d.version, d.title, d.source, d.body, d.sha256, \
     d.witness_required, u.username AS published_by, d.published_at";

/// A signature (the PDF is fetched on its own).
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Consent {
    pub id: String,
    pub route: String,
    pub document_id: String,
    pub document_version: i64,
    pub document_sha256: String,
    pub typed_name: String,
    pub signed_at: i64,
    pub channel: String,
    pub recorded_by: Option<String>,
    pub witness_required: bool,
    pub witnessed_by: Option<String>,
    pub witnessed_at: Option<i64>,
    pub pdf_sha256: String,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_by: Option<String>,
    pub withdrawal_reason: Option<String>,
}

const CONSENT_COLUMNS: &str = "c.id, c.route, c.document_id, c.document_version, c.document_sha256, c.typed_name, \
     c.signed_at, c.channel, r.username AS recorded_by, c.witness_required, w.username AS witnessed_by, \
     c.witnessed_at, c.pdf_sha256, c.withdrawn_at, x.username AS withdrawn_by, c.withdrawal_reason";
const CONSENT_FROM: &str = "FROM consents c LEFT JOIN users r ON r.id = c.recorded_by \
     LEFT JOIN users w ON w.id = c.witnessed_by LEFT JOIN users x ON x.id = c.withdrawn_by";

pub struct NewConsent<'a> {
    pub id: String,
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub document: &'a ConsentDocument,
    pub typed_name: String,
    pub signed_at: i64,
    pub channel: &'static str,
    pub recorded_by: Option<UserId>,
    pub link_id: Option<String>,
    pub pdf: Vec<u8>,
    pub pdf_sha256: String,
}

// ---- Links ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct PatientLink {
    pub id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub purpose: String,
    pub route: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

const LINK_COLUMNS: &str =
    "id, clinic_id, patient_id, purpose, route, created_at, expires_at, used_at";

pub struct NewPatientLink {
    pub id: String,
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub purpose: &'static str,
    pub route: Option<String>,
    pub token_hash: String,
    pub created_by: Option<UserId>,
    pub expires_at: i64,
}

// ---- Plans ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct StoredPlan {
    pub id: String,
    pub version: i64,
    pub protocol_id: String,
    pub protocol_version: i64,
    pub route: String,
    pub course: String,
    pub doses: i64,
    pub targets: String,
    pub goal: String,
    pub modality: String,
    pub notes: String,
    pub reason: String,
    pub eligibility_version: i64,
    pub consent_id: String,
    pub created_by: String,
    pub created_at: i64,
}

const PLAN_COLUMNS: &str =
    "p.id, p.version, p.protocol_id, p.protocol_version, p.route, p.course, p.doses, \
     p.targets, p.goal, p.modality, p.notes, p.reason, p.eligibility_version, p.consent_id, \
     u.username AS created_by, p.created_at";

fn str_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl Store {
    /// Stores a part of the assessment as its next version, using up the
    /// patient's link in the same transaction when it came through one.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_assessment_part(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        part: &'static str,
        data: &str,
        source: &'static str,
        by: Option<UserId>,
        link: Option<&str>,
        audit: NewAuditEvent,
    ) -> Result<i64> {
        let r: Result<i64> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            if let Some(l) = link {
                let n = sqlx::query("UPDATE patient_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                    .bind(l).bind(self.now()).execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Err(conflict("this link has already been used"));
                }
            }
            let (next,): (i64,) = sqlx::query_as(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM assessments WHERE patient_id = $1 AND part = $2")
                .bind(patient.to_string()).bind(part).fetch_one(&mut *tx).await?;
            sqlx::query("INSERT INTO assessments (id, clinic_id, patient_id, part, version, data, source, entered_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(new_id()).bind(clinic.to_string()).bind(patient.to_string()).bind(part).bind(next)
                .bind(data).bind(source).bind(by.map(|u| u.to_string())).bind(self.now())
                .execute(&mut *tx).await?;
            let mut ev = audit.clone();
            ev.detail = Some(format!("{part} part, version {next}"));
            append_in_tx!(tx, &[ev], self.now())?;
            tx.commit().await?;
            Ok(next)
        }.await);
        match r {
            Err(StoreError::Db(e))
                if is_unique_violation(&e, "assessments") || is_unique_violation(&e, "version") =>
            {
                Err(conflict(
                    "the assessment was just changed by someone else; reload and save again",
                ))
            }
            other => other,
        }
    }

    /// Every version of both parts, newest first.
    pub async fn assessment_parts(&self, patient: PatientId) -> Result<Vec<AssessmentPart>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT a.id, a.part, a.version, a.data, a.source, u.username AS entered_by, a.created_at \
                 FROM assessments a LEFT JOIN users u ON u.id = a.entered_by WHERE a.patient_id = $1 \
                 ORDER BY a.created_at DESC, a.version DESC")
                .bind(patient.to_string()).fetch_all(p).await?
        }))
    }

    /// Publishes the next version of a clinic's consent document for a route.
    /// The same text as the current version is refused (nothing would change).
    #[allow(clippy::too_many_arguments)]
    pub async fn publish_consent_document(
        &self,
        clinic: ClinicId,
        route: &str,
        title: &str,
        source: &str,
        body: &str,
        sha256: &str,
        witness_required: bool,
        by: UserId,
        audit: NewAuditEvent,
    ) -> Result<i64> {
        let r: Result<i64> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            let cur: Option<(i64, String, bool)> = sqlx::query_as(
                "SELECT version, sha256, witness_required FROM consent_documents WHERE clinic_id = $1 AND route = $2 \
                 ORDER BY version DESC LIMIT 1")
                .bind(clinic.to_string()).bind(route).fetch_optional(&mut *tx).await?;
            if let Some((v, sha, w)) = &cur {
                if sha == sha256 && *w == witness_required {
                    return Err(conflict(&format!("this is the text of version {v}; change it to publish a new version")));
                }
            }
            let next = cur.map_or(1, |c| c.0 + 1);
            sqlx::query("INSERT INTO consent_documents (id, clinic_id, route, version, title, source, body, sha256, \
                 witness_required, published_by, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(new_id()).bind(clinic.to_string()).bind(route).bind(next).bind(title).bind(source)
                .bind(body).bind(sha256).bind(witness_required).bind(by.to_string()).bind(self.now())
                .execute(&mut *tx).await?;
            let mut ev = audit.clone();
            ev.detail = Some(format!("{route} version {next}"));
            append_in_tx!(tx, &[ev], self.now())?;
            tx.commit().await?;
            Ok(next)
        }.await);
        match r {
            Err(StoreError::Db(e))
                if is_unique_violation(&e, "consent_documents")
                    || is_unique_violation(&e, "version") =>
            {
                Err(conflict(
                    "another version was just published; reload and try again",
                ))
            }
            other => other,
        }
    }

    /// A clinic's consent documents, every version, newest first per route.
    pub async fn consent_documents(&self, clinic: ClinicId) -> Result<Vec<ConsentDocument>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {DOC_COLUMNS} FROM consent_documents d JOIN users u ON u.id = d.published_by \
                 WHERE d.clinic_id = $1 ORDER BY d.route, d.version DESC"))
                .bind(clinic.to_string()).fetch_all(p).await?
        }))
    }

    /// The current (highest) version for a route.
    pub async fn current_consent_document(
        &self,
        clinic: ClinicId,
        route: &str,
    ) -> Result<Option<ConsentDocument>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {DOC_COLUMNS} FROM consent_documents d JOIN users u ON u.id = d.published_by \
                 WHERE d.clinic_id = $1 AND d.route = $2 ORDER BY d.version DESC LIMIT 1"))
                .bind(clinic.to_string()).bind(route).fetch_optional(p).await?
        }))
    }

    pub async fn consent_document(&self, id: &str) -> Result<Option<ConsentDocument>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {DOC_COLUMNS} FROM consent_documents d JOIN users u ON u.id = d.published_by \
                 WHERE d.id = $1"))
                .bind(id).fetch_optional(p).await?
        }))
    }

    /// Stores a signature with its PDF; a link it came through is used up in
    /// the same transaction, and a document superseded in the meantime is
    /// refused (the patient read an older text).
    pub async fn insert_consent(&self, c: &NewConsent<'_>, audit: NewAuditEvent) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let (latest,): (Option<i64>,) = sqlx::query_as(
                "SELECT MAX(version) FROM consent_documents WHERE clinic_id = $1 AND route = $2")
                .bind(c.clinic.to_string()).bind(&c.document.route).fetch_one(&mut *tx).await?;
            if latest != Some(c.document.version) {
                return Err(conflict("the consent document changed; read the current version and sign again"));
            }
            if let Some(l) = &c.link_id {
                let n = sqlx::query("UPDATE patient_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                    .bind(l).bind(self.now()).execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Err(conflict("this link has already been used"));
                }
            }
            sqlx::query("INSERT INTO consents (id, clinic_id, patient_id, document_id, route, document_version, \
                 document_sha256, typed_name, signed_at, channel, recorded_by, link_id, witness_required, pdf, pdf_sha256) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
                .bind(&c.id).bind(c.clinic.to_string()).bind(c.patient.to_string()).bind(&c.document.id)
                .bind(&c.document.route).bind(c.document.version).bind(&c.document.sha256).bind(&c.typed_name)
                .bind(c.signed_at).bind(c.channel).bind(c.recorded_by.map(|u| u.to_string()))
                .bind(&c.link_id).bind(c.document.witness_required).bind(&c.pdf).bind(&c.pdf_sha256)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A patient's signatures, newest first.
    pub async fn consents(&self, patient: PatientId) -> Result<Vec<Consent>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {CONSENT_COLUMNS} {CONSENT_FROM} WHERE c.patient_id = $1 \
                 ORDER BY c.signed_at DESC, c.id DESC"))
                .bind(patient.to_string()).fetch_all(p).await?
        }))
    }

    /// The PDF of one signature of the patient's.
    pub async fn consent_pdf(&self, patient: PatientId, id: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT pdf FROM consents WHERE id = $1 AND patient_id = $2")
                .bind(id).bind(patient.to_string()).fetch_optional(p).await?
        });
        Ok(row.map(|r| r.0))
    }

    /// A witness confirms a signature once; not for one withdrawn or not needing it.
    pub async fn witness_consent(
        &self,
        patient: PatientId,
        id: &str,
        by: UserId,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE consents SET witnessed_by = $3, witnessed_at = $4 WHERE id = $1 \
                 AND patient_id = $2 AND witness_required AND witnessed_by IS NULL AND withdrawn_at IS NULL")
                .bind(id).bind(patient.to_string()).bind(by.to_string()).bind(self.now())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(conflict("this consent does not await a witness"));
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records a withdrawal, once.
    pub async fn withdraw_consent(
        &self,
        patient: PatientId,
        id: &str,
        by: UserId,
        reason: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE consents SET withdrawn_at = $3, withdrawn_by = $4, withdrawal_reason = $5 \
                 WHERE id = $1 AND patient_id = $2 AND withdrawn_at IS NULL")
                .bind(id).bind(patient.to_string()).bind(self.now()).bind(by.to_string()).bind(reason)
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(conflict("this consent is already withdrawn"));
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Creates a patient link with its e-mail job.
    pub async fn insert_patient_link(
        &self,
        l: &NewPatientLink,
        audit: NewAuditEvent,
        jobs: &[crate::outbox::NewJob],
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO patient_links (id, clinic_id, patient_id, purpose, route, token_hash, created_by, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&l.id).bind(l.clinic.to_string()).bind(l.patient.to_string()).bind(l.purpose)
                .bind(&l.route).bind(&l.token_hash).bind(l.created_by.map(|u| u.to_string()))
                .bind(self.now()).bind(l.expires_at)
                .execute(&mut *tx).await?;
            crate::insert_jobs!(tx, jobs, self.now())?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn patient_link_by_hash(&self, hash: &str) -> Result<Option<PatientLink>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {LINK_COLUMNS} FROM patient_links WHERE (token_hash = $1 OR mail_token_hash = $1)"))
                .bind(hash).fetch_optional(p).await?
        }))
    }

    pub async fn patient_links(&self, patient: PatientId) -> Result<Vec<PatientLink>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {LINK_COLUMNS} FROM patient_links WHERE patient_id = $1 \
                 ORDER BY created_at DESC LIMIT 20"))
                .bind(patient.to_string()).fetch_all(p).await?
        }))
    }

    /// Stores a plan as the patient's next version. The consent it rests on
    /// must still stand when the row is written (a withdrawal a moment
    /// earlier wins).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_plan(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        plan: &domain::plans::Plan,
        eligibility_version: i64,
        consent_id: &str,
        by: UserId,
        audit: NewAuditEvent,
    ) -> Result<i64> {
        let targets = serde_json::to_string(&plan.targets).unwrap_or_default();
        let r: Result<i64> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            let (next,): (i64,) = sqlx::query_as(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM treatment_plans WHERE patient_id = $1")
                .bind(patient.to_string()).fetch_one(&mut *tx).await?;
            let n = sqlx::query("INSERT INTO treatment_plans (id, clinic_id, patient_id, version, protocol_id, \
                 protocol_version, protocol_hash, route, course, doses, targets, goal, modality, notes, reason, \
                 eligibility_version, consent_id, created_by, created_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19 \
                 WHERE EXISTS (SELECT 1 FROM consents WHERE id = $17 AND withdrawn_at IS NULL)")
                .bind(new_id()).bind(clinic.to_string()).bind(patient.to_string()).bind(next)
                .bind(&plan.protocol_id).bind(i64::from(plan.protocol_version)).bind(&plan.protocol_hash)
                .bind(str_of(&plan.route)).bind(str_of(&plan.course)).bind(i64::from(plan.doses))
                .bind(&targets).bind(str_of(&plan.goal)).bind(str_of(&plan.modality)).bind(&plan.notes)
                .bind(&plan.reason).bind(eligibility_version).bind(consent_id).bind(by.to_string())
                .bind(self.now())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(conflict("not yet eligible: consent withdrawn"));
            }
            let mut ev = audit.clone();
            ev.detail = Some(format!("version {next}: {} v{}", plan.protocol_id, plan.protocol_version));
            append_in_tx!(tx, &[ev], self.now())?;
            tx.commit().await?;
            Ok(next)
        }.await);
        match r {
            Err(StoreError::Db(e))
                if is_unique_violation(&e, "treatment_plans")
                    || is_unique_violation(&e, "version") =>
            {
                Err(conflict(
                    "another plan was just saved; reload and try again",
                ))
            }
            other => other,
        }
    }

    /// A patient's plans, newest first.
    pub async fn plans(&self, patient: PatientId) -> Result<Vec<StoredPlan>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM treatment_plans p JOIN users u ON u.id = p.created_by \
                 WHERE p.patient_id = $1 ORDER BY p.version DESC"))
                .bind(patient.to_string()).fetch_all(p).await?
        }))
    }
}
