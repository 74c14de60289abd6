//! The jobs a use case leaves for after the request, built in the same
//! transaction as what they follow from: reminders with the booking, a
//! receipt with the payment. The worker ([`crate::outbox`]) sends them.
//! Payloads carry ids, never patient data.

use domain::ids::{AppointmentId, ClinicId};
use serde::{Deserialize, Serialize};
use store::outbox::NewJob;

const HOUR: i64 = 3_600_000_000;
pub const REMINDER: &str = "reminder";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReminderPayload {
    pub(crate) appointment_id: AppointmentId,
    pub(crate) clinic_id: ClinicId,
    pub(crate) sequence: i32,
    pub(crate) hours_before: i64,
}

/// The reminder jobs of a visit starting at `start`: 48 h and 24 h before,
/// leaving out any whose time has already passed.
pub fn reminder_jobs(
    id: AppointmentId,
    clinic: ClinicId,
    sequence: i32,
    start: i64,
    now: i64,
) -> Vec<NewJob> {
    // Two days and one day before; a visit booked closer than that still
    // gets one, three hours before, when there is time for it.
    let mut hours: Vec<i64> = [48, 24]
        .into_iter()
        .filter(|h| start - h * HOUR > now)
        .collect();
    if hours.is_empty() && start - 3 * HOUR > now {
        hours.push(3);
    }
    hours
        .into_iter()
        .filter_map(|h| {
            let payload = serde_json::to_string(&ReminderPayload {
                appointment_id: id,
                clinic_id: clinic,
                sequence,
                hours_before: h,
            })
            .ok()?;
            Some(NewJob {
                kind: REMINDER,
                dedupe_key: format!("reminder:{id}:{sequence}:{h}"),
                payload,
                run_at: start - h * HOUR,
            })
        })
        .collect()
}

pub const WAITLIST_OFFER: &str = "waitlist_offer";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OfferPayload {
    pub(crate) entry: String,
    pub(crate) clinic_id: ClinicId,
    pub(crate) patient_id: domain::ids::PatientId,
    pub(crate) start: i64,
    pub(crate) type_code: String,
}

/// The e-mail telling a waiting patient that a time opened up.
pub fn offer_jobs(
    entry: &str,
    clinic: ClinicId,
    patient: domain::ids::PatientId,
    start: i64,
    type_code: &str,
    now: i64,
) -> Vec<NewJob> {
    let payload = OfferPayload {
        entry: entry.to_string(),
        clinic_id: clinic,
        patient_id: patient,
        start,
        type_code: type_code.to_string(),
    };
    at_once(
        WAITLIST_OFFER,
        format!("offer:{entry}:{start}"),
        &payload,
        now,
    )
}

pub const CONFIRMATION: &str = "confirmation";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ConfirmationPayload {
    pub(crate) appointment_id: AppointmentId,
    pub(crate) clinic_id: ClinicId,
}

/// A job to run at once, once per `key`.
fn at_once(kind: &'static str, key: String, payload: &impl Serialize, now: i64) -> Vec<NewJob> {
    serde_json::to_string(payload)
        .map(|payload| NewJob {
            kind,
            dedupe_key: key,
            payload,
            run_at: now,
        })
        .into_iter()
        .collect()
}

/// The e-mail confirming a visit booked by the patient (the free consultation).
pub fn confirmation_jobs(id: AppointmentId, clinic: ClinicId, now: i64) -> Vec<NewJob> {
    let payload = ConfirmationPayload {
        appointment_id: id,
        clinic_id: clinic,
    };
    at_once(CONFIRMATION, format!("confirmation:{id}"), &payload, now)
}

pub const SERIES_CONFIRMATION: &str = "series_confirmation";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SeriesConfirmationPayload {
    pub(crate) series_id: domain::ids::SeriesId,
    pub(crate) clinic_id: ClinicId,
}

/// The one e-mail confirming a course booked by the clinic: every visit's
/// date and time, with a calendar file holding them all.
pub fn series_confirmation_jobs(
    series: domain::ids::SeriesId,
    clinic: ClinicId,
    now: i64,
) -> Vec<NewJob> {
    let payload = SeriesConfirmationPayload {
        series_id: series,
        clinic_id: clinic,
    };
    at_once(
        SERIES_CONFIRMATION,
        format!("series_confirmation:{series}"),
        &payload,
        now,
    )
}

