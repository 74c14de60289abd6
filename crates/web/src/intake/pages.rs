//! Pages before the first dose: the chart's Assessment, Consent and Plan
//! tabs under one status banner; signing consent on a tablet in the clinic;
//! the patient's own form and consent through single-use links; and the
//! admin's consent documents with a diff of each version against the last.

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use domain::assessment::{
    self as a, Answer, AnxietyProfile, ClinicalPart, Diagnosis, Finding, PatientPart,
    PriorTreatment, TreatmentResponse, HISTORY,
};
use domain::audit::Action;
use domain::auth::Permission;
use domain::consent::SignInput;
use domain::eligibility::{Condition, Trial};
use domain::ids::{ClinicId, PatientId};
use domain::plans::{Goal, PlanInput};
use domain::protocols::Route;
use domain::scheduling::CourseKind;
use domain::time::WallClock;
use domain::FieldError;
use serde::Deserialize;

use crate::auth::{read_form, Caller, Posted, Staff, StaffForm};
use crate::ctx::Meta;
use crate::error::{Error, PageError};
use crate::front::pages::{LinkDone, PublicFrame};
use crate::ui::{fixable, notice};
use crate::ui::{page_id, render, see_other, PageResult};
use crate::ui::{ChartTabs, Kept, Layout};
use crate::AppState;
use clinic::intake as uc;
use clinic::measures::LinkProblem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/assessment", get(assessment_page))
        .route("/patients/{id}/assessment/clinical", post(clinical_submit))
        .route("/patients/{id}/links", post(link_send))
        .route("/patients/{id}/consent", get(consent_page))
        .route(
            "/patients/{id}/consent/sign",
            get(sign_page).post(sign_submit),
        )
        .route("/patients/{id}/consent/{cid}/pdf", get(pdf_download))
        .route("/patients/{id}/consent/{cid}/witness", post(witness_submit))
        .route(
            "/patients/{id}/consent/{cid}/withdraw",
            post(withdraw_submit),
        )
        .route("/patients/{id}/plan", get(plan_page).post(plan_submit))
        .route("/forms/{token}", get(form_page).post(form_submit))
        .route(
            "/consent/{token}",
            get(link_sign_page).post(link_sign_submit),
        )
        .route("/admin/consent", get(docs_page).post(docs_publish))
        .route("/admin/consent/preview", axum::routing::post(docs_preview))
}

const ROUTES: [Route; 5] = [
    Route::Iv,
    Route::Im,
    Route::Sc,
    Route::Intranasal,
    Route::Sublingual,
];

fn answer_str(x: Option<Answer>) -> &'static str {
    match x {
        Some(Answer::Yes) => "yes",
        Some(Answer::No) => "no",
        Some(Answer::Unsure) => "unsure",
        None => "",
    }
}

/// The chart header shared by the three tabs.
pub struct ChartHead {
    pub id: String,
    pub name: String,
    pub banner: String,
    pub banner_class: &'static str,
    pub tabs: ChartTabs,
}

/// The tab's patient and status, read once and audited as the tab's own
/// action (assessment, consent or plan read).
async fn head(
    state: &AppState,
    c: &Caller,
    id: &str,
    tab: &'static str,
) -> Result<
    (
        ChartHead,
        PatientId,
        clinic::records::patients::PatientRecord,
        uc::Status,
        WallClock,
    ),
    Error,
> {
    let pid: PatientId = page_id(id)?;
    let (action, object) = match tab {
        "assessment" => (Action::AssessmentRead, "assessment"),
        "consent" => (Action::ConsentRead, "consent"),
        _ => (Action::PlanRead, "treatment_plan"),
    };
    let (p, s) = uc::chart(state, c, pid, action, object).await?;
    let tz = clinic::settings::record(state, p.clinic_id)
        .await?
        .settings
        .clock();
    Ok((
        ChartHead {
            id: pid.to_string(),
            name: p.details.display_name(),
            banner: s.banner.clone(),
            banner_class: s.banner_class,
            tabs: ChartTabs::new(c, pid, p.clinic_id, tab),
        },
        pid,
        p,
        s,
        tz,
    ))
}

// ---- Assessment tab ---------------------------------------------------------

pub struct Row2 {
    pub label: String,
    pub value: String,
    pub class: &'static str,
}

