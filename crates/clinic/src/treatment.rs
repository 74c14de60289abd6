//! The treatment day as use cases: check-in opens an encounter from the
//! patient's plan; the checklist, the dose order and its second check, the
//! administration timeline, readings typed or streamed from monitors, alerts
//! and their responses, medicines, adverse events, recovery, discharge, and
//! the signed note. Every step is checked against the rules in
//! `domain::treatment`, audited, and announced on the floor hub so the board
//! and the chair view update within a second.

use std::sync::Arc;

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{ClinicId, PatientId};
use domain::protocols::Protocol;
use domain::scheduling::VisitPlan;
use domain::treatment::{
    self as tx, AdminEvent, AdminKind, Aldrete, Checklist, DoseMaths, Item, Known, Phase, Vitals,
};
use domain::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::audit::NewAuditEvent;
use store::treatment::{Encounter, NewEncounter, NewObservation, Record, Step};
use tokio::sync::broadcast;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

const MINUTE: i64 = 60_000_000;

fn invalid(field: &str, m: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError::new(field, m)])
}

// ---- Floor hub --------------------------------------------------------------

/// Something changed on the floor: a reading, an alert, a step.
#[derive(Debug, Clone, Serialize)]
pub struct FloorEvent {
    pub clinic: String,
    pub encounter: String,
    pub kind: &'static str,
}

/// Fans changes out to every connected board and chair view on this
/// instance (server-sent events) and, on PostgreSQL, to the other instances
/// (NOTIFY; see [`start_fanout`]).
#[derive(Clone)]
pub struct FloorHub {
    local: Arc<broadcast::Sender<FloorEvent>>,
    /// This instance's name in the events it sends, to skip its own echoes.
    instance: Arc<str>,
    /// The queue of events for the other instances, once fan-out runs.
    out: Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<FloorEvent>>>,
}

impl Default for FloorHub {
    fn default() -> Self {
        FloorHub {
            local: Arc::new(broadcast::channel(4096).0),
            instance: uuid::Uuid::now_v7().simple().to_string().into(),
            out: Arc::new(std::sync::OnceLock::new()),
        }
    }
}

/// The kinds of floor event, as the other instances name them.
const FLOOR_KINDS: [&str; 4] = ["open", "step", "reading", "alert"];

#[derive(Serialize, serde::Deserialize)]
struct Wire {
    i: String,
    c: String,
    e: String,
    k: String,
}

impl FloorHub {
    pub fn send(&self, clinic: &str, encounter: &str, kind: &'static str) {
        let ev = FloorEvent {
            clinic: clinic.to_string(),
            encounter: encounter.to_string(),
            kind,
        };
        if let Some(out) = self.out.get() {
            let _ = out.send(ev.clone());
        }
        // No receiver is fine: nobody is watching.
        let _ = self.local.send(ev);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FloorEvent> {
        self.local.subscribe()
    }

    /// An event from another instance, passed to this one's viewers (never
    /// sent on again). Its own echoes and anything malformed are dropped.
    fn receive(&self, payload: &str) {
        let Ok(w) = serde_json::from_str::<Wire>(payload) else {
            return;
        };
        if *w.i == *self.instance {
            return;
        }
        let Some(kind) = FLOOR_KINDS.iter().find(|k| **k == w.k) else {
            return;
        };
        let _ = self.local.send(FloorEvent {
            clinic: w.c,
            encounter: w.e,
            kind,
        });
    }
}

/// On PostgreSQL, carries floor events between app instances: this
/// instance's events go out by NOTIFY (batched as they queue up), the
/// others' come in by LISTEN and reach this instance's boards and chair views.
/// On SQLite (one instance) it does nothing. Call once, at start; both tasks
/// end (and the listening connection closes) when `stop` turns true.
pub fn start_fanout(state: &Clinic, stop: tokio::sync::watch::Receiver<bool>) {
    if !state.store.fans_out() {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<FloorEvent>();
    if state.floor.out.set(tx).is_err() {
        return;
    }
    let (store, hub) = (state.store.clone(), state.floor.clone());
    let mut stop1 = stop.clone();
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                ev = rx.recv() => match ev { Some(ev) => ev, None => return },
                _ = stop1.wait_for(|v| *v) => return,
            };
            let mut batch = vec![first];
            while let Ok(ev) = rx.try_recv() {
                batch.push(ev);
            }
            let payloads: Vec<String> = batch
                .into_iter()
                .filter_map(|ev| {
                    serde_json::to_string(&Wire {
                        i: hub.instance.to_string(),
                        c: ev.clinic,
                        e: ev.encounter,
                        k: ev.kind.to_string(),
                    })
                    .ok()
                })
                .collect();
            if let Err(e) = store.notify_floor(&payloads).await {
                tracing::warn!(error = %e, "floor events not sent to other instances");
            }
        }
    });
    let (store, hub) = (state.store.clone(), state.floor.clone());
    let mut stop2 = stop;
    tokio::spawn(async move {
        loop {
            let listen = store.listen_floor(|payload| {
                hub.receive(payload);
                true
            });
            tokio::select! {
                r = listen => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "listening for floor events; retrying");
                    }
                }
                _ = stop2.wait_for(|v| *v) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop2.wait_for(|v| *v) => return,
            }
        }
    });
}

// ---- Group commit of readings -------------------------------------------------

/// Readings to store, with their audit records; answered with the readings
/// and the source keys that were new.
struct IngestJob {
    obs: Vec<NewObservation>,
    audit: Vec<store::audit::NewAuditEvent>,
    reply: tokio::sync::oneshot::Sender<Result<Stored, String>>,
}

/// The readings handed in, and the source keys of those that were new.
type Stored = (Vec<NewObservation>, Vec<String>);

/// Most readings written in one transaction.
const GROUP_MAX: usize = 4000;

/// Stores readings from concurrent requests together: whatever has queued
/// while the last transaction committed goes into the next one (group
/// commit), and each request is answered once its readings are durable.
/// Many monitors each sending one reading then cost one commit, not one each.
#[derive(Clone, Default)]
pub struct IngestQueue(Arc<tokio::sync::OnceCell<tokio::sync::mpsc::Sender<IngestJob>>>);

impl IngestQueue {
    async fn store(
        &self,
        store: &store::Store,
        obs: Vec<NewObservation>,
        audit: Vec<store::audit::NewAuditEvent>,
    ) -> Result<Stored, Error> {
        let tx = self
            .0
            .get_or_init(|| async {
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(run_ingest(store.clone(), rx));
                tx
            })
            .await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(IngestJob { obs, audit, reply })
            .await
            .map_err(|_| Error::Internal("the reading writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the reading writer has stopped".into()))?
            .map_err(Error::Internal)
    }
}

/// Groups committing at once. PostgreSQL runs a second group's INSERT while
/// the first commits (and on the other core); they meet only at the audit
/// chain's head, taken last. SQLite has one writing connection.
fn ingest_lanes(store: &store::Store) -> usize {
    match store.backend() {
        store::Backend::Postgres => 2,
        store::Backend::Sqlite => 1,
    }
}

async fn run_ingest(store: store::Store, mut rx: tokio::sync::mpsc::Receiver<IngestJob>) {
    let lanes = Arc::new(tokio::sync::Semaphore::new(ingest_lanes(&store)));
    loop {
        // A free lane first: whatever queues while every lane is busy joins
        // the next group.
        let Ok(lane) = lanes.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut n = first.obs.len();
        let mut jobs = vec![first];
        while n < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => {
                    n += j.obs.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            commit_group(&store, jobs, n).await;
            drop(lane);
        });
    }
}

/// Stores one group's readings in one transaction and answers each request.
async fn commit_group(store: &store::Store, mut jobs: Vec<IngestJob>, n: usize) {
    let mut obs = Vec::with_capacity(n);
    let mut audit = Vec::new();
    let mut sizes = Vec::with_capacity(jobs.len());
    for j in &mut jobs {
        sizes.push(j.obs.len());
        obs.append(&mut j.obs);
        audit.append(&mut j.audit);
    }
    match store.insert_observations(obs, audit).await {
        Ok((obs, keys)) => {
            let mut rest = obs.into_iter();
            // A key sent twice in one group is new for the first sender only.
            let mut fresh: std::collections::HashSet<String> = keys.into_iter().collect();
            for (j, size) in jobs.into_iter().zip(sizes) {
                let mine: Vec<NewObservation> = rest.by_ref().take(size).collect();
                let stored = mine
                    .iter()
                    .filter(|o| fresh.remove(&o.source_key))
                    .map(|o| o.source_key.clone())
                    .collect();
                let _ = j.reply.send(Ok((mine, stored)));
            }
        }
        Err(e) => {
            let cause = e.to_string();
            tracing::error!(%cause, readings = n, "storing readings failed");
            for j in jobs {
                let _ = j.reply.send(Err(cause.clone()));
            }
        }
    }
}

// ---- Access -----------------------------------------------------------------

/// The encounter, when the caller may act in its clinic with `perm`; one out
/// of reach is "not found" and the attempt is audited.
async fn encounter_of(
    state: &Clinic,
    c: &Caller,
    perm: Permission,
    id: &str,
    action: Action,
) -> Result<Encounter, Error> {
    let clinics = c.require_any(perm)?;
    let found = match uuid::Uuid::parse_str(id) {
        Ok(_) => state.store.encounter(id).await?,
        Err(_) => None,
    };
    match found {
        Some(e) if clinics.iter().any(|k| k.to_string() == e.clinic_id) => Ok(e),
        _ => {
            let mut ev = c.event(action);
            ev.outcome = "not_found";
            ev.object_type = Some("encounter".into());
            ev.object_id = Some(id.chars().take(64).collect());
            state.store.audit(vec![ev]).await?;
            Err(Error::NotFound)
        }
    }
}

fn clinic_of(e: &Encounter) -> ClinicId {
    e.clinic_id.parse().unwrap_or_default()
}

fn patient_of(e: &Encounter) -> Result<PatientId, Error> {
    e.patient_id
        .parse()
        .map_err(|_| Error::Internal("a visit's patient id is unreadable".into()))
}

/// How long the post-session questionnaires stay open.
const POST_SESSION_HOURS: i64 = 72;

/// After discharge, the plan's patient-answered target measures (GAD-7,
/// PHQ-9, ...) go out as single-use links, once per visit. A link that
/// cannot be made is logged; the discharge stands.
async fn send_post_session(state: &Clinic, c: &Caller, e: &Encounter) -> usize {
    let Ok(pid) = patient_of(e) else {
        return 0;
    };
    let plan = match state.store.plans(pid).await {
        Ok(p) => p.into_iter().find(|p| p.id == e.plan_id),
        Err(err) => {
            tracing::warn!(encounter = %e.id, error = %err, "post-session measures: no plan");
            return 0;
        }
    };
    let targets: Vec<String> = match plan.map(|p| serde_json::from_str(&p.targets)) {
        None => vec![],
        Some(Ok(t)) => t,
        Some(Err(err)) => {
            tracing::error!(encounter = %e.id, error = %err, "post-session measures: the plan's stored targets do not read back");
            return 0;
        }
    };
    let mut sent = 0;
    for id in targets {
        let Some(inst) = state.instruments.current(&id) else {
            continue;
        };
        if inst.rater != domain::instruments::Rater::Patient {
            continue;
        }
        let made = crate::measures::create_link(
            state,
            clinic_of(e),
            pid,
            inst,
            "How you are after your session",
            Some(format!("post-session:{}:{}", e.id, inst.id)),
            c.user_id(),
            Some(c),
            state.now() + POST_SESSION_HOURS * 3_600_000_000,
        )
        .await;
        match made {
            Ok((Some(_), _)) => sent += 1,
            Ok((None, _)) => {}
            Err(err) => {
                tracing::warn!(encounter = %e.id, instrument = %inst.id, error = ?err, "post-session link")
            }
        }
    }
    sent
}

