//! Server-rendered pages for staff. Handlers extract, authorise, call a use
//! case and render; forms re-render with field errors.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clinic::records::org::Clinic;
use clinic::records::patients::PatientRecord;
use domain::audit::Action;
use domain::auth::{Permission, Role};
use domain::clinics::{summarize_hours, ClinicSettings, ClinicSettingsInput, WEEKDAY_NAMES};
use domain::ids::{ClinicId, ClosureId, PatientId, UserId};
use domain::patients::{PatientInput, SEX_AT_BIRTH};
use domain::time::format_in_zone;
use domain::FieldError;
use serde::Deserialize;

use crate::auth::{
    constant_time_eq, cookie_value, new_totp, random_token, read_form, set_cookie, Caller, Staff,
    StaffForm, PRELOGIN_COOKIE, SESSION_COOKIE,
};
use crate::ctx::RequestMeta;
use crate::error::{Error, PageError};
use crate::views::*;
use crate::AppState;
use clinic::patients::{self, today};
use clinic::{account, audit_log, settings, staff};

type PageResult = Result<Response, PageError>;

mod billing;
mod front;
mod measures;
mod portal;
mod pretreatment;
mod protocols;
mod schedule;
mod schedule_admin;
mod substances;
mod treatment;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
        .route("/patients", get(patients_page))
        .route("/patients/results", get(patient_results))
        .route(
            "/patients/new",
            get(new_patient_form).post(new_patient_submit),
        )
        .route("/patients/{id}", get(chart))
        .route("/patients/{id}/access", get(chart_access))
        .route(
            "/patients/{id}/edit",
            get(edit_patient_form).post(edit_patient_submit),
        )
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
        .route("/account", get(account_page))
        .route("/account/password", post(account_password))
        .route("/account/totp/start", post(account_totp_start))
        .route("/account/totp", post(account_totp_confirm))
        .merge(schedule::routes())
        .merge(schedule_admin::routes())
        .merge(front::routes())
        .merge(portal::routes())
        .merge(protocols::routes())
        .merge(measures::routes())
        .merge(pretreatment::routes())
        .merge(treatment::routes())
        .merge(substances::routes())
        .merge(billing::routes())
}

fn render<T: Template>(t: &T) -> PageResult {
    Ok(Html(t.render().map_err(crate::error::template)?).into_response())
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Page ids that do not parse are simply not found.
fn page_id<T: std::str::FromStr>(s: &str) -> Result<T, Error> {
    s.parse().map_err(|_| Error::NotFound)
}

async fn clinic_names(state: &AppState, c: &Caller) -> Result<HashMap<ClinicId, Clinic>, Error> {
    Ok(clinic::settings::clinics(state, c)
        .await?
        .into_iter()
        .map(|k| (k.id, k))
        .collect())
}

/// A query string parsed into `T`; a malformed one gets a page naming the problem.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for PageQuery<T> {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(PageQuery)
            .map_err(|e| {
                PageError(Error::bad(
                    format!("The address has a bad parameter: {e}."),
                    None,
                ))
            })
    }
}

// ---------------------------------------------------------------- sign in

async fn login_form(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, _) = req.into_parts();
    if let Some(tok) = cookie_value(&parts, SESSION_COOKIE) {
        if account::session_open(&state, &tok).await? {
            return Ok(see_other("/"));
        }
    }
    login_page(&state, None, String::new())
}