#[derive(Template)]
#[template(path = "intake/pre_assessment.html")]
struct AssessmentPage {
    layout: Layout,
    h: ChartHead,
    patient_when: String,
    clinical_when: String,
    screen: Vec<Row2>,
    history: Vec<Row2>,
    meds: Vec<String>,
    treatments: Vec<String>,
    /// (label, 0-3) for the profile bars.
    profile: Vec<(&'static str, u8, u32)>,
    triggers: String,
    about: Vec<Row2>,
    clinical: Vec<Row2>,
    instruments: Vec<Row2>,
    findings: Vec<(String, String)>,
    suggestion: String,
    can_record: bool,
    /// Current clinical screen for the form: (key, label, present/absent/unknown).
    form_screen: Vec<(String, &'static str, &'static str)>,
    /// One row per diagnosis, and a blank one or more to add to.
    form_diagnoses: Vec<String>,
    form_trials: String,
    form_bp: String,
    form_hr: String,
    form_spo2: String,
    form_weight: String,
    form_height: String,
    form_notes: String,
    icd10_release: &'static str,
    error: Option<String>,
    /// When the public self-assessment shown in place of the patient's part
    /// was taken; empty when it is not shown.
    self_assessed: String,
}

/// The engine's findings as (level, explanation), for a list on a page.
pub(crate) fn finding_rows<T: serde::Serialize>(findings: &[T]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| {
            let v = serde_json::to_value(f).unwrap_or_default();
            (
                v["level"].as_str().unwrap_or("").to_string(),
                v["explanation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn assessment_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    assessment_view_kept(state, c, id, error, flash, None).await
}

/// The assessment tab; `kept` is a refused clinical form, shown again as
/// it was typed.
async fn assessment_view_kept(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
    kept: Option<&Posted>,
) -> PageResult {
    let (h, pid, p, _, tz) = head(state, c, id, "assessment").await?;
    let asmt = uc::latest_parts(uc::assessment_parts(state, c, pid).await?)?;
    let pp = asmt.patient.as_ref().map(|x| &x.0);
    let kp = asmt.clinical.as_ref().map(|x| &x.0);
    let when = |m: &clinic::records::intake::AssessmentPart| {
        format!(
            "version {}, {} by {}",
            m.version,
            tz.stamp(m.created_at),
            m.entered_by
                .clone()
                .unwrap_or_else(|| "the patient (link)".into())
        )
    };
    let row = |label: &str, value: String, class: &'static str| Row2 {
        label: label.to_string(),
        value,
        class,
    };
    // Until the patient's part is in, what they said on the public
    // self-assessment shows in its place, marked as such.
    let sa = match pp {
        None => uc::self_assessment(state, pid).await?,
        Some(_) => None,
    };
    let mut screen = vec![];
    let mut form_screen = vec![];
    for cond in Condition::ALL {
        let from_sa = pp.is_none() && sa.as_ref().is_some_and(|x| x.screen.contains_key(&cond));
        let said = pp
            .and_then(|p| p.screen.get(&cond).copied())
            .or_else(|| sa.as_ref().and_then(|x| x.screen.get(&cond).copied()));
        let found = kp.and_then(|k| k.screen.get(&cond).copied());
        let class = match (found, said) {
            (Some(Finding::Present), _) | (None, Some(Answer::Yes)) => "bad",
            (Some(Finding::Unknown), _) | (None, Some(Answer::Unsure)) | (None, None) => "warn",
            _ => "ok",
        };
        let f = match found {
            Some(Finding::Present) => "present",
            Some(Finding::Absent) => "absent",
            Some(Finding::Unknown) => "not yet known",
            None => "not settled",
        };
        screen.push(row(
            cond.label(),
            format!(
                "{}: {}; clinician: {f}",
                if from_sa {
                    "self-assessment"
                } else {
                    "patient"
                },
                match answer_str(said) {
                    "" => "not asked",
                    s => s,
                }
            ),
            class,
        ));
        form_screen.push((
            a::key(cond),
            cond.label(),
            match found {
                Some(Finding::Present) => "present",
                Some(Finding::Absent) => "absent",
                Some(Finding::Unknown) => "unknown",
                None => "",
            },
        ));
    }
    let history = HISTORY
        .iter()
        .map(|(k, q)| {
            let x = pp.and_then(|p| p.answer(k));
            row(
                q,
                answer_str(x).to_string(),
                if x == Some(Answer::Yes) { "warn" } else { "" },
            )
        })
        .collect();
    let facts = a::facts(pp, kp);
    let eval = domain::eligibility::evaluate(&facts, &domain::eligibility::Policy::default());
    let findings = finding_rows(&eval.findings);
    let responses = uc::score_history(state, c, pid).await?;
    let instruments = a::baseline_instruments(pp)
        .into_iter()
        .map(|(i, why)| {
            let name = state
                .instruments
                .current(i)
                .map(|x| x.short_name.clone())
                .unwrap_or_else(|| i.to_string());
            match responses.iter().rfind(|r| r.instrument_id == i) {
                Some(r) => row(
                    &name,
                    format!(
                        "{} on {} ({why})",
                        r.total
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "answered".into()),
                        tz.stamp(r.submitted_at)
                    ),
                    "ok",
                ),
                None => row(&name, format!("not yet done ({why})"), "warn"),
            }
        })
        .collect();
    let anxiety = pp.map(|p| p.anxiety.clone()).unwrap_or_default();
    let bar = |v: u8| u32::from(v) * 100 / 3;
    let b = kp.and_then(|k| k.baseline);
    let mut clinical = vec![];
    if let Some(k) = kp {
        for d in &k.diagnoses {
            let line = if d.code.is_empty() {
                format!("{} (no ICD-10-CM code)", d.label)
            } else {
                d.as_line()
            };
            clinical.push(row("Diagnosis", line, ""));
        }
        for t in &k.trials {
            clinical.push(row(
                "Trial",
                format!(
                    "{}, {} weeks, {}",
                    t.treatment,
                    t.weeks,
                    if t.adequate_dose {
                        "adequate dose"
                    } else {
                        "inadequate dose"
                    }
                ),
                "",
            ));
        }
        if let Some(b) = b {
            clinical.push(row(
                "Blood pressure",
                format!(
                    "{}/{} mmHg, heart rate {}, SpO2 {} %",
                    b.sbp, b.dbp, b.hr, b.spo2
                ),
                "",
            ));
            clinical.push(row(
                "Weight and height",
                format!("{} kg, {} cm (BMI {})", b.weight_kg, b.height_cm, b.bmi()),
                "",
            ));
        }
        if !k.notes.is_empty() {
            clinical.push(row("Notes", k.notes.clone(), ""));
        }
    }
    let about = match pp {
        None => vec![],
        Some(p) => vec![
            row("Allergies", p.allergies.clone(), ""),
            row("Psychotherapies tried", p.psychotherapies.clone(), ""),
            row("What helps them feel calm", p.calming.clone(), ""),
            row("Support", p.support.clone(), ""),
            row(
                "Escort",
                format!("{} {}", p.escort_name, p.escort_phone),
                "",
            ),
        ],
    };
    let mut page = AssessmentPage {
        layout: Layout::new(c, format!("Assessment: {}", h.name), "patients").with_flash(flash),
        patient_when: asmt
            .patient
            .as_ref()
            .map(|x| when(&x.1))
            .unwrap_or_default(),
        clinical_when: asmt
            .clinical
            .as_ref()
            .map(|x| when(&x.1))
            .unwrap_or_default(),
        screen,
        history,
        meds: pp
            .map(|p| {
                p.medications
                    .iter()
                    .map(|m| {
                        let dose = m
                            .daily_mg
                            .map(|d| format!(" {d} mg a day"))
                            .unwrap_or_default();
                        // As the rules read it: the medicine and its class,
                        // or that no rule knows the name.
                        match domain::codes::medicine(&m.name) {
                            Some(k) if k.name == m.name.to_lowercase() => {
                                format!("{}{dose} ({})", m.name, k.class)
                            }
                            Some(k) => format!("{}{dose} ({}, {})", m.name, k.name, k.class),
                            None => {
                                format!("{}{dose} (not known to the rules: check by hand)", m.name)
                            }
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
        treatments: match (pp, &sa) {
            (Some(p), _) => p
                .treatments
                .iter()
                .map(|t| {
                    format!(
                        "{} {}, {} weeks: {}",
                        t.treatment,
                        t.dose,
                        t.weeks,
                        response_label(t.response)
                    )
                })
                .collect(),
            (None, Some(x)) => x
                .treatments
                .iter()
                .map(|t| format!("{t} (self-assessment)"))
                .collect(),
            (None, None) => vec![],
        },
        self_assessed: sa.as_ref().map(|x| tz.stamp(x.at)).unwrap_or_default(),
        profile: vec![
            (
                "Cognitive (worry)",
                anxiety.cognitive,
                bar(anxiety.cognitive),
            ),
            ("Somatic (body)", anxiety.somatic, bar(anxiety.somatic)),
            (
                "Behavioural (avoidance)",
                anxiety.behavioural,
                bar(anxiety.behavioural),
            ),
        ],
        triggers: anxiety.triggers.clone(),
        about,
        clinical,
        instruments,
        findings,
        suggestion: crate::intake::decision::decision_label(eval.suggestion.as_str()).to_string(),
        can_record: c.may(Permission::AssessmentRecord, p.clinic_id),
        form_screen,
        form_diagnoses: {
            let mut rows: Vec<String> = kp
                .map(|k| k.diagnoses.iter().map(Diagnosis::as_line).collect())
                .unwrap_or_default();
            let n = (rows.len() + 1).max(3);
            rows.resize(n, String::new());
            rows
        },
        form_trials: kp
            .map(|k| {
                k.trials
                    .iter()
                    .map(|t| t.as_line())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .or_else(|| {
                pp.map(|p| {
                    p.treatments
                        .iter()
                        .map(|t| {
                            format!(
                                "{}, {}, {}",
                                t.treatment,
                                t.weeks,
                                if t.weeks >= 6 {
                                    "adequate"
                                } else {
                                    "inadequate"
                                }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            })
            .unwrap_or_default(),
        form_bp: b
            .map(|b| format!("{}/{}", b.sbp, b.dbp))
            .unwrap_or_default(),
        form_hr: b.map(|b| b.hr.to_string()).unwrap_or_default(),
        form_spo2: b.map(|b| b.spo2.to_string()).unwrap_or_default(),
        form_weight: b.map(|b| b.weight_kg.to_string()).unwrap_or_default(),
        form_height: b.map(|b| b.height_cm.to_string()).unwrap_or_default(),
        form_notes: kp.map(|k| k.notes.clone()).unwrap_or_default(),
        icd10_release: domain::codes::icd10_release(),
        h,
        error,
    };
    if let Some(f) = kept {
        let v = |n: &str| f.get(n).unwrap_or_default();
        for s in &mut page.form_screen {
            s.2 = match v(&format!("screen.{}", s.0)).as_str() {
                "present" => "present",
                "absent" => "absent",
                "unknown" => "unknown",
                _ => "",
            };
        }
        let mut rows: Vec<String> = f
            .all("diagnosis")
            .into_iter()
            .filter(|d| !d.trim().is_empty())
            .collect();
        rows.push(String::new());
        page.form_diagnoses = rows;
        page.form_trials = v("trials");
        page.form_bp = v("blood_pressure");
        page.form_hr = v("heart_rate");
        page.form_spo2 = v("spo2");
        page.form_weight = v("weight_kg");
        page.form_height = v("height_cm");
        page.form_notes = v("notes");
    }
    render(&page)
}

fn response_label(r: TreatmentResponse) -> &'static str {
    match r {
        TreatmentResponse::None => "no response",
        TreatmentResponse::Partial => "partial response",
        TreatmentResponse::Good => "good response",
        TreatmentResponse::StoppedSideEffects => "stopped for side effects",
    }
}

async fn assessment_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    assessment_view(&state, &c, &id, None, None).await
}

fn num<T: std::str::FromStr>(f: &Posted, name: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    let v = f.get(name).unwrap_or_default();
    let v = v.trim();
    if v.is_empty() {
        errors.push(FieldError::new(name, "is required"));
        return None;
    }
    match v.parse() {
        Ok(x) => Some(x),
        Err(_) => {
            errors.push(FieldError::new(name, "must be a number"));
            None
        }
    }
}

fn clinical_from_form(f: &Posted) -> Result<ClinicalPart, Error> {
    let mut errors = vec![];
    let mut k = ClinicalPart::default();
    for cond in Condition::ALL {
        let key = a::key(cond);
        match f.get(&format!("screen.{key}")).as_deref() {
            Some("present") => k.screen.insert(cond, Finding::Present),
            Some("absent") => k.screen.insert(cond, Finding::Absent),
            Some("unknown") => k.screen.insert(cond, Finding::Unknown),
            _ => None,
        };
    }
    for line in f.all("diagnosis") {
        if line.trim().is_empty() {
            continue;
        }
        match Diagnosis::parse("diagnosis", &line) {
            Ok(d) => k.diagnoses.push(d),
            Err(e) => errors.push(e),
        }
    }
    for (n, line) in f.get("trials").unwrap_or_default().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        match (
            parts.first(),
            parts.get(1).and_then(|w| w.parse::<u32>().ok()),
            parts.get(2),
        ) {
            (Some(t), Some(weeks), Some(adq)) if !t.is_empty() => k.trials.push(Trial {
                treatment: t.to_string(),
                weeks,
                adequate_dose: adq.eq_ignore_ascii_case("adequate"),
            }),
            _ => errors.push(FieldError::new(
                "trials",
                format!(
                    "line {}: write \"treatment, weeks, adequate\" (or \"inadequate\")",
                    n + 1
                ),
            )),
        }
    }
    let bp = f.get("blood_pressure").unwrap_or_default();
    let any_vitals = !bp.trim().is_empty()
        || ["heart_rate", "spo2", "weight_kg", "height_cm"]
            .iter()
            .any(|n| !f.get(n).unwrap_or_default().trim().is_empty());
    if any_vitals {
        let pair = bp.split_once('/').and_then(|(s, d)| {
            Some((s.trim().parse::<u32>().ok()?, d.trim().parse::<u32>().ok()?))
        });
        if pair.is_none() {
            errors.push(FieldError::new("blood_pressure", "write it as 128/82"));
        }
        let hr = num::<u32>(f, "heart_rate", &mut errors);
        let spo2 = num::<u32>(f, "spo2", &mut errors);
        let w = num::<f64>(f, "weight_kg", &mut errors);
        let h = num::<f64>(f, "height_cm", &mut errors);
        if let (Some((sbp, dbp)), Some(hr), Some(spo2), Some(weight_kg), Some(height_cm)) =
            (pair, hr, spo2, w, h)
        {
            k.baseline = Some(a::Baseline {
                sbp,
                dbp,
                hr,
                spo2,
                weight_kg,
                height_cm,
            });
        }
    }
    k.notes = f.get("notes").unwrap_or_default().trim().to_string();
    if let Err(domain::DomainError::Invalid(e)) = k.validate() {
        errors.extend(e);
    }
    if errors.is_empty() {
        Ok(k)
    } else {
        Err(Error::Invalid(errors))
    }
}

async fn clinical_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let r = match clinical_from_form(&f.form) {
        Ok(k) => uc::record_clinical_part(&state, &f.caller, pid, k, "staff")
            .await
            .map(|v| format!("Clinical part saved (version {v}).")),
        Err(e) => Err(e),
    };
    let refused = r.is_err();
    let (error, flash) = notice(r)?;
    let kept = refused.then_some(&f.form);
    assessment_view_kept(&state, &f.caller, &id, error, flash, kept).await
}

/// Sends a link by e-mail, or (`here`) opens it on this device for the
/// patient to fill in or sign now.
async fn link_send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let purpose = f.form.get("purpose").unwrap_or_default();
    let route = f.form.get("route");
    let back = if purpose == "consent" {
        "consent"
    } else {
        "assessment"
    };
    let r = uc::send_link(&state, &f.caller, pid, &purpose, route.as_deref(), 72).await;
    match r {
        Ok(_) => Ok(see_other(&format!("/patients/{id}/{back}?sent=1"))),
        Err(e) => {
            let msg = fixable(e)?;
            if back == "consent" {
                consent_view(&state, &f.caller, &id, Some(msg), None).await
            } else {
                assessment_view(&state, &f.caller, &id, Some(msg), None).await
            }
        }
    }
}

// ---- Consent tab ------------------------------------------------------------

pub struct ConsentRow {
    pub id: String,
    pub route: String,
    pub version: i64,
    pub signed: String,
    pub how: String,
    pub witness: String,
    pub awaiting_witness: bool,
    pub withdrawn: String,
}

#[derive(Template)]
#[template(path = "intake/pre_consent.html")]
struct ConsentPage {
    layout: Layout,
    h: ChartHead,
    routes: Vec<(String, &'static str, String, &'static str)>,
    rows: Vec<ConsentRow>,
    can_record: bool,
    error: Option<String>,
}

async fn consent_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let (h, _, p, s, tz) = head(state, c, id, "consent").await?;
    let routes = s
        .consents
        .iter()
        .map(|(r, s, _)| {
            (
                uc::route_key(*r),
                r.label(),
                match s {
                    domain::consent::ConsentState::Valid { expires_at, .. } => {
                        format!("{}; valid until {}", s.reason(), tz.stamp(*expires_at))
                    }
                    _ => s.reason(),
                },
                if s.is_valid() { "ok" } else { "warn" },
            )
        })
        .collect();
    let rows = s
        .signed
        .iter()
        .map(|s| ConsentRow {
            id: s.id.clone(),
            route: s.route.clone(),
            version: s.document_version,
            signed: format!("{} as \"{}\"", tz.stamp(s.signed_at), s.typed_name),
            how: match (&s.channel[..], &s.recorded_by) {
                ("clinic", Some(u)) => format!("in the clinic, with {u}"),
                _ => "through a secure link".into(),
            },
            witness: match (&s.witnessed_by, s.witnessed_at) {
                (Some(u), Some(at)) => format!("{u}, {}", tz.stamp(at)),
                _ if s.witness_required => "awaited".into(),
                _ => "not required".into(),
            },
            awaiting_witness: s.witness_required
                && s.witnessed_at.is_none()
                && s.withdrawn_at.is_none(),
            withdrawn: match (s.withdrawn_at, &s.withdrawal_reason) {
                (Some(at), r) => format!("{}: {}", tz.stamp(at), r.clone().unwrap_or_default()),
                _ => String::new(),
            },
        })
        .collect();
    render(&ConsentPage {
        layout: Layout::new(c, format!("Consent: {}", h.name), "patients").with_flash(flash),
        routes,
        rows,
        can_record: c.may(Permission::ConsentRecord, p.clinic_id),
        h,
        error,
    })
}

#[derive(Deserialize)]
struct Sent {
    #[serde(default)]
    sent: Option<String>,
}

async fn consent_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    Query(q): Query<Sent>,
) -> PageResult {
    let flash = q
        .sent
        .map(|_| "Link sent to the patient's e-mail.".to_string());
    consent_view(&state, &c, &id, None, flash).await
}

#[derive(Template)]
#[template(path = "intake/pre_sign.html")]
struct SignPage {
    layout: Layout,
    id: String,
    name: String,
    route: String,
    doc: DocView,
    typed: String,
    error: Option<String>,
    estimate: Option<clinic::billing::EstimateBox>,
}

pub struct DocView {
    pub title: String,
    pub version: i64,
    pub sha256: String,
    pub sections: Vec<(String, Vec<String>)>,
    pub witness_required: bool,
}

fn doc_view(d: &clinic::records::intake::ConsentDocument) -> DocView {
    let parsed = domain::consent::Document::parse(&d.source).ok();
    DocView {
        title: d.title.clone(),
        version: d.version,
        sha256: d.sha256.clone(),
        sections: parsed
            .map(|p| {
                p.sections
                    .into_iter()
                    .map(|s| (s.heading, s.text.lines().map(String::from).collect()))
                    .collect()
            })
            .unwrap_or_default(),
        witness_required: d.witness_required,
    }
}

#[derive(Deserialize)]
struct RouteQ {
    #[serde(default)]
    route: String,
}

async fn sign_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    route: &str,
    typed: String,
    error: Option<String>,
) -> PageResult {
    let pid: PatientId = page_id(id)?;
    let p = clinic::patients::read(state, c, pid).await?;
    c.require(Permission::ConsentRecord, p.clinic_id)?;
    let r = uc::parse_route(route)?;
    let d = uc::document_for(state, p.clinic_id, r).await?;
    render(&SignPage {
        layout: Layout::new(c, "Consent to treatment", "patients"),
        id: pid.to_string(),
        name: format!("{} {}", p.details.given_name, p.details.family_name),
        route: uc::route_key(r),
        doc: doc_view(&d),
        typed,
        error,
        estimate: clinic::billing::latest_estimate(state, &pid.to_string()).await?,
    })
}

async fn sign_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    Query(q): Query<RouteQ>,
) -> PageResult {
    sign_view(&state, &c, &id, &q.route, String::new(), None).await
}

fn sign_input(f: &Posted) -> SignInput {
    SignInput {
        typed_name: f.get("typed_name").unwrap_or_default(),
        agree: f.get("agree").as_deref() == Some("yes"),
        document_hash: f.get("document_hash").unwrap_or_default(),
    }
}

async fn sign_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let route = f.form.get("route").unwrap_or_default();
    let input = sign_input(&f.form);
    let typed = input.typed_name.clone();
    match uc::sign_in_clinic(&state, &f.caller, pid, &route, input).await {
        Ok(_) => Ok(see_other(&format!("/patients/{id}/consent?signed=1"))),
        Err(e) => sign_view(&state, &f.caller, &id, &route, typed, Some(fixable(e)?)).await,
    }
}

async fn pdf_download(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path((id, cid)): Path<(String, String)>,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let bytes = uc::pdf(&state, &c, pid, &cid).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"consent.pdf\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn witness_submit(
    State(state): State<AppState>,
    Path((id, cid)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let r = uc::witness(&state, &f.caller, pid, &cid)
        .await
        .map(|()| "Witnessed.".to_string());
    let (error, flash) = notice(r)?;
    consent_view(&state, &f.caller, &id, error, flash).await
}

async fn withdraw_submit(
    State(state): State<AppState>,
    Path((id, cid)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let reason = f.form.get("reason").unwrap_or_default();
    let r = uc::withdraw(&state, &f.caller, pid, &cid, &reason)
        .await
        .map(|()| "Consent withdrawn. No plan or dose can go ahead on it.".to_string());
    let (error, flash) = notice(r)?;
    consent_view(&state, &f.caller, &id, error, flash).await
}

// ---- Plan tab ---------------------------------------------------------------

pub struct PlanRow {
    pub version: i64,
    pub protocol: String,
    pub course: String,
    pub targets: String,
    pub goal: String,
    pub modality: String,
    pub reason: String,
    pub by: String,
    pub when: String,
    pub notes: String,
    pub book: String,
}

#[derive(Template)]
#[template(path = "intake/pre_plan.html")]
struct PlanPage {
    layout: Layout,
    h: ChartHead,
    current: Option<PlanRow>,
    older: Vec<PlanRow>,
    blockers: Vec<String>,
    can_write: bool,
    /// Whether the caller may book the course (its button is shown only then).
    can_book: bool,
    profile: Vec<(&'static str, u8, u32)>,
    suggestion: String,
    protocols: Vec<(String, String, bool)>,
    courses: Vec<(&'static str, &'static str, bool)>,
    targets: Vec<(String, String, bool)>,
    modalities: Vec<(String, &'static str, bool)>,
    error: Option<String>,
    /// What a refused plan form held, to show it again.
    kept: Kept,
}

fn key_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

async fn plan_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    (error, kept): (Option<String>, Kept),
    flash: Option<String>,
) -> PageResult {
    let (h, pid, p, s, tz) = head(state, c, id, "plan").await?;
    let plans = &s.plans;
    // The anxiety profile is shown beside the plan (read under plan.read).
    let asmt = uc::latest_parts(uc::assessment_parts(state, c, pid).await?)?;
    let pp = asmt.patient.as_ref().map(|x| &x.0);
    let anxiety = pp.map(|p| p.anxiety.clone()).unwrap_or_default();
    let (sugg_mod, sugg_why) = pp
        .map(a::suggest_modality)
        .unwrap_or((a::Modality::Cbt, "no patient part yet"));
    let set = state.protocols();
    let rows: Vec<PlanRow> = plans
        .iter()
        .map(|x| -> Result<PlanRow, Error> {
            let proto = set.get(&x.protocol_id, x.protocol_version as u32);
            let targets: Vec<String> = crate::error::stored("plan targets", &x.targets)?;
            let course = CourseKind::parse(&x.course).ok();
            Ok(PlanRow {
                version: x.version,
                protocol: format!(
                    "{} (version {})",
                    proto
                        .map(|p| p.name.clone())
                        .unwrap_or_else(|| x.protocol_id.clone()),
                    x.protocol_version
                ),
                course: format!(
                    "{}, {} doses",
                    course.map(|c| c.label()).unwrap_or("?"),
                    x.doses
                ),
                targets: targets
                    .iter()
                    .map(|t| {
                        state
                            .instruments
                            .current(t)
                            .map(|i| i.short_name.clone())
                            .unwrap_or_else(|| t.clone())
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                goal: if x.goal == "remission" {
                    "Remission"
                } else {
                    "Response"
                }
                .into(),
                modality: serde_json::from_value::<a::Modality>(serde_json::json!(x.modality))
                    .map(|m| m.label())
                    .unwrap_or("?")
                    .into(),
                reason: x.reason.clone(),
                by: x.created_by.clone(),
                when: tz.stamp(x.created_at),
                notes: x.notes.clone(),
                book: format!(
                    "/patients/{}/series?course={}&doses={}&dose_type={}",
                    pid,
                    x.course,
                    x.doses,
                    if x.route == "iv" {
                        "iv_infusion"
                    } else {
                        "im_injection"
                    }
                ),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut rows = rows.into_iter();
    let current_plan = plans.first();
    let cur_targets: Vec<String> = match current_plan {
        Some(x) => crate::error::stored("plan targets", &x.targets)?,
        None => vec!["gad7".into(), "phq9".into()],
    };
    let blockers = match current_plan.and_then(|x| uc::parse_route(&x.route).ok()) {
        Some(r) => domain::plans::blockers(&s.eligibility, &s.consent(r)),
        None => s
            .banner
            .strip_prefix("Not yet eligible: ")
            .map(|b| vec![b.to_string()])
            .unwrap_or_default(),
    };
    let cur_protocol = current_plan
        .map(|x| x.protocol_id.clone())
        .unwrap_or_else(|| "iv-infusion".into());
    let cur_course = current_plan
        .map(|x| x.course.clone())
        .unwrap_or_else(|| "induction".into());
    let mut protocols: Vec<(String, String, bool)> = state
        .protocols()
        .all_current()
        .into_iter()
        .map(|p| {
            (
                p.id.clone(),
                format!("{} (version {})", p.name, p.version),
                p.id == cur_protocol,
            )
        })
        .collect();
    protocols.sort();
    let mut courses: Vec<(&'static str, &'static str, bool)> = [
        ("induction", "Induction (6 doses over 2-3 weeks)"),
        ("intensive", "Intensive (3-5 a week for 1-2 weeks)"),
        ("weekly", "Weekly"),
        ("every_other_week", "Every other week"),
    ]
    .into_iter()
    .map(|(k, l)| (k, l, k == cur_course))
    .collect();
    let mut targets: Vec<(String, String, bool)> = ["gad7", "phq9", "pcl5", "oasis", "hama"]
        .iter()
        .filter_map(|t| state.instruments.current(t))
        .map(|i| {
            (
                i.id.clone(),
                i.short_name.clone(),
                cur_targets.contains(&i.id),
            )
        })
        .collect();
    let mut modalities: Vec<(String, &'static str, bool)> = a::Modality::ALL
        .iter()
        .map(|m| (key_of(m), m.label(), *m == sugg_mod))
        .collect();
    // A refused form comes back as it was sent, not as the current plan.
    if kept.is("plan") {
        for p in &mut protocols {
            p.2 = kept.chose("plan", "protocol", &p.0);
        }
        for k in &mut courses {
            k.2 = kept.chose("plan", "course", k.0);
        }
        for t in &mut targets {
            t.2 = kept.ticked("plan", "targets", &t.0);
        }
        for m in &mut modalities {
            m.2 = kept.chose("plan", "modality", &m.0);
        }
    }
    render(&PlanPage {
        layout: Layout::new(c, format!("Plan: {}", h.name), "patients").with_flash(flash),
        current: rows.next(),
        older: rows.collect(),
        blockers,
        can_write: c.may(Permission::PlanWrite, p.clinic_id),
        can_book: c.may(Permission::ScheduleBook, p.clinic_id),
        profile: vec![
            (
                "Cognitive (worry)",
                anxiety.cognitive,
                u32::from(anxiety.cognitive) * 100 / 3,
            ),
            (
                "Somatic (body)",
                anxiety.somatic,
                u32::from(anxiety.somatic) * 100 / 3,
            ),
            (
                "Behavioural (avoidance)",
                anxiety.behavioural,
                u32::from(anxiety.behavioural) * 100 / 3,
            ),
        ],
        suggestion: format!("{}: {sugg_why}", sugg_mod.label()),
        protocols,
        courses,
        targets,
        modalities,
        h,
        error,
        kept,
    })
}

async fn plan_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    plan_view(&state, &c, &id, (None, Kept::default()), None).await
}

fn plan_from_form(f: &Posted) -> Result<PlanInput, Error> {
    let mut errors = vec![];
    let course = CourseKind::parse(&f.get("course").unwrap_or_default())
        .map_err(|e| errors.push(e))
        .ok();
    let goal: Option<Goal> =
        serde_json::from_value(serde_json::json!(f.get("goal").unwrap_or_default())).ok();
    if goal.is_none() {
        errors.push(FieldError::new("goal", "choose response or remission"));
    }
    let modality: Option<a::Modality> =
        serde_json::from_value(serde_json::json!(f.get("modality").unwrap_or_default())).ok();
    if modality.is_none() {
        errors.push(FieldError::new(
            "modality",
            "choose the integration modality",
        ));
    }
    let doses = match f
        .get("doses")
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
    {
        None => None,
        Some(d) => match d.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(FieldError::new("doses", "must be a whole number"));
                None
            }
        },
    };
    match (course, goal, modality, errors.is_empty()) {
        (Some(course), Some(goal), Some(modality), true) => Ok(PlanInput {
            protocol: f.get("protocol").unwrap_or_default(),
            course,
            doses,
            targets: f.all("targets"),
            goal,
            modality,
            notes: f.get("notes").unwrap_or_default(),
            reason: f.get("reason").unwrap_or_default(),
        }),
        _ => Err(Error::Invalid(errors)),
    }
}

async fn plan_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let r = match plan_from_form(&f.form) {
        Ok(input) => uc::create_plan(&state, &f.caller, pid, input)
            .await
            .map(|(v, _)| format!("Plan version {v} saved.")),
        Err(e) => Err(e),
    };
    let refused = r.is_err();
    let (error, flash) = notice(r)?;
    if refused {
        let kept = Kept::new("plan", &f.form);
        let mut page = plan_view(&state, &f.caller, &id, (error, kept), flash).await?;
        *page.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(page);
    }
    plan_view(&state, &f.caller, &id, (error, Kept::default()), flash).await
}

// ---- The patient's form and consent through links ---------------------------

#[derive(Template)]
#[template(path = "intake/pre_form.html")]
struct FormPage {
    frame: PublicFrame,
    action: String,
    screen: Vec<(String, &'static str, &'static str)>,
    history: Vec<(String, &'static str, &'static str)>,
    v: std::collections::HashMap<String, String>,
    errors: Vec<FieldError>,
}

/// A link that cannot be used: the questionnaire words, said of a form.
fn problem(p: LinkProblem) -> PageResult {
    let message = p
        .words()
        .1
        .replace("questionnaire", "form")
        .replace("Questionnaire", "Form");
    crate::front::pages::problem_page_saying(p, &message)
}

/// The patient's form; `known` are the screen answers the patient already
/// gave on the public self-assessment, ticked for them to confirm (what they
/// post wins).
fn form_of(
    clinic: &clinic::records::org::Clinic,
    token: &str,
    f: &Posted,
    errors: Vec<FieldError>,
    known: &std::collections::BTreeMap<Condition, Answer>,
) -> FormPage {
    let pick = |name: String| -> &'static str {
        match f.get(&name).as_deref() {
            Some("yes") => "yes",
            Some("no") => "no",
            Some("unsure") => "unsure",
            _ => "",
        }
    };
    let said = |c: &Condition| match known.get(c) {
        Some(Answer::Yes) => "yes",
        Some(Answer::No) => "no",
        Some(Answer::Unsure) => "unsure",
        None => "",
    };
    FormPage {
        frame: PublicFrame::of(clinic, "Before your first treatment"),
        action: format!("/forms/{token}"),
        screen: Condition::ALL
            .iter()
            .map(|c| {
                let k = a::key(*c);
                let v = match pick(format!("screen.{k}")) {
                    "" => said(c),
                    v => v,
                };
                (k, c.plain(), v)
            })
            .collect(),
        history: HISTORY
            .iter()
            .map(|(k, q)| (k.to_string(), *q, pick(format!("history.{k}"))))
            .collect(),
        v: f.0.iter().cloned().collect(),
        errors,
    }
}

fn patient_from_form(f: &Posted) -> Result<PatientPart, Error> {
    let mut errors = vec![];
    let mut p = PatientPart::default();
    let ans = |v: Option<String>| match v.as_deref() {
        Some("yes") => Some(Answer::Yes),
        Some("no") => Some(Answer::No),
        Some("unsure") => Some(Answer::Unsure),
        _ => None,
    };
    for c in Condition::ALL {
        if let Some(x) = ans(f.get(&format!("screen.{}", a::key(c)))) {
            p.screen.insert(c, x);
        }
    }
    for (k, _) in HISTORY {
        if let Some(x) = ans(f.get(&format!("history.{k}"))) {
            p.history.insert(k.to_string(), x);
        }
    }
    // A dose not above 0 mg is refused by the part's validation, by line.
    p.medications = domain::assessment::medication_lines(
        &f.get("medications").unwrap_or_default(),
        "medications",
    )
    .0;
    for (n, line) in f.get("treatments").unwrap_or_default().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        let weeks = parts.get(2).and_then(|w| w.parse::<u32>().ok());
        let response = match parts.get(3).map(|r| r.to_lowercase()).as_deref() {
            Some("none") | Some("no") => Some(TreatmentResponse::None),
            Some("partial") | Some("some") => Some(TreatmentResponse::Partial),
            Some("good") => Some(TreatmentResponse::Good),
            Some("stopped") => Some(TreatmentResponse::StoppedSideEffects),
            _ => None,
        };
        match (parts.first(), weeks, response) {
            (Some(t), Some(weeks), Some(response)) if !t.is_empty() => {
                p.treatments.push(PriorTreatment {
                    treatment: t.to_string(),
                    dose: parts.get(1).unwrap_or(&"").to_string(),
                    weeks,
                    response,
                })
            }
            _ => errors.push(FieldError::new(
                "treatments",
                format!(
                    "line {}: write \"medicine, dose, weeks, none/partial/good/stopped\"",
                    n + 1
                ),
            )),
        }
    }
    let level = |name: &str, what: &str, errors: &mut Vec<FieldError>| -> u8 {
        match f.get(name).and_then(|v| v.parse::<u8>().ok()) {
            Some(v) if v <= 3 => v,
            _ => {
                errors.push(FieldError::new(
                    name,
                    format!("choose how much {what} weighs, from not at all to a lot"),
                ));
                0
            }
        }
    };
    p.anxiety = AnxietyProfile {
        cognitive: level("anxiety.cognitive", "worry", &mut errors),
        somatic: level("anxiety.somatic", "the body side", &mut errors),
        behavioural: level("anxiety.behavioural", "avoiding things", &mut errors),
        triggers: f
            .get("anxiety.triggers")
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    let t = |n: &str| f.get(n).unwrap_or_default().trim().to_string();
    p.allergies = t("allergies");
    p.psychotherapies = t("psychotherapies");
    p.calming = t("calming");
    p.support = t("support");
    p.escort_name = t("escort_name");
    p.escort_phone = t("escort_phone");
    if let Err(domain::DomainError::Invalid(e)) = p.validate() {
        // The patient saw the screen in plain words: name it so.
        errors.extend(e.into_iter().map(|mut e| {
            if let Some(c) = Condition::ALL
                .iter()
                .find(|c| e.field == format!("screen.{}", a::key(**c)))
            {
                e.message = format!("answer yes, no or not sure: {}", c.plain());
            }
            e
        }));
    }
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(Error::Invalid(errors))
    }
}

async fn form_page(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let l = match uc::open_link(&state, &token, "assessment").await? {
        Ok(l) => l,
        Err(p) => return problem(p),
    };
    let clinic: ClinicId = l.clinic_id.parse().map_err(|_| Error::NotFound)?;
    let k = clinic::settings::record(&state, clinic).await?;
    let known = known_screen(&state, &l).await?;
    render(&form_of(&k, &token, &Posted::default(), vec![], &known))
}

/// The screen answers a link's patient gave on the public self-assessment.
async fn known_screen(
    state: &AppState,
    l: &clinic::records::intake::PatientLink,
) -> Result<std::collections::BTreeMap<Condition, Answer>, Error> {
    let pid: PatientId = l.patient_id.parse().map_err(|_| Error::NotFound)?;
    Ok(uc::self_assessment(state, pid)
        .await?
        .map(|x| x.screen)
        .unwrap_or_default())
}

async fn form_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Meta(meta): Meta,
    req: Request,
) -> PageResult {
    let form = read_form(req, &state).await?;
    let l = match uc::open_link(&state, &token, "assessment").await? {
        Ok(l) => l,
        Err(p) => return problem(p),
    };
    let clinic: ClinicId = l.clinic_id.parse().map_err(|_| Error::NotFound)?;
    let k = clinic::settings::record(&state, clinic).await?;
    let r = match patient_from_form(&form) {
        Ok(p) => uc::submit_assessment_link(&state, &meta, &token, p).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(Ok(_)) => render(&LinkDone {
            frame: PublicFrame::of(&k, "Thank you"),
            heading: "Thank you: your form was received".into(),
            message: "Your care team will go through it with you at your assessment. You can close this page.".into(),
            safety: false,
        }),
        Ok(Err(p)) => problem(p),
        Err(Error::Invalid(errs)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&form_of(&k, &token, &form, errs, &known_screen(&state, &l).await?))?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "intake/pre_link_sign.html")]
struct LinkSignPage {
    frame: PublicFrame,
    action: String,
    doc: DocView,
    typed: String,
    error: Option<String>,
    estimate: Option<clinic::billing::EstimateBox>,
}

async fn link_sign_view(
    state: &AppState,
    token: &str,
    typed: String,
    error: Option<String>,
) -> Result<Response, PageError> {
    let l = match uc::open_link(state, token, "consent").await? {
        Ok(l) => l,
        Err(p) => return problem(p),
    };
    let (d, _) = uc::consent_link_view(state, &l).await?;
    let clinic: ClinicId = l.clinic_id.parse().map_err(|_| Error::NotFound)?;
    let k = clinic::settings::record(state, clinic).await?;
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        render(&LinkSignPage {
            frame: PublicFrame::of(&k, "Consent to treatment"),
            action: format!("/consent/{token}"),
            doc: doc_view(&d),
            typed,
            error,
            estimate: clinic::billing::latest_estimate(state, &l.patient_id).await?,
        })?,
    )
        .into_response())
}

async fn link_sign_page(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    link_sign_view(&state, &token, String::new(), None).await
}

async fn link_sign_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Meta(meta): Meta,
    req: Request,
) -> PageResult {
    let form = read_form(req, &state).await?;
    let input = sign_input(&form);
    let typed = input.typed_name.clone();
    match uc::sign_through_link(&state, &meta, &token, input).await {
        Ok(Ok(_)) => {
            let l = uc::link_by_token(&state, &token).await?;
            let clinic: ClinicId = l
                .map(|l| l.clinic_id)
                .unwrap_or_default()
                .parse()
                .map_err(|_| Error::NotFound)?;
            let k = clinic::settings::record(&state, clinic).await?;
            render(&LinkDone {
                frame: PublicFrame::of(&k, "Thank you"),
                heading: "Thank you: your consent was received".into(),
                message: "A copy of what you signed is kept in your record; ask the clinic for it at any time. You may withdraw your consent whenever you wish.".into(),
                safety: false,
            })
        }
        Ok(Err(p)) => problem(p),
        Err(e) => link_sign_view(&state, &token, typed, Some(fixable(e)?)).await,
    }
}

// ---- Consent documents (admin) ---------------------------------------------

pub struct DocRow {
    pub version: i64,
    pub title: String,
    pub by: String,
    pub when: String,
    pub witness: bool,
    pub sha: String,
    /// Lines changed against the previous version: ("+"|"-", text).
    pub diff: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "intake/pre_docs.html")]
struct DocsPage {
    layout: Layout,
    clinics: Vec<(String, String, bool)>,
    clinic: String,
    routes: Vec<(String, &'static str, bool)>,
    route: String,
    source: String,
    witness: bool,
    docs: Vec<DocRow>,
    error: Option<String>,
    /// The document as a patient will read it (or what keeps it from being
    /// published), rendered.
    preview: String,
}

/// A consent document as the patient will read it, or every reason it
/// cannot be published yet.
#[derive(Template)]
#[template(path = "intake/consent_preview.html")]
struct ConsentPreview {
    title: String,
    sections: Vec<(String, Vec<String>)>,
    problems: Vec<String>,
}

fn consent_preview(source: &str) -> Result<String, Error> {
    let p = match domain::consent::Document::parse(&source.replace("\r\n", "\n")) {
        Ok(d) => ConsentPreview {
            title: d.title.clone(),
            sections: d
                .sections
                .into_iter()
                .map(|s| (s.heading, s.text.lines().map(String::from).collect()))
                .collect(),
            problems: vec![],
        },
        Err(errors) => ConsentPreview {
            title: String::new(),
            sections: vec![],
            problems: errors.into_iter().map(|e| e.message).collect(),
        },
    };
    p.render().map_err(|e| Error::Internal(e.to_string()))
}

/// The preview beside the editor, redrawn as the document is typed.
async fn docs_preview(f: StaffForm) -> PageResult {
    f.caller.require_any(Permission::ConsentPublish)?;
    let html = consent_preview(&f.form.get("body").unwrap_or_default())?;
    Ok(axum::response::Html(html).into_response())
}

#[derive(Deserialize, Default)]
struct DocsQ {
    #[serde(default)]
    clinic: Option<String>,
    #[serde(default)]
    route: Option<String>,
}

use clinic::protocols::line_diff;

async fn docs_view(
    state: &AppState,
    c: &Caller,
    q: DocsQ,
    source: Option<String>,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let mine = c.require_any(Permission::ConsentPublish)?;
    let all = clinic::settings::clinics(state, c).await?;
    let clinics: Vec<_> = all.iter().filter(|k| mine.contains(&k.id)).collect();
    let clinic = q
        .clinic
        .as_deref()
        .and_then(|s| s.parse::<ClinicId>().ok())
        .filter(|k| mine.contains(k))
        .or_else(|| clinics.first().map(|k| k.id))
        .ok_or(Error::Forbidden)?;
    let route = uc::parse_route(q.route.as_deref().unwrap_or("iv")).unwrap_or(Route::Iv);
    let rk = uc::route_key(route);
    let docs = uc::documents(state, c, clinic).await?;
    let tz = clinic::settings::record(state, clinic)
        .await?
        .settings
        .clock();
    let of_route: Vec<_> = docs.iter().filter(|d| d.route == rk).collect();
    let rows = of_route
        .iter()
        .enumerate()
        .map(|(i, d)| DocRow {
            version: d.version,
            title: d.title.clone(),
            by: d.published_by.clone(),
            when: tz.stamp(d.published_at),
            witness: d.witness_required,
            sha: d.sha256[..12].to_string(),
            diff: of_route
                .get(i + 1)
                .map(|prev| line_diff(&prev.body, &d.body))
                .unwrap_or_default(),
        })
        .collect();
    let current = of_route.first();
    let source = source.unwrap_or_else(|| {
        current
            .map(|d| d.source.clone())
            .unwrap_or_else(|| domain::consent::template(route))
    });
    render(&DocsPage {
        layout: Layout::new(c, "Consent documents", "clinics").with_flash(flash),
        clinics: clinics
            .iter()
            .map(|k| (k.id.to_string(), k.settings.name.clone(), k.id == clinic))
            .collect(),
        clinic: clinic.to_string(),
        routes: ROUTES
            .iter()
            .map(|r| (uc::route_key(*r), r.label(), *r == route))
            .collect(),
        route: rk,
        preview: consent_preview(&source)?,
        source,
        witness: current.is_some_and(|d| d.witness_required),
        docs: rows,
        error,
    })
}

async fn docs_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Query(q): Query<DocsQ>,
) -> PageResult {
    docs_view(&state, &c, q, None, None, None).await
}

async fn docs_publish(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let clinic: ClinicId = page_id(&f.form.get("clinic").unwrap_or_default())?;
    let route = f.form.get("route").unwrap_or_default();
    let source = f.form.get("body").unwrap_or_default().replace("\r\n", "\n");
    let witness = f.form.get("witness_required").as_deref() == Some("yes");
    let r = uc::publish(&state, &f.caller, clinic, &route, &source, witness)
        .await
        .map(|(v, _)| format!("Version {v} published. Patients who signed an earlier version will be asked to sign again."));
    let q = DocsQ {
        clinic: Some(clinic.to_string()),
        route: Some(route),
    };
    match r {
        Ok(flash) => docs_view(&state, &f.caller, q, None, None, Some(flash)).await,
        Err(e) => docs_view(&state, &f.caller, q, Some(source), Some(fixable(e)?), None).await,
    }
}