fn event(c: &Caller, a: Action, perm: Permission, e: &Encounter) -> NewAuditEvent {
    let mut ev = c.patient_event(a, perm, clinic_of(e), &e.patient_id);
    ev.object_type = Some("encounter".into());
    ev.object_id = Some(e.id.clone());
    ev
}

fn protocol_of(state: &Clinic, e: &Encounter) -> Result<Arc<Protocol>, Error> {
    state
        .protocols()
        .get(&e.protocol_id, e.protocol_version as u32)
        .cloned()
        .ok_or_else(|| {
            Error::Conflict(format!(
                "protocol {} version {} is not loaded on this server",
                e.protocol_id, e.protocol_version
            ))
        })
}

async fn zone_of(state: &Clinic, clinic: ClinicId) -> Result<jiff::tz::TimeZone, Error> {
    let c = state.store.clinic(clinic).await?;
    Ok(jiff::tz::TimeZone::get(&c.settings.time_zone).unwrap_or(jiff::tz::TimeZone::UTC))
}

fn local_date(m: i64, tz: &jiff::tz::TimeZone) -> jiff::civil::Date {
    domain::time::to_timestamp(m).to_zoned(tz.clone()).date()
}

/// Midnight today in the clinic's zone, as microseconds.
pub async fn start_of_today(state: &Clinic, clinic: ClinicId) -> Result<i64, Error> {
    let tz = zone_of(state, clinic).await?;
    let today = local_date(state.now(), &tz);
    Ok(today
        .to_zoned(tz)
        .map(|z| z.timestamp().as_microsecond())
        .unwrap_or_default())
}

// ---- Check-in ---------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub chair_id: Option<String>,
    /// When the patient arrived (RFC 3339), if recorded afterwards; now when
    /// absent. At most twelve hours back, never ahead.
    pub at: Option<String>,
}

/// How far back a check-in may be recorded after the fact.
const LATE_ENTRY_HOURS: i64 = 12;

/// Opens the visit from the patient's current plan, in a chair able to
/// take the plan's route.
pub async fn check_in(state: &Clinic, c: &Caller, input: CheckIn) -> Result<String, Error> {
    let pid: PatientId = input
        .patient_id
        .parse()
        .map_err(|_| invalid("patient_id", "is not a valid identifier"))?;
    let clinics = c.require_any(Permission::EncounterRecord)?;
    let Some(p) = state.store.patient(pid, &clinics).await? else {
        return Err(Error::NotFound);
    };
    c.require(Permission::EncounterRecord, p.clinic_id)?;
    let plan = state
        .store
        .plans(pid)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::Conflict("no treatment plan yet: the prescriber writes one first".into())
        })?;
    let protocol = state
        .protocols()
        .get(&plan.protocol_id, plan.protocol_version as u32)
        .cloned()
        .ok_or_else(|| {
            Error::Conflict(format!(
                "protocol {} version {} is not loaded",
                plan.protocol_id, plan.protocol_version
            ))
        })?;
    let mut chair = input.chair_id.clone().filter(|s| !s.is_empty());
    let mut appointment = None;
    if let Some(a) = input.appointment_id.as_deref().filter(|s| !s.is_empty()) {
        let aid = a
            .parse()
            .map_err(|_| invalid("appointment_id", "is not a valid identifier"))?;
        let appt = state
            .store
            .appointment(aid, &[p.clinic_id])
            .await?
            .filter(|x| x.patient_id == pid)
            .ok_or_else(|| invalid("appointment_id", "is not a visit of this patient"))?;
        if !matches!(appt.status, store::scheduling::Status::Booked) {
            return Err(Error::Conflict(
                "this visit is not booked (checked in, completed or cancelled)".into(),
            ));
        }
        chair = chair.or(appt.resource_id.map(|r| r.to_string()));
        appointment = Some(a.to_string());
    }
    let chair = chair.ok_or_else(|| invalid("chair_id", "choose the chair the patient sits in"))?;
    let now = state.now();
    // One dose a day at the most, and no more than the plan has.
    let (last, given) = state.store.dose_history(pid, &plan.id).await?;
    if let Some(why) = tx::course_gate(&protocol, last, given as u32, plan.doses as u32, now) {
        return Err(Error::Conflict(format!("no dose today: {why}")));
    }
    let opened_at = match input.at.as_deref().filter(|s| !s.trim().is_empty()) {
        None => now,
        Some(s) => {
            let t = parse_time("at", s)?;
            if t > now + 60_000_000 {
                return Err(invalid("at", "is in the future"));
            }
            if t < now - LATE_ENTRY_HOURS * 3_600_000_000 {
                return Err(invalid(
                    "at",
                    format!("is more than {LATE_ENTRY_HOURS} hours ago"),
                ));
            }
            t
        }
    };
    let resources = state.store.resources(p.clinic_id).await?;
    let r = resources
        .iter()
        .find(|r| r.resource.id.to_string() == chair && r.active)
        .ok_or_else(|| invalid("chair_id", "is not an active chair of this clinic"))?;
    if !matches!(r.resource.kind, domain::scheduling::ResourceKind::Chair) {
        return Err(invalid(
            "chair_id",
            format!("{} is not a treatment chair", r.resource.name),
        ));
    }
    if protocol.route == domain::protocols::Route::Iv && !r.resource.caps.iv {
        return Err(invalid(
            "chair_id",
            format!("{} cannot take an IV infusion", r.resource.name),
        ));
    }
    // A visit nobody booked becomes a visit of the route's type: invoiced,
    // on the day board and in the portal like any other.
    let walk_in = if appointment.is_none() {
        let types = state.store.appointment_types(p.clinic_id).await?;
        protocol
            .route
            .visit_types()
            .iter()
            .find_map(|code| types.iter().find(|t| t.code == *code))
            .map(|t| {
                let plan = VisitPlan::unbooked(t, opened_at, r.resource.id);
                Ok::<_, Error>(store::treatment::WalkIn {
                    type_code: t.code.clone(),
                    type_name: t.name.clone(),
                    ends_at: plan.end,
                    plan: serde_json::to_string(&plan)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                })
            })
            .transpose()?
    } else {
        None
    };
    if walk_in.is_some() {
        appointment = Some(domain::ids::AppointmentId::new().to_string());
    }
    let id = store::treatment::new_id();
    let e = NewEncounter {
        id: id.clone(),
        clinic: p.clinic_id,
        patient: pid,
        appointment_id: appointment,
        walk_in,
        resource_id: Some(chair),
        plan_id: plan.id.clone(),
        plan_version: plan.version,
        protocol_id: plan.protocol_id.clone(),
        protocol_version: plan.protocol_version,
        route: plan.route.clone(),
        by: c.user_id().ok_or(Error::Forbidden)?,
        opened_at,
    };
    let mut ev = c.patient_event(
        Action::EncounterOpen,
        Permission::EncounterRecord,
        p.clinic_id,
        &pid.to_string(),
    );
    ev.object_type = Some("encounter".into());
    ev.object_id = Some(id.clone());
    ev.detail = Some(format!("{} v{}", plan.protocol_id, plan.protocol_version));
    state.store.open_encounter(&e, ev).await?;
    state.floor.send(&p.clinic_id.to_string(), &id, "open");
    Ok(id)
}

// ---- The visit as one view --------------------------------------------------

/// Everything the chair view, the API and the note need about one visit.
#[derive(Debug, Clone)]
pub struct Visit {
    pub record: Record,
    pub protocol: Arc<Protocol>,
    pub checklist: Checklist,
    pub items: Vec<Item>,
    /// The checklist is complete, no alert is open and the course allows a
    /// dose today.
    pub ready_to_dose: bool,
    /// What keeps the dose from being ordered or started, in words.
    pub dose_blockers: Vec<String>,
    /// The standing order's maths: at the drawn lot's strength once drawn.
    pub order: Option<DoseMaths>,
    /// Orders voided before the dose: (summary, reason, by, when).
    pub voided: Vec<(String, String, String, i64)>,
    pub events: Vec<AdminEvent>,
    pub delivered_mg: f64,
    pub baseline: Option<Vitals>,
    pub latest: Option<Vitals>,
    pub phase: Phase,
    pub discharge_blockers: Vec<String>,
    pub aldrete: Option<Aldrete>,
    /// When the next timed reading is due (microseconds), while monitored.
    pub next_due: Option<i64>,
    /// When the dose ended, as recovery counts it: when the stop was
    /// entered, unless a second person attested a paper record.
    pub dose_ended_at: Option<i64>,
    pub now: i64,
}

/// An entry made this long after the time it gives is marked "entered later".
pub const LATE_MARK_MINUTES: i64 = 5;

/// Whether an entry for `at` made at `recorded` was entered later.
pub fn entered_late(at: i64, recorded: i64) -> bool {
    recorded - at > LATE_MARK_MINUTES * MINUTE
}

impl Visit {
    pub fn open_alerts(&self) -> usize {
        self.record
            .alerts
            .iter()
            .filter(|a| a.ack_at.is_none())
            .count()
    }

    /// The visit for the API: the record, and what the rules say about it.
    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.record;
        let admin: Vec<serde_json::Value> = r
            .admin
            .iter()
            .map(|a| {
                let mut v = serde_json::json!(a);
                v["entered_later"] = serde_json::json!(entered_late(a.at, a.recorded_at));
                v
            })
            .collect();
        let mut encounter = serde_json::json!(r.encounter);
        encounter["entered_later"] = serde_json::json!(r
            .encounter
            .recorded_at
            .is_some_and(|rec| entered_late(r.encounter.opened_at, rec)));
        serde_json::json!({
            "encounter": encounter,
            "protocol": {"id": self.protocol.id, "version": self.protocol.version, "name": self.protocol.name},
            "phase": self.phase,
            "checklist": self.checklist,
            "items": self.items,
            "ready_to_dose": self.ready_to_dose,
            "dose_blockers": self.dose_blockers,
            "dose_order": r.order.as_ref().map(|o| serde_json::json!({
                "id": o.id, "ordered_by": o.ordered_by, "ordered_at": o.ordered_at,
                "second_check": o.second_check, "checked_by": o.checked_by, "checked_at": o.checked_at,
                "vial_lot": o.vial_lot, "vial_expires": o.vial_expires, "maths": self.order,
                "summary": self.order.as_ref().map(|m| m.summary()),
            })),
            "voided_orders": r.voided_orders.iter().map(|o| serde_json::json!({
                "id": o.id, "ordered_by": o.ordered_by, "ordered_at": o.ordered_at, "mg": o.mg,
                "voided_by": o.voided_by, "voided_at": o.voided_at, "reason": o.void_reason,
            })).collect::<Vec<_>>(),
            "administration_events": admin,
            "delivered_mg": self.delivered_mg,
            "dose_ended_at": self.dose_ended_at,
            "baseline": self.baseline,
            "observations": r.observations,
            "alerts": r.alerts,
            "medications": r.medications,
            "adverse_events": r.adverse_events,
            "recovery": r.recovery.as_ref().map(|x| serde_json::json!({"aldrete": self.aldrete, "total": x.total, "scored_by": x.scored_by, "scored_at": x.scored_at})),
            "discharge_blockers": self.discharge_blockers,
            "next_reading_due": self.next_due,
            "note": r.note,
            "addenda": r.addenda,
        })
    }
}

