//! The treatment day as rules: the pre-dose checklist that must be complete
//! before a dose, the dose maths, the administration timeline and the mg it
//! delivered, monitoring readings and their alerts, the responses an alert
//! is closed with, medicines and adverse events, recovery scored with the
//! modified Aldrete, and what discharge needs. No I/O: the store keeps the
//! record and the web layer asks these functions what is allowed.

use serde::{Deserialize, Serialize};

use crate::protocols::{Protocol, CHECKLIST};
use crate::FieldError;

pub mod dosing;
pub mod readings;

#[cfg(test)]
mod tests;

pub use dosing::{order, prepare, DoseMaths, Volume};
pub use readings::{
    check, check_before_dose, outside_gate, pre_dose_problems, Finding, Severity, Vitals,
};

fn invalid(field: &str, m: impl Into<String>) -> FieldError {
    FieldError::new(field, m)
}

fn text_ok(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.trim().is_empty())
}

// ---- Checklist --------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pregnancy {
    NotApplicable,
    NegativeTest,
    NotPregnantByReport,
    Positive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskScreen {
    Negative,
    Positive,
}

/// A prescriber's risk assessment after a positive suicide-risk signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    Low,
    Moderate,
    /// No dose today: the crisis pathway instead.
    High,
}

impl RiskLevel {
    pub fn label(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Moderate => "moderate",
            RiskLevel::High => "high",
        }
    }
}

/// A prescriber's decision to go ahead despite an item (the baseline vitals
/// or a positive suicide-risk screen), with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub reason: String,
    pub by: String,
    pub at: i64,
    /// For the vitals: the reading it answers. It lapses when a later
    /// reading is outside the pre-dose limits.
    #[serde(default)]
    pub reading_id: Option<String>,
    /// For a suicide-risk signal: the prescriber's assessment.
    #[serde(default)]
    pub assessment: Option<RiskLevel>,
}

/// What the nurse records before the dose. Saving merges the fields given
/// into the last state; each save is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checklist {
    pub identity_confirmed: Option<bool>,
    pub weight_kg: Option<f64>,
    /// When the weight was measured (microseconds since the epoch).
    pub weight_measured_at: Option<i64>,
    pub pregnancy: Option<Pregnancy>,
    pub fasting_confirmed: Option<bool>,
    pub escort_name: Option<String>,
    pub escort_phone: Option<String>,
    pub no_alcohol: Option<bool>,
    pub medications_reviewed: Option<bool>,
    /// Medicines started, stopped or changed since the last visit.
    pub medication_changes: Option<String>,
    pub suicide_risk: Option<RiskScreen>,
    pub vitals_override: Option<Override>,
    pub suicide_risk_override: Option<Override>,
}

