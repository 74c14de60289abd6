//! A clinic's outcomes, counted by published definitions
//! (`outcomes/definitions.toml`): per patient, the baseline before the first
//! dose and the outcome in the window after it; per cohort, how many
//! started, how many have the data, the means and the effect size, and the
//! share responding, in remission, reliably improved, recovered and
//! worsened, each both among all who started (a missing outcome counts as
//! not reached) and among those with an outcome score. Never only the
//! flattering count.

use serde::{Deserialize, Serialize};

use crate::instruments::Point;

const DAY: i64 = 86_400_000_000;

static DEFINITIONS: &str = include_str!("../outcomes/definitions.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    pub version: u32,
    pub baseline: BaselineRule,
    pub window: Window,
    #[serde(rename = "instrument")]
    pub instruments: Vec<InstrumentRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRule {
    pub max_days_before_first_dose: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from_days: i64,
    pub to_days: i64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentRule {
    pub id: String,
    pub response_fall_percent: i32,
    pub remission_below: i32,
    pub reliable_change: i32,
    pub caseness_at_least: i32,
    pub source: String,
}

impl Definitions {
    /// The definitions Stillwater ships (a test reads them).
    pub fn shipped() -> Result<Definitions, String> {
        toml::from_str(DEFINITIONS).map_err(|e| format!("outcomes/definitions.toml: {e}"))
    }

    pub fn rule(&self, instrument: &str) -> Option<&InstrumentRule> {
        self.instruments.iter().find(|r| r.id == instrument)
    }
}

/// One patient's course on one instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PatientOutcome {
    pub baseline: Option<Point>,
    /// The last score in the outcome window.
    pub outcome: Option<Point>,
    pub response: bool,
    pub remission: bool,
    pub reliable_improvement: bool,
    /// At caseness at baseline, under it at the outcome.
    pub recovery: bool,
    /// Up by the reliable change or more.
    pub worsened: bool,
}

impl PatientOutcome {
    /// Change from baseline to outcome (negative is better).
    pub fn change(&self) -> Option<i32> {
        Some(self.outcome?.total - self.baseline?.total)
    }
}

/// The outcome of a course whose first dose was at `first_dose`, from the
/// patient's scores on the instrument (any order).
pub fn patient_outcome(
    points: &[Point],
    first_dose: i64,
    rule: &InstrumentRule,
    d: &Definitions,
) -> PatientOutcome {
    let earliest = first_dose - d.baseline.max_days_before_first_dose * DAY;
    let baseline = points
        .iter()
        .filter(|p| p.at <= first_dose && p.at >= earliest)
        .max_by_key(|p| p.at)
        .copied();
    let (from, to) = (
        first_dose + d.window.from_days * DAY,
        first_dose + d.window.to_days * DAY,
    );
    let outcome = points
        .iter()
        .filter(|p| p.at >= from && p.at <= to)
        .max_by_key(|p| p.at)
        .copied();
    let mut o = PatientOutcome {
        baseline,
        outcome,
        response: false,
        remission: false,
        reliable_improvement: false,
        recovery: false,
        worsened: false,
    };
    if let (Some(b), Some(f)) = (baseline, outcome) {
        // A fall of at least the percentage, in integers: 50 % of 15 needs
        // 7 or less.
        o.response = b.total > 0 && f.total <= b.total * (100 - rule.response_fall_percent) / 100;
        o.remission = f.total < rule.remission_below;
        o.reliable_improvement = b.total - f.total >= rule.reliable_change;
        o.recovery = b.total >= rule.caseness_at_least && f.total < rule.caseness_at_least;
        o.worsened = f.total - b.total >= rule.reliable_change;
    }
    o
}

/// A share counted both ways.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Share {
    pub n: usize,
    /// Of all who started with a baseline (a missing outcome counts as not
    /// reached), in percent.
    pub of_started: f64,
    /// Of those with an outcome score, in percent.
    pub of_with_outcome: f64,
}

/// A cohort's figures on one instrument.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cohort {
    /// Courses that started (a first dose) in the period.
    pub started: usize,
    /// Of them, without a baseline score: not counted below.
    pub no_baseline: usize,
    /// With a baseline: the denominator of "of all who started".
    pub with_baseline: usize,
    /// With a baseline and an outcome score.
    pub with_outcome: usize,
    /// With a baseline but no score in the outcome window.
    pub missing_outcome: usize,
    pub baseline_mean: Option<f64>,
    pub baseline_sd: Option<f64>,
    /// Of those with both scores.
    pub outcome_mean: Option<f64>,
    pub outcome_sd: Option<f64>,
    /// Cohen's d: the fall in the mean over the pooled SD of the two
    /// (those with both scores).
    pub cohens_d: Option<f64>,
    pub response: Share,
    pub remission: Share,
    pub reliable_improvement: Share,
    pub recovery: Share,
    pub worsened: Share,
}

