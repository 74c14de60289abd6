//! Staff pages for measurement-based care and the front door: the lead
//! queue and a lead's page, open safety tasks, and a patient's measures
//! (trend charts with doses, baseline, response and remission lines; staff
//! entry of clinician ratings; sending questionnaire links).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Router;
use clinic::records::measures::{Source, Task};
use domain::auth::Permission;
use domain::ids::{LeadId, PatientId, TaskId};
use domain::instruments::{Instrument, Rater};
use domain::leads::{LeadStatus, CONDITIONS, EXCLUSIONS, TREATMENTS};
use domain::time::WallClock;
use domain::FieldError;
use serde::Deserialize;

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::front::pages::{answers_from, item_views, ItemView};
use crate::ui::{fixable, notice};
use crate::ui::{page_id, render, see_other, PageResult};
use crate::ui::{ChartTabs, Layout};
use crate::AppState;
use clinic::measures::TrendView;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/leads", get(leads_page))
        .route("/leads/{id}", get(lead_page))
        .route("/leads/{id}/status", post(lead_status))
        .route("/leads/{id}/convert", post(lead_convert))
        .route("/tasks", get(tasks_page))
        .route("/tasks/{id}/close", post(task_close))
        .route("/patients/{id}/measures", get(measures_page))
        .route(
            "/patients/{id}/measures/new",
            get(entry_page).post(entry_submit),
        )
        .route("/patients/{id}/measures/link", post(link_send))
}

pub(crate) fn when(m: i64, clock: &WallClock) -> String {
    clock.stamp(m)
}

/// A clinic's wall clock, for the times a page shows.
pub(crate) async fn clock_of(
    state: &AppState,
    clinic: domain::ids::ClinicId,
) -> Result<WallClock, Error> {
    Ok(clinic::settings::record(state, clinic)
        .await?
        .settings
        .clock())
}

// ---- Leads ----------------------------------------------------------------

#[derive(Deserialize, Default)]
struct LeadQuery {
    status: Option<String>,
}

struct LeadRow {
    id: String,
    when: String,
    name: String,
    outcome: String,
    outcome_label: &'static str,
    gad7: i32,
    phq2: i32,
    safety: bool,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "measures/leads.html")]
struct LeadsPage {
    layout: Layout,
    tabs: Vec<(String, String, i64, bool)>,
    rows: Vec<LeadRow>,
    public_links: Vec<(String, String)>,
}

pub(crate) fn outcome_label(o: &str) -> &'static str {
    match o {
        "likely" => "Likely suitable",
        "maybe" => "May be suitable",
        _ => "Probably not right",
    }
}

fn status_label(s: &str) -> &'static str {
    LeadStatus::parse(s).map(|s| s.label()).unwrap_or("Unknown")
}

async fn leads_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Query(q): Query<LeadQuery>,
) -> PageResult {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(LeadStatus::parse(s).map_err(|e| Error::Invalid(vec![e]))?),
        None => None,
    };
    let leads = clinic::leads::list(&state, &c, status, 200).await?;
    let clinics = c.clinics_with(Permission::LeadRead);
    let counts = clinic::leads::counts(&state, &c).await?;
    let count = |s: &str| {
        counts
            .iter()
            .find(|(k, _)| k == s)
            .map(|x| x.1)
            .unwrap_or(0)
    };
    let mut tabs = vec![(
        String::new(),
        "All".to_string(),
        counts.iter().map(|x| x.1).sum(),
        status.is_none(),
    )];
    for s in LeadStatus::ALL {
        tabs.push((
            s.as_str().to_string(),
            s.label().to_string(),
            count(s.as_str()),
            status == Some(s),
        ));
    }
    let names = crate::ui::clinic_names(&state, &c).await?;
    let zone = |k: domain::ids::ClinicId| {
        names
            .get(&k)
            .map(|x| x.settings.clock())
            .unwrap_or_else(|| WallClock::new("UTC", ""))
    };
    let rows = leads
        .iter()
        .map(|l| LeadRow {
            id: l.id.to_string(),
            when: when(l.created_at, &zone(l.clinic_id)),
            name: format!("{} {}", l.given_name, l.family_name),
            outcome: l.outcome.clone(),
            outcome_label: outcome_label(&l.outcome),
            gad7: l.gad7_total,
            phq2: l.phq2_total,
            safety: l.safety,
            status: status_label(&l.status),
        })
        .collect();
    let public_links = clinics
        .iter()
        .filter_map(|k| names.get(k))
        .map(|k| (k.settings.name.clone(), format!("/c/{}", k.slug)))
        .collect();
    render(&LeadsPage {
        layout: Layout::new(&c, "Leads", "leads"),
        tabs,
        rows,
        public_links,
    })
}

