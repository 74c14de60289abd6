//! Roles, permissions and the one table that maps them. Every handler asks this
//! table; nothing else decides who may do what.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::FieldError;

/// Staff roles, granted per clinic. A person may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    FrontDesk,
    Nurse,
    Prescriber,
    MonitoringClinician,
    Therapist,
    ClinicAdmin,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::FrontDesk,
        Role::Nurse,
        Role::Prescriber,
        Role::MonitoringClinician,
        Role::Therapist,
        Role::ClinicAdmin,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::FrontDesk => "front_desk",
            Role::Nurse => "nurse",
            Role::Prescriber => "prescriber",
            Role::MonitoringClinician => "monitoring_clinician",
            Role::Therapist => "therapist",
            Role::ClinicAdmin => "clinic_admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::FrontDesk => "Front desk",
            Role::Nurse => "Nurse",
            Role::Prescriber => "Prescriber",
            Role::MonitoringClinician => "Monitoring clinician",
            Role::Therapist => "Therapist",
            Role::ClinicAdmin => "Clinic admin",
            Role::Auditor => "Auditor",
        }
    }

    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::FrontDesk => &[
                PatientRead,
                PatientCreate,
                PatientEdit,
                ScheduleRead,
                ScheduleBook,
                LeadRead,
                LeadManage,
                BillRead,
                BillCharge,
            ],
            Role::Nurse => &[
                PatientRead,
                PatientCreate,
                PatientEdit,
                ScheduleRead,
                ScheduleBook,
                LeadRead,
                LeadManage,
                MeasureRead,
                MeasureRecord,
                TaskClose,
                EligibilitySignOff,
                AssessmentRecord,
                ConsentRecord,
                EncounterRead,
                EncounterRecord,
                DoseCheck,
                CsRead,
                CsHandle,
                CsWitness,
            ],
            Role::Prescriber => &[
                PatientRead,
                PatientCreate,
                PatientEdit,
                ScheduleRead,
                ScheduleBook,
                LeadRead,
                LeadManage,
                MeasureRead,
                MeasureRecord,
                TaskClose,
                EligibilityDecide,
                AssessmentRecord,
                ConsentRecord,
                PlanWrite,
                EncounterRead,
                EncounterRecord,
                DoseOrder,
                DoseCheck,
                CsRead,
                CsHandle,
                CsWitness,
                CsManage,
            ],
            Role::MonitoringClinician => &[
                PatientRead,
                ScheduleRead,
                MeasureRead,
                MeasureRecord,
                TaskClose,
                EncounterRead,
                EncounterRecord,
                CsWitness,
            ],
            Role::Therapist => &[
                PatientRead,
                ScheduleRead,
                ScheduleBook,
                MeasureRead,
                MeasureRecord,
                TaskClose,
            ],
            Role::ClinicAdmin => &[
                PatientRead,
                AuditRead,
                ClinicSettings,
                StaffManage,
                ScheduleRead,
                ScheduleBook,
                ScheduleManage,
                LeadRead,
                ConsentPublish,
                CsRead,
                CsManage,
                BillRead,
                BillCharge,
                BillManage,
            ],
            Role::Auditor => &[
                PatientRead,
                AuditRead,
                ScheduleRead,
                LeadRead,
                MeasureRead,
                EncounterRead,
                CsRead,
                BillRead,
            ],
        }
    }

    pub fn grants(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "role",
                    format!(
                        "must be one of {}",
                        Role::ALL.map(|r| r.as_str()).join(", ")
                    ),
                )
            })
    }
}

