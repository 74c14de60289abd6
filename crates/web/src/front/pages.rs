//! Public pages, no sign-in: a clinic's front page, the two-minute
//! self-assessment, its result with free consultation times, and the
//! questionnaire a patient opens from a single-use link. Phone-first, usable
//! by keyboard, every page with the disclaimer and crisis numbers.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clinic::records::org::Clinic;
use domain::instruments::Instrument;
use domain::leads::{AssessmentInput, Outcome, CONDITIONS, EXCLUSIONS, OTHER_HELP, TREATMENTS};
use domain::FieldError;
use jiff::tz::TimeZone;

use crate::auth::{read_form, Posted};
use crate::ctx::Meta;
use crate::error::{Error, PageError};
use crate::ui::{render, see_other, PageQuery, PageResult};
use crate::AppState;
use clinic::measures::LinkProblem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/c/{slug}", get(clinic_page))
        .route(
            "/c/{slug}/assessment",
            get(assessment_form).post(assessment_submit),
        )
        .route(
            "/c/{slug}/result/{token}",
            get(result_page).post(result_book),
        )
        .route("/q/{token}", get(link_page).post(link_submit))
}

/// The frame of every public page.
pub struct PublicFrame {
    pub title: String,
    pub clinic: String,
    pub slug: String,
    pub phone: String,
    pub css: String,
}

impl PublicFrame {
    pub(crate) fn of(c: &Clinic, title: &str) -> PublicFrame {
        PublicFrame::new(title, c)
    }

    /// A page whose clinic is not known (an invalid link).
    pub(crate) fn plain(title: &str) -> PublicFrame {
        PublicFrame {
            title: title.into(),
            clinic: "Stillwater".into(),
            slug: String::new(),
            phone: String::new(),
            css: crate::ui::assets::url("app.css"),
        }
    }

    fn new(title: impl Into<String>, c: &Clinic) -> PublicFrame {
        PublicFrame {
            title: title.into(),
            clinic: c.settings.name.clone(),
            slug: c.slug.clone(),
            phone: c.settings.phone.clone(),
            css: crate::ui::assets::url("app.css"),
        }
    }
}

/// One question as a group of radio buttons.
#[derive(Clone)]
pub struct ItemView {
    pub name: String,
    pub number: usize,
    pub text: String,
    pub note: String,
    pub choices: Vec<(i32, String, bool)>,
    pub error: Option<String>,
}

/// The questions of an instrument, with answers so far and errors by field.
pub fn item_views(
    i: &Instrument,
    prefix: &str,
    answers: &BTreeMap<String, i32>,
    errors: &[FieldError],
) -> Vec<ItemView> {
    i.items
        .iter()
        .enumerate()
        .map(|(n, it)| {
            let name = format!("{prefix}.{}", it.id);
            let note = match &it.show_if {
                Some(domain::instruments::Cond::Item { item, .. }) => {
                    format!(
                        "Answer only if you said yes to question {}.",
                        position(i, item)
                    )
                }
                Some(_) => "Answer only if it applies.".into(),
                None if !it.required => "Optional.".into(),
                None => String::new(),
            };
            ItemView {
                number: n + 1,
                text: it.text.clone(),
                note,
                choices: i
                    .choices(it)
                    .iter()
                    .map(|c| {
                        (
                            c.value,
                            c.label.clone(),
                            answers.get(&it.id) == Some(&c.value),
                        )
                    })
                    .collect(),
                error: errors
                    .iter()
                    .find(|e| e.field == name)
                    .map(|e| e.message.clone()),
                name,
            }
        })
        .collect()
}

fn position(i: &Instrument, item: &str) -> usize {
    i.items
        .iter()
        .position(|x| x.id == item)
        .map(|p| p + 1)
        .unwrap_or(0)
}

