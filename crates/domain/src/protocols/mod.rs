//! Treatment protocols as versioned data: one TOML file per protocol names
//! the route, the dose range and starting dose, titration, infusion length,
//! the monitoring interval, pre-dose and in-session alert limits, the
//! checklist that must be complete before a dose, discharge criteria and the
//! course shapes it allows. Files are validated when loaded (every problem
//! names its field) and hashed; records keep the version they were made under.
//! The shipped defaults follow `DOMAIN.md`; every number in them is a clinic
//! policy except the safe maxima below, which no file can exceed.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::scheduling::CourseKind;
use crate::versioned::{Versioned, Versions};
use crate::FieldError;

pub mod form;

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Iv,
    Im,
    Sc,
    Intranasal,
    Sublingual,
    Oral,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::Iv => "IV infusion",
            Route::Im => "IM injection",
            Route::Sc => "SC injection",
            Route::Intranasal => "Intranasal",
            Route::Sublingual => "Sublingual",
            Route::Oral => "Oral",
        }
    }

    /// The visit types (by code) a dose by this route is given in: a visit
    /// checked in without a booking becomes one of these.
    pub fn visit_types(self) -> &'static [&'static str] {
        match self {
            Route::Iv => &["iv_infusion"],
            Route::Im | Route::Sc => &["im_injection"],
            Route::Intranasal => &["intranasal"],
            Route::Sublingual => &["sublingual"],
            Route::Oral => &["oral"],
        }
    }

    /// The dose no protocol may allow for this route, whatever a clinic
    /// writes: above the highest doses studied for psychiatric use in
    /// `DOMAIN.md` (IV 0.75 mg/kg, IM and SC 1 mg/kg, intranasal 100 mg,
    /// sublingual 300 mg, oral 2.5 mg/kg), with a small margin.
    pub fn safe_max(self) -> (DoseUnit, f64) {
        match self {
            Route::Iv => (DoseUnit::MgPerKg, 1.0),
            Route::Im | Route::Sc => (DoseUnit::MgPerKg, 1.0),
            Route::Intranasal => (DoseUnit::Mg, 112.0),
            Route::Sublingual => (DoseUnit::Mg, 300.0),
            Route::Oral => (DoseUnit::MgPerKg, 3.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseUnit {
    MgPerKg,
    Mg,
}

impl DoseUnit {
    pub fn label(self) -> &'static str {
        match self {
            DoseUnit::MgPerKg => "mg/kg",
            DoseUnit::Mg => "mg",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dose {
    pub unit: DoseUnit,
    pub min: f64,
    pub max: f64,
    pub start: f64,
    /// One titration step up or down.
    pub step: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Titration {
    /// When to step up, in words for the prescriber.
    pub up_when: String,
    /// When to step down.
    pub down_when: String,
    /// Doses between changes, at least.
    pub doses_between_changes: u32,
}

/// Blood pressure and heart rate that must hold before a dose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreDose {
    /// Proceed only below these (mmHg); at or above, defer or treat.
    pub sbp_below: u32,
    pub dbp_below: u32,
    pub hr_min: u32,
    pub hr_max: u32,
    pub spo2_min: u32,
    /// Hours of fasting from solids.
    pub fasting_solids_hours: u32,
}

/// In-session limits: a reading outside them pauses the dose and raises an
/// alert; beyond the stop limits the dose is stopped and the alert closes
/// only with the dose stopped, oxygen or rescue medication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub sbp_max: u32,
    pub dbp_max: u32,
    pub hr_min: u32,
    pub hr_max: u32,
    pub spo2_min: u32,
    pub rr_min: u32,
    pub rr_max: u32,
    /// Pause at this MOAA/S or below.
    pub moaas_pause_at: u32,
    /// Stop and escalate at this MOAA/S or below.
    pub moaas_stop_at: u32,
    /// Stop and escalate above these pressures (mmHg).
    pub sbp_stop_above: u32,
    pub dbp_stop_above: u32,
    /// Stop and escalate below or above these heart rates (bpm).
    pub hr_stop_below: u32,
    pub hr_stop_above: u32,
    /// Stop and escalate below this SpO2 (%).
    pub spo2_stop_below: u32,
    /// Stop and escalate below or above these respiratory rates (per minute).
    pub rr_stop_below: u32,
    pub rr_stop_above: u32,
    /// Warn when systolic pressure rises this much (mmHg) above the baseline.
    #[serde(default = "default_sbp_rise")]
    pub sbp_rise_max: u32,
    /// Warn when the heart rate rises this much (bpm) above the baseline.
    #[serde(default = "default_hr_rise")]
    pub hr_rise_max: u32,
}

fn default_sbp_rise() -> u32 {
    40
}

fn default_hr_rise() -> u32 {
    30
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    /// Minutes between blood pressure readings during the dose.
    pub interval_minutes: u32,
    /// Pulse oximetry throughout.
    pub continuous_spo2: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discharge {
    pub aldrete_min: u32,
    pub recovery_minutes_min: u32,
    pub escort_required: bool,
}

/// How the dose is drawn up and given: the strength drawn from the vial,
/// the rounding of the dose in mg, the diluent an infusion is added to, the
/// size of one spray or troche, and whether a second person checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preparation {
    /// Strength of the drug as drawn, mg/mL.
    pub concentration_mg_per_ml: f64,
    /// The dose in mg is rounded to the nearest multiple of this.
    pub round_mg: f64,
    /// Diluent the drug is added to (an infusion bag), mL; 0 when given undiluted.
    #[serde(default)]
    pub diluent_ml: f64,
    /// mg in one spray or troche; such doses are whole numbers of them.
    #[serde(default)]
    pub unit_mg: f64,
    /// A second licensed person checks the maths and the drawn drug.
    pub second_check: bool,
}

/// Checklist items a protocol may require before a dose. Identity,
/// eligibility, consent, vitals and the suicide-risk check are required by
/// every protocol; weight by every protocol dosed per kg; the escort by every
/// protocol whose discharge needs one.
pub const CHECKLIST: [(&str, &str); 12] = [
    ("identity", "Identity confirmed with two identifiers"),
    (
        "pregnancy",
        "Pregnancy status (test, report or not applicable)",
    ),
    ("eligibility", "Approved eligibility decision"),
    ("consent", "Signed consent of the current version"),
    ("weight_today", "Weight measured today"),
    ("vitals", "Pre-dose vitals within limits"),
    (
        "fasting",
        "Fasting confirmed (no solids 6 h, clear liquids until 2 h)",
    ),
    ("escort", "Escort named and present for discharge"),
    ("no_alcohol", "No alcohol in the last 24 h"),
    (
        "medications",
        "Current medications reviewed for interactions",
    ),
    (
        "suicide_risk",
        "Suicide-risk check (C-SSRS screener or PHQ-9 item 9)",
    ),
    (
        "pre_session_instruments",
        "Pre-session questionnaires answered today",
    ),
];

/// Items no protocol may leave out.
pub const ALWAYS_REQUIRED: [&str; 7] = [
    "identity",
    "eligibility",
    "consent",
    "vitals",
    "fasting",
    "escort",
    "suicide_risk",
];

/// Floors no protocol may go below, whoever approves it: they are code, not
/// clinic policy (a version that crosses one is refused, naming the field).
pub mod floors {
    /// Hours between two doses of one patient, at least: even the intensive
    /// courses of the seeds give at most one dose a day.
    pub const HOURS_BETWEEN_DOSES: u32 = 20;
    /// Modified Aldrete score to leave, at least (DOMAIN.md: 9 is the usual policy).
    pub const ALDRETE_MIN: u32 = 8;
    /// Minutes of recovery after an IV infusion, at least (DOMAIN.md: 30-60).
    pub const IV_RECOVERY_MINUTES: u32 = 30;
    /// Hours of fasting from solids, at least (clinic guides: 4-6 h; 2 h for
    /// a spray or troche, for nausea).
    pub const FASTING_HOURS: u32 = 2;
    pub const FASTING_HOURS_PARENTERAL: u32 = 4;
    /// The dose's rounding step, at most this share of the lowest dose the
    /// protocol allows (at the lightest weight the maths accepts).
    pub const ROUNDING_SHARE: f64 = 0.05;
    /// The stop limits may be no laxer than these: stop above SBP 220 or
    /// DBP 130 at the most, below HR 35 or above 160, below SpO2 85 %, below
    /// RR 6 or above 40.
    pub const SBP_STOP_MAX: u32 = 220;
    pub const DBP_STOP_MAX: u32 = 130;
    pub const HR_STOP_LOW_MIN: u32 = 35;
    pub const HR_STOP_HIGH_MAX: u32 = 160;
    pub const SPO2_STOP_MIN: u32 = 85;
    pub const RR_STOP_LOW_MIN: u32 = 6;
    pub const RR_STOP_HIGH_MAX: u32 = 40;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    id: String,
    version: u32,
    name: String,
    route: Route,
    #[serde(default)]
    description: String,
    dose: Dose,
    preparation: Preparation,
    titration: Titration,
    /// Minutes over which the dose is given (infusions); 0 for a bolus or spray.
    #[serde(default)]
    administration_minutes: u32,
    monitoring: Monitoring,
    pre_dose: PreDose,
    limits: Limits,
    checklist: Vec<String>,
    /// Instruments (by id) the patient answers on the day before a dose; the
    /// checklist item `pre_session_instruments` checks them.
    #[serde(default)]
    pre_session_instruments: Vec<String>,
    discharge: Discharge,
    courses: Vec<CourseKind>,
    /// Hours from one dose to the next, at least (whatever the course).
    min_hours_between_doses: u32,
    /// Doses may be taken at home between clinic sessions (sublingual).
    #[serde(default)]
    home_use: bool,
}

/// A loaded, validated protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protocol {
    pub id: String,
    pub version: u32,
    pub name: String,
    pub route: Route,
    pub description: String,
    pub dose: Dose,
    pub preparation: Preparation,
    pub titration: Titration,
    pub administration_minutes: u32,
    pub monitoring: Monitoring,
    pub pre_dose: PreDose,
    pub limits: Limits,
    pub checklist: Vec<String>,
    /// Instruments answered on the day before a dose (ids).
    pub pre_session_instruments: Vec<String>,
    pub discharge: Discharge,
    pub courses: Vec<CourseKind>,
    /// Hours from one dose to the next, at least.
    pub min_hours_between_doses: u32,
    pub home_use: bool,
    /// SHA-256 of the file as loaded.
    pub hash: String,
    /// The organisation a version stored in the database belongs to; `None`
    /// for the shipped versions and the files in the data folder, which every
    /// organisation of the install shares.
    #[serde(skip)]
    pub org: Option<String>,
    /// The file's text, as loaded (what a new version is compared with).
    #[serde(skip)]
    pub source: String,
    /// Where it came from: the shipped or clinic file's name, or the name
    /// a version added in the admin pages or the API was stored under.
    #[serde(skip)]
    pub file: String,
}

/// Every problem with a protocol file, each naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("protocol {file}: {}", errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct ProtocolError {
    pub file: String,
    pub errors: Vec<FieldError>,
}

fn lt(e: &mut Vec<FieldError>, lo: (&str, u32), hi: (&str, u32)) {
    if lo.1 >= hi.1 {
        e.push(FieldError::new(
            lo.0,
            format!("({}) must be below {} ({})", lo.1, hi.0, hi.1),
        ));
    }
}

fn within(e: &mut Vec<FieldError>, field: &str, v: u32, lo: u32, hi: u32) {
    if v < lo || v > hi {
        e.push(FieldError::new(
            field,
            format!("{v} is outside {lo} to {hi}"),
        ));
    }
}

impl Protocol {
    pub fn parse(file: &str, text: &str) -> Result<Protocol, ProtocolError> {
        let fail = |errors: Vec<FieldError>| ProtocolError {
            file: file.to_string(),
            errors,
        };
        let spec: FileSpec = toml::from_str(text).map_err(|e| {
            // toml names the key it could not take; keep its words.
            let msg = e.message().to_string();
            let field = msg
                .split('`')
                .nth(1)
                .filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"))
                .unwrap_or("file")
                .to_string();
            fail(vec![FieldError::new(field, msg)])
        })?;
        let mut e = Vec::new();
        if spec.id.is_empty()
            || !spec
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            e.push(FieldError::new(
                "id",
                "use lower-case letters, digits and '-'",
            ));
        }
        if spec.version == 0 {
            e.push(FieldError::new("version", "must be 1 or more"));
        }
        let d = &spec.dose;
        let (unit, safe) = spec.route.safe_max();
        if d.unit != unit {
            e.push(FieldError::new(
                "dose.unit",
                format!(
                    "{} doses are written in {}",
                    spec.route.label(),
                    unit.label()
                ),
            ));
        }
        for (f, v) in [
            ("dose.min", d.min),
            ("dose.max", d.max),
            ("dose.start", d.start),
            ("dose.step", d.step),
        ] {
            if !(v.is_finite() && v > 0.0) {
                e.push(FieldError::new(f, "must be a number above 0"));
            }
        }
        if d.max > safe {
            e.push(FieldError::new(
                "dose.max",
                format!(
                    "{} {} is above the safe maximum for {} ({} {})",
                    d.max,
                    d.unit.label(),
                    spec.route.label(),
                    safe,
                    unit.label()
                ),
            ));
        }
        if d.min > d.max {
            e.push(FieldError::new("dose.min", "must not be above dose.max"));
        }
        if d.start < d.min || d.start > d.max {
            e.push(FieldError::new(
                "dose.start",
                format!("{} is outside the range {}-{}", d.start, d.min, d.max),
            ));
        }
        if d.step > d.max - d.min && d.max > d.min {
            e.push(FieldError::new(
                "dose.step",
                "is larger than the whole range",
            ));
        }
        if spec.route == Route::Iv && spec.administration_minutes == 0 {
            e.push(FieldError::new(
                "administration_minutes",
                "an infusion needs its length in minutes",
            ));
        }
        within(
            &mut e,
            "administration_minutes",
            spec.administration_minutes,
            0,
            240,
        );
        within(
            &mut e,
            "monitoring.interval_minutes",
            spec.monitoring.interval_minutes,
            1,
            60,
        );
        let p = &spec.pre_dose;
        within(&mut e, "pre_dose.sbp_below", p.sbp_below, 90, 200);
        within(&mut e, "pre_dose.dbp_below", p.dbp_below, 50, 130);
        lt(
            &mut e,
            ("pre_dose.hr_min", p.hr_min),
            ("pre_dose.hr_max", p.hr_max),
        );
        within(&mut e, "pre_dose.spo2_min", p.spo2_min, 80, 100);
        within(
            &mut e,
            "pre_dose.fasting_solids_hours",
            p.fasting_solids_hours,
            0,
            12,
        );
        let l = &spec.limits;
        lt(
            &mut e,
            ("limits.hr_min", l.hr_min),
            ("limits.hr_max", l.hr_max),
        );
        lt(
            &mut e,
            ("limits.rr_min", l.rr_min),
            ("limits.rr_max", l.rr_max),
        );
        lt(
            &mut e,
            ("limits.dbp_max", l.dbp_max),
            ("limits.sbp_max", l.sbp_max),
        );
        within(&mut e, "limits.spo2_min", l.spo2_min, 80, 100);
        within(&mut e, "limits.moaas_pause_at", l.moaas_pause_at, 0, 5);
        lt(
            &mut e,
            ("limits.moaas_stop_at", l.moaas_stop_at),
            ("limits.moaas_pause_at", l.moaas_pause_at),
        );
        check_stop_limits(&mut e, l);
        // In-session limits must not be tighter than the pre-dose gate, or a
        // patient let in would alarm at once.
        if l.sbp_max < p.sbp_below {
            e.push(FieldError::new(
                "limits.sbp_max",
                format!(
                    "({}) is below pre_dose.sbp_below ({})",
                    l.sbp_max, p.sbp_below
                ),
            ));
        }
        if l.spo2_min > p.spo2_min {
            e.push(FieldError::new(
                "limits.spo2_min",
                format!(
                    "({}) is above pre_dose.spo2_min ({})",
                    l.spo2_min, p.spo2_min
                ),
            ));
        }
        for (n, c) in spec.checklist.iter().enumerate() {
            if !CHECKLIST.iter().any(|x| x.0 == c) {
                e.push(FieldError::new(
                    format!("checklist[{n}]"),
                    format!(
                        "{c:?} is not a checklist item; known: {}",
                        CHECKLIST.map(|x| x.0).join(", ")
                    ),
                ));
            }
        }
        let asks = spec
            .checklist
            .iter()
            .any(|c| c == "pre_session_instruments");
        if asks && spec.pre_session_instruments.is_empty() {
            e.push(FieldError::new(
                "pre_session_instruments",
                "name the instruments (e.g. [\"gad7\"]) the checklist item asks for",
            ));
        }
        if !asks && !spec.pre_session_instruments.is_empty() {
            e.push(FieldError::new(
                "checklist",
                "must include \"pre_session_instruments\" to check the instruments named",
            ));
        }
        for (n, i) in spec.pre_session_instruments.iter().enumerate() {
            let ok = !i.is_empty()
                && i.len() <= 40
                && i.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !ok {
                e.push(FieldError::new(
                    format!("pre_session_instruments[{n}]"),
                    format!("{i:?} is not an instrument id"),
                ));
            }
        }
        for must in ALWAYS_REQUIRED {
            if !spec.checklist.iter().any(|c| c == must) {
                e.push(FieldError::new(
                    "checklist",
                    format!("must include {must:?}: no dose without it"),
                ));
            }
        }
        if d.unit == DoseUnit::MgPerKg && !spec.checklist.iter().any(|c| c == "weight_today") {
            e.push(FieldError::new(
                "checklist",
                "must include \"weight_today\": the dose is per kg",
            ));
        }
        if spec.discharge.escort_required && !spec.checklist.iter().any(|c| c == "escort") {
            e.push(FieldError::new(
                "checklist",
                "must include \"escort\": discharge needs one",
            ));
        }
        check_preparation(&mut e, &spec);
        check_floors(&mut e, &spec);
        within(
            &mut e,
            "discharge.aldrete_min",
            spec.discharge.aldrete_min,
            0,
            10,
        );
        within(
            &mut e,
            "discharge.recovery_minutes_min",
            spec.discharge.recovery_minutes_min,
            0,
            480,
        );
        if spec.courses.is_empty() {
            e.push(FieldError::new("courses", "name at least one course shape"));
        }
        if spec.home_use && spec.route != Route::Sublingual && spec.route != Route::Oral {
            e.push(FieldError::new(
                "home_use",
                format!("{} is given in the clinic only", spec.route.label()),
            ));
        }
        if !e.is_empty() {
            return Err(fail(e));
        }
        Ok(Protocol {
            id: spec.id,
            version: spec.version,
            name: spec.name,
            route: spec.route,
            description: spec.description,
            dose: spec.dose,
            preparation: spec.preparation,
            titration: spec.titration,
            administration_minutes: spec.administration_minutes,
            monitoring: spec.monitoring,
            pre_dose: spec.pre_dose,
            limits: spec.limits,
            checklist: spec.checklist,
            pre_session_instruments: spec.pre_session_instruments,
            discharge: spec.discharge,
            courses: spec.courses,
            min_hours_between_doses: spec.min_hours_between_doses,
            home_use: spec.home_use,
            hash: hex::encode(Sha256::digest(text.as_bytes())),
            org: None,
            source: text.to_string(),
            file: file.to_string(),
        })
    }
}

/// Every parameter has a stop limit beyond its pause limit, and none is
/// laxer than the floors.
fn check_stop_limits(e: &mut Vec<FieldError>, l: &Limits) {
    use floors::*;
    let mut beyond = |field: &str, ok: bool, what: String| {
        if !ok {
            e.push(FieldError::new(field, what));
        }
    };
    beyond(
        "limits.sbp_stop_above",
        l.sbp_stop_above > l.sbp_max && l.sbp_stop_above <= SBP_STOP_MAX,
        format!(
            "({}) must be above limits.sbp_max ({}) and at most {SBP_STOP_MAX}",
            l.sbp_stop_above, l.sbp_max
        ),
    );
    beyond(
        "limits.dbp_stop_above",
        l.dbp_stop_above > l.dbp_max && l.dbp_stop_above <= DBP_STOP_MAX,
        format!(
            "({}) must be above limits.dbp_max ({}) and at most {DBP_STOP_MAX}",
            l.dbp_stop_above, l.dbp_max
        ),
    );
    beyond(
        "limits.hr_stop_below",
        l.hr_stop_below < l.hr_min && l.hr_stop_below >= HR_STOP_LOW_MIN,
        format!(
            "({}) must be below limits.hr_min ({}) and at least {HR_STOP_LOW_MIN}",
            l.hr_stop_below, l.hr_min
        ),
    );
    beyond(
        "limits.hr_stop_above",
        l.hr_stop_above > l.hr_max && l.hr_stop_above <= HR_STOP_HIGH_MAX,
        format!(
            "({}) must be above limits.hr_max ({}) and at most {HR_STOP_HIGH_MAX}",
            l.hr_stop_above, l.hr_max
        ),
    );
    beyond(
        "limits.spo2_stop_below",
        l.spo2_stop_below < l.spo2_min && l.spo2_stop_below >= SPO2_STOP_MIN,
        format!(
            "({}) must be below limits.spo2_min ({}) and at least {SPO2_STOP_MIN}",
            l.spo2_stop_below, l.spo2_min
        ),
    );
    beyond(
        "limits.rr_stop_below",
        l.rr_stop_below < l.rr_min && l.rr_stop_below >= RR_STOP_LOW_MIN,
        format!(
            "({}) must be below limits.rr_min ({}) and at least {RR_STOP_LOW_MIN}",
            l.rr_stop_below, l.rr_min
        ),
    );
    beyond(
        "limits.rr_stop_above",
        l.rr_stop_above > l.rr_max && l.rr_stop_above <= RR_STOP_HIGH_MAX,
        format!(
            "({}) must be above limits.rr_max ({}) and at most {RR_STOP_HIGH_MAX}",
            l.rr_stop_above, l.rr_max
        ),
    );
}

/// The safety floors of [`floors`]: what no approval can lower.
fn check_floors(e: &mut Vec<FieldError>, spec: &FileSpec) {
    use floors::*;
    if spec.min_hours_between_doses < HOURS_BETWEEN_DOSES {
        e.push(FieldError::new(
            "min_hours_between_doses",
            format!(
                "({}) must be at least {HOURS_BETWEEN_DOSES}: at most one dose a day",
                spec.min_hours_between_doses
            ),
        ));
    }
    if spec.min_hours_between_doses > 60 * 24 {
        e.push(FieldError::new(
            "min_hours_between_doses",
            "must be at most 60 days",
        ));
    }
    if !spec.discharge.escort_required {
        e.push(FieldError::new(
            "discharge.escort_required",
            "must be true: every patient leaves with an escort",
        ));
    }
    if matches!(spec.route, Route::Iv | Route::Im) && !spec.preparation.second_check {
        e.push(FieldError::new(
            "preparation.second_check",
            format!(
                "must be true: a second person checks every {} dose",
                spec.route.label()
            ),
        ));
    }
    if spec.discharge.aldrete_min < ALDRETE_MIN {
        e.push(FieldError::new(
            "discharge.aldrete_min",
            format!(
                "({}) must be at least {ALDRETE_MIN}",
                spec.discharge.aldrete_min
            ),
        ));
    }
    if spec.route == Route::Iv && spec.discharge.recovery_minutes_min < IV_RECOVERY_MINUTES {
        e.push(FieldError::new(
            "discharge.recovery_minutes_min",
            format!(
                "({}) must be at least {IV_RECOVERY_MINUTES} after an infusion",
                spec.discharge.recovery_minutes_min
            ),
        ));
    }
    let fasting = if matches!(spec.route, Route::Iv | Route::Im | Route::Sc) {
        FASTING_HOURS_PARENTERAL
    } else {
        FASTING_HOURS
    };
    if spec.pre_dose.fasting_solids_hours < fasting {
        e.push(FieldError::new(
            "pre_dose.fasting_solids_hours",
            format!(
                "({}) must be at least {fasting} for {}",
                spec.pre_dose.fasting_solids_hours,
                spec.route.label()
            ),
        ));
    }
    let counted = matches!(spec.route, Route::Intranasal | Route::Sublingual);
    let d = &spec.dose;
    let lowest_mg = match d.unit {
        DoseUnit::MgPerKg => d.min * crate::treatment::dosing::WEIGHT_KG.0,
        DoseUnit::Mg => d.min,
    };
    let step = spec.preparation.round_mg;
    if !counted
        && step.is_finite()
        && lowest_mg.is_finite()
        && step > lowest_mg * ROUNDING_SHARE + 1e-9
    {
        e.push(FieldError::new(
            "preparation.round_mg",
            format!(
                "({step}) must be at most {} mg: 5 % of the lowest dose ({lowest_mg} mg)",
                (lowest_mg * ROUNDING_SHARE * 1000.0).floor() / 1000.0
            ),
        ));
    }
}

fn check_preparation(e: &mut Vec<FieldError>, spec: &FileSpec) {
    let p = &spec.preparation;
    if !(p.concentration_mg_per_ml.is_finite()
        && p.concentration_mg_per_ml > 0.0
        && p.concentration_mg_per_ml <= 500.0)
    {
        e.push(FieldError::new(
            "preparation.concentration_mg_per_ml",
            "must be above 0 and at most 500",
        ));
    }
    if !(p.round_mg.is_finite() && p.round_mg > 0.0 && p.round_mg <= 50.0) {
        e.push(FieldError::new(
            "preparation.round_mg",
            "must be above 0 and at most 50",
        ));
    }
    if !(p.diluent_ml.is_finite() && (0.0..=1000.0).contains(&p.diluent_ml)) {
        e.push(FieldError::new(
            "preparation.diluent_ml",
            "must be 0 to 1000",
        ));
    }
    if spec.route == Route::Iv && p.diluent_ml <= 0.0 {
        e.push(FieldError::new(
            "preparation.diluent_ml",
            "an infusion needs the volume it is diluted in",
        ));
    }
    let counted = matches!(spec.route, Route::Intranasal | Route::Sublingual);
    if counted {
        if !(p.unit_mg.is_finite() && p.unit_mg > 0.0) {
            e.push(FieldError::new(
                "preparation.unit_mg",
                format!(
                    "{} doses are counted in sprays or troches: give the mg in one",
                    spec.route.label()
                ),
            ));
        } else {
            for (f, v) in [
                ("dose.min", spec.dose.min),
                ("dose.max", spec.dose.max),
                ("dose.start", spec.dose.start),
                ("dose.step", spec.dose.step),
            ] {
                if !is_multiple(v, p.unit_mg) {
                    e.push(FieldError::new(
                        f,
                        format!("{v} mg is not a whole number of {} mg units", p.unit_mg),
                    ));
                }
            }
        }
    } else if p.unit_mg != 0.0 {
        e.push(FieldError::new(
            "preparation.unit_mg",
            format!("{} doses are not counted in units", spec.route.label()),
        ));
    }
}

/// Whether `v` is a whole multiple of `unit` (to a thousandth).
pub fn is_multiple(v: f64, unit: f64) -> bool {
    let n = v / unit;
    (n - n.round()).abs() < 1e-6 && n.round() >= 1.0
}

/// The protocols this build ships, as (file name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("iv.toml", include_str!("../../protocols/iv.toml")),
    ("iv-v2.toml", include_str!("../../protocols/iv-v2.toml")),
    ("im.toml", include_str!("../../protocols/im.toml")),
    ("sc.toml", include_str!("../../protocols/sc.toml")),
    (
        "intranasal.toml",
        include_str!("../../protocols/intranasal.toml"),
    ),
    (
        "sublingual.toml",
        include_str!("../../protocols/sublingual.toml"),
    ),
];

