//! Booking a whole course at once: the doses with their spacing rules, and
//! an integration session in the window after each dose.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::search::{
    plan_claims, Blocker, Calendar, Claim, Occupancy, Preferences, Tally, VisitPlan,
};
use super::AppointmentType;
use crate::error::Errors;
use crate::ids::PatientId;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourseKind {
    /// Commonly 6 IV infusions over 2-3 weeks, at least 48 h apart, at most 3 a week.
    Induction,
    /// 3-5 sessions a week for 1-2 weeks.
    Intensive,
    /// Weekly for some months (maintenance).
    Weekly,
    /// Every other week for some months.
    EveryOtherWeek,
}

impl CourseKind {
    pub fn parse(s: &str) -> Result<Self, crate::FieldError> {
        match s {
            "induction" => Ok(CourseKind::Induction),
            "intensive" => Ok(CourseKind::Intensive),
            "weekly" => Ok(CourseKind::Weekly),
            "every_other_week" => Ok(CourseKind::EveryOtherWeek),
            _ => Err(crate::FieldError::new(
                "course",
                "must be induction, intensive, weekly or every_other_week",
            )),
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            CourseKind::Induction => "Induction",
            CourseKind::Intensive => "Intensive",
            CourseKind::Weekly => "Weekly",
            CourseKind::EveryOtherWeek => "Every other week",
        }
    }
}

/// The rules a course's visits must keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseSpec {
    pub kind: CourseKind,
    /// Appointment type code of each dosing visit.
    pub dose_type: String,
    pub doses: u16,
    /// At least this long from one dose's start to the next.
    pub min_gap_hours: u16,
    /// At most this long between doses (weekly courses keep their rhythm).
    pub max_gap_hours: Option<u16>,
    /// At most this many doses in any 7 days.
    pub max_per_week: u8,
    /// First to last dose within this many days.
    pub within_days: u16,
    /// Appointment type code of the integration session after each dose.
    pub integration_type: Option<String>,
    pub integration_min_hours: u16,
    pub integration_max_hours: u16,
}

impl CourseSpec {
    /// A course of the usual shape; `doses` overrides the count, `months` the
    /// length of weekly and every-other-week courses.
    pub fn preset(
        kind: CourseKind,
        dose_type: &str,
        doses: Option<u16>,
        months: Option<u16>,
    ) -> CourseSpec {
        let months = months.unwrap_or(3);
        let (n, min_gap, max_gap, per_week, within) = match kind {
            CourseKind::Induction => (6, 48, None, 3, 21),
            CourseKind::Intensive => (6, 20, None, 5, 14),
            CourseKind::Weekly => {
                let n = (u32::from(months) * 52 / 12).max(1) as u16;
                (n, 6 * 24, Some(8 * 24), 1, (n.saturating_sub(1)) * 8 + 1)
            }
            CourseKind::EveryOtherWeek => {
                let n = (u32::from(months) * 26 / 12).max(1) as u16;
                (n, 13 * 24, Some(15 * 24), 1, (n.saturating_sub(1)) * 15 + 1)
            }
        };
        let n = doses.unwrap_or(n);
        let within = match kind {
            CourseKind::Weekly => n.saturating_sub(1) * 8 + 1,
            CourseKind::EveryOtherWeek => n.saturating_sub(1) * 15 + 1,
            _ => within,
        };
        CourseSpec {
            kind,
            dose_type: dose_type.to_string(),
            doses: n,
            min_gap_hours: min_gap,
            max_gap_hours: max_gap,
            max_per_week: per_week,
            within_days: within,
            integration_type: Some("integration".into()),
            integration_min_hours: 24,
            integration_max_hours: 72,
        }
    }

    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let mut e = Errors::new();
        if !(1..=60).contains(&self.doses) {
            e.add("doses", "a series has 1 to 60 doses");
        }
        if self.within_days == 0 || self.within_days > 366 {
            e.add(
                "within_days",
                "a series may span at most 12 months; book a longer course as several series",
            );
        }
        if self.min_gap_hours > 60 * 24 {
            e.add("min_gap_hours", "at most 60 days");
        }
        if let Some(m) = self.max_gap_hours {
            if m < self.min_gap_hours || m > 90 * 24 {
                e.add(
                    "max_gap_hours",
                    "must be at least the minimum gap and at most 90 days",
                );
            }
        }
        if !(1..=7).contains(&self.max_per_week) {
            e.add("max_per_week", "must be 1 to 7");
        }
        if self.integration_min_hours > self.integration_max_hours
            || self.integration_max_hours > 14 * 24
        {
            e.add(
                "integration_max_hours",
                "the integration window must end after it starts and within 14 days",
            );
        }
        if self.doses > 1 && self.min_gap_hours > 0 {
            let needed = u32::from(self.doses - 1) * u32::from(self.min_gap_hours) / 24;
            if needed > u32::from(self.within_days) {
                e.add(
                    "within_days",
                    format!(
                        "{} doses at least {} h apart need at least {} days",
                        self.doses, self.min_gap_hours, needed
                    ),
                );
            }
        }
        e.into_result()
    }
}

