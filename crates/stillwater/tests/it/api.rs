//! The JSON API: the happy path, and bad input on every endpoint answered with
//! a 4xx problem document that names the problem, with nothing written.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::*;

pub struct Api<'a> {
    pub app: &'a TestApp,
    pub c: reqwest::Client,
    pub token: String,
}

impl Api<'_> {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (u16, Value) {
        let mut r = self
            .c
            .request(method, self.app.url(path))
            .bearer_auth(&self.token);
        if let Some((ct, b)) = body {
            r = r.header("content-type", ct).body(b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        if status >= 400 {
            assert_eq!(ct, "application/problem+json", "{path}: {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, v: &Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            path,
            Some(("application/json", v.to_string().into_bytes())),
        )
        .await
    }
    pub async fn patch(&self, path: &str, v: &Value) -> (u16, Value) {
        self.send(
            reqwest::Method::PATCH,
            path,
            Some(("application/json", v.to_string().into_bytes())),
        )
        .await
    }
}

fn names(problem: &Value, field: &str) -> bool {
    problem["errors"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["field"] == field))
        || problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains(field))
}

async fn patient_crud(app: &TestApp) {
    let api = Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token("nina.nurse").await,
    };
    let (s, me) = api.get("/api/v1/me").await;
    assert_eq!(s, 200);
    assert_eq!(me["username"], "nina.nurse");
    assert_eq!(me["grants"][0]["role"], "nurse");
    let (s, p) = api
        .post("/api/v1/patients", &json!({"clinic_id": app.glendale, "given_name": "Conor", "family_name": "O'Brien; DROP TABLE patients;--", "date_of_birth": "1991-12-01", "email": "CONOR@Example.ORG"}))
        .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["family_name"], "O'Brien; DROP TABLE patients;--");
    assert_eq!(p["email"], "conor@example.org");
    let id = p["id"].as_str().unwrap().to_string();
    let (s, found) = api.get("/api/v1/patients?q=o%27brien%3B").await;
    assert_eq!(s, 200);
    assert_eq!(found["patients"].as_array().unwrap().len(), 1);
    let (s, p2) = api
        .patch(
            &format!("/api/v1/patients/{id}"),
            &json!({"phone": "+1 602 555 0111", "email": null}),
        )
        .await;
    assert_eq!(s, 200, "{p2}");
    assert_eq!(p2["phone"], "+1 602 555 0111");
    assert_eq!(p2["email"], Value::Null);
    assert_eq!(p2["given_name"], "Conor");
    let (s, p3) = api.get(&format!("/api/v1/patients/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(p3, p2);
    // The OpenAPI document describes these paths.
    let doc = app.api_doc().await;
    for path in [
        "/api/v1/me",
        "/api/v1/patients",
        "/api/v1/patients/{id}",
        "/api/v1/audit-events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}
both!(patient_crud);

async fn bad_input_is_refused_and_nothing_written(app: &TestApp) {
    let api = Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token("dana.frontdesk").await,
    };
    let before = app.count_patients().await;
    let audit_before = app.store.count_audit("patient.create").await.unwrap();
    let g = app.glendale.to_string();
    let ok = json!({"clinic_id": g, "given_name": "Ann", "family_name": "Lee", "date_of_birth": "1980-01-01"});
    let with = |k: &str, v: Value| {
        let mut o = ok.clone();
        o[k] = v;
        o
    };
    let without = |k: &str| {
        let mut o = ok.clone();
        o.as_object_mut().unwrap().remove(k);
        o
    };
    // (case, body, expected status, field or phrase the problem must name)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            b"{\"given_name\": ".to_vec(),
            400,
            "malformed JSON",
        ),
        ("not an object", b"[1,2,3]".to_vec(), 400, "JSON object"),
        (
            "wrong type",
            with("given_name", json!(5)).to_string().into_bytes(),
            400,
            "given_name",
        ),
        (
            "wrong type nested",
            with("phone", json!({"a": 1})).to_string().into_bytes(),
            400,
            "phone",
        ),
        (
            "missing field",
            without("family_name").to_string().into_bytes(),
            422,
            "family_name",
        ),
        (
            "missing clinic",
            without("clinic_id").to_string().into_bytes(),
            422,
            "clinic_id",
        ),
        (
            "unknown field",
            with("favourite_colour", json!("teal"))
                .to_string()
                .into_bytes(),
            400,
            "favourite_colour",
        ),
        (
            "overlong string",
            with("given_name", json!("x".repeat(101)))
                .to_string()
                .into_bytes(),
            422,
            "given_name",
        ),
        (
            "impossible date",
            with("date_of_birth", json!("2023-02-30"))
                .to_string()
                .into_bytes(),
            422,
            "date_of_birth",
        ),
        (
            "future date",
            with("date_of_birth", json!("2999-01-01"))
                .to_string()
                .into_bytes(),
            422,
            "date_of_birth",
        ),
        (
            "odd date",
            with("date_of_birth", json!("01/02/1980"))
                .to_string()
                .into_bytes(),
            422,
            "date_of_birth",
        ),
        (
            "odd clinic id",
            with("clinic_id", json!("1 OR 1=1"))
                .to_string()
                .into_bytes(),
            400,
            "clinic_id",
        ),
        (
            "control chars",
            with("family_name", json!("Lee\u{0000}"))
                .to_string()
                .into_bytes(),
            422,
            "family_name",
        ),
        (
            "bad email",
            with("email", json!("a@b")).to_string().into_bytes(),
            422,
            "email",
        ),
        (
            "bad phone",
            with("phone", json!("555")).to_string().into_bytes(),
            422,
            "phone",
        ),
    ];
    for (name, body, status, needle) in cases {
        let (s, p) = api
            .send(
                reqwest::Method::POST,
                "/api/v1/patients",
                Some(("application/json", body)),
            )
            .await;
        assert_eq!(s, status, "{name}: {p}");
        assert!(
            names(&p, needle),
            "{name}: problem should name {needle}: {p}"
        );
        assert!(
            p["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{name}: request id"
        );
    }
    let (s, _) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/patients",
            Some(("text/plain", ok.to_string().into_bytes())),
        )
        .await;
    assert_eq!(s, 415);
    // The server answers 413 and closes the connection without reading the
    // rest of the body; HTTP/1.1 lets the client see that as a reset before
    // it reads the answer. A fresh connection per try keeps the pool clean.
    let huge = with("given_name", json!("y".repeat(200_000))).to_string();
    let mut status = 0;
    for _ in 0..5 {
        let r = reqwest::Client::new()
            .post(app.url("/api/v1/patients"))
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await;
        if let Ok(r) = r {
            status = r.status().as_u16();
            break;
        }
    }
    assert_eq!(status, 413);
    // A clinic where the user holds no role.
    let (s, _) = api
        .post("/api/v1/patients", &with("clinic_id", json!(app.denver)))
        .await;
    assert_eq!(s, 403);
    assert_eq!(app.count_patients().await, before, "nothing written");
    assert_eq!(
        app.store.count_audit("patient.create").await.unwrap(),
        audit_before
    );

    // Reads: odd ids, odd queries, SQL metacharacters.
    for id in [
        "1",
        "..%2F..%2Fetc%2Fpasswd",
        "'%20OR%20'1'='1",
        "0190b5f0c3f07d4c9b1e2a3f4c5d6e7f",
    ] {
        let (s, p) = api.get(&format!("/api/v1/patients/{id}")).await;
        assert_eq!(s, 400, "{id}: {p}");
        assert!(names(&p, "id"), "{p}");
    }
    let (s, _) = api
        .get("/api/v1/patients/0190b5f0-c3f0-7d4c-9b1e-2a3f4c5d6e7f")
        .await;
    assert_eq!(s, 404);
    for q in [
        "%27%20OR%201%3D1%20--",
        "%25",
        "_",
        "%5C",
        "lee%3B%20DROP%20TABLE%20patients",
    ] {
        let (s, r) = api.get(&format!("/api/v1/patients?q={q}")).await;
        assert_eq!(s, 200, "{q}");
        assert_eq!(
            r["patients"].as_array().unwrap().len(),
            0,
            "{q} matched literally"
        );
    }
    for (query, needle) in [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("colour=teal", "colour"),
    ] {
        let (s, p) = api.get(&format!("/api/v1/patients?{query}")).await;
        assert_eq!(s, 400, "{query}");
        assert!(names(&p, needle), "{query}: {p}");
    }
    let (s, p) = api
        .get(&format!("/api/v1/patients?q={}", "a".repeat(201)))
        .await;
    assert_eq!(s, 400);
    assert!(names(&p, "q"));

    // Patches.
    let (gid, _) = app.patient_ids().await;
    let path = format!("/api/v1/patients/{gid}");
    let (_, original) = api.get(&path).await;
    for (name, body, status, needle) in [
        ("empty", json!({}), 400, "no field"),
        (
            "clear required",
            json!({"given_name": null}),
            422,
            "given_name",
        ),
        (
            "wrong type",
            json!({"escort_name": ["a"]}),
            400,
            "escort_name",
        ),
        ("unknown", json!({"mrn": "SW-000000"}), 400, "mrn"),
        (
            "bad date",
            json!({"date_of_birth": "1990-13-01"}),
            422,
            "date_of_birth",
        ),
    ] {
        let (s, p) = api.patch(&path, &body).await;
        assert_eq!(s, status, "{name}: {p}");
        assert!(names(&p, needle), "{name}: {p}");
    }
    let (_, after) = api.get(&path).await;
    assert_eq!(original, after, "failed patches change nothing");

    // Audit API filters (as an auditor).
    let auditor = Api {
        app,
        c: reqwest::Client::new(),
        token: app.user_token("audrey.auditor").await,
    };
    for (query, needle) in [
        ("from=yesterday", "from"),
        ("action=patient.steal", "action"),
        ("limit=5000", "limit"),
        ("patient_id=42", "patient_id"),
        ("sort=asc", "sort"),
    ] {
        let (s, p) = auditor.get(&format!("/api/v1/audit-events?{query}")).await;
        assert!(s == 400 || s == 422, "{query}: {s}");
        assert!(names(&p, needle), "{query}: {p}");
    }
    let (s, _) = api.get("/api/v1/nope").await;
    assert_eq!(s, 404);
}
both!(bad_input_is_refused_and_nothing_written);
