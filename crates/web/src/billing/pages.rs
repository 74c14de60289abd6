//! Billing's pages: the clinic's day (takings by method, visits waiting for
//! an invoice, recent invoices), reports, and setup (billing identity, price
//! list, offers, packages); an invoice with its payments, refunds and credit
//! notes; and a patient's account (invoices, packages, estimates, superbill).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use domain::auth::Permission;
use domain::billing::{fmt_money, Method, Service};
use serde::Deserialize;

use crate::auth::{Caller, Staff, StaffForm};
use crate::error::Error;
use crate::ui::notice;
use crate::ui::Layout;
use crate::ui::{see_other, PageQuery, PageResult};
use crate::AppState;
use clinic::billing as uc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/billing", get(page))
        .route("/billing/{action}", post(submit))
        .route("/billing/invoices/{id}", get(invoice_page))
        .route("/billing/invoices/{id}/{action}", post(invoice_submit))
        .route("/patients/{id}/billing", get(account_page))
        .route("/patients/{id}/billing/{action}", post(account_submit))
        .route("/patients/{id}/superbill.pdf", get(superbill))
}

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .unwrap_or_default()
        .trim_start_matches("v=")
        .to_string()
}

#[derive(Deserialize, Default)]
struct Q {
    #[serde(default)]
    tab: String,
    #[serde(default)]
    clinic: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    done: String,
}

/// A labelled bar: label, value text, percent of the largest.
struct Bar {
    label: String,
    value: String,
    pct: i64,
}