impl Checklist {
    /// `self` with every field `later` sets replaced.
    pub fn merged_with(&self, later: &Checklist) -> Checklist {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            b.clone().or_else(|| a.clone())
        }
        Checklist {
            identity_confirmed: pick(&self.identity_confirmed, &later.identity_confirmed),
            weight_kg: pick(&self.weight_kg, &later.weight_kg),
            weight_measured_at: if later.weight_kg.is_some() {
                later.weight_measured_at
            } else {
                self.weight_measured_at
            },
            pregnancy: pick(&self.pregnancy, &later.pregnancy),
            fasting_confirmed: pick(&self.fasting_confirmed, &later.fasting_confirmed),
            escort_name: pick(&self.escort_name, &later.escort_name),
            escort_phone: pick(&self.escort_phone, &later.escort_phone),
            no_alcohol: pick(&self.no_alcohol, &later.no_alcohol),
            medications_reviewed: pick(&self.medications_reviewed, &later.medications_reviewed),
            medication_changes: pick(&self.medication_changes, &later.medication_changes),
            suicide_risk: pick(&self.suicide_risk, &later.suicide_risk),
            vitals_override: pick(&self.vitals_override, &later.vitals_override),
            suicide_risk_override: pick(&self.suicide_risk_override, &later.suicide_risk_override),
        }
    }

    /// The checklist keys a nurse or prescriber may withdraw, with the
    /// field each clears.
    pub const WITHDRAWABLE: [&'static str; 13] = [
        "identity_confirmed",
        "weight_kg",
        "pregnancy",
        "fasting_confirmed",
        "escort_name",
        "escort_phone",
        "no_alcohol",
        "medications_reviewed",
        "medication_changes",
        "suicide_risk",
        "vitals_override",
        "suicide_risk_override",
        "escort",
    ];

    /// Clears one item, as if never confirmed ("escort" clears name and phone).
    pub fn withdraw(&mut self, key: &str) -> Result<(), FieldError> {
        match key {
            "identity_confirmed" => self.identity_confirmed = None,
            "weight_kg" => {
                self.weight_kg = None;
                self.weight_measured_at = None;
            }
            "pregnancy" => self.pregnancy = None,
            "fasting_confirmed" => self.fasting_confirmed = None,
            "escort_name" => self.escort_name = None,
            "escort_phone" => self.escort_phone = None,
            "escort" => {
                self.escort_name = None;
                self.escort_phone = None;
            }
            "no_alcohol" => self.no_alcohol = None,
            "medications_reviewed" => self.medications_reviewed = None,
            "medication_changes" => self.medication_changes = None,
            "suicide_risk" => self.suicide_risk = None,
            "vitals_override" => self.vitals_override = None,
            "suicide_risk_override" => self.suicide_risk_override = None,
            other => {
                return Err(invalid(
                    "withdraw",
                    format!(
                        "{other:?} is not a checklist item; one of {}",
                        Self::WITHDRAWABLE.join(", ")
                    ),
                ))
            }
        }
        Ok(())
    }

    /// Problems with the values themselves (not with completeness).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if let Some(w) = self.weight_kg {
            if !w.is_finite() || w < dosing::WEIGHT_KG.0 || w > dosing::WEIGHT_KG.1 {
                e.push(invalid(
                    "weight_kg",
                    format!(
                        "{w} kg is outside {}-{} kg",
                        dosing::WEIGHT_KG.0,
                        dosing::WEIGHT_KG.1
                    ),
                ));
            }
        }
        if let Some(n) = &self.escort_name {
            if let Err(m) = crate::patients::check_person_name(n) {
                e.push(invalid("escort_name", m));
            }
        }
        if let Some(p) = &self.escort_phone {
            if let Err(m) = crate::patients::check_phone(p) {
                e.push(invalid("escort_phone", m));
            }
        }
        for (field, o) in [
            ("vitals_override", &self.vitals_override),
            ("suicide_risk_override", &self.suicide_risk_override),
        ] {
            if o.as_ref().is_some_and(|o| o.reason.trim().len() < 5) {
                e.push(invalid(field, "give the reason in a few words"));
            }
        }
        e
    }
}

/// A sign, found in the record rather than told by the nurse, that the
/// patient may be at risk of suicide today: an open safety task, or a
/// questionnaire answered today that flagged it (PHQ-9 item 9, C-SSRS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskSignal {
    /// What it is, in words ("PHQ-9 item 9 answered 3 today").
    pub what: String,
    /// When it was raised (microseconds).
    pub at: i64,
}

/// What the system knows without the nurse: whether the gate before the
/// first dose is open (eligibility and consent) and the baseline vitals.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Risk signals in the record (open safety tasks, positive screens today).
    pub risk_signals: Vec<RiskSignal>,
    /// The latest reading since check-in outside the pre-dose limits, if
    /// any (its id): the one a vitals override must name.
    pub last_out_of_gate: Option<String>,
    /// `None` when eligibility is approved; otherwise why not.
    pub eligibility: Option<String>,
    /// `None` when a consent of the current version is signed; otherwise why not.
    pub consent: Option<String>,
    pub baseline: Option<Vitals>,
    /// Whether the weight was measured today, in the clinic's calendar.
    pub weight_today: bool,
    /// The protocol's pre-session instruments not answered today (names).
    pub instruments_due: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "why")]