fn events_of(r: &Record, encounter: &str) -> Result<Vec<AdminEvent>, Error> {
    r.admin
        .iter()
        .map(|a| {
            Ok(AdminEvent {
                kind: serde_json::from_value(serde_json::json!(a.kind)).map_err(|e| {
                    tracing::error!(encounter, kind = %a.kind, error = %e, "stored administration event does not read back");
                    Error::Internal(format!("the visit's administration event {:?} does not read back", a.kind))
                })?,
                at: a.at,
                rate_ml_h: a.rate_ml_h,
                reason: a.reason.clone(),
            })
        })
        .collect()
}

/// Stored JSON of the record that does not read back is an error with a log
/// line, never a default (a checklist read as empty would hide what was
/// confirmed; maths read as absent would hide the dose).
fn stored<T: serde::de::DeserializeOwned>(
    what: &str,
    encounter: &str,
    json: &str,
) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| {
        tracing::error!(encounter, what, error = %e, "stored treatment record does not read back");
        Error::Internal(format!("the visit's {what} does not read back"))
    })
}

/// The readings that count before the dose: from check-in to the start.
fn pre_dose_readings(
    r: &Record,
    started: Option<i64>,
) -> impl Iterator<Item = &store::treatment::Observation> {
    let opened = r.encounter.opened_at;
    r.observations
        .iter()
        .filter(move |o| o.taken_at >= opened && started.is_none_or(|s| o.taken_at < s))
}

/// The risk signals the record holds today: open safety tasks and answers
/// given today that flagged a risk.
async fn risk_signals(
    state: &Clinic,
    pid: PatientId,
    day_start: i64,
) -> Result<Vec<tx::RiskSignal>, Error> {
    let mut out = Vec::new();
    for t in state.store.patient_tasks(pid).await? {
        if t.kind == "safety" && t.status == "open" {
            out.push(tx::RiskSignal {
                what: format!("an open safety task ({})", t.title),
                at: t.opened_at,
            });
        }
    }
    for (inst, at, _) in state.store.safety_responses_since(pid, day_start).await? {
        let name = state
            .instruments
            .current(&inst)
            .map(|i| i.short_name.clone())
            .unwrap_or(inst);
        out.push(tx::RiskSignal {
            what: format!("{name} answered today flagged a suicide risk"),
            at,
        });
    }
    Ok(out)
}

/// What the system knows for the checklist: the gate, the baseline, the
/// weight's day, the record's risk signals and the latest reading outside
/// the pre-dose limits.
async fn known(
    state: &Clinic,
    e: &Encounter,
    p: &Protocol,
    c: &Checklist,
    record: &Record,
    started: Option<i64>,
    baseline: Option<Vitals>,
) -> Result<Known, Error> {
    let clinic = clinic_of(e);
    let pid = patient_of(e)?;
    let status = crate::intake::status_of(state, clinic, pid).await?;
    let consent = status.consent(p.route);
    let tz = zone_of(state, clinic).await?;
    let now = state.now();
    let today = local_date(now, &tz);
    let weight_today = c
        .weight_measured_at
        .is_some_and(|m| local_date(m, &tz) == today);
    let mut instruments_due = vec![];
    for id in &p.pre_session_instruments {
        let last = state.store.last_response_at(pid, id).await?;
        if last.is_none_or(|m| local_date(m, &tz) != today) {
            instruments_due.push(
                state
                    .instruments
                    .current(id)
                    .map(|i| i.short_name.clone())
                    .unwrap_or_else(|| id.clone()),
            );
        }
    }
    let day_start = today
        .to_zoned(tz)
        .map(|z| z.timestamp().as_microsecond())
        .unwrap_or(now);
    let last_out_of_gate = pre_dose_readings(record, started)
        .filter(|o| tx::outside_gate(&p.pre_dose, &o.vitals()))
        .last()
        .map(|o| o.id.clone());
    Ok(Known {
        eligibility: status.eligibility.reason().map(String::from),
        consent: (!consent.is_valid()).then(|| consent.reason()),
        baseline,
        weight_today,
        instruments_due,
        risk_signals: risk_signals(state, pid, day_start).await?,
        last_out_of_gate,
    })
}

/// The standing order's maths: at the drawn strength once prepared.
fn order_maths(r: &Record) -> Result<Option<DoseMaths>, Error> {
    let eid = &r.encounter.id;
    r.order
        .as_ref()
        .map(|o| match &o.prepared {
            Some(p) => stored("prepared dose", eid, p),
            None => stored("dose order", eid, &o.maths),
        })
        .transpose()
}

async fn visit_of(state: &Clinic, e: &Encounter) -> Result<Visit, Error> {
    let record = state.store.record(&e.id).await?.ok_or(Error::NotFound)?;
    let protocol = protocol_of(state, e)?;
    let checklist: Checklist = match &record.checklist {
        Some(c) => stored("checklist", &e.id, &c.data)?,
        None => Checklist::default(),
    };
    let events = events_of(&record, &e.id)?;
    let started = events.first().map(|e| e.at);
    let baseline = pre_dose_readings(&record, started)
        .map(|o| o.vitals())
        .reduce(|a, b| a.merged_with(&b));
    let latest = record
        .observations
        .iter()
        .map(|o| o.vitals())
        .reduce(|a, b| a.merged_with(&b));
    let k = known(state, e, &protocol, &checklist, &record, started, baseline).await?;
    let items = tx::evaluate(&protocol, &checklist, &k);
    let now = state.now();
    let mut dose_blockers = tx::incomplete(&items);
    let open_alerts = record.alerts.iter().filter(|a| a.ack_at.is_none()).count();
    if open_alerts > 0 {
        dose_blockers.push(format!("{open_alerts} open alert(s) to answer"));
    }
    if started.is_none() {
        if let Some(why) = course_gate(state, e, &protocol, now).await? {
            dose_blockers.push(why);
        }
    }
    if e.historical {
        dose_blockers.push("an imported past visit: no dose is given in it".into());
    }
    let ready_to_dose = dose_blockers.is_empty();
    let order = order_maths(&record)?;
    let voided = record
        .voided_orders
        .iter()
        .map(|o| {
            let summary = stored::<DoseMaths>("voided order", &e.id, &o.maths)
                .map(|m| m.summary())
                .unwrap_or_else(|_| format!("{} mg", o.mg));
            (
                summary,
                o.void_reason.clone().unwrap_or_default(),
                o.voided_by.clone().unwrap_or_default(),
                o.voided_at.unwrap_or_default(),
            )
        })
        .collect();
    let delivered_mg = order
        .as_ref()
        .map(|o| tx::delivered_mg(o, &events, now))
        .unwrap_or_default();
    let aldrete: Option<Aldrete> = match &record.recovery {
        Some(r) => Some(stored("recovery score", &e.id, &r.aldrete)?),
        None => None,
    };
    // Recovery counts from the stop as it was entered, unless a second
    // person attested the paper record of an earlier time.
    let dose_ended_at = record
        .admin
        .iter()
        .find(|a| matches!(a.kind.as_str(), "stop" | "given"))
        .map(|a| {
            if e.attested_by.is_some() {
                a.at
            } else {
                a.at.max(a.recorded_at)
            }
        });
    let facts = tx::DischargeFacts {
        dose_ended_at,
        now,
        aldrete: aldrete.map(|a| a.total()),
        escort_named: checklist
            .escort_name
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty()),
        open_alerts,
    };
    let discharge_blockers = tx::discharge_blockers(&protocol, &facts);
    let phase = tx::phase(
        record.encounter.status == "discharged",
        &events,
        &discharge_blockers,
    );
    let next_due = match phase {
        Phase::Dosing | Phase::Recovery => {
            let last_bp = record
                .observations
                .iter()
                .rev()
                .find(|o| o.sbp.is_some())
                .map(|o| o.taken_at)
                .or(started);
            last_bp.map(|t| t + protocol.monitoring.interval_minutes as i64 * MINUTE)
        }
        _ => None,
    };
    Ok(Visit {
        record,
        protocol,
        checklist,
        items,
        ready_to_dose,
        dose_blockers,
        order,
        voided,
        events,
        delivered_mg,
        baseline,
        latest,
        phase,
        discharge_blockers,
        aldrete,
        next_due,
        dose_ended_at,
        now,
    })
}

/// Why the patient may have no dose today under this visit's plan: the
/// protocol's interval since the last dose, or the plan's doses all given.
async fn course_gate(
    state: &Clinic,
    e: &Encounter,
    p: &Protocol,
    now: i64,
) -> Result<Option<String>, Error> {
    let pid = patient_of(e)?;
    let (last, given) = state.store.dose_history(pid, &e.plan_id).await?;
    let plan = state
        .store
        .plans(pid)
        .await?
        .into_iter()
        .find(|x| x.id == e.plan_id);
    let doses = plan.map(|x| x.doses as u32).unwrap_or(0);
    Ok(tx::course_gate(p, last, given as u32, doses, now))
}

/// The visit, audited as a read.
pub async fn visit(state: &Clinic, c: &Caller, id: &str) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRead,
        id,
        Action::EncounterRead,
    )
    .await?;
    state
        .store
        .audit(vec![event(
            c,
            Action::EncounterRead,
            Permission::EncounterRead,
            &e,
        )])
        .await?;
    visit_of(state, &e).await
}

/// A patient's visits, newest first (the chart's list), audited.
pub async fn patient_visits(
    state: &Clinic,
    c: &Caller,
    pid: PatientId,
) -> Result<Vec<Encounter>, Error> {
    let clinics = c.require_any(Permission::EncounterRead)?;
    let Some(p) = state.store.patient(pid, &clinics).await? else {
        return Err(Error::NotFound);
    };
    c.require(Permission::EncounterRead, p.clinic_id)?;
    let mut ev = c.patient_event(
        Action::EncounterRead,
        Permission::EncounterRead,
        p.clinic_id,
        &pid.to_string(),
    );
    ev.object_type = Some("encounters".into());
    state.store.audit(vec![ev]).await?;
    Ok(state.store.patient_encounters(pid).await?)
}

async fn write(
    state: &Clinic,
    c: &Caller,
    e: &Encounter,
    step: Step<'_>,
    action: Action,
    perm: Permission,
    detail: Option<String>,
) -> Result<(), Error> {
    let mut ev = event(c, action, perm, e);
    ev.detail = detail;
    let by = c.user_id().ok_or(Error::Forbidden)?;
    state.store.encounter_step(&e.id, by, step, ev).await?;
    state.floor.send(&e.clinic_id, &e.id, "step");
    Ok(())
}

// ---- Checklist --------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistInput {
    pub identity_confirmed: Option<bool>,
    pub weight_kg: Option<f64>,
    pub pregnancy: Option<tx::Pregnancy>,
    pub fasting_confirmed: Option<bool>,
    pub escort_name: Option<String>,
    pub escort_phone: Option<String>,
    pub no_alcohol: Option<bool>,
    pub medications_reviewed: Option<bool>,
    pub medication_changes: Option<String>,
    pub suicide_risk: Option<tx::RiskScreen>,
    /// When the weight was measured (RFC 3339); now when absent.
    pub weight_measured_at: Option<String>,
    /// A prescriber's reason to go ahead despite the baseline vitals; it
    /// answers the latest reading outside the pre-dose limits.
    pub vitals_override_reason: Option<String>,
    /// A prescriber's reason to go ahead after a positive suicide-risk
    /// signal, with the risk assessment.
    pub suicide_risk_override_reason: Option<String>,
    pub suicide_risk_assessment: Option<tx::RiskLevel>,
    /// Items confirmed earlier and now withdrawn (their keys, e.g.
    /// "fasting_confirmed"); a withdrawn item makes the visit not ready.
    #[serde(default)]
    pub withdraw: Vec<String>,
}

fn parse_time(field: &str, s: &str) -> Result<i64, Error> {
    s.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_microsecond())
        .map_err(|_| {
            invalid(
                field,
                format!("{s:?} is not a time (RFC 3339, e.g. 2026-11-24T09:30:00-07:00)"),
            )
        })
}

