//! The front door: the public self-assessment, what its answers suggest, and
//! the lead it becomes. Pure: takes the answers and the instruments, returns
//! the validated lead and the result in plain words.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::assessment::Answer;
use crate::eligibility::{Condition, Policy};
use crate::error::Errors;
use crate::instruments::{Registry, Scored};
use crate::patients::{email, optional, person_name, phone};
use crate::{DomainError, FieldError};

/// The conditions a person may say apply to them.
pub const CONDITIONS: [(&str, &str); 7] = [
    ("gad", "Generalised anxiety (worry most days)"),
    ("social_anxiety", "Social anxiety"),
    ("panic", "Panic attacks or panic disorder"),
    ("ocd", "Obsessive-compulsive disorder (OCD)"),
    ("ptsd", "Post-traumatic stress (PTSD)"),
    ("phobia", "A phobia"),
    ("depression", "Depression"),
];

/// Treatments tried before; two or more (or a medicine and a therapy) is the
/// treatment-resistance signal these clinics look for.
pub const TREATMENTS: [(&str, &str, bool); 6] = [
    (
        "ssri_snri",
        "An antidepressant for anxiety (SSRI or SNRI, e.g. sertraline, escitalopram, venlafaxine)",
        true,
    ),
    (
        "benzodiazepine",
        "A benzodiazepine (e.g. lorazepam, alprazolam, clonazepam)",
        true,
    ),
    (
        "buspirone",
        "Buspirone, pregabalin or another anxiety medicine",
        true,
    ),
    (
        "other_medication",
        "Another medicine for anxiety or mood",
        true,
    ),
    (
        "cbt",
        "Cognitive behavioural therapy or exposure therapy",
        false,
    ),
    (
        "other_therapy",
        "Another talking therapy or counselling",
        false,
    ),
];

/// The exclusion screen of DOMAIN.md in plain words: (key, words, the
/// condition of the eligibility policy it screens for; `None` for a high
/// benzodiazepine dose, which the policy treats as relative). Whether an
/// answer is absolute ("probably not right for you") or relative (a doctor
/// must look first: "let's talk") comes from the policy, the same one the
/// eligibility engine applies.
pub const EXCLUSIONS: [(&str, &str, Option<Condition>); 10] = [
    (
        "psychosis_mania",
        "I am hearing or seeing things others do not, or have episodes of mania, right now",
        Some(Condition::ActivePsychosisOrMania),
    ),
    (
        "psychotic_history",
        "I have been diagnosed with schizophrenia or another psychotic disorder",
        Some(Condition::PsychoticDisorderHistory),
    ),
    (
        "blood_pressure",
        "I have high blood pressure that is not under control",
        Some(Condition::UncontrolledHypertension),
    ),
    (
        "heart",
        "I have a heart rhythm problem or heart disease, or have had a stroke",
        Some(Condition::ArrhythmiaOrUnstableCardiac),
    ),
    (
        "substance",
        "I currently misuse ketamine or PCP, or need detox from alcohol or drugs",
        Some(Condition::KetamineOrPcpMisuse),
    ),
    (
        "bladder",
        "I have had bladder problems from ketamine use",
        Some(Condition::KetamineCystitis),
    ),
    (
        "pregnancy",
        "I am pregnant or breastfeeding",
        Some(Condition::PregnancyOrBreastfeeding),
    ),
    (
        "head_pressure",
        "I have raised pressure in the head (for example after a serious head injury)",
        Some(Condition::RaisedIntracranialPressure),
    ),
    (
        "benzodiazepines",
        "I take a high daily dose of a benzodiazepine (more than 3 mg of lorazepam or its equal)",
        None,
    ),
    (
        "allergy",
        "I am allergic to ketamine",
        Some(Condition::KetamineAllergy),
    ),
];

/// The exclusion screen as a self-assessment answered it, by condition: a
/// statement ticked is a yes; one left unticked is a no, since the form
/// makes the person tick each that applies or say that none do. Conditions
/// the self-assessment does not ask about are absent (not asked).
pub fn screen_answers(exclusions: &[String]) -> BTreeMap<Condition, Answer> {
    EXCLUSIONS
        .iter()
        .filter_map(|(key, _, cond)| {
            let cond = (*cond)?;
            let ticked = exclusions.iter().any(|x| x == key);
            Some((cond, if ticked { Answer::Yes } else { Answer::No }))
        })
        .collect()
}

