//! A staff member's own account, as use cases: signing in (password, the
//! lockout after repeated failures, the two-step code that is good once) and
//! out, changing the password (not one of the last five), turning two-step
//! sign-in on. Every attempt is audited, failed ones too.

use domain::audit::Action;
use domain::ids::ClinicId;
use store::audit::NewAuditEvent;
use store::auth::UserSummary;

use crate::actor::{random_token, secret_hash, totp_step, Caller, RequestMeta};
use crate::error::Error;
use crate::Clinic;

/// How many replaced passwords a new one may not repeat.
pub const PASSWORD_HISTORY: i64 = 5;

/// The longest username and password read from a sign-in form.
const USERNAME_MAX: usize = 64;
const PASSWORD_MAX: usize = 256;

/// What a sign-in form sent.
#[derive(Debug, Clone, Default)]
pub struct SignIn {
    pub username: String,
    pub password: String,
    /// The six-digit code, for accounts with two-step sign-in.
    pub code: String,
}

/// A session opened by [`sign_in`]: the secret for the browser's cookie.
/// Only its hash is stored.
#[derive(Debug, Clone)]
pub struct Opened {
    pub token: String,
}

/// Whether a browser session's secret names an open session.
pub async fn session_open(c: &Clinic, token: &str) -> Result<bool, Error> {
    let idle = c.cfg.session_idle.as_micros() as i64;
    Ok(token.len() <= 128
        && c.store
            .session(&secret_hash(token), c.now(), idle)
            .await?
            .is_some())
}

/// Signs a staff member in. `None` when refused, for whatever reason (the
/// reason goes into the audit trail, never to the person at the form, so
/// that the form does not tell which usernames exist).
pub async fn sign_in(
    c: &Clinic,
    meta: &RequestMeta,
    form: SignIn,
) -> Result<Option<Opened>, Error> {
    let username = form
        .username
        .chars()
        .take(USERNAME_MAX)
        .collect::<String>()
        .trim()
        .to_lowercase();
    let password: String = form.password.chars().take(PASSWORD_MAX).collect();
    let candidate = if username.is_empty() {
        None
    } else {
        c.store.login_candidate(&username).await?
    };
    let password_ok = c
        .passwords
        .verify(
            password,
            candidate.as_ref().map(|x| x.password_hash.clone()),
        )
        .await;
    let now = c.now();
    let mut ev = NewAuditEvent::new(Action::LoginFailure, username.clone());
    ev.source_ip = meta.source_ip.clone();
    ev.request_id = Some(meta.request_id.clone());
    let Some(u) = candidate else {
        ev.detail = Some("unknown username".into());
        c.store.audit(vec![ev]).await?;
        return Ok(None);
    };
    ev.actor_user_id = Some(u.id.to_string());
    ev.org_id = Some(u.org_id.to_string());
    let locked = u.locked_until.is_some_and(|t| t > now);
    // A two-step code is good once: its time step is taken, and the same
    // code again (a replay within its 30 seconds) is refused.
    let step = u
        .totp_secret
        .as_deref()
        .map(|s| totp_step(s, &form.code, now));
    let mut second_ok = !matches!(step, Some(None));
    let mut replayed = false;
    if let (true, false, false, Some(Some(st))) = (password_ok, u.disabled, locked, step) {
        if !c.store.use_totp_step(u.id, st).await? {
            second_ok = false;
            replayed = true;
        }
    }
    if !password_ok || u.disabled || locked || !second_ok {
        let reason = if locked {
            "locked"
        } else if u.disabled {
            "disabled"
        } else if !password_ok {
            "wrong password"
        } else if replayed {
            "authenticator code used before"
        } else {
            "wrong authenticator code"
        };
        ev.detail = Some(reason.into());
        if locked || u.disabled {
            c.store.audit(vec![ev]).await?;
        } else {
            c.store
                .record_login_failure(
                    u.id,
                    c.cfg.max_failed_logins,
                    c.cfg.lockout.as_micros() as i64,
                    ev,
                )
                .await?;
            // A lockout stops the account's API tokens at once here.
            c.auth_cache.clear();
        }
        return Ok(None);
    }
    let token = random_token(32);
    let csrf = random_token(24);
    let absolute = now + c.cfg.session_absolute.as_micros() as i64;
    let mut ok = ev;
    ok.action = Action::LoginSuccess;
    ok.detail = None;
    ok.actor_label = username;
    c.store
        .create_session(
            u.id,
            &secret_hash(&token),
            &csrf,
            absolute,
            meta.source_ip.as_deref(),
            ok,
        )
        .await?;
    Ok(Some(Opened { token }))
}

