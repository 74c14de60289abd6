//! Monitoring readings: what a reading may hold, which values no living
//! patient can have (refused, never stored), the pre-dose limits, and the
//! in-session checks that raise alerts against the protocol's limits and the
//! change from the patient's own baseline.

use serde::{Deserialize, Serialize};

use crate::protocols::{Limits, PreDose};
use crate::FieldError;

/// One set of values taken at one moment. Any subset may be present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    /// Heart rate, beats per minute.
    pub hr: Option<i64>,
    /// Systolic and diastolic blood pressure, mmHg.
    pub sbp: Option<i64>,
    pub dbp: Option<i64>,
    /// Oxygen saturation, %.
    pub spo2: Option<i64>,
    /// Respiratory rate, breaths per minute.
    pub rr: Option<i64>,
    /// Temperature, degrees Celsius.
    pub temp_c: Option<f64>,
    /// Modified Observer's Assessment of Alertness/Sedation, 0-5.
    pub moaas: Option<i64>,
    /// CADSS-6 total, 0-24.
    pub cadss6: Option<i64>,
    /// Nausea and distress, 0 none to 10 worst.
    pub nausea: Option<i64>,
    pub distress: Option<i64>,
}

/// The range of values a reading can possibly hold, per parameter; outside
/// it the value is a device or typing error.
pub const POSSIBLE: [(&str, &str, i64, i64); 9] = [
    ("hr", "bpm", 20, 250),
    ("sbp", "mmHg", 50, 260),
    ("dbp", "mmHg", 20, 160),
    ("spo2", "%", 50, 100),
    ("rr", "breaths/min", 2, 60),
    ("moaas", "", 0, 5),
    ("cadss6", "", 0, 24),
    ("nausea", "", 0, 10),
    ("distress", "", 0, 10),
];

impl Vitals {
    pub fn get(&self, key: &str) -> Option<i64> {
        match key {
            "hr" => self.hr,
            "sbp" => self.sbp,
            "dbp" => self.dbp,
            "spo2" => self.spo2,
            "rr" => self.rr,
            "moaas" => self.moaas,
            "cadss6" => self.cadss6,
            "nausea" => self.nausea,
            "distress" => self.distress,
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        POSSIBLE.iter().all(|p| self.get(p.0).is_none()) && self.temp_c.is_none()
    }

    /// Every impossible value, each naming its parameter; `prefix` is put
    /// before the field names (a batch names the reading).
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut e = Vec::new();
        if self.is_empty() {
            e.push(FieldError::new(
                format!("{prefix}values"),
                "a reading needs at least one value",
            ));
        }
        for (key, unit, lo, hi) in POSSIBLE {
            if let Some(v) = self.get(key) {
                if v < lo || v > hi {
                    e.push(FieldError::new(
                        format!("{prefix}{key}"),
                        format!("{v} is not a possible reading (possible: {lo}-{hi} {unit})")
                            .replace(" )", ")"),
                    ));
                }
            }
        }
        if let Some(t) = self.temp_c {
            if !t.is_finite() || !(30.0..=44.0).contains(&t) {
                e.push(FieldError::new(
                    format!("{prefix}temp_c"),
                    format!("{t} is not a possible reading (possible: 30-44 °C)"),
                ));
            }
        }
        if let (Some(s), Some(d)) = (self.sbp, self.dbp) {
            if s <= d {
                e.push(FieldError::new(
                    format!("{prefix}dbp"),
                    format!("diastolic {d} must be below systolic {s}"),
                ));
            }
        }
        if self.sbp.is_some() != self.dbp.is_some() {
            e.push(FieldError::new(
                format!("{prefix}sbp"),
                "blood pressure needs both systolic and diastolic",
            ));
        }
        e
    }

    /// Fills what `later` lacks from `self` (the last value of each parameter).
    pub fn merged_with(&self, later: &Vitals) -> Vitals {
        Vitals {
            hr: later.hr.or(self.hr),
            sbp: later.sbp.or(self.sbp),
            dbp: later.dbp.or(self.dbp),
            spo2: later.spo2.or(self.spo2),
            rr: later.rr.or(self.rr),
            temp_c: later.temp_c.or(self.temp_c),
            moaas: later.moaas.or(self.moaas),
            cadss6: later.cadss6.or(self.cadss6),
            nausea: later.nausea.or(self.nausea),
            distress: later.distress.or(self.distress),
        }
    }