pub enum ItemState {
    Done,
    /// Done by a prescriber's override (the reason is on the checklist).
    Overridden,
    Missing(String),
    /// Cannot be completed today.
    Blocked(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub key: &'static str,
    pub label: &'static str,
    #[serde(flatten)]
    pub state: ItemState,
}

impl Item {
    pub fn done(&self) -> bool {
        matches!(self.state, ItemState::Done | ItemState::Overridden)
    }
}

/// Every item the protocol asks for, in the protocol's order, with its state.
pub fn evaluate(p: &Protocol, c: &Checklist, k: &Known) -> Vec<Item> {
    use ItemState::*;
    let mut out = Vec::new();
    for key in &p.checklist {
        let Some(&(key, label)) = CHECKLIST.iter().find(|x| x.0 == key) else {
            continue;
        };
        let yes = |b: Option<bool>, missing: &str| {
            if b == Some(true) {
                Done
            } else {
                Missing(missing.into())
            }
        };
        let state = match key {
            "identity" => yes(c.identity_confirmed, "confirm name and date of birth"),
            "eligibility" => match &k.eligibility {
                None => Done,
                Some(why) => Blocked(why.clone()),
            },
            "consent" => match &k.consent {
                None => Done,
                Some(why) => Blocked(why.clone()),
            },
            "weight_today" => match c.weight_kg {
                None => Missing("weigh the patient".into()),
                Some(_) if !k.weight_today => {
                    Missing("the weight is not from today: weigh again".into())
                }
                Some(_) => Done,
            },
            "pregnancy" => match c.pregnancy {
                None => Missing("record a test, the patient's report or not applicable".into()),
                Some(Pregnancy::Positive) => Blocked("pregnant: no ketamine".into()),
                Some(_) => Done,
            },
            "vitals" => {
                let problems = pre_dose_problems(&p.pre_dose, k.baseline.as_ref());
                let answers_last = match (&c.vitals_override, &k.last_out_of_gate) {
                    (Some(o), Some(last)) => o.reading_id.as_deref() == Some(last.as_str()),
                    _ => false,
                };
                // An override covers values outside the limits, never missing ones.
                let missing = problems
                    .iter()
                    .any(|p| p.contains("missing") || p.contains("no baseline"));
                if problems.is_empty() {
                    Done
                } else if answers_last && !missing {
                    Overridden
                } else if c.vitals_override.is_some() && !missing {
                    Missing(format!(
                        "{}; the prescriber's override answered an earlier reading and has lapsed",
                        problems.join("; ")
                    ))
                } else {
                    Missing(problems.join("; "))
                }
            }
            "fasting" => yes(
                c.fasting_confirmed,
                &format!(
                    "confirm no solids for {} h",
                    p.pre_dose.fasting_solids_hours
                ),
            ),
            "escort" => {
                if text_ok(&c.escort_name) && text_ok(&c.escort_phone) {
                    Done
                } else {
                    Missing("name and phone of who takes the patient home".into())
                }
            }
            "pre_session_instruments" => {
                if k.instruments_due.is_empty() {
                    Done
                } else {
                    Missing(format!(
                        "the patient answers {} today (the link sent before the visit, or here on the tablet)",
                        k.instruments_due.join(" and ")
                    ))
                }
            }
            "no_alcohol" => yes(c.no_alcohol, "confirm no alcohol in 24 h"),
            "medications" => yes(c.medications_reviewed, "review today's medicines"),
            "suicide_risk" => suicide_risk_state(c, k),
            _ => continue,
        };
        out.push(Item { key, label, state });
    }
    out
}

/// The suicide-risk item: the nurse's screen, and the record's own signals,
/// which the nurse's "negative" cannot clear. A positive screen or a signal
/// needs a prescriber's assessment made after the latest signal; "high"
/// means no dose today.
fn suicide_risk_state(c: &Checklist, k: &Known) -> ItemState {
    use ItemState::*;
    let latest = k.risk_signals.iter().map(|s| s.at).max();
    let positive = c.suicide_risk == Some(RiskScreen::Positive) || latest.is_some();
    if !positive {
        return match c.suicide_risk {
            None => Missing("screen (C-SSRS screener or PHQ-9 item 9)".into()),
            _ => Done,
        };
    }
    let signals = k
        .risk_signals
        .iter()
        .map(|s| s.what.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let why = if signals.is_empty() {
        "positive screen".to_string()
    } else {
        signals
    };
    match &c.suicide_risk_override {
        Some(o) if latest.is_none_or(|l| o.at >= l) => match o.assessment {
            Some(RiskLevel::High) => Blocked(format!(
                "{why}: the prescriber assessed the risk as high; no dose today"
            )),
            Some(_) => Overridden,
            None => Missing(format!(
                "{why}: the prescriber records the risk assessment (low, moderate or high) and a reason"
            )),
        },
        Some(_) => Missing(format!(
            "{why}: raised after the prescriber's assessment; a prescriber assesses again"
        )),
        None => Missing(format!(
            "{why}: a prescriber must assess the risk and record a reason before any dose"
        )),
    }
}

/// Why no dose may be given today under this plan, if so: the protocol's
/// minimum interval since the last dose, or the plan's doses all given.
pub fn course_gate(
    p: &Protocol,
    last_dose_at: Option<i64>,
    doses_given: u32,
    plan_doses: u32,
    now: i64,
) -> Option<String> {
    if plan_doses > 0 && doses_given >= plan_doses {
        return Some(format!(
            "the plan's {plan_doses} doses are all given: the prescriber writes a new plan (or a new version with more doses)"
        ));
    }
    if let Some(last) = last_dose_at {
        let next = last + p.min_hours_between_doses as i64 * 3_600_000_000;
        if now < next {
            let hours = (now - last) / 3_600_000_000;
            return Some(format!(
                "the last dose was {hours} h ago; {} ({} v{}) allows one every {} h at the most",
                p.name, p.id, p.version, p.min_hours_between_doses
            ));
        }
    }
    None
}

/// The items that keep the dose from starting, in words.
pub fn incomplete(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter(|i| !i.done())
        .map(|i| match &i.state {
            ItemState::Missing(w) | ItemState::Blocked(w) => format!("{}: {w}", i.label),
            _ => i.label.to_string(),
        })
        .collect()
}

// ---- Administration ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminKind {
    Start,
    Pause,
    Resume,
    RateChange,
    Stop,
    /// A bolus, spray or troche given at once.
    Given,
}

impl AdminKind {
    pub fn label(self) -> &'static str {
        match self {
            AdminKind::Start => "Started",
            AdminKind::Pause => "Paused",
            AdminKind::Resume => "Resumed",
            AdminKind::RateChange => "Rate changed",
            AdminKind::Stop => "Stopped",
            AdminKind::Given => "Given",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminEvent {
    pub kind: AdminKind,
    pub at: i64,
    /// The pump rate from this event on (start, resume, rate change), mL/h.
    pub rate_ml_h: Option<f64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DoseState {
    NotStarted,
    Running { rate_ml_h: f64 },
    Paused,
    Done,
}

pub fn dose_state(events: &[AdminEvent]) -> DoseState {
    let mut s = DoseState::NotStarted;
    for e in events {
        s = match e.kind {
            AdminKind::Start | AdminKind::Resume | AdminKind::RateChange => DoseState::Running {
                rate_ml_h: e.rate_ml_h.unwrap_or_default(),
            },
            AdminKind::Pause => DoseState::Paused,
            AdminKind::Stop | AdminKind::Given => DoseState::Done,
        };
    }
    s
}

/// Checks the next event against the timeline and the order, and fills the
/// rate a start or resume carries (the ordered rate, or the last one).
pub fn next_event(
    order: &DoseMaths,
    events: &[AdminEvent],
    mut ev: AdminEvent,
) -> Result<AdminEvent, FieldError> {
    use AdminKind::*;
    let infusion = order.is_infusion();
    if order.is_liquid() && order.volume.is_none() {
        return Err(invalid(
            "kind",
            "the dose's volume is not known yet: draw it and have it checked first",
        ));
    }
    let ordered_rate = order.volume.as_ref().and_then(|v| v.rate_ml_h);
    if let Some(last) = events.last() {
        if ev.at < last.at {
            return Err(invalid("at", "is before the last event on the timeline"));
        }
    }
    let needs_reason = matches!(ev.kind, Pause | RateChange)
        || (ev.kind == Stop
            && delivered_mg(order, events, ev.at) < order.mg - (order.mg * 0.01).max(0.5));
    if needs_reason && !text_ok(&ev.reason) {
        return Err(invalid(
            "reason",
            format!("say why ({})", ev.kind.label().to_lowercase()),
        ));
    }
    let state = dose_state(events);
    let last_rate = events.iter().rev().find_map(|e| e.rate_ml_h);
    let ok = match (state, ev.kind) {
        (DoseState::NotStarted, Start) => infusion,
        (DoseState::NotStarted, Given) => !infusion,
        (DoseState::Running { .. }, Pause | RateChange | Stop) => infusion,
        (DoseState::Paused, Resume | Stop) => infusion,
        _ => false,
    };
    if !ok {
        let now = match state {
            DoseState::NotStarted => "not started",
            DoseState::Running { .. } => "running",
            DoseState::Paused => "paused",
            DoseState::Done => "finished",
        };
        let what = if infusion { "infusion" } else { "dose" };
        return Err(invalid(
            "kind",
            format!(
                "cannot record \"{}\": the {what} is {now}",
                ev.kind.label().to_lowercase()
            ),
        ));
    }
    match ev.kind {
        Start | Resume | RateChange => {
            let rate = match ev.kind {
                RateChange => ev.rate_ml_h,
                Resume => ev.rate_ml_h.or(last_rate),
                _ => ev.rate_ml_h.or(ordered_rate),
            }
            .ok_or_else(|| invalid("rate_ml_h", "give the new rate"))?;
            let max = ordered_rate.unwrap_or_default();
            if !rate.is_finite() || rate <= 0.0 || rate > max + 1e-9 {
                return Err(invalid(
                    "rate_ml_h",
                    format!("{rate} mL/h is outside 0-{max} mL/h (the ordered rate)"),
                ));
            }
            ev.rate_ml_h = Some(rate);
        }
        _ => ev.rate_ml_h = None,
    }
    Ok(ev)
}

/// mg delivered up to `now` by the timeline: the volume the pump ran at each
/// rate, at the bag's strength, never more than ordered.
pub fn delivered_mg(order: &DoseMaths, events: &[AdminEvent], now: i64) -> f64 {
    let given_at_once = || {
        if events.iter().any(|e| e.kind == AdminKind::Given) {
            order.mg
        } else {
            0.0
        }
    };
    if !order.is_infusion() {
        return given_at_once();
    }
    let Some(total_ml) = order.volume.as_ref().map(|v| v.total_ml) else {
        return 0.0;
    };
    let mut ml = 0.0;
    let mut running: Option<(f64, i64)> = None;
    for e in events.iter().chain(std::iter::once(&AdminEvent {
        kind: AdminKind::Pause,
        at: now,
        rate_ml_h: None,
        reason: None,
    })) {
        if let Some((rate, since)) = running.take() {
            ml += rate * (e.at.max(since) - since) as f64 / 3_600_000_000.0;
        }
        if matches!(
            e.kind,
            AdminKind::Start | AdminKind::Resume | AdminKind::RateChange
        ) {
            running = Some((e.rate_ml_h.unwrap_or_default(), e.at));
        }
        if e.kind == AdminKind::Stop {
            break;
        }
    }
    let ml = ml.min(total_ml);
    let mg = ml * order.mg / total_ml;
    (mg * 10.0).round() / 10.0
}

/// When the dose ended (stop or given), if it has.
pub fn dose_ended_at(events: &[AdminEvent]) -> Option<i64> {
    events
        .iter()
        .find(|e| matches!(e.kind, AdminKind::Stop | AdminKind::Given))
        .map(|e| e.at)
}

// ---- Alerts -----------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Observe,
    Pause,
    Stop,
    RescueMedication,
    Oxygen,
    Reposition,
    Reassure,
}

impl Response {
    pub const ALL: [Response; 7] = [
        Response::Observe,
        Response::Pause,
        Response::Stop,
        Response::RescueMedication,
        Response::Oxygen,
        Response::Reposition,
        Response::Reassure,
    ];
    pub fn key(self) -> &'static str {
        match self {
            Response::Observe => "observe",
            Response::Pause => "pause",
            Response::Stop => "stop",
            Response::RescueMedication => "rescue_medication",
            Response::Oxygen => "oxygen",
            Response::Reposition => "reposition",
            Response::Reassure => "reassure",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Response::Observe => "Observe and recheck",
            Response::Pause => "Paused the dose",
            Response::Stop => "Stopped (or did not start) the dose",
            Response::RescueMedication => "Rescue medication",
            Response::Oxygen => "Oxygen / airway support",
            Response::Reposition => "Repositioned",
            Response::Reassure => "Reassured, music, eye mask",
        }
    }
    pub fn parse(s: &str) -> Result<Response, FieldError> {
        Response::ALL
            .into_iter()
            .find(|r| r.key() == s)
            .ok_or_else(|| {
                invalid(
                    "response",
                    format!(
                        "{s:?} is not a response; one of {}",
                        Response::ALL.map(|r| r.key()).join(", ")
                    ),
                )
            })
    }
}

/// An alert closes only with the response taken; a stop-level alert only
/// with the dose stopped (or about to be) and never with "observe".
pub fn check_acknowledgement(
    severity: Severity,
    response: Option<&str>,
    note: &str,
) -> Result<Response, FieldError> {
    let r = match response.map(str::trim) {
        None | Some("") => {
            return Err(invalid(
                "response",
                "record the response taken before closing the alert",
            ))
        }
        Some(s) => Response::parse(s)?,
    };
    if severity == Severity::Stop
        && !matches!(
            r,
            Response::Stop | Response::Oxygen | Response::RescueMedication
        )
    {
        return Err(invalid(
            "response",
            "a stop alert needs the dose stopped, oxygen or rescue medication",
        ));
    }
    if note.len() > 2000 {
        return Err(invalid("note", "at most 2000 characters"));
    }
    Ok(r)
}

// ---- Medicines and adverse events -------------------------------------------

/// Medicines a session commonly needs, with the usual dose and route.
pub const RESCUE_MEDICINES: [(&str, &str, &str); 6] = [
    ("ondansetron", "4 mg", "IV or ODT, for nausea"),
    ("midazolam", "1-2 mg", "IV, for severe distress"),
    ("labetalol", "5-10 mg", "IV, for symptomatic hypertension"),
    ("clonidine", "0.1 mg", "oral, for hypertension"),
    ("glycopyrrolate", "0.2 mg", "IV, for hypersalivation"),
    ("oxygen", "2-4 L/min", "nasal cannula"),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicationGiven {
    pub name: String,
    pub dose: String,
    pub route: String,
    pub reason: String,
    /// When given, microseconds; now when absent.
    pub at: Option<i64>,
}

impl MedicationGiven {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        for (f, v, max) in [
            ("name", &self.name, 80),
            ("dose", &self.dose, 40),
            ("route", &self.route, 40),
            ("reason", &self.reason, 500),
        ] {
            if v.trim().is_empty() {
                e.push(invalid(f, "required"));
            } else if v.len() > max {
                e.push(invalid(f, format!("at most {max} characters")));
            }
        }
        if self.name.to_lowercase().contains("ketamine") {
            e.push(invalid(
                "name",
                "ketamine is given through a dose order, not as a medicine",
            ));
        }
        e
    }
}

/// Adverse events the seeds and `DOMAIN.md` name.
pub const ADVERSE_EVENTS: [(&str, &str); 12] = [
    ("nausea_vomiting", "Nausea or vomiting"),
    ("dissociation_distressing", "Distressing dissociation"),
    ("hypertension", "Raised blood pressure"),
    ("tachycardia", "Fast heart rate"),
    ("oversedation", "Over-sedation"),
    ("respiratory_depression", "Slowed breathing or low SpO2"),
    ("anxiety_agitation", "Anxiety or agitation"),
    ("headache", "Headache"),
    ("dizziness", "Dizziness"),
    ("blurred_vision", "Blurred vision"),
    ("urinary_symptoms", "Urinary symptoms"),
    ("other", "Other"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AeSeverity {
    Mild,
    Moderate,
    Severe,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdverseEvent {
    pub kind: String,
    pub severity: AeSeverity,
    /// Death, life-threatening, hospital admission, disability (reportable).
    pub serious: bool,
    pub description: String,
    pub action: String,
    pub outcome: String,
    /// Follow up after the session (urinary symptoms, cognition).
    #[serde(default)]
    pub follow_up: bool,
}

impl AdverseEvent {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if !ADVERSE_EVENTS.iter().any(|a| a.0 == self.kind) {
            e.push(invalid(
                "kind",
                format!(
                    "{:?} is not a listed event; one of {}",
                    self.kind,
                    ADVERSE_EVENTS.map(|a| a.0).join(", ")
                ),
            ));
        }
        if self.kind == "other" && self.description.trim().is_empty() {
            e.push(invalid("description", "describe the event"));
        }
        for (f, v) in [("action", &self.action), ("outcome", &self.outcome)] {
            if v.trim().is_empty() {
                e.push(invalid(f, "required"));
            }
        }
        for (f, v) in [
            ("description", &self.description),
            ("action", &self.action),
            ("outcome", &self.outcome),
        ] {
            if v.len() > 2000 {
                e.push(invalid(f, "at most 2000 characters"));
            }
        }
        e
    }

    pub fn label(&self) -> &'static str {
        ADVERSE_EVENTS
            .iter()
            .find(|a| a.0 == self.kind)
            .map(|a| a.1)
            .unwrap_or("Other")
    }
}

// ---- Recovery and discharge -------------------------------------------------

/// Modified Aldrete: five items scored 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aldrete {
    /// Moves 4 limbs (2), 2 limbs (1), none (0).
    pub activity: u8,
    /// Breathes deeply and coughs (2), dyspnoea or shallow (1), apnoea (0).
    pub respiration: u8,
    /// BP within 20 % of baseline (2), 20-50 % (1), beyond 50 % (0).
    pub circulation: u8,
    /// Fully awake (2), rousable on calling (1), not responding (0).
    pub consciousness: u8,
    /// SpO2 above 92 % on room air (2), needs oxygen (1), below 90 % with oxygen (0).
    pub spo2: u8,
}

pub const ALDRETE_ITEMS: [(&str, &str, [&str; 3]); 5] = [
    (
        "activity",
        "Activity",
        ["No limbs", "Moves 2 limbs", "Moves 4 limbs"],
    ),
    (
        "respiration",
        "Respiration",
        ["Apnoeic", "Shallow or dyspnoea", "Breathes deeply, coughs"],
    ),
    (
        "circulation",
        "Circulation",
        [
            "BP beyond 50 % of baseline",
            "BP within 20-50 %",
            "BP within 20 % of baseline",
        ],
    ),
    (
        "consciousness",
        "Consciousness",
        ["Not responding", "Rousable on calling", "Fully awake"],
    ),
    (
        "spo2",
        "Oxygen saturation",
        [
            "Below 90 % with oxygen",
            "Needs oxygen above 90 %",
            "Above 92 % on room air",
        ],
    ),
];

impl Aldrete {
    pub fn validate(&self) -> Vec<FieldError> {
        [
            ("activity", self.activity),
            ("respiration", self.respiration),
            ("circulation", self.circulation),
            ("consciousness", self.consciousness),
            ("spo2", self.spo2),
        ]
        .into_iter()
        .filter(|(_, v)| *v > 2)
        .map(|(f, v)| invalid(f, format!("{v} is not a score (0, 1 or 2)")))
        .collect()
    }

