//! Schedule pages: the day board (chairs and rooms as lanes, phases
//! coloured), week views per person and per chair, a visit's page with quick
//! moving and cancelling, booking one visit from offered slots, booking a
//! whole series, and a printable day sheet.

use askama::Template;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use clinic::records::org::Clinic;
use clinic::records::scheduling::{Appointment, Status};
use domain::auth::Permission;
use domain::ids::{AppointmentId, ClinicId, PatientId, ResourceId, UserId};
use domain::scheduling::{CourseKind, CourseSpec, Preferences, VisitPlan};
use domain::time::WallClock;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::ui::visit_status_class;
use crate::ui::Layout;
use crate::ui::{fixable, notice, page_id, render, see_other, PageQuery, PageResult};
use crate::AppState;
use clinic::scheduling::{self as uc, local_date, SeriesOutcome};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/schedule", get(schedule_home))
        .route("/schedule/{clinic}/day", get(day_board))
        .route("/schedule/{clinic}/sheet", get(day_sheet))
        .route("/schedule/{clinic}/week", get(week_view))
        .route("/appointments/{id}", get(appointment_page))
        .route("/appointments/{id}/move", post(appointment_move))
        .route("/appointments/{id}/cancel", post(appointment_cancel))
        .route("/appointments/{id}/no-show", post(appointment_no_show))
        .route("/patients/{id}/book", get(book_page).post(book_submit))
        .route(
            "/patients/{id}/series",
            get(series_page).post(series_submit),
        )
        .route("/patients/{id}/waitlist", post(waitlist_add))
        .route("/schedule/{clinic}/waitlist", get(waitlist_page))
        .route(
            "/schedule/{clinic}/waitlist/{entry}/book",
            post(waitlist_book),
        )
        .route(
            "/schedule/{clinic}/waitlist/{entry}/remove",
            post(waitlist_remove),
        )
}

const MIN: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;

// ---------------------------------------------------------------- pictures

/// One coloured block on a board.
pub struct Block {
    pub x: i64,
    pub w: i64,
    pub y: i64,
    pub class: &'static str,
    pub label: String,
    pub title: String,
    pub href: String,
}

pub struct Lane {
    pub label: String,
    pub y: i64,
    pub href: String,
}

/// A time-by-lane picture drawn as SVG (no inline styles: CSP).
pub struct Board {
    pub width: i64,
    pub height: i64,
    pub lanes: Vec<Lane>,
    pub blocks: Vec<Block>,
    pub ticks: Vec<(i64, String)>,
    pub now_x: Option<i64>,
    pub caption: String,
}

const LEFT: i64 = 140;
const RIGHT: i64 = 990;
const LANE_H: i64 = 46;
const TOP: i64 = 24;

fn phase_class(kind: domain::scheduling::PhaseKind, status: Status) -> &'static str {
    use domain::scheduling::PhaseKind::*;
    if matches!(status, Status::Cancelled | Status::NoShow) {
        return "ph-cancelled";
    }
    match kind {
        CheckIn => "ph-checkin",
        Dosing => "ph-dosing",
        Recovery | Observation => "ph-recovery",
        Consultation | Assessment | FollowUp => "ph-consult",
        Therapy => "ph-therapy",
    }
}

/// Minutes after local midnight of an instant on `day`.
fn local_min(tz: &WallClock, m: i64, day: Date) -> i64 {
    let midnight = domain::scheduling::local_to_micros(tz.zone(), day, 0).unwrap_or(0);
    (m - midnight) / MIN
}

struct Span {
    from_min: i64,
    to_min: i64,
}