/// Saves what the nurse confirmed and withdraws what is no longer so;
/// overrides need a prescriber. A new weight voids an order written for
/// the old one, in the same transaction.
pub async fn save_checklist(
    state: &Clinic,
    c: &Caller,
    id: &str,
    input: ChecklistInput,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::ChecklistRecord,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let now = state.now();
    let v = &input;
    let overriding = input.vitals_override_reason.is_some()
        || input.suicide_risk_override_reason.is_some()
        || input.suicide_risk_assessment.is_some()
        || input
            .withdraw
            .iter()
            .any(|w| w == "vitals_override" || w == "suicide_risk_override");
    if overriding {
        c.require(Permission::DoseOrder, clinic_of(&e))?;
    }
    let record = state.store.record(&e.id).await?.ok_or(Error::NotFound)?;
    if !record.admin.is_empty() {
        return Err(Error::Conflict(
            "the dose has started; the checklist is closed".into(),
        ));
    }
    let p = protocol_of(state, &e)?;
    let who = c.label();
    let weight_measured_at = match (&v.weight_kg, input.weight_measured_at.as_deref()) {
        (Some(_), Some(s)) => {
            let t = parse_time("weight_measured_at", s)?;
            if t > now + MINUTE {
                return Err(invalid("weight_measured_at", "is in the future"));
            }
            Some(t)
        }
        (Some(_), None) => Some(now),
        (None, Some(_)) => return Err(invalid("weight_measured_at", "give the weight with it")),
        (None, None) => None,
    };
    // A vitals override answers the latest reading outside the limits.
    let vitals_override = match input
        .vitals_override_reason
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(reason) => {
            let started = None;
            let last = pre_dose_readings(&record, started)
                .filter(|o| tx::outside_gate(&p.pre_dose, &o.vitals()))
                .last()
                .ok_or_else(|| {
                    invalid(
                        "vitals_override_reason",
                        "no reading since check-in is outside the pre-dose limits: nothing to override",
                    )
                })?;
            Some(tx::Override {
                reason: reason.to_string(),
                by: who.clone(),
                at: now,
                reading_id: Some(last.id.clone()),
                assessment: None,
            })
        }
    };
    let suicide_risk_override = match (
        input
            .suicide_risk_override_reason
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()),
        input.suicide_risk_assessment,
    ) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "suicide_risk_assessment",
                "record the risk assessment (low, moderate or high) with the reason",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "suicide_risk_override_reason",
                "give the reason for the assessment",
            ))
        }
        (Some(reason), Some(level)) => Some(tx::Override {
            reason: reason.to_string(),
            by: who.clone(),
            at: now,
            reading_id: None,
            assessment: Some(level),
        }),
    };
    let given = Checklist {
        identity_confirmed: v.identity_confirmed,
        weight_kg: v.weight_kg,
        weight_measured_at,
        pregnancy: v.pregnancy,
        fasting_confirmed: v.fasting_confirmed,
        escort_name: v.escort_name.as_ref().map(|s| s.trim().to_string()),
        escort_phone: v.escort_phone.as_ref().map(|s| s.trim().to_string()),
        no_alcohol: v.no_alcohol,
        medications_reviewed: v.medications_reviewed,
        medication_changes: v.medication_changes.as_ref().map(|s| s.trim().to_string()),
        suicide_risk: v.suicide_risk,
        vitals_override,
        suicide_risk_override,
    };
    let errs = given.validate();
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    for (f, s, max) in [
        ("escort_name", &given.escort_name, 120),
        ("escort_phone", &given.escort_phone, 40),
        ("medication_changes", &given.medication_changes, 2000),
    ] {
        if s.as_ref().is_some_and(|s| s.len() > max) {
            return Err(invalid(f, format!("at most {max} characters")));
        }
    }
    if given == Checklist::default() && input.withdraw.is_empty() {
        return Err(Error::bad("the body confirms nothing", None));
    }
    let before: Checklist = match &record.checklist {
        Some(x) => stored("checklist", &e.id, &x.data)?,
        None => Checklist::default(),
    };
    let mut merged = before.merged_with(&given);
    for w in &input.withdraw {
        merged.withdraw(w).map_err(|e| Error::Invalid(vec![e]))?;
    }
    // An order is bound to the weight it was worked out from.
    let void = match (&record.order, order_maths(&record)?) {
        (Some(_), Some(m)) if m.weight_kg.is_some() && m.weight_kg != merged.weight_kg => {
            Some(match merged.weight_kg {
                Some(w) => format!(
                    "the weight changed from {} to {w} kg after the order",
                    m.weight_kg.unwrap_or_default()
                ),
                None => format!(
                    "the weight of {} kg the order was worked out from was withdrawn",
                    m.weight_kg.unwrap_or_default()
                ),
            })
        }
        _ => None,
    };
    let data = serde_json::to_string(&merged).map_err(|e| Error::Internal(e.to_string()))?;
    let mut detail = if overriding {
        "with prescriber override".to_string()
    } else {
        "saved".to_string()
    };
    if !input.withdraw.is_empty() {
        detail += &format!("; withdrawn: {}", input.withdraw.join(", "));
    }
    if let Some(why) = &void {
        detail += &format!("; order voided: {why}");
    }
    write(
        state,
        c,
        &e,
        Step::Checklist {
            data: &data,
            void: void.as_deref(),
        },
        Action::ChecklistRecord,
        Permission::EncounterRecord,
        Some(detail),
    )
    .await?;
    visit_of(state, &e).await
}

// ---- Dose order, check, timeline --------------------------------------------

/// The pre-dose state as it was when the dose was ordered: what the note
/// prints under "Before the dose", whatever changes later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreDoseState {
    /// Each checklist item: its label and its state in words.
    pub items: Vec<(String, String)>,
    pub checklist: Checklist,
    pub baseline: Option<Vitals>,
    /// When it was frozen (the order's time).
    pub at: i64,
}

fn item_words(i: &Item) -> String {
    match &i.state {
        tx::ItemState::Done => "done".to_string(),
        tx::ItemState::Overridden => "prescriber override".to_string(),
        tx::ItemState::Missing(w) | tx::ItemState::Blocked(w) => format!("not done: {w}"),
    }
}

/// Refuses a dose while anything keeps it from being given, naming each.
fn require_ready(v: &Visit) -> Result<(), Error> {
    if v.record.encounter.historical {
        return Err(Error::Conflict(
            "an imported past visit: no dose is given in it".into(),
        ));
    }
    if v.dose_blockers.is_empty() {
        return Ok(());
    }
    let missing = tx::incomplete(&v.items);
    let prefix = if missing.is_empty() {
        "the dose cannot be given yet"
    } else {
        "the checklist is not complete"
    };
    Err(Error::Conflict(format!(
        "{prefix}: {}",
        v.dose_blockers.join("; ")
    )))
}

/// The prescriber's order, refused until the checklist is complete, no
/// alert is open and the course allows a dose today. It is bound to
/// today's weight and keeps the pre-dose state as it is now.
pub async fn order_dose(state: &Clinic, c: &Caller, id: &str, dose: f64) -> Result<Visit, Error> {
    let e = encounter_of(state, c, Permission::DoseOrder, id, Action::DoseOrder).await?;
    c.require(Permission::DoseOrder, clinic_of(&e))?;
    let v = visit_of(state, &e).await?;
    if v.order.is_some() {
        return Err(Error::Conflict(
            "a dose is already ordered for this visit".into(),
        ));
    }
    require_ready(&v)?;
    let m = tx::order(&v.protocol, dose, v.checklist.weight_kg).map_err(Error::Invalid)?;
    let maths = serde_json::to_string(&m).map_err(|e| Error::Internal(e.to_string()))?;
    let frozen = PreDoseState {
        items: v
            .items
            .iter()
            .map(|i| (i.label.to_string(), item_words(i)))
            .collect(),
        checklist: v.checklist.clone(),
        baseline: v.baseline,
        at: state.now(),
    };
    let pre_dose = serde_json::to_string(&frozen).map_err(|e| Error::Internal(e.to_string()))?;
    let oid = store::treatment::new_id();
    write(
        state,
        c,
        &e,
        Step::Order {
            id: &oid,
            maths: &maths,
            mg: m.mg,
            second_check: m.second_check,
            pre_dose: &pre_dose,
        },
        Action::DoseOrder,
        Permission::DoseOrder,
        Some(m.summary()),
    )
    .await?;
    visit_of(state, &e).await
}

/// The prescriber withdraws the standing order before the dose, saying why.
pub async fn void_order(
    state: &Clinic,
    c: &Caller,
    id: &str,
    reason: &str,
) -> Result<Visit, Error> {
    let e = encounter_of(state, c, Permission::DoseOrder, id, Action::DoseOrder).await?;
    c.require(Permission::DoseOrder, clinic_of(&e))?;
    let reason = reason.trim();
    if reason.chars().count() < 5 || reason.len() > 500 {
        return Err(invalid(
            "reason",
            "say why in a few words (at most 500 characters)",
        ));
    }
    write(
        state,
        c,
        &e,
        Step::Void { reason },
        Action::DoseOrder,
        Permission::DoseOrder,
        Some(format!("voided: {reason}")),
    )
    .await?;
    visit_of(state, &e).await
}

/// The draws recorded for the standing order, as one lot: (lot number,
/// strength, expiry, mg drawn, who drew). Refused when nothing is drawn,
/// when two lots were drawn, or when less than the order was drawn.
async fn drawn_for(
    state: &Clinic,
    order_id: &str,
    mg: f64,
) -> Result<(String, f64, String, f64, Vec<String>), Error> {
    let draws = state.store.cs_draws_for_order(order_id).await?;
    let Some(first) = draws.first() else {
        return Err(Error::Conflict(
            "nothing is drawn for this order yet: record the draw in the Schedule III record first (its lot gives the volume)".into(),
        ));
    };
    if draws.iter().any(|d| d.lot_id != first.lot_id) {
        return Err(Error::Conflict(
            "the dose was drawn from more than one lot: waste the draws and draw it from one"
                .into(),
        ));
    }
    let drawn_mg: f64 = draws
        .iter()
        .map(|d| (d.drawn_ul * d.strength_mg_per_ml) as f64 / 1000.0)
        .sum();
    if drawn_mg + 1e-9 < mg {
        return Err(Error::Conflict(format!(
            "{drawn_mg} mg is drawn for a {mg} mg order: draw the rest first"
        )));
    }
    let lot = state
        .store
        .cs_lot(&first.lot_id)
        .await?
        .ok_or(Error::NotFound)?;
    let drawers = draws.iter().map(|d| d.drawn_by.clone()).collect();
    Ok((
        first.lot_number.clone(),
        first.strength_mg_per_ml as f64,
        lot.expires_on,
        drawn_mg,
        drawers,
    ))
}

