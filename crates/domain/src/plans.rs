//! Treatment plans and the gate before them. A plan names the protocol (and
//! the version it was made under), the course, the instruments that measure
//! it with the goal (response or remission), and the integration modality.
//! Every change is a new version with a reason. No plan, and no dose order,
//! passes the gate without an approved, signed-off eligibility decision and a
//! valid consent of the current version for the protocol's route.

use serde::{Deserialize, Serialize};

use crate::assessment::Modality;
use crate::consent::ConsentState;
use crate::error::Errors;
use crate::instruments::Registry;
use crate::protocols::{Protocol, Protocols};
use crate::scheduling::CourseKind;
use crate::DomainError;

/// What the plan aims for on its target instruments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// A fall of at least the instrument's response percentage from baseline.
    Response,
    /// A score below the instrument's remission threshold.
    Remission,
}

impl Goal {
    pub fn label(self) -> &'static str {
        match self {
            Goal::Response => "Response",
            Goal::Remission => "Remission",
        }
    }
}

/// What a prescriber gives for a plan (first or new version).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// Protocol id; the plan takes its current version.
    pub protocol: String,
    pub course: CourseKind,
    /// Doses in the course; the course's usual count when absent.
    #[serde(default)]
    pub doses: Option<u16>,
    pub targets: Vec<String>,
    pub goal: Goal,
    pub modality: Modality,
    #[serde(default)]
    pub notes: String,
    /// Why this version: required for every version after the first.
    #[serde(default)]
    pub reason: String,
}

/// A checked plan, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub protocol_id: String,
    pub protocol_version: u32,
    pub protocol_hash: String,
    pub route: crate::protocols::Route,
    pub course: CourseKind,
    pub doses: u16,
    pub targets: Vec<String>,
    pub goal: Goal,
    pub modality: Modality,
    pub notes: String,
    pub reason: String,
}

/// The usual number of doses of a course.
pub fn usual_doses(course: CourseKind) -> u16 {
    match course {
        CourseKind::Induction | CourseKind::Intensive => 6,
        CourseKind::Weekly => 12,
        CourseKind::EveryOtherWeek => 6,
    }
}

/// Checks a plan against the protocols and instruments; `first` is true
/// when the patient has no plan yet (no reason needed).
pub fn check(
    input: PlanInput,
    protocols: &Protocols,
    org: &str,
    instruments: &Registry,
    first: bool,
) -> Result<(Plan, std::sync::Arc<Protocol>), DomainError> {
    let mut e = Errors::new();
    // The organisation's own approved versions and the shared ones only.
    let protocol = protocols.current_for(org, input.protocol.trim()).cloned();
    match &protocol {
        None => e.add(
            "protocol",
            format!("{:?} is not a protocol of this clinic", input.protocol),
        ),
        Some(p) if !p.courses.contains(&input.course) => e.add(
            "course",
            format!(
                "{} does not allow a {} course (it allows {})",
                p.name,
                input.course.label().to_lowercase(),
                p.courses
                    .iter()
                    .map(|c| c.label().to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        _ => {}
    }
    let doses = input.doses.unwrap_or_else(|| usual_doses(input.course));
    if !(1..=52).contains(&doses) {
        e.add("doses", "must be between 1 and 52");
    }
    if input.targets.is_empty() {
        e.add(
            "targets",
            "choose at least one instrument to measure the plan by",
        );
    }
    let mut targets: Vec<String> = vec![];
    for t in &input.targets {
        match instruments.current(t) {
            None => e.add("targets", format!("{t:?} is not an instrument")),
            Some(i) if i.outcome.is_none() => e.add(
                "targets",
                format!("{} has no response or remission rule", i.short_name),
            ),
            Some(_) if targets.contains(t) => {}
            Some(_) => targets.push(t.clone()),
        }
    }
    if input.notes.chars().count() > 4000 {
        e.add("notes", "must be at most 4000 characters");
    }
    let reason = input.reason.trim().to_string();
    if !first && reason.chars().count() < 5 {
        e.add("reason", "say why the plan changes (at least 5 characters)");
    }
    if reason.chars().count() > 1000 {
        e.add("reason", "must be at most 1000 characters");
    }
    e.into_result()?;
    let p = protocol.ok_or(DomainError::NotFound)?;
    Ok((
        Plan {
            protocol_id: p.id.clone(),
            protocol_version: p.version,
            protocol_hash: p.hash.clone(),
            route: p.route,
            course: input.course,
            doses,
            targets,
            goal: input.goal,
            modality: input.modality,
            notes: input.notes.trim().to_string(),
            reason: if first && reason.is_empty() {
                "First plan".into()
            } else {
                reason
            },
        },
        p,
    ))
}

/// The latest eligibility decision as the gate needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EligibilityState {
    Undecided,
    Approved { version: i64 },
    AwaitingSignOff { version: i64 },
    NotEligible { version: i64 },
    NeedsMoreInformation { version: i64 },
}

impl EligibilityState {
    /// From the latest decision's value and whether it is signed off.
    pub fn from_latest(latest: Option<(i64, &str, bool)>) -> EligibilityState {
        match latest {
            None => EligibilityState::Undecided,
            Some((v, "eligible" | "eligible_with_conditions", true)) => {
                EligibilityState::Approved { version: v }
            }
            Some((v, "eligible" | "eligible_with_conditions", false)) => {
                EligibilityState::AwaitingSignOff { version: v }
            }
            Some((v, "not_eligible", _)) => EligibilityState::NotEligible { version: v },
            Some((v, _, _)) => EligibilityState::NeedsMoreInformation { version: v },
        }
    }

    pub fn reason(&self) -> Option<&'static str> {
        match self {
            EligibilityState::Approved { .. } => None,
            EligibilityState::Undecided => Some("no eligibility decision"),
            EligibilityState::AwaitingSignOff { .. } => {
                Some("eligibility awaits the nurse's sign-off")
            }
            EligibilityState::NotEligible { .. } => Some("decided not eligible"),
            EligibilityState::NeedsMoreInformation { .. } => {
                Some("eligibility needs more information")
            }
        }
    }
}

/// Everything that stands between the patient and a plan or a dose, in
/// words; empty means the gate is open.
pub fn blockers(eligibility: &EligibilityState, consent: &ConsentState) -> Vec<String> {
    let mut out = vec![];
    if let Some(r) = eligibility.reason() {
        out.push(r.to_string());
    }
    if !consent.is_valid() {
        out.push(consent.reason());
    }
    out
}

/// The gate: refuses with every reason at once.
pub fn gate(eligibility: &EligibilityState, consent: &ConsentState) -> Result<(), DomainError> {
    let b = blockers(eligibility, consent);
    if b.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Conflict(format!(
            "not yet eligible: {}",
            b.join("; ")
        )))
    }
}

