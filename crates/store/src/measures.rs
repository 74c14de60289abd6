//! Questionnaire responses, single-use questionnaire links, and the safety
//! tasks a risky answer opens. A response, the use of its link, its task and
//! its audit record are written in one transaction: a bad or replayed
//! submission leaves nothing behind.

use std::collections::BTreeMap;

use domain::ids::{AppointmentId, ClinicId, LeadId, LinkId, PatientId, ResponseId, TaskId, UserId};
use domain::instruments::{FlagHit, Scored};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::org::parse_id;
use crate::{append_in_tx, on_pool, Result, Store};

/// Where a response came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Public,
    Link,
    Staff,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Public => "public",
            Source::Link => "link",
            Source::Staff => "staff",
            Source::Api => "api",
        }
    }
}

/// A scored response to store.
#[derive(Debug, Clone)]
pub struct NewResponse<'a> {
    pub id: ResponseId,
    pub clinic: ClinicId,
    pub patient: Option<PatientId>,
    pub lead: Option<LeadId>,
    pub scored: &'a Scored,
    pub instrument_hash: &'a str,
    pub source: Source,
    pub link: Option<LinkId>,
    pub appointment: Option<AppointmentId>,
    pub entered_by: Option<UserId>,
    pub started_at: Option<i64>,
    pub submitted_at: i64,
}

/// A safety task opened with a response.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub title: String,
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Response {
    pub id: ResponseId,
    pub clinic_id: ClinicId,
    pub patient_id: Option<PatientId>,
    pub lead_id: Option<LeadId>,
    pub instrument_id: String,
    pub instrument_version: u32,
    pub instrument_hash: String,
    pub answers: BTreeMap<String, i32>,
    pub total: Option<i32>,
    pub band: Option<String>,
    pub band_level: Option<String>,
    pub subscales: BTreeMap<String, i32>,
    pub flags: Vec<FlagHit>,
    pub safety: bool,
    pub source: String,
    pub entered_by: Option<UserId>,
    pub started_at: Option<i64>,
    pub submitted_at: i64,
}

#[derive(sqlx::FromRow)]
struct ResponseRow {
    id: String,
    clinic_id: String,
    patient_id: Option<String>,
    lead_id: Option<String>,
    instrument_id: String,
    instrument_version: i64,
    instrument_hash: String,
    answers: String,
    total: Option<i64>,
    band: Option<String>,
    band_level: Option<String>,
    subscales: String,
    flags: String,
    safety: bool,
    source: String,
    entered_by: Option<String>,
    started_at: Option<i64>,
    submitted_at: i64,
}

const RESPONSE_COLUMNS: &str = "id, clinic_id, patient_id, lead_id, instrument_id, instrument_version, \
     instrument_hash, answers, total, band, band_level, subscales, flags, safety, source, entered_by, \
     started_at, submitted_at";

fn decode(msg: impl Into<String>) -> crate::StoreError {
    crate::StoreError::Db(sqlx::Error::Decode(msg.into().into()))
}

fn response_from(r: ResponseRow) -> Result<Response> {
    fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
        serde_json::from_str(s).map_err(|e| decode(e.to_string()))
    }
    Ok(Response {
        id: parse_id(&r.id)?,
        clinic_id: parse_id(&r.clinic_id)?,
        patient_id: r.patient_id.as_deref().map(parse_id).transpose()?,
        lead_id: r.lead_id.as_deref().map(parse_id).transpose()?,
        instrument_id: r.instrument_id,
        instrument_version: u32::try_from(r.instrument_version)
            .map_err(|_| decode("bad version"))?,
        instrument_hash: r.instrument_hash,
        answers: json(&r.answers)?,
        total: r.total.map(|t| t as i32),
        band: r.band,
        band_level: r.band_level,
        subscales: json(&r.subscales)?,
        flags: json(&r.flags)?,
        safety: r.safety,
        source: r.source,
        entered_by: r.entered_by.as_deref().map(parse_id).transpose()?,
        started_at: r.started_at,
        submitted_at: r.submitted_at,
    })
}

type DoseRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
);

type ScoreRow = (String, i64, Option<i64>, Option<String>, String, i64);

/// One score over time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScorePoint {
    pub instrument_id: String,
    pub instrument_version: u32,
    pub total: Option<i32>,
    pub band: Option<String>,
    /// Flags, for instruments without a total (the C-SSRS).
    pub flags: Vec<FlagHit>,
    pub submitted_at: i64,
}

