//! The dosing gate, tried as a clinic's medical director would (the safety
//! review of 2026-12-07): each case the review reproduced over the JSON API
//! is tried again here on both backends and must be refused or end safe,
//! with its neighbours on the HTML forms. Time moves by the app's clock.

use serde_json::{json, Value};

use crate::api::Api;
use crate::both;
use crate::helpers::*;
use crate::treatment::{chair, draw, ready_patient, stock};

async fn api<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token(user).await,
    }
}

/// A patient in a chair with everything confirmed, a calm baseline and
/// today's GAD-7: the prescriber may order.
struct Seated<'a> {
    app: &'a TestApp,
    nurse: Api<'a>,
    checker: Api<'a>,
    prescriber: Api<'a>,
    pid: String,
    eid: String,
    base: String,
}

const FULL: &str = r#"{"identity_confirmed": true, "weight_kg": 80.0, "pregnancy": "negative_test",
    "fasting_confirmed": true, "escort_name": "Sam Rowe", "escort_phone": "602-555-0190",
    "no_alcohol": true, "medications_reviewed": true, "medication_changes": "none",
    "suicide_risk": "negative"}"#;

async fn seated<'a>(app: &'a TestApp, given: &str, chair_name: &str) -> Seated<'a> {
    let pid = ready_patient(app, given).await;
    seat(app, pid, chair_name).await
}

async fn seat<'a>(app: &'a TestApp, pid: String, chair_name: &str) -> Seated<'a> {
    answer_gad7(app, &pid).await;
    let nurse = api(app, "nina.nurse").await;
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair(app, chair_name).await}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/encounters/{eid}");
    let full: Value = serde_json::from_str(FULL).unwrap();
    let (s, v) = nurse.post(&format!("{base}/checklist"), &full).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = nurse
        .post(
            &format!("{base}/observations"),
            &json!({"sbp": 124, "dbp": 80, "hr": 70, "spo2": 98, "rr": 14}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["ready_to_dose"], true, "{}", v["dose_blockers"]);
    Seated {
        app,
        nurse,
        checker: api(app, "nora.nurse").await,
        prescriber: api(app, "paul.prescriber").await,
        pid,
        eid,
        base,
    }
}