fn bars(items: &[(String, i64)], currency: &str) -> Vec<Bar> {
    let top = items.iter().map(|i| i.1).max().unwrap_or(1).max(1);
    items
        .iter()
        .map(|(l, v)| Bar {
            label: l.clone(),
            value: fmt_money(*v, currency),
            pct: (v * 100 / top).max(0),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "billing/billing.html")]
struct BillingPage {
    layout: Layout,
    tab: String,
    clinic: String,
    clinics: Vec<(String, String, bool)>,
    error: Option<String>,
    can_charge: bool,
    can_manage: bool,
    // today
    date: String,
    day_bars: Vec<Bar>,
    day_rows: Vec<(String, String, String, String, i64)>,
    day_total: String,
    to_invoice: Vec<(String, String, String, String, String)>,
    recent: Vec<(String, String, String, String, String, String, bool)>,
    // reports
    from: String,
    to: String,
    revenue_bars: Vec<Bar>,
    /// Service, count, at list price, discounts, paid from packages, net.
    revenue: Vec<(String, i64, String, String, String, String)>,
    revenue_total: String,
    offer_rows: Vec<(String, i64, String)>,
    liability: String,
    liability_sessions: i64,
    ageing_bars: Vec<Bar>,
    outstanding: Vec<(String, String, String, i64, String)>,
    // setup
    settings: Option<clinic::records::billing::BillingSettings>,
    prices: Vec<(String, String, String)>,
    price_from: String,
    price_lists: Vec<String>,
    offers: Vec<(String, String, String, String, bool)>,
    products: Vec<(String, String)>,
    services: Vec<(String, String)>,
    today: String,
}

async fn page(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<Q>,
) -> PageResult {
    let done = (!q.done.is_empty()).then(|| "Saved.".to_string());
    view(&state, &c, q, None, done).await
}

async fn view(
    state: &AppState,
    c: &Caller,
    q: Q,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let places = uc::places(state, c, Permission::BillRead).await?;
    let p = if q.clinic.is_empty() {
        places.first().cloned()
    } else {
        places
            .iter()
            .find(|l| l.id.to_string() == q.clinic)
            .cloned()
    }
    .ok_or(Error::NotFound)?;
    let here = p.id.to_string();
    let tab = match q.tab.as_str() {
        t @ ("reports" | "setup") => t.to_string(),
        _ => "today".to_string(),
    };
    let mut error = error;
    let settings = uc::settings_of(state, &p).await?;
    let currency = settings
        .as_ref()
        .map(|s| s.currency.clone())
        .unwrap_or_else(|| "USD".into());
    let mut page = BillingPage {
        layout: Layout::new(c, "Billing", "billing").with_flash(flash),
        tab: tab.clone(),
        clinic: here.clone(),
        clinics: places
            .iter()
            .map(|l| (l.id.to_string(), l.name.clone(), l.id == p.id))
            .collect(),
        error: None,
        can_charge: c.may(Permission::BillCharge, p.id),
        can_manage: c.may(Permission::BillManage, p.id),
        date: String::new(),
        day_bars: vec![],
        day_rows: vec![],
        day_total: String::new(),
        to_invoice: vec![],
        recent: vec![],
        from: String::new(),
        to: String::new(),
        revenue_bars: vec![],
        revenue: vec![],
        revenue_total: String::new(),
        offer_rows: vec![],
        liability: String::new(),
        liability_sessions: 0,
        ageing_bars: vec![],
        outstanding: vec![],
        settings: settings.clone(),
        prices: vec![],
        price_from: String::new(),
        price_lists: vec![],
        offers: vec![],
        products: vec![],
        services: Service::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), s.label().to_string()))
            .collect(),
        today: p.today().to_string(),
    };
    match tab.as_str() {
        "today" => {
            match uc::day_close(state, c, &here, &q.date).await {
                Ok(d) => {
                    page.date = d.date.clone();
                    page.day_bars = bars(
                        &d.methods
                            .iter()
                            .map(|m| (m.0.clone(), m.3))
                            .collect::<Vec<_>>(),
                        &d.currency,
                    );
                    page.day_rows = d
                        .methods
                        .iter()
                        .map(|m| {
                            (
                                m.0.clone(),
                                fmt_money(m.1, &d.currency),
                                fmt_money(m.2, &d.currency),
                                fmt_money(m.3, &d.currency),
                                m.4,
                            )
                        })
                        .collect();
                    page.day_total = fmt_money(d.total, &d.currency);
                }
                Err(e) => error = Some(crate::ui::fixable(e)?),
            }
            let from = p.start_of(
                p.today()
                    .checked_sub(jiff::Span::new().days(30))
                    .unwrap_or(p.today()),
            );
            page.to_invoice = uc::to_invoice(state, c, &p, from)
                .await?
                .into_iter()
                .map(|(v, name)| {
                    (
                        v.appointment_id.clone(),
                        p.when(v.starts_at),
                        name,
                        v.type_name.clone(),
                        match v.status.as_str() {
                            "no_show" => "missed".into(),
                            "cancelled" => "cancelled late".into(),
                            _ => "attended".to_string(),
                        },
                    )
                })
                .collect();
            let week = p.start_of(
                p.today()
                    .checked_sub(jiff::Span::new().days(7))
                    .unwrap_or(p.today()),
            );
            for (inv, a) in uc::recent_invoices(state, c, &p, week, 40).await? {
                page.recent.push((
                    inv.id.clone(),
                    inv.number.clone(),
                    inv.service_date.clone(),
                    inv.patient_name.clone(),
                    fmt_money(a.net(), &inv.currency),
                    fmt_money(a.balance(), &inv.currency),
                    a.balance() > 0,
                ));
            }
        }
        "reports" => match uc::reports(state, c, &here, &q.from, &q.to).await {
            Ok(r) => {
                page.from = r.from.clone();
                page.to = r.to.clone();
                page.revenue_bars = bars(
                    &r.revenue
                        .iter()
                        .map(|x| (x.service.clone(), x.net()))
                        .collect::<Vec<_>>(),
                    &r.currency,
                );
                page.revenue = r
                    .revenue
                    .iter()
                    .map(|x| {
                        (
                            x.service.clone(),
                            x.count,
                            fmt_money(x.charged, &r.currency),
                            fmt_money(x.discounts, &r.currency),
                            fmt_money(x.from_packages, &r.currency),
                            fmt_money(x.net(), &r.currency),
                        )
                    })
                    .collect();
                page.revenue_total =
                    fmt_money(r.revenue.iter().map(|x| x.net()).sum(), &r.currency);
                page.offer_rows = r
                    .offers
                    .iter()
                    .map(|o| (o.0.clone(), o.1, fmt_money(o.2, &r.currency)))
                    .collect();
                page.liability = fmt_money(r.package_liability, &r.currency);
                page.liability_sessions = r.package_sessions;
                page.ageing_bars = bars(
                    &["0-30 days", "31-60 days", "61-90 days", "over 90 days"]
                        .iter()
                        .zip(r.ageing)
                        .map(|(l, v)| (l.to_string(), v))
                        .collect::<Vec<_>>(),
                    &r.currency,
                );
                page.outstanding = r
                    .outstanding
                    .iter()
                    .take(50)
                    .map(|o| {
                        (
                            o.0.clone(),
                            o.1.clone(),
                            o.2.clone(),
                            o.3,
                            fmt_money(o.4, &r.currency),
                        )
                    })
                    .collect();
            }
            Err(e) => error = Some(crate::ui::fixable(e)?),
        },
        _ => {
            let lists = uc::price_lists_of(state, &here).await?;
            let current = lists
                .iter()
                .find(|l| l.effective_from <= p.today())
                .or(lists.last());
            page.price_lists = lists
                .iter()
                .map(|l| format!("{} ({})", l.effective_from, l.currency))
                .collect();
            page.price_from = p.today().to_string();
            page.prices = Service::ALL
                .iter()
                .map(|s| {
                    let v = current
                        .and_then(|l| l.prices.get(s))
                        .map(|m| format!("{}.{:02}", m / 100, m % 100))
                        .unwrap_or_default();
                    (s.as_str().to_string(), s.label().to_string(), v)
                })
                .collect();
            for o in uc::offers_of(state, &here).await? {
                let rules = uc::offer_of(&o)
                    .map(|x| {
                        x.rules
                            .iter()
                            .map(|r| r.describe(&currency))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                let when = format!(
                    "{} to {}{}{}",
                    o.valid_from,
                    o.valid_to.clone().unwrap_or_else(|| "open".into()),
                    if o.new_patients_only {
                        ", new patients"
                    } else {
                        ""
                    },
                    o.first_n
                        .map(|n| format!(", first {n}"))
                        .unwrap_or_default()
                );
                page.offers.push((o.id, o.name, rules, when, o.active));
            }
            page.products = uc::products_of(state, &here)
                .await?
                .iter()
                .map(|k| {
                    (
                        k.name.clone(),
                        format!(
                            "{} × {} for {}{}",
                            k.sessions,
                            Service::parse("s", &k.service)
                                .map(|s| s.label())
                                .unwrap_or("?"),
                            fmt_money(k.price_minor, &k.currency),
                            if k.monthly {
                                " a month, renewing monthly (a membership)".to_string()
                            } else {
                                k.valid_days
                                    .map(|d| format!(", valid {d} days"))
                                    .unwrap_or_default()
                            }
                        ),
                    )
                })
                .collect();
        }
    }
    page.error = error;
    Ok(axum::response::Html(page.render().map_err(crate::error::template)?).into_response())
}

async fn submit(
    State(state): State<AppState>,
    Path(action): Path<String>,
    f: StaffForm,
) -> PageResult {
    let c = &f.caller;
    let clinic = f.form.get("clinic_id").unwrap_or_default();
    let g = |k: &str| f.form.get(k).unwrap_or_default();
    let r: Result<String, Error> = async {
        match action.as_str() {
            "settings" => uc::set_settings(
                &state,
                c,
                uc::SettingsInput {
                    clinic_id: clinic.clone(),
                    legal_name: g("legal_name"),
                    npi: g("npi"),
                    tax_id: g("tax_id"),
                    currency: g("currency"),
                    refund_fee: g("refund_fee"),
                },
            )
            .await
            .map(|_| "setup".into()),
            "prices" => {
                let prices = Service::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), g(&format!("price_{}", s.as_str()))))
                    .collect();
                uc::set_prices(
                    &state,
                    c,
                    uc::PricesInput {
                        clinic_id: clinic.clone(),
                        effective_from: g("effective_from"),
                        currency: g("currency"),
                        prices,
                    },
                )
                .await
                .map(|_| "setup".into())
            }
            "offer" => {
                let mut rules = vec![];
                for n in 1..=3 {
                    let kind = g(&format!("rule{n}_kind"));
                    if kind.is_empty() {
                        continue;
                    }
                    rules.push(uc::RuleInput {
                        kind,
                        service: g(&format!("rule{n}_service")),
                        price: g(&format!("rule{n}_value")),
                        percent: g(&format!("rule{n}_value")).trim().parse().ok(),
                    });
                }
                let first_n = g("first_n");
                let first_n = if first_n.trim().is_empty() {
                    None
                } else {
                    Some(first_n.trim().parse::<u32>().map_err(|_| {
                        Error::from(domain::FieldError::new("first_n", "give a whole number"))
                    })?)
                };
                uc::add_offer(
                    &state,
                    c,
                    uc::OfferInput {
                        clinic_id: clinic.clone(),
                        name: g("name"),
                        valid_from: g("valid_from"),
                        valid_to: g("valid_to"),
                        new_patients_only: f.form.get("new_patients_only").is_some(),
                        first_n,
                        stackable: f.form.get("stackable").is_some(),
                        rules,
                    },
                )
                .await
                .map(|_| "setup".into())
            }
            "offer-end" | "offer-resume" => {
                uc::set_offer_active(&state, c, &clinic, &g("offer_id"), action == "offer-resume")
                    .await
                    .map(|_| "setup".into())
            }
            "product" => {
                // "90 days" is not a number of days: refused by name, never
                // read as "no expiry" (the API refuses it the same way).
                let sessions = whole("sessions", &g("sessions"))?.unwrap_or(0);
                let valid_days = whole("valid_days", &g("valid_days"))?;
                uc::add_package_product(
                    &state,
                    c,
                    uc::PackageProductInput {
                        clinic_id: clinic.clone(),
                        name: g("name"),
                        service: g("service"),
                        sessions,
                        price: g("price"),
                        valid_days,
                        monthly: f.form.get("monthly").is_some(),
                    },
                )
                .await
                .map(|_| "setup".into())
            }
            "invoice" => uc::invoice_visit(&state, c, &g("appointment_id"))
                .await
                .map(|id| format!("invoice:{id}")),
            _ => Err(Error::NotFound),
        }
    }
    .await;
    match r {
        Ok(t) if t.starts_with("invoice:") => Ok(see_other(&format!(
            "/billing/invoices/{}",
            t.trim_start_matches("invoice:")
        ))),
        Ok(t) => Ok(see_other(&format!(
            "/billing?clinic={}&tab={t}&done=1",
            enc(&clinic)
        ))),
        Err(Error::NotFound) if !matches!(action.as_str(), "invoice") => {
            Err(Error::NotFound.into())
        }
        Err(e) => {
            let (error, _) = notice(Err(e))?;
            let tab = if action == "invoice" {
                "today"
            } else {
                "setup"
            };
            view(
                &state,
                c,
                Q {
                    tab: tab.into(),
                    clinic,
                    ..Default::default()
                },
                error,
                None,
            )
            .await
        }
    }
}

