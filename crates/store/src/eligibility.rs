//! Eligibility decisions, versioned per patient. A new decision takes the
//! next version in the same transaction as its audit record; two prescribers
//! deciding at once cannot share a version (the unique key refuses the second).

use domain::eligibility::Decision;
use domain::ids::{ClinicId, PatientId, UserId};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::org::parse_id;
use crate::{append_in_tx, is_unique_violation, on_pool, Result, Store};

/// A patient waiting for an eligibility decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Waiting {
    pub patient_id: PatientId,
    pub given: String,
    pub family: String,
    pub assessed_at: i64,
}

/// A stored decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredDecision {
    pub id: String,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub version: i64,
    pub facts: serde_json::Value,
    pub findings: serde_json::Value,
    pub suggestion: String,
    pub decision: String,
    pub conditions: String,
    pub rationale: String,
    pub treatment_resistant: bool,
    pub decided_by: String,
    pub decided_at: i64,
    pub signed_off_by: Option<String>,
    pub signed_off_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    clinic_id: String,
    patient_id: String,
    version: i64,
    facts: String,
    findings: String,
    suggestion: String,
    decision: String,
    conditions: String,
    rationale: String,
    treatment_resistant: bool,
    decided_by: String,
    decided_at: i64,
    signed_off_by: Option<String>,
    signed_off_at: Option<i64>,
}

const SELECT: &str = "SELECT d.id, d.clinic_id, d.patient_id, d.version, d.facts, d.findings, d.suggestion, \
     d.decision, d.conditions, d.rationale, d.treatment_resistant, u.username AS decided_by, d.decided_at, \
     s.username AS signed_off_by, d.signed_off_at FROM eligibility_decisions d \
     JOIN users u ON u.id = d.decided_by LEFT JOIN users s ON s.id = d.signed_off_by";

fn from_row(r: Row) -> Result<StoredDecision> {
    let json = |s: &str| {
        serde_json::from_str(s)
            .map_err(|e| crate::StoreError::Db(sqlx::Error::Decode(e.to_string().into())))
    };
    Ok(StoredDecision {
        id: r.id,
        clinic_id: parse_id(&r.clinic_id)?,
        patient_id: parse_id(&r.patient_id)?,
        version: r.version,
        facts: json(&r.facts)?,
        findings: json(&r.findings)?,
        suggestion: r.suggestion,
        decision: r.decision,
        conditions: r.conditions,
        rationale: r.rationale,
        treatment_resistant: r.treatment_resistant,
        decided_by: r.decided_by,
        decided_at: r.decided_at,
        signed_off_by: r.signed_off_by,
        signed_off_at: r.signed_off_at,
    })
}

impl Store {
    /// Stores a decision as the patient's next version; returns the version.
    pub async fn insert_decision(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        d: &Decision,
        by: UserId,
        audit: NewAuditEvent,
    ) -> Result<i64> {
        let facts = serde_json::to_string(&d.facts).unwrap_or_default();
        let findings = serde_json::to_string(&d.evaluation.findings).unwrap_or_default();
        let r: Result<i64> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            let (next,): (i64,) = sqlx::query_as(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM eligibility_decisions WHERE patient_id = $1")
                .bind(patient.to_string()).fetch_one(&mut *tx).await?;
            sqlx::query("INSERT INTO eligibility_decisions (id, clinic_id, patient_id, version, facts, findings, \
                 suggestion, decision, conditions, rationale, treatment_resistant, decided_by, decided_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
                .bind(uuid::Uuid::now_v7().to_string()).bind(clinic.to_string()).bind(patient.to_string())
                .bind(next).bind(&facts).bind(&findings).bind(d.evaluation.suggestion.as_str())
                .bind(d.decision.as_str()).bind(&d.conditions).bind(&d.rationale)
                .bind(d.evaluation.treatment_resistant).bind(by.to_string()).bind(self.now())
                .execute(&mut *tx).await?;
            let mut ev = audit.clone();
            ev.detail = Some(format!("version {next}: {}", d.decision.as_str()));
            append_in_tx!(tx, &[ev], self.now())?;
            tx.commit().await?;
            Ok(next)
        }.await);
        match r {
            Err(crate::StoreError::Db(e))
                if is_unique_violation(&e, "eligibility_decisions")
                    || is_unique_violation(&e, "version") =>
            {
                Err(DomainError::Conflict(
                    "another decision was just recorded; reload and decide again".into(),
                )
                .into())
            }
            other => other,
        }
    }

    /// A clinic's patients whose clinical assessment is newer than their
    /// last eligibility decision (or who have none): a prescriber's decision
    /// is waiting. Oldest first, with when the assessment was recorded.
    pub async fn decisions_waiting(&self, clinic: ClinicId) -> Result<Vec<Waiting>> {
        let rows: Vec<(String, String, String, i64)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT a.patient_id, p.given_name, p.family_name, MAX(a.created_at) AS at \
                 FROM assessments a JOIN patients p ON p.id = a.patient_id \
                 WHERE a.clinic_id = $1 AND a.part = 'clinical' \
                 GROUP BY a.patient_id, p.given_name, p.family_name \
                 HAVING MAX(a.created_at) > COALESCE((SELECT MAX(d.decided_at) FROM eligibility_decisions d \
                   WHERE d.patient_id = a.patient_id), 0) \
                 ORDER BY at")
                .bind(clinic.to_string()).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|(id, given, family, assessed_at)| {
                Ok(Waiting {
                    patient_id: parse_id(&id)?,
                    given,
                    family,
                    assessed_at,
                })
            })
            .collect()
    }

    /// A patient's decisions, newest first.
    pub async fn decisions(&self, patient: PatientId) -> Result<Vec<StoredDecision>> {
        let rows: Vec<Row> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{SELECT} WHERE d.patient_id = $1 ORDER BY d.version DESC"))
                .bind(patient.to_string()).fetch_all(p).await?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Signs off a version once; a version already signed off, or superseded
    /// by a newer one, is a conflict.
    pub async fn sign_off_decision(
        &self,
        patient: PatientId,
        version: i64,
        by: UserId,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE eligibility_decisions SET signed_off_by = $3, signed_off_at = $4 \
                 WHERE patient_id = $1 AND version = $2 AND signed_off_by IS NULL \
                 AND version = (SELECT MAX(version) FROM eligibility_decisions WHERE patient_id = $1)")
                .bind(patient.to_string()).bind(version).bind(by.to_string()).bind(self.now())
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::Conflict(
                    "only the latest decision can be signed off, once".into()).into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }
}