/// One dose of a series and its integration session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesStep {
    pub dose: VisitPlan,
    pub integration: Option<VisitPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesPlan {
    pub steps: Vec<SeriesStep>,
}

impl SeriesPlan {
    pub fn completes_at(&self) -> i64 {
        self.steps
            .iter()
            .map(|s| s.integration.as_ref().map_or(s.dose.end, |i| i.end))
            .max()
            .unwrap_or(0)
    }
}

/// Why a series could not be booked, and what would let it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesBlocked {
    /// How many doses (with their integration sessions) did fit.
    pub placed: usize,
    pub wanted: usize,
    /// What stopped the next dose, most frequent first.
    pub blockers: Vec<Blocker>,
    pub message: String,
    /// A change that would let the series be booked, if one was found.
    pub suggestion: Option<String>,
}

/// Checks the spacing of a series' doses (start, end) and their integration
/// sessions' starts, e.g. after one visit moves. Returns what is broken.
pub fn check_spacing(
    spec: &CourseSpec,
    doses: &[(i64, i64)],
    integrations: &[Option<i64>],
) -> Vec<String> {
    let mut out = vec![];
    let mut d: Vec<(i64, i64)> = doses.to_vec();
    d.sort();
    for w in d.windows(2) {
        let gap = w[1].0 - w[0].0;
        if gap < i64::from(spec.min_gap_hours) * HOUR {
            out.push(format!(
                "two doses are {} h apart; the course needs at least {} h",
                gap / HOUR,
                spec.min_gap_hours
            ));
        }
        if let Some(m) = spec.max_gap_hours {
            if gap > i64::from(m) * HOUR {
                out.push(format!(
                    "two doses are {} h apart; the course allows at most {} h",
                    gap / HOUR,
                    m
                ));
            }
        }
    }
    for (i, x) in d.iter().enumerate() {
        let n = d[i..].iter().take_while(|y| y.0 < x.0 + 7 * DAY).count();
        if n > usize::from(spec.max_per_week) {
            out.push(format!(
                "{n} doses fall within 7 days; the course allows {}",
                spec.max_per_week
            ));
            break;
        }
    }
    if let (Some(f), Some(l)) = (d.first(), d.last()) {
        if l.0 - f.0 > i64::from(spec.within_days) * DAY {
            out.push(format!(
                "the doses span more than {} days",
                spec.within_days
            ));
        }
    }
    for (i, (dose, integ)) in doses.iter().zip(integrations).enumerate() {
        if let Some(s) = integ {
            let lo = dose.1 + i64::from(spec.integration_min_hours) * HOUR;
            let hi = dose.1 + i64::from(spec.integration_max_hours) * HOUR;
            if *s < lo || *s > hi {
                out.push(format!(
                    "integration session {} must start {}-{} h after its dose",
                    i + 1,
                    spec.integration_min_hours,
                    spec.integration_max_hours
                ));
            }
        }
    }
    out
}

struct Search<'a> {
    cal: &'a Calendar,
    dose_ty: &'a AppointmentType,
    integ_ty: Option<&'a AppointmentType>,
    spec: &'a CourseSpec,
    patient: PatientId,
    first_from: i64,
    first_to: i64,
    occ: Occupancy,
    prefs: Preferences,
    integ_prefs: Preferences,
    steps: Vec<(SeriesStep, Vec<Claim>)>,
    budget: u32,
    deepest: usize,
    tally_at_deepest: Tally,
    /// Each date's open window and staff windows, computed once per search.
    days: std::collections::HashMap<Date, super::search::DayCtx>,
}

/// Most placements tried in one search: bounds the cost of a series that
/// does not fit.
const BUDGET: u32 = 20_000;

/// Most alternatives tried for one dose before giving up on it and moving an
/// earlier one; keeps a failing search bounded.
const BRANCH: usize = 6;

