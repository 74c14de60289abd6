//! The eligibility engine: from the facts of a pre-treatment assessment and
//! the clinic's policy (which exclusions are absolute and which relative, the
//! benzodiazepine ceiling, how many adequate trials make treatment
//! resistance), the findings with their explanations and a suggested
//! decision. The prescriber decides; this only says what it found and why.

use serde::{Deserialize, Serialize};

/// A history item the exclusion screen asks about (DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ActivePsychosisOrMania,
    PsychoticDisorderHistory,
    UncontrolledHypertension,
    ArrhythmiaOrUnstableCardiac,
    CerebrovascularDisease,
    KetamineOrPcpMisuse,
    SubstanceUseNeedingDetox,
    KetamineCystitis,
    PregnancyOrBreastfeeding,
    RaisedIntracranialPressure,
    KetamineAllergy,
}

impl Condition {
    pub const ALL: [Condition; 11] = [
        Condition::ActivePsychosisOrMania,
        Condition::PsychoticDisorderHistory,
        Condition::UncontrolledHypertension,
        Condition::ArrhythmiaOrUnstableCardiac,
        Condition::CerebrovascularDisease,
        Condition::KetamineOrPcpMisuse,
        Condition::SubstanceUseNeedingDetox,
        Condition::KetamineCystitis,
        Condition::PregnancyOrBreastfeeding,
        Condition::RaisedIntracranialPressure,
        Condition::KetamineAllergy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Condition::ActivePsychosisOrMania => "Active psychosis or mania",
            Condition::PsychoticDisorderHistory => "History of a psychotic disorder",
            Condition::UncontrolledHypertension => "Uncontrolled hypertension",
            Condition::ArrhythmiaOrUnstableCardiac => {
                "Significant arrhythmia or unstable cardiovascular disease"
            }
            Condition::CerebrovascularDisease => "Unstable cerebrovascular disease",
            Condition::KetamineOrPcpMisuse => "Current ketamine or PCP misuse",
            Condition::SubstanceUseNeedingDetox => "Substance use needing detoxification",
            Condition::KetamineCystitis => "History of ketamine cystitis",
            Condition::PregnancyOrBreastfeeding => "Pregnancy or breastfeeding",
            Condition::RaisedIntracranialPressure => "Raised intracranial pressure",
            Condition::KetamineAllergy => "Allergy to ketamine",
        }
    }

    /// The question in plain words, for the patient's own form.
    pub fn plain(self) -> &'static str {
        match self {
            Condition::ActivePsychosisOrMania => {
                "Are you hearing or seeing things others do not, or having an episode of mania, now?"
            }
            Condition::PsychoticDisorderHistory => {
                "Have you been diagnosed with schizophrenia or another psychotic disorder?"
            }
            Condition::UncontrolledHypertension => {
                "Do you have high blood pressure that is not under control?"
            }
            Condition::ArrhythmiaOrUnstableCardiac => {
                "Do you have a heart rhythm problem or heart disease that is not stable?"
            }
            Condition::CerebrovascularDisease => {
                "Have you had a stroke, a brain aneurysm or bleeding in the brain?"
            }
            Condition::KetamineOrPcpMisuse => "Do you currently use ketamine or PCP recreationally?",
            Condition::SubstanceUseNeedingDetox => {
                "Do you need help to stop drinking or using drugs (detox)?"
            }
            Condition::KetamineCystitis => "Have you had bladder problems from ketamine use?",
            Condition::PregnancyOrBreastfeeding => "Are you pregnant, or breastfeeding?",
            Condition::RaisedIntracranialPressure => {
                "Have you been told you have raised pressure in the skull (for example after a head injury)?"
            }
            Condition::KetamineAllergy => "Are you allergic to ketamine?",
        }
    }

    /// Why it matters, for the explanation.
    pub fn why(self) -> &'static str {
        match self {
            Condition::ActivePsychosisOrMania | Condition::PsychoticDisorderHistory => {
                "ketamine can provoke or worsen psychotic symptoms"
            }
            Condition::UncontrolledHypertension
            | Condition::ArrhythmiaOrUnstableCardiac
            | Condition::CerebrovascularDisease => {
                "ketamine raises heart rate and blood pressure for the length of the dose"
            }
            Condition::KetamineOrPcpMisuse | Condition::SubstanceUseNeedingDetox => {
                "ketamine can be misused and withdrawal must be managed first"
            }
            Condition::KetamineCystitis => "repeated ketamine damages the bladder",
            Condition::PregnancyOrBreastfeeding => {
                "safety in pregnancy and breastfeeding is not established"
            }
            Condition::RaisedIntracranialPressure => "ketamine may raise intracranial pressure",
            Condition::KetamineAllergy => "a known allergy to the drug",
        }
    }
}

