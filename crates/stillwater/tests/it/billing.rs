//! Cash-pay billing over HTTP on both backends, trying to break it: bad
//! NPIs and tax ids, negative prices, a list in a second currency, an offer
//! outside its dates, payments above what is owed, refunds above what was
//! paid, a package with no sessions left, a second invoice for one visit,
//! and the database refusing to change an entry. A month of infusions (the
//! Schedule III demo's visits, with their draws) is billed: the visit's
//! codes carry the infusion time and the drug's NDC, a package pays one
//! session and a card the rest, the superbill PDF holds the codes,
//! diagnoses and totals, and the seeds' numbers come out of the estimate.

// Money is written as dollars_cents (275_00 is $275.00).
#![allow(clippy::inconsistent_digit_grouping)]

use serde_json::{json, Value};

use crate::api::Api;
use crate::both;
use crate::helpers::*;

async fn api<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token(user).await,
    }
}

fn minor(v: &Value) -> i64 {
    v["minor"].as_i64().unwrap_or(i64::MIN)
}

/// The Schedule III demo: a month of attended IV infusions with their draws.
pub(crate) async fn month_of_visits(app: &TestApp) {
    let dir = std::env::temp_dir().join(format!("sw-bill-{}", uuid::Uuid::now_v7().simple()));
    let cfg = stillwater::config::Config {
        data_dir: dir,
        ..Default::default()
    };
    let (protocols, instruments) = (cfg.protocols().unwrap(), cfg.instruments().unwrap());
    stillwater::demo_intake::load(&app.store, &protocols, &instruments)
        .await
        .unwrap();
    stillwater::demo_substances::load(&app.store, &protocols, &instruments)
        .await
        .unwrap();
}

/// Glendale's billing details (legal name, NPI, EIN, dollars), set by the
/// caller (an admin).
pub(crate) async fn billing_details(
    state: &clinic::Clinic,
    admin: &clinic::actor::Caller,
    clinic: domain::ids::ClinicId,
) {
    clinic::billing::set_settings(
        state,
        admin,
        clinic::billing::SettingsInput {
            clinic_id: clinic.to_string(),
            legal_name: "Stillwater Glendale PLLC".into(),
            npi: "1452763893".into(),
            tax_id: "86-2718345".into(),
            currency: "USD".into(),
            refund_fee: "25".into(),
        },
    )
    .await
    .unwrap();
}