fn mean_sd(xs: &[f64]) -> (Option<f64>, Option<f64>) {
    if xs.is_empty() {
        return (None, None);
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let sd = (xs.len() > 1)
        .then(|| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (Some(m), sd)
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / of as f64).round() / 10.0
    }
}

/// The cohort of these courses' outcomes.
pub fn cohort(outcomes: &[PatientOutcome]) -> Cohort {
    let started = outcomes.len();
    let based: Vec<&PatientOutcome> = outcomes.iter().filter(|o| o.baseline.is_some()).collect();
    let both: Vec<&PatientOutcome> = based
        .iter()
        .copied()
        .filter(|o| o.outcome.is_some())
        .collect();
    let (bm, bsd) = mean_sd(
        &based
            .iter()
            .filter_map(|o| o.baseline.map(|p| f64::from(p.total)))
            .collect::<Vec<_>>(),
    );
    let pre: Vec<f64> = both
        .iter()
        .filter_map(|o| o.baseline.map(|p| f64::from(p.total)))
        .collect();
    let post: Vec<f64> = both
        .iter()
        .filter_map(|o| o.outcome.map(|p| f64::from(p.total)))
        .collect();
    let (pre_m, pre_sd) = mean_sd(&pre);
    let (om, osd) = mean_sd(&post);
    let cohens_d = match (pre_m, pre_sd, om, osd) {
        (Some(a), Some(sa), Some(b), Some(sb)) => {
            let pooled = ((sa * sa + sb * sb) / 2.0).sqrt();
            (pooled > 0.0).then(|| ((a - b) / pooled * 100.0).round() / 100.0)
        }
        _ => None,
    };
    let share = |f: fn(&PatientOutcome) -> bool| {
        let n = both.iter().filter(|o| f(o)).count();
        Share {
            n,
            of_started: pct(n, based.len()),
            of_with_outcome: pct(n, both.len()),
        }
    };
    Cohort {
        started,
        no_baseline: started - based.len(),
        with_baseline: based.len(),
        with_outcome: both.len(),
        missing_outcome: based.len() - both.len(),
        baseline_mean: bm.map(|m| (m * 10.0).round() / 10.0),
        baseline_sd: bsd.map(|m| (m * 10.0).round() / 10.0),
        outcome_mean: om.map(|m| (m * 10.0).round() / 10.0),
        outcome_sd: osd.map(|m| (m * 10.0).round() / 10.0),
        cohens_d,
        response: share(|o| o.response),
        remission: share(|o| o.remission),
        reliable_improvement: share(|o| o.reliable_improvement),
        recovery: share(|o| o.recovery),
        worsened: share(|o| o.worsened),
    }
}

/// The published figures a clinic's are set beside, on the same
/// definitions where the source used them.
pub struct Published {
    pub source: &'static str,
    pub instrument: &'static str,
    pub response: Option<f64>,
    pub remission: Option<f64>,
    pub worsened: Option<f64>,
    pub cohens_d: Option<f64>,
    /// How its definitions differ from ours, in words.
    pub differences: &'static str,
}

