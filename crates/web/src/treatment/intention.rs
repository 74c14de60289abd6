//! The intention page: the patient, holding the tablet a nurse handed over,
//! writes what they mean to hold in mind during today's session. Staff
//! navigation is hidden while the tablet is in their hands; saving thanks
//! them and asks for the tablet back.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use domain::ids::PatientId;

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::ui::{page_id, render, Layout, PageResult};
use crate::AppState;
use clinic::intentions as uc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/patients/{id}/intention", get(page).post(submit))
}

pub fn api_routes() -> Router<AppState> {
    Router::new().route("/intentions", get(list))
}

#[derive(serde::Deserialize)]
struct ListQ {
    patient_id: String,
}

/// `GET /api/v1/intentions?patient_id=`: a patient's intentions, newest
/// first, for the care team.
async fn list(
    State(state): State<AppState>,
    crate::auth::ApiCaller(c): crate::auth::ApiCaller,
    req: axum::extract::Request,
) -> crate::json::ApiResult {
    let q: ListQ = crate::json::query(&req)?;
    let pid: PatientId = q.patient_id.trim().parse().map_err(|_| {
        Error::Invalid(vec![domain::FieldError::new(
            "patient_id",
            "is not a valid identifier (a UUID)",
        )])
    })?;
    let all = uc::of_patient(&state, &c, pid).await?;
    Ok(axum::Json(serde_json::json!({
        "intentions": all.iter().map(|i| serde_json::json!({
            "id": i.id, "intention": i.body, "source": i.source,
            "written_at": domain::time::to_timestamp(i.written_at).to_string(),
            "appointment_id": i.appointment_id, "encounter_id": i.encounter_id,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Template)]
#[template(path = "treatment/intention.html")]
struct IntentionPage {
    layout: Layout,
    action: String,
    first_name: String,
    /// The session it is for, in words; empty when there is none.
    for_what: String,
    /// What is already written for it.
    current: Option<String>,
    typed: String,
    max: usize,
    error: Option<String>,
    saved: bool,
}

async fn view(
    state: &AppState,
    c: &Caller,
    pid: PatientId,
    typed: Option<String>,
    error: Option<String>,
    saved: bool,
) -> PageResult {
    let p = uc::page(state, c, pid).await?;
    let clock = clinic::settings::record(state, p.clinic)
        .await?
        .settings
        .clock();
    let current = p.current.map(|i| i.body);
    let mut r = render(&IntentionPage {
        layout: Layout::new(c, "Your intention", "floor"),
        action: format!("/patients/{pid}/intention"),
        first_name: p.first_name,
        for_what: p
            .target
            .as_ref()
            .map(|t| t.describe(&clock))
            .unwrap_or_default(),
        typed: typed.or_else(|| current.clone()).unwrap_or_default(),
        current,
        max: uc::MAX_CHARS,
        error: error.clone(),
        saved,
    })?;
    if error.is_some() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

async fn page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    view(&state, &c, pid, None, None, false).await
}

async fn submit(State(state): State<AppState>, Path(id): Path<String>, f: StaffForm) -> PageResult {
    let pid: PatientId = page_id(&id)?;
    let text = f.form.get("intention").unwrap_or_default();
    match uc::write_on_tablet(&state, &f.caller, pid, &text).await {
        Ok(_) => view(&state, &f.caller, pid, None, None, true).await,
        Err(Error::Invalid(e)) => {
            let msg = e
                .into_iter()
                .map(|x| x.message)
                .collect::<Vec<_>>()
                .join("; ");
            view(&state, &f.caller, pid, Some(text), Some(msg), false).await
        }
        Err(Error::Conflict(m)) => view(&state, &f.caller, pid, Some(text), Some(m), false).await,
        Err(e) => Err(e.into()),
    }
}