/// Medicine classes the interaction rules know (DOMAIN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrugClass {
    Benzodiazepine,
    Lamotrigine,
    Stimulant,
    Maoi,
    Opioid,
    OtherSedative,
    Cyp3a4Or2b6Inhibitor,
    Cyp3a4Or2b6Inducer,
    Other,
}

/// The class of a medicine by generic or brand name (case-insensitive,
/// from [`crate::codes::MEDICINES`]), and for a benzodiazepine the
/// milligrams equal to 1 mg of lorazepam; `Other` when unknown.
pub fn classify(name: &str) -> (DrugClass, Option<f64>) {
    crate::codes::medicine(name)
        .map(|m| {
            (
                m.rule,
                (m.rule == DrugClass::Benzodiazepine).then_some(m.lorazepam_mg),
            )
        })
        .unwrap_or((DrugClass::Other, None))
}

/// A current medicine: its name and total daily milligrams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Medication {
    pub name: String,
    pub daily_mg: Option<f64>,
}

/// A past treatment trial: adequate when at a therapeutic dose for long enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    pub treatment: String,
    pub adequate_dose: bool,
    pub weeks: u32,
}

impl Trial {
    /// The line a form writes it as, and reads back: "sertraline, 12, adequate".
    pub fn as_line(&self) -> String {
        format!(
            "{}, {}, {}",
            self.treatment,
            self.weeks,
            if self.adequate_dose {
                "adequate"
            } else {
                "inadequate"
            }
        )
    }
}

/// What the assessment established.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Facts {
    pub conditions: Vec<Condition>,
    /// Conditions the assessment could not settle (records awaited).
    pub unknown: Vec<Condition>,
    pub medications: Vec<Medication>,
    pub trials: Vec<Trial>,
    /// Pre-treatment blood pressure, if taken.
    pub blood_pressure: Option<(u32, u32)>,
}

/// The clinic's policy (*policy* defaults from DOMAIN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub absolute: Vec<Condition>,
    pub relative: Vec<Condition>,
    /// Lorazepam-equivalent milligrams a day above which the load is a relative exclusion.
    pub benzodiazepine_max_lorazepam_mg: f64,
    /// Adequate trials that make anxiety treatment-resistant.
    pub resistance_trials: usize,
    /// A trial counts as adequate after this many weeks at a therapeutic dose.
    pub adequate_weeks: u32,
}

