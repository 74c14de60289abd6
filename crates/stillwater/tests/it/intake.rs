//! Before the first dose over HTTP: the assessment's two parts, consent
//! documents and signatures (with the PDF's text and hash checked), witness
//! and withdrawal, and the gate that refuses a plan without approved
//! eligibility, without consent, with consent of an old version or after
//! withdrawal, each with its reason.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn patient_part() -> Value {
    let screen: serde_json::Map<String, Value> = domain::eligibility::Condition::ALL
        .iter()
        .map(|c| (domain::assessment::key(*c), json!("no")))
        .collect();
    let history: serde_json::Map<String, Value> = domain::assessment::HISTORY
        .iter()
        .map(|(k, _)| {
            (
                k.to_string(),
                json!(if *k == "trauma" { "yes" } else { "no" }),
            )
        })
        .collect();
    json!({
        "screen": screen, "history": history,
        "medications": [{"name": "sertraline", "daily_mg": 150.0}],
        "treatments": [{"treatment": "sertraline", "dose": "150 mg", "weeks": 12, "response": "partial"}],
        "anxiety": {"cognitive": 3, "somatic": 2, "behavioural": 1, "triggers": "crowds, deadlines"},
        "calming": "slow breathing, a blanket", "escort_name": "Sam Quinn", "escort_phone": "602-555-0101"
    })
}

pub fn clinical_part() -> Value {
    let screen: serde_json::Map<String, Value> = domain::eligibility::Condition::ALL
        .iter()
        .map(|c| (domain::assessment::key(*c), json!("absent")))
        .collect();
    json!({
        "diagnoses": [{"code": "F41.1", "label": "Generalized anxiety disorder"}],
        "screen": screen,
        "trials": [
            {"treatment": "sertraline", "adequate_dose": true, "weeks": 12},
            {"treatment": "escitalopram", "adequate_dose": true, "weeks": 8}
        ],
        "baseline": {"sbp": 126, "dbp": 80, "hr": 72, "spo2": 98, "weight_kg": 68.5, "height_cm": 170.0},
        "notes": "Calm, engaged."
    })
}

async fn counts(app: &TestApp, pid: &str) -> (usize, usize) {
    let pid = pid.parse().unwrap();
    (
        app.store.consents(pid).await.unwrap().len(),
        app.store.plans(pid).await.unwrap().len(),
    )
}