fn login_page(state: &AppState, error: Option<String>, username: String) -> PageResult {
    let pre = random_token(24);
    let page = LoginPage {
        csrf: pre.clone(),
        error,
        username,
        css: crate::assets::url("app.css"),
    };
    let mut resp = Html(page.render().map_err(crate::error::template)?).into_response();
    if let Ok(v) = set_cookie(
        PRELOGIN_COOKIE,
        &pre,
        state.web().secure_cookies,
        Some(3600),
    )
    .parse()
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

const LOGIN_FAILED: &str = "That username and password do not match an active account, or the account is \
     locked for a while after repeated failures. Check them and try again, or ask your clinic admin.";

async fn login_submit(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, body) = req.into_parts();
    let meta = parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default();
    let pre = cookie_value(&parts, PRELOGIN_COOKIE).unwrap_or_default();
    let form = read_form(Request::from_parts(parts, body), &state).await?;
    if !constant_time_eq(&form.get("csrf").unwrap_or_default(), &pre) {
        return login_page(
            &state,
            Some("This sign-in form had expired. Please sign in again.".into()),
            String::new(),
        );
    }
    let typed: String = form
        .get("username")
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect();
    let attempt = account::SignIn {
        username: typed.clone(),
        password: form.get("password").unwrap_or_default(),
        code: form.get("totp").unwrap_or_default(),
    };
    let Some(opened) = account::sign_in(&state, &meta, attempt).await? else {
        return login_page(&state, Some(LOGIN_FAILED.into()), typed);
    };
    let mut resp = see_other("/");
    let h = resp.headers_mut();
    if let Ok(v) = set_cookie(
        SESSION_COOKIE,
        &opened.token,
        state.web().secure_cookies,
        None,
    )
    .parse()
    {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(PRELOGIN_COOKIE, "", state.web().secure_cookies, Some(0)).parse() {
        h.append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn logout(State(state): State<AppState>, f: StaffForm) -> PageResult {
    account::sign_out(&state, &f.caller).await?;
    let mut resp = see_other("/login");
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", state.web().secure_cookies, Some(0)).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

// ---------------------------------------------------------------- today

async fn home(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    let mut clinics = Vec::new();
    let mut granted: Vec<ClinicId> = match &c.principal {
        domain::auth::Principal::User { grants, .. } => grants.iter().map(|g| g.0).collect(),
        _ => vec![],
    };
    granted.sort();
    granted.dedup();
    for id in granted {
        let k = clinic::settings::record(&state, id).await?;
        let roles: Vec<&str> = match &c.principal {
            domain::auth::Principal::User { grants, .. } => grants
                .iter()
                .filter(|g| g.0 == id)
                .map(|g| g.1.label())
                .collect(),
            _ => vec![],
        };
        let patients = patients::count(&state, &c, &[id]).await?.unwrap_or(-1);
        let closures: Vec<_> = clinic::settings::closures(&state, id)
            .await?
            .into_iter()
            .map(|x| x.closed_on)
            .collect();
        clinics.push(clinic_card(
            &k,
            roles.join(", "),
            patients,
            &closures,
            state.now(),
        ));
    }
    let open_tasks = if c.clinics_with(Permission::MeasureRead).is_empty() {
        -1
    } else {
        clinic::measures::open_task_count(&state, &c).await?
    };
    let new_leads = if c.clinics_with(Permission::LeadRead).is_empty() {
        -1
    } else {
        clinic::leads::counts(&state, &c)
            .await?
            .into_iter()
            .find(|(s, _)| s == "new")
            .map(|x| x.1)
            .unwrap_or(0)
    };
    let page = HomePage {
        layout: Layout::new(&c, "Today", "home"),
        open_tasks,
        new_leads,
        clinics,
        can_search: !c.clinics_with(Permission::PatientRead).is_empty(),
    };
    render(&page)
}

const AXIS_START: i32 = 6 * 60;
const AXIS_END: i32 = 20 * 60;

fn axis_x(min: i32) -> i32 {
    40 + (min.clamp(AXIS_START, AXIS_END) - AXIS_START) * 370 / (AXIS_END - AXIS_START)
}

fn clinic_card(
    k: &Clinic,
    roles: String,
    patients: i64,
    closures: &[jiff::civil::Date],
    now: i64,
) -> ClinicCard {
    let s = &k.settings;
    let tz = jiff::tz::TimeZone::get(&s.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let local = domain::time::to_timestamp(now).to_zoned(tz.clone());
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    let rows = (1..=7)
        .map(|d| {
            let h = s.hours.iter().find(|h| h.weekday == d);
            HoursRow {
                day: WEEKDAY_NAMES[(d - 1) as usize],
                y: 8 + (i32::from(d) - 1) * 20,
                bar: h.map(|h| {
                    (
                        axis_x(h.opens_min),
                        axis_x(h.closes_min) - axis_x(h.opens_min),
                    )
                }),
                label: h
                    .map(|h| format!("{} {}–{}", h.day_name(), h.opens(), h.closes()))
                    .unwrap_or_default(),
            }
        })
        .collect();
    ClinicCard {
        id: k.id.to_string(),
        name: s.name.clone(),
        address: format!(
            "{}, {}, {} {}",
            s.address_line1, s.city, s.region, s.postal_code
        ),
        phone: s.phone.clone(),
        zone: s.time_zone.clone(),
        local_time: local.strftime("%a %H:%M").to_string(),
        open_now: domain::clinics::is_open_at(
            domain::time::to_timestamp(now),
            &tz,
            &s.hours,
            closures,
        ),
        hours_summary: summarize_hours(&s.hours),
        roles,
        patients,
        rows,
        now_x: (AXIS_START..=AXIS_END)
            .contains(&minute)
            .then(|| axis_x(minute)),
        ticks: (6..=20)
            .step_by(2)
            .map(|h| (axis_x(h * 60), h.to_string()))
            .collect(),
    }
}

// ---------------------------------------------------------------- patients

#[derive(Deserialize, Default)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

fn patient_rows(
    found: &[PatientRecord],
    names: &HashMap<ClinicId, Clinic>,
    now: i64,
) -> Vec<PatientRow> {
    let today = today(now);
    found
        .iter()
        .map(|p| PatientRow {
            id: p.id.to_string(),
            name: p.details.display_name(),
            preferred: p.details.preferred_name.clone().unwrap_or_default(),
            dob: p.details.date_of_birth.to_string(),
            age: p.details.age_on(today),
            mrn: p.mrn.clone(),
            phone: p.details.phone.clone().unwrap_or_default(),
            clinic: names
                .get(&p.clinic_id)
                .map(|k| k.settings.name.clone())
                .unwrap_or_default(),
        })
        .collect()
}

async fn patients_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<SearchQuery>,
) -> PageResult {
    let q = q.q;
    let clinics = c.require_any(Permission::PatientRead)?;
    let searched = !q.trim().is_empty();
    let found = if searched {
        patients::search(&state, &c, &q, 50).await?
    } else {
        vec![]
    };
    let names = clinic_names(&state, &c).await?;
    let page = PatientsPage {
        layout: Layout::new(&c, "Patients", "patients"),
        rows: patient_rows(&found, &names, state.now()),
        q,
        searched,
        total: patients::count(&state, &c, &clinics).await?.unwrap_or(0),
        can_create: !c.clinics_with(Permission::PatientCreate).is_empty(),
    };
    render(&page)
}

/// The results table alone, for htmx. A full-page request is sent to the page.
async fn patient_results(
    State(state): State<AppState>,
    Staff(c): Staff,
    headers: HeaderMap,
    PageQuery(q): PageQuery<SearchQuery>,
) -> PageResult {
    let q = q.q;
    if !headers.contains_key("hx-request") {
        let to = format!("/patients?q={}", form_urlencode(&q));
        return Ok(see_other(&to));
    }
    let searched = !q.trim().is_empty();
    let found = if searched {
        patients::search(&state, &c, &q, 50).await?
    } else {
        vec![]
    };
    let names = clinic_names(&state, &c).await?;
    render(&PatientResults {
        rows: patient_rows(&found, &names, state.now()),
        q,
        searched,
    })
}

fn form_urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|v| v.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

fn patient_groups(
    i: &PatientInput,
    clinic_options: Option<(Vec<(String, String)>, String)>,
) -> Vec<FieldGroup> {
    let v = |o: &Option<String>| o.clone();
    let mut identity = vec![];
    if let Some((opts, selected)) = clinic_options {
        let mut f = FormField::text("clinic_id", "Clinic", Some(&selected))
            .options(opts)
            .required();
        f.value = selected;
        identity.push(f);
    }
    let sex_opts = std::iter::once((String::new(), "Not recorded".to_string()))
        .chain(SEX_AT_BIRTH.iter().map(|s| (s.to_string(), capitalise(s))))
        .collect();
    identity.extend([
        FormField::text("given_name", "Given name", v(&i.given_name).as_deref())
            .required()
            .auto("given-name"),
        FormField::text("family_name", "Family name", v(&i.family_name).as_deref())
            .required()
            .auto("family-name"),
        FormField::text(
            "preferred_name",
            "Preferred name",
            v(&i.preferred_name).as_deref(),
        )
        .auto("nickname"),
        FormField::text(
            "date_of_birth",
            "Date of birth",
            v(&i.date_of_birth).as_deref(),
        )
        .kind("date")
        .required()
        .auto("bday")
        .hint("YYYY-MM-DD"),
        {
            let mut f =
                FormField::text("sex_at_birth", "Sex assigned at birth", None).options(sex_opts);
            f.value = i.sex_at_birth.clone().unwrap_or_default();
            f
        },
        FormField::text("pronouns", "Pronouns", v(&i.pronouns).as_deref()),
    ]);
    vec![
        FieldGroup {
            legend: "Who".into(),
            fields: identity,
        },
        FieldGroup {
            legend: "Contact".into(),
            fields: vec![
                FormField::text("phone", "Phone", v(&i.phone).as_deref())
                    .kind("tel")
                    .auto("tel"),
                FormField::text("email", "E-mail", v(&i.email).as_deref())
                    .kind("email")
                    .auto("email"),
                FormField::text("address_line1", "Address", v(&i.address_line1).as_deref())
                    .auto("address-line1"),
                FormField::text(
                    "address_line2",
                    "Address line 2",
                    v(&i.address_line2).as_deref(),
                )
                .auto("address-line2"),
                FormField::text("city", "City", v(&i.city).as_deref()).auto("address-level2"),
                FormField::text("region", "State or region", v(&i.region).as_deref())
                    .auto("address-level1"),
                FormField::text("postal_code", "Postal code", v(&i.postal_code).as_deref())
                    .auto("postal-code"),
            ],
        },
        FieldGroup {
            legend: "Emergency contact".into(),
            fields: vec![
                FormField::text(
                    "emergency_contact_name",
                    "Name",
                    v(&i.emergency_contact_name).as_deref(),
                ),
                FormField::text(
                    "emergency_contact_relation",
                    "Relationship",
                    v(&i.emergency_contact_relation).as_deref(),
                ),
                FormField::text(
                    "emergency_contact_phone",
                    "Phone",
                    v(&i.emergency_contact_phone).as_deref(),
                )
                .kind("tel"),
            ],
        },
        FieldGroup {
            legend: "Escort after treatment".into(),
            fields: vec![
                FormField::text("escort_name", "Escort name", v(&i.escort_name).as_deref())
                    .hint("The adult who takes the patient home after a dosing session."),
                FormField::text(
                    "escort_phone",
                    "Escort phone",
                    v(&i.escort_phone).as_deref(),
                )
                .kind("tel"),
            ],
        },
    ]
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn input_from_form(f: &crate::auth::Posted) -> PatientInput {
    PatientInput {
        given_name: f.get("given_name"),
        family_name: f.get("family_name"),
        preferred_name: f.get("preferred_name"),
        date_of_birth: f.get("date_of_birth"),
        sex_at_birth: f.get("sex_at_birth"),
        pronouns: f.get("pronouns"),
        phone: f.get("phone"),
        email: f.get("email"),
        address_line1: f.get("address_line1"),
        address_line2: f.get("address_line2"),
        city: f.get("city"),
        region: f.get("region"),
        postal_code: f.get("postal_code"),
        emergency_contact_name: f.get("emergency_contact_name"),
        emergency_contact_phone: f.get("emergency_contact_phone"),
        emergency_contact_relation: f.get("emergency_contact_relation"),
        escort_name: f.get("escort_name"),
        escort_phone: f.get("escort_phone"),
    }
}

async fn creatable_clinics(state: &AppState, c: &Caller) -> Result<Vec<(String, String)>, Error> {
    let allowed = c.require_any(Permission::PatientCreate)?;
    let names = clinic_names(state, c).await?;
    Ok(allowed
        .iter()
        .map(|id| {
            (
                id.to_string(),
                names
                    .get(id)
                    .map(|k| k.settings.name.clone())
                    .unwrap_or_default(),
            )
        })
        .collect())
}

fn patient_form_page(
    c: &Caller,
    groups: Vec<FieldGroup>,
    errors: &[FieldError],
    heading: String,
    action: String,
    cancel: String,
    submit: &str,
) -> FormPage {
    let mut groups = groups;
    let loose = attach_errors(&mut groups, errors);
    FormPage {
        layout: Layout::new(c, heading.clone(), "patients"),
        heading,
        intro: "Fields marked * are required.".into(),
        action,
        submit: submit.into(),
        cancel,
        groups,
        errors: if errors.is_empty() { vec![] } else { loose },
    }
}

async fn new_patient_form(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    let opts = creatable_clinics(&state, &c).await?;
    let first = opts.first().map(|o| o.0.clone()).unwrap_or_default();
    let page = patient_form_page(
        &c,
        patient_groups(&PatientInput::default(), Some((opts, first))),
        &[],
        "Register a patient".into(),
        "/patients/new".into(),
        "/patients".into(),
        "Register patient",
    );
    render(&page)
}

async fn new_patient_submit(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let c = &f.caller;
    let opts = creatable_clinics(&state, c).await?;
    let input = input_from_form(&f.form);
    let clinic_raw = f.form.get("clinic_id").unwrap_or_default();
    let result = match clinic_raw.parse::<ClinicId>() {
        Ok(clinic) if opts.iter().any(|o| o.0 == clinic_raw) => {
            patients::create(&state, c, clinic, &input).await
        }
        _ => Err(Error::Invalid(vec![FieldError::new(
            "clinic_id",
            "must be one of your clinics",
        )])),
    };
    match result {
        Ok(p) => Ok(see_other(&format!("/patients/{}", p.id))),
        Err(Error::Invalid(errs)) => {
            let page = patient_form_page(
                c,
                patient_groups(&input, Some((opts, clinic_raw))),
                &errs,
                "Register a patient".into(),
                "/patients/new".into(),
                "/patients".into(),
                "Register patient",
            );
            let mut r = render(&page)?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

fn item(label: &'static str, v: &Option<String>) -> InfoItem {
    InfoItem {
        label,
        value: v.clone().unwrap_or_default(),
    }
}

async fn chart_common(
    state: &AppState,
    c: &Caller,
    id: &str,
    tab: &'static str,
) -> Result<(ChartPage, Clinic), Error> {
    let id: PatientId = page_id(id)?;
    let p = patients::read(state, c, id).await?;
    let k = clinic::settings::record(state, p.clinic_id).await?;
    let d = &p.details;
    let escort = match (&d.escort_name, &d.escort_phone) {
        (Some(n), Some(ph)) => format!("{n} · {ph}"),
        (Some(n), None) => n.clone(),
        _ => "not named yet".into(),
    };
    let address = [
        &d.address_line1,
        &d.address_line2,
        &d.city,
        &d.region,
        &d.postal_code,
    ]
    .iter()
    .filter_map(|x| x.as_deref())
    .collect::<Vec<_>>()
    .join(", ");
    let page = ChartPage {
        layout: Layout::new(c, d.display_name(), "patients"),
        id: p.id.to_string(),
        tab,
        name: d.display_name(),
        preferred: d.preferred_name.clone().unwrap_or_default(),
        mrn: p.mrn.clone(),
        dob: d.date_of_birth.to_string(),
        age: d.age_on(today(state.now())),
        clinic: k.settings.name.clone(),
        escort,
        tabs: ChartTabs::new(c, p.id, p.clinic_id, tab),
        can_edit: c.may(Permission::PatientEdit, p.clinic_id),
        can_book: c.may(Permission::ScheduleBook, p.clinic_id),
        visits: clinic::scheduling::visits_on_chart(state, c, &p)
            .await?
            .iter()
            .map(|a| {
                (
                    a.id.to_string(),
                    format_in_zone(a.starts_at, &k.settings.time_zone),
                    if a.self_booked {
                        format!("{} (booked by the patient)", a.type_name)
                    } else {
                        a.type_name.clone()
                    },
                    a.status.label().to_string(),
                    match a.status {
                        clinic::records::scheduling::Status::Cancelled
                        | clinic::records::scheduling::Status::NoShow => "off",
                        clinic::records::scheduling::Status::Completed => "ok",
                        _ => "",
                    },
                )
            })
            .collect(),
        sessions: vec![],
        administrations: vec![],
        check_in_chairs: vec![],
        clinic_id: k.id.to_string(),
        sections: vec![
            (
                "Personal details",
                vec![
                    InfoItem {
                        label: "Name",
                        value: format!("{} {}", d.given_name, d.family_name),
                    },
                    item("Preferred name", &d.preferred_name),
                    InfoItem {
                        label: "Date of birth",
                        value: d.date_of_birth.to_string(),
                    },
                    item("Sex at birth", &d.sex_at_birth),
                    item("Pronouns", &d.pronouns),
                ],
            ),
            (
                "Contact",
                vec![
                    item("Phone", &d.phone),
                    item("E-mail", &d.email),
                    InfoItem {
                        label: "Address",
                        value: address,
                    },
                ],
            ),
            (
                "Emergency contact",
                vec![
                    item("Name", &d.emergency_contact_name),
                    item("Relationship", &d.emergency_contact_relation),
                    item("Phone", &d.emergency_contact_phone),
                ],
            ),
            (
                "Escort after treatment",
                vec![item("Name", &d.escort_name), item("Phone", &d.escort_phone)],
            ),
            (
                "Record",
                vec![
                    InfoItem {
                        label: "MRN",
                        value: p.mrn.clone(),
                    },
                    InfoItem {
                        label: "Registered",
                        value: format_in_zone(p.created_at, &k.settings.time_zone),
                    },
                    InfoItem {
                        label: "Last changed",
                        value: format_in_zone(p.updated_at, &k.settings.time_zone),
                    },
                ],
            ),
        ],
        access: vec![],
    };
    Ok((page, k))
}

#[derive(serde::Deserialize)]
struct ChartQuery {
    portal: Option<String>,
}

async fn chart(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<ChartQuery>,
) -> PageResult {
    let (mut page, k) = chart_common(&state, &c, &id, "overview").await?;
    page.layout.flash = match q.portal.as_deref() {
        Some("sent") => Some("A portal sign-in link is on its way to the patient's e-mail.".into()),
        Some("no-email") => {
            Some("No e-mail address is on file: add one before sending a portal link.".into())
        }
        _ => None,
    };
    if !c.may(Permission::EncounterRead, k.id) {
        return render(&page);
    }
    let pid = page_id(&id)?;
    let sessions = clinic::treatment::patient_visits(&state, &c, pid).await?;
    let open = sessions.iter().any(|e| e.status == "open");
    page.sessions = sessions
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                format_in_zone(e.opened_at, &k.settings.time_zone),
                e.chair.clone().unwrap_or_default(),
                if e.status == "open" {
                    "in the clinic"
                } else {
                    "discharged"
                },
            )
        })
        .collect();
    if c.may(Permission::CsRead, k.id) {
        // The patient's administrations at this clinic, from the Schedule III
        // record (the read is audited against the patient).
        let q = clinic::substances::LedgerQuery {
            clinic_id: k.id.to_string(),
            patient_id: pid.to_string(),
            kind: "administered".into(),
            limit: Some(50),
            ..Default::default()
        };
        let v = clinic::substances::ledger(&state, &c, &q, false).await?;
        page.administrations = v
            .rows
            .iter()
            .map(|r| {
                (
                    v.location.when(r.at),
                    format!(
                        "{} ({})",
                        domain::substances::fmt_mg(r.quantity_ul, r.strength_mg_per_ml),
                        domain::substances::fmt_ml(r.quantity_ul)
                    ),
                    format!("{} {}", r.product_name, r.lot_number),
                    r.actor.clone(),
                )
            })
            .collect();
    }
    if !open && c.may(Permission::EncounterRecord, k.id) {
        for r in clinic::treatment::check_in_chairs(&state, &c, k.id, pid).await? {
            page.check_in_chairs
                .push((r.resource.id.to_string(), r.resource.name.clone()));
        }
    }
    render(&page)
}

async fn chart_access(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    let (mut page, k) = chart_common(&state, &c, &id, "access").await?;
    let clinic = k.id;
    let events = audit_log::patient_access(&state, &c, clinic, &page.id).await?;
    let tz = k.settings.time_zone;
    page.access = events
        .into_iter()
        .map(|e| AccessRow {
            when: format_in_zone(e.at, &tz),
            who: e.actor_label,
            role: e.actor_role.unwrap_or_default(),
            action: e.action,
            outcome: e.outcome,
        })
        .collect();
    render(&page)
}

async fn edit_patient_form(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let p = patients::read(&state, &c, pid).await?;
    c.require(Permission::PatientEdit, p.clinic_id)?;
    let page = patient_form_page(
        &c,
        patient_groups(&p.details.to_input(), None),
        &[],
        format!("Edit {}", p.details.display_name()),
        format!("/patients/{id}/edit"),
        format!("/patients/{id}"),
        "Save changes",
    );
    render(&page)
}

async fn edit_patient_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let input = input_from_form(&f.form);
    match patients::update(&state, &f.caller, pid, &input, &[], true).await {
        Ok(p) => Ok(see_other(&format!("/patients/{}", p.id))),
        Err(Error::Invalid(errs)) => {
            let page = patient_form_page(
                &f.caller,
                patient_groups(&input, None),
                &errs,
                "Edit patient".into(),
                format!("/patients/{id}/edit"),
                format!("/patients/{id}"),
                "Save changes",
            );
            let mut r = render(&page)?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
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
            hours: summarize_hours(&k.settings.hours),
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
    vec![FieldGroup {
        legend: "Clinic".into(),
        fields: vec![
            FormField::text("name", "Name", v(&i.name).as_deref()).required(),
            FormField::text("phone", "Phone", v(&i.phone).as_deref())
                .kind("tel")
                .required(),
            FormField::text("email", "E-mail", v(&i.email).as_deref()).kind("email"),
            FormField::text("address_line1", "Address", v(&i.address_line1).as_deref()).required(),
            FormField::text(
                "address_line2",
                "Address line 2",
                v(&i.address_line2).as_deref(),
            ),
            FormField::text("city", "City", v(&i.city).as_deref()).required(),
            FormField::text("region", "State or region", v(&i.region).as_deref()).required(),
            FormField::text("postal_code", "Postal code", v(&i.postal_code).as_deref()).required(),
            FormField::text("country", "Country", v(&i.country).as_deref())
                .required()
                .hint("Two letters, e.g. US"),
            FormField::text("time_zone", "Time zone", v(&i.time_zone).as_deref())
                .required()
                .hint("IANA name, e.g. America/Phoenix"),
        ],
    }]
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
    let uid: UserId = page_id(&id)?;
    let (clinic, role) = (
        f.form.get("clinic_id").unwrap_or_default(),
        f.form.get("role").unwrap_or_default(),
    );
    let r = staff::grant(&state, &f.caller, uid, &clinic, &role).await;
    staff_changed(&state, &f.caller, uid, r).await
}

async fn staff_revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let uid: UserId = page_id(&id)?;
    let (clinic, role) = (
        f.form.get("clinic_id").unwrap_or_default(),
        f.form.get("role").unwrap_or_default(),
    );
    let r = staff::revoke(&state, &f.caller, uid, &clinic, &role).await;
    staff_changed(&state, &f.caller, uid, r).await
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

/// The start of a date (UTC) in micros, or a message naming the field.
pub fn day_start(s: &str, field: &str) -> Result<Option<i64>, FieldError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let d: jiff::civil::Date = s
        .parse()
        .map_err(|_| FieldError::new(field, "must be a date as YYYY-MM-DD"))?;
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| Some(z.timestamp().as_microsecond()))
        .map_err(|_| FieldError::new(field, "is out of range"))
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
    let items = events
        .into_iter()
        .map(|e| AuditItem {
            seq: e.seq,
            when: domain::time::to_timestamp(e.at)
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string(),
            who: e.actor_label,
            role: e.actor_role.unwrap_or_default(),
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
        actions: Action::ALL.iter().map(|a| a.as_str().to_string()).collect(),
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

// ---------------------------------------------------------------- account

async fn account_view(
    state: &AppState,
    c: &Caller,
    password_errors: Vec<String>,
    setup: Option<(String, String)>,
    totp_error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let (u, names) = account::summary(state, c).await?;
    let page = AccountPage {
        layout: Layout::new(c, "Account", "account").with_flash(flash),
        username: u.username,
        roles: u
            .grants
            .iter()
            .map(|(k, r)| {
                (
                    names
                        .iter()
                        .find(|(id, _)| id == k)
                        .map(|(_, n)| n.clone())
                        .unwrap_or_default(),
                    r.label().to_string(),
                )
            })
            .collect(),
        password_errors,
        totp_enabled: u.totp,
        totp_setup: setup,
        totp_error,
    };
    render(&page)
}

async fn account_page(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    account_view(&state, &c, vec![], None, None, None).await
}

async fn account_password(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let change = account::PasswordChange {
        current: f.form.get("current").unwrap_or_default(),
        new: f.form.get("new").unwrap_or_default(),
        confirm: f.form.get("confirm").unwrap_or_default(),
    };
    if let Err(errors) = account::change_password(&state, &f.caller, change).await? {
        let mut r = account_view(&state, &f.caller, errors, None, None, None).await?;
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    // Every session ended, including this one: sign in again with the new password.
    Ok(see_other("/login"))
}

async fn account_totp_start(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let username = f
        .caller
        .user
        .as_ref()
        .map(|u| u.username.clone())
        .unwrap_or_default();
    account_view(
        &state,
        &f.caller,
        vec![],
        Some(new_totp(&username)),
        None,
        None,
    )
    .await
}

async fn account_totp_confirm(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let c = &f.caller;
    let secret = f.form.get("secret").unwrap_or_default();
    let code = f.form.get("code").unwrap_or_default();
    if !account::enable_totp(&state, c, &secret, &code).await? {
        let username = c
            .user
            .as_ref()
            .map(|u| u.username.clone())
            .unwrap_or_default();
        let url = format!("otpauth://totp/Stillwater:{username}?secret={secret}&issuer=Stillwater");
        let mut r = account_view(&state, c, vec![], Some((secret, url)), Some("That code did not match. Check the key and the time on your phone, then try the newest code.".into()), None).await?;
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    account_view(
        &state,
        c,
        vec![],
        None,
        None,
        Some("Two-step sign-in is on.".into()),
    )
    .await
}