/// What a request may do. Checked at the handler boundary against the roles a
/// user holds in the clinic the data belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See a patient's registry entry and chart.
    PatientRead,
    /// Register a new patient.
    PatientCreate,
    /// Change demographics, contacts, emergency contact and escort.
    PatientEdit,
    /// Read the audit trail.
    AuditRead,
    /// Change clinic address, hours, closures.
    ClinicSettings,
    /// Add staff, grant and revoke roles, disable accounts.
    StaffManage,
    /// Send device readings (bedside monitors); held by device tokens only.
    DeviceIngest,
    /// See the calendar: day board, week views, availability.
    ScheduleRead,
    /// Book, move, cancel visits and series; mark no-shows; the waitlist.
    ScheduleBook,
    /// Chairs and rooms, appointment types, staff hours and time off, booking rules.
    ScheduleManage,
    /// See the leads from the public self-assessment.
    LeadRead,
    /// Work the lead queue: status, notes, turn a lead into a patient.
    LeadManage,
    /// See questionnaire and rating scores and their trends.
    MeasureRead,
    /// Enter clinician ratings and send questionnaire links.
    MeasureRecord,
    /// Close a safety task with a note (clinicians only).
    TaskClose,
    /// Decide a patient's eligibility (prescribers).
    EligibilityDecide,
    /// Sign off the pre-treatment assessment behind a decision (nurses).
    EligibilitySignOff,
    /// Record the pre-treatment assessment's parts; send its patient link (nurses, prescribers).
    AssessmentRecord,
    /// Take a consent signature in the clinic, witness it, send a consent link, record a withdrawal.
    ConsentRecord,
    /// Publish a new version of a clinic's consent document (admins).
    ConsentPublish,
    /// Write a treatment plan (prescribers).
    PlanWrite,
    /// See the floor board and a visit's record (clinical staff, auditors).
    EncounterRead,
    /// Run a visit: check in, checklist, readings, timeline, alerts, medicines, recovery, discharge.
    EncounterRecord,
    /// Order a dose, override a pre-dose item, sign the session note (prescribers).
    DoseOrder,
    /// Check a dose order as the second person and record the vial drawn.
    DoseCheck,
    /// See the Schedule III record: stock, ledger, counts, inventories, cases, reports.
    CsRead,
    /// Receive stock, draw for a dose, record what was given and wasted, move,
    /// count and take inventories (nurses, prescribers).
    CsHandle,
    /// Witness a waste or a destruction as the second licensed person.
    CsWitness,
    /// DEA registrations, storage places, products, adjustments, case resolutions.
    CsManage,
    /// See invoices, payments, packages, estimates and billing reports.
    BillRead,
    /// Invoice visits, take payments, sell packages, give estimates, print superbills (front desk, admins).
    BillCharge,
    /// Price lists, offers, package products, billing identity, refunds and credit notes (admins).
    BillManage,
}

/// Who is acting: a signed-in staff member (browser session or user token) or a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        user_id: crate::ids::UserId,
        grants: Vec<(crate::ids::ClinicId, Role)>,
    },
    Device {
        token_id: crate::ids::TokenId,
        clinic_id: crate::ids::ClinicId,
    },
}

impl Principal {
    /// Whether the principal may do `p` in `clinic`.
    pub fn may(&self, p: Permission, clinic: crate::ids::ClinicId) -> bool {
        match self {
            Principal::User { grants, .. } => {
                grants.iter().any(|(c, r)| *c == clinic && r.grants(p))
            }
            Principal::Device { clinic_id, .. } => {
                *clinic_id == clinic && p == Permission::DeviceIngest
            }
        }
    }

    /// The clinics where the principal may do `p`.
    pub fn clinics_with(&self, p: Permission) -> Vec<crate::ids::ClinicId> {
        let mut out: Vec<_> = match self {
            Principal::User { grants, .. } => grants
                .iter()
                .filter(|(_, r)| r.grants(p))
                .map(|(c, _)| *c)
                .collect(),
            Principal::Device { clinic_id, .. } => {
                if p == Permission::DeviceIngest {
                    vec![*clinic_id]
                } else {
                    vec![]
                }
            }
        };
        out.sort();
        out.dedup();
        out
    }

    /// The role a user acts in for an action in a clinic (recorded in the audit
    /// trail): the first granted role there that holds the permission.
    pub fn acting_role(&self, p: Permission, clinic: crate::ids::ClinicId) -> Option<Role> {
        match self {
            Principal::User { grants, .. } => grants
                .iter()
                .filter(|(c, r)| *c == clinic && r.grants(p))
                .map(|(_, r)| *r)
                .min(),
            Principal::Device { .. } => None,
        }
    }

    pub fn user_id(&self) -> Option<crate::ids::UserId> {
        match self {
            Principal::User { user_id, .. } => Some(*user_id),
            Principal::Device { .. } => None,
        }
    }
}

