//! `/api/v1/cs/...`: the Schedule III record for systems: products, lots
//! with their balances, the ledger (read, report as CSV, and movements),
//! blind counts, inventories and loss or theft cases.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::substances::{fmt_mg, fmt_ml, loss_clock};
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::error::{stored, stored_opt, ApiError, Error};
use crate::json::{query, typed, ApiResult, JsonObject};
use crate::AppState;
use clinic::substances as uc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cs/products", get(products).post(add_product))
        .route("/cs/lots", get(lots))
        .route("/cs/ledger", get(ledger).post(movement))
        .route("/cs/draws", get(open_draws))
        .route("/cs/reconciliation", get(reconciliation))
        .route("/cs/form41", get(form41))
        .route("/cs/counts", get(counts).post(count))
        .route("/cs/inventories", get(inventories).post(inventory))
        .route("/cs/inventories/{id}/pdf", get(inventory_pdf))
        .route("/cs/cases", get(cases).post(open_case))
        .route("/cs/cases/{id}/resolve", post(resolve))
        .route("/cs/cases/{id}/filing", post(filing))
        .route("/cs/registrations", post(registration))
        .route("/cs/storage", post(storage))
}

fn amount(ul: i64, strength: i64) -> Value {
    json!({"ul": ul, "ml": fmt_ml(ul), "mg": fmt_mg(ul, strength)})
}