impl Span {
    fn x(&self, min: i64) -> i64 {
        let w = (self.to_min - self.from_min).max(60);
        LEFT + (min.clamp(self.from_min, self.to_min) - self.from_min) * (RIGHT - LEFT) / w
    }
    fn ticks(&self) -> Vec<(i64, String)> {
        let mut v = vec![];
        let mut h = (self.from_min + 59) / 60;
        while h * 60 <= self.to_min {
            v.push((self.x(h * 60), format!("{h:02}:00")));
            h += 1;
        }
        v
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn short_name(a: &Appointment) -> String {
    format!(
        "{}. {}",
        a.patient_given.chars().next().unwrap_or('?'),
        a.patient_family
    )
}

fn hm(tz: &WallClock, m: i64) -> String {
    tz.time(m)
}

fn span_for(clinic: &Clinic, date: Date) -> Span {
    let wd = domain::clinics::iso_weekday(date.weekday());
    match clinic.settings.hours.iter().find(|h| h.weekday == wd) {
        Some(h) => Span {
            from_min: i64::from(h.opens_min / 60 * 60),
            to_min: i64::from((h.closes_min + 59) / 60 * 60),
        },
        None => Span {
            from_min: 7 * 60,
            to_min: 18 * 60,
        },
    }
}

// ---------------------------------------------------------------- day board

#[derive(Deserialize, Default)]
pub struct DayQuery {
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    staff: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

pub struct VisitRow {
    pub id: String,
    pub time: String,
    pub place: String,
    pub patient: String,
    pub patient_id: String,
    pub what: String,
    pub staff: String,
    pub status: String,
    pub status_class: &'static str,
    pub series: String,
}

#[derive(Template)]
#[template(path = "scheduling/schedule_day.html")]
pub struct DayPage {
    pub layout: Layout,
    pub clinic_id: String,
    pub clinic: String,
    pub clinics: Vec<(String, String, bool)>,
    pub date: String,
    pub date_label: String,
    pub prev: String,
    pub next: String,
    pub today: String,
    pub board: Board,
    pub rows: Vec<VisitRow>,
    pub closed: Option<String>,
    pub people: Vec<(String, String)>,
    pub chairs: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "scheduling/schedule_sheet.html")]
pub struct SheetPage {
    pub clinic: String,
    pub date_label: String,
    pub printed: String,
    pub css: String,
    pub rows: Vec<VisitRow>,
}

async fn clinic_for(state: &AppState, c: &Caller, id: &str) -> Result<Clinic, Error> {
    let id: ClinicId = page_id(id)?;
    c.require(Permission::ScheduleRead, id)?;
    clinic::settings::record(state, id).await
}

fn parse_date(s: Option<&str>, tz: &WallClock, now: i64) -> Result<Date, Error> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(tz.date(now)),
        Some(s) => s
            .parse()
            .map_err(|_| Error::bad("date must be YYYY-MM-DD", Some("date"))),
    }
}

async fn schedule_home(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    let clinics = c.require_any(Permission::ScheduleRead)?;
    let all = clinic::settings::clinics(&state, &c).await?;
    let first = all
        .iter()
        .find(|k| clinics.contains(&k.id))
        .ok_or(Error::Forbidden)?;
    Ok(see_other(&format!("/schedule/{}/day", first.id)))
}