/// The flash for a `done` marker: "payment-recorded" reads "Payment recorded."
fn done_text(done: &str) -> Option<String> {
    let receipt = match done {
        "payment-recorded-receipt-sent" => Some(uc::Receipt::Queued),
        "payment-recorded-no-email" => Some(uc::Receipt::NoEmail),
        _ => None,
    };
    if let Some(r) = receipt {
        return Some(format!("Payment recorded. {}", r.said()));
    }
    let t = done.replace('-', " ");
    let mut c = t.chars();
    let first = c.next()?;
    Some(format!("{}{}.", first.to_uppercase(), c.as_str()))
}

#[derive(Template)]
#[template(path = "billing/invoice.html")]
struct InvoicePage {
    layout: Layout,
    error: Option<String>,
    id: String,
    number: String,
    patient_id: String,
    patient: String,
    date: String,
    kind: String,
    /// description, codes, amount, is discount
    lines: Vec<(String, String, String, bool)>,
    entries: Vec<(String, String, String, String, String)>,
    charged: String,
    discounts: String,
    credits: String,
    paid: String,
    refunded: String,
    balance: String,
    balance_minor: String,
    owing: bool,
    packages: Vec<(String, String)>,
    refundable: Vec<(String, String)>,
    can_charge: bool,
    can_manage: bool,
    methods: Vec<(String, String)>,
    savings: String,
}

