//! `/api/v1/patients/{id}/eligibility`: decisions with the engine's findings.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::eligibility::DecisionInput;
use domain::ids::PatientId;
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::json::{api_id, typed, ApiResult, JsonObject};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/eligibility", get(history).post(decide))
        .route(
            "/patients/{id}/eligibility/{version}/sign-off",
            post(sign_off),
        )
}

async fn history(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let ds = clinic::intake::eligibility::history(&state, &c, pid).await?;
    let current = ds.first().map(|d| {
        json!({
            "version": d.version,
            "decision": d.decision,
            "approves": matches!(d.decision.as_str(), "eligible" | "eligible_with_conditions"),
            "signed_off": d.signed_off_by.is_some(),
        })
    });
    Ok(Json(json!({ "current": current, "decisions": ds })).into_response())
}

async fn decide(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let input: DecisionInput = typed(Value::Object(body))?;
    let (version, d) = clinic::intake::eligibility::record(&state, &c, pid, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "version": version,
            "decision": d.decision,
            "suggestion": d.evaluation.suggestion,
            "findings": d.evaluation.findings,
            "adequate_trials": d.evaluation.adequate_trials,
            "treatment_resistant": d.evaluation.treatment_resistant,
        })),
    )
        .into_response())
}

async fn sign_off(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let version: i64 = version
        .parse()
        .map_err(|_| crate::error::Error::bad("version must be a whole number", Some("version")))?;
    clinic::intake::eligibility::sign_off(&state, &c, pid, version).await?;
    Ok(Json(json!({ "version": version, "signed_off": true })).into_response())
}
