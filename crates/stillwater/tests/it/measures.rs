//! The front door and measurement-based care over HTTP: the public
//! self-assessment to a lead, a booked consultation and a patient; safety
//! answers on every path open a task that only a clinician's note closes;
//! questionnaire links are single-use and expire; bad input and bots leave
//! nothing behind; the public pages reveal nothing about existing patients.

use std::str::FromStr;

use serde_json::{json, Value};

use crate::api::Api;
use crate::both;
use crate::helpers::*;

const SLUG: &str = "stillwater-glendale";

async fn api<'a>(app: &'a TestApp, user: &str) -> Api<'a> {
    Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token(user).await,
    }
}

/// A complete assessment form: GAD-7 answers summing to `gad`, PHQ-2 items
/// 1 and 2 at 1, item 9 at `nine`, one medicine and one therapy tried.
fn form(gad: i32, nine: i32, email: &str) -> Vec<(String, String)> {
    let mut f = vec![];
    let mut left = gad;
    for i in 1..=7 {
        let v = left.min(3);
        left -= v;
        f.push((format!("gad7.{i}"), v.to_string()));
    }
    f.push(("phq2.1".into(), "1".into()));
    f.push(("phq2.2".into(), "1".into()));
    f.push(("phq2.9".into(), nine.to_string()));
    for (k, v) in [
        ("conditions", "gad"),
        ("conditions", "panic"),
        ("treatments", "ssri_snri"),
        ("treatments", "cbt"),
        ("no_exclusions", "on"),
        ("given_name", "Imogen"),
        ("family_name", "Thackeray"),
        ("email", email),
        ("date_of_birth", "1988-06-14"),
        ("consent_to_contact", "on"),
        ("website", ""),
    ] {
        f.push((k.into(), v.into()));
    }
    f
}

fn without(f: &[(String, String)], key: &str) -> Vec<(String, String)> {
    f.iter().filter(|(k, _)| k != key).cloned().collect()
}

fn with(f: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out = without(f, key);
    out.push((key.into(), value.into()));
    out
}