/// Reads `prefix.item` answers from a form; text that is not a number is an error.
pub fn answers_from(
    form: &Posted,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, i32> {
    let mut out = BTreeMap::new();
    let lead = format!("{prefix}.");
    for (k, v) in &form.0 {
        if let Some(item) = k.strip_prefix(&lead) {
            match v.trim().parse::<i32>() {
                Ok(n) => {
                    out.insert(item.to_string(), n);
                }
                Err(_) => errors.push(FieldError::new(k.clone(), "must be one of the choices")),
            }
        }
    }
    out
}

// ---- Clinic page ----------------------------------------------------------

#[derive(Template)]
#[template(path = "front/public_clinic.html")]
struct ClinicPage {
    frame: PublicFrame,
    address: Vec<String>,
    hours: String,
}

async fn clinic_page(State(state): State<AppState>, Path(slug): Path<String>) -> PageResult {
    let c = clinic::leads::public_clinic(&state, &slug).await?;
    let s = &c.settings;
    render(&ClinicPage {
        frame: PublicFrame::new(s.name.clone(), &c),
        address: s.address_lines(),
        hours: s.hours_summary(),
    })
}

// ---- Assessment -----------------------------------------------------------

#[derive(Template)]
#[template(path = "front/assessment.html")]
struct AssessmentPage {
    frame: PublicFrame,
    errors: Vec<FieldError>,
    gad7: Vec<ItemView>,
    gad7_prompt: String,
    phq2: Vec<ItemView>,
    conditions: Vec<(String, String, bool)>,
    treatments: Vec<(String, String, bool)>,
    exclusions: Vec<(String, String, bool)>,
    no_exclusions: bool,
    given_name: String,
    family_name: String,
    email: String,
    phone: String,
    date_of_birth: String,
    consent: bool,
}

impl AssessmentPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// A field as the form labels it, for the error summary: "First name",
    /// "Your mood, question 3" (the PHQ-2's item 9 is the third asked).
    fn label(&self, field: &str) -> String {
        if let Some(n) = field.strip_prefix("gad7.") {
            return format!("How you have been feeling, question {n}");
        }
        if let Some(n) = field.strip_prefix("phq2.") {
            let shown = if n == "9" { "3" } else { n };
            return format!("Your mood, question {shown}");
        }
        match field {
            "given_name" => "First name",
            "family_name" => "Last name",
            "email" => "E-mail",
            "phone" => "Phone",
            "date_of_birth" => "Date of birth",
            "conditions" => "What you have been told you have",
            "treatments" => "Treatments you have tried",
            "exclusions" => "Whether any of these apply to you",
            "consent_to_contact" => "Permission to contact you",
            other => other,
        }
        .to_string()
    }
}

fn assessment_page(
    state: &AppState,
    c: &Clinic,
    input: &AssessmentInput,
    errors: Vec<FieldError>,
) -> Result<AssessmentPage, Error> {
    let gad = state
        .instruments
        .current("gad7")
        .ok_or_else(|| Error::Internal("GAD-7 not loaded".into()))?;
    let phq = state
        .instruments
        .current("phq2")
        .ok_or_else(|| Error::Internal("PHQ-2 not loaded".into()))?;
    let ticks = |all: &[(&str, &str)], chosen: &[String]| -> Vec<(String, String, bool)> {
        all.iter()
            .map(|(k, l)| (k.to_string(), l.to_string(), chosen.iter().any(|c| c == k)))
            .collect()
    };
    let treat: Vec<(&str, &str)> = TREATMENTS.iter().map(|t| (t.0, t.1)).collect();
    let excl: Vec<(&str, &str)> = EXCLUSIONS.iter().map(|t| (t.0, t.1)).collect();
    Ok(AssessmentPage {
        frame: PublicFrame::new("Two-minute self-assessment", c),
        gad7: item_views(gad, "gad7", &input.gad7, &errors),
        gad7_prompt: gad.prompt.clone(),
        phq2: item_views(phq, "phq2", &input.phq2, &errors),
        conditions: ticks(&CONDITIONS, &input.conditions),
        treatments: ticks(&treat, &input.treatments),
        exclusions: ticks(&excl, &input.exclusions),
        no_exclusions: input.no_exclusions,
        given_name: input.given_name.clone().unwrap_or_default(),
        family_name: input.family_name.clone().unwrap_or_default(),
        email: input.email.clone().unwrap_or_default(),
        phone: input.phone.clone().unwrap_or_default(),
        date_of_birth: input.date_of_birth.clone().unwrap_or_default(),
        consent: input.consent_to_contact,
        errors,
    })
}

