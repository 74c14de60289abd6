//! A clinic's schedule settings for clinic admins: booking rules and ratios,
//! chairs and rooms, each person's working hours, and time off.

use askama::Template;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use domain::auth::Permission;
use domain::clinics::{DayHours, WEEKDAY_NAMES};
use domain::ids::{ClinicId, ResourceId, UserId};
use domain::scheduling::{Capabilities, SchedulingRules};

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::ui::Layout;
use crate::ui::{page_id, render, PageResult};
use crate::AppState;
use clinic::scheduling::settings as uc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/clinics/{id}/schedule", get(page))
        .route("/admin/clinics/{id}/schedule/rules", post(save_rules))
        .route("/admin/clinics/{id}/schedule/resources", post(add_resource))
        .route(
            "/admin/clinics/{id}/schedule/resources/{rid}/active",
            post(toggle_resource),
        )
        .route("/admin/clinics/{id}/schedule/hours/{uid}", post(save_hours))
        .route("/admin/clinics/{id}/schedule/time-off", post(add_time_off))
}

pub struct ResourceRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub caps: String,
    pub active: bool,
}

pub struct PersonRow {
    pub id: String,
    pub name: String,
    pub roles: String,
    /// (weekday 1-7, day name, start, end)
    pub days: Vec<(i16, &'static str, String, String)>,
}

#[derive(Template)]
#[template(path = "scheduling/schedule_admin.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub id: String,
    pub name: String,
    pub rules: SchedulingRules,
    pub resources: Vec<ResourceRow>,
    pub people: Vec<PersonRow>,
    pub time_off: Vec<(String, String, String)>,
    pub error: Option<String>,
}

async fn clinic(
    state: &AppState,
    c: &Caller,
    id: &str,
) -> Result<clinic::records::org::Clinic, Error> {
    let id: ClinicId = page_id(id)?;
    c.require(Permission::ScheduleManage, id)?;
    clinic::settings::record(state, id).await
}

async fn view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let k = clinic(state, c, id).await?;
    let setup = uc::setup(state, c, k.id).await?;
    let (staff, resources, time_off) = (setup.staff, setup.resources, setup.time_off);
    let z = k.settings.clock();
    let name_of = |u: UserId| {
        staff
            .iter()
            .find(|s| s.id == u)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    };
    render(&SettingsPage {
        layout: Layout::new(
            c,
            format!("Schedule settings · {}", k.settings.name),
            "clinics",
        )
        .with_flash(flash),
        id: k.id.to_string(),
        name: k.settings.name.clone(),
        rules: setup.rules,
        resources: resources
            .iter()
            .map(|r| ResourceRow {
                id: r.resource.id.to_string(),
                name: r.resource.name.clone(),
                kind: r.resource.kind.label().to_string(),
                caps: r.resource.caps.describe(),
                active: r.active,
            })
            .collect(),
        people: staff
            .iter()
            .map(|s| PersonRow {
                id: s.id.to_string(),
                name: s.name.clone(),
                roles: s
                    .roles
                    .iter()
                    .map(|r| r.label())
                    .collect::<Vec<_>>()
                    .join(", "),
                days: (1..=7)
                    .map(|d| {
                        let h = s.hours.iter().find(|h| h.weekday == d);
                        (
                            d,
                            WEEKDAY_NAMES[(d - 1) as usize],
                            h.map(|h| h.opens()).unwrap_or_default(),
                            h.map(|h| h.closes()).unwrap_or_default(),
                        )
                    })
                    .collect(),
            })
            .collect(),
        time_off: time_off
            .iter()
            .map(|(u, a, b, r)| {
                (
                    name_of(*u),
                    format!("{} – {}", z.stamp(*a), z.stamp(*b)),
                    r.clone(),
                )
            })
            .collect(),
        error,
    })
}

async fn page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    view(&state, &c, &id, None, None).await
}

/// Runs a change; a refusal the user can fix re-renders the page with it.
async fn outcome(
    state: &AppState,
    c: &Caller,
    id: &str,
    r: Result<(), Error>,
    ok: &str,
) -> PageResult {
    match r {
        Ok(()) => view(state, c, id, None, Some(ok.to_string())).await,
        Err(e) => view(state, c, id, Some(crate::ui::fixable(e)?), None).await,
    }
}

