//! The coded lists the assessment picks from: ICD-10-CM diagnoses and the
//! medicines the rules know. The API answers JSON; the pages ask for the
//! `<option>`s of a `<datalist>` as the clinician types. Nothing here is
//! about a patient: staff sign-in is all it asks.

use askama::Template;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use domain::codes::{icd10_release, icd10_search, medicine_search, Icd10, Medicine};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{ApiCaller, Staff};
use crate::json::{query, ApiResult};
use crate::ui::{render, PageQuery, PageResult};
use crate::AppState;

const LIMIT: usize = 20;

#[derive(Deserialize)]
struct Q {
    #[serde(default)]
    q: String,
    /// The page's inputs send their own name: a diagnosis row or the
    /// medicine finder.
    #[serde(default)]
    diagnosis: String,
    #[serde(default)]
    medicine: String,
    /// A whole medicines box, to read back line by line.
    #[serde(default)]
    medications: String,
    limit: Option<usize>,
}

impl Q {
    fn text(&self) -> &str {
        [&self.q, &self.diagnosis, &self.medicine]
            .into_iter()
            .find(|s| !s.trim().is_empty())
            .map(String::as_str)
            .unwrap_or("")
    }
    fn limit(&self) -> usize {
        self.limit.unwrap_or(LIMIT).clamp(1, 100)
    }
}

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/codes/icd10-cm", get(icd10_api))
        .route("/codes/medicines", get(medicines_api))
}

pub fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/codes/icd10-cm/options", get(icd10_options))
        .route("/codes/medicines/options", get(medicine_options))
        .route("/codes/medicines/read", get(medicines_read))
}

async fn icd10_api(State(_): State<AppState>, ApiCaller(_): ApiCaller, req: Request) -> ApiResult {
    let q: Q = query(&req)?;
    let codes = icd10_search(q.text(), q.limit());
    Ok(Json(json!({
        "release": icd10_release(),
        "codes": codes.iter().map(|c| json!({"code": c.code, "description": c.description})).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn medicines_api(
    State(_): State<AppState>,
    ApiCaller(_): ApiCaller,
    req: Request,
) -> ApiResult {
    let q: Q = query(&req)?;
    let found = medicine_search(q.text(), q.limit());
    Ok(Json(json!({
        "medicines": found.iter().map(|m| json!({"name": m.name, "brands": m.brands, "class": m.class})).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// A datalist's options: each value is what the field will hold.
#[derive(Template)]
#[template(
    source = "{% for o in options %}<option value=\"{{ o.0 }}\">{{ o.1 }}</option>{% endfor %}",
    ext = "html"
)]
struct Options {
    options: Vec<(String, String)>,
}

async fn icd10_options(Staff(_): Staff, PageQuery(q): PageQuery<Q>) -> PageResult {
    render(&Options {
        options: icd10_search(q.text(), q.limit())
            .into_iter()
            .map(|c: Icd10| (diagnosis_line(&c), String::new()))
            .collect(),
    })
}

async fn medicine_options(Staff(_): Staff, PageQuery(q): PageQuery<Q>) -> PageResult {
    render(&Options {
        options: medicine_search(q.text(), q.limit())
            .into_iter()
            .map(|m: &Medicine| (m.name.to_string(), medicine_words(m)))
            .collect(),
    })
}

/// How the rules read a medicines box, line by line (the eligibility form
/// asks as it is typed).
#[derive(Template)]
#[template(path = "intake/medicines_read.html")]
pub(crate) struct MedicinesRead {
    pub(crate) lines: Vec<(String, String, bool)>,
}

async fn medicines_read(Staff(_): Staff, PageQuery(q): PageQuery<Q>) -> PageResult {
    render(&MedicinesRead {
        lines: crate::intake::decision::medicines_read(&q.medications),
    })
}

/// A diagnosis as a form row holds it: "F41.1 Generalized anxiety disorder".
pub fn diagnosis_line(c: &Icd10) -> String {
    format!("{} {}", c.code, c.description)
}

/// A medicine in words: "clonazepam (Klonopin): benzodiazepine".
pub fn medicine_words(m: &Medicine) -> String {
    let brands: Vec<String> = m.brands.iter().map(|b| title(b)).collect();
    if brands.is_empty() {
        format!("{}: {}", m.name, m.class)
    } else {
        format!("{} ({}): {}", m.name, brands.join(", "), m.class)
    }
}

fn title(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}