fn staff_label(plan: &VisitPlan, names: &std::collections::HashMap<UserId, String>) -> String {
    plan.people()
        .iter()
        .map(|u| names.get(u).cloned().unwrap_or_else(|| "someone".into()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Staff display names by id.
type Names = std::collections::HashMap<UserId, String>;

async fn staff_names(state: &AppState, clinic: ClinicId) -> Result<Names, Error> {
    Ok(clinic::scheduling::bookable_staff(state, clinic)
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect())
}

/// The clinic's time zone (checked when the clinic was saved).
/// The clinic's wall clock; a zone the clinic's settings name but the
/// system does not know is a fault, never silently UTC.
fn zone(k: &Clinic) -> Result<WallClock, Error> {
    TimeZone::get(&k.settings.time_zone).map_err(|_| Error::Internal("clinic zone".into()))?;
    Ok(k.settings.clock())
}

async fn visit_rows(
    state: &AppState,
    clinic: ClinicId,
    tz: &WallClock,
    appts: &[Appointment],
    with_date: bool,
    names: &Names,
) -> Result<Vec<VisitRow>, Error> {
    let resources = clinic::scheduling::resources(state, clinic).await?;
    Ok(appts
        .iter()
        .map(|a| {
            let place = a
                .resource_id
                .and_then(|r| resources.iter().find(|x| x.resource.id == r))
                .map(|x| x.resource.name.clone())
                .unwrap_or_else(|| "—".into());
            let date = if with_date {
                format!("{} ", tz.zoned(a.starts_at).strftime("%a %b %-d"))
            } else {
                String::new()
            };
            VisitRow {
                id: a.id.to_string(),
                time: format!("{date}{}–{}", hm(tz, a.starts_at), hm(tz, a.ends_at)),
                place,
                patient: format!("{} {}", a.patient_given, a.patient_family),
                patient_id: a.patient_id.to_string(),
                what: a.type_name.clone(),
                staff: staff_label(&a.plan, names),
                status: a.status.label().to_string(),
                status_class: visit_status_class(a.status),
                series: match (a.series_role.as_deref(), a.series_index) {
                    (Some("dose"), Some(i)) => format!("dose {i}"),
                    (Some("integration"), Some(i)) => format!("integration {i}"),
                    _ => String::new(),
                },
            }
        })
        .collect())
}

async fn day_board(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(clinic): Path<String>,
    PageQuery(q): PageQuery<DayQuery>,
) -> PageResult {
    let k = clinic_for(&state, &c, &clinic).await?;
    let tz = zone(&k)?;
    let date = parse_date(q.date.as_deref(), &tz, state.now())?;
    let appts = uc::day(&state, &c, k.id, date).await?;
    let resources = clinic::scheduling::resources(&state, k.id).await?;
    let span = span_for(&k, date);
    let mut lanes = vec![];
    let mut blocks = vec![];
    for (i, r) in resources.iter().filter(|r| r.active).enumerate() {
        let y = TOP + i as i64 * LANE_H;
        lanes.push(Lane {
            label: r.resource.name.clone(),
            y,
            href: format!(
                "/schedule/{}/week?resource={}&date={date}",
                k.id, r.resource.id
            ),
        });
        for a in appts
            .iter()
            .filter(|a| a.resource_id == Some(r.resource.id))
        {
            for p in a.plan.phases.iter().filter(|p| p.resource.is_some()) {
                let (x0, x1) = (
                    span.x(local_min(&tz, p.start, date)),
                    span.x(local_min(&tz, p.end, date)),
                );
                blocks.push(Block {
                    x: x0,
                    w: (x1 - x0).max(2),
                    y: y + 6,
                    class: phase_class(p.kind, a.status),
                    label: if p.kind == a.plan.phases[0].kind {
                        short_name(a)
                    } else {
                        String::new()
                    },
                    title: format!(
                        "{} · {} · {} {}–{} ({})",
                        short_name(a),
                        a.type_name,
                        p.kind.label(),
                        hm(&tz, p.start),
                        hm(&tz, p.end),
                        a.status.label()
                    ),
                    href: format!("/appointments/{}", a.id),
                });
            }
        }
    }
    let now = state.now();
    let today = tz.date(state.now());
    let now_x = (date == today).then(|| span.x(local_min(&tz, now, date)));
    let closed = {
        let closures = clinic::settings::closures(&state, k.id).await?;
        closures
            .iter()
            .find(|x| x.closed_on == date)
            .map(|x| format!("Closed: {}", x.reason))
            .or_else(|| {
                let wd = domain::clinics::iso_weekday(date.weekday());
                (!k.settings.hours.iter().any(|h| h.weekday == wd))
                    .then(|| "The clinic is closed on this weekday.".to_string())
            })
    };
    let board = Board {
        width: 1000,
        height: TOP + lanes.len() as i64 * LANE_H + 8,
        caption: format!(
            "{} on {}; each lane is a chair or room, blocks are the phases of each visit.",
            plural(appts.len(), "visit"),
            date
        ),
        lanes,
        blocks,
        ticks: span.ticks(),
        now_x,
    };
    let staff = clinic::scheduling::bookable_staff(&state, k.id).await?;
    let names: Names = staff.iter().map(|s| (s.id, s.name.clone())).collect();
    let rows = visit_rows(&state, k.id, &tz, &appts, false, &names).await?;
    let clinics_all = clinic::settings::clinics(&state, &c).await?;
    let page = DayPage {
        layout: Layout::new(&c, format!("Day board · {}", k.settings.name), "schedule"),
        clinic_id: k.id.to_string(),
        clinic: k.settings.name.clone(),
        clinics: clinics_all
            .iter()
            .filter(|x| c.may(Permission::ScheduleRead, x.id))
            .map(|x| (x.id.to_string(), x.settings.name.clone(), x.id == k.id))
            .collect(),
        date: date.to_string(),
        date_label: date.strftime("%A %B %-d, %Y").to_string(),
        prev: date.yesterday().unwrap_or(date).to_string(),
        next: date.tomorrow().unwrap_or(date).to_string(),
        today: today.to_string(),
        board,
        rows,
        closed,
        people: staff
            .iter()
            .map(|s| (s.id.to_string(), s.name.clone()))
            .collect(),
        chairs: resources
            .iter()
            .filter(|r| r.active)
            .map(|r| (r.resource.id.to_string(), r.resource.name.clone()))
            .collect(),
    };
    render(&page)
}

async fn day_sheet(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(clinic): Path<String>,
    PageQuery(q): PageQuery<DayQuery>,
) -> PageResult {
    let k = clinic_for(&state, &c, &clinic).await?;
    let tz = zone(&k)?;
    let date = parse_date(q.date.as_deref(), &tz, state.now())?;
    let appts = uc::day(&state, &c, k.id, date).await?;
    let names = staff_names(&state, k.id).await?;
    let rows = visit_rows(&state, k.id, &tz, &appts, false, &names).await?;
    render(&SheetPage {
        clinic: k.settings.name.clone(),
        date_label: date.strftime("%A %B %-d, %Y").to_string(),
        printed: tz.stamp(state.now()),
        css: crate::ui::assets::url("app.css"),
        rows,
    })
}

// ---------------------------------------------------------------- week view

#[derive(Template)]
#[template(path = "scheduling/schedule_week.html")]
pub struct WeekPage {
    pub layout: Layout,
    pub clinic_id: String,
    pub title: String,
    pub board: Board,
    pub rows: Vec<VisitRow>,
    pub prev: String,
    pub next: String,
    pub subject: String,
}

async fn week_view(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(clinic): Path<String>,
    PageQuery(q): PageQuery<DayQuery>,
) -> PageResult {
    let k = clinic_for(&state, &c, &clinic).await?;
    let tz = zone(&k)?;
    let date = parse_date(q.date.as_deref(), &tz, state.now())?;
    let mut monday = date;
    while monday.weekday() != jiff::civil::Weekday::Monday {
        monday = monday.yesterday().unwrap_or(monday);
    }
    let from = domain::scheduling::local_to_micros(tz.zone(), monday, 0).unwrap_or(0);
    let to = from + 7 * DAY + 2 * 3_600_000_000;
    let (title, subject, appts) = match (&q.staff, &q.resource) {
        (Some(s), _) => {
            let u: UserId = page_id(s)?;
            let who = clinic::scheduling::bookable_staff(&state, k.id)
                .await?
                .into_iter()
                .find(|x| x.id == u)
                .ok_or(Error::NotFound)?;
            let what = format!("week {monday}");
            let a = uc::staff_visits(&state, &c, k.id, u, (from, to), &what).await?;
            (
                format!("Week of {} · {}", monday, who.name),
                format!("staff={u}"),
                a,
            )
        }
        (None, Some(r)) => {
            let r: ResourceId = page_id(r)?;
            let res = clinic::scheduling::resources(&state, k.id)
                .await?
                .into_iter()
                .find(|x| x.resource.id == r)
                .ok_or(Error::NotFound)?;
            let what = format!("week {monday}");
            let a = uc::resource_visits(&state, &c, k.id, r, (from, to), &what).await?;
            (
                format!("Week of {} · {}", monday, res.resource.name),
                format!("resource={r}"),
                a,
            )
        }
        _ => return Err(Error::bad("choose a person or a chair", Some("staff")).into()),
    };
    let span = Span {
        from_min: 7 * 60,
        to_min: 19 * 60,
    };
    let mut lanes = vec![];
    let mut blocks = vec![];
    for d in 0..7 {
        let day = monday
            .checked_add(jiff::Span::new().days(d))
            .unwrap_or(monday);
        let y = TOP + d * LANE_H;
        lanes.push(Lane {
            label: day.strftime("%a %b %-d").to_string(),
            y,
            href: format!("/schedule/{}/day?date={day}", k.id),
        });
        for a in appts
            .iter()
            .filter(|a| local_date(tz.zone(), a.starts_at) == day)
        {
            for p in &a.plan.phases {
                let (x0, x1) = (
                    span.x(local_min(&tz, p.start, day)),
                    span.x(local_min(&tz, p.end, day)),
                );
                blocks.push(Block {
                    x: x0,
                    w: (x1 - x0).max(2),
                    y: y + 6,
                    class: phase_class(p.kind, a.status),
                    label: if std::ptr::eq(p, &a.plan.phases[0]) {
                        short_name(a)
                    } else {
                        String::new()
                    },
                    title: format!(
                        "{} · {} · {} {}–{}",
                        short_name(a),
                        a.type_name,
                        p.kind.label(),
                        hm(&tz, p.start),
                        hm(&tz, p.end)
                    ),
                    href: format!("/appointments/{}", a.id),
                });
            }
        }
    }
    let names = staff_names(&state, k.id).await?;
    let rows = visit_rows(&state, k.id, &tz, &appts, true, &names).await?;
    render(&WeekPage {
        layout: Layout::new(&c, title.clone(), "schedule"),
        clinic_id: k.id.to_string(),
        board: Board {
            width: 1000,
            height: TOP + 7 * LANE_H + 8,
            caption: format!(
                "{} this week; each lane is a day.",
                plural(appts.len(), "visit")
            ),
            lanes,
            blocks,
            ticks: span.ticks(),
            now_x: None,
        },
        rows,
        prev: monday
            .checked_sub(jiff::Span::new().days(7))
            .unwrap_or(monday)
            .to_string(),
        next: monday
            .checked_add(jiff::Span::new().days(7))
            .unwrap_or(monday)
            .to_string(),
        subject,
        title,
    })
}

// ---------------------------------------------------------------- one visit

#[derive(Template)]
#[template(path = "scheduling/appointment.html")]
pub struct AppointmentPage {
    pub layout: Layout,
    pub id: String,
    pub clinic_id: String,
    pub row: VisitRow,
    pub phases: Vec<(String, String, String)>,
    pub can_book: bool,
    pub movable: bool,
    pub past: bool,
    pub date: String,
    pub time: String,
    pub cancel_reason: String,
    /// A video visit: its join link (empty: the clinic has set none).
    pub video: Option<String>,
    pub error: Option<String>,
}

async fn appointment_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let id: AppointmentId = page_id(id)?;
    let a = uc::read(state, c, id).await?;
    let k = clinic::settings::record(state, a.clinic_id).await?;
    let tz = zone(&k)?;
    let names = staff_names(state, a.clinic_id).await?;
    let rows = visit_rows(
        state,
        a.clinic_id,
        &tz,
        std::slice::from_ref(&a),
        true,
        &names,
    )
    .await?;
    let z = tz.zoned(a.starts_at);
    let ty = uc::appointment_type(state, a.clinic_id, &a.type_code)
        .await
        .ok();
    let video = match uc::Attend::of(ty.as_ref(), a.id, &k.settings) {
        uc::Attend::InPerson => None,
        uc::Attend::Video(link) => Some(link.unwrap_or_default()),
    };
    render(&AppointmentPage {
        layout: Layout::new(
            c,
            format!("{} · {}", a.type_name, short_name(&a)),
            "schedule",
        )
        .with_flash(flash),
        id: a.id.to_string(),
        clinic_id: a.clinic_id.to_string(),
        row: rows.into_iter().next().ok_or(Error::NotFound)?,
        phases: a
            .plan
            .phases
            .iter()
            .map(|p| {
                (
                    p.kind.label().to_string(),
                    format!("{}–{}", hm(&tz, p.start), hm(&tz, p.end)),
                    p.staff
                        .iter()
                        .map(|s| {
                            format!(
                                "{} ({}{})",
                                names.get(&s.user).cloned().unwrap_or_default(),
                                s.role.label().to_lowercase(),
                                if s.shared { ", shared" } else { "" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
            .collect(),
        can_book: c.may(Permission::ScheduleBook, a.clinic_id),
        movable: a.status == Status::Booked && a.starts_at > state.now(),
        past: a.starts_at <= state.now() && a.status == Status::Booked,
        date: z.date().to_string(),
        time: z.strftime("%H:%M").to_string(),
        cancel_reason: a.cancel_reason.clone().unwrap_or_default(),
        video,
        error,
    })
}

async fn appointment_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    appointment_view(&state, &c, &id, None, None).await
}

/// A change to a visit re-renders its page with a flash or the fixable error.
async fn visit_outcome(
    state: &AppState,
    c: &Caller,
    id: &str,
    r: Result<String, Error>,
) -> PageResult {
    let (error, flash) = notice(r)?;
    appointment_view(state, c, id, error, flash).await
}

async fn appointment_move(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let aid: AppointmentId = page_id(&id)?;
    let a = uc::to_change(&state, &f.caller, aid).await?;
    let tz = uc::clinic_tz(&state, a.clinic_id).await?;
    let text = format!(
        "{}T{}",
        f.form.get("date").unwrap_or_default().trim(),
        f.form.get("time").unwrap_or_default().trim()
    );
    let r = match crate::scheduling::api::parse_start(&text, None, &tz) {
        Ok(start) => uc::move_to(&state, &f.caller, aid, start, &Preferences::default()).await,
        Err(e) => Err(e),
    };
    visit_outcome(&state, &f.caller, &id, r.map(|_| "Visit moved.".into())).await
}

async fn appointment_cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let aid: AppointmentId = page_id(&id)?;
    let reason = f.form.get("reason").unwrap_or_default();
    let r = uc::cancel(&state, &f.caller, aid, &reason).await.map(|a| {
        if a.late_cancel {
            "Visit cancelled (late cancellation).".into()
        } else {
            "Visit cancelled.".into()
        }
    });
    visit_outcome(&state, &f.caller, &id, r).await
}

async fn appointment_no_show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let aid: AppointmentId = page_id(&id)?;
    let r = uc::no_show(&state, &f.caller, aid).await;
    visit_outcome(
        &state,
        &f.caller,
        &id,
        r.map(|_| "Marked as a no-show.".into()),
    )
    .await
}

// ---------------------------------------------------------------- booking

#[derive(Deserialize, Default)]
pub struct BookQuery {
    #[serde(default, rename = "type")]
    type_code: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

pub struct SlotDay {
    pub label: String,
    pub slots: Vec<(i64, String, String)>,
}

#[derive(Template)]
#[template(path = "scheduling/book.html")]
pub struct BookPage {
    pub layout: Layout,
    pub patient_id: String,
    pub patient: String,
    pub clinic: String,
    pub types: Vec<(String, String, bool)>,
    pub from: String,
    pub to: String,
    pub type_code: String,
    pub days: Vec<SlotDay>,
    pub searched: bool,
    pub blocked: Vec<String>,
    pub error: Option<String>,
}

async fn patient_clinic(
    state: &AppState,
    c: &Caller,
    id: &str,
) -> Result<(clinic::records::patients::PatientRecord, Clinic, WallClock), Error> {
    let pid: PatientId = page_id(id)?;
    let p = clinic::patients::read(state, c, pid).await?;
    c.require(Permission::ScheduleBook, p.clinic_id)?;
    let k = clinic::settings::record(state, p.clinic_id).await?;
    let tz = zone(&k)?;
    Ok((p, k, tz))
}

async fn book_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    q: BookQuery,
    error: Option<String>,
) -> PageResult {
    let (p, k, tz) = patient_clinic(state, c, id).await?;
    let types = clinic::scheduling::appointment_types(state, k.id).await?;
    let today = tz.date(state.now());
    let from = parse_date(q.from.as_deref(), &tz, state.now()).unwrap_or(today);
    let to = parse_date(q.to.as_deref(), &tz, state.now())
        .ok()
        .filter(|_| q.to.is_some())
        .unwrap_or(from.checked_add(jiff::Span::new().days(6)).unwrap_or(from));
    let type_code = q.type_code.clone().unwrap_or_default();
    let mut days: Vec<SlotDay> = vec![];
    let mut blocked = vec![];
    let mut error = error;
    if !type_code.is_empty() {
        match uc::availability(
            state,
            c,
            k.id,
            Some(p.id),
            &type_code,
            from,
            to,
            &Preferences::default(),
            None,
            120,
        )
        .await
        {
            Ok(a) => {
                for s in &a.slots {
                    let d = local_date(tz.zone(), s.start);
                    let label = d.strftime("%A %B %-d").to_string();
                    if days.last().map(|x| x.label != label).unwrap_or(true) {
                        days.push(SlotDay {
                            label,
                            slots: vec![],
                        });
                    }
                    if let Some(last) = days.last_mut() {
                        last.slots.push((
                            s.start,
                            hm(&tz, s.start),
                            format!("{}–{}", hm(&tz, s.start), hm(&tz, s.end)),
                        ));
                    }
                }
                if a.slots.is_empty() {
                    blocked = a
                        .tally
                        .main()
                        .iter()
                        .take(3)
                        .map(|b| b.describe())
                        .collect();
                }
            }
            Err(e) => error = Some(fixable(e)?),
        }
    }
    render(&BookPage {
        layout: Layout::new(
            c,
            format!("Book a visit · {}", p.details.display_name()),
            "schedule",
        ),
        patient_id: p.id.to_string(),
        patient: p.details.display_name(),
        clinic: k.settings.name.clone(),
        types: types
            .iter()
            .map(|t| {
                (
                    t.code.clone(),
                    format!("{} ({} min)", t.name, t.total_minutes()),
                    t.code == type_code,
                )
            })
            .collect(),
        from: from.to_string(),
        to: to.to_string(),
        searched: !type_code.is_empty(),
        type_code,
        days,
        blocked,
        error,
    })
}

async fn book_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<BookQuery>,
) -> PageResult {
    book_view(&state, &c, &id, q, None).await
}

async fn book_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let (p, k, _) = patient_clinic(&state, &f.caller, &id).await?;
    let type_code = f.form.get("type").unwrap_or_default();
    let start: i64 = f
        .form
        .get("start")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::bad("choose a time", Some("start")))?;
    match uc::book(
        &state,
        &f.caller,
        k.id,
        p.id,
        &type_code,
        start,
        &Preferences::default(),
        None,
    )
    .await
    {
        Ok(a) => Ok(see_other(&format!("/appointments/{}", a.id))),
        Err(e) => {
            let m = fixable(e)?;
            let q = BookQuery {
                type_code: Some(type_code),
                from: f.form.get("from"),
                to: f.form.get("to"),
            };
            book_view(&state, &f.caller, &id, q, Some(m)).await
        }
    }
}

// ---------------------------------------------------------------- series

#[derive(Deserialize, Default)]
pub struct SeriesQuery {
    #[serde(default)]
    course: Option<String>,
    #[serde(default)]
    dose_type: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    doses: Option<String>,
}

pub struct StepRow {
    pub n: usize,
    pub dose: String,
    pub dose_place: String,
    pub integration: String,
    pub integration_with: String,
}

#[derive(Template)]
#[template(path = "scheduling/series.html")]
pub struct SeriesPage {
    pub layout: Layout,
    pub patient_id: String,
    pub patient: String,
    pub clinic: String,
    pub courses: Vec<(String, String, bool)>,
    pub dose_types: Vec<(String, String, bool)>,
    pub from: String,
    pub doses: String,
    pub steps: Vec<StepRow>,
    pub completes: String,
    pub blocked: Option<(String, String)>,
    pub error: Option<String>,
    pub course: String,
    pub dose_type: String,
    /// What is not yet in place for treatment; the dates may be held anyway.
    pub warnings: Vec<String>,
}

fn spec_from(q: &SeriesQuery) -> Result<CourseSpec, Error> {
    let kind = CourseKind::parse(q.course.as_deref().unwrap_or("induction"))
        .map_err(|e| Error::Invalid(vec![e]))?;
    let doses = match q.doses.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<u16>().map_err(|_| {
            Error::Invalid(vec![domain::FieldError::new(
                "doses",
                "must be a whole number",
            )])
        })?),
    };
    let spec = CourseSpec::preset(
        kind,
        q.dose_type.as_deref().unwrap_or("iv_infusion"),
        doses,
        None,
    );
    spec.validate()?;
    Ok(spec)
}

async fn series_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    q: SeriesQuery,
    book: bool,
) -> PageResult {
    let (p, k, tz) = patient_clinic(state, c, id).await?;
    let warnings = uc::series_warnings(state, c, k.id, p.id).await?;
    let types = clinic::scheduling::appointment_types(state, k.id).await?;
    let today = tz.date(state.now());
    let from = parse_date(q.from.as_deref(), &tz, state.now()).unwrap_or(today);
    let searched = q.course.is_some();
    let course = q.course.clone().unwrap_or_else(|| "induction".into());
    let dose_type = q.dose_type.clone().unwrap_or_else(|| "iv_infusion".into());
    let mut steps = vec![];
    let mut completes = String::new();
    let mut blocked = None;
    let mut error = None;
    if searched {
        let outcome = match spec_from(&q) {
            Ok(spec) => {
                let by = from.checked_add(jiff::Span::new().days(14)).unwrap_or(from);
                uc::series(
                    state,
                    c,
                    k.id,
                    p.id,
                    &spec,
                    from,
                    by,
                    &Preferences::default(),
                    !book,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(SeriesOutcome::Booked(_, plan)) => {
                let first = plan
                    .steps
                    .first()
                    .map(|s| local_date(tz.zone(), s.dose.start))
                    .unwrap_or(from);
                return Ok(see_other(&format!("/schedule/{}/day?date={first}", k.id)));
            }
            Ok(SeriesOutcome::Proposed(plan)) => {
                let names = staff_names(state, k.id).await?;
                let resources = clinic::scheduling::resources(state, k.id).await?;
                let rname = |r: Option<ResourceId>| {
                    r.and_then(|r| resources.iter().find(|x| x.resource.id == r))
                        .map(|x| x.resource.name.clone())
                        .unwrap_or_default()
                };
                let when = |m: i64| tz.day_time(m);
                completes = when(plan.completes_at());
                for (i, s) in plan.steps.iter().enumerate() {
                    steps.push(StepRow {
                        n: i + 1,
                        dose: when(s.dose.start),
                        dose_place: format!(
                            "{} · {}",
                            rname(s.dose.resource()),
                            staff_label(&s.dose, &names)
                        ),
                        integration: s
                            .integration
                            .as_ref()
                            .map(|x| when(x.start))
                            .unwrap_or_default(),
                        integration_with: s
                            .integration
                            .as_ref()
                            .map(|x| {
                                format!("{} · {}", rname(x.resource()), staff_label(x, &names))
                            })
                            .unwrap_or_default(),
                    });
                }
            }
            Ok(SeriesOutcome::Blocked(b)) => {
                blocked = Some((
                    b.message.clone(),
                    b.suggestion
                        .map(|s| format!("It would fit if you {s}."))
                        .unwrap_or_else(|| {
                            "No simple change makes it fit; try a later start.".into()
                        }),
                ))
            }
            Err(e) => error = Some(fixable(e)?),
        }
    }
    let courses = [
        (
            "induction",
            "Induction: 6 doses in 2-3 weeks, 48 h apart, at most 3 a week",
        ),
        ("intensive", "Intensive: 3-5 a week for up to 2 weeks"),
        ("weekly", "Weekly for 3 months (maintenance)"),
        ("every_other_week", "Every other week for 3 months"),
    ];
    render(&SeriesPage {
        layout: Layout::new(
            c,
            format!("Book a series · {}", p.details.display_name()),
            "schedule",
        ),
        patient_id: p.id.to_string(),
        patient: p.details.display_name(),
        clinic: k.settings.name.clone(),
        courses: courses
            .iter()
            .map(|(v, l)| (v.to_string(), l.to_string(), *v == course))
            .collect(),
        dose_types: types
            .iter()
            .filter(|t| t.dose)
            .map(|t| (t.code.clone(), t.name.clone(), t.code == dose_type))
            .collect(),
        from: from.to_string(),
        doses: q.doses.clone().unwrap_or_default(),
        steps,
        completes,
        blocked,
        error,
        course,
        dose_type,
        warnings,
    })
}

async fn series_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<SeriesQuery>,
) -> PageResult {
    series_view(&state, &c, &id, q, false).await
}

async fn series_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let q = SeriesQuery {
        course: f.form.get("course"),
        dose_type: f.form.get("dose_type"),
        from: f.form.get("from"),
        doses: f.form.get("doses"),
    };
    series_view(&state, &f.caller, &id, q, true).await
}

