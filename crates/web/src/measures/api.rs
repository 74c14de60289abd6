//! `/api/v1` for the front door and measurement-based care: instruments,
//! questionnaire responses and links, leads, and the public assessment
//! endpoints (no token; rate-limited per address).

use std::collections::BTreeMap;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic::records::leads::Lead;
use clinic::records::measures::{Response as Stored, Source};
use domain::ids::{AppointmentId, LeadId, PatientId};
use domain::instruments::Instrument;
use domain::leads::{AssessmentInput, LeadStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::ctx::Meta;
use crate::error::Error;
use crate::json::{api_id, typed, ApiResult, JsonObject, Params};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/instruments", get(instruments))
        .route("/instruments/{id}", get(instrument))
        .route("/protocols", get(protocols).post(add_protocol))
        .route("/protocols/{id}", get(protocol))
        .route(
            "/protocols/{id}/versions/{version}/approve",
            post(approve_protocol),
        )
        .route(
            "/questionnaire-responses",
            get(responses).post(create_response),
        )
        .route("/questionnaire-links", post(create_link))
        .route("/leads", get(leads))
        .route("/leads/{id}", get(lead).patch(update_lead))
        .route("/leads/{id}/convert", post(convert_lead))
        .route("/tasks", get(tasks))
        .route("/tasks/{id}/close", post(close_task))
        .route("/public/clinics/{slug}/assessments", post(public_assess))
        .route(
            "/public/clinics/{slug}/consultation-slots",
            get(public_slots),
        )
        .route(
            "/public/clinics/{slug}/assessments/{token}/booking",
            post(public_book),
        )
}

fn instrument_json(i: &Instrument) -> Value {
    json!({
        "id": i.id,
        "version": i.version,
        "name": i.name,
        "short_name": i.short_name,
        "rater": i.rater,
        "prompt": i.prompt,
        "licence": i.licence,
        "description": i.description,
        "loinc_panel": i.loinc_panel,
        "loinc_total": i.loinc_total,
        "has_total": i.has_total,
        "range": [i.range.0, i.range.1],
        "hash": i.hash,
        "items": i.items.iter().map(|it| json!({
            "id": it.id,
            "text": it.text,
            "required": it.required,
            "scored": it.scored,
            "asked_when": it.show_if,
            "choices": i.choices(it),
        })).collect::<Vec<_>>(),
        "subscales": i.subscales,
        "bands": i.bands.iter().map(|b| json!({"min": b.min, "max": b.max, "label": b.label, "level": b.level})).collect::<Vec<_>>(),
        "flags": i.flags.iter().map(|f| json!({"id": f.id, "label": f.label, "safety": f.safety})).collect::<Vec<_>>(),
        "outcome": i.outcome,
    })
}

async fn instruments(State(state): State<AppState>, ApiCaller(_c): ApiCaller) -> ApiResult {
    let all: Vec<Value> = state
        .instruments
        .all_current()
        .into_iter()
        .map(|i| instrument_json(i))
        .collect();
    Ok(Json(json!({ "instruments": all })).into_response())
}

async fn instrument(
    State(state): State<AppState>,
    ApiCaller(_c): ApiCaller,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let p = Params::parse(&req, &["version"])?;
    let version = match p.get("version") {
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| Error::bad("version must be a whole number", Some("version")))?,
        ),
        None => None,
    };
    let i = clinic::measures::instrument(&state, &id, version).map_err(|e| match e {
        Error::Invalid(_) if version.is_none() => Error::NotFound,
        other => other,
    })?;
    Ok(Json(instrument_json(&i)).into_response())
}

