//! `/api/v1` scheduling: appointment types, resources, availability,
//! appointments and series.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clinic::records::scheduling::Appointment;
use domain::auth::Permission;
use domain::ids::{AppointmentId, ClinicId, PatientId, ResourceId, UserId};
use domain::scheduling::{
    Capabilities, CourseKind, CourseSpec, Preferences, SeriesPlan, VisitPlan,
};
use domain::FieldError;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::error::Error;
use crate::json::{api_id, typed, ApiResult, JsonObject, Params};
use crate::AppState;
use clinic::scheduling::{self as uc, SeriesOutcome};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/appointment-types", get(types))
        .route("/resources", get(resources).post(create_resource))
        .route("/availability", get(availability))
        .route("/appointments", get(list).post(book))
        .route("/appointments/{id}", get(read).patch(move_visit))
        .route("/appointments/{id}/cancel", post(cancel))
        .route("/appointments/{id}/no-show", post(no_show))
        .route("/series", post(series))
        .route("/waitlist", get(waitlist).post(add_waitlist))
        .route("/waitlist/{id}/book", post(book_waitlist))
        .route("/calendar-feeds", post(create_feed))
        .route("/calendar-feeds/{id}", axum::routing::delete(revoke_feed))
}

fn field(f: &str, m: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError::new(f, m)])
}

fn iso(m: i64) -> String {
    domain::time::to_timestamp(m).to_string()
}

