//! The pre-treatment assessment in two parts: what the patient tells us
//! (fillable at home through a secure link, or with staff), and what the
//! nurse and prescriber find (diagnoses, the exclusion screen settled,
//! adequate trials, vitals, weight and height). Each part is stored as a new
//! version when it changes. Together they give the eligibility engine its
//! facts, the plan its anxiety profile, and the baseline instruments that are
//! indicated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::eligibility::{Condition, Facts, Medication, Trial};
use crate::error::Errors;
use crate::DomainError;
use crate::FieldError;

/// A patient's answer to a yes-or-no history question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Yes,
    No,
    Unsure,
}

/// History questions beyond the exclusion screen: (key, the question).
pub const HISTORY: [(&str, &str); 10] = [
    (
        "mania_or_bipolar",
        "Have you ever been diagnosed with bipolar disorder or had a manic episode?",
    ),
    (
        "substance_use",
        "Do you use alcohol or drugs in a way that worries you or others?",
    ),
    (
        "prior_ketamine",
        "Have you had ketamine before (as treatment, anaesthesia or otherwise)?",
    ),
    (
        "trauma",
        "Have you lived through traumatic events that still affect you?",
    ),
    ("hypertension", "Do you have high blood pressure?"),
    (
        "heart_disease",
        "Do you have heart disease or an irregular heartbeat?",
    ),
    ("seizures", "Have you had seizures or epilepsy?"),
    ("liver_disease", "Do you have liver disease?"),
    (
        "urinary_problems",
        "Do you have bladder or urinary problems?",
    ),
    (
        "anaesthesia_reaction",
        "Have you had a bad reaction to an anaesthetic?",
    ),
];

/// How the patient responded to a past treatment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreatmentResponse {
    None,
    Partial,
    Good,
    StoppedSideEffects,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorTreatment {
    pub treatment: String,
    #[serde(default)]
    pub dose: String,
    pub weeks: u32,
    pub response: TreatmentResponse,
}

/// How much each side of anxiety weighs, 0 (not at all) to 3 (a lot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnxietyProfile {
    /// Worry, racing or catastrophic thoughts.
    pub cognitive: u8,
    /// Racing heart, tension, breathlessness, stomach.
    pub somatic: u8,
    /// Avoiding places, people or tasks.
    pub behavioural: u8,
    pub triggers: String,
}

/// What the patient tells us.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatientPart {
    /// Each exclusion-screen condition, in plain words on the form.
    pub screen: BTreeMap<Condition, Answer>,
    /// Each of `HISTORY`.
    pub history: BTreeMap<String, Answer>,
    pub allergies: String,
    pub medications: Vec<Medication>,
    pub treatments: Vec<PriorTreatment>,
    pub psychotherapies: String,
    pub anxiety: AnxietyProfile,
    /// What helps when they are distressed (for the session team).
    pub calming: String,
    pub support: String,
    pub escort_name: String,
    pub escort_phone: String,
}

/// The clinician's finding on one screen condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    Present,
    Absent,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    /// ICD-10-CM, e.g. F41.1: a code valid on a claim; empty for a
    /// diagnosis written in words when no code fits (it is left off a
    /// superbill).
    #[serde(default)]
    pub code: String,
    pub label: String,
}

impl Diagnosis {
    /// A diagnosis as a form row reads: "F41.1 Generalized anxiety
    /// disorder" (the code found in ICD-10-CM, the words kept or, when only
    /// a code was written, the code's description), or words alone. `Err`
    /// names a code-like first word that is not an ICD-10-CM code.
    pub fn parse(field: &str, line: &str) -> Result<Diagnosis, FieldError> {
        let line = line.trim();
        let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
        let b = first.as_bytes();
        let code_like = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1].is_ascii_digit();
        if !code_like {
            return Ok(Diagnosis {
                code: String::new(),
                label: line.to_string(),
            });
        }
        match crate::codes::icd10_lookup(first) {
            Some(c) => Ok(Diagnosis {
                code: c.code.to_string(),
                label: if rest.trim().is_empty() {
                    c.description.to_string()
                } else {
                    rest.trim().to_string()
                },
            }),
            None => Err(FieldError::new(
                field,
                format!(
                    "{first} is not an ICD-10-CM code valid on a claim (a category such as F41 needs its last digit): choose one from the list, or write the diagnosis in words"
                ),
            )),
        }
    }

    /// The line a form shows it as.
    pub fn as_line(&self) -> String {
        if self.code.is_empty() {
            self.label.clone()
        } else {
            format!("{} {}", self.code, self.label)
        }
    }
}