impl Default for Policy {
    fn default() -> Self {
        use Condition::*;
        Policy {
            absolute: vec![
                ActivePsychosisOrMania,
                KetamineOrPcpMisuse,
                SubstanceUseNeedingDetox,
                KetamineCystitis,
                PregnancyOrBreastfeeding,
                RaisedIntracranialPressure,
                KetamineAllergy,
            ],
            relative: vec![
                PsychoticDisorderHistory,
                UncontrolledHypertension,
                ArrhythmiaOrUnstableCardiac,
                CerebrovascularDisease,
            ],
            benzodiazepine_max_lorazepam_mg: 3.0,
            resistance_trials: 2,
            adequate_weeks: 6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Not eligible while this holds.
    Absolute,
    /// Eligible only with conditions a prescriber sets.
    Relative,
    /// An interaction to manage (dose timing, monitoring).
    Interaction,
    /// Something still to find out.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub rule: String,
    pub explanation: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suggestion {
    Eligible,
    EligibleWithConditions,
    NotEligible,
    NeedsMoreInformation,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub suggestion: Suggestion,
    pub adequate_trials: usize,
    pub treatment_resistant: bool,
}

/// Applies the policy to the facts; every finding explains itself.
pub fn evaluate(f: &Facts, p: &Policy) -> Evaluation {
    let mut findings = Vec::new();
    for c in &f.conditions {
        let level = if p.absolute.contains(c) {
            Level::Absolute
        } else if p.relative.contains(c) {
            Level::Relative
        } else {
            continue;
        };
        findings.push(Finding {
            level,
            rule: format!("{c:?}"),
            explanation: format!(
                "{}: {} ({} exclusion in this clinic's policy).",
                c.label(),
                c.why(),
                if level == Level::Absolute {
                    "an absolute"
                } else {
                    "a relative"
                }
            ),
        });
    }
    for c in &f.unknown {
        if p.absolute.contains(c) || p.relative.contains(c) {
            findings.push(Finding {
                level: Level::Missing,
                rule: format!("{c:?}"),
                explanation: format!(
                    "{}: not yet established; the screen needs an answer.",
                    c.label()
                ),
            });
        }
    }
    if let Some((s, d)) = f.blood_pressure {
        if s >= 160 || d >= 100 {
            findings.push(Finding {
                level: Level::Relative,
                rule: "BloodPressure".into(),
                explanation: format!(
                    "Blood pressure {s}/{d} mmHg is at or above 160/100: treat or recheck before any dose."
                ),
            });
        }
    }
    let mut benzo = 0.0;
    for m in &f.medications {
        let (class, per_lorazepam) = classify(&m.name);
        if let (Some(eq), Some(mg)) = (per_lorazepam, m.daily_mg) {
            benzo += mg / eq;
        }
        let (level, text) = match class {
            DrugClass::Benzodiazepine => (Level::Interaction, "benzodiazepines may blunt the response to ketamine; consider timing or tapering"),
            DrugClass::Lamotrigine => (Level::Interaction, "lamotrigine may blunt the response to ketamine"),
            DrugClass::Stimulant => (Level::Interaction, "stimulants add to ketamine's rise in blood pressure; hold the morning dose and monitor"),
            DrugClass::Maoi => (Level::Relative, "MAOIs with ketamine risk a hypertensive reaction"),
            DrugClass::Opioid | DrugClass::OtherSedative => (Level::Interaction, "additive sedation: watch MOAA/S and breathing closely"),
            DrugClass::Cyp3a4Or2b6Inhibitor => (Level::Interaction, "a CYP3A4/2B6 inhibitor raises ketamine levels; consider a lower dose"),
            DrugClass::Cyp3a4Or2b6Inducer => (Level::Interaction, "a CYP3A4/2B6 inducer lowers ketamine levels; response may be weaker"),
            DrugClass::Other => continue,
        };
        findings.push(Finding {
            level,
            rule: format!("{class:?}"),
            explanation: format!("{}: {text}.", m.name.trim()),
        });
    }
    if benzo > p.benzodiazepine_max_lorazepam_mg {
        findings.push(Finding {
            level: Level::Relative,
            rule: "BenzodiazepineLoad".into(),
            explanation: format!(
                "Benzodiazepine load about {benzo:.1} mg/day lorazepam-equivalent, above {} mg: a high load blunts response; plan a taper.",
                p.benzodiazepine_max_lorazepam_mg
            ),
        });
    }
    let adequate_trials = f
        .trials
        .iter()
        .filter(|t| t.adequate_dose && t.weeks >= p.adequate_weeks)
        .count();
    let treatment_resistant = adequate_trials >= p.resistance_trials;
    if !treatment_resistant {
        findings.push(Finding {
            level: Level::Missing,
            rule: "TreatmentResistance".into(),
            explanation: format!(
                "{adequate_trials} adequate trial(s) recorded ({} weeks or more at a therapeutic dose); treatment resistance needs {}.",
                p.adequate_weeks, p.resistance_trials
            ),
        });
    }
    findings.sort_by_key(|x| x.level);
    let has = |l: Level| findings.iter().any(|x| x.level == l);
    let suggestion = if has(Level::Absolute) {
        Suggestion::NotEligible
    } else if has(Level::Missing) {
        Suggestion::NeedsMoreInformation
    } else if has(Level::Relative) || has(Level::Interaction) {
        Suggestion::EligibleWithConditions
    } else {
        Suggestion::Eligible
    };
    Evaluation {
        findings,
        suggestion,
        adequate_trials,
        treatment_resistant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trials(n: usize) -> Vec<Trial> {
        (0..n)
            .map(|i| Trial {
                treatment: format!("trial {i}"),
                adequate_dose: true,
                weeks: 8,
            })
            .collect()
    }

    fn resistant() -> Facts {
        Facts {
            trials: trials(2),
            blood_pressure: Some((128, 82)),
            ..Default::default()
        }
    }

    #[test]
    fn a_patient_with_nothing_found_is_suggested_eligible() {
        let e = evaluate(&resistant(), &Policy::default());
        assert_eq!(e.suggestion, Suggestion::Eligible);
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        assert!(e.treatment_resistant);
    }

    #[test]
    fn each_exclusion_fires_and_explains_itself() {
        let p = Policy::default();
        for c in Condition::ALL {
            let mut f = resistant();
            f.conditions = vec![c];
            let e = evaluate(&f, &p);
            assert_eq!(e.findings.len(), 1, "{c:?}");
            assert!(e.findings[0].explanation.starts_with(c.label()), "{c:?}");
            let want = if p.absolute.contains(&c) {
                Suggestion::NotEligible
            } else {
                Suggestion::EligibleWithConditions
            };
            assert_eq!(e.suggestion, want, "{c:?}");
        }
        // A clinic that makes a relative exclusion absolute gets its policy.
        let mut strict = Policy::default();
        strict
            .relative
            .retain(|c| *c != Condition::PsychoticDisorderHistory);
        strict.absolute.push(Condition::PsychoticDisorderHistory);
        let mut f = resistant();
        f.conditions = vec![Condition::PsychoticDisorderHistory];
        assert_eq!(evaluate(&f, &strict).suggestion, Suggestion::NotEligible);
    }

    #[test]
    fn each_interaction_fires_and_explains_itself() {
        for (name, level, words) in [
            ("Lamotrigine 200 mg", Level::Interaction, "blunt"),
            ("methylphenidate", Level::Interaction, "blood pressure"),
            ("Phenelzine", Level::Relative, "hypertensive"),
            ("oxycodone", Level::Interaction, "sedation"),
            ("zolpidem", Level::Interaction, "sedation"),
            (
                "clarithromycin",
                Level::Interaction,
                "raises ketamine levels",
            ),
            (
                "carbamazepine",
                Level::Interaction,
                "lowers ketamine levels",
            ),
            ("alprazolam", Level::Interaction, "blunt"),
        ] {
            let mut f = resistant();
            f.medications = vec![Medication {
                name: name.into(),
                daily_mg: None,
            }];
            let e = evaluate(&f, &Policy::default());
            assert_eq!(e.findings.len(), 1, "{name}");
            assert_eq!(e.findings[0].level, level, "{name}");
            assert!(
                e.findings[0].explanation.contains(words),
                "{name}: {}",
                e.findings[0].explanation
            );
            assert_eq!(e.suggestion, Suggestion::EligibleWithConditions);
        }
        // Sertraline is not a listed interaction.
        let mut f = resistant();
        f.medications = vec![Medication {
            name: "sertraline".into(),
            daily_mg: Some(100.0),
        }];
        assert_eq!(
            evaluate(&f, &Policy::default()).suggestion,
            Suggestion::Eligible
        );
    }

    #[test]
    fn benzodiazepine_load_in_lorazepam_equivalents() {
        // Clonazepam 1 mg twice a day = 2 mg = 4 mg lorazepam: over 3 mg.
        let mut f = resistant();
        f.medications = vec![Medication {
            name: "clonazepam".into(),
            daily_mg: Some(2.0),
        }];
        let e = evaluate(&f, &Policy::default());
        let load = e
            .findings
            .iter()
            .find(|x| x.rule == "BenzodiazepineLoad")
            .expect("load flagged");
        assert!(
            load.explanation.contains("4.0 mg/day"),
            "{}",
            load.explanation
        );
        // Lorazepam 3 mg is at the limit, not above it.
        f.medications = vec![Medication {
            name: "lorazepam".into(),
            daily_mg: Some(3.0),
        }];
        let e = evaluate(&f, &Policy::default());
        assert!(!e.findings.iter().any(|x| x.rule == "BenzodiazepineLoad"));
        // By its brand name the same medicine is the same load: Klonopin
        // 2 mg a day is flagged like clonazepam 2 mg.
        f.medications = vec![Medication {
            name: "Klonopin".into(),
            daily_mg: Some(2.0),
        }];
        let e = evaluate(&f, &Policy::default());
        assert!(
            e.findings.iter().any(|x| x.rule == "BenzodiazepineLoad"),
            "{:?}",
            e.findings
        );
    }

    #[test]
    fn treatment_resistance_and_missing_answers_need_more_information() {
        let mut f = resistant();
        f.trials = vec![
            Trial {
                treatment: "sertraline".into(),
                adequate_dose: true,
                weeks: 8,
            },
            Trial {
                treatment: "escitalopram".into(),
                adequate_dose: true,
                weeks: 3,
            },
            Trial {
                treatment: "buspirone".into(),
                adequate_dose: false,
                weeks: 12,
            },
        ];
        let e = evaluate(&f, &Policy::default());
        assert_eq!(e.adequate_trials, 1);
        assert!(!e.treatment_resistant);
        assert_eq!(e.suggestion, Suggestion::NeedsMoreInformation);
        let mut f = resistant();
        f.unknown = vec![Condition::PregnancyOrBreastfeeding];
        assert_eq!(
            evaluate(&f, &Policy::default()).suggestion,
            Suggestion::NeedsMoreInformation
        );
        // An absolute exclusion outranks missing information.
        f.conditions = vec![Condition::KetamineCystitis];
        assert_eq!(
            evaluate(&f, &Policy::default()).suggestion,
            Suggestion::NotEligible
        );
        // Blood pressure at the gate is a condition to treat first.
        let mut f = resistant();
        f.blood_pressure = Some((160, 90));
        assert_eq!(
            evaluate(&f, &Policy::default()).suggestion,
            Suggestion::EligibleWithConditions
        );
    }
}

/// A prescriber's decision as submitted: the facts it rests on, the decision,
/// the conditions (for "eligible with conditions") and the rationale.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub facts: Facts,
    pub decision: Suggestion,
    #[serde(default)]
    pub conditions: String,
    pub rationale: String,
}

/// A decision checked against the engine's findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub facts: Facts,
    pub evaluation: Evaluation,
    pub decision: Suggestion,
    pub conditions: String,
    pub rationale: String,
}

/// Checks a decision: a rationale always; no "eligible" past an absolute
/// exclusion or with findings still open; conditions named when the decision
/// carries them. The prescriber may be stricter than the engine, never laxer
/// than an absolute exclusion.
pub fn decide(input: DecisionInput, policy: &Policy) -> Result<Decision, crate::DomainError> {
    let mut e = crate::error::Errors::new();
    let evaluation = evaluate(&input.facts, policy);
    let rationale = input.rationale.trim().to_string();
    if rationale.chars().count() < 10 {
        e.add("rationale", "is required: say why (at least a sentence)");
    }
    if rationale.chars().count() > 4000 {
        e.add("rationale", "must be at most 4000 characters");
    }
    let conditions = input.conditions.trim().to_string();
    let has = |l: Level| evaluation.findings.iter().any(|f| f.level == l);
    match input.decision {
        Suggestion::Eligible | Suggestion::EligibleWithConditions if has(Level::Absolute) => {
            let which: Vec<&str> = evaluation
                .findings
                .iter()
                .filter(|f| f.level == Level::Absolute)
                .map(|f| f.explanation.as_str())
                .collect();
            e.add(
                "decision",
                format!(
                    "cannot be eligible with an absolute exclusion: {}",
                    which.join(" ")
                ),
            );
        }
        Suggestion::Eligible | Suggestion::EligibleWithConditions
            if evaluation
                .findings
                .iter()
                .any(|f| f.level == Level::Missing && f.rule != "TreatmentResistance") =>
        {
            e.add(
                "decision",
                "an exclusion question is still open: settle it before deciding eligible",
            )
        }
        Suggestion::Eligible if has(Level::Relative) || has(Level::Interaction) => e.add(
            "decision",
            "the findings need conditions: decide \"eligible with conditions\" and name them",
        ),
        Suggestion::EligibleWithConditions if conditions.is_empty() => e.add(
            "conditions",
            "name the conditions (for example: taper clonazepam first)",
        ),
        _ => {}
    }
    if matches!(
        input.decision,
        Suggestion::Eligible | Suggestion::EligibleWithConditions
    ) && !evaluation.treatment_resistant
        && rationale.chars().count() >= 10
        && !rationale.to_lowercase().contains("resist")
    {
        e.add(
            "rationale",
            "fewer adequate trials than the policy's treatment-resistance rule: say why treatment is still indicated (mention resistance)",
        );
    }
    e.into_result()?;
    Ok(Decision {
        facts: input.facts,
        evaluation,
        decision: input.decision,
        conditions,
        rationale,
    })
}

impl Suggestion {
    pub fn as_str(self) -> &'static str {
        match self {
            Suggestion::Eligible => "eligible",
            Suggestion::EligibleWithConditions => "eligible_with_conditions",
            Suggestion::NotEligible => "not_eligible",
            Suggestion::NeedsMoreInformation => "needs_more_information",
        }
    }
    /// Whether a dose may go ahead under this decision (the first part of the gate).
    pub fn approves(self) -> bool {
        matches!(
            self,
            Suggestion::Eligible | Suggestion::EligibleWithConditions
        )
    }
}

#[cfg(test)]
mod decision_tests {
    use super::*;

