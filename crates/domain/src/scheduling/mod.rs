//! Scheduling: chairs, rooms and staff as resources; appointment types made of
//! phases; the search for bookable slots and whole series; the claims that
//! let the database refuse a double booking.
//!
//! Everything here is pure. The store loads a [`Calendar`] (clinic hours,
//! closures, resources, staff hours, who is busy when) and this module decides.
//! Time is cut into 5-minute granules; a booking claims, per granule, a seat of
//! each chair, person and patient it uses. A chair or a patient has one seat;
//! a nurse has as many seats as the nurse-to-chair ratio allows, so the same
//! unique index that stops a double-booked chair also stops a fourth chair for
//! a nurse whose ratio is 1:3.

pub mod portal;
mod search;
mod series;

pub use search::*;
pub use series::*;

use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::Errors;
use crate::ids::ResourceId;
use crate::FieldError;

/// Length of the time unit that claims are made in.
pub const GRANULE_MIN: i64 = 5;
pub const GRANULE_MICROS: i64 = GRANULE_MIN * 60 * 1_000_000;
/// Seats a shared role (nurse, monitoring clinician) has per granule; an
/// exclusive task takes all of them, a shared one takes one within the ratio.
pub const MAX_SEATS: u8 = 8;

pub fn granule_of(micros: i64) -> i64 {
    micros.div_euclid(GRANULE_MICROS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A treatment chair (or bed) where a patient is dosed and recovers.
    Chair,
    /// A consultation or therapy room.
    Room,
    /// A video room for telehealth visits.
    Telehealth,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 3] = [
        ResourceKind::Chair,
        ResourceKind::Room,
        ResourceKind::Telehealth,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Chair => "chair",
            ResourceKind::Room => "room",
            ResourceKind::Telehealth => "telehealth",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::Chair => "Treatment chair",
            ResourceKind::Room => "Consultation room",
            ResourceKind::Telehealth => "Telehealth room",
        }
    }
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| FieldError::new("kind", "must be chair, room or telehealth"))
    }
}

/// What a chair or room can do. A phase asks for some; a resource that has
/// at least those may serve it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub iv: bool,
    #[serde(default)]
    pub monitored: bool,
    #[serde(default)]
    pub private: bool,
}

impl Capabilities {
    pub fn covers(&self, need: &Capabilities) -> bool {
        (self.iv || !need.iv)
            && (self.monitored || !need.monitored)
            && (self.private || !need.private)
    }
    pub fn union(&self, o: &Capabilities) -> Capabilities {
        Capabilities {
            iv: self.iv || o.iv,
            monitored: self.monitored || o.monitored,
            private: self.private || o.private,
        }
    }
    pub fn describe(&self) -> String {
        let mut v = vec![];
        if self.iv {
            v.push("IV");
        }
        if self.monitored {
            v.push("monitored");
        }
        if self.private {
            v.push("private");
        }
        v.join(", ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    pub id: ResourceId,
    pub kind: ResourceKind,
    pub name: String,
    pub caps: Capabilities,
}

/// Checks a resource name.
pub fn resource_name(s: &str) -> Result<String, FieldError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 60 {
        return Err(FieldError::new(
            "name",
            "is required, at most 60 characters",
        ));
    }
    Ok(s.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    CheckIn,
    Dosing,
    Recovery,
    Observation,
    Consultation,
    Assessment,
    Therapy,
    FollowUp,
}

impl PhaseKind {
    pub fn label(self) -> &'static str {
        match self {
            PhaseKind::CheckIn => "Check-in and pre-dose",
            PhaseKind::Dosing => "Dosing",
            PhaseKind::Recovery => "Recovery",
            PhaseKind::Observation => "Observation",
            PhaseKind::Consultation => "Consultation",
            PhaseKind::Assessment => "Assessment",
            PhaseKind::Therapy => "Therapy",
            PhaseKind::FollowUp => "Follow-up",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::CheckIn => "check_in",
            PhaseKind::Dosing => "dosing",
            PhaseKind::Recovery => "recovery",
            PhaseKind::Observation => "observation",
            PhaseKind::Consultation => "consultation",
            PhaseKind::Assessment => "assessment",
            PhaseKind::Therapy => "therapy",
            PhaseKind::FollowUp => "follow_up",
        }
    }
}

/// Where a phase happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// Nowhere the clinic books (e.g. a phone call).
    #[default]
    None,
    Chair,
    Room,
    Telehealth,
}

