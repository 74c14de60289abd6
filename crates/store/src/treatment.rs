//! The treatment day's record: encounters opened at check-in, checklist
//! saves, the dose order and its second check, the administration timeline,
//! readings (idempotent by source key, stored in multi-row statements so a
//! gateway streaming every chair at 1 Hz is cheap), alerts and their
//! responses, medicines, adverse events, recovery scores, discharge, and the
//! signed note with addenda. Every write commits with its audit record;
//! sequence numbers and unique keys refuse a second writer of the same step.

use domain::ids::{ClinicId, PatientId, UserId};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::{append_in_tx, is_unique_violation, on_pool, placeholders, Result, Store, StoreError};

fn conflict(m: &str) -> StoreError {
    DomainError::Conflict(m.into()).into()
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Encounter {
    pub id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub given_name: String,
    pub family_name: String,
    pub appointment_id: Option<String>,
    pub resource_id: Option<String>,
    pub chair: Option<String>,
    pub plan_id: String,
    pub plan_version: i64,
    pub protocol_id: String,
    pub protocol_version: i64,
    pub route: String,
    pub status: String,
    pub opened_by: String,
    pub opened_at: i64,
    pub discharged_by: Option<String>,
    pub discharged_at: Option<i64>,
    pub discharge_note: Option<String>,
    /// When the check-in was entered (it may say the patient arrived earlier).
    pub recorded_at: Option<i64>,
    /// Why the visit ended without a dose, when it did.
    pub no_dose_reason: Option<String>,
    /// Imported as a past record (a paper flowsheet): history, never a
    /// visit a dose can be given in.
    pub historical: bool,
    /// A second person's attestation that times entered afterwards are
    /// those of a paper record (who, when, what).
    pub attested_by: Option<String>,
    pub attested_at: Option<i64>,
    pub attestation: Option<String>,
}

/// The columns of an [`Encounter`] and the tables they come from, apart so
/// that a query can add columns of its own between them.
macro_rules! encounter_columns {
    () => {
        "SELECT e.id, e.clinic_id, e.patient_id, p.given_name, p.family_name, \
         e.appointment_id, e.resource_id, r.name AS chair, e.plan_id, e.plan_version, \
         e.protocol_id, e.protocol_version, e.route, e.status, o.username AS opened_by, \
         e.opened_at, d.username AS discharged_by, e.discharged_at, e.discharge_note, \
         e.recorded_at, e.no_dose_reason, e.historical, t.username AS attested_by, e.attested_at, \
         e.attestation"
    };
}
macro_rules! encounter_from {
    () => {
        " FROM encounters e JOIN patients p ON p.id = e.patient_id \
         JOIN users o ON o.id = e.opened_by LEFT JOIN users d ON d.id = e.discharged_by \
         LEFT JOIN users t ON t.id = e.attested_by LEFT JOIN resources r ON r.id = e.resource_id"
    };
}
const ENCOUNTER_SELECT: &str = concat!(encounter_columns!(), encounter_from!());

pub struct NewEncounter {
    pub id: String,
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub appointment_id: Option<String>,
    pub resource_id: Option<String>,
    pub plan_id: String,
    pub plan_version: i64,
    pub protocol_id: String,
    pub protocol_version: i64,
    pub route: String,
    pub by: UserId,
    /// When the patient was checked in (now, or a little earlier when the
    /// nurse records it afterwards).
    pub opened_at: i64,
    /// A visit nobody booked becomes one, written with the encounter
    /// (`appointment_id` names it): checked in, on the chair, from
    /// `opened_at` for the type's length. It holds no slot claims: the chair
    /// is taken now, whatever was planned for it.
    pub walk_in: Option<WalkIn>,
}

/// The visit type a walk-in is recorded as.
pub struct WalkIn {
    pub type_code: String,
    pub type_name: String,
    pub ends_at: i64,
    /// The visit's phases placed from `opened_at` (a `VisitPlan`, as JSON).
    pub plan: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct ChecklistSave {
    pub version: i64,
    pub data: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct DoseOrder {
    pub id: String,
    pub maths: String,
    pub mg: f64,
    pub ordered_by: String,
    pub ordered_at: i64,
    pub second_check: bool,
    pub checked_by: Option<String>,
    pub checked_at: Option<i64>,
    pub vial_lot: Option<String>,
    pub vial_expires: Option<String>,
    /// The maths at the strength of the lot drawn (JSON), once drawn.
    pub prepared: Option<String>,
    pub prepared_at: Option<i64>,
    /// The pre-dose state when the order was written (JSON), for the note.
    pub pre_dose: Option<String>,
    pub voided_at: Option<i64>,
    pub voided_by: Option<String>,
    pub void_reason: Option<String>,
}

const ORDER_SELECT: &str =
    "SELECT d.id, d.maths, d.mg, o.username AS ordered_by, d.ordered_at, d.second_check, \
     c.username AS checked_by, d.checked_at, d.vial_lot, d.vial_expires, d.prepared, d.prepared_at, \
     d.pre_dose, d.voided_at, v.username AS voided_by, d.void_reason FROM dose_orders d \
     JOIN users o ON o.id = d.ordered_by LEFT JOIN users c ON c.id = d.checked_by \
     LEFT JOIN users v ON v.id = d.voided_by";

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AdminRow {
    pub seq: i64,
    pub kind: String,
    pub at: i64,
    pub rate_ml_h: Option<f64>,
    pub reason: Option<String>,
    pub recorded_by: String,
    /// When it was entered (`at` may say it happened earlier).
    pub recorded_at: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Observation {
    pub id: String,
    pub encounter_id: String,
    pub taken_at: i64,
    pub hr: Option<i64>,
    pub sbp: Option<i64>,
    pub dbp: Option<i64>,
    pub spo2: Option<i64>,
    pub rr: Option<i64>,
    pub temp_c: Option<f64>,
    pub moaas: Option<i64>,
    pub cadss6: Option<i64>,
    pub nausea: Option<i64>,
    pub distress: Option<i64>,
    /// Who typed it, or "device" for a monitor.
    pub source: String,
}

impl Observation {
    pub fn vitals(&self) -> domain::treatment::Vitals {
        domain::treatment::Vitals {
            hr: self.hr,
            sbp: self.sbp,
            dbp: self.dbp,
            spo2: self.spo2,
            rr: self.rr,
            temp_c: self.temp_c,
            moaas: self.moaas,
            cadss6: self.cadss6,
            nausea: self.nausea,
            distress: self.distress,
        }
    }
}

const OBS_SELECT: &str =
    "SELECT o.id, o.encounter_id, o.taken_at, o.hr, o.sbp, o.dbp, o.spo2, o.rr, \
     o.temp_c, o.moaas, o.cadss6, o.nausea, o.distress, COALESCE(u.username, 'device') AS source \
     FROM observations o LEFT JOIN users u ON u.id = o.recorded_by";

/// SQLite: one reading; a reading already stored returns no row.
const INSERT_ONE: &str =
    "INSERT INTO observations (id, encounter_id, source_key, taken_at, hr, sbp, dbp, spo2, rr, \
     temp_c, moaas, cadss6, nausea, distress, recorded_by, device_token_id, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
     ON CONFLICT (source_key) DO NOTHING RETURNING source_key";

/// PostgreSQL: a whole batch of readings in one statement, one array per
/// column, so a batch is one round trip and one parsed statement whatever
/// its size.
const INSERT_UNNEST_PG: &str =
    "INSERT INTO observations (id, encounter_id, source_key, taken_at, hr, sbp, dbp, spo2, rr, \
     temp_c, moaas, cadss6, nausea, distress, recorded_by, device_token_id, created_at) \
     SELECT o.*, $17 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
     $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::float8[], $11::int8[], $12::int8[], \
     $13::int8[], $14::int8[], $15::text[], $16::text[]) AS o \
     ON CONFLICT (source_key) DO NOTHING RETURNING id";

const INSERT_ALERT: &str =
    "INSERT INTO alerts (id, encounter_id, observation_id, parameter, severity, \
     message, raised_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Stores readings, their alerts and the audit records in one rusqlite
/// transaction: a prepared single-row INSERT per reading (rusqlite binds by
/// position, so no statement shaped to the batch is needed); a reading whose
/// key is stored already returns no row and is skipped with its alerts.
fn insert_observations_sqlite(
    c: &mut rusqlite::Connection,
    obs: &[NewObservation],
    audit: &[NewAuditEvent],
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    use rusqlite::params;
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut stored = Vec::with_capacity(obs.len());
    {
        let mut insert = tx.prepare_cached(INSERT_ONE)?;
        let mut alert = tx.prepare_cached(INSERT_ALERT)?;
        for o in obs {
            let v = &o.v;
            let fresh = insert
                .query(params![
                    o.id,
                    o.encounter_id,
                    o.source_key,
                    o.taken_at,
                    v.hr,
                    v.sbp,
                    v.dbp,
                    v.spo2,
                    v.rr,
                    v.temp_c,
                    v.moaas,
                    v.cadss6,
                    v.nausea,
                    v.distress,
                    o.recorded_by.map(|u| u.to_string()),
                    o.device_token_id,
                    now
                ])?
                .next()?
                .is_some();
            if !fresh {
                continue;
            }
            for a in &o.alerts {
                alert.execute(params![new_id(), o.encounter_id, o.id, a.0, a.1, a.2, now])?;
            }
            stored.push(o.source_key.clone());
        }
    }
    crate::audit::sqlite_writer::append(&tx, audit)?;
    tx.commit()?;
    Ok(stored)
}

/// A reading to store; `source_key` makes a resend a no-op.
pub struct NewObservation {
    pub id: String,
    pub encounter_id: String,
    pub source_key: String,
    pub taken_at: i64,
    pub v: domain::treatment::Vitals,
    pub recorded_by: Option<UserId>,
    pub device_token_id: Option<String>,
    /// Alerts the reading raises: (parameter, severity, message).
    pub alerts: Vec<(String, &'static str, String)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Alert {
    pub id: String,
    pub encounter_id: String,
    pub observation_id: String,
    pub parameter: String,
    pub severity: String,
    pub message: String,
    pub raised_at: i64,
    pub ack_by: Option<String>,
    pub ack_at: Option<i64>,
    pub response: Option<String>,
    pub note: Option<String>,
}

const ALERT_SELECT: &str =
    "SELECT a.id, a.encounter_id, a.observation_id, a.parameter, a.severity, \
     a.message, a.raised_at, u.username AS ack_by, a.ack_at, a.response, a.note \
     FROM alerts a LEFT JOIN users u ON u.id = a.ack_by";

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct MedicationRow {
    pub id: String,
    pub name: String,
    pub dose: String,
    pub route: String,
    pub reason: String,
    pub given_at: i64,
    pub given_by: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct AdverseEventRow {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub serious: bool,
    pub description: String,
    pub action: String,
    pub outcome: String,
    pub follow_up: bool,
    pub recorded_by: String,
    pub recorded_at: i64,
}

impl AdverseEventRow {
    /// "Raised blood pressure (moderate): ... Action: ... Outcome: ...", for the note and the chair view.
    pub fn line(&self) -> String {
        let label = domain::treatment::ADVERSE_EVENTS
            .iter()
            .find(|x| x.0 == self.kind)
            .map(|x| x.1)
            .unwrap_or("Other");
        format!(
            "{label} ({}{}): {} Action: {}. Outcome: {}.{}",
            self.severity,
            if self.serious { ", serious" } else { "" },
            self.description,
            self.action,
            self.outcome,
            if self.follow_up { " Follow up." } else { "" }
        )
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RecoveryScore {
    pub aldrete: String,
    pub total: i64,
    pub scored_by: String,
    pub scored_at: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct SignedText {
    pub id: String,
    pub body: String,
    pub sha256: String,
    pub signed_by: String,
    pub signed_at: i64,
}

/// Everything recorded in one encounter, read together.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Record {
    pub encounter: Encounter,
    pub checklist: Option<ChecklistSave>,
    /// The order that stands (at most one).
    pub order: Option<DoseOrder>,
    /// Orders voided before the dose (a weight changed, the prescriber
    /// withdrew it), oldest first.
    pub voided_orders: Vec<DoseOrder>,
    pub admin: Vec<AdminRow>,
    pub observations: Vec<Observation>,
    pub alerts: Vec<Alert>,
    pub medications: Vec<MedicationRow>,
    pub adverse_events: Vec<AdverseEventRow>,
    pub recovery: Option<RecoveryScore>,
    pub note: Option<SignedText>,
    pub addenda: Vec<SignedText>,
}

/// Voids the visit's standing order inside an open transaction, if there is
/// one; evaluates to whether one was.
macro_rules! void_order {
    ($tx:expr, $encounter:expr, $by:expr, $now:expr, $reason:expr) => {
        sqlx::query(
            "UPDATE dose_orders SET voided_at = $2, voided_by = $3, void_reason = $4 \
             WHERE encounter_id = $1 AND voided_at IS NULL",
        )
        .bind($encounter)
        .bind($now)
        .bind($by)
        .bind($reason)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            > 0
    };
}

/// What a single step writes besides its audit record.
pub enum Step<'a> {
    /// A checklist save; `void` voids the standing order with this reason
    /// in the same transaction (a new weight).
    Checklist {
        data: &'a str,
        void: Option<&'a str>,
    },
    Order {
        id: &'a str,
        maths: &'a str,
        mg: f64,
        second_check: bool,
        pre_dose: &'a str,
    },
    /// The second person's check of the standing order against the draw,
    /// with the maths at the drawn lot's strength.
    Check {
        vial_lot: &'a str,
        vial_expires: &'a str,
        /// `None` for sprays and troches, which are counted.
        prepared: Option<&'a str>,
    },
    /// The maths at the drawn lot's strength, for a protocol without a
    /// second check.
    Prepare {
        prepared: &'a str,
    },
    /// The prescriber withdraws the standing order before the dose.
    Void {
        reason: &'a str,
    },
    /// The visit ends without a dose: the standing order (if any) is voided.
    EndWithoutDose {
        reason: &'a str,
    },
    /// A second person attests that times entered afterwards are those of a
    /// paper record.
    Attest {
        note: &'a str,
    },
    Admin {
        seq: i64,
        kind: &'a str,
        at: i64,
        rate_ml_h: Option<f64>,
        reason: Option<&'a str>,
    },
    Ack {
        alert_id: &'a str,
        response: &'a str,
        note: &'a str,
    },
    Medication {
        m: &'a domain::treatment::MedicationGiven,
        at: i64,
    },
    Adverse {
        patient: &'a str,
        e: &'a domain::treatment::AdverseEvent,
    },
    Recovery {
        aldrete: &'a str,
        total: i64,
    },
    Discharge {
        note: &'a str,
        /// The e-mail to the patient, committed with the discharge.
        jobs: &'a [crate::outbox::NewJob],
    },
    Note {
        body: &'a str,
        sha256: &'a str,
    },
    Addendum {
        note_id: &'a str,
        body: &'a str,
        sha256: &'a str,
    },
}

impl Store {
    /// Opens an encounter. One open encounter per patient and per chair, and
    /// one per appointment.
    pub async fn open_encounter(&self, e: &NewEncounter, audit: NewAuditEvent) -> Result<()> {
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            let (busy,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM encounters WHERE status = 'open' AND (patient_id = $1 OR resource_id = $2)")
                .bind(e.patient.to_string()).bind(&e.resource_id).fetch_one(&mut *tx).await?;
            if busy > 0 {
                return Err(conflict("the patient or the chair already has an open visit; discharge it first"));
            }
            if let (Some(id), Some(w)) = (&e.appointment_id, &e.walk_in) {
                sqlx::query("INSERT INTO appointments (id, clinic_id, patient_id, type_code, type_name, starts_at, ends_at, status, \
                     resource_id, plan, created_at, updated_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'checked_in', $8, $9, $10, $10, $11)")
                    .bind(id).bind(e.clinic.to_string()).bind(e.patient.to_string()).bind(&w.type_code)
                    .bind(&w.type_name).bind(e.opened_at).bind(w.ends_at).bind(&e.resource_id)
                    .bind(&w.plan).bind(self.now()).bind(e.by.to_string())
                    .execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO encounters (id, clinic_id, patient_id, appointment_id, resource_id, plan_id, \
                 plan_version, protocol_id, protocol_version, route, status, opened_by, opened_at, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $12, $13)")
                .bind(&e.id).bind(e.clinic.to_string()).bind(e.patient.to_string()).bind(&e.appointment_id)
                .bind(&e.resource_id).bind(&e.plan_id).bind(e.plan_version).bind(&e.protocol_id)
                .bind(e.protocol_version).bind(&e.route).bind(e.by.to_string()).bind(e.opened_at).bind(self.now())
                .execute(&mut *tx).await?;
            if let Some(a) = &e.appointment_id {
                sqlx::query("UPDATE appointments SET status = 'checked_in', updated_at = $2 WHERE id = $1 AND status = 'booked'")
                    .bind(a).bind(self.now()).execute(&mut *tx).await?;
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(StoreError::Db(e)) if is_unique_violation(&e, "appointment") => {
                Err(conflict("this visit is already checked in"))
            }
            other => other,
        }
    }

    /// A patient's doses: when the last one was given (started), and how
    /// many were given under `plan` (any version), visits imported as
    /// history included.
    pub async fn dose_history(&self, patient: PatientId, plan: &str) -> Result<(Option<i64>, i64)> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(
                "SELECT MAX(a.at), COUNT(DISTINCT CASE WHEN e.plan_id = $2 THEN e.id END) \
                 FROM encounters e JOIN administration_events a ON a.encounter_id = e.id \
                 WHERE e.patient_id = $1 AND a.kind IN ('start', 'given')")
                .bind(patient.to_string()).bind(plan).fetch_one(p).await?
        }))
    }

    pub async fn encounter(&self, id: &str) -> Result<Option<Encounter>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{ENCOUNTER_SELECT} WHERE e.id = $1")).bind(id).fetch_optional(p).await?
        }))
    }

    /// A clinic's encounters still open or opened since `since`, by chair.
    pub async fn floor(&self, clinic: ClinicId, since: i64) -> Result<Vec<Encounter>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{ENCOUNTER_SELECT} WHERE e.clinic_id = $1 AND (e.status = 'open' OR e.opened_at >= $2) \
                 ORDER BY r.name, e.opened_at"))
                .bind(clinic.to_string()).bind(since).fetch_all(p).await?
        }))
    }

    /// A clinic's open visits without a standing dose order: a prescriber
    /// has an order to write (imported paper records are never open).
    pub async fn orders_to_write(&self, clinic: ClinicId) -> Result<Vec<Encounter>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{ENCOUNTER_SELECT} WHERE e.clinic_id = $1 AND e.status = 'open' \
                 AND NOT EXISTS (SELECT 1 FROM dose_orders x WHERE x.encounter_id = e.id AND x.voided_at IS NULL) \
                 ORDER BY e.opened_at"))
                .bind(clinic.to_string()).fetch_all(p).await?
        }))
    }

    /// A clinic's visits ended since `since` whose session note nobody has
    /// signed yet (imported paper records carry no note to sign).
    pub async fn notes_to_sign(&self, clinic: ClinicId, since: i64) -> Result<Vec<Encounter>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{ENCOUNTER_SELECT} WHERE e.clinic_id = $1 AND e.status = 'discharged' \
                 AND e.historical = FALSE AND e.discharged_at >= $2 \
                 AND NOT EXISTS (SELECT 1 FROM session_notes n WHERE n.encounter_id = e.id) \
                 ORDER BY e.discharged_at"))
                .bind(clinic.to_string()).bind(since).fetch_all(p).await?
        }))
    }

    /// A patient's encounters, newest first.
    pub async fn patient_encounters(&self, patient: PatientId) -> Result<Vec<Encounter>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{ENCOUNTER_SELECT} WHERE e.patient_id = $1 ORDER BY e.opened_at DESC"))
                .bind(patient.to_string()).fetch_all(p).await?
        }))
    }

    /// Everything recorded in an encounter.
    pub async fn record(&self, id: &str) -> Result<Option<Record>> {
        let Some(encounter) = self.encounter(id).await? else {
            return Ok(None);
        };
        let r = on_pool!(self.read(), p => {
            let checklist: Option<ChecklistSave> = sqlx::query_as(
                "SELECT c.version, c.data, u.username AS recorded_by, c.recorded_at FROM encounter_checklists c \
                 JOIN users u ON u.id = c.recorded_by WHERE c.encounter_id = $1 ORDER BY c.version DESC LIMIT 1")
                .bind(id).fetch_optional(p).await?;
            let mut orders: Vec<DoseOrder> = sqlx::query_as(&format!(
                "{ORDER_SELECT} WHERE d.encounter_id = $1 ORDER BY d.ordered_at, d.id"))
                .bind(id).fetch_all(p).await?;
            let standing = orders.iter().position(|o| o.voided_at.is_none());
            let order = standing.map(|i| orders.remove(i));
            let voided_orders = orders;
            let admin: Vec<AdminRow> = sqlx::query_as(
                "SELECT a.seq, a.kind, a.at, a.rate_ml_h, a.reason, u.username AS recorded_by, a.recorded_at FROM administration_events a \
                 JOIN users u ON u.id = a.recorded_by WHERE a.encounter_id = $1 ORDER BY a.seq")
                .bind(id).fetch_all(p).await?;
            let observations: Vec<Observation> = sqlx::query_as(&format!(
                "{OBS_SELECT} WHERE o.encounter_id = $1 ORDER BY o.taken_at, o.id"))
                .bind(id).fetch_all(p).await?;
            let alerts: Vec<Alert> = sqlx::query_as(&format!(
                "{ALERT_SELECT} WHERE a.encounter_id = $1 ORDER BY a.raised_at, a.id"))
                .bind(id).fetch_all(p).await?;
            let medications: Vec<MedicationRow> = sqlx::query_as(
                "SELECT m.id, m.name, m.dose, m.route, m.reason, m.given_at, u.username AS given_by \
                 FROM encounter_medications m JOIN users u ON u.id = m.given_by WHERE m.encounter_id = $1 ORDER BY m.given_at")
                .bind(id).fetch_all(p).await?;
            let adverse_events: Vec<AdverseEventRow> = sqlx::query_as(
                "SELECT a.id, a.kind, a.severity, a.serious, a.description, a.action, a.outcome, a.follow_up, \
                 u.username AS recorded_by, a.recorded_at FROM adverse_events a JOIN users u ON u.id = a.recorded_by \
                 WHERE a.encounter_id = $1 ORDER BY a.recorded_at")
                .bind(id).fetch_all(p).await?;
            let recovery: Option<RecoveryScore> = sqlx::query_as(
                "SELECT r.aldrete, r.total, u.username AS scored_by, r.scored_at FROM recovery_scores r \
                 JOIN users u ON u.id = r.scored_by WHERE r.encounter_id = $1 ORDER BY r.scored_at DESC LIMIT 1")
                .bind(id).fetch_optional(p).await?;
            let note: Option<SignedText> = sqlx::query_as(
                "SELECT n.id, n.body, n.sha256, u.username AS signed_by, n.signed_at FROM session_notes n \
                 JOIN users u ON u.id = n.signed_by WHERE n.encounter_id = $1")
                .bind(id).fetch_optional(p).await?;
            let addenda: Vec<SignedText> = match &note {
                None => Vec::new(),
                Some(n) => sqlx::query_as(
                    "SELECT a.id, a.body, a.sha256, u.username AS signed_by, a.signed_at FROM note_addenda a \
                     JOIN users u ON u.id = a.signed_by WHERE a.note_id = $1 ORDER BY a.signed_at")
                    .bind(&n.id).fetch_all(p).await?,
            };
            Record { encounter, checklist, order, voided_orders, admin, observations, alerts, medications, adverse_events, recovery, note, addenda }
        });
        Ok(Some(r))
    }

    /// For the floor board: each encounter's readings since `since`, oldest
    /// first, and its open alerts.
    pub async fn floor_readings(
        &self,
        ids: &[String],
        since: i64,
    ) -> Result<(
        Vec<Observation>,
        Vec<Alert>,
        Vec<(String, i64, String, Option<f64>)>,
    )> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        let obs_sql = format!(
            "{OBS_SELECT} WHERE o.taken_at >= $1 AND o.encounter_id IN ({}) ORDER BY o.taken_at",
            placeholders(2, ids.len())
        );
        let alert_sql = format!(
            "{ALERT_SELECT} WHERE a.ack_at IS NULL AND a.encounter_id IN ({})",
            placeholders(1, ids.len())
        );
        let admin_sql = format!(
            "SELECT encounter_id, at, kind, rate_ml_h FROM administration_events WHERE encounter_id IN ({}) ORDER BY encounter_id, seq",
            placeholders(1, ids.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&obs_sql).bind(since);
            for i in ids { q = q.bind(i); }
            let obs: Vec<Observation> = q.fetch_all(p).await?;
            let mut q = sqlx::query_as(&alert_sql);
            for i in ids { q = q.bind(i); }
            let alerts: Vec<Alert> = q.fetch_all(p).await?;
            let mut q = sqlx::query_as(&admin_sql);
            for i in ids { q = q.bind(i); }
            let admin: Vec<(String, i64, String, Option<f64>)> = q.fetch_all(p).await?;
            (obs, alerts, admin)
        }))
    }

    /// The open visits in these chairs, whole rows (monitor ingestion).
    pub async fn open_encounters_by_chair(&self, chairs: &[String]) -> Result<Vec<Encounter>> {
        if chairs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{ENCOUNTER_SELECT} WHERE e.status = 'open' AND e.resource_id IN ({})",
            placeholders(1, chairs.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in chairs {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        }))
    }

    /// What checking a reading needs, per visit: whether the dose has
    /// started, and the baseline (the readings before it, merged). Two
    /// queries for any number of visits.
    pub async fn monitoring_context(
        &self,
        encounters: &[String],
    ) -> Result<std::collections::HashMap<String, (bool, Option<domain::treatment::Vitals>)>> {
        if encounters.is_empty() {
            return Ok(Default::default());
        }
        let started_sql = format!(
            "SELECT e.id, e.opened_at, (SELECT MIN(a.at) FROM administration_events a WHERE a.encounter_id = e.id) \
             FROM encounters e WHERE e.id IN ({})",
            placeholders(1, encounters.len())
        );
        let visits: Vec<(String, i64, Option<i64>)> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as::<_, (String, i64, Option<i64>)>(&started_sql);
            for e in encounters {
                q = q.bind(e);
            }
            q.fetch_all(p).await?
        });
        self.baselines(&visits).await
    }

    /// The open visits in these chairs of these clinics (monitor
    /// ingestion), each with what checking its readings needs, as
    /// [`Store::monitoring_context`] gives it: two queries for any number of
    /// chairs, the dose's start read with the visit.
    pub async fn chair_monitoring(
        &self,
        chairs: &[String],
        clinics: &[String],
    ) -> Result<Vec<(Encounter, bool, Option<domain::treatment::Vitals>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            e: Encounter,
            started_at: Option<i64>,
        }
        if chairs.is_empty() || clinics.is_empty() {
            return Ok(Vec::new());
        }
        const SELECT: &str = concat!(
            encounter_columns!(),
            ", (SELECT MIN(a.at) FROM administration_events a WHERE a.encounter_id = e.id) \
             AS started_at",
            encounter_from!()
        );
        let sql = format!(
            "{SELECT} WHERE e.status = 'open' AND e.resource_id IN ({}) AND e.clinic_id IN ({})",
            placeholders(1, chairs.len()),
            placeholders(chairs.len() + 1, clinics.len())
        );
        let rows: Vec<Row> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in chairs.iter().chain(clinics) {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        });
        let visits: Vec<(String, i64, Option<i64>)> = rows
            .iter()
            .map(|r| (r.e.id.clone(), r.e.opened_at, r.started_at))
            .collect();
        let mut context = self.baselines(&visits).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (started, baseline) = context.remove(&r.e.id).unwrap_or_default();
                (r.e, started, baseline)
            })
            .collect())
    }

    /// Per visit (id, check-in, when its dose started): whether it started,
    /// and the readings from check-in to the start merged into a baseline
    /// (a reading from before the patient sat down is never theirs). One
    /// query: a range on the (encounter, time) index per visit, however many
    /// readings follow.
    async fn baselines(
        &self,
        visits: &[(String, i64, Option<i64>)],
    ) -> Result<std::collections::HashMap<String, (bool, Option<domain::treatment::Vitals>)>> {
        let mut out: std::collections::HashMap<String, (bool, Option<domain::treatment::Vitals>)> =
            visits
                .iter()
                .map(|(e, _, at)| (e.clone(), (at.is_some(), None)))
                .collect();
        if visits.is_empty() {
            return Ok(out);
        }
        let base_sql = format!(
            "{OBS_SELECT} WHERE {} ORDER BY o.encounter_id, o.taken_at",
            (0..visits.len())
                .map(|i| format!(
                    "(o.encounter_id = ${} AND o.taken_at >= ${} AND o.taken_at < ${})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                ))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        let rows: Vec<Observation> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&base_sql);
            for (e, opened, at) in visits {
                q = q.bind(e).bind(opened).bind(at.unwrap_or(i64::MAX));
            }
            q.fetch_all(p).await?
        });
        for o in &rows {
            if let Some(x) = out.get_mut(&o.encounter_id) {
                let v = o.vitals();
                x.1 = Some(match &x.1 {
                    Some(b) => b.merged_with(&v),
                    None => v,
                });
            }
        }
        Ok(out)
    }

    /// Stores readings (several encounters at once) with the alerts they
    /// raise and one audit record per encounter, in one transaction. A
    /// reading whose source key is already stored is skipped with its
    /// alerts. Returns the source keys stored.
    /// The readings are handed back with the keys.
    pub async fn insert_observations(
        &self,
        obs: Vec<NewObservation>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<(Vec<NewObservation>, Vec<String>)> {
        let now = self.now();
        // SQLite: one rusqlite transaction on a blocking thread. Through sqlx
        // every statement is a hand-off to its worker thread and back.
        if self.has_sqlite_bulk() {
            return self
                .on_sqlite_bulk(move |c| {
                    let stored = insert_observations_sqlite(c, &obs, &audit, now)?;
                    Ok((obs, stored))
                })
                .await;
        }
        let crate::Pool::Postgres(p) = self.write() else {
            return Err(StoreError::Db(sqlx::Error::Protocol(
                "SQLite readings go through the bulk connection".into(),
            )));
        };
        // One array per column, in the statement's order, the rows sorted by
        // source key: two groups written at once then wait for each other's
        // keys in one order, never in a cycle (a deadlock). The sort is
        // stable, so of a key sent twice the first copy is still stored.
        let mut sorted: Vec<&NewObservation> = obs.iter().collect();
        sorted.sort_by(|a, b| a.source_key.cmp(&b.source_key));
        fn col<'a, T>(rows: &[&'a NewObservation], f: impl Fn(&'a NewObservation) -> T) -> Vec<T> {
            rows.iter().map(|o| f(o)).collect()
        }
        let q = sqlx::query_as::<_, (String,)>(INSERT_UNNEST_PG)
            .bind(col(&sorted, |o| o.id.as_str()))
            .bind(col(&sorted, |o| o.encounter_id.as_str()))
            .bind(col(&sorted, |o| o.source_key.as_str()))
            .bind(col(&sorted, |o| o.taken_at))
            .bind(col(&sorted, |o| o.v.hr))
            .bind(col(&sorted, |o| o.v.sbp))
            .bind(col(&sorted, |o| o.v.dbp))
            .bind(col(&sorted, |o| o.v.spo2))
            .bind(col(&sorted, |o| o.v.rr))
            .bind(col(&sorted, |o| o.v.temp_c))
            .bind(col(&sorted, |o| o.v.moaas))
            .bind(col(&sorted, |o| o.v.cadss6))
            .bind(col(&sorted, |o| o.v.nausea))
            .bind(col(&sorted, |o| o.v.distress))
            .bind(col(&sorted, |o| o.recorded_by.map(|u| u.to_string())))
            .bind(col(&sorted, |o| o.device_token_id.as_deref()))
            .bind(now);
        let mut tx = p.begin().await?;
        // The rows stored (a reading already stored, or sent twice in the
        // batch, is stored once: its first copy).
        let ids: std::collections::HashSet<String> = q
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|k| k.0)
            .collect();
        let mut stored: Vec<String> = Vec::with_capacity(ids.len());
        for o in obs.iter().filter(|o| ids.contains(&o.id)) {
            for a in &o.alerts {
                sqlx::query(INSERT_ALERT)
                    .bind(new_id())
                    .bind(&o.encounter_id)
                    .bind(&o.id)
                    .bind(&a.0)
                    .bind(a.1)
                    .bind(&a.2)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            stored.push(o.source_key.clone());
        }
        append_in_tx!(tx, &audit, self.now())?;
        tx.commit().await?;
        Ok((obs, stored))
    }

    /// Writes one step of an encounter with its audit record. The encounter
    /// must still be open (a signed note and its addenda excepted).
    pub async fn encounter_step(
        &self,
        encounter: &str,
        by: UserId,
        step: Step<'_>,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let now = self.now();
        let by = by.to_string();
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            let status: Option<(String,)> = sqlx::query_as("SELECT status FROM encounters WHERE id = $1")
                .bind(encounter).fetch_optional(&mut *tx).await?;
            let open = match status {
                None => return Err(DomainError::NotFound.into()),
                Some((s,)) => s == "open",
            };
            if !open && !matches!(step, Step::Note { .. } | Step::Addendum { .. }) {
                return Err(conflict("the patient has been discharged; this visit is closed"));
            }
            match step {
                Step::Checklist { data, void } => {
                    let (started,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM administration_events WHERE encounter_id = $1")
                        .bind(encounter).fetch_one(&mut *tx).await?;
                    if started > 0 {
                        return Err(conflict("the dose has started; the checklist is closed"));
                    }
                    let (next,): (i64,) = sqlx::query_as(
                        "SELECT COALESCE(MAX(version), 0) + 1 FROM encounter_checklists WHERE encounter_id = $1")
                        .bind(encounter).fetch_one(&mut *tx).await?;
                    sqlx::query("INSERT INTO encounter_checklists (encounter_id, version, data, recorded_by, recorded_at) \
                         VALUES ($1, $2, $3, $4, $5)")
                        .bind(encounter).bind(next).bind(data).bind(&by).bind(now).execute(&mut *tx).await?;
                    if let Some(reason) = void {
                        let _voided = void_order!(tx, encounter, &by, now, reason);
                    }
                }
                Step::Order { id, maths, mg, second_check, pre_dose } => {
                    sqlx::query("INSERT INTO dose_orders (id, encounter_id, maths, mg, ordered_by, ordered_at, second_check, pre_dose) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                        .bind(id).bind(encounter).bind(maths).bind(mg).bind(&by).bind(now).bind(second_check).bind(pre_dose)
                        .execute(&mut *tx).await?;
                }
                Step::Check { vial_lot, vial_expires, prepared } => {
                    let n = sqlx::query("UPDATE dose_orders SET checked_by = $2, checked_at = $3, vial_lot = $4, vial_expires = $5, \
                         prepared = $6, prepared_at = $3 \
                         WHERE encounter_id = $1 AND voided_at IS NULL AND checked_by IS NULL AND ordered_by <> $2")
                        .bind(encounter).bind(&by).bind(now).bind(vial_lot).bind(vial_expires).bind(prepared)
                        .execute(&mut *tx).await?.rows_affected();
                    if n == 0 {
                        return Err(conflict("the order is already checked, or you wrote it: a second person checks"));
                    }
                }
                Step::Prepare { prepared } => {
                    let n = sqlx::query("UPDATE dose_orders SET prepared = $2, prepared_at = $3 \
                         WHERE encounter_id = $1 AND voided_at IS NULL AND prepared IS NULL")
                        .bind(encounter).bind(prepared).bind(now)
                        .execute(&mut *tx).await?.rows_affected();
                    if n == 0 {
                        return Err(conflict("the dose's volume is already worked out from its draw"));
                    }
                }
                Step::Void { reason } => {
                    let (started,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM administration_events WHERE encounter_id = $1")
                        .bind(encounter).fetch_one(&mut *tx).await?;
                    if started > 0 {
                        return Err(conflict("the dose has started: it is stopped, not voided"));
                    }
                    if !void_order!(tx, encounter, &by, now, reason) {
                        return Err(conflict("no dose is ordered for this visit"));
                    }
                }
                Step::EndWithoutDose { reason } => {
                    let (started,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM administration_events WHERE encounter_id = $1")
                        .bind(encounter).fetch_one(&mut *tx).await?;
                    if started > 0 {
                        return Err(conflict("the dose was given: the visit ends with recovery and discharge"));
                    }
                    let _voided = void_order!(tx, encounter, &by, now, reason);
                    sqlx::query("UPDATE encounters SET status = 'discharged', discharged_by = $2, discharged_at = $3, \
                         no_dose_reason = $4 WHERE id = $1 AND status = 'open'")
                        .bind(encounter).bind(&by).bind(now).bind(reason).execute(&mut *tx).await?;
                    sqlx::query("UPDATE appointments SET status = 'completed', updated_at = $2 \
                         WHERE id = (SELECT appointment_id FROM encounters WHERE id = $1) AND status = 'checked_in'")
                        .bind(encounter).bind(now).execute(&mut *tx).await?;
                }
                Step::Attest { note } => {
                    let n = sqlx::query("UPDATE encounters SET attested_by = $2, attested_at = $3, attestation = $4 \
                         WHERE id = $1 AND attested_by IS NULL")
                        .bind(encounter).bind(&by).bind(now).bind(note)
                        .execute(&mut *tx).await?.rows_affected();
                    if n == 0 {
                        return Err(conflict("the paper record of this visit is already attested"));
                    }
                }
                Step::Admin { seq, kind, at, rate_ml_h, reason } => {
                    sqlx::query("INSERT INTO administration_events (encounter_id, seq, kind, at, rate_ml_h, reason, recorded_by, recorded_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                        .bind(encounter).bind(seq).bind(kind).bind(at).bind(rate_ml_h).bind(reason).bind(&by).bind(now)
                        .execute(&mut *tx).await?;
                }
                Step::Ack { alert_id, response, note } => {
                    let n = sqlx::query("UPDATE alerts SET ack_by = $3, ack_at = $4, response = $5, note = $6 \
                         WHERE id = $1 AND encounter_id = $2 AND ack_at IS NULL")
                        .bind(alert_id).bind(encounter).bind(&by).bind(now).bind(response).bind(note)
                        .execute(&mut *tx).await?.rows_affected();
                    if n == 0 {
                        return Err(conflict("this alert is already acknowledged"));
                    }
                }
                Step::Medication { m, at } => {
                    sqlx::query("INSERT INTO encounter_medications (id, encounter_id, name, dose, route, reason, given_at, given_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                        .bind(new_id()).bind(encounter).bind(m.name.trim()).bind(m.dose.trim()).bind(m.route.trim())
                        .bind(m.reason.trim()).bind(at).bind(&by).execute(&mut *tx).await?;
                }
                Step::Adverse { patient, e } => {
                    let severity = match e.severity {
                        domain::treatment::AeSeverity::Mild => "mild",
                        domain::treatment::AeSeverity::Moderate => "moderate",
                        domain::treatment::AeSeverity::Severe => "severe",
                    };
                    sqlx::query("INSERT INTO adverse_events (id, encounter_id, patient_id, kind, severity, serious, description, \
                         action, outcome, follow_up, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                        .bind(new_id()).bind(encounter).bind(patient).bind(&e.kind).bind(severity).bind(e.serious)
                        .bind(e.description.trim()).bind(e.action.trim()).bind(e.outcome.trim()).bind(e.follow_up)
                        .bind(&by).bind(now).execute(&mut *tx).await?;
                }
                Step::Recovery { aldrete, total } => {
                    sqlx::query("INSERT INTO recovery_scores (id, encounter_id, aldrete, total, scored_by, scored_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(new_id()).bind(encounter).bind(aldrete).bind(total).bind(&by).bind(now)
                        .execute(&mut *tx).await?;
                }
                Step::Discharge { note, jobs } => {
                    let (open_alerts,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM alerts WHERE encounter_id = $1 AND ack_at IS NULL")
                        .bind(encounter).fetch_one(&mut *tx).await?;
                    if open_alerts > 0 {
                        return Err(conflict("an alert is still open; acknowledge it first"));
                    }
                    sqlx::query("UPDATE encounters SET status = 'discharged', discharged_by = $2, discharged_at = $3, \
                         discharge_note = $4 WHERE id = $1 AND status = 'open'")
                        .bind(encounter).bind(&by).bind(now).bind(note).execute(&mut *tx).await?;
                    sqlx::query("UPDATE appointments SET status = 'completed', updated_at = $2 \
                         WHERE id = (SELECT appointment_id FROM encounters WHERE id = $1) AND status = 'checked_in'")
                        .bind(encounter).bind(now).execute(&mut *tx).await?;
                    crate::insert_jobs!(tx, jobs, self.now())?;
                }
                Step::Note { body, sha256 } => {
                    sqlx::query("INSERT INTO session_notes (id, encounter_id, body, sha256, signed_by, signed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(new_id()).bind(encounter).bind(body).bind(sha256).bind(&by).bind(now)
                        .execute(&mut *tx).await?;
                }
                Step::Addendum { note_id, body, sha256 } => {
                    sqlx::query("INSERT INTO note_addenda (id, note_id, body, sha256, signed_by, signed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(new_id()).bind(note_id).bind(body).bind(sha256).bind(&by).bind(now)
                        .execute(&mut *tx).await?;
                }
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(StoreError::Db(e)) if is_unique_violation(&e, "dose_orders") => {
                Err(conflict("a dose is already ordered for this visit"))
            }
            Err(StoreError::Db(e)) if is_unique_violation(&e, "session_notes") => Err(conflict(
                "already recorded for this visit (a signed note never changes: add an addendum)",
            )),
            Err(StoreError::Db(e))
                if is_unique_violation(&e, "administration_events")
                    || is_unique_violation(&e, "encounter_checklists")
                    || is_unique_violation(&e, "seq")
                    || is_unique_violation(&e, "version") =>
            {
                Err(conflict(
                    "someone else recorded a step at the same moment; reload and try again",
                ))
            }
            other => other,
        }
    }
}

/// A completed visit from the past, written whole by a loader (the demo's
/// history; an import of paper flowsheets): checked in, ordered and checked,
/// infused, discharged, each at its own time.
pub struct PastVisit<'a> {
    pub encounter: NewEncounter,
    pub order_id: &'a str,
    pub maths: &'a str,
    pub mg: f64,
    pub second_check: bool,
    pub ordered_by: UserId,
    pub checked_by: UserId,
    pub vial_lot: &'a str,
    pub vial_expires: &'a str,
    pub started_at: i64,
    pub stopped_at: i64,
    pub discharged_at: i64,
    pub discharge_note: &'a str,
    /// The booked visit it was: type code and name, start and end (written
    /// as completed).
    pub appointment: Option<(&'a str, &'a str, i64, i64)>,
}

impl Store {
    /// Writes a completed past visit in one transaction with its audit records.
    pub async fn backfill_visit(&self, v: &PastVisit<'_>, audit: Vec<NewAuditEvent>) -> Result<()> {
        let e = &v.encounter;
        let nurse = e.by.to_string();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            if let (Some(id), Some((code, name, start, end))) = (&e.appointment_id, v.appointment) {
                let plan = serde_json::json!({"type_code": code, "start": start, "end": end, "phases": [], "buffer_after_min": 0});
                sqlx::query("INSERT INTO appointments (id, clinic_id, patient_id, type_code, type_name, starts_at, ends_at, status, \
                     resource_id, plan, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'completed', $8, $9, $6, $7)")
                    .bind(id).bind(e.clinic.to_string()).bind(e.patient.to_string()).bind(code).bind(name)
                    .bind(start).bind(end).bind(&e.resource_id).bind(plan.to_string())
                    .execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO encounters (id, clinic_id, patient_id, appointment_id, resource_id, plan_id, \
                 plan_version, protocol_id, protocol_version, route, status, opened_by, opened_at, discharged_by, \
                 discharged_at, discharge_note, historical) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'discharged', $11, $12, $11, $13, $14, TRUE)")
                .bind(&e.id).bind(e.clinic.to_string()).bind(e.patient.to_string()).bind(&e.appointment_id)
                .bind(&e.resource_id).bind(&e.plan_id).bind(e.plan_version).bind(&e.protocol_id)
                .bind(e.protocol_version).bind(&e.route).bind(&nurse).bind(e.opened_at)
                .bind(v.discharged_at).bind(v.discharge_note)
                .execute(&mut *tx).await?;
            sqlx::query("INSERT INTO dose_orders (id, encounter_id, maths, mg, ordered_by, ordered_at, second_check, \
                 checked_by, checked_at, vial_lot, vial_expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(v.order_id).bind(&e.id).bind(v.maths).bind(v.mg).bind(v.ordered_by.to_string())
                .bind(e.opened_at + 600_000_000).bind(v.second_check).bind(v.checked_by.to_string())
                .bind(e.opened_at + 900_000_000).bind(v.vial_lot).bind(v.vial_expires)
                .execute(&mut *tx).await?;
            for (seq, kind, at) in [(1i64, "start", v.started_at), (2, "stop", v.stopped_at)] {
                sqlx::query("INSERT INTO administration_events (encounter_id, seq, kind, at, rate_ml_h, reason, recorded_by, recorded_at) \
                     VALUES ($1, $2, $3, $4, NULL, NULL, $5, $4)")
                    .bind(&e.id).bind(seq).bind(kind).bind(at).bind(&nurse)
                    .execute(&mut *tx).await?;
            }
            append_in_tx!(tx, &audit, self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }
}
