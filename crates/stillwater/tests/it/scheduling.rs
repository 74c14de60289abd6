//! Scheduling over HTTP: a whole induction series, moving and cancelling
//! against its rules, a 64-client race for one chair, bad input, and the
//! iCalendar feeds read back by an independent parser.

use serde_json::{json, Value};

use crate::api::Api;
use crate::both;
use crate::helpers::*;

/// A Monday at least six weeks ahead in Glendale, clear of the demo calendar.
fn test_monday(app: &TestApp) -> jiff::civil::Date {
    let tz = jiff::tz::TimeZone::get("America/Phoenix").unwrap();
    let mut d = app.now_ts().to_zoned(tz).date() + jiff::Span::new().days(42);
    while d.weekday() != jiff::civil::Weekday::Monday {
        d = d.tomorrow().unwrap();
    }
    d
}

async fn api<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token(user).await,
    }
}

async fn glendale_patients(app: &TestApp, n: i64) -> Vec<String> {
    app.store
        .search_patients(&[app.glendale], "", n)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id.to_string())
        .collect()
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

async fn induction_series(app: &TestApp) {
    let api = api(app, "dana.frontdesk").await;
    let pid = glendale_patients(app, 1).await.remove(0);
    let monday = test_monday(app);
    let body = json!({
        "clinic_id": app.glendale, "patient_id": pid, "course": "induction",
        "dose_type": "iv_infusion", "from": monday.to_string(), "dry_run": true,
    });
    let (s, proposal) = api.post("/api/v1/series", &body).await;
    assert_eq!(s, 200, "{proposal}");
    // Booked before the intake: allowed, and said.
    assert_eq!(
        proposal["warnings"],
        json!([
            "Eligibility: no eligibility decision.",
            "No treatment plan yet."
        ]),
        "{proposal}"
    );
    assert_eq!(proposal["steps"].as_array().unwrap().len(), 6);
    assert_eq!(
        app.store.count_claims(None).await.unwrap(),
        0,
        "a dry run books nothing"
    );

    let mut book = body.clone();
    book["dry_run"] = json!(false);
    let (s, booked) = api.post("/api/v1/series", &book).await;
    assert_eq!(s, 201, "{booked}");
    let appts = booked["appointments"].as_array().unwrap();
    assert_eq!(appts.len(), 12, "6 infusions and 6 integration sessions");
    let doses: Vec<&Value> = appts
        .iter()
        .filter(|a| a["series_role"] == "dose")
        .collect();
    let starts: Vec<jiff::Timestamp> = doses.iter().map(|d| ts(&d["starts_at"])).collect();
    for w in starts.windows(2) {
        assert!((w[1] - w[0]).get_seconds() >= 0);
        let gap = w[1].as_second() - w[0].as_second();
        assert!(gap >= 48 * 3600, "doses {gap} s apart");
    }
    assert!(starts[5].as_second() - starts[0].as_second() <= 21 * 86400);
    // Every integration session starts 24-72 h after its dose ends.
    for d in &doses {
        let i = appts
            .iter()
            .find(|a| a["series_role"] == "integration" && a["series_index"] == d["series_index"])
            .unwrap();
        let gap = ts(&i["starts_at"]).as_second() - ts(&d["ends_at"]).as_second();
        assert!(
            (24 * 3600..=72 * 3600).contains(&gap),
            "integration {gap} s after its dose"
        );
    }
    // Same chair for every infusion.
    assert!(doses
        .iter()
        .all(|d| d["resource_id"] == doses[0]["resource_id"]));

    // The day board of the first day lists the first infusion, by clinic time.
    let first_day = jiff::Timestamp::from_second(starts[0].as_second())
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("America/Phoenix").unwrap())
        .date();
    let (s, day) = api
        .get(&format!(
            "/api/v1/appointments?clinic_id={}&date={first_day}",
            app.glendale
        ))
        .await;
    assert_eq!(s, 200);
    assert!(day["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == doses[0]["id"]));

    // Outside its clinic a visit does not exist; a read-only role cannot change it.
    let first_id = doses[0]["id"].as_str().unwrap();
    let denver_desk = api_for(app, "devon.frontdesk").await;
    assert_eq!(
        denver_desk
            .get(&format!("/api/v1/appointments/{first_id}"))
            .await
            .0,
        404
    );
    let (s, _) = denver_desk
        .patch(
            &format!("/api/v1/appointments/{first_id}"),
            &json!({"starts_at": (starts[0] + jiff::Span::new().hours(1)).to_string()}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = denver_desk
        .post(
            &format!("/api/v1/appointments/{first_id}/cancel"),
            &json!({"reason": "not mine"}),
        )
        .await;
    assert_eq!(s, 404);
    let monitor = api_for(app, "mona.monitor").await;
    assert_eq!(
        monitor
            .get(&format!("/api/v1/appointments/{first_id}"))
            .await
            .0,
        200
    );
    let (s, _) = monitor
        .post(
            &format!("/api/v1/appointments/{first_id}/cancel"),
            &json!({"reason": "no"}),
        )
        .await;
    assert_eq!(s, 403);
    // A visit still ahead cannot be a no-show.
    let (s, p) = api
        .post(
            &format!("/api/v1/appointments/{first_id}/no-show"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    let (_, still) = api.get(&format!("/api/v1/appointments/{first_id}")).await;
    assert_eq!(still["status"], "booked");
    assert_eq!(still["sequence"], 0);

    // Moving the second infusion to the day after the first breaks the 48 h rule.
    let too_close = (starts[0] + jiff::Span::new().hours(24)).to_string();
    let (s, p) = api
        .patch(
            &format!("/api/v1/appointments/{}", doses[1]["id"].as_str().unwrap()),
            &json!({"starts_at": too_close}),
        )
        .await;
    assert_eq!(s, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("48 h"), "{p}");

    // Moving the last infusion a little the same day is fine and raises its
    // sequence: up to 30 minutes later, as far as its integration session
    // stays 24 h or more away (the search may have put it at 24 h and a few
    // minutes), or else 30 minutes earlier.
    let last = doses[5];
    let last_integration = appts
        .iter()
        .find(|a| a["series_role"] == "integration" && a["series_index"] == last["series_index"])
        .unwrap();
    let room = ts(&last_integration["starts_at"]).as_second() - ts(&last["ends_at"]).as_second();
    let shift = match ((room - 24 * 3600) / 60 / 5 * 5).min(30) {
        0 => -30,
        m => m,
    };
    let later = (starts[5] + jiff::Span::new().minutes(shift)).to_string();
    let (s, moved) = api
        .patch(
            &format!("/api/v1/appointments/{}", last["id"].as_str().unwrap()),
            &json!({"starts_at": later}),
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    assert_eq!(moved["sequence"], 1);
    assert_eq!(
        ts(&moved["starts_at"]),
        starts[5] + jiff::Span::new().minutes(shift)
    );

    // Cancelling releases the visit's time and keeps the record.
    let id = last["id"].as_str().unwrap();
    let (s, c) = api
        .post(
            &format!("/api/v1/appointments/{id}/cancel"),
            &json!({"reason": "Patient has a family event"}),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["late_cancel"], false);
    let aid = id.parse().unwrap();
    assert_eq!(app.store.count_claims(Some(aid)).await.unwrap(), 0);
    let (s, again) = api
        .post(
            &format!("/api/v1/appointments/{id}/cancel"),
            &json!({"reason": "again"}),
        )
        .await;
    assert_eq!(s, 409, "{again}");
    // The API document describes the scheduling endpoints.
    let doc = app.api_doc().await;
    for p in [
        "/api/v1/appointment-types",
        "/api/v1/resources",
        "/api/v1/availability",
        "/api/v1/appointments",
        "/api/v1/appointments/{id}",
        "/api/v1/series",
        "/api/v1/calendar-feeds",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} is documented");
    }
    // Every booking is in the audit trail with the patient.
    let n = app.store.count_audit("appointment.create").await.unwrap();
    assert_eq!(n, 12);
}
both!(induction_series);

/// 64 clients book the same chair at the same time; the database lets one win.
async fn race_for_one_chair(app: &TestApp) {
    let api = api(app, "dana.frontdesk").await;
    let patients = glendale_patients(app, 64).await;
    let (s, res) = api
        .get(&format!("/api/v1/resources?clinic_id={}", app.glendale))
        .await;
    assert_eq!(s, 200);
    let chair = res["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Chair 1")
        .unwrap()["id"]
        .clone();
    let start = format!("{}T09:00", test_monday(app) + jiff::Span::new().days(1));
    let mut tasks = vec![];
    for i in 0..64 {
        let body = json!({
            "clinic_id": app.glendale, "patient_id": patients[i % patients.len()],
            "type": "iv_infusion", "starts_at": start, "resource_id": chair,
        });
        let c = api.c.clone();
        let url = app.url("/api/v1/appointments");
        let token = api.token.clone();
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }));
    }
    let mut won = 0;
    for t in tasks {
        let (s, body) = t.await.unwrap();
        match s {
            201 => won += 1,
            409 => {
                let d = body["detail"].as_str().unwrap();
                assert!(
                    d.contains("chair is taken")
                        || d.contains("another visit")
                        || d.contains("just taken"),
                    "{d}"
                );
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(won, 1, "exactly one booking wins the chair");
    let day = test_monday(app) + jiff::Span::new().days(1);
    let (_, list) = api
        .get(&format!(
            "/api/v1/appointments?clinic_id={}&date={day}",
            app.glendale
        ))
        .await;
    let in_chair: Vec<&Value> = list["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["resource_id"] == chair && a["status"] == "booked")
        .collect();
    assert_eq!(in_chair.len(), 1);
}
both!(race_for_one_chair);

async fn bad_input_is_refused(app: &TestApp) {
    let api = api(app, "dana.frontdesk").await;
    let pid = glendale_patients(app, 1).await.remove(0);
    let g = app.glendale;
    let monday = test_monday(app);
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        (
            "end before start",
            format!(
                "/api/v1/availability?clinic_id={g}&type=iv_infusion&from={}&to={monday}",
                monday + jiff::Span::new().days(3)
            ),
            None,
            422,
            "to",
        ),
        (
            "unknown type",
            format!("/api/v1/availability?clinic_id={g}&type=laser_tag&from={monday}"),
            None,
            422,
            "type",
        ),
        (
            "range too long",
            format!(
                "/api/v1/availability?clinic_id={g}&type=iv_infusion&from={monday}&to={}",
                monday + jiff::Span::new().days(400)
            ),
            None,
            422,
            "to",
        ),
        (
            "bad weekday",
            format!("/api/v1/availability?clinic_id={g}&type=iv_infusion&from={monday}&weekdays=9"),
            None,
            422,
            "weekdays",
        ),
        (
            "unknown parameter",
            format!("/api/v1/availability?clinic_id={g}&type=iv_infusion&from={monday}&colour=red"),
            None,
            400,
            "colour",
        ),
        (
            "outside hours",
            "/api/v1/appointments".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": format!("{monday}T03:00")}),
            ),
            422,
            "starts_at",
        ),
        (
            "runs past closing",
            "/api/v1/appointments".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": format!("{monday}T16:00")}),
            ),
            422,
            "starts_at",
        ),
        (
            "in the past",
            "/api/v1/appointments".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": "2020-01-06T09:00:00-07:00"}),
            ),
            422,
            "starts_at",
        ),
        (
            "unknown zone",
            "/api/v1/appointments".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": format!("{monday}T09:00"), "time_zone": "Mars/Olympus_Mons"}),
            ),
            422,
            "time_zone",
        ),
        (
            "not a time",
            "/api/v1/appointments".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": "next tuesday"}),
            ),
            422,
            "starts_at",
        ),
        (
            "unknown type on booking",
            "/api/v1/appointments".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "type": "nope", "starts_at": format!("{monday}T09:00")}),
            ),
            422,
            "type",
        ),
        (
            "unknown field",
            "/api/v1/appointments".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": format!("{monday}T09:00"), "colour": "red"}),
            ),
            400,
            "colour",
        ),
        (
            "a 10-year series",
            "/api/v1/series".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "course": "weekly", "dose_type": "iv_infusion", "from": monday.to_string(), "months": 120}),
            ),
            422,
            "months",
        ),
        (
            "a series spread over 10 years",
            "/api/v1/series".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "course": "induction", "dose_type": "iv_infusion", "from": monday.to_string(), "within_days": 3650}),
            ),
            422,
            "within_days",
        ),
        (
            "unknown course",
            "/api/v1/series".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "course": "forever", "dose_type": "iv_infusion", "from": monday.to_string()}),
            ),
            422,
            "course",
        ),
        (
            "series of a non-dose type",
            "/api/v1/series".into(),
            Some(
                json!({"clinic_id": g, "patient_id": pid, "course": "induction", "dose_type": "follow_up", "from": monday.to_string()}),
            ),
            422,
            "dose_type",
        ),
    ];
    for (what, path, body, status, field) in cases {
        let (s, p) = match &body {
            Some(b) => api.post(&path, b).await,
            None => api.get(&path).await,
        };
        assert_eq!(s, status, "{what}: {p}");
        let named = p["errors"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["field"] == field))
            || p["detail"].as_str().is_some_and(|d| d.contains(field));
        assert!(named, "{what}: the problem should name {field}: {p}");
    }
    // A closure: the clinic is shut that day.
    let closed = monday + jiff::Span::new().days(2);
    app.store
        .add_closure(g, closed, "Staff training", ev())
        .await
        .unwrap();
    let (s, p) = api
        .post("/api/v1/appointments", &json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": format!("{closed}T09:00")}))
        .await;
    assert_eq!(s, 422, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("closed"), "{p}");
    // A patient of another clinic is not found; nothing was written anywhere.
    let (_, d) = app.patient_ids().await;
    let (s, _) = api
        .post("/api/v1/appointments", &json!({"clinic_id": g, "patient_id": d, "type": "iv_infusion", "starts_at": format!("{monday}T09:00")}))
        .await;
    assert_eq!(s, 404);
    assert_eq!(app.store.count_claims(None).await.unwrap(), 0);
    // A therapist may not book a chair for an infusion in a clinic where they hold no role.
    let theo = api_for(app, "mona.monitor").await;
    let (s, _) = theo
        .post("/api/v1/appointments", &json!({"clinic_id": g, "patient_id": pid, "type": "iv_infusion", "starts_at": format!("{monday}T09:00")}))
        .await;
    assert_eq!(
        s, 403,
        "a monitoring clinician reads the schedule but does not book"
    );
}
both!(bad_input_is_refused);

