//! The JSON API under `/api/v1`, described by `/api/openapi.json`. Bodies are
//! parsed strictly: unknown fields, wrong types and malformed JSON are refused
//! with a problem document that names the field, before anything is written.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clinic::records::patients::PatientRecord;
use domain::audit::Action;
use domain::auth::{Permission, Principal};
use domain::ids::{ClinicId, PatientId};
use domain::patients::PatientInput;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::auth::ApiCaller;
use crate::error::{ApiError, Error};
use crate::AppState;
use clinic::patients;

mod billing;
mod eligibility;
mod measures;
mod pretreatment;
mod scheduling;
mod substances;
mod treatment;
pub(crate) use scheduling::parse_start;

type ApiResult = Result<Response, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/patients", get(search).post(create))
        .route("/patients/{id}", get(read).patch(update))
        .route("/audit-events", get(audit_events))
        .merge(scheduling::routes())
        .merge(measures::routes())
        .merge(eligibility::routes())
        .merge(pretreatment::routes())
        .merge(treatment::routes())
        .merge(substances::routes())
        .merge(billing::routes())
        .fallback(|| async { ApiError(Error::NotFound) })
}

static OPENAPI: &str = include_str!("../openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A JSON object body, read and checked for shape before any typed parsing.
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError(Error::UnsupportedMediaType));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError(Error::PayloadTooLarge)
                } else {
                    ApiError(Error::bad("the body could not be read", None))
                }
            })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(JsonObject(m)),
            Ok(_) => Err(ApiError(Error::bad("the body must be a JSON object", None))),
            Err(e) => Err(ApiError(Error::bad(format!("malformed JSON: {e}"), None))),
        }
    }
}

/// Parses a JSON value into `T`, naming the field at fault.
/// A request's query string read into `T`; a bad one answers 400 naming it.
fn query<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or("")).map_err(|e| {
        ApiError(Error::bad(
            format!("the query string has a bad parameter: {e}"),
            None,
        ))
    })
}

fn typed<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // "unknown field `x`, expected one of ..." names the field itself.
        let field = if let Some(rest) = inner.strip_prefix("unknown field `") {
            rest.split('`').next().unwrap_or("").to_string()
        } else {
            path
        };
        let message = if inner.starts_with("unknown field") {
            "is not a known field".to_string()
        } else {
            inner.split(" at line").next().unwrap_or(&inner).to_string()
        };
        Error::BadRequest {
            detail: format!("{field}: {message}"),
            field: Some(field),
        }
    })
}

fn patient_json(p: &PatientRecord) -> Value {
    let d = &p.details;
    json!({
        "id": p.id,
        "clinic_id": p.clinic_id,
        "mrn": p.mrn,
        "given_name": d.given_name,
        "family_name": d.family_name,
        "preferred_name": d.preferred_name,
        "date_of_birth": d.date_of_birth.to_string(),
        "sex_at_birth": d.sex_at_birth,
        "pronouns": d.pronouns,
        "phone": d.phone,
        "email": d.email,
        "address_line1": d.address_line1,
        "address_line2": d.address_line2,
        "city": d.city,
        "region": d.region,
        "postal_code": d.postal_code,
        "emergency_contact_name": d.emergency_contact_name,
        "emergency_contact_phone": d.emergency_contact_phone,
        "emergency_contact_relation": d.emergency_contact_relation,
        "escort_name": d.escort_name,
        "escort_phone": d.escort_phone,
        "created_at": domain::time::to_timestamp(p.created_at).to_string(),
        "updated_at": domain::time::to_timestamp(p.updated_at).to_string(),
    })
}

fn api_id<T: std::str::FromStr>(s: &str) -> Result<T, Error> {
    s.parse()
        .map_err(|_| Error::bad("id is not a valid identifier (a UUID)", Some("id")))
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

/// Query parameters, checked against the names an endpoint knows.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(req: &Request, known: &[&str]) -> Result<Params, Error> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
                .map_err(|_| Error::bad("the query string could not be read", None))?;
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(Error::bad(
                format!("{k} is not a known parameter; known: {}", known.join(", ")),
                Some(k),
            ));
        }
        Ok(Params(pairs))
    }
    fn get(&self, k: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
    fn int(
        &self,
        k: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, Error> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(Error::bad(
                    format!(
                        "{k} must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                    Some(k),
                )),
            },
        }
    }
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

async fn audit_events(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: Request,
) -> ApiResult {
    c.require_any(Permission::AuditRead)?;
    let p = Params::parse(
        &req,
        &[
            "patient_id",
            "user_id",
            "action",
            "from",
            "to",
            "before",
            "limit",
        ],
    )?;
    let mut errs = domain::error::Errors::new();
    let patient = p.get("patient_id").and_then(|pid| {
        errs.check(
            pid.parse::<PatientId>()
                .map_err(|_| domain::FieldError::new("patient_id", "is not a valid identifier")),
        )
    });
    let user = p.get("user_id").and_then(|uid| {
        errs.check(
            uid.parse::<domain::ids::UserId>()
                .map_err(|_| domain::FieldError::new("user_id", "is not a valid identifier")),
        )
    });
    let action = p.get("action").and_then(|a| {
        let parsed = Action::parse(&a);
        if parsed.is_none() {
            errs.add("action", "is not a known action");
        }
        parsed
    });
    let from = errs
        .check(parse_instant(p.get("from").as_deref(), "from"))
        .flatten();
    let to = errs
        .check(parse_instant(p.get("to").as_deref(), "to"))
        .flatten();
    let limit = match p.int("limit", 1..=1000, 100) {
        Ok(n) => n,
        Err(_) => {
            errs.add("limit", "must be a whole number from 1 to 1000");
            100
        }
    };
    let before = match p.int("before", 1..=i64::MAX, i64::MAX) {
        Ok(n) => (n != i64::MAX).then_some(n),
        Err(_) => {
            errs.add("before", "must be a positive whole number");
            None
        }
    };
    errs.into_result().map_err(Error::from)?;
    let query = clinic::audit_log::Query {
        patient,
        user,
        action,
        from,
        to,
        before,
        limit,
        nothing: false,
    };
    let events = clinic::audit_log::list(&state, &c, &query, false, "via API")
        .await?
        .events;
    let items: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "id": e.id, "at": domain::time::to_timestamp(e.at).to_string(),
                "actor_user_id": e.actor_user_id, "actor": e.actor_label, "role": e.actor_role,
                "clinic_id": e.clinic_id, "patient_id": e.patient_id, "action": e.action,
                "object_type": e.object_type, "object_id": e.object_id, "outcome": e.outcome,
                "source_ip": e.source_ip, "request_id": e.request_id, "detail": e.detail, "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(json!({ "events": items })).into_response())
}

/// An RFC 3339 instant or a YYYY-MM-DD date (start of day, UTC), in micros.
fn parse_instant(s: Option<&str>, field: &str) -> Result<Option<i64>, domain::FieldError> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(Some(ts.as_microsecond()));
    }
    crate::pages::day_start(s, field)?
        .map(Some)
        .ok_or_else(|| domain::FieldError::new(field, "must be a date or RFC 3339 time"))
}