async fn protocols(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    let set = state.protocols();
    let all: Vec<Value> = set
        .all_current_for(&c.org_id.to_string())
        .into_iter()
        .map(|p| json!(p.as_ref()))
        .collect();
    Ok(Json(json!({ "protocols": all })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProtocol {
    /// The protocol file's text (TOML).
    text: String,
    /// Only check it and return the changes; store nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Adds a protocol version (a clinic admin): validated like a file, numbered
/// after the current version; with `dry_run`, the changes are returned and
/// nothing is stored.
async fn add_protocol(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: NewProtocol = typed(Value::Object(body))?;
    let diff = |d: &[(&str, String)]| {
        d.iter()
            .map(|(k, l)| format!("{k} {l}"))
            .collect::<Vec<_>>()
    };
    if i.dry_run {
        let k = clinic::protocols::check(&state, &c, &i.text)?;
        return Ok(Json(json!({
            "id": k.protocol.id, "version": k.protocol.version, "hash": k.protocol.hash,
            "previous_version": k.previous.as_ref().map(|p| p.version), "changes": diff(&k.diff),
        }))
        .into_response());
    }
    let p = clinic::protocols::add(&state, &c, &i.text).await?;
    let mut out = json!(p);
    out["status"] = json!("draft");
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// A medical director approves a draft of the organisation.
async fn approve_protocol(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult {
    let version: u32 = version
        .parse()
        .map_err(|_| Error::bad("version must be a whole number", Some("version")))?;
    let p = clinic::protocols::approve(&state, &c, &id, version).await?;
    let mut out = json!(p.as_ref());
    out["status"] = json!("approved");
    Ok(Json(out).into_response())
}

/// One protocol: the current version, or `?version=N`; with the versions there are.
async fn protocol(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult {
    let p = Params::parse(&req, &["version"])?;
    let found = match p.get("version") {
        Some(v) => {
            let v = v
                .parse::<u32>()
                .map_err(|_| Error::bad("version must be a whole number", Some("version")))?;
            state.protocols().get(&id, v).cloned()
        }
        None => state
            .protocols()
            .current_for(&c.org_id.to_string(), &id)
            .cloned(),
    };
    // Another organisation's version does not exist for this caller.
    let org = c.org_id.to_string();
    let found = found
        .filter(|p| p.org.as_deref().is_none_or(|o| o == org))
        .ok_or(Error::NotFound)?;
    let mut out = json!(found.as_ref());
    out["versions"] = json!(state
        .protocols()
        .versions_of(&id)
        .iter()
        .filter(|v| v.org.as_deref().is_none_or(|o| o == org))
        .map(|v| json!({"version": v.version, "hash": v.hash}))
        .collect::<Vec<_>>());
    Ok(Json(out).into_response())
}

fn response_json(r: &Stored) -> Value {
    json!({
        "id": r.id,
        "clinic_id": r.clinic_id,
        "patient_id": r.patient_id,
        "lead_id": r.lead_id,
        "instrument": r.instrument_id,
        "instrument_version": r.instrument_version,
        "instrument_hash": r.instrument_hash,
        "answers": r.answers,
        "total": r.total,
        "band": r.band,
        "band_level": r.band_level,
        "subscales": r.subscales,
        "flags": r.flags,
        "safety": r.safety,
        "source": r.source,
        "started_at": r.started_at.map(|m| domain::time::to_timestamp(m).to_string()),
        "submitted_at": domain::time::to_timestamp(r.submitted_at).to_string(),
    })
}

async fn responses(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: Request,
) -> ApiResult {
    let p = Params::parse(&req, &["patient_id", "instrument"])?;
    let pid: PatientId = p
        .get("patient_id")
        .ok_or_else(|| Error::bad("patient_id is required", Some("patient_id")))?
        .parse()
        .map_err(|_| Error::bad("patient_id is not a valid identifier", Some("patient_id")))?;
    let rs = clinic::measures::responses(&state, &c, pid, p.get("instrument").as_deref()).await?;
    let clinic = rs.first().map(|r| r.clinic_id);
    let trends = match clinic {
        Some(k) => {
            let points: Vec<_> = rs
                .iter()
                .map(|r| (r.instrument_id.as_str(), r.total, r.submitted_at))
                .collect();
            clinic::measures::trends(&state, k, pid, &points).await?
        }
        None => vec![],
    };
    Ok(Json(json!({
        "responses": rs.iter().map(response_json).collect::<Vec<_>>(),
        "trends": trends.iter().map(|t| json!({
            "instrument": t.instrument.id,
            "points": t.points,
            "trend": t.trend,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewResponseBody {
    patient_id: PatientId,
    instrument: String,
    instrument_version: Option<u32>,
    answers: BTreeMap<String, i32>,
    appointment_id: Option<AppointmentId>,
}

async fn create_response(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: NewResponseBody = typed(Value::Object(body))?;
    let rec = clinic::measures::record(
        &state,
        &c,
        b.patient_id,
        &b.instrument,
        b.instrument_version,
        &b.answers,
        b.appointment_id,
        Source::Api,
    )
    .await?;
    let s = &rec.scored;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": rec.id,
            "instrument": rec.instrument.id,
            "instrument_version": rec.instrument.version,
            "answers": s.answers,
            "total": s.total,
            "band": s.band,
            "subscales": s.subscales,
            "flags": s.flags,
            "safety": s.safety,
            "task_id": rec.task,
            "crisis_resources": s.safety.then_some(CRISIS),
        })),
    )
        .into_response())
}

const CRISIS: &str =
    "Call or text 988 (Suicide & Crisis Lifeline) any time; call 911 in an emergency.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLinkBody {
    patient_id: PatientId,
    instrument: String,
    #[serde(default = "three_days")]
    valid_hours: i64,
    #[serde(default)]
    reason: String,
}

fn three_days() -> i64 {
    72
}

async fn create_link(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: NewLinkBody = typed(Value::Object(body))?;
    let (link, _token) = clinic::measures::send_link(
        &state,
        &c,
        b.patient_id,
        &b.instrument,
        b.valid_hours,
        &b.reason,
    )
    .await?;
    // The token goes only to the patient, by e-mail.
    Ok((StatusCode::CREATED, Json(json!(link))).into_response())
}

fn lead_json(l: &Lead) -> Value {
    json!({
        "id": l.id,
        "clinic_id": l.clinic_id,
        "status": l.status,
        "given_name": l.given_name,
        "family_name": l.family_name,
        "email": l.email,
        "phone": l.phone,
        "date_of_birth": l.date_of_birth,
        "outcome": l.outcome,
        "gad7_total": l.gad7_total,
        "phq2_total": l.phq2_total,
        "safety": l.safety,
        "conditions": l.detail["conditions"],
        "treatments": l.detail["treatments"],
        "exclusions": l.detail["exclusions"],
        "reasons": l.detail["reasons"],
        "patient_id": l.patient_id,
        "appointment_id": l.appointment_id,
        "note": l.note,
        "created_at": domain::time::to_timestamp(l.created_at).to_string(),
        "updated_at": domain::time::to_timestamp(l.updated_at).to_string(),
    })
}

async fn leads(State(state): State<AppState>, ApiCaller(c): ApiCaller, req: Request) -> ApiResult {
    let p = Params::parse(&req, &["status", "limit"])?;
    let status = match p.get("status") {
        Some(s) => Some(LeadStatus::parse(&s).map_err(|e| Error::Invalid(vec![e]))?),
        None => None,
    };
    let limit = match p.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| Error::bad("limit must be 1 to 500", Some("limit")))?,
        None => 100,
    };
    let ls = clinic::leads::list(&state, &c, status, limit).await?;
    Ok(Json(json!({ "leads": ls.iter().map(lead_json).collect::<Vec<_>>() })).into_response())
}

async fn lead(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let v = clinic::leads::read(&state, &c, api_id(&id)?).await?;
    let mut out = lead_json(&v.lead);
    out["responses"] = json!(v.responses.iter().map(response_json).collect::<Vec<_>>());
    out["tasks"] = json!(v.tasks);
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadPatch {
    status: String,
    note: Option<String>,
}

async fn update_lead(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let lid: LeadId = api_id(&id)?;
    let b: LeadPatch = typed(Value::Object(body))?;
    clinic::leads::set_status(&state, &c, lid, &b.status, b.note.as_deref()).await?;
    let v = clinic::leads::read(&state, &c, lid).await?;
    Ok(Json(lead_json(&v.lead)).into_response())
}

async fn convert_lead(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pid = clinic::leads::convert(&state, &c, api_id(&id)?).await?;
    Ok((StatusCode::CREATED, Json(json!({ "patient_id": pid }))).into_response())
}

async fn tasks(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    let ts = clinic::measures::open_tasks(&state, &c).await?;
    Ok(Json(json!({ "tasks": ts })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    note: String,
}

async fn close_task(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: CloseBody = typed(Value::Object(body))?;
    let t = clinic::measures::close_task(&state, &c, api_id(&id)?, &b.note).await?;
    Ok(Json(json!(t)).into_response())
}

// ---- Public ---------------------------------------------------------------

async fn public_assess(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Meta(meta): Meta,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let clinic = clinic::leads::public_clinic(&state, &slug).await?;
    let input: AssessmentInput = typed(Value::Object(body))?;
    let s = clinic::leads::submit(&state, &meta, &clinic, &input).await?;
    let a = &s.assessment;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": s.token,
            "outcome": a.outcome,
            "headline": a.outcome.headline(),
            "reasons": a.reasons,
            "gad7": { "total": a.gad7.total, "band": a.gad7.band },
            "phq2": { "total": a.phq2.total, "band": a.phq2.band },
            "safety": a.safety,
            "crisis_resources": CRISIS,
            "disclaimer": "This self-assessment is not a diagnosis; only a clinician who has assessed you can say whether ketamine is safe and suitable for you.",
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct SlotsQuery {
    #[serde(rename = "type")]
    code: Option<String>,
}

async fn public_slots(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    req: Request,
) -> ApiResult {
    let q: SlotsQuery = crate::json::query(&req)?;
    let clinic = clinic::leads::public_clinic(&state, &slug).await?;
    let types = clinic::leads::public_types(&state, &clinic).await?;
    let ty = clinic::leads::choose(&types, q.code.as_deref())?;
    let starts = clinic::leads::public_starts(&state, &clinic, &ty, 100).await?;
    Ok(Json(json!({
        "type": ty.code,
        "name": ty.name,
        "video": ty.is_video(),
        "types": types.iter().map(|t| json!({"code": t.code, "name": t.name, "video": t.is_video()})).collect::<Vec<_>>(),
        "time_zone": clinic.settings.time_zone,
        "starts": starts.iter().map(|s| domain::time::to_timestamp(*s).to_string()).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicBooking {
    starts_at: String,
    /// One of the public types' codes; the first (in person) when absent.
    #[serde(rename = "type")]
    code: Option<String>,
}

async fn public_book(
    State(state): State<AppState>,
    Path((slug, token)): Path<(String, String)>,
    Meta(meta): Meta,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let clinic = clinic::leads::public_clinic(&state, &slug).await?;
    let b: PublicBooking = typed(Value::Object(body))?;
    let tz = jiff::tz::TimeZone::get(&clinic.settings.time_zone)
        .map_err(|_| Error::Internal("clinic zone".into()))?;
    let start = crate::scheduling::api::parse_start(&b.starts_at, None, &tz)?;
    let a = clinic::leads::book(&state, &meta, &clinic, &token, b.code.as_deref(), start).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "appointment": a.type_name,
            "starts_at": domain::time::to_timestamp(a.starts_at).to_string(),
            "ends_at": domain::time::to_timestamp(a.ends_at).to_string(),
        })),
    )
        .into_response())
}