async fn pdf_bytes(app: &TestApp, token: &str, path: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn before_the_first_dose(app: &TestApp) {
    let admin = api(app, "ada.admin").await;
    let prescriber = api(app, "paul.prescriber").await;
    let nurse = api(app, "nina.nurse").await;
    let desk = api(app, "dana.frontdesk").await;
    let (s, p) = nurse
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": "Iris", "family_name": "Quinn", "date_of_birth": "1988-04-02", "email": "iris@example.org"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let base = format!("/api/v1/patients/{pid}");
    let plan = json!({"protocol": "iv-infusion", "course": "induction", "targets": ["gad7", "phq9"], "goal": "response", "modality": "emdr"});

    // The gate, before anything: every reason at once, nothing written.
    let (s, e) = prescriber.post(&format!("{base}/plans"), &plan).await;
    assert_eq!(s, 409, "{e}");
    let d = e["detail"].as_str().unwrap();
    assert!(
        d.contains("no eligibility decision") && d.contains("consent"),
        "{d}"
    );

    // Consent documents: bad ones are refused by name, a good one published.
    let docs_path = format!("/api/v1/clinics/{}/consent-documents", app.glendale);
    let template = domain::consent::template(domain::protocols::Route::Iv);
    let cut = template.replace("## [cost] Cost and insurance", "## Cost and insurance");
    let (s, e) = admin
        .post(&docs_path, &json!({"route": "iv", "body": cut}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("[cost]"), "{e}");
    let (s, e) = admin
        .post(&docs_path, &json!({"route": "laser", "body": template}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["errors"][0]["field"], "route");
    let (s, e) = admin
        .post(&docs_path, &json!({"route": "iv", "body": template.replace("Off-label use", "Off-label use \u{2192} why")}))
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("cannot be printed"), "{e}");
    let (s, _) = admin
        .post(
            &docs_path,
            &json!({"route": "iv", "body": template, "extra": 1}),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = nurse
        .post(&docs_path, &json!({"route": "iv", "body": template}))
        .await;
    assert_eq!(s, 403);
    let body_v = template.replace("Each session is followed", "Every session is followed");
    let (s, v) = admin
        .post(&docs_path, &json!({"route": "iv", "body": body_v}))
        .await;
    assert_eq!(s, 201, "{v}");
    let iv_version = v["version"].as_i64().unwrap();
    let (s, _) = admin
        .post(&docs_path, &json!({"route": "iv", "body": body_v}))
        .await;
    assert_eq!(s, 409, "the same text again is not a new version");
    let (_, docs) = nurse.get(&docs_path).await;
    let doc = docs["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["route"] == "iv" && d["version"] == iv_version)
        .unwrap()
        .clone();

    // Assessment: incomplete parts are refused by field; complete ones stored.
    let (s, e) = nurse
        .post(
            &format!("{base}/assessment/patient"),
            &json!({"screen": {}}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("screen.ketamine_cystitis"), "{e}");
    let (s, e) = nurse
        .post(&format!("{base}/assessment/vibes"), &json!({}))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = desk
        .post(&format!("{base}/assessment/patient"), &patient_part())
        .await;
    assert_eq!(s, 403);
    let (s, r) = nurse
        .post(&format!("{base}/assessment/patient"), &patient_part())
        .await;
    assert_eq!((s, r["version"].as_i64()), (201, Some(1)), "{r}");
    let mut bad = clinical_part();
    bad["diagnoses"][0]["code"] = json!("GAD");
    bad["baseline"]["weight_kg"] = json!(3.0);
    let (s, e) = prescriber
        .post(&format!("{base}/assessment/clinical"), &bad)
        .await;
    assert_eq!(s, 422);
    let fields: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["diagnoses[0].code", "baseline.weight_kg"]);
    let (s, _) = prescriber
        .post(&format!("{base}/assessment/clinical"), &clinical_part())
        .await;
    assert_eq!(s, 201);
    let (s, a) = nurse.get(&format!("{base}/assessment")).await;
    assert_eq!(s, 200);
    assert_eq!(a["evaluation"]["suggestion"], "eligible", "{a}");
    assert_eq!(a["evaluation"]["treatment_resistant"], true);
    assert_eq!(a["suggested_modality"]["modality"], "emdr");
    assert!(a["baseline_instruments"].to_string().contains("pcl5"));
    let (s, _) = desk.get(&format!("{base}/assessment")).await;
    assert_eq!(s, 403);
    let (s, _) = api(app, "nate.nurse")
        .await
        .get(&format!("{base}/assessment"))
        .await;
    assert_eq!(s, 404);

    // The decision form starts from the assessment: nothing typed twice,
    // and the engine's reading is the one the Assessment tab shows.
    let page = app
        .login("paul.prescriber")
        .await
        .html(&format!("/patients/{pid}/eligibility"))
        .await;
    assert!(page.contains("From the assessment."), "{page}");
    assert!(
        page.contains(">sertraline 150</textarea>"),
        "the medicines: {page}"
    );
    assert!(
        page.contains(">sertraline, 12, adequate\nescitalopram, 8, adequate</textarea>"),
        "the trials: {page}"
    );
    assert!(
        page.contains("value=\"126/80\""),
        "the blood pressure: {page}"
    );
    assert!(
        page.contains("<option value=\"needs_more_information\" selected>"),
        "the decision itself is the prescriber's: {page}"
    );
    let tab = app
        .login("paul.prescriber")
        .await
        .html(&format!("/patients/{pid}/assessment"))
        .await;
    let findings = a["evaluation"]["findings"].as_array().unwrap();
    for f in findings {
        let text = f["explanation"].as_str().unwrap();
        assert!(page.contains(text) && tab.contains(text), "{text}");
    }
    if findings.is_empty() {
        assert!(page.contains("No findings: no exclusion, no interaction."));
    }

    // Eligibility from the assessment's facts; the gate still wants the sign-off.
    let (s, d) = prescriber
        .post(&format!("{base}/eligibility"), &json!({"facts": a["facts"], "decision": "eligible", "rationale": "Two adequate SSRI trials; treatment-resistant GAD, no exclusions."}))
        .await;
    assert_eq!(s, 201, "{d}");
    let (s, e) = prescriber.post(&format!("{base}/plans"), &plan).await;
    assert_eq!(s, 409);
    assert!(e["detail"].as_str().unwrap().contains("sign-off"), "{e}");
    let (s, _) = nurse
        .post(&format!("{base}/eligibility/1/sign-off"), &json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, e) = prescriber.post(&format!("{base}/plans"), &plan).await;
    assert_eq!(s, 409);
    assert!(
        e["detail"].as_str().unwrap().contains("consent missing"),
        "{e}"
    );

    // Signing: the patient's own name, agreement, and the document shown.
    let sign = |name: &str, agree: bool, hash: &str| json!({"route": "iv", "typed_name": name, "agree": agree, "document_hash": hash});
    let hash = doc["sha256"].as_str().unwrap();
    let (s, e) = nurse
        .post(&format!("{base}/consents"), &sign("Iris Q", false, "0ld"))
        .await;
    assert_eq!(s, 422);
    let fields: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["typed_name", "agree", "document_hash"]);
    let (s, _) = desk
        .post(&format!("{base}/consents"), &sign("Iris Quinn", true, hash))
        .await;
    assert_eq!(s, 403);
    assert_eq!(
        counts(app, &pid).await,
        (0, 0),
        "refusals leave nothing behind"
    );
    let (s, c) = nurse
        .post(
            &format!("{base}/consents"),
            &sign("iris  quinn", true, hash),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();

    // The PDF holds exactly the signed text; the hashes match the record.
    let (s, list) = nurse.get(&format!("{base}/consents")).await;
    assert_eq!(s, 200);
    let rec = &list["consents"][0];
    assert_eq!(rec["document_version"], iv_version);
    let (s, bytes) = pdf_bytes(app, &nurse.token, &format!("{base}/consents/{cid}/pdf")).await;
    assert_eq!(s, 200);
    assert!(bytes.starts_with(b"%PDF-"));
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        rec["pdf_sha256"].as_str().unwrap()
    );
    let pdf = lopdf::Document::load_mem(&bytes).unwrap();
    let pages: Vec<u32> = pdf.get_pages().keys().copied().collect();
    assert!(pages.len() >= 2, "the document runs over pages");
    let text = squash(&pdf.extract_text(&pages).unwrap());
    let signed = doc["body"].as_str().unwrap();
    assert!(
        text.contains(&squash(signed)),
        "PDF text differs from the signed document"
    );
    assert_eq!(
        hex::encode(Sha256::digest(signed.as_bytes())),
        rec["document_sha256"].as_str().unwrap()
    );
    assert!(
        text.contains("Signed by typing the name: iris quinn"),
        "{text}"
    );
    assert!(text.contains(rec["document_sha256"].as_str().unwrap()));
    let (s, _) = pdf_bytes(app, &desk.token, &format!("{base}/consents/{cid}/pdf")).await;
    assert_eq!(s, 403);
    let (s, _) = pdf_bytes(app, &nurse.token, &format!("{base}/consents/nope/pdf")).await;
    assert_eq!(s, 404);

    // The plan: checked field by field, then written under the protocol version.
    let (s, e) = prescriber
        .post(&format!("{base}/plans"), &json!({"protocol": "iv-infusion", "course": "induction", "targets": ["cssrs"], "goal": "response", "modality": "emdr", "doses": 99}))
        .await;
    assert_eq!(s, 422, "{e}");
    // The plan form refuses "six" doses by name and comes back as it was
    // sent: the course, the measures, the goal, the notes and the reason.
    let web = app.login("paul.prescriber").await;
    let r = web
        .post_form(
            &format!("/patients/{pid}/plan"),
            &[
                ("protocol", "iv-infusion"),
                ("course", "weekly"),
                ("doses", "six"),
                ("targets", "phq9"),
                ("goal", "remission"),
                ("modality", "ifs"),
                ("notes", "Prefers mornings; drives in from Surprise."),
                ("reason", "Weekly after a strong response to the first two."),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("doses: must be a whole number"), "{html}");
    for kept in [
        "<option value=\"weekly\" selected>",
        "value=\"phq9\" checked",
        "value=\"remission\" checked",
        "value=\"six\"",
        "Prefers mornings; drives in from Surprise.</textarea>",
        "value=\"Weekly after a strong response to the first two.\"",
    ] {
        assert!(html.contains(kept), "the refused plan form keeps {kept:?}");
    }
    assert!(
        !html.contains("value=\"gad7\" checked"),
        "an unticked measure stays unticked"
    );
    let (s, _) = nurse.post(&format!("{base}/plans"), &plan).await;
    assert_eq!(s, 403);
    let (s, r) = prescriber.post(&format!("{base}/plans"), &plan).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        (
            r["version"].as_i64(),
            r["plan"]["protocol_version"].as_i64()
        ),
        (Some(1), Some(2)),
        "the current IV protocol"
    );
    let (s, e) = prescriber.post(&format!("{base}/plans"), &plan).await;
    assert_eq!(s, 422, "a new version needs a reason: {e}");
    let mut p2 = plan.clone();
    p2["reason"] = json!("Partial response after four doses: weekly maintenance");
    p2["course"] = json!("weekly");
    let (s, r) = prescriber.post(&format!("{base}/plans"), &p2).await;
    assert_eq!((s, r["version"].as_i64()), (201, Some(2)), "{r}");
    let (_, st) = nurse.get(&format!("{base}/status")).await;
    assert_eq!(st["banner"], "Ready for treatment: plan in place", "{st}");

    // A new document version makes the signature outdated.
    let body_v2 = body_v.replace(
        "You pay the clinic directly.",
        "You pay the clinic directly, before each session.",
    );
    let (s, _) = admin
        .post(&docs_path, &json!({"route": "iv", "body": body_v2}))
        .await;
    assert_eq!(s, 201);
    let (s, e) = prescriber.post(&format!("{base}/plans"), &p2).await;
    assert_eq!(s, 409);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("signed under version {iv_version}")),
        "{e}"
    );
    let (_, st) = nurse.get(&format!("{base}/status")).await;
    assert!(
        st["banner"]
            .as_str()
            .unwrap()
            .starts_with("Not yet eligible: consent signed under version"),
        "{st}"
    );
    // Signing against the old text is refused; against the new one it holds.
    let (s, e) = nurse
        .post(&format!("{base}/consents"), &sign("Iris Quinn", true, hash))
        .await;
    assert_eq!(s, 422, "{e}");
    let (_, docs) = nurse.get(&docs_path).await;
    let new_hash = docs["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["route"] == "iv" && d["version"] == iv_version + 1)
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, c2) = nurse
        .post(
            &format!("{base}/consents"),
            &sign("Iris Quinn", true, &new_hash),
        )
        .await;
    assert_eq!(s, 201);
    let c2 = c2["id"].as_str().unwrap().to_string();

    // Withdrawal: a reason is needed; afterwards the gate is shut.
    let (s, e) = nurse
        .post(
            &format!("{base}/consents/{c2}/withdraw"),
            &json!({"reason": " "}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, _) = nurse
        .post(
            &format!("{base}/consents/{c2}/withdraw"),
            &json!({"reason": "Patient's wish"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = nurse
        .post(
            &format!("{base}/consents/{c2}/withdraw"),
            &json!({"reason": "again"}),
        )
        .await;
    assert_eq!(s, 409);
    let before = counts(app, &pid).await;
    let mut p3 = p2.clone();
    p3["reason"] = json!("Try again after withdrawal");
    let (s, e) = prescriber.post(&format!("{base}/plans"), &p3).await;
    assert_eq!(s, 409);
    assert!(e["detail"].as_str().unwrap().contains("withdrawn"), "{e}");
    assert_eq!(counts(app, &pid).await, before);

    // A route whose policy asks for a witness: awaiting until a clinician witnesses.
    let nasal = domain::consent::template(domain::protocols::Route::Intranasal)
        + "\nWe ask a clinician to witness your signature.";
    let (s, _) = admin
        .post(
            &docs_path,
            &json!({"route": "intranasal", "body": nasal, "witness_required": true}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, docs) = nurse.get(&docs_path).await;
    let nh = docs["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["route"] == "intranasal")
        .unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, c3) = nurse
        .post(&format!("{base}/consents"), &json!({"route": "intranasal", "typed_name": "Iris Quinn", "agree": true, "document_hash": nh}))
        .await;
    assert_eq!(s, 201);
    let c3 = c3["id"].as_str().unwrap().to_string();
    let nasal_plan = json!({"protocol": "intranasal", "course": "induction", "targets": ["gad7"], "goal": "remission", "modality": "cbt", "reason": "Switch to intranasal after withdrawal of IV consent"});
    let (s, e) = prescriber.post(&format!("{base}/plans"), &nasal_plan).await;
    assert_eq!(s, 409);
    assert!(
        e["detail"].as_str().unwrap().contains("awaits a witness"),
        "{e}"
    );
    let (s, _) = desk
        .post(&format!("{base}/consents/{c3}/witness"), &json!({}))
        .await;
    assert_eq!(s, 403);
    let (s, _) = nurse
        .post(&format!("{base}/consents/{c3}/witness"), &json!({}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = nurse
        .post(&format!("{base}/consents/{c3}/witness"), &json!({}))
        .await;
    assert_eq!(s, 409);
    let (s, r) = prescriber.post(&format!("{base}/plans"), &nasal_plan).await;
    assert_eq!((s, r["version"].as_i64()), (201, Some(3)), "{r}");
    let (_, pl) = nurse.get(&format!("{base}/plans")).await;
    assert_eq!(pl["current"]["route"], "intranasal");
    assert_eq!(pl["plans"].as_array().unwrap().len(), 3);

    // Every step is in the audit trail; refusals too.
    let rows = app
        .store
        .audit_events(&store::audit::AuditFilter {
            patient_id: Some(pid.clone()),
            clinics: vec![app.glendale.to_string()],
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let events: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    for a in [
        "assessment.record",
        "assessment.read",
        "consent.sign",
        "consent.read",
        "consent.withdraw",
        "consent.witness",
        "plan.create",
        "plan.read",
    ] {
        assert!(events.contains(&a), "{a} not audited: {events:?}");
    }
    assert!(rows
        .iter()
        .any(|r| r.action == "plan.create" && r.outcome == "refused"));
}
both!(before_the_first_dose);

/// The patient's part and consent through single-use links, by e-mail.
async fn patient_links(app: &TestApp) {
    let nurse = api(app, "nina.nurse").await;
    let pid = app.patient_ids().await.0;
    let base = format!("/api/v1/patients/{pid}");
    let (s, e) = nurse
        .post(
            &format!("{base}/links"),
            &json!({"purpose": "consent", "route": "laser"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, e) = nurse
        .post(&format!("{base}/links"), &json!({"purpose": "gossip"}))
        .await;
    assert_eq!(s, 422, "{e}");
    let (s, l) = nurse
        .post(&format!("{base}/links"), &json!({"purpose": "assessment"}))
        .await;
    assert_eq!(s, 201, "{l}");
    let token = l["token"].as_str().unwrap();
    assert!(l["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/forms/{token}")));
    // The e-mail job names the link, never a token (its own is made as it
    // is sent, so a copy of the database holds none).
    let jobs = app.store.job_payloads("patient_link").await.unwrap();
    assert!(!jobs.is_empty());
    assert!(jobs
        .iter()
        .all(|j| !j.contains(token) && !j.contains("token")));
    // The form page opens for the patient without signing in.
    let c = reqwest::Client::new();
    let page = c
        .get(app.url(&format!("/forms/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Before your first treatment"), "{html}");
    let bad = c.get(app.url("/forms/not-a-token")).send().await.unwrap();
    assert_eq!(bad.status(), 404);
    // An assessment link does not open the consent page.
    let wrong = c
        .get(app.url(&format!("/consent/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    // An incomplete form is sent back with what is missing; nothing is stored.
    let pid_t: domain::ids::PatientId = pid.parse().unwrap();
    let before = app.store.assessment_parts(pid_t).await.unwrap().len();
    let r = c
        .post(app.url(&format!("/forms/{token}")))
        .form(&[
            ("screen.ketamine_cystitis", "no"),
            ("anxiety.cognitive", "9"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("answer yes, no or not sure"), "{html}");
    assert!(
        html.contains("choose how much the body side weighs"),
        "{html}"
    );
    assert!(
        html.contains("answer yes, no or not sure: Are you allergic to ketamine?"),
        "the patient is told the question in the words they saw: {html}"
    );
    assert_eq!(
        app.store.assessment_parts(pid_t).await.unwrap().len(),
        before
    );
    // A complete one is stored as the patient's part, once.
    let mut f: Vec<(String, String)> = domain::eligibility::Condition::ALL
        .iter()
        .map(|k| {
            (
                format!("screen.{}", domain::assessment::key(*k)),
                "no".to_string(),
            )
        })
        .collect();
    f.extend(
        domain::assessment::HISTORY
            .iter()
            .map(|(k, _)| (format!("history.{k}"), "no".to_string())),
    );
    for (k, v) in [
        ("anxiety.cognitive", "3"),
        ("anxiety.somatic", "1"),
        ("anxiety.behavioural", "2"),
        ("medications", "sertraline 100"),
        ("treatments", "escitalopram, 20 mg, 10, partial"),
        ("escort_name", "Sam"),
    ] {
        f.push((k.into(), v.into()));
    }
    let r = c
        .post(app.url(&format!("/forms/{token}")))
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("your form was received"));
    let parts = app.store.assessment_parts(pid_t).await.unwrap();
    assert_eq!(parts.len(), before + 1);
    assert_eq!(
        (parts[0].part.as_str(), parts[0].source.as_str()),
        ("patient", "link")
    );
    assert!(parts[0].data.contains("escitalopram"));
    let again = c
        .post(app.url(&format!("/forms/{token}")))
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "a link works once");

    // Who may send links: not the front desk; and only for a route with a document.
    let desk = api(app, "dana.frontdesk").await;
    let (s, _) = desk
        .post(&format!("{base}/links"), &json!({"purpose": "assessment"}))
        .await;
    assert_eq!(s, 403);
    let (s, e) = nurse
        .post(
            &format!("{base}/links"),
            &json!({"purpose": "consent", "route": "sc"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("no consent document"), "{e}");
    let (s, _) = nurse
        .post(
            &format!("{base}/links"),
            &json!({"purpose": "assessment", "valid_hours": 0}),
        )
        .await;
    assert_eq!(s, 422);

    // Consent through a link: the patient reads the current document and signs.
    let admin = api(app, "ada.admin").await;
    let (s, _) = admin
        .post(&format!("/api/v1/clinics/{}/consent-documents", app.glendale),
            &json!({"route": "sublingual", "body": domain::consent::template(domain::protocols::Route::Sublingual)}))
        .await;
    assert_eq!(s, 201);
    let (s, l) = nurse
        .post(
            &format!("{base}/links"),
            &json!({"purpose": "consent", "route": "sublingual"}),
        )
        .await;
    assert_eq!(s, 201, "{l}");
    let ct = l["token"].as_str().unwrap().to_string();
    let page = c
        .get(app.url(&format!("/consent/{ct}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Off-label use") && html.contains("(sublingual)"),
        "{html}"
    );
    let hash = html
        .split("name=\"document_hash\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let (_, who) = nurse.get(&base).await;
    let name = format!(
        "{} {}",
        who["given_name"].as_str().unwrap(),
        who["family_name"].as_str().unwrap()
    );
    let r = c
        .post(app.url(&format!("/consent/{ct}")))
        .form(&[
            ("typed_name", "Someone Else"),
            ("agree", "yes"),
            ("document_hash", hash.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("full name as registered"));
    let r = c
        .post(app.url(&format!("/consent/{ct}")))
        .form(&[
            ("typed_name", name.as_str()),
            ("agree", "yes"),
            ("document_hash", hash.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("your consent was received"));
    let (_, list) = nurse.get(&format!("{base}/consents")).await;
    let rec = &list["consents"][0];
    assert_eq!(
        (rec["route"].as_str(), rec["channel"].as_str()),
        (Some("sublingual"), Some("link"))
    );
    assert!(
        list["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["route"] == "sublingual" && r["valid"] == true),
        "{list}"
    );
    let r = c
        .post(app.url(&format!("/consent/{ct}")))
        .form(&[
            ("typed_name", name.as_str()),
            ("agree", "yes"),
            ("document_hash", hash.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "a consent link signs once");

    // The auditor reads consents but cannot sign, withdraw or write a plan; the desk cannot withdraw.
    let auditor = api(app, "audrey.auditor").await;
    let (s, _) = auditor.get(&format!("{base}/consents")).await;
    assert_eq!(s, 200);
    let cid = rec["id"].as_str().unwrap();
    for who in [&auditor, &desk] {
        let (s, _) = who
            .post(
                &format!("{base}/consents/{cid}/withdraw"),
                &json!({"reason": "test"}),
            )
            .await;
        assert_eq!(s, 403);
        let (s, _) = who
            .post(&format!("{base}/consents"), &json!({"route": "sublingual", "typed_name": name, "agree": true, "document_hash": hash}))
            .await;
        assert_eq!(s, 403);
    }
    let (s, _) = auditor
        .post(&format!("{base}/plans"), &json!({"protocol": "sublingual", "course": "weekly", "targets": ["gad7"], "goal": "response", "modality": "cbt"}))
        .await;
    assert_eq!(s, 403);
}
both!(patient_links);

/// An admin adds a protocol version through the API and the admin page:
/// checked like a file (each problem named), shown as changes against the
/// version before, stored, loaded on this instance at once and on another at
/// its next round and after a restart; new plans take it, old ones keep theirs.
async fn protocol_versions_added_by_an_admin(app: &TestApp) {
    let admin = api(app, "ada.admin").await;
    let nurse = api(app, "nina.nurse").await;
    // Another instance, started before the change.
    let other = clinic::Clinic::new(app.store.clone(), clinic::Config::default());
    clinic::protocols::reload(&other).await.unwrap();
    let before = crate::treatment::ready_patient(app, "Orla").await;
    let (_, cur) = admin.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(cur["version"], 2);
    let v2 = domain::protocols::BUILTIN
        .iter()
        .find(|(f, _)| *f == "iv-v2.toml")
        .unwrap()
        .1;
    let v3 = v2
        .replace("version = 2", "version = 3")
        .replace("start = 0.5", "start = 0.4");

    // Checked, with the changes, and nothing stored.
    let (s, r) = admin
        .post("/api/v1/protocols", &json!({"text": v3, "dry_run": true}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["previous_version"], 2);
    assert_eq!(
        r["changes"],
        json!([
            "- version = 2",
            "+ version = 3",
            "- start = 0.5",
            "+ start = 0.4"
        ]),
        "{r}"
    );
    // Each kind of mistake is named by its field.
    for (bad, field) in [
        (v2.replace("start = 0.5", "start = 0.4"), "version"),
        (v3.replace("max = 0.75", "max = 2.0"), "dose.max"),
        (v3.replace("route = \"iv\"", "route = \"im\""), "route"),
        (
            v3.replace(
                "pre_session_instruments = [\"gad7\"]",
                "pre_session_instruments = [\"gad9\"]",
            ),
            "pre_session_instruments[0]",
        ),
        (format!("{v3}\nbolus = true\n"), "bolus"),
        (String::new(), "text"),
    ] {
        let (s, e) = admin.post("/api/v1/protocols", &json!({"text": bad})).await;
        assert_eq!(s, 422, "{field}: {e}");
        assert!(fields(&e).contains(&field.to_string()), "{field}: {e}");
    }
    let (s, _) = nurse.post("/api/v1/protocols", &json!({"text": v3})).await;
    assert_eq!(s, 403, "nurses do not write protocol versions");
    let (_, cur) = admin.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(cur["version"], 2, "nothing stored yet");

    // Case 4 of the safety review: an admin with no clinical role cannot
    // write a version without fasting, escort or second check, with Aldrete
    // 0 or 50 mg rounding: the floors are code, each named.
    let unsafe_v3 = v3
        .replace("\"fasting\", ", "")
        .replace("\"escort\", ", "")
        .replace("escort_required = true", "escort_required = false")
        .replace("second_check = true", "second_check = false")
        .replace("aldrete_min = 9", "aldrete_min = 0")
        .replace("round_mg = 0.1", "round_mg = 50");
    let (s, e) = admin
        .post("/api/v1/protocols", &json!({"text": unsafe_v3}))
        .await;
    assert_eq!(s, 422, "{e}");
    for field in [
        "checklist",
        "discharge.escort_required",
        "preparation.second_check",
        "discharge.aldrete_min",
        "preparation.round_mg",
    ] {
        assert!(fields(&e).contains(&field.to_string()), "{field}: {e}");
    }

    // Saved as a draft: nobody uses it until the medical director approves.
    let (s, p) = admin.post("/api/v1/protocols", &json!({"text": v3})).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(
        (p["version"].as_u64(), p["status"].as_str()),
        (Some(3), Some("draft"))
    );
    let (_, cur) = nurse.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(cur["version"], 2, "a draft is used by nobody");
    let (s, _) = admin.post("/api/v1/protocols", &json!({"text": v3})).await;
    assert_eq!(s, 409, "a version is never stored twice");
    assert_eq!(app.store.count_audit("protocol.create").await.unwrap(), 1);
    let approve = "/api/v1/protocols/iv-infusion/versions/3/approve";
    for who in ["ada.admin", "nina.nurse"] {
        let (s, e) = api(app, who).await.post(approve, &json!({})).await;
        assert_eq!(s, 409, "{who} may not approve: {e}");
    }
    // A prescriber not marked as medical director may not approve either.
    let paul = app
        .store
        .user_id_by_username("paul.prescriber")
        .await
        .unwrap()
        .unwrap();
    app.store
        .set_medical_director(paul, false, crate::helpers::ev())
        .await
        .unwrap();
    let prescriber = api(app, "paul.prescriber").await;
    let (s, e) = prescriber.post(approve, &json!({})).await;
    assert_eq!(s, 409, "{e}");
    assert!(
        e["detail"].as_str().unwrap().contains("medical director"),
        "{e}"
    );
    app.store
        .set_medical_director(paul, true, crate::helpers::ev())
        .await
        .unwrap();
    let (s, p) = prescriber.post(approve, &json!({})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "approved");
    let (s, _) = prescriber.post(approve, &json!({})).await;
    assert_eq!(s, 409, "approved once");
    assert_eq!(app.store.count_audit("protocol.approve").await.unwrap(), 1);
    let (_, cur) = nurse.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(cur["version"], 3);
    assert_eq!(cur["dose"]["start"], 0.4);
    assert_eq!(cur["versions"].as_array().unwrap().len(), 3);
    // The other instance sees it at its next round; a restart loads it too.
    assert_eq!(other.protocols().current("iv-infusion").unwrap().version, 2);
    assert!(clinic::protocols::refresh(&other).await.unwrap());
    assert!(!clinic::protocols::refresh(&other).await.unwrap());
    assert_eq!(other.protocols().current("iv-infusion").unwrap().version, 3);
    let restarted = clinic::Clinic::new(app.store.clone(), clinic::Config::default());
    clinic::protocols::reload(&restarted).await.unwrap();
    assert_eq!(
        restarted
            .protocols()
            .get("iv-infusion", 3)
            .unwrap()
            .dose
            .start,
        0.4
    );
    // Plans made before keep version 2; a new plan takes version 3.
    let (_, plans) = nurse.get(&format!("/api/v1/patients/{before}/plans")).await;
    assert_eq!(plans["current"]["protocol_version"], 2, "{plans}");
    let after = crate::treatment::ready_patient(app, "Pia").await;
    let (_, plans) = nurse.get(&format!("/api/v1/patients/{after}/plans")).await;
    assert_eq!(plans["current"]["protocol_version"], 3, "{plans}");

    // Versions belong to an organisation: another one's approved version 4
    // is used by it alone.
    let other_org = app.store.create_org("Elsewhere Health").await.unwrap();
    let mut settings = app.store.clinic(app.glendale).await.unwrap().settings;
    settings.name = "Elsewhere Tempe".into();
    let elsewhere = app.store.create_clinic(other_org, &settings).await.unwrap();
    let mut their = vec![];
    for (name, role) in [
        ("zed.admin", domain::auth::Role::ClinicAdmin),
        ("zoe.prescriber", domain::auth::Role::Prescriber),
    ] {
        let u = app
            .store
            .create_user(
                &store::auth::NewUser {
                    org_id: other_org,
                    username: name,
                    display_name: name,
                    email: None,
                    password_hash: "x",
                },
                crate::helpers::ev(),
            )
            .await
            .unwrap();
        app.store
            .grant_role(u, elsewhere, role, None, crate::helpers::ev())
            .await
            .unwrap();
        their.push(u);
    }
    app.store
        .set_medical_director(their[1], true, crate::helpers::ev())
        .await
        .unwrap();
    let v4_elsewhere = v3
        .replace("version = 3", "version = 4")
        .replace("start = 0.4", "start = 0.3");
    let (s, e) = api(app, "zed.admin")
        .await
        .post(
            "/api/v1/protocols",
            &json!({"text": v3.replace("start = 0.4", "start = 0.3")}),
        )
        .await;
    assert_eq!(
        (s, fields(&e)),
        (422, vec!["version".to_string()]),
        "numbers are never reused: {e}"
    );
    let (s, p) = api(app, "zed.admin")
        .await
        .post("/api/v1/protocols", &json!({"text": v4_elsewhere}))
        .await;
    assert_eq!(s, 201, "{p}");
    let (s, p) = api(app, "zoe.prescriber")
        .await
        .post(
            "/api/v1/protocols/iv-infusion/versions/4/approve",
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    let (_, theirs) = api(app, "zoe.prescriber")
        .await
        .get("/api/v1/protocols/iv-infusion")
        .await;
    assert_eq!(theirs["version"], 4);
    let (_, ours) = nurse.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(
        ours["version"], 3,
        "another organisation's version is not ours"
    );
    let (s, _) = nurse.get("/api/v1/protocols/iv-infusion?version=4").await;
    assert_eq!(s, 404);
    let later = crate::treatment::ready_patient(app, "Quinn").await;
    let (_, plans) = nurse.get(&format!("/api/v1/patients/{later}/plans")).await;
    assert_eq!(plans["current"]["protocol_version"], 3, "{plans}");

    // The admin page: versions with who wrote and approved them, a check,
    // a draft saved, and the medical director's approval.
    let s = app.login("ada.admin").await;
    let html = s.html("/admin/protocols?protocol=iv-infusion").await;
    assert!(
        html.contains("Version 3")
            && html.contains("written by ada.admin")
            && html.contains("approved by paul.prescriber"),
        "{html}"
    );
    assert!(html.contains("shipped with Stillwater"));
    assert!(
        !html.contains("start = 0.3"),
        "another organisation's version is not shown"
    );
    assert!(
        html.contains("version = 5"),
        "the draft is the next version free"
    );
    let v5 = v3
        .replace("version = 3", "version = 5")
        .replace("interval_minutes = 10", "interval_minutes = 5");
    let r = s
        .post_form(
            "/admin/protocols",
            &[
                ("protocol", "iv-infusion"),
                (
                    "text",
                    &v5.replace("interval_minutes = 5", "interval_minutes = -5"),
                ),
                ("action", "check"),
            ],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(body.contains("interval_minutes"), "{body}");
    let r = s
        .post_form(
            "/admin/protocols",
            &[
                ("protocol", "iv-infusion"),
                ("text", &v5),
                ("action", "check"),
            ],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(body.contains("the changes from version 3"), "{body}");
    assert!(body.contains("+ interval_minutes = 5"), "{body}");
    let r = s
        .post_form(
            "/admin/protocols",
            &[
                ("protocol", "iv-infusion"),
                ("text", &v5),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/admin/protocols?protocol=iv-infusion&done=5"
    );
    let html = s.html("/admin/protocols?protocol=iv-infusion&done=5").await;
    assert!(
        html.contains("saved as a draft") && html.contains("Drafts waiting"),
        "{html}"
    );
    assert!(
        !html.contains("Approve version 5"),
        "the admin cannot approve"
    );
    let (_, cur) = nurse.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(
        cur["monitoring"]["interval_minutes"], 10,
        "a draft changes nothing"
    );
    let md = app.login("paul.prescriber").await;
    let html = md.html("/admin/protocols?protocol=iv-infusion").await;
    assert!(html.contains("Approve version 5"), "{html}");
    let r = md
        .post_form(
            "/admin/protocols",
            &[
                ("protocol", "iv-infusion"),
                ("version", "5"),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, cur) = nurse.get("/api/v1/protocols/iv-infusion").await;
    assert_eq!(cur["monitoring"]["interval_minutes"], 5);
    let nurse_page = app.login("nina.nurse").await;
    assert_eq!(nurse_page.get("/admin/protocols").await.status(), 403);

    // The next version as a form: each setting labelled, the file written
    // from the answers with its notes kept, a bad answer named where it was
    // typed with every other answer kept.
    let html = s.html("/admin/protocols?protocol=iv-infusion").await;
    assert!(
        html.contains(r#"name="field.dose.start""#) && html.contains("Starting dose"),
        "{html}"
    );
    let base = hidden(&html, "text")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    assert!(base.contains("version = 6"), "{base}");
    let form = |min: &'static str, start: &'static str| {
        vec![
            ("protocol", "iv-infusion".to_string()),
            ("mode", "form".into()),
            ("text", base.clone()),
            ("field.dose.min", min.into()),
            ("field.dose.start", start.into()),
            ("field.preparation.second_check", "true".into()),
            ("field.monitoring.continuous_spo2", "true".into()),
            ("field.discharge.escort_required", "true".into()),
            ("action", "check".into()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.post_form("/admin/protocols", &f)
                .await
                .text()
                .await
                .unwrap()
        }
    };
    let body = post(form("a little", "0.45")).await;
    assert!(body.contains("Lowest dose: must be a number"), "{body}");
    assert!(
        body.contains(r#"value="a little""#) && body.contains(r#"value="0.45""#),
        "both answers kept: {body}"
    );
    // Past the highest dose: the protocol's own check, shown at the field.
    let body = post(form("0.1", "0.9")).await;
    assert!(body.contains(r#"id="pf-dose.start" name="field.dose.start" value="0.9" inputmode="decimal" class="num" aria-invalid="true""#), "{body}");
    let body = post(form("0.1", "0.45")).await;
    assert!(
        body.contains("- start = 0.5") && body.contains("+ start = 0.45"),
        "{body}"
    );
    assert!(
        !body.contains("- # "),
        "the file's notes are kept, only the setting changed: {body}"
    );
    let mut save = form("0.1", "0.45");
    save.last_mut().unwrap().1 = "save".into();
    let r = {
        let f: Vec<(&str, &str)> = save.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.post_form("/admin/protocols", &f).await
    };
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/admin/protocols?protocol=iv-infusion&done=6"
    );
}
both!(protocol_versions_added_by_an_admin);

/// Diagnoses come from ICD-10-CM (searched by code or words), with words as
/// the fallback; a refused clinical form keeps every row as typed; the
/// eligibility form says how the rules read each medicine, brand names
/// included, and which names no rule knows.
async fn coded_diagnoses_and_medicines(app: &TestApp) {
    // The lists, to staff only.
    let nurse_api = api(app, "nina.nurse").await;
    let (s, v) = nurse_api
        .get("/api/v1/codes/icd10-cm?q=generalized%20anx")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["codes"][0]["code"], "F41.1", "{v}");
    assert!(v["release"].as_str().unwrap().contains("2026"), "{v}");
    let (s, v) = nurse_api.get("/api/v1/codes/medicines?q=klon").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["medicines"][0]["name"], &v["medicines"][0]["class"]),
        (&json!("clonazepam"), &json!("benzodiazepine"))
    );
    let (s, _) = nurse_api.get("/api/v1/codes/icd10-cm?q=F41&limit=x").await;
    assert_eq!(s, 400, "a bad limit is named");
    let r = reqwest::get(app.url("/api/v1/codes/icd10-cm?q=F41"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let nurse = app.login("nina.nurse").await;
    let opts = nurse.html("/codes/icd10-cm/options?diagnosis=F43.1").await;
    assert!(
        opts.contains(r#"<option value="F43.10 Post-traumatic stress disorder, unspecified">"#),
        "{opts}"
    );

    // Read back as typed, a line at a time.
    let read = nurse
        .html("/codes/medicines/read?medications=Xanax%201%0Aturmeric")
        .await;
    assert!(
        read.contains("alprazolam, benzodiazepine, 1 mg a day = 2.0 mg lorazepam")
            && read.contains("<strong>turmeric</strong>: not a medicine the rules know"),
        "{read}"
    );

    let (s, p) = nurse_api
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": "Cora", "family_name": "Lind", "date_of_birth": "1985-09-14"}))
        .await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let path = format!("/patients/{pid}/assessment/clinical");
    let keys: Vec<String> = domain::eligibility::Condition::ALL
        .iter()
        .map(|c| format!("screen.{}", domain::assessment::key(*c)))
        .collect();
    let mut form: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "absent")).collect();
    form.extend([
        ("diagnosis", "F41 Anxiety"),
        ("diagnosis", "Fear of flying"),
        ("diagnosis", ""),
        ("trials", "sertraline, 12, adequate"),
        ("notes", "Calm, engaged; wants to start soon."),
    ]);
    // A category is not a code: refused by name, every row kept.
    let r = nurse.post_form(&path, &form).await;
    let html = r.text().await.unwrap();
    assert!(html.contains("F41 is not an ICD-10-CM code"), "{html}");
    for kept in [
        r#"value="F41 Anxiety""#,
        r#"value="Fear of flying""#,
        "sertraline, 12, adequate",
        "Calm, engaged; wants to start soon.",
    ] {
        assert!(html.contains(kept), "{kept} came back");
    }
    assert!(app
        .store
        .assessment_parts(pid.parse().unwrap())
        .await
        .unwrap()
        .is_empty());
    // A code alone takes its description; words alone are kept uncoded.
    form[keys.len()] = ("diagnosis", "f41.1");
    let r = nurse.post_form(&path, &form).await;
    assert!(r.status().as_u16() < 400, "{}", r.status());
    let (_, part) = nurse_api
        .get(&format!("/api/v1/patients/{pid}/assessment"))
        .await;
    let dx = &part["clinical"]["data"]["diagnoses"];
    assert_eq!(
        dx,
        &json!([
            {"code": "F41.1", "label": "Generalized anxiety disorder"},
            {"code": "", "label": "Fear of flying"}
        ]),
        "{part}"
    );
    let html = nurse.html(&format!("/patients/{pid}/assessment")).await;
    assert!(
        html.contains("Fear of flying (no ICD-10-CM code)"),
        "{html}"
    );

    // The decision form reads the medicines: a brand name as its medicine
    // with the benzodiazepine load; an unknown name is said to be unchecked.
    let prescriber = app.login("paul.prescriber").await;
    let r = prescriber
        .post_form(
            &format!("/patients/{pid}/eligibility"),
            &[
                ("medications", "Klonopin 2\nashwagandha 300"),
                ("decision", "eligible"),
                ("rationale", ""),
            ],
        )
        .await;
    let html = r.text().await.unwrap();
    assert!(
        html.contains("clonazepam, benzodiazepine, 2 mg a day = 4.0 mg lorazepam"),
        "{html}"
    );
    assert!(
        html.contains("<strong>ashwagandha</strong>: not a medicine the rules know"),
        "{html}"
    );
}
both!(coded_diagnoses_and_medicines);

/// The consent editor shows the document as the patient will read it, and
/// while it cannot be published, every reason why; only who may publish
/// may ask.
async fn consent_documents_are_previewed_beside_the_editor(app: &TestApp) {
    let admin = app.login("ada.admin").await;
    let page = admin
        .html(&format!("/admin/consent?clinic={}&route=iv", app.glendale))
        .await;
    assert!(
        page.contains("Preview: what the patient reads") && page.contains("<h4>"),
        "the current text, previewed: {page}"
    );
    let template = domain::consent::template(domain::protocols::Route::Iv);
    let r = admin
        .post_form("/admin/consent/preview", &[("body", &template)])
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("<h3>") && html.contains("<h4>"), "{html}");
    assert!(!html.contains("Not ready"), "{html}");
    let cut = template.replace("## [cost] Cost and insurance", "## Cost and insurance");
    let html = admin
        .post_form("/admin/consent/preview", &[("body", &cut)])
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Not ready to publish"), "{html}");
    assert!(
        html.to_lowercase().contains("cost"),
        "the missing topic named: {html}"
    );
    // A nurse publishes nothing, and previews nothing.
    let nurse = app.login("nina.nurse").await;
    let r = nurse
        .post_form("/admin/consent/preview", &[("body", &template)])
        .await;
    assert_eq!(r.status(), 403);
}
both!(consent_documents_are_previewed_beside_the_editor);