impl Search<'_> {
    fn dose_window(&self) -> (i64, i64) {
        match self.steps.last() {
            None => (self.first_from, self.first_to),
            Some((last, _)) => {
                let first = self.steps[0].0.dose.start;
                let lo = last.dose.start + i64::from(self.spec.min_gap_hours) * HOUR;
                let mut hi = first + i64::from(self.spec.within_days) * DAY;
                if let Some(m) = self.spec.max_gap_hours {
                    hi = hi.min(last.dose.start + i64::from(m) * HOUR);
                }
                (lo, hi)
            }
        }
    }

    fn week_ok(&self, t: i64) -> bool {
        let n = self
            .steps
            .iter()
            .filter(|(s, _)| s.dose.start > t - 7 * DAY)
            .count();
        n < usize::from(self.spec.max_per_week)
    }

    fn candidates(
        &mut self,
        lo: i64,
        hi: i64,
        ty: &AppointmentType,
        prefs: &Preferences,
        tally: &mut Tally,
        max: usize,
    ) -> Vec<VisitPlan> {
        let mut out = vec![];
        let tz = &self.cal.tz;
        let local = |m: i64| {
            jiff::Timestamp::from_microsecond(m)
                .map(|t| t.to_zoned(tz.clone()).date())
                .unwrap_or(Date::constant(2000, 1, 1))
        };
        let mut date = local(lo);
        let last = local(hi);
        while date <= last {
            let day = match self.days.get(&date) {
                Some(d) => d.clone(),
                None => {
                    let d = self.cal.day(date);
                    self.days.insert(date, d.clone());
                    d
                }
            };
            if day.open.is_none() {
                tally.add(Blocker::Closed);
            }
            // One candidate per day: alternatives on other days are what
            // helps a series that does not fit.
            for start in self.cal.starts(&day, ty.total_minutes()) {
                if start < lo || start > hi {
                    continue;
                }
                if self.budget == 0 {
                    return out;
                }
                self.budget -= 1;
                if ty.dose && !self.week_ok(start) {
                    tally.add(Blocker::Spacing);
                    continue;
                }
                match self
                    .cal
                    .try_at(&self.occ, &day, ty, self.patient, start, prefs)
                {
                    Ok(p) => {
                        out.push(p);
                        break;
                    }
                    Err(b) => tally.add(b),
                }
            }
            if out.len() >= max {
                break;
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => break,
            }
        }
        out
    }

    fn place(&mut self) -> bool {
        let i = self.steps.len();
        if i == usize::from(self.spec.doses) {
            return true;
        }
        let (lo, hi) = self.dose_window();
        let mut tally = Tally::default();
        if lo > hi {
            tally.add(Blocker::Spacing);
        }
        let prefs = self.prefs.clone();
        let dose_ty = self.dose_ty;
        let doses = if lo <= hi {
            self.candidates(lo, hi, dose_ty, &prefs, &mut tally, BRANCH)
        } else {
            vec![]
        };
        for dose in doses {
            let Some(dc) = plan_claims(&dose, self.patient, &self.cal.rules, &self.occ) else {
                continue;
            };
            dc.iter().for_each(|c| self.occ.add(c));
            let mut claims = dc;
            let integration = match self.integ_ty {
                None => Some(None),
                Some(ity) => {
                    let lo = dose.end + i64::from(self.spec.integration_min_hours) * HOUR;
                    let hi = dose.end + i64::from(self.spec.integration_max_hours) * HOUR;
                    let ip = self.integ_prefs.clone();
                    let mut it = Tally::default();
                    let found = self.candidates(lo, hi, ity, &ip, &mut it, 1);
                    match found.into_iter().next().and_then(|p| {
                        plan_claims(&p, self.patient, &self.cal.rules, &self.occ).map(|c| (p, c))
                    }) {
                        Some((p, c)) => {
                            c.iter().for_each(|x| self.occ.add(x));
                            claims.extend(c);
                            Some(Some(p))
                        }
                        None => {
                            tally.add(Blocker::NoIntegration);
                            tally.merge(&it);
                            None
                        }
                    }
                }
            };
            let Some(integration) = integration else {
                claims.iter().for_each(|c| self.occ.remove(c));
                continue;
            };
            if i == 0 {
                // Same chair and people for the rest where possible.
                self.prefs.resource = dose.resource();
                self.prefs.staff.extend(dose.people());
                if let Some(ip) = &integration {
                    self.integ_prefs.resource = ip.resource();
                    self.integ_prefs.staff.extend(ip.people());
                }
            }
            self.steps.push((SeriesStep { dose, integration }, claims));
            if self.place() {
                return true;
            }
            if let Some((_, c)) = self.steps.pop() {
                c.iter().for_each(|x| self.occ.remove(x));
            }
            if i == 0 {
                self.prefs = prefs.clone();
            }
            if self.budget == 0 {
                break;
            }
        }
        if i >= self.deepest {
            if i > self.deepest {
                self.tally_at_deepest = Tally::default();
            }
            self.deepest = i;
            self.tally_at_deepest.merge(&tally);
        }
        false
    }
}

