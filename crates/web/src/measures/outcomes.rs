//! The outcome report's page (`/outcomes`) and API (`/api/v1/outcomes`):
//! the clinic's results by the shipped definitions, both ways of counting,
//! who is missing, by route, a waterfall of each course's change, and the
//! published figures beside.

use askama::Template;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use domain::ids::ClinicId;
use domain::outcomes::{Cohort, Share};
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{ApiCaller, Caller, Staff};
use crate::error::Error;
use crate::json::{query, ApiResult};
use crate::ui::{render, Layout, PageQuery, PageResult};
use crate::AppState;
use clinic::outcomes as uc;

pub fn page_routes() -> Router<AppState> {
    Router::new().route("/outcomes", get(page))
}

pub fn api_routes() -> Router<AppState> {
    Router::new().route("/outcomes", get(api))
}

#[derive(Deserialize, Default)]
struct Q {
    clinic_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The period and clinic asked for: a year to today (the clinic's date,
/// or the first clinic's when all are counted) by default.
async fn period(
    state: &AppState,
    c: &Caller,
    q: &Q,
) -> Result<(Option<ClinicId>, Date, Date), Error> {
    let bad = |f: &str, m: &str| Error::Invalid(vec![domain::FieldError::new(f, m)]);
    let clinic: Option<ClinicId> = match q
        .clinic_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(
            s.parse()
                .map_err(|_| bad("clinic_id", "is not a clinic's id"))?,
        ),
        None => None,
    };
    let clinics = clinic::settings::clinics(state, c).await?;
    let here = clinics
        .iter()
        .find(|k| Some(k.id) == clinic)
        .or(clinics.first());
    let today = match here {
        Some(k) => k.settings.clock().date(state.now()),
        None => domain::time::to_timestamp(state.now())
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date(),
    };
    let date = |v: &Option<String>, f: &str, dflt: Date| match v.as_deref().map(str::trim) {
        None | Some("") => Ok(dflt),
        Some(s) => s
            .parse::<Date>()
            .map_err(|_| bad(f, "must be a date like 2026-01-31")),
    };
    let to = date(&q.to, "to", today)?;
    let from = date(
        &q.from,
        "from",
        to.saturating_sub(jiff::Span::new().years(1)),
    )?;
    Ok((clinic, from, to))
}

fn share_json(s: &Share) -> Value {
    json!({"n": s.n, "percent_of_started": s.of_started, "percent_of_with_outcome": s.of_with_outcome})
}

fn cohort_json(c: &Cohort) -> Value {
    json!({
        "started": c.started, "no_baseline": c.no_baseline, "with_baseline": c.with_baseline,
        "with_outcome": c.with_outcome, "missing_outcome": c.missing_outcome,
        "baseline": {"mean": c.baseline_mean, "sd": c.baseline_sd},
        "outcome": {"mean": c.outcome_mean, "sd": c.outcome_sd},
        "cohens_d": c.cohens_d,
        "response": share_json(&c.response), "remission": share_json(&c.remission),
        "reliable_improvement": share_json(&c.reliable_improvement),
        "recovery": share_json(&c.recovery), "worsened": share_json(&c.worsened),
    })
}

async fn api(State(state): State<AppState>, ApiCaller(c): ApiCaller, req: Request) -> ApiResult {
    let q: Q = query(&req)?;
    let (clinic, from, to) = period(&state, &c, &q).await?;
    let r = uc::report(&state, &c, clinic, from, to).await?;
    Ok(Json(json!({
        "definitions_version": r.definitions_version,
        "from": r.from.to_string(), "to": r.to.to_string(),
        "clinics": r.clinics,
        "baseline": format!("the last score up to {} days before the first dose, never after it", r.baseline_days),
        "outcome_window_days": [r.window.from_days, r.window.to_days],
        "instruments": r.instruments.iter().map(|i| json!({
            "id": i.id, "name": i.name,
            "definitions": {"response_fall_percent": i.rule.response_fall_percent, "remission_below": i.rule.remission_below,
                "reliable_change": i.rule.reliable_change, "caseness_at_least": i.rule.caseness_at_least, "source": i.rule.source},
            "all": cohort_json(&i.cohort),
            "by_route": i.by_route.iter().map(|(r, c)| json!({"route": r, "cohort": cohort_json(c)})).collect::<Vec<_>>(),
            "by_protocol": i.by_protocol.iter().map(|(p, c)| json!({"protocol": p, "cohort": cohort_json(c)})).collect::<Vec<_>>(),
            "changes": i.changes,
            "published": i.published.iter().map(|p| json!({"source": p.source, "response": p.response,
                "remission": p.remission, "worsened": p.worsened, "cohens_d": p.cohens_d, "differences": p.differences})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// A waterfall: one bar per course, its change from baseline (down is
/// better), smallest first.
struct Waterfall {
    width: i32,
    height: i32,
    zero: i32,
    /// Each bar's width.
    bar: i32,
    /// (x, y, height, improved)
    bars: Vec<(i32, i32, i32, bool)>,
    words: String,
}

fn waterfall(changes: &[i32]) -> Option<Waterfall> {
    if changes.is_empty() {
        return None;
    }
    let (width, height) = (640, 180);
    let top = changes.iter().copied().max().unwrap_or(0).max(1);
    let bottom = changes.iter().copied().min().unwrap_or(0).min(-1);
    let span = f64::from(top - bottom);
    let y = |v: i32| ((f64::from(top - v) / span) * f64::from(height - 20)) as i32 + 10;
    let zero = y(0);
    let w = ((width - 20) / changes.len() as i32).max(1);
    let bars = changes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let x = 10 + i as i32 * w;
            let (y0, y1) = (y(c).min(zero), y(c).max(zero));
            (x, y0, (y1 - y0).max(1), c < 0)
        })
        .collect();
    let better = changes.iter().filter(|c| **c < 0).count();
    Some(Waterfall {
        width,
        height,
        zero,
        bar: (w - 1).max(1),
        bars,
        words: format!(
            "{} courses: {better} fell, {} rose, {} unchanged; from {} to {} points.",
            changes.len(),
            changes.iter().filter(|c| **c > 0).count(),
            changes.iter().filter(|c| **c == 0).count(),
            bottom,
            top
        ),
    })
}

/// A group of a split: (group, started, with an outcome, response both
/// ways, remission both ways).
type SplitRow = (String, usize, usize, String, String);

struct InstrumentView {
    name: String,
    rule: domain::outcomes::InstrumentRule,
    c: Cohort,
    baseline: String,
    outcome: String,
    d: String,
    /// (result, courses, of all who started, of those with an outcome)
    shares: Vec<(&'static str, usize, String, String)>,
    /// The splits, each as (title, rows).
    splits: Vec<(&'static str, Vec<SplitRow>)>,
    waterfall: Option<Waterfall>,
    changes: String,
    /// (source, response, remission, worsened, d, differences), this
    /// clinic's row first.
    published: Vec<(String, String, String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "measures/outcomes.html")]
struct OutcomesPage {
    layout: Layout,
    from: String,
    to: String,
    clinics: String,
    version: u32,
    window: String,
    baseline_days: i64,
    instruments: Vec<InstrumentView>,
}

fn pct(v: f64) -> String {
    format!("{v:.1} %")
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into())
}

fn or_dash(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

fn instrument_view(i: uc::InstrumentReport) -> InstrumentView {
    let c = &i.cohort;
    let both = |s: &Share| format!("{} / {}", pct(s.of_started), pct(s.of_with_outcome));
    let shares = [
        ("Response", &c.response),
        ("Remission", &c.remission),
        ("Reliable improvement", &c.reliable_improvement),
        ("Recovery", &c.recovery),
        ("Worsened", &c.worsened),
    ]
    .into_iter()
    .map(|(l, s)| (l, s.n, pct(s.of_started), pct(s.of_with_outcome)))
    .collect();
    let mut published = vec![];
    if !i.published.is_empty() {
        published.push((
            "This clinic (of those with an outcome)".to_string(),
            pct(c.response.of_with_outcome),
            pct(c.remission.of_with_outcome),
            pct(c.worsened.of_with_outcome),
            or_dash(c.cohens_d, |d| format!("{d:.2}")),
            String::new(),
        ));
    }
    published.extend(i.published.iter().map(|p| {
        (
            p.source.to_string(),
            or_dash(p.response, pct),
            or_dash(p.remission, pct),
            or_dash(p.worsened, pct),
            or_dash(p.cohens_d, |d| format!("{d:.2}")),
            p.differences.to_string(),
        )
    }));
    InstrumentView {
        baseline: format!("{} ({})", num(c.baseline_mean), num(c.baseline_sd)),
        outcome: format!("{} ({})", num(c.outcome_mean), num(c.outcome_sd)),
        d: or_dash(c.cohens_d, |d| format!("{d:.2}")),
        shares,
        splits: [("By route", &i.by_route), ("By protocol", &i.by_protocol)]
            .into_iter()
            .map(|(title, groups)| {
                let rows = groups
                    .iter()
                    .map(|(g, k)| {
                        (
                            g.clone(),
                            k.started,
                            k.with_outcome,
                            both(&k.response),
                            both(&k.remission),
                        )
                    })
                    .collect();
                (title, rows)
            })
            .collect(),
        waterfall: waterfall(&i.changes),
        changes: i
            .changes
            .iter()
            .map(|c| format!("{c:+}"))
            .collect::<Vec<_>>()
            .join(", "),
        name: i.name,
        rule: i.rule,
        c: i.cohort,
        published,
    }
}

async fn view(state: &AppState, c: &Caller, q: Q) -> PageResult {
    let (clinic, from, to) = period(state, c, &q).await?;
    let r = uc::report(state, c, clinic, from, to).await?;
    render(&OutcomesPage {
        layout: Layout::new(c, "Outcomes", "outcomes"),
        from: r.from.to_string(),
        to: r.to.to_string(),
        clinics: r.clinics.join(", "),
        version: r.definitions_version,
        window: format!(
            "{} to {} days after the first dose ({})",
            r.window.from_days, r.window.to_days, r.window.source
        ),
        baseline_days: r.baseline_days,
        instruments: r.instruments.into_iter().map(instrument_view).collect(),
    })
}

async fn page(
    State(state): State<AppState>,
    Staff(c): Staff,
    PageQuery(q): PageQuery<Q>,
) -> PageResult {
    view(&state, &c, q).await
}