/// Ends the caller's browser session (a bearer token has none to end).
pub async fn sign_out(c: &Clinic, caller: &Caller) -> Result<(), Error> {
    if let Some(h) = &caller.session_hash {
        c.store.end_session(h, caller.event(Action::Logout)).await?;
        c.auth_cache.clear();
    }
    Ok(())
}

/// The caller's own account, with the name of each clinic they hold a role in.
pub async fn summary(
    c: &Clinic,
    caller: &Caller,
) -> Result<(UserSummary, Vec<(ClinicId, String)>), Error> {
    let uid = caller.user_id().ok_or(Error::Forbidden)?;
    let u = c.store.user_summary(uid).await?;
    let clinics = c.store.clinics_of_org(caller.org_id).await?;
    let names = u
        .grants
        .iter()
        .map(|(k, _)| {
            let name = clinics
                .iter()
                .find(|x| x.id == *k)
                .map(|x| x.settings.name.clone())
                .unwrap_or_default();
            (*k, name)
        })
        .collect();
    Ok((u, names))
}

/// What a password change form sent.
#[derive(Debug, Clone, Default)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
    pub confirm: String,
}

/// Changes the caller's password. Refused with every reason at once (as
/// sentences for the form) when the current one is wrong, the new one is
/// weak, repeats one of the last [`PASSWORD_HISTORY`], or the two new ones
/// differ. On success every session of the account ends, this one too.
pub async fn change_password(
    c: &Clinic,
    caller: &Caller,
    p: PasswordChange,
) -> Result<Result<(), Vec<String>>, Error> {
    let uid = caller.user_id().ok_or(Error::Forbidden)?;
    let (username, display) = caller
        .user
        .as_ref()
        .map(|u| (u.username.clone(), u.display_name.clone()))
        .unwrap_or_default();
    let stored = c
        .store
        .login_candidate(&username)
        .await?
        .map(|x| x.password_hash);
    let mut errors = vec![];
    if !c
        .passwords
        .verify(p.current.chars().take(PASSWORD_MAX).collect(), stored)
        .await
    {
        errors.push("Current password is not right.".to_string());
    }
    if let Err(e) = domain::auth::check_new_password(&p.new, &[username.as_str(), display.as_str()])
    {
        errors.push(format!("New password {}.", e.message));
    } else if p.new == p.current {
        errors.push("New password must differ from the current one.".to_string());
    }
    if p.new != p.confirm {
        errors.push("The two new passwords differ.".to_string());
    }
    if errors.is_empty() {
        for old in c
            .store
            .previous_password_hashes(uid, PASSWORD_HISTORY)
            .await?
        {
            if c.passwords.verify(p.new.clone(), Some(old)).await {
                errors.push(format!(
                    "New password was used before; choose one that is not among your last {PASSWORD_HISTORY}."
                ));
                break;
            }
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let hash = c.passwords.hash(p.new).await.map_err(Error::Internal)?;
    c.store
        .set_password(uid, &hash, caller.event(Action::PasswordChange))
        .await?;
    c.auth_cache.clear();
    Ok(Ok(()))
}

/// Turns two-step sign-in on with a new secret, once a code from it
/// matches; `false` when the code does not. The confirming code is spent:
/// it does not sign in again.
pub async fn enable_totp(
    c: &Clinic,
    caller: &Caller,
    secret: &str,
    code: &str,
) -> Result<bool, Error> {
    let uid = caller.user_id().ok_or(Error::Forbidden)?;
    let step = (secret.len() <= 64)
        .then(|| totp_step(secret, code, c.now()))
        .flatten();
    let Some(step) = step else {
        return Ok(false);
    };
    c.store
        .set_totp_secret(uid, Some(secret), caller.event(Action::TotpEnable))
        .await?;
    c.store.use_totp_step(uid, step).await?;
    c.auth_cache.clear();
    Ok(true)
}

// ---- Handing a tablet to a patient -------------------------------------------

/// The pages a session may be handed to a patient on: signing a consent, or
/// answering a questionnaire, for one patient the caller may see.
fn hand_over_page(path: &str) -> Option<(domain::ids::PatientId, &'static str)> {
    let (page, _query) = path.split_once('?').unwrap_or((path, ""));
    let rest = page.strip_prefix("/patients/")?;
    let (id, tail) = rest.split_once('/')?;
    let pid = id.parse().ok()?;
    match tail {
        "consent/sign" => Some((pid, "consent")),
        "measures/new" => Some((pid, "questionnaire")),
        "intention" => Some((pid, "intention")),
        _ => None,
    }
}

/// Hands the caller's browser session to a patient: until a staff member
/// takes it back with their password, it shows only `path` (the consent to
/// sign, the questionnaire to answer) and a locked screen, never the staff
/// navigation or another chart. Returns where the patient goes now.
pub async fn hand_over(c: &Clinic, caller: &Caller, path: &str) -> Result<String, Error> {
    let hash = caller.session_hash.clone().ok_or(Error::Forbidden)?;
    // A tablet already in a patient's hands cannot be handed on from there
    // (to another patient's page): staff take it back first.
    if caller.user.as_ref().is_some_and(|u| u.kiosk.is_some()) {
        return Err(Error::Forbidden);
    }
    let Some((pid, what)) = hand_over_page(path) else {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "path",
            "only a consent to sign, a questionnaire to answer or an intention to write is handed to a patient",
        )]));
    };
    // The caller must see this patient; the read is audited.
    let p = crate::patients::read(c, caller, pid).await?;
    // Staff come back to where they handed it over: the consent tab, the
    // measures tab, or the chair of the visit the intention is for.
    let back_to = match what {
        "consent" => format!("/patients/{pid}/consent"),
        "intention" => match c
            .store
            .patient_encounters(pid)
            .await?
            .into_iter()
            .find(|e| e.status == "open")
        {
            Some(e) => format!("/encounters/{}", e.id),
            None => format!("/patients/{pid}"),
        },
        _ => format!("/patients/{pid}/measures"),
    };
    let kiosk = store::auth::Kiosk {
        path: path.to_string(),
        back_to,
    };
    let mut ev = caller.patient_event(
        Action::SessionHandOver,
        domain::auth::Permission::PatientRead,
        p.clinic_id,
        &pid.to_string(),
    );
    ev.detail = Some(format!("handed over to {what}"));
    c.store.set_kiosk(&hash, Some(&kiosk), ev).await?;
    c.auth_cache.clear();
    Ok(path.to_string())
}