async fn products(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    let list = uc::products(&state, &c).await?;
    Ok(
        Json(json!({"products": list.iter().map(product_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

fn product_json(p: &clinic::records::substances::Product) -> Value {
    json!({
        "id": p.id, "name": p.name, "ndc": p.ndc, "form": p.form,
        "strength_mg_per_ml": p.strength_mg_per_ml, "container": fmt_ml(p.container_ul), "container_ul": p.container_ul,
    })
}

async fn add_product(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::ProductInput = typed(Value::Object(body))?;
    let p = uc::add_product(&state, &c, input).await?;
    Ok((StatusCode::CREATED, Json(product_json(&p))).into_response())
}

async fn lots(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    uc::refuse_while_counting(&state, &c, None).await?;
    let (lots, balances) = uc::lots(&state, &c).await?;
    let out: Vec<Value> = lots
        .iter()
        .map(|l| {
            let here: Vec<Value> = balances
                .iter()
                .filter(|b| b.lot_id == l.id)
                .map(|b| json!({"clinic_id": b.clinic_id, "balance": amount(b.balance_ul, b.strength_mg_per_ml), "storage": b.storage}))
                .collect();
            json!({
                "id": l.id, "product_id": l.product_id, "product": l.product_name, "ndc": l.ndc,
                "lot_number": l.lot_number, "expires_on": l.expires_on,
                "strength_mg_per_ml": l.strength_mg_per_ml, "container_ul": l.container_ul, "balances": here,
            })
        })
        .collect();
    Ok(Json(json!({"lots": out})).into_response())
}

fn entry_json(r: &clinic::records::substances::LedgerRow) -> Result<Value, Error> {
    Ok(json!({
        "seq": r.seq, "id": r.id, "at": domain::time::to_timestamp(r.at).to_string(), "clinic_id": r.clinic_id,
        "kind": r.kind, "lot_id": r.lot_id, "lot_number": r.lot_number, "product": r.product_name, "ndc": r.ndc,
        "quantity": amount(r.quantity_ul, r.strength_mg_per_ml), "change_ul": r.change_ul,
        "balance_after": amount(r.balance_after_ul, r.strength_mg_per_ml),
        "draw_id": r.draw_id, "dose_order_id": r.dose_order_id, "patient_id": r.patient_id,
        "patient_name": r.patient_name, "by": r.actor, "witness": r.witness, "witness2": r.witness2,
        "counterparty": stored_opt::<Value>("ledger counterparty", r.counterparty.as_deref())?,
        "reason": r.reason, "reference_id": r.reference_id,
    }))
}

/// The period's on-site destructions as the record DEA Form 41 asks for (PDF).
async fn form41(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: uc::LedgerQuery = query(&req)?;
    let pdf = uc::form41_pdf(&state, &c, &q).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// A location's stock over a period, lot by lot (JSON, or `format=csv`).
async fn reconciliation(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: uc::ReconQuery = query(&req)?;
    uc::refuse_while_counting(&state, &c, Some(&q.clinic_id)).await?;
    let v = uc::reconciliation(&state, &c, &q).await?;
    if q.format == "csv" {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"reconciliation.csv\"",
                ),
            ],
            uc::reconciliation_csv(&v)?,
        )
            .into_response());
    }
    Ok(Json(json!({
        "clinic_id": v.location.id.to_string(),
        "from": v.from.to_string(),
        "to": v.to.to_string(),
        "matches_stock": v.matches_stock,
        "lots": v.lots.iter().map(|l| {
            let mut o = json!(l.r);
            o["lot_number"] = json!(l.lot.as_ref().map(|x| x.lot_number.clone()));
            o["product"] = json!(l.lot.as_ref().map(|x| x.product_name.clone()));
            o["ndc"] = json!(l.lot.as_ref().map(|x| x.ndc.clone()));
            o["balances"] = json!(l.r.balances());
            o
        }).collect::<Vec<_>>(),
        "counts": v.counts.iter().map(|(k, lines)| json!({
            "id": k.id, "counted_at": domain::time::to_timestamp(k.counted_at).to_string(), "by": k.counted_by,
            "lines": lines.iter().map(|l| json!({"lot_id": l.lot_id, "lot_number": l.lot_number,
                "expected_ul": l.expected_ul, "counted_ul": l.counted_ul,
                "difference_ul": l.counted_ul - l.expected_ul})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn ledger(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: uc::LedgerQuery = query(&req)?;
    uc::refuse_while_counting(&state, &c, Some(&q.clinic_id)).await?;
    let csv = match q.format.as_str() {
        "" | "json" => false,
        "csv" => true,
        _ => {
            return Err(ApiError(Error::bad(
                "format must be json or csv",
                Some("format"),
            )))
        }
    };
    if csv {
        let body = uc::dispensing_log_csv(&state, &c, &q).await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"dispensing-log.csv\"",
                ),
            ],
            body,
        )
            .into_response());
    }
    let v = uc::ledger(&state, &c, &q, false).await.map_err(ApiError)?;
    Ok(Json(json!({
        "clinic_id": v.location.id.to_string(),
        "entries": v.rows.iter().map(entry_json).collect::<Result<Vec<_>, _>>()?,
    }))
    .into_response())
}

async fn movement(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::MovementInput = typed(Value::Object(body))?;
    let entries = uc::record_movement(&state, &c, input).await?;
    let out: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "id": e.id, "kind": e.kind, "clinic_id": e.clinic_id, "lot_id": e.lot_id,
                "quantity_ul": e.quantity_ul, "change_ul": e.change_ul, "balance_after_ul": e.balance_after_ul,
                "draw_id": e.draw_id, "dose_order_id": e.dose_order_id, "hash": e.hash,
            })
        })
        .collect();
    Ok((StatusCode::CREATED, Json(json!({"entries": out}))).into_response())
}

async fn open_draws(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    uc::refuse_while_counting(&state, &c, None).await?;
    let (open_draws, alerts) = uc::draws_and_alerts(&state, &c).await?;
    let draws: Vec<Value> = open_draws
        .iter()
        .map(|d| {
            json!({
                "id": d.id, "clinic_id": d.clinic_id, "lot_id": d.lot_id, "lot_number": d.lot_number,
                "dose_order_id": d.dose_order_id, "encounter_id": d.encounter_id, "patient_id": d.patient_id,
                "drawn": amount(d.drawn_ul, d.strength_mg_per_ml),
                "administered": amount(d.administered_ul, d.strength_mg_per_ml),
                "wasted": amount(d.wasted_ul, d.strength_mg_per_ml),
                "remaining": amount(d.remaining_ul(), d.strength_mg_per_ml),
                "drawn_by": d.drawn_by, "drawn_at": domain::time::to_timestamp(d.drawn_at).to_string(),
            })
        })
        .collect();
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| json!({"clinic_id": a.clinic_id, "level": a.level, "text": a.text}))
        .collect();
    Ok(Json(json!({"draws": draws, "alerts": alerts})).into_response())
}

fn count_json(
    k: &clinic::records::substances::Count,
    lines: &[clinic::records::substances::CountLine],
    cases: &[String],
) -> Value {
    json!({
        "id": k.id, "clinic_id": k.clinic_id, "counted_at": domain::time::to_timestamp(k.counted_at).to_string(),
        "counted_by": k.counted_by, "note": k.note,
        "lines": lines.iter().map(|l| json!({
            "lot_id": l.lot_id, "lot_number": l.lot_number, "product": l.product_name,
            "expected": amount(l.expected_ul, l.strength_mg_per_ml),
            "counted": amount(l.counted_ul, l.strength_mg_per_ml),
            "difference_ul": l.counted_ul - l.expected_ul,
        })).collect::<Vec<_>>(),
        "cases_opened": cases,
    })
}

async fn counts(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    let list = uc::counts(&state, &c).await?;
    Ok(
        Json(
            json!({"counts": list.iter().map(|(k, l)| count_json(k, l, &[])).collect::<Vec<_>>()}),
        )
        .into_response(),
    )
}

async fn count(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::CountInput = typed(Value::Object(body))?;
    let o = uc::record_count(&state, &c, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(count_json(&o.count, &o.lines, &o.cases)),
    )
        .into_response())
}

fn inventory_json(i: &clinic::records::substances::Inventory) -> Result<Value, Error> {
    Ok(json!({
        "id": i.id, "clinic_id": i.clinic_id, "kind": i.kind, "taken_on": i.taken_on, "business": i.business,
        "taken_by": i.taken_by, "lines": stored::<Value>("inventory lines", &i.lines)?,
        "sha256": i.sha256, "pdf": format!("/api/v1/cs/inventories/{}/pdf", i.id),
    }))
}

async fn inventories(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    let list = uc::inventories(&state, &c, None).await?;
    Ok(Json(
        json!({"inventories": list.iter().map(inventory_json).collect::<Result<Vec<_>, _>>()?}),
    )
    .into_response())
}

async fn inventory(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::InventoryInput = typed(Value::Object(body))?;
    let i = uc::take_inventory(&state, &c, input).await?;
    Ok((StatusCode::CREATED, Json(inventory_json(&i)?)).into_response())
}

async fn inventory_pdf(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let pdf = uc::inventory_pdf(&state, &c, &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

pub(crate) fn case_json(k: &clinic::records::substances::Case) -> Result<Value, Error> {
    let clock = k.discovered_on.parse().ok().map(loss_clock);
    let strength = k.strength_mg_per_ml.unwrap_or(1);
    Ok(json!({
        "id": k.id, "clinic_id": k.clinic_id, "kind": k.kind, "status": k.status, "opened_by": k.opened_by,
        "discovered_on": k.discovered_on, "count_id": k.count_id, "lot_id": k.lot_id, "lot_number": k.lot_number,
        "difference": amount(k.difference_ul, strength), "description": k.description,
        "resolution": k.resolution, "resolution_note": k.resolution_note, "resolved_by": k.resolved_by,
        "dea_notice_due": (k.kind != "discrepancy").then(|| clock.map(|c| c.notify_by.to_string())).flatten(),
        "form106_due": (k.kind != "discrepancy").then(|| clock.map(|c| c.form106_by.to_string())).flatten(),
        "dea_notified_on": k.dea_notified_on, "form106_filed_on": k.form106_filed_on,
        "form106": stored_opt::<Value>("Form 106", k.form106.as_deref())?,
    }))
}

async fn cases(State(state): State<AppState>, ApiCaller(c): ApiCaller) -> ApiResult {
    let cases = uc::cases(&state, &c).await?;
    Ok(
        Json(json!({"cases": cases.iter().map(case_json).collect::<Result<Vec<_>, _>>()?}))
            .into_response(),
    )
}

async fn open_case(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::CaseInput = typed(Value::Object(body))?;
    let id = uc::open_case(&state, &c, input).await?;
    let k = uc::case(&state, &c, &id).await?;
    Ok((StatusCode::CREATED, Json(case_json(&k)?)).into_response())
}

async fn resolve(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::ResolveInput = typed(Value::Object(body))?;
    let k = uc::resolve_case(&state, &c, &id, input).await?;
    Ok(Json(case_json(&k)?).into_response())
}

async fn filing(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::FilingInput = typed(Value::Object(body))?;
    let k = uc::case_filing(&state, &c, &id, input).await?;
    Ok(Json(case_json(&k)?).into_response())
}

async fn registration(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let input: uc::RegistrationInput = typed(Value::Object(body))?;
    uc::set_registration(&state, &c, input).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageBody {
    clinic_id: String,
    name: String,
}

async fn storage(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let b: StorageBody = typed(Value::Object(body))?;
    let s = uc::add_storage(&state, &c, &b.clinic_id, &b.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": s.id, "clinic_id": s.clinic_id, "name": s.name})),
    )
        .into_response())
}