impl Place {
    pub fn kind(self) -> Option<ResourceKind> {
        match self {
            Place::None => None,
            Place::Chair => Some(ResourceKind::Chair),
            Place::Room => Some(ResourceKind::Room),
            Place::Telehealth => Some(ResourceKind::Telehealth),
        }
    }
}

/// One person of a role for a phase. `shared` means the person may attend
/// other patients at the same time, up to the role's ratio (a nurse watching
/// three recovering patients); otherwise the phase has them to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffNeed {
    pub role: Role,
    #[serde(default)]
    pub shared: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseSpec {
    pub kind: PhaseKind,
    pub minutes: u16,
    #[serde(default)]
    pub place: Place,
    #[serde(default)]
    pub needs: Capabilities,
    #[serde(default)]
    pub staff: Vec<StaffNeed>,
}

/// What a kind of visit is made of and what the patient must know before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentType {
    /// Stable short code, e.g. `iv_infusion`.
    pub code: String,
    pub name: String,
    pub phases: Vec<PhaseSpec>,
    /// Minutes the chair or room stays blocked after the last phase that
    /// uses it (cleaning, turnover).
    #[serde(default)]
    pub buffer_after_min: u16,
    /// Pre-visit instructions sent with reminders.
    #[serde(default)]
    pub instructions: String,
    /// A ketamine dose is given in this visit (series count these).
    #[serde(default)]
    pub dose: bool,
    /// The public may book it (the free consultation).
    #[serde(default)]
    pub public: bool,
    /// Patients may book it themselves in the portal.
    #[serde(default)]
    pub portal: bool,
}

/// Roles that can be booked for a phase.
pub const BOOKABLE_ROLES: [Role; 4] = [
    Role::Nurse,
    Role::Prescriber,
    Role::MonitoringClinician,
    Role::Therapist,
];

/// How many seats a role has per person: roles that share attention by a
/// ratio have [`MAX_SEATS`]; others are one patient at a time.
pub fn seats_for(role: Role) -> u8 {
    match role {
        Role::Nurse | Role::MonitoringClinician => MAX_SEATS,
        _ => 1,
    }
}

impl AppointmentType {
    /// Held by video: every phase is a telehealth one (the patient joins
    /// from home by the clinic's meeting link).
    pub fn is_video(&self) -> bool {
        !self.phases.is_empty() && self.phases.iter().all(|p| p.place == Place::Telehealth)
    }

    pub fn total_minutes(&self) -> i64 {
        self.phases.iter().map(|p| i64::from(p.minutes)).sum()
    }

    /// Checks a type (from a settings form, the API or a stored row).
    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let mut e = Errors::new();
        let code_ok = !self.code.is_empty()
            && self.code.len() <= 40
            && self
                .code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !code_ok {
            e.add(
                "code",
                "must be 1-40 lower-case letters, digits or underscores",
            );
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 80 {
            e.add("name", "is required, at most 80 characters");
        }
        if self.phases.is_empty() || self.phases.len() > 8 {
            e.add("phases", "a visit has 1 to 8 phases");
        }
        for (i, p) in self.phases.iter().enumerate() {
            let f = format!("phases[{i}]");
            if p.minutes == 0 || i64::from(p.minutes) % GRANULE_MIN != 0 || p.minutes > 480 {
                e.add(
                    &format!("{f}.minutes"),
                    "must be a multiple of 5 between 5 and 480",
                );
            }
            for s in &p.staff {
                if !BOOKABLE_ROLES.contains(&s.role) {
                    e.add(
                        &format!("{f}.staff"),
                        format!("{} cannot be booked for a phase", s.role.label()),
                    );
                }
            }
            let mut roles: Vec<_> = p.staff.iter().map(|s| s.role).collect();
            roles.sort();
            roles.dedup();
            if roles.len() != p.staff.len() {
                e.add(&format!("{f}.staff"), "names a role twice");
            }
            if p.place != Place::Chair && p.needs != Capabilities::default() {
                e.add(
                    &format!("{f}.needs"),
                    "only a chair phase can ask for IV or monitoring",
                );
            }
        }
        if self.total_minutes() > 12 * 60 {
            e.add("phases", "a visit lasts at most 12 hours");
        }
        if self.buffer_after_min > 120 || i64::from(self.buffer_after_min) % GRANULE_MIN != 0 {
            e.add(
                "buffer_after_min",
                "must be a multiple of 5 up to 120 minutes",
            );
        }
        if self.instructions.chars().count() > 2000 {
            e.add("instructions", "at most 2000 characters");
        }
        e.into_result()
    }