/// Vitals, weight and height at the assessment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub sbp: u32,
    pub dbp: u32,
    pub hr: u32,
    pub spo2: u32,
    pub weight_kg: f64,
    pub height_cm: f64,
}

impl Baseline {
    pub fn bmi(&self) -> f64 {
        let m = self.height_cm / 100.0;
        (self.weight_kg / (m * m) * 10.0).round() / 10.0
    }
}

/// What the nurse and prescriber find.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClinicalPart {
    pub diagnoses: Vec<Diagnosis>,
    /// Every screen condition settled: present, absent or not yet known.
    pub screen: BTreeMap<Condition, Finding>,
    /// Past trials as judged by the clinician (adequate dose and length).
    pub trials: Vec<Trial>,
    pub baseline: Option<Baseline>,
    pub notes: String,
}

fn text(e: &mut Errors, field: &str, s: &str, max: usize) {
    if s.chars().count() > max {
        e.add(field, format!("must be at most {max} characters"));
    }
}

/// True for the shape of an ICD-10-CM code: a letter, two characters, then
/// optionally a dot and up to four more (F41.1, F43.10, Z91.19).
pub fn icd10_shape(code: &str) -> bool {
    let b = code.as_bytes();
    let head = b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && b[2].is_ascii_alphanumeric();
    match code.split_once('.') {
        None => head && b.len() == 3,
        Some((h, t)) => {
            head && h.len() == 3
                && (1..=4).contains(&t.len())
                && t.bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
    }
}

impl PatientPart {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut e = Errors::new();
        for c in Condition::ALL {
            if !self.screen.contains_key(&c) {
                e.add(
                    &format!("screen.{}", key(c)),
                    format!("answer yes, no or not sure: {}", c.label()),
                );
            }
        }
        for k in self.history.keys() {
            if !HISTORY.iter().any(|(h, _)| h == k) {
                e.add(&format!("history.{k}"), "is not a question on the form");
            }
        }
        for (k, q) in HISTORY {
            if !self.history.contains_key(k) {
                e.add(
                    &format!("history.{k}"),
                    format!("answer yes, no or not sure: {q}"),
                );
            }
        }
        for (i, m) in self.medications.iter().enumerate() {
            if m.name.trim().is_empty() || m.name.chars().count() > 100 {
                e.add(
                    &format!("medications[{i}].name"),
                    "give the medicine's name (at most 100 characters)",
                );
            }
            if m.daily_mg
                .is_some_and(|d| !(d.is_finite() && d > 0.0 && d < 100_000.0))
            {
                e.add(&format!("medications[{i}].daily_mg"), "must be above 0 mg");
            }
        }
        if self.medications.len() > 40 {
            e.add("medications", "at most 40 medicines");
        }
        for (i, t) in self.treatments.iter().enumerate() {
            if t.treatment.trim().is_empty() || t.treatment.chars().count() > 100 {
                e.add(
                    &format!("treatments[{i}].treatment"),
                    "name the medicine or treatment",
                );
            }
            if t.weeks > 520 {
                e.add(
                    &format!("treatments[{i}].weeks"),
                    "must be at most 520 weeks",
                );
            }
            text(&mut e, &format!("treatments[{i}].dose"), &t.dose, 60);
        }
        if self.treatments.len() > 40 {
            e.add("treatments", "at most 40 treatments");
        }
        for (f, v) in [
            ("anxiety.cognitive", self.anxiety.cognitive),
            ("anxiety.somatic", self.anxiety.somatic),
            ("anxiety.behavioural", self.anxiety.behavioural),
        ] {
            if v > 3 {
                e.add(f, "must be 0 (not at all) to 3 (a lot)");
            }
        }
        text(&mut e, "anxiety.triggers", &self.anxiety.triggers, 1000);
        text(&mut e, "allergies", &self.allergies, 500);
        text(&mut e, "psychotherapies", &self.psychotherapies, 1000);
        text(&mut e, "calming", &self.calming, 1000);
        text(&mut e, "support", &self.support, 1000);
        text(&mut e, "escort_name", &self.escort_name, 100);
        text(&mut e, "escort_phone", &self.escort_phone, 40);
        e.into_result()
    }

    pub fn answer(&self, history_key: &str) -> Option<Answer> {
        self.history.get(history_key).copied()
    }
}

