//! The audit trail: who did what to which patient's data, when and from where.
//! Rows form a hash chain so that any edit or deletion is detectable.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What happened. Stored as the text of `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    LoginSuccess,
    LoginFailure,
    Logout,
    PasswordChange,
    TotpEnable,
    PatientCreate,
    PatientRead,
    PatientUpdate,
    PatientSearch,
    AuditRead,
    AuditExport,
    AuditArchive,
    UserCreate,
    UserDisable,
    RoleGrant,
    RoleRevoke,
    TokenCreate,
    TokenRevoke,
    ClinicUpdate,
    AppointmentRead,
    AppointmentCreate,
    AppointmentUpdate,
    SeriesCreate,
    ScheduleSettings,
    FeedCreate,
    FeedRevoke,
    FeedRead,
    LeadCreate,
    LeadRead,
    LeadUpdate,
    LeadConvert,
    ResponseCreate,
    ResponseRead,
    LinkCreate,
    TaskClose,
    EligibilityRead,
    EligibilityDecide,
    EligibilitySignOff,
    AssessmentRead,
    AssessmentRecord,
    ConsentRead,
    ConsentSign,
    ConsentWitness,
    ConsentWithdraw,
    ConsentPublish,
    PlanRead,
    PlanCreate,
    EncounterOpen,
    EncounterRead,
    IntentionWrite,
    FloorRead,
    ChecklistRecord,
    DoseOrder,
    DoseCheck,
    DoseAdminister,
    ObservationRecord,
    ObservationIngest,
    AlertAcknowledge,
    MedicationRecord,
    AdverseEventRecord,
    RecoveryScore,
    EncounterDischarge,
    NoteSign,
    NoteAddendum,
    NoteExport,
    CsRead,
    CsReport,
    CsSettings,
    CsMovement,
    CsWitnessRefused,
    CsCount,
    CsInventory,
    CsCaseOpen,
    CsCaseResolve,
    CsCaseFiling,
    BillRead,
    BillSettings,
    BillInvoice,
    BillPayment,
    BillRefund,
    BillCredit,
    BillPackage,
    BillEstimate,
    BillPrint,
    PortalLink,
    PortalSignIn,
    PortalSignOut,
    ProtocolCreate,
    ProtocolApprove,
    MedicalDirectorSet,
    /// A session handed to a patient on a tablet (kiosk mode).
    SessionHandOver,
    /// A handed-over session taken back by staff with their password.
    SessionTakeBack,
}