/// A second person checks the order against the draw: the lot they read on
/// the vial must be the lot drawn, in date; they may not have written the
/// order or drawn the dose. The volume is worked out from that lot's strength.
pub async fn check_dose(
    state: &Clinic,
    c: &Caller,
    id: &str,
    lot: &str,
    expires: &str,
) -> Result<Visit, Error> {
    let e = encounter_of(state, c, Permission::DoseCheck, id, Action::DoseCheck).await?;
    c.require(Permission::DoseCheck, clinic_of(&e))?;
    let lot = lot.trim();
    if lot.is_empty() || lot.len() > 40 {
        return Err(invalid(
            "vial_lot",
            "give the vial's lot number (at most 40 characters)",
        ));
    }
    let typed_expiry: Option<jiff::civil::Date> = match expires.trim() {
        "" => None,
        s => Some(
            s.parse()
                .map_err(|_| invalid("vial_expires", "give the vial's expiry date (YYYY-MM-DD)"))?,
        ),
    };
    let tz = zone_of(state, clinic_of(&e)).await?;
    let today = local_date(state.now(), &tz);
    let v = visit_of(state, &e).await?;
    let (Some(o), Some(m)) = (&v.record.order, &v.order) else {
        return Err(Error::Conflict("no dose is ordered yet".into()));
    };
    let me = c.user.as_ref().map(|u| u.username.as_str());
    if Some(o.ordered_by.as_str()) == me {
        return Err(Error::Conflict(
            "you wrote the order: a second person checks it".into(),
        ));
    }
    let (vial_lot, vial_expires, prepared) = if m.is_liquid() {
        let (drawn_lot, strength, lot_expires, _, drawers) = drawn_for(state, &o.id, m.mg).await?;
        if drawers.iter().any(|d| Some(d.as_str()) == me) {
            return Err(Error::Conflict(
                "you drew the dose: a second person checks it".into(),
            ));
        }
        if !drawn_lot.eq_ignore_ascii_case(lot) {
            return Err(invalid(
                "vial_lot",
                format!("{lot} is not the lot drawn for this dose: check the vial in hand"),
            ));
        }
        let exp: jiff::civil::Date = lot_expires
            .parse()
            .map_err(|_| Error::Internal("a lot's expiry does not read back".into()))?;
        if typed_expiry.is_some_and(|t| t != exp) {
            return Err(invalid(
                "vial_expires",
                format!("lot {drawn_lot} expires on {exp} in the record: check the vial"),
            ));
        }
        if exp < today {
            return Err(invalid(
                "vial_expires",
                format!("lot {drawn_lot} expired on {exp}: draw another"),
            ));
        }
        let prepared = tx::prepare(m, &drawn_lot, strength).map_err(|e| Error::Invalid(vec![e]))?;
        let json = serde_json::to_string(&prepared).map_err(|e| Error::Internal(e.to_string()))?;
        (drawn_lot, exp.to_string(), Some(json))
    } else {
        // Sprays and troches are counted: the lot is read off the pack.
        let exp = typed_expiry
            .ok_or_else(|| invalid("vial_expires", "give the pack's expiry date (YYYY-MM-DD)"))?;
        if exp < today {
            return Err(invalid(
                "vial_expires",
                format!("the pack expired on {exp}: take another"),
            ));
        }
        (lot.to_string(), exp.to_string(), None)
    };
    write(
        state,
        c,
        &e,
        Step::Check {
            vial_lot: &vial_lot,
            vial_expires: &vial_expires,
            prepared: prepared.as_deref(),
        },
        Action::DoseCheck,
        Permission::DoseCheck,
        Some(format!("lot {vial_lot}")),
    )
    .await?;
    visit_of(state, &e).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminInput {
    pub kind: AdminKind,
    /// RFC 3339; now when absent.
    pub at: Option<String>,
    pub rate_ml_h: Option<f64>,
    pub reason: Option<String>,
}

/// One step of the administration timeline. A start (or a dose given at
/// once) re-checks everything at the moment of the dose: the checklist,
/// open alerts, the course, the second check, the volume from the draw,
/// the weight the order was worked out from, and the mg/kg against the
/// range. No time entered may precede the order, its check or the last
/// step of the timeline.
pub async fn administer(
    state: &Clinic,
    c: &Caller,
    id: &str,
    input: AdminInput,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::DoseAdminister,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let mut v = visit_of(state, &e).await?;
    let (Some(order), Some(stored)) = (v.order.clone(), v.record.order.clone()) else {
        return Err(Error::Conflict("no dose is ordered yet".into()));
    };
    let now = state.now();
    let at = match input.at.as_deref() {
        Some(s) => parse_time("at", s)?,
        None => now,
    };
    if at > now + MINUTE {
        return Err(invalid("at", "is in the future"));
    }
    if at < v.record.encounter.opened_at {
        return Err(invalid("at", "is before the patient was checked in"));
    }
    let starting = matches!(input.kind, AdminKind::Start | AdminKind::Given);
    let mut order = order;
    if starting {
        // Checked again at the moment of the dose: consent can be withdrawn,
        // a reading can cross the limits, an item can be withdrawn meanwhile.
        require_ready(&v)?;
        if stored.second_check && stored.checked_by.is_none() {
            return Err(Error::Conflict(
                "the protocol asks for a second person to check the dose first".into(),
            ));
        }
        if order.weight_kg.is_some() && order.weight_kg != v.checklist.weight_kg {
            return Err(Error::Conflict(
                "the weight changed since the order: the prescriber orders again".into(),
            ));
        }
        // The mg ordered, against the range at today's weight, once more.
        let again =
            tx::order(&v.protocol, order.dose, v.checklist.weight_kg).map_err(Error::Invalid)?;
        if (again.mg - order.mg).abs() > 1e-9 || order.mg > again.max_mg + 1e-9 {
            return Err(Error::Conflict(format!(
                "the order's {} mg no longer matches {} for today's weight: the prescriber orders again",
                order.mg,
                again.summary()
            )));
        }
        if order.is_liquid() && order.volume.is_none() {
            // No second check: the volume comes from the draw, now.
            let (lot, strength, _, _, _) = drawn_for(state, &stored.id, order.mg).await?;
            let prepared =
                tx::prepare(&order, &lot, strength).map_err(|e| Error::Invalid(vec![e]))?;
            let json =
                serde_json::to_string(&prepared).map_err(|e| Error::Internal(e.to_string()))?;
            write(
                state,
                c,
                &e,
                Step::Prepare { prepared: &json },
                Action::DoseCheck,
                Permission::EncounterRecord,
                Some(format!("volume from lot {lot}")),
            )
            .await?;
            v = visit_of(state, &e).await?;
            order = prepared;
        }
        // Not before the moment the record allowed the dose.
        let allowed = [
            Some(stored.ordered_at),
            stored.checked_at,
            v.record.order.as_ref().and_then(|o| o.prepared_at),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(stored.ordered_at);
        if at < allowed {
            return Err(invalid(
                "at",
                format!(
                    "is before the dose was ordered and checked ({}): a dose cannot start before it may",
                    state
                        .store
                        .clinic(clinic_of(&e))
                        .await?
                        .settings
                        .clock()
                        .stamp(allowed)
                ),
            ));
        }
    }
    if let Some(r) = &input.reason {
        if r.len() > 500 {
            return Err(invalid("reason", "at most 500 characters"));
        }
    }
    let ev = tx::next_event(
        &order,
        &v.events,
        AdminEvent {
            kind: input.kind,
            at,
            rate_ml_h: input.rate_ml_h,
            reason: input.reason.map(|r| r.trim().to_string()),
        },
    )
    .map_err(|e| Error::Invalid(vec![e]))?;
    let kind = serde_json::to_value(ev.kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let mut detail = kind.clone();
    if entered_late(ev.at, now) {
        detail += " (entered later)";
    }
    write(
        state,
        c,
        &e,
        Step::Admin {
            seq: v.events.len() as i64 + 1,
            kind: &kind,
            at: ev.at,
            rate_ml_h: ev.rate_ml_h,
            reason: ev.reason.as_deref(),
        },
        Action::DoseAdminister,
        Permission::EncounterRecord,
        Some(detail),
    )
    .await?;
    visit_of(state, &e).await
}

// ---- Readings ---------------------------------------------------------------

fn alerts_for(
    p: &Protocol,
    started: bool,
    baseline: Option<&Vitals>,
    v: &Vitals,
) -> Vec<(String, &'static str, String)> {
    let findings = if started {
        tx::check(&p.limits, baseline, v)
    } else {
        // Before the dose: the stop and pause limits as during it, and the
        // pre-dose gate (an alert, so nobody doses past it unseen).
        tx::check_before_dose(&p.pre_dose, &p.limits, v)
    };
    findings
        .into_iter()
        .map(|f| (f.parameter.to_string(), f.severity.key(), f.message))
        .collect()
}

#[derive(Debug)]
pub struct ReadingInput {
    pub values: Vitals,
    /// RFC 3339; now when absent.
    pub taken_at: Option<String>,
}

/// Splits a reading's JSON into its values and the named fields around
/// them, each error naming its field.
pub fn split_reading(
    mut o: serde_json::Map<String, serde_json::Value>,
    names: &[&str],
) -> Result<(Vitals, Vec<Option<serde_json::Value>>), FieldError> {
    let named = names.iter().map(|n| o.remove(*n)).collect();
    let v: Vitals =
        serde_path_to_error::deserialize(serde_json::Value::Object(o)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            match inner.strip_prefix("unknown field `") {
                Some(rest) => {
                    FieldError::new(rest.split('`').next().unwrap_or(""), "is not a known field")
                }
                None => FieldError::new(path, inner.split(" at line").next().unwrap_or(&inner)),
            }
        })?;
    Ok((v, named))
}

/// A reading typed at the chair.
pub async fn record_reading(
    state: &Clinic,
    c: &Caller,
    id: &str,
    input: ReadingInput,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::ObservationRecord,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    if e.status != "open" {
        return Err(Error::Conflict(
            "the patient has been discharged; this visit is closed".into(),
        ));
    }
    let errs = input.values.validate("");
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let now = state.now();
    let taken_at = match input.taken_at.as_deref() {
        Some(s) => parse_time("taken_at", s)?,
        None => now,
    };
    check_time(taken_at, now, e.opened_at).map_err(|m| invalid("taken_at", m))?;
    let p = protocol_of(state, &e)?;
    let (started, baseline) = state
        .store
        .monitoring_context(std::slice::from_ref(&e.id))
        .await?
        .remove(&e.id)
        .unwrap_or_default();
    let oid = store::treatment::new_id();
    let alerts = alerts_for(&p, started, baseline.as_ref(), &input.values);
    let kind = if alerts.is_empty() {
        "reading"
    } else {
        "alert"
    };
    let obs = NewObservation {
        source_key: format!("manual:{oid}"),
        id: oid,
        encounter_id: e.id.clone(),
        taken_at,
        v: input.values,
        recorded_by: c.user_id(),
        device_token_id: None,
        alerts,
    };
    state
        .store
        .insert_observations(
            vec![obs],
            vec![event(
                c,
                Action::ObservationRecord,
                Permission::EncounterRecord,
                &e,
            )],
        )
        .await?;
    state.floor.send(&e.clinic_id, &e.id, kind);
    visit_of(state, &e).await
}

/// A reading's time must be within the visit and not ahead of the clock:
/// a reading from before the patient was checked in to the chair is
/// another patient's, or nobody's, never this one's baseline.
fn check_time(taken_at: i64, now: i64, opened_at: i64) -> Result<(), String> {
    if taken_at > now + MINUTE {
        return Err("is in the future".into());
    }
    if taken_at < opened_at {
        return Err("is before the patient was checked in to this chair".into());
    }
    Ok(())
}

/// One reading from a monitor gateway.
#[derive(Debug)]
pub struct DeviceReading {
    /// The device's own id for the reading; a resend with the same id is a no-op.
    pub reading_id: String,
    /// The chair the monitor is at.
    pub chair_id: String,
    /// RFC 3339.
    pub taken_at: String,
    pub values: Vitals,
}

fn device_reading(item: serde_json::Value) -> Result<DeviceReading, Vec<FieldError>> {
    let serde_json::Value::Object(o) = item else {
        return Err(vec![FieldError::new("", "a reading must be a JSON object")]);
    };
    let (values, named) =
        split_reading(o, &["reading_id", "chair_id", "taken_at"]).map_err(|e| vec![e])?;
    let mut e = Vec::new();
    let mut text = |i: usize, name: &str| match &named[i] {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => {
            e.push(FieldError::new(name, "must be a string"));
            String::new()
        }
        None => {
            e.push(FieldError::new(name, "is required"));
            String::new()
        }
    };
    let reading_id = text(0, "reading_id");
    let chair_id = text(1, "chair_id");
    let taken_at = text(2, "taken_at");
    if !e.is_empty() {
        return Err(e);
    }
    Ok(DeviceReading {
        reading_id,
        chair_id,
        taken_at,
        values,
    })
}

/// What happened to each reading of a batch.
#[derive(Debug, Default, Serialize)]
pub struct IngestOutcome {
    pub stored: usize,
    pub duplicates: usize,
    pub alerts: usize,
    pub rejected: Vec<serde_json::Value>,
}

/// A batch from a monitor gateway. Each reading is checked on its own; the
/// good ones are stored (once, whatever is resent) and checked for alerts.
pub async fn ingest(
    state: &Clinic,
    c: &Caller,
    items: Vec<serde_json::Value>,
) -> Result<IngestOutcome, Error> {
    let clinics = c.require_any(Permission::DeviceIngest)?;
    let token_id = match &c.principal {
        domain::auth::Principal::Device { token_id, .. } => token_id.to_string(),
        _ => return Err(Error::Forbidden),
    };
    if items.is_empty() {
        return Err(Error::bad("the batch holds no readings", Some("readings")));
    }
    if items.len() > 5000 {
        return Err(Error::bad(
            "at most 5000 readings per batch",
            Some("readings"),
        ));
    }
    let now = state.now();
    let mut out = IngestOutcome::default();
    let mut parsed: Vec<(usize, DeviceReading, i64)> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let rid = item
            .get("reading_id")
            .and_then(|v| v.as_str())
            .map(String::from);
        let reject = |out: &mut IngestOutcome, errors: Vec<FieldError>| {
            out.rejected.push(serde_json::json!({
                "index": i,
                "reading_id": rid,
                "errors": errors.iter().map(|e| serde_json::json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
            }));
        };
        let r = match device_reading(item) {
            Ok(r) => r,
            Err(errors) => {
                reject(&mut out, errors);
                continue;
            }
        };
        let mut errs = r.values.validate("");
        if r.reading_id.is_empty() || r.reading_id.len() > 100 {
            errs.push(FieldError::new("reading_id", "1 to 100 characters"));
        }
        let at = match r.taken_at.trim().parse::<jiff::Timestamp>() {
            Ok(t) => t.as_microsecond(),
            Err(_) => {
                errs.push(FieldError::new(
                    "taken_at",
                    format!("{:?} is not a time (RFC 3339)", r.taken_at),
                ));
                0
            }
        };
        if !errs.is_empty() {
            reject(&mut out, errs);
            continue;
        }
        parsed.push((i, r, at));
    }
    let mut chairs: Vec<String> = parsed.iter().map(|p| p.1.chair_id.clone()).collect();
    chairs.sort();
    chairs.dedup();
    // The encounter rows alone (the full record grows with every reading)
    // with when each dose started, then the baselines: two queries for any
    // number of chairs.
    let clinic_ids: Vec<String> = clinics.iter().map(|k| k.to_string()).collect();
    let mut context: std::collections::HashMap<
        String,
        (Encounter, Arc<Protocol>, bool, Option<Vitals>),
    > = Default::default();
    for (enc, started, baseline) in state.store.chair_monitoring(&chairs, &clinic_ids).await? {
        let (Some(chair), Ok(p)) = (enc.resource_id.clone(), protocol_of(state, &enc)) else {
            continue;
        };
        context.insert(chair, (enc, p, started, baseline));
    }
    let mut obs = Vec::with_capacity(parsed.len());
    let mut touched: std::collections::BTreeMap<String, (Encounter, usize)> = Default::default();
    for (i, r, at) in parsed {
        let Some((e, p, started, baseline)) = context.get(&r.chair_id) else {
            out.rejected.push(serde_json::json!({
                "index": i, "reading_id": r.reading_id,
                "errors": [{"field": "chair_id", "message": "no open visit in this chair (unknown chair, or nobody checked in)"}],
            }));
            continue;
        };
        if let Err(m) = check_time(at, now, e.opened_at) {
            out.rejected.push(serde_json::json!({
                "index": i, "reading_id": r.reading_id, "errors": [{"field": "taken_at", "message": m}],
            }));
            continue;
        }
        let alerts = alerts_for(p, *started, baseline.as_ref(), &r.values);
        touched
            .entry(e.id.clone())
            .or_insert_with(|| (e.clone(), 0))
            .1 += 1;
        obs.push(NewObservation {
            id: store::treatment::new_id(),
            encounter_id: e.id.clone(),
            source_key: format!("device:{token_id}:{}", r.reading_id),
            taken_at: at,
            v: r.values,
            recorded_by: None,
            device_token_id: Some(token_id.clone()),
            alerts,
        });
    }
    out.rejected.sort_by_key(|r| r["index"].as_u64());
    if obs.is_empty() {
        return Ok(out);
    }
    let audit = touched
        .values()
        .map(|(e, n)| {
            let mut ev = event(c, Action::ObservationIngest, Permission::DeviceIngest, e);
            ev.detail = Some(format!("{n} readings"));
            ev
        })
        .collect();
    let (obs, stored) = state.ingest.store(&state.store, obs, audit).await?;
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    out.stored = stored.len();
    out.duplicates = obs.len() - stored.len();
    let mut alerting = std::collections::HashSet::new();
    for o in &obs {
        if stored.contains(&o.source_key) && !o.alerts.is_empty() {
            out.alerts += o.alerts.len();
            alerting.insert(o.encounter_id.clone());
        }
    }
    for (eid, (e, _)) in &touched {
        let kind = if alerting.contains(eid) {
            "alert"
        } else {
            "reading"
        };
        state.floor.send(&e.clinic_id, eid, kind);
    }
    Ok(out)
}

// ---- Alerts, medicines, adverse events -----------------------------------------

pub async fn acknowledge(
    state: &Clinic,
    c: &Caller,
    id: &str,
    alert_id: &str,
    response: Option<&str>,
    note: &str,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::AlertAcknowledge,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let record = state.store.record(&e.id).await?.ok_or(Error::NotFound)?;
    let a = record
        .alerts
        .iter()
        .find(|a| a.id == alert_id)
        .ok_or(Error::NotFound)?;
    let severity = match a.severity.as_str() {
        "stop" => tx::Severity::Stop,
        "pause" => tx::Severity::Pause,
        _ => tx::Severity::Warn,
    };
    let r =
        tx::check_acknowledgement(severity, response, note).map_err(|e| Error::Invalid(vec![e]))?;
    write(
        state,
        c,
        &e,
        Step::Ack {
            alert_id,
            response: r.key(),
            note: note.trim(),
        },
        Action::AlertAcknowledge,
        Permission::EncounterRecord,
        Some(format!("{}: {}", a.parameter, r.key())),
    )
    .await?;
    visit_of(state, &e).await
}

pub async fn give_medication(
    state: &Clinic,
    c: &Caller,
    id: &str,
    m: tx::MedicationGiven,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::MedicationRecord,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let errs = m.validate();
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let now = state.now();
    let at = m.at.unwrap_or(now);
    check_time(at, now, e.opened_at).map_err(|msg| invalid("at", msg))?;
    write(
        state,
        c,
        &e,
        Step::Medication { m: &m, at },
        Action::MedicationRecord,
        Permission::EncounterRecord,
        Some(m.name.trim().to_string()),
    )
    .await?;
    visit_of(state, &e).await
}

pub async fn adverse_event(
    state: &Clinic,
    c: &Caller,
    id: &str,
    ae: tx::AdverseEvent,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::AdverseEventRecord,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let errs = ae.validate();
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let pid = e.patient_id.clone();
    write(
        state,
        c,
        &e,
        Step::Adverse {
            patient: &pid,
            e: &ae,
        },
        Action::AdverseEventRecord,
        Permission::EncounterRecord,
        Some(ae.kind.clone()),
    )
    .await?;
    visit_of(state, &e).await
}

// ---- Recovery and discharge ---------------------------------------------------

pub async fn score_recovery(
    state: &Clinic,
    c: &Caller,
    id: &str,
    a: Aldrete,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::RecoveryScore,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let errs = a.validate();
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let v = visit_of(state, &e).await?;
    if tx::dose_ended_at(&v.events).is_none() {
        return Err(Error::Conflict(
            "recovery is scored after the dose has ended".into(),
        ));
    }
    let json = serde_json::to_string(&a).map_err(|e| Error::Internal(e.to_string()))?;
    write(
        state,
        c,
        &e,
        Step::Recovery {
            aldrete: &json,
            total: a.total() as i64,
        },
        Action::RecoveryScore,
        Permission::EncounterRecord,
        Some(format!("Aldrete {}", a.total())),
    )
    .await?;
    visit_of(state, &e).await
}

/// Discharge, only when the protocol's criteria are met and an escort is named.
pub async fn discharge(state: &Clinic, c: &Caller, id: &str, note: &str) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::EncounterDischarge,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    if note.len() > 2000 {
        return Err(invalid("note", "at most 2000 characters"));
    }
    let v = visit_of(state, &e).await?;
    if e.status != "open" {
        return Err(Error::Conflict(
            "the patient has already been discharged".into(),
        ));
    }
    if !v.discharge_blockers.is_empty() {
        return Err(Error::Conflict(format!(
            "not ready for discharge: {}",
            v.discharge_blockers.join("; ")
        )));
    }
    write(
        state,
        c,
        &e,
        Step::Discharge {
            note: note.trim(),
            jobs: &crate::jobs::discharge_jobs(&e.id, clinic_of(&e), patient_of(&e)?, state.now()),
        },
        Action::EncounterDischarge,
        Permission::EncounterRecord,
        None,
    )
    .await?;
    send_post_session(state, c, &e).await;
    visit_of(state, &e).await
}

/// Ends a visit in which no dose was given (the patient was unwell, the
/// pressure stayed high, they changed their mind), saying why: the chair
/// and the patient are free again and the order, if any, is voided.
pub async fn end_without_dose(
    state: &Clinic,
    c: &Caller,
    id: &str,
    reason: &str,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::EncounterDischarge,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let reason = reason.trim();
    if reason.chars().count() < 5 || reason.len() > 500 {
        return Err(invalid(
            "reason",
            "say why no dose was given, in a few words (at most 500 characters)",
        ));
    }
    if let Some(ch) = crate::documents::unprintable(reason) {
        return Err(invalid(
            "reason",
            format!("the character {ch:?} cannot be printed"),
        ));
    }
    if e.status != "open" {
        return Err(Error::Conflict("this visit has already ended".into()));
    }
    write(
        state,
        c,
        &e,
        Step::EndWithoutDose { reason },
        Action::EncounterDischarge,
        Permission::EncounterRecord,
        Some(format!("ended without a dose: {reason}")),
    )
    .await?;
    visit_of(state, &e).await
}

/// A second person attests that times entered afterwards are those of a
/// paper record: recovery then counts from the stop's written time. Who
/// entered the late times, or checked the patient in late, cannot attest.
pub async fn attest(state: &Clinic, c: &Caller, id: &str, note: &str) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::DoseAdminister,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let note = note.trim();
    if note.chars().count() < 5 || note.len() > 1000 {
        return Err(invalid(
            "note",
            "say which paper record the times come from (at most 1000 characters)",
        ));
    }
    let v = visit_of(state, &e).await?;
    let me = c
        .user
        .as_ref()
        .map(|u| u.username.clone())
        .unwrap_or_default();
    let mut late_by: Vec<&str> = v
        .record
        .admin
        .iter()
        .filter(|a| entered_late(a.at, a.recorded_at))
        .map(|a| a.recorded_by.as_str())
        .collect();
    if e.recorded_at.is_some_and(|r| entered_late(e.opened_at, r)) {
        late_by.push(e.opened_by.as_str());
    }
    if late_by.is_empty() {
        return Err(Error::Conflict(
            "nothing in this visit was entered later: there is no paper record to attest".into(),
        ));
    }
    if late_by.contains(&me.as_str()) {
        return Err(Error::Conflict(
            "you entered the later times: a second person attests the paper record".into(),
        ));
    }
    write(
        state,
        c,
        &e,
        Step::Attest { note },
        Action::DoseAdminister,
        Permission::EncounterRecord,
        Some("paper record attested".into()),
    )
    .await?;
    visit_of(state, &e).await
}