async fn api_for<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    api(app, user).await
}

async fn calendar_feeds(app: &TestApp) {
    let desk = api(app, "dana.frontdesk").await;
    let pid = glendale_patients(app, 1).await.remove(0);
    let monday = test_monday(app);
    let (s, a) = desk
        .post("/api/v1/appointments", &json!({"clinic_id": app.glendale, "patient_id": pid, "type": "iv_infusion", "starts_at": format!("{monday}T09:00")}))
        .await;
    assert_eq!(s, 201, "{a}");
    let nurse_id = a["phases"][0]["staff"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The admin makes a feed for the nurse on the visit.
    let admin = api(app, "ada.admin").await;
    let (s, feed) = admin
        .post(
            "/api/v1/calendar-feeds",
            &json!({"clinic_id": app.glendale, "staff_id": nurse_id}),
        )
        .await;
    assert_eq!(s, 201, "{feed}");
    let url = app.url(feed["url"].as_str().unwrap());
    assert!(!url.contains(&pid), "no patient id in the feed URL");
    let fetch = |u: String| async move {
        let r = reqwest::get(u).await.unwrap();
        let s = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        (s, ct, r.text().await.unwrap())
    };
    let (s, ct, body) = fetch(url.clone()).await;
    assert_eq!(s, 200);
    assert!(ct.unwrap().starts_with("text/calendar"));
    let events = parse_ics(&body);
    let uid = format!("{}@stillwater", a["id"].as_str().unwrap());
    let e = events
        .iter()
        .find(|e| e["UID"] == uid)
        .expect("the visit is in the feed");
    assert_eq!(e["SEQUENCE"], "0");
    assert_eq!(e["STATUS"], "CONFIRMED");
    let patient = app
        .store
        .patient(pid.parse().unwrap(), &[app.glendale])
        .await
        .unwrap()
        .unwrap();
    assert!(
        !body.contains(&patient.details.family_name),
        "initials only"
    );
    let initials = format!(
        "{}.{}.",
        patient.details.given_name.chars().next().unwrap(),
        patient.details.family_name.chars().next().unwrap()
    );
    assert!(e["SUMMARY"].contains(&initials), "{}", e["SUMMARY"]);
    assert!(e["DTSTART"].ends_with('Z'));

    // Cancelled: the same UID, a higher SEQUENCE, STATUS:CANCELLED.
    let (s, _) = desk
        .post(
            &format!("/api/v1/appointments/{}/cancel", a["id"].as_str().unwrap()),
            &json!({"reason": "Unwell"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, _, body) = fetch(url.clone()).await;
    let events = parse_ics(&body);
    let e = events.iter().find(|e| e["UID"] == uid).unwrap();
    assert_eq!(e["STATUS"], "CANCELLED");
    assert_eq!(e["SEQUENCE"], "1");

    // Someone who neither owns the feed nor manages the schedule cannot revoke it.
    let monitor = api(app, "mona.monitor").await;
    let (s, _) = monitor
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/calendar-feeds/{}", feed["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(fetch(url.clone()).await.0, 200, "still working");
    // Revoked: the link stops working; a guessed token never worked.
    let (s, _) = admin
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/calendar-feeds/{}", feed["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(fetch(url).await.0, 404);
    assert_eq!(
        fetch(app.url("/calendar/AAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics"))
            .await
            .0,
        404
    );
    assert_eq!(fetch(app.url("/calendar/..%2F..%2Fetc.ics")).await.0, 404);
    // A nurse may not make a feed of someone else.
    let nurse = api(app, "nina.nurse").await;
    let (s, _) = nurse
        .post("/api/v1/calendar-feeds", &json!({"clinic_id": app.glendale, "staff_id": app.store.user_id_by_username("mona.monitor").await.unwrap().unwrap()}))
        .await;
    assert_eq!(s, 403);
}
both!(calendar_feeds);

/// Reads an iCalendar document with the independent `ical` parser; returns
/// each VEVENT's properties by name.
fn parse_ics(body: &str) -> Vec<std::collections::HashMap<String, String>> {
    let reader = ical::IcalParser::new(std::io::BufReader::new(body.as_bytes()));
    let mut out = vec![];
    let mut n = 0;
    for cal in reader {
        let cal = cal.expect("the feed parses as iCalendar");
        n += 1;
        assert!(cal
            .properties
            .iter()
            .any(|p| p.name == "VERSION" && p.value.as_deref() == Some("2.0")));
        for e in cal.events {
            out.push(
                e.properties
                    .into_iter()
                    .map(|p| (p.name, p.value.unwrap_or_default()))
                    .collect(),
            );
        }
    }
    assert_eq!(n, 1, "one VCALENDAR");
    out
}

/// Reminders go through the outbox to a real SMTP conversation: 48 h and
/// 24 h before, only while the visit is booked at that time, with no
/// patient data in the subject.
async fn reminders_by_email(app: &TestApp) {
    let sink = SmtpSink::start().await;
    let state = clinic::Clinic::new(app.store.clone(), clinic::Config::default()).with_mailer(
        clinic::mailer::Mailer::from_url(
            &format!("smtp://{}", sink.addr),
            "Stillwater Glendale <desk@stillwater.example>",
        )
        .unwrap(),
    );
    let desk = api(app, "dana.frontdesk").await;
    let (s, p) = desk
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": "Rosalind", "family_name": "Quayle", "date_of_birth": "1979-02-11", "email": "rosalind@example.org"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let monday = test_monday(app);
    let (s, a) = desk
        .post("/api/v1/appointments", &json!({"clinic_id": app.glendale, "patient_id": p["id"], "type": "iv_infusion", "starts_at": format!("{monday}T09:00")}))
        .await;
    assert_eq!(s, 201, "{a}");
    let start = ts(&a["starts_at"]).as_microsecond();
    let hour = 3_600_000_000i64;
    assert_eq!(app.store.count_jobs("reminder", None).await.unwrap(), 2);
    // The desk booked it: the confirmation goes at once, with the address,
    // how to change it and the visit as a calendar file.
    assert_eq!(clinic::outbox::drain(&state, app.now()).await.unwrap(), 1);
    let confirm = sink.all().remove(0).replace("=\r\n", "").replace("=\n", "");
    assert!(
        confirm.contains("Subject: Your appointment at Stillwater Glendale is confirmed"),
        "{confirm}"
    );
    assert!(
        confirm.contains("Your IV infusion is booked for"),
        "{confirm}"
    );
    assert!(confirm.contains("18400 N 51st Ave"), "{confirm}");
    assert!(confirm.contains("To move or cancel, call us"), "{confirm}");
    assert!(confirm.contains("filename=\"visit.ics\""), "{confirm}");
    assert!(confirm.contains("BEGIN:VEVENT"), "{confirm}");
    assert!(
        !confirm.contains("Quayle"),
        "no name in the calendar file: {confirm}"
    );
    sink.messages.lock().unwrap().clear();
    // Nothing else is due yet.
    assert_eq!(clinic::outbox::drain(&state, app.now()).await.unwrap(), 0);
    // 47 hours before: the 48-hour reminder goes out.
    clinic::outbox::drain(&state, start - 47 * hour)
        .await
        .unwrap();
    let mail = sink.all();
    assert_eq!(mail.len(), 1);
    let m = &mail[0];
    let subject = m.lines().find(|l| l.starts_with("Subject:")).unwrap();
    assert_eq!(
        subject,
        "Subject: Reminder: your upcoming visit at Stillwater Glendale"
    );
    for secret in ["Rosalind", "Quayle", "infusion", "ketamine"] {
        assert!(!subject.contains(secret), "{subject}");
    }
    let body = m.replace("=\n", "").replace("=20", " ");
    assert!(body.contains("Hello Rosalind"), "{body}");
    assert!(body.contains("Nothing to eat"), "{body}");
    assert!(body.contains("18400 N 51st Ave"), "{body}");
    assert!(body.contains("9:00 AM"), "clinic time in the body: {body}");
    assert!(m.contains("rosalind@example.org"));

    // Moved by an hour: the old 24-hour reminder is superseded, new ones follow the new time.
    let id = a["id"].as_str().unwrap();
    let (s, moved) = desk
        .patch(
            &format!("/api/v1/appointments/{id}"),
            &json!({"starts_at": format!("{monday}T10:00")}),
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    clinic::outbox::drain(&state, start - 22 * hour)
        .await
        .unwrap();
    assert_eq!(
        app.store
            .count_jobs("reminder", Some("skipped: visit was moved"))
            .await
            .unwrap(),
        1
    );
    let mail = sink.all();
    assert_eq!(
        mail.len(),
        3,
        "new 48 h and 24 h reminders for the new time"
    );
    assert!(mail[2].replace("=\n", "").contains("10:00 AM"));

    // Cancelled: no more reminders.
    let (s, b) = desk
        .post("/api/v1/appointments", &json!({"clinic_id": app.glendale, "patient_id": p["id"], "type": "follow_up", "starts_at": format!("{}T13:00", monday + jiff::Span::new().days(2))}))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = desk
        .post(
            &format!("/api/v1/appointments/{}/cancel", b["id"].as_str().unwrap()),
            &json!({"reason": "Feeling better"}),
        )
        .await;
    assert_eq!(s, 200);
    clinic::outbox::drain(&state, ts(&b["starts_at"]).as_microsecond())
        .await
        .unwrap();
    assert_eq!(sink.all().len(), 3);
    assert_eq!(
        app.store
            .count_jobs("reminder", Some("skipped: visit cancelled"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(app.store.count_jobs("reminder", None).await.unwrap(), 0);
}
both!(reminders_by_email);

/// A course booked by the clinic is confirmed in one e-mail: every visit's
/// time and what it is, the dosing instructions once, and a calendar file
/// holding every visit.
async fn a_course_is_confirmed_in_one_email(app: &TestApp) {
    let sink = SmtpSink::start().await;
    let state = crate::measures::mailer_state(app, &sink).await;
    let desk = api(app, "dana.frontdesk").await;
    let (s, p) = desk
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": "Orla", "family_name": "Brennan", "date_of_birth": "1983-06-02", "email": "orla@example.org"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let monday = test_monday(app);
    let (s, booked) = desk
        .post(
            "/api/v1/series",
            &json!({"clinic_id": app.glendale, "patient_id": p["id"], "course": "induction",
                    "dose_type": "iv_infusion", "from": monday.to_string()}),
        )
        .await;
    assert_eq!(s, 201, "{booked}");
    let n = booked["appointments"].as_array().unwrap().len();
    assert_eq!(n, 12);
    assert_eq!(
        app.store
            .count_jobs("series_confirmation", None)
            .await
            .unwrap(),
        1
    );
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let mail: Vec<String> = sink
        .all()
        .into_iter()
        .map(|m| m.replace("\r\n", "\n").replace("=\n", ""))
        .collect();
    assert_eq!(
        mail.len(),
        1,
        "one e-mail for the course, not one per visit"
    );
    let m = &mail[0];
    assert!(
        m.contains("Subject: Your appointments at Stillwater Glendale are confirmed"),
        "{m}"
    );
    assert!(m.contains("Your course of 12 visits is booked"), "{m}");
    assert_eq!(m.matches("\n- ").count(), 12, "{m}");
    assert_eq!(
        m.matches("IV infusion\n").count() + m.matches("IV infusion\r").count(),
        6,
        "{m}"
    );
    assert_eq!(m.matches("Before each dosing visit").count(), 1, "{m}");
    assert_eq!(m.matches("BEGIN:VEVENT").count(), 12, "{m}");
    assert!(!m.contains("Brennan"), "no surname anywhere: {m}");
    // Running the worker again sends nothing more.
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    assert_eq!(sink.all().len(), 1);
}
both!(a_course_is_confirmed_in_one_email);

/// The admin page: bad rules are refused by name; time off and working hours
/// change what the search offers at once.
async fn schedule_settings_page(app: &TestApp) {
    let admin = app.login("ada.admin").await;
    let g = app.glendale;
    let page = admin.get(&format!("/admin/clinics/{g}/schedule")).await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("Chair 1") && body.contains("Nina Okafor"));
    let rules = [
        ("nurse_ratio", "9"),
        ("monitor_ratio", "4"),
        ("slot_step_min", "15"),
        ("min_notice_min", "60"),
        ("horizon_days", "400"),
        ("late_cancel_hours", "24"),
    ];
    let r = admin
        .post_form(&format!("/admin/clinics/{g}/schedule/rules"), &rules)
        .await;
    let text = r.text().await.unwrap();
    assert!(
        text.contains("nurse ratio: must be 1 to 8"),
        "the wrong field is named"
    );
    assert_eq!(
        app.store.scheduling_rules(g).await.unwrap().nurse_ratio,
        3,
        "nothing saved"
    );

    // Both Glendale nurses take the test Monday off: no infusion can be offered that day.
    let monday = test_monday(app);
    for nurse in ["nina.nurse", "nora.nurse"] {
        let uid = app
            .store
            .user_id_by_username(nurse)
            .await
            .unwrap()
            .unwrap()
            .to_string();
        let r = admin
            .post_form(
                &format!("/admin/clinics/{g}/schedule/time-off"),
                &[
                    ("user", &uid),
                    ("from", &format!("{monday}T00:00")),
                    ("to", &format!("{monday}T23:59")),
                    ("reason", "Training"),
                ],
            )
            .await;
        assert!(r.text().await.unwrap().contains("Time off recorded"));
    }
    let desk = api(app, "dana.frontdesk").await;
    let (s, a) = desk
        .get(&format!(
            "/api/v1/availability?clinic_id={g}&type=iv_infusion&from={monday}"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(a["slots"].as_array().unwrap().len(), 0, "{a}");
    assert!(
        a["blocked_by"].to_string().contains("no nurse is working"),
        "{a}"
    );
    // The therapist's hours: Tessa stops working Mondays; Theo still does.
    let tessa = app
        .store
        .user_id_by_username("tessa.therapist")
        .await
        .unwrap()
        .unwrap()
        .to_string();
    let r = admin
        .post_form(
            &format!("/admin/clinics/{g}/schedule/hours/{tessa}"),
            &[
                ("start_1", ""),
                ("end_1", ""),
                ("start_2", "07:00"),
                ("end_2", "16:30"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap().contains("Working hours saved"));
    let (_, a) = desk
        .get(&format!(
            "/api/v1/availability?clinic_id={g}&type=integration&from={monday}&limit=500"
        ))
        .await;
    assert!(a["slots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["phases"][0]["staff"][0]["user_id"] != tessa.as_str()));
    // A nurse may not open the page.
    let nurse = app.login("nina.nurse").await;
    assert_eq!(
        nurse
            .get(&format!("/admin/clinics/{g}/schedule"))
            .await
            .status(),
        403
    );
}
both!(schedule_settings_page);

/// A cancellation offers the freed time to the first waiting patient it
/// suits, by e-mail; the desk books it from the offer.
async fn waitlist_gets_freed_time(app: &TestApp) {
    let sink = SmtpSink::start().await;
    let state = clinic::Clinic::new(app.store.clone(), clinic::Config::default()).with_mailer(
        clinic::mailer::Mailer::from_url(
            &format!("smtp://{}", sink.addr),
            "desk@stillwater.example",
        )
        .unwrap(),
    );
    let desk = api(app, "dana.frontdesk").await;
    let g = app.glendale;
    let monday = test_monday(app);
    let tuesday = monday + jiff::Span::new().days(1);
    let ps = glendale_patients(app, 3).await;
    let (s, w) = desk
        .post("/api/v1/patients", &json!({"clinic_id": g, "given_name": "Wanda", "family_name": "Waits", "date_of_birth": "1990-06-01", "email": "wanda@example.org"}))
        .await;
    assert_eq!(s, 201, "{w}");
    // Bad input on the waitlist is refused by name.
    let (s, e) = desk
        .post("/api/v1/waitlist", &json!({"clinic_id": g, "patient_id": w["id"], "type": "iv_infusion", "from": tuesday.to_string(), "to": monday.to_string()}))
        .await;
    assert_eq!(s, 422, "{e}");
    // An earlier entry for another kind of visit is passed over.
    let (s, _) = desk
        .post("/api/v1/waitlist", &json!({"clinic_id": g, "patient_id": ps[1], "type": "follow_up", "from": monday.to_string(), "to": tuesday.to_string()}))
        .await;
    assert_eq!(s, 201);
    let (s, entry) = desk
        .post("/api/v1/waitlist", &json!({"clinic_id": g, "patient_id": w["id"], "type": "iv_infusion", "from": monday.to_string(), "to": tuesday.to_string(), "note": "any morning"}))
        .await;
    assert_eq!(s, 201, "{entry}");
    let (s, a) = desk
        .post("/api/v1/appointments", &json!({"clinic_id": g, "patient_id": ps[0], "type": "iv_infusion", "starts_at": format!("{tuesday}T09:00")}))
        .await;
    assert_eq!(s, 201, "{a}");
    let (s, _) = desk
        .post(
            &format!("/api/v1/appointments/{}/cancel", a["id"].as_str().unwrap()),
            &json!({"reason": "Travel"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, list) = desk.get(&format!("/api/v1/waitlist?clinic_id={g}")).await;
    let mine = list["waitlist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == entry["id"])
        .unwrap()
        .clone();
    assert_eq!(mine["status"], "offered");
    assert_eq!(ts(&mine["offered_start"]), ts(&a["starts_at"]));
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let mail = sink.all();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("Subject: A time has opened up at Stillwater Glendale"));
    assert!(mail[0].contains("wanda@example.org"));
    // The desk books the offered time.
    let (s, b) = desk
        .post(
            &format!("/api/v1/waitlist/{}/book", entry["id"].as_str().unwrap()),
            &json!({"clinic_id": g}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["patient_id"], w["id"]);
    assert_eq!(ts(&b["starts_at"]), ts(&a["starts_at"]));
    let (_, list) = desk.get(&format!("/api/v1/waitlist?clinic_id={g}")).await;
    assert!(
        list["waitlist"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] != entry["id"]),
        "booked entries leave the list"
    );
    // The page lists the remaining entry.
    let s = app.login("dana.frontdesk").await;
    let page = s
        .get(&format!("/schedule/{g}/waitlist"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Follow-up"));
    // A read-only role sees the list but cannot take anyone off it; another clinic's desk sees nothing.
    let (_, list) = desk.get(&format!("/api/v1/waitlist?clinic_id={g}")).await;
    let other = list["waitlist"][0]["id"].as_str().unwrap().to_string();
    let monitor = app.login("mona.monitor").await;
    assert_eq!(
        monitor
            .get(&format!("/schedule/{g}/waitlist"))
            .await
            .status(),
        200
    );
    let r = monitor
        .post_form(&format!("/schedule/{g}/waitlist/{other}/remove"), &[])
        .await;
    assert_eq!(r.status(), 403);
    let devon = app.login("devon.frontdesk").await;
    assert_eq!(
        devon.get(&format!("/schedule/{g}/waitlist")).await.status(),
        403
    );
    let (_, list) = desk.get(&format!("/api/v1/waitlist?clinic_id={g}")).await;
    assert!(
        list["waitlist"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == other.as_str()),
        "still waiting"
    );
}
both!(waitlist_gets_freed_time);

/// A chair or room is checked one way, on the page and in the API: only a
/// chair can be IV-capable or monitored (the API once took such a room).
async fn only_a_chair_is_iv_capable(app: &TestApp) {
    let admin = api(app, "ada.admin").await;
    let g = app.glendale;
    let (s, e) = admin
        .post(
            "/api/v1/resources",
            &json!({"clinic_id": g, "kind": "room", "name": "Quiet room 9", "iv": true, "monitored": false, "private": true}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["errors"][0]["field"], "kind", "{e}");
    let (s, e) = admin
        .post(
            "/api/v1/resources",
            &json!({"clinic_id": g, "kind": "chair", "name": "Chair 9", "iv": true, "monitored": true, "private": false}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["kind"], "chair", "{e}");
    let page = app.login("ada.admin").await;
    let body = page
        .post_form(
            &format!("/admin/clinics/{g}/schedule/resources"),
            &[("kind", "room"), ("name", "Quiet room 10"), ("iv", "on")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("only a chair can be IV-capable or monitored"),
        "{body}"
    );
}
both!(only_a_chair_is_iv_capable);

/// A visit gets its reminders however soon it was booked: two days and one
/// day before, or, booked closer than a day, one three hours before.
#[test]
fn reminders_fit_the_time_left() {
    const HOUR: i64 = 3_600_000_000;
    let before = |start: i64, now: i64| -> Vec<i64> {
        clinic::jobs::reminder_jobs(
            domain::ids::AppointmentId::new(),
            domain::ids::ClinicId::new(),
            0,
            start,
            now,
        )
        .iter()
        .map(|j| (start - j.run_at) / HOUR)
        .collect()
    };
    let now = 1_800_000_000_000_000;
    assert_eq!(before(now + 72 * HOUR, now), vec![48, 24]);
    assert_eq!(before(now + 30 * HOUR, now), vec![24]);
    assert_eq!(before(now + 18 * HOUR, now), vec![3]);
    // In two hours: the confirmation is all there is time for.
    assert_eq!(before(now + 2 * HOUR, now), Vec::<i64>::new());
}
