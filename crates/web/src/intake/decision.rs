//! The eligibility decision on the chart: the screen's findings, the
//! prescriber's decision with its conditions, and the medical director's
//! sign-off (the use cases are `clinic::intake::eligibility`).

use askama::Template;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use domain::auth::Permission;
use domain::ids::PatientId;
use domain::FieldError;

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::ui::{fixable, notice};
use crate::ui::{page_id, render, see_other, PageResult};
use crate::ui::{ChartTabs, Kept, Layout};
use crate::AppState;

use crate::measures::pages::{clock_of, when};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/patients/{id}/eligibility",
            get(eligibility_page).post(eligibility_decide),
        )
        .route(
            "/patients/{id}/eligibility/sign-off",
            post(eligibility_sign_off),
        )
}

// ---- Eligibility -------------------------------------------------------------

pub struct FindingRow {
    pub level: String,
    pub text: String,
}

pub struct DecisionRow {
    pub version: i64,
    pub decision: String,
    pub decision_label: &'static str,
    pub suggestion_label: &'static str,
    pub conditions: String,
    pub rationale: String,
    pub by: String,
    pub when: String,
    pub signed: String,
    pub findings: Vec<FindingRow>,
}

#[derive(Template)]
#[template(path = "intake/eligibility.html")]
struct EligibilityPage {
    layout: Layout,
    id: String,
    tabs: ChartTabs,
    name: String,
    banner: String,
    banner_class: &'static str,
    current: Option<DecisionRow>,
    older: Vec<DecisionRow>,
    can_sign: bool,
    can_decide: bool,
    /// The exclusion screen for the decision form: (value, label).
    screen: Vec<(String, &'static str)>,
    error: Option<String>,
    /// What a refused decision form held, to show it again; else the facts
    /// of the assessment, filled in.
    kept: Kept,
    /// The engine's reading of the assessment (the Assessment tab shows the
    /// same), when there is one.
    assessment_findings: Vec<FindingRow>,
    assessed: bool,
    /// How the rules read each medicine line, rendered.
    medicines_read: String,
}

/// How the rules read each line of a medicines box: the medicine and its
/// class (with the benzodiazepine load), or that no rule knows the name.
pub(crate) fn medicines_read(text: &str) -> Vec<(String, String, bool)> {
    let (meds, _) = domain::assessment::medication_lines(text, "medications");
    meds.iter()
        .map(|m| match domain::codes::medicine(&m.name) {
            Some(k) => {
                let dose = match (m.daily_mg, k.lorazepam_mg > 0.0) {
                    (Some(mg), true) => {
                        format!(", {mg} mg a day = {:.1} mg lorazepam", mg / k.lorazepam_mg)
                    }
                    (Some(mg), false) => format!(", {mg} mg a day"),
                    (None, _) => String::new(),
                };
                (
                    m.name.clone(),
                    format!("{}, {}{dose}", k.name, k.class),
                    true,
                )
            }
            None => (
                m.name.clone(),
                "not a medicine the rules know: no interaction rule checks it; check it by hand"
                    .into(),
                false,
            ),
        })
        .collect()
}

/// The decision form filled from the assessment's facts, written the way
/// the form reads them back (one medicine, trial per line; "128/82").
fn form_of_facts(f: &domain::eligibility::Facts) -> Kept {
    let key = |c: &domain::eligibility::Condition| domain::assessment::key(*c);
    let mut fields: Vec<(String, String)> = vec![];
    fields.extend(f.conditions.iter().map(|c| ("conditions".into(), key(c))));
    fields.extend(f.unknown.iter().map(|c| ("unknown".into(), key(c))));
    let meds: Vec<String> = f
        .medications
        .iter()
        .map(|m| match m.daily_mg {
            Some(mg) => format!("{} {mg}", m.name),
            None => m.name.clone(),
        })
        .collect();
    fields.push(("medications".into(), meds.join("\n")));
    let trials: Vec<String> = f.trials.iter().map(|t| t.as_line()).collect();
    fields.push(("trials".into(), trials.join("\n")));
    if let Some((s, d)) = f.blood_pressure {
        fields.push(("blood_pressure".into(), format!("{s}/{d}")));
    }
    Kept::filled("decide", fields)
}

pub(crate) fn decision_label(s: &str) -> &'static str {
    match s {
        "eligible" => "Eligible",
        "eligible_with_conditions" => "Eligible with conditions",
        "not_eligible" => "Not eligible",
        _ => "Needs more information",
    }
}