fn num<T: std::str::FromStr>(f: &StaffForm, name: &str) -> Result<T, Error> {
    f.form
        .get(name)
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|_| {
            Error::Invalid(vec![domain::FieldError::new(
                name,
                "must be a whole number",
            )])
        })
}

async fn save_rules(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let k = clinic(&state, &f.caller, &id).await?;
    let r = async {
        let rules = SchedulingRules {
            nurse_ratio: num(&f, "nurse_ratio")?,
            monitor_ratio: num(&f, "monitor_ratio")?,
            slot_step_min: num(&f, "slot_step_min")?,
            min_notice_min: num(&f, "min_notice_min")?,
            horizon_days: num(&f, "horizon_days")?,
            late_cancel_hours: num(&f, "late_cancel_hours")?,
        };
        uc::set_rules(&state, &f.caller, k.id, &rules).await
    }
    .await;
    outcome(&state, &f.caller, &id, r, "Booking rules saved.").await
}

async fn add_resource(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let k = clinic(&state, &f.caller, &id).await?;
    let r = async {
        let on = |n: &str| f.form.get(n).is_some();
        let caps = Capabilities {
            iv: on("iv"),
            monitored: on("monitored"),
            private: on("private"),
        };
        let kind = f.form.get("kind").unwrap_or_default();
        let name = f.form.get("name").unwrap_or_default();
        uc::add_resource(&state, &f.caller, k.id, &kind, &name, caps)
            .await
            .map(|_| ())
    }
    .await;
    outcome(&state, &f.caller, &id, r, "Added.").await
}

async fn toggle_resource(
    State(state): State<AppState>,
    Path((id, rid)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let k = clinic(&state, &f.caller, &id).await?;
    let rid: ResourceId = page_id(&rid)?;
    let active = f.form.get("active").as_deref() == Some("true");
    let r = uc::set_resource_active(&state, &f.caller, k.id, rid, active).await;
    outcome(
        &state,
        &f.caller,
        &id,
        r,
        if active {
            "Back in use."
        } else {
            "Taken out of use; booked visits keep it."
        },
    )
    .await
}

async fn save_hours(
    State(state): State<AppState>,
    Path((id, uid)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let k = clinic(&state, &f.caller, &id).await?;
    let uid: UserId = page_id(&uid)?;
    let r = async {
        let mut hours = vec![];
        let mut errs = domain::error::Errors::new();
        for d in 1..=7i16 {
            let s = f.form.get(&format!("start_{d}")).unwrap_or_default();
            let e = f.form.get(&format!("end_{d}")).unwrap_or_default();
            match (s.trim().is_empty(), e.trim().is_empty()) {
                (true, true) => {}
                _ => match DayHours::new(d, &s, &e) {
                    Ok(h) => hours.push(h),
                    Err(x) => errs.add(&x.field, x.message),
                },
            }
        }
        errs.into_result()?;
        uc::set_staff_hours(&state, &f.caller, k.id, uid, &hours).await
    }
    .await;
    outcome(&state, &f.caller, &id, r, "Working hours saved.").await
}

async fn add_time_off(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let k = clinic(&state, &f.caller, &id).await?;
    let r = async {
        let uid: UserId = f
            .form
            .get("user")
            .unwrap_or_default()
            .parse()
            .map_err(|_| {
                Error::Invalid(vec![domain::FieldError::new("user", "choose a person")])
            })?;
        if !clinic::scheduling::is_bookable_staff(&state, k.id, uid).await? {
            return Err(Error::NotFound);
        }
        let tz = clinic::scheduling::clinic_tz(&state, k.id).await?;
        let at = |n: &str| -> Result<i64, Error> {
            let v = f.form.get(n).unwrap_or_default();
            crate::scheduling::api::parse_start(&v, None, &tz).map_err(|_| {
                Error::Invalid(vec![domain::FieldError::new(n, "must be a date and time")])
            })
        };
        let (from, to) = (at("from")?, at("to")?);
        let reason = f.form.get("reason").unwrap_or_default();
        if reason.trim().is_empty() || reason.chars().count() > 200 {
            return Err(Error::Invalid(vec![domain::FieldError::new(
                "reason",
                "is required, at most 200 characters",
            )]));
        }
        uc::add_time_off(&state, &f.caller, k.id, uid, (from, to), &reason).await
    }
    .await;
    outcome(
        &state,
        &f.caller,
        &id,
        r,
        "Time off recorded; the search no longer offers that person then.",
    )
    .await
}