// ---- The session note -------------------------------------------------------------

fn hm(m: i64, zone: &domain::time::WallClock) -> String {
    zone.time(m)
}

/// The note assembled from the record, as plain text (what is signed),
/// with times on the clinic's wall clock.
pub fn note_text(v: &Visit, zone: &domain::time::WallClock) -> Result<String, Error> {
    let r = &v.record;
    let e = &r.encounter;
    let mut s = String::new();
    s += &format!("Ketamine session, {}\n", zone.date(e.opened_at));
    s += &format!("Patient: {} {}\n", e.given_name, e.family_name);
    s += &format!(
        "Protocol: {} (version {}); chair {}\n",
        v.protocol.name,
        e.protocol_version,
        e.chair.as_deref().unwrap_or("-")
    );
    if e.historical {
        s += "Imported from a paper record (history; no dose was given through Stillwater)\n";
    }
    if let Some(rec) = e.recorded_at.filter(|rec| entered_late(e.opened_at, *rec)) {
        s += &format!(
            "Checked in {}, entered later at {}\n",
            hm(e.opened_at, zone),
            hm(rec, zone)
        );
    }
    // Before the dose: as it stood when the dose was ordered, whatever
    // changed after (no order: as it stands).
    let frozen: Option<PreDoseState> = r
        .order
        .as_ref()
        .and_then(|o| o.pre_dose.as_deref())
        .map(|j| stored("state before the dose", &r.encounter.id, j))
        .transpose()?;
    let (items, checklist, baseline) = match &frozen {
        Some(f) => (f.items.clone(), f.checklist.clone(), f.baseline),
        None => (
            v.items
                .iter()
                .map(|i| (i.label.to_string(), item_words(i)))
                .collect(),
            v.checklist.clone(),
            v.baseline,
        ),
    };
    s += &match &frozen {
        Some(f) => format!("\nBefore the dose (as at the order, {})\n", hm(f.at, zone)),
        None => "\nBefore the dose\n".to_string(),
    };
    for (label, state) in &items {
        s += &format!("- {label}: {state}\n");
    }
    for (what, o) in [
        ("Vitals", &checklist.vitals_override),
        ("Suicide-risk screen", &checklist.suicide_risk_override),
    ] {
        if let Some(o) = o {
            let level = o
                .assessment
                .map(|a| format!(" (risk assessed {})", a.label()))
                .unwrap_or_default();
            s += &format!("- {what} override by {}{level}: {}\n", o.by, o.reason);
        }
    }
    if let Some(w) = checklist.weight_kg {
        s += &format!("- Weight today: {w} kg\n");
    }
    if let Some(m) = checklist
        .medication_changes
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        s += &format!("- Medication changes: {m}\n");
    }
    if let Some(b) = &baseline {
        s += &format!("- Baseline: {}\n", b.short());
    }
    s += "\nDose\n";
    for (summary, why, by, at) in &v.voided {
        s += &format!("- Voided at {} by {by}: {summary} ({why})\n", hm(*at, zone));
    }
    match (&v.order, &r.order) {
        (Some(m), Some(o)) => {
            s += &format!("- Ordered by {}: {}\n", o.ordered_by, m.summary());
            if let Some(by) = &o.checked_by {
                s += &format!(
                    "- Checked by {by}; vial lot {} (expires {})\n",
                    o.vial_lot.as_deref().unwrap_or("-"),
                    o.vial_expires.as_deref().unwrap_or("-")
                );
            }
            for a in &r.admin {
                let late = if entered_late(a.at, a.recorded_at) {
                    format!(", entered later at {}", hm(a.recorded_at, zone))
                } else {
                    String::new()
                };
                s += &format!(
                    "- {} {}{}{} ({}{late})\n",
                    hm(a.at, zone),
                    a.kind.replace('_', " "),
                    a.rate_ml_h
                        .map(|x| format!(" at {x} mL/h"))
                        .unwrap_or_default(),
                    a.reason
                        .as_deref()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default(),
                    a.recorded_by
                );
            }
            s += &format!(
                "- Delivered: {} mg of {} mg ordered\n",
                v.delivered_mg, m.mg
            );
        }
        _ => s += "- No dose given\n",
    }
    if let Some(why) = &e.no_dose_reason {
        s += &format!("- Ended without a dose: {why}\n");
    }
    if let (Some(by), Some(at)) = (&e.attested_by, e.attested_at) {
        s += &format!(
            "- Times entered later attested from the paper record by {by} at {}: {}\n",
            hm(at, zone),
            e.attestation.as_deref().unwrap_or("")
        );
    }
    s += &format!("\nMonitoring ({} readings)\n", r.observations.len());
    let range = |f: fn(&store::treatment::Observation) -> Option<i64>| {
        let vals: Vec<i64> = r.observations.iter().filter_map(f).collect();
        Some((*vals.iter().min()?, *vals.iter().max()?))
    };
    for (label, f) in [
        (
            "SBP",
            (|o: &store::treatment::Observation| o.sbp)
                as fn(&store::treatment::Observation) -> Option<i64>,
        ),
        ("DBP", |o| o.dbp),
        ("HR", |o| o.hr),
        ("SpO2", |o| o.spo2),
        ("RR", |o| o.rr),
        ("MOAA/S", |o| o.moaas),
        ("CADSS-6", |o| o.cadss6),
    ] {
        if let Some((lo, hi)) = range(f) {
            s += &format!("- {label} {lo}-{hi}\n");
        }
    }
    if !r.alerts.is_empty() {
        s += "\nAlerts\n";
        for a in &r.alerts {
            s += &format!(
                "- {} {}: {}; {}\n",
                hm(a.raised_at, zone),
                a.severity,
                a.message,
                match (&a.response, &a.ack_by) {
                    (Some(resp), Some(by)) => format!(
                        "response {} by {by}{}",
                        resp.replace('_', " "),
                        a.note
                            .as_deref()
                            .filter(|n| !n.is_empty())
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default()
                    ),
                    _ => "open".into(),
                }
            );
        }
    }
    if !r.medications.is_empty() {
        s += "\nMedicines given\n";
        for m in &r.medications {
            s += &format!(
                "- {} {} {} {} for {} ({})\n",
                hm(m.given_at, zone),
                m.name,
                m.dose,
                m.route,
                m.reason,
                m.given_by
            );
        }
    }
    if !r.adverse_events.is_empty() {
        s += "\nAdverse events\n";
        for a in &r.adverse_events {
            s += &format!("- {}\n", a.line());
        }
    }
    s += "\nRecovery and discharge\n";
    match (&v.aldrete, &r.recovery) {
        (Some(a), Some(rs)) => {
            s += &format!(
                "- Modified Aldrete {} ({} at {})\n",
                a.total(),
                rs.scored_by,
                hm(rs.scored_at, zone)
            )
        }
        _ => s += "- Not scored\n",
    }
    if let Some(n) = v.checklist.escort_name.as_deref() {
        s += &format!("- Escort: {n}\n");
    }
    match (&e.discharged_at, &e.discharged_by, &e.no_dose_reason) {
        (Some(at), Some(by), None) => s += &format!("- Discharged {} by {by}\n", hm(*at, zone)),
        (Some(at), Some(by), Some(_)) => s += &format!("- Visit ended {} by {by}\n", hm(*at, zone)),
        _ => s += "- Not yet discharged\n",
    }
    Ok(s)
}

