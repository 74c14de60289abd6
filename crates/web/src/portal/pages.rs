//! The patient portal's pages: asking for a sign-in link on the clinic's page,
//! using it, the patient's visits, booking a follow-up or integration session
//! from the free times, cancelling, signing out. Phone-first like the other
//! public pages, and usable by keyboard.

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clinic::records::org::Clinic;
use domain::ids::{AppointmentId, PatientId};
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::auth::{constant_time_eq, cookie_value, read_form, set_cookie, StaffForm};
use crate::ctx::Meta;
use crate::error::{Error, PageError};
use crate::front::pages::PublicFrame;
use crate::ui::fixable;
use crate::ui::{page_id, render, see_other, PageQuery, PageResult};
use crate::AppState;
use clinic::portal::{self as uc, Portal, COOKIE};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/c/{slug}/portal", get(sign_in_form).post(sign_in_ask))
        .route("/portal/in/{token}", get(link_page).post(link_use))
        .route("/portal", get(home))
        .route("/portal/book", get(book_page).post(book_submit))
        .route("/portal/visits/{id}/cancel", post(cancel))
        .route("/portal/intention", post(intention_submit))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/signed-out", get(signed_out))
        .route("/patients/{id}/portal-link", post(staff_send))
}

/// A signed-in patient; without a live session the page sends them to the
/// page that explains how to sign in again.
struct Patient(Portal);