    /// The built-in types a new clinic starts with (DOMAIN.md: the visit is
    /// check and vitals, a 40-45 minute dose, then recovery).
    pub fn defaults() -> Vec<AppointmentType> {
        use PhaseKind::*;
        let chair = Capabilities {
            iv: false,
            monitored: true,
            private: false,
        };
        let iv_chair = Capabilities { iv: true, ..chair };
        let nurse = StaffNeed {
            role: Role::Nurse,
            shared: true,
        };
        let monitor = StaffNeed {
            role: Role::MonitoringClinician,
            shared: true,
        };
        let excl = |role| StaffNeed {
            role,
            shared: false,
        };
        let ph = |kind, minutes, place, needs, staff: Vec<StaffNeed>| PhaseSpec {
            kind,
            minutes,
            place,
            needs,
            staff,
        };
        let dosing_instructions = "Nothing to eat for 6 hours and nothing to drink for 2 hours before your visit. \
            Bring the adult who will take you home: you may not drive until the next day. \
            Wear comfortable clothes and take your usual medicines unless your prescriber said otherwise.";
        vec![
            AppointmentType {
                code: "iv_infusion".into(),
                name: "IV infusion".into(),
                phases: vec![
                    ph(CheckIn, 20, Place::Chair, iv_chair, vec![nurse]),
                    ph(Dosing, 45, Place::Chair, iv_chair, vec![nurse, monitor]),
                    ph(Recovery, 45, Place::Chair, iv_chair, vec![nurse]),
                ],
                buffer_after_min: 10,
                instructions: dosing_instructions.into(),
                dose: true,
                public: false,
                portal: false,
            },
            AppointmentType {
                code: "im_injection".into(),
                name: "IM or SC injection".into(),
                phases: vec![
                    ph(CheckIn, 15, Place::Chair, chair, vec![nurse]),
                    ph(Dosing, 15, Place::Chair, chair, vec![nurse, monitor]),
                    ph(Recovery, 60, Place::Chair, chair, vec![nurse]),
                ],
                buffer_after_min: 10,
                instructions: dosing_instructions.into(),
                dose: true,
                public: false,
                portal: false,
            },
            AppointmentType {
                code: "intranasal".into(),
                name: "Intranasal dose with observation".into(),
                phases: vec![
                    ph(CheckIn, 15, Place::Chair, chair, vec![nurse]),
                    ph(Dosing, 15, Place::Chair, chair, vec![nurse, monitor]),
                    ph(Observation, 120, Place::Chair, chair, vec![nurse]),
                ],
                buffer_after_min: 10,
                instructions: dosing_instructions.into(),
                dose: true,
                public: false,
                portal: false,
            },
            AppointmentType {
                code: "consultation".into(),
                name: "Free consultation (in person)".into(),
                phases: vec![ph(
                    Consultation,
                    30,
                    Place::Room,
                    Capabilities::default(),
                    vec![excl(Role::Nurse)],
                )],
                buffer_after_min: 0,
                instructions:
                    "Bring a list of the medicines you take and the treatments you have tried."
                        .into(),
                dose: false,
                public: true,
                portal: true,
            },
            AppointmentType {
                code: "consultation_video".into(),
                name: "Free consultation (video)".into(),
                phases: vec![ph(
                    Consultation,
                    30,
                    Place::Telehealth,
                    Capabilities::default(),
                    vec![excl(Role::Nurse)],
                )],
                buffer_after_min: 0,
                instructions:
                    "We will e-mail the video link the day before. Find a quiet, private place."
                        .into(),
                dose: false,
                public: true,
                portal: true,
            },
            AppointmentType {
                code: "intake".into(),
                name: "Intake assessment".into(),
                phases: vec![
                    ph(
                        Assessment,
                        30,
                        Place::Room,
                        Capabilities::default(),
                        vec![excl(Role::Nurse)],
                    ),
                    ph(
                        Assessment,
                        60,
                        Place::Room,
                        Capabilities::default(),
                        vec![excl(Role::Prescriber)],
                    ),
                ],
                buffer_after_min: 0,
                instructions:
                    "Bring photo ID, your medication list and any records from previous treatment."
                        .into(),
                dose: false,
                public: false,
                portal: false,
            },
            AppointmentType {
                code: "integration".into(),
                name: "Integration session".into(),
                phases: vec![ph(
                    Therapy,
                    60,
                    Place::Room,
                    Capabilities::default(),
                    vec![excl(Role::Therapist)],
                )],
                buffer_after_min: 0,
                instructions: "Bring your journal or notes from your last treatment.".into(),
                dose: false,
                public: false,
                portal: true,
            },
            AppointmentType {
                code: "follow_up".into(),
                name: "Follow-up".into(),
                phases: vec![ph(
                    FollowUp,
                    30,
                    Place::Room,
                    Capabilities::default(),
                    vec![excl(Role::Prescriber)],
                )],
                buffer_after_min: 0,
                instructions: "We will ask you to fill in a short questionnaire before the visit."
                    .into(),
                dose: false,
                public: false,
                portal: true,
            },
        ]
    }
}

