//! The patient list and search,
//! the chart with its visits and access tab, and the patient form
//! (`clinic::patients` and the use cases each part of the chart reads).

use askama::Template;
use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use clinic::records::org::Clinic;
use clinic::records::patients::PatientRecord;
use domain::auth::Permission;
use domain::ids::{ClinicId, PatientId};
use domain::patients::{PatientInput, SEX_AT_BIRTH};
use domain::FieldError;
use serde::Deserialize;

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::ui::*;
use crate::AppState;
use clinic::audit_log;
use clinic::patients::{self, today};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
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
                    k.settings.clock().stamp(a.starts_at),
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
        check_in_blocked: None,
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
                        value: k.settings.clock().stamp(p.created_at),
                    },
                    InfoItem {
                        label: "Last changed",
                        value: k.settings.clock().stamp(p.updated_at),
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
                k.settings.clock().stamp(e.opened_at),
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
        let now = clinic::treatment::check_in_chairs(&state, &c, k.id, pid).await?;
        page.check_in_blocked = now.why_not();
        page.check_in_chairs = now
            .free
            .into_iter()
            .map(|r| (r.resource.id.to_string(), r.resource.name))
            .collect();
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
    let clock = k.settings.clock();
    page.access = events
        .into_iter()
        .map(|e| AccessRow {
            when: clock.to_the_second(e.at),
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

// ---- Views -------------------------------------------------------------------

pub struct PatientRow {
    pub id: String,
    pub name: String,
    pub preferred: String,
    pub dob: String,
    pub age: i64,
    pub mrn: String,
    pub phone: String,
    pub clinic: String,
}

#[derive(Template)]
#[template(path = "patients/patients.html")]
pub struct PatientsPage {
    pub layout: Layout,
    pub q: String,
    pub rows: Vec<PatientRow>,
    pub searched: bool,
    pub total: i64,
    pub can_create: bool,
}

#[derive(Template)]
#[template(path = "patients/patient_results.html")]
pub struct PatientResults {
    pub q: String,
    pub rows: Vec<PatientRow>,
    pub searched: bool,
}

pub struct InfoItem {
    pub label: &'static str,
    pub value: String,
}

pub struct AccessRow {
    pub when: String,
    pub who: String,
    pub role: String,
    pub action: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "patients/chart.html")]
pub struct ChartPage {
    pub layout: Layout,
    pub id: String,
    pub tab: &'static str,
    pub name: String,
    pub preferred: String,
    pub mrn: String,
    pub dob: String,
    pub age: i64,
    pub clinic: String,
    pub escort: String,
    pub tabs: ChartTabs,
    pub can_edit: bool,
    pub can_book: bool,
    /// Visits: (id, when, what, status, status class); covered by the chart's audit record.
    pub visits: Vec<(String, String, String, String, &'static str)>,
    pub sections: Vec<(&'static str, Vec<InfoItem>)>,
    pub access: Vec<AccessRow>,
    /// Treatment sessions: (encounter id, checked in, chair, status).
    pub sessions: Vec<(String, String, String, &'static str)>,
    /// Ketamine given, from the Schedule III record: (when, amount, lot, by).
    pub administrations: Vec<(String, String, String, String)>,
    /// Chairs to check the patient into without a booking; empty when the
    /// caller may not, there is no plan, or a visit is open.
    pub check_in_chairs: Vec<(String, String)>,
    /// Why the patient cannot be checked in now, said rather than the form
    /// left out.
    pub check_in_blocked: Option<String>,
    pub clinic_id: String,
}