pub const QUESTIONNAIRE: &str = "questionnaire_link";
pub const DISCHARGE: &str = "discharge_instructions";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DischargePayload {
    pub(crate) encounter_id: String,
    pub(crate) clinic_id: ClinicId,
    pub(crate) patient_id: domain::ids::PatientId,
}

/// The going-home e-mail of a visit: the instructions and the next visit.
pub fn discharge_jobs(
    encounter: &str,
    clinic: ClinicId,
    patient: domain::ids::PatientId,
    now: i64,
) -> Vec<NewJob> {
    serde_json::to_string(&DischargePayload {
        encounter_id: encounter.to_string(),
        clinic_id: clinic,
        patient_id: patient,
    })
    .map(|payload| NewJob {
        kind: DISCHARGE,
        dedupe_key: format!("discharge:{encounter}"),
        payload,
        run_at: now,
    })
    .into_iter()
    .collect()
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LinkPayload {
    pub(crate) link_id: domain::ids::LinkId,
    pub(crate) clinic_id: ClinicId,
    pub(crate) patient_id: domain::ids::PatientId,
    pub(crate) expires_at: i64,
}

/// The e-mail carrying a questionnaire link.
pub fn link_jobs(
    link: domain::ids::LinkId,
    clinic: ClinicId,
    patient: domain::ids::PatientId,
    expires_at: i64,
    run_at: i64,
) -> Vec<NewJob> {
    serde_json::to_string(&LinkPayload {
        link_id: link,
        clinic_id: clinic,
        patient_id: patient,
        expires_at,
    })
    .map(|payload| NewJob {
        kind: QUESTIONNAIRE,
        dedupe_key: format!("link:{link}"),
        payload,
        run_at,
    })
    .into_iter()
    .collect()
}

pub const PATIENT_LINK: &str = "patient_link";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PatientLinkPayload {
    pub(crate) link_id: String,
    pub(crate) clinic_id: ClinicId,
    pub(crate) patient_id: domain::ids::PatientId,
    pub(crate) purpose: String,
    pub(crate) expires_at: i64,
}

/// The e-mail carrying a link to the assessment form or to consent.
pub fn patient_link_jobs(
    link: &str,
    clinic: ClinicId,
    patient: domain::ids::PatientId,
    purpose: &str,
    expires_at: i64,
    run_at: i64,
) -> Vec<NewJob> {
    serde_json::to_string(&PatientLinkPayload {
        link_id: link.to_string(),
        clinic_id: clinic,
        patient_id: patient,
        purpose: purpose.to_string(),
        expires_at,
    })
    .map(|payload| NewJob {
        kind: PATIENT_LINK,
        dedupe_key: format!("patient_link:{link}"),
        payload,
        run_at,
    })
    .into_iter()
    .collect()
}

pub const RECEIPT: &str = "billing_receipt";
pub const STATEMENT: &str = "billing_statement";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReceiptPayload {
    pub(crate) invoice_id: String,
    pub(crate) entry_id: String,
    pub(crate) clinic_id: ClinicId,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StatementPayload {
    pub(crate) patient_id: String,
    pub(crate) clinic_id: ClinicId,
}

/// The receipt e-mail of one payment.
pub fn receipt_jobs(invoice: &str, entry: &str, clinic: ClinicId, now: i64) -> Vec<NewJob> {
    serde_json::to_string(&ReceiptPayload {
        invoice_id: invoice.to_string(),
        entry_id: entry.to_string(),
        clinic_id: clinic,
    })
    .map(|payload| NewJob {
        kind: RECEIPT,
        dedupe_key: format!("receipt:{entry}"),
        payload,
        run_at: now,
    })
    .into_iter()
    .collect()
}

/// A statement of the patient's open invoices, as of when it is sent.
pub fn statement_jobs(patient: &str, clinic: ClinicId, now: i64) -> Vec<NewJob> {
    serde_json::to_string(&StatementPayload {
        patient_id: patient.to_string(),
        clinic_id: clinic,
    })
    .map(|payload| NewJob {
        kind: STATEMENT,
        dedupe_key: format!("statement:{patient}:{now}"),
        payload,
        run_at: now,
    })
    .into_iter()
    .collect()
}
