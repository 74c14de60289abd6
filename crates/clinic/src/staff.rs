//! The clinic's people, as use cases: who works here, adding a staff member
//! with a first role, granting and revoking roles, disabling an account.
//! Each needs the staff-management permission in the clinic concerned, is
//! audited, and clears the cached sessions so that a change bites at once.

use domain::audit::Action;
use domain::auth::{Permission, Role};
use domain::ids::{ClinicId, UserId};
use domain::FieldError;
use store::auth::UserSummary;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

/// The clinics the caller may manage staff in, with their names.
pub async fn admin_clinics(c: &Clinic, caller: &Caller) -> Result<Vec<(ClinicId, String)>, Error> {
    let allowed = caller.require_any(Permission::StaffManage)?;
    let clinics = c.store.clinics_of_org(caller.org_id).await?;
    Ok(allowed
        .iter()
        .map(|id| {
            let name = clinics
                .iter()
                .find(|k| k.id == *id)
                .map(|k| k.settings.name.clone())
                .unwrap_or_default();
            (*id, name)
        })
        .collect())
}

/// Everyone in the caller's organisation.
pub async fn list(c: &Clinic, caller: &Caller) -> Result<Vec<UserSummary>, Error> {
    caller.require_any(Permission::StaffManage)?;
    Ok(c.store.users_of_org(caller.org_id).await?)
}

/// One staff member of the caller's organisation; anyone else is not found.
pub async fn member(c: &Clinic, caller: &Caller, id: UserId) -> Result<UserSummary, Error> {
    caller.require_any(Permission::StaffManage)?;
    same_org(c, caller, id).await?;
    Ok(c.store.user_summary(id).await?)
}

async fn same_org(c: &Clinic, caller: &Caller, id: UserId) -> Result<(), Error> {
    if c.store.user_org(id).await? != caller.org_id {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// A new staff member as typed: every field is checked and every problem
/// named at once.
#[derive(Debug, Clone, Default)]
pub struct NewStaff {
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub password: String,
    pub clinic_id: String,
    pub role: String,
}

/// Adds a staff member with a temporary password and a first role in a
/// clinic the caller administers; returns the new account's id.
pub async fn add(c: &Clinic, caller: &Caller, input: NewStaff) -> Result<UserId, Error> {
    let clinics = admin_clinics(c, caller).await?;
    let mut e = domain::error::Errors::new();
    let username = e.check(domain::auth::parse_username(&input.username));
    let name = e.check(
        domain::patients::person_name(&input.display_name, "display_name", true)
            .map(Option::unwrap_or_default),
    );
    let email = e.check(domain::patients::email(&input.email, "email"));
    e.check(domain::auth::check_new_password(
        &input.password,
        &[
            username.as_deref().unwrap_or_default(),
            name.as_deref().unwrap_or_default(),
        ],
    ));
    let clinic = input
        .clinic_id
        .parse::<ClinicId>()
        .ok()
        .filter(|id| clinics.iter().any(|k| k.0 == *id));
    if clinic.is_none() {
        e.add("clinic_id", "must be a clinic you administer");
    }
    let role = e.check(input.role.parse::<Role>());
    e.into_result()?;
    let (Some(username), Some(name), Some(email), Some(clinic), Some(role)) =
        (username, name, email, clinic, role)
    else {
        return Err(Error::Internal("a checked staff field is missing".into()));
    };
    let hash = c
        .passwords
        .hash(input.password)
        .await
        .map_err(Error::Internal)?;
    let new = store::auth::NewUser {
        org_id: caller.org_id,
        username: &username,
        display_name: &name,
        email: email.as_deref(),
        password_hash: &hash,
    };
    let mut ev = caller.event(Action::UserCreate);
    ev.clinic_id = Some(clinic.to_string());
    let uid = c.store.create_user(&new, ev).await?;
    let mut g = caller.event(Action::RoleGrant);
    g.clinic_id = Some(clinic.to_string());
    g.object_type = Some("user".into());
    g.object_id = Some(uid.to_string());
    g.detail = Some(format!("granted {role}"));
    c.store
        .grant_role(uid, clinic, role, caller.user_id(), g)
        .await?;
    Ok(uid)
}

/// The staff member, clinic and role of a grant or revocation, checked.
async fn grant_target(
    c: &Clinic,
    caller: &Caller,
    id: UserId,
    clinic: &str,
    role: &str,
) -> Result<(ClinicId, Role), Error> {
    same_org(c, caller, id).await?;
    let clinic: ClinicId = clinic
        .parse()
        .map_err(|_| Error::Invalid(vec![FieldError::new("clinic_id", "is not a clinic")]))?;
    caller.require(Permission::StaffManage, clinic)?;
    let role: Role = role.parse().map_err(|e| Error::Invalid(vec![e]))?;
    Ok((clinic, role))
}

/// Gives a staff member a role in a clinic (`grant`), or takes it away. An
/// admin cannot take their own admin role: another admin does (a clinic is
/// never left without one by a slip).
pub async fn set_role(
    c: &Clinic,
    caller: &Caller,
    id: UserId,
    (clinic, role): (&str, &str),
    grant: bool,
) -> Result<(), Error> {
    let (clinic, role) = grant_target(c, caller, id, clinic, role).await?;
    if !grant && Some(id) == caller.user_id() && role == Role::ClinicAdmin {
        return Err(Error::Conflict(
            "You cannot remove your own admin role; ask another admin.".into(),
        ));
    }
    let (action, verb) = if grant {
        (Action::RoleGrant, "granted")
    } else {
        (Action::RoleRevoke, "revoked")
    };
    let mut ev = caller.event(action);
    ev.clinic_id = Some(clinic.to_string());
    ev.object_type = Some("user".into());
    ev.object_id = Some(id.to_string());
    ev.detail = Some(format!("{verb} {role}"));
    if grant {
        c.store
            .grant_role(id, clinic, role, caller.user_id(), ev)
            .await?;
    } else {
        c.store.revoke_role(id, clinic, role, ev).await?;
    }
    c.auth_cache.clear();
    Ok(())
}

/// Disables or enables an account; nobody disables their own.
pub async fn set_disabled(
    c: &Clinic,
    caller: &Caller,
    id: UserId,
    disabled: bool,
) -> Result<(), Error> {
    caller.require_any(Permission::StaffManage)?;
    same_org(c, caller, id).await?;
    if Some(id) == caller.user_id() && disabled {
        return Err(Error::Conflict(
            "You cannot disable your own account.".into(),
        ));
    }
    let mut ev = caller.event(Action::UserDisable);
    ev.object_type = Some("user".into());
    ev.object_id = Some(id.to_string());
    ev.detail = Some(if disabled { "disabled" } else { "enabled" }.into());
    c.store.set_user_disabled(id, disabled, ev).await?;
    c.auth_cache.clear();
    Ok(())
}
