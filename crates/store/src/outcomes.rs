//! What a clinic's outcome report counts: each course that started in a
//! period (a patient's first dose at the clinic) and the patient's scores
//! on the instruments counted. Two queries whatever the number of patients.

use domain::ids::ClinicId;

use crate::{on_pool, placeholders, Result, Store};

/// A course that started in the period, and the patient's scores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Course {
    pub patient_id: String,
    pub clinic_id: String,
    /// The first dose (start of the infusion, or the dose given).
    pub first_dose: i64,
    /// The route of the visit it was given in.
    pub route: String,
    /// The protocol and version the visit ran under.
    pub protocol_id: String,
    pub protocol_version: i64,
    /// (instrument, total, submitted at), oldest first.
    pub scores: Vec<(String, i32, i64)>,
}

impl Store {
    /// Courses whose first dose at these clinics fell in `[from, to)`, with
    /// their scores on `instruments`.
    pub async fn outcome_courses(
        &self,
        clinics: &[ClinicId],
        from: i64,
        to: i64,
        instruments: &[&str],
    ) -> Result<Vec<Course>> {
        if clinics.is_empty() || instruments.is_empty() {
            return Ok(vec![]);
        }
        let k = placeholders(3, clinics.len());
        let firsts_sql = format!(
            "SELECT f.patient_id, f.clinic_id, f.first_dose, MIN(e.route), MIN(e.protocol_id), \
             MIN(e.protocol_version) FROM \
             (SELECT e.patient_id, e.clinic_id, MIN(a.at) AS first_dose FROM encounters e \
              JOIN administration_events a ON a.encounter_id = e.id \
              WHERE e.clinic_id IN ({k}) AND a.kind IN ('start', 'given') \
              GROUP BY e.patient_id, e.clinic_id) f \
             JOIN encounters e ON e.patient_id = f.patient_id AND e.clinic_id = f.clinic_id \
             JOIN administration_events a ON a.encounter_id = e.id AND a.at = f.first_dose \
             WHERE f.first_dose >= $1 AND f.first_dose < $2 \
             GROUP BY f.patient_id, f.clinic_id, f.first_dose ORDER BY f.first_dose, f.patient_id"
        );
        type First = (String, String, i64, String, String, i64);
        let firsts: Vec<First> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&firsts_sql).bind(from).bind(to);
            for c in clinics {
                q = q.bind(c.to_string());
            }
            q.fetch_all(p).await?
        });
        if firsts.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<&str> = firsts.iter().map(|f| f.0.as_str()).collect();
        let mut out = Vec::with_capacity(firsts.len());
        // Scores in chunks, so a large clinic stays under the bind limits.
        let mut scores: Vec<(String, String, i64, i64)> = vec![];
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT patient_id, instrument_id, total, submitted_at FROM questionnaire_responses \
                 WHERE total IS NOT NULL AND patient_id IN ({}) AND instrument_id IN ({}) \
                 ORDER BY submitted_at, id",
                placeholders(1, chunk.len()),
                placeholders(1 + chunk.len(), instruments.len())
            );
            let rows: Vec<(String, String, i64, i64)> = on_pool!(self.read(), p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                for i in instruments {
                    q = q.bind(*i);
                }
                q.fetch_all(p).await?
            });
            scores.extend(rows);
        }
        let mut by_patient: std::collections::HashMap<&str, Vec<(String, i32, i64)>> =
            std::collections::HashMap::new();
        for (pid, inst, total, at) in &scores {
            by_patient
                .entry(pid.as_str())
                .or_default()
                .push((inst.clone(), *total as i32, *at));
        }
        for (pid, clinic, first_dose, route, protocol_id, protocol_version) in firsts {
            let scores = by_patient.remove(pid.as_str()).unwrap_or_default();
            out.push(Course {
                patient_id: pid,
                clinic_id: clinic,
                first_dose,
                route,
                protocol_id,
                protocol_version,
                scores,
            });
        }
        Ok(out)
    }
}