    /// "BP 128/82 · HR 74 · SpO2 98 % · RR 14", for boards and notes.
    pub fn short(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(s), Some(d)) = (self.sbp, self.dbp) {
            parts.push(format!("BP {s}/{d}"));
        }
        if let Some(v) = self.hr {
            parts.push(format!("HR {v}"));
        }
        if let Some(v) = self.spo2 {
            parts.push(format!("SpO2 {v} %"));
        }
        if let Some(v) = self.rr {
            parts.push(format!("RR {v}"));
        }
        if let Some(v) = self.temp_c {
            parts.push(format!("T {v:.1} °C"));
        }
        if let Some(v) = self.moaas {
            parts.push(format!("MOAA/S {v}"));
        }
        if let Some(v) = self.cadss6 {
            parts.push(format!("CADSS-6 {v}"));
        }
        if let Some(v) = self.nausea {
            parts.push(format!("nausea {v}/10"));
        }
        if let Some(v) = self.distress {
            parts.push(format!("distress {v}/10"));
        }
        parts.join(" · ")
    }
}

/// Why the baseline keeps the dose from starting: each value outside the
/// pre-dose limits or missing.
pub fn pre_dose_problems(p: &PreDose, v: Option<&Vitals>) -> Vec<String> {
    let Some(v) = v else {
        return vec!["no baseline vitals yet".into()];
    };
    let mut out = Vec::new();
    match (v.sbp, v.dbp) {
        (Some(s), Some(d)) => {
            if s >= p.sbp_below as i64 || d >= p.dbp_below as i64 {
                out.push(format!(
                    "BP {s}/{d} is not below {}/{}",
                    p.sbp_below, p.dbp_below
                ));
            }
        }
        _ => out.push("baseline blood pressure missing".into()),
    }
    match v.hr {
        Some(h) if h < p.hr_min as i64 || h > p.hr_max as i64 => {
            out.push(format!("HR {h} is outside {}-{}", p.hr_min, p.hr_max))
        }
        None => out.push("baseline heart rate missing".into()),
        _ => {}
    }
    match v.spo2 {
        Some(s) if s < p.spo2_min as i64 => {
            out.push(format!("SpO2 {s} % is below {} %", p.spo2_min))
        }
        None => out.push("baseline SpO2 missing".into()),
        _ => {}
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Look now: a change from baseline or a symptom to treat.
    Warn,
    /// Outside the limits: pause the dose and respond.
    Pause,
    /// Stop the dose and escalate.
    Stop,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Warn => "Check",
            Severity::Pause => "Pause",
            Severity::Stop => "Stop",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Pause => "pause",
            Severity::Stop => "stop",
        }
    }
}

/// One reason a reading needs a clinician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub parameter: &'static str,
    pub severity: Severity,
    pub message: String,
}

fn f(parameter: &'static str, severity: Severity, message: String) -> Finding {
    Finding {
        parameter,
        severity,
        message,
    }
}

