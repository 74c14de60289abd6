//! Intentions: what a patient means to hold in mind during a dosing
//! session, written by them before it, on the clinic's tablet at check-in
//! (kept with the visit's encounter) or in the portal ahead of a booked
//! visit (kept with the appointment). Written once each; the newest for a
//! visit is the one shown.

use domain::ids::{ClinicId, PatientId};

use crate::audit::NewAuditEvent;
use crate::{append_in_tx, on_pool, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Intention {
    pub id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub encounter_id: Option<String>,
    pub body: String,
    /// `tablet` or `portal`.
    pub source: String,
    pub written_at: i64,
}

pub struct NewIntention<'a> {
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub appointment_id: Option<&'a str>,
    pub encounter_id: Option<&'a str>,
    pub body: &'a str,
    pub source: &'a str,
}

const COLUMNS: &str = "id, patient_id, appointment_id, encounter_id, body, source, written_at";

impl Store {
    /// Keeps an intention with its audit record; returns its id.
    pub async fn insert_intention(
        &self,
        i: &NewIntention<'_>,
        audit: NewAuditEvent,
    ) -> Result<String> {
        let id = uuid::Uuid::now_v7().to_string();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO intentions (id, clinic_id, patient_id, appointment_id, encounter_id, body, source, written_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&id).bind(i.clinic.to_string()).bind(i.patient.to_string()).bind(i.appointment_id)
                .bind(i.encounter_id).bind(i.body).bind(i.source).bind(self.now())
                .execute(&mut *tx).await?;
            let mut audit = audit;
            audit.object_id = Some(id.clone());
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// The newest intention written for a visit: at its check-in (the
    /// encounter) or ahead of it (its appointment).
    pub async fn intention_for(
        &self,
        encounter: Option<&str>,
        appointment: Option<&str>,
    ) -> Result<Option<Intention>> {
        if encounter.is_none() && appointment.is_none() {
            return Ok(None);
        }
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM intentions \
                 WHERE (encounter_id IS NOT NULL AND encounter_id = $1) \
                 OR (appointment_id IS NOT NULL AND appointment_id = $2) \
                 ORDER BY written_at DESC, id DESC LIMIT 1"))
                .bind(encounter).bind(appointment).fetch_optional(p).await?
        }))
    }

    /// A patient's intentions, newest first.
    pub async fn patient_intentions(&self, patient: PatientId) -> Result<Vec<Intention>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM intentions WHERE patient_id = $1 \
                 ORDER BY written_at DESC, id DESC"))
                .bind(patient.to_string()).fetch_all(p).await?
        }))
    }
}