#[derive(Template)]
#[template(path = "measures/lead.html")]
struct LeadPage {
    layout: Layout,
    id: String,
    name: String,
    contact: Vec<(&'static str, String)>,
    outcome: String,
    outcome_label: &'static str,
    status: String,
    status_label: &'static str,
    reasons: Vec<String>,
    conditions: Vec<&'static str>,
    treatments: Vec<&'static str>,
    exclusions: Vec<&'static str>,
    answers: Vec<AnswerSet>,
    tasks: Vec<TaskRow>,
    statuses: Vec<(&'static str, &'static str)>,
    note: String,
    patient: Option<String>,
    appointment: Option<String>,
    can_manage: bool,
    can_close: bool,
    error: Option<String>,
}

/// One instrument's answers on a lead's page: name, score, (question, answer).
type AnswerSet = (String, String, Vec<(String, String)>);

fn labels(keys: &serde_json::Value, all: &[(&'static str, &'static str)]) -> Vec<&'static str> {
    keys.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str())
                .filter_map(|k| all.iter().find(|x| x.0 == k).map(|x| x.1))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Clone)]
pub struct TaskRow {
    pub id: String,
    pub title: String,
    pub who: String,
    pub href: String,
    pub opened: String,
    pub open: bool,
    pub closed: String,
    pub note: String,
}

/// A task for the list; its subject is a link only for a caller who may open
/// the page it leads to.
fn task_row(c: &Caller, t: &Task, tz: &WallClock) -> TaskRow {
    let may = |p| c.may(p, t.clinic_id);
    TaskRow {
        id: t.id.to_string(),
        title: t.title.clone(),
        who: t.subject_name.clone(),
        href: match (t.patient_id, t.lead_id) {
            (Some(p), _) if may(Permission::MeasureRead) => format!("/patients/{p}/measures"),
            (None, Some(l)) if may(Permission::LeadRead) => format!("/leads/{l}"),
            _ => String::new(),
        },
        opened: when(t.opened_at, tz),
        open: t.status == "open",
        closed: match (&t.closed_by, t.closed_at) {
            (Some(by), Some(at)) => format!("closed by {by}, {}", when(at, tz)),
            _ => String::new(),
        },
        note: t.close_note.clone().unwrap_or_default(),
    }
}

