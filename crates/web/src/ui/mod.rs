//! What every page shares: the view structs of the layout and shared
//! templates, rendering, notices (a fixable error or a flash), form fields,
//! page ids and query strings, and time formatting. Each journey keeps its
//! own views beside its handlers; templates live in `templates/<journey>/`.

pub mod assets;

use askama::Template;
use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use clinic::records::org::Clinic;
use domain::ids::ClinicId;

use crate::error::{Error, PageError};
use crate::AppState;
use domain::auth::Permission;
use domain::FieldError;

use crate::auth::Caller;

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
}

/// The chart's section tabs (`chart_tabs.html`), each shown only to a caller
/// who may open it: a tab that answers "not allowed" is a dead end.
#[derive(Clone)]
pub struct ChartTabs {
    pub id: String,
    /// The tab shown: overview, measures, assessment, eligibility, consent,
    /// plan or access.
    pub current: &'static str,
    /// Measures, assessment, eligibility, consent and plan (all read under
    /// the permission to read measures).
    pub clinical: bool,
    pub billing: bool,
    pub access: bool,
}

impl ChartTabs {
    pub fn new(
        c: &Caller,
        patient: impl std::fmt::Display,
        clinic: domain::ids::ClinicId,
        current: &'static str,
    ) -> ChartTabs {
        ChartTabs {
            id: patient.to_string(),
            current,
            clinical: c.may(Permission::MeasureRead, clinic),
            billing: c.may(Permission::BillRead, clinic),
            access: c.may(Permission::AuditRead, clinic),
        }
    }
}

/// What every signed-in page's frame needs.
pub struct Layout {
    pub title: String,
    pub user: String,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub css: String,
    pub js: String,
    pub htmx: String,
    pub flash: Option<String>,
    /// The session is handed to a patient: no staff navigation, no name.
    pub kiosk: bool,
}

impl Layout {
    pub fn new(c: &Caller, title: impl Into<String>, active: &str) -> Layout {
        let any = |p| !c.clinics_with(p).is_empty();
        let mut nav = vec![NavItem {
            href: "/",
            label: "Today",
            active: active == "home",
        }];
        if any(Permission::PatientRead) {
            nav.push(NavItem {
                href: "/patients",
                label: "Patients",
                active: active == "patients",
            });
        }
        if any(Permission::LeadRead) {
            nav.push(NavItem {
                href: "/leads",
                label: "Leads",
                active: active == "leads",
            });
        }
        if any(Permission::MeasureRead) {
            nav.push(NavItem {
                href: "/tasks",
                label: "Tasks",
                active: active == "tasks",
            });
            nav.push(NavItem {
                href: "/outcomes",
                label: "Outcomes",
                active: active == "outcomes",
            });
        }
        if any(Permission::EncounterRead) {
            nav.push(NavItem {
                href: "/floor",
                label: "Floor",
                active: active == "floor",
            });
        }
        if any(Permission::CsRead) {
            nav.push(NavItem {
                href: "/substances",
                label: "Substances",
                active: active == "substances",
            });
        }
        if any(Permission::BillRead) {
            nav.push(NavItem {
                href: "/billing",
                label: "Billing",
                active: active == "billing",
            });
        }
        if any(Permission::ScheduleRead) {
            nav.push(NavItem {
                href: "/schedule",
                label: "Schedule",
                active: active == "schedule",
            });
        }
        if any(Permission::AuditRead) {
            nav.push(NavItem {
                href: "/audit",
                label: "Audit log",
                active: active == "audit",
            });
        }
        if any(Permission::ClinicSettings) {
            nav.push(NavItem {
                href: "/admin/clinics",
                label: "Clinics",
                active: active == "clinics",
            });
        }
        if any(Permission::StaffManage) {
            nav.push(NavItem {
                href: "/admin/staff",
                label: "Staff",
                active: active == "staff",
            });
        }
        nav.push(NavItem {
            href: "/account",
            label: "Account",
            active: active == "account",
        });
        let kiosk = c.user.as_ref().is_some_and(|u| u.kiosk.is_some());
        if kiosk {
            nav.clear();
        }
        Layout {
            title: title.into(),
            user: c
                .user
                .as_ref()
                .filter(|_| !kiosk)
                .map(|u| u.display_name.clone())
                .unwrap_or_default(),
            csrf: c.csrf().to_string(),
            kiosk,
            nav,
            css: crate::ui::assets::url("app.css"),
            js: crate::ui::assets::url("app.js"),
            htmx: crate::ui::assets::url("htmx.min.js"),
            flash: None,
        }
    }

    pub fn with_flash(mut self, f: Option<String>) -> Layout {
        self.flash = f;
        self
    }
}

/// One input of a form, with its current value and error.
#[derive(Clone, Debug)]
pub struct FormField {
    pub name: String,
    pub label: String,
    pub value: String,
    pub error: Option<String>,
    pub kind: &'static str,
    pub options: Vec<(String, String)>,
    pub required: bool,
    pub autocomplete: &'static str,
    pub hint: &'static str,
}

