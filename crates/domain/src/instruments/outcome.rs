//! Response, remission and relapse over a patient's totals on one instrument.
//! Baseline is the last score on or before the first dose (or the first score
//! when there is none before it); response is a fall of the instrument's
//! percentage from baseline; remission is a total under its threshold;
//! relapse is a return to the relapse threshold after a response.

use serde::Serialize;

use super::OutcomeRules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Point {
    pub at: i64,
    pub total: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrendStatus {
    /// Fewer than two scores: nothing to compare.
    Baseline,
    Remission,
    Response,
    Relapse,
    NoResponse,
}

impl TrendStatus {
    pub fn label(self) -> &'static str {
        match self {
            TrendStatus::Baseline => "baseline only",
            TrendStatus::Remission => "remission",
            TrendStatus::Response => "response",
            TrendStatus::Relapse => "relapse",
            TrendStatus::NoResponse => "no response yet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    pub baseline: Option<Point>,
    pub latest: Option<Point>,
    /// The total at or under which a score counts as a response.
    pub response_at_most: Option<i32>,
    pub remission_below: Option<i32>,
    /// Change from baseline in percent (negative is better).
    pub change_percent: Option<i32>,
    pub status: TrendStatus,
    /// The status in words, for the chart's caption.
    pub words: String,
}

/// Computes the trend of `points` (any order) given the dose times.
pub fn trend(points: &[Point], doses: &[i64], rules: &OutcomeRules) -> Trend {
    let mut pts = points.to_vec();
    pts.sort_by_key(|p| p.at);
    let first_dose = doses.iter().min().copied();
    let baseline = match first_dose {
        Some(d) => pts.iter().rev().find(|p| p.at <= d).or(pts.first()),
        None => pts.first(),
    }
    .copied();
    let latest = pts.last().copied();
    let response_at_most = baseline.map(|b| {
        // A fall of at least `pct` percent: total <= baseline * (100 - pct) / 100,
        // in integers, rounding down so that 50 % of 15 needs 7, not 8.
        b.total * (100 - rules.response_fall_percent) / 100
    });
    let (Some(b), Some(l)) = (baseline, latest) else {
        return Trend {
            baseline,
            latest,
            response_at_most,
            remission_below: rules.remission_below,
            change_percent: None,
            status: TrendStatus::Baseline,
            words: "No scores yet.".into(),
        };
    };
    let after: Vec<&Point> = pts.iter().filter(|p| p.at > b.at).collect();
    if after.is_empty() {
        return Trend {
            baseline,
            latest,
            response_at_most,
            remission_below: rules.remission_below,
            change_percent: None,
            status: TrendStatus::Baseline,
            words: format!("Baseline {}; no score since.", b.total),
        };
    }
    let change_percent = (b.total > 0).then(|| ((l.total - b.total) * 100) / b.total);
    let responded = |t: i32| b.total > 0 && response_at_most.is_some_and(|r| t <= r);
    let ever_responded = after.iter().any(|p| responded(p.total));
    let status = if rules.remission_below.is_some_and(|r| l.total < r) && b.total > 0 {
        TrendStatus::Remission
    } else if responded(l.total) {
        TrendStatus::Response
    } else if ever_responded && rules.relapse_at_least.is_some_and(|r| l.total >= r) {
        TrendStatus::Relapse
    } else {
        TrendStatus::NoResponse
    };
    let change = match change_percent {
        Some(c) if c < 0 => format!("down {} %", -c),
        Some(c) if c > 0 => format!("up {c} %"),
        _ => "unchanged".into(),
    };
    let words = match status {
        TrendStatus::Remission => format!(
            "Remission: now {} (under {}), from a baseline of {} ({change}).",
            l.total,
            rules.remission_below.unwrap_or(0),
            b.total
        ),
        TrendStatus::Response => format!(
            "Response: now {}, from a baseline of {} ({change}); remission is under {}.",
            l.total,
            b.total,
            rules
                .remission_below
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into())
        ),
        TrendStatus::Relapse => format!(
            "Relapse: now {} after a response (baseline {}); back at {} or more.",
            l.total,
            b.total,
            rules.relapse_at_least.unwrap_or(0)
        ),
        TrendStatus::NoResponse => format!(
            "No response yet: now {}, baseline {} ({change}); response is {} or less.",
            l.total,
            b.total,
            response_at_most.unwrap_or(0)
        ),
        TrendStatus::Baseline => unreachable_words(),
    };
    Trend {
        baseline,
        latest,
        response_at_most,
        remission_below: rules.remission_below,
        change_percent,
        status,
        words,
    }
}

fn unreachable_words() -> String {
    "Baseline only.".into()
}
