//! Leads from the public self-assessment. A lead, its two scored responses,
//! a safety task when an answer signals risk, and the audit record are written
//! in one transaction; so are a consultation booking and the patient record it
//! creates.

use domain::ids::{AppointmentId, ClinicId, LeadId, OrgId, PatientId, UserId};
use domain::leads::{Assessment, LeadStatus};
use domain::patients::{mrn_from_bits, PatientDetails};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::measures::{NewResponse, NewTask};
use crate::org::parse_id;
use crate::{append_in_tx, is_unique_violation, on_pool, Result, Store};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lead {
    pub id: LeadId,
    pub clinic_id: ClinicId,
    pub status: String,
    pub given_name: String,
    pub family_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub date_of_birth: String,
    pub outcome: String,
    pub gad7_total: i32,
    pub phq2_total: i32,
    pub safety: bool,
    /// Conditions, treatments, exclusions and reasons, as JSON.
    pub detail: serde_json::Value,
    pub patient_id: Option<PatientId>,
    pub appointment_id: Option<AppointmentId>,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct LeadRow {
    id: String,
    clinic_id: String,
    status: String,
    given_name: String,
    family_name: String,
    email: Option<String>,
    phone: Option<String>,
    date_of_birth: String,
    outcome: String,
    gad7_total: i64,
    phq2_total: i64,
    safety: bool,
    detail: String,
    patient_id: Option<String>,
    appointment_id: Option<String>,
    note: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const LEAD_COLUMNS: &str = "id, clinic_id, status, given_name, family_name, email, phone, date_of_birth, \
     outcome, gad7_total, phq2_total, safety, detail, patient_id, appointment_id, note, created_at, updated_at";

fn lead_from(r: LeadRow) -> Result<Lead> {
    Ok(Lead {
        id: parse_id(&r.id)?,
        clinic_id: parse_id(&r.clinic_id)?,
        status: r.status,
        given_name: r.given_name,
        family_name: r.family_name,
        email: r.email,
        phone: r.phone,
        date_of_birth: r.date_of_birth,
        outcome: r.outcome,
        gad7_total: r.gad7_total as i32,
        phq2_total: r.phq2_total as i32,
        safety: r.safety,
        detail: serde_json::from_str(&r.detail)
            .map_err(|e| crate::StoreError::Db(sqlx::Error::Decode(e.to_string().into())))?,
        patient_id: r.patient_id.as_deref().map(parse_id).transpose()?,
        appointment_id: r.appointment_id.as_deref().map(parse_id).transpose()?,
        note: r.note,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// What the public assessment stores.
pub struct NewLead<'a> {
    pub id: LeadId,
    pub clinic: ClinicId,
    pub assessment: &'a Assessment,
    pub result_token_hash: String,
    pub gad7_hash: &'a str,
    pub phq2_hash: &'a str,
    pub task: Option<NewTask>,
}

/// A consultation booked from a result page: the patient record to create and
/// the visit, in one transaction with the lead's update.
pub struct LeadBooking {
    pub lead: LeadId,
    pub org: OrgId,
    pub patient: PatientId,
    pub details: PatientDetails,
}

impl Store {
    pub async fn insert_lead(&self, l: &NewLead<'_>, audit: NewAuditEvent) -> Result<()> {
        let a = l.assessment;
        let now = self.now();
        let detail = serde_json::json!({
            "conditions": a.conditions,
            "treatments": a.treatments,
            "exclusions": a.exclusions,
            "reasons": a.reasons,
        })
        .to_string();
        let responses = [
            (&a.gad7, l.gad7_hash, None),
            (&a.phq2, l.phq2_hash, l.task.as_ref()),
        ];
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query(&format!("INSERT INTO leads ({LEAD_COLUMNS}, result_token_hash) VALUES \
                 ($1, $2, 'new', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, NULL, $13, $13, $14)"))
                .bind(l.id.to_string()).bind(l.clinic.to_string())
                .bind(&a.contact.given_name).bind(&a.contact.family_name)
                .bind(&a.contact.email).bind(&a.contact.phone)
                .bind(a.contact.date_of_birth.to_string()).bind(a.outcome.as_str())
                .bind(i64::from(a.gad7.total.unwrap_or(0))).bind(i64::from(a.phq2.total.unwrap_or(0)))
                .bind(a.safety).bind(&detail).bind(now).bind(&l.result_token_hash)
                .execute(&mut *tx).await?;
            for (scored, hash, task) in responses {
                let r = NewResponse {
                    id: domain::ids::ResponseId::new(),
                    clinic: l.clinic,
                    patient: None,
                    lead: Some(l.id),
                    scored,
                    instrument_hash: hash,
                    source: crate::measures::Source::Public,
                    link: None,
                    appointment: None,
                    entered_by: None,
                    started_at: None,
                    submitted_at: now,
                };
                crate::insert_response!(tx, &r, task)?;
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// A clinic's leads, newest first; one status or all.
    pub async fn leads(
        &self,
        clinics: &[ClinicId],
        status: Option<LeadStatus>,
        limit: i64,
    ) -> Result<Vec<Lead>> {
        let mut out = Vec::new();
        for c in clinics {
            let rows: Vec<LeadRow> = on_pool!(self.read(), p => {
                sqlx::query_as(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE clinic_id = $1 \
                     AND ($2 IS NULL OR status = $2) ORDER BY created_at DESC, id DESC LIMIT $3"))
                    .bind(c.to_string()).bind(status.map(|s| s.as_str())).bind(limit)
                    .fetch_all(p).await?
            });
            for r in rows {
                out.push(lead_from(r)?);
            }
        }
        out.sort_by_key(|l| std::cmp::Reverse(l.created_at));
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(out)
    }

    /// Counts by status for the queue's tabs.
    pub async fn lead_counts(&self, clinics: &[ClinicId]) -> Result<Vec<(String, i64)>> {
        let mut out: Vec<(String, i64)> = Vec::new();
        for c in clinics {
            let rows: Vec<(String, i64)> = on_pool!(self.read(), p => {
                sqlx::query_as("SELECT status, COUNT(*) FROM leads WHERE clinic_id = $1 GROUP BY status")
                    .bind(c.to_string()).fetch_all(p).await?
            });
            for (s, n) in rows {
                match out.iter_mut().find(|(k, _)| *k == s) {
                    Some((_, m)) => *m += n,
                    None => out.push((s, n)),
                }
            }
        }
        Ok(out)
    }

    pub async fn lead(&self, id: LeadId, clinics: &[ClinicId]) -> Result<Option<Lead>> {
        let row: Option<LeadRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1"))
                .bind(id.to_string()).fetch_optional(p).await?
        });
        match row.map(lead_from).transpose()? {
            Some(l) if clinics.contains(&l.clinic_id) => Ok(Some(l)),
            _ => Ok(None),
        }
    }

    /// The newest lead that became `patient`: their public self-assessment.
    pub async fn lead_of_patient(&self, patient: PatientId) -> Result<Option<Lead>> {
        let row: Option<LeadRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE patient_id = $1 \
                 ORDER BY created_at DESC, id DESC LIMIT 1"))
                .bind(patient.to_string()).fetch_optional(p).await?
        });
        row.map(lead_from).transpose()
    }

    /// The lead whose result token hashes to `hash` (the public result page).
    pub async fn lead_by_token(&self, hash: &str) -> Result<Option<Lead>> {
        let row: Option<LeadRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE result_token_hash = $1"))
                .bind(hash).fetch_optional(p).await?
        });
        row.map(lead_from).transpose()
    }

    /// Sets a lead's status (and note) by hand.
    pub async fn set_lead_status(
        &self,
        id: LeadId,
        status: LeadStatus,
        note: Option<&str>,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE leads SET status = $2, note = COALESCE($3, note), updated_at = $4 \
                 WHERE id = $1 AND status <> 'became_patient'")
                .bind(id.to_string()).bind(status.as_str()).bind(note).bind(self.now())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::Conflict("this lead has already become a patient".into()).into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Makes a lead a patient: with a patient record already (from a booked
    /// consultation) it is only marked; otherwise the record is created from
    /// the lead's details. Returns the patient.
    pub async fn convert_lead(
        &self,
        lead: &Lead,
        org: OrgId,
        details: &PatientDetails,
        by: UserId,
        audit: NewAuditEvent,
    ) -> Result<PatientId> {
        for _ in 0..5 {
            let patient = lead.patient_id.unwrap_or_default();
            let mrn = mrn_from_bits(crate::patients::rand_bits());
            let mut ev = audit.clone();
            ev.patient_id = Some(patient.to_string());
            let now = self.now();
            let r: Result<()> = on_pool!(self.write(), p => async {
                let mut tx = p.begin().await?;
                if lead.patient_id.is_none() {
                    crate::insert_patient!(tx, patient, org, lead.clinic_id, &mrn, details, now, Some(by))?;
                }
                let n = sqlx::query("UPDATE leads SET status = 'became_patient', patient_id = $2, updated_at = $3 \
                     WHERE id = $1 AND status <> 'became_patient'")
                    .bind(lead.id.to_string()).bind(patient.to_string()).bind(now)
                    .execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Err(DomainError::Conflict("this lead has already become a patient".into()).into());
                }
                // The assessment's responses and tasks follow the person into the chart.
                sqlx::query("UPDATE questionnaire_responses SET patient_id = $2 WHERE lead_id = $1")
                    .bind(lead.id.to_string()).bind(patient.to_string()).execute(&mut *tx).await?;
                sqlx::query("UPDATE tasks SET patient_id = $2 WHERE lead_id = $1")
                    .bind(lead.id.to_string()).bind(patient.to_string()).execute(&mut *tx).await?;
                append_in_tx!(tx, &[ev], self.now())?;
                tx.commit().await?;
                Ok(())
            }.await);
            match r {
                Ok(()) => return Ok(patient),
                Err(crate::StoreError::Db(e)) if is_unique_violation(&e, "mrn") => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DomainError::Conflict("could not assign a unique MRN; try again".into()).into())
    }
}

/// The SQL a lead booking runs inside the visit's transaction, after the
/// patient and the visit are inserted: tie the lead to both. A lead that has
/// booked already (the same result page submitted twice) is a conflict.
#[macro_export]
macro_rules! book_lead_in_tx {
    ($tx:expr, $b:expr, $appt:expr, $now:expr) => {{
        let b: &$crate::leads::LeadBooking = $b;
        let result: $crate::Result<()> = async {
            let n = sqlx::query("UPDATE leads SET status = 'consultation_booked', patient_id = $2, appointment_id = $3, \
                 updated_at = $4 WHERE id = $1 AND appointment_id IS NULL AND status IN ('new', 'contacted')")
                .bind(b.lead.to_string()).bind(b.patient.to_string()).bind($appt.to_string()).bind($now)
                .execute(&mut *$tx).await?.rows_affected();
            if n == 0 {
                return Err(domain::DomainError::Conflict("a consultation is already booked for this assessment".into()).into());
            }
            sqlx::query("UPDATE questionnaire_responses SET patient_id = $2 WHERE lead_id = $1")
                .bind(b.lead.to_string()).bind(b.patient.to_string()).execute(&mut *$tx).await?;
            sqlx::query("UPDATE tasks SET patient_id = $2 WHERE lead_id = $1")
                .bind(b.lead.to_string()).bind(b.patient.to_string()).execute(&mut *$tx).await?;
            Ok(())
        }
        .await;
        result
    }};
}