impl FromRequestParts<AppState> for Patient {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Meta(meta) = Meta::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let token = cookie_value(parts, COOKIE).unwrap_or_default();
        match uc::session(state, &token, meta).await {
            Ok(Some(p)) => Ok(Patient(p)),
            Ok(None) => Err(see_other("/portal/signed-out")),
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

/// A form posted by a signed-in patient, its CSRF token checked.
struct PatientForm {
    portal: Portal,
    form: crate::auth::Posted,
}

impl FromRequest<AppState> for PatientForm {
    type Rejection = Response;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Patient(portal) = Patient::from_request_parts(&mut parts, state).await?;
        let form = read_form(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| PageError(e).into_response())?;
        let sent = form.get("csrf").unwrap_or_default();
        if !constant_time_eq(&sent, &portal.session.csrf_token) {
            return Err(PageError(Error::bad(
                "This form has expired. Go back, reload the page and try again.",
                Some("csrf"),
            ))
            .into_response());
        }
        Ok(PatientForm { portal, form })
    }
}

// ---- Signing in ---------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/portal_sign_in.html")]
struct SignInPage {
    frame: PublicFrame,
    action: String,
    email: String,
    error: Option<String>,
    sent: bool,
}

async fn sign_in_form(State(state): State<AppState>, Path(slug): Path<String>) -> PageResult {
    let c = clinic::leads::public_clinic(&state, &slug).await?;
    render(&SignInPage {
        frame: PublicFrame::of(&c, "Sign in to your portal"),
        action: format!("/c/{slug}/portal"),
        email: String::new(),
        error: None,
        sent: false,
    })
}

async fn sign_in_ask(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Meta(meta): Meta,
    req: Request,
) -> PageResult {
    let c = clinic::leads::public_clinic(&state, &slug).await?;
    let form = read_form(req, &state).await?;
    let email = form.get("email").unwrap_or_default();
    let mut page = SignInPage {
        frame: PublicFrame::of(&c, "Sign in to your portal"),
        action: format!("/c/{slug}/portal"),
        email: email.clone(),
        error: None,
        sent: false,
    };
    match uc::request_link(&state, &meta, &c, &email).await {
        Ok(()) => {
            page.sent = true;
            render(&page)
        }
        Err(e @ Error::Invalid(_)) => {
            page.error = Some(fixable(e)?);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "portal/portal_message.html")]
struct MessagePage {
    frame: PublicFrame,
    heading: String,
    message: String,
    /// A button that posts to this address (continuing with a link).
    action: Option<String>,
    button: String,
}

fn link_gone() -> PageResult {
    let page = MessagePage {
        frame: PublicFrame::plain("Link not usable"),
        heading: "This sign-in link cannot be used".into(),
        message: "Sign-in links work once and for 30 minutes. Ask for a new one on your \
                  clinic's page (Sign in to your portal), or call the clinic."
            .into(),
        action: None,
        button: String::new(),
    };
    Ok((StatusCode::GONE, render(&page)?).into_response())
}

/// Opening the link does not use it (mail scanners open links too): the
/// patient presses the button to sign in.
async fn link_page(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    if !uc::link_is_open(&state, &token).await? {
        return link_gone();
    }
    render(&MessagePage {
        frame: PublicFrame::plain("Sign in"),
        heading: "Sign in to your patient portal".into(),
        message: "You will stay signed in while you use the portal, for at most four hours. \
                  On a shared computer, sign out when you are done."
            .into(),
        action: Some(format!("/portal/in/{token}")),
        button: "Continue to my portal".into(),
    })
}

async fn link_use(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Meta(meta): Meta,
) -> PageResult {
    match uc::sign_in(&state, &meta, &token).await? {
        None => link_gone(),
        Some((secret, max_age)) => {
            let cookie = set_cookie(COOKIE, &secret, state.web().secure_cookies, Some(max_age));
            Ok(([(header::SET_COOKIE, cookie)], see_other("/portal")).into_response())
        }
    }
}

async fn sign_out(State(state): State<AppState>, f: PatientForm) -> PageResult {
    uc::sign_out(&state, &f.portal).await?;
    let cookie = set_cookie(COOKIE, "", state.web().secure_cookies, Some(0));
    Ok((
        [(header::SET_COOKIE, cookie)],
        see_other("/portal/signed-out"),
    )
        .into_response())
}

async fn signed_out() -> PageResult {
    render(&MessagePage {
        frame: PublicFrame::plain("Signed out"),
        heading: "You are signed out of the portal".into(),
        message: "To sign in again, use \"Sign in to your portal\" on your clinic's page: we \
                  e-mail you a new link. Your visits are kept as they are."
            .into(),
        action: None,
        button: String::new(),
    })
}

// ---- The portal -----------------------------------------------------------------

fn zone(c: &Clinic) -> Result<TimeZone, Error> {
    TimeZone::get(&c.settings.time_zone).map_err(|_| Error::Internal("clinic zone".into()))
}

fn when(tz: &TimeZone, m: i64, fmt: &str) -> String {
    domain::time::to_timestamp(m)
        .to_zoned(tz.clone())
        .strftime(fmt)
        .to_string()
}

pub struct VisitRow {
    pub id: String,
    pub day: String,
    pub time: String,
    pub what: String,
    pub status: String,
    pub status_class: &'static str,
    /// Why it cannot be cancelled online; empty when it can.
    pub no_cancel: String,
    pub cancellable: bool,
    /// A video visit's join link (empty: the clinic will send it).
    pub video: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/portal_home.html")]
struct HomePage {
    frame: PublicFrame,
    csrf: String,
    name: String,
    flash: Option<String>,
    error: Option<String>,
    ahead: Vec<VisitRow>,
    past: Vec<VisitRow>,
    /// (type code, name, minutes, instructions, why not bookable now)
    bookable: Vec<(String, String, u32, String, String)>,
    /// (number, date, what, amount, balance, owing)
    invoices: Vec<(String, String, String, String, String, bool)>,
    /// What is owed in all, when anything is.
    owed: Option<String>,
    /// Their scores over time (the staff's charts, read-only).
    charts: Vec<crate::measures::pages::Chart>,
    /// The next dosing session in words, and the intention written for it
    /// (what was typed, when a save was refused).
    intention: Option<(String, String)>,
    max_intention: usize,
}

fn row(
    tz: &TimeZone,
    a: &clinic::records::scheduling::Appointment,
    why: Option<String>,
) -> VisitRow {
    use clinic::records::scheduling::Status;
    VisitRow {
        id: a.id.to_string(),
        day: when(tz, a.starts_at, "%A %B %-d, %Y"),
        time: when(tz, a.starts_at, "%-I:%M %p"),
        what: a.type_name.clone(),
        status: a.status.label().to_string(),
        status_class: match a.status {
            Status::Cancelled | Status::NoShow => "off",
            Status::Completed => "ok",
            _ => "",
        },
        cancellable: why.is_none(),
        video: None,
        no_cancel: why.unwrap_or_default(),
    }
}

/// The portal's home; `done` is what the patient just did ("booked",
/// "cancelled"), said back to them.
async fn home_view(
    state: &AppState,
    p: &Portal,
    done: Option<&str>,
    error: Option<String>,
) -> Result<HomePage, Error> {
    let h = uc::home(state, p).await?;
    let tz = zone(&h.clinic)?;
    let clock = h.clinic.settings.clock();
    let (next, written) = clinic::intentions::in_portal(state, p).await?;
    let intention = next.map(|t| {
        (
            t.describe(&clock),
            written.map(|i| i.body).unwrap_or_default(),
        )
    });
    // "booked" is said with where its confirmation went: only a patient
    // with an address on file was e-mailed.
    let flash = match done {
        Some("booked") if h.has_email => {
            Some("Your visit is booked. We have e-mailed you the details.".to_string())
        }
        Some("booked") => Some(
            "Your visit is booked. We have no e-mail address for you, so no confirmation was sent: it is listed below."
                .to_string(),
        ),
        Some("cancelled") => Some("Your visit is cancelled.".to_string()),
        Some("intention") => Some(
            "Your intention is kept; your care team will see it at your chair.".to_string(),
        ),
        _ => None,
    };
    let money = |m: i64, cur: &str| domain::billing::fmt_money(m, cur);
    let invoices = h
        .invoices
        .iter()
        .map(|v| {
            let cur = &v.invoice.currency;
            (
                v.invoice.number.clone(),
                v.invoice.service_date.clone(),
                v.lines
                    .iter()
                    .find(|l| l.kind == "charge")
                    .map(|l| l.description.clone())
                    .unwrap_or_default(),
                money(v.charged - v.discounted - v.credited, cur),
                money(v.balance, cur),
                v.balance > 0,
            )
        })
        .collect();
    let owing: i64 = h.invoices.iter().map(|v| v.balance.max(0)).sum();
    let owed = (owing > 0).then(|| {
        money(
            owing,
            h.invoices
                .first()
                .map(|v| v.invoice.currency.as_str())
                .unwrap_or("USD"),
        )
    });
    let charts = h
        .trends
        .iter()
        .map(|t| crate::measures::pages::chart(t, &h.clinic.settings.clock()))
        .collect();
    Ok(HomePage {
        invoices,
        owed,
        charts,
        intention,
        max_intention: clinic::intentions::MAX_CHARS,
        frame: PublicFrame::of(&h.clinic, "Your visits"),
        csrf: p.session.csrf_token.clone(),
        name: h.name,
        flash,
        error,
        ahead: h
            .ahead
            .iter()
            .map(|(a, why, attend)| {
                let mut r = row(&tz, a, why.clone());
                r.video = match attend {
                    clinic::scheduling::Attend::InPerson => None,
                    clinic::scheduling::Attend::Video(link) => {
                        Some(link.clone().unwrap_or_default())
                    }
                };
                r
            })
            .collect(),
        past: h.past.iter().take(20).map(|a| row(&tz, a, None)).collect(),
        bookable: h
            .bookable
            .into_iter()
            .map(|(t, why)| {
                let minutes = t.phases.iter().map(|p| u32::from(p.minutes)).sum();
                (
                    t.code,
                    t.name,
                    minutes,
                    t.instructions,
                    why.unwrap_or_default(),
                )
            })
            .collect(),
    })
}

#[derive(Deserialize)]
struct HomeQuery {
    done: Option<String>,
}

async fn home(
    State(state): State<AppState>,
    Patient(p): Patient,
    PageQuery(q): PageQuery<HomeQuery>,
) -> PageResult {
    render(&home_view(&state, &p, q.done.as_deref(), None).await?)
}

#[derive(Template)]
#[template(path = "portal/portal_book.html")]
struct BookPage {
    frame: PublicFrame,
    csrf: String,
    code: String,
    type_name: String,
    instructions: String,
    range: String,
    days: Vec<(String, Vec<(i64, String)>)>,
    earlier: Option<String>,
    later: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct BookQuery {
    #[serde(rename = "type")]
    ty: Option<String>,
    from: Option<String>,
}

async fn book_view(
    state: &AppState,
    p: &Portal,
    code: &str,
    from: Option<jiff::civil::Date>,
    error: Option<String>,
) -> Result<BookPage, Error> {
    let c = clinic::settings::record(state, p.clinic()).await?;
    let tz = zone(&c)?;
    let (ty, from, starts) = uc::slots(state, p, code, from).await?;
    // At most one time per hour: a short list a patient can read on a phone.
    let mut days: Vec<(String, Vec<(i64, String)>)> = vec![];
    let mut last_hour = String::new();
    for s in starts {
        let day = when(&tz, s, "%A %B %-d");
        let hour = when(&tz, s, "%F %H");
        if hour == last_hour {
            continue;
        }
        last_hour = hour;
        let time = when(&tz, s, "%-I:%M %p");
        match days.last_mut() {
            Some((d, v)) if *d == day => v.push((s, time)),
            _ => days.push((day, vec![(s, time)])),
        }
    }
    let span = |n: i64| jiff::Span::new().days(n);
    let to = from.checked_add(span(uc::SLOT_DAYS - 1)).unwrap_or(from);
    let today = clinic::scheduling::local_date(&tz, state.now());
    Ok(BookPage {
        frame: PublicFrame::of(&c, &format!("Book: {}", ty.name)),
        csrf: p.session.csrf_token.clone(),
        code: ty.code.clone(),
        type_name: ty.name.clone(),
        instructions: ty.instructions.clone(),
        range: format!(
            "{} to {}",
            from.strftime("%B %-d"),
            to.strftime("%B %-d, %Y")
        ),
        days,
        earlier: (from > today).then(|| {
            from.checked_sub(span(uc::SLOT_DAYS))
                .unwrap_or(today)
                .max(today)
                .to_string()
        }),
        later: from
            .checked_add(span(uc::SLOT_DAYS))
            .unwrap_or(from)
            .to_string(),
        error,
    })
}

async fn book_page(
    State(state): State<AppState>,
    Patient(p): Patient,
    PageQuery(q): PageQuery<BookQuery>,
) -> PageResult {
    let code = q.ty.unwrap_or_default();
    let from = match q.from.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<jiff::civil::Date>().map_err(|_| {
            Error::Invalid(vec![domain::FieldError::new(
                "from",
                "is not a date (YYYY-MM-DD)",
            )])
        })?),
    };
    match book_view(&state, &p, &code, from, None).await {
        Ok(page) => render(&page),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            let msg = fixable(e)?;
            let page = home_view(&state, &p, None, Some(msg)).await?;
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn book_submit(State(state): State<AppState>, f: PatientForm) -> PageResult {
    let code = f.form.get("type").unwrap_or_default();
    let start = f
        .form
        .get("start")
        .and_then(|s| s.trim().parse::<i64>().ok());
    let r = match start {
        None => Err(Error::Invalid(vec![domain::FieldError::new(
            "start",
            "choose one of the times",
        )])),
        Some(s) => uc::book(&state, &f.portal, &code, s).await,
    };
    match r {
        Ok(_) => Ok(see_other("/portal?done=booked")),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            let msg = fixable(e)?;
            // Back to the times (fresh), or home when the type itself is refused.
            let page = match book_view(&state, &f.portal, &code, None, Some(msg.clone())).await {
                Ok(page) => render(&page)?,
                Err(Error::Invalid(_) | Error::Conflict(_)) => {
                    render(&home_view(&state, &f.portal, None, Some(msg)).await?)?
                }
                Err(e) => return Err(e.into()),
            };
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: PatientForm,
) -> PageResult {
    let id: AppointmentId = page_id(&id)?;
    match uc::cancel(&state, &f.portal, id).await {
        Ok(()) => Ok(see_other("/portal?done=cancelled")),
        Err(e @ Error::Conflict(_)) => {
            let msg = fixable(e)?;
            let page = home_view(&state, &f.portal, None, Some(msg)).await?;
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn intention_submit(State(state): State<AppState>, f: PatientForm) -> PageResult {
    let text = f.form.get("intention").unwrap_or_default();
    match clinic::intentions::write_in_portal(&state, &f.portal, &text).await {
        Ok(_) => Ok(see_other("/portal?done=intention")),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            let msg = fixable(e)?;
            let mut page = home_view(&state, &f.portal, None, Some(msg)).await?;
            // What was typed comes back with the reason.
            if let Some(i) = page.intention.as_mut() {
                i.1 = text;
            }
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Staff: send a sign-in link -------------------------------------------------

async fn staff_send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let here = f.form.get("here").is_some_and(|v| v == "1");
    match uc::send_link(&state, &f.caller, pid, here).await {
        Ok(Some(token)) => Ok(see_other(&format!("/portal/in/{token}"))),
        Ok(None) => Ok(see_other(&format!("/patients/{id}?portal=sent"))),
        Err(Error::Invalid(_)) => Ok(see_other(&format!("/patients/{id}?portal=no-email"))),
        Err(e) => Err(e.into()),
    }
}