impl ClinicalPart {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut e = Errors::new();
        for c in Condition::ALL {
            if !self.screen.contains_key(&c) {
                e.add(
                    &format!("screen.{}", key(c)),
                    format!("settle as present, absent or not yet known: {}", c.label()),
                );
            }
        }
        if self.diagnoses.len() > 20 {
            e.add("diagnoses", "at most 20 diagnoses");
        }
        for (i, d) in self.diagnoses.iter().enumerate() {
            if !d.code.is_empty()
                && crate::codes::icd10_lookup(&d.code).map(|c| c.code) != Some(d.code.as_str())
            {
                e.add(
                    &format!("diagnoses[{i}].code"),
                    format!(
                        "{:?} is not an ICD-10-CM code valid on a claim (like F41.1); leave it empty for a diagnosis in words",
                        d.code
                    ),
                );
            }
            if d.label.trim().is_empty() || d.label.chars().count() > 200 {
                e.add(&format!("diagnoses[{i}].label"), "name the diagnosis");
            }
        }
        for (i, t) in self.trials.iter().enumerate() {
            if t.treatment.trim().is_empty() {
                e.add(&format!("trials[{i}].treatment"), "name the treatment");
            }
            if t.weeks > 520 {
                e.add(&format!("trials[{i}].weeks"), "must be at most 520 weeks");
            }
        }
        if let Some(b) = &self.baseline {
            let mut range = |f: &str, v: f64, lo: f64, hi: f64, unit: &str| {
                if !(v.is_finite() && v >= lo && v <= hi) {
                    e.add(f, format!("must be between {lo} and {hi} {unit}"));
                }
            };
            range("baseline.sbp", f64::from(b.sbp), 60.0, 260.0, "mmHg");
            range("baseline.dbp", f64::from(b.dbp), 30.0, 160.0, "mmHg");
            range(
                "baseline.hr",
                f64::from(b.hr),
                25.0,
                220.0,
                "beats a minute",
            );
            range("baseline.spo2", f64::from(b.spo2), 50.0, 100.0, "%");
            range("baseline.weight_kg", b.weight_kg, 25.0, 350.0, "kg");
            range("baseline.height_cm", b.height_cm, 100.0, 250.0, "cm");
            if b.dbp >= b.sbp {
                e.add("baseline.dbp", "must be below the systolic pressure");
            }
        }
        text(&mut e, "notes", &self.notes, 4000);
        e.into_result()
    }
}

/// The snake-case key of a condition (as in JSON and form names).
pub fn key(c: Condition) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The eligibility engine's facts from the latest parts: the clinician's
/// screen when there is one (else the patient's answers, "not sure" and
/// missing ones as not yet known), the patient's medicines, the clinician's
/// trials, and the baseline blood pressure.
pub fn facts(patient: Option<&PatientPart>, clinical: Option<&ClinicalPart>) -> Facts {
    let mut f = Facts::default();
    for c in Condition::ALL {
        let state = match clinical {
            Some(k) => k.screen.get(&c).copied().unwrap_or(Finding::Unknown),
            None => match patient.and_then(|p| p.screen.get(&c)) {
                Some(Answer::Yes) => Finding::Present,
                Some(Answer::No) => Finding::Absent,
                _ => Finding::Unknown,
            },
        };
        match state {
            Finding::Present => f.conditions.push(c),
            Finding::Unknown => f.unknown.push(c),
            Finding::Absent => {}
        }
    }
    if let Some(p) = patient {
        f.medications = p.medications.clone();
    }
    if let Some(k) = clinical {
        f.trials = k.trials.clone();
        f.blood_pressure = k.baseline.map(|b| (b.sbp, b.dbp));
    }
    f
}

/// The baseline instruments indicated, each with why: GAD-7 and PHQ-9 for
/// everyone; PCL-5 after trauma; OASIS when avoidance weighs; HAM-A (rated by
/// a clinician) when bodily symptoms do.
pub fn baseline_instruments(p: Option<&PatientPart>) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![
        ("gad7", "for everyone: anxiety severity"),
        ("phq9", "for everyone: depression and the safety question"),
    ];
    if let Some(p) = p {
        if p.answer("trauma") == Some(Answer::Yes) {
            out.push(("pcl5", "traumatic events that still affect the patient"));
        }
        if p.anxiety.behavioural >= 2 {
            out.push(("oasis", "avoidance and impairment weigh"));
        }
        if p.anxiety.somatic >= 2 {
            out.push(("hama", "bodily symptoms weigh (clinician-rated)"));
        }
    }
    out
}

/// The integration modalities (DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Cbt,
    Emdr,
    Art,
    Ifs,
    Somatic,
}

impl Modality {
    pub const ALL: [Modality; 5] = [
        Modality::Cbt,
        Modality::Emdr,
        Modality::Art,
        Modality::Ifs,
        Modality::Somatic,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Modality::Cbt => "Cognitive behavioural therapy (CBT)",
            Modality::Emdr => "EMDR",
            Modality::Art => "Accelerated Resolution Therapy (ART)",
            Modality::Ifs => "Internal Family Systems (IFS)",
            Modality::Somatic => "Somatic therapy",
        }
    }
}

