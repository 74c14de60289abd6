//! The patient record over the API, and who the caller is (`/me`).

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use domain::auth::{Permission, Principal};
use domain::ids::{ClinicId, PatientId};
use domain::patients::PatientInput;
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::error::{ApiError, Error};
use crate::AppState;
use clinic::patients;

use crate::json::{api_id, patient_json, typed, ApiResult, JsonObject, Params};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/patients", get(search).post(create))
        .route("/patients/{id}", get(read).patch(update))
}

async fn me(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    let clinics = clinic::settings::clinics(&state, &c).await?;
    let name = |id: ClinicId| {
        clinics
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.settings.name.clone())
    };
    let body = match (&c.principal, &c.user) {
        (Principal::User { grants, .. }, Some(u)) => json!({
            "kind": "user",
            "user_id": u.user_id,
            "username": u.username,
            "display_name": u.display_name,
            "grants": grants.iter().map(|(k, r)| json!({
                "clinic_id": k, "clinic_name": name(*k), "role": r,
                "permissions": r.permissions(),
            })).collect::<Vec<_>>(),
        }),
        (
            Principal::Device {
                token_id,
                clinic_id,
            },
            _,
        ) => json!({
            "kind": "device", "token_id": token_id, "clinic_id": clinic_id, "clinic_name": name(*clinic_id),
            "permissions": [Permission::DeviceIngest],
        }),
        _ => return Err(ApiError(Error::Unauthenticated)),
    };
    Ok(Json(body).into_response())
}

async fn search(State(state): State<AppState>, ApiCaller(c): ApiCaller, req: Request) -> ApiResult {
    let params = Params::parse(&req, &["q", "limit"])?;
    let limit = params.int("limit", 1..=200, 50)?;
    let q = params.get("q").unwrap_or_default();
    let found = patients::search(&state, &c, &q, limit).await?;
    Ok(
        Json(json!({ "patients": found.iter().map(patient_json).collect::<Vec<_>>() }))
            .into_response(),
    )
}

async fn create(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(mut body): JsonObject,
) -> ApiResult {
    let clinic = match body.remove("clinic_id") {
        Some(Value::String(s)) => s
            .parse::<ClinicId>()
            .map_err(|_| Error::bad("clinic_id is not a valid identifier", Some("clinic_id")))?,
        Some(_) => return Err(Error::bad("clinic_id must be a string", Some("clinic_id")).into()),
        None => {
            return Err(
                Error::Invalid(vec![domain::FieldError::new("clinic_id", "is required")]).into(),
            )
        }
    };
    let input: PatientInput = typed(Value::Object(body))?;
    let p = patients::create(&state, &c, clinic, &input).await?;
    let mut resp = (StatusCode::CREATED, Json(patient_json(&p))).into_response();
    if let Ok(v) = format!("/api/v1/patients/{}", p.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn read(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let id: PatientId = api_id(&id)?;
    let p = patients::read(&state, &c, id).await?;
    Ok(Json(patient_json(&p)).into_response())
}

async fn update(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let id: PatientId = api_id(&id)?;
    if body.is_empty() {
        return Err(Error::bad("the body names no field to change", None).into());
    }
    // null clears a field; absent leaves it.
    let cleared: Vec<String> = body
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    let input: PatientInput = typed(Value::Object(body))?;
    let p = patients::update(&state, &c, id, &input, &cleared, false).await?;
    Ok(Json(patient_json(&p)).into_response())
}
