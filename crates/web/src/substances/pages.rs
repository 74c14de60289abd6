//! The Schedule III record's pages: stock with its alerts and open draws
//! (draw, give, waste with a witness, receive, other movements), the ledger
//! with the dispensing log as CSV and PDF, blind counts, cases, inventories,
//! and the setup of registrations, storage places and products.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use domain::auth::Permission;
use domain::substances::{fmt_mg, fmt_ml, loss_clock, EntryKind, Resolution};
use serde::Deserialize;

use crate::auth::{Caller, Posted, Staff, StaffForm};
use crate::error::Error;
use crate::ui::notice;
use crate::ui::Layout;
use crate::ui::{see_other, PageQuery, PageResult};
use crate::AppState;
use clinic::substances as uc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/substances", get(page))
        .route("/substances/ledger.csv", get(ledger_csv))
        .route("/substances/ledger.pdf", get(ledger_pdf))
        .route("/substances/form41.pdf", get(form41_pdf))
        .route("/substances/inventories/{id}/pdf", get(inventory_pdf))
        .route("/substances/{action}", post(submit))
        .route("/substances/cases/{id}/{action}", post(case_submit))
}

#[derive(Deserialize, Default)]
struct Q {
    #[serde(default)]
    tab: String,
    #[serde(default)]
    clinic: String,
    #[serde(default)]
    done: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    lot_id: String,
    #[serde(default)]
    kind: String,
}

struct BalanceRow {
    lot_id: String,
    product: String,
    lot: String,
    expires: String,
    expiry_class: &'static str,
    storage: String,
    ml: String,
    mg: String,
    containers: String,
    bar: i64,
    empty: bool,
}

struct DrawRow {
    id: String,
    lot_id: String,
    patient: String,
    lot: String,
    drawn: String,
    given: String,
    wasted: String,
    remaining: String,
    by: String,
    at: String,
    stale: bool,
}

struct EntryRow {
    seq: i64,
    at: String,
    kind: String,
    kind_key: String,
    product: String,
    lot: String,
    change: String,
    mg: String,
    balance: String,
    patient: String,
    by: String,
    witness: String,
    detail: String,
}

/// One lot of the reconciliation, in mL.
struct ReconRow {
    product: String,
    lot: String,
    opening: String,
    received: String,
    drawn: String,
    given: String,
    wasted: String,
    other_out: String,
    adjusted: String,
    closing: String,
    open_draws: String,
    open_draw: bool,
    adds_up: bool,
    /// Shares of the opening plus received stock, for the bar: given,
    /// wasted, other, on hand (percent).
    bar: (i64, i64, i64, i64),
}

struct CountRow {
    at: String,
    by: String,
    lines: Vec<(String, String, String, String, bool)>,
}

struct CaseRow {
    id: String,
    kind: String,
    open: bool,
    discovered: String,
    lot: String,
    difference: String,
    description: String,
    resolution: String,
    clocks: String,
    dea: bool,
    filing: String,
}

struct InventoryRow {
    id: String,
    kind: String,
    taken_on: String,
    business: String,
    by: String,
    lots: usize,
}

#[derive(Template)]
#[template(path = "substances/substances.html")]
struct SubstancesPage {
    layout: Layout,
    /// A blind count of the caller's is in progress here.
    counting: bool,
    tab: String,
    clinic: String,
    clinic_name: String,
    registration: String,
    clinics: Vec<(String, String, bool)>,
    others: Vec<(String, String)>,
    error: Option<String>,
    alerts: Vec<(String, String)>,
    balances: Vec<BalanceRow>,
    draws: Vec<DrawRow>,
    orders: Vec<(String, String)>,
    lots_in_stock: Vec<(String, String)>,
    drawable: Vec<(String, String)>,
    products: Vec<(String, String)>,
    storage: Vec<(String, String)>,
    entries: Vec<EntryRow>,
    kinds: Vec<(String, String, bool)>,
    filter_from: String,
    filter_to: String,
    filter_lot: String,
    export_query: String,
    counts: Vec<CountRow>,
    recon: Vec<ReconRow>,
    recon_counts: Vec<CountRow>,
    recon_from: String,
    recon_to: String,
    recon_note: String,
    recon_query: String,
    cases: Vec<CaseRow>,
    inventories: Vec<InventoryRow>,
    can_handle: bool,
    can_manage: bool,
    open_cases: usize,
    registrations: Vec<(String, String, String, String)>,
    today: String,
    /// What a refused form had in it.
    kept: crate::ui::Kept,
}

