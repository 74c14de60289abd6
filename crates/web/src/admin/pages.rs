//! The clinic admin's pages: clinic settings and closures, staff and their
//! roles, and the audit log with its CSV export (`clinic::settings`,
//! `clinic::staff`, `clinic::audit_log`).

use askama::Template;
use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use domain::audit::Action;
use domain::auth::{Permission, Role};
use domain::clinics::{ClinicSettings, ClinicSettingsInput, WEEKDAY_NAMES};
use domain::ids::{ClinicId, ClosureId, PatientId, UserId};
use domain::time::WallClock;
use domain::FieldError;
use serde::Deserialize;

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::ui::*;
use crate::AppState;
use clinic::{audit_log, settings, staff};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/clinics", get(clinics_page))
        .route("/admin/clinics/{id}", get(clinic_edit).post(clinic_save))
        .route("/admin/clinics/{id}/closures", post(closure_add))
        .route(
            "/admin/clinics/{id}/closures/{cid}/delete",
            post(closure_remove),
        )
        .route("/admin/staff", get(staff_page).post(staff_add))
        .route("/admin/staff/{id}", get(staff_member))
        .route("/admin/staff/{id}/grant", post(staff_grant))
        .route("/admin/staff/{id}/revoke", post(staff_revoke))
        .route("/admin/staff/{id}/disable", post(staff_disable))
        .route("/admin/staff/{id}/enable", post(staff_enable))
        .route("/audit", get(audit_page))
        .route("/audit/export.csv", get(audit_export))
}

// ---------------------------------------------------------------- clinics

async fn clinics_page(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    let clinics = settings::editable(&state, &c)
        .await?
        .into_iter()
        .map(|k| ClinicListItem {
            id: k.id.to_string(),
            city: format!("{}, {}", k.settings.city, k.settings.region),
            zone: k.settings.time_zone.clone(),
            hours: k.settings.hours_summary(),
            name: k.settings.name,
        })
        .collect();
    render(&ClinicsPage {
        layout: Layout::new(&c, "Clinics", "clinics"),
        clinics,
    })
}

fn clinic_groups(i: &ClinicSettingsInput) -> Vec<FieldGroup> {
    let v = |o: &Option<String>| o.clone();
    vec![
        FieldGroup {
            legend: "Clinic".into(),
            fields: vec![
                FormField::text("name", "Name", v(&i.name).as_deref()).required(),
                FormField::text("phone", "Phone", v(&i.phone).as_deref())
                    .kind("tel")
                    .required(),
                FormField::text("email", "E-mail", v(&i.email).as_deref()).kind("email"),
                FormField::text("address_line1", "Address", v(&i.address_line1).as_deref())
                    .required(),
                FormField::text(
                    "address_line2",
                    "Address line 2",
                    v(&i.address_line2).as_deref(),
                ),
                FormField::text("city", "City", v(&i.city).as_deref()).required(),
                FormField::text("region", "State or region", v(&i.region).as_deref()).required(),
                FormField::text("postal_code", "Postal code", v(&i.postal_code).as_deref())
                    .required(),
                FormField::text("country", "Country", v(&i.country).as_deref())
                    .required()
                    .hint("Two letters, e.g. US"),
                FormField::text("time_zone", "Time zone", v(&i.time_zone).as_deref())
                    .required()
                    .hint("IANA name, e.g. America/Phoenix"),
            ],
        },
        FieldGroup {
            legend: "Video visits".into(),
            fields: vec![FormField::text(
                "video_link",
                "Meeting link",
                v(&i.video_link).as_deref(),
            )
            .kind("url")
            .hint(
                "The https address patients join a video visit by. Put {visit} where each \
             visit's own code goes if your service makes a room per visit, e.g. \
             https://meet.example.com/glendale/{visit}. Leave blank if you offer no video visits.",
            )],
        },
    ]
}

fn settings_input(s: &ClinicSettings) -> ClinicSettingsInput {
    let mut hours: [(Option<String>, Option<String>); 7] = Default::default();
    for h in &s.hours {
        hours[(h.weekday - 1) as usize] = (Some(h.opens()), Some(h.closes()));
    }
    ClinicSettingsInput {
        name: Some(s.name.clone()),
        address_line1: Some(s.address_line1.clone()),
        address_line2: s.address_line2.clone(),
        city: Some(s.city.clone()),
        region: Some(s.region.clone()),
        postal_code: Some(s.postal_code.clone()),
        country: Some(s.country.clone()),
        phone: Some(s.phone.clone()),
        email: s.email.clone(),
        time_zone: Some(s.time_zone.clone()),
        video_link: s.video_link.clone(),
        hours,
    }
}