async fn assessment_form(State(state): State<AppState>, Path(slug): Path<String>) -> PageResult {
    let c = clinic::leads::public_clinic(&state, &slug).await?;
    render(&assessment_page(
        &state,
        &c,
        &AssessmentInput::default(),
        vec![],
    )?)
}

fn input_from(form: &Posted, errors: &mut Vec<FieldError>) -> AssessmentInput {
    let text = |k: &str| form.get(k).filter(|v| !v.trim().is_empty());
    AssessmentInput {
        gad7: answers_from(form, "gad7", errors),
        phq2: answers_from(form, "phq2", errors),
        conditions: form.all("conditions"),
        treatments: form.all("treatments"),
        exclusions: form.all("exclusions"),
        no_exclusions: form.get("no_exclusions").is_some(),
        given_name: text("given_name"),
        family_name: text("family_name"),
        email: text("email"),
        phone: text("phone"),
        date_of_birth: text("date_of_birth"),
        consent_to_contact: form.get("consent_to_contact").is_some(),
        website: text("website"),
    }
}

async fn assessment_submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Meta(meta): Meta,
    req: Request,
) -> PageResult {
    let c = clinic::leads::public_clinic(&state, &slug).await?;
    let form = read_form(req, &state).await?;
    let mut parse_errors = vec![];
    let input = input_from(&form, &mut parse_errors);
    if !parse_errors.is_empty() {
        let page = assessment_page(&state, &c, &input, parse_errors)?;
        return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
    }
    match clinic::leads::submit(&state, &meta, &c, &input).await {
        Ok(s) => Ok(see_other(&format!("/c/{slug}/result/{}", s.token))),
        Err(Error::Invalid(errors)) => {
            let page = assessment_page(&state, &c, &input, errors)?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Result and booking -----------------------------------------------------

#[derive(Template)]
#[template(path = "front/assessment_result.html")]
struct ResultPage {
    frame: PublicFrame,
    safety: bool,
    outcome: String,
    headline: String,
    reasons: Vec<String>,
    gad7: i32,
    gad7_band: String,
    phq2: i32,
    other_help: Vec<&'static str>,
    can_book: bool,
    booked: Option<String>,
    days: Vec<(String, Vec<(i64, String)>)>,
    type_name: String,
    /// The chosen public type's code, posted with the time.
    type_code: String,
    video: bool,
    /// The ways to meet when there is more than one: label, link, chosen.
    ways: Vec<(String, String, bool)>,
    error: Option<String>,
    action: String,
}

async fn result_view(
    state: &AppState,
    c: &Clinic,
    token: &str,
    how: Option<&str>,
    error: Option<String>,
) -> Result<ResultPage, Error> {
    let lead = clinic::leads::by_token(state, c, token).await?;
    let outcome = Outcome::parse(&lead.outcome).unwrap_or(Outcome::Maybe);
    let tz =
        TimeZone::get(&c.settings.time_zone).map_err(|_| Error::Internal("clinic zone".into()))?;
    let when = |m: i64| {
        domain::time::to_timestamp(m)
            .to_zoned(tz.clone())
            .strftime("%A %B %-d at %-I:%M %p")
            .to_string()
    };
    let booked = clinic::leads::booked_visit(state, c, &lead)
        .await?
        .map(|a| format!("{}: {}", a.type_name, when(a.starts_at)));
    let fresh = state.now() - lead.created_at < clinic::leads::BOOKING_DAYS * 86_400_000_000;
    let can_book = booked.is_none() && fresh && outcome != Outcome::NotRight;
    let (mut days, mut type_name, mut type_code, mut video, mut ways) =
        (vec![], String::new(), String::new(), false, vec![]);
    if can_book {
        match clinic::leads::public_types(state, c).await {
            Ok(types) => {
                // A way to meet the clinic does not offer shows the first.
                let how = how.filter(|h| types.iter().any(|t| t.code == *h));
                let ty = clinic::leads::choose(&types, how)?;
                let starts = clinic::leads::public_starts(state, c, &ty, 300).await?;
                if types.len() > 1 {
                    ways = types
                        .iter()
                        .map(|t| {
                            (
                                if t.is_video() {
                                    "By video"
                                } else {
                                    "In person"
                                }
                                .to_string(),
                                format!("/c/{}/result/{token}?how={}#book", c.slug, t.code),
                                t.code == ty.code,
                            )
                        })
                        .collect();
                }
                type_name = ty.name.clone();
                type_code = ty.code.clone();
                video = ty.is_video();
                let mut grouped: Vec<(String, Vec<(i64, String)>)> = vec![];
                for s in starts {
                    let z = domain::time::to_timestamp(s).to_zoned(tz.clone());
                    let day = z.strftime("%A %B %-d").to_string();
                    let time = z.strftime("%-I:%M %p").to_string();
                    let same_day = grouped.last().is_some_and(|(d, _)| *d == day);
                    if same_day {
                        if let Some((_, v)) = grouped.last_mut().filter(|(_, v)| v.len() < 8) {
                            v.push((s, time));
                        }
                    } else if grouped.len() < 6 {
                        grouped.push((day, vec![(s, time)]));
                    }
                }
                days = grouped;
            }
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let detail = &lead.detail;
    let reasons = detail["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let band = state
        .instruments
        .current("gad7")
        .and_then(|g| g.band_of(lead.gad7_total))
        .map(|b| b.label.clone())
        .unwrap_or_default();
    Ok(ResultPage {
        frame: PublicFrame::new("Your result", c),
        safety: lead.safety,
        outcome: outcome.as_str().to_string(),
        headline: outcome.headline().to_string(),
        reasons,
        gad7: lead.gad7_total,
        gad7_band: band,
        phq2: lead.phq2_total,
        other_help: if outcome == Outcome::NotRight {
            OTHER_HELP.to_vec()
        } else {
            vec![]
        },
        can_book,
        booked,
        days,
        type_name,
        type_code,
        video,
        ways,
        error,
        action: format!("/c/{}/result/{token}", c.slug),
    })
}

async fn result_page(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
    PageQuery(q): PageQuery<HowQuery>,
) -> PageResult {
    let c = clinic::leads::public_clinic(&state, &slug).await?;
    let how = q.how.filter(|h| !h.trim().is_empty());
    render(&result_view(&state, &c, &token, how.as_deref(), None).await?)
}

#[derive(serde::Deserialize)]
struct HowQuery {
    how: Option<String>,
}

async fn result_book(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
    Meta(meta): Meta,
    req: Request,
) -> PageResult {
    let c = clinic::leads::public_clinic(&state, &slug).await?;
    let form = read_form(req, &state).await?;
    let start = form.get("start").and_then(|s| s.trim().parse::<i64>().ok());
    let how = form.get("type").filter(|h| !h.trim().is_empty());
    let outcome = match start {
        None => Err(Error::Invalid(vec![FieldError::new(
            "start",
            "choose one of the times",
        )])),
        Some(s) => clinic::leads::book(&state, &meta, &c, &token, how.as_deref(), s).await,
    };
    match outcome {
        Ok(_) => Ok(see_other(&format!("/c/{slug}/result/{token}"))),
        Err(e @ (Error::Invalid(_) | Error::Conflict(_))) => {
            let msg = crate::ui::fixable(e)?;
            let page = result_view(&state, &c, &token, how.as_deref(), Some(msg)).await?;
            Ok((axum::http::StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// ---- Questionnaire links ----------------------------------------------------

#[derive(Template)]
#[template(path = "front/questionnaire.html")]
struct LinkPage {
    frame: PublicFrame,
    name: String,
    prompt: String,
    items: Vec<ItemView>,
    errors: Vec<FieldError>,
    started: i64,
    action: String,
}

#[derive(Template)]
#[template(path = "front/questionnaire_done.html")]
pub(crate) struct LinkDone {
    pub(crate) frame: PublicFrame,
    pub(crate) heading: String,
    pub(crate) message: String,
    pub(crate) safety: bool,
}

async fn link_clinic(state: &AppState, clinic: domain::ids::ClinicId) -> Result<Clinic, Error> {
    clinic::settings::record(state, clinic).await
}

fn problem_page(p: LinkProblem) -> Result<Response, PageError> {
    problem_page_saying(p, p.words().1)
}

/// The page for a link that cannot be used, with the status that says why
/// (404 unknown, 410 expired, 409 used) and `message` for what to do.
pub(crate) fn problem_page_saying(p: LinkProblem, message: &str) -> Result<Response, PageError> {
    let heading = p.words().0;
    let page = LinkDone {
        frame: PublicFrame::plain(heading),
        heading: heading.into(),
        message: message.into(),
        safety: false,
    };
    let status = match p {
        LinkProblem::Invalid => axum::http::StatusCode::NOT_FOUND,
        LinkProblem::Expired => axum::http::StatusCode::GONE,
        LinkProblem::Used => axum::http::StatusCode::CONFLICT,
    };
    Ok((status, render(&page)?).into_response())
}

async fn link_page(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let (link, inst) = match clinic::measures::open_link(&state, &token).await? {
        Ok(x) => x,
        Err(p) => return problem_page(p),
    };
    let c = link_clinic(&state, link.clinic_id).await?;
    let page = link_form(&c, &inst, &token, &BTreeMap::new(), vec![], state.now());
    render(&page)
}

fn link_form(
    c: &Clinic,
    inst: &Instrument,
    token: &str,
    answers: &BTreeMap<String, i32>,
    errors: Vec<FieldError>,
    started: i64,
) -> LinkPage {
    LinkPage {
        frame: PublicFrame::new(inst.short_name.clone(), c),
        name: inst.name.clone(),
        prompt: inst.prompt.clone(),
        items: item_views(inst, "a", answers, &errors),
        errors,
        started,
        action: format!("/q/{token}"),
    }
}

async fn link_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Meta(meta): Meta,
    req: Request,
) -> PageResult {
    let form = read_form(req, &state).await?;
    let mut errors = vec![];
    let answers = answers_from(&form, "a", &mut errors);
    let started = form.get("started").and_then(|s| s.parse::<i64>().ok());
    let result = if errors.is_empty() {
        clinic::measures::answer_link(&state, &meta, &token, &answers, started).await
    } else {
        Err(Error::Invalid(errors))
    };
    match result {
        Ok(Ok((scored, inst))) => {
            let link = clinic::measures::link_by_token(&state, &token).await?;
            let c = match link {
                Some(l) => link_clinic(&state, l.clinic_id).await?,
                None => return problem_page(LinkProblem::Invalid),
            };
            render(&LinkDone {
                frame: PublicFrame::new("Thank you", &c),
                heading: "Thank you: your answers were received".into(),
                message: format!(
                    "Your {} answers are with your care team. You can close this page.",
                    inst.short_name
                ),
                safety: scored.safety,
            })
        }
        Ok(Err(p)) => problem_page(p),
        Err(Error::Invalid(errs)) => {
            let (link, inst) = match clinic::measures::open_link(&state, &token).await? {
                Ok(x) => x,
                Err(p) => return problem_page(p),
            };
            let c = link_clinic(&state, link.clinic_id).await?;
            let errs: Vec<FieldError> = errs
                .into_iter()
                .map(|e| FieldError::new(e.field.replacen("answers.", "a.", 1), e.message))
                .collect();
            let page = link_form(
                &c,
                &inst,
                &token,
                &answers,
                errs,
                started.unwrap_or(state.now()),
            );
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