/// Every loaded protocol version; the highest version of each is current.
#[derive(Debug, Clone, Default)]
pub struct Protocols(Versions<Protocol>);

impl std::ops::Deref for Protocols {
    type Target = Versions<Protocol>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Versioned for Protocol {
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn hash(&self) -> &str {
        &self.hash
    }
}

impl Protocols {
    /// The shipped protocols plus `extra` files (a clinic's own). A version
    /// already loaded with other content is refused: versions never change.
    pub fn load(extra: &[(String, String)]) -> Result<Protocols, ProtocolError> {
        let mut r = Versions::default();
        let builtin = BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string()));
        for (file, text) in builtin.chain(extra.iter().cloned()) {
            let p = Protocol::parse(&file, &text)?;
            r.insert(p).map_err(|message| ProtocolError {
                file,
                errors: vec![FieldError::new("version", message)],
            })?;
        }
        Ok(Protocols(r))
    }

    pub fn builtin() -> Protocols {
        Protocols::load(&[]).unwrap_or_default()
    }

    /// The shipped protocols, the clinic's `files` and the `stored` versions
    /// of organisations (file name, text, organisation id).
    pub fn load_with_stored(
        files: &[(String, String)],
        stored: &[(String, String, String)],
    ) -> Result<Protocols, ProtocolError> {
        let mut p = Protocols::load(files)?;
        for (file, text, org) in stored {
            let mut v = Protocol::parse(file, text)?;
            v.org = Some(org.clone());
            p.0.insert(v).map_err(|message| ProtocolError {
                file: file.clone(),
                errors: vec![FieldError::new("version", message)],
            })?;
        }
        Ok(p)
    }

    /// The highest version of `id` an organisation may use: its own and the
    /// shared ones, never another organisation's.
    pub fn current_for(&self, org: &str, id: &str) -> Option<&std::sync::Arc<Protocol>> {
        self.versions_of(id)
            .into_iter()
            .rev()
            .find(|p| p.org.as_deref().is_none_or(|o| o == org))
    }

    /// The current version of every protocol an organisation may use.
    pub fn all_current_for(&self, org: &str) -> Vec<&std::sync::Arc<Protocol>> {
        self.all_current()
            .into_iter()
            .filter_map(|p| self.current_for(org, &p.id))
            .collect()
    }

    /// The highest version number of `id` taken by anyone (a new version,
    /// whichever organisation adds it, is numbered after it).
    pub fn highest_version(&self, id: &str) -> Option<u32> {
        self.versions_of(id).last().map(|p| p.version)
    }
}
