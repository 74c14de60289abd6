//! `/api/v1/encounters` and their steps, `/api/v1/observations` for monitor
//! gateways, and `/api/v1/clinics/{id}/floor` with its event stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::auth::Permission;
use domain::ids::ClinicId;
use domain::treatment::{AdverseEvent, Aldrete, MedicationGiven};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use crate::auth::ApiCaller;
use crate::error::Error;
use crate::json::{api_id, typed, ApiResult, JsonObject};
use crate::AppState;
use clinic::treatment as uc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/encounters", post(check_in))
        .route("/encounters/{id}", get(read))
        .route("/encounters/{id}/checklist", post(checklist))
        .route("/encounters/{id}/dose-orders", post(order))
        .route("/encounters/{id}/dose-orders/check", post(check))
        .route("/encounters/{id}/dose-orders/void", post(void))
        .route("/encounters/{id}/end-without-dose", post(end_without_dose))
        .route("/encounters/{id}/attestation", post(attest))
        .route("/encounters/{id}/administration-events", post(administer))
        .route("/encounters/{id}/observations", post(observe))
        .route("/encounters/{id}/alerts", get(alerts))
        .route(
            "/encounters/{id}/alerts/{aid}/acknowledge",
            post(acknowledge),
        )
        .route("/encounters/{id}/medications", post(medication))
        .route("/encounters/{id}/adverse-events", post(adverse))
        .route("/encounters/{id}/recovery", post(recovery))
        .route("/encounters/{id}/discharge", post(discharge))
        .route("/encounters/{id}/note", post(sign_note))
        .route("/encounters/{id}/note/addenda", post(addendum))
        .route("/encounters/{id}/note.pdf", get(note_pdf))
        .route("/observations", post(ingest))
        .route("/clinics/{id}/floor", get(floor))
        .route("/clinics/{id}/floor/events", get(events))
}

fn visit(v: uc::Visit) -> ApiResult {
    Ok(Json(v.to_json()).into_response())
}

async fn check_in(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::CheckIn = typed(Value::Object(body))?;
    let id = uc::check_in(&state, &c, input).await?;
    let v = uc::visit(&state, &c, &id).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/encounters/{id}"))],
        Json(v.to_json()),
    )
        .into_response())
}

async fn read(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    visit(uc::visit(&state, &c, &id).await?)
}

async fn checklist(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::ChecklistInput = typed(Value::Object(body))?;
    visit(uc::save_checklist(&state, &c, &id, input).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    /// In the protocol's unit (mg/kg or mg).
    dose: f64,
}

async fn order(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: OrderBody = typed(Value::Object(body))?;
    let v = uc::order_dose(&state, &c, &id, b.dose).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    vial_lot: String,
    /// Compared with the lot's expiry in the Schedule III record when given.
    #[serde(default)]
    vial_expires: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

async fn void(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: ReasonBody = typed(Value::Object(body))?;
    visit(uc::void_order(&state, &c, &id, &b.reason).await?)
}

async fn end_without_dose(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: ReasonBody = typed(Value::Object(body))?;
    visit(uc::end_without_dose(&state, &c, &id, &b.reason).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestBody {
    note: String,
}

async fn attest(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: AttestBody = typed(Value::Object(body))?;
    visit(uc::attest(&state, &c, &id, &b.note).await?)
}

async fn check(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: CheckBody = typed(Value::Object(body))?;
    visit(uc::check_dose(&state, &c, &id, &b.vial_lot, &b.vial_expires).await?)
}

async fn administer(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::AdminInput = typed(Value::Object(body))?;
    let v = uc::administer(&state, &c, &id, input).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

async fn observe(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let (values, named) =
        uc::split_reading(body, &["taken_at"]).map_err(|e| Error::Invalid(vec![e]))?;
    let taken_at = match named.into_iter().next().flatten() {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(Error::Invalid(vec![domain::FieldError::new(
                "taken_at",
                "must be a time (RFC 3339)",
            )])
            .into())
        }
    };
    let input = uc::ReadingInput { values, taken_at };
    let v = uc::record_reading(&state, &c, &id, input).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

async fn alerts(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let v = uc::visit(&state, &c, &id).await?;
    Ok(Json(json!({ "alerts": v.record.alerts })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    response: Option<String>,
    #[serde(default)]
    note: String,
}

async fn acknowledge(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path((id, aid)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: AckBody = typed(Value::Object(body))?;
    visit(uc::acknowledge(&state, &c, &id, &aid, b.response.as_deref(), &b.note).await?)
}

async fn medication(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let m: MedicationGiven = typed(Value::Object(body))?;
    let v = uc::give_medication(&state, &c, &id, m).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

async fn adverse(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let e: AdverseEvent = typed(Value::Object(body))?;
    let v = uc::adverse_event(&state, &c, &id, e).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

async fn recovery(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let a: Aldrete = typed(Value::Object(body))?;
    let v = uc::score_recovery(&state, &c, &id, a).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

async fn discharge(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: NoteBody = typed(Value::Object(body))?;
    visit(uc::discharge(&state, &c, &id, &b.note).await?)
}

async fn sign_note(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let v = uc::sign_note(&state, &c, &id).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddendumBody {
    text: String,
}

async fn addendum(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: AddendumBody = typed(Value::Object(body))?;
    let v = uc::add_addendum(&state, &c, &id, &b.text).await?;
    Ok((StatusCode::CREATED, Json(v.to_json())).into_response())
}

async fn note_pdf(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pdf = uc::note_pdf(&state, &c, &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

async fn ingest(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(mut body): JsonObject,
) -> ApiResult {
    let readings = match body.remove("readings") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(Error::bad("readings must be an array", Some("readings")).into()),
        None => {
            return Err(Error::bad("the body needs \"readings\": [ ... ]", Some("readings")).into())
        }
    };
    if let Some(k) = body.keys().next() {
        return Err(Error::bad(format!("{k} is not a known field"), Some(k)).into());
    }
    let out = uc::ingest(&state, &c, readings).await?;
    if out.stored + out.duplicates == 0 {
        // Nothing taken: a problem naming each reading's fields.
        let errors = out
            .rejected
            .iter()
            .flat_map(|r| {
                let i = r["index"].as_u64().unwrap_or_default();
                r["errors"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| {
                        domain::FieldError::new(
                            format!("readings[{i}].{}", e["field"].as_str().unwrap_or("")),
                            e["message"].as_str().unwrap_or(""),
                        )
                    })
            })
            .collect();
        return Err(Error::Invalid(errors).into());
    }
    Ok(Json(json!(out)).into_response())
}

async fn floor(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let clinic: ClinicId = api_id(&id)?;
    let cards = uc::floor(&state, &c, clinic).await?;
    Ok(Json(json!({ "chairs": cards })).into_response())
}

/// Server-sent events: one `floor` event per change in the clinic, naming
/// the encounter and what changed (never patient data).
async fn events(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let clinic: ClinicId = api_id(&id)?;
    c.require(Permission::EncounterRead, clinic)?;
    let key = clinic.to_string();
    let stream = BroadcastStream::new(state.floor.subscribe()).filter_map(move |m| {
        let ev = match m {
            Ok(ev) if ev.clinic == key => ev,
            // Lagged behind: tell the page to reload everything.
            Err(_) => uc::FloorEvent {
                clinic: key.clone(),
                encounter: String::new(),
                kind: "resync",
            },
            _ => return None,
        };
        Some(Ok::<_, Infallible>(Event::default().event("floor").data(
            json!({"encounter": ev.encounter, "kind": ev.kind}).to_string(),
        )))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