impl FormField {
    pub fn text(name: &str, label: &str, value: Option<&str>) -> FormField {
        FormField {
            name: name.to_string(),
            label: label.to_string(),
            value: value.unwrap_or("").to_string(),
            error: None,
            kind: "text",
            options: vec![],
            required: false,
            autocomplete: "off",
            hint: "",
        }
    }
    pub fn kind(mut self, k: &'static str) -> Self {
        self.kind = k;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn auto(mut self, a: &'static str) -> Self {
        self.autocomplete = a;
        self
    }
    pub fn hint(mut self, h: &'static str) -> Self {
        self.hint = h;
        self
    }
    pub fn options(mut self, o: Vec<(String, String)>) -> Self {
        self.kind = "select";
        self.options = o;
        self
    }
    pub fn id(&self) -> String {
        format!("f-{}", self.name)
    }
}

pub struct FieldGroup {
    pub legend: String,
    pub fields: Vec<FormField>,
}

/// Attaches errors to the fields they name; errors naming no field are returned.
pub fn attach_errors(groups: &mut [FieldGroup], errors: &[FieldError]) -> Vec<String> {
    let mut loose = Vec::new();
    for e in errors {
        let mut found = false;
        for g in groups.iter_mut() {
            for f in g.fields.iter_mut() {
                if f.name == e.field {
                    f.error = Some(e.message.clone());
                    found = true;
                }
            }
        }
        if !found {
            loose.push(format!("{} {}", e.field, e.message));
        }
    }
    loose
}

#[derive(Template)]
#[template(path = "ui/form_page.html")]
pub struct FormPage {
    pub layout: Layout,
    pub heading: String,
    pub intro: String,
    pub action: String,
    pub submit: String,
    pub cancel: String,
    pub groups: Vec<FieldGroup>,
    pub errors: Vec<String>,
}

/// What was typed into a refused form, so that the page comes back with it
/// (never a password or a code). `form` names which of a page's forms it
/// was; the others come back empty.
#[derive(Debug, Default, Clone)]
pub struct Kept {
    form: String,
    fields: Vec<(String, String)>,
}

impl Kept {
    /// A form filled from what is already known (not posted), so that a
    /// fact recorded elsewhere is not typed again.
    pub fn filled(form: &str, fields: Vec<(String, String)>) -> Kept {
        Kept {
            form: form.to_string(),
            fields,
        }
    }

    pub fn new(form: &str, posted: &crate::auth::Posted) -> Kept {
        Kept {
            form: form.to_string(),
            fields: posted
                .0
                .iter()
                .filter(|(k, _)| !(k.contains("password") || k.contains("code") || k == "csrf"))
                .cloned()
                .collect(),
        }
    }

    /// The value typed into field `name` of form `form` (empty otherwise).
    pub fn val(&self, form: &str, name: &str) -> &str {
        if self.form != form {
            return "";
        }
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Whether `value` was the one chosen in field `name` of form `form`.
    pub fn chose(&self, form: &str, name: &str, value: &str) -> bool {
        self.form == form && self.val(form, name) == value
    }

    /// Whether a box of field `name` with `value` was ticked (a field that
    /// may be sent more than once, such as a list of checkboxes).
    pub fn ticked(&self, form: &str, name: &str, value: &str) -> bool {
        self.form == form && self.fields.iter().any(|(k, v)| k == name && v == value)
    }

    /// Whether form `form` is the one that came back.
    pub fn is(&self, form: &str) -> bool {
        self.form == form
    }
}

// ---- Rendering pages -------------------------------------------------------

/// What a page handler answers.
pub(crate) type PageResult = Result<axum::response::Response, crate::error::PageError>;

pub(crate) fn render<T: Template>(t: &T) -> PageResult {
    Ok(Html(t.render().map_err(crate::error::template)?).into_response())
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Page ids that do not parse are simply not found.
pub(crate) fn page_id<T: std::str::FromStr>(s: &str) -> Result<T, Error> {
    s.parse().map_err(|_| Error::NotFound)
}

pub(crate) async fn clinic_names(
    state: &AppState,
    c: &Caller,
) -> Result<HashMap<ClinicId, Clinic>, Error> {
    Ok(clinic::settings::clinics(state, c)
        .await?
        .into_iter()
        .map(|k| (k.id, k))
        .collect())
}

/// A query string parsed into `T`; a malformed one gets a page naming the problem.
pub(crate) struct PageQuery<T>(pub T);

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

/// The words of an error the user can fix on the same page (bad input, a
/// taken time); any other error passes through to the error page.
pub(crate) fn fixable(e: Error) -> Result<String, Error> {
    match e {
        Error::Invalid(errs) => Ok(errs
            .iter()
            .map(|e| format!("{}: {}", e.field.replace('_', " "), e.message))
            .collect::<Vec<_>>()
            .join("; ")),
        Error::Conflict(m) => Ok(m),
        Error::BadRequest { detail, .. } => Ok(detail),
        other => Err(other),
    }
}

/// A change's outcome as its page shows it: `(error, flash)`. Errors the
/// user cannot fix on the page pass through to the error page.
pub(crate) fn notice(r: Result<String, Error>) -> Result<(Option<String>, Option<String>), Error> {
    match r {
        Ok(flash) => Ok((None, Some(flash))),
        Err(e) => Ok((Some(fixable(e)?), None)),
    }
}

/// The start of a date (UTC) in micros, or a message naming the field.
pub(crate) fn day_start(s: &str, field: &str) -> Result<Option<i64>, FieldError> {
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

/// The badge class of a visit's state: done is green, gone is red, a
/// patient in the building is marked.
pub fn visit_status_class(s: clinic::records::scheduling::Status) -> &'static str {
    use clinic::records::scheduling::Status;
    match s {
        Status::Cancelled | Status::NoShow => "off",
        Status::Completed => "ok",
        Status::CheckedIn => "in",
        Status::Booked => "",
    }
}