/// Takes a handed-over session back: the password of the staff member whose
/// session it is unlocks it. Returns the staff page to go back to; a wrong
/// password is `Ok(Err(..))` and leaves it locked.
pub async fn take_back(
    c: &Clinic,
    caller: &Caller,
    password: &str,
) -> Result<Result<String, String>, Error> {
    let hash = caller.session_hash.clone().ok_or(Error::Forbidden)?;
    let Some(u) = caller.user.as_ref() else {
        return Err(Error::Forbidden);
    };
    let Some(k) = u.kiosk.clone() else {
        return Ok(Ok("/".into()));
    };
    let stored = c
        .store
        .login_candidate(&u.username)
        .await?
        .map(|x| x.password_hash);
    if !c
        .passwords
        .verify(password.chars().take(PASSWORD_MAX).collect(), stored)
        .await
    {
        let mut ev = caller.event(Action::SessionTakeBack);
        ev.outcome = "denied";
        ev.detail = Some("wrong password".into());
        c.store.audit(vec![ev]).await?;
        return Ok(Err(format!(
            "That is not {}'s password. The tablet stays locked.",
            u.display_name
        )));
    }
    c.store
        .set_kiosk(&hash, None, caller.event(Action::SessionTakeBack))
        .await?;
    c.auth_cache.clear();
    Ok(Ok(k.back_to))
}