/// The chart's one-line status, and a class for its colour.
pub fn banner(
    eligibility: &EligibilityState,
    consent: &ConsentState,
    has_plan: bool,
) -> (String, &'static str) {
    if matches!(eligibility, EligibilityState::NotEligible { .. }) {
        return ("Not eligible".into(), "bad");
    }
    let b = blockers(eligibility, consent);
    if !b.is_empty() {
        return (format!("Not yet eligible: {}", b.join("; ")), "warn");
    }
    if has_plan {
        ("Ready for treatment: plan in place".into(), "ok")
    } else {
        ("Eligible and consented: plan to be written".into(), "ok")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> PlanInput {
        PlanInput {
            protocol: "iv-infusion".into(),
            course: CourseKind::Induction,
            doses: None,
            targets: vec!["gad7".into(), "phq9".into()],
            goal: Goal::Response,
            modality: Modality::Cbt,
            notes: String::new(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_plan_takes_the_current_protocol_version_and_checks_every_field() {
        let protocols = Protocols::builtin();
        let instruments = Registry::builtin();
        let (p, proto) = check(input(), &protocols, "org", &instruments, true).unwrap();
        assert_eq!(
            (p.protocol_version, p.doses, p.route),
            (proto.version, 6, proto.route)
        );
        assert_eq!(p.reason, "First plan");
        let bad = PlanInput {
            protocol: "laughing-gas".into(),
            doses: Some(0),
            targets: vec!["cssrs".into(), "nope".into()],
            ..input()
        };
        let DomainError::Invalid(e) =
            check(bad, &protocols, "org", &instruments, false).unwrap_err()
        else {
            panic!()
        };
        let f: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            f,
            ["protocol", "doses", "targets", "targets", "reason"],
            "{e:?}"
        );
        let sub = PlanInput {
            protocol: "sublingual".into(),
            course: CourseKind::Intensive,
            ..input()
        };
        let DomainError::Invalid(e) =
            check(sub, &protocols, "org", &instruments, true).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(e[0].field, "course");
        assert!(
            e[0].message.contains("allows weekly, every other week"),
            "{e:?}"
        );
    }

    #[test]
    fn the_gate_names_every_reason() {
        let ok = ConsentState::Valid {
            version: 1,
            expires_at: 0,
        };
        let approved = EligibilityState::Approved { version: 2 };
        assert!(gate(&approved, &ok).is_ok());
        for (e, c, words) in [
            (
                EligibilityState::Undecided,
                ok.clone(),
                "no eligibility decision",
            ),
            (
                EligibilityState::AwaitingSignOff { version: 1 },
                ok.clone(),
                "sign-off",
            ),
            (
                EligibilityState::NotEligible { version: 1 },
                ok.clone(),
                "not eligible",
            ),
            (approved.clone(), ConsentState::Missing, "consent missing"),
            (
                approved.clone(),
                ConsentState::Outdated {
                    signed_version: 1,
                    current_version: 2,
                },
                "version 2 must be signed",
            ),
            (
                approved.clone(),
                ConsentState::Withdrawn { at: 5 },
                "withdrawn",
            ),
            (
                approved.clone(),
                ConsentState::Expired { signed_at: 5 },
                "more than a year",
            ),
        ] {
            let Err(DomainError::Conflict(m)) = gate(&e, &c) else {
                panic!("{e:?} {c:?} passed")
            };
            assert!(m.contains(words), "{m}");
        }
        assert_eq!(
            banner(
                &EligibilityState::Approved { version: 1 },
                &ConsentState::Missing,
                false
            )
            .0,
            "Not yet eligible: consent missing"
        );
        assert_eq!(
            EligibilityState::from_latest(Some((3, "eligible_with_conditions", true))),
            EligibilityState::Approved { version: 3 }
        );
    }
}