/// McInnes 2022 (PHQ-9) and Hietamies 2023 (GAD-7).
pub const PUBLISHED: [Published; 2] = [
    Published {
        source: "McInnes et al., J Affect Disord 2022: 178 US ketamine practices",
        instrument: "phq9",
        response: Some(53.6),
        remission: Some(28.9),
        worsened: Some(8.4),
        cohens_d: None,
        differences: "Counted among patients with an outcome score; worsened was any rise in score, where Stillwater counts a rise of 6 or more.",
    },
    Published {
        source: "Hietamies et al., J Affect Disord 2023: 10 clinics",
        instrument: "gad7",
        response: None,
        remission: None,
        worsened: None,
        cohens_d: Some(1.17),
        differences: "Effect size over the whole course of infusions, where Stillwater takes the outcome 14 to 31 days after the first dose.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    const D0: i64 = 1_000 * DAY;

    fn p(day: i64, total: i32) -> Point {
        Point {
            at: D0 + day * DAY,
            total,
        }
    }

    fn gad7() -> (Definitions, InstrumentRule) {
        let d = Definitions::shipped().unwrap();
        let r = d.rule("gad7").unwrap().clone();
        (d, r)
    }

    #[test]
    fn the_shipped_definitions_read() {
        let d = Definitions::shipped().unwrap();
        assert_eq!(d.version, 1);
        assert_eq!(d.rule("phq9").unwrap().remission_below, 5);
        assert_eq!(d.rule("gad7").unwrap().reliable_change, 4);
        assert!(d.window.source.contains("McInnes"));
    }

    #[test]
    fn a_baseline_is_before_the_first_dose_and_recent() {
        let (d, r) = gad7();
        // The score on the day of the dose, before it, is the baseline; one
        // after the dose never is, however close.
        let o = patient_outcome(
            &[p(-3, 12), p(0, 15), p(0, 14).shifted(1), p(20, 6)],
            D0,
            &r,
            &d,
        );
        assert_eq!(o.baseline.map(|b| b.total), Some(15));
        let after_only = patient_outcome(&[p(1, 15), p(20, 6)], D0, &r, &d);
        assert_eq!(after_only.baseline, None);
        assert!(!after_only.response, "no baseline, no response");
        // Older than 30 days is too old.
        let stale = patient_outcome(&[p(-31, 15), p(20, 6)], D0, &r, &d);
        assert_eq!(stale.baseline, None);
    }

    #[test]
    fn the_outcome_is_the_last_score_in_the_window() {
        let (d, r) = gad7();
        // Day 13 is too early, day 32 too late; of days 14 and 31, the last.
        let o = patient_outcome(
            &[p(0, 16), p(13, 2), p(14, 10), p(31, 8), p(32, 1)],
            D0,
            &r,
            &d,
        );
        assert_eq!(o.outcome.map(|x| x.total), Some(8));
        assert!(o.response, "16 to 8 is half");
        assert!(!o.remission);
        assert!(o.reliable_improvement && !o.worsened);
        assert!(!o.recovery, "8 is still caseness on the GAD-7 (8 or more)");
        // A single score after the baseline, outside the window: no outcome.
        let none = patient_outcome(&[p(0, 16), p(40, 3)], D0, &r, &d);
        assert_eq!(none.outcome, None);
        // Relapse then response again: the last score in the window counts.
        let again = patient_outcome(&[p(0, 18), p(14, 6), p(21, 17), p(28, 4)], D0, &r, &d);
        assert!(again.response && again.remission);
        // Worse by the reliable change.
        let worse = patient_outcome(&[p(0, 9), p(20, 13)], D0, &r, &d);
        assert!(worse.worsened && !worse.response && !worse.recovery);
        // Not at caseness at baseline: no recovery to count.
        let mild = patient_outcome(&[p(0, 7), p(20, 2)], D0, &r, &d);
        assert!(mild.remission && !mild.recovery);
    }

    #[test]
    fn a_cohort_is_counted_both_ways_by_hand() {
        let (d, r) = gad7();
        let o = |pts: &[Point]| patient_outcome(pts, D0, &r, &d);
        let all = [
            o(&[p(0, 16), p(20, 8)]),  // response, not remission
            o(&[p(0, 12), p(20, 4)]),  // response and remission
            o(&[p(0, 10), p(20, 10)]), // unchanged
            o(&[p(0, 14)]),            // no outcome score
            o(&[p(2, 14), p(20, 3)]),  // no baseline: only counted as started
        ];
        let c = cohort(&all);
        assert_eq!(
            (
                c.started,
                c.no_baseline,
                c.with_baseline,
                c.with_outcome,
                c.missing_outcome
            ),
            (5, 1, 4, 3, 1)
        );
        // Response: 2 of 4 who started with a baseline; 2 of 3 with data.
        assert_eq!(c.response.n, 2);
        assert_eq!(
            (c.response.of_started, c.response.of_with_outcome),
            (50.0, 66.7)
        );
        assert_eq!((c.remission.n, c.remission.of_started), (1, 25.0));
        // Baseline mean of the four: (16+12+10+14)/4 = 13.0; outcome mean of
        // the three: (8+4+10)/3 = 7.3.
        assert_eq!(c.baseline_mean, Some(13.0));
        assert_eq!(c.outcome_mean, Some(7.3));
        // d over the three with both: pre 16,12,10 (mean 12.67, SD 3.06),
        // post 8,4,10 (mean 7.33, SD 3.06): 5.33 / 3.06 = 1.75.
        assert_eq!(c.cohens_d, Some(1.75));
        let empty = cohort(&[]);
        assert_eq!(
            (empty.started, empty.response.of_started, empty.cohens_d),
            (0, 0.0, None)
        );
    }

    trait Shift {
        fn shifted(self, micros: i64) -> Self;
    }
    impl Shift for Point {
        fn shifted(self, micros: i64) -> Point {
            Point {
                at: self.at + micros,
                total: self.total,
            }
        }
    }
}