// ---------------------------------------------------------------- waitlist

pub struct WaitRow {
    pub id: String,
    pub patient: String,
    pub patient_id: String,
    pub what: String,
    pub window: String,
    pub note: String,
    pub offered: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "scheduling/waitlist.html")]
pub struct WaitlistPage {
    pub layout: Layout,
    pub clinic_id: String,
    pub clinic: String,
    pub rows: Vec<WaitRow>,
    pub error: Option<String>,
}

async fn waitlist_view(
    state: &AppState,
    c: &Caller,
    clinic: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let k = clinic_for(state, c, clinic).await?;
    let tz = zone(&k)?;
    let list = uc::waitlist(state, c, k.id, "waitlist page").await?;
    let types = clinic::scheduling::appointment_types(state, k.id).await?;
    render(&WaitlistPage {
        layout: Layout::new(c, format!("Waitlist · {}", k.settings.name), "schedule")
            .with_flash(flash),
        clinic_id: k.id.to_string(),
        clinic: k.settings.name.clone(),
        rows: list
            .iter()
            .map(|w| WaitRow {
                id: w.id.clone(),
                patient: w.patient_name.clone(),
                patient_id: w.patient_id.to_string(),
                what: types
                    .iter()
                    .find(|t| t.code == w.type_code)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| w.type_code.clone()),
                window: format!("{} – {}", w.from_date, w.to_date),
                note: w.note.clone().unwrap_or_default(),
                offered: w.offered_start.map(|m| tz.day_time(m)).unwrap_or_default(),
                since: tz.stamp(w.created_at),
            })
            .collect(),
        error,
    })
}

