//! How a clinic books, as use cases: its chairs and rooms, booking rules,
//! staff working hours and time off. Each needs schedule management in the
//! clinic and is audited as a schedule-settings change.

use domain::audit::Action;
use domain::auth::Permission;
use domain::clinics::DayHours;
use domain::ids::{ClinicId, ResourceId, UserId};
use domain::scheduling::{Capabilities, ResourceKind, SchedulingRules, StaffMember};
use store::audit::NewAuditEvent;
use store::scheduling::ResourceRecord;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

const DAY: i64 = 86_400_000_000;

fn event(caller: &Caller, clinic: ClinicId, detail: String) -> NewAuditEvent {
    let mut ev = caller.event(Action::ScheduleSettings);
    ev.clinic_id = Some(clinic.to_string());
    ev.detail = Some(detail);
    ev
}

/// Everything the clinic's booking setup page shows.
#[derive(Debug)]
pub struct Setup {
    /// The bookable staff with their hours over the next 90 days.
    pub staff: Vec<StaffMember>,
    pub resources: Vec<ResourceRecord>,
    /// Time off in the coming year: who, from, to, why.
    pub time_off: Vec<(UserId, i64, i64, String)>,
    pub rules: SchedulingRules,
}

pub async fn setup(c: &Clinic, caller: &Caller, clinic: ClinicId) -> Result<Setup, Error> {
    caller.require(Permission::ScheduleManage, clinic)?;
    let now = c.now();
    let staff = c.store.bookable_staff(clinic, now, now + 90 * DAY).await?;
    let ids: Vec<UserId> = staff.iter().map(|s| s.id).collect();
    Ok(Setup {
        time_off: c.store.time_off_between(&ids, now, now + 365 * DAY).await?,
        resources: c.store.resources(clinic).await?,
        rules: c.store.scheduling_rules(clinic).await?,
        staff,
    })
}

pub async fn set_rules(
    c: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    rules: &SchedulingRules,
) -> Result<(), Error> {
    caller.require(Permission::ScheduleManage, clinic)?;
    let ev = event(caller, clinic, format!("rules: {rules:?}"));
    Ok(c.store.set_scheduling_rules(clinic, rules, ev).await?)
}

/// Adds a chair or room. Only a chair can be IV-capable or monitored.
pub async fn add_resource(
    c: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    kind: &str,
    name: &str,
    caps: Capabilities,
) -> Result<(ResourceId, ResourceKind, String), Error> {
    caller.require(Permission::ScheduleManage, clinic)?;
    let mut e = domain::error::Errors::new();
    let kind = e.check(ResourceKind::parse(kind));
    let name = e.check(domain::scheduling::resource_name(name));
    if kind.is_some_and(|k| k != ResourceKind::Chair) && (caps.iv || caps.monitored) {
        e.add("kind", "only a chair can be IV-capable or monitored");
    }
    e.into_result()?;
    let (Some(kind), Some(name)) = (kind, name) else {
        return Err(Error::Internal(
            "a checked resource field is missing".into(),
        ));
    };
    let ev = event(caller, clinic, format!("add {} {name}", kind.as_str()));
    let id = c
        .store
        .create_resource(clinic, kind, &name, caps, ev)
        .await?;
    Ok((id, kind, name))
}

/// Takes a chair or room out of use (booked visits keep it) or back.
pub async fn set_resource_active(
    c: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    resource: ResourceId,
    active: bool,
) -> Result<(), Error> {
    caller.require(Permission::ScheduleManage, clinic)?;
    let ev = event(
        caller,
        clinic,
        format!("resource {resource} active={active}"),
    );
    Ok(c.store
        .set_resource_active(clinic, resource, active, ev)
        .await?)
}

/// Sets a staff member's weekly working hours at the clinic.
pub async fn set_staff_hours(
    c: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    user: UserId,
    hours: &[DayHours],
) -> Result<(), Error> {
    caller.require(Permission::ScheduleManage, clinic)?;
    if !super::is_bookable_staff(c, clinic, user).await? {
        return Err(Error::NotFound);
    }
    let ev = event(caller, clinic, format!("hours of {user}"));
    Ok(c.store.set_staff_hours(user, clinic, hours, ev).await?)
}

/// Records time off; the search no longer offers that person then.
pub async fn add_time_off(
    c: &Clinic,
    caller: &Caller,
    clinic: ClinicId,
    user: UserId,
    (from, to): (i64, i64),
    reason: &str,
) -> Result<(), Error> {
    caller.require(Permission::ScheduleManage, clinic)?;
    if !super::is_bookable_staff(c, clinic, user).await? {
        return Err(Error::NotFound);
    }
    let ev = event(caller, clinic, format!("time off for {user}"));
    Ok(c.store
        .add_time_off(user, from, to, reason.trim(), ev)
        .await?)
}