/// The prescriber signs the note once the patient has left (discharged, or
/// the visit ended without a dose): what happens until then belongs in it.
/// It never changes; its hash goes into the audit chain, so a rewrite shows.
pub async fn sign_note(state: &Clinic, c: &Caller, id: &str) -> Result<Visit, Error> {
    let e = encounter_of(state, c, Permission::DoseOrder, id, Action::NoteSign).await?;
    c.require(Permission::DoseOrder, clinic_of(&e))?;
    let v = visit_of(state, &e).await?;
    if v.record.note.is_some() {
        return Err(Error::Conflict(
            "the note is signed and never changes: add an addendum".into(),
        ));
    }
    if e.status != "discharged" {
        return Err(Error::Conflict(
            "the note is signed after discharge (or after the visit ends without a dose)".into(),
        ));
    }
    let zone = state.store.clinic(clinic_of(&e)).await?.settings.clock();
    let body = note_text(&v, &zone)?;
    let sha = hex::encode(Sha256::digest(body.as_bytes()));
    write(
        state,
        c,
        &e,
        Step::Note {
            body: &body,
            sha256: &sha,
        },
        Action::NoteSign,
        Permission::DoseOrder,
        Some(format!("sha256 {sha}")),
    )
    .await?;
    visit_of(state, &e).await
}

pub async fn add_addendum(
    state: &Clinic,
    c: &Caller,
    id: &str,
    text: &str,
) -> Result<Visit, Error> {
    let e = encounter_of(
        state,
        c,
        Permission::EncounterRecord,
        id,
        Action::NoteAddendum,
    )
    .await?;
    c.require(Permission::EncounterRecord, clinic_of(&e))?;
    let text = text.trim();
    if text.len() < 3 || text.len() > 4000 {
        return Err(invalid("text", "write the addendum (3 to 4000 characters)"));
    }
    if let Some(ch) = crate::documents::unprintable(text) {
        return Err(invalid(
            "text",
            format!("the character {ch:?} cannot be printed"),
        ));
    }
    let record = state.store.record(&e.id).await?.ok_or(Error::NotFound)?;
    let Some(note) = record.note else {
        return Err(Error::Conflict(
            "there is no signed note yet to add to".into(),
        ));
    };
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    write(
        state,
        c,
        &e,
        Step::Addendum {
            note_id: &note.id,
            body: text,
            sha256: &sha,
        },
        Action::NoteAddendum,
        Permission::EncounterRecord,
        Some(format!("sha256 {sha}")),
    )
    .await?;
    visit_of(state, &e).await
}

/// The signed note and its addenda as a PDF, audited as an export.
pub async fn note_pdf(state: &Clinic, c: &Caller, id: &str) -> Result<Vec<u8>, Error> {
    use crate::documents::Block;
    let e = encounter_of(state, c, Permission::EncounterRead, id, Action::NoteExport).await?;
    let record = state.store.record(&e.id).await?.ok_or(Error::NotFound)?;
    let Some(note) = &record.note else {
        return Err(Error::NotFound);
    };
    state
        .store
        .audit(vec![event(
            c,
            Action::NoteExport,
            Permission::EncounterRead,
            &e,
        )])
        .await?;
    let zone = state.store.clinic(clinic_of(&e)).await?.settings.clock();
    let mut blocks = Vec::new();
    let mut lines = note.body.lines();
    if let Some(t) = lines.next() {
        blocks.push(Block::title(t));
    }
    for l in lines {
        if l.is_empty() {
            continue;
        }
        if l.starts_with("- ") || l.starts_with("Patient:") || l.starts_with("Protocol:") {
            blocks.push(Block::body(&printable(l)));
        } else {
            blocks.push(Block::heading(&printable(l)));
        }
    }
    blocks.push(Block::small(&format!(
        "Signed by {} at {}. SHA-256 {}",
        note.signed_by,
        zone.stamp(note.signed_at),
        note.sha256
    )));
    for a in &record.addenda {
        blocks.push(Block::heading(&format!(
            "Addendum by {}, {}",
            a.signed_by,
            zone.stamp(a.signed_at)
        )));
        blocks.push(Block::body(&printable(&a.body)));
    }
    crate::documents::render(&blocks, "Stillwater session note").map_err(Error::Internal)
}