/// The treatments a self-assessment says were tried, in words.
pub fn treatments_tried(keys: &[String]) -> Vec<&'static str> {
    TREATMENTS
        .iter()
        .filter(|(k, _, _)| keys.iter().any(|x| x == k))
        .map(|(_, label, _)| *label)
        .collect()
}

/// The raw answers of the public assessment, as a form or JSON body gives them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentInput {
    #[serde(default)]
    pub gad7: BTreeMap<String, i32>,
    #[serde(default)]
    pub phq2: BTreeMap<String, i32>,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default)]
    pub treatments: Vec<String>,
    #[serde(default)]
    pub exclusions: Vec<String>,
    /// Ticked when none of the exclusions apply; an empty section is not "none".
    #[serde(default)]
    pub no_exclusions: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub date_of_birth: Option<String>,
    #[serde(default)]
    pub consent_to_contact: bool,
    /// The honeypot: hidden from people, filled in by bots.
    #[serde(default)]
    pub website: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Likely,
    Maybe,
    NotRight,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Likely => "likely",
            Outcome::Maybe => "maybe",
            Outcome::NotRight => "not_right",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Likely, Outcome::Maybe, Outcome::NotRight]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
    pub fn headline(self) -> &'static str {
        match self {
            Outcome::Likely => "Ketamine-assisted treatment is likely suitable for you",
            Outcome::Maybe => "Ketamine-assisted treatment may be suitable: let's talk",
            Outcome::NotRight => "Ketamine-assisted treatment is probably not right for you",
        }
    }
}

/// Contact details of a lead, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub given_name: String,
    pub family_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub date_of_birth: Date,
}

/// A validated assessment and what it suggests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub contact: Contact,
    pub gad7: Scored,
    pub phq2: Scored,
    pub conditions: Vec<String>,
    pub treatments: Vec<String>,
    pub exclusions: Vec<String>,
    pub outcome: Outcome,
    /// Why, in plain words.
    pub reasons: Vec<String>,
    /// Whether an answer signals risk of self-harm: crisis resources first, and a task.
    pub safety: bool,
}

/// What else helps, shown with "probably not right for you".
pub const OTHER_HELP: [&str; 4] = [
    "Talk to your GP or a psychiatrist about medicines and therapies you have not tried yet.",
    "Cognitive behavioural therapy (CBT) and exposure therapy help many people with anxiety.",
    "Regular exercise, 7-9 hours of sleep, less caffeine and alcohol, and mindfulness practice all lower anxiety.",
    "Support groups and people you trust make a difference; you do not have to manage alone.",
];