async fn clinic_page(
    state: &AppState,
    c: &Caller,
    id: ClinicId,
    input: &ClinicSettingsInput,
    errors: &[FieldError],
    closure_error: Option<String>,
) -> PageResult {
    let (k, closures) = settings::for_edit(state, c, id).await?;
    let mut groups = clinic_groups(input);
    let loose = attach_errors(&mut groups, errors);
    let hours = (0..7)
        .map(|i| {
            let key = WEEKDAY_NAMES[i].to_lowercase();
            let err = errors
                .iter()
                .find(|e| e.field == format!("hours_{key}"))
                .map(|e| e.message.clone());
            (
                key,
                WEEKDAY_NAMES[i].to_string(),
                input.hours[i].0.clone().unwrap_or_default(),
                input.hours[i].1.clone().unwrap_or_default(),
                err,
            )
        })
        .collect();
    let closed_on: Vec<_> = closures.iter().map(|x| x.closed_on).collect();
    let chart = super::hours::HoursChart::of(&k, &closed_on, state.now());
    let closures = closures
        .into_iter()
        .map(|x| ClosureItem {
            id: x.id.to_string(),
            date: x.closed_on.to_string(),
            reason: x.reason,
        })
        .collect();
    let page = ClinicEditPage {
        layout: Layout::new(c, k.settings.name.clone(), "clinics"),
        id: id.to_string(),
        name: k.settings.name,
        groups,
        hours,
        errors: loose
            .into_iter()
            .filter(|e| !e.starts_with("hours_"))
            .collect(),
        closures,
        closure_error,
        chart,
    };
    let mut r = render(&page)?;
    if !errors.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

async fn clinic_edit(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    let id: ClinicId = page_id(&id)?;
    let (k, _) = settings::for_edit(&state, &c, id).await?;
    clinic_page(&state, &c, id, &settings_input(&k.settings), &[], None).await
}

async fn clinic_save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let id: ClinicId = page_id(&id)?;
    let c = &f.caller;
    let mut input = ClinicSettingsInput {
        name: f.form.get("name"),
        address_line1: f.form.get("address_line1"),
        address_line2: f.form.get("address_line2"),
        city: f.form.get("city"),
        region: f.form.get("region"),
        postal_code: f.form.get("postal_code"),
        country: f.form.get("country"),
        phone: f.form.get("phone"),
        email: f.form.get("email"),
        time_zone: f.form.get("time_zone"),
        video_link: f.form.get("video_link"),
        hours: Default::default(),
    };
    for (i, d) in WEEKDAY_NAMES.iter().enumerate() {
        let k = d.to_lowercase();
        input.hours[i] = (
            f.form.get(&format!("open_{k}")),
            f.form.get(&format!("close_{k}")),
        );
    }
    match settings::save(&state, c, id, &input).await {
        Ok(()) => Ok(see_other(&format!("/admin/clinics/{id}"))),
        Err(Error::Invalid(errs)) => clinic_page(&state, c, id, &input, &errs, None).await,
        Err(e) => Err(e.into()),
    }
}