/// Password rules for staff accounts: long enough to resist guessing, short
/// enough that Argon2 work stays bounded, not built on the account's own
/// names (`names`: the username, the display name), and not guessable:
/// zxcvbn's lists of common and breached passwords, words, names and
/// patterns (`aaaaaaaaaaaa`, `password1234`) ship with the binary.
pub fn check_new_password(pw: &str, names: &[&str]) -> Result<(), FieldError> {
    let n = pw.chars().count();
    if n < 12 {
        return Err(FieldError::new(
            "password",
            "must be at least 12 characters",
        ));
    }
    if n > 256 {
        return Err(FieldError::new(
            "password",
            "must be at most 256 characters",
        ));
    }
    let lower = pw.to_lowercase();
    let mut inputs: Vec<&str> = vec!["stillwater", "ketamine", "clinic"];
    for name in names {
        let name = name.trim();
        if name.chars().count() >= 3 && lower.contains(&name.to_lowercase()) {
            return Err(FieldError::new(
                "password",
                "must not contain the username or the person's name",
            ));
        }
        inputs.extend(name.split_whitespace());
        inputs.push(name);
    }
    if zxcvbn::zxcvbn(pw, &inputs).score() < zxcvbn::Score::Three {
        return Err(FieldError::new(
            "password",
            "is too easy to guess (a common or breached password, a word with digits, \
             a repeated pattern or a name); try four unrelated words",
        ));
    }
    Ok(())
}

/// Usernames: lower-case letters, digits, dot, dash, underscore; 3-64 characters.
pub fn parse_username(s: &str) -> Result<String, FieldError> {
    let s = s.trim().to_lowercase();
    if s.len() < 3 || s.len() > 64 {
        return Err(FieldError::new("username", "must be 3 to 64 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
    {
        return Err(FieldError::new(
            "username",
            "may contain only letters, digits, '.', '-' and '_'",
        ));
    }
    Ok(s)
}

/// Account lockout: after this many failures in a row the account is locked
/// for `LOCKOUT_MINUTES`. Defaults; clinics may change them in configuration.
pub const DEFAULT_MAX_FAILED_LOGINS: i64 = 5;
pub const DEFAULT_LOCKOUT_MINUTES: i64 = 15;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClinicId;

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn permissions_are_per_clinic() {
        let a = ClinicId::new();
        let b = ClinicId::new();
        let p = Principal::User {
            user_id: crate::ids::UserId::new(),
            grants: vec![(a, Role::FrontDesk), (b, Role::Auditor)],
        };
        assert!(p.may(Permission::PatientCreate, a));
        assert!(!p.may(Permission::PatientCreate, b));
        assert!(p.may(Permission::AuditRead, b));
        assert!(!p.may(Permission::AuditRead, a));
        assert_eq!(p.clinics_with(Permission::PatientRead).len(), 2);
    }

    #[test]
    fn only_admins_manage_staff_and_devices_only_ingest() {
        for r in Role::ALL {
            assert_eq!(r.grants(Permission::StaffManage), r == Role::ClinicAdmin);
            assert!(!r.grants(Permission::DeviceIngest));
        }
        let c = ClinicId::new();
        let d = Principal::Device {
            token_id: crate::ids::TokenId::new(),
            clinic_id: c,
        };
        assert!(d.may(Permission::DeviceIngest, c));
        assert!(!d.may(Permission::PatientRead, c));
    }

    #[test]
    fn usernames_and_passwords() {
        assert_eq!(parse_username(" Nina.Nurse ").unwrap(), "nina.nurse");
        assert!(parse_username("a b").is_err());
        assert!(parse_username("x").is_err());
        assert!(check_new_password("short", &[]).is_err());
        assert!(check_new_password("correct horse battery", &[]).is_ok());
        // Long enough, and guessed at once.
        for weak in [
            "aaaaaaaaaaaa",
            "password1234",
            "123456789012",
            "qwertyuiopas",
            "iloveyou2024!",
            "Password123!",
        ] {
            assert!(check_new_password(weak, &[]).is_err(), "{weak}");
        }
        // The account's own names.
        let e = check_new_password("nina.nurse-2026-winter", &["nina.nurse", "Nina Nurse"])
            .unwrap_err();
        assert!(e.message.contains("username"), "{}", e.message);
        assert!(
            check_new_password("Nina Nurse rocks in 2026", &["nina.nurse", "Nina Nurse"]).is_err()
        );
    }
}