impl Seated<'_> {
    async fn get(&self) -> Value {
        self.nurse.get(&self.base).await.1
    }
    async fn order(&self, dose: f64) -> (u16, Value) {
        self.prescriber
            .post(
                &format!("{}/dose-orders", self.base),
                &json!({"dose": dose}),
            )
            .await
    }
    /// Draws `quantity` from a fresh lot of `strength` and has it checked.
    async fn draw_and_check(&self, strength: i64, quantity: &str) -> Value {
        let (lot, number) = stock(self.app, strength).await;
        draw(self.app, "nina.nurse", &self.eid, &lot, quantity).await;
        let (s, v) = self
            .checker
            .post(
                &format!("{}/dose-orders/check", self.base),
                &json!({"vial_lot": number}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }
    async fn step(&self, kind: &str, extra: Value) -> (u16, Value) {
        let mut body = json!({ "kind": kind });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.nurse
            .post(&format!("{}/administration-events", self.base), &body)
            .await
    }
    async fn reading(&self, v: Value) -> (u16, Value) {
        self.nurse
            .post(&format!("{}/observations", self.base), &v)
            .await
    }
    /// Ordered 0.5 mg/kg at 80 kg (40 mg), drawn from 50 mg/mL, checked, started.
    async fn dosing(&self) {
        let (s, v) = self.order(0.5).await;
        assert_eq!(s, 201, "{v}");
        self.draw_and_check(50, "0.8 mL").await;
        let (s, v) = self.step("start", json!({})).await;
        assert_eq!(s, 201, "{v}");
    }
    /// Infused, stopped, recovered, scored and discharged.
    async fn through_discharge(&self) -> Value {
        self.dosing().await;
        self.app.advance_minutes(40);
        let (s, v) = self.step("stop", json!({})).await;
        assert_eq!(s, 201, "{v}");
        self.app.advance_minutes(31);
        let (s, v) = self
            .nurse
            .post(
                &format!("{}/recovery", self.base),
                &json!({"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let (s, v) = self
            .nurse
            .post(&format!("{}/discharge", self.base), &json!({}))
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }
}

fn detail(v: &Value) -> &str {
    v["detail"].as_str().unwrap_or_default()
}

/// Case 1: ordered at 80 kg, the weight then set to 48 kg: the order is
/// voided (60 mg would be 1.25 mg/kg), the start refused, and a new order
/// worked out from 48 kg. On the HTML form as on the API.
async fn a_new_weight_voids_the_order(app: &TestApp) {
    let v = seated(app, "Una", "Chair 1").await;
    let (s, o) = v.order(0.75).await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["dose_order"]["maths"]["mg"].as_f64(), Some(60.0));
    let old_order = o["dose_order"]["id"].as_str().unwrap().to_string();
    let (s, after) = v
        .nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"weight_kg": 48.0}),
        )
        .await;
    assert_eq!(s, 200, "{after}");
    assert!(after["dose_order"].is_null(), "{after}");
    let voided = &after["voided_orders"][0];
    assert_eq!(voided["id"], old_order.as_str());
    assert!(
        voided["reason"]
            .as_str()
            .unwrap()
            .contains("the weight changed from 80 to 48 kg"),
        "{voided}"
    );
    let (s, e) = v.step("start", json!({})).await;
    assert_eq!(s, 409, "{e}");
    // Nothing is drawn against a voided order.
    let (lot, _) = stock(app, 50).await;
    let (s, e) = v
        .nurse
        .post(
            "/api/v1/cs/ledger",
            &json!({"kind": "draw", "clinic_id": app.glendale, "lot_id": lot, "dose_order_id": old_order, "quantity": "0.5 mL"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, o) = v.order(0.75).await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["dose_order"]["maths"]["mg"].as_f64(), Some(36.0));
    assert_eq!(o["dose_order"]["maths"]["weight_kg"].as_f64(), Some(48.0));

    // The chair view's form: the weight typed over voids it too, and the
    // page says so.
    let web = app.login("nina.nurse").await;
    let v2 = seated(app, "Vera", "Chair 2").await;
    let (s, _) = v2.order(0.5).await;
    assert_eq!(s, 201);
    let mut form: Vec<(&str, String)> = vec![
        ("identity_confirmed", "on".into()),
        ("weight_kg", "64".into()),
        ("weight_was", "80".into()),
        ("pregnancy", "negative_test".into()),
        ("fasting_confirmed", "on".into()),
        ("escort_name", "Sam Rowe".into()),
        ("escort_phone", "602-555-0190".into()),
        ("no_alcohol", "on".into()),
        ("medications_reviewed", "on".into()),
        ("medication_changes", "none".into()),
        ("suicide_risk", "negative".into()),
    ];
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = web
        .post_form(&format!("/encounters/{}/checklist", v2.eid), &refs)
        .await;
    assert_eq!(r.status(), 303);
    let html = web.html(&format!("/encounters/{}", v2.eid)).await;
    assert!(
        html.contains("the weight changed from 80 to 64 kg after the order"),
        "{html}"
    );
    let got = v2.get().await;
    assert!(got["dose_order"].is_null());
    // Sent back unchanged, the weight keeps its order.
    let (s, _) = v2.order(0.5).await;
    assert_eq!(s, 201);
    form[1].1 = "64".into();
    form[2].1 = "64".into();
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = web
        .post_form(&format!("/encounters/{}/checklist", v2.eid), &refs)
        .await;
    assert_eq!(r.status(), 303);
    assert!(!v2.get().await["dose_order"].is_null(), "the order stands");
}
both!(a_new_weight_voids_the_order);

/// Case 2: PHQ-9 item 9 answered 3 today opens a task; the nurse's
/// "negative" does not clear it; the prescriber's assessment does.
async fn the_record_s_risk_outweighs_a_negative_screen(app: &TestApp) {
    let v = seated(app, "Wanda", "Chair 1").await;
    let mut answers = serde_json::Map::new();
    for i in 1..=9 {
        answers.insert(i.to_string(), json!(if i == 9 { 3 } else { 1 }));
    }
    let (s, r) = v
        .nurse
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": v.pid, "instrument": "phq9", "answers": answers}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let got = v.get().await;
    assert_eq!(got["ready_to_dose"], false, "{}", got["items"]);
    let item = got["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "suicide_risk")
        .unwrap()
        .clone();
    assert!(item["why"].as_str().unwrap().contains("PHQ-9"), "{item}");
    let (s, e) = v.order(0.5).await;
    assert_eq!(s, 409, "{e}");
    // The nurse saying "negative" again changes nothing.
    let (s, again) = v
        .nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"suicide_risk": "negative"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(again["ready_to_dose"], false);
    // A nurse cannot assess; a reason without an assessment is not enough.
    let (s, _) = v
        .nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"suicide_risk_override_reason": "seems fine", "suicide_risk_assessment": "low"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, e) = v
        .prescriber
        .post(
            &format!("{}/checklist", v.base),
            &json!({"suicide_risk_override_reason": "passive thoughts, no plan"}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["suicide_risk_assessment".to_string()]),
        "{e}"
    );
    let (s, high) = v
        .prescriber
        .post(
            &format!("{}/checklist", v.base),
            &json!({"suicide_risk_override_reason": "active plan disclosed", "suicide_risk_assessment": "high"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(high["ready_to_dose"], false, "high risk: no dose today");
    let (s, ok) = v
        .prescriber
        .post(
            &format!("{}/checklist", v.base),
            &json!({"suicide_risk_override_reason": "passive thoughts, no plan; safety plan reviewed", "suicide_risk_assessment": "low"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(ok["ready_to_dose"], true, "{}", ok["dose_blockers"]);
    let (s, _) = v.order(0.5).await;
    assert_eq!(s, 201);
}
both!(the_record_s_risk_outweighs_a_negative_screen);

/// Case 3: an override names the reading it answers and lapses on the next
/// reading outside the limits; readings before the dose raise alerts.
async fn a_vitals_override_answers_one_reading(app: &TestApp) {
    let v = seated(app, "Xena", "Chair 1").await;
    let (s, e) = v
        .prescriber
        .post(
            &format!("{}/checklist", v.base),
            &json!({"vitals_override_reason": "blanket approval for today"}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["vitals_override_reason".to_string()]),
        "nothing to override: {e}"
    );
    let (s, r) = v
        .reading(json!({"sbp": 166, "dbp": 96, "hr": 80, "spo2": 98}))
        .await;
    assert_eq!(s, 201);
    let alert = r["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ack_at"].is_null())
        .expect("the pre-dose reading raises an alert")
        .clone();
    let (s, r) = v
        .prescriber
        .post(
            &format!("{}/checklist", v.base),
            &json!({"vitals_override_reason": "white-coat rise; 152/92 on the recheck by hand"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["ready_to_dose"], false, "the alert is still open");
    let (s, r) = v
        .prescriber
        .post(
            &format!(
                "{}/alerts/{}/acknowledge",
                v.base,
                alert["id"].as_str().unwrap()
            ),
            &json!({"response": "observe", "note": "rechecked"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["ready_to_dose"], true, "{}", r["dose_blockers"]);
    // Then 232/128 with HR 128: stop alerts, and the override has lapsed.
    let (s, r) = v
        .reading(json!({"sbp": 232, "dbp": 128, "hr": 128, "spo2": 97}))
        .await;
    assert_eq!(s, 201);
    let stops: Vec<&Value> = r["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["severity"] == "stop")
        .collect();
    assert!(stops.len() >= 2, "{}", r["alerts"]);
    assert_eq!(r["ready_to_dose"], false);
    let vitals = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "vitals")
        .unwrap()
        .clone();
    assert!(
        vitals["why"].as_str().unwrap().contains("lapsed"),
        "{vitals}"
    );
    let (s, e) = v.order(0.5).await;
    assert_eq!(s, 409, "{e}");
    // Acknowledging the alerts does not bring the lapsed override back.
    for a in r["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["ack_at"].is_null())
    {
        let response = if a["severity"] == "stop" {
            "stop"
        } else {
            "observe"
        };
        let (s, _) = v
            .prescriber
            .post(
                &format!(
                    "{}/alerts/{}/acknowledge",
                    v.base,
                    a["id"].as_str().unwrap()
                ),
                &json!({"response": response, "note": "dose deferred"}),
            )
            .await;
        assert_eq!(s, 200);
    }
    let (s, e) = v.order(0.5).await;
    assert_eq!(s, 409, "{e}");
    assert!(detail(&e).contains("lapsed"), "{e}");
}
both!(a_vitals_override_answers_one_reading);

/// Case 5: after a discharge, the same patient the same day is refused at
/// check-in, naming the rule; the next day they may come.
async fn one_dose_a_day_at_the_most(app: &TestApp) {
    let v = seated(app, "Yara", "Chair 1").await;
    v.through_discharge().await;
    let (s, e) = v
        .nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": v.pid, "chair_id": chair(app, "Chair 2").await}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(detail(&e).contains("one every 20 h"), "{e}");
    app.advance_minutes(20 * 60);
    let (s, e) = v
        .nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": v.pid, "chair_id": chair(app, "Chair 2").await}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
}
both!(one_dose_a_day_at_the_most);

/// Case 5, the plan's side: a plan of one dose allows one.
async fn no_more_doses_than_the_plan_has(app: &TestApp) {
    let pid = ready_patient(app, "Zane").await;
    let (s, p) = api(app, "paul.prescriber")
        .await
        .post(
            &format!("/api/v1/patients/{pid}/plans"),
            &json!({"protocol": "iv-infusion", "course": "induction", "doses": 1, "targets": ["gad7"],
                    "goal": "response", "modality": "cbt", "reason": "a single trial dose first"}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let v = seat(app, pid, "Chair 1").await;
    v.through_discharge().await;
    app.advance_minutes(24 * 60);
    let (s, e) = v
        .nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": v.pid, "chair_id": chair(app, "Chair 1").await}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(detail(&e).contains("1 doses are all given"), "{e}");
}
both!(no_more_doses_than_the_plan_has);

/// Case 6: times typed afterwards never precede the order; recovery counts
/// from the stop as entered unless a second person attests a paper record;
/// entries made later are marked, in the API and in the note.
async fn no_time_precedes_what_allowed_it(app: &TestApp) {
    let pid = ready_patient(app, "Abel").await;
    answer_gad7(app, &pid).await;
    let nurse = api(app, "nina.nurse").await;
    // Checked in, recorded 11 h late.
    let eleven = (app.now_ts() - jiff::SignedDuration::from_hours(11)).to_string();
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair(app, "Chair 1").await, "at": eleven}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["encounter"]["entered_later"], true);
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/encounters/{eid}");
    let s = Seated {
        app,
        nurse,
        checker: api(app, "nora.nurse").await,
        prescriber: api(app, "paul.prescriber").await,
        pid,
        eid: eid.clone(),
        base: base.clone(),
    };
    let full: Value = serde_json::from_str(FULL).unwrap();
    s.nurse.post(&format!("{base}/checklist"), &full).await;
    s.reading(json!({"sbp": 124, "dbp": 80, "hr": 70, "spo2": 98}))
        .await;
    let (st, o) = s.order(0.5).await;
    assert_eq!(st, 201, "{o}");
    s.draw_and_check(50, "0.8 mL").await;
    let ten = (app.now_ts() - jiff::SignedDuration::from_hours(10)).to_string();
    let (st, e) = s.step("start", json!({ "at": ten })).await;
    assert_eq!((st, fields(&e)), (422, vec!["at".to_string()]), "{e}");
    let (st, _) = s.step("start", json!({})).await;
    assert_eq!(st, 201);
    // The stop is entered 40 minutes on, giving the time from the paper
    // chart: 30 minutes ago.
    app.advance_minutes(40);
    let thirty = (app.now_ts() - jiff::SignedDuration::from_mins(30)).to_string();
    let (st, v) = s
        .step(
            "stop",
            json!({"at": thirty, "reason": "stopped early: nausea"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let stop = v["administration_events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(stop["entered_later"], true, "{stop}");
    s.nurse
        .post(&format!("{base}/recovery"), &json!({"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}))
        .await;
    let (st, e) = s.nurse.post(&format!("{base}/discharge"), &json!({})).await;
    assert_eq!(st, 409, "recovery counts from the stop as entered: {e}");
    assert!(detail(&e).contains("recovery 0 of at least 30"), "{e}");
    // The nurse who entered it may not attest it; a second nurse may.
    let (st, e) = s
        .nurse
        .post(
            &format!("{base}/attestation"),
            &json!({"note": "paper flowsheet, page 2"}),
        )
        .await;
    assert_eq!(st, 409, "{e}");
    let (st, v) = s
        .checker
        .post(
            &format!("{base}/attestation"),
            &json!({"note": "paper flowsheet, page 2, signed by both"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.nurse.post(&format!("{base}/discharge"), &json!({})).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.prescriber.post(&format!("{base}/note"), &json!({})).await;
    assert_eq!(st, 201, "{v}");
    let note = v["note"]["body"].as_str().unwrap();
    for want in [
        "entered later at",
        "Checked in",
        "attested from the paper record by nora.nurse",
    ] {
        assert!(note.contains(want), "{want}:\n{note}");
    }
}
both!(no_time_precedes_what_allowed_it);

/// Case 7: a monitor reading taken before the patient sat down is not
/// theirs: refused, never their baseline.
async fn readings_before_check_in_are_refused(app: &TestApp) {
    let pid = ready_patient(app, "Bea").await;
    let nurse = api(app, "nina.nurse").await;
    let chair1 = chair(app, "Chair 1").await;
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": pid, "chair_id": chair1}),
        )
        .await;
    assert_eq!(s, 201);
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let device = Api {
        app,
        c: reqwest::Client::new(),
        token: app.device_token(app.glendale, "gateway").await,
    };
    let before = (app.now_ts() - jiff::SignedDuration::from_mins(20)).to_string();
    let (s, out) = device
        .post(
            "/api/v1/observations",
            &json!({"readings": [{"reading_id": "early", "chair_id": chair1, "taken_at": before,
                    "sbp": 120, "dbp": 80, "hr": 70, "spo2": 98}]}),
        )
        .await;
    assert_eq!(s, 422, "{out}");
    assert_eq!(fields(&out), ["readings[0].taken_at"], "{out}");
    let (s, e) = nurse
        .post(
            &format!("/api/v1/encounters/{eid}/observations"),
            &json!({"sbp": 120, "dbp": 80, "hr": 70, "spo2": 98, "taken_at": before}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["taken_at".to_string()]), "{e}");
    let (_, v) = nurse.get(&format!("/api/v1/encounters/{eid}")).await;
    assert!(v["baseline"].is_null(), "{v}");
    assert_eq!(v["observations"].as_array().unwrap().len(), 0);
}
both!(readings_before_check_in_are_refused);

/// Case 8: SpO2 50, HR 20 and RR 2 are stops, and a stop alert never
/// closes with "observe" or "reassure".
async fn every_vital_sign_can_stop_the_dose(app: &TestApp) {
    let v = seated(app, "Cleo", "Chair 1").await;
    v.dosing().await;
    app.advance_minutes(5);
    for (reading, param) in [
        (json!({"spo2": 50}), "spo2"),
        (json!({"hr": 20}), "hr"),
        (json!({"rr": 2}), "rr"),
    ] {
        let (s, r) = v.reading(reading).await;
        assert_eq!(s, 201, "{r}");
        let a = r["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["parameter"] == param && a["ack_at"].is_null())
            .unwrap()
            .clone();
        assert_eq!(a["severity"], "stop", "{a}");
        let path = format!(
            "{}/alerts/{}/acknowledge",
            v.base,
            a["id"].as_str().unwrap()
        );
        for weak in ["observe", "reassure", "pause", "reposition"] {
            let (s, e) = v.nurse.post(&path, &json!({"response": weak})).await;
            assert_eq!(
                (s, fields(&e)),
                (422, vec!["response".to_string()]),
                "{weak}: {e}"
            );
        }
        let strong = if param == "spo2" { "oxygen" } else { "stop" };
        let (s, _) = v.nurse.post(&path, &json!({"response": strong})).await;
        assert_eq!(s, 200);
    }
}
both!(every_vital_sign_can_stop_the_dose);

/// Case 9: unticking an item on the form withdraws it, and so does the
/// API's `withdraw`; the visit is not ready again.
async fn a_confirmation_can_be_withdrawn(app: &TestApp) {
    let v = seated(app, "Dina", "Chair 1").await;
    let web = app.login("nina.nurse").await;
    let form = [
        ("identity_confirmed", "on"),
        ("weight_kg", "80"),
        ("weight_was", "80"),
        ("pregnancy", "negative_test"),
        // fasting_confirmed left unticked
        ("escort_name", "Sam Rowe"),
        ("escort_phone", "602-555-0190"),
        ("no_alcohol", "on"),
        ("medications_reviewed", "on"),
        ("medication_changes", "none"),
        ("suicide_risk", "negative"),
    ];
    let r = web
        .post_form(&format!("/encounters/{}/checklist", v.eid), &form)
        .await;
    assert_eq!(r.status(), 303);
    let got = v.get().await;
    assert_eq!(got["ready_to_dose"], false);
    assert!(
        got["checklist"]["fasting_confirmed"].is_null(),
        "{}",
        got["checklist"]
    );
    assert_eq!(
        got["checklist"]["weight_kg"].as_f64(),
        Some(80.0),
        "the weight stays"
    );
    let (s, back) = v
        .nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"fasting_confirmed": true}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(back["ready_to_dose"], true);
    for key in ["no_alcohol", "escort", "pregnancy", "identity_confirmed"] {
        let (s, w) = v
            .nurse
            .post(
                &format!("{}/checklist", v.base),
                &json!({"withdraw": [key]}),
            )
            .await;
        assert_eq!(s, 200, "{w}");
        assert_eq!(w["ready_to_dose"], false, "{key} withdrawn");
        let full: Value = serde_json::from_str(FULL).unwrap();
        v.nurse.post(&format!("{}/checklist", v.base), &full).await;
    }
    let (s, e) = v
        .nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"withdraw": ["vibes"]}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["withdraw".to_string()]), "{e}");
    // Withdrawn after the order: the start is refused.
    let (s, _) = v.order(0.5).await;
    assert_eq!(s, 201);
    v.draw_and_check(50, "0.8 mL").await;
    v.nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"withdraw": ["fasting_confirmed"]}),
        )
        .await;
    let (s, e) = v.step("start", json!({})).await;
    assert_eq!(s, 409, "{e}");
    assert!(detail(&e).contains("Fasting"), "{e}");
}
both!(a_confirmation_can_be_withdrawn);

/// Case 10: the mg ordered never crosses the range (0.75 mg/kg at 33.3 kg
/// is 24.975 mg: 24.9 at the protocol's 0.1 mg, not 25.0).
async fn the_mg_ordered_stays_in_the_range(app: &TestApp) {
    let v = seated(app, "Elle", "Chair 1").await;
    v.nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"weight_kg": 33.3}),
        )
        .await;
    let (s, o) = v.order(0.75).await;
    assert_eq!(s, 201, "{o}");
    let m = &o["dose_order"]["maths"];
    assert_eq!(m["mg"].as_f64(), Some(24.9), "{m}");
    assert!(m["mg"].as_f64().unwrap() <= 0.75 * 33.3);
}
both!(the_mg_ordered_stays_in_the_range);

/// Case 11: the volume is the lot's, not the protocol's 10 mg/mL: 40 mg
/// drawn from 100 mg/mL is 0.4 mL, on the order, the chair view and the note.
async fn the_volume_is_the_drawn_lot_s(app: &TestApp) {
    let v = seated(app, "Fern", "Chair 1").await;
    let (s, _) = v.order(0.5).await;
    assert_eq!(s, 201);
    let checked = v.draw_and_check(100, "0.4 mL").await;
    let vol = &checked["dose_order"]["maths"]["volume"];
    assert_eq!(vol["drug_ml"].as_f64(), Some(0.4), "{vol}");
    assert_eq!(vol["concentration_mg_per_ml"].as_f64(), Some(100.0));
    let web = app.login("nina.nurse").await;
    let html = web.html(&format!("/encounters/{}", v.eid)).await;
    assert!(html.contains("0.4 mL of 100 mg/mL"), "{html}");
    assert!(!html.contains("4 mL drug"), "{html}");
}
both!(the_volume_is_the_drawn_lot_s);

/// Case 12: a signed note, an addendum, a ledger row or a payment cannot be
/// rewritten by an upsert, on either backend; the note's hash is in the
/// audit chain.
async fn signed_records_refuse_an_upsert(app: &TestApp) {
    let v = seated(app, "Gina", "Chair 1").await;
    v.through_discharge().await;
    let (s, n) = v
        .prescriber
        .post(&format!("{}/note", v.base), &json!({}))
        .await;
    assert_eq!(s, 201, "{n}");
    let sha = n["note"]["sha256"].as_str().unwrap().to_string();
    let eid = v.eid.clone();
    let sqlite = matches!(app.store.backend(), store::Backend::Sqlite);
    let rewrite = if sqlite {
        "INSERT OR REPLACE INTO session_notes (id, encounter_id, body, sha256, signed_by, signed_at) \
         SELECT id, encounter_id, 'nothing happened', sha256, signed_by, signed_at FROM session_notes WHERE encounter_id = $1"
    } else {
        "INSERT INTO session_notes (id, encounter_id, body, sha256, signed_by, signed_at) \
         SELECT id, encounter_id, 'nothing happened', sha256, signed_by, signed_at FROM session_notes WHERE encounter_id = $1 \
         ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body"
    };
    let refused = store::on_pool!(app.store.raw_pool(), p => {
        sqlx::query(rewrite).bind(&eid).execute(p).await.is_err()
    });
    assert!(refused, "the note was rewritten");
    let ledger = if sqlite {
        "INSERT OR REPLACE INTO cs_ledger SELECT * FROM cs_ledger WHERE seq = (SELECT MAX(seq) FROM cs_ledger)"
    } else {
        "INSERT INTO cs_ledger SELECT * FROM cs_ledger WHERE seq = (SELECT MAX(seq) FROM cs_ledger) \
         ON CONFLICT (seq) DO UPDATE SET quantity_ul = EXCLUDED.quantity_ul + 1000"
    };
    let refused = store::on_pool!(app.store.raw_pool(), p => {
        sqlx::query(ledger).execute(p).await.is_err()
    });
    assert!(refused, "a ledger row was rewritten");
    let (_, after) = v.nurse.get(&v.base).await;
    assert_ne!(after["note"]["body"], "nothing happened");
    app.store.audit_flush().await;
    let events = app
        .store
        .audit_events(&store::audit::AuditFilter {
            patient_id: Some(v.pid.clone()),
            action: Some("note.sign".into()),
            clinics: vec![app.glendale.to_string()],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "note.sign"
                && e.detail.as_deref() == Some(&format!("sha256 {sha}"))),
        "the note's hash is in the chain"
    );
}
both!(signed_records_refuse_an_upsert);

/// Case 13: no note before the patient leaves; the note's "before the dose"
/// is the state at the order.
async fn the_note_is_signed_after_discharge(app: &TestApp) {
    let v = seated(app, "Hana", "Chair 1").await;
    v.dosing().await;
    app.advance_minutes(40);
    v.step("stop", json!({})).await;
    let (s, e) = v
        .prescriber
        .post(&format!("{}/note", v.base), &json!({}))
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(detail(&e).contains("after discharge"), "{e}");
    let (s, _) = v
        .nurse
        .post(
            &format!("{}/adverse-events", v.base),
            &json!({"kind": "anxiety_agitation", "severity": "severe", "serious": true,
                    "description": "panic after the stop", "action": "midazolam 1 mg", "outcome": "settled"}),
        )
        .await;
    assert_eq!(s, 201);
    app.advance_minutes(31);
    v.nurse
        .post(&format!("{}/recovery", v.base), &json!({"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}))
        .await;
    v.nurse
        .post(&format!("{}/discharge", v.base), &json!({}))
        .await;
    let (s, n) = v
        .prescriber
        .post(&format!("{}/note", v.base), &json!({}))
        .await;
    assert_eq!(s, 201, "{n}");
    let body = n["note"]["body"].as_str().unwrap();
    assert!(body.contains("Before the dose (as at the order"), "{body}");
    assert!(
        body.contains("panic after the stop") && body.contains("Discharged"),
        "{body}"
    );
    assert!(!body.contains("Not yet discharged"), "{body}");
}
both!(the_note_is_signed_after_discharge);

/// Case 14: nothing clinical is pre-filled: the Aldrete starts unanswered and
/// an unanswered item is refused; who drew the dose does not check it.
async fn nothing_clinical_is_pre_filled(app: &TestApp) {
    let v = seated(app, "Iris", "Chair 1").await;
    let (s, _) = v.order(0.5).await;
    assert_eq!(s, 201);
    let (lot, number) = stock(app, 50).await;
    draw(app, "nora.nurse", &v.eid, &lot, "0.8 mL").await;
    let (s, e) = v
        .checker
        .post(
            &format!("{}/dose-orders/check", v.base),
            &json!({"vial_lot": number}),
        )
        .await;
    assert_eq!(s, 409, "who drew does not check: {e}");
    let (s, _) = v
        .nurse
        .post(
            &format!("{}/dose-orders/check", v.base),
            &json!({"vial_lot": number}),
        )
        .await;
    assert_eq!(s, 200);
    v.step("start", json!({})).await;
    app.advance_minutes(40);
    v.step("stop", json!({})).await;
    let web = app.login("nina.nurse").await;
    let html = web.html(&format!("/encounters/{}", v.eid)).await;
    let aldrete = &html[html
        .find("class=\"stack aldrete\"")
        .expect("the Aldrete form")..];
    let aldrete = &aldrete[..aldrete.find("</form>").unwrap()];
    assert!(
        !aldrete.contains("checked"),
        "an Aldrete item is pre-set: {aldrete}"
    );
    let r = web
        .post_form(
            &format!("/encounters/{}/recovery", v.eid),
            &[("activity", "2"), ("respiration", "2")],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(body.contains("score this item"), "{body}");
    let (_, got) = v.nurse.get(&v.base).await;
    assert!(got["recovery"].is_null(), "nothing scored");
}
both!(nothing_clinical_is_pre_filled);

/// Case 15: a visit with no dose ends, with its reason; the chair and the
/// patient are free again.
async fn a_visit_can_end_without_a_dose(app: &TestApp) {
    let v = seated(app, "Jade", "Chair 1").await;
    let (s, _) = v.order(0.5).await;
    assert_eq!(s, 201);
    let (s, e) = v
        .nurse
        .post(
            &format!("{}/end-without-dose", v.base),
            &json!({"reason": "no"}),
        )
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["reason".to_string()]), "{e}");
    let (s, ended) = v
        .nurse
        .post(
            &format!("{}/end-without-dose", v.base),
            &json!({"reason": "BP stayed above 160/100 after 30 minutes"}),
        )
        .await;
    assert_eq!(s, 200, "{ended}");
    assert_eq!(ended["phase"], "discharged");
    assert!(ended["dose_order"].is_null(), "the order is voided");
    assert_eq!(
        ended["encounter"]["no_dose_reason"],
        "BP stayed above 160/100 after 30 minutes"
    );
    // Free again: the same chair, the same patient, the same day (no dose was given).
    let (s, e) = v
        .nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": v.pid, "chair_id": chair(app, "Chair 1").await}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let (s, n) = v
        .prescriber
        .post(&format!("{}/note", v.base), &json!({}))
        .await;
    assert_eq!(s, 201, "{n}");
    assert!(n["note"]["body"]
        .as_str()
        .unwrap()
        .contains("Ended without a dose"));
    // A dose given cannot end that way.
    let w = seated(app, "Kyla", "Chair 2").await;
    w.dosing().await;
    let (s, _) = w
        .nurse
        .post(
            &format!("{}/end-without-dose", w.base),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(s, 409);
}
both!(a_visit_can_end_without_a_dose);

/// The escort: a name with a letter and no invisible or control characters,
/// a phone number that can be dialled.
async fn the_escort_is_a_real_person(app: &TestApp) {
    let v = seated(app, "Lana", "Chair 1").await;
    for (body, field) in [
        (json!({"escort_name": "-"}), "escort_name"),
        (json!({"escort_name": "x\u{7}"}), "escort_name"),
        (json!({"escort_name": "\u{200b}\u{200b}"}), "escort_name"),
        (json!({"escort_name": "Sam\u{202e}woR"}), "escort_name"),
        (json!({"escort_phone": "12345"}), "escort_phone"),
        (json!({"escort_phone": "(602) 123-4567"}), "escort_phone"),
    ] {
        let (s, e) = v.nurse.post(&format!("{}/checklist", v.base), &body).await;
        assert_eq!(
            (s, fields(&e)),
            (422, vec![field.to_string()]),
            "{body}: {e}"
        );
    }
    let (s, _) = v
        .nurse
        .post(
            &format!("{}/checklist", v.base),
            &json!({"escort_name": "Zoë O'Neil-Ramírez", "escort_phone": "+44 20 7946 0958"}),
        )
        .await;
    assert_eq!(s, 200);
}
both!(the_escort_is_a_real_person);

/// Lists that name patients (the floor board, the task list, the
/// dispensing log) are audited with the patients they showed, as search is.
async fn lists_of_patients_record_whom_they_showed(app: &TestApp) {
    let v = seated(app, "Mira", "Chair 1").await;
    v.dosing().await;
    let mut answers = serde_json::Map::new();
    for i in 1..=9 {
        answers.insert(i.to_string(), json!(if i == 9 { 1 } else { 0 }));
    }
    v.nurse
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": v.pid, "instrument": "phq9", "answers": answers}),
        )
        .await;
    let (s, _) = v
        .nurse
        .get(&format!("/api/v1/clinics/{}/floor", app.glendale))
        .await;
    assert_eq!(s, 200);
    let (s, _) = v.nurse.get("/api/v1/tasks").await;
    assert_eq!(s, 200);
    let r = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/cs/ledger?clinic_id={}&format=csv",
            app.glendale
        )))
        .bearer_auth(&v.nurse.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.store.audit_flush().await;
    for action in ["floor.read", "questionnaire_response.read", "cs.report"] {
        let events = app
            .store
            .audit_events(&store::audit::AuditFilter {
                action: Some(action.into()),
                clinics: vec![app.glendale.to_string()],
                include_orgwide: true,
                limit: 50,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.detail.as_deref().is_some_and(|d| d.contains(&v.pid))),
            "{action}: {:?}",
            events.iter().map(|e| &e.detail).collect::<Vec<_>>()
        );
    }
}
both!(lists_of_patients_record_whom_they_showed);

/// Case 14, the count: a blind count hides the expected figures from the
/// counter, on every tab and over the API, until it is recorded.
async fn a_blind_count_is_blind(app: &TestApp) {
    let (lot, _) = stock(app, 50).await;
    let web = app.login("nina.nurse").await;
    let g = app.glendale.to_string();
    let stock_page = web.html(&format!("/substances?clinic={g}")).await;
    assert!(
        stock_page.contains("50 mL"),
        "the stock shows before the count"
    );
    let counts = web
        .html(&format!("/substances?clinic={g}&tab=counts"))
        .await;
    assert!(counts.contains("Begin the blind count"));
    assert!(
        !counts.contains(&format!("counted_{lot}")),
        "no count form before it begins"
    );
    let r = web
        .post_form("/substances/count-begin", &[("clinic_id", &g)])
        .await;
    assert_eq!(r.status(), 303);
    for tab in ["stock", "ledger", "reconciliation", "inventories"] {
        let html = web.html(&format!("/substances?clinic={g}&tab={tab}")).await;
        assert!(html.contains("Counting blind"), "{tab}");
        assert!(!html.contains("50 mL"), "{tab} shows the expected figure");
    }
    let nurse = api(app, "nina.nurse").await;
    for path in [
        "/api/v1/cs/lots".to_string(),
        format!("/api/v1/cs/ledger?clinic_id={g}"),
        format!("/api/v1/cs/reconciliation?clinic_id={g}"),
        "/api/v1/cs/draws".to_string(),
    ] {
        let (s, e) = nurse.get(&path).await;
        assert_eq!(s, 409, "{path}: {e}");
    }
    assert_eq!(
        web.get(&format!("/substances/ledger.csv?clinic_id={g}"))
            .await
            .status(),
        409
    );
    // Someone else still sees the stock.
    let (s, _) = api(app, "nora.nurse").await.get("/api/v1/cs/lots").await;
    assert_eq!(s, 200);
    let counts = web
        .html(&format!("/substances?clinic={g}&tab=counts"))
        .await;
    assert!(counts.contains(&format!("counted_{lot}")), "the count form");
    let field = format!("counted_{lot}");
    let r = web
        .post_form(
            "/substances/count",
            &[("clinic_id", &g), (field.as_str(), "50")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = web.html(&format!("/substances?clinic={g}")).await;
    assert!(html.contains("50 mL") && !html.contains("Counting blind"));
    let (s, _) = nurse.get("/api/v1/cs/lots").await;
    assert_eq!(s, 200);
}
both!(a_blind_count_is_blind);

/// A refused form comes back as it was filled in: the receipt of stock with
/// one bad field keeps the product chosen and every other field typed, and
/// the page's other forms stay empty.
async fn a_refused_stock_form_keeps_what_was_typed(app: &TestApp) {
    stock(app, 50).await;
    let web = app.login("nina.nurse").await;
    let g = app.glendale.to_string();
    let page = web.html(&format!("/substances?clinic={g}")).await;
    // The last product offered, so that keeping the first would not pass.
    let product = page
        .split("name=\"product_id\">")
        .nth(1)
        .and_then(|s| s.split("</select>").next())
        .and_then(|s| s.rsplit("<option value=\"").next())
        .and_then(|s| s.split('"').next())
        .expect("a product to receive")
        .to_string();
    let r = web
        .post_form(
            "/substances/movement",
            &[
                ("clinic_id", &g),
                ("kind", "receipt"),
                ("product_id", &product),
                ("lot_number", "KT-KEPT-1"),
                ("expires_on", "2028-01-31"),
                ("containers", "two"),
                ("supplier_name", "Cardinal Health 411"),
                ("supplier_address", "7000 Cardinal Pl, Dublin OH 43017"),
                ("supplier_dea", "RC0193843"),
                ("invoice", "CAH-55902"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("whole number"), "the error is named");
    for kept in [
        "value=\"KT-KEPT-1\"",
        "value=\"2028-01-31\"",
        "value=\"two\"",
        "value=\"Cardinal Health 411\"",
        "value=\"RC0193843\"",
        "value=\"CAH-55902\"",
        &format!("<option value=\"{product}\" selected>"),
    ] {
        assert!(html.contains(kept), "{kept} came back");
    }
    assert!(
        html.contains(
            "id=\"draw-q\" name=\"quantity\" placeholder=\"e.g. 0.7 mL or 35 mg\" value=\"\""
        ) || !html.contains("id=\"draw-q\""),
        "the draw form stays empty"
    );
}
both!(a_refused_stock_form_keeps_what_was_typed);
