//! The JSON plumbing every journey's API shares: bodies read strictly (an
//! unknown field, a wrong type or malformed JSON is refused with a problem
//! document naming the field, before anything is written), query
//! parameters checked against the names an endpoint knows, ids in paths.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::Response;
use clinic::records::patients::PatientRecord;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Error};
use crate::AppState;

/// What an API handler answers.
pub(crate) type ApiResult = Result<Response, ApiError>;

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

/// A request's query string read into `T`; a bad one answers 400 naming it.
pub(crate) fn query<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or("")).map_err(|e| {
        ApiError(Error::bad(
            format!("the query string has a bad parameter: {e}"),
            None,
        ))
    })
}

/// Parses a JSON value into `T`, naming the field at fault.
pub(crate) fn typed<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
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

pub(crate) fn patient_json(p: &PatientRecord) -> Value {
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

pub(crate) fn api_id<T: std::str::FromStr>(s: &str) -> Result<T, Error> {
    s.parse()
        .map_err(|_| Error::bad("id is not a valid identifier (a UUID)", Some("id")))
}

/// Query parameters, checked against the names an endpoint knows.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(req: &Request, known: &[&str]) -> Result<Params, Error> {
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
    pub(crate) fn get(&self, k: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
    pub(crate) fn int(
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