/// A questionnaire link as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Link {
    pub id: LinkId,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub instrument_id: String,
    pub instrument_version: u32,
    pub reason: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

type LinkRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
);

fn link_from(r: LinkRow) -> Result<Link> {
    Ok(Link {
        id: parse_id(&r.0)?,
        clinic_id: parse_id(&r.1)?,
        patient_id: parse_id(&r.2)?,
        instrument_id: r.3,
        instrument_version: u32::try_from(r.4).map_err(|_| decode("bad version"))?,
        reason: r.5,
        created_at: r.6,
        expires_at: r.7,
        used_at: r.8,
    })
}

const LINK_COLUMNS: &str = "id, clinic_id, patient_id, instrument_id, instrument_version, reason, created_at, expires_at, used_at";

/// A new link: the hash of its token, and a rule key when a rule sent it
/// (so that a rule never sends the same questionnaire twice).
#[derive(Debug, Clone)]
pub struct NewLink {
    pub id: LinkId,
    pub clinic: ClinicId,
    pub patient: PatientId,
    pub instrument_id: String,
    pub instrument_version: u32,
    pub token_hash: String,
    pub reason: String,
    pub rule_key: Option<String>,
    pub expires_at: i64,
    pub created_by: Option<UserId>,
}

/// A task, with the name of whom it concerns for the staff queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Task {
    pub id: TaskId,
    pub clinic_id: ClinicId,
    pub patient_id: Option<PatientId>,
    pub lead_id: Option<LeadId>,
    pub subject_name: String,
    pub kind: String,
    pub title: String,
    pub response_id: Option<ResponseId>,
    pub status: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    pub close_note: Option<String>,
}

type TaskRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn task_from(r: TaskRow) -> Result<Task> {
    Ok(Task {
        id: parse_id(&r.0)?,
        clinic_id: parse_id(&r.1)?,
        patient_id: r.2.as_deref().map(parse_id).transpose()?,
        lead_id: r.3.as_deref().map(parse_id).transpose()?,
        subject_name: r.4.unwrap_or_default(),
        kind: r.5,
        title: r.6,
        response_id: r.7.as_deref().map(parse_id).transpose()?,
        status: r.8,
        opened_at: r.9,
        closed_at: r.10,
        closed_by: r.11,
        close_note: r.12,
    })
}

const TASK_SELECT: &str = "SELECT t.id, t.clinic_id, t.patient_id, t.lead_id, \
     COALESCE(p.given_name || ' ' || p.family_name, l.given_name || ' ' || l.family_name), \
     t.kind, t.title, t.response_id, t.status, t.opened_at, t.closed_at, u.username, t.close_note \
     FROM tasks t LEFT JOIN patients p ON p.id = t.patient_id LEFT JOIN leads l ON l.id = t.lead_id \
     LEFT JOIN users u ON u.id = t.closed_by";

/// Inserts a response (and its task) inside an open transaction.
#[macro_export]
macro_rules! insert_response {
    ($tx:expr, $r:expr, $task:expr) => {{
        let r: &$crate::measures::NewResponse = $r;
        let task: Option<&$crate::measures::NewTask> = $task;
        let result: $crate::Result<()> = async {
            let answers = serde_json::to_string(&r.scored.answers).unwrap_or_default();
            let subscales = serde_json::to_string(&r.scored.subscales).unwrap_or_default();
            let flags = serde_json::to_string(&r.scored.flags).unwrap_or_default();
            sqlx::query("INSERT INTO questionnaire_responses (id, clinic_id, patient_id, lead_id, instrument_id, \
                 instrument_version, instrument_hash, answers, total, band, band_level, subscales, flags, safety, \
                 source, link_id, appointment_id, entered_by, started_at, submitted_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)")
                .bind(r.id.to_string()).bind(r.clinic.to_string())
                .bind(r.patient.map(|p| p.to_string())).bind(r.lead.map(|l| l.to_string()))
                .bind(&r.scored.instrument).bind(i64::from(r.scored.version)).bind(r.instrument_hash)
                .bind(answers).bind(r.scored.total.map(i64::from))
                .bind(r.scored.band.as_ref().map(|b| b.label.clone()))
                .bind(r.scored.band.as_ref().map(|b| b.level.clone()))
                .bind(subscales).bind(flags).bind(r.scored.safety).bind(r.source.as_str())
                .bind(r.link.map(|l| l.to_string())).bind(r.appointment.map(|a| a.to_string()))
                .bind(r.entered_by.map(|u| u.to_string())).bind(r.started_at).bind(r.submitted_at)
                .execute(&mut *$tx).await?;
            if let Some(t) = task {
                sqlx::query("INSERT INTO tasks (id, clinic_id, patient_id, lead_id, kind, title, response_id, status, opened_at) \
                     VALUES ($1, $2, $3, $4, 'safety', $5, $6, 'open', $7)")
                    .bind(t.id.to_string()).bind(r.clinic.to_string())
                    .bind(r.patient.map(|p| p.to_string())).bind(r.lead.map(|l| l.to_string()))
                    .bind(&t.title).bind(r.id.to_string()).bind(r.submitted_at)
                    .execute(&mut *$tx).await?;
            }
            Ok(())
        }
        .await;
        result
    }};
}

