//! The Schedule III record over HTTP and in the store, trying to break it:
//! balances that would go negative, witnesses who are the same person,
//! unlicensed or give a wrong password, absurd quantities and units, unknown
//! and expired lots; a ledger the database refuses to change, and a tampered
//! row that `verify` finds. A day of three sessions from two lots ends with a
//! blind count 1 mL short, a case resolved, and a dispensing log that lists
//! every movement. A random sequence of movements keeps every balance equal
//! to its ledger.

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use store::substances::{LedgerCheck, Movement};

use crate::api::Api;
use crate::both;
use crate::helpers::*;
use crate::treatment::{chair, ready_patient};

async fn api<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token(user).await,
    }
}

async fn ledger_rows(app: &TestApp) -> i64 {
    store::on_pool!(app.store.raw_pool(), p => {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cs_ledger").fetch_one(p).await.unwrap();
        n
    })
}

/// A patient checked into `chair` with a 0.5 mg/kg IV order (35 mg at 70 kg).
async fn ordered(app: &TestApp, given: &str, chair_name: &str) -> (String, String, String) {
    let pid = ready_patient(app, given).await;
    crate::helpers::answer_gad7(app, &pid).await;
    let nurse = api(app, "nina.nurse").await;
    let prescriber = api(app, "paul.prescriber").await;
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair(app, chair_name).await}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/encounters/{eid}");
    let (s, v) = nurse
        .post(
            &format!("{base}/checklist"),
            &json!({
                "identity_confirmed": true, "weight_kg": 70.0, "pregnancy": "negative_test",
                "fasting_confirmed": true, "escort_name": "Sam Rowe", "escort_phone": "602-555-0190",
                "no_alcohol": true, "medications_reviewed": true, "medication_changes": "none",
                "suicide_risk": "negative"
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 124, "dbp": 80, "hr": 70, "spo2": 98, "rr": 14}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.5}))
        .await;
    assert_eq!(s, 201, "{v}");
    (
        v["dose_order"]["id"].as_str().unwrap().to_string(),
        eid,
        pid,
    )
}