async fn lead_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let lid: LeadId = page_id(id)?;
    let v = clinic::leads::read(state, c, lid).await?;
    let l = &v.lead;
    let tz = clock_of(state, l.clinic_id).await?;
    let mut answers = vec![];
    for r in &v.responses {
        let Some(inst) = state
            .instruments
            .get(&r.instrument_id, r.instrument_version)
        else {
            continue;
        };
        let items = inst
            .items
            .iter()
            .filter_map(|it| {
                let v = r.answers.get(&it.id)?;
                let label = inst
                    .choices(it)
                    .iter()
                    .find(|c| c.value == *v)
                    .map(|c| format!("{v}: {}", c.label))
                    .unwrap_or_else(|| v.to_string());
                Some((it.text.clone(), label))
            })
            .collect();
        let total = r.total.map(|t| format!("{t}")).unwrap_or_default();
        answers.push((
            inst.short_name.clone(),
            format!("{total} {}", r.band.clone().unwrap_or_default()),
            items,
        ));
    }
    let treatments: Vec<(&str, &str)> = TREATMENTS.iter().map(|t| (t.0, t.1)).collect();
    let exclusions: Vec<(&str, &str)> = EXCLUSIONS.iter().map(|t| (t.0, t.1)).collect();
    let page = LeadPage {
        layout: Layout::new(
            c,
            format!("Lead: {} {}", l.given_name, l.family_name),
            "leads",
        )
        .with_flash(flash),
        id: l.id.to_string(),
        name: format!("{} {}", l.given_name, l.family_name),
        contact: vec![
            ("E-mail", l.email.clone().unwrap_or_default()),
            ("Phone", l.phone.clone().unwrap_or_default()),
            ("Date of birth", l.date_of_birth.clone()),
            ("Assessed", when(l.created_at, &tz)),
        ],
        outcome: l.outcome.clone(),
        outcome_label: outcome_label(&l.outcome),
        status: l.status.clone(),
        status_label: status_label(&l.status),
        reasons: l.detail["reasons"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        conditions: labels(&l.detail["conditions"], &CONDITIONS),
        treatments: labels(&l.detail["treatments"], &treatments),
        exclusions: labels(&l.detail["exclusions"], &exclusions),
        answers,
        tasks: v.tasks.iter().map(|t| task_row(c, t, &tz)).collect(),
        statuses: LeadStatus::ALL
            .into_iter()
            .filter(|s| s.settable())
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        note: l.note.clone().unwrap_or_default(),
        patient: l.patient_id.map(|p| p.to_string()),
        appointment: l.appointment_id.map(|a| a.to_string()),
        can_manage: c.may(Permission::LeadManage, l.clinic_id) && l.status != "became_patient",
        can_close: c.may(Permission::TaskClose, l.clinic_id),
        error,
    };
    render(&page)
}

async fn lead_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    lead_view(&state, &c, &id, None, None).await
}

async fn lead_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let lid: LeadId = page_id(&id)?;
    let status = f.form.get("status").unwrap_or_default();
    let note = f.form.get("note");
    let r = clinic::leads::set_status(&state, &f.caller, lid, &status, note.as_deref()).await;
    let (error, flash) = notice(r.map(|()| "Saved.".into()))?;
    lead_view(&state, &f.caller, &id, error, flash).await
}

async fn lead_convert(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let lid: LeadId = page_id(&id)?;
    match clinic::leads::convert(&state, &f.caller, lid).await {
        Ok(p) => Ok(see_other(&format!("/patients/{p}"))),
        Err(e) => lead_view(&state, &f.caller, &id, Some(fixable(e)?), None).await,
    }
}

// ---- Tasks ----------------------------------------------------------------

#[derive(Template)]
#[template(path = "measures/tasks.html")]
struct TasksPage {
    layout: Layout,
    rows: Vec<TaskRow>,
    can_close: bool,
    error: Option<String>,
}

async fn tasks_view(
    state: &AppState,
    c: &Caller,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let tasks = clinic::measures::open_tasks(state, c).await?;
    let names = crate::ui::clinic_names(state, c).await?;
    let rows = tasks
        .iter()
        .map(|t| {
            let tz = names
                .get(&t.clinic_id)
                .map(|k| k.settings.clock())
                .unwrap_or_else(|| WallClock::new("UTC", ""));
            task_row(c, t, &tz)
        })
        .collect();
    render(&TasksPage {
        layout: Layout::new(c, "Safety tasks", "tasks").with_flash(flash),
        rows,
        can_close: !c.clinics_with(Permission::TaskClose).is_empty(),
        error,
    })
}

async fn tasks_page(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    tasks_view(&state, &c, None, None).await
}

async fn task_close(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let tid: TaskId = page_id(&id)?;
    let note = f.form.get("note").unwrap_or_default();
    let back = f
        .form
        .get("back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//"));
    let r = clinic::measures::close_task(&state, &f.caller, tid, &note).await;
    if let (Ok(_), Some(b)) = (&r, back) {
        return Ok(see_other(&b));
    }
    let (error, flash) = notice(r.map(|_| "Task closed.".into()))?;
    tasks_view(&state, &f.caller, error, flash).await
}

// ---- A patient's measures ---------------------------------------------------