async fn closure_add(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let id: ClinicId = page_id(&id)?;
    let c = &f.caller;
    let date = f.form.get("closed_on").unwrap_or_default();
    match settings::add_closure(&state, c, id, &date, &f.form.get("reason")).await {
        Ok(()) => Ok(see_other(&format!("/admin/clinics/{id}"))),
        Err(Error::Invalid(errs)) => {
            let (k, _) = settings::for_edit(&state, c, id).await?;
            let err = errs.first().map(|x| x.message.clone());
            let mut r = clinic_page(&state, c, id, &settings_input(&k.settings), &[], err).await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

async fn closure_remove(
    State(state): State<AppState>,
    Path((id, cid)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let id: ClinicId = page_id(&id)?;
    let cid: ClosureId = page_id(&cid)?;
    settings::remove_closure(&state, &f.caller, id, cid).await?;
    Ok(see_other(&format!("/admin/clinics/{id}")))
}

// ---------------------------------------------------------------- staff

fn staff_form(values: &crate::auth::Posted, clinics: &[(String, String)]) -> Vec<FieldGroup> {
    let roles: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), r.label().to_string()))
        .collect();
    let mut clinic = FormField::text("clinic_id", "First clinic", None).options(clinics.to_vec());
    clinic.value = values.get("clinic_id").unwrap_or_default();
    let mut role = FormField::text("role", "First role", None).options(roles);
    role.value = values.get("role").unwrap_or_default();
    vec![FieldGroup {
        legend: "New staff member".into(),
        fields: vec![
            FormField::text(
                "display_name",
                "Full name",
                values.get("display_name").as_deref(),
            )
            .auto("off"),
            FormField::text("username", "Username", values.get("username").as_deref())
                .hint("Lower-case letters, digits, '.', '-' or '_'"),
            FormField::text("email", "E-mail", values.get("email").as_deref()).kind("email"),
            FormField::text("password", "Temporary password", None)
                .kind("password")
                .auto("new-password")
                .hint("At least 12 characters, not easy to guess, without their names; ask them to change it."),
            clinic,
            role,
        ],
    }]
}

async fn admin_clinics(state: &AppState, c: &Caller) -> Result<Vec<(String, String)>, Error> {
    Ok(staff::admin_clinics(state, c)
        .await?
        .into_iter()
        .map(|(id, name)| (id.to_string(), name))
        .collect())
}

async fn staff_list(
    state: &AppState,
    c: &Caller,
    form: &crate::auth::Posted,
    errors: &[FieldError],
) -> PageResult {
    let clinics = admin_clinics(state, c).await?;
    let names: HashMap<String, String> = clinics.iter().cloned().collect();
    let staff = staff::list(state, c)
        .await?
        .into_iter()
        .map(|u| StaffItem {
            id: u.id.to_string(),
            name: u.display_name,
            username: u.username,
            roles: u
                .grants
                .iter()
                .map(|(k, r)| {
                    (
                        names
                            .get(&k.to_string())
                            .cloned()
                            .unwrap_or_else(|| "other clinic".into()),
                        r.label().to_string(),
                    )
                })
                .collect(),
            disabled: u.disabled,
            totp: u.totp,
        })
        .collect();
    let mut groups = staff_form(form, &clinics);
    let loose = attach_errors(&mut groups, errors);
    let page = StaffPage {
        layout: Layout::new(c, "Staff", "staff"),
        staff,
        form: groups,
        errors: if errors.is_empty() { vec![] } else { loose },
    };
    let mut r = render(&page)?;
    if !errors.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

async fn staff_page(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    staff_list(&state, &c, &Default::default(), &[]).await
}

async fn staff_add(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let c = &f.caller;
    let input = staff::NewStaff {
        username: f.form.get("username").unwrap_or_default(),
        display_name: f.form.get("display_name"),
        email: f.form.get("email"),
        password: f.form.get("password").unwrap_or_default(),
        clinic_id: f.form.get("clinic_id").unwrap_or_default(),
        role: f.form.get("role").unwrap_or_default(),
    };
    match staff::add(&state, c, input).await {
        Ok(uid) => Ok(see_other(&format!("/admin/staff/{uid}"))),
        Err(Error::Invalid(errs)) => staff_list(&state, c, &f.form, &errs).await,
        Err(e) => Err(e.into()),
    }
}

async fn staff_member_page(
    state: &AppState,
    c: &Caller,
    id: UserId,
    error: Option<String>,
) -> PageResult {
    let clinics = admin_clinics(state, c).await?;
    let u = staff::member(state, c, id).await?;
    let names: HashMap<String, String> = clinics.iter().cloned().collect();
    let grants = u
        .grants
        .iter()
        .filter_map(|(k, r)| {
            names.get(&k.to_string()).map(|n| {
                (
                    k.to_string(),
                    n.clone(),
                    r.as_str().to_string(),
                    r.label().to_string(),
                )
            })
        })
        .collect();
    let page = StaffMemberPage {
        layout: Layout::new(c, u.display_name.clone(), "staff"),
        id: id.to_string(),
        name: u.display_name,
        username: u.username,
        disabled: u.disabled,
        totp: u.totp,
        grants,
        clinic_options: clinics,
        role_options: Role::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), r.label().to_string()))
            .collect(),
        error,
    };
    render(&page)
}

async fn staff_member(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    staff_member_page(&state, &c, page_id(&id)?, None).await
}

/// After a change to a staff member: their page, or it again with why the
/// change was refused.
async fn staff_changed(
    state: &AppState,
    c: &Caller,
    id: UserId,
    r: Result<(), Error>,
) -> PageResult {
    match r {
        Ok(()) => Ok(see_other(&format!("/admin/staff/{id}"))),
        Err(Error::Conflict(why)) => staff_member_page(state, c, id, Some(why)).await,
        Err(e) => Err(e.into()),
    }
}