async fn waitlist_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(clinic): Path<String>,
) -> PageResult {
    waitlist_view(&state, &c, &clinic, None, None).await
}

async fn waitlist_book(
    State(state): State<AppState>,
    Path((clinic, entry)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let k = clinic_for(&state, &f.caller, &clinic).await?;
    match uc::book_offer(&state, &f.caller, k.id, &entry).await {
        Ok(a) => Ok(see_other(&format!("/appointments/{}", a.id))),
        Err(e) => waitlist_view(&state, &f.caller, &clinic, Some(fixable(e)?), None).await,
    }
}

async fn waitlist_remove(
    State(state): State<AppState>,
    Path((clinic, entry)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let k = clinic_for(&state, &f.caller, &clinic).await?;
    uc::remove_from_waitlist(&state, &f.caller, k.id, &entry).await?;
    waitlist_view(
        &state,
        &f.caller,
        &clinic,
        None,
        Some("Removed from the waitlist.".into()),
    )
    .await
}

async fn waitlist_add(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let (p, k, tz) = patient_clinic(&state, &f.caller, &id).await?;
    let type_code = f.form.get("type").unwrap_or_default();
    let r = async {
        let from = parse_date(f.form.get("from").as_deref(), &tz, state.now())?;
        let to = parse_date(f.form.get("to").as_deref(), &tz, state.now())?;
        uc::add_to_waitlist(
            &state,
            &f.caller,
            k.id,
            p.id,
            &type_code,
            from,
            to,
            f.form.get("note").as_deref(),
        )
        .await
    }
    .await;
    match r {
        Ok(_) => {
            waitlist_view(
                &state,
                &f.caller,
                &k.id.to_string(),
                None,
                Some(format!("{} is on the waitlist.", p.details.display_name())),
            )
            .await
        }
        Err(e) => {
            let m = fixable(e)?;
            let q = BookQuery {
                type_code: Some(type_code),
                from: f.form.get("from"),
                to: f.form.get("to"),
            };
            book_view(&state, &f.caller, &id, q, Some(m)).await
        }
    }
}