    pub fn total(&self) -> u32 {
        [
            self.activity,
            self.respiration,
            self.circulation,
            self.consciousness,
            self.spo2,
        ]
        .iter()
        .map(|v| *v as u32)
        .sum()
    }
}

/// What discharge is decided on. `dose_ended_at` is when the dose ended as
/// the record allows it: when the stop was recorded, unless a second person
/// attested a paper record of an earlier time.
#[derive(Debug, Clone, Default)]
pub struct DischargeFacts {
    pub dose_ended_at: Option<i64>,
    pub now: i64,
    pub aldrete: Option<u32>,
    pub escort_named: bool,
    pub open_alerts: usize,
}

/// Why the patient may not leave yet; empty when they may.
pub fn discharge_blockers(p: &Protocol, f: &DischargeFacts) -> Vec<String> {
    let mut out = Vec::new();
    let d = &p.discharge;
    match f.dose_ended_at {
        None => out.push("the dose has not ended".into()),
        Some(end) => {
            let minutes = (f.now - end) / 60_000_000;
            if minutes < d.recovery_minutes_min as i64 {
                out.push(format!(
                    "recovery {minutes} of at least {} minutes",
                    d.recovery_minutes_min
                ));
            }
        }
    }
    match f.aldrete {
        None => out.push(format!(
            "score the modified Aldrete (needs {} or more)",
            d.aldrete_min
        )),
        Some(a) if a < d.aldrete_min => {
            out.push(format!("modified Aldrete {a} is below {}", d.aldrete_min))
        }
        _ => {}
    }
    if d.escort_required && !f.escort_named {
        out.push("no escort named".into());
    }
    if f.open_alerts > 0 {
        out.push(format!("{} open alert(s) to acknowledge", f.open_alerts));
    }
    out
}

/// Where a visit is, for the floor board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreDose,
    Dosing,
    Recovery,
    ReadyForDischarge,
    Discharged,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::PreDose => "Pre-dose",
            Phase::Dosing => "Dosing",
            Phase::Recovery => "Recovery",
            Phase::ReadyForDischarge => "Ready for discharge",
            Phase::Discharged => "Discharged",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Phase::PreDose => "pre_dose",
            Phase::Dosing => "dosing",
            Phase::Recovery => "recovery",
            Phase::ReadyForDischarge => "ready",
            Phase::Discharged => "discharged",
        }
    }
}

pub fn phase(discharged: bool, events: &[AdminEvent], blockers: &[String]) -> Phase {
    if discharged {
        return Phase::Discharged;
    }
    match dose_state(events) {
        DoseState::NotStarted => Phase::PreDose,
        DoseState::Running { .. } | DoseState::Paused => Phase::Dosing,
        DoseState::Done if blockers.is_empty() => Phase::ReadyForDischarge,
        DoseState::Done => Phase::Recovery,
    }
}

/// Instructions every patient leaves with (`DOMAIN.md`).
pub const DISCHARGE_INSTRUCTIONS: [&str; 6] = [
    "Do not drive, cycle or operate machinery until tomorrow after a night's sleep.",
    "No alcohol, cannabis, sleeping tablets or other sedatives for the rest of today.",
    "Rest at home with your escort; eat lightly when you feel ready.",
    "Make no important decisions and sign nothing important today.",
    "Call the clinic if you have pain passing urine, blood in the urine, chest pain, or feel unsafe.",
    "In a crisis call or text 988 (Suicide & Crisis Lifeline) or 911.",
];