fn plan_json(p: &VisitPlan) -> Value {
    json!({
        "type": p.type_code,
        "starts_at": iso(p.start),
        "ends_at": iso(p.end),
        "resource_id": p.resource(),
        "phases": p.phases.iter().map(|ph| json!({
            "kind": ph.kind,
            "starts_at": iso(ph.start),
            "ends_at": iso(ph.end),
            "resource_id": ph.resource,
            "staff": ph.staff.iter().map(|a| json!({"role": a.role, "user_id": a.user, "shared": a.shared})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

pub fn appointment_json(a: &Appointment) -> Value {
    json!({
        "id": a.id,
        "clinic_id": a.clinic_id,
        "patient_id": a.patient_id,
        "type": a.type_code,
        "type_name": a.type_name,
        "status": a.status,
        "starts_at": iso(a.starts_at),
        "ends_at": iso(a.ends_at),
        "resource_id": a.resource_id,
        "series_id": a.series_id,
        "series_index": a.series_index,
        "series_role": a.series_role,
        "sequence": a.sequence,
        "cancel_reason": a.cancel_reason,
        "late_cancel": a.late_cancel,
        "phases": plan_json(&a.plan)["phases"],
        "updated_at": iso(a.updated_at),
    })
}

fn series_json(p: &SeriesPlan) -> Value {
    json!({
        "completes_at": iso(p.completes_at()),
        "steps": p.steps.iter().enumerate().map(|(i, s)| json!({
            "index": i + 1,
            "dose": plan_json(&s.dose),
            "integration": s.integration.as_ref().map(plan_json),
        })).collect::<Vec<_>>(),
    })
}

fn clinic_param(v: Option<String>) -> Result<ClinicId, Error> {
    v.ok_or_else(|| field("clinic_id", "is required"))?
        .parse()
        .map_err(|_| field("clinic_id", "is not a valid identifier"))
}

fn date_param(v: Option<String>, name: &str) -> Result<Option<Date>, Error> {
    v.map(|s| {
        s.parse::<Date>()
            .map_err(|_| field(name, "must be a date, YYYY-MM-DD"))
    })
    .transpose()
}

/// A start time: RFC 3339 with offset, or a local "YYYY-MM-DDTHH:MM" in
/// `time_zone` (the clinic's zone when absent).
pub fn parse_start(
    s: &str,
    zone: Option<&str>,
    clinic_tz: &jiff::tz::TimeZone,
) -> Result<i64, Error> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_microsecond());
    }
    let tz = match zone {
        Some(z) => domain::clinics::check_time_zone(z).map_err(|e| Error::Invalid(vec![e]))?,
        None => clinic_tz.clone(),
    };
    let dt: jiff::civil::DateTime = s.parse().map_err(|_| {
        field(
            "starts_at",
            "must be a time such as 2026-12-01T09:00:00-07:00 or 2026-12-01T09:00 (clinic time)",
        )
    })?;
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .map(|z| z.timestamp().as_microsecond())
        .map_err(|_| field("starts_at", "does not exist in the clinic's time zone"))
}

async fn types(State(state): State<AppState>, ApiCaller(c): ApiCaller, req: Request) -> ApiResult {
    let p = Params::parse(&req, &["clinic_id"])?;
    let clinic = clinic_param(p.get("clinic_id"))?;
    c.require(Permission::ScheduleRead, clinic)?;
    let t = clinic::scheduling::appointment_types(&state, clinic).await?;
    Ok(Json(json!({ "appointment_types": t.iter().map(|t| json!({
        "code": t.code, "name": t.name, "minutes": t.total_minutes(), "phases": t.phases,
        "buffer_after_min": t.buffer_after_min, "instructions": t.instructions, "dose": t.dose,
        "public": t.public, "portal": t.portal,
    })).collect::<Vec<_>>() }))
    .into_response())
}

async fn resources(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: Request,
) -> ApiResult {
    let p = Params::parse(&req, &["clinic_id"])?;
    let clinic = clinic_param(p.get("clinic_id"))?;
    c.require(Permission::ScheduleRead, clinic)?;
    let r = clinic::scheduling::resources(&state, clinic).await?;
    Ok(Json(json!({ "resources": r.iter().map(|r| json!({
        "id": r.resource.id, "kind": r.resource.kind, "name": r.resource.name,
        "iv": r.resource.caps.iv, "monitored": r.resource.caps.monitored,
        "private": r.resource.caps.private, "active": r.active,
    })).collect::<Vec<_>>() }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewResource {
    clinic_id: ClinicId,
    kind: String,
    name: String,
    #[serde(default)]
    iv: bool,
    #[serde(default)]
    monitored: bool,
    #[serde(default)]
    private: bool,
}

async fn create_resource(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let r: NewResource = typed(Value::Object(body))?;
    let caps = Capabilities {
        iv: r.iv,
        monitored: r.monitored,
        private: r.private,
    };
    let (id, kind, name) =
        clinic::scheduling::settings::add_resource(&state, &c, r.clinic_id, &r.kind, &r.name, caps)
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "kind": kind, "name": name})),
    )
        .into_response())
}

fn prefs_from(p: &Params) -> Result<Preferences, Error> {
    let mut prefs = Preferences::default();
    if let Some(w) = p.get("weekdays") {
        for d in w.split(',') {
            match d.trim().parse::<i16>() {
                Ok(n) if (1..=7).contains(&n) => prefs.weekdays.push(n),
                _ => {
                    return Err(field(
                        "weekdays",
                        "must be ISO weekday numbers 1-7, comma-separated",
                    ))
                }
            }
        }
    }
    let hm = |k: &str| -> Result<Option<i32>, Error> {
        p.get(k)
            .map(|v| domain::clinics::parse_hhmm(&v).ok_or_else(|| field(k, "must be HH:MM")))
            .transpose()
    };
    prefs.earliest_min = hm("earliest")?;
    prefs.latest_min = hm("latest")?;
    if let Some(s) = p.get("staff_id") {
        prefs.staff.push(
            s.parse::<UserId>()
                .map_err(|_| field("staff_id", "is not a valid identifier"))?,
        );
        prefs.only_these_staff = true;
    }
    Ok(prefs)
}

async fn availability(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: Request,
) -> ApiResult {
    let p = Params::parse(
        &req,
        &[
            "clinic_id",
            "type",
            "from",
            "to",
            "patient_id",
            "resource_id",
            "staff_id",
            "weekdays",
            "earliest",
            "latest",
            "limit",
        ],
    )?;
    let clinic = clinic_param(p.get("clinic_id"))?;
    let type_code = p.get("type").ok_or_else(|| field("type", "is required"))?;
    let from = date_param(p.get("from"), "from")?.ok_or_else(|| field("from", "is required"))?;
    let to = date_param(p.get("to"), "to")?.unwrap_or(from);
    let patient = p
        .get("patient_id")
        .map(|s| {
            s.parse::<PatientId>()
                .map_err(|_| field("patient_id", "is not a valid identifier"))
        })
        .transpose()?;
    let resource = p
        .get("resource_id")
        .map(|s| {
            s.parse::<ResourceId>()
                .map_err(|_| field("resource_id", "is not a valid identifier"))
        })
        .transpose()?;
    let prefs = prefs_from(&p)?;
    let limit = p.int("limit", 1..=500, 50)? as usize;
    let a = uc::availability(
        &state, &c, clinic, patient, &type_code, from, to, &prefs, resource, limit,
    )
    .await?;
    Ok(Json(json!({
        "slots": a.slots.iter().map(plan_json).collect::<Vec<_>>(),
        "blocked_by": a.tally.main().iter().map(|b| b.describe()).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAppointment {
    clinic_id: ClinicId,
    patient_id: PatientId,
    #[serde(rename = "type")]
    type_code: String,
    starts_at: String,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    resource_id: Option<ResourceId>,
    #[serde(default)]
    staff_id: Option<UserId>,
}

async fn book(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: NewAppointment = typed(Value::Object(body))?;
    c.require(Permission::ScheduleBook, b.clinic_id)?;
    let tz = uc::clinic_tz(&state, b.clinic_id).await?;
    let start = parse_start(&b.starts_at, b.time_zone.as_deref(), &tz)?;
    let prefs = Preferences {
        staff: b.staff_id.into_iter().collect(),
        only_these_staff: b.staff_id.is_some(),
        ..Default::default()
    };
    let a = uc::book(
        &state,
        &c,
        b.clinic_id,
        b.patient_id,
        &b.type_code,
        start,
        &prefs,
        b.resource_id,
    )
    .await?;
    let mut resp = (StatusCode::CREATED, Json(appointment_json(&a))).into_response();
    if let Ok(v) = format!("/api/v1/appointments/{}", a.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn list(State(state): State<AppState>, ApiCaller(c): ApiCaller, req: Request) -> ApiResult {
    let p = Params::parse(&req, &["clinic_id", "date", "patient_id"])?;
    let appts = if let Some(pid) = p.get("patient_id") {
        let pid: PatientId = pid
            .parse()
            .map_err(|_| field("patient_id", "is not a valid identifier"))?;
        uc::patient_visits(&state, &c, pid).await?
    } else {
        let clinic = clinic_param(p.get("clinic_id"))?;
        let date = date_param(p.get("date"), "date")?
            .ok_or_else(|| field("date", "is required with clinic_id"))?;
        uc::day(&state, &c, clinic, date).await?
    };
    Ok(
        Json(json!({ "appointments": appts.iter().map(appointment_json).collect::<Vec<_>>() }))
            .into_response(),
    )
}

async fn read(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let id: AppointmentId = api_id(&id)?;
    let a = uc::read(&state, &c, id).await?;
    Ok(Json(appointment_json(&a)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    starts_at: String,
    #[serde(default)]
    time_zone: Option<String>,
}

async fn move_visit(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let id: AppointmentId = api_id(&id)?;
    let b: MoveBody = typed(Value::Object(body))?;
    let a = uc::to_change(&state, &c, id).await?;
    let tz = uc::clinic_tz(&state, a.clinic_id).await?;
    let start = parse_start(&b.starts_at, b.time_zone.as_deref(), &tz)?;
    let a = uc::move_to(&state, &c, id, start, &Preferences::default()).await?;
    Ok(Json(appointment_json(&a)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: String,
}

async fn cancel(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let id: AppointmentId = api_id(&id)?;
    let b: CancelBody = typed(Value::Object(body))?;
    let a = uc::cancel(&state, &c, id, &b.reason).await?;
    Ok(Json(appointment_json(&a)).into_response())
}

async fn no_show(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let id: AppointmentId = api_id(&id)?;
    let a = uc::no_show(&state, &c, id).await?;
    Ok(Json(appointment_json(&a)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesBody {
    clinic_id: ClinicId,
    patient_id: PatientId,
    course: String,
    dose_type: String,
    from: String,
    #[serde(default)]
    first_by: Option<String>,
    #[serde(default)]
    doses: Option<u16>,
    #[serde(default)]
    months: Option<u16>,
    #[serde(default)]
    within_days: Option<u16>,
    #[serde(default)]
    max_per_week: Option<u8>,
    #[serde(default)]
    integration_type: Option<Option<String>>,
    #[serde(default)]
    dry_run: bool,
}

async fn series(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: SeriesBody = typed(Value::Object(body))?;
    let kind = CourseKind::parse(&b.course).map_err(|e| Error::Invalid(vec![e]))?;
    if b.months.is_some_and(|m| m == 0 || m > 12) {
        return Err(field(
            "months",
            "a series may span at most 12 months; book a longer course as several series",
        )
        .into());
    }
    let mut spec = CourseSpec::preset(kind, &b.dose_type, b.doses, b.months);
    if let Some(w) = b.within_days {
        spec.within_days = w;
    }
    if let Some(m) = b.max_per_week {
        spec.max_per_week = m;
    }
    if let Some(i) = b.integration_type {
        spec.integration_type = i;
    }
    let from = date_param(Some(b.from), "from")?.unwrap_or(Date::constant(2000, 1, 1));
    let first_by = match date_param(b.first_by, "first_by")? {
        Some(d) => d,
        None => from.checked_add(jiff::Span::new().days(14)).unwrap_or(from),
    };
    let warnings = uc::series_warnings(&state, &c, b.clinic_id, b.patient_id).await?;
    match uc::series(
        &state,
        &c,
        b.clinic_id,
        b.patient_id,
        &spec,
        from,
        first_by,
        &Preferences::default(),
        b.dry_run,
    )
    .await?
    {
        SeriesOutcome::Booked(id, plan) => {
            let mut v = series_json(&plan);
            v["warnings"] = json!(warnings);
            v["id"] = json!(id);
            v["appointments"] = json!(uc::series_visits(&state, &c, id)
                .await?
                .iter()
                .map(appointment_json)
                .collect::<Vec<_>>());
            Ok((StatusCode::CREATED, Json(v)).into_response())
        }
        SeriesOutcome::Proposed(plan) => {
            let mut v = series_json(&plan);
            v["warnings"] = json!(warnings);
            Ok(Json(v).into_response())
        }
        SeriesOutcome::Blocked(b) => Ok(problem_blocked(&b)),
    }
}

fn problem_blocked(b: &domain::scheduling::SeriesBlocked) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": "The series does not fit",
        "status": 409,
        "detail": b.message,
        "placed": b.placed,
        "wanted": b.wanted,
        "blocked_by": b.blockers.iter().map(|x| x.describe()).collect::<Vec<_>>(),
        "suggestion": b.suggestion,
        "request_id": crate::ctx::current_request_id(),
    });
    (
        StatusCode::CONFLICT,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedBody {
    clinic_id: ClinicId,
    #[serde(default)]
    staff_id: Option<UserId>,
    #[serde(default)]
    resource_id: Option<ResourceId>,
}

async fn create_feed(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: FeedBody = typed(Value::Object(body))?;
    let (url, id) =
        clinic::feeds::create(&state, &c, b.clinic_id, b.staff_id, b.resource_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "url": url}))).into_response())
}

async fn revoke_feed(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let id: domain::ids::FeedId = api_id(&id)?;
    clinic::feeds::revoke(&state, &c, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitBody {
    clinic_id: ClinicId,
    patient_id: PatientId,
    #[serde(rename = "type")]
    type_code: String,
    from: String,
    to: String,
    #[serde(default)]
    note: Option<String>,
}

async fn add_waitlist(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: WaitBody = typed(Value::Object(body))?;
    let from = date_param(Some(b.from), "from")?.unwrap_or(Date::constant(2000, 1, 1));
    let to = date_param(Some(b.to), "to")?.unwrap_or(from);
    let id = uc::add_to_waitlist(
        &state,
        &c,
        b.clinic_id,
        b.patient_id,
        &b.type_code,
        from,
        to,
        b.note.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "status": "waiting"})),
    )
        .into_response())
}

async fn waitlist(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: Request,
) -> ApiResult {
    let p = Params::parse(&req, &["clinic_id"])?;
    let clinic = clinic_param(p.get("clinic_id"))?;
    let list = clinic::scheduling::waitlist(&state, &c, clinic, "waitlist").await?;
    Ok(Json(json!({"waitlist": list.iter().map(|w| json!({
        "id": w.id, "patient_id": w.patient_id, "type": w.type_code, "from": w.from_date.to_string(),
        "to": w.to_date.to_string(), "note": w.note, "status": w.status,
        "offered_start": w.offered_start.map(iso),
    })).collect::<Vec<_>>()}))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitBook {
    clinic_id: ClinicId,
}

async fn book_waitlist(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: WaitBook = typed(Value::Object(body))?;
    let a = uc::book_offer(&state, &c, b.clinic_id, &id).await?;
    Ok((StatusCode::CREATED, Json(appointment_json(&a))).into_response())
}