async fn submit(app: &TestApp, f: &[(String, String)]) -> (u16, String, String) {
    let r = app
        .client()
        .post(app.url(&format!("/c/{SLUG}/assessment")))
        .form(f)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let loc = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, loc, r.text().await.unwrap())
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let r = app.client().get(app.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn lead_count(app: &TestApp) -> usize {
    app.store
        .leads(&[app.glendale, app.denver], None, 10_000)
        .await
        .unwrap()
        .len()
}

fn first_slot(html: &str) -> String {
    let needle = "name=\"start\" value=\"";
    let i = html
        .find(needle)
        .expect("a free consultation time is offered");
    let rest = &html[i + needle.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

pub async fn mailer_state(app: &TestApp, sink: &SmtpSink) -> clinic::Clinic {
    clinic::Clinic::new(app.store.clone(), clinic::Config::default()).with_mailer(
        clinic::mailer::Mailer::from_url(
            &format!("smtp://{}", sink.addr),
            "Stillwater Glendale <desk@stillwater.example>",
        )
        .unwrap(),
    )
}

/// Take the assessment, see the result, book the free consultation, get the
/// confirmation; the front desk finds the lead and makes it a patient, whose
/// chart then holds the assessment's scores.
async fn assessment_to_consultation_to_patient(app: &TestApp) {
    let (s, body) = page(app, &format!("/c/{SLUG}")).await;
    assert_eq!(s, 200);
    assert!(body.contains("Take the two-minute self-assessment"));
    assert!(body.contains("988"), "crisis numbers on every public page");
    let (s, body) = page(app, &format!("/c/{SLUG}/assessment")).await;
    assert_eq!(s, 200);
    assert!(body.contains("Feeling nervous, anxious, or on edge"));
    assert!(body.contains("I am pregnant or breastfeeding"));

    let (s, loc, _) = submit(app, &form(14, 0, "imogen@example.org")).await;
    assert_eq!(s, 303);
    assert!(loc.starts_with(&format!("/c/{SLUG}/result/")), "{loc}");
    let (s, result) = page(app, &loc).await;
    assert_eq!(s, 200);
    assert!(result.contains("likely suitable"), "{result}");
    assert!(result.contains("14 of 21"));
    assert!(!result.contains("You do not have to face this alone"));
    let start = first_slot(&result);

    let r = app
        .client()
        .post(app.url(&loc))
        .form(&[("start", start.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (_, after) = page(app, &loc).await;
    assert!(
        after.contains("Your free consultation is booked"),
        "{after}"
    );
    assert!(
        !after.contains("name=\"start\""),
        "no second booking offered"
    );
    // Booking again from the same result page is refused with a reason.
    let r = app
        .client()
        .post(app.url(&loc))
        .form(&[("start", start.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);

    let leads = app.store.leads(&[app.glendale], None, 10).await.unwrap();
    assert_eq!(leads.len(), 1);
    let lead = &leads[0];
    assert_eq!(lead.status, "consultation_booked");
    assert_eq!(lead.outcome, "likely");
    let appt = app
        .store
        .appointment(lead.appointment_id.unwrap(), &[app.glendale])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(appt.starts_at, start.parse::<i64>().unwrap());
    assert_eq!(Some(appt.patient_id), lead.patient_id);

    // The confirmation goes by e-mail, with nothing about the person in the subject.
    let sink = SmtpSink::start().await;
    let state = mailer_state(app, &sink).await;
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let mail = sink.all();
    let m = mail
        .iter()
        .find(|m| m.contains("imogen@example.org"))
        .expect("confirmation sent");
    let subject = m.lines().find(|l| l.starts_with("Subject:")).unwrap();
    assert_eq!(
        subject,
        "Subject: Your appointment at Stillwater Glendale is confirmed"
    );
    assert!(m.contains("Hello Imogen"));

    // The front desk finds the lead and makes it a patient.
    let desk = app.login("dana.frontdesk").await;
    let queue = desk.get("/leads").await.text().await.unwrap();
    assert!(queue.contains("Imogen Thackeray"), "{queue}");
    assert!(queue.contains("Likely suitable"));
    let lead_page = desk
        .get(&format!("/leads/{}", lead.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(lead_page.contains("Panic attacks"));
    assert!(lead_page.contains("Feeling nervous"));
    let r = desk
        .post_form(&format!("/leads/{}/convert", lead.id), &[])
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let pid = lead.patient_id.unwrap();
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/patients/{pid}")
    );
    let lead = app
        .store
        .lead(lead.id, &[app.glendale])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.status, "became_patient");
    // The assessment's scores are in the chart, with the instrument version.
    let rs = app.store.responses(pid, None).await.unwrap();
    let gad = rs.iter().find(|r| r.instrument_id == "gad7").unwrap();
    assert_eq!(gad.total, Some(14));
    assert_eq!(gad.instrument_version, 1);
    assert_eq!(gad.instrument_hash.len(), 64);
    let nurse = app.login("nina.nurse").await;
    let chart = nurse
        .get(&format!("/patients/{pid}/measures"))
        .await
        .text()
        .await
        .unwrap();
    assert!(chart.contains("<svg class=\"trend\""), "{chart}");
    assert!(chart.contains("GAD-7 (0-21)"));
    // Facts entered once: the assessment starts from the self-assessment
    // (no exclusion applied; an SSRI and CBT tried), marked as such.
    let asmt = nurse.html(&format!("/patients/{pid}/assessment")).await;
    assert!(
        asmt.contains(
            "Uncontrolled hypertension</td><td>self-assessment: no; clinician: not settled"
        ),
        "{asmt}"
    );
    assert!(
        asmt.contains("An antidepressant for anxiety (SSRI or SNRI"),
        "{asmt}"
    );
    assert!(asmt.contains("(self-assessment)</li>"), "{asmt}");
    assert!(asmt.contains("Shown meanwhile: what they said on the public self-assessment"));
    // And the patient's own form has those answers ticked for them to confirm.
    let (s, l) = api(app, "nina.nurse")
        .await
        .post(
            &format!("/api/v1/patients/{pid}/links"),
            &json!({"purpose": "assessment"}),
        )
        .await;
    assert_eq!(s, 201, "{l}");
    let (s, form_page) = page(app, &format!("/forms/{}", l["token"].as_str().unwrap())).await;
    assert_eq!(s, 200);
    assert!(
        form_page.contains("name=\"screen.uncontrolled_hypertension\" value=\"no\" checked"),
        "{form_page}"
    );
    // Converting twice is refused.
    let (s, _) = api(app, "dana.frontdesk")
        .await
        .post(&format!("/api/v1/leads/{}/convert", lead.id), &json!({}))
        .await;
    assert_eq!(s, 409);
}
both!(assessment_to_consultation_to_patient);

/// PHQ-9 item 9 above 0 on the public page, through a link, and in staff
/// entry: crisis resources shown, and a task that stays open until a
/// clinician closes it with a note.
async fn item_nine_opens_a_task_on_every_path(app: &TestApp) {
    // Public page: the crisis section comes before the result.
    let (s, loc, _) = submit(app, &form(3, 1, "someone@example.org")).await;
    assert_eq!(s, 303);
    let (_, result) = page(app, &loc).await;
    let crisis = result
        .find("You do not have to face this alone")
        .expect("crisis resources shown");
    let outcome = result.find("Ketamine-assisted treatment").unwrap();
    assert!(crisis < outcome, "crisis resources first");
    assert!(result.contains("href=\"tel:988\""));
    let nurse = api(app, "nina.nurse").await;
    let (s, t) = nurse.get("/api/v1/tasks").await;
    assert_eq!(s, 200);
    assert_eq!(t["tasks"].as_array().unwrap().len(), 1, "{t}");
    assert!(t["tasks"][0]["title"]
        .as_str()
        .unwrap()
        .contains("self-assessment"));

    // Staff entry: PHQ-9 with item 9 at 2.
    let pid = app.patient_ids().await.0;
    let mut answers = serde_json::Map::new();
    for i in 1..=9 {
        answers.insert(i.to_string(), json!(if i == 9 { 2 } else { 0 }));
    }
    let (s, r) = nurse
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": pid, "instrument": "phq9", "answers": answers}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["safety"], true);
    assert_eq!(r["total"], 2);
    assert!(r["crisis_resources"].as_str().unwrap().contains("988"));
    let task = r["task_id"].as_str().unwrap().to_string();

    // Through a link.
    let (s, _) = nurse
        .post(
            "/api/v1/questionnaire-links",
            &json!({"patient_id": pid, "instrument": "phq9"}),
        )
        .await;
    assert_eq!(s, 201);
    let token = latest_link_token(app).await;
    let mut f: Vec<(String, String)> = (1..=8).map(|i| (format!("a.{i}"), "1".into())).collect();
    f.push(("a.9".into(), "1".into()));
    let r = answer(app, &token, &f).await;
    assert_eq!(r.status().as_u16(), 200);
    let done = r.text().await.unwrap();
    assert!(
        done.contains("You do not have to face this alone"),
        "{done}"
    );
    assert!(done.contains("tel:988"));
    let (_, t) = nurse.get("/api/v1/tasks").await;
    assert_eq!(t["tasks"].as_array().unwrap().len(), 3, "{t}");

    // The front desk neither lists safety tasks (they name patients and
    // their answers, a clinical matter) nor closes one; a note is required;
    // once only.
    let desk = api(app, "dana.frontdesk").await;
    let (s, _) = desk.get("/api/v1/tasks").await;
    assert_eq!(s, 403);
    let (s, _) = desk
        .post(
            &format!("/api/v1/tasks/{task}/close"),
            &json!({"note": "called"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, e) = nurse
        .post(
            &format!("/api/v1/tasks/{task}/close"),
            &json!({"note": "   "}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(e["errors"][0]["field"], "note");
    let (_, t) = nurse.get("/api/v1/tasks").await;
    assert_eq!(t["tasks"].as_array().unwrap().len(), 3, "still open");
    let (s, closed) = nurse
        .post(
            &format!("/api/v1/tasks/{task}/close"),
            &json!({"note": "Called the patient; safety plan reviewed, no intent; seen tomorrow."}),
        )
        .await;
    assert_eq!(s, 200, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["closed_by"], "nina.nurse");
    let (s, _) = nurse
        .post(
            &format!("/api/v1/tasks/{task}/close"),
            &json!({"note": "again"}),
        )
        .await;
    assert_eq!(s, 409);
    let (_, t) = nurse.get("/api/v1/tasks").await;
    assert_eq!(t["tasks"].as_array().unwrap().len(), 2);

    // The task page shows open tasks with a close form; the chart shows them.
    let s = app.login("paul.prescriber").await;
    let html = s.get("/tasks").await.text().await.unwrap();
    assert!(html.contains("What was done (required to close)"));
}
both!(item_nine_opens_a_task_on_every_path);

/// The newest link's token, read from its e-mail (made as it is sent).
async fn latest_link_token(app: &TestApp) -> String {
    let sink = SmtpSink::start().await;
    let state = mailer_state(app, &sink).await;
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    // Quoted-printable bodies wrap long lines with "=\n": undo that first,
    // or the link may be split across lines.
    let mail: Vec<String> = sink.all().iter().map(|m| m.replace("=\n", "")).collect();
    let body = mail
        .iter()
        .rev()
        .find(|m| m.contains("/q/"))
        .expect("link e-mail sent");
    let subject = body.lines().find(|l| l.starts_with("Subject:")).unwrap();
    assert_eq!(
        subject,
        "Subject: A short questionnaire from Stillwater Glendale"
    );
    let i = body.find("/q/").unwrap();
    body[i + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn answer(app: &TestApp, token: &str, f: &[(String, String)]) -> reqwest::Response {
    app.client()
        .post(app.url(&format!("/q/{token}")))
        .form(f)
        .send()
        .await
        .unwrap()
}

/// Links work once, until they expire; forged and tampered ones get a clear page.
async fn questionnaire_links_are_single_use(app: &TestApp) {
    let nurse = api(app, "nina.nurse").await;
    let pid = app.patient_ids().await.0;
    let (s, link) = nurse
        .post(
            "/api/v1/questionnaire-links",
            &json!({"patient_id": pid, "instrument": "gad7", "valid_hours": 48, "reason": "before infusion"}),
        )
        .await;
    assert_eq!(s, 201, "{link}");
    assert!(link.get("token").is_none(), "the token is never returned");
    // The queued e-mail names the link, never a token: a copy of the
    // database cannot answer for the patient.
    let queued = app.store.job_payloads("questionnaire_link").await.unwrap();
    assert!(!queued.is_empty());
    assert!(queued.iter().all(|p| !p.contains("token")), "{queued:?}");
    let token = latest_link_token(app).await;
    // Once the e-mail is sent, the outbox still holds no token.
    let payloads = app.store.job_payloads("questionnaire_link").await.unwrap();
    assert!(!payloads.is_empty());
    assert!(payloads.iter().all(|p| !p.contains(&token)), "{payloads:?}");
    let (s, html) = page(app, &format!("/q/{token}")).await;
    assert_eq!(s, 200);
    assert!(html.contains("Generalized Anxiety Disorder 7-item scale"));

    // Incomplete: the missing item is named, nothing stored, link still open.
    let mut f: Vec<(String, String)> = (1..=6).map(|i| (format!("a.{i}"), "2".into())).collect();
    f.push(("started".into(), hidden(&html, "started")));
    let r = answer(app, &token, &f).await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("Question 7"));
    assert_eq!(
        app.store
            .responses(pid.parse().unwrap(), Some("gad7"))
            .await
            .unwrap()
            .len(),
        0
    );
    // Out of range.
    f.push(("a.7".into(), "9".into()));
    let r = answer(app, &token, &f).await;
    assert_eq!(r.status().as_u16(), 422);
    assert!(r.text().await.unwrap().contains("9 is not an answer"));
    let f = with(&f, "a.7", "3");
    let r = answer(app, &token, &f).await;
    assert_eq!(r.status().as_u16(), 200);
    let rs = app
        .store
        .responses(pid.parse().unwrap(), Some("gad7"))
        .await
        .unwrap();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].total, Some(15));
    assert_eq!(rs[0].source, "link");
    assert!(rs[0].started_at.is_some());

    // Replayed.
    let r = answer(app, &token, &f).await;
    assert_eq!(r.status().as_u16(), 409);
    assert!(r.text().await.unwrap().contains("already been answered"));
    assert_eq!(
        app.store
            .responses(pid.parse().unwrap(), Some("gad7"))
            .await
            .unwrap()
            .len(),
        1
    );
    // Forged and tampered.
    let (s, html) = page(app, "/q/not-a-real-token").await;
    assert_eq!(s, 404);
    assert!(html.contains("This link is not valid"));
    let mut t = token.clone().into_bytes();
    t[0] = if t[0] == b'A' { b'B' } else { b'A' };
    let (s, _) = page(app, &format!("/q/{}", String::from_utf8(t).unwrap())).await;
    assert_eq!(s, 404);
    // Expired.
    let inst = domain::instruments::Registry::builtin()
        .current("gad7")
        .unwrap()
        .clone();
    let clinic = app.glendale;
    let expired_token = "expired-token-for-test-0123456789";
    app.store
        .insert_link(
            &store::measures::NewLink {
                id: domain::ids::LinkId::new(),
                clinic,
                patient: pid.parse().unwrap(),
                instrument_id: inst.id.clone(),
                instrument_version: inst.version,
                token_hash: clinic::actor::secret_hash(expired_token),
                reason: "test".into(),
                rule_key: None,
                expires_at: app.now() - 1,
                created_by: None,
            },
            ev(),
            &[],
        )
        .await
        .unwrap();
    let (s, html) = page(app, &format!("/q/{expired_token}")).await;
    assert_eq!(s, 410);
    assert!(html.contains("This link has expired"));
    let r = answer(app, expired_token, &f).await;
    assert_eq!(r.status().as_u16(), 410);
    assert_eq!(
        app.store
            .responses(pid.parse().unwrap(), Some("gad7"))
            .await
            .unwrap()
            .len(),
        1
    );

    // A clinician-rated scale cannot be sent as a link.
    let (s, e) = nurse
        .post(
            "/api/v1/questionnaire-links",
            &json!({"patient_id": pid, "instrument": "hama"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
}
both!(questionnaire_links_are_single_use);

/// Missing and out-of-range answers, honeypot, rate limit: a clear response
/// and no lead, response or task written.
async fn bad_public_input_leaves_nothing(app: &TestApp) {
    let good = form(12, 0, "x@example.org");
    let (s, _, body) = submit(app, &without(&good, "gad7.3")).await;
    assert_eq!(s, 422);
    assert!(
        body.contains(">How you have been feeling, question 3</a>"),
        "the missing answer is named as the form labels it: {body}"
    );
    // The PHQ-2's item 9 is the third mood question on the page; names are
    // named by their labels.
    let (s, _, body) = submit(app, &without(&without(&good, "phq2.9"), "given_name")).await;
    assert_eq!(s, 422);
    assert!(body.contains(">Your mood, question 3</a>"), "{body}");
    assert!(body.contains(">First name</a>"), "{body}");
    let (s, _, body) = submit(app, &with(&good, "gad7.1", "4")).await;
    assert_eq!(s, 422);
    assert!(body.contains("4 is not an answer"));
    let (s, _, body) = submit(app, &with(&good, "gad7.1", "lots")).await;
    assert_eq!(s, 422);
    assert!(body.contains("must be one of the choices"));
    let (s, _, body) = submit(app, &without(&good, "no_exclusions")).await;
    assert_eq!(s, 422);
    assert!(body.contains("None of these apply to me"));
    let (s, _, body) = submit(app, &with(&good, "date_of_birth", "2099-01-01")).await;
    assert_eq!(s, 422);
    assert!(body.contains("must not be in the future"));
    let (s, _, body) = submit(app, &with(&good, "website", "http://spam.example")).await;
    assert_eq!(s, 400);
    assert!(body.contains("could not be accepted"));
    // Answers from another instrument version through the API.
    let nurse = api(app, "nina.nurse").await;
    let pid = app.patient_ids().await.0;
    let answers: serde_json::Map<String, Value> =
        (1..=7).map(|i| (i.to_string(), json!(1))).collect();
    let (s, e) = nurse
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": pid, "instrument": "gad7", "instrument_version": 2, "answers": answers}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(e["errors"][0]["field"], "instrument_version");
    let mut wrong = answers.clone();
    wrong.insert("8".into(), json!(1));
    let (s, e) = nurse
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": pid, "instrument": "gad7", "answers": wrong}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(e["errors"][0]["field"], "answers.8");
    let (s, e) = nurse
        .post(
            "/api/v1/public/clinics/stillwater-glendale/assessments",
            &json!({"gad7": {"1": 1}, "surprise": true}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["errors"][0]["field"], "surprise");
    assert_eq!(lead_count(app).await, 0);
    assert!(app
        .store
        .responses(pid.parse().unwrap(), None)
        .await
        .unwrap()
        .is_empty());
    let (_, t) = nurse.get("/api/v1/tasks").await;
    assert!(t["tasks"].as_array().unwrap().is_empty());
    // Unknown clinic.
    let (s, _) = page(app, "/c/no-such-clinic/assessment").await;
    assert_eq!(s, 404);
}
both!(bad_public_input_leaves_nothing);

/// Ten submissions a minute from one address by default; the next gets 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pages_are_rate_limited() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.public_per_minute = 3)
        .await
        .unwrap();
    let bad = without(&form(12, 0, "x@example.org"), "gad7.1");
    for _ in 0..3 {
        let (s, _, _) = submit(&app, &bad).await;
        assert_eq!(s, 422);
    }
    let (s, _, body) = submit(&app, &form(12, 0, "x@example.org")).await;
    assert_eq!(s, 429);
    assert!(body.contains("Slow down"));
    assert_eq!(lead_count(&app).await, 0);
    app.finish().await;
}

/// Booking with the e-mail of an existing patient looks exactly like booking
/// with a new one: nothing on the public side depends on who exists.
async fn known_email_looks_the_same(app: &TestApp) {
    let known = app
        .store
        .search_patients(&[app.glendale], "", 50)
        .await
        .unwrap()
        .into_iter()
        .find_map(|p| p.details.email)
        .expect("a demo patient with an e-mail");
    let strip = |html: &str| {
        // Tokens and form actions differ by design; everything else must match.
        html.lines()
            .filter(|l| !l.contains("/result/"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut seen = vec![];
    for email in [known.as_str(), "brand.new.person@example.org"] {
        let (s, loc, _) = submit(app, &form(14, 0, email)).await;
        assert_eq!(s, 303);
        let (s, result) = page(app, &loc).await;
        assert_eq!(s, 200);
        let start = first_slot(&result);
        let r = app
            .client()
            .post(app.url(&loc))
            .form(&[("start", start.as_str())])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let (_, after) = page(app, &loc).await;
        let after = strip(&after);
        // The booked time may differ (the first booking took the first slot).
        let generic: String = after
            .lines()
            .filter(|l| !l.contains("<strong>"))
            .collect::<Vec<_>>()
            .join("\n");
        seen.push((status, strip(&result).lines().count(), generic));
    }
    assert_eq!(seen[0].0, seen[1].0);
    assert_eq!(seen[0].2, seen[1].2);
}
both!(known_email_looks_the_same);

/// Instruments over the API; clinician ratings entered by staff; who may
/// read and record.
async fn instruments_api_and_permissions(app: &TestApp) {
    let nurse = api(app, "nina.nurse").await;
    let (s, all) = nurse.get("/api/v1/instruments").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = all["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    for want in [
        "gad7", "phq9", "pcl5", "hama", "cssrs", "cadss6", "moaas", "aldrete",
    ] {
        assert!(ids.contains(&want), "{want}");
    }
    let (s, g) = nurse.get("/api/v1/instruments/gad7").await;
    assert_eq!(s, 200);
    assert_eq!(g["loinc_total"], "70274-6");
    let (s, _) = nurse.get("/api/v1/instruments/ybocs").await;
    assert_eq!(s, 404);

    // HAM-A entered by a clinician: subscales and band.
    let pid = app.patient_ids().await.0;
    let answers: serde_json::Map<String, Value> = (1..=14)
        .map(|i| (i.to_string(), json!(if i <= 7 { 2 } else { 1 })))
        .collect();
    let (s, r) = nurse
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": pid, "instrument": "hama", "answers": answers}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["total"], 21);
    assert_eq!(r["band"]["level"], "moderate");
    assert_eq!(r["subscales"]["psychic"], 13);

    // Staff entry through the page.
    let s = app.login("mona.monitor").await;
    let html = s
        .get(&format!("/patients/{pid}/measures/new?instrument=moaas"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("responds readily"));
    let r = s
        .post_form(
            &format!("/patients/{pid}/measures/new"),
            &[("instrument", "moaas"), ("version", "1"), ("a.score", "3")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("Moderate sedation"));

    // Front desk: no clinical scores; auditor: reads, cannot record.
    let desk = api(app, "dana.frontdesk").await;
    let (s, _) = desk
        .get(&format!("/api/v1/questionnaire-responses?patient_id={pid}"))
        .await;
    assert_eq!(s, 403);
    let auditor = api(app, "audrey.auditor").await;
    let (s, list) = auditor
        .get(&format!("/api/v1/questionnaire-responses?patient_id={pid}"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["responses"].as_array().unwrap().len(), 2);
    let (s, _) = auditor
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": pid, "instrument": "hama", "answers": answers}),
        )
        .await;
    assert_eq!(s, 403);
    // Another clinic's patient is not found, and the miss is audited.
    let denver_nurse = api(app, "nate.nurse").await;
    let (s, _) = denver_nurse
        .get(&format!("/api/v1/questionnaire-responses?patient_id={pid}"))
        .await;
    assert_eq!(s, 404);
}
both!(instruments_api_and_permissions);

/// A patient with months of scores: the chart shows the trend in words and
/// as a picture, with dosing visits marked and a table for screen readers.
async fn trend_chart_with_doses(app: &TestApp) {
    let pid: domain::ids::PatientId = app.patient_ids().await.0.parse().unwrap();
    let inst = domain::instruments::Registry::builtin()
        .current("gad7")
        .unwrap()
        .clone();
    let week = 7 * 86_400_000_000i64;
    let t0 = app.now() - 10 * week;
    for (n, total) in [17, 16, 12, 9, 7, 6].into_iter().enumerate() {
        let mut a = std::collections::BTreeMap::new();
        let mut left = total;
        for i in 1..=7 {
            let v = left.min(3);
            left -= v;
            a.insert(i.to_string(), v);
        }
        let scored = inst.score(&a).unwrap();
        app.store
            .insert_response(
                &store::measures::NewResponse {
                    id: domain::ids::ResponseId::new(),
                    clinic: app.glendale,
                    patient: Some(pid),
                    lead: None,
                    scored: &scored,
                    instrument_hash: &inst.hash,
                    source: store::measures::Source::Staff,
                    link: None,
                    appointment: None,
                    entered_by: None,
                    started_at: None,
                    submitted_at: t0 + n as i64 * week,
                },
                None,
                vec![],
            )
            .await
            .unwrap();
    }
    let nurse = app.login("nina.nurse").await;
    let html = nurse
        .get(&format!("/patients/{pid}/measures"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Response: now 6, from a baseline of 17"),
        "{html}"
    );
    assert!(html.contains("class=\"baseline\""));
    assert!(html.contains("class=\"remission\""));
    assert_eq!(html.matches("class=\"dot\"").count(), 6);
    assert!(html.contains("<caption class=\"visually-hidden\">GAD-7 scores over time"));
}
both!(trend_chart_with_doses);

/// Rules send GAD-7 and PHQ-9 the day before each dose and GAD-7 the day
/// after, once per occasion, by e-mail with a working link.
async fn rules_send_links_around_doses(app: &TestApp) {
    let desk = api(app, "dana.frontdesk").await;
    let (s, p) = desk
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": "Odalys", "family_name": "Brennan", "date_of_birth": "1983-09-30", "email": "odalys@example.org"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let tz = jiff::tz::TimeZone::get("America/Phoenix").unwrap();
    let mut monday = app.now_ts().to_zoned(tz).date() + jiff::Span::new().days(35);
    while monday.weekday() != jiff::civil::Weekday::Monday {
        monday = monday.tomorrow().unwrap();
    }
    let (s, a) = desk
        .post("/api/v1/appointments", &json!({"clinic_id": app.glendale, "patient_id": p["id"], "type": "iv_infusion", "starts_at": format!("{monday}T09:00")}))
        .await;
    assert_eq!(s, 201, "{a}");
    let start = jiff::Timestamp::from_str(a["starts_at"].as_str().unwrap())
        .unwrap()
        .as_microsecond();
    let end = jiff::Timestamp::from_str(a["ends_at"].as_str().unwrap())
        .unwrap()
        .as_microsecond();
    let hour = 3_600_000_000i64;
    let state = clinic::Clinic::new(app.store.clone(), clinic::Config::default());
    let pid: domain::ids::PatientId = p["id"].as_str().unwrap().parse().unwrap();
    // Two days before: nothing yet.
    assert_eq!(
        clinic::measures::run_rules(&state, start - 48 * hour)
            .await
            .unwrap(),
        0
    );
    // The day before: GAD-7 and PHQ-9, once.
    assert_eq!(
        clinic::measures::run_rules(&state, start - 20 * hour)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        clinic::measures::run_rules(&state, start - 19 * hour)
            .await
            .unwrap(),
        0
    );
    let links = app.store.links(pid).await.unwrap();
    assert_eq!(links.len(), 2);
    assert!(
        links.iter().all(|l| l.expires_at == start),
        "links stop at the visit"
    );
    // After the dose, once it is completed: GAD-7 the next day.
    let id: domain::ids::AppointmentId = a["id"].as_str().unwrap().parse().unwrap();
    app.store
        .set_visit_status(id, store::scheduling::Status::Completed, None, false, ev())
        .await
        .unwrap();
    assert_eq!(
        clinic::measures::run_rules(&state, end + 25 * hour)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        clinic::measures::run_rules(&state, end + 26 * hour)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.store.links(pid).await.unwrap().len(), 3);
    let audit = app
        .store
        .count_audit(domain::audit::Action::LinkCreate.as_str())
        .await
        .unwrap();
    assert!(audit >= 3);
}
both!(rules_send_links_around_doses);

/// The public API: assess, see free times, book; the same rules as the pages.
async fn public_api_assess_and_book(app: &TestApp) {
    let c = reqwest::Client::new();
    let base = format!("/api/v1/public/clinics/{SLUG}");
    let body = json!({
        "gad7": {"1": 3, "2": 3, "3": 2, "4": 2, "5": 1, "6": 1, "7": 1},
        "phq2": {"1": 1, "2": 1, "9": 0},
        "conditions": ["gad", "social_anxiety"],
        "treatments": ["ssri_snri", "buspirone"],
        "no_exclusions": true,
        "given_name": "Sabine", "family_name": "Moreau",
        "phone": "(602) 555-0199", "date_of_birth": "1979-12-01",
        "consent_to_contact": true
    });
    let r = c
        .post(app.url(&format!("{base}/assessments")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let res: Value = r.json().await.unwrap();
    assert_eq!(res["outcome"], "likely");
    assert_eq!(res["gad7"]["total"], 13);
    assert!(res["crisis_resources"].as_str().unwrap().contains("988"));
    let token = res["token"].as_str().unwrap().to_string();
    let slots: Value = c
        .get(app.url(&format!("{base}/consultation-slots")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(slots["time_zone"], "America/Phoenix");
    let first = slots["starts"][0].as_str().unwrap().to_string();
    // A bad time is named; a forged token is not found (nothing written);
    // then the real booking registers the person with the visit.
    let before = app.count_patients().await;
    let r = c
        .post(app.url(&format!("{base}/assessments/{token}/booking")))
        .json(&json!({"starts_at": "soon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let r = c
        .post(app.url(&format!("{base}/assessments/forged/booking")))
        .json(&json!({"starts_at": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(app.count_patients().await, before);
    let r = c
        .post(app.url(&format!("{base}/assessments/{token}/booking")))
        .json(&json!({"starts_at": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    assert_eq!(app.count_patients().await, before + 1);
    // The lead is in the queue as booked, through the staff API.
    let desk = api(app, "dana.frontdesk").await;
    let (s, leads) = desk.get("/api/v1/leads?status=consultation_booked").await;
    assert_eq!(s, 200);
    assert_eq!(leads["leads"][0]["family_name"], "Moreau");
    let id = leads["leads"][0]["id"].as_str().unwrap();
    let (s, l) = desk
        .patch(
            &format!("/api/v1/leads/{id}"),
            &json!({"status": "became_patient"}),
        )
        .await;
    assert_eq!(s, 422, "{l}");
    let (s, l) = desk
        .patch(
            &format!("/api/v1/leads/{id}"),
            &json!({"status": "contacted", "note": "Confirmed by phone"}),
        )
        .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["note"], "Confirmed by phone");

    // Who may work the lead: an admin and an auditor read it but cannot
    // change it; the other clinic's desk does not find it.
    for user in ["ada.admin", "audrey.auditor"] {
        let who = api(app, user).await;
        let (s, _) = who.get(&format!("/api/v1/leads/{id}")).await;
        assert_eq!(s, 200, "{user} reads");
        let (s, _) = who
            .patch(
                &format!("/api/v1/leads/{id}"),
                &json!({"status": "declined"}),
            )
            .await;
        assert_eq!(s, 403, "{user} may not change a lead");
        let (s, _) = who
            .post(&format!("/api/v1/leads/{id}/convert"), &json!({}))
            .await;
        assert_eq!(s, 403, "{user} may not convert a lead");
    }
    let denver = api(app, "devon.frontdesk").await;
    let (s, _) = denver.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(s, 404);
    let (s, _) = denver
        .patch(
            &format!("/api/v1/leads/{id}"),
            &json!({"status": "declined"}),
        )
        .await;
    assert_eq!(s, 404);
    let (_, leads) = denver.get("/api/v1/leads").await;
    assert!(!leads.to_string().contains("Moreau"));
    // A therapist has no lead queue at all.
    let (s, _) = api(app, "theo.therapist").await.get("/api/v1/leads").await;
    assert_eq!(s, 403);
    // A result token works only on its own clinic's pages.
    let (s, _) = page(app, &format!("/c/stillwater-denver/result/{token}")).await;
    assert_eq!(s, 404);
    let (s, _) = page(app, &format!("/c/{SLUG}/result/{token}")).await;
    assert_eq!(s, 200);
    // The front desk may not send a questionnaire (clinical); a nurse may.
    let (s, _) = desk
        .post(
            "/api/v1/questionnaire-links",
            &json!({"patient_id": l["patient_id"], "instrument": "gad7"}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = api(app, "nina.nurse")
        .await
        .post(
            "/api/v1/questionnaire-links",
            &json!({"patient_id": l["patient_id"], "instrument": "gad7"}),
        )
        .await;
    assert_eq!(s, 201);
}
both!(public_api_assess_and_book);

/// A clinic adds an instrument or a protocol version by dropping a file in its
/// data folder; a broken file stops start-up with the file and the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_adds_instruments_and_protocols_by_file() {
    let dir = std::env::temp_dir().join(format!("sw-inst-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(dir.join("instruments")).unwrap();
    let file = r#"
id = "calm-check"
version = 1
name = "Calm check (clinic's own)"
short_name = "Calm"
rater = "self"
licence = "Written by the clinic"
prompt = "Today:"
[scales]
yn = [{ value = 0, label = "No" }, { value = 1, label = "Yes" }]
[[items]]
id = "1"
text = "I felt calm today"
scale = "yn"
[[items]]
id = "2"
text = "I slept well"
scale = "yn"
"#;
    std::fs::write(dir.join("instruments/calm.toml"), file).unwrap();
    // A new version of the IV protocol, as a clinic would add it.
    std::fs::create_dir_all(dir.join("protocols")).unwrap();
    let iv = domain::protocols::BUILTIN
        .iter()
        .find(|(f, _)| *f == "iv.toml")
        .unwrap()
        .1
        .replace("version = 1", "version = 3")
        .replace("start = 0.5", "start = 0.4");
    std::fs::write(dir.join("protocols/iv-v3.toml"), &iv).unwrap();
    let d = dir.clone();
    let app = TestApp::spawn_with(Backend::Sqlite, move |c| c.data_dir = d)
        .await
        .unwrap();
    let nurse = api(&app, "nina.nurse").await;
    let (s, i) = nurse.get("/api/v1/instruments/calm-check").await;
    assert_eq!(s, 200, "{i}");
    assert_eq!(i["range"], json!([0, 2]));
    let pid = app.patient_ids().await.0;
    let (s, r) = nurse
        .post(
            "/api/v1/questionnaire-responses",
            &json!({"patient_id": pid, "instrument": "calm-check", "answers": {"1": 1, "2": 1}}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["total"], 2);
    let (s, all) = nurse.get("/api/v1/protocols").await;
    assert_eq!(s, 200);
    assert_eq!(all["protocols"].as_array().unwrap().len(), 5);
    let (s, p) = nurse.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["version"], 3);
    assert_eq!(p["dose"]["start"], 0.4);
    assert_eq!(p["versions"].as_array().unwrap().len(), 3);
    let (s, p1) = nurse.get("/api/v1/protocols/iv-infusion?version=1").await;
    assert_eq!(s, 200);
    assert_eq!(p1["dose"]["start"], 0.5);
    assert_eq!(p1["limits"]["sbp_max"], 180);
    let (s, _) = nurse.get("/api/v1/protocols/iv-infusion?version=9").await;
    assert_eq!(s, 404);
    app.finish().await;

    std::fs::write(
        dir.join("instruments/broken.toml"),
        file.replace("calm-check", "broken")
            .replace("scale = \"yn\"\n[[items]]", "scale = \"nope\"\n[[items]]"),
    )
    .unwrap();
    let cfg = stillwater::config::Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("broken.toml") && err.contains("not defined"),
        "{err}"
    );
    std::fs::remove_file(dir.join("instruments/broken.toml")).unwrap();
    std::fs::write(
        dir.join("protocols/iv-v4.toml"),
        iv.replace("version = 3", "version = 4")
            .replace("max = 0.75", "max = 2.0"),
    )
    .unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("iv-v4.toml") && err.contains("dose.max"),
        "{err}"
    );
    // A protocol asking for an instrument that is not loaded stops start-up.
    std::fs::write(
        dir.join("protocols/iv-v4.toml"),
        iv.replace("version = 3", "version = 4")
            .replace(
                "\"suicide_risk\"]",
                "\"suicide_risk\", \"pre_session_instruments\"]",
            )
            .replace(
                "courses =",
                "pre_session_instruments = [\"calm-chek\"]\ncourses =",
            ),
    )
    .unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("calm-chek") && err.contains("not a loaded instrument"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Eligibility: the prescriber decides with the engine's findings, never past
/// an absolute exclusion; the nurse signs off; each decision is a new version.
async fn eligibility_decisions(app: &TestApp) {
    let pid = app.patient_ids().await.0;
    let path = format!("/api/v1/patients/{pid}/eligibility");
    let prescriber = api(app, "paul.prescriber").await;
    let nurse = api(app, "nina.nurse").await;
    let facts = json!({
        "conditions": [],
        "medications": [{"name": "clonazepam", "daily_mg": 2.0}, {"name": "sertraline", "daily_mg": 150.0}],
        "trials": [
            {"treatment": "sertraline", "adequate_dose": true, "weeks": 10},
            {"treatment": "escitalopram", "adequate_dose": true, "weeks": 8}
        ],
        "blood_pressure": [132, 84]
    });
    // The nurse may not decide.
    let (s, _) = nurse
        .post(&path, &json!({"facts": facts, "decision": "eligible", "rationale": "Looks fine to me overall."}))
        .await;
    assert_eq!(s, 403);
    // Plain "eligible" over a benzodiazepine load is refused: conditions needed.
    let (s, e) = prescriber
        .post(&path, &json!({"facts": facts, "decision": "eligible", "rationale": "Two adequate trials, treatment-resistant GAD."}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["errors"][0]["field"], "decision");
    let (s, d) = prescriber
        .post(&path, &json!({"facts": facts, "decision": "eligible_with_conditions",
            "conditions": "Taper clonazepam to 1 mg/day before the first infusion",
            "rationale": "Two adequate trials, treatment-resistant GAD; benzodiazepine load blunts response."}))
        .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["version"], 1);
    assert_eq!(d["suggestion"], "eligible_with_conditions");
    assert!(
        d["findings"]
            .to_string()
            .contains("4.0 mg/day lorazepam-equivalent"),
        "{d}"
    );
    // An absolute exclusion: eligible is refused whatever the rationale.
    let mut cystitis = facts.clone();
    cystitis["conditions"] = json!(["ketamine_cystitis"]);
    let (s, e) = prescriber
        .post(&path, &json!({"facts": cystitis, "decision": "eligible_with_conditions", "conditions": "monitor",
            "rationale": "Treatment-resistant and keen; I accept the risk."}))
        .await;
    assert_eq!(s, 422);
    assert!(
        e["detail"].as_str().unwrap().contains("absolute exclusion"),
        "{e}"
    );
    // Unknown fields and bad values are named.
    let (s, e) = prescriber
        .post(
            &path,
            &json!({"facts": {"conditions": ["vibes"]}, "decision": "eligible", "rationale": "x"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    // Sign-off by the nurse, once; the prescriber cannot sign off.
    let (s, _) = prescriber
        .post(&format!("{path}/1/sign-off"), &json!({}))
        .await;
    assert_eq!(s, 403);
    let (s, _) = nurse.post(&format!("{path}/1/sign-off"), &json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = nurse.post(&format!("{path}/1/sign-off"), &json!({})).await;
    assert_eq!(s, 409);
    // A second decision is version 2; history newest first; nothing half-written.
    let (s, d) = prescriber
        .post(
            &path,
            &json!({"facts": cystitis, "decision": "not_eligible",
            "rationale": "History of ketamine cystitis: refer for other treatment."}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["version"], 2);
    let (s, h) = nurse.get(&path).await;
    assert_eq!(s, 200);
    assert_eq!(h["decisions"].as_array().unwrap().len(), 2);
    assert_eq!(h["current"]["version"], 2);
    assert_eq!(h["current"]["approves"], false);
    assert_eq!(h["decisions"][1]["signed_off_by"], "nina.nurse");
    // Version 1 is superseded: it can no longer be signed off; another clinic sees nothing.
    let (s, _) = nurse.post(&format!("{path}/1/sign-off"), &json!({})).await;
    assert_eq!(s, 409);
    let (s, _) = api(app, "nate.nurse").await.get(&path).await;
    assert_eq!(s, 404);
    // The chart's Eligibility tab shows the status and the findings in words.
    let page = app
        .login("nina.nurse")
        .await
        .get(&format!("/patients/{pid}/eligibility"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("pill bad\">Not eligible"), "{page}");
    assert!(page.contains("History of ketamine cystitis: repeated ketamine damages the bladder"));
    assert!(page.contains("Earlier decisions"));
    // The prescriber's form on the tab: refused past an absolute exclusion
    // with the reason on the page, then recorded as version 3.
    let paul = app.login("paul.prescriber").await;
    let form_path = format!("/patients/{pid}/eligibility");
    let r = paul
        .post_form(
            &form_path,
            &[
                ("conditions", "ketamine_cystitis"),
                ("medications", "clonazepam 2\nsertraline 150"),
                (
                    "trials",
                    "sertraline, 10, adequate\nescitalopram, 8, adequate",
                ),
                ("blood_pressure", "128/82"),
                ("decision", "eligible"),
                (
                    "rationale",
                    "Treatment-resistant GAD after two adequate trials.",
                ),
            ],
        )
        .await;
    // Refused as a form: 422, and what was typed comes back with the reason.
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("cannot be eligible with an absolute exclusion"));
    for kept in [
        "value=\"ketamine_cystitis\" aria-label=\"History of ketamine cystitis: present\" checked",
        "clonazepam 2\nsertraline 150</textarea>",
        "escitalopram, 8, adequate</textarea>",
        "value=\"128/82\"",
        "<option value=\"eligible\" selected>",
        "Treatment-resistant GAD after two adequate trials.</textarea>",
    ] {
        assert!(html.contains(kept), "the refused form keeps {kept:?}");
    }
    assert!(
        !html.contains("<option value=\"needs_more_information\" selected>"),
        "the default choice does not replace the one made"
    );
    let r = paul
        .post_form(
            &form_path,
            &[
                ("trials", "sertraline, ten, adequate"),
                ("decision", "not_eligible"),
                ("rationale", "x"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap().contains("trials: line 1: write"));
    let r = paul
        .post_form(
            &form_path,
            &[
                ("conditions", "ketamine_cystitis"),
                ("trials", "sertraline, 10, adequate"),
                ("decision", "not_eligible"),
                (
                    "rationale",
                    "History of ketamine cystitis confirmed by urology letter.",
                ),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let (_, h) = nurse.get(&path).await;
    assert_eq!(h["current"]["version"], 3);
    assert_eq!(h["decisions"][0]["facts"]["trials"][0]["weeks"], 10);
    let desk = app.login("dana.frontdesk").await;
    assert_eq!(
        desk.get(&format!("/patients/{pid}/eligibility"))
            .await
            .status()
            .as_u16(),
        403
    );
}
both!(eligibility_decisions);

/// The free consultation by video: offered beside the visit in person only
/// while the clinic has a meeting link; the booking's confirmation, calendar
/// file, portal and visit page carry the visit's own link, never the street
/// address; a bad link is refused by name.
async fn consultation_by_video(app: &TestApp) {
    let c = reqwest::Client::new();
    let base = format!("/api/v1/public/clinics/{SLUG}");
    let slots = |q: &'static str| {
        let c = c.clone();
        let url = app.url(&format!("{base}/consultation-slots{q}"));
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, both_ways) = slots("").await;
    assert_eq!(s, 200, "{both_ways}");
    let codes: Vec<_> = both_ways["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["code"].as_str().unwrap(), t["video"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        codes,
        vec![("consultation", false), ("consultation_video", true)]
    );
    assert_eq!(both_ways["type"], "consultation", "in person first");
    let (s, video) = slots("?type=consultation_video").await;
    assert_eq!((s, &video["video"]), (200, &json!(true)), "{video}");
    let (s, e) = slots("?type=iv_infusion").await;
    assert_eq!((s, fields(&e)), (422, vec!["type".to_string()]), "{e}");

    // Booked from the result page, by video.
    let body = json!({
        "gad7": {"1": 2, "2": 2, "3": 2, "4": 2, "5": 1, "6": 1, "7": 1},
        "phq2": {"1": 1, "2": 0, "9": 0},
        "conditions": ["gad"], "treatments": ["ssri_snri"], "no_exclusions": true,
        "given_name": "Ines", "family_name": "Vidal", "email": "ines.vidal@example.org",
        "phone": "(602) 555-0177", "date_of_birth": "1988-04-12", "consent_to_contact": true
    });
    let res: Value = c
        .post(app.url(&format!("{base}/assessments")))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = res["token"].as_str().unwrap().to_string();
    let (s, html) = page(
        app,
        &format!("/c/{SLUG}/result/{token}?how=consultation_video"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        html.contains("By video")
            && html.contains("In person")
            && html.contains(r#"name="type" value="consultation_video""#),
        "{html}"
    );
    let start = video["starts"][0].as_str().unwrap();
    let r = c
        .post(app.url(&format!("{base}/assessments/{token}/booking")))
        .json(&json!({"starts_at": start, "type": "consultation_video"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let lead = app
        .store
        .leads(&[app.glendale], None, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.family_name == "Vidal")
        .unwrap();
    let visit = lead.appointment_id.expect("booked");
    let link = format!("https://meet.stillwater.example/glendale/{visit}");
    let sink = SmtpSink::start().await;
    let state = mailer_state(app, &sink).await;
    clinic::outbox::drain(&state, app.now()).await.unwrap();
    let mail = sink
        .all()
        .into_iter()
        .find(|m| m.contains("ines.vidal@example.org"))
        .expect("confirmation");
    // Quoted-printable's soft line breaks undone.
    let flat = mail.replace("\r\n", "\n").replace("=\n", "");
    assert!(flat.contains(&link), "{flat}");
    assert!(
        !flat.contains("Suite 210"),
        "no street address for a video visit"
    );
    assert!(
        flat.contains("LOCATION:") && flat.contains("URL:"),
        "{flat}"
    );
    // Staff see the same link on the visit's page.
    let desk = app.login("dana.frontdesk").await;
    let html = desk.html(&format!("/appointments/{visit}")).await;
    assert!(html.contains(&link), "{html}");

    // A link that is not an https address is refused by name, nothing
    // saved; a blank one withdraws video: only the visit in person is left.
    let admin = app.login("ada.admin").await;
    let path = format!("/admin/clinics/{}", app.glendale);
    let mut form = vec![
        ("name", "Stillwater Glendale"),
        ("address_line1", "18400 N 51st Ave, Suite 210"),
        ("city", "Glendale"),
        ("region", "AZ"),
        ("postal_code", "85308"),
        ("country", "US"),
        ("phone", "(602) 555-0142"),
        ("time_zone", "America/Phoenix"),
        ("open_mon", "07:00"),
        ("close_mon", "16:30"),
        ("video_link", "http://meet.example.com/{visit}"),
    ];
    let r = admin.post_form(&path, &form).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("must be an https:// address"));
    let k = app.store.clinic(app.glendale).await.unwrap();
    assert!(k.settings.video_link.is_some(), "unchanged");
    form.pop();
    form.push(("video_link", ""));
    assert_eq!(admin.post_form(&path, &form).await.status(), 303);
    let (_, one_way) = slots("").await;
    assert_eq!(one_way["types"].as_array().unwrap().len(), 1, "{one_way}");
    let (s, e) = slots("?type=consultation_video").await;
    assert_eq!((s, fields(&e)), (422, vec!["type".to_string()]), "{e}");
    // The visit already booked says so to staff rather than losing its way.
    let html = desk.html(&format!("/appointments/{visit}")).await;
    assert!(html.contains("no meeting link is set"), "{html}");
}
both!(consultation_by_video);

/// The outcome report over the demo's month of infusions and scores: every
/// course counted once, each share given both ways, who is missing said;
/// to clinicians who read scores only; a bad period named; the read audited.
async fn the_outcome_report_counts_every_course(app: &TestApp) {
    // The whole demo: its month of infusions and the patients' scores.
    let dir = std::env::temp_dir().join(format!("sw-oc-{}", uuid::Uuid::now_v7().simple()));
    let cfg = stillwater::config::Config {
        data_dir: dir,
        ..Default::default()
    };
    let (protocols, instruments) = (cfg.protocols().unwrap(), cfg.instruments().unwrap());
    stillwater::demo::load_rest(&app.store, &protocols, &instruments)
        .await
        .unwrap();
    let doc = api(app, "paul.prescriber").await;
    let (s, r) = doc.get("/api/v1/outcomes?from=2020-01-01").await;
    assert_eq!(s, 200, "{r}");
    let instruments = r["instruments"].as_array().unwrap();
    let ids: Vec<&str> = instruments
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["phq9", "gad7"]);
    let mut counted = 0;
    for i in instruments {
        let a = &i["all"];
        let n = |k: &str| a[k].as_u64().unwrap();
        assert!(n("started") > 0, "the demo's courses are counted: {i}");
        counted += n("started");
        assert_eq!(n("started"), n("no_baseline") + n("with_baseline"), "{a}");
        assert_eq!(
            n("with_baseline"),
            n("with_outcome") + n("missing_outcome"),
            "{a}"
        );
        for share in [
            "response",
            "remission",
            "reliable_improvement",
            "recovery",
            "worsened",
        ] {
            let s = &a[share];
            let k = s["n"].as_u64().unwrap();
            assert!(k <= n("with_outcome"));
            let of = |total: u64| {
                if total == 0 {
                    0.0
                } else {
                    (k as f64 * 1000.0 / total as f64).round() / 10.0
                }
            };
            assert_eq!(
                s["percent_of_started"].as_f64().unwrap(),
                of(n("with_baseline")),
                "{share}"
            );
            assert_eq!(
                s["percent_of_with_outcome"].as_f64().unwrap(),
                of(n("with_outcome")),
                "{share}"
            );
        }
        assert_eq!(
            i["changes"].as_array().unwrap().len() as u64,
            n("with_outcome"),
            "one bar per course with both scores"
        );
        let routes: u64 = i["by_route"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cohort"]["started"].as_u64().unwrap())
            .sum();
        assert_eq!(routes, n("started"), "every course in one route");
        let protocols: u64 = i["by_protocol"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert!(
                    r["protocol"].as_str().unwrap().contains(", version "),
                    "{r}"
                );
                r["cohort"]["started"].as_u64().unwrap()
            })
            .sum();
        assert_eq!(
            protocols,
            n("started"),
            "every course under one protocol version"
        );
    }
    assert!(counted > 0);
    let with_outcome: u64 = instruments
        .iter()
        .map(|i| i["all"]["with_outcome"].as_u64().unwrap())
        .sum();
    assert!(
        with_outcome > 0,
        "the demo has courses with an outcome: {r}"
    );
    assert_eq!(instruments[0]["published"][0]["response"], 53.6);
    // A bad period is named; a reversed one too.
    let (s, e) = doc.get("/api/v1/outcomes?from=last%20year").await;
    assert_eq!((s, fields(&e)), (422, vec!["from".to_string()]), "{e}");
    let (s, e) = doc
        .get("/api/v1/outcomes?from=2026-05-01&to=2026-01-01")
        .await;
    assert_eq!((s, fields(&e)), (422, vec!["to".to_string()]), "{e}");
    // Another clinic's scores are not counted for a clinician of one clinic,
    // who reads their own clinic's.
    let nina = api(app, "nina.nurse").await;
    let (s, own) = nina.get("/api/v1/outcomes").await;
    assert_eq!((s, &own["clinics"]), (200, &json!(["Stillwater Glendale"])));
    let (s, _) = nina
        .get(&format!("/api/v1/outcomes?clinic_id={}", app.denver))
        .await;
    assert_eq!(s, 403);
    // The front desk reads no scores.
    let (s, _) = api(app, "dana.frontdesk")
        .await
        .get("/api/v1/outcomes")
        .await;
    assert_eq!(s, 403);
    let desk = app.login("dana.frontdesk").await;
    assert_eq!(desk.get("/outcomes").await.status(), 403);
    // The page, with its waterfall and the literature beside.
    let html = app
        .login("paul.prescriber")
        .await
        .html("/outcomes?from=2020-01-01")
        .await;
    assert!(
        html.contains("Who is counted")
            && html.contains("Of all who started")
            && html.contains("McInnes et al.")
            && html.contains("By protocol")
            && html.contains(r#"role="img" aria-label="Each course"#),
        "{html}"
    );
    app.store.audit_flush().await;
    assert!(
        app.store
            .count_audit("questionnaire_response.read")
            .await
            .unwrap()
            >= 2
    );
}
both!(the_outcome_report_counts_every_course);