async fn a_day_of_the_schedule_iii_record(app: &TestApp) {
    let g = app.glendale.to_string();
    let admin = api(app, "ada.admin").await;
    let nurse = api(app, "nina.nurse").await;
    let prescriber = api(app, "paul.prescriber").await;
    let auditor = api(app, "audrey.auditor").await;
    let desk = api(app, "dana.frontdesk").await;
    let witness_pw = PW;
    let today = app
        .now_ts()
        .to_zoned(jiff::tz::TimeZone::get("America/Phoenix").unwrap())
        .date();

    // Setup: products are the admin's; bad NDCs and strengths are named.
    let (s, e) = admin
        .post("/api/v1/cs/products", &json!({"name": "Ketamine HCl", "ndc": "12345", "form": "injection", "strength_mg_per_ml": 0, "container": "10 g"}))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (
            422,
            vec![
                "ndc".to_string(),
                "strength_mg_per_ml".to_string(),
                "container".to_string()
            ]
        ),
        "{e}"
    );
    let (s, _) = nurse
        .post("/api/v1/cs/products", &json!({"name": "Ketamine HCl", "ndc": "0143-9508-10", "form": "injection solution", "strength_mg_per_ml": 50, "container": "10 mL"}))
        .await;
    assert_eq!(s, 403, "nurses do not add products");
    let (s, p50) = admin
        .post("/api/v1/cs/products", &json!({"name": "Ketamine HCl (test)", "ndc": "0143-9508-10", "form": "injection solution", "strength_mg_per_ml": 50, "container": "10 mL"}))
        .await;
    assert_eq!(s, 201, "{p50}");
    let (s, e) = admin
        .post("/api/v1/cs/products", &json!({"name": "Again", "ndc": "0143-9508-10", "form": "injection solution", "strength_mg_per_ml": 50, "container": "10 mL"}))
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["ndc".to_string()]), "{e}");
    let p50 = p50["id"].as_str().unwrap().to_string();

    // Receipts: supplier DEA number checked, containers times the vial size.
    let receipt = |lot: &str, exp: &str, n: i64| {
        json!({"kind": "receipt", "clinic_id": g, "product_id": p50, "lot_number": lot, "expires_on": exp,
               "containers": n, "supplier_name": "Henry Schein", "supplier_address": "135 Duryea Rd, Melville NY",
               "supplier_dea": "AB1234563", "invoice": "INV-7781"})
    };
    let mut bad = receipt("T-A", "2028-03-31", 5);
    bad["supplier_dea"] = json!("AB1234564");
    let (s, e) = nurse.post("/api/v1/cs/ledger", &bad).await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["supplier_dea".to_string()]),
        "{e}"
    );
    let mut bad = receipt("T-A", "2028-03-31", 5);
    bad["quantity"] = json!("40 mL");
    let (s, e) = nurse.post("/api/v1/cs/ledger", &bad).await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["quantity".to_string()]),
        "5 vials are 50 mL: {e}"
    );
    let (s, e) = nurse
        .post("/api/v1/cs/ledger", &receipt("T-OLD", "2020-01-31", 1))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["expires_on".to_string()]),
        "{e}"
    );
    let (s, r) = nurse
        .post("/api/v1/cs/ledger", &receipt("T-A", "2028-03-31", 5))
        .await;
    assert_eq!(s, 201, "{r}");
    let lot_a = r["entries"][0]["lot_id"].as_str().unwrap().to_string();
    assert_eq!(r["entries"][0]["balance_after_ul"], 50_000);
    let (s, r) = nurse
        .post("/api/v1/cs/ledger", &receipt("T-B", "2028-06-30", 1))
        .await;
    assert_eq!(s, 201, "{r}");
    let lot_b = r["entries"][0]["lot_id"].as_str().unwrap().to_string();
    let (s, e) = nurse
        .post("/api/v1/cs/ledger", &receipt("T-B", "2029-01-01", 1))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["expires_on".to_string()]),
        "a known lot keeps its expiry: {e}"
    );

    // A lot that expired on the shelf: in stock, but no draw from it.
    let expired_lot = app
        .store
        .cs_find_or_add_lot(&p50, "T-EXP", "2024-01-31")
        .await
        .unwrap();
    let nina = app
        .store
        .user_id_by_username("nina.nurse")
        .await
        .unwrap()
        .unwrap()
        .to_string();
    app.store
        .cs_append(
            &[Movement {
                reason: Some("received before it expired".into()),
                ..Movement::new(
                    domain::substances::EntryKind::Receipt,
                    &g,
                    &expired_lot,
                    app.now(),
                    10_000,
                    50,
                    &nina,
                )
            }],
            vec![],
        )
        .await
        .unwrap();

    // Three sessions, drawing from two lots.
    let (o1, e1, p1) = ordered(app, "Ines", "Chair 1").await;
    let (o2, _, _) = ordered(app, "Joel", "Chair 2").await;
    let (o3, _, _) = ordered(app, "Kira", "Chair 3").await;
    let draw = |order: &str, lot: &str, q: &str| json!({"kind": "draw", "clinic_id": g, "lot_id": lot, "dose_order_id": order, "quantity": q});
    let before = ledger_rows(app).await;
    for (q, field) in [
        ("-1 mL", "quantity"),
        ("0", "quantity"),
        ("2 g", "quantity"),
        ("20000 mL", "quantity"),
        ("0.01 mg", "quantity"),
        ("lots", "quantity"),
    ] {
        let (s, e) = nurse.post("/api/v1/cs/ledger", &draw(&o1, &lot_a, q)).await;
        assert_eq!((s, fields(&e)), (422, vec![field.to_string()]), "{q}: {e}");
    }
    let (s, e) = nurse
        .post("/api/v1/cs/ledger", &draw(&o1, &expired_lot, "1 mL"))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["lot_id".to_string()]),
        "expired: {e}"
    );
    let (s, e) = nurse
        .post(
            "/api/v1/cs/ledger",
            &draw(&o1, &uuid::Uuid::now_v7().to_string(), "1 mL"),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["lot_id".to_string()]),
        "unknown lot: {e}"
    );
    let (s, e) = nurse
        .post(
            "/api/v1/cs/ledger",
            &draw(&uuid::Uuid::now_v7().to_string(), &lot_a, "1 mL"),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["dose_order_id".to_string()]),
        "{e}"
    );
    // Lot B holds 10 mL: returning 11 mL would make it negative.
    let (s, e) = nurse
        .post(
            "/api/v1/cs/ledger",
            &json!({"kind": "return", "clinic_id": g, "lot_id": lot_b, "quantity": "11 mL",
                    "supplier_name": "Pharma Returns Inc", "supplier_address": "1 Dock St, Tempe AZ",
                    "supplier_dea": "AB1234563"}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["quantity".to_string()]), "{e}");
    assert!(e["detail"].as_str().unwrap().contains("negative"), "{e}");
    let (s, _) = desk
        .post("/api/v1/cs/ledger", &draw(&o1, &lot_a, "1 mL"))
        .await;
    assert_eq!(s, 403, "the front desk does not draw");
    let (s, _) = auditor
        .post("/api/v1/cs/ledger", &draw(&o1, &lot_a, "1 mL"))
        .await;
    assert_eq!(s, 403, "auditors read only");
    // An adjustment is the prescriber's or admin's, never the nurse's.
    let adjust = json!({"kind": "adjustment", "clinic_id": g, "lot_id": lot_a, "quantity": "1 mL",
                        "direction": "increase", "reason": "found a vial"});
    let (s, _) = nurse.post("/api/v1/cs/ledger", &adjust).await;
    assert_eq!(s, 403, "nurses do not adjust");
    let mut no_reason = adjust.clone();
    no_reason.as_object_mut().unwrap().remove("reason");
    let (s, e) = prescriber.post("/api/v1/cs/ledger", &no_reason).await;
    assert_eq!((s, fields(&e)), (422, vec!["reason".to_string()]), "{e}");
    assert_eq!(ledger_rows(app).await, before, "refusals write nothing");

    // Session 1: 0.8 mL (40 mg) from lot A; 0.7 mL given, 0.1 mL wasted.
    let (s, d1) = nurse
        .post("/api/v1/cs/ledger", &draw(&o1, &lot_a, "0.8 mL"))
        .await;
    assert_eq!(s, 201, "{d1}");
    let d1 = d1["entries"][0]["draw_id"].as_str().unwrap().to_string();
    let given = |d: &str, lot: &str, q: &str| json!({"kind": "administered", "clinic_id": g, "lot_id": lot, "draw_id": d, "quantity": q});
    let (s, e) = nurse
        .post("/api/v1/cs/ledger", &given(&d1, &lot_a, "0.9 mL"))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["quantity".to_string()]),
        "more than drawn: {e}"
    );
    let (s, e) = nurse
        .post("/api/v1/cs/ledger", &given(&d1, &lot_b, "0.7 mL"))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["draw_id".to_string()]),
        "wrong lot: {e}"
    );
    let (s, r) = nurse
        .post("/api/v1/cs/ledger", &given(&d1, &lot_a, "35 mg"))
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        r["entries"][0]["change_ul"], 0,
        "what is given left stock with the draw"
    );

    // Waste: the witness must be someone else, licensed here, with the right password.
    let waste = |d: &str, lot: &str, q: &str, who: &str, pw: &str| {
        json!({"kind": "waste", "clinic_id": g, "lot_id": lot, "draw_id": d, "quantity": q, "reason": "remainder of the draw",
               "witness_username": who, "witness_password": pw})
    };
    let refused_before = app.store.count_audit("cs.witness_refused").await.unwrap();
    for (who, pw, why) in [
        ("nina.nurse", witness_pw, "yourself"),
        ("dana.frontdesk", witness_pw, "unlicensed"),
        ("nate.nurse", witness_pw, "licensed elsewhere"),
        ("nora.nurse", "not-her-password", "wrong password"),
        ("nobody.here", witness_pw, "unknown"),
        ("", "", "missing"),
    ] {
        let (s, e) = nurse
            .post("/api/v1/cs/ledger", &waste(&d1, &lot_a, "0.1 mL", who, pw))
            .await;
        assert_eq!(
            (s, fields(&e)),
            (422, vec!["witness".to_string()]),
            "{why}: {e}"
        );
        assert!(!e.to_string().contains(witness_pw), "no password echoed");
    }
    assert_eq!(
        app.store.count_audit("cs.witness_refused").await.unwrap() - refused_before,
        6,
        "every refusal is audited"
    );
    let (s, r) = nurse
        .post(
            "/api/v1/cs/ledger",
            &waste(&d1, &lot_a, "0.1 mL", "nora.nurse", witness_pw),
        )
        .await;
    assert_eq!(s, 201, "{r}");

    // Session 2 draws from both lots; session 3 from lot B only.
    let (_, d2a) = nurse
        .post("/api/v1/cs/ledger", &draw(&o2, &lot_a, "0.5 mL"))
        .await;
    let (_, d2b) = nurse
        .post("/api/v1/cs/ledger", &draw(&o2, &lot_b, "0.3 mL"))
        .await;
    let d2a = d2a["entries"][0]["draw_id"].as_str().unwrap().to_string();
    let d2b = d2b["entries"][0]["draw_id"].as_str().unwrap().to_string();
    for (d, lot, q) in [(&d2a, &lot_a, "0.5 mL"), (&d2b, &lot_b, "0.2 mL")] {
        let (s, r) = nurse.post("/api/v1/cs/ledger", &given(d, lot, q)).await;
        assert_eq!(s, 201, "{r}");
    }
    let (s, r) = nurse
        .post(
            "/api/v1/cs/ledger",
            &waste(&d2b, &lot_b, "0.1 mL", "paul.prescriber", witness_pw),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    // The order is 35 mg: 4.3 mL (read at the bag's 10 mg/mL) is 215 mg of this vial.
    let (s, e) = prescriber
        .post("/api/v1/cs/ledger", &draw(&o3, &lot_b, "4.3 mL"))
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["quantity".to_string()]), "{e}");
    assert!(
        e["detail"].as_str().unwrap().contains("at most 40 mg"),
        "{e}"
    );
    let (s, d3) = prescriber
        .post("/api/v1/cs/ledger", &draw(&o3, &lot_b, "0.8 mL"))
        .await;
    assert_eq!(s, 201, "{d3}");
    let d3 = d3["entries"][0]["draw_id"].as_str().unwrap().to_string();

    // Draw 3 is still open: it shows among the open draws.
    let (s, open) = nurse.get("/api/v1/cs/draws").await;
    assert_eq!(s, 200);
    let mine: Vec<&Value> = open["draws"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["id"] == d3.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{open}");
    assert_eq!(mine[0]["remaining"]["ml"], "0.8 mL");
    let (s, r) = prescriber
        .post("/api/v1/cs/ledger", &given(&d3, &lot_b, "0.7 mL"))
        .await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = prescriber
        .post(
            "/api/v1/cs/ledger",
            &waste(&d3, &lot_b, "0.1 mL", "mona.monitor", witness_pw),
        )
        .await;
    assert_eq!(s, 201, "{r}");

    // Balances: A 50 - 0.8 - 0.5 = 48.7 mL; B 10 - 0.3 - 0.8 = 8.9 mL.
    let (s, lots) = auditor.get("/api/v1/cs/lots").await;
    assert_eq!(s, 200, "{lots}");
    let bal = |lot: &str| -> i64 {
        lots["lots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == lot)
            .unwrap()["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["clinic_id"] == g.as_str())
            .unwrap()["balance"]["ul"]
            .as_i64()
            .unwrap()
    };
    assert_eq!((bal(&lot_a), bal(&lot_b)), (48_700, 8_900));
    let (s, _) = desk.get("/api/v1/cs/lots").await;
    assert_eq!(s, 403, "the front desk does not see the record");

    // End of day: a blind count 1 mL short on lot A opens a case.
    let (_, lots) = nurse.get("/api/v1/cs/lots").await;
    let mut lines = Vec::new();
    for l in lots["lots"].as_array().unwrap() {
        for b in l["balances"].as_array().unwrap() {
            if b["clinic_id"] == g.as_str() && b["balance"]["ul"].as_i64().unwrap() > 0 {
                let ul = b["balance"]["ul"].as_i64().unwrap()
                    - if l["id"] == lot_a.as_str() { 1000 } else { 0 };
                lines.push(json!({"lot_id": l["id"], "counted": domain::substances::fmt_ml(ul)}));
            }
        }
    }
    let (s, e) = nurse
        .post(
            "/api/v1/cs/counts",
            &json!({"clinic_id": g, "lines": [{"lot_id": lot_a, "counted": "47.7 mL"}]}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["lines".to_string()]),
        "every lot is counted: {e}"
    );
    let (s, k) = nurse
        .post(
            "/api/v1/cs/counts",
            &json!({"clinic_id": g, "lines": lines, "note": "end of day"}),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let cases = k["cases_opened"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 1, "{k}");
    let line = k["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lot_id"] == lot_a.as_str())
        .unwrap()
        .clone();
    assert_eq!(line["difference_ul"], -1000);
    let case = cases[0].as_str().unwrap().to_string();
    let (s, list) = auditor.get("/api/v1/cs/cases").await;
    assert_eq!(s, 200);
    let open = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == case.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (open["kind"].as_str(), open["status"].as_str()),
        (Some("discrepancy"), Some("open"))
    );

    // Resolved by the prescriber as a documented loss: the ledger is adjusted.
    let resolve = format!("/api/v1/cs/cases/{case}/resolve");
    let (s, _) = nurse
        .post(
            &resolve,
            &json!({"resolution": "documented_loss", "note": "spill"}),
        )
        .await;
    assert_eq!(s, 403, "nurses do not resolve cases");
    let (s, e) = prescriber
        .post(&resolve, &json!({"resolution": "lost it", "note": "x"}))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["resolution".to_string()]),
        "{e}"
    );
    let (s, r) = prescriber
        .post(&resolve, &json!({"resolution": "documented_loss", "note": "Spilled while drawing for Joel; not recorded at the time."}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["status"], "resolved");
    let (s, _) = prescriber
        .post(&resolve, &json!({"resolution": "found", "note": "again"}))
        .await;
    assert_eq!(s, 409);
    let (_, lots) = nurse.get("/api/v1/cs/lots").await;
    let after: i64 = lots["lots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == lot_a.as_str())
        .unwrap()["balances"][0]["balance"]["ul"]
        .as_i64()
        .unwrap();
    assert_eq!(after, 47_700);

    // The day reconciled: each lot adds up from the ledger's own entries,
    // the closing balances are the stock on hand, the count shows the 1 mL.
    let (s, r) = auditor
        .get(&format!("/api/v1/cs/reconciliation?clinic_id={g}"))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["matches_stock"], true, "{r}");
    let recon = r["lots"].as_array().unwrap();
    assert!(recon.iter().all(|l| l["balances"] == true), "{r}");
    let a = recon
        .iter()
        .find(|l| l["lot_id"] == lot_a.as_str())
        .unwrap();
    assert_eq!(a["closing_ul"], 47_700, "{a}");
    assert_eq!(a["adjusted_ul"], -1_000, "the documented loss: {a}");
    assert!(a["received_ul"].as_i64().unwrap() > 0, "{a}");
    assert!(a["administered_ul"].as_i64().unwrap() > 0, "{a}");
    let received: i64 = recon
        .iter()
        .map(|l| l["received_ul"].as_i64().unwrap())
        .sum();
    let (_, receipts) = auditor
        .get(&format!(
            "/api/v1/cs/ledger?clinic_id={g}&kind=receipt&limit=1000"
        ))
        .await;
    let receipts: i64 = receipts["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["quantity"]["ul"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(received, receipts);
    let count = &r["counts"].as_array().unwrap()[0];
    assert!(count["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["lot_id"] == lot_a.as_str() && l["difference_ul"] == -1000));
    let csv = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/cs/reconciliation?clinic_id={g}&format=csv"
        )))
        .bearer_auth(&auditor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let text = csv.text().await.unwrap();
    assert!(
        text.starts_with("location,from,to,product,ndc,lot,opening_ml"),
        "{text}"
    );
    assert!(text.contains("47.7"), "{text}");
    for (q, field) in [
        ("from=yesterday", "from"),
        ("from=2026-02-10&to=2026-02-01", "to"),
        ("format=xml", "format"),
    ] {
        let (s, e) = auditor
            .get(&format!("/api/v1/cs/reconciliation?clinic_id={g}&{q}"))
            .await;
        assert_eq!((s, fields(&e)), (422, vec![field.to_string()]), "{q}: {e}");
    }
    let (s, e) = api(app, "nate.nurse")
        .await
        .get(&format!("/api/v1/cs/reconciliation?clinic_id={g}"))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["clinic_id".to_string()]),
        "not a location of a Denver nurse: {e}"
    );
    // A period before anything happened: nothing to reconcile.
    let (_, r) = auditor
        .get(&format!(
            "/api/v1/cs/reconciliation?clinic_id={g}&from=2020-01-01&to=2020-01-31"
        ))
        .await;
    assert_eq!(r["lots"], json!([]));
    assert!(r["matches_stock"].is_null());

    // A theft found outside a count starts the DEA clocks.
    let (s, t) = nurse
        .post("/api/v1/cs/cases", &json!({"clinic_id": g, "kind": "theft", "lot_id": lot_b, "quantity": "1 mL", "description": "Vial missing from the safe after the weekend."}))
        .await;
    assert_eq!(s, 201, "{t}");
    assert!(
        t["dea_notice_due"].is_string() && t["form106_due"].is_string(),
        "{t}"
    );
    let (s, f) = prescriber
        .post(&format!("/api/v1/cs/cases/{}/filing", t["id"].as_str().unwrap()), &json!({"dea_notified_on": today.to_string(), "loss_type": "employee pilferage suspected", "police_report": "GPD 26-11-0042"}))
        .await;
    assert_eq!(s, 200, "{f}");
    assert!(f["dea_notified_on"].is_string());

    // The dispensing log lists every movement here, as CSV and as a PDF.
    let q = format!(
        "clinic_id={g}&from={}&to={today}&format=csv",
        today.checked_sub(jiff::Span::new().days(1)).unwrap()
    );
    let reports = app.store.count_audit("cs.report").await.unwrap();
    let resp = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/cs/ledger?{q}")))
        .bearer_auth(&auditor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    // The CSV written as the ledger is read is still audited as a report.
    assert_eq!(
        app.store.count_audit("cs.report").await.unwrap(),
        reports + 1
    );
    let (_, json_log) = auditor
        .get(&format!("/api/v1/cs/ledger?clinic_id={g}&limit=100000"))
        .await;
    let mine: Vec<&Value> = json_log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["product"] == "Ketamine HCl (test)")
        .collect();
    let csv_mine = csv
        .lines()
        .filter(|l| l.contains("Ketamine HCl (test)"))
        .count();
    // 3 receipts, 4 draws, 4 given, 3 wastes, 1 adjustment.
    assert_eq!(mine.len(), 15, "{json_log}");
    assert_eq!(csv_mine, 15, "{csv}");
    assert!(
        csv.contains("Ines Rowe") && csv.contains("nora.nurse"),
        "{csv}"
    );
    // The CSV is written from the ledger as it is read (on SQLite straight
    // from the cursor): one line per movement of the same days, in order.
    let (_, same_days) = auditor
        .get(&format!(
            "/api/v1/cs/ledger?{}",
            q.replace("format=csv", "limit=100000")
        ))
        .await;
    let entries = same_days["entries"].as_array().unwrap();
    assert_eq!(csv.lines().count() - 1, entries.len(), "{csv}");
    let seqs: Vec<i64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let (s, e) = auditor.get("/api/v1/cs/ledger?from=yesterday").await;
    assert_eq!((s, fields(&e)), (422, vec!["from".to_string()]), "{e}");

    let web = app.login("audrey.auditor").await;
    let pdf = web
        .get(&format!("/substances/ledger.pdf?clinic_id={g}"))
        .await;
    assert_eq!(pdf.status(), 200);
    let bytes = pdf.bytes().await.unwrap();
    let doc = lopdf::Document::load_mem(&bytes).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).unwrap();
    for needle in [
        "T-A",
        "T-B",
        "Draw for a dose",
        "Waste",
        "Adjustment",
        "Ines Rowe",
    ] {
        assert!(text.contains(needle), "{needle} missing from the PDF");
    }
    let page = web
        .html(&format!("/substances?clinic={g}&tab=ledger"))
        .await;
    assert!(page.contains("Dispensing log"), "{page}");

    // An on-site destruction needs two different witnesses; the Form 41
    // record lists it with the method and both names.
    let destroy = |w2: &str| {
        json!({"kind": "destruction", "clinic_id": g, "lot_id": lot_a, "quantity": "1 mL",
               "method": "Rendered non-retrievable in a chemical digestion pouch",
               "witness_username": "nora.nurse", "witness_password": PW,
               "witness2_username": w2, "witness2_password": PW})
    };
    let (s, e) = nurse
        .post("/api/v1/cs/ledger", &destroy("nora.nurse"))
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["witness2".to_string()]), "{e}");
    let (s, e) = nurse
        .post("/api/v1/cs/ledger", &destroy("paul.prescriber"))
        .await;
    assert_eq!(s, 201, "{e}");
    let f41 = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/cs/form41?clinic_id={g}")))
        .bearer_auth(&auditor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(f41.status(), 200);
    assert_eq!(f41.headers()["content-type"], "application/pdf");
    let bytes = f41.bytes().await.unwrap();
    let doc = lopdf::Document::load_mem(&bytes).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc
        .extract_text(&pages)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "DEA Form 41",
        "T-A",
        "1 mL",
        "chemical digestion pouch",
        "nora.nurse",
        "paul.prescriber",
        "1 destruction.",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from the Form 41 record: {text}"
        );
    }
    let page = web
        .get(&format!(
            "/substances/form41.pdf?clinic_id={g}&from=2020-01-01&to=2020-01-31"
        ))
        .await;
    assert_eq!(
        page.status(),
        200,
        "an empty period prints a record saying so"
    );
    let (s, _) = api(app, "nate.nurse")
        .await
        .get(&format!("/api/v1/cs/form41?clinic_id={g}"))
        .await;
    assert_eq!(s, 422, "not a Denver nurse's location");

    // The page's waste form refuses a wrong witness with the reason in words.
    let nurse_web = app.login("nina.nurse").await;
    // The visit's chair view shows its draw with what was given and wasted.
    let chair_view = nurse_web.html(&format!("/encounters/{e1}")).await;
    assert!(
        chair_view.contains("0.8 mL drawn from lot T-A by nina.nurse")
            && chair_view.contains("0.7 mL given, 0.1 mL wasted"),
        "{chair_view}"
    );
    // The chart lists what the patient was given, audited as a read of them.
    let reads = app.store.count_audit("cs.read").await.unwrap();
    let chart = nurse_web.html(&format!("/patients/{p1}")).await;
    assert!(
        chart.contains("Ketamine administered") && chart.contains("35 mg (0.7 mL)"),
        "{chart}"
    );
    assert!(app.store.count_audit("cs.read").await.unwrap() > reads);
    let stock = nurse_web.html(&format!("/substances?clinic={g}")).await;
    assert!(
        stock.contains("On hand") && stock.contains("T-A"),
        "{stock}"
    );
    assert!(
        stock.contains("T-EXP") && stock.contains("expired"),
        "the expired lot is flagged: {stock}"
    );

    // Inventory: every lot held, printed.
    let (_, lots) = nurse.get("/api/v1/cs/lots").await;
    let mut lines = Vec::new();
    for l in lots["lots"].as_array().unwrap() {
        for b in l["balances"].as_array().unwrap() {
            let ul = b["balance"]["ul"].as_i64().unwrap();
            if b["clinic_id"] == g.as_str() && ul > 0 {
                let size = l["container_ul"].as_i64().unwrap();
                lines.push(json!({"lot_id": l["id"], "sealed": ul / size, "open": domain::substances::fmt_ml(ul % size).replace(" mL", ""), "measure": "estimated"}));
            }
        }
    }
    let (s, inv) = nurse
        .post(
            "/api/v1/cs/inventories",
            &json!({"clinic_id": g, "kind": "biennial", "business": "close", "lines": lines}),
        )
        .await;
    assert_eq!(s, 201, "{inv}");
    let resp = reqwest::Client::new()
        .get(app.url(inv["pdf"].as_str().unwrap()))
        .bearer_auth(&auditor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().starts_with(b"%PDF"));

    // A witness who signs in with a two-step code witnesses with it too.
    let paul = app
        .store
        .user_id_by_username("paul.prescriber")
        .await
        .unwrap()
        .unwrap();
    let (secret, _) = clinic::actor::new_totp("paul.prescriber");
    app.store
        .set_totp_secret(paul, Some(&secret), ev())
        .await
        .unwrap();
    let coded = |code: &str| {
        json!({"kind": "breakage", "clinic_id": g, "lot_id": lot_a, "quantity": "0.1 mL", "reason": "vial cracked",
               "witness_username": "paul.prescriber", "witness_password": PW, "witness_code": code})
    };
    let (s, e) = nurse.post("/api/v1/cs/ledger", &coded("")).await;
    assert_eq!((s, fields(&e)), (422, vec!["witness".to_string()]), "{e}");
    assert!(e.to_string().contains("two-step code"), "{e}");
    let right = clinic::actor::totp_at(&secret, app.now()).unwrap();
    let wrong: String = right
        .chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                char::from(c as u8 + 1)
            }
        })
        .collect();
    let (s, e) = nurse.post("/api/v1/cs/ledger", &coded(&wrong)).await;
    assert_eq!((s, fields(&e)), (422, vec!["witness".to_string()]), "{e}");
    let (s, e) = nurse.post("/api/v1/cs/ledger", &coded(&right)).await;
    assert_eq!(s, 201, "the right code: {e}");
    let (s, e) = nurse.post("/api/v1/cs/ledger", &coded(&right)).await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["witness".to_string()]),
        "the same code twice is a replay: {e}"
    );
    app.store.set_totp_secret(paul, None, ev()).await.unwrap();

    // A witness's wrong password counts towards the lockout: after five, even
    // the right one is refused (the witness field is no way to guess freely).
    let breakage = |pw: &str| {
        json!({"kind": "breakage", "clinic_id": g, "lot_id": lot_a, "quantity": "0.1 mL",
               "reason": "vial cracked", "witness_username": "nora.nurse", "witness_password": pw})
    };
    for _ in 0..5 {
        let (s, e) = nurse
            .post("/api/v1/cs/ledger", &breakage("guess-123456"))
            .await;
        assert_eq!((s, fields(&e)), (422, vec!["witness".to_string()]), "{e}");
    }
    let (s, e) = nurse.post("/api/v1/cs/ledger", &breakage(PW)).await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["witness".to_string()]),
        "locked: {e}"
    );
    let (status, _) = app.failed_login("nora.nurse", PW).await;
    assert_ne!(status, 303, "the witness's own sign-in is locked too");

    // The ledger cannot be changed, and verify finds a row changed behind its back.
    assert_eq!(
        app.store.cs_verify().await.unwrap(),
        LedgerCheck::Intact {
            entries: ledger_rows(app).await
        }
    );
    let pool = app.store.raw_pool().clone();
    store::on_pool!(&pool, p => {
        let upd = sqlx::query("UPDATE cs_ledger SET quantity_ul = 1 WHERE seq = 1").execute(p).await;
        assert!(upd.is_err(), "UPDATE must fail");
        let del = sqlx::query("DELETE FROM cs_ledger WHERE seq = 1").execute(p).await;
        assert!(del.is_err(), "DELETE must fail");
        // What hangs from the ledger moves only forward with it.
        let back = sqlx::query("UPDATE cs_head SET seq = 0").execute(p).await;
        assert!(back.unwrap_err().to_string().contains("only moves forward"));
        assert!(sqlx::query("DELETE FROM cs_balances").execute(p).await.is_err());
        assert!(sqlx::query("UPDATE cs_balances SET last_seq = 0").execute(p).await.is_err());
    });
    // Whoever holds the database (its file; the schema's owner) can.
    match &app.owner_pool().await {
        store::Pool::Sqlite(p) => {
            sqlx::query("DROP TRIGGER cs_ledger_no_update")
                .execute(p)
                .await
                .unwrap();
            sqlx::query("UPDATE cs_ledger SET reason = 'edited' WHERE seq = 3")
                .execute(p)
                .await
                .unwrap();
        }
        store::Pool::Postgres(p) => {
            sqlx::query("ALTER TABLE cs_ledger DISABLE TRIGGER cs_ledger_no_update")
                .execute(p)
                .await
                .unwrap();
            sqlx::query("UPDATE cs_ledger SET reason = 'edited' WHERE seq = 3")
                .execute(p)
                .await
                .unwrap();
        }
    }
    assert_eq!(
        app.store.cs_verify().await.unwrap(),
        LedgerCheck::Broken(domain::substances::LedgerBreak::Altered { seq: 3 })
    );
}
both!(a_day_of_the_schedule_iii_record);

