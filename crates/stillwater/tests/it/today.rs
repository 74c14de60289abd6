//! Today per role: each person signs in and finds first what their roles
//! at the clinic call for, and nothing of another role's work. The day is
//! the first infusion of a booked series, whatever day the test runs on.

use serde_json::{json, Value};

use crate::api::Api;
use crate::both;
use crate::helpers::*;
use crate::intake::{clinical_part, patient_part};
use crate::treatment::ready_patient;

async fn api<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token(user).await,
    }
}

fn ts(v: &Value) -> i64 {
    v.as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_microsecond()
}

/// The clinic's clock face for a time: "9:00 AM" in Phoenix.
fn clinic_time(m: i64) -> String {
    domain::time::WallClock::new("America/Phoenix", "US").time(m)
}

/// The part of a page's Today card headed `heading`, up to the next card.
fn part<'a>(html: &'a str, heading: &str) -> &'a str {
    let Some(at) = html.find(&format!(">{heading}</h3>")) else {
        return "";
    };
    let rest = &html[at..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

async fn today_by_role(app: &TestApp) {
    let g = app.glendale.to_string();
    let desk = api(app, "dana.frontdesk").await;
    let nurse = api(app, "nina.nurse").await;
    let admin = api(app, "ada.admin").await;

    // Iris is ready for treatment and has an induction booked from a Monday
    // six weeks on; Wren is assessed and waits for an eligibility decision.
    let iris = ready_patient(app, "Iris").await;
    let tz = jiff::tz::TimeZone::get("America/Phoenix").unwrap();
    let mut monday = app.now_ts().to_zoned(tz).date() + jiff::Span::new().days(42);
    while monday.weekday() != jiff::civil::Weekday::Monday {
        monday = monday.tomorrow().unwrap();
    }
    let (s, booked) = desk
        .post("/api/v1/series", &json!({"clinic_id": g, "patient_id": iris, "course": "induction", "dose_type": "iv_infusion", "from": monday.to_string()}))
        .await;
    assert_eq!(s, 201, "{booked}");
    assert_eq!(
        booked["warnings"],
        json!([]),
        "everything is in place for Iris"
    );
    let appts = booked["appointments"].as_array().unwrap();
    let first = appts
        .iter()
        .filter(|a| a["series_role"] == "dose")
        .min_by_key(|a| ts(&a["starts_at"]))
        .unwrap()
        .clone();
    let integration = appts
        .iter()
        .find(|a| a["series_role"] == "integration" && a["series_index"] == first["series_index"])
        .unwrap()
        .clone();
    let (s, w) = nurse
        .post(
            "/api/v1/patients",
            &json!({"clinic_id": g, "given_name": "Wren", "family_name": "Ashby", "date_of_birth": "1979-02-11"}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let wren = w["id"].as_str().unwrap().to_string();
    for (part, body) in [("patient", patient_part()), ("clinical", clinical_part())] {
        let (s, e) = nurse
            .post(&format!("/api/v1/patients/{wren}/assessment/{part}"), &body)
            .await;
        assert_eq!(s, 201, "{e}");
    }
    // Iris bought a package she has not paid for yet.
    let (state, ada) = app.acting_as("ada.admin").await;
    crate::billing::billing_details(&state, &ada, app.glendale).await;
    let (s, prod) = admin
        .post("/api/v1/packages/products", &json!({"clinic_id": g, "name": "Two infusions", "service": "iv_infusion", "sessions": 2, "price": "500", "valid_days": 90}))
        .await;
    assert_eq!(s, 201, "{prod}");
    let (s, sold) = desk
        .post(
            "/api/v1/packages",
            &json!({"patient_id": iris, "product_id": prod["id"]}),
        )
        .await;
    assert_eq!(s, 201, "{sold}");

    // Half an hour before the first infusion.
    let start = ts(&first["starts_at"]);
    app.store.clock().set(start - 30 * 60_000_000);

    // The front desk: the day's arrivals with what they owe; no clinical work.
    let front = app.login("dana.frontdesk").await.html("/").await;
    let arrivals = part(&front, "Arrivals");
    assert!(arrivals.contains("Iris Rowe"), "{front}");
    assert!(arrivals.contains(&clinic_time(start)), "{arrivals}");
    assert!(
        arrivals.contains(&format!(
            "href=\"/appointments/{}\"",
            first["id"].as_str().unwrap()
        )),
        "{arrivals}"
    );
    assert!(arrivals.contains(">Booked<"), "{arrivals}");
    assert!(arrivals.contains("$500.00"), "the balance due: {arrivals}");
    assert!(
        arrivals.contains("<strong>1</strong> expected"),
        "{arrivals}"
    );
    assert!(front.contains(">New leads to call</h3>"));
    for other in ["The floor", "Waiting on you", "Your sessions"] {
        assert!(
            !front.contains(&format!(">{other}</h3>")),
            "front desk sees {other}"
        );
    }
    // Only Glendale: the desk works there alone.
    assert!(!front.contains("Stillwater Denver"));

    // The nurse checks Iris in at her chair; the floor shows her pre-dose.
    let nurse = api(app, "nina.nurse").await;
    let (s, v) = nurse
        .post(
            "/api/v1/encounters",
            &json!({"patient_id": iris, "appointment_id": first["id"], "chair_id": first["resource_id"]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let eid = v["encounter"]["id"].as_str().unwrap().to_string();
    let floor_html = app.login("nina.nurse").await.html("/").await;
    let floor = part(&floor_html, "The floor");
    assert!(
        floor.contains(&format!("/encounters/{eid}")),
        "{floor_html}"
    );
    assert!(floor.contains("Pre-dose"), "{floor}");
    assert!(floor.contains("<strong>1</strong> in a chair"), "{floor}");
    assert!(!floor_html.contains(">Arrivals</h3>"));
    assert!(!floor_html.contains(">Waiting on you</h3>"));
    // The monitoring clinician sees the same floor.
    let mona = app.login("mona.monitor").await.html("/").await;
    assert!(part(&mona, "The floor").contains(&format!("/encounters/{eid}")));

    // The desk sees Iris checked in now.
    let front = app.login("dana.frontdesk").await.html("/").await;
    let arrivals = part(&front, "Arrivals");
    assert!(arrivals.contains(">Checked in<"), "{arrivals}");
    assert!(
        arrivals.contains("<strong>0</strong> expected"),
        "{arrivals}"
    );

    // The prescriber: an order to write for Iris, a decision for Wren; at
    // both clinics, and the read of the queue is in the audit record.
    let paul_session = app.login("paul.prescriber").await;
    app.store.audit_flush().await;
    let task_reads = app
        .store
        .count_audit("questionnaire_response.read")
        .await
        .unwrap();
    let paul = paul_session.html("/").await;
    app.store.audit_flush().await;
    assert_eq!(
        app.store
            .count_audit("questionnaire_response.read")
            .await
            .unwrap(),
        task_reads + 1,
        "the safety tasks of both clinics are read (and audited) once"
    );
    let work = part(&paul, "Waiting on you");
    assert!(
        work.contains(&format!(
            "href=\"/encounters/{eid}\">Dose order to write: Iris Rowe"
        )),
        "{work}"
    );
    assert!(
        work.contains(&format!(
            "href=\"/patients/{wren}/eligibility\">Eligibility to decide: Wren Ashby"
        )),
        "{work}"
    );
    assert!(!work.contains("Eligibility to decide: Iris"), "{work}");
    assert!(paul.contains("Stillwater Denver"));
    assert!(!paul.contains(">Arrivals</h3>"));
    app.store.audit_flush().await;
    let events = app
        .store
        .audit_events(&store::audit::AuditFilter {
            action: Some(domain::audit::Action::EncounterRead.as_str().into()),
            clinics: vec![g.clone()],
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let queue = events
        .iter()
        .find(|e| e.object_type.as_deref() == Some("prescriber_queue"))
        .expect("the prescriber's queue read is audited");
    let detail = queue.detail.clone().unwrap_or_default();
    assert!(detail.contains(&iris) && detail.contains(&wren), "{detail}");

    // The admin: the Schedule III record and the takings; the opening
    // hours are on the clinic's own page now.
    let ada_html = app.login("ada.admin").await.html("/").await;
    let records = part(&ada_html, "Records and the close of day");
    assert!(
        records.contains("Taken today: <strong>$0.00</strong>"),
        "{records}"
    );
    assert!(!ada_html.contains(">Arrivals</h3>"));
    assert!(!ada_html.contains("class=\"hours\""));
    let settings = app
        .login("ada.admin")
        .await
        .html(&format!("/admin/clinics/{g}"))
        .await;
    assert!(settings.contains("class=\"hours\""), "{settings}");
    assert!(settings.contains(">Opening hours</h2>"));

    // The auditor: where the record is, and no one's work queue.
    let audrey = app.login("audrey.auditor").await.html("/").await;
    assert!(
        part(&audrey, "The record").contains("href=\"/audit\""),
        "{audrey}"
    );
    for other in ["Arrivals", "The floor", "Waiting on you", "Your sessions"] {
        assert!(
            !audrey.contains(&format!(">{other}</h3>")),
            "auditor sees {other}"
        );
    }

    // On the day of the integration session, its therapist finds it.
    let therapist: domain::ids::UserId = integration["phases"][0]["staff"][0]["user_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let who = app.store.user_summary(therapist).await.unwrap();
    let at = ts(&integration["starts_at"]);
    app.store.clock().set(at - 60 * 60_000_000);
    let theirs = app.login(&who.username).await.html("/").await;
    let sessions = part(&theirs, "Your sessions");
    assert!(sessions.contains("Iris Rowe"), "{theirs}");
    assert!(sessions.contains(&clinic_time(at)), "{sessions}");
    let other = if who.username == "theo.therapist" {
        "tessa.therapist"
    } else {
        "theo.therapist"
    };
    let not_theirs = app.login(other).await.html("/").await;
    assert!(!part(&not_theirs, "Your sessions").contains("Iris Rowe"));
}

both!(today_by_role);
