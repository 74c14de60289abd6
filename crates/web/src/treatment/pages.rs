//! Treatment-day pages: the floor board (every chair of the day, live over
//! server-sent events, with check-in from the day's visits) and the chair
//! view a nurse runs a session from on a tablet: checklist, order and
//! check, timeline, readings, alerts, medicines, recovery, discharge, note.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use domain::auth::Permission;
use domain::ids::ClinicId;
use domain::time::WallClock;
use domain::treatment::{self as tx, Aldrete, Vitals};
use domain::FieldError;
use serde::Deserialize;

use crate::auth::{Caller, Posted, Staff, StaffForm};
use crate::error::Error;
use crate::ui::notice;
use crate::ui::Layout;
use crate::ui::{page_id, render, see_other, PageResult};
use crate::AppState;
use clinic::treatment as uc;

const MINUTE: i64 = 60_000_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/floor", get(floor_page))
        .route("/floor/check-in", post(check_in_submit))
        .route("/encounters/{id}", get(chair_page))
        .route("/encounters/{id}/note.pdf", get(note_pdf))
        .route("/encounters/{id}/{step}", post(step_submit))
}

// ---- Floor ------------------------------------------------------------------

struct Card {
    href: String,
    chair: String,
    initials: String,
    route: String,
    phase: &'static str,
    phase_key: &'static str,
    since: String,
    remaining: String,
    latest: String,
    spark: String,
    due: String,
    overdue: bool,
    alerts: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "treatment/floor.html")]
struct FloorPage {
    layout: Layout,
    clinic: String,
    clinics: Vec<(String, String, bool)>,
    cards: Vec<Card>,
    visits: Vec<(String, String)>,
    chairs: Vec<(String, String)>,
    can_check_in: bool,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "treatment/floor_board.html")]
struct FloorBoard {
    cards: Vec<Card>,
}

#[derive(Deserialize, Default)]
struct FloorQuery {
    clinic: Option<String>,
    partial: Option<String>,
}

