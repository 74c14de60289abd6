//! `/api/v1/patients/{id}/assessment`, `/consents`, `/plans`, `/links`,
//! `/status`, and `/api/v1/clinics/{id}/consent-documents`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::assessment::{ClinicalPart, PatientPart};
use domain::consent::SignInput;
use domain::ids::{ClinicId, PatientId};
use domain::plans::PlanInput;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::error::{stored, Error};
use crate::json::{api_id, typed, ApiResult, JsonObject};
use crate::AppState;
use clinic::intake as uc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/patients/{id}/assessment", get(assessment))
        .route("/patients/{id}/assessment/{part}", post(record_part))
        .route("/patients/{id}/links", post(send_link))
        .route("/patients/{id}/consents", get(consents).post(sign))
        .route("/patients/{id}/consents/{cid}/pdf", get(pdf))
        .route("/patients/{id}/consents/{cid}/witness", post(witness))
        .route("/patients/{id}/consents/{cid}/withdraw", post(withdraw))
        .route("/patients/{id}/plans", get(plans).post(create_plan))
        .route("/patients/{id}/status", get(status))
        .route(
            "/clinics/{id}/consent-documents",
            get(documents).post(publish),
        )
}

fn part_json(p: Option<&clinic::records::intake::AssessmentPart>) -> Result<Value, Error> {
    let Some(p) = p else {
        return Ok(Value::Null);
    };
    Ok(json!({
        "version": p.version,
        "source": p.source,
        "entered_by": p.entered_by,
        "created_at": p.created_at,
        "data": stored::<Value>("assessment part", &p.data)?,
    }))
}

async fn assessment(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let a = uc::assessment(&state, &c, pid).await?;
    let pp = a.patient.as_ref().map(|x| &x.0);
    let facts = domain::assessment::facts(pp, a.clinical.as_ref().map(|x| &x.0));
    let evaluation = domain::eligibility::evaluate(&facts, &domain::eligibility::Policy::default());
    Ok(Json(json!({
        "patient": part_json(a.patient.as_ref().map(|x| &x.1))?,
        "clinical": part_json(a.clinical.as_ref().map(|x| &x.1))?,
        "facts": facts,
        "evaluation": evaluation,
        "baseline_instruments": domain::assessment::baseline_instruments(pp)
            .iter().map(|(i, why)| json!({"instrument": i, "why": why})).collect::<Vec<_>>(),
        "suggested_modality": pp.map(|p| {
            let (m, why) = domain::assessment::suggest_modality(p);
            json!({"modality": m, "why": why})
        }),
    }))
    .into_response())
}

async fn record_part(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path((id, part)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let version = match part.as_str() {
        "patient" => {
            let p: PatientPart = typed(Value::Object(body))?;
            uc::record_patient_part(&state, &c, pid, p, "api").await?
        }
        "clinical" => {
            let p: ClinicalPart = typed(Value::Object(body))?;
            uc::record_clinical_part(&state, &c, pid, p, "api").await?
        }
        _ => return Err(Error::bad("the part must be patient or clinical", Some("part")).into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({ "part": part, "version": version })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    purpose: String,
    #[serde(default)]
    route: Option<String>,
    #[serde(default = "default_hours")]
    valid_hours: i64,
}

fn default_hours() -> i64 {
    72
}

async fn send_link(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let b: LinkBody = typed(Value::Object(body))?;
    let (link, token) = uc::send_link(
        &state,
        &c,
        pid,
        &b.purpose,
        b.route.as_deref(),
        b.valid_hours,
    )
    .await?;
    let path = if link.purpose == "consent" {
        "consent"
    } else {
        "forms"
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "link": link,
            "token": token,
            "url": format!("{}/{path}/{token}", state.cfg.public_url.trim_end_matches('/')),
        })),
    )
        .into_response())
}

async fn consents(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let (p, list) = uc::consents(&state, &c, pid).await?;
    let states = uc::consent_states(&state, p.clinic_id, &list).await?;
    Ok(Json(json!({
        "routes": states.iter().map(|(r, s, _)| json!({
            "route": r, "valid": s.is_valid(), "status": s, "reason": s.reason(),
        })).collect::<Vec<_>>(),
        "consents": list,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    route: String,
    typed_name: String,
    agree: bool,
    document_hash: String,
}

async fn sign(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let b: SignBody = typed(Value::Object(body))?;
    let input = SignInput {
        typed_name: b.typed_name,
        agree: b.agree,
        document_hash: b.document_hash,
    };
    let cid = uc::sign_in_clinic(&state, &c, pid, &b.route, input).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": cid }))).into_response())
}

async fn pdf(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let bytes = uc::pdf(&state, &c, pid, &cid).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"consent.pdf\"".to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn witness(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    uc::witness(&state, &c, pid, &cid).await?;
    Ok(Json(json!({ "id": cid, "witnessed": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    reason: String,
}

async fn withdraw(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path((id, cid)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let b: WithdrawBody = typed(Value::Object(body))?;
    uc::withdraw(&state, &c, pid, &cid, &b.reason).await?;
    Ok(Json(json!({ "id": cid, "withdrawn": true })).into_response())
}

async fn plans(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let list = uc::plans(&state, &c, pid).await?;
    let plans: Vec<Value> = list
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            v["targets"] = stored("plan targets", &p.targets)?;
            Ok(v)
        })
        .collect::<Result<_, Error>>()?;
    Ok(Json(json!({ "current": plans.first(), "plans": plans })).into_response())
}

async fn create_plan(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let input: PlanInput = typed(Value::Object(body))?;
    let (version, plan) = uc::create_plan(&state, &c, pid, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "version": version, "plan": plan })),
    )
        .into_response())
}

async fn status(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pid: PatientId = api_id(&id)?;
    let s = uc::status(&state, &c, pid).await?;
    Ok(Json(json!({
        "banner": s.banner,
        "eligibility": s.eligibility,
        "consents": s.consents.iter().map(|(r, st, _)| json!({"route": r, "status": st, "valid": st.is_valid()})).collect::<Vec<_>>(),
        "plan_version": s.plan().map(|p| p.version),
    }))
    .into_response())
}

async fn documents(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let clinic: ClinicId = api_id(&id)?;
    let docs = uc::documents(&state, &c, clinic).await?;
    Ok(Json(json!({ "documents": docs })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    route: String,
    body: String,
    #[serde(default)]
    witness_required: bool,
}

async fn publish(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let clinic: ClinicId = api_id(&id)?;
    let b: PublishBody = typed(Value::Object(body))?;
    let (version, doc) =
        uc::publish(&state, &c, clinic, &b.route, &b.body, b.witness_required).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "version": version, "title": doc.title, "sha256": doc.hash() })),
    )
        .into_response())
}