/// Checks a reading against the protocol's in-session limits and the
/// patient's baseline. Each parameter gives at most one finding, the most
/// severe: beyond a stop limit, stop; beyond a pause limit, pause; a rise
/// from the baseline, a check.
pub fn check(l: &Limits, baseline: Option<&Vitals>, r: &Vitals) -> Vec<Finding> {
    use Severity::*;
    let mut out = Vec::new();
    if let Some(s) = r.sbp {
        if s > l.sbp_stop_above as i64 {
            out.push(f(
                "sbp",
                Stop,
                format!("SBP {s} above {}: stop and escalate", l.sbp_stop_above),
            ));
        } else if s > l.sbp_max as i64 {
            out.push(f("sbp", Pause, format!("SBP {s} above {}", l.sbp_max)));
        } else if let Some(b) = baseline.and_then(|b| b.sbp) {
            if s - b >= l.sbp_rise_max as i64 {
                out.push(f(
                    "sbp",
                    Warn,
                    format!("SBP {s} is {} above baseline {b}", s - b),
                ));
            }
        }
    }
    if let Some(d) = r.dbp {
        if d > l.dbp_stop_above as i64 {
            out.push(f(
                "dbp",
                Stop,
                format!("DBP {d} above {}: stop and escalate", l.dbp_stop_above),
            ));
        } else if d > l.dbp_max as i64 {
            out.push(f("dbp", Pause, format!("DBP {d} above {}", l.dbp_max)));
        }
    }
    if let Some(h) = r.hr {
        if h < l.hr_stop_below as i64 || h > l.hr_stop_above as i64 {
            out.push(f(
                "hr",
                Stop,
                format!(
                    "HR {h} outside {}-{}: stop and escalate",
                    l.hr_stop_below, l.hr_stop_above
                ),
            ));
        } else if h > l.hr_max as i64 || h < l.hr_min as i64 {
            out.push(f(
                "hr",
                Pause,
                format!("HR {h} outside {}-{}", l.hr_min, l.hr_max),
            ));
        } else if let Some(b) = baseline.and_then(|b| b.hr) {
            if h - b >= l.hr_rise_max as i64 {
                out.push(f(
                    "hr",
                    Warn,
                    format!("HR {h} is {} above baseline {b}", h - b),
                ));
            }
        }
    }
    if let Some(s) = r.spo2 {
        if s < l.spo2_stop_below as i64 {
            out.push(f(
                "spo2",
                Stop,
                format!(
                    "SpO2 {s} % below {} %: stop, oxygen and escalate",
                    l.spo2_stop_below
                ),
            ));
        } else if s < l.spo2_min as i64 {
            out.push(f(
                "spo2",
                Pause,
                format!("SpO2 {s} % below {} %", l.spo2_min),
            ));
        }
    }
    if let Some(v) = r.rr {
        if v < l.rr_stop_below as i64 || v > l.rr_stop_above as i64 {
            out.push(f(
                "rr",
                Stop,
                format!(
                    "RR {v} outside {}-{}: stop and escalate",
                    l.rr_stop_below, l.rr_stop_above
                ),
            ));
        } else if v < l.rr_min as i64 || v > l.rr_max as i64 {
            out.push(f(
                "rr",
                Pause,
                format!("RR {v} outside {}-{}", l.rr_min, l.rr_max),
            ));
        }
    }
    if let Some(m) = r.moaas {
        if m <= l.moaas_stop_at as i64 {
            out.push(f(
                "moaas",
                Stop,
                format!(
                    "MOAA/S {m}: at or below {}, stop and escalate",
                    l.moaas_stop_at
                ),
            ));
        } else if m <= l.moaas_pause_at as i64 {
            out.push(f(
                "moaas",
                Pause,
                format!("MOAA/S {m}: at or below {}", l.moaas_pause_at),
            ));
        }
    }
    if let Some(c) = r.cadss6 {
        if c >= 16 {
            out.push(f(
                "cadss6",
                Warn,
                format!("CADSS-6 {c}: distressing dissociation"),
            ));
        }
    }
    if let Some(n) = r.nausea {
        if n >= 7 {
            out.push(f("nausea", Warn, format!("Nausea {n}/10")));
        }
    }
    if let Some(d) = r.distress {
        if d >= 7 {
            out.push(f("distress", Warn, format!("Distress {d}/10")));
        }
    }
    out
}

/// A reading taken before the dose: the in-session stop and pause limits as
/// during the dose (a 232/128 at check-in is a stop, not a note), and the
/// pre-dose gate, which is tighter: a value outside it keeps the dose from
/// starting and is an alert too, so that nobody doses past it unseen.
pub fn check_before_dose(pre: &PreDose, l: &Limits, r: &Vitals) -> Vec<Finding> {
    let mut out = check(l, None, r);
    let flagged = |out: &Vec<Finding>, p: &str| out.iter().any(|x| x.parameter == p);
    if let (Some(s), Some(d)) = (r.sbp, r.dbp) {
        if (s >= pre.sbp_below as i64 || d >= pre.dbp_below as i64)
            && !flagged(&out, "sbp")
            && !flagged(&out, "dbp")
        {
            out.push(f(
                "sbp",
                Severity::Pause,
                format!(
                    "BP {s}/{d} is not below the pre-dose limit {}/{}: do not start",
                    pre.sbp_below, pre.dbp_below
                ),
            ));
        }
    }
    if let Some(h) = r.hr {
        if (h < pre.hr_min as i64 || h > pre.hr_max as i64) && !flagged(&out, "hr") {
            out.push(f(
                "hr",
                Severity::Pause,
                format!(
                    "HR {h} is outside the pre-dose range {}-{}: do not start",
                    pre.hr_min, pre.hr_max
                ),
            ));
        }
    }
    if let Some(v) = r.spo2 {
        if v < pre.spo2_min as i64 && !flagged(&out, "spo2") {
            out.push(f(
                "spo2",
                Severity::Pause,
                format!(
                    "SpO2 {v} % is below the pre-dose limit {} %: do not start",
                    pre.spo2_min
                ),
            ));
        }
    }
    // Symptoms before the dose are the nurse's to judge, not alerts.
    out.retain(|x| !matches!(x.parameter, "cadss6" | "nausea" | "distress"));
    out
}

/// Whether a reading taken before the dose is outside the pre-dose gate.
pub fn outside_gate(pre: &PreDose, r: &Vitals) -> bool {
    let bp = match (r.sbp, r.dbp) {
        (Some(s), Some(d)) => s >= pre.sbp_below as i64 || d >= pre.dbp_below as i64,
        _ => false,
    };
    bp || r
        .hr
        .is_some_and(|h| h < pre.hr_min as i64 || h > pre.hr_max as i64)
        || r.spo2.is_some_and(|v| v < pre.spo2_min as i64)
}
