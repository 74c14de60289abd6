//! The patient portal: sign-in links by e-mail (asked for on the clinic's
//! page or sent by the front desk), the patient's visits, self-booking within
//! the clinic's rules, cancelling, signing out; every access audited.

use serde_json::json;
use store::audit::AuditFilter;
use store::scheduling::Status;

use crate::both;
use crate::helpers::{hidden, SmtpSink, TestApp};

const HOUR: i64 = 3_600_000_000;

fn mail_state(app: &TestApp, sink: &SmtpSink) -> clinic::Clinic {
    clinic::Clinic::new(app.store.clone(), clinic::Config::default()).with_mailer(
        clinic::mailer::Mailer::from_url(
            &format!("smtp://{}", sink.addr),
            "Stillwater Glendale <desk@stillwater.example>",
        )
        .unwrap(),
    )
}

/// The sign-in token in the last sign-in e-mail to `to` (confirmations of
/// visits the desk booked go to the same address), with its subject.
fn link_in_mail(sink: &SmtpSink, to: &str) -> (String, String) {
    let m = sink
        .all()
        .into_iter()
        .rev()
        .find(|m| m.contains(to) && m.contains("Subject: Your sign-in link"))
        .unwrap_or_else(|| panic!("no sign-in mail to {to}"));
    let body = m.replace("=\n", "");
    let i = body.find("/portal/in/").expect("a portal link") + "/portal/in/".len();
    let token: String = body[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let subject = m
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap()
        .to_string();
    (token, subject)
}

/// Opens the link and signs in; returns the patient's client and CSRF token.
async fn sign_in(app: &TestApp, token: &str) -> (reqwest::Client, String) {
    let c = app.client();
    let page = c
        .get(app.url(&format!("/portal/in/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let r = c
        .post(app.url(&format!("/portal/in/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/portal");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("sw_portal=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let home = c.get(app.url("/portal")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    (c, hidden(&html, "csrf"))
}

async fn get(c: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let r = c.get(app.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(
    c: &reqwest::Client,
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let r = c.post(app.url(path)).form(form).send().await.unwrap();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), loc, r.text().await.unwrap())
}

/// The offered start times on a booking page, in order.
fn starts(html: &str) -> Vec<i64> {
    html.match_indices("name=\"start\" value=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// A Glendale patient with an e-mail address, an attended intake a week ago
/// and an IV infusion booked by the clinic six weeks out.
async fn established(app: &TestApp) -> (store::patients::PatientRecord, String) {
    let token = app.user_token("dana.frontdesk").await;
    let http = reqwest::Client::new();
    let email = "wendell.okafor@example.org";
    let p: serde_json::Value = http
        .post(app.url("/api/v1/patients"))
        .bearer_auth(&token)
        .json(
            &json!({"clinic_id": app.glendale, "given_name": "Wendell", "family_name": "Okafor",
                      "preferred_name": "Del", "date_of_birth": "1975-10-21", "email": email}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid: domain::ids::PatientId = p["id"].as_str().unwrap().parse().unwrap();
    let start = app.now() - 7 * 24 * HOUR;
    let plan = serde_json::from_value(json!({"type_code": "intake", "start": start,
        "end": start + 90 * 60_000_000i64, "phases": [], "buffer_after_min": 0}))
    .unwrap();
    let id = domain::ids::AppointmentId::new();
    let visit = store::scheduling::NewVisit {
        id,
        type_name: "Intake assessment".into(),
        plan,
        claims: vec![],
        series_index: None,
        series_role: None,
    };
    app.store
        .insert_visits(app.glendale, pid, None, &[visit], None, vec![], &[])
        .await
        .unwrap();
    app.store
        .set_visit_status(id, Status::Completed, None, false, crate::helpers::ev())
        .await
        .unwrap();
    let tz = jiff::tz::TimeZone::get("America/Phoenix").unwrap();
    let mut monday = app.now_ts().to_zoned(tz).date() + jiff::Span::new().days(42);
    while monday.weekday() != jiff::civil::Weekday::Monday {
        monday = monday.tomorrow().unwrap();
    }
    let r = http
        .post(app.url("/api/v1/appointments"))
        .bearer_auth(&token)
        .json(
            &json!({"clinic_id": app.glendale, "patient_id": pid, "type": "iv_infusion",
                      "starts_at": format!("{monday}T09:00")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rec = app
        .store
        .patient(pid, &[app.glendale])
        .await
        .unwrap()
        .unwrap();
    (rec, email.to_string())
}

async fn portal_for_established_patient(app: &TestApp) {
    let sink = SmtpSink::start().await;
    let state = mail_state(app, &sink);
    let now = app.now();
    // A patient already seen at Glendale (an intake last week), with an
    // infusion the clinic booked for later on.
    let (patient, email) = established(app).await;
    let pid = patient.id.to_string();

    // Without a session the portal sends people to the page that explains how
    // to sign in.
    let anon = app.client();
    let r = anon.get(app.url("/portal")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/portal/signed-out");
    let (s, body) = get(&anon, app, "/portal/signed-out").await;
    assert_eq!(s, 200);
    assert!(body.contains("signed out"), "{body}");

    // The front desk sends a sign-in link from the chart.
    let desk = app.login("dana.frontdesk").await;
    let chart = desk.html(&format!("/patients/{pid}")).await;
    assert!(chart.contains("E-mail a portal sign-in link"));
    let r = desk
        .post_form(&format!("/patients/{pid}/portal-link"), &[])
        .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(to, format!("/patients/{pid}?portal=sent"));
    assert!(desk.html(&to).await.contains("sign-in link is on its way"));
    // The auditor, who reads but does not book, may not.
    let auditor = app.login("audrey.auditor").await;
    let r = auditor
        .post_form(&format!("/patients/{pid}/portal-link"), &[])
        .await;
    assert_eq!(r.status(), 403);

    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let (token, subject) = link_in_mail(&sink, &email);
    assert_eq!(
        subject,
        "Subject: Your sign-in link for Stillwater Glendale"
    );
    for secret in [
        patient.details.given_name.as_str(),
        patient.details.family_name.as_str(),
    ] {
        assert!(!subject.contains(secret), "{subject}");
    }
    assert!(token.len() >= 40, "{token}");

    // Opening the link does not use it; pressing the button does, once.
    let (c, csrf) = sign_in(app, &token).await;
    let (s, again, _) = post(&app.client(), app, &format!("/portal/in/{token}"), &[]).await;
    assert_eq!((s, again.as_str()), (410, ""));
    let (s, _) = get(&app.client(), app, "/portal/in/not-a-real-token").await;
    assert_eq!(s, 410);

    let (s, home) = get(&c, app, "/portal").await;
    assert_eq!(s, 200);
    let first = patient
        .details
        .preferred_name
        .clone()
        .unwrap_or(patient.details.given_name.clone());
    assert!(home.contains(&format!("Hello, {first}")), "{home}");
    assert!(home.contains("Past visits"));
    assert!(!home.contains("Your invoices"), "no invoices yet");
    assert!(!home.contains("Your progress"), "no scores yet");
    // A GAD-7 answered: the patient sees their score over time.
    crate::helpers::answer_gad7(app, &pid).await;
    let (_, home) = get(&c, app, "/portal").await;
    assert!(
        home.contains("Your progress") && home.contains("GAD-7"),
        "{home}"
    );
    // The intake is invoiced: the patient sees it, and what is due.
    let dana = app
        .store
        .user_id_by_username("dana.frontdesk")
        .await
        .unwrap()
        .unwrap();
    let number = app
        .store
        .insert_invoice(
            &store::billing::NewInvoice {
                id: uuid::Uuid::now_v7().to_string(),
                clinic_id: app.glendale.to_string(),
                patient_id: pid.clone(),
                appointment_id: None,
                kind: "fee",
                currency: "USD".into(),
                service_date: "2026-11-20".into(),
                issued_by: dana.to_string(),
                issued_at: now,
                lines: vec![store::billing::NewLine {
                    kind: domain::billing::EntryKind::Charge,
                    service: "intake".into(),
                    description: "Intake assessment".into(),
                    codes: "[]".into(),
                    minor: 17_500,
                    offer_id: None,
                }],
                package: None,
                membership: None,
            },
            crate::helpers::ev(),
        )
        .await
        .unwrap();
    let (_, home) = get(&c, app, "/portal").await;
    assert!(
        home.contains("Your invoices") && home.contains(&number),
        "{home}"
    );
    assert!(home.contains("$175.00 due"), "{home}");
    // Follow-ups and integration sessions are offered; the free consultation
    // (for people new to the clinic) and treatment visits are not.
    assert!(home.contains("/portal/book?type=follow_up"), "{home}");
    assert!(home.contains("/portal/book?type=integration"));
    assert!(!home.contains("type=consultation"));
    assert!(!home.contains("type=iv_infusion"));
    let (s, body) = get(&c, app, "/portal/book?type=iv_infusion").await;
    assert_eq!(s, 409);
    assert!(body.contains("booked by the clinic"), "{body}");
    let (s, body) = get(&c, app, "/portal/book?type=consultation").await;
    assert_eq!(s, 409);
    assert!(body.contains("new to the clinic"), "{body}");
    let (s, body) = get(&c, app, "/portal/book?type=nonsense").await;
    assert_eq!(s, 409);
    assert!(body.contains("not an appointment type"), "{body}");
    let (s, body) = get(&c, app, "/portal/book?type=follow_up&from=tomorrow").await;
    assert_eq!(s, 422);
    assert!(body.contains("is not a date"), "{body}");

    // Free follow-up times from a week ahead (clear of the late-cancel
    // window, whatever the hour); book the first.
    let week_ahead = (app.now_ts() + jiff::SignedDuration::from_hours(7 * 24))
        .to_zoned(jiff::tz::TimeZone::get("America/Phoenix").unwrap())
        .date();
    let offered = format!("/portal/book?type=follow_up&from={week_ahead}");
    let (s, page) = get(&c, app, &offered).await;
    assert_eq!(s, 200, "{page}");
    let times = starts(&page);
    assert!(!times.is_empty(), "no free follow-up times: {page}");
    let t1 = times[0].to_string();
    // Without the form's CSRF token nothing is booked.
    let (s, _, _) = post(
        &c,
        app,
        "/portal/book",
        &[("type", "follow_up"), ("start", &t1)],
    )
    .await;
    assert_eq!(s, 400);
    let (s, loc, body) = post(
        &c,
        app,
        "/portal/book",
        &[("csrf", &csrf), ("type", "follow_up"), ("start", &t1)],
    )
    .await;
    assert_eq!((s, loc.as_str()), (303, "/portal?done=booked"), "{body}");
    let mine = |app: &TestApp| {
        let store = app.store.clone();
        let clinic = app.glendale;
        let p = patient.id;
        async move {
            store
                .patient_appointments(p, &[clinic])
                .await
                .unwrap()
                .into_iter()
                .filter(|a| a.self_booked)
                .collect::<Vec<_>>()
        }
    };
    let booked = mine(app).await;
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0].starts_at.to_string(), t1);
    assert_eq!(booked[0].type_code, "follow_up");
    let (_, home) = get(&c, app, "/portal?done=booked").await;
    assert!(home.contains("Your visit is booked"));
    // The staff see who booked it.
    assert!(desk
        .html(&format!("/patients/{pid}"))
        .await
        .contains("Follow-up (booked by the patient)"));
    // The confirmation tells the patient how to change it.
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    // The newest confirmation: the desk's bookings earlier had their own.
    let confirm = sink
        .all()
        .into_iter()
        .rev()
        .find(|m| m.contains("is confirmed"))
        .expect("a confirmation e-mail");
    let confirm = confirm.replace("=\n", "");
    assert!(
        confirm.contains("sign in to your patient portal"),
        "{confirm}"
    );
    assert!(!confirm.contains("It is free"), "{confirm}");

    // A second follow-up on the same day is refused, before the calendar is asked.
    let same_day = (times[0] + HOUR).to_string();
    let (s, _, body) = post(
        &c,
        app,
        "/portal/book",
        &[("csrf", &csrf), ("type", "follow_up"), ("start", &same_day)],
    )
    .await;
    assert_eq!(s, 409);
    assert!(body.contains("on that day"), "{body}");
    // The times offered now skip that day.
    let (_, page) = get(&c, app, &offered).await;
    let later = starts(&page);
    let tz = jiff::tz::TimeZone::get("America/Phoenix").unwrap();
    let day = |t: i64| {
        jiff::Timestamp::from_microsecond(t)
            .unwrap()
            .to_zoned(tz.clone())
            .date()
    };
    assert!(later.iter().all(|t| day(*t) != day(times[0])));
    let t2 = later[0].to_string();
    let (s, _, body) = post(
        &c,
        app,
        "/portal/book",
        &[("csrf", &csrf), ("type", "follow_up"), ("start", &t2)],
    )
    .await;
    assert_eq!(s, 303, "{body}");
    // Two self-booked visits ahead is the limit.
    let (s, _, body) = post(
        &c,
        app,
        "/portal/book",
        &[
            ("csrf", &csrf),
            ("type", "integration"),
            ("start", &(later[0] + 48 * HOUR).to_string()),
        ],
    )
    .await;
    assert_eq!(s, 409);
    assert!(body.contains("already have 2"), "{body}");
    // A time in the past, and no time at all.
    let past = (app.now() - HOUR).to_string();
    let (s, _, body) = post(
        &c,
        app,
        "/portal/book",
        &[("csrf", &csrf), ("type", "follow_up"), ("start", &past)],
    )
    .await;
    assert_eq!(s, 409);
    assert!(body.contains("in the past"), "{body}");
    let (s, _, body) = post(
        &c,
        app,
        "/portal/book",
        &[("csrf", &csrf), ("type", "follow_up"), ("start", "soon")],
    )
    .await;
    assert_eq!(s, 409);
    assert!(body.contains("choose one of the times"), "{body}");
    assert_eq!(mine(app).await.len(), 2);

    // Cancelling: their own visit, ahead of the late window.
    let booked = mine(app).await;
    let id = booked[0].id.to_string();
    let (s, loc, _) = post(
        &c,
        app,
        &format!("/portal/visits/{id}/cancel"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!((s, loc.as_str()), (303, "/portal?done=cancelled"));
    let a = app
        .store
        .appointment(booked[0].id, &[app.glendale])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.status, Status::Cancelled);
    assert!(!a.late_cancel);
    // Again: no longer booked.
    let (s, _, body) = post(
        &c,
        app,
        &format!("/portal/visits/{id}/cancel"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(s, 409);
    assert!(body.contains("can no longer be cancelled"), "{body}");
    // Someone else's visit does not exist for this patient.
    let (someone, _) = app.patient_ids().await;
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/appointments"))
        .bearer_auth(app.user_token("dana.frontdesk").await)
        .json(
            &json!({"clinic_id": app.glendale, "patient_id": someone, "type": "follow_up",
                      "starts_at": tuesday_after(now + 10 * 24 * HOUR).to_string() + "T10:00"}),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let other: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{other}");
    let other: domain::ids::AppointmentId = other["id"].as_str().unwrap().parse().unwrap();
    let (s, _, _) = post(
        &c,
        app,
        &format!("/portal/visits/{other}/cancel"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(
        app.store
            .appointment(other, &[app.glendale])
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Booked
    );
    // A treatment visit the clinic booked is changed by phone.
    let dose = app
        .store
        .patient_appointments(patient.id, &[app.glendale])
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.type_code == "iv_infusion")
        .unwrap();
    assert!(home.contains("Not online: please call us to change a treatment visit"));
    let (s, _, body) = post(
        &c,
        app,
        &format!("/portal/visits/{}/cancel", dose.id),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(s, 409);
    assert!(body.contains("call us"), "{body}");

    // Every access is in the audit trail with the patient as the actor.
    // (Counting flushes the audit writer.)
    let _ = app.store.count_audit("portal.sign_in").await.unwrap();
    let rows = app
        .store
        .audit_events(&AuditFilter {
            patient_id: Some(pid.clone()),
            clinics: vec![app.glendale.to_string()],
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    let by_patient = |action: &str| {
        rows.iter()
            .filter(|r| r.action == action && r.actor_label == "patient (portal)")
            .count()
    };
    assert_eq!(by_patient("portal.sign_in"), 1);
    assert!(by_patient("appointment.read") >= 3);
    assert!(
        by_patient("bill.read") >= 1,
        "reading their invoices is audited"
    );
    assert!(
        by_patient("questionnaire_response.read") >= 1,
        "and their scores"
    );
    assert_eq!(by_patient("appointment.create"), 2);
    assert_eq!(by_patient("appointment.update"), 1);
    assert!(rows
        .iter()
        .any(|r| r.action == "portal.link" && r.actor_label != "public"));
    // Each names the organisation, so the clinic's audit page lists them.
    assert!(rows.iter().all(|r| r.org_id.is_some()), "{rows:?}");

    // Signing out ends the session on the server, not just the cookie.
    let (s, loc, _) = post(&c, app, "/portal/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!((s, loc.as_str()), (303, "/portal/signed-out"));
    let r = c.get(app.url("/portal")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(by_patient("portal.sign_in"), 1);
    assert_eq!(app.store.count_audit("portal.sign_out").await.unwrap(), 1);
}
both!(portal_for_established_patient);

async fn portal_for_a_new_patient(app: &TestApp) {
    let sink = SmtpSink::start().await;
    let state = mail_state(app, &sink);
    let token = app.user_token("dana.frontdesk").await;
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/patients"))
        .bearer_auth(&token)
        .json(
            &json!({"clinic_id": app.glendale, "given_name": "Imogen", "family_name": "Hartley",
                      "date_of_birth": "1988-05-03", "email": "imogen.hartley@example.org"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pid: domain::ids::PatientId = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // The clinic's page links to the portal.
    let anon = app.client();
    let (_, front) = get(&anon, app, "/c/stillwater-glendale").await;
    assert!(front.contains("/c/stillwater-glendale/portal"));
    let (s, form) = get(&anon, app, "/c/stillwater-glendale/portal").await;
    assert_eq!(s, 200);
    assert!(form.contains("E-mail me a sign-in link"));
    // A bad address is named; a known and an unknown one get the same answer.
    let (s, _, body) = post(
        &anon,
        app,
        "/c/stillwater-glendale/portal",
        &[("email", "not-an-address")],
    )
    .await;
    assert_eq!(s, 422);
    assert!(body.contains("email: is not an e-mail address"), "{body}");
    let jobs_before = app.store.job_payloads("patient_link").await.unwrap().len();
    let (s1, _, unknown) = post(
        &anon,
        app,
        "/c/stillwater-glendale/portal",
        &[("email", "nobody-here@example.org")],
    )
    .await;
    let (s2, _, known) = post(
        &anon,
        app,
        "/c/stillwater-glendale/portal",
        &[("email", "Imogen.Hartley@Example.org")],
    )
    .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        unknown.replace("nobody-here@example.org", "X"),
        known.replace("Imogen.Hartley@Example.org", "X")
    );
    // Another clinic's page does not reach a Glendale patient.
    let (s, _, _) = post(
        &anon,
        app,
        "/c/stillwater-denver/portal",
        &[("email", "imogen.hartley@example.org")],
    )
    .await;
    assert_eq!(s, 200);
    // The link is made after the answer (so both answers take the same
    // time): wait for its e-mail job.
    for _ in 0..100 {
        if app.store.job_payloads("patient_link").await.unwrap().len() > jobs_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let mails = sink.all();
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.contains("imogen.hartley@example.org"))
            .count(),
        1,
        "one link, from Glendale only"
    );
    assert!(!mails.iter().any(|m| m.contains("nobody-here@example.org")));
    let (link, _) = link_in_mail(&sink, "imogen.hartley@example.org");

    let (c, csrf) = sign_in(app, &link).await;
    let (_, home) = get(&c, app, "/portal").await;
    assert!(home.contains("Hello, Imogen"));
    assert!(home.contains("No visits booked."));
    // Not yet seen: the free consultation is offered, follow-ups wait.
    assert!(home.contains("/portal/book?type=consultation"), "{home}");
    assert!(home.contains("after your first visit"), "{home}");
    let (s, _) = get(&c, app, "/portal/book?type=follow_up").await;
    assert_eq!(s, 409);
    let (s, page) = get(&c, app, "/portal/book?type=consultation").await;
    assert_eq!(s, 200);
    // Three days out or more, so that it can still be cancelled online.
    let t = starts(&page)
        .into_iter()
        .find(|t| *t > app.now() + 72 * HOUR)
        .expect("a consultation time three days out")
        .to_string();
    let (s, _, body) = post(
        &c,
        app,
        "/portal/book",
        &[("csrf", &csrf), ("type", "consultation"), ("start", &t)],
    )
    .await;
    assert_eq!(s, 303, "{body}");
    let visits = app
        .store
        .patient_appointments(pid, &[app.glendale])
        .await
        .unwrap();
    assert_eq!(visits.len(), 1);
    assert!(visits[0].self_booked);
    let (_, home) = get(&c, app, "/portal").await;
    assert!(home.contains("Free consultation (in person)"));
    assert!(
        home.contains("/cancel"),
        "a visit two or more days out can be cancelled"
    );

    // A patient with no e-mail on file cannot be sent a link.
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/patients"))
        .bearer_auth(&token)
        .json(
            &json!({"clinic_id": app.glendale, "given_name": "Olwen", "family_name": "Pryce",
                      "date_of_birth": "1970-01-09"}),
        )
        .send()
        .await
        .unwrap();
    let olwen = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let desk = app.login("dana.frontdesk").await;
    let r = desk
        .post_form(&format!("/patients/{olwen}/portal-link"), &[])
        .await;
    assert_eq!(
        r.headers()["location"],
        format!("/patients/{olwen}?portal=no-email").as_str()
    );
    // She can still use the portal at the desk, on the clinic's tablet.
    let r = desk
        .post_form(&format!("/patients/{olwen}/portal-link"), &[("here", "1")])
        .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    let token = to.strip_prefix("/portal/in/").expect("the sign-in page");
    let (c, _) = sign_in(app, token).await;
    let (_, home) = get(&c, app, "/portal").await;
    assert!(home.contains("Hello, Olwen"), "{home}");
}
both!(portal_for_a_new_patient);

/// The first Tuesday on or after `t` in Glendale (a day its prescriber works).
fn tuesday_after(t: i64) -> jiff::civil::Date {
    let mut d = jiff::Timestamp::from_microsecond(t)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("America/Phoenix").unwrap())
        .date();
    while d.weekday() != jiff::civil::Weekday::Tuesday {
        d = d.tomorrow().unwrap();
    }
    d
}

/// In the portal the patient writes their intention for the next dosing
/// session ahead of it; at check-in it shows at the chair.
async fn an_intention_written_in_the_portal(app: &TestApp) {
    let sink = SmtpSink::start().await;
    let state = mail_state(app, &sink);
    let (patient, email) = established(app).await;
    let pid = patient.id.to_string();
    let desk = app.login("dana.frontdesk").await;
    desk.post_form(&format!("/patients/{pid}/portal-link"), &[])
        .await;
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let (token, _) = link_in_mail(&sink, &email);
    let (c, csrf) = sign_in(app, &token).await;
    let (_, home) = get(&c, app, "/portal").await;
    assert!(
        home.contains("Your intention") && home.contains("Before your IV infusion on"),
        "{home}"
    );
    let (s, _, body) = post(
        &c,
        app,
        "/portal/intention",
        &[("csrf", &csrf), ("intention", "")],
    )
    .await;
    assert_eq!(s, 422);
    assert!(body.contains("write a few words"), "{body}");
    let (s, to, _) = post(
        &c,
        app,
        "/portal/intention",
        &[("csrf", &csrf), ("intention", "Rest, and let it be.")],
    )
    .await;
    assert_eq!((s, to.as_str()), (303, "/portal?done=intention"));
    let (_, home) = get(&c, app, &to).await;
    assert!(
        home.contains("Your intention is kept") && home.contains("Rest, and let it be."),
        "{home}"
    );
    // Without the form's token nothing is written.
    let (s, _, _) = post(&c, app, "/portal/intention", &[("intention", "forged")]).await;
    assert!(s == 403 || s == 400, "{s}");
    let kept = app.store.patient_intentions(patient.id).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].source.as_str(), kept[0].appointment_id.is_some()),
        ("portal", true)
    );
}
both!(an_intention_written_in_the_portal);