    fn input(decision: Suggestion, conditions: &[Condition]) -> DecisionInput {
        DecisionInput {
            facts: Facts {
                conditions: conditions.to_vec(),
                trials: (0..2)
                    .map(|i| Trial {
                        treatment: format!("t{i}"),
                        adequate_dose: true,
                        weeks: 8,
                    })
                    .collect(),
                ..Default::default()
            },
            decision,
            conditions: String::new(),
            rationale: "Two adequate SSRI trials without remission; no exclusions found.".into(),
        }
    }

    fn field(r: Result<Decision, crate::DomainError>) -> Vec<String> {
        match r {
            Err(crate::DomainError::Invalid(e)) => e.into_iter().map(|x| x.field).collect(),
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn the_prescriber_cannot_be_laxer_than_an_absolute_exclusion() {
        let p = Policy::default();
        assert!(decide(input(Suggestion::Eligible, &[]), &p).is_ok());
        assert_eq!(
            field(decide(
                input(Suggestion::Eligible, &[Condition::KetamineCystitis]),
                &p
            )),
            ["decision"]
        );
        assert!(decide(
            input(Suggestion::NotEligible, &[Condition::KetamineCystitis]),
            &p
        )
        .is_ok());
        // Relative findings need conditions, named.
        let rel = [Condition::UncontrolledHypertension];
        assert_eq!(
            field(decide(input(Suggestion::Eligible, &rel), &p)),
            ["decision"]
        );
        assert_eq!(
            field(decide(input(Suggestion::EligibleWithConditions, &rel), &p)),
            ["conditions"]
        );
        let mut ok = input(Suggestion::EligibleWithConditions, &rel);
        ok.conditions = "BP below 140/90 on two readings before the first dose".into();
        assert!(decide(ok, &p).is_ok());
        // Stricter than the engine is always allowed.
        assert!(decide(input(Suggestion::NeedsMoreInformation, &[]), &p).is_ok());
        // An unanswered exclusion question blocks "eligible".
        let mut open = input(Suggestion::Eligible, &[]);
        open.facts.unknown = vec![Condition::PregnancyOrBreastfeeding];
        assert_eq!(field(decide(open, &p)), ["decision"]);
    }

    #[test]
    fn a_rationale_is_required_and_resistance_must_be_addressed() {
        let p = Policy::default();
        let mut i = input(Suggestion::Eligible, &[]);
        i.rationale = "ok".into();
        assert_eq!(field(decide(i, &p)), ["rationale"]);
        let mut i = input(Suggestion::Eligible, &[]);
        i.facts.trials.truncate(1);
        i.rationale = "Severe anxiety, patient keen to start.".into();
        assert_eq!(field(decide(i.clone(), &p)), ["rationale"]);
        i.rationale = "One adequate trial only, but resistance is clear from a failed second trial stopped for side effects.".into();
        // Still needs-more-information findings: the engine says so, the prescriber may still decide.
        assert!(decide(i, &p).is_ok());
    }
}
