//! The audit log over the API (the same use case as its page).

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::PatientId;
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::error::Error;
use crate::AppState;

use crate::json::{ApiResult, Params};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/audit-events", get(audit_events))
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
    crate::ui::day_start(s, field)?
        .map(Some)
        .ok_or_else(|| domain::FieldError::new(field, "must be a date or RFC 3339 time"))
}
