//! The clinics of an organisation and their settings, as use cases: the
//! list, one clinic's identity and hours, closures (days the clinic is shut).
//! Changing them needs the clinic-settings permission and is audited.

use domain::audit::Action;
use domain::auth::{Permission, Role};
use domain::clinics::{ClinicSettings, ClinicSettingsInput};
use domain::ids::{ClinicId, ClosureId};
use domain::FieldError;
use store::org::{Clinic as ClinicRecord, Closure};

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

/// Every clinic of the caller's organisation (names, zones and hours are
/// not patient data: any staff member sees them).
pub async fn clinics(c: &Clinic, caller: &Caller) -> Result<Vec<ClinicRecord>, Error> {
    Ok(c.store.clinics_of_org(caller.org_id).await?)
}

/// The clinics whose settings the caller may change.
pub async fn editable(c: &Clinic, caller: &Caller) -> Result<Vec<ClinicRecord>, Error> {
    let allowed = caller.require_any(Permission::ClinicSettings)?;
    Ok(clinics(c, caller)
        .await?
        .into_iter()
        .filter(|k| allowed.contains(&k.id))
        .collect())
}

/// One clinic to edit, with its closures.
pub async fn for_edit(
    c: &Clinic,
    caller: &Caller,
    id: ClinicId,
) -> Result<(ClinicRecord, Vec<Closure>), Error> {
    caller.require(Permission::ClinicSettings, id)?;
    let k = c.store.clinic(id).await?;
    let closures = c.store.closures(id).await?;
    Ok((k, closures))
}

/// Saves a clinic's identity, zone and hours; every invalid field is named.
pub async fn save(
    c: &Clinic,
    caller: &Caller,
    id: ClinicId,
    input: &ClinicSettingsInput,
) -> Result<(), Error> {
    caller.require(Permission::ClinicSettings, id)?;
    let s = ClinicSettings::validate(input)?;
    let mut ev = caller.event(Action::ClinicUpdate);
    ev.clinic_id = Some(id.to_string());
    ev.actor_role = Some(Role::ClinicAdmin.as_str().into());
    ev.object_type = Some("clinic".into());
    ev.object_id = Some(id.to_string());
    c.store.update_clinic(id, &s, ev).await?;
    Ok(())
}

/// Closes the clinic for a day. A problem comes back as one field error
/// whose message is a whole sentence for the form.
pub async fn add_closure(
    c: &Clinic,
    caller: &Caller,
    id: ClinicId,
    date: &str,
    reason: &Option<String>,
) -> Result<(), Error> {
    caller.require(Permission::ClinicSettings, id)?;
    let Ok(d) = date.trim().parse::<jiff::civil::Date>() else {
        return Err(FieldError::new("closed_on", "Date must be a real date as YYYY-MM-DD.").into());
    };
    let r = domain::patients::required(reason, "reason", 200)
        .map_err(|e| FieldError::new("reason", format!("Reason {}.", e.message)))?;
    let mut ev = caller.event(Action::ClinicUpdate);
    ev.clinic_id = Some(id.to_string());
    ev.object_type = Some("clinic_closure".into());
    ev.detail = Some(format!("closure added for {d}"));
    match c.store.add_closure(id, d, &r, ev).await {
        Ok(_) => Ok(()),
        Err(store::StoreError::Domain(domain::DomainError::Invalid(e))) => Err(FieldError::new(
            "closed_on",
            format!(
                "That date: {}.",
                e.first()
                    .map(|x| x.message.as_str())
                    .unwrap_or("is refused")
            ),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Opens a closed day again.
pub async fn remove_closure(
    c: &Clinic,
    caller: &Caller,
    id: ClinicId,
    closure: ClosureId,
) -> Result<(), Error> {
    caller.require(Permission::ClinicSettings, id)?;
    let mut ev = caller.event(Action::ClinicUpdate);
    ev.clinic_id = Some(id.to_string());
    ev.object_type = Some("clinic_closure".into());
    ev.object_id = Some(closure.to_string());
    ev.detail = Some("closure removed".into());
    c.store.remove_closure(id, closure, ev).await?;
    Ok(())
}

/// A clinic's identity, zone and hours by id, for pages that show where and
/// when (not patient data; the caller's access to what is shown with it is
/// checked by the use case that reads that).
pub async fn record(c: &Clinic, id: ClinicId) -> Result<ClinicRecord, Error> {
    Ok(c.store.clinic(id).await?)
}

/// The days a clinic is closed (not patient data).
pub async fn closures(c: &Clinic, id: ClinicId) -> Result<Vec<Closure>, Error> {
    Ok(c.store.closures(id).await?)
}
