//! `/api/v1/prices`, `/offers`, `/packages`, `/invoices`, `/payments`,
//! `/superbills`, `/estimates`: cash-pay billing for systems. Money is
//! always `{"minor": 27500, "currency": "USD", "text": "$275.00"}`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::auth::Permission;
use domain::billing::fmt_money;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::ApiCaller;
use crate::error::{stored, Error};
use crate::json::{query, typed, ApiResult, JsonObject};
use crate::AppState;
use clinic::billing as uc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/prices", get(prices).post(set_prices))
        .route("/offers", get(offers).post(add_offer))
        .route("/packages", get(packages).post(sell_package))
        .route("/packages/products", post(add_product))
        .route("/packages/{id}/refund", post(refund_package))
        .route("/memberships", get(memberships).post(start_membership))
        .route("/memberships/{id}/cancel", post(cancel_membership))
        .route("/invoices", get(invoices).post(invoice_visit))
        .route("/invoices/{id}", get(invoice))
        .route("/invoices/{id}/refunds", post(refund))
        .route("/invoices/{id}/credits", post(credit))
        .route("/payments", get(payments).post(pay))
        .route("/superbills", get(superbill))
        .route("/estimates", get(estimates).post(estimate))
}

fn money(minor: i64, currency: &str) -> Value {
    json!({"minor": minor, "currency": currency, "text": fmt_money(minor, currency)})
}

#[derive(Deserialize, Default)]
struct ClinicQ {
    #[serde(default)]
    clinic_id: String,
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    date: String,
}

async fn prices(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    let p = uc::place(&state, &c, Permission::BillRead, &q.clinic_id).await?;
    let lists = uc::price_lists_of(&state, &p.id.to_string()).await?;
    let out: Vec<Value> = lists
        .iter()
        .map(|l| {
            let prices: serde_json::Map<String, Value> = l
                .prices
                .iter()
                .map(|(s, m)| (s.as_str().to_string(), money(*m, &l.currency)))
                .collect();
            json!({"effective_from": l.effective_from.to_string(), "currency": l.currency, "prices": prices})
        })
        .collect();
    Ok(Json(json!({"clinic_id": p.id.to_string(), "price_lists": out})).into_response())
}