async fn invoice_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<Q>,
) -> PageResult {
    invoice_view(&state, &c, &id, None, done_text(&q.done)).await
}

async fn invoice_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let v = uc::invoice(state, c, id).await?;
    let cur = v.invoice.currency.clone();
    let clinic: domain::ids::ClinicId = v.invoice.clinic_id.parse().map_err(|_| Error::NotFound)?;
    let zone = clinic::settings::record(state, clinic)
        .await?
        .settings
        .clock();
    let packages = uc::packages_of(state, c, &v.invoice.patient_id)
        .await?
        .into_iter()
        .filter(|k| {
            k.left() > 0
                && v.lines
                    .iter()
                    .any(|l| l.kind == "charge" && l.service == k.service)
        })
        .map(|k| {
            (
                k.id.clone(),
                format!("{} ({} of {} left)", k.name, k.left(), k.sessions),
            )
        })
        .collect();
    let page = InvoicePage {
        layout: Layout::new(c, format!("Invoice {}", v.invoice.number), "billing")
            .with_flash(flash),
        error,
        id: v.invoice.id.clone(),
        number: v.invoice.number.clone(),
        patient_id: v.invoice.patient_id.clone(),
        patient: v.invoice.patient_name.clone(),
        date: v.invoice.service_date.clone(),
        kind: v.invoice.kind.clone(),
        lines: v
            .lines
            .iter()
            .map(|l| -> Result<_, Error> {
                let codes: Vec<domain::billing::Code> =
                    crate::error::stored("invoice line codes", &l.codes)?;
                let codes = codes
                    .iter()
                    .map(|c| {
                        let units = if c.units > 1 {
                            format!(" ×{}", c.units)
                        } else {
                            String::new()
                        };
                        let ndc = c
                            .ndc
                            .as_ref()
                            .map(|n| format!(" (NDC {n})"))
                            .unwrap_or_default();
                        format!("{}{units}{ndc}", c.code)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let d = l.kind == "discount";
                Ok((
                    l.description.clone(),
                    codes,
                    fmt_money(if d { -l.amount_minor } else { l.amount_minor }, &cur),
                    d,
                ))
            })
            .collect::<Result<_, _>>()?,
        entries: v
            .entries
            .iter()
            .map(|e| {
                let what = match e.kind.as_str() {
                    "payment" => format!(
                        "Payment, {}",
                        Method::parse("m", e.method.as_deref().unwrap_or(""))
                            .map(|m| m.label())
                            .unwrap_or("")
                    ),
                    "refund" => "Refund".to_string(),
                    _ => "Credit note".to_string(),
                };
                let amount = if e.kind == "payment" || e.kind == "credit" {
                    -e.amount_minor
                } else {
                    e.amount_minor
                };
                (
                    zone.stamp(e.at),
                    what,
                    [e.reference.clone(), e.reason.clone()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" · "),
                    fmt_money(amount, &e.currency),
                    e.recorded_by.clone(),
                )
            })
            .collect(),
        charged: fmt_money(v.charged, &cur),
        discounts: fmt_money(-v.discounted, &cur),
        credits: fmt_money(-v.credited, &cur),
        paid: fmt_money(-v.paid, &cur),
        refunded: fmt_money(v.refunded, &cur),
        balance: fmt_money(v.balance, &cur),
        balance_minor: format!("{}.{:02}", v.balance.max(0) / 100, v.balance.max(0) % 100),
        owing: v.balance > 0,
        packages,
        refundable: v
            .refundable
            .iter()
            .filter(|r| r.1 > 0)
            .filter_map(|(pid, can)| {
                v.entries.iter().find(|e| e.id == *pid).map(|e| {
                    (
                        pid.clone(),
                        format!(
                            "{} {} (up to {})",
                            e.method.clone().unwrap_or_default(),
                            e.reference.clone().unwrap_or_default(),
                            fmt_money(*can, &cur)
                        ),
                    )
                })
            })
            .collect(),
        can_charge: c.may(Permission::BillCharge, clinic),
        can_manage: c.may(Permission::BillManage, clinic),
        methods: Method::ALL
            .iter()
            .filter(|m| **m != Method::PackageCredit)
            .map(|m| (m.as_str().to_string(), m.label().to_string()))
            .collect(),
        savings: if v.discounted > 0 {
            fmt_money(v.discounted, &cur)
        } else {
            String::new()
        },
    };
    Ok(axum::response::Html(page.render().map_err(crate::error::template)?).into_response())
}

async fn invoice_submit(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let c = &f.caller;
    let g = |k: &str| f.form.get(k).unwrap_or_default();
    let r: Result<&str, Error> = match action.as_str() {
        "pay" | "package" => uc::pay(
            &state,
            c,
            &id,
            uc::PaymentInput {
                method: if action == "package" {
                    "package_credit".into()
                } else {
                    g("method")
                },
                amount: g("amount"),
                reference: g("reference"),
                package_id: g("package_id"),
                email_receipt: f.form.get("email_receipt").is_some(),
                at: None,
            },
        )
        .await
        .map(|r| match r {
            uc::Receipt::Queued => "payment-recorded-receipt-sent",
            uc::Receipt::NoEmail => "payment-recorded-no-email",
            uc::Receipt::NotRequested => "payment-recorded",
        }),
        "refund" => uc::refund(
            &state,
            c,
            &id,
            uc::RefundInput {
                payment_id: g("payment_id"),
                amount: g("amount"),
                reason: g("reason"),
            },
        )
        .await
        .map(|_| "refund-recorded"),
        "credit" => uc::credit(
            &state,
            c,
            &id,
            uc::CreditInput {
                amount: g("amount"),
                reason: g("reason"),
            },
        )
        .await
        .map(|_| "credit-note-issued"),
        _ => return Err(Error::NotFound.into()),
    };
    match r {
        Ok(done) => Ok(see_other(&format!("/billing/invoices/{id}?done={done}"))),
        Err(e) => {
            let (error, _) = notice(Err(e))?;
            invoice_view(&state, c, &id, error, None).await
        }
    }
}

#[derive(Template)]
#[template(path = "billing/patient_billing.html")]
struct AccountPage {
    layout: Layout,
    error: Option<String>,
    patient_id: String,
    patient: String,
    balance: String,
    owing: bool,
    invoices: Vec<(String, String, String, String, String, String, bool)>,
    uninvoiced: Vec<(String, String, String)>,
    packages: Vec<(String, String, i64, i64, String, String, bool)>,
    products: Vec<(String, String)>,
    membership_products: Vec<(String, String)>,
    memberships: Vec<MembershipRow>,
    estimates: Vec<EstimateView>,
    can_charge: bool,
    can_manage: bool,
    dose_services: Vec<(String, String)>,
    first_visit: String,
    today: String,
}

struct MembershipRow {
    id: String,
    name: String,
    detail: String,
    status: String,
    active: bool,
}

struct EstimateView {
    when: String,
    by: String,
    lines: Vec<(String, u32, String, String)>,
    savings: Vec<(String, String)>,
    list_total: String,
    total: String,
}

async fn account_page(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<Q>,
) -> PageResult {
    account_view(&state, &c, &id, None, done_text(&q.done)).await
}

async fn account_view(
    state: &AppState,
    c: &Caller,
    id: &str,
    error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let a = uc::account(state, c, id).await?;
    let clinic: domain::ids::ClinicId = a.clinic_id.parse().map_err(|_| Error::NotFound)?;
    let rec = uc::account_holder(state, c, id).await?;
    let p = uc::place(state, c, Permission::BillRead, &a.clinic_id).await?;
    let (monthly, one_off): (Vec<_>, Vec<_>) = uc::products_of(state, &a.clinic_id)
        .await?
        .into_iter()
        .filter(|k| k.active)
        .partition(|k| k.monthly);
    let products = one_off
        .iter()
        .map(|k| {
            (
                k.id.clone(),
                format!("{} ({})", k.name, fmt_money(k.price_minor, &k.currency)),
            )
        })
        .collect();
    let membership_products = monthly
        .iter()
        .map(|k| {
            (
                k.id.clone(),
                format!(
                    "{} ({} a month)",
                    k.name,
                    fmt_money(k.price_minor, &k.currency)
                ),
            )
        })
        .collect();
    let memberships = uc::memberships(state, c, id)
        .await?
        .into_iter()
        .map(|v| {
            let m = v.membership;
            MembershipRow {
                status: if m.status == "active" {
                    format!("renews on {}", v.next_renewal.clone().unwrap_or_default())
                } else {
                    format!(
                        "cancelled on {}{}",
                        m.cancelled_on.clone().unwrap_or_default(),
                        m.cancel_reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    )
                },
                active: m.status == "active",
                detail: format!(
                    "{}, {} × {} a month, since {}; {} month{} billed",
                    v.price,
                    m.sessions,
                    Service::parse("s", &m.service)
                        .map(|s| s.label())
                        .unwrap_or("?"),
                    m.started_on,
                    m.periods,
                    if m.periods == 1 { "" } else { "s" }
                ),
                name: m.product_name,
                id: m.id,
            }
        })
        .collect();
    let first_visit = a
        .invoices
        .iter()
        .filter(|v| v.invoice.kind == "visit")
        .map(|v| v.invoice.service_date.clone())
        .min()
        .unwrap_or_default();
    let page = AccountPage {
        layout: Layout::new(c, "Billing", "patients").with_flash(flash),
        error,
        patient_id: id.to_string(),
        patient: format!("{} {}", rec.details.given_name, rec.details.family_name),
        balance: fmt_money(a.balance, &a.currency),
        owing: a.balance > 0,
        invoices: a
            .invoices
            .iter()
            .map(|v| {
                let what = v
                    .lines
                    .iter()
                    .find(|l| l.kind == "charge")
                    .map(|l| l.description.clone())
                    .unwrap_or_default();
                (
                    v.invoice.id.clone(),
                    v.invoice.number.clone(),
                    v.invoice.service_date.clone(),
                    what,
                    fmt_money(v.charged - v.discounted - v.credited, &v.invoice.currency),
                    fmt_money(v.balance, &v.invoice.currency),
                    v.balance > 0,
                )
            })
            .collect(),
        uninvoiced: a.uninvoiced.clone(),
        packages: a
            .packages
            .iter()
            .map(|k| {
                (
                    k.id.clone(),
                    k.name.clone(),
                    k.used,
                    k.sessions,
                    fmt_money(k.price_minor, &k.currency),
                    k.expires_on
                        .clone()
                        .map(|e| format!("valid to {e}"))
                        .unwrap_or_default(),
                    k.refunded_at.is_some(),
                )
            })
            .collect(),
        products,
        membership_products,
        memberships,
        estimates: a
            .estimates
            .iter()
            .map(|s| {
                let (_, e) = uc::estimate_of(s)?;
                Ok::<_, Error>(EstimateView {
                    when: p.when(s.created_at),
                    by: s.created_by.clone(),
                    lines: e
                        .lines
                        .iter()
                        .map(|l| {
                            (
                                l.words.clone(),
                                l.quantity,
                                fmt_money(l.unit_minor, &e.currency),
                                fmt_money(l.minor, &e.currency),
                            )
                        })
                        .collect(),
                    savings: e
                        .savings
                        .iter()
                        .map(|l| {
                            (
                                format!("{} (×{})", l.words, l.quantity),
                                fmt_money(-l.minor, &e.currency),
                            )
                        })
                        .collect(),
                    list_total: fmt_money(e.list_total, &e.currency),
                    total: fmt_money(e.total, &e.currency),
                })
            })
            .collect::<Result<_, _>>()?,
        can_charge: c.may(Permission::BillCharge, clinic),
        can_manage: c.may(Permission::BillManage, clinic),
        dose_services: Service::ALL
            .iter()
            .filter(|s| s.is_dose())
            .map(|s| (s.as_str().to_string(), s.label().to_string()))
            .collect(),
        first_visit,
        today: p.today().to_string(),
    };
    Ok(axum::response::Html(page.render().map_err(crate::error::template)?).into_response())
}

async fn account_submit(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    f: StaffForm,
) -> PageResult {
    let c = &f.caller;
    let g = |k: &str| f.form.get(k).unwrap_or_default();
    let num = |k: &str| -> Result<u32, Error> {
        let v = g(k);
        if v.trim().is_empty() {
            return Ok(0);
        }
        v.trim()
            .parse()
            .map_err(|_| Error::from(domain::FieldError::new(k, "give a whole number")))
    };
    let r: Result<String, Error> = async {
        match action.as_str() {
            "invoice" => uc::invoice_visit(&state, c, &g("appointment_id"))
                .await
                .map(|inv| format!("/billing/invoices/{inv}?done=invoice-issued")),
            "package" => uc::sell_package(&state, c, &id, &g("product_id"))
                .await
                .map(|inv| format!("/billing/invoices/{inv}?done=package-sold")),
            "membership" => uc::start_membership(&state, c, &id, &g("product_id"))
                .await
                .map(|inv| format!("/billing/invoices/{inv}?done=membership-started")),
            "membership-cancel" => {
                uc::cancel_membership(&state, c, &g("membership_id"), &g("reason"))
                    .await
                    .map(|_| format!("/patients/{id}/billing?done=membership-cancelled"))
            }
            "package-refund" => uc::refund_package(&state, c, &g("package_id"), &g("reason"))
                .await
                .map(|_| format!("/patients/{id}/billing?done=package-refunded")),
            "statement" => uc::send_statement(&state, c, &id)
                .await
                .map(|_| format!("/patients/{id}/billing?done=statement-queued")),
            "estimate" => {
                let input = domain::billing::EstimateInput {
                    service: Service::parse("service", &g("service"))?,
                    induction: num("induction")?,
                    every_weeks: num("every_weeks")?,
                    months: num("months")?,
                    integration: num("integration")?,
                    intake: f.form.get("intake").is_some(),
                };
                uc::make_estimate(&state, c, &id, input)
                    .await
                    .map(|_| format!("/patients/{id}/billing?done=estimate-saved"))
            }
            _ => Err(Error::NotFound),
        }
    }
    .await;
    match r {
        Ok(to) => Ok(see_other(&to)),
        Err(Error::NotFound) => Err(Error::NotFound.into()),
        Err(e) => {
            let (error, _) = notice(Err(e))?;
            account_view(&state, c, &id, error, None).await
        }
    }
}

#[derive(Deserialize, Default)]
struct PeriodQ {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

async fn superbill(
    State(state): State<AppState>,
    Staff(c): Staff,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<PeriodQ>,
) -> PageResult {
    let pdf = uc::superbill(&state, &c, &id, &q.from, &q.to).await?;
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

/// A whole number typed in a form field: `None` when left empty, a field
/// error naming the field when it is anything but digits.
fn whole(field: &str, typed: &str) -> Result<Option<u32>, Error> {
    let t = typed.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| domain::FieldError::new(field, "must be a whole number").into())
}