async fn staff_grant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    staff_role(&state, &id, &f, true).await
}

async fn staff_revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    staff_role(&state, &id, &f, false).await
}

/// Grants or revokes the role in the clinic the form names.
async fn staff_role(state: &AppState, id: &str, f: &StaffForm, grant: bool) -> PageResult {
    let uid: UserId = page_id(id)?;
    let clinic = f.form.get("clinic_id").unwrap_or_default();
    let role = f.form.get("role").unwrap_or_default();
    let r = staff::set_role(state, &f.caller, uid, (&clinic, &role), grant).await;
    staff_changed(state, &f.caller, uid, r).await
}

async fn staff_disable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let uid: UserId = page_id(&id)?;
    let r = staff::set_disabled(&state, &f.caller, uid, true).await;
    staff_changed(&state, &f.caller, uid, r).await
}

async fn staff_enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let uid: UserId = page_id(&id)?;
    let r = staff::set_disabled(&state, &f.caller, uid, false).await;
    staff_changed(&state, &f.caller, uid, r).await
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    before: Option<i64>,
}

/// The audit query a page's filter asks for, with a message for any part
/// that could not be read.
async fn audit_query(
    state: &AppState,
    c: &Caller,
    q: &AuditQuery,
    limit: i64,
) -> Result<(audit_log::Query, Option<String>), Error> {
    let mut error = None;
    let from = day_start(&q.from, "from").unwrap_or_else(|e| {
        error = Some(format!("From {}.", e.message));
        None
    });
    let to = day_start(&q.to, "to")
        .unwrap_or_else(|e| {
            error = Some(format!("To {}.", e.message));
            None
        })
        .map(|t| t + 86_400_000_000);
    let typed = q.patient.trim();
    let mut nothing = false;
    let patient = if typed.is_empty() {
        None
    } else if let Ok(id) = typed.parse::<PatientId>() {
        Some(id)
    } else {
        let found = audit_log::patient_by_mrn(state, c, typed).await?;
        if found.is_none() {
            error = Some("Patient: enter a patient id or an exact MRN.".into());
            nothing = true;
        }
        found
    };
    let user = if q.user.is_empty() {
        None
    } else {
        match q.user.parse::<UserId>() {
            Ok(u) => Some(u),
            // Not an id at all: matches nothing.
            Err(_) => {
                nothing = true;
                None
            }
        }
    };
    let query = audit_log::Query {
        patient,
        user,
        action: Action::parse(&q.action),
        from,
        to,
        before: q.before,
        limit,
        nothing,
    };
    Ok((query, error))
}

/// Every action, in words, grouped by the part of the clinic's work it is in.
fn action_groups() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let mut groups: Vec<(&'static str, Vec<(&'static str, &'static str)>)> = vec![];
    for a in Action::ALL {
        let entry = (a.as_str(), a.label());
        match groups.iter_mut().find(|g| g.0 == a.area()) {
            Some(g) => g.1.push(entry),
            None => groups.push((a.area(), vec![entry])),
        }
    }
    for g in &mut groups {
        g.1.sort_by_key(|x| x.1);
    }
    groups
}

async fn audit_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<AuditQuery>,
) -> PageResult {
    c.require_any(Permission::AuditRead)?;
    let (query, error) = audit_query(&state, &c, &q, 100).await?;
    let users = audit_log::actors(&state, &c).await?;
    let audit_log::Listing { events, names } =
        audit_log::list(&state, &c, &query, true, "").await?;
    let next_before = (events.len() == 100)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    // Each event at its clinic's wall clock; one of the whole organisation
    // at that of the first clinic the reader audits.
    let clocks: HashMap<String, WallClock> = settings::clinics(&state, &c)
        .await?
        .into_iter()
        .map(|k| {
            let clock = WallClock::new(&k.settings.time_zone, &k.settings.country);
            (k.id.to_string(), clock)
        })
        .collect();
    let home = c
        .clinics_with(Permission::AuditRead)
        .first()
        .and_then(|k| clocks.get(&k.to_string()))
        .cloned()
        .unwrap_or_else(|| WallClock::new("UTC", ""));
    let items = events
        .into_iter()
        .map(|e| AuditItem {
            seq: e.seq,
            when: e
                .clinic_id
                .as_ref()
                .and_then(|k| clocks.get(k))
                .unwrap_or(&home)
                .to_the_second(e.at),
            who: e.actor_label,
            role: e
                .actor_role
                .as_deref()
                .map(|r| {
                    r.parse::<Role>()
                        .map(|r| r.label().to_string())
                        .unwrap_or_else(|_| r.to_string())
                })
                .unwrap_or_default(),
            action_label: Action::parse(&e.action)
                .map(|a| a.label().to_string())
                .unwrap_or_else(|| e.action.clone()),
            action: e.action,
            patient: e
                .patient_id
                .as_ref()
                .and_then(|p| names.get(p).cloned())
                .unwrap_or_else(|| e.patient_id.clone().unwrap_or_default()),
            patient_id: if e.patient_id.as_ref().is_some_and(|p| names.contains_key(p)) {
                e.patient_id.unwrap_or_default()
            } else {
                String::new()
            },
            outcome: e.outcome,
            source: e.source_ip.unwrap_or_default(),
            request_id: e.request_id.unwrap_or_default(),
        })
        .collect();
    let page = AuditPage {
        layout: Layout::new(&c, "Audit log", "audit"),
        items,
        patient: q.patient,
        user: q.user,
        action: q.action,
        from: q.from,
        to: q.to,
        actions: action_groups(),
        users: users
            .into_iter()
            .map(|(id, name)| (id.to_string(), name))
            .collect(),
        error,
        next_before,
    };
    render(&page)
}