async fn a_month_of_cash_pay_billing(app: &TestApp) {
    month_of_visits(app).await;
    let g = app.glendale.to_string();
    let admin = api(app, "ada.admin").await;
    let desk = api(app, "dana.frontdesk").await;
    let nurse = api(app, "nina.nurse").await;
    let auditor = api(app, "audrey.auditor").await;
    let today = app
        .now_ts()
        .to_zoned(jiff::tz::TimeZone::get("America/Phoenix").unwrap())
        .date();

    // Billing details: a wrong NPI check digit and a malformed EIN are named.
    let (s, e) = desk
        .post("/api/v1/prices", &json!({"clinic_id": g, "effective_from": today.to_string(), "currency": "USD", "prices": {"iv_infusion": "300"}}))
        .await;
    assert_eq!(s, 403, "the front desk does not set prices: {e}");
    let (state, admin_caller) = app.acting_as("ada.admin").await;
    let bad = clinic::billing::set_settings(
        &state,
        &admin_caller,
        clinic::billing::SettingsInput {
            clinic_id: g.clone(),
            legal_name: "Stillwater Glendale PLLC".into(),
            npi: "1452763894".into(),
            tax_id: "862718345".into(),
            currency: "USD".into(),
            refund_fee: "25".into(),
        },
    )
    .await;
    match bad {
        Err(clinic::Error::Invalid(v)) => {
            let f: Vec<_> = v.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(f, vec!["npi", "tax_id"], "{v:?}");
        }
        other => panic!("{other:?}"),
    }
    billing_details(&state, &admin_caller, app.glendale).await;

    // Prices: negative, a second currency and a past start are refused.
    let (s, e) = admin
        .post("/api/v1/prices", &json!({"clinic_id": g, "effective_from": today.to_string(), "currency": "EUR", "prices": {"iv_infusion": "-300", "intake": "175"}}))
        .await;
    assert_eq!(s, 422, "{e}");
    let f = fields(&e);
    assert!(
        f.contains(&"iv_infusion".to_string()) && f.contains(&"currency".to_string()),
        "{e}"
    );
    let (s, e) = admin
        .post("/api/v1/prices", &json!({"clinic_id": g, "effective_from": "2020-01-01", "currency": "USD", "prices": {"iv_infusion": "300"}}))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["effective_from".to_string()]),
        "{e}"
    );
    // Amounts that could be misread are named, never guessed ("1,00" is not
    // $100.00; euros are not dollars), and unknown fields are refused.
    for amount in ["1,00", "0,5", "1,2,3", "€1.00", "£1.00", "1.00 EUR"] {
        let (s, e) = admin
            .post("/api/v1/prices", &json!({"clinic_id": g, "effective_from": today.to_string(), "currency": "USD", "prices": {"iv_infusion": amount}}))
            .await;
        assert_eq!(s, 422, "{amount}: {e}");
        assert_eq!(fields(&e)[0], "iv_infusion", "{amount}: {e}");
    }
    let (s, e) = admin
        .post("/api/v1/prices", &json!({"clinic_id": g, "effective_from": today.to_string(), "currency": "USD", "prices": {"iv_infusion": "300"}, "discount": "all"}))
        .await;
    assert_eq!((s, fields(&e)), (400, vec!["discount".to_string()]), "{e}");
    // The month's visits are priced by a list written for them (a list
    // through the API starts today at the earliest).
    let mut ev = store::audit::NewAuditEvent::new(domain::audit::Action::BillSettings, "test");
    ev.org_id = Some(app.store.any_org().await.unwrap().unwrap().to_string());
    app.store
        .insert_price_list(
            &store::billing::StoredPriceList {
                id: uuid::Uuid::now_v7().to_string(),
                clinic_id: g.clone(),
                effective_from: (today - jiff::Span::new().days(60)).to_string(),
                currency: "USD".into(),
                prices: json!({"intake": 17500, "iv_infusion": 30000, "integration": 15000, "rescue_medication": 3500, "no_show_fee": 15000, "late_cancel_fee": 10000, "consultation": 0}).to_string(),
                created_at: app.now(),
            },
            &admin_caller.user_id().unwrap().to_string(),
            ev,
        )
        .await
        .unwrap();
    let (s, _) = admin
        .post("/api/v1/prices", &json!({"clinic_id": g, "effective_from": (today + jiff::Span::new().days(30)).to_string(), "currency": "USD", "prices": {"iv_infusion": "325", "intake": "175"}}))
        .await;
    assert_eq!(s, 201);
    let (s, v) = desk.get(&format!("/api/v1/prices?clinic_id={g}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["price_lists"].as_array().unwrap().len(), 2, "{v}");

    // Offers: the new-patient special, and one that ended last year.
    let (s, e) = admin
        .post("/api/v1/offers", &json!({"clinic_id": g, "name": "Bad", "valid_from": "2026-02-01", "valid_to": "2026-01-01", "rules": [{"kind": "fixed_price", "service": "iv_infusion", "price": "350"}]}))
        .await;
    assert_eq!(s, 422, "{e}");
    let f = fields(&e);
    assert!(f.contains(&"valid_to".to_string()), "{e}");
    let (s, special) = admin
        .post("/api/v1/offers", &json!({"clinic_id": g, "name": "New Patient Special", "valid_from": (today - jiff::Span::new().days(60)).to_string(), "valid_to": (today + jiff::Span::new().days(60)).to_string(), "new_patients_only": true, "first_n": 6,
            "rules": [{"kind": "waive", "service": "intake"}, {"kind": "fixed_price", "service": "iv_infusion", "price": "275"}]}))
        .await;
    assert_eq!(s, 201, "{special}");
    let (s, old) = admin
        .post("/api/v1/offers", &json!({"clinic_id": g, "name": "Spring 2025", "valid_from": "2025-03-01", "valid_to": "2025-05-31",
            "rules": [{"kind": "percent_off", "service": "iv_infusion", "percent": 20}]}))
        .await;
    assert_eq!(s, 201, "{old}");

    // The seeds' numbers: the special on a six-infusion induction saves $325.
    let patients = app
        .store
        .search_patients(&[app.glendale], "", 200)
        .await
        .unwrap();
    let fresh = patients.first().unwrap().id.to_string();
    let (s, est) = desk
        .post(
            "/api/v1/estimates",
            &json!({"patient_id": fresh, "service": "iv_infusion", "induction": 6, "intake": true}),
        )
        .await;
    assert_eq!(s, 201, "{est}");
    let saved: i64 = est["savings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| minor(&l["amount"]))
        .sum();
    assert_eq!(saved, 325_00, "{est}");
    assert_eq!(minor(&est["total"]), 1650_00, "{est}");
    let (s, e) = desk
        .post(
            "/api/v1/estimates",
            &json!({"patient_id": fresh, "service": "late_cancel_fee", "induction": 99}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(fields(&e), vec!["service", "induction"], "{e}");

    // The month's visits: the first attended infusion of a patient.
    let (s, acct) = desk
        .get(&format!(
            "/api/v1/invoices?patient_id={}",
            chosen(app).await
        ))
        .await;
    assert_eq!(s, 200, "{acct}");
    let visits = acct["uninvoiced_visits"].as_array().unwrap().clone();
    assert!(visits.len() >= 3, "{acct}");
    let pid = chosen(app).await;
    let first = visits[0]["appointment_id"].as_str().unwrap().to_string();
    let second = visits[1]["appointment_id"].as_str().unwrap().to_string();
    let third = visits[2]["appointment_id"].as_str().unwrap().to_string();

    // An offer outside its dates is refused with why; nothing is invoiced.
    let (s, e) = desk
        .post(
            "/api/v1/invoices",
            &json!({"appointment_id": first, "offer_id": old["id"]}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["offer_id".to_string()]), "{e}");
    assert!(
        e.to_string().contains("runs from 2025-03-01 to 2025-05-31"),
        "{e}"
    );
    let (s, e) = nurse
        .post("/api/v1/invoices", &json!({"appointment_id": first}))
        .await;
    assert_eq!(s, 403, "nurses do not invoice: {e}");
    let (s, inv) = desk
        .post("/api/v1/invoices", &json!({"appointment_id": first}))
        .await;
    assert_eq!(s, 201, "{inv}");
    let (s, e) = desk
        .post("/api/v1/invoices", &json!({"appointment_id": first}))
        .await;
    assert_eq!(s, 409, "a visit is invoiced once: {e}");
    // Outside the invoice's clinic it does not exist; without a billing role there is no account.
    let denver_nurse = api(app, "nate.nurse").await;
    let (s, _) = denver_nurse
        .get(&format!("/api/v1/invoices/{}", inv["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 404);
    let (s, _) = denver_nurse
        .get(&format!("/api/v1/invoices?patient_id={pid}"))
        .await;
    assert_eq!(s, 403);
    let lines = inv["lines"].as_array().unwrap();
    let codes: Vec<String> = lines[0]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        codes,
        vec!["96365", "J3490"],
        "40 minutes: no 96366; the drug rides along: {inv}"
    );
    let drug = &lines[0]["codes"][1];
    assert_eq!(
        drug["ndc"].as_str().map(|n| n.len() >= 10),
        Some(true),
        "{drug}"
    );
    assert_eq!(minor(&lines[0]["amount"]), 300_00);
    // The special applies (a new patient): $25 off, from the rule.
    assert_eq!(minor(&lines[1]["amount"]), -25_00, "{inv}");
    assert!(lines[1]["description"]
        .as_str()
        .unwrap()
        .contains("IV infusion at $275.00"));
    assert_eq!(minor(&inv["balance"]), 275_00);
    let inv_id = inv["id"].as_str().unwrap().to_string();

    // Payments: more than owed, no card reference, a bad amount.
    for (body, field) in [
        (
            json!({"invoice_id": inv_id, "method": "cash", "amount": "275.01"}),
            "amount",
        ),
        (
            json!({"invoice_id": inv_id, "method": "card", "amount": "100"}),
            "reference",
        ),
        (
            json!({"invoice_id": inv_id, "method": "cash", "amount": "12.345"}),
            "amount",
        ),
        (
            json!({"invoice_id": inv_id, "method": "bitcoin", "amount": "1"}),
            "method",
        ),
    ] {
        let (s, e) = desk.post("/api/v1/payments", &body).await;
        assert_eq!(
            (s, fields(&e)),
            (422, vec![field.to_string()]),
            "{body}: {e}"
        );
    }
    let (s, v) = desk
        .post("/api/v1/payments", &json!({"invoice_id": inv_id, "method": "card", "amount": "200", "reference": "AUTH 118822", "email_receipt": true}))
        .await;
    assert_eq!(s, 201, "{v}");
    // The desk learns whether the receipt went: never skipped silently.
    let email = app
        .store
        .patient(pid.parse().unwrap(), &[app.glendale])
        .await
        .unwrap()
        .unwrap()
        .details
        .email;
    assert_eq!(
        v["receipt"],
        if email.is_some() {
            "queued"
        } else {
            "no_email"
        },
        "{v}"
    );
    let pay_id = v["entries"][0]["id"].as_str().unwrap().to_string();
    // Without an address on file, a receipt asked for is said not sent.
    let (s, e) = desk
        .patch(&format!("/api/v1/patients/{pid}"), &json!({"email": null}))
        .await;
    assert_eq!(s, 200, "{e}");
    let (s, v) = desk
        .post(
            "/api/v1/payments",
            &json!({"invoice_id": inv_id, "method": "cash", "amount": "75", "email_receipt": true}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(v["receipt"], "no_email", "{v}");
    let (s, e) = desk
        .patch(&format!("/api/v1/patients/{pid}"), &json!({"email": email}))
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(minor(&v["balance"]), 0);
    let (s, e) = desk
        .post(
            "/api/v1/payments",
            &json!({"invoice_id": inv_id, "method": "cash", "amount": "1"}),
        )
        .await;
    assert_eq!(s, 409, "nothing is owed: {e}");
    // Refunds: the desk may not; more than the payment holds is refused.
    let (s, _) = desk
        .post(
            &format!("/api/v1/invoices/{inv_id}/refunds"),
            &json!({"payment_id": pay_id, "amount": "10", "reason": "goodwill"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, e) = admin
        .post(
            &format!("/api/v1/invoices/{inv_id}/refunds"),
            &json!({"payment_id": pay_id, "amount": "200.01", "reason": "goodwill"}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["amount".to_string()]), "{e}");
    assert!(
        e.to_string().contains("$200.00 paid and not yet refunded"),
        "{e}"
    );
    let (s, v) = admin
        .post(&format!("/api/v1/invoices/{inv_id}/refunds"), &json!({"payment_id": pay_id, "amount": "50", "reason": "Waited an hour past the booked time"}))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(minor(&v["balance"]), 50_00);
    // A credit note settles it, and cannot exceed what is owed.
    let (s, e) = admin
        .post(
            &format!("/api/v1/invoices/{inv_id}/credits"),
            &json!({"amount": "50.01", "reason": "x"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, v) = admin
        .post(
            &format!("/api/v1/invoices/{inv_id}/credits"),
            &json!({"amount": "50", "reason": "Goodwill for the wait"}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(minor(&v["balance"]), 0);

    // A package: sold, paid by card, one session pays the next visit.
    let (s, e) = admin
        .post("/api/v1/packages/products", &json!({"clinic_id": g, "name": "Induction series", "service": "iv_infusion", "sessions": 0, "price": "-1"}))
        .await;
    assert_eq!(s, 422);
    assert_eq!(fields(&e), vec!["sessions", "price"], "{e}");
    let (s, prod) = admin
        .post("/api/v1/packages/products", &json!({"clinic_id": g, "name": "Two infusions", "service": "iv_infusion", "sessions": 2, "price": "500", "valid_days": 90}))
        .await;
    assert_eq!(s, 201, "{prod}");
    let (s, sold) = desk
        .post(
            "/api/v1/packages",
            &json!({"patient_id": pid, "product_id": prod["id"]}),
        )
        .await;
    assert_eq!(s, 201, "{sold}");
    let pkg_inv = sold["invoice_id"].as_str().unwrap();
    let (s, _) = desk
        .post("/api/v1/payments", &json!({"invoice_id": pkg_inv, "method": "card", "amount": "500", "reference": "AUTH 220033"}))
        .await;
    assert_eq!(s, 201);
    let (_, pk) = desk
        .get(&format!("/api/v1/packages?patient_id={pid}"))
        .await;
    let pkg = pk["packages"][0]["id"].as_str().unwrap().to_string();
    let mut ids = vec![];
    for appt in [&second, &third] {
        let (s, inv) = desk
            .post("/api/v1/invoices", &json!({"appointment_id": appt}))
            .await;
        assert_eq!(s, 201, "{inv}");
        let id = inv["id"].as_str().unwrap().to_string();
        let (s, v) = desk
            .post(
                "/api/v1/payments",
                &json!({"invoice_id": id, "method": "package_credit", "package_id": pkg}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(
            minor(&v["balance"]),
            0,
            "the session covers the discounted infusion: {v}"
        );
        ids.push(id);
    }
    let (_, pk) = desk
        .get(&format!("/api/v1/packages?patient_id={pid}"))
        .await;
    assert_eq!(pk["packages"][0]["left"], 0, "{pk}");
    // No session left: refused, naming the package.
    if let Some(fourth) = visits.get(3).and_then(|v| v["appointment_id"].as_str()) {
        let (s, inv) = desk
            .post("/api/v1/invoices", &json!({"appointment_id": fourth}))
            .await;
        assert_eq!(s, 201, "{inv}");
        let (s, e) = desk
            .post(
                "/api/v1/payments",
                &json!({"invoice_id": inv["id"], "method": "package_credit", "package_id": pkg}),
            )
            .await;
        assert_eq!((s, fields(&e)), (422, vec!["package".to_string()]), "{e}");
        assert!(e.to_string().contains("no sessions left"), "{e}");
    }

    // A package refunded unused: the price less the clinic's $25 fee; once.
    let (s, sold) = desk
        .post(
            "/api/v1/packages",
            &json!({"patient_id": pid, "product_id": prod["id"]}),
        )
        .await;
    assert_eq!(s, 201, "{sold}");
    let (s, _) = desk
        .post(
            "/api/v1/payments",
            &json!({"invoice_id": sold["invoice_id"], "method": "cash", "amount": "500"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, pk) = desk
        .get(&format!("/api/v1/packages?patient_id={pid}"))
        .await;
    let unused = pk["packages"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(unused, pkg, "newest first: {pk}");
    let (s, _) = desk
        .post(
            &format!("/api/v1/packages/{unused}/refund"),
            &json!({"reason": "Moving away"}),
        )
        .await;
    assert_eq!(s, 403, "refunds are the admin's");
    let (s, v) = admin
        .post(
            &format!("/api/v1/packages/{unused}/refund"),
            &json!({"reason": "Moving away"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(minor(&v["refunded"]), 475_00, "{v}");
    let (s, _) = admin
        .post(
            &format!("/api/v1/packages/{unused}/refund"),
            &json!({"reason": "again"}),
        )
        .await;
    assert_eq!(s, 409);

    // The database refuses to change a payment or an invoice line.
    store::on_pool!(app.store.raw_pool(), p => {
        assert!(sqlx::query("UPDATE billing_entries SET amount_minor = 1").execute(p).await.is_err());
        assert!(sqlx::query("DELETE FROM billing_entries").execute(p).await.is_err());
        assert!(sqlx::query("UPDATE invoice_lines SET amount_minor = 0").execute(p).await.is_err());
        assert!(sqlx::query("UPDATE invoices SET currency = 'EUR'").execute(p).await.is_err());
        assert!(sqlx::query("DELETE FROM invoices").execute(p).await.is_err());
        // The no-op update that locks an invoice still works.
        sqlx::query("UPDATE invoices SET issued_at = issued_at").execute(p).await.unwrap();
    });

    // The superbill: practice, codes, the NDC, diagnoses and totals.
    let web = app.login("dana.frontdesk").await;
    let r = web.get(&format!("/patients/{pid}/superbill.pdf")).await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let doc = lopdf::Document::load_mem(&bytes).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).unwrap().replace('\n', " ");
    for needle in [
        "Superbill",
        "NPI 1452763893",
        "86-2718345",
        "96365",
        "J3490",
        "F41.1",
        &format!(
            "Net charges {}",
            domain::billing::fmt_money(225_00 + 275_00 * (visits.len().min(4) as i64 - 1), "USD")
        ),
    ] {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
    let r = web
        .get(&format!(
            "/patients/{pid}/superbill.pdf?from=2020-01-01&to=2020-02-01"
        ))
        .await;
    assert_eq!(r.status(), 422, "a period with no visits is named");

    // The day close and the reports add up; the auditor reads them.
    let (s, d) = auditor
        .get(&format!("/api/v1/payments?clinic_id={g}"))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        minor(&d["total"]),
        200_00 + 75_00 - 50_00 + 500_00 + 2 * 275_00 + 500_00 - 475_00,
        "{d}"
    );
    let (s, r) = auditor
        .get(&format!("/api/v1/invoices?clinic_id={g}"))
        .await;
    assert_eq!(s, 200, "{r}");
    let cost: i64 = r["offer_cost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| minor(&o["cost"]))
        .sum();
    assert_eq!(
        cost,
        3 * 25_00 + if visits.len() > 3 { 25_00 } else { 0 },
        "{r}"
    );
    assert_eq!(r["package_liability"]["sessions"], 0, "{r}");
    // The package's sale is revenue once: the two visits it paid count
    // nothing more.
    let rows = r["revenue"].as_array().unwrap();
    let from_packages: i64 = rows.iter().map(|x| minor(&x["from_packages"])).sum();
    assert_eq!(from_packages, 2 * 275_00, "{r}");
    let packages = rows
        .iter()
        .find(|x| x["service"].as_str().unwrap().starts_with("Packages"))
        .unwrap();
    // Two sold: the one used and the one refunded unused (refunds are on
    // the day close).
    assert_eq!(minor(&packages["charged"]), 2 * 500_00, "{r}");
    for x in rows {
        assert_eq!(
            minor(&x["net"]),
            minor(&x["charged"]) - minor(&x["discounts"]) - minor(&x["from_packages"]),
            "{x}"
        );
    }
    let (s, _) = nurse.get(&format!("/api/v1/invoices?clinic_id={g}")).await;
    assert_eq!(s, 403, "nurses do not read billing");

    // The receipt went by e-mail, with nothing about the patient in the subject.
    let sink = SmtpSink::start().await;
    let mailer = crate::measures::mailer_state(app, &sink).await;
    clinic::outbox::drain(&mailer, app.now()).await.unwrap();
    let mail = sink.all();
    let m = mail
        .iter()
        .find(|m| m.contains("Subject: Your receipt from"))
        .expect("receipt sent");
    assert!(m.contains("$200.00") && m.contains("Card"), "{m}");

    // The API is documented.
    let doc = app.api_doc().await;
    for p in [
        "/api/v1/prices",
        "/api/v1/offers",
        "/api/v1/packages",
        "/api/v1/invoices",
        "/api/v1/invoices/{id}",
        "/api/v1/payments",
        "/api/v1/superbills",
        "/api/v1/estimates",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }

    // Every read and change above is in the audit trail against the patient.
    for a in [
        "bill.invoice",
        "bill.payment",
        "bill.refund",
        "bill.credit",
        "bill.print",
        "bill.estimate",
        "bill.package",
    ] {
        assert!(app.store.count_audit(a).await.unwrap() > 0, "{a}");
    }
}
both!(a_month_of_cash_pay_billing);

/// The Glendale patient the Schedule III demo gave a month of infusions.
async fn chosen(app: &TestApp) -> String {
    let (n,): (String,) = store::on_pool!(app.store.raw_pool(), p => {
        sqlx::query_as("SELECT a.patient_id FROM appointments a WHERE a.clinic_id = $1 AND a.status = 'completed' \
             GROUP BY a.patient_id ORDER BY COUNT(*) DESC, a.patient_id LIMIT 1")
            .bind(app.glendale.to_string()).fetch_one(p).await.unwrap()
    });
    n
}

/// The demo's month of billing loads on both backends and adds up: every
/// invoice's balance is its lines less its entries, and none is negative.
async fn the_demo_month_of_billing_adds_up(app: &TestApp) {
    month_of_visits(app).await;
    stillwater::demo_billing::load(&app.store).await.unwrap();
    let (n, neg): (i64, i64) = store::on_pool!(app.store.raw_pool(), p => {
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN b < 0 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM ( \
             SELECT i.id, \
               CAST((SELECT COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount_minor ELSE -amount_minor END), 0) FROM invoice_lines l WHERE l.invoice_id = i.id) AS BIGINT) \
             - CAST((SELECT COALESCE(SUM(CASE WHEN kind = 'refund' THEN -amount_minor ELSE amount_minor END), 0) FROM billing_entries e WHERE e.invoice_id = i.id) AS BIGINT) AS b \
             FROM invoices i) x")
            .fetch_one(p).await.unwrap()
    });
    assert!(n >= 20, "a month of invoices: {n}");
    assert_eq!(neg, 0);
    let desk = api(app, "dana.frontdesk").await;
    let (s, r) = desk
        .get(&format!(
            "/api/v1/invoices?clinic_id={}&from={}",
            app.glendale, "2020-01-01"
        ))
        .await;
    assert_eq!(s, 200);
    assert!(!r["revenue"].as_array().unwrap().is_empty(), "{r}");
}
both!(the_demo_month_of_billing_adds_up);

/// Maintenance memberships: the first month invoiced at the start, each later
/// month on the same day of the month, once however many renewal runs race,
/// none after a cancellation; the month's sessions end with the month.
async fn memberships_bill_each_month(app: &TestApp) {
    month_of_visits(app).await;
    stillwater::demo_billing::load(&app.store).await.unwrap();
    let g = app.glendale.to_string();
    let desk = api(app, "dana.frontdesk").await;
    let state = clinic::Clinic::new(app.store.clone(), clinic::Config::default());
    let day = 86_400_000_000i64;
    let now = app.now();

    // The demo's members joined about six weeks ago: two months are billed.
    let (s, r) = desk.get(&format!("/api/v1/packages?clinic_id={g}")).await;
    assert_eq!(s, 200, "{r}");
    let products = r["products"].as_array().unwrap();
    let monthly = products
        .iter()
        .find(|k| k["monthly"] == true)
        .expect("a membership product")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let series = products.iter().find(|k| k["monthly"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let members = app.store.active_memberships().await.unwrap();
    assert_eq!(members.len(), 3, "two at Glendale, one at Denver");
    for m in &members {
        assert_eq!(m.periods, 2, "{m:?}");
    }
    // Running the renewals again bills nothing more.
    assert_eq!(
        clinic::billing::renew_memberships(&state, now)
            .await
            .unwrap(),
        0
    );

    // A new member.
    let (s, p) = desk
        .post("/api/v1/patients", &json!({"clinic_id": g, "given_name": "Tamsin", "family_name": "Lowry", "date_of_birth": "1981-06-30"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    // Wrong kinds of product are named.
    let (s, e) = desk
        .post(
            "/api/v1/packages",
            &json!({"patient_id": pid, "product_id": monthly}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["product_id".to_string()]),
        "{e}"
    );
    assert!(e.to_string().contains("start it as a membership"), "{e}");
    let (s, e) = desk
        .post(
            "/api/v1/memberships",
            &json!({"patient_id": pid, "product_id": series}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["product_id".to_string()]),
        "{e}"
    );
    let auditor = api(app, "audrey.auditor").await;
    let (s, _) = auditor
        .post(
            "/api/v1/memberships",
            &json!({"patient_id": pid, "product_id": monthly}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, r) = desk
        .post(
            "/api/v1/memberships",
            &json!({"patient_id": pid, "product_id": monthly}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let first = r["invoice_id"].as_str().unwrap().to_string();
    let (s, e) = desk
        .post(
            "/api/v1/memberships",
            &json!({"patient_id": pid, "product_id": monthly}),
        )
        .await;
    assert_eq!(s, 409, "one running membership of a kind: {e}");
    let (_, inv) = desk.get(&format!("/api/v1/invoices/{first}")).await;
    assert_eq!(minor(&inv["balance"]), 525_00, "{inv}");
    // The month's session, ending with the month.
    let (_, r) = desk
        .get(&format!("/api/v1/memberships?patient_id={pid}"))
        .await;
    let m = &r["memberships"][0];
    assert_eq!(m["months_billed"], 1, "{r}");
    let started: jiff::civil::Date = m["started_on"].as_str().unwrap().parse().unwrap();
    let next: jiff::civil::Date = m["next_renewal"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, started + jiff::Span::new().months(1));
    let (_, r) = desk
        .get(&format!("/api/v1/packages?patient_id={pid}"))
        .await;
    let pk = &r["packages"][0];
    assert_eq!(pk["sessions"], 1, "{r}");
    assert_eq!(
        pk["expires_on"].as_str().unwrap(),
        next.yesterday().unwrap().to_string(),
        "{r}"
    );

    // The day before the renewal: nothing. On it: two runs at once bill it once.
    let tz = jiff::tz::TimeZone::get("America/Phoenix").unwrap();
    let noon = |d: jiff::civil::Date| {
        d.to_datetime(jiff::civil::time(12, 0, 0, 0))
            .to_zoned(tz.clone())
            .unwrap()
            .timestamp()
            .as_microsecond()
    };
    let count = |r: &Value| r["invoices"].as_array().map(|a| a.len()).unwrap_or(0);
    clinic::billing::renew_memberships(&state, noon(next.yesterday().unwrap()))
        .await
        .unwrap();
    let (_, r) = desk
        .get(&format!("/api/v1/invoices?patient_id={pid}"))
        .await;
    assert_eq!(count(&r), 1, "{r}");
    let at = noon(next);
    let (a, b) = tokio::join!(
        clinic::billing::renew_memberships(&state, at),
        clinic::billing::renew_memberships(&state, at)
    );
    let made = a.unwrap() + b.unwrap();
    // Each running membership has billed every month begun by then, once.
    let today = next;
    let mut due = 0;
    for m in app.store.active_memberships().await.unwrap() {
        let start: jiff::civil::Date = m.started_on.parse().unwrap();
        let begun = (0..)
            .take_while(|k| start + jiff::Span::new().months(*k) <= today)
            .count() as i64;
        assert_eq!(m.periods, begun, "{m:?}");
        due += 1;
    }
    assert!(made >= 1 && made <= due as usize, "{made} of {due}");
    let (_, r) = desk
        .get(&format!("/api/v1/invoices?patient_id={pid}"))
        .await;
    let invoices = r["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 2, "{r}");
    assert!(
        invoices
            .iter()
            .any(|i| i["service_date"] == next.to_string().as_str()),
        "{r}"
    );

    // Cancelled: a reason is required, it happens once, and no month follows.
    let id = m["id"].as_str().unwrap().to_string();
    let (s, e) = desk
        .post(
            &format!("/api/v1/memberships/{id}/cancel"),
            &json!({"reason": "  "}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["reason".to_string()]), "{e}");
    let (s, _) = auditor
        .post(
            &format!("/api/v1/memberships/{id}/cancel"),
            &json!({"reason": "moving away"}),
        )
        .await;
    assert_eq!(
        s, 403,
        "the auditor reads memberships but does not end them"
    );
    let (s, r) = desk
        .post(
            &format!("/api/v1/memberships/{id}/cancel"),
            &json!({"reason": "moving away"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "cancelled");
    let (s, _) = desk
        .post(
            &format!("/api/v1/memberships/{id}/cancel"),
            &json!({"reason": "again"}),
        )
        .await;
    assert_eq!(s, 409);
    assert!(
        clinic::billing::renew_memberships(&state, now + 100 * day)
            .await
            .unwrap()
            >= 1,
        "the demo members renew"
    );
    let (_, r) = desk
        .get(&format!("/api/v1/invoices?patient_id={pid}"))
        .await;
    assert_eq!(r["invoices"].as_array().unwrap().len(), 2, "{r}");
    // Denver's staff do not see a Glendale membership.
    let denver = api(app, "nate.nurse").await;
    let (s, _) = denver
        .get(&format!("/api/v1/memberships?patient_id={pid}"))
        .await;
    assert!(s == 403 || s == 404, "{s}");
}
both!(memberships_bill_each_month);

/// A stored value that does not parse is an error (logged with what it
/// was), never a default: an estimate whose stored JSON was damaged is not
/// shown as an empty estimate, nor left out of the list.
async fn damaged_stored_json_is_an_error_not_a_default(app: &TestApp) {
    stillwater::demo_billing::load(&app.store).await.unwrap();
    let desk = api(app, "dana.frontdesk").await;
    let (g, _) = app.patient_ids().await;
    let (s, est) = desk
        .post(
            "/api/v1/estimates",
            &json!({"patient_id": g.to_string(), "service": "iv_infusion", "induction": 6}),
        )
        .await;
    assert_eq!(s, 201, "{est}");
    let list = format!("/api/v1/estimates?patient_id={g}");
    let (s, _) = desk.get(&list).await;
    assert_eq!(s, 200);
    let owner = app.owner_pool().await;
    store::on_pool!(&owner, p => {
        sqlx::query("UPDATE estimates SET estimate = '{\"lines\": [' WHERE id = $1")
            .bind(est["id"].as_str().unwrap())
            .execute(p)
            .await
            .unwrap();
    });
    let (s, body) = desk.get(&list).await;
    assert_eq!(s, 500, "{body}");
    assert!(!body.to_string().contains("\"lines\""), "{body}");
}
both!(damaged_stored_json_is_an_error_not_a_default);

/// The package form and the API read a number of days one way: "90 days"
/// is refused by name on both, never stored as "no expiry".
async fn a_package_s_days_are_read_one_way(app: &TestApp) {
    let g = app.glendale.to_string();
    let admin = api(app, "ada.admin").await;
    let product = |days: Value| {
        json!({"clinic_id": g, "name": "Three infusions", "service": "iv_infusion",
               "sessions": 3, "price": "750", "valid_days": days})
    };
    let (s, e) = admin
        .post("/api/v1/packages/products", &product(json!("90 days")))
        .await;
    assert!(
        s == 400 || s == 422,
        "the API refuses words for days: {s} {e}"
    );
    assert!(e.to_string().contains("valid_days"), "{e}");
    let page = app.login("ada.admin").await;
    let r = page
        .post_form(
            "/billing/product",
            &[
                ("clinic_id", g.as_str()),
                ("name", "Three infusions"),
                ("service", "iv_infusion"),
                ("sessions", "3"),
                ("price", "750"),
                ("valid_days", "90 days"),
            ],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(
        body.contains("must be a whole number"),
        "the form names the days field: {body}"
    );
    let (s, list) = admin.get(&format!("/api/v1/packages?clinic_id={g}")).await;
    assert_eq!(s, 200, "{list}");
    assert!(
        !list.to_string().contains("Three infusions"),
        "nothing was stored: {list}"
    );
    // With the clinic's billing details set, the same form with a number
    // stores a package that expires.
    let r = page
        .post_form(
            "/billing/settings",
            &[
                ("clinic_id", g.as_str()),
                ("legal_name", "Stillwater Glendale PLLC"),
                ("npi", "1452763893"),
                ("tax_id", "86-2718345"),
                ("currency", "USD"),
                ("refund_fee", "25"),
            ],
        )
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let r = page
        .post_form(
            "/billing/product",
            &[
                ("clinic_id", g.as_str()),
                ("name", "Three infusions"),
                ("service", "iv_infusion"),
                ("sessions", "3"),
                ("price", "750"),
                ("valid_days", "90"),
            ],
        )
        .await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_redirection(), "{status} {body}");
    let (_, list) = admin.get(&format!("/api/v1/packages?clinic_id={g}")).await;
    let p = list["products"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "Three infusions"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(p["valid_days"], 90, "{list}");
}
both!(a_package_s_days_are_read_one_way);