impl Store {
    /// Stores a response with its task and audit record. With `link`, the
    /// link is used up in the same transaction; a link already used or
    /// expired makes the whole submission fail with nothing written.
    pub async fn insert_response(
        &self,
        r: &NewResponse<'_>,
        task: Option<&NewTask>,
        audit: Vec<NewAuditEvent>,
    ) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            if let Some(link) = r.link {
                let n = sqlx::query("UPDATE questionnaire_links SET used_at = $2, response_id = $3 \
                     WHERE id = $1 AND used_at IS NULL AND expires_at > $2")
                    .bind(link.to_string()).bind(now).bind(r.id.to_string())
                    .execute(&mut *tx).await?.rows_affected();
                if n == 0 {
                    return Err(DomainError::Conflict("this questionnaire link has already been used or has expired".into()).into());
                }
            }
            crate::insert_response!(tx, r, task)?;
            append_in_tx!(tx, &audit, self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// When the patient last answered an instrument, if ever.
    pub async fn last_response_at(
        &self,
        patient: PatientId,
        instrument: &str,
    ) -> Result<Option<i64>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_scalar("SELECT MAX(submitted_at) FROM questionnaire_responses \
                 WHERE patient_id = $1 AND instrument_id = $2")
                .bind(patient.to_string()).bind(instrument).fetch_one(p).await?
        }))
    }

    /// A patient's responses, oldest first; one instrument or all.
    pub async fn responses(
        &self,
        patient: PatientId,
        instrument: Option<&str>,
    ) -> Result<Vec<Response>> {
        let rows: Vec<ResponseRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {RESPONSE_COLUMNS} FROM questionnaire_responses \
                 WHERE patient_id = $1 AND ($2 IS NULL OR instrument_id = $2) ORDER BY submitted_at, id"))
                .bind(patient.to_string()).bind(instrument).fetch_all(p).await?
        });
        rows.into_iter().map(response_from).collect()
    }

    /// A patient's scores only (no answers), oldest first: what trend charts
    /// need, in a quarter of the columns of [`Store::responses`].
    pub async fn score_history(&self, patient: PatientId) -> Result<Vec<ScorePoint>> {
        let rows: Vec<ScoreRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT instrument_id, instrument_version, total, band, flags, submitted_at \
                 FROM questionnaire_responses WHERE patient_id = $1 ORDER BY submitted_at, id")
                .bind(patient.to_string()).fetch_all(p).await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(ScorePoint {
                    instrument_id: r.0,
                    instrument_version: u32::try_from(r.1).map_err(|_| decode("bad version"))?,
                    total: r.2.map(|t| t as i32),
                    band: r.3,
                    // Flags are decoded only where a chart cannot show them.
                    flags: if r.2.is_none() {
                        serde_json::from_str(&r.4).map_err(|e| decode(e.to_string()))?
                    } else {
                        vec![]
                    },
                    submitted_at: r.5,
                })
            })
            .collect()
    }

    /// The responses given with a lead's assessment.
    pub async fn lead_responses(&self, lead: LeadId) -> Result<Vec<Response>> {
        let rows: Vec<ResponseRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {RESPONSE_COLUMNS} FROM questionnaire_responses \
                 WHERE lead_id = $1 ORDER BY submitted_at, id"))
                .bind(lead.to_string()).fetch_all(p).await?
        });
        rows.into_iter().map(response_from).collect()
    }

    pub async fn response(&self, id: ResponseId, clinics: &[ClinicId]) -> Result<Option<Response>> {
        let row: Option<ResponseRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {RESPONSE_COLUMNS} FROM questionnaire_responses WHERE id = $1"))
                .bind(id.to_string()).fetch_optional(p).await?
        });
        match row.map(response_from).transpose()? {
            Some(r) if clinics.contains(&r.clinic_id) => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    // ---- Links ---------------------------------------------------------

    /// Creates a link with its e-mail job. A rule key already used makes this
    /// a no-op returning `false` (the rule already sent it).
    pub async fn insert_link(
        &self,
        l: &NewLink,
        audit: NewAuditEvent,
        jobs: &[crate::outbox::NewJob],
    ) -> Result<bool> {
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO questionnaire_links (id, clinic_id, patient_id, instrument_id, instrument_version, \
                 token_hash, reason, rule_key, created_at, created_by, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(l.id.to_string()).bind(l.clinic.to_string()).bind(l.patient.to_string())
                .bind(&l.instrument_id).bind(i64::from(l.instrument_version)).bind(&l.token_hash)
                .bind(&l.reason).bind(&l.rule_key).bind(self.now())
                .bind(l.created_by.map(|u| u.to_string())).bind(l.expires_at)
                .execute(&mut *tx).await?;
            crate::insert_jobs!(tx, jobs, self.now())?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Ok(()) => Ok(true),
            Err(crate::StoreError::Db(e)) if crate::is_unique_violation(&e, "rule_key") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The link whose token hashes to `hash`, used or not.
    pub async fn link_by_hash(&self, hash: &str) -> Result<Option<Link>> {
        let row: Option<LinkRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {LINK_COLUMNS} FROM questionnaire_links WHERE (token_hash = $1 OR mail_token_hash = $1)"))
                .bind(hash).fetch_optional(p).await?
        });
        row.map(link_from).transpose()
    }

    pub async fn links(&self, patient: PatientId) -> Result<Vec<Link>> {
        let rows: Vec<LinkRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {LINK_COLUMNS} FROM questionnaire_links WHERE patient_id = $1 \
                 ORDER BY created_at DESC LIMIT 50"))
                .bind(patient.to_string()).fetch_all(p).await?
        });
        rows.into_iter().map(link_from).collect()
    }

    // ---- Tasks ---------------------------------------------------------

    /// Open tasks in these clinics, oldest first.
    pub async fn open_tasks(&self, clinics: &[ClinicId]) -> Result<Vec<Task>> {
        let mut out = Vec::new();
        for c in clinics {
            let rows: Vec<TaskRow> = on_pool!(self.read(), p => {
                sqlx::query_as(&format!("{TASK_SELECT} WHERE t.clinic_id = $1 AND t.status = 'open' ORDER BY t.opened_at, t.id"))
                    .bind(c.to_string()).fetch_all(p).await?
            });
            for r in rows {
                out.push(task_from(r)?);
            }
        }
        out.sort_by_key(|t| t.opened_at);
        Ok(out)
    }

    /// How many tasks are open in these clinics (no names: for the Today page).
    pub async fn count_open_tasks(&self, clinics: &[ClinicId]) -> Result<i64> {
        let mut n = 0;
        for c in clinics {
            let (k,): (i64,) = on_pool!(self.read(), p => {
                sqlx::query_as("SELECT COUNT(*) FROM tasks WHERE clinic_id = $1 AND status = 'open'")
                    .bind(c.to_string()).fetch_one(p).await?
            });
            n += k;
        }
        Ok(n)
    }

    /// A patient's tasks, open first.
    pub async fn patient_tasks(&self, patient: PatientId) -> Result<Vec<Task>> {
        let rows: Vec<TaskRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{TASK_SELECT} WHERE t.patient_id = $1 ORDER BY t.status DESC, t.opened_at DESC"))
                .bind(patient.to_string()).fetch_all(p).await?
        });
        rows.into_iter().map(task_from).collect()
    }

    /// The patient's answers since `since` that signalled a safety risk
    /// (PHQ-9 item 9, a positive C-SSRS): (instrument, when, flags as JSON).
    pub async fn safety_responses_since(
        &self,
        patient: PatientId,
        since: i64,
    ) -> Result<Vec<(String, i64, String)>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT instrument_id, submitted_at, flags FROM questionnaire_responses \
                 WHERE patient_id = $1 AND safety AND submitted_at >= $2 ORDER BY submitted_at")
                .bind(patient.to_string()).bind(since).fetch_all(p).await?
        }))
    }

    pub async fn lead_tasks(&self, lead: LeadId) -> Result<Vec<Task>> {
        let rows: Vec<TaskRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{TASK_SELECT} WHERE t.lead_id = $1 ORDER BY t.status DESC, t.opened_at DESC"))
                .bind(lead.to_string()).fetch_all(p).await?
        });
        rows.into_iter().map(task_from).collect()
    }

    pub async fn task(&self, id: TaskId, clinics: &[ClinicId]) -> Result<Option<Task>> {
        let row: Option<TaskRow> = on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{TASK_SELECT} WHERE t.id = $1"))
                .bind(id.to_string()).fetch_optional(p).await?
        });
        match row.map(task_from).transpose()? {
            Some(t) if clinics.contains(&t.clinic_id) => Ok(Some(t)),
            _ => Ok(None),
        }
    }

    /// Closes an open task with the clinician's note. A task already closed
    /// is a conflict (two clinicians closing at once: the second is told).
    pub async fn close_task(
        &self,
        id: TaskId,
        by: UserId,
        note: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE tasks SET status = 'closed', closed_at = $2, closed_by = $3, close_note = $4 \
                 WHERE id = $1 AND status = 'open'")
                .bind(id.to_string()).bind(self.now()).bind(by.to_string()).bind(note)
                .execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DomainError::Conflict("this task is already closed".into()).into());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every clinic's dosing visits (by type code) starting in `[from, to)`,
    /// not cancelled, for the questionnaire rules; a visit in a weekly or
    /// every-other-week course counts as maintenance.
    pub async fn dose_visits(
        &self,
        from: i64,
        to: i64,
        dosing_types: &[String],
    ) -> Result<Vec<domain::instruments::DoseVisit>> {
        let rows: Vec<DoseRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT a.id, a.clinic_id, a.patient_id, a.type_code, a.starts_at, a.ends_at, a.status, s.kind \
                 FROM appointments a LEFT JOIN series s ON s.id = a.series_id \
                 WHERE a.starts_at >= $1 AND a.starts_at < $2 AND a.status IN ('booked', 'checked_in', 'completed')")
                .bind(from).bind(to).fetch_all(p).await?
        });
        rows.into_iter()
            .filter(|r| dosing_types.contains(&r.3))
            .map(|r| {
                Ok(domain::instruments::DoseVisit {
                    id: r.0,
                    clinic: parse_id(&r.1)?,
                    patient: parse_id(&r.2)?,
                    start: r.4,
                    end: r.5,
                    completed: r.6 == "completed",
                    maintenance: matches!(r.7.as_deref(), Some("weekly" | "every_other_week")),
                })
            })
            .collect()
    }

    /// When a patient's doses were (or are to be) given, for marking trend
    /// charts and finding the baseline: their dosing visits (by type code),
    /// and the doses given in visits checked in without a booking.
    pub async fn dose_times(
        &self,
        patient: PatientId,
        dosing_types: &[String],
    ) -> Result<Vec<i64>> {
        let (rows, walk_ins): (Vec<(String, i64)>, Vec<(i64,)>) = on_pool!(self.read(), p => {
            let booked = sqlx::query_as("SELECT type_code, starts_at FROM appointments WHERE patient_id = $1 \
                 AND status IN ('booked', 'checked_in', 'completed') ORDER BY starts_at")
                .bind(patient.to_string()).fetch_all(p).await?;
            // Doses given in visits nobody booked (a walk-in checked in from
            // the chart): when the dose started.
            let walk_ins = sqlx::query_as("SELECT MIN(a.at) FROM encounters e \
                 JOIN administration_events a ON a.encounter_id = e.id \
                 WHERE e.patient_id = $1 AND e.appointment_id IS NULL AND a.kind IN ('start', 'given') \
                 GROUP BY e.id")
                .bind(patient.to_string()).fetch_all(p).await?;
            (booked, walk_ins)
        });
        let mut times: Vec<i64> = rows
            .into_iter()
            .filter(|(t, _)| dosing_types.contains(t))
            .map(|(_, s)| s)
            .chain(walk_ins.into_iter().map(|(t,)| t))
            .collect();
        times.sort_unstable();
        Ok(times)
    }
}