/// A trend chart with everything placed: the template only draws.
pub struct Chart {
    pub title: String,
    pub width: i32,
    pub height: i32,
    pub left: i32,
    pub right: i32,
    pub top: i32,
    pub bottom: i32,
    pub bands: Vec<(i32, i32, String, String)>,
    pub yticks: Vec<(i32, i32)>,
    pub xticks: Vec<(i32, String)>,
    pub doses: Vec<i32>,
    pub line: String,
    pub dots: Vec<(i32, i32, String)>,
    pub baseline: Option<i32>,
    pub response: Option<(i32, i32)>,
    pub remission: Option<(i32, i32)>,
    pub status: String,
    pub words: String,
    pub rows: Vec<(String, i32, String)>,
    pub summary: String,
}

const W: i32 = 640;
const H: i32 = 240;
const L: i32 = 40;
const R: i32 = 16;
const T: i32 = 12;
const B: i32 = 30;

pub fn chart(v: &TrendView, clock: &WallClock) -> Chart {
    let when = |m: i64| clock.stamp(m);
    let inst = &v.instrument;
    let (lo, hi) = inst.range;
    let span_y = (hi - lo).max(1);
    let y = |t: i32| T + (H - T - B) * (hi - t) / span_y;
    let mut t0 = v.points.iter().map(|p| p.at).min().unwrap_or(0);
    let mut t1 = v.points.iter().map(|p| p.at).max().unwrap_or(0);
    for d in &v.doses {
        if *d >= t0 - 14 * 86_400_000_000 && *d <= t1 {
            t0 = t0.min(*d);
            t1 = t1.max(*d);
        }
    }
    if t1 <= t0 {
        t1 = t0 + 86_400_000_000;
    }
    let x = |m: i64| L + (((W - L - R) as i64) * (m - t0) / (t1 - t0)) as i32;
    let bands = inst
        .bands
        .iter()
        .filter_map(|b| {
            let (Some(a), Some(z)) = (b.min, b.max) else {
                return None;
            };
            // A band covers its values from a - 0.5 to z + 0.5, clipped to the range.
            let top = y(z).min(y(z) - (H - T - B) / span_y / 2).max(T);
            let bottom = (y(a) + (H - T - B) / span_y / 2).min(H - B);
            Some((top, bottom - top, b.level.clone(), b.label.clone()))
        })
        .collect();
    let mut yticks: Vec<(i32, i32)> = inst
        .bands
        .iter()
        .filter_map(|b| b.min)
        .chain([hi])
        .map(|t| (y(t), t))
        .collect();
    yticks.dedup();
    let day = |m: i64| clock.zoned(m).strftime("%b %-d").to_string();
    let xticks = if v.points.is_empty() {
        vec![]
    } else {
        let mid = t0 + (t1 - t0) / 2;
        vec![(x(t0), day(t0)), (x(mid), day(mid)), (x(t1), day(t1))]
    };
    let mut pts = v.points.clone();
    pts.sort_by_key(|p| p.at);
    let line = pts
        .iter()
        .map(|p| format!("{},{}", x(p.at), y(p.total)))
        .collect::<Vec<_>>()
        .join(" ");
    let dots = pts
        .iter()
        .map(|p| (x(p.at), y(p.total), format!("{}: {}", when(p.at), p.total)))
        .collect();
    let doses = v
        .doses
        .iter()
        .filter(|d| **d >= t0 && **d <= t1)
        .map(|d| x(*d))
        .collect();
    let tr = v.trend.as_ref();
    let rows = pts
        .iter()
        .rev()
        .map(|p| {
            (
                when(p.at),
                p.total,
                inst.band_of(p.total)
                    .map(|b| b.label.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let latest = pts.last().map(|p| p.total);
    Chart {
        title: format!("{} ({}-{})", inst.short_name, lo, hi),
        width: W,
        height: H,
        left: L,
        right: W - R,
        top: T,
        bottom: H - B,
        bands,
        yticks,
        xticks,
        doses,
        line,
        dots,
        baseline: tr.and_then(|t| t.baseline).map(|b| y(b.total)),
        response: tr
            .and_then(|t| t.response_at_most)
            .filter(|r| *r > lo)
            .map(|r| (y(r), r)),
        remission: tr.and_then(|t| t.remission_below).map(|r| (y(r), r)),
        status: tr.map(|t| t.status.label().to_string()).unwrap_or_default(),
        words: tr.map(|t| t.words.clone()).unwrap_or_else(|| {
            latest
                .map(|l| format!("Latest {l}; this instrument has no response rule."))
                .unwrap_or_default()
        }),
        summary: format!(
            "{} scores over time, {} responses, {} doses marked",
            inst.short_name,
            pts.len(),
            v.doses.len()
        ),
        rows,
    }
}

#[derive(Template)]
#[template(path = "measures/measures.html")]
struct MeasuresPage {
    layout: Layout,
    id: String,
    tabs: ChartTabs,
    name: String,
    charts: Vec<Chart>,
    others: Vec<(String, String, String, String)>,
    tasks: Vec<TaskRow>,
    links: Vec<(String, String, String, String)>,
    patient_rated: Vec<(String, String)>,
    clinician_rated: Vec<(String, String)>,
    can_record: bool,
    can_close: bool,
    error: Option<String>,
    sent: Option<String>,
}

async fn measures_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
    sent: Option<String>,
) -> PageResult {
    let pid: PatientId = page_id(id)?;
    let p = clinic::patients::read(state, c, pid).await?;
    let history = clinic::measures::history(state, c, pid).await?;
    let tz = clock_of(state, p.clinic_id).await?;
    let points: Vec<_> = history
        .iter()
        .map(|r| (r.instrument_id.as_str(), r.total, r.submitted_at))
        .collect();
    let trends = clinic::measures::trends(state, p.clinic_id, pid, &points).await?;
    let charts = trends.iter().map(|t| chart(t, &tz)).collect();
    // Instruments without a total (the C-SSRS) are listed, newest first.
    let others = history
        .iter()
        .rev()
        .filter(|r| r.total.is_none())
        .take(20)
        .map(|r| {
            (
                when(r.submitted_at, &tz),
                state
                    .instruments
                    .get(&r.instrument_id, r.instrument_version)
                    .map(|i| i.short_name.clone())
                    .unwrap_or_else(|| r.instrument_id.clone()),
                r.band.clone().unwrap_or_default(),
                r.flags
                    .iter()
                    .map(|f| f.label.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .collect();
    let (tasks, links) = clinic::measures::tasks_and_links(state, c, pid).await?;
    let links = links
        .into_iter()
        .map(|l| {
            let status = match l.used_at {
                Some(u) => format!("answered {}", when(u, &tz)),
                None if l.expires_at <= state.now() => "expired".into(),
                None => format!("open until {}", when(l.expires_at, &tz)),
            };
            (
                when(l.created_at, &tz),
                l.instrument_id.to_uppercase(),
                l.reason,
                status,
            )
        })
        .collect();
    // The outcome measures first, then the rest by name.
    let list = |rater: Rater| {
        let mut v: Vec<_> = state
            .instruments
            .all_current()
            .into_iter()
            .filter(|i| i.rater == rater)
            .collect();
        let rank = |id: &str| {
            ["gad7", "phq9", "hama", "cssrs"]
                .iter()
                .position(|x| *x == id)
        };
        v.sort_by_key(|i| (rank(&i.id).unwrap_or(9), i.short_name.clone()));
        v.into_iter()
            .map(|i| (i.id.clone(), format!("{}: {}", i.short_name, i.name)))
            .collect::<Vec<_>>()
    };
    render(&MeasuresPage {
        tabs: ChartTabs::new(c, pid, p.clinic_id, "measures"),
        layout: Layout::new(
            c,
            format!("Measures: {}", p.details.display_name()),
            "patients",
        )
        .with_flash(flash),
        id: pid.to_string(),
        name: p.details.display_name(),
        charts,
        others,
        tasks: tasks.iter().map(|t| task_row(c, t, &tz)).collect(),
        links,
        patient_rated: list(Rater::Patient),
        clinician_rated: list(Rater::Clinician),
        can_record: c.may(Permission::MeasureRecord, p.clinic_id),
        can_close: c.may(Permission::TaskClose, p.clinic_id),
        error,
        sent,
    })
}

async fn measures_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    measures_view(&state, &c, &id, None, None, None).await
}

async fn link_send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let instrument = f.form.get("instrument").unwrap_or_default();
    let hours = f
        .form
        .get("valid_days")
        .and_then(|d| d.trim().parse::<i64>().ok())
        .map(|d| d * 24)
        .unwrap_or(0);
    let reason = f.form.get("reason").unwrap_or_default();
    let r = clinic::measures::send_link(&state, &f.caller, pid, &instrument, hours, &reason)
        .await
        .map(|(link, _token)| {
            format!(
                "{} sent: the patient gets an e-mail with a link that works once.",
                link.instrument_id.to_uppercase()
            )
        });
    let (error, flash) = notice(r)?;
    measures_view(&state, &f.caller, &id, error, flash, None).await
}

#[derive(Deserialize)]
struct EntryQuery {
    instrument: Option<String>,
}

#[derive(Template)]
#[template(path = "measures/measure_entry.html")]
struct EntryPage {
    layout: Layout,
    id: String,
    name: String,
    instrument: String,
    version: u32,
    title: String,
    prompt: String,
    items: Vec<ItemView>,
    errors: Vec<FieldError>,
}

fn entry(
    c: &Caller,
    pid: PatientId,
    name: String,
    inst: &Instrument,
    answers: &BTreeMap<String, i32>,
    errors: Vec<FieldError>,
) -> EntryPage {
    EntryPage {
        layout: Layout::new(c, format!("{}: {name}", inst.short_name), "patients"),
        id: pid.to_string(),
        name,
        instrument: inst.id.clone(),
        version: inst.version,
        title: inst.name.clone(),
        prompt: inst.prompt.clone(),
        items: item_views(inst, "a", answers, &errors),
        errors,
    }
}

async fn entry_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    Query(q): Query<EntryQuery>,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let p = clinic::patients::read(&state, &c, pid).await?;
    c.require(Permission::MeasureRecord, p.clinic_id)?;
    let inst =
        clinic::measures::instrument(&state, q.instrument.as_deref().unwrap_or("hama"), None)?;
    render(&entry(
        &c,
        pid,
        p.details.display_name(),
        &inst,
        &BTreeMap::new(),
        vec![],
    ))
}

async fn entry_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let c = &f.caller;
    let instrument = f.form.get("instrument").unwrap_or_default();
    let version = f.form.get("version").and_then(|v| v.parse::<u32>().ok());
    let inst = clinic::measures::instrument(&state, &instrument, version)?;
    let mut errors = vec![];
    let answers = answers_from(&f.form, "a", &mut errors);
    let result = if errors.is_empty() {
        clinic::measures::record(
            &state,
            c,
            pid,
            &inst.id,
            Some(inst.version),
            &answers,
            None,
            Source::Staff,
        )
        .await
    } else {
        Err(Error::Invalid(errors))
    };
    match result {
        Ok(rec) => {
            let s = &rec.scored;
            let mut msg = format!(
                "{} saved: {}{}.",
                rec.instrument.short_name,
                s.total.map(|t| format!("{t} ")).unwrap_or_default(),
                s.band.as_ref().map(|b| b.label.as_str()).unwrap_or("")
            );
            if s.safety {
                msg.push_str(" A safety flag was raised: a task is open until a clinician closes it with a note.");
            }
            let safety = s.safety.then(|| "safety".to_string());
            measures_view(&state, c, &id, None, Some(msg), safety).await
        }
        Err(Error::Invalid(errs)) => {
            let p = clinic::patients::read(&state, c, pid).await?;
            let errs: Vec<FieldError> = errs
                .into_iter()
                .map(|e| FieldError::new(e.field.replacen("answers.", "a.", 1), e.message))
                .collect();
            let page = entry(c, pid, p.details.display_name(), &inst, &answers, errs);
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

use axum::response::IntoResponse;