fn listed(e: &mut Errors, field: &str, values: &[String], allowed: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        if !allowed.contains(&v.as_str()) {
            e.add(field, format!("{v:?} is not one of the choices"));
        } else if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

/// Validates the answers and works out the result under the default policy.
/// `today` is the clinic's local date (age check). The honeypot is checked by
/// the caller first.
pub fn assess(
    input: &AssessmentInput,
    instruments: &Registry,
    today: Date,
) -> Result<Assessment, DomainError> {
    assess_with(input, instruments, today, &Policy::default())
}

/// [`assess`] under a clinic's own exclusion policy.
pub fn assess_with(
    input: &AssessmentInput,
    instruments: &Registry,
    today: Date,
    policy: &Policy,
) -> Result<Assessment, DomainError> {
    let mut e = Errors::new();
    let (Some(gad), Some(phq)) = (instruments.current("gad7"), instruments.current("phq2")) else {
        return Err(DomainError::Conflict(
            "the GAD-7 and PHQ-2 instruments are not loaded".into(),
        ));
    };
    let prefix = |errs: Vec<FieldError>, name: &str| -> Vec<FieldError> {
        errs.into_iter()
            .map(|f| FieldError::new(f.field.replacen("answers", name, 1), f.message))
            .collect()
    };
    let mut field_errors = Vec::new();
    let gad7 = match gad.score(&input.gad7) {
        Ok(s) => Some(s),
        Err(DomainError::Invalid(errs)) => {
            field_errors.extend(prefix(errs, "gad7"));
            None
        }
        Err(other) => return Err(other),
    };
    // The PHQ-2 file carries the PHQ-9 safety item, required of everyone.
    let phq2 = match phq.score(&input.phq2) {
        Ok(s) => Some(s),
        Err(DomainError::Invalid(errs)) => {
            field_errors.extend(prefix(errs, "phq2"));
            None
        }
        Err(other) => return Err(other),
    };
    for f in field_errors {
        e.add(&f.field, f.message);
    }
    let cond_keys: Vec<&str> = CONDITIONS.iter().map(|c| c.0).collect();
    let conditions = listed(&mut e, "conditions", &input.conditions, &cond_keys);
    let treat_keys: Vec<&str> = TREATMENTS.iter().map(|c| c.0).collect();
    let treatments = listed(&mut e, "treatments", &input.treatments, &treat_keys);
    let excl_keys: Vec<&str> = EXCLUSIONS.iter().map(|c| c.0).collect();
    let exclusions = listed(&mut e, "exclusions", &input.exclusions, &excl_keys);
    if exclusions.is_empty() && !input.no_exclusions {
        e.add(
            "exclusions",
            "tick each statement that applies to you, or tick \"None of these apply to me\"",
        );
    }
    if !exclusions.is_empty() && input.no_exclusions {
        e.add(
            "exclusions",
            "you ticked statements and also \"None of these apply to me\"; keep one",
        );
    }
    let given_name =
        e.check(person_name(&input.given_name, "given_name", true).map(Option::unwrap_or_default));
    let family_name = e
        .check(person_name(&input.family_name, "family_name", true).map(Option::unwrap_or_default));
    let mail = e.check(email(&input.email, "email"));
    let tel = e.check(phone(&input.phone, "phone"));
    if matches!((&mail, &tel), (Some(None), Some(None))) {
        e.add(
            "email",
            "give an e-mail address or a phone number so we can reach you",
        );
    }
    let dob = match input.date_of_birth.as_deref().map(str::trim) {
        None | Some("") => {
            e.add("date_of_birth", "is required");
            None
        }
        Some(s) => e.check(crate::patients::parse_birth_date(s, today)),
    };
    if !input.consent_to_contact {
        e.add(
            "consent_to_contact",
            "tick the box to let the clinic contact you about your results",
        );
    }
    let _ = e.check(optional(&input.website, "website", 200));
    e.into_result()?;
    let (Some(gad7), Some(phq2), Some(given_name), Some(family_name), Some(dob)) =
        (gad7, phq2, given_name, family_name, dob)
    else {
        return Err(DomainError::field("form", "could not be read"));
    };
    let contact = Contact {
        given_name,
        family_name,
        email: mail.flatten(),
        phone: tel.flatten(),
        date_of_birth: dob,
    };
    let (outcome, reasons) = judge(
        &contact,
        &gad7,
        &phq2,
        &treatments,
        &exclusions,
        today,
        policy,
    );
    let safety = gad7.safety || phq2.safety;
    Ok(Assessment {
        contact,
        gad7,
        phq2,
        conditions,
        treatments,
        exclusions,
        outcome,
        reasons,
        safety,
    })
}

fn judge(
    c: &Contact,
    gad7: &Scored,
    phq2: &Scored,
    treatments: &[String],
    exclusions: &[String],
    today: Date,
    policy: &Policy,
) -> (Outcome, Vec<String>) {
    let d = c.date_of_birth;
    let birthday_passed = (today.month(), today.day()) >= (d.month(), d.day());
    let age = today.year() - d.year() - i16::from(!birthday_passed);
    if age < 18 {
        return (
            Outcome::NotRight,
            vec!["The clinic treats adults aged 18 and over.".into()],
        );
    }
    let words = |key: &str| {
        EXCLUSIONS
            .iter()
            .find(|x| x.0 == key)
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    };
    let absolute: Vec<String> = exclusions
        .iter()
        .filter(|k| {
            EXCLUSIONS
                .iter()
                .any(|x| x.0 == k.as_str() && x.2.is_some_and(|c| policy.absolute.contains(&c)))
        })
        .map(|k| {
            format!(
                "You said: \"{}\". Ketamine is not safe or not advised with this.",
                words(k)
            )
        })
        .collect();
    if !absolute.is_empty() {
        return (Outcome::NotRight, absolute);
    }
    let gad_total = gad7.total.unwrap_or(0);
    let phq_total = phq2.total.unwrap_or(0);
    if gad_total < 5 && phq_total < 3 {
        return (
            Outcome::NotRight,
            vec![format!(
                "Your anxiety score ({gad_total} of 21) is in the minimal range today. Ketamine-assisted treatment is for anxiety that stays high despite other treatment."
            )],
        );
    }
    let mut reasons = Vec::new();
    let relative: Vec<&String> = exclusions.iter().collect();
    for k in &relative {
        reasons.push(format!(
            "You said: \"{}\". A doctor needs to review this with you first.",
            words(k)
        ));
    }
    let medicines = treatments
        .iter()
        .filter(|t| TREATMENTS.iter().any(|x| x.0 == t.as_str() && x.2))
        .count();
    let therapies = treatments.len() - medicines;
    let resistant = medicines >= 2 || (medicines >= 1 && therapies >= 1);
    let band = gad7
        .band
        .as_ref()
        .map(|b| b.label.to_lowercase())
        .unwrap_or_default();
    if gad_total >= 10 {
        reasons.push(format!(
            "Your anxiety score is {gad_total} of 21 ({band}): high enough that treatment could help."
        ));
    } else {
        reasons.push(format!(
            "Your anxiety score is {gad_total} of 21 ({band}). A consultation can tell whether ketamine is the right next step."
        ));
    }
    if resistant {
        reasons.push(
            "You have already tried other treatments; ketamine is often considered when they have not helped enough.".into(),
        );
    } else {
        reasons.push(
            "Ketamine is usually offered after other medicines and therapy have not helped enough; we can talk about what you have tried.".into(),
        );
    }
    let outcome = if relative.is_empty() && gad_total >= 10 && resistant {
        Outcome::Likely
    } else {
        Outcome::Maybe
    };
    (outcome, reasons)
}

/// A lead's place in the front desk's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    New,
    Contacted,
    ConsultationBooked,
    Declined,
    BecamePatient,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 5] = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::ConsultationBooked,
        LeadStatus::Declined,
        LeadStatus::BecamePatient,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Contacted => "contacted",
            LeadStatus::ConsultationBooked => "consultation_booked",
            LeadStatus::Declined => "declined",
            LeadStatus::BecamePatient => "became_patient",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            LeadStatus::New => "New",
            LeadStatus::Contacted => "Contacted",
            LeadStatus::ConsultationBooked => "Consultation booked",
            LeadStatus::Declined => "Declined",
            LeadStatus::BecamePatient => "Became patient",
        }
    }
    pub fn parse(s: &str) -> Result<LeadStatus, FieldError> {
        LeadStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "status",
                    format!(
                        "must be one of {}",
                        LeadStatus::ALL.map(|s| s.as_str()).join(", ")
                    ),
                )
            })
    }
    /// Staff may set these by hand; "became patient" comes only from converting.
    pub fn settable(self) -> bool {
        !matches!(self, LeadStatus::BecamePatient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_assessment_screen_carries_over_as_the_patient_answered_it() {
        let a = screen_answers(&["heart".to_string()]);
        assert_eq!(
            a.get(&Condition::ArrhythmiaOrUnstableCardiac),
            Some(&Answer::Yes)
        );
        // Left unticked on a form that asks to tick each that applies: no.
        assert_eq!(
            a.get(&Condition::UncontrolledHypertension),
            Some(&Answer::No)
        );
        // Never asked there: absent, not "no".
        for c in Condition::ALL {
            let asked = EXCLUSIONS.iter().any(|e| e.2 == Some(c));
            assert_eq!(a.contains_key(&c), asked, "{c:?}");
        }
        assert_eq!(
            treatments_tried(&["benzodiazepine".to_string(), "made_up".to_string()]),
            vec!["A benzodiazepine (e.g. lorazepam, alprazolam, clonazepam)"]
        );
    }

    fn input(gad: i32, phq: [i32; 3]) -> AssessmentInput {
        let mut left = gad;
        AssessmentInput {
            gad7: (1..=7)
                .map(|i| {
                    let v = left.min(3);
                    left -= v;
                    (i.to_string(), v)
                })
                .collect(),
            phq2: [("1", phq[0]), ("2", phq[1]), ("9", phq[2])]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            conditions: vec!["gad".into()],
            treatments: vec!["ssri_snri".into(), "cbt".into()],
            exclusions: vec![],
            no_exclusions: true,
            given_name: Some("Ana".into()),
            family_name: Some("Reyes".into()),
            email: Some("ana@example.org".into()),
            phone: None,
            date_of_birth: Some("1990-04-02".into()),
            consent_to_contact: true,
            website: None,
        }
    }

    fn today() -> Date {
        Date::constant(2026, 11, 23)
    }

    fn run(i: &AssessmentInput) -> Result<Assessment, DomainError> {
        assess(i, &Registry::builtin(), today())
    }

    #[test]
    fn moderate_anxiety_after_two_treatments_is_likely() {
        let a = run(&input(14, [1, 1, 0])).unwrap();
        assert_eq!(a.outcome, Outcome::Likely);
        assert_eq!(a.gad7.total, Some(14));
        assert!(!a.safety);
    }

    #[test]
    fn untried_or_mild_is_maybe_and_minimal_is_not_right() {
        let mut i = input(14, [1, 1, 0]);
        i.treatments = vec!["cbt".into()];
        assert_eq!(run(&i).unwrap().outcome, Outcome::Maybe);
        assert_eq!(run(&input(7, [1, 1, 0])).unwrap().outcome, Outcome::Maybe);
        let a = run(&input(4, [1, 1, 0])).unwrap();
        assert_eq!(a.outcome, Outcome::NotRight);
        assert!(a.reasons[0].contains("minimal"));
        // Minimal anxiety but a positive depression screen: let's talk.
        assert_eq!(run(&input(4, [2, 1, 0])).unwrap().outcome, Outcome::Maybe);
    }

    #[test]
    fn exclusions_absolute_and_relative() {
        let mut i = input(18, [1, 1, 0]);
        i.no_exclusions = false;
        i.exclusions = vec!["pregnancy".into()];
        let a = run(&i).unwrap();
        assert_eq!(a.outcome, Outcome::NotRight);
        assert!(a.reasons[0].contains("pregnant"));
        i.exclusions = vec!["blood_pressure".into()];
        let a = run(&i).unwrap();
        assert_eq!(a.outcome, Outcome::Maybe);
        assert!(a.reasons[0].contains("doctor needs to review"));
    }

    #[test]
    fn item_nine_is_a_safety_signal_whatever_the_outcome() {
        let a = run(&input(2, [0, 0, 1])).unwrap();
        assert!(a.safety);
        let a = run(&input(18, [3, 3, 3])).unwrap();
        assert!(a.safety);
    }

    #[test]
    fn the_policy_decides_absolute_or_relative() {
        let mut i = input(18, [1, 1, 0]);
        i.no_exclusions = false;
        i.exclusions = vec!["psychotic_history".into()];
        assert_eq!(run(&i).unwrap().outcome, Outcome::Maybe);
        let mut strict = Policy::default();
        strict.absolute.push(Condition::PsychoticDisorderHistory);
        let a = assess_with(&i, &Registry::builtin(), today(), &strict).unwrap();
        assert_eq!(a.outcome, Outcome::NotRight);
        // Every screen statement that names a condition maps to the policy's lists.
        let p = Policy::default();
        for (key, _, cond) in EXCLUSIONS {
            if let Some(c) = cond {
                assert!(p.absolute.contains(&c) || p.relative.contains(&c), "{key}");
            }
        }
    }

    #[test]
    fn minors_are_not_right() {
        let mut i = input(18, [1, 1, 0]);
        i.date_of_birth = Some("2010-01-01".into());
        let a = run(&i).unwrap();
        assert_eq!(a.outcome, Outcome::NotRight);
        assert!(a.reasons[0].contains("18"));
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let mut i = input(14, [1, 1, 0]);
        i.gad7.remove("3");
        i.phq2.remove("9");
        i.phq2.insert("1".into(), 7);
        i.no_exclusions = false;
        i.conditions.push("boredom".into());
        i.email = None;
        i.consent_to_contact = false;
        let Err(DomainError::Invalid(errs)) = run(&i) else {
            panic!("accepted");
        };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "gad7.3",
            "phq2.1",
            "conditions",
            "exclusions",
            "email",
            "consent_to_contact",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
    }
}
