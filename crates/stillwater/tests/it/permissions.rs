//! Each role against each endpoint. The expectations are written out here by
//! hand, not derived from the permission table, so a change to the table that
//! widens or narrows access makes this test fail.

use serde_json::json;

use crate::both;
use crate::helpers::*;

const ROLES: [&str; 7] = [
    "dana.frontdesk",
    "nina.nurse",
    "paul.prescriber",
    "mona.monitor",
    "theo.therapist",
    "ada.admin",
    "audrey.auditor",
];

/// (endpoint, expected status for each of ROLES in order, then a device token, then no credentials)
fn table() -> Vec<(&'static str, [u16; 9])> {
    vec![
        (
            "GET /api/v1/me",
            [200, 200, 200, 200, 200, 200, 200, 403, 401],
        ),
        (
            "GET /api/v1/patients",
            [200, 200, 200, 200, 200, 200, 200, 403, 401],
        ),
        (
            "POST /api/v1/patients",
            [201, 201, 201, 403, 403, 403, 403, 403, 401],
        ),
        (
            "GET /api/v1/patients/{g}",
            [200, 200, 200, 200, 200, 200, 200, 403, 401],
        ),
        (
            "PATCH /api/v1/patients/{g}",
            [200, 200, 200, 403, 403, 403, 403, 403, 401],
        ),
        (
            "GET /api/v1/patients/{d}",
            [404, 404, 200, 404, 200, 200, 200, 403, 401],
        ),
        (
            "GET /api/v1/audit-events",
            [403, 403, 403, 403, 403, 200, 200, 403, 401],
        ),
        (
            "page /patients",
            [200, 200, 200, 200, 200, 200, 200, 0, 303],
        ),
        (
            "page /patients/new",
            [200, 200, 200, 403, 403, 403, 403, 0, 303],
        ),
        (
            "page /patients/{g}/edit",
            [200, 200, 200, 403, 403, 403, 403, 0, 303],
        ),
        (
            "page /patients/{g}/access",
            [403, 403, 403, 403, 403, 200, 200, 0, 303],
        ),
        ("page /audit", [403, 403, 403, 403, 403, 200, 200, 0, 303]),
        (
            "page /audit/export.csv",
            [403, 403, 403, 403, 403, 200, 200, 0, 303],
        ),
        (
            "page /admin/clinics",
            [403, 403, 403, 403, 403, 200, 403, 0, 303],
        ),
        (
            "page /admin/clinics/{gc}",
            [403, 403, 403, 403, 403, 200, 403, 0, 303],
        ),
        (
            "page /admin/staff",
            [403, 403, 403, 403, 403, 200, 403, 0, 303],
        ),
        (
            "GET /api/v1/appointment-types?clinic_id={gc}",
            [200, 200, 200, 200, 200, 200, 200, 403, 401],
        ),
        (
            "GET /api/v1/resources?clinic_id={gc}",
            [200, 200, 200, 200, 200, 200, 200, 403, 401],
        ),
        (
            "GET /api/v1/appointments?clinic_id={gc}&date=2026-12-01",
            [200, 200, 200, 200, 200, 200, 200, 403, 401],
        ),
        (
            "GET /api/v1/appointments?clinic_id={dc}&date=2026-12-01",
            [403, 403, 200, 403, 200, 200, 200, 403, 401],
        ),
        (
            "page /schedule/{gc}/day",
            [200, 200, 200, 200, 200, 200, 200, 0, 303],
        ),
        (
            "page /patients/{g}/book",
            [200, 200, 200, 403, 200, 200, 403, 0, 303],
        ),
        (
            "page /patients/{g}/series",
            [200, 200, 200, 403, 200, 200, 403, 0, 303],
        ),
    ]
}

async fn every_role_against_every_endpoint(app: &TestApp) {
    let (g, _) = app.patient_ids().await;
    // A Denver patient (the prescriber, therapist, admin and auditor also work in Denver).
    let d = app
        .store
        .search_patients(&[app.denver], "", 1)
        .await
        .unwrap()[0]
        .id
        .to_string();
    let dev = app.device_token(app.glendale, "monitor").await;
    let mut api_creds: Vec<Option<String>> = Vec::new();
    let mut sessions = Vec::new();
    for r in ROLES {
        api_creds.push(Some(app.user_token(r).await));
        sessions.push(Some(app.login(r).await));
    }
    api_creds.push(Some(dev));
    api_creds.push(None);
    let anon = Session {
        client: app.client(),
        csrf: String::new(),
        base: format!("http://{}", app.addr),
    };
    let c = reqwest::Client::new();
    let mut failures = Vec::new();
    for (endpoint, expected) in table() {
        let path = endpoint
            .replace("{g}", &g)
            .replace("{d}", &d)
            .replace("{gc}", &app.glendale.to_string())
            .replace("{dc}", &app.denver.to_string());
        for (i, want) in expected.iter().enumerate() {
            let who = ROLES
                .get(i)
                .copied()
                .unwrap_or(if i == 7 { "device" } else { "anonymous" });
            let got = if let Some(p) = path.strip_prefix("page ") {
                if i == 7 {
                    continue; // devices have no browser session
                }
                let s = if i < 7 {
                    sessions[i].as_ref().unwrap()
                } else {
                    &anon
                };
                s.get(p).await.status().as_u16()
            } else {
                let (method, p) = path.split_once(' ').unwrap();
                let mut req = match method {
                    "GET" => c.get(app.url(p)),
                    "POST" => c.post(app.url(p)).json(&json!({"clinic_id": app.glendale, "given_name": "Perm", "family_name": format!("Test{i}"), "date_of_birth": "1970-01-01"})),
                    "PATCH" => c.patch(app.url(p)).json(&json!({"pronouns": "they/them"})),
                    _ => unreachable!(),
                };
                if let Some(t) = &api_creds[i] {
                    req = req.bearer_auth(t);
                }
                req.send().await.unwrap().status().as_u16()
            };
            if got != *want {
                failures.push(format!("{who} {endpoint}: expected {want}, got {got}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "permission mismatches:\n{}",
        failures.join("\n")
    );
}
both!(every_role_against_every_endpoint);