async fn the_api_is_documented(app: &TestApp) {
    let doc = app.api_doc().await;
    for p in [
        "/api/v1/cs/products",
        "/api/v1/cs/lots",
        "/api/v1/cs/ledger",
        "/api/v1/cs/draws",
        "/api/v1/cs/counts",
        "/api/v1/cs/inventories",
        "/api/v1/cs/inventories/{id}/pdf",
        "/api/v1/cs/cases",
        "/api/v1/cs/cases/{id}/resolve",
        "/api/v1/cs/cases/{id}/filing",
        "/api/v1/cs/registrations",
        "/api/v1/cs/storage",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }
}
both!(the_api_is_documented);

/// Random movements through the store, valid and not: every accepted one
/// keeps balances equal to the ledger; every refused one leaves no trace.
async fn random_movements_keep_balances_equal_to_the_ledger(app: &TestApp) {
    let admin = api(app, "ada.admin").await;
    let (s, p) = admin
        .post("/api/v1/cs/products", &json!({"name": "Ketamine HCl (random)", "ndc": "0143-9509-10", "form": "injection solution", "strength_mg_per_ml": 100, "container": "5 mL"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_str().unwrap();
    let lots = [
        app.store
            .cs_find_or_add_lot(pid, "R1", "2030-01-31")
            .await
            .unwrap(),
        app.store
            .cs_find_or_add_lot(pid, "R2", "2030-02-28")
            .await
            .unwrap(),
    ];
    let clinics = [app.glendale.to_string(), app.denver.to_string()];
    let user = app
        .store
        .user_id_by_username("paul.prescriber")
        .await
        .unwrap()
        .unwrap()
        .to_string();
    let mut model: std::collections::HashMap<(String, String), i64> =
        std::collections::HashMap::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5711_3a7e);
    use domain::substances::EntryKind as K;
    let kinds = [
        K::Receipt,
        K::Breakage,
        K::Waste,
        K::Return,
        K::Destruction,
        K::Adjustment,
        K::TransferOut,
    ];
    let mut refused = 0;
    for _ in 0..160 {
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let clinic = clinics[rng.gen_range(0..2)].clone();
        let lot = lots[rng.gen_range(0..2)].clone();
        let q: i64 = rng.gen_range(1..=12_000);
        let change = match kind {
            K::Receipt => q,
            K::Adjustment if rng.gen_bool(0.5) => q,
            _ => -q,
        };
        let base = Movement {
            change_ul: change,
            reason: Some("random".into()),
            ..Movement::new(kind, &clinic, &lot, app.now(), q, 100, &user)
        };
        let mut moves = vec![base.clone()];
        if kind == K::TransferOut {
            let other = clinics.iter().find(|c| **c != clinic).unwrap().clone();
            moves.push(Movement {
                id: uuid::Uuid::now_v7().to_string(),
                clinic_id: other,
                kind: K::TransferIn,
                change_ul: q,
                ..base
            });
        }
        let rows_before = ledger_rows(app).await;
        let before = *model.get(&(clinic.clone(), lot.clone())).unwrap_or(&0);
        let r = app.store.cs_append(&moves, vec![]).await;
        if before + change < 0 {
            assert!(r.is_err(), "{kind:?} of {q} on {before} must be refused");
            assert_eq!(
                ledger_rows(app).await,
                rows_before,
                "a refusal writes nothing"
            );
            refused += 1;
        } else {
            r.unwrap();
            for m in &moves {
                *model
                    .entry((m.clinic_id.clone(), m.lot_id.clone()))
                    .or_insert(0) += m.change_ul;
            }
        }
    }
    assert!(
        refused > 10,
        "the sequence tried to overdraw ({refused} times)"
    );
    let stored = app.store.cs_balances(&clinics).await.unwrap();
    for ((clinic, lot), want) in &model {
        let got = stored
            .iter()
            .find(|b| &b.clinic_id == clinic && &b.lot_id == lot)
            .map(|b| b.balance_ul)
            .unwrap_or(0);
        assert_eq!(got, *want);
        assert!(got >= 0);
    }
    // Concurrent appenders queue on the head: the chain stays whole.
    let s1 = app.store.clone();
    let s2 = app.store.clone();
    let appender = |s: store::Store, clinic: String, lot: String, user: String| {
        tokio::spawn(async move {
            for _ in 0..20 {
                let m = Movement::new(K::Receipt, &clinic, &lot, s.now(), 1000, 100, &user);
                s.cs_append(&[m], vec![]).await.unwrap();
            }
        })
    };
    let t1 = appender(s1, clinics[0].clone(), lots[0].clone(), user.clone());
    let t2 = appender(s2, clinics[1].clone(), lots[0].clone(), user.clone());
    t1.await.unwrap();
    t2.await.unwrap();
    assert!(matches!(
        app.store.cs_verify().await.unwrap(),
        LedgerCheck::Intact { .. }
    ));
}
both!(random_movements_keep_balances_equal_to_the_ledger);
