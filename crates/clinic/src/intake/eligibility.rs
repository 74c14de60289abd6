//! Eligibility use cases: a prescriber's decision checked by the engine and
//! stored as the patient's next version; the nurse's sign-off; the history.

use domain::audit::Action;
use domain::auth::Permission;
use domain::eligibility::{decide, DecisionInput, Policy};
use domain::ids::PatientId;
use store::eligibility::StoredDecision;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

async fn clinic_of(
    state: &Clinic,
    c: &Caller,
    perm: Permission,
    patient: PatientId,
) -> Result<domain::ids::ClinicId, Error> {
    let clinics = c.require_any(perm)?;
    match state.store.patient(patient, &clinics).await? {
        Some(p) => Ok(p.clinic_id),
        None => {
            let mut ev = c.event(Action::EligibilityRead);
            ev.outcome = "not_found";
            ev.object_type = Some("patient".into());
            ev.object_id = Some(patient.to_string());
            state.store.audit(vec![ev]).await?;
            Err(Error::NotFound)
        }
    }
}

/// Records a prescriber's decision (the engine's findings kept with it).
pub async fn record(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
    input: DecisionInput,
) -> Result<(i64, domain::eligibility::Decision), Error> {
    let clinic = clinic_of(state, c, Permission::EligibilityDecide, patient).await?;
    c.require(Permission::EligibilityDecide, clinic)?;
    let d = decide(input, &Policy::default())?;
    let user = c.user_id().ok_or(Error::Forbidden)?;
    let mut ev = c.patient_event(
        Action::EligibilityDecide,
        Permission::EligibilityDecide,
        clinic,
        &patient.to_string(),
    );
    ev.object_type = Some("eligibility_decision".into());
    let version = state
        .store
        .insert_decision(clinic, patient, &d, user, ev)
        .await?;
    Ok((version, d))
}

/// The decisions, newest first; audited.
pub async fn history(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
) -> Result<Vec<StoredDecision>, Error> {
    let clinic = clinic_of(state, c, Permission::MeasureRead, patient).await?;
    c.require(Permission::MeasureRead, clinic)?;
    let out = state.store.decisions(patient).await?;
    let mut ev = c.patient_event(
        Action::EligibilityRead,
        Permission::MeasureRead,
        clinic,
        &patient.to_string(),
    );
    ev.object_type = Some("eligibility_decision".into());
    state.store.audit(vec![ev]).await?;
    Ok(out)
}

/// The nurse's sign-off of the latest decision.
pub async fn sign_off(
    state: &Clinic,
    c: &Caller,
    patient: PatientId,
    version: i64,
) -> Result<(), Error> {
    let clinic = clinic_of(state, c, Permission::EligibilitySignOff, patient).await?;
    c.require(Permission::EligibilitySignOff, clinic)?;
    let user = c.user_id().ok_or(Error::Forbidden)?;
    let mut ev = c.patient_event(
        Action::EligibilitySignOff,
        Permission::EligibilitySignOff,
        clinic,
        &patient.to_string(),
    );
    ev.object_type = Some("eligibility_decision".into());
    ev.detail = Some(format!("version {version}"));
    Ok(state
        .store
        .sign_off_decision(patient, version, user, ev)
        .await?)
}
