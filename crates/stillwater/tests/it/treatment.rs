//! The treatment day over HTTP, trying to break each safety rule: no dose
//! without the checklist, on a stale weight, out of range or unchecked; an
//! alert that stays until answered with a response; readings no patient can
//! have, from the future, unknown chairs or sent twice, refused or skipped
//! with nothing stored twice; discharge only when the criteria are met; a
//! signed note that never changes. And a reading reaches the floor's event
//! stream within a second.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::Api;
use crate::both;
use crate::helpers::*;
use crate::intake::{clinical_part, patient_part};

async fn api<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token(user).await,
    }
}

/// A Glendale patient with approved eligibility, signed IV consent and an
/// IV plan: ready to be checked in.
pub async fn ready_patient(app: &TestApp, given: &str) -> String {
    let admin = api(app, "ada.admin").await;
    let prescriber = api(app, "paul.prescriber").await;
    let nurse = api(app, "nina.nurse").await;
    let (s, p) = nurse
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": given, "family_name": "Rowe", "date_of_birth": "1985-06-01", "email": format!("{}.rowe@example.org", given.to_lowercase())}))
        .await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/patients/{pid}");
    let docs = format!("/api/v1/clinics/{}/consent-documents", app.glendale);
    let template = domain::consent::template(domain::protocols::Route::Iv);
    // Published once per app; the second patient finds it there.
    let _ = admin
        .post(&docs, &json!({"route": "iv", "body": template}))
        .await;
    let (_, list) = nurse.get(&docs).await;
    let doc = list["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["route"] == "iv")
        .unwrap()
        .clone();
    for (part, body) in [("patient", patient_part()), ("clinical", clinical_part())] {
        let (s, e) = nurse
            .post(&format!("{base}/assessment/{part}"), &body)
            .await;
        assert_eq!(s, 201, "{e}");
    }
    let (_, a) = nurse.get(&format!("{base}/assessment")).await;
    let (s, d) = prescriber
        .post(&format!("{base}/eligibility"), &json!({"facts": a["facts"], "decision": "eligible", "rationale": "Treatment-resistant GAD; no exclusions."}))
        .await;
    assert_eq!(s, 201, "{d}");
    let (s, _) = nurse
        .post(&format!("{base}/eligibility/1/sign-off"), &json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, c) = nurse
        .post(&format!("{base}/consents"), &json!({"route": "iv", "typed_name": format!("{given} Rowe"), "agree": true, "document_hash": doc["sha256"]}))
        .await;
    assert_eq!(s, 201, "{c}");
    let (s, p) = prescriber
        .post(&format!("{base}/plans"), &json!({"protocol": "iv-infusion", "course": "induction", "targets": ["gad7"], "goal": "response", "modality": "cbt"}))
        .await;
    assert_eq!(s, 201, "{p}");
    pid
}

pub async fn chair(app: &TestApp, name: &str) -> String {
    app.store
        .resources(app.glendale)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.resource.name == name)
        .unwrap()
        .resource
        .id
        .to_string()
}