async fn set_prices(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: uc::PricesInput = typed(Value::Object(body))?;
    uc::set_prices(&state, &c, i).await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn offers(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    let p = uc::place(&state, &c, Permission::BillRead, &q.clinic_id).await?;
    let list = uc::offers_of(&state, &p.id.to_string()).await?;
    let out: Vec<Value> = list
        .iter()
        .map(|o| {
            Ok(json!({
                "id": o.id, "name": o.name, "rules": stored::<Value>("offer rules", &o.rules)?,
                "valid_from": o.valid_from, "valid_to": o.valid_to, "new_patients_only": o.new_patients_only,
                "first_n": o.first_n, "stackable": o.stackable, "active": o.active,
            }))
        })
        .collect::<Result<_, Error>>()?;
    Ok(Json(json!({"offers": out})).into_response())
}

async fn add_offer(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: uc::OfferInput = typed(Value::Object(body))?;
    let id = uc::add_offer(&state, &c, i).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

fn package_json(k: &clinic::records::billing::Package) -> Value {
    json!({
        "id": k.id, "patient_id": k.patient_id, "name": k.name, "service": k.service, "sessions": k.sessions,
        "used": k.used, "left": k.left(), "price": money(k.price_minor, &k.currency), "invoice_id": k.invoice_id,
        "expires_on": k.expires_on, "refunded": k.refunded_at.is_some(),
    })
}

async fn packages(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    if q.patient_id.trim().is_empty() {
        let p = uc::place(&state, &c, Permission::BillRead, &q.clinic_id).await?;
        let products = uc::products_of(&state, &p.id.to_string()).await?;
        let out: Vec<Value> = products
            .iter()
            .map(|k| json!({"id": k.id, "name": k.name, "service": k.service, "sessions": k.sessions,
                "price": money(k.price_minor, &k.currency), "valid_days": k.valid_days, "active": k.active,
                "monthly": k.monthly}))
            .collect();
        return Ok(Json(json!({"products": out})).into_response());
    }
    let a = uc::account(&state, &c, &q.patient_id).await?;
    Ok(
        Json(json!({"packages": a.packages.iter().map(package_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SellInput {
    patient_id: String,
    product_id: String,
}

async fn sell_package(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: SellInput = typed(Value::Object(body))?;
    let id = uc::sell_package(&state, &c, &i.patient_id, &i.product_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"invoice_id": id}))).into_response())
}

async fn add_product(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: uc::PackageProductInput = typed(Value::Object(body))?;
    let id = uc::add_package_product(&state, &c, i).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonInput {
    reason: String,
}

async fn refund_package(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: ReasonInput = typed(Value::Object(body))?;
    let (minor, cur) = uc::refund_package(&state, &c, &id, &i.reason).await?;
    Ok(Json(json!({"refunded": money(minor, &cur)})).into_response())
}

fn membership_json(v: &uc::MembershipView) -> Value {
    let m = &v.membership;
    json!({
        "id": m.id, "clinic_id": m.clinic_id, "patient_id": m.patient_id, "product_id": m.product_id,
        "name": m.product_name, "service": m.service, "sessions_per_month": m.sessions,
        "price_per_month": money(m.price_minor, &m.currency), "started_on": m.started_on,
        "months_billed": m.periods, "status": m.status, "next_renewal": v.next_renewal,
        "cancelled_on": m.cancelled_on, "cancel_reason": m.cancel_reason,
    })
}

async fn memberships(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    if q.patient_id.trim().is_empty() {
        return Err(
            Error::Invalid(vec![domain::FieldError::new("patient_id", "is required")]).into(),
        );
    }
    let ms = uc::memberships(&state, &c, q.patient_id.trim()).await?;
    Ok(
        Json(json!({"memberships": ms.iter().map(membership_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

async fn start_membership(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: SellInput = typed(Value::Object(body))?;
    let id = uc::start_membership(&state, &c, &i.patient_id, &i.product_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"invoice_id": id}))).into_response())
}

async fn cancel_membership(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: ReasonInput = typed(Value::Object(body))?;
    let m = uc::cancel_membership(&state, &c, &id, &i.reason).await?;
    Ok(
        Json(json!({"id": m.id, "status": m.status, "cancelled_on": m.cancelled_on}))
            .into_response(),
    )
}

fn invoice_json(v: &uc::InvoiceView) -> Result<Value, Error> {
    let cur = &v.invoice.currency;
    let codes = v
        .lines
        .iter()
        .map(|l| stored::<Value>("invoice line codes", &l.codes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "id": v.invoice.id, "number": v.invoice.number, "clinic_id": v.invoice.clinic_id,
        "patient_id": v.invoice.patient_id, "appointment_id": v.invoice.appointment_id, "kind": v.invoice.kind,
        "service_date": v.invoice.service_date, "issued_by": v.invoice.issued_by,
        "lines": v.lines.iter().zip(codes).map(|(l, codes)| json!({
            "seq": l.seq, "kind": l.kind, "service": l.service, "description": l.description,
            "codes": codes,
            "amount": money(if l.kind == "discount" { -l.amount_minor } else { l.amount_minor }, cur),
            "offer_id": l.offer_id,
        })).collect::<Vec<_>>(),
        "entries": v.entries.iter().map(|e| json!({
            "id": e.id, "kind": e.kind, "method": e.method, "reference": e.reference,
            "amount": money(e.amount_minor, &e.currency), "refund_of": e.refund_of, "package_id": e.package_id,
            "reason": e.reason, "at": domain::time::to_timestamp(e.at).to_string(), "by": e.recorded_by,
        })).collect::<Vec<_>>(),
        "charged": money(v.charged, cur), "discounts": money(v.discounted, cur), "credits": money(v.credited, cur),
        "paid": money(v.paid, cur), "refunded": money(v.refunded, cur), "balance": money(v.balance, cur),
    }))
}

async fn invoices(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    if !q.patient_id.trim().is_empty() {
        let a = uc::account(&state, &c, &q.patient_id).await?;
        return Ok(Json(json!({
            "invoices": a.invoices.iter().map(invoice_json).collect::<Result<Vec<_>, _>>()?,
            "balance": money(a.balance, &a.currency),
            "uninvoiced_visits": a.uninvoiced.iter().map(|(id, when, what)| json!({"appointment_id": id, "starts": when, "what": what})).collect::<Vec<_>>(),
        }))
        .into_response());
    }
    let r = uc::reports(&state, &c, &q.clinic_id, &q.from, &q.to).await?;
    Ok(Json(json!({
        "from": r.from, "to": r.to,
        "revenue": r.revenue.iter().map(|x| json!({
            "service": x.service,
            "count": x.count,
            "charged": money(x.charged, &r.currency),
            "discounts": money(x.discounts, &r.currency),
            "from_packages": money(x.from_packages, &r.currency),
            "net": money(x.net(), &r.currency),
        })).collect::<Vec<_>>(),
        "offer_cost": r.offers.iter().map(|(o, n, m)| json!({"offer": o, "uses": n, "cost": money(*m, &r.currency)})).collect::<Vec<_>>(),
        "package_liability": {"sessions": r.package_sessions, "value": money(r.package_liability, &r.currency)},
        "receivables_ageing": {"0_30": money(r.ageing[0], &r.currency), "31_60": money(r.ageing[1], &r.currency),
            "61_90": money(r.ageing[2], &r.currency), "over_90": money(r.ageing[3], &r.currency)},
        "outstanding": r.outstanding.iter().map(|(id, n, who, age, bal)| json!({"invoice_id": id, "number": n, "patient": who, "age_days": age, "balance": money(*bal, &r.currency)})).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitInput {
    appointment_id: String,
    #[serde(default)]
    offer_id: Option<String>,
}

async fn invoice_visit(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: VisitInput = typed(Value::Object(body))?;
    let id = uc::invoice_visit_at(
        &state,
        &c,
        &i.appointment_id,
        i.offer_id.as_deref(),
        state.now(),
    )
    .await?;
    let v = uc::invoice(&state, &c, &id).await?;
    Ok((StatusCode::CREATED, Json(invoice_json(&v)?)).into_response())
}

async fn invoice(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let v = uc::invoice(&state, &c, &id).await?;
    Ok(Json(invoice_json(&v)?).into_response())
}

async fn refund(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: uc::RefundInput = typed(Value::Object(body))?;
    uc::refund(&state, &c, &id, i).await?;
    let v = uc::invoice(&state, &c, &id).await?;
    Ok((StatusCode::CREATED, Json(invoice_json(&v)?)).into_response())
}

async fn credit(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: uc::CreditInput = typed(Value::Object(body))?;
    uc::credit(&state, &c, &id, i).await?;
    let v = uc::invoice(&state, &c, &id).await?;
    Ok((StatusCode::CREATED, Json(invoice_json(&v)?)).into_response())
}

async fn payments(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    let d = uc::day_close(&state, &c, &q.clinic_id, &q.date).await?;
    Ok(Json(json!({
        "date": d.date,
        "methods": d.methods.iter().map(|(m, p, r, n, k)| json!({"method": m, "payments": money(*p, &d.currency), "refunds": money(*r, &d.currency), "net": money(*n, &d.currency), "count": k})).collect::<Vec<_>>(),
        "total": money(d.total, &d.currency), "credit_notes": money(d.credits, &d.currency),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayInput {
    invoice_id: String,
    method: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    package_id: String,
    #[serde(default)]
    email_receipt: bool,
}

async fn pay(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: PayInput = typed(Value::Object(body))?;
    let receipt = uc::pay(
        &state,
        &c,
        &i.invoice_id,
        uc::PaymentInput {
            method: i.method,
            amount: i.amount,
            reference: i.reference,
            package_id: i.package_id,
            email_receipt: i.email_receipt,
            at: None,
        },
    )
    .await?;
    let v = uc::invoice(&state, &c, &i.invoice_id).await?;
    let mut out = invoice_json(&v)?;
    out["receipt"] = serde_json::json!(receipt);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn superbill(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    let pdf = uc::superbill(&state, &c, &q.patient_id, &q.from, &q.to).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"superbill.pdf\"",
            ),
        ],
        pdf,
    )
        .into_response())
}

fn estimate_json(s: &clinic::records::billing::StoredEstimate) -> Result<Value, Error> {
    let (i, e) = uc::estimate_of(s)?;
    let line = |l: &domain::billing::EstimateLine| json!({"words": l.words, "quantity": l.quantity, "unit": money(l.unit_minor, &e.currency), "amount": money(l.minor, &e.currency)});
    Ok(json!({
        "id": s.id, "patient_id": s.patient_id, "created_by": s.created_by,
        "input": serde_json::to_value(&i).unwrap_or(Value::Null),
        "lines": e.lines.iter().map(line).collect::<Vec<_>>(),
        "list_total": money(e.list_total, &e.currency),
        "savings": e.savings.iter().map(line).collect::<Vec<_>>(),
        "total": money(e.total, &e.currency),
    }))
}

async fn estimates(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    req: axum::extract::Request,
) -> ApiResult {
    let q: ClinicQ = query(&req)?;
    let a = uc::account(&state, &c, &q.patient_id).await?;
    Ok(Json(
        json!({"estimates": a.estimates.iter().map(estimate_json).collect::<Result<Vec<_>, _>>()?}),
    )
    .into_response())
}

#[derive(Deserialize)]
struct EstimateBody {
    patient_id: String,
    #[serde(flatten)]
    input: domain::billing::EstimateInput,
}

async fn estimate(
    State(state): State<AppState>,
    ApiCaller(c): ApiCaller,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let i: EstimateBody = typed(Value::Object(body))?;
    let s = uc::make_estimate(&state, &c, &i.patient_id, i.input).await?;
    Ok((StatusCode::CREATED, Json(estimate_json(&s)?)).into_response())
}