/// Points of a sparkline in a 100 x 30 box.
fn spark(points: &[(i64, i64)], from: i64, to: i64, lo: i64, hi: i64) -> String {
    let span = (to - from).max(1) as f64;
    points
        .iter()
        .map(|(t, v)| {
            let x = ((t - from) as f64 / span * 100.0).clamp(0.0, 100.0);
            let y = 30.0 - ((v - lo) as f64 / (hi - lo) as f64 * 30.0).clamp(0.0, 30.0);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn clock(m: i64, zone: &WallClock) -> String {
    zone.time(m)
}

fn cards_of(list: Vec<uc::ChairCard>, zone: &WallClock, now: i64) -> Vec<Card> {
    list.into_iter()
        .map(|c| Card {
            href: format!("/encounters/{}", c.encounter_id),
            chair: c.chair,
            initials: c.initials,
            route: c.route.to_uppercase(),
            phase: c.phase.label(),
            phase_key: c.phase.key(),
            since: format!("{} min", (now - c.since) / MINUTE),
            remaining: c
                .remaining_min
                .map(|m| format!("{m} min left"))
                .unwrap_or_default(),
            latest: c
                .latest
                .map(|v| v.short())
                .unwrap_or_else(|| "no readings yet".into()),
            spark: spark(&c.sbp, now - 60 * MINUTE, now, 80, 200),
            due: c.next_due.map(|d| clock(d, zone)).unwrap_or_default(),
            overdue: c.next_due.is_some_and(|d| d < now),
            alerts: c.open_alerts,
        })
        .collect()
}

async fn floor_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Query(q): Query<FloorQuery>,
) -> PageResult {
    floor_view(&state, &c, q, None).await
}

async fn floor_view(
    state: &AppState,
    c: &Caller,
    q: FloorQuery,
    error: Option<String>,
) -> PageResult {
    let mine = c.require_any(Permission::EncounterRead)?;
    let clinic: ClinicId = match q.clinic.as_deref() {
        Some(s) => page_id(s)?,
        None => mine[0],
    };
    let all = clinic::settings::clinics(state, c).await?;
    let here = all.iter().find(|k| k.id == clinic).ok_or(Error::NotFound)?;
    let zone = here.settings.clock();
    let cards = cards_of(uc::floor(state, c, clinic).await?, &zone, state.now());
    if q.partial.is_some() {
        return render(&FloorBoard { cards });
    }
    let can_check_in = c.may(Permission::EncounterRecord, clinic);
    let (mut visits, mut chairs) = (Vec::new(), Vec::new());
    if can_check_in {
        for a in uc::to_check_in(state, c, clinic).await? {
            visits.push((
                a.id.to_string(),
                format!(
                    "{} {} {}, {}",
                    clock(a.starts_at, &zone),
                    a.patient_given,
                    a.patient_family,
                    a.type_name
                ),
            ));
        }
        for r in clinic::scheduling::resources(state, clinic).await? {
            if r.active && matches!(r.resource.kind, domain::scheduling::ResourceKind::Chair) {
                chairs.push((r.resource.id.to_string(), r.resource.name.clone()));
            }
        }
    }
    render(&FloorPage {
        layout: Layout::new(c, "Floor", "floor"),
        clinic: clinic.to_string(),
        clinics: all
            .iter()
            .filter(|k| mine.contains(&k.id))
            .map(|k| (k.id.to_string(), k.settings.name.clone(), k.id == clinic))
            .collect(),
        cards,
        visits,
        chairs,
        can_check_in,
        error,
    })
}

async fn check_in_submit(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let clinic = f.form.get("clinic").unwrap_or_default();
    let appointment = f.form.get("appointment_id").unwrap_or_default();
    // From a patient's chart: a visit nobody booked (a walk-in, or a visit
    // booked elsewhere).
    if let Some(pid) = f.form.get("patient_id").filter(|s| !s.is_empty()) {
        let input = uc::CheckIn {
            patient_id: pid.clone(),
            appointment_id: None,
            chair_id: f.form.get("chair_id").filter(|s| !s.is_empty()),
            at: late_entry(&state, Some(&clinic), &f.form).await?,
        };
        return match uc::check_in(&state, &f.caller, input).await {
            Ok(id) => Ok(see_other(&format!("/encounters/{id}"))),
            Err(Error::Invalid(e)) => Err(Error::Conflict(
                e.iter()
                    .map(|x| x.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .into()),
            Err(e) => Err(e.into()),
        };
    }
    let Some(aid) = appointment.parse().ok() else {
        return floor_view(
            &state,
            &f.caller,
            FloorQuery {
                clinic: Some(clinic),
                partial: None,
            },
            Some("choose the visit to check in".into()),
        )
        .await;
    };
    let pid = uc::patient_of_visit(&state, &f.caller, aid)
        .await?
        .to_string();
    let input = uc::CheckIn {
        patient_id: pid,
        appointment_id: Some(appointment),
        chair_id: f.form.get("chair_id").filter(|s| !s.is_empty()),
        at: None,
    };
    match uc::check_in(&state, &f.caller, input).await {
        Ok(id) => Ok(see_other(&format!("/encounters/{id}"))),
        Err(e) => {
            let (error, _) = notice(Err(e))?;
            floor_view(
                &state,
                &f.caller,
                FloorQuery {
                    clinic: Some(clinic),
                    partial: None,
                },
                error,
            )
            .await
        }
    }
}

// ---- The chair view -------------------------------------------------------------

struct Row {
    when: String,
    what: String,
    who: String,
}

#[derive(Template)]
#[template(path = "treatment/encounter.html")]
struct ChairPage {
    layout: Layout,
    /// Allergies, eligibility conditions and the escort, as on file.
    on_file: uc::OnFile,
    /// The patient's intention for this session, and when and where it was
    /// written.
    intention: Option<(String, String)>,
    /// The page a tablet is handed over to for the patient to write it.
    intention_href: String,
    id: String,
    clinic_id: String,
    patient_href: String,
    /// Where staff fill in the first pre-session instrument with the patient.
    pre_session_href: String,
    name: String,
    chair: String,
    protocol: String,
    phase: &'static str,
    phase_key: &'static str,
    open: bool,
    error: Option<String>,
    items: Vec<(&'static str, &'static str, &'static str, String)>,
    ready: bool,
    checklist_open: bool,
    c: tx::Checklist,
    /// The saved choices, so the form shows them.
    pregnancy_key: String,
    risk_key: String,
    order: Option<String>,
    /// Orders voided before the dose, in words.
    voided: Vec<String>,
    /// What keeps the dose from being ordered or started.
    dose_blockers: Vec<String>,
    /// The visit may end without a dose (nothing given yet).
    may_end_without_dose: bool,
    /// Times were entered later and nobody has attested them yet.
    may_attest: bool,
    attested: String,
    no_dose_reason: String,
    order_by: String,
    needs_check: bool,
    checked: String,
    dose_unit: &'static str,
    dose_start: f64,
    dose_range: String,
    state_key: &'static str,
    delivered: String,
    timeline: Vec<Row>,
    readings: Vec<Row>,
    chart: Chart,
    alerts: Vec<(String, String, String, String, bool)>,
    responses: Vec<(&'static str, &'static str)>,
    medicines: Vec<Row>,
    rescue: Vec<(&'static str, &'static str, &'static str)>,
    adverse: Vec<Row>,
    ae_kinds: Vec<(&'static str, &'static str)>,
    aldrete_items: Vec<(&'static str, &'static str, [&'static str; 3])>,
    aldrete: String,
    blockers: Vec<String>,
    instructions: Vec<&'static str>,
    /// The next integration session booked, in words; empty when none.
    next_session: String,
    /// Where to book one (when the caller may book).
    book_href: String,
    /// The Schedule III draws for this dose, in words, and where to record
    /// what was given and wasted (when the caller handles the stock).
    draws: Vec<String>,
    substances_href: String,
    next_due: String,
    overdue: bool,
    note: Option<String>,
    note_sig: String,
    addenda: Vec<Row>,
    can_order: bool,
    can_check: bool,
    can_record: bool,
    moaas: Vec<u8>,
}

/// The session's vitals as an SVG chart: SBP, DBP and HR against time, the
/// dose shaded, alerts marked.
#[derive(Default)]
struct Chart {
    sbp: String,
    dbp: String,
    hr: String,
    spo2: String,
    dose: Option<(f64, f64)>,
    alerts: Vec<(f64, String)>,
    start: String,
    end: String,
    label: String,
}

fn chart(v: &uc::Visit, zone: &WallClock) -> Chart {
    let r = &v.record;
    let from = r
        .encounter
        .opened_at
        .min(r.observations.first().map_or(i64::MAX, |o| o.taken_at));
    let to = r
        .encounter
        .discharged_at
        .unwrap_or(v.now)
        .max(from + 30 * MINUTE);
    let x = |t: i64| ((t - from) as f64 / (to - from) as f64 * 600.0).clamp(0.0, 600.0);
    let y = |val: i64| 200.0 - ((val - 40) as f64 / 180.0 * 200.0).clamp(0.0, 200.0);
    let line = |f: fn(&clinic::records::treatment::Observation) -> Option<i64>| {
        r.observations
            .iter()
            .filter_map(|o| Some(format!("{:.1},{:.1}", x(o.taken_at), y(f(o)?))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let start = v.events.first().map(|e| e.at);
    let end = tx::dose_ended_at(&v.events).unwrap_or(v.now);
    let label = format!(
        "Vitals from {} to {}: {} readings{}",
        clock(from, zone),
        clock(to, zone),
        r.observations.len(),
        if r.alerts.is_empty() {
            String::new()
        } else {
            format!(", {} alerts", r.alerts.len())
        }
    );
    Chart {
        sbp: line(|o| o.sbp),
        dbp: line(|o| o.dbp),
        hr: line(|o| o.hr),
        spo2: line(|o| o.spo2),
        dose: start.map(|s| (x(s), (x(end) - x(s)).max(1.0))),
        alerts: r
            .alerts
            .iter()
            .map(|a| (x(a.raised_at), a.message.clone()))
            .collect(),
        start: clock(from, zone),
        end: clock(to, zone),
        label,
    }
}

async fn chair_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let v = uc::visit(state, c, id).await?;
    let e = &v.record.encounter;
    let clinic: ClinicId = e.clinic_id.parse().unwrap_or_default();
    let zone = clinic::settings::record(state, clinic)
        .await?
        .settings
        .clock();
    let when = |m: i64| clock(m, &zone);
    // Integration within a few days of the dose: the next one booked, or a
    // way to book it before the patient leaves.
    let (mut next_session, mut book_href) = (String::new(), String::new());
    if c.may(Permission::ScheduleRead, clinic) {
        let pid = e.patient_id.parse().map_err(|_| Error::NotFound)?;
        match clinic::outbox::next_integration(state, clinic, pid).await? {
            Some(a) => next_session = zone.stamp(a.starts_at),
            None if c.may(Permission::ScheduleBook, clinic) => {
                book_href = format!("/patients/{}/book", e.patient_id)
            }
            None => {}
        }
    }
    // The controlled-substance record of this dose: each draw with what was
    // given and wasted out of it.
    let mut draws = Vec::new();
    if let Some(o) = &v.record.order {
        for d in clinic::substances::draws_for_order(state, c, &o.id).await? {
            let ml = domain::substances::fmt_ml;
            draws.push(format!(
                "{} drawn from lot {} by {} at {}: {} given, {} wasted{}",
                ml(d.drawn_ul),
                d.lot_number,
                d.drawn_by,
                when(d.drawn_at),
                ml(d.administered_ul),
                ml(d.wasted_ul),
                if d.remaining_ul() > 0 {
                    format!(", {} still to account for", ml(d.remaining_ul()))
                } else {
                    String::new()
                }
            ));
        }
    }
    let substances_href = if c.may(Permission::CsHandle, clinic) {
        format!("/substances?clinic={clinic}")
    } else {
        String::new()
    };
    let items = v
        .items
        .iter()
        .map(|i| match &i.state {
            tx::ItemState::Done => (i.key, i.label, "done", String::new()),
            tx::ItemState::Overridden => {
                (i.key, i.label, "overridden", "prescriber override".into())
            }
            tx::ItemState::Missing(w) => (i.key, i.label, "missing", w.clone()),
            tx::ItemState::Blocked(w) => (i.key, i.label, "blocked", w.clone()),
        })
        .collect();
    let order = v.order.as_ref().map(|m| m.summary());
    let stored = v.record.order.as_ref();
    let late = |at: i64, recorded: i64| {
        if uc::entered_late(at, recorded) {
            format!(" (entered {})", when(recorded))
        } else {
            String::new()
        }
    };
    let any_late = v
        .record
        .admin
        .iter()
        .any(|a| uc::entered_late(a.at, a.recorded_at))
        || e.recorded_at
            .is_some_and(|r| uc::entered_late(e.opened_at, r));
    let state_key = match tx::dose_state(&v.events) {
        tx::DoseState::NotStarted => "not_started",
        tx::DoseState::Running { .. } => "running",
        tx::DoseState::Paused => "paused",
        tx::DoseState::Done => "done",
    };
    let readings = v
        .record
        .observations
        .iter()
        .rev()
        .take(12)
        .map(|o| Row {
            when: when(o.taken_at),
            what: o.vitals().short(),
            who: o.source.clone(),
        })
        .collect();
    let open = e.status == "open";
    let on_file = uc::on_file(state, &v).await?;
    // The checklist's escort starts from the one on file.
    let mut checklist = v.checklist.clone();
    if checklist.escort_name.is_none() && !on_file.escort_name.is_empty() {
        checklist.escort_name = Some(on_file.escort_name.clone());
        if checklist.escort_phone.is_none() && !on_file.escort_phone.is_empty() {
            checklist.escort_phone = Some(on_file.escort_phone.clone());
        }
    }
    let intention = clinic::intentions::of_encounter(state, e).await?.map(|i| {
        (
            i.body,
            format!(
                "written {} {}",
                if i.source == "portal" {
                    "in the portal"
                } else {
                    "on the tablet"
                },
                zone.day_time(i.written_at)
            ),
        )
    });
    let page = ChairPage {
        on_file,
        intention,
        intention_href: format!("/patients/{}/intention", e.patient_id),
        layout: Layout::new(
            c,
            format!("Chair {}", e.chair.as_deref().unwrap_or("")),
            "floor",
        )
        .with_flash(flash),
        id: e.id.clone(),
        clinic_id: e.clinic_id.clone(),
        patient_href: format!("/patients/{}", e.patient_id),
        pre_session_href: v
            .protocol
            .pre_session_instruments
            .first()
            .filter(|_| c.may(Permission::MeasureRecord, clinic))
            .map(|i| format!("/patients/{}/measures/new?instrument={i}", e.patient_id))
            .unwrap_or_default(),
        name: format!("{} {}", e.given_name, e.family_name),
        chair: e.chair.clone().unwrap_or_default(),
        protocol: format!("{} (v{})", v.protocol.name, v.protocol.version),
        phase: v.phase.label(),
        phase_key: v.phase.key(),
        open,
        error,
        items,
        ready: v.ready_to_dose,
        checklist_open: open && v.events.is_empty(),
        c: checklist,
        pregnancy_key: key_of(&v.checklist.pregnancy),
        risk_key: key_of(&v.checklist.suicide_risk),
        order,
        voided: v
            .voided
            .iter()
            .map(|(summary, why, by, at)| {
                format!("Voided by {by} at {}: {summary}. {why}", when(*at))
            })
            .collect(),
        dose_blockers: v.dose_blockers.clone(),
        may_end_without_dose: open && v.events.is_empty(),
        may_attest: any_late && e.attested_by.is_none(),
        attested: match (&e.attested_by, e.attested_at) {
            (Some(by), Some(at)) => format!(
                "Times entered later attested from the paper record by {by} at {}: {}",
                when(at),
                e.attestation.as_deref().unwrap_or("")
            ),
            _ => String::new(),
        },
        no_dose_reason: e.no_dose_reason.clone().unwrap_or_default(),
        order_by: stored.map(|o| o.ordered_by.clone()).unwrap_or_default(),
        needs_check: stored.is_some_and(|o| o.second_check && o.checked_by.is_none()),
        checked: stored
            .and_then(|o| {
                Some(format!(
                    "Checked by {}; vial lot {} (expires {})",
                    o.checked_by.as_ref()?,
                    o.vial_lot.as_deref().unwrap_or("-"),
                    o.vial_expires.as_deref().unwrap_or("-")
                ))
            })
            .unwrap_or_default(),
        dose_unit: v.protocol.dose.unit.label(),
        dose_start: v.protocol.dose.start,
        dose_range: format!(
            "{}-{} {}",
            v.protocol.dose.min,
            v.protocol.dose.max,
            v.protocol.dose.unit.label()
        ),
        state_key,
        delivered: v
            .order
            .as_ref()
            .map(|o| format!("{} of {} mg", v.delivered_mg, o.mg))
            .unwrap_or_default(),
        timeline: v
            .record
            .admin
            .iter()
            .map(|a| Row {
                when: format!("{}{}", when(a.at), late(a.at, a.recorded_at)),
                what: format!(
                    "{}{}{}",
                    a.kind.replace('_', " "),
                    a.rate_ml_h
                        .map(|x| format!(" at {x} mL/h"))
                        .unwrap_or_default(),
                    a.reason
                        .as_deref()
                        .map(|x| format!(": {x}"))
                        .unwrap_or_default()
                ),
                who: a.recorded_by.clone(),
            })
            .collect(),
        readings,
        chart: chart(&v, &zone),
        alerts: v
            .record
            .alerts
            .iter()
            .rev()
            .map(|a| {
                (
                    a.id.clone(),
                    a.severity.clone(),
                    format!("{} {}", when(a.raised_at), a.message),
                    match (&a.response, &a.ack_by) {
                        (Some(r), Some(by)) => format!(
                            "{} by {by}{}",
                            r.replace('_', " "),
                            a.note
                                .as_deref()
                                .filter(|n| !n.is_empty())
                                .map(|n| format!(": {n}"))
                                .unwrap_or_default()
                        ),
                        _ => String::new(),
                    },
                    a.ack_at.is_none(),
                )
            })
            .collect(),
        responses: tx::Response::ALL
            .iter()
            .map(|r| (r.key(), r.label()))
            .collect(),
        medicines: v
            .record
            .medications
            .iter()
            .map(|m| Row {
                when: when(m.given_at),
                what: format!("{} {} {} for {}", m.name, m.dose, m.route, m.reason),
                who: m.given_by.clone(),
            })
            .collect(),
        rescue: tx::RESCUE_MEDICINES.to_vec(),
        adverse: v
            .record
            .adverse_events
            .iter()
            .map(|a| Row {
                when: when(a.recorded_at),
                what: a.line(),
                who: a.recorded_by.clone(),
            })
            .collect(),
        ae_kinds: tx::ADVERSE_EVENTS.to_vec(),
        aldrete_items: tx::ALDRETE_ITEMS.to_vec(),
        aldrete: v
            .aldrete
            .map(|a| format!("Modified Aldrete {} of 10", a.total()))
            .unwrap_or_default(),
        blockers: v.discharge_blockers.clone(),
        instructions: tx::DISCHARGE_INSTRUCTIONS.to_vec(),
        next_session,
        book_href,
        draws,
        substances_href,
        next_due: v.next_due.map(when).unwrap_or_default(),
        overdue: v.next_due.is_some_and(|d| d < v.now),
        note: v.record.note.as_ref().map(|n| n.body.clone()),
        note_sig: v
            .record
            .note
            .as_ref()
            .map(|n| {
                format!(
                    "Signed by {} at {} · SHA-256 {}",
                    n.signed_by,
                    zone.stamp(n.signed_at),
                    &n.sha256[..16]
                )
            })
            .unwrap_or_default(),
        addenda: v
            .record
            .addenda
            .iter()
            .map(|a| Row {
                when: zone.stamp(a.signed_at),
                what: a.body.clone(),
                who: a.signed_by.clone(),
            })
            .collect(),
        can_order: c.may(Permission::DoseOrder, clinic),
        can_check: c.may(Permission::DoseCheck, clinic),
        can_record: c.may(Permission::EncounterRecord, clinic),
        moaas: vec![5, 4, 3, 2, 1, 0],
    };
    render(&page)
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

async fn chair_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> PageResult {
    let flash = q.done.as_deref().and_then(done_message);
    chair_view(&state, &c, &id, None, flash).await
}

async fn note_pdf(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    let pdf = uc::note_pdf(&state, &c, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"session-note.pdf\"".to_string(),
            ),
        ],
        pdf,
    )
        .into_response())
}

/// An optional choice's key as the forms send it ("" when not chosen).
fn key_of<T: serde::Serialize>(v: &Option<T>) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|x| x.as_str().map(String::from))
        .unwrap_or_default()
}

fn opt_num<T: std::str::FromStr>(
    f: &Posted,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let s = f
        .get(name)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())?;
    match s.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(FieldError::new(name, format!("{s:?} is not a number")));
            None
        }
    }
}

fn ticked(f: &Posted, name: &str) -> Option<bool> {
    f.get(name).map(|_| true)
}

fn text(f: &Posted, name: &str) -> Option<String> {
    f.get(name)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn choice<T: serde::de::DeserializeOwned>(
    f: &Posted,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let s = text(f, name)?;
    match serde_json::from_value(serde_json::json!(s)) {
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(FieldError::new(
                name,
                format!("{s:?} is not one of the choices"),
            ));
            None
        }
    }
}

fn vitals_of(f: &Posted) -> Result<Vitals, Error> {
    let mut e = Vec::new();
    let v = Vitals {
        hr: opt_num(f, "hr", &mut e),
        sbp: opt_num(f, "sbp", &mut e),
        dbp: opt_num(f, "dbp", &mut e),
        spo2: opt_num(f, "spo2", &mut e),
        rr: opt_num(f, "rr", &mut e),
        temp_c: opt_num(f, "temp_c", &mut e),
        moaas: opt_num(f, "moaas", &mut e),
        cadss6: opt_num(f, "cadss6", &mut e),
        nausea: opt_num(f, "nausea", &mut e),
        distress: opt_num(f, "distress", &mut e),
    };
    if e.is_empty() {
        Ok(v)
    } else {
        Err(Error::Invalid(e))
    }
}

/// "When, if not now": a local date and time typed for an entry recorded
/// afterwards, read in the clinic's zone and handed on as RFC 3339.
async fn late_entry(
    state: &AppState,
    clinic: Option<&str>,
    f: &Posted,
) -> Result<Option<String>, Error> {
    let Some(v) = text(f, "at") else {
        return Ok(None);
    };
    let clinic: ClinicId = clinic.and_then(|k| k.parse().ok()).ok_or(Error::NotFound)?;
    let tz = clinic::scheduling::clinic_tz(state, clinic).await?;
    let at = crate::scheduling::api::parse_start(&v, None, &tz)
        .map_err(|_| Error::Invalid(vec![FieldError::new("at", "must be a date and time")]))?;
    Ok(jiff::Timestamp::from_microsecond(at)
        .ok()
        .map(|t| t.to_string()))
}

async fn step(state: &AppState, c: &Caller, id: &str, step: &str, f: &Posted) -> Result<(), Error> {
    let mut e = Vec::new();
    let at = match text(f, "at") {
        Some(_) => {
            let clinic = uc::clinic_of_encounter(state, c, id).await?;
            late_entry(state, clinic.as_deref(), f).await?
        }
        None => None,
    };
    match step {
        "checklist" => {
            // The form shows every item: one left unticked or emptied is
            // withdrawn, as the nurse sees it.
            let mut withdraw = Vec::new();
            for key in [
                "identity_confirmed",
                "fasting_confirmed",
                "no_alcohol",
                "medications_reviewed",
            ] {
                if ticked(f, key).is_none() {
                    withdraw.push(key.to_string());
                }
            }
            for key in [
                "weight_kg",
                "pregnancy",
                "escort_name",
                "escort_phone",
                "medication_changes",
                "suicide_risk",
            ] {
                if text(f, key).is_none() {
                    withdraw.push(key.to_string());
                }
            }
            // The weight shown is sent back unchanged: it keeps the time it
            // was measured at.
            let weight: Option<f64> = opt_num(f, "weight_kg", &mut e);
            let was: Option<f64> = text(f, "weight_was").and_then(|w| w.parse().ok());
            let input = uc::ChecklistInput {
                identity_confirmed: ticked(f, "identity_confirmed"),
                weight_kg: weight.filter(|w| Some(*w) != was),
                pregnancy: choice(f, "pregnancy", &mut e),
                fasting_confirmed: ticked(f, "fasting_confirmed"),
                escort_name: text(f, "escort_name"),
                escort_phone: text(f, "escort_phone"),
                no_alcohol: ticked(f, "no_alcohol"),
                medications_reviewed: ticked(f, "medications_reviewed"),
                medication_changes: text(f, "medication_changes"),
                suicide_risk: choice(f, "suicide_risk", &mut e),
                weight_measured_at: None,
                vitals_override_reason: text(f, "vitals_override_reason"),
                suicide_risk_override_reason: text(f, "suicide_risk_override_reason"),
                suicide_risk_assessment: choice(f, "suicide_risk_assessment", &mut e),
                withdraw,
            };
            if !e.is_empty() {
                return Err(Error::Invalid(e));
            }
            uc::save_checklist(state, c, id, input).await?;
        }
        "void" => {
            uc::void_order(state, c, id, &f.get("reason").unwrap_or_default()).await?;
        }
        "end" => {
            uc::end_without_dose(state, c, id, &f.get("reason").unwrap_or_default()).await?;
        }
        "attest" => {
            uc::attest(state, c, id, &f.get("note").unwrap_or_default()).await?;
        }
        "reading" => {
            uc::record_reading(
                state,
                c,
                id,
                uc::ReadingInput {
                    values: vitals_of(f)?,
                    taken_at: at,
                },
            )
            .await?;
        }
        "order" => {
            let dose: f64 = opt_num(f, "dose", &mut e).ok_or_else(|| {
                Error::Invalid(if e.is_empty() {
                    vec![FieldError::new("dose", "give the dose")]
                } else {
                    e.clone()
                })
            })?;
            uc::order_dose(state, c, id, dose).await?;
        }
        "check" => {
            uc::check_dose(
                state,
                c,
                id,
                &f.get("vial_lot").unwrap_or_default(),
                &f.get("vial_expires").unwrap_or_default(),
            )
            .await?;
        }
        "admin" => {
            let kind = choice(f, "kind", &mut e).ok_or_else(|| {
                Error::Invalid(vec![FieldError::new("kind", "choose what happened")])
            })?;
            let input = uc::AdminInput {
                kind,
                at,
                rate_ml_h: opt_num(f, "rate_ml_h", &mut e),
                reason: text(f, "reason"),
            };
            if !e.is_empty() {
                return Err(Error::Invalid(e));
            }
            uc::administer(state, c, id, input).await?;
        }
        "ack" => {
            let aid = f.get("alert_id").unwrap_or_default();
            uc::acknowledge(
                state,
                c,
                id,
                &aid,
                f.get("response").as_deref(),
                &f.get("note").unwrap_or_default(),
            )
            .await?;
        }
        "medication" => {
            let m = tx::MedicationGiven {
                name: f.get("name").unwrap_or_default(),
                dose: f.get("dose").unwrap_or_default(),
                route: f.get("route").unwrap_or_default(),
                reason: f.get("reason").unwrap_or_default(),
                at: None,
            };
            uc::give_medication(state, c, id, m).await?;
        }
        "adverse" => {
            let severity = choice(f, "severity", &mut e).unwrap_or(tx::AeSeverity::Mild);
            if !e.is_empty() {
                return Err(Error::Invalid(e));
            }
            let ae = tx::AdverseEvent {
                kind: f.get("kind").unwrap_or_default(),
                severity,
                serious: ticked(f, "serious").unwrap_or(false),
                description: f.get("description").unwrap_or_default(),
                action: f.get("action").unwrap_or_default(),
                outcome: f.get("outcome").unwrap_or_default(),
                follow_up: ticked(f, "follow_up").unwrap_or(false),
            };
            uc::adverse_event(state, c, id, ae).await?;
        }
        "recovery" => {
            // Every item is scored by the nurse: nothing is assumed.
            let mut score = |n: &str| -> u8 {
                let v = opt_num(f, n, &mut e);
                if v.is_none() && !e.iter().any(|x| x.field == n) {
                    e.push(FieldError::new(n, "score this item (0, 1 or 2)"));
                }
                v.unwrap_or(0)
            };
            let a = Aldrete {
                activity: score("activity"),
                respiration: score("respiration"),
                circulation: score("circulation"),
                consciousness: score("consciousness"),
                spo2: score("spo2"),
            };
            if !e.is_empty() {
                return Err(Error::Invalid(e));
            }
            uc::score_recovery(state, c, id, a).await?;
        }
        "discharge" => {
            uc::discharge(state, c, id, &f.get("note").unwrap_or_default()).await?;
        }
        "note" => {
            uc::sign_note(state, c, id).await?;
        }
        "addendum" => {
            uc::add_addendum(state, c, id, &f.get("text").unwrap_or_default()).await?;
        }
        _ => return Err(Error::NotFound),
    }
    Ok(())
}

/// A step done is answered with a redirect to the chair view (so reloading
/// the page, by hand or on a live update, never posts the step again); a
/// step refused shows the chair view with the reason.
async fn step_submit(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    match step(&state, &f.caller, &id, &name, &f.form).await {
        Ok(()) => Ok(see_other(&format!("/encounters/{id}?done={name}"))),
        Err(e) => {
            let (error, _) = notice(Err(e))?;
            chair_view(&state, &f.caller, &id, error, None).await
        }
    }
}

/// What the chair view says after a step, by the step's name.
fn done_message(step: &str) -> Option<String> {
    let m = match step {
        "checklist" => "Checklist saved.",
        "reading" => "Reading recorded.",
        "order" => "Dose ordered.",
        "check" => "Dose checked.",
        "admin" => "Timeline updated.",
        "ack" => "Alert acknowledged.",
        "medication" => "Medicine recorded.",
        "adverse" => "Adverse event recorded.",
        "recovery" => "Recovery scored.",
        "discharge" => "Discharged.",
        "note" => "Note signed.",
        "void" => "Order voided.",
        "end" => "Visit ended without a dose.",
        "attest" => "Paper record attested.",
        "addendum" => "Addendum added.",
        _ => return None,
    };
    Some(m.to_string())
}