/// Finds a whole series starting on or after `from` (first dose no later than
/// `first_by`), earliest completion first, same chair and people where possible.
#[allow(clippy::too_many_arguments)]
pub fn find_series(
    cal: &Calendar,
    dose_ty: &AppointmentType,
    integ_ty: Option<&AppointmentType>,
    spec: &CourseSpec,
    patient: PatientId,
    from: Date,
    first_by: Date,
    prefs: &Preferences,
) -> Result<SeriesPlan, SeriesBlocked> {
    let (placed, tally) = match search_once(
        cal, dose_ty, integ_ty, spec, patient, from, first_by, prefs, BUDGET,
    ) {
        Ok(plan) => return Ok(plan),
        Err(e) => e,
    };
    let blockers = tally.main();
    let why: Vec<String> = blockers.iter().take(3).map(|b| b.describe()).collect();
    let message = format!(
        "Only {placed} of {} {} fit: for the next one, {}.",
        spec.doses,
        if integ_ty.is_some() {
            "doses with their integration sessions"
        } else {
            "doses"
        },
        if why.is_empty() {
            "no opening day remains in the window".to_string()
        } else {
            why.join("; ")
        }
    );
    // What would unblock it: try the usual relaxations, cheapest first.
    let mut suggestion = None;
    let mut tries: Vec<(String, CourseSpec, Preferences, Date)> = vec![];
    if *prefs != Preferences::default() {
        tries.push((
            "drop the day, time and staff preferences".into(),
            spec.clone(),
            Preferences::default(),
            first_by,
        ));
    }
    for extra in [7u16, 14] {
        let mut s = spec.clone();
        s.within_days = s.within_days.saturating_add(extra).min(366);
        tries.push((
            format!("allow the doses to spread over {} days", s.within_days),
            s,
            prefs.clone(),
            first_by,
        ));
    }
    if spec.max_per_week < 7 {
        let mut s = spec.clone();
        s.max_per_week += 1;
        tries.push((
            format!("allow {} doses a week", s.max_per_week),
            s,
            prefs.clone(),
            first_by,
        ));
    }
    if integ_ty.is_some() && spec.integration_max_hours < 120 {
        let mut s = spec.clone();
        s.integration_max_hours = 120;
        tries.push((
            "allow integration sessions up to 5 days after each dose".into(),
            s,
            prefs.clone(),
            first_by,
        ));
    }
    if let Ok(later) = first_by.checked_add(jiff::Span::new().days(14)) {
        tries.push((
            format!("let the first dose start as late as {later}"),
            spec.clone(),
            prefs.clone(),
            later,
        ));
    }
    for (label, s, p, by) in tries {
        // A smaller budget per relaxation: a suggestion is only made when a
        // whole series was found, so a cut-short search can only miss one.
        if search_once(
            cal,
            dose_ty,
            integ_ty,
            &s,
            patient,
            from,
            by,
            &p,
            BUDGET / 5,
        )
        .is_ok()
        {
            suggestion = Some(label);
            break;
        }
    }
    Err(SeriesBlocked {
        placed,
        wanted: usize::from(spec.doses),
        blockers,
        message,
        suggestion,
    })
}

#[allow(clippy::too_many_arguments)]
fn search_once(
    cal: &Calendar,
    dose_ty: &AppointmentType,
    integ_ty: Option<&AppointmentType>,
    spec: &CourseSpec,
    patient: PatientId,
    from: Date,
    first_by: Date,
    prefs: &Preferences,
    budget: u32,
) -> Result<SeriesPlan, (usize, Tally)> {
    let first_from = super::search::local_to_micros(&cal.tz, from, 0).unwrap_or(cal.now);
    let first_to = first_by
        .tomorrow()
        .ok()
        .and_then(|d| super::search::local_to_micros(&cal.tz, d, 0))
        .unwrap_or(first_from);
    let mut s = Search {
        cal,
        dose_ty,
        integ_ty,
        spec,
        patient,
        first_from,
        first_to,
        occ: cal.occupancy.clone(),
        prefs: prefs.clone(),
        integ_prefs: Preferences::default(),
        steps: vec![],
        budget,
        deepest: 0,
        tally_at_deepest: Tally::default(),
        days: std::collections::HashMap::new(),
    };
    if s.place() {
        Ok(SeriesPlan {
            steps: s.steps.into_iter().map(|(st, _)| st).collect(),
        })
    } else {
        Err((s.deepest, s.tally_at_deepest))
    }
}