async fn eligibility_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    (error, kept): (Option<String>, Kept),
    flash: Option<String>,
) -> PageResult {
    let pid: PatientId = page_id(id)?;
    let p = clinic::patients::read(state, c, pid).await?;
    let tz = clock_of(state, p.clinic_id).await?;
    let ds = clinic::intake::eligibility::history(state, c, pid).await?;
    let rows: Vec<DecisionRow> = ds
        .iter()
        .map(|d| DecisionRow {
            version: d.version,
            decision: d.decision.clone(),
            decision_label: decision_label(&d.decision),
            suggestion_label: decision_label(&d.suggestion),
            conditions: d.conditions.clone(),
            rationale: d.rationale.clone(),
            by: d.decided_by.clone(),
            when: when(d.decided_at, &tz),
            signed: match (&d.signed_off_by, d.signed_off_at) {
                (Some(u), Some(at)) => format!("signed off by {u}, {}", when(at, &tz)),
                _ => String::new(),
            },
            findings: d
                .findings
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| FindingRow {
                            level: f["level"].as_str().unwrap_or("").to_string(),
                            text: f["explanation"].as_str().unwrap_or("").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let mut rows = rows.into_iter();
    let current = rows.next();
    let (banner, banner_class) = match &current {
        None => (
            "Not yet eligible: no eligibility decision".to_string(),
            "warn",
        ),
        Some(d) if d.decision == "not_eligible" => ("Not eligible".to_string(), "bad"),
        Some(d) if d.decision == "needs_more_information" => (
            "Not yet eligible: more information needed".to_string(),
            "warn",
        ),
        Some(d) if d.signed.is_empty() => (
            format!("{}: awaiting the nurse's sign-off", d.decision_label),
            "warn",
        ),
        Some(d) => (d.decision_label.to_string(), "ok"),
    };
    let can_sign = current.as_ref().is_some_and(|d| d.signed.is_empty())
        && c.may(Permission::EligibilitySignOff, p.clinic_id);
    let can_decide = c.may(Permission::EligibilityDecide, p.clinic_id);
    // The assessment's facts, read by the same engine as on its own tab,
    // fill the form (unless a refused form is being shown again).
    let mut assessment_findings = vec![];
    let mut assessed = false;
    let mut kept = kept;
    if can_decide && c.may(Permission::MeasureRead, p.clinic_id) {
        let parts =
            clinic::intake::latest_parts(clinic::intake::assessment_parts(state, c, pid).await?)?;
        let pp = parts.patient.as_ref().map(|x| &x.0);
        let kp = parts.clinical.as_ref().map(|x| &x.0);
        if pp.is_some() || kp.is_some() {
            assessed = true;
            let facts = domain::assessment::facts(pp, kp);
            let eval =
                domain::eligibility::evaluate(&facts, &domain::eligibility::Policy::default());
            assessment_findings = crate::intake::pages::finding_rows(&eval.findings)
                .into_iter()
                .map(|(level, text)| FindingRow { level, text })
                .collect();
            if !kept.is("decide") {
                kept = form_of_facts(&facts);
            }
        }
    }
    let screen = domain::eligibility::Condition::ALL
        .iter()
        .map(|c| {
            let v = serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            (v, c.label())
        })
        .collect();
    render(&EligibilityPage {
        tabs: ChartTabs::new(c, pid, p.clinic_id, "eligibility"),
        layout: Layout::new(
            c,
            format!("Eligibility: {}", p.details.display_name()),
            "patients",
        )
        .with_flash(flash),
        id: pid.to_string(),
        name: p.details.display_name(),
        banner,
        banner_class,
        current,
        older: rows.collect(),
        can_sign,
        can_decide,
        screen,
        error,
        medicines_read: crate::intake::codes::MedicinesRead {
            lines: medicines_read(kept.val("decide", "medications")),
        }
        .render()
        .map_err(|e| Error::Internal(e.to_string()))?,
        assessment_findings,
        assessed,
        kept,
    })
}

async fn eligibility_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    eligibility_view(&state, &c, &id, (None, Kept::default()), None).await
}

async fn eligibility_sign_off(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let version = f
        .form
        .get("version")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let r = clinic::intake::eligibility::sign_off(&state, &f.caller, pid, version).await;
    let (error, flash) = notice(r.map(|()| "Signed off.".into()))?;
    eligibility_view(&state, &f.caller, &id, (error, Kept::default()), flash).await
}

/// Reads the decision form: ticked exclusions, those not yet known, one
/// medicine per line ("clonazepam 2": name, then mg a day), one trial per line
/// ("sertraline, 10, adequate"), blood pressure as "128/82".
fn decision_from_form(
    f: &crate::auth::Posted,
) -> Result<domain::eligibility::DecisionInput, Error> {
    use domain::eligibility::{Condition, DecisionInput, Facts, Suggestion, Trial};
    let mut errors = vec![];
    let cond = |v: &str| -> Option<Condition> { serde_json::from_value(serde_json::json!(v)).ok() };
    let mut conditions = vec![];
    for v in f.all("conditions") {
        match cond(&v) {
            Some(c) => conditions.push(c),
            None => errors.push(FieldError::new(
                "conditions",
                format!("{v:?} is not on the screen"),
            )),
        }
    }
    let unknown: Vec<Condition> = f.all("unknown").iter().filter_map(|v| cond(v)).collect();
    let (medications, bad_doses) = domain::assessment::medication_lines(
        &f.get("medications").unwrap_or_default(),
        "medications",
    );
    errors.extend(bad_doses);
    let mut trials = vec![];
    for (n, line) in f.get("trials").unwrap_or_default().lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        let weeks = parts.get(1).and_then(|w| w.parse::<u32>().ok());
        let adequate = parts.get(2).map(|a| a.eq_ignore_ascii_case("adequate"));
        match (parts.first(), weeks, adequate) {
            (Some(t), Some(weeks), Some(adequate_dose)) if !t.is_empty() => trials.push(Trial {
                treatment: t.to_string(),
                adequate_dose,
                weeks,
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
    let bp = match f
        .get("blood_pressure")
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
    {
        None => None,
        Some(b) => match b
            .split_once('/')
            .and_then(|(s, d)| Some((s.trim().parse().ok()?, d.trim().parse().ok()?)))
        {
            Some(v) => Some(v),
            None => {
                errors.push(FieldError::new("blood_pressure", "write it as 128/82"));
                None
            }
        },
    };
    let decision: Option<Suggestion> =
        serde_json::from_value(serde_json::json!(f.get("decision").unwrap_or_default())).ok();
    if decision.is_none() {
        errors.push(FieldError::new("decision", "choose a decision"));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    Ok(DecisionInput {
        facts: Facts {
            conditions,
            unknown,
            medications,
            trials,
            blood_pressure: bp,
        },
        decision: decision.unwrap_or(Suggestion::NeedsMoreInformation),
        conditions: f.get("decision_conditions").unwrap_or_default(),
        rationale: f.get("rationale").unwrap_or_default(),
    })
}

async fn eligibility_decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: StaffForm,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let outcome = match decision_from_form(&f.form) {
        Ok(input) => clinic::intake::eligibility::record(&state, &f.caller, pid, input).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok((version, _)) => Ok(see_other(&format!(
            "/patients/{id}/eligibility?saved={version}"
        ))),
        Err(e) => {
            let kept = Kept::new("decide", &f.form);
            let mut r =
                eligibility_view(&state, &f.caller, &id, (Some(fixable(e)?), kept), None).await?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
    }
}