/// Replaces what Helvetica cannot print (the note's own symbols) with ASCII.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| match crate::documents::unprintable(&c.to_string()) {
            None => c,
            Some(_) => '?',
        })
        .collect()
}

// ---- The floor board ----------------------------------------------------------------

/// One chair on the board.
#[derive(Debug, Clone, Serialize)]
pub struct ChairCard {
    pub encounter_id: String,
    pub chair: String,
    pub initials: String,
    pub route: String,
    pub phase: Phase,
    pub since: i64,
    /// Minutes left of the infusion or of minimum recovery.
    pub remaining_min: Option<i64>,
    pub latest: Option<Vitals>,
    /// Systolic pressure and SpO2 over the last hour, for the sparkline.
    pub sbp: Vec<(i64, i64)>,
    pub spo2: Vec<(i64, i64)>,
    pub next_due: Option<i64>,
    pub open_alerts: Vec<(String, String)>,
}

/// What is on file about the patient that matters at the chair, so that
/// nobody asks it again: allergies (from the assessment), the conditions
/// the prescriber set on eligibility ("hold clonazepam the night before"),
/// and the escort (from the patient's record, else their assessment form).
#[derive(Debug, Clone, Default)]
pub struct OnFile {
    pub allergies: String,
    pub conditions: String,
    pub escort_name: String,
    pub escort_phone: String,
}

/// The patient's facts on file for a visit the caller has already opened
/// (its read is audited with the visit).
pub async fn on_file(state: &Clinic, v: &Visit) -> Result<OnFile, Error> {
    let e = &v.record.encounter;
    let clinic = clinic_of(e);
    let pid: PatientId = e
        .patient_id
        .parse()
        .map_err(|_| Error::Internal("stored patient id is malformed".into()))?;
    let mut out = OnFile::default();
    let parts = crate::intake::latest_parts(state.store.assessment_parts(pid).await?)?;
    if let Some((p, _)) = &parts.patient {
        out.allergies = p.allergies.trim().to_string();
        out.escort_name = p.escort_name.trim().to_string();
        out.escort_phone = p.escort_phone.trim().to_string();
    }
    if let Some(p) = state.store.patient(pid, &[clinic]).await? {
        // The record is kept up to date by the desk: it wins.
        if let Some(n) = p.details.escort_name.filter(|n| !n.trim().is_empty()) {
            out.escort_name = n;
            out.escort_phone = p.details.escort_phone.unwrap_or_default();
        }
    }
    if let Some(d) = state.store.decisions(pid).await?.into_iter().next() {
        out.conditions = d.conditions.trim().to_string();
    }
    Ok(out)
}

/// Every chair of the day in a clinic, audited as one read of the floor.
pub async fn floor(state: &Clinic, c: &Caller, clinic: ClinicId) -> Result<Vec<ChairCard>, Error> {
    c.require(Permission::EncounterRead, clinic)?;
    // The day's visits, and after midnight still the evening's: a board
    // does not go blank at 00:00 while a late patient is recovering.
    let since = start_of_today(state, clinic)
        .await?
        .min(state.now() - 6 * 60 * MINUTE);
    let encounters = state.store.floor(clinic, since).await?;
    let mut ev = c.event(Action::FloorRead);
    ev.clinic_id = Some(clinic.to_string());
    ev.actor_role = c
        .principal
        .acting_role(Permission::EncounterRead, clinic)
        .map(|r| r.as_str().to_string());
    // The board names patients (initials, chairs): the record lists them.
    let mut named: Vec<&str> = encounters.iter().map(|e| e.patient_id.as_str()).collect();
    named.sort();
    named.dedup();
    ev.detail = Some(format!(
        "{} visits; patients: {}",
        encounters.len(),
        named.join(",")
    ));
    state.store.audit(vec![ev]).await?;
    let ids: Vec<String> = encounters.iter().map(|e| e.id.clone()).collect();
    let now = state.now();
    let (obs, alerts, admin) = state.store.floor_readings(&ids, now - 60 * MINUTE).await?;
    let mut cards = Vec::new();
    for e in encounters {
        let Ok(p) = protocol_of(state, &e) else {
            continue;
        };
        let events: Vec<AdminEvent> = admin
            .iter()
            .filter(|a| a.0 == e.id)
            .filter_map(|a| {
                Some(AdminEvent {
                    kind: serde_json::from_value(serde_json::json!(a.2)).ok()?,
                    at: a.1,
                    rate_ml_h: a.3,
                    reason: None,
                })
            })
            .collect();
        let mine: Vec<&store::treatment::Observation> =
            obs.iter().filter(|o| o.encounter_id == e.id).collect();
        let open: Vec<(String, String)> = alerts
            .iter()
            .filter(|a| a.encounter_id == e.id)
            .map(|a| (a.severity.clone(), a.message.clone()))
            .collect();
        // The board's phase needs no Aldrete: "ready" is confirmed on the chair view.
        let ended = tx::dose_ended_at(&events);
        let phase = if e.status == "discharged" {
            Phase::Discharged
        } else {
            match tx::dose_state(&events) {
                tx::DoseState::NotStarted => Phase::PreDose,
                tx::DoseState::Running { .. } | tx::DoseState::Paused => Phase::Dosing,
                tx::DoseState::Done => {
                    let rec_ok = ended.is_some_and(|t| {
                        now - t >= p.discharge.recovery_minutes_min as i64 * MINUTE
                    });
                    if rec_ok && open.is_empty() {
                        Phase::ReadyForDischarge
                    } else {
                        Phase::Recovery
                    }
                }
            }
        };
        let started = events.first().map(|x| x.at);
        let remaining_min = match phase {
            Phase::Dosing => {
                started.map(|s| (s + p.administration_minutes as i64 * MINUTE - now) / MINUTE)
            }
            Phase::Recovery => {
                ended.map(|t| (t + p.discharge.recovery_minutes_min as i64 * MINUTE - now) / MINUTE)
            }
            _ => None,
        }
        .map(|m| m.max(0));
        let latest = mine
            .iter()
            .map(|o| o.vitals())
            .reduce(|a, b| a.merged_with(&b));
        let last_bp = mine
            .iter()
            .rev()
            .find(|o| o.sbp.is_some())
            .map(|o| o.taken_at)
            .or(started);
        let next_due = matches!(phase, Phase::Dosing | Phase::Recovery)
            .then(|| last_bp.map(|t| t + p.monitoring.interval_minutes as i64 * MINUTE))
            .flatten();
        let initials = format!(
            "{}{}",
            e.given_name.chars().next().unwrap_or('?'),
            e.family_name.chars().next().unwrap_or('?')
        );
        cards.push(ChairCard {
            encounter_id: e.id.clone(),
            chair: e.chair.clone().unwrap_or_else(|| "-".into()),
            initials,
            route: e.route.clone(),
            phase,
            since: started.unwrap_or(e.opened_at),
            remaining_min,
            latest,
            sbp: mine
                .iter()
                .filter_map(|o| Some((o.taken_at, o.sbp?)))
                .collect(),
            spo2: mine
                .iter()
                .filter_map(|o| Some((o.taken_at, o.spo2?)))
                .collect(),
            next_due,
            open_alerts: open,
        });
    }
    Ok(cards)
}

// ---- For the floor's pages ----------------------------------------------------

/// Today's visits at a clinic still to check in, for a caller who records
/// visits there; audited with the patients listed.
pub async fn to_check_in(
    state: &Clinic,
    c: &Caller,
    clinic: ClinicId,
) -> Result<Vec<store::scheduling::Appointment>, Error> {
    c.require(Permission::EncounterRecord, clinic)?;
    let from = start_of_today(state, clinic).await?;
    let visits: Vec<_> = state
        .store
        .clinic_appointments(clinic, from, from + 24 * 60 * MINUTE)
        .await?
        .into_iter()
        .filter(|a| {
            matches!(a.status, store::scheduling::Status::Booked)
                && a.series_role.as_deref() != Some("integration")
        })
        .collect();
    crate::scheduling::audit_listing(state, c, clinic, "check-in list", &visits).await?;
    Ok(visits)
}

/// The patient of a booked visit the caller is checking in.
pub async fn patient_of_visit(
    state: &Clinic,
    c: &Caller,
    visit: domain::ids::AppointmentId,
) -> Result<PatientId, Error> {
    let clinics = c.clinics_with(Permission::EncounterRecord);
    match state.store.appointment(visit, &clinics).await? {
        Some(a) => Ok(a.patient_id),
        None => Err(Error::NotFound),
    }
}

/// The clinic of an encounter, when the caller may record visits there.
pub async fn clinic_of_encounter(
    state: &Clinic,
    c: &Caller,
    id: &str,
) -> Result<Option<String>, Error> {
    let clinic = state.store.encounter(id).await?.map(|x| x.clinic_id);
    Ok(clinic.filter(|k| {
        k.parse::<ClinicId>()
            .is_ok_and(|k| c.may(Permission::EncounterRecord, k))
    }))
}

/// Where a patient could be checked in now, without a booking.
pub struct ChairsNow {
    /// The patient has a treatment plan (without one there is no visit to open).
    pub plan: bool,
    /// Active chairs able to take the plan's route and free now.
    pub free: Vec<store::scheduling::ResourceRecord>,
    /// Chairs able to take it but in use now, by name.
    pub in_use: Vec<String>,
}

impl ChairsNow {
    /// Why the patient cannot be checked in now, when they cannot.
    pub fn why_not(&self) -> Option<String> {
        if !self.plan {
            Some("Check-in opens once the patient has a treatment plan.".into())
        } else if self.free.is_empty() && self.in_use.is_empty() {
            Some("No active chair here can take this patient's route.".into())
        } else if self.free.is_empty() {
            Some(format!(
                "No chair is free now: {} in use. Discharge or move a patient first, or book a time.",
                self.in_use.join(", ")
            ))
        } else {
            None
        }
    }
}

/// The active chairs of a clinic for the patient's next visit by the route
/// of their newest plan (an IV visit needs an IV-capable chair), free or in
/// use now.
pub async fn check_in_chairs(
    state: &Clinic,
    c: &Caller,
    clinic: ClinicId,
    patient: PatientId,
) -> Result<ChairsNow, Error> {
    c.require(Permission::EncounterRecord, clinic)?;
    let Some(plan) = state.store.plans(patient).await?.into_iter().next() else {
        return Ok(ChairsNow {
            plan: false,
            free: vec![],
            in_use: vec![],
        });
    };
    let route = plan.route.as_str();
    let chairs: Vec<_> = state
        .store
        .resources(clinic)
        .await?
        .into_iter()
        .filter(|r| {
            r.active
                && matches!(r.resource.kind, domain::scheduling::ResourceKind::Chair)
                && (route != "iv" || r.resource.caps.iv)
        })
        .collect();
    let ids: Vec<String> = chairs.iter().map(|r| r.resource.id.to_string()).collect();
    let busy = state.store.open_encounters_by_chair(&ids).await?;
    let (free, taken): (Vec<_>, Vec<_>) = chairs.into_iter().partition(|r| {
        let id = r.resource.id.to_string();
        !busy.iter().any(|b| b.resource_id.as_deref() == Some(&id))
    });
    Ok(ChairsNow {
        plan: true,
        free,
        in_use: taken.into_iter().map(|r| r.resource.name).collect(),
    })
}