impl Action {
    pub const ALL: [Action; 92] = [
        Action::LoginSuccess,
        Action::LoginFailure,
        Action::Logout,
        Action::PasswordChange,
        Action::TotpEnable,
        Action::PatientCreate,
        Action::PatientRead,
        Action::PatientUpdate,
        Action::PatientSearch,
        Action::AuditRead,
        Action::AuditExport,
        Action::AuditArchive,
        Action::UserCreate,
        Action::UserDisable,
        Action::RoleGrant,
        Action::RoleRevoke,
        Action::TokenCreate,
        Action::TokenRevoke,
        Action::ClinicUpdate,
        Action::AppointmentRead,
        Action::AppointmentCreate,
        Action::AppointmentUpdate,
        Action::SeriesCreate,
        Action::ScheduleSettings,
        Action::FeedCreate,
        Action::FeedRevoke,
        Action::FeedRead,
        Action::LeadCreate,
        Action::LeadRead,
        Action::LeadUpdate,
        Action::LeadConvert,
        Action::ResponseCreate,
        Action::ResponseRead,
        Action::LinkCreate,
        Action::TaskClose,
        Action::EligibilityRead,
        Action::EligibilityDecide,
        Action::EligibilitySignOff,
        Action::AssessmentRead,
        Action::AssessmentRecord,
        Action::ConsentRead,
        Action::ConsentSign,
        Action::ConsentWitness,
        Action::ConsentWithdraw,
        Action::ConsentPublish,
        Action::PlanRead,
        Action::PlanCreate,
        Action::EncounterOpen,
        Action::EncounterRead,
        Action::IntentionWrite,
        Action::FloorRead,
        Action::ChecklistRecord,
        Action::DoseOrder,
        Action::DoseCheck,
        Action::DoseAdminister,
        Action::ObservationRecord,
        Action::ObservationIngest,
        Action::AlertAcknowledge,
        Action::MedicationRecord,
        Action::AdverseEventRecord,
        Action::RecoveryScore,
        Action::EncounterDischarge,
        Action::NoteSign,
        Action::NoteAddendum,
        Action::NoteExport,
        Action::CsRead,
        Action::CsReport,
        Action::CsSettings,
        Action::CsMovement,
        Action::CsWitnessRefused,
        Action::CsCount,
        Action::CsInventory,
        Action::CsCaseOpen,
        Action::CsCaseResolve,
        Action::CsCaseFiling,
        Action::BillRead,
        Action::BillSettings,
        Action::BillInvoice,
        Action::BillPayment,
        Action::BillRefund,
        Action::BillCredit,
        Action::BillPackage,
        Action::BillEstimate,
        Action::BillPrint,
        Action::PortalLink,
        Action::PortalSignIn,
        Action::PortalSignOut,
        Action::ProtocolCreate,
        Action::ProtocolApprove,
        Action::MedicalDirectorSet,
        Action::SessionHandOver,
        Action::SessionTakeBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::LoginSuccess => "login.success",
            Action::LoginFailure => "login.failure",
            Action::Logout => "logout",
            Action::PasswordChange => "password.change",
            Action::TotpEnable => "totp.enable",
            Action::PatientCreate => "patient.create",
            Action::PatientRead => "patient.read",
            Action::PatientUpdate => "patient.update",
            Action::PatientSearch => "patient.search",
            Action::AuditRead => "audit.read",
            Action::AuditExport => "audit.export",
            Action::AuditArchive => "audit.archive",
            Action::UserCreate => "user.create",
            Action::UserDisable => "user.disable",
            Action::RoleGrant => "role.grant",
            Action::RoleRevoke => "role.revoke",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::ClinicUpdate => "clinic.update",
            Action::AppointmentRead => "appointment.read",
            Action::AppointmentCreate => "appointment.create",
            Action::AppointmentUpdate => "appointment.update",
            Action::SeriesCreate => "series.create",
            Action::ScheduleSettings => "schedule.settings",
            Action::FeedCreate => "calendar_feed.create",
            Action::FeedRevoke => "calendar_feed.revoke",
            Action::FeedRead => "calendar_feed.read",
            Action::LeadCreate => "lead.create",
            Action::LeadRead => "lead.read",
            Action::LeadUpdate => "lead.update",
            Action::LeadConvert => "lead.convert",
            Action::ResponseCreate => "questionnaire_response.create",
            Action::ResponseRead => "questionnaire_response.read",
            Action::LinkCreate => "questionnaire_link.create",
            Action::TaskClose => "task.close",
            Action::EligibilityRead => "eligibility.read",
            Action::EligibilityDecide => "eligibility.decide",
            Action::EligibilitySignOff => "eligibility.sign_off",
            Action::AssessmentRead => "assessment.read",
            Action::AssessmentRecord => "assessment.record",
            Action::ConsentRead => "consent.read",
            Action::ConsentSign => "consent.sign",
            Action::ConsentWitness => "consent.witness",
            Action::ConsentWithdraw => "consent.withdraw",
            Action::ConsentPublish => "consent.publish",
            Action::PlanRead => "plan.read",
            Action::PlanCreate => "plan.create",
            Action::EncounterOpen => "encounter.open",
            Action::EncounterRead => "encounter.read",
            Action::IntentionWrite => "intention.write",
            Action::FloorRead => "floor.read",
            Action::ChecklistRecord => "checklist.record",
            Action::DoseOrder => "dose.order",
            Action::DoseCheck => "dose.check",
            Action::DoseAdminister => "dose.administer",
            Action::ObservationRecord => "observation.record",
            Action::ObservationIngest => "observation.ingest",
            Action::AlertAcknowledge => "alert.acknowledge",
            Action::MedicationRecord => "medication.record",
            Action::AdverseEventRecord => "adverse_event.record",
            Action::RecoveryScore => "recovery.score",
            Action::EncounterDischarge => "encounter.discharge",
            Action::NoteSign => "note.sign",
            Action::NoteAddendum => "note.addendum",
            Action::NoteExport => "note.export",
            Action::CsRead => "cs.read",
            Action::CsReport => "cs.report",
            Action::CsSettings => "cs.settings",
            Action::CsMovement => "cs.movement",
            Action::CsWitnessRefused => "cs.witness_refused",
            Action::CsCount => "cs.count",
            Action::CsInventory => "cs.inventory",
            Action::CsCaseOpen => "cs.case_open",
            Action::CsCaseResolve => "cs.case_resolve",
            Action::CsCaseFiling => "cs.case_filing",
            Action::BillRead => "bill.read",
            Action::BillSettings => "bill.settings",
            Action::BillInvoice => "bill.invoice",
            Action::BillPayment => "bill.payment",
            Action::BillRefund => "bill.refund",
            Action::BillCredit => "bill.credit",
            Action::BillPackage => "bill.package",
            Action::BillEstimate => "bill.estimate",
            Action::BillPrint => "bill.print",
            Action::PortalLink => "portal.link",
            Action::PortalSignIn => "portal.sign_in",
            Action::PortalSignOut => "portal.sign_out",
            Action::ProtocolCreate => "protocol.create",
            Action::ProtocolApprove => "protocol.approve",
            Action::MedicalDirectorSet => "user.medical_director",
            Action::SessionHandOver => "session.hand_over",
            Action::SessionTakeBack => "session.take_back",
        }
    }

    /// What happened, in words, for people reading the audit log.
    pub fn label(self) -> &'static str {
        match self {
            Action::LoginSuccess => "Signed in",
            Action::LoginFailure => "Sign-in refused",
            Action::Logout => "Signed out",
            Action::PasswordChange => "Password changed",
            Action::TotpEnable => "Two-step sign-in turned on",
            Action::PatientCreate => "Patient registered",
            Action::PatientRead => "Chart opened",
            Action::PatientUpdate => "Patient details changed",
            Action::PatientSearch => "Patients searched",
            Action::AuditRead => "Audit log read",
            Action::AuditExport => "Audit log downloaded",
            Action::AuditArchive => "Audit log archived",
            Action::UserCreate => "Staff member added",
            Action::UserDisable => "Staff account disabled or enabled",
            Action::RoleGrant => "Role granted",
            Action::RoleRevoke => "Role taken away",
            Action::TokenCreate => "API token created",
            Action::TokenRevoke => "API token revoked",
            Action::ClinicUpdate => "Clinic settings changed",
            Action::AppointmentRead => "Visits viewed",
            Action::AppointmentCreate => "Visit booked",
            Action::AppointmentUpdate => "Visit moved, cancelled or marked",
            Action::SeriesCreate => "Series booked",
            Action::ScheduleSettings => "Schedule settings changed",
            Action::FeedCreate => "Calendar feed created",
            Action::FeedRevoke => "Calendar feed revoked",
            Action::FeedRead => "Calendar feed read",
            Action::LeadCreate => "Self-assessment received",
            Action::LeadRead => "Leads viewed",
            Action::LeadUpdate => "Lead updated",
            Action::LeadConvert => "Lead made a patient",
            Action::ResponseCreate => "Questionnaire answered",
            Action::ResponseRead => "Scores viewed",
            Action::LinkCreate => "Questionnaire link sent",
            Action::TaskClose => "Safety task closed",
            Action::EligibilityRead => "Eligibility viewed",
            Action::EligibilityDecide => "Eligibility decided",
            Action::EligibilitySignOff => "Eligibility signed off",
            Action::AssessmentRead => "Assessment viewed",
            Action::AssessmentRecord => "Assessment recorded",
            Action::ConsentRead => "Consent viewed",
            Action::ConsentSign => "Consent signed",
            Action::ConsentWitness => "Consent witnessed",
            Action::ConsentWithdraw => "Consent withdrawn",
            Action::ConsentPublish => "Consent document published",
            Action::PlanRead => "Treatment plan viewed",
            Action::PlanCreate => "Treatment plan written",
            Action::EncounterOpen => "Checked in",
            Action::EncounterRead => "Visit record viewed",
            Action::IntentionWrite => "Intention written",
            Action::FloorRead => "Floor viewed",
            Action::ChecklistRecord => "Pre-dose checklist recorded",
            Action::DoseOrder => "Dose ordered",
            Action::DoseCheck => "Dose checked",
            Action::DoseAdminister => "Dose given, paused or stopped",
            Action::ObservationRecord => "Vital signs recorded",
            Action::ObservationIngest => "Monitor readings received",
            Action::AlertAcknowledge => "Alert answered",
            Action::MedicationRecord => "Medicine given",
            Action::AdverseEventRecord => "Adverse event recorded",
            Action::RecoveryScore => "Recovery scored",
            Action::EncounterDischarge => "Discharged",
            Action::NoteSign => "Session note signed",
            Action::NoteAddendum => "Addendum signed",
            Action::NoteExport => "Session note printed",
            Action::CsRead => "Schedule III record viewed",
            Action::CsReport => "Schedule III report printed",
            Action::CsSettings => "Schedule III settings changed",
            Action::CsMovement => "Stock moved",
            Action::CsWitnessRefused => "Witness refused",
            Action::CsCount => "Stock counted",
            Action::CsInventory => "Inventory taken",
            Action::CsCaseOpen => "Loss or discrepancy opened",
            Action::CsCaseResolve => "Loss or discrepancy resolved",
            Action::CsCaseFiling => "DEA filing recorded",
            Action::BillRead => "Billing viewed",
            Action::BillSettings => "Billing settings changed",
            Action::BillInvoice => "Invoice issued",
            Action::BillPayment => "Payment taken",
            Action::BillRefund => "Refund given",
            Action::BillCredit => "Credit note issued",
            Action::BillPackage => "Package sold or changed",
            Action::BillEstimate => "Estimate given",
            Action::BillPrint => "Superbill or statement printed",
            Action::PortalLink => "Portal link sent",
            Action::PortalSignIn => "Patient signed in to the portal",
            Action::PortalSignOut => "Patient signed out of the portal",
            Action::ProtocolCreate => "Protocol version added",
            Action::ProtocolApprove => "Protocol version approved",
            Action::MedicalDirectorSet => "Medical director set",
            Action::SessionHandOver => "Tablet handed to the patient",
            Action::SessionTakeBack => "Tablet taken back",
        }
    }

    /// The part of the clinic's work an action belongs to: the audit log's
    /// filter groups them under these headings.
    pub fn area(self) -> &'static str {
        match self {
            Action::SessionHandOver
            | Action::SessionTakeBack
            | Action::LoginSuccess
            | Action::LoginFailure
            | Action::Logout
            | Action::PasswordChange
            | Action::TotpEnable => "Account",
            Action::PatientCreate
            | Action::PatientRead
            | Action::PatientUpdate
            | Action::PatientSearch => "Patients",
            Action::AuditRead
            | Action::AuditExport
            | Action::AuditArchive
            | Action::UserCreate
            | Action::UserDisable
            | Action::RoleGrant
            | Action::RoleRevoke
            | Action::TokenCreate
            | Action::TokenRevoke
            | Action::ClinicUpdate
            | Action::ProtocolCreate
            | Action::ProtocolApprove
            | Action::MedicalDirectorSet => "Administration",
            Action::AppointmentRead
            | Action::AppointmentCreate
            | Action::AppointmentUpdate
            | Action::SeriesCreate
            | Action::ScheduleSettings
            | Action::FeedCreate
            | Action::FeedRevoke
            | Action::FeedRead => "Schedule",
            Action::LeadCreate
            | Action::LeadRead
            | Action::LeadUpdate
            | Action::LeadConvert
            | Action::ResponseCreate
            | Action::ResponseRead
            | Action::LinkCreate
            | Action::TaskClose => "Leads and measures",
            Action::EligibilityRead
            | Action::EligibilityDecide
            | Action::EligibilitySignOff
            | Action::AssessmentRead
            | Action::AssessmentRecord
            | Action::ConsentRead
            | Action::ConsentSign
            | Action::ConsentWitness
            | Action::ConsentWithdraw
            | Action::ConsentPublish
            | Action::PlanRead
            | Action::PlanCreate => "Before the first dose",
            Action::EncounterOpen
            | Action::EncounterRead
            | Action::IntentionWrite
            | Action::FloorRead
            | Action::ChecklistRecord
            | Action::DoseOrder
            | Action::DoseCheck
            | Action::DoseAdminister
            | Action::ObservationRecord
            | Action::ObservationIngest
            | Action::AlertAcknowledge
            | Action::MedicationRecord
            | Action::AdverseEventRecord
            | Action::RecoveryScore
            | Action::EncounterDischarge
            | Action::NoteSign
            | Action::NoteAddendum
            | Action::NoteExport => "Treatment day",
            Action::CsRead
            | Action::CsReport
            | Action::CsSettings
            | Action::CsMovement
            | Action::CsWitnessRefused
            | Action::CsCount
            | Action::CsInventory
            | Action::CsCaseOpen
            | Action::CsCaseResolve
            | Action::CsCaseFiling => "Schedule III",
            Action::BillRead
            | Action::BillSettings
            | Action::BillInvoice
            | Action::BillPayment
            | Action::BillRefund
            | Action::BillCredit
            | Action::BillPackage
            | Action::BillEstimate
            | Action::BillPrint => "Billing",
            Action::PortalLink | Action::PortalSignIn | Action::PortalSignOut => "Portal",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One audit record as written. `seq`, `prev_hash` and `hash` are assigned by
/// the single chain writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub org_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_label: String,
    pub actor_role: Option<String>,
    pub clinic_id: Option<String>,
    pub patient_id: Option<String>,
    pub action: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub outcome: String,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of the chain's start.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a record given the hash before it. Every field is length-
/// prefixed so that no two different records encode to the same bytes.
pub fn chain_hash(prev_hash: &str, r: &AuditRecord) -> String {
    let mut h = FieldHasher::default();
    let mut put = |s: Option<&str>| h.put(s);
    put(Some(prev_hash));
    put(Some(&r.seq.to_string()));
    put(Some(&r.id));
    put(Some(&r.at.to_string()));
    put(r.org_id.as_deref());
    put(r.actor_user_id.as_deref());
    put(Some(&r.actor_label));
    put(r.actor_role.as_deref());
    put(r.clinic_id.as_deref());
    put(r.patient_id.as_deref());
    put(Some(&r.action));
    put(r.object_type.as_deref());
    put(r.object_id.as_deref());
    put(Some(&r.outcome));
    put(r.source_ip.as_deref());
    put(r.request_id.as_deref());
    put(r.detail.as_deref());
    h.finish()
}

/// SHA-256 over a sequence of optional text fields, each length-prefixed (an
/// absent field is one 0xff byte), so no two different sequences encode to the
/// same bytes. Shared by every hash-chained ledger.
#[derive(Default)]
pub struct FieldHasher(Sha256);

impl FieldHasher {
    pub fn put(&mut self, s: Option<&str>) {
        match s {
            None => self.0.update(b"\xff"),
            Some(s) => {
                self.0.update((s.len() as u64).to_be_bytes());
                self.0.update(s.as_bytes());
            }
        }
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The first break in a chain of records in `seq` order, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The stored hash does not match the record's contents.
    Altered { seq: i64 },
    /// The record does not point at the one before it (a row removed or inserted).
    Unlinked { seq: i64 },
    /// Sequence numbers skip (a row removed).
    Gap { after: i64, next: i64 },
}

/// Verifies records in order, starting after `prev` (seq, hash). Returns the
/// new tip or the first break.
pub fn verify_chain<'a>(
    prev: (i64, String),
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<(i64, String), ChainBreak> {
    let (mut last_seq, mut last_hash) = prev;
    for r in records {
        if r.seq != last_seq + 1 {
            return Err(ChainBreak::Gap {
                after: last_seq,
                next: r.seq,
            });
        }
        if r.prev_hash != last_hash {
            return Err(ChainBreak::Unlinked { seq: r.seq });
        }
        if chain_hash(&r.prev_hash, r) != r.hash {
            return Err(ChainBreak::Altered { seq: r.seq });
        }
        last_seq = r.seq;
        last_hash = r.hash.clone();
    }
    Ok((last_seq, last_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_as_words_of_its_own() {
        let mut seen = std::collections::HashSet::new();
        for a in Action::ALL {
            let l = a.label();
            assert!(!l.contains('.') && !l.contains('_'), "{l} reads as a code");
            assert!(l.chars().next().is_some_and(char::is_uppercase), "{l}");
            assert!(seen.insert(l), "two actions read as {l}");
            assert!(!a.area().is_empty());
        }
        // The filter fits a screen: a handful of headings, none overlong.
        let mut areas: Vec<_> = Action::ALL.iter().map(|a| a.area()).collect();
        areas.sort();
        areas.dedup();
        assert!(areas.len() <= 12, "{areas:?}");
    }

    fn rec(seq: i64, prev: &str) -> AuditRecord {
        let mut r = AuditRecord {
            seq,
            id: format!("e{seq}"),
            at: 1_700_000_000_000_000 + seq,
            org_id: Some("o1".into()),
            actor_user_id: Some("u1".into()),
            actor_label: "nina".into(),
            actor_role: Some("nurse".into()),
            clinic_id: Some("c1".into()),
            patient_id: Some("p1".into()),
            action: "patient.read".into(),
            object_type: Some("patient".into()),
            object_id: Some("p1".into()),
            outcome: "ok".into(),
            source_ip: Some("127.0.0.1".into()),
            request_id: Some("r1".into()),
            detail: None,
            prev_hash: prev.to_string(),
            hash: String::new(),
        };
        r.hash = chain_hash(prev, &r);
        r
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut v = Vec::new();
        let mut prev = GENESIS.to_string();
        for s in 1..=n {
            let r = rec(s, &prev);
            prev = r.hash.clone();
            v.push(r);
        }
        v
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify_chain((0, GENESIS.into()), &c).unwrap().0, 5);
    }

    #[test]
    fn edits_removals_and_reorders_are_found() {
        let mut c = chain(5);
        c[2].detail = Some("changed".into());
        assert_eq!(
            verify_chain((0, GENESIS.into()), &c),
            Err(ChainBreak::Altered { seq: 3 })
        );

        let mut c = chain(5);
        c.remove(2);
        assert_eq!(
            verify_chain((0, GENESIS.into()), &c),
            Err(ChainBreak::Gap { after: 2, next: 4 })
        );

        // A removed row with the later rows renumbered still breaks the links.
        let mut c = chain(5);
        c.remove(2);
        for (i, r) in c.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        assert!(verify_chain((0, GENESIS.into()), &c).is_err());
    }

    #[test]
    fn field_boundaries_matter() {
        let mut a = rec(1, GENESIS);
        let mut b = a.clone();
        a.actor_label = "ab".into();
        a.actor_role = Some("c".into());
        b.actor_label = "a".into();
        b.actor_role = Some("bc".into());
        assert_ne!(chain_hash(GENESIS, &a), chain_hash(GENESIS, &b));
    }

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }
}