/// A clinic's booking rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulingRules {
    /// Chairs one nurse may attend at once.
    pub nurse_ratio: u8,
    /// Dosing chairs one monitoring clinician may cover at once.
    pub monitor_ratio: u8,
    /// Offered start times fall on multiples of this many minutes.
    pub slot_step_min: u16,
    /// The earliest a visit may start, in minutes from now.
    pub min_notice_min: u32,
    /// How far ahead bookings may be made.
    pub horizon_days: u16,
    /// A cancellation this close to the start counts as late.
    pub late_cancel_hours: u16,
}

impl Default for SchedulingRules {
    fn default() -> Self {
        SchedulingRules {
            nurse_ratio: 3,
            monitor_ratio: 4,
            slot_step_min: 15,
            min_notice_min: 60,
            horizon_days: 400,
            late_cancel_hours: 24,
        }
    }
}

impl SchedulingRules {
    pub fn validate(&self) -> Result<(), crate::DomainError> {
        let mut e = Errors::new();
        if !(1..=MAX_SEATS).contains(&self.nurse_ratio) {
            e.add("nurse_ratio", format!("must be 1 to {MAX_SEATS}"));
        }
        if !(1..=MAX_SEATS).contains(&self.monitor_ratio) {
            e.add("monitor_ratio", format!("must be 1 to {MAX_SEATS}"));
        }
        if ![5, 10, 15, 20, 30, 60].contains(&self.slot_step_min) {
            e.add("slot_step_min", "must be 5, 10, 15, 20, 30 or 60");
        }
        if self.min_notice_min > 14 * 24 * 60 {
            e.add("min_notice_min", "at most 14 days");
        }
        if !(1..=730).contains(&self.horizon_days) {
            e.add("horizon_days", "must be 1 to 730");
        }
        if self.late_cancel_hours > 168 {
            e.add("late_cancel_hours", "at most 168 hours");
        }
        e.into_result()
    }

    /// Seats of a shared role one person may fill at once.
    pub fn ratio_for(&self, role: Role) -> u8 {
        match role {
            Role::Nurse => self.nurse_ratio,
            Role::MonitoringClinician => self.monitor_ratio,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_infusion_is_about_two_hours() {
        for t in AppointmentType::defaults() {
            t.validate().unwrap_or_else(|e| panic!("{}: {e}", t.code));
        }
        let iv = &AppointmentType::defaults()[0];
        assert_eq!(iv.code, "iv_infusion");
        assert_eq!(iv.total_minutes(), 110);
        SchedulingRules::default().validate().unwrap();
    }

    #[test]
    fn bad_types_name_the_field() {
        let mut t = AppointmentType::defaults()[0].clone();
        t.code = "IV Infusion".into();
        t.phases[1].minutes = 7;
        t.phases[0].staff.push(StaffNeed {
            role: Role::FrontDesk,
            shared: false,
        });
        let Err(crate::DomainError::Invalid(errs)) = t.validate() else {
            panic!("accepted")
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"code"), "{fields:?}");
        assert!(fields.contains(&"phases[1].minutes"), "{fields:?}");
        assert!(fields.contains(&"phases[0].staff"), "{fields:?}");
    }

    #[test]
    fn capabilities_cover() {
        let iv = Capabilities {
            iv: true,
            monitored: true,
            private: false,
        };
        assert!(iv.covers(&Capabilities {
            iv: true,
            ..Default::default()
        }));
        assert!(!Capabilities::default().covers(&iv));
    }
}

#[cfg(test)]
mod search_tests;
