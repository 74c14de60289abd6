//! A clinic's schedule settings for clinic admins: booking rules and ratios,
//! chairs and rooms, each person's working hours, and time off.

use askama::Template;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use domain::audit::Action;
use domain::auth::Permission;
use domain::clinics::{DayHours, WEEKDAY_NAMES};
use domain::ids::{ClinicId, ResourceId, UserId};
use domain::scheduling::{Capabilities, ResourceKind, SchedulingRules};

use super::{page_id, render, PageResult};
use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::views::Layout;
use crate::AppState;

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
#[template(path = "schedule_admin.html")]
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

async fn clinic(state: &AppState, c: &Caller, id: &str) -> Result<store::org::Clinic, Error> {
    let id: ClinicId = page_id(id)?;
    c.require(Permission::ScheduleManage, id)?;
    Ok(state.store().clinic(id).await?)
}

async fn view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let k = clinic(state, c, id).await?;
    let now = state.now();
    let staff = state
        .store()
        .bookable_staff(k.id, now, now + 90 * 86_400_000_000)
        .await?;
    let resources = state.store().resources(k.id).await?;
    let time_off = state
        .store()
        .time_off_between(
            &staff.iter().map(|s| s.id).collect::<Vec<_>>(),
            now,
            now + 365 * 86_400_000_000,
        )
        .await?;
    let z = &k.settings.time_zone;
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
        rules: state.store().scheduling_rules(k.id).await?,
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
                    format!(
                        "{} – {}",
                        domain::time::format_in_zone(*a, z),
                        domain::time::format_in_zone(*b, z)
                    ),
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

fn event(c: &Caller, clinic: ClinicId, detail: String) -> store::audit::NewAuditEvent {
    let mut ev = c.event(Action::ScheduleSettings);
    ev.clinic_id = Some(clinic.to_string());
    ev.detail = Some(detail);
    ev
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
        Err(e) => view(state, c, id, Some(super::schedule::fixable(e)?), None).await,
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
        let ev = event(&f.caller, k.id, format!("rules: {rules:?}"));
        state.store().set_scheduling_rules(k.id, &rules, ev).await?;
        Ok(())
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
        let kind = ResourceKind::parse(&f.form.get("kind").unwrap_or_default())
            .map_err(|e| Error::Invalid(vec![e]))?;
        let name = domain::scheduling::resource_name(&f.form.get("name").unwrap_or_default())
            .map_err(|e| Error::Invalid(vec![e]))?;
        let on = |n: &str| f.form.get(n).is_some();
        let caps = Capabilities {
            iv: on("iv"),
            monitored: on("monitored"),
            private: on("private"),
        };
        if kind != ResourceKind::Chair && (caps.iv || caps.monitored) {
            return Err(Error::Invalid(vec![domain::FieldError::new(
                "kind",
                "only a chair can be IV-capable or monitored",
            )]));
        }
        let ev = event(&f.caller, k.id, format!("add {} {name}", kind.as_str()));
        state
            .store()
            .create_resource(k.id, kind, &name, caps, ev)
            .await?;
        Ok(())
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
    let ev = event(&f.caller, k.id, format!("resource {rid} active={active}"));
    let r = state
        .store()
        .set_resource_active(k.id, rid, active, ev)
        .await
        .map_err(Error::from);
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
        if !clinic::scheduling::is_bookable_staff(&state, k.id, uid).await? {
            return Err(Error::NotFound);
        }
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
        let ev = event(&f.caller, k.id, format!("hours of {uid}"));
        state.store().set_staff_hours(uid, k.id, &hours, ev).await?;
        Ok(())
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
            crate::api::parse_start(&v, None, &tz).map_err(|_| {
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
        let ev = event(&f.caller, k.id, format!("time off for {uid}"));
        state
            .store()
            .add_time_off(uid, from, to, reason.trim(), ev)
            .await?;
        Ok(())
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