/// The filtered audit log as CSV (up to 1,000 rows, newest first). The export
/// itself is recorded.
async fn audit_export(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<AuditQuery>,
) -> PageResult {
    c.require_any(Permission::AuditRead)?;
    let (query, error) = audit_query(&state, &c, &q, 1000).await?;
    if let Some(e) = error {
        return Err(Error::bad(e, None).into());
    }
    let body = audit_log::export_csv(&state, &c, &query).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-log.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

// ---- Views -------------------------------------------------------------------

pub struct ClinicListItem {
    pub id: String,
    pub name: String,
    pub city: String,
    pub zone: String,
    pub hours: String,
}

#[derive(Template)]
#[template(path = "admin/clinics.html")]
pub struct ClinicsPage {
    pub layout: Layout,
    pub clinics: Vec<ClinicListItem>,
}

pub struct ClosureItem {
    pub id: String,
    pub date: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "admin/clinic_edit.html")]
pub struct ClinicEditPage {
    pub layout: Layout,
    pub id: String,
    pub name: String,
    pub groups: Vec<FieldGroup>,
    pub hours: Vec<(String, String, String, String, Option<String>)>,
    pub errors: Vec<String>,
    pub closures: Vec<ClosureItem>,
    pub closure_error: Option<String>,
    pub chart: super::hours::HoursChart,
}

pub struct StaffItem {
    pub id: String,
    pub name: String,
    pub username: String,
    pub roles: Vec<(String, String)>,
    pub disabled: bool,
    pub totp: bool,
}

#[derive(Template)]
#[template(path = "admin/staff.html")]
pub struct StaffPage {
    pub layout: Layout,
    pub staff: Vec<StaffItem>,
    pub form: Vec<FieldGroup>,
    pub errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin/staff_member.html")]
pub struct StaffMemberPage {
    pub layout: Layout,
    pub id: String,
    pub name: String,
    pub username: String,
    pub disabled: bool,
    pub totp: bool,
    pub grants: Vec<(String, String, String, String)>,
    pub clinic_options: Vec<(String, String)>,
    pub role_options: Vec<(String, String)>,
    pub error: Option<String>,
}

pub struct AuditItem {
    pub seq: i64,
    pub when: String,
    pub who: String,
    pub role: String,
    /// The action in words; its code is the cell's title.
    pub action_label: String,
    pub action: String,
    pub patient: String,
    pub patient_id: String,
    pub outcome: String,
    pub source: String,
    pub request_id: String,
}

impl AuditItem {
    /// The outcome in words.
    pub fn outcome_label(&self) -> &str {
        match self.outcome.as_str() {
            "ok" => "Done",
            "denied" => "Refused: no permission",
            "not_found" => "Not found",
            "refused" => "Refused",
            other => other,
        }
    }

    /// Enough of the request id to match a log line; the whole id is in the title.
    pub fn request_short(&self) -> &str {
        self.request_id
            .get(self.request_id.len().saturating_sub(10)..)
            .unwrap_or(&self.request_id)
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub items: Vec<AuditItem>,
    pub patient: String,
    pub user: String,
    pub action: String,
    pub from: String,
    pub to: String,
    /// The filter's choices under their headings: (area, [(code, words)]).
    pub actions: Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
    pub users: Vec<(String, String)>,
    pub error: Option<String>,
    pub next_before: Option<i64>,
}