/// Ketamine in stock at Glendale: a lot of a product of `strength` mg/mL,
/// received by a nurse (lot id, lot number). Each call adds a product and
/// a lot of its own.
pub async fn stock(app: &TestApp, strength: i64) -> (String, String) {
    let admin = api(app, "ada.admin").await;
    let nurse = api(app, "nina.nurse").await;
    let n = uuid::Uuid::now_v7().simple().to_string();
    let ndc = format!(
        "0143-{}-{}",
        &n[26..30].replace(|c: char| !c.is_ascii_digit(), "7"),
        &n[30..32].replace(|c: char| !c.is_ascii_digit(), "3")
    );
    let (s, p) = admin
        .post(
            "/api/v1/cs/products",
            &json!({"name": format!("Ketamine HCl {strength} ({n})"), "ndc": ndc,
               "form": "injection solution", "strength_mg_per_ml": strength, "container": "10 mL"}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let lot_number = format!("KX{}", &n[24..30]).to_uppercase();
    let (s, r) = nurse
        .post(
            "/api/v1/cs/ledger",
            &json!({"kind": "receipt", "clinic_id": app.glendale, "product_id": p["id"],
               "lot_number": lot_number, "expires_on": "2030-01-31", "containers": 5,
               "supplier_name": "Henry Schein", "supplier_address": "135 Duryea Rd, Melville NY",
               "supplier_dea": "AB1234563", "invoice": "INV-7781"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    (
        r["entries"][0]["lot_id"].as_str().unwrap().to_string(),
        lot_number,
    )
}

/// `who` draws `quantity` for the visit's standing order from a lot.
pub async fn draw(app: &TestApp, who: &str, eid: &str, lot: &str, quantity: &str) -> Value {
    let (_, v) = api(app, who)
        .await
        .get(&format!("/api/v1/encounters/{eid}"))
        .await;
    let order = v["dose_order"]["id"]
        .as_str()
        .expect("an order to draw for")
        .to_string();
    let (s, d) = api(app, who)
        .await
        .post(
            "/api/v1/cs/ledger",
            &json!({"kind": "draw", "clinic_id": app.glendale, "lot_id": lot,
               "dose_order_id": order, "quantity": quantity}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    d
}

fn rfc(app: &TestApp, minutes_ago: i64) -> String {
    let t = app.now_ts() - jiff::SignedDuration::from_mins(minutes_ago);
    t.to_string()
}

async fn count(app: &TestApp, table: &str, eid: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE encounter_id = $1");
    store::on_pool!(app.store.raw_pool(), p => {
        let (n,): (i64,) = sqlx::query_as(&sql).bind(eid).fetch_one(p).await.unwrap();
        n
    })
}

async fn a_full_iv_session(app: &TestApp) {
    let pid = ready_patient(app, "Lena").await;
    let nurse = api(app, "nina.nurse").await;
    let prescriber = api(app, "paul.prescriber").await;
    let desk = api(app, "dana.frontdesk").await;
    let monitor = api(app, "mona.monitor").await;
    let chair1 = chair(app, "Chair 1").await;
    let recliner = chair(app, "Recliner 5").await;

    // Check-in: the desk may not; a chair without IV cannot take an infusion.
    let (s, _) = desk
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair1}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, e) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": recliner}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["chair_id".to_string()]), "{e}");
    // A check-in recorded afterwards: not in the future, not from yesterday.
    for at in [rfc(app, -10), rfc(app, 13 * 60), "at noon".to_string()] {
        let (s, e) = nurse
            .post(
                "/api/v1/encounters",
                &json!({"patient_id": pid, "chair_id": chair1, "at": at}),
            )
            .await;
        assert_eq!((s, fields(&e)), (422, vec!["at".to_string()]), "{at}: {e}");
    }
    // The patient arrived two hours ago; the nurse records it now.
    let arrived = app.now() - 120 * 60_000_000;
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair1, "at": rfc(app, 120)}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/encounters/{eid}");
    assert_eq!(v["phase"], "pre_dose");
    assert_eq!(v["ready_to_dose"], false);
    let (s, _) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair1}),
        )
        .await;
    assert_eq!(s, 409, "one open visit per patient and chair");
    let two_hours_ago = app.now() - 120 * 60_000_000;
    let opened = v["encounter"]["opened_at"].as_i64().unwrap();
    assert!((opened - two_hours_ago).abs() < 60_000_000, "{v}");

    // No dose before the checklist is complete; nothing is written.
    let (s, e) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.5}))
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("checklist is not complete"),
        "{e}"
    );
    assert_eq!(count(app, "dose_orders", &eid).await, 0);

    // Bad checklist values are named.
    let (s, e) = nurse
        .post(
            &format!("{base}/checklist"),
            &json!({"weight_kg": 7.0, "escort_phone": "12"}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (
            422,
            vec!["weight_kg".to_string(), "escort_phone".to_string()]
        ),
        "{e}"
    );
    let (s, e) = nurse
        .post(&format!("{base}/checklist"), &json!({"pregnancy": "maybe"}))
        .await;
    assert_eq!((s, fields(&e)), (400, vec!["pregnancy".to_string()]), "{e}");
    // A nurse cannot override; that is the prescriber's decision.
    let (s, _) = nurse
        .post(
            &format!("{base}/checklist"),
            &json!({"vitals_override_reason": "fine"}),
        )
        .await;
    assert_eq!(s, 403);

    // Everything but a weight from today: the weight was taken yesterday.
    let yesterday = rfc(app, 30 * 60);
    let (s, v) = nurse
        .post(
            &format!("{base}/checklist"),
            &json!({
                "identity_confirmed": true, "weight_kg": 70.0, "weight_measured_at": yesterday,
                "pregnancy": "negative_test", "fasting_confirmed": true, "escort_name": "Sam Rowe",
                "escort_phone": "602-555-0190", "no_alcohol": true, "medications_reviewed": true,
                "medication_changes": "none", "suicide_risk": "negative"
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // Baseline readings: impossible values and future times are refused by name.
    let (s, e) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 400, "dbp": 80, "spo2": 120, "hr": -3}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (
            422,
            vec!["hr".to_string(), "sbp".to_string(), "spo2".to_string()]
        ),
        "{e}"
    );
    let (s, e) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 120, "dbp": 80, "taken_at": rfc(app, -10)}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["taken_at".to_string()]), "{e}");
    let (s, e) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 120, "dbp": 80, "taken_at": rfc(app, 60 * 5)}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["taken_at".to_string()]),
        "before the visit: {e}"
    );
    let (s, e) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 120, "dbp": 70, "mood": "ok"}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["mood".to_string()]),
        "unknown field: {e}"
    );
    assert_eq!(
        count(app, "observations", &eid).await,
        0,
        "refused readings leave nothing"
    );
    let (s, v) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 128, "dbp": 82, "hr": 72, "spo2": 98, "rr": 14, "taken_at": rfc(app, 100)}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let left: Vec<&Value> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] != "done")
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0]["key"], "weight_today");
    // The IV protocol's pre-session GAD-7 has not been answered today.
    assert_eq!(left[1]["key"], "pre_session_instruments");
    assert!(
        left[1]["why"].as_str().unwrap().contains("GAD-7"),
        "{left:?}"
    );
    let (s, e) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.5}))
        .await;
    assert_eq!(s, 409, "no GAD-7 today: {e}");
    assert!(e["detail"].as_str().unwrap().contains("GAD-7"), "{e}");
    crate::helpers::answer_gad7(app, &pid).await;
    let (s, e) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.5}))
        .await;
    assert_eq!(s, 409, "stale weight: {e}");
    assert!(
        e["detail"].as_str().unwrap().contains("not from today"),
        "{e}"
    );
    let (s, v) = nurse
        .post(&format!("{base}/checklist"), &json!({"weight_kg": 70.0}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["ready_to_dose"], true, "{}", v["items"]);

    // The order: only a prescriber, only in range, maths by code.
    let (s, _) = nurse
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.5}))
        .await;
    assert_eq!(s, 403);
    let (s, e) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.9}))
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["dose".to_string()]), "{e}");
    let (s, e) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": "lots"}))
        .await;
    assert_eq!((s, fields(&e)), (400, vec!["dose".to_string()]), "{e}");
    let (s, v) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.5}))
        .await;
    assert_eq!(s, 201, "{v}");
    let m = &v["dose_order"]["maths"];
    assert_eq!(m["mg"].as_f64(), Some(35.0));
    assert!(m["volume"].is_null(), "no volume before the draw: {m}");
    let (s, _) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.4}))
        .await;
    assert_eq!(s, 409, "one order per visit");

    // The draw and the second check: the volume comes from the lot drawn,
    // checked by someone who neither ordered nor drew it.
    let (lot, lot_number) = stock(app, 50).await;
    let checker = api(app, "nora.nurse").await;
    let (s, e) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "start"}),
        )
        .await;
    assert_eq!(s, 409, "unchecked: {e}");
    assert!(
        e["detail"].as_str().unwrap().contains("second person"),
        "{e}"
    );
    let (s, e) = checker
        .post(
            &format!("{base}/dose-orders/check"),
            &json!({"vial_lot": lot_number}),
        )
        .await;
    assert_eq!(s, 409, "nothing drawn yet: {e}");
    assert!(
        e["detail"].as_str().unwrap().contains("nothing is drawn"),
        "{e}"
    );
    draw(app, "nina.nurse", &eid, &lot, "0.8 mL").await;
    let (s, e) = prescriber
        .post(
            &format!("{base}/dose-orders/check"),
            &json!({"vial_lot": lot_number}),
        )
        .await;
    assert_eq!(s, 409, "who ordered does not check: {e}");
    let (s, e) = nurse
        .post(
            &format!("{base}/dose-orders/check"),
            &json!({"vial_lot": lot_number}),
        )
        .await;
    assert_eq!(s, 409, "who drew does not check: {e}");
    assert!(e["detail"].as_str().unwrap().contains("you drew"), "{e}");
    let (s, e) = checker
        .post(
            &format!("{base}/dose-orders/check"),
            &json!({"vial_lot": lot_number, "vial_expires": "2020-01-31"}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["vial_expires".to_string()]),
        "not the lot's expiry: {e}"
    );
    let (s, e) = checker
        .post(
            &format!("{base}/dose-orders/check"),
            &json!({"vial_lot": "KX0000"}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["vial_lot".to_string()]), "{e}");
    let (s, v) = checker
        .post(
            &format!("{base}/dose-orders/check"),
            &json!({"vial_lot": lot_number}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["dose_order"]["checked_by"], "nora.nurse");
    let vol = &v["dose_order"]["maths"]["volume"];
    assert_eq!(
        (
            vol["drug_ml"].as_f64(),
            vol["total_ml"].as_f64(),
            vol["rate_ml_h"].as_f64()
        ),
        (Some(0.7), Some(100.7), Some(151.1)),
        "{vol}"
    );

    // The timeline: start at the ordered rate; a faster rate is refused, and
    // so is a start before the order (a backdated start).
    let (s, e) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "start", "rate_ml_h": 900.0}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["rate_ml_h".to_string()]), "{e}");
    let (s, e) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "start", "at": rfc(app, 90)}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["at".to_string()]), "{e}");
    let (s, v) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "start"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["phase"], "dosing");
    let (s, e) = nurse
        .post(&format!("{base}/checklist"), &json!({"no_alcohol": true}))
        .await;
    assert_eq!(s, 409, "the checklist closes when the dose starts: {e}");

    // A reading out of range raises an alert; it stays until answered with a response.
    app.advance_minutes(10);
    let (s, v) = monitor
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 186, "dbp": 112, "hr": 96, "spo2": 97}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let alerts = v["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(alerts
        .iter()
        .all(|a| a["severity"] == "pause" && a["ack_at"].is_null()));
    let aid = alerts[0]["id"].as_str().unwrap();
    let (s, e) = nurse
        .post(&format!("{base}/alerts/{aid}/acknowledge"), &json!({}))
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["response".to_string()]), "{e}");
    let (s, _) = desk
        .post(
            &format!("{base}/alerts/{aid}/acknowledge"),
            &json!({"response": "pause"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, v) = nurse
        .post(
            &format!("{base}/alerts/{aid}/acknowledge"),
            &json!({"response": "pause", "note": "labetalol ordered"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = nurse
        .post(
            &format!("{base}/alerts/{aid}/acknowledge"),
            &json!({"response": "pause"}),
        )
        .await;
    assert_eq!(s, 409, "once only");
    app.advance_minutes(1);
    let (s, e) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "pause"}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["reason".to_string()]), "{e}");
    let (s, _) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "pause", "reason": "SBP 186"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = nurse
        .post(
            &format!("{base}/medications"),
            &json!({"name": "labetalol", "dose": "5 mg", "route": "IV", "reason": "SBP 186/112"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, e) = nurse
        .post(
            &format!("{base}/medications"),
            &json!({"name": "ketamine", "dose": "10 mg", "route": "IV", "reason": "top up"}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["name".to_string()]), "{e}");
    app.advance_minutes(4);
    let (s, _) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "resume"}),
        )
        .await;
    assert_eq!(s, 201);
    app.advance_minutes(1);
    let (s, e) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "resume"}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["kind".to_string()]),
        "already running: {e}"
    );
    let (s, e) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "stop", "at": rfc(app, 10)}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["at".to_string()]),
        "back in time: {e}"
    );
    app.advance_minutes(30);
    let (s, v) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "stop"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["delivered_mg"].as_f64(),
        Some(35.0),
        "the pump ran 42 of 46 minutes at the ordered rate: {}",
        v["delivered_mg"]
    );
    let (s, _) = nurse
        .post(&format!("{base}/adverse-events"), &json!({"kind": "hypertension", "severity": "moderate", "serious": false, "description": "SBP 186/112 at 10 min", "action": "paused, labetalol 5 mg", "outcome": "resolved in 5 min"}))
        .await;
    assert_eq!(s, 201);
    let (s, e) = nurse
        .post(&format!("{base}/adverse-events"), &json!({"kind": "gremlins", "severity": "mild", "serious": false, "description": "", "action": "", "outcome": "x"}))
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["kind".to_string(), "action".to_string()]),
        "{e}"
    );

    // Discharge waits for the recovery time, the second alert, the Aldrete and its minimum.
    let (s, e) = nurse.post(&format!("{base}/discharge"), &json!({})).await;
    assert_eq!(s, 409, "{e}");
    let d = e["detail"].as_str().unwrap();
    assert!(
        d.contains("Aldrete")
            && d.contains("open alert")
            && d.contains("recovery 0 of at least 30"),
        "{d}"
    );
    app.advance_minutes(31);
    let aid2 = alerts[1]["id"].as_str().unwrap();
    let (s, _) = nurse
        .post(
            &format!("{base}/alerts/{aid2}/acknowledge"),
            &json!({"response": "observe"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, e) = nurse.post(&format!("{base}/recovery"), &json!({"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 3, "spo2": 2})).await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["consciousness".to_string()]),
        "{e}"
    );
    let (s, _) = nurse.post(&format!("{base}/recovery"), &json!({"activity": 2, "respiration": 2, "circulation": 1, "consciousness": 1, "spo2": 2})).await;
    assert_eq!(s, 201);
    let (s, e) = nurse.post(&format!("{base}/discharge"), &json!({})).await;
    assert_eq!(s, 409);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("Aldrete 8 is below 9"),
        "{e}"
    );
    let (s, v) = nurse.post(&format!("{base}/recovery"), &json!({"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2})).await;
    assert_eq!(s, 201);
    assert_eq!(
        v["phase"], "ready_for_discharge",
        "{}",
        v["discharge_blockers"]
    );
    let (s, v) = nurse
        .post(
            &format!("{base}/discharge"),
            &json!({"note": "Left with Sam, instructions given"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["phase"], "discharged");
    let (s, _) = nurse
        .post(&format!("{base}/observations"), &json!({"hr": 70}))
        .await;
    assert_eq!(s, 409, "the visit is closed");
    // The patient gets the instructions and the plan's questionnaire by
    // e-mail, with nothing about them or the treatment in the subjects.
    let sink = SmtpSink::start().await;
    let state = crate::measures::mailer_state(app, &sink).await;
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let mail: Vec<String> = sink
        .all()
        .into_iter()
        .filter(|m| m.contains("lena.rowe@example.org"))
        .collect();
    let home = mail
        .iter()
        .find(|m| m.contains("Subject: After your visit today at Stillwater Glendale"))
        .expect("going-home e-mail");
    assert!(
        home.contains("Do not drive") && home.contains("no integration session booked"),
        "{home}"
    );
    assert!(
        mail.iter().any(|m| m.contains("/q/")),
        "a post-session questionnaire link: {mail:?}"
    );
    for m in &mail {
        let subject = m.lines().find(|l| l.starts_with("Subject:")).unwrap();
        assert!(
            !subject.contains("Lena") && !subject.to_lowercase().contains("ketamine"),
            "{subject}"
        );
    }
    // Discharging again sends nothing more.
    let (s, _) = nurse
        .post(&format!("{base}/discharge"), &json!({"note": "again"}))
        .await;
    assert_eq!(s, 409);
    assert_eq!(
        app.store
            .count_jobs(clinic::jobs::DISCHARGE, Some("sent"))
            .await
            .unwrap(),
        1
    );

    // The note: signed by the prescriber, never changed, addenda only.
    let (s, _) = nurse.post(&format!("{base}/note"), &json!({})).await;
    assert_eq!(s, 403);
    let (s, v) = prescriber.post(&format!("{base}/note"), &json!({})).await;
    assert_eq!(s, 201, "{v}");
    let body = v["note"]["body"].as_str().unwrap().to_string();
    let checked = format!("Checked by nora.nurse; vial lot {lot_number}");
    for want in [
        "0.5 mg/kg x 70 kg = 35 mg",
        checked.as_str(),
        "0.7 mL of 50 mg/mL",
        "SBP 186 above 180",
        "response pause by nina.nurse",
        "labetalol 5 mg",
        "Modified Aldrete 10",
        "Escort: Sam Rowe",
        "Delivered: 35 mg of 35 mg",
    ] {
        assert!(body.contains(want), "{want} missing from:\n{body}");
    }
    let (s, _) = prescriber.post(&format!("{base}/note"), &json!({})).await;
    assert_eq!(s, 409, "signed once");
    let tampered = store::on_pool!(app.store.raw_pool(), p => {
        sqlx::query("UPDATE session_notes SET body = 'nothing happened' WHERE encounter_id = $1").bind(&eid).execute(p).await.is_err()
    });
    assert!(tampered, "the database refuses to change a signed note");
    let deleted = store::on_pool!(app.store.raw_pool(), p => {
        sqlx::query("DELETE FROM session_notes WHERE encounter_id = $1").bind(&eid).execute(p).await.is_err()
    });
    assert!(deleted, "nor delete it");
    let (s, v) = nurse
        .post(
            &format!("{base}/note/addenda"),
            &json!({"text": "Patient called at 18:00: feeling well."}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["addenda"].as_array().unwrap().len(), 1);
    assert_eq!(v["note"]["body"].as_str().unwrap(), body);
    let r = reqwest::Client::new()
        .get(app.url(&format!("{base}/note.pdf")))
        .bearer_auth(&prescriber.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().starts_with(b"%PDF"));

    // Outsiders: another clinic's nurse sees nothing; every step was audited.
    let (s, _) = api(app, "nate.nurse").await.get(&base).await;
    assert_eq!(s, 404);
    let (s, _) = desk.get(&base).await;
    assert_eq!(s, 403);
    // The auditor reads the visit but records nothing in it.
    let auditor = api(app, "audrey.auditor").await;
    let (s, _) = auditor.get(&base).await;
    assert_eq!(s, 200);
    let (s, _) = auditor
        .post(
            &format!("{base}/note/addenda"),
            &json!({"text": "looks fine"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = auditor
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair1}),
        )
        .await;
    assert_eq!(s, 403);
    for action in [
        "encounter.open",
        "checklist.record",
        "dose.order",
        "dose.check",
        "dose.administer",
        "observation.record",
        "alert.acknowledge",
        "encounter.discharge",
        "note.sign",
        "note.addendum",
        "note.export",
    ] {
        assert!(
            app.store.count_audit(action).await.unwrap() > 0,
            "{action} not audited"
        );
    }
    // The API document describes every treatment-day endpoint.
    // The visit was checked in without a booking: its dose still counts
    // where doses are counted (the trend chart's baseline is the last score
    // before it).
    let doses = app
        .store
        .dose_times(pid.parse().unwrap(), &["iv_infusion".to_string()])
        .await
        .unwrap();
    assert_eq!(doses.len(), 1, "the walk-in's dose: {doses:?}");
    // It is a visit like a booked one: an IV infusion on Chair 1 from the
    // recorded arrival, completed at discharge, on the list to invoice,
    // invoiced at the infusion's price, and in the patient's own visits.
    let visits = app
        .store
        .patient_appointments(pid.parse().unwrap(), &[app.glendale])
        .await
        .unwrap();
    assert_eq!(visits.len(), 1, "{visits:?}");
    let visit = &visits[0];
    assert_eq!(
        (
            visit.type_code.as_str(),
            visit.status,
            visit.resource_id.map(|r| r.to_string()),
        ),
        (
            "iv_infusion",
            store::scheduling::Status::Completed,
            Some(chair1.clone())
        )
    );
    assert!(
        (visit.starts_at - arrived).abs() < 1_000_000,
        "from the recorded arrival"
    );
    let (state, admin_caller) = app.acting_as("ada.admin").await;
    crate::billing::billing_details(&state, &admin_caller, app.glendale).await;
    let day = jiff::Timestamp::from_microsecond(visit.starts_at)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("America/Phoenix").unwrap())
        .date();
    let (s, e) = api(app, "ada.admin")
        .await
        .post(
            "/api/v1/prices",
            &json!({"clinic_id": app.glendale.to_string(), "effective_from": day.to_string(),
                    "currency": "USD", "prices": {"iv_infusion": "450", "rescue_medication": "40"}}),
        )
        .await;
    assert!(s < 300, "{s} {e}");
    let (s, inv) = desk
        .post(
            "/api/v1/invoices",
            &json!({"appointment_id": visit.id.to_string()}),
        )
        .await;
    assert_eq!(s, 201, "{inv}");
    assert!(
        inv["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["service"] == "iv_infusion"),
        "{inv}"
    );
    let doc = app.api_doc().await;
    for p in [
        "/api/v1/encounters",
        "/api/v1/encounters/{id}",
        "/api/v1/encounters/{id}/checklist",
        "/api/v1/encounters/{id}/dose-orders",
        "/api/v1/encounters/{id}/dose-orders/check",
        "/api/v1/encounters/{id}/administration-events",
        "/api/v1/encounters/{id}/observations",
        "/api/v1/observations",
        "/api/v1/encounters/{id}/alerts",
        "/api/v1/encounters/{id}/alerts/{aid}/acknowledge",
        "/api/v1/encounters/{id}/medications",
        "/api/v1/encounters/{id}/adverse-events",
        "/api/v1/encounters/{id}/recovery",
        "/api/v1/encounters/{id}/discharge",
        "/api/v1/encounters/{id}/note",
        "/api/v1/encounters/{id}/note/addenda",
        "/api/v1/encounters/{id}/note.pdf",
        "/api/v1/clinics/{id}/floor",
        "/api/v1/clinics/{id}/floor/events",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }
}

both!(a_full_iv_session);

/// Monitor batches: bad readings are named one by one, good ones stored
/// once however often they are sent, and each reaches the floor's event
/// stream within a second.
async fn monitors_stream_to_the_floor(app: &TestApp) {
    let pid = ready_patient(app, "Mara").await;
    let nurse = api(app, "nina.nurse").await;
    let chair2 = chair(app, "Chair 2").await;
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair2}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let device = Api {
        app,
        c: reqwest::Client::new(),
        token: app.device_token(app.glendale, "gateway").await,
    };
    let other = Api {
        app,
        c: reqwest::Client::new(),
        token: app.device_token(app.denver, "elsewhere").await,
    };

    // A device may not read the chart or act as staff.
    let (s, _) = device.get(&format!("/api/v1/encounters/{eid}")).await;
    assert_eq!(s, 403);
    let (s, _) = nurse
        .post("/api/v1/observations", &json!({"readings": []}))
        .await;
    assert_eq!(s, 403);
    let (s, e) = device
        .post("/api/v1/observations", &json!({"readings": []}))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = device
        .post("/api/v1/observations", &json!({"readings": "all of them"}))
        .await;
    assert_eq!(s, 400, "{e}");

    // The stream, opened by a staff session on the API.
    let stream_url = app.url(&format!("/api/v1/clinics/{}/floor/events", app.glendale));
    let mut sse = reqwest::Client::new()
        .get(&stream_url)
        .bearer_auth(&nurse.token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    assert!(sse.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    let r = |id: &str, chair: &str, at: String, v: Value| {
        let mut o = json!({"reading_id": id, "chair_id": chair, "taken_at": at});
        o.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        o
    };
    // A second app instance on the same database, with its own viewers: on
    // PostgreSQL the event reaches it too (NOTIFY/LISTEN); on SQLite there is
    // only ever one instance.
    let second = clinic::Clinic::new(app.store.clone(), clinic::Config::default());
    let (stop_second, stopped) = tokio::sync::watch::channel(false);
    clinic::treatment::start_fanout(&second, stopped);
    let mut second_board = second.floor.subscribe();
    // The listener is connected before anything is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batch = json!({"readings": [
        r("r1", &chair2, rfc(app, 0), json!({"hr": 74, "spo2": 98})),
        r("r2", &chair2, rfc(app, 0), json!({"sbp": 400, "dbp": 80})),
        r("r3", &chair2, rfc(app, -30), json!({"hr": 70})),
        r("r4", &chair(app, "Chair 4").await, rfc(app, 0), json!({"hr": 70})),
        r("r1", &chair2, rfc(app, 0), json!({"hr": 74, "spo2": 98})),
        {"reading_id": "r6", "chair_id": chair2, "taken_at": "yesterday", "hr": 70},
        {"reading_id": "r7", "chair_id": chair2, "taken_at": rfc(app, 0), "hr": "fast"},
        r("r8", &chair2, rfc(app, 0), json!({"spo2": 97, "rr": 15})),
    ]});
    let sent = Instant::now();
    let (s, out) = device.post("/api/v1/observations", &batch).await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(
        (out["stored"].as_u64(), out["duplicates"].as_u64()),
        (Some(2), Some(1)),
        "{out}"
    );
    let rejected: Vec<(u64, String)> = out["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["index"].as_u64().unwrap(),
                x["errors"][0]["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "sbp".into()),
            (2, "taken_at".into()),
            (3, "chair_id".into()),
            (5, "taken_at".into()),
            (6, "hr".into())
        ],
        "{out}"
    );
    if app.store.fans_out() {
        let ev = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let ev = second_board.recv().await.unwrap();
                if ev.encounter == eid {
                    return ev;
                }
            }
        })
        .await
        .expect("the other instance hears of the reading within a second");
        assert_eq!(ev.clinic, app.glendale.to_string());
        // Its own events are not echoed back to it.
        second.floor.send("a-clinic", "an-encounter", "step");
        let own = second_board.recv().await.unwrap();
        assert_eq!(own.encounter, "an-encounter");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), second_board.recv())
                .await
                .is_err(),
            "an instance's own event arrives once"
        );
    } else {
        assert!(second_board.try_recv().is_err(), "SQLite: one instance");
    }
    let _ = stop_second.send(true);
    // The event arrives within a second of the post.
    let got = tokio::time::timeout(Duration::from_secs(1), async {
        let mut buf = String::new();
        while let Some(chunk) = sse.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            if buf.contains(&eid) {
                return buf;
            }
        }
        buf
    })
    .await
    .expect("no floor event within a second");
    assert!(
        got.contains("event: floor") && got.contains("\"reading\""),
        "{got}"
    );
    assert!(sent.elapsed() < Duration::from_secs(1));
    // The event names the visit and the kind, never the patient.
    assert!(!got.contains("Mara"));

    // Sent again: nothing stored twice.
    let (s, out) = device.post("/api/v1/observations", &batch).await;
    assert_eq!(s, 200);
    assert_eq!(
        (out["stored"].as_u64(), out["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{out}"
    );
    assert_eq!(count(app, "observations", &eid).await, 2);
    // Gateways racing with the same readings, half of them in the reverse
    // order (written together in one transaction, or on PostgreSQL in two at
    // once, which must not deadlock): each reading is new for exactly one.
    let racing: Vec<_> = (0..20)
        .map(|i| {
            r(
                &format!("race{i}"),
                &chair2,
                rfc(app, 0),
                json!({"hr": 70 + i}),
            )
        })
        .collect();
    let forward = json!({ "readings": racing });
    let reversed = json!({ "readings": racing.iter().rev().collect::<Vec<_>>() });
    let path = "/api/v1/observations";
    let (a, b, c, d) = tokio::join!(
        device.post(path, &forward),
        device.post(path, &reversed),
        device.post(path, &forward),
        device.post(path, &reversed)
    );
    let (mut stored, mut dupes) = (0, 0);
    for (s, out) in [a, b, c, d] {
        assert_eq!(s, 200, "{out}");
        stored += out["stored"].as_u64().unwrap();
        dupes += out["duplicates"].as_u64().unwrap();
    }
    assert_eq!((stored, dupes), (20, 60));
    assert_eq!(count(app, "observations", &eid).await, 22);
    // Another clinic's device cannot write to this chair.
    let (s, out) = other
        .post(
            "/api/v1/observations",
            &json!({"readings": [r("x1", &chair2, rfc(app, 0), json!({"hr": 70}))]}),
        )
        .await;
    assert_eq!(
        (s, fields(&out)),
        (422, vec!["readings[0].chair_id".to_string()]),
        "{out}"
    );
    assert_eq!(count(app, "observations", &eid).await, 22);

    // After the dose starts, a device reading out of range raises an alert on the stream.
    let prescriber = api(app, "paul.prescriber").await;
    let base = format!("/api/v1/encounters/{eid}");
    let (s, v) = nurse
        .post(&format!("{base}/checklist"), &json!({
            "identity_confirmed": true, "weight_kg": 82.0, "pregnancy": "not_applicable", "fasting_confirmed": true,
            "escort_name": "Jo", "escort_phone": "602 555 0111", "no_alcohol": true, "medications_reviewed": true, "suicide_risk": "positive"
        }))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["ready_to_dose"], false,
        "a positive screen holds the dose"
    );
    let (s, v) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 164, "dbp": 96}),
        )
        .await;
    assert_eq!(s, 201);
    // Outside the pre-dose limits: an alert before the dose too.
    let pre = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["message"].as_str().unwrap().contains("pre-dose limit"))
        .expect("a pre-dose alert")
        .clone();
    let (_, v) = nurse.get(&base).await;
    let left: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["state"] != "done" && i["state"] != "overridden")
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["vitals", "suicide_risk", "pre_session_instruments"]);
    crate::helpers::answer_gad7(app, &pid).await;
    let (s, v) = prescriber
        .post(&format!("{base}/checklist"), &json!({"vitals_override_reason": "Rechecked seated: 154/94; known white-coat rise", "suicide_risk_override_reason": "Passive thoughts only, no plan; safety plan reviewed", "suicide_risk_assessment": "low"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["ready_to_dose"], false,
        "the alert is still open: {}",
        v["dose_blockers"]
    );
    let (s, v) = prescriber
        .post(
            &format!("{base}/alerts/{}/acknowledge", pre["id"].as_str().unwrap()),
            &json!({"response": "observe", "note": "white-coat; rechecked"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ready_to_dose"], true, "{}", v["dose_blockers"]);
    let (s, _) = prescriber
        .post(&format!("{base}/dose-orders"), &json!({"dose": 0.4}))
        .await;
    assert_eq!(s, 201);
    let (lot, lot_number) = stock(app, 100).await;
    draw(app, "nina.nurse", &eid, &lot, "0.35 mL").await;
    let (s, v) = api(app, "nora.nurse")
        .await
        .post(
            &format!("{base}/dose-orders/check"),
            &json!({"vial_lot": lot_number}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = nurse
        .post(
            &format!("{base}/administration-events"),
            &json!({"kind": "start"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, out) = device
        .post(
            "/api/v1/observations",
            &json!({"readings": [r("a1", &chair2, rfc(app, 0), json!({"spo2": 88, "moaas": 1}))]}),
        )
        .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["alerts"].as_u64(), Some(2));
    let got = tokio::time::timeout(Duration::from_secs(1), async {
        let mut buf = String::new();
        while let Some(chunk) = sse.chunk().await.unwrap() {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            if buf.contains("\"alert\"") {
                return buf;
            }
        }
        buf
    })
    .await
    .expect("no alert event within a second");
    assert!(got.contains(&eid));
    // A stop alert is not closed by watching.
    let (_, v) = nurse.get(&format!("{base}/alerts")).await;
    let stop = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["severity"] == "stop")
        .unwrap()
        .clone();
    let (s, e) = nurse
        .post(
            &format!("{base}/alerts/{}/acknowledge", stop["id"].as_str().unwrap()),
            &json!({"response": "observe"}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["response".to_string()]), "{e}");
    // The board shows the chair dosing with its alerts.
    let (s, f) = nurse
        .get(&format!("/api/v1/clinics/{}/floor", app.glendale))
        .await;
    assert_eq!(s, 200);
    let card = f["chairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["encounter_id"] == eid.as_str())
        .unwrap()
        .clone();
    assert_eq!(card["phase"], "dosing");
    assert_eq!(card["initials"], "MR");
    assert_eq!(card["open_alerts"].as_array().unwrap().len(), 2);

    // The pages: the board shows the chair; the chair view answers the alert.
    let web = app.login("nina.nurse").await;
    let r = web.get("/floor").await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Chair 2") && html.contains("Dosing") && html.contains("MR"),
        "{html}"
    );
    let r = web
        .get(&format!("/floor?clinic={}&partial=1", app.glendale))
        .await;
    let part = r.text().await.unwrap();
    assert!(
        part.starts_with("<div class=\"floor\"") && part.contains("SpO2 88 % below 92 %"),
        "{part}"
    );
    let r = web.get(&format!("/encounters/{eid}")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("MOAA/S 1: at or below 1, stop and escalate") && html.contains("Acknowledge"),
        "{html}"
    );
    let r = web
        .post_form(
            &format!("/encounters/{eid}/ack"),
            &[("alert_id", stop["id"].as_str().unwrap()), ("response", "")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("record the response taken"));
    let r = web
        .post_form(
            &format!("/encounters/{eid}/ack"),
            &[
                ("alert_id", stop["id"].as_str().unwrap()),
                ("response", "stop"),
                ("note", "airway support, MOAA/S 3 after 2 min"),
            ],
        )
        .await;
    // Answered by a redirect, so a reload never posts the step again.
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(to, format!("/encounters/{eid}?done=ack"));
    assert!(web
        .get(&to)
        .await
        .text()
        .await
        .unwrap()
        .contains("Alert acknowledged."));
    let r = web
        .post_form(&format!("/encounters/{eid}/reading"), &[("sbp", "abc")])
        .await;
    assert!(r.text().await.unwrap().contains("is not a number"));
    let r = web.get("/encounters/not-an-id").await;
    assert_eq!(r.status(), 404);

    // A patient nobody booked today is checked in from the chart, into a
    // free IV chair (Chair 2 is taken; recliners take no infusion).
    let walk_in = ready_patient(app, "Wren").await;
    // The front desk sees the chart but may not seat anyone.
    let desk = app.login("dana.frontdesk").await;
    let html = desk.html(&format!("/patients/{walk_in}")).await;
    assert!(!html.contains("Check in now, without a booking"));
    let r = desk
        .post_form(
            "/floor/check-in",
            &[
                ("clinic", &app.glendale.to_string()),
                ("patient_id", &walk_in),
                ("chair_id", &chair(app, "Chair 3").await),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    let html = web.html(&format!("/patients/{walk_in}")).await;
    let form = &html[html
        .find("Check in now, without a booking")
        .expect("check-in form")..];
    let options = &form[..form.find("</select>").unwrap()];
    assert!(
        options.contains(">Chair 3<")
            && !options.contains(">Chair 2<")
            && !options.contains("Recliner"),
        "{options}"
    );
    let r = web
        .post_form(
            "/floor/check-in",
            &[
                ("clinic", &app.glendale.to_string()),
                ("patient_id", &walk_in),
                ("chair_id", &chair(app, "Chair 3").await),
                ("at", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/encounters/"));
    let html = web.html(&format!("/patients/{walk_in}")).await;
    assert!(
        html.contains("Treatment sessions") && html.contains("in the clinic"),
        "{html}"
    );
    assert!(!html.contains("Check in now, without a booking"));

    // Straight to the store, in groups big enough to overlap: the same
    // readings in opposite orders, written at once, must not deadlock
    // (PostgreSQL writes two groups at a time), and each is stored once.
    let now = app.now_ts().as_microsecond();
    for round in 0..3 {
        let group = |reversed: bool| {
            let mut g: Vec<store::treatment::NewObservation> = (0..2000)
                .map(|i| store::treatment::NewObservation {
                    id: store::treatment::new_id(),
                    encounter_id: eid.clone(),
                    source_key: format!("test:{round}:{i:04}"),
                    taken_at: now - i,
                    v: domain::treatment::Vitals {
                        hr: Some(70),
                        ..Default::default()
                    },
                    recorded_by: None,
                    device_token_id: None,
                    alerts: Vec::new(),
                })
                .collect();
            if reversed {
                g.reverse();
            }
            g
        };
        let (a, b) = tokio::join!(
            app.store.insert_observations(group(false), Vec::new()),
            app.store.insert_observations(group(true), Vec::new())
        );
        let (a, b) = (a.expect("no deadlock").1, b.expect("no deadlock").1);
        assert_eq!(a.len() + b.len(), 2000, "round {round}");
    }
}

both!(monitors_stream_to_the_floor);

/// A chart never drops its check-in silently: it says when the patient has
/// no plan yet and when every chair able to take them is in use.
async fn check_in_from_the_chart_says_why_not(app: &TestApp) {
    let nurse = api(app, "nina.nurse").await;
    let (s, p) = nurse
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": "Nova", "family_name": "Reyes", "date_of_birth": "1990-04-04"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let nova = p["id"].as_str().unwrap().to_string();
    let page = app.login("nina.nurse").await;
    let html = page.html(&format!("/patients/{nova}")).await;
    assert!(
        html.contains("Check-in opens once the patient has a treatment plan."),
        "{html}"
    );

    let ivo = ready_patient(app, "Ivo").await;
    let uma = ready_patient(app, "Uma").await;
    // Only Chair 1 stays in use at Glendale.
    for r in app.store.resources(app.glendale).await.unwrap() {
        if r.resource.name != "Chair 1" && r.active {
            app.store
                .set_resource_active(app.glendale, r.resource.id, false, ev())
                .await
                .unwrap();
        }
    }
    let chair1 = chair(app, "Chair 1").await;
    let html = page.html(&format!("/patients/{uma}")).await;
    assert!(
        html.contains(&format!("<option value=\"{chair1}\">Chair 1</option>")),
        "{html}"
    );
    assert!(!html.contains("No chair is free now"));

    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": ivo, "chair_id": chair1}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let html = page.html(&format!("/patients/{uma}")).await;
    assert!(
        html.contains("No chair is free now: Chair 1 in use."),
        "{html}"
    );
    assert!(!html.contains("action=\"/floor/check-in\""), "{html}");
}

both!(check_in_from_the_chart_says_why_not);

/// What is on file reaches the chair: allergies from the assessment, the
/// eligibility decision's conditions, and the escort (the record's over the
/// assessment form's), which also fills the checklist.
async fn the_chair_shows_what_is_on_file(app: &TestApp) {
    let pid = ready_patient(app, "Ora").await;
    let nurse = api(app, "nina.nurse").await;
    let prescriber = api(app, "paul.prescriber").await;
    let base = format!("/api/v1/patients/{pid}");
    let mut part = crate::intake::patient_part();
    part["allergies"] = json!("latex");
    let (s, e) = nurse
        .post(&format!("{base}/assessment/patient"), &part)
        .await;
    assert_eq!(s, 201, "{e}");
    let (_, a) = nurse.get(&format!("{base}/assessment")).await;
    let (s, d) = prescriber
        .post(&format!("{base}/eligibility"), &json!({"facts": a["facts"], "decision": "eligible_with_conditions", "conditions": "Hold clonazepam the night before", "rationale": "Treatment-resistant GAD."}))
        .await;
    assert_eq!(s, 201, "{d}");
    let (s, _) = nurse
        .post(&format!("{base}/eligibility/2/sign-off"), &json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair(app, "Chair 2").await}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let page = app.login("nina.nurse").await;
    let html = page.html(&format!("/encounters/{eid}")).await;
    assert!(html.contains("<mark>latex</mark>"), "{html}");
    assert!(
        html.contains("<mark>Hold clonazepam the night before</mark>"),
        "{html}"
    );
    assert!(html.contains("Sam Quinn, 602-555-0101"), "{html}");
    assert!(
        html.contains("name=\"escort_name\" value=\"Sam Quinn\""),
        "the checklist starts from it: {html}"
    );
    // The desk updates the escort on the record: the record wins.
    let (s, e) = api(app, "dana.frontdesk")
        .await
        .patch(
            &base,
            &json!({"escort_name": "Robin Vale", "escort_phone": "602-555-0199"}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    let html = page.html(&format!("/encounters/{eid}")).await;
    assert!(html.contains("Robin Vale, 602-555-0199"), "{html}");
    // The prescriber sees them where the dose is ordered.
    let html = app
        .login("paul.prescriber")
        .await
        .html(&format!("/encounters/{eid}"))
        .await;
    assert!(
        html.contains("Before ordering: allergies <strong>latex</strong>; eligibility conditions <strong>Hold clonazepam the night before</strong>."),
        "{html}"
    );
}

both!(the_chair_shows_what_is_on_file);

/// The patient writes their intention on the tablet the nurse hands over at
/// check-in: only that page while it is in their hands, a bad one refused
/// with what was typed kept, the saved one shown at the chair; the nurse's
/// password takes the tablet back to the chair.
async fn an_intention_written_on_the_tablet(app: &TestApp) {
    let pid = ready_patient(app, "Tova").await;
    let chair2 = chair(app, "Chair 3").await;
    let nurse = api(app, "nina.nurse").await;
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair2}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let k = app.login("nina.nurse").await;
    let html = k.html(&format!("/encounters/{eid}")).await;
    assert!(html.contains("none written yet"), "{html}");
    let page = format!("/patients/{pid}/intention");
    assert!(
        html.contains(&format!(r#"name="path" value="{page}""#)),
        "{html}"
    );
    // One written ahead of the visit (in the portal, for its appointment)
    // shows at the chair too.
    let appt = app
        .store
        .encounter(&eid)
        .await
        .unwrap()
        .unwrap()
        .appointment_id
        .expect("the walk-in's visit");
    app.store
        .insert_intention(
            &store::intentions::NewIntention {
                clinic: app.glendale,
                patient: pid.parse().unwrap(),
                appointment_id: Some(&appt),
                encounter_id: None,
                body: "Written at home, the night before.",
                source: "portal",
            },
            ev(),
        )
        .await
        .unwrap();
    let html = k.html(&format!("/encounters/{eid}")).await;
    assert!(
        html.contains("Written at home, the night before.") && html.contains("in the portal"),
        "{html}"
    );
    let loc = |r: &reqwest::Response| {
        r.headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let r = k.post_form("/kiosk/hand-over", &[("path", &page)]).await;
    assert_eq!((r.status().as_u16(), loc(&r)), (303, page.clone()));
    // In the patient's hands: their page, nothing else.
    let html = k.html(&page).await;
    assert!(
        html.contains("Tova, your intention") && html.contains("(checked in at "),
        "{html}"
    );
    assert_eq!(loc(&k.get(&format!("/encounters/{eid}")).await), "/kiosk");
    // Too long: refused by name, the words kept.
    let long = "a".repeat(1001);
    let r = k.post_form(&page, &[("intention", &long)]).await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("at most 1000") && html.contains(&long),
        "kept"
    );
    let r = k.post_form(&page, &[("intention", "   ")]).await;
    assert_eq!(r.status().as_u16(), 422);
    let r = k
        .post_form(&page, &[("intention", "To meet the fear with curiosity.")])
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Thank you") && html.contains("hand the tablet back"),
        "{html}"
    );
    // The nurse takes it back to the chair, where the intention shows.
    let r = k.post_form("/kiosk/take-back", &[("password", PW)]).await;
    assert_eq!(
        (r.status().as_u16(), loc(&r)),
        (303, format!("/encounters/{eid}"))
    );
    let html = k.html(&format!("/encounters/{eid}")).await;
    assert!(
        html.contains("To meet the fear with curiosity.") && html.contains("on the tablet"),
        "{html}"
    );
    app.store.audit_flush().await;
    assert_eq!(app.store.count_audit("intention.write").await.unwrap(), 1);
    // The care team reads it through the API: the nurse and the therapist
    // (for the session brief); not the front desk; not another clinic.
    let path = format!("/api/v1/intentions?patient_id={pid}");
    for user in ["nina.nurse", "theo.therapist"] {
        let (s, v) = api(app, user).await.get(&path).await;
        assert_eq!(s, 200, "{user}: {v}");
        assert_eq!(
            v["intentions"][0]["intention"],
            "To meet the fear with curiosity."
        );
        assert_eq!(v["intentions"][0]["source"], "tablet");
        assert_eq!(v["intentions"][0]["encounter_id"], json!(eid));
        assert_eq!(
            v["intentions"][1]["source"], "portal",
            "the earlier one kept"
        );
    }
    let (s, _) = api(app, "dana.frontdesk").await.get(&path).await;
    assert_eq!(s, 403);
    let (s, _) = api(app, "nate.nurse").await.get(&path).await;
    assert_eq!(s, 404, "another clinic's nurse learns nothing");
    let (s, e) = nurse.get("/api/v1/intentions?patient_id=nobody").await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["patient_id".to_string()]),
        "{e}"
    );
    // The front desk may not write one for a patient (only the patient, on
    // a clinician's tablet or in their portal).
    let desk = app.login("dana.frontdesk").await;
    let r = desk
        .post_form(&page, &[("intention", "typed by the desk")])
        .await;
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        desk.get(&page).await.status().as_u16(),
        403,
        "nor open the page"
    );
    // Another clinic's nurse finds no such patient, to read or to write.
    let other = app.login("nate.nurse").await;
    assert_eq!(other.get(&page).await.status().as_u16(), 404);
    let r = other.post_form(&page, &[("intention", "not mine")]).await;
    assert_eq!(r.status().as_u16(), 404);
}
both!(an_intention_written_on_the_tablet);
