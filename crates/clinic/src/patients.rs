//! Patient use cases shared by pages and the API. Each checks the caller's
//! permission in the patient's clinic, scopes every lookup to the caller's
//! clinics (outside them a patient is "not found"), and audits the access
//! before anything is returned.

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::{ClinicId, PatientId};
use domain::patients::{PatientDetails, PatientInput};
use jiff::civil::Date;
use store::patients::PatientRecord;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

/// Today in UTC at `now` (a date of birth is checked against it).
pub fn today(now: i64) -> Date {
    domain::time::to_timestamp(now)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// Reads one patient for the caller, audited. Unknown, foreign-clinic and
/// malformed ids all answer "not found", and the attempt is recorded.
pub async fn read(state: &Clinic, caller: &Caller, id: PatientId) -> Result<PatientRecord, Error> {
    let clinics = caller.require_any(Permission::PatientRead)?;
    match state.store.patient(id, &clinics).await? {
        Some(p) => {
            let ev = caller.patient_event(
                Action::PatientRead,
                Permission::PatientRead,
                p.clinic_id,
                &id.to_string(),
            );
            state.store.audit(vec![ev]).await?;
            Ok(p)
        }
        None => {
            let mut ev = caller.event(Action::PatientRead);
            ev.outcome = "not_found";
            ev.object_type = Some("patient".into());
            ev.object_id = Some(id.to_string());
            state.store.audit(vec![ev]).await?;
            Err(Error::NotFound)
        }
    }
}

/// Searches the caller's clinics. One audit row names every patient listed.
pub async fn search(
    state: &Clinic,
    caller: &Caller,
    q: &str,
    limit: i64,
) -> Result<Vec<PatientRecord>, Error> {
    let clinics = caller.require_any(Permission::PatientRead)?;
    if q.chars().count() > 200 {
        return Err(Error::bad("q must be at most 200 characters", Some("q")));
    }
    let found = state.store.search_patients(&clinics, q, limit).await?;
    let mut ev = caller.event(Action::PatientSearch);
    ev.object_type = Some("patient".into());
    ev.detail = Some(format!(
        "{} result(s): {}",
        found.len(),
        found
            .iter()
            .map(|p| p.id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    if let [only] = found.as_slice() {
        ev.patient_id = Some(only.id.to_string());
        ev.clinic_id = Some(only.clinic_id.to_string());
    }
    state.store.audit(vec![ev]).await?;
    Ok(found)
}

pub async fn create(
    state: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    input: &PatientInput,
) -> Result<PatientRecord, Error> {
    caller.require(Permission::PatientCreate, clinic)?;
    let d = PatientDetails::validate(input, today(state.now()))?;
    let mut ev = caller.event(Action::PatientCreate);
    ev.actor_role = caller
        .principal
        .acting_role(Permission::PatientCreate, clinic)
        .map(|r| r.as_str().to_string());
    Ok(state
        .store
        .create_patient(caller.org_id, clinic, &d, caller.user_id(), ev)
        .await?)
}

/// Applies `input` over the current details (`cleared` names fields set to
/// null) and saves, audited in the same transaction.
pub async fn update(
    state: &Clinic,
    caller: &Caller,
    id: PatientId,
    input: &PatientInput,
    cleared: &[String],
    replace: bool,
) -> Result<PatientRecord, Error> {
    let read_clinics = caller.require_any(Permission::PatientRead)?;
    let Some(current) = state.store.patient(id, &read_clinics).await? else {
        return Err(Error::NotFound);
    };
    if !caller.may(Permission::PatientEdit, current.clinic_id) {
        let mut ev = caller.patient_event(
            Action::PatientUpdate,
            Permission::PatientRead,
            current.clinic_id,
            &id.to_string(),
        );
        ev.outcome = "denied";
        state.store.audit(vec![ev]).await?;
        return Err(Error::Forbidden);
    }
    let merged = if replace {
        input.clone()
    } else {
        domain::patients::merge(&current.details.to_input(), input, cleared)
    };
    let d = PatientDetails::validate(&merged, today(state.now()))?;
    let mut ev = caller.patient_event(
        Action::PatientUpdate,
        Permission::PatientEdit,
        current.clinic_id,
        &id.to_string(),
    );
    let changed = changed_fields(&current.details, &d);
    ev.detail = Some(format!("changed: {}", changed.join(",")));
    Ok(state
        .store
        .update_patient(id, &[current.clinic_id], &d, ev)
        .await?)
}

/// Names (not values: values may be PHI) of fields that differ.
fn changed_fields(a: &PatientDetails, b: &PatientDetails) -> Vec<&'static str> {
    let (x, y) = (a.to_input(), b.to_input());
    let pairs: [(&'static str, &Option<String>, &Option<String>); 18] = [
        ("given_name", &x.given_name, &y.given_name),
        ("family_name", &x.family_name, &y.family_name),
        ("preferred_name", &x.preferred_name, &y.preferred_name),
        ("date_of_birth", &x.date_of_birth, &y.date_of_birth),
        ("sex_at_birth", &x.sex_at_birth, &y.sex_at_birth),
        ("pronouns", &x.pronouns, &y.pronouns),
        ("phone", &x.phone, &y.phone),
        ("email", &x.email, &y.email),
        ("address_line1", &x.address_line1, &y.address_line1),
        ("address_line2", &x.address_line2, &y.address_line2),
        ("city", &x.city, &y.city),
        ("region", &x.region, &y.region),
        ("postal_code", &x.postal_code, &y.postal_code),
        (
            "emergency_contact_name",
            &x.emergency_contact_name,
            &y.emergency_contact_name,
        ),
        (
            "emergency_contact_phone",
            &x.emergency_contact_phone,
            &y.emergency_contact_phone,
        ),
        (
            "emergency_contact_relation",
            &x.emergency_contact_relation,
            &y.emergency_contact_relation,
        ),
        ("escort_name", &x.escort_name, &y.escort_name),
        ("escort_phone", &x.escort_phone, &y.escort_phone),
    ];
    pairs
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(n, _, _)| *n)
        .collect()
}

/// How many patients the clinics hold where the caller may read patients
/// (a count, not patient data); `None` without that permission anywhere.
pub async fn count(
    state: &Clinic,
    c: &Caller,
    clinics: &[domain::ids::ClinicId],
) -> Result<Option<i64>, Error> {
    let mine: Vec<_> = clinics
        .iter()
        .copied()
        .filter(|k| c.may(domain::auth::Permission::PatientRead, *k))
        .collect();
    if mine.is_empty() {
        return Ok(None);
    }
    Ok(Some(state.store.count_patients(&mine).await?))
}