async fn page(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<Q>,
) -> PageResult {
    view(&state, &c, q, None, Default::default()).await
}

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .unwrap_or_default()
        .trim_start_matches("v=")
        .to_string()
}

async fn view(
    state: &AppState,
    c: &Caller,
    q: Q,
    error: Option<String>,
    kept: crate::ui::Kept,
) -> PageResult {
    let o = uc::overview(state, c).await?;
    let loc = if q.clinic.is_empty() {
        o.locations.first().cloned()
    } else {
        o.locations
            .iter()
            .find(|l| l.id.to_string() == q.clinic)
            .cloned()
    }
    .ok_or(Error::NotFound)?;
    let here = loc.id.to_string();
    let tab = match q.tab.as_str() {
        t @ ("ledger" | "counts" | "reconciliation" | "cases" | "inventories" | "setup") => {
            t.to_string()
        }
        _ => "stock".to_string(),
    };
    // Counting blind: no expected figure shows until the count is recorded.
    let counting = uc::counting(state, c).await?.contains(&here);
    let tab = if counting
        && matches!(
            tab.as_str(),
            "stock" | "ledger" | "reconciliation" | "inventories"
        ) {
        "counting".to_string()
    } else {
        tab
    };
    let today = loc.today();
    let mut error = error;
    // The ledger shows a week unless the filter says otherwise.
    let from = if q.from.is_empty() && q.to.is_empty() {
        today
            .checked_sub(jiff::Span::new().days(7))
            .map(|d| d.to_string())
            .unwrap_or_default()
    } else {
        q.from.clone()
    };

    let balances_here: Vec<&clinic::records::substances::Balance> =
        o.balances.iter().filter(|b| b.clinic_id == here).collect();
    let top = balances_here
        .iter()
        .map(|b| b.balance_ul)
        .max()
        .unwrap_or(1)
        .max(1);
    let balances = balances_here
        .iter()
        .map(|b| {
            let exp: Option<jiff::civil::Date> = b.expires_on.parse().ok();
            let days = exp
                .map(|e| domain::substances::days_until(today, e))
                .unwrap_or(i64::MAX);
            let full = b.balance_ul / b.container_ul.max(1);
            let part = b.balance_ul % b.container_ul.max(1);
            BalanceRow {
                lot_id: b.lot_id.clone(),
                product: format!("{} {} mg/mL", b.product_name, b.strength_mg_per_ml),
                lot: b.lot_number.clone(),
                expires: b.expires_on.clone(),
                expiry_class: if days < 0 {
                    "bad"
                } else if days <= uc::EXPIRY_WARN_DAYS {
                    "warn"
                } else {
                    "ok"
                },
                storage: b.storage.clone().unwrap_or_default(),
                ml: fmt_ml(b.balance_ul),
                mg: fmt_mg(b.balance_ul, b.strength_mg_per_ml),
                containers: if part == 0 {
                    format!("{full} × {}", fmt_ml(b.container_ul))
                } else if full == 0 {
                    format!("{} open", fmt_ml(part))
                } else {
                    format!(
                        "{full} × {} + {} open",
                        fmt_ml(b.container_ul),
                        fmt_ml(part)
                    )
                },
                bar: b.balance_ul * 100 / top,
                empty: b.balance_ul == 0,
            }
        })
        .collect();
    let midnight = loc.start_of(today);
    let draws = o
        .open_draws
        .iter()
        .filter(|d| d.clinic_id == here)
        .map(|d| DrawRow {
            id: d.id.clone(),
            lot_id: d.lot_id.clone(),
            patient: d.patient_name.clone(),
            lot: d.lot_number.clone(),
            drawn: fmt_ml(d.drawn_ul),
            given: fmt_ml(d.administered_ul),
            wasted: fmt_ml(d.wasted_ul),
            remaining: format!(
                "{} ({})",
                fmt_ml(d.remaining_ul()),
                fmt_mg(d.remaining_ul(), d.strength_mg_per_ml)
            ),
            by: d.drawn_by.clone(),
            at: loc.when(d.drawn_at),
            stale: d.drawn_at < midnight,
        })
        .collect();
    // Lots with stock, for the forms; expired ones are never drawn from.
    let today_text = today.to_string();
    let option = |b: &&clinic::records::substances::Balance| {
        (
            b.lot_id.clone(),
            format!(
                "{} {} mg/mL lot {} (exp {}), {} on hand",
                b.product_name,
                b.strength_mg_per_ml,
                b.lot_number,
                b.expires_on,
                fmt_ml(b.balance_ul)
            ),
        )
    };
    let in_stock = || balances_here.iter().filter(|b| b.balance_ul > 0);
    let drawable = in_stock()
        .filter(|b| b.expires_on >= today_text)
        .map(option)
        .collect();
    let lots_in_stock = in_stock().map(option).collect();

    // The ledger tab reads entries (audited) only when shown.
    let mut entries = Vec::new();
    let mut export_query = format!("clinic_id={here}");
    if tab == "ledger" {
        let lq = uc::LedgerQuery {
            clinic_id: here.clone(),
            from: from.clone(),
            to: q.to.clone(),
            lot_id: q.lot_id.clone(),
            kind: q.kind.clone(),
            ..Default::default()
        };
        for (k, v) in [
            ("from", &from),
            ("to", &q.to),
            ("lot_id", &q.lot_id),
            ("kind", &q.kind),
        ] {
            if !v.is_empty() {
                export_query.push_str(&format!("&{k}={}", enc(v)));
            }
        }
        match uc::ledger(state, c, &lq, false).await {
            Ok(v) => {
                entries = v
                    .rows
                    .iter()
                    .map(|r| {
                        let mut detail = Vec::new();
                        if let Some(s) = r
                            .counterparty
                            .as_deref()
                            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                        {
                            if let Some(o) = s.as_object() {
                                for (k, v) in o {
                                    if let Some(t) = v.as_str() {
                                        detail.push(format!("{}: {t}", k.replace('_', " ")));
                                    }
                                }
                            }
                        }
                        if let Some(rs) = &r.reason {
                            detail.push(rs.clone());
                        }
                        EntryRow {
                            seq: r.seq,
                            at: loc.when(r.at),
                            kind: uc::kind_label(&r.kind).to_string(),
                            kind_key: r.kind.clone(),
                            product: r.product_name.clone(),
                            lot: r.lot_number.clone(),
                            change: if r.change_ul == 0 {
                                format!("({})", fmt_ml(r.quantity_ul))
                            } else if r.change_ul > 0 {
                                format!("+{}", fmt_ml(r.change_ul))
                            } else {
                                fmt_ml(r.change_ul)
                            },
                            mg: fmt_mg(r.quantity_ul, r.strength_mg_per_ml),
                            balance: fmt_ml(r.balance_after_ul),
                            patient: r.patient_name.clone().unwrap_or_default(),
                            by: r.actor.clone(),
                            witness: [r.witness.clone(), r.witness2.clone()]
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()
                                .join(", "),
                            detail: detail.join("; "),
                        }
                    })
                    .collect()
            }
            Err(e) => error = Some(notice(Err(e))?.0.unwrap_or_default()),
        }
    }
    let count_row =
        |k: clinic::records::substances::Count,
         lines: Vec<clinic::records::substances::CountLine>| CountRow {
            at: loc.when(k.counted_at),
            by: k.counted_by,
            lines: lines
                .iter()
                .map(|l| {
                    let d = l.counted_ul - l.expected_ul;
                    (
                        format!("{} lot {}", l.product_name, l.lot_number),
                        fmt_ml(l.expected_ul),
                        fmt_ml(l.counted_ul),
                        if d == 0 {
                            "matches".into()
                        } else {
                            format!("{}{}", if d > 0 { "+" } else { "" }, fmt_ml(d))
                        },
                        d != 0,
                    )
                })
                .collect(),
        };
    let counts = if tab == "counts" {
        uc::counts(state, c)
            .await?
            .into_iter()
            .filter(|(k, _)| k.clinic_id == here)
            .map(|(k, lines)| count_row(k, lines))
            .collect()
    } else {
        Vec::new()
    };
    let (mut recon, mut recon_counts) = (Vec::new(), Vec::new());
    let (mut recon_from, mut recon_to, mut recon_note) =
        (q.from.clone(), q.to.clone(), String::new());
    let mut recon_query = format!("clinic_id={here}");
    if tab == "reconciliation" {
        let rq = uc::ReconQuery {
            clinic_id: here.clone(),
            from: q.from.clone(),
            to: q.to.clone(),
            format: String::new(),
        };
        match uc::reconciliation(state, c, &rq).await {
            Ok(v) => {
                recon_from = v.from.to_string();
                recon_to = v.to.to_string();
                recon_query.push_str(&format!("&from={recon_from}&to={recon_to}"));
                recon_note = match v.matches_stock {
                    Some(true) => "The closing balances equal the stock on hand now.".into(),
                    Some(false) => "The closing balances differ from the stock on hand: entries dated after the period were recorded late, or the record needs a look.".into(),
                    None => String::new(),
                };
                recon = v
                    .lots
                    .iter()
                    .map(|l| {
                        let r = &l.r;
                        let strength = l.lot.as_ref().map(|x| x.strength_mg_per_ml).unwrap_or(0);
                        let other =
                            r.transferred_out_ul + r.breakage_ul + r.returned_ul + r.destroyed_ul;
                        let wasted = r.wasted_from_draws_ul + r.wasted_from_stock_ul;
                        let total = (r.opening_ul + r.received_ul).max(1);
                        let pct = |x: i64| (x.max(0) * 100 / total).min(100);
                        ReconRow {
                            product: l
                                .lot
                                .as_ref()
                                .map(|x| {
                                    format!("{} {} mg/mL", x.product_name, x.strength_mg_per_ml)
                                })
                                .unwrap_or_default(),
                            lot: l
                                .lot
                                .as_ref()
                                .map(|x| x.lot_number.clone())
                                .unwrap_or(r.lot_id.clone()),
                            opening: fmt_ml(r.opening_ul),
                            received: fmt_ml(r.received_ul),
                            drawn: fmt_ml(r.drawn_ul),
                            given: format!(
                                "{} ({})",
                                fmt_ml(r.administered_ul),
                                fmt_mg(r.administered_ul, strength)
                            ),
                            wasted: fmt_ml(wasted),
                            other_out: fmt_ml(other),
                            adjusted: fmt_ml(r.adjusted_ul),
                            closing: fmt_ml(r.closing_ul),
                            open_draws: fmt_ml(r.unaccounted_draw_ul),
                            open_draw: r.unaccounted_draw_ul > 0,
                            adds_up: r.balances(),
                            bar: (
                                pct(r.administered_ul),
                                pct(wasted),
                                pct(other),
                                pct(r.closing_ul),
                            ),
                        }
                    })
                    .collect();
                recon_counts = v
                    .counts
                    .into_iter()
                    .map(|(k, lines)| count_row(k, lines))
                    .collect();
            }
            Err(e) => error = Some(notice(Err(e))?.0.unwrap_or_default()),
        }
    }
    let cases: Vec<CaseRow> = o
        .cases
        .iter()
        .filter(|k| k.clinic_id == here)
        .map(|k| {
            let clock = k.discovered_on.parse().ok().map(loss_clock);
            let dea = k.kind != "discrepancy";
            CaseRow {
                id: k.id.clone(),
                kind: match k.kind.as_str() {
                    "discrepancy" => "Count discrepancy".into(),
                    "loss" => "Loss".into(),
                    _ => "Theft or significant loss".into(),
                },
                open: k.status == "open",
                discovered: k.discovered_on.clone(),
                lot: k.lot_number.clone().unwrap_or_default(),
                difference: if k.difference_ul == 0 {
                    String::new()
                } else {
                    format!(
                        "{}{} ({})",
                        if k.difference_ul > 0 { "+" } else { "" },
                        fmt_ml(k.difference_ul),
                        fmt_mg(k.difference_ul.abs(), k.strength_mg_per_ml.unwrap_or(1))
                    )
                },
                description: k.description.clone(),
                resolution: match (&k.resolution, &k.resolution_note) {
                    (Some(r), Some(n)) => format!(
                        "{} by {}: {n}",
                        Resolution::parse(r)
                            .map(|r| r.label())
                            .unwrap_or("Resolved"),
                        k.resolved_by.clone().unwrap_or_default()
                    ),
                    _ => String::new(),
                },
                clocks: match (dea, clock) {
                    (true, Some(cl)) => format!(
                        "Notify the DEA by {}{}; Form 106 by {}{}",
                        cl.notify_by,
                        k.dea_notified_on
                            .as_deref()
                            .map(|d| format!(" (notified {d})"))
                            .unwrap_or_default(),
                        cl.form106_by,
                        k.form106_filed_on
                            .as_deref()
                            .map(|d| format!(" (filed {d})"))
                            .unwrap_or_default(),
                    ),
                    _ => String::new(),
                },
                dea,
                filing: k.form106.clone().unwrap_or_default(),
            }
        })
        .collect();
    let open_cases = cases.iter().filter(|k| k.open).count();
    let inventories = if tab == "inventories" {
        uc::inventories(state, c, Some(loc.id))
            .await?
            .into_iter()
            .map(|i| -> Result<InventoryRow, Error> {
                Ok(InventoryRow {
                    lots: crate::error::stored::<Vec<serde_json::Value>>(
                        "inventory lines",
                        &i.lines,
                    )?
                    .len(),
                    id: i.id,
                    kind: if i.kind == "initial" {
                        "Initial".into()
                    } else {
                        "Biennial".into()
                    },
                    taken_on: i.taken_on,
                    business: if i.business == "opening" {
                        "opening".into()
                    } else {
                        "close".into()
                    },
                    by: i.taken_by,
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let registrations = o
        .locations
        .iter()
        .map(|l| {
            (
                l.id.to_string(),
                l.name.clone(),
                l.registration
                    .as_ref()
                    .map(|r| r.dea_number.clone())
                    .unwrap_or_default(),
                l.registration
                    .as_ref()
                    .map(|r| r.expires_on.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let all = clinic::settings::clinics(state, c).await?;
    let done = match q.done.as_str() {
        "movement" => Some("Recorded in the ledger.".to_string()),
        "count" => Some("Count recorded.".to_string()),
        "count-begun" => Some(
            "Blind count begun: the expected figures are hidden from you until you record it."
                .to_string(),
        ),
        "count-differs" => {
            Some("Count recorded: it differs from the ledger, and a case is open.".to_string())
        }
        "case" => Some("Case updated.".to_string()),
        "inventory" => Some("Inventory taken.".to_string()),
        "setup" => Some("Saved.".to_string()),
        _ => None,
    };
    let page = SubstancesPage {
        counting,
        layout: Layout::new(c, "Controlled substances", "substances").with_flash(done),
        clinic_name: loc.name.clone(),
        registration: loc
            .registration
            .as_ref()
            .map(|r| format!("DEA {} (expires {})", r.dea_number, r.expires_on))
            .unwrap_or_else(|| "No DEA registration on file".into()),
        clinics: o
            .locations
            .iter()
            .map(|l| (l.id.to_string(), l.name.clone(), l.id == loc.id))
            .collect(),
        others: all
            .iter()
            .filter(|k| k.id != loc.id)
            .map(|k| (k.id.to_string(), k.settings.name.clone()))
            .collect(),
        error,
        alerts: o
            .alerts
            .iter()
            .filter(|a| a.clinic_id == here)
            .map(|a| (a.level.to_string(), a.text.clone()))
            .collect(),
        balances,
        draws,
        orders: o
            .orders
            .iter()
            .filter(|x| x.1 == here)
            .map(|x| {
                let drawn = if x.4 == 0 {
                    "nothing drawn yet".to_string()
                } else {
                    format!("{} mg drawn", domain::substances::fmt_milli(x.4))
                };
                (
                    x.0.clone(),
                    format!("{} — {:.1} mg ordered, {drawn}", x.2, x.3),
                )
            })
            .collect(),
        lots_in_stock,
        drawable,
        products: o
            .products
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    format!(
                        "{} {} mg/mL, {} ({}), NDC {}",
                        p.name,
                        p.strength_mg_per_ml,
                        fmt_ml(p.container_ul),
                        p.form,
                        p.ndc
                    ),
                )
            })
            .collect(),
        storage: o
            .storage
            .iter()
            .filter(|s| s.clinic_id == here)
            .map(|s| (s.id.clone(), s.name.clone()))
            .collect(),
        entries,
        kinds: EntryKind::ALL
            .iter()
            .map(|k| {
                (
                    k.as_str().to_string(),
                    k.label().to_string(),
                    q.kind == k.as_str(),
                )
            })
            .collect(),
        filter_from: from,
        filter_to: q.to.clone(),
        filter_lot: q.lot_id.clone(),
        export_query,
        counts,
        recon,
        recon_counts,
        recon_from,
        recon_to,
        recon_note,
        recon_query,
        cases,
        inventories,
        can_handle: c.may(Permission::CsHandle, loc.id),
        can_manage: c.may(Permission::CsManage, loc.id),
        open_cases,
        registrations,
        today: today.to_string(),
        tab,
        clinic: here,
        kept,
    };
    let html = page.render().map_err(crate::error::template)?;
    let status = if page.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, axum::response::Html(html)).into_response())
}

fn movement_of(f: &Posted) -> uc::MovementInput {
    let g = |k: &str| {
        f.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    uc::MovementInput {
        kind: f.get("kind").unwrap_or_default(),
        clinic_id: f.get("clinic_id").unwrap_or_default(),
        lot_id: g("lot_id"),
        product_id: g("product_id"),
        lot_number: g("lot_number"),
        expires_on: g("expires_on"),
        quantity: g("quantity"),
        containers: None,
        at: g("at"),
        dose_order_id: g("dose_order_id"),
        draw_id: g("draw_id"),
        reason: g("reason"),
        storage_id: g("storage_id"),
        supplier_name: g("supplier_name"),
        supplier_address: g("supplier_address"),
        supplier_dea: g("supplier_dea"),
        invoice: g("invoice"),
        to_clinic_id: g("to_clinic_id"),
        direction: g("direction"),
        method: g("method"),
        witness_username: g("witness_username"),
        witness_password: f.get("witness_password").filter(|v| !v.is_empty()),
        witness_code: f.get("witness_code").filter(|v| !v.is_empty()),
        witness2_username: g("witness2_username"),
        witness2_password: f.get("witness2_password").filter(|v| !v.is_empty()),
        witness2_code: f.get("witness2_code").filter(|v| !v.is_empty()),
    }
}

async fn submit(
    State(state): State<AppState>,
    Path(action): Path<String>,
    f: StaffForm,
) -> PageResult {
    let c = &f.caller;
    let clinic = f.form.get("clinic_id").unwrap_or_default();
    let back = |tab: &str, done: &str| {
        see_other(&format!(
            "/substances?clinic={}&tab={tab}&done={done}",
            enc(&clinic)
        ))
    };
    let tab_of = |a: &str| match a {
        "count" | "count-begin" => "counts",
        "case" => "cases",
        "inventory" => "inventories",
        "registration" | "storage" | "product" => "setup",
        _ => "stock",
    };
    let r: Result<(&str, &str), Error> = async {
        match action.as_str() {
            "movement" => {
                let mut input = movement_of(&f.form);
                if input.kind == "receipt" {
                    input.containers = match f.form.get("containers").map(|v| v.trim().to_string())
                    {
                        Some(v) if !v.is_empty() => Some(v.parse().map_err(|_| {
                            Error::Invalid(vec![domain::FieldError::new(
                                "containers",
                                "must be a whole number",
                            )])
                        })?),
                        _ => None,
                    };
                }
                uc::record_movement(&state, c, input).await?;
                Ok(("stock", "movement"))
            }
            "count-begin" => {
                uc::begin_count(&state, c, &clinic).await?;
                Ok(("counts", "count-begun"))
            }
            "count" => {
                let lines = f
                    .form
                    .0
                    .iter()
                    .filter_map(|(k, v)| k.strip_prefix("counted_").map(|lot| (lot, v)))
                    .map(|(lot, v)| uc::CountLineInput {
                        lot_id: lot.to_string(),
                        counted: v.clone(),
                    })
                    .collect();
                let o = uc::record_count(
                    &state,
                    c,
                    uc::CountInput {
                        clinic_id: clinic.clone(),
                        lines,
                        note: f.form.get("note"),
                    },
                )
                .await?;
                Ok((
                    "counts",
                    if o.cases.is_empty() {
                        "count"
                    } else {
                        "count-differs"
                    },
                ))
            }
            "case" => {
                uc::open_case(
                    &state,
                    c,
                    uc::CaseInput {
                        clinic_id: clinic.clone(),
                        kind: f.form.get("kind").unwrap_or_default(),
                        lot_id: f.form.get("lot_id"),
                        quantity: f.form.get("quantity"),
                        discovered_on: f.form.get("discovered_on"),
                        description: f.form.get("description").unwrap_or_default(),
                    },
                )
                .await?;
                Ok(("cases", "case"))
            }
            "inventory" => {
                let lines = f
                    .form
                    .0
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("sealed_")
                            .map(|lot| (lot.to_string(), v.clone()))
                    })
                    .map(|(lot, sealed)| {
                        Ok(uc::InventoryLineInput {
                            sealed: sealed.trim().parse().map_err(|_| {
                                Error::Invalid(vec![domain::FieldError::new(
                                    "sealed",
                                    "give the number of sealed containers as a whole number",
                                )])
                            })?,
                            open: f.form.get(&format!("open_{lot}")),
                            measure: f.form.get(&format!("measure_{lot}")),
                            lot_id: lot,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                uc::take_inventory(
                    &state,
                    c,
                    uc::InventoryInput {
                        clinic_id: clinic.clone(),
                        kind: f.form.get("kind").unwrap_or_default(),
                        business: f.form.get("business").unwrap_or_default(),
                        taken_on: f.form.get("taken_on"),
                        lines,
                    },
                )
                .await?;
                Ok(("inventories", "inventory"))
            }
            "registration" => {
                uc::set_registration(
                    &state,
                    c,
                    uc::RegistrationInput {
                        clinic_id: clinic.clone(),
                        dea_number: f.form.get("dea_number").unwrap_or_default(),
                        expires_on: f.form.get("expires_on").unwrap_or_default(),
                    },
                )
                .await?;
                Ok(("setup", "setup"))
            }
            "storage" => {
                uc::add_storage(&state, c, &clinic, &f.form.get("name").unwrap_or_default())
                    .await?;
                Ok(("setup", "setup"))
            }
            "product" => {
                uc::add_product(
                    &state,
                    c,
                    uc::ProductInput {
                        name: f.form.get("name").unwrap_or_default(),
                        ndc: f.form.get("ndc").unwrap_or_default(),
                        form: f.form.get("form").unwrap_or_default(),
                        strength_mg_per_ml: f
                            .form
                            .get("strength_mg_per_ml")
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0),
                        container: f.form.get("container").unwrap_or_default(),
                    },
                )
                .await?;
                Ok(("setup", "setup"))
            }
            _ => Err(Error::NotFound),
        }
    }
    .await;
    match r {
        Ok((tab, done)) => Ok(back(tab, done)),
        Err(Error::NotFound)
            if !matches!(
                action.as_str(),
                "movement"
                    | "count"
                    | "case"
                    | "inventory"
                    | "registration"
                    | "storage"
                    | "product"
            ) =>
        {
            Err(Error::NotFound.into())
        }
        Err(e) => {
            let (error, _) = notice(Err(e))?;
            let q = Q {
                tab: tab_of(&action).into(),
                clinic,
                ..Default::default()
            };
            // The refused form comes back as it was filled in.
            let form = match action.as_str() {
                "movement" => f.form.get("kind").unwrap_or_default(),
                other => other.to_string(),
            };
            let kept = crate::ui::Kept::new(&form, &f.form);
            view(&state, c, q, error, kept).await
        }
    }
}

async fn case_submit(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let c = &f.caller;
    let clinic = f.form.get("clinic_id").unwrap_or_default();
    let r = match action.as_str() {
        "resolve" => uc::resolve_case(
            &state,
            c,
            &id,
            uc::ResolveInput {
                resolution: f.form.get("resolution").unwrap_or_default(),
                note: f.form.get("note").unwrap_or_default(),
            },
        )
        .await
        .map(|_| ()),
        "filing" => uc::case_filing(
            &state,
            c,
            &id,
            uc::FilingInput {
                dea_notified_on: f.form.get("dea_notified_on"),
                form106_filed_on: f.form.get("form106_filed_on"),
                loss_type: f.form.get("loss_type"),
                circumstances: f.form.get("circumstances"),
                police_report: f.form.get("police_report"),
            },
        )
        .await
        .map(|_| ()),
        _ => return Err(Error::NotFound.into()),
    };
    match r {
        Ok(()) => Ok(see_other(&format!(
            "/substances?clinic={}&tab=cases&done=case",
            enc(&clinic)
        ))),
        Err(e) => {
            let (error, _) = notice(Err(e))?;
            view(
                &state,
                c,
                Q {
                    tab: "cases".into(),
                    clinic,
                    ..Default::default()
                },
                error,
                crate::ui::Kept::new(&action, &f.form),
            )
            .await
        }
    }
}

async fn export(state: &AppState, c: &Caller, q: uc::LedgerQuery, pdf: bool) -> PageResult {
    uc::refuse_while_counting(state, c, Some(&q.clinic_id)).await?;
    Ok(if pdf {
        let v = uc::ledger(state, c, &q, true).await?;
        (
            [
                (header::CONTENT_TYPE, "application/pdf"),
                (
                    header::CONTENT_DISPOSITION,
                    "inline; filename=\"dispensing-log.pdf\"",
                ),
            ],
            uc::dispensing_pdf(&v)?,
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"dispensing-log.csv\"",
                ),
            ],
            uc::dispensing_log_csv(state, c, &q).await?,
        )
            .into_response()
    })
}

async fn ledger_csv(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<uc::LedgerQuery>,
) -> PageResult {
    export(&state, &c, q, false).await
}

async fn ledger_pdf(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<uc::LedgerQuery>,
) -> PageResult {
    export(&state, &c, q, true).await
}

async fn form41_pdf(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<uc::LedgerQuery>,
) -> PageResult {
    let pdf = uc::form41_pdf(&state, &c, &q).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"form-41-record.pdf\"",
            ),
        ],
        pdf,
    )
        .into_response())
}

async fn inventory_pdf(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
) -> PageResult {
    let pdf = uc::inventory_pdf(&state, &c, &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}