/// A modality the anxiety profile points to, and why (the prescriber decides).
pub fn suggest_modality(p: &PatientPart) -> (Modality, &'static str) {
    let a = &p.anxiety;
    if p.answer("trauma") == Some(Answer::Yes) {
        return (
            Modality::Emdr,
            "traumatic events still affect the patient: a trauma-focused therapy (EMDR or ART)",
        );
    }
    if a.somatic > a.cognitive && a.somatic >= a.behavioural {
        return (Modality::Somatic, "mainly somatic anxiety: body-based work");
    }
    if a.behavioural > a.cognitive {
        return (
            Modality::Cbt,
            "mainly behavioural anxiety (avoidance): CBT with exposure",
        );
    }
    (
        Modality::Cbt,
        "mainly cognitive anxiety (worry): CBT, cognitive restructuring",
    )
}

/// Reads a "medicines, one per line" box: each line a medicine's name,
/// optionally ending in its daily dose in mg ("sertraline 100",
/// "sertraline 100mg", "sertraline 100 mg"). A line that is only a number
/// is a name, never a dose without a medicine. A dose that is not above
/// 0 mg is named with its line number. The one reading of such a box, for
/// every form that has one.
pub fn medication_lines(text: &str, field: &str) -> (Vec<Medication>, Vec<crate::FieldError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if words.len() > 2 && words.last().is_some_and(|w| w.eq_ignore_ascii_case("mg")) {
            words.pop();
        }
        let dose = match words.as_slice() {
            [_, .., last] => {
                let digits = last
                    .strip_suffix("mg")
                    .or_else(|| last.strip_suffix("MG"))
                    .unwrap_or(last);
                digits.parse::<f64>().ok()
            }
            _ => None,
        };
        if dose.is_some() {
            words.pop();
        }
        if dose.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            errors.push(crate::FieldError::new(
                field,
                format!("line {}: the daily dose must be above 0", n + 1),
            ));
        }
        out.push(Medication {
            name: words.join(" "),
            daily_mg: dose,
        });
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn patient_none() -> PatientPart {
        PatientPart {
            screen: Condition::ALL.iter().map(|c| (*c, Answer::No)).collect(),
            history: HISTORY
                .iter()
                .map(|(k, _)| (k.to_string(), Answer::No))
                .collect(),
            ..PatientPart::default()
        }
    }

    #[test]
    fn every_screen_and_history_question_must_be_answered_and_named() {
        let e = PatientPart::default().validate().unwrap_err();
        let DomainError::Invalid(e) = e else { panic!() };
        assert_eq!(e.len(), Condition::ALL.len() + HISTORY.len());
        assert!(e.iter().any(|e| e.field == "screen.ketamine_cystitis"));
        assert!(e.iter().any(|e| e.field == "history.trauma"));
        let mut p = patient_none();
        assert!(p.validate().is_ok());
        p.history.insert("astrology".into(), Answer::Yes);
        p.anxiety.somatic = 4;
        let DomainError::Invalid(e) = p.validate().unwrap_err() else {
            panic!()
        };
        let f: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(f, ["history.astrology", "anxiety.somatic"]);
    }

    #[test]
    fn icd10_codes_are_checked_for_shape() {
        for ok in ["F41.1", "F43.10", "F41", "Z91.19", "F32.A"] {
            assert!(icd10_shape(ok), "{ok}");
        }
        for bad in ["f41.1", "41.1", "F4", "F41.", "F41.12345", "F41-1", ""] {
            assert!(!icd10_shape(bad), "{bad}");
        }
    }

    #[test]
    fn diagnoses_are_read_from_a_row_against_icd10cm() {
        let d = |s: &str| Diagnosis::parse("diagnosis", s);
        assert_eq!(
            d("f41.1").unwrap(),
            Diagnosis {
                code: "F41.1".into(),
                label: "Generalized anxiety disorder".into()
            }
        );
        assert_eq!(d("F43.10 PTSD, chronic").unwrap().label, "PTSD, chronic");
        assert_eq!(d("F43.10 PTSD, chronic").unwrap().code, "F43.10");
        let words = d("Situational anxiety about flying").unwrap();
        assert_eq!(
            (words.code.as_str(), words.as_line().as_str()),
            ("", "Situational anxiety about flying")
        );
        for bad in ["F41 Anxiety", "F41.19", "Q99.99 nothing"] {
            let e = d(bad).unwrap_err();
            assert!(e.message.contains("not an ICD-10-CM code"), "{bad}: {e:?}");
        }
        // Stored as words alone, a diagnosis passes; a made-up code does not.
        let mut k = ClinicalPart {
            screen: Condition::ALL
                .iter()
                .map(|c| (*c, Finding::Absent))
                .collect(),
            diagnoses: vec![words],
            ..ClinicalPart::default()
        };
        assert!(k.validate().is_ok());
        k.diagnoses.push(Diagnosis {
            code: "F41.7".into(),
            label: "made up".into(),
        });
        assert!(k.validate().is_err());
    }

    #[test]
    fn baseline_values_out_of_range_are_named() {
        let k = ClinicalPart {
            screen: Condition::ALL
                .iter()
                .map(|c| (*c, Finding::Absent))
                .collect(),
            baseline: Some(Baseline {
                sbp: 120,
                dbp: 130,
                hr: 300,
                spo2: 97,
                weight_kg: 0.0,
                height_cm: 170.0,
            }),
            diagnoses: vec![Diagnosis {
                code: "GAD".into(),
                label: "x".into(),
            }],
            ..ClinicalPart::default()
        };
        let DomainError::Invalid(e) = k.validate().unwrap_err() else {
            panic!()
        };
        let f: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "diagnoses[0].code",
                "baseline.hr",
                "baseline.weight_kg",
                "baseline.dbp"
            ]
        );
    }

    #[test]
    fn facts_come_from_the_clinician_when_settled_else_from_the_patient() {
        let mut p = patient_none();
        p.screen
            .insert(Condition::PregnancyOrBreastfeeding, Answer::Unsure);
        p.screen.insert(Condition::KetamineCystitis, Answer::Yes);
        p.medications.push(Medication {
            name: "clonazepam".into(),
            daily_mg: Some(2.0),
        });
        let f = facts(Some(&p), None);
        assert_eq!(f.conditions, [Condition::KetamineCystitis]);
        assert_eq!(f.unknown, [Condition::PregnancyOrBreastfeeding]);
        assert_eq!(f.medications.len(), 1);
        let k = ClinicalPart {
            screen: Condition::ALL
                .iter()
                .map(|c| (*c, Finding::Absent))
                .collect(),
            baseline: Some(Baseline {
                sbp: 150,
                dbp: 95,
                hr: 70,
                spo2: 98,
                weight_kg: 70.0,
                height_cm: 170.0,
            }),
            ..ClinicalPart::default()
        };
        let f = facts(Some(&p), Some(&k));
        assert!(f.conditions.is_empty() && f.unknown.is_empty());
        assert_eq!(f.blood_pressure, Some((150, 95)));
        assert_eq!(k.baseline.unwrap().bmi(), 24.2);
    }

    #[test]
    fn instruments_and_modality_follow_the_profile() {
        let mut p = patient_none();
        assert_eq!(baseline_instruments(Some(&p)).len(), 2);
        p.anxiety = AnxietyProfile {
            cognitive: 1,
            somatic: 3,
            behavioural: 2,
            triggers: String::new(),
        };
        let ids: Vec<&str> = baseline_instruments(Some(&p)).iter().map(|x| x.0).collect();
        assert_eq!(ids, ["gad7", "phq9", "oasis", "hama"]);
        assert_eq!(suggest_modality(&p).0, Modality::Somatic);
        p.history.insert("trauma".into(), Answer::Yes);
        assert_eq!(suggest_modality(&p).0, Modality::Emdr);
        assert!(baseline_instruments(Some(&p)).iter().any(|x| x.0 == "pcl5"));
    }

    #[test]
    fn a_medicine_line_is_read_one_way() {
        let (m, e) = medication_lines(
            "sertraline 100\n\n  bupropion XL 150mg \nlithium 300 mg\n20\nmelatonin\nvenlafaxine 0",
            "medications",
        );
        let got: Vec<(&str, Option<f64>)> =
            m.iter().map(|x| (x.name.as_str(), x.daily_mg)).collect();
        assert_eq!(
            got,
            vec![
                ("sertraline", Some(100.0)),
                ("bupropion XL", Some(150.0)),
                ("lithium", Some(300.0)),
                ("20", None),
                ("melatonin", None),
                ("venlafaxine", Some(0.0)),
            ]
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "medications");
        assert!(e[0].message.contains("line 7"), "{}", e[0].message);
        let (_, e) = medication_lines("x -5\ny NaN\nz inf", "m");
        assert_eq!(
            e.len(),
            3,
            "negative, NaN and infinite doses are refused: {e:?}"
        );
    }
}
