//! Who acts: a staff member (browser session or token), a device (a bedside
//! monitor's token), or a patient (portal and questionnaire links, see
//! [`crate::portal`]). Every use case takes the [`Caller`] and checks what it
//! may do before it reads or writes; [`Clinic::session_caller`] and
//! [`Clinic::token_caller`] are how a caller comes to be.

use base64::Engine;
use domain::audit::Action;
use domain::auth::{Permission, Principal};
use domain::ids::{ClinicId, OrgId, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::audit::NewAuditEvent;
use store::auth::{SessionInfo, TokenOwner};

use crate::error::Error;
use crate::Clinic;

/// Facts about the request that go into audit rows.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: String,
    pub source_ip: Option<String>,
    pub htmx: bool,
}

/// A random secret, URL-safe: session ids, CSRF tokens, API tokens.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// What is stored for a secret: its SHA-256, hex. The secret itself never is.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The staff member, for sessions and user tokens; `None` for devices.
    pub user: Option<SessionInfo>,
    pub org_id: OrgId,
    /// Hash of the browser session id; `None` for bearer tokens.
    pub session_hash: Option<String>,
    pub meta: RequestMeta,
}

impl Caller {
    /// A staff member acting from the command line or a loader (the demo's
    /// treatment day), with the roles they hold now. Audited like any other
    /// caller, with `source` as the address.
    pub async fn of_user(clinic: &Clinic, user: UserId, source: &str) -> Result<Self, Error> {
        let store = &clinic.store;
        let u = store.user_summary(user).await?;
        if u.disabled {
            return Err(Error::Forbidden);
        }
        let s = SessionInfo {
            user_id: user,
            org_id: store.user_org(user).await?,
            username: u.username,
            display_name: u.display_name,
            csrf_token: String::new(),
            last_seen_at: store.now(),
            grants: u.grants,
            kiosk: None,
        };
        Ok(Caller {
            principal: s.principal(),
            org_id: s.org_id,
            user: Some(s),
            session_hash: None,
            meta: RequestMeta {
                request_id: uuid::Uuid::now_v7().to_string(),
                source_ip: Some(source.to_string()),
                htmx: false,
            },
        })
    }

    pub fn user_id(&self) -> Option<UserId> {
        self.user.as_ref().map(|u| u.user_id)
    }

    pub fn label(&self) -> String {
        match (&self.user, &self.principal) {
            (Some(u), _) => u.username.clone(),
            (None, Principal::Device { token_id, .. }) => format!("device:{token_id}"),
            _ => "unknown".into(),
        }
    }

    pub fn may(&self, p: Permission, clinic: ClinicId) -> bool {
        self.principal.may(p, clinic)
    }

    pub fn clinics_with(&self, p: Permission) -> Vec<ClinicId> {
        self.principal.clinics_with(p)
    }

    /// Fails with 403 unless the caller holds `p` in some clinic.
    pub fn require_any(&self, p: Permission) -> Result<Vec<ClinicId>, Error> {
        let c = self.clinics_with(p);
        if c.is_empty() {
            Err(Error::Forbidden)
        } else {
            Ok(c)
        }
    }

    pub fn require(&self, p: Permission, clinic: ClinicId) -> Result<(), Error> {
        if self.may(p, clinic) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// An audit event stamped with who, from where and which request.
    pub fn event(&self, action: Action) -> NewAuditEvent {
        let mut e = NewAuditEvent::new(action, self.label());
        e.actor_user_id = self.user_id().map(|u| u.to_string());
        e.org_id = Some(self.org_id.to_string());
        e.source_ip = self.meta.source_ip.clone();
        e.request_id = Some(self.meta.request_id.clone());
        e
    }

    /// An audit event about one patient, with the role the caller acts in.
    pub fn patient_event(
        &self,
        action: Action,
        p: Permission,
        clinic: ClinicId,
        patient: &str,
    ) -> NewAuditEvent {
        let mut e = self.event(action);
        e.actor_role = self
            .principal
            .acting_role(p, clinic)
            .map(|r| r.as_str().to_string());
        e.clinic_id = Some(clinic.to_string());
        e.patient_id = Some(patient.to_string());
        e.object_type = Some("patient".into());
        e.object_id = Some(patient.to_string());
        e
    }

    pub fn csrf(&self) -> &str {
        self.user
            .as_ref()
            .map(|u| u.csrf_token.as_str())
            .unwrap_or("")
    }
}

/// Recently looked-up sessions and tokens, by the hash of their secret. A hot
/// path cache only: entries expire after `auth_cache_ttl`, and any change to
/// who may do what on this instance clears it.
#[derive(Clone, Default)]
pub struct AuthCache {
    inner: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, TokenOwner)>>,
    >,
}

const AUTH_CACHE_MAX: usize = 10_000;

impl AuthCache {
    fn get(&self, key: &str, ttl: std::time::Duration) -> Option<TokenOwner> {
        let map = self.inner.lock().ok()?;
        map.get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, key: String, v: TokenOwner, ttl: std::time::Duration) {
        if ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.inner.lock() {
            if map.len() >= AUTH_CACHE_MAX {
                map.retain(|_, (at, _)| at.elapsed() < ttl);
                if map.len() >= AUTH_CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(key, (std::time::Instant::now(), v));
        }
    }

    /// Forgets everything: called whenever sessions, roles or accounts change.
    pub fn clear(&self) {
        if let Ok(mut map) = self.inner.lock() {
            map.clear();
        }
    }
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The time step (RFC 6238: 30 s since the epoch) a six-digit code belongs
/// to for a base32 secret at `now` (microseconds), one step of clock skew
/// either way; `None` when it matches none. The caller records the step so
/// that a code is accepted once ([`store::Store::use_totp_step`]).
pub fn totp_step(secret_b32: &str, code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .ok()?;
    let totp = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        0,
        30,
        bytes,
        None,
        String::new(),
    );
    let step = now.div_euclid(30_000_000);
    (step - 1..=step + 1)
        .filter(|s| *s >= 0)
        .find(|s| constant_time_eq(&totp.generate(*s as u64 * 30), code))
}

/// Checks a six-digit TOTP code against a base32 secret at `now`
/// (microseconds), without recording it (confirming a new key).
pub fn totp_ok(secret_b32: &str, code: &str, now: i64) -> bool {
    totp_step(secret_b32, code, now).is_some()
}

/// A new TOTP secret (160 bits, base32) and its otpauth:// URL for authenticator apps.
pub fn new_totp(username: &str) -> (String, String) {
    let secret = totp_rs::Secret::generate_secret();
    let encoded = secret.to_encoded().to_string();
    let url = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret.to_bytes().unwrap_or_default(),
        Some("Stillwater".into()),
        username.to_string(),
    )
    .get_url();
    (encoded, url)
}

/// The code for a secret at `now` (microseconds; for tests and the CLI's check).
pub fn totp_at(secret_b32: &str, now: i64) -> Option<String> {
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .ok()?;
    let t = u64::try_from(now.div_euclid(1_000_000)).ok()?;
    Some(
        totp_rs::TOTP::new_unchecked(
            totp_rs::Algorithm::SHA1,
            6,
            1,
            30,
            bytes,
            None,
            String::new(),
        )
        .generate(t),
    )
}

/// The longest session or token secret looked up; longer ones are refused
/// unread.
const SECRET_MAX: usize = 128;

impl Clinic {
    /// The staff member a browser session's secret belongs to, if it is
    /// still open; refreshes its idle clock at most once a minute so that
    /// reads stay reads.
    pub async fn session_caller(
        &self,
        token: &str,
        meta: RequestMeta,
    ) -> Result<Option<Caller>, Error> {
        if token.len() > SECRET_MAX {
            return Ok(None);
        }
        let hash = secret_hash(token);
        let ttl = self.cfg.auth_cache_ttl;
        let s = match self.auth_cache.get(&hash, ttl) {
            Some(TokenOwner::User(s)) => s,
            _ => {
                let now = self.now();
                let idle = self.cfg.session_idle.as_micros() as i64;
                let Some(s) = self.store.session(&hash, now, idle).await? else {
                    return Ok(None);
                };
                if now - s.last_seen_at > 60_000_000 {
                    self.store.touch_session(&hash, now).await?;
                }
                self.auth_cache
                    .put(hash.clone(), TokenOwner::User(s.clone()), ttl);
                s
            }
        };
        Ok(Some(Caller {
            principal: s.principal(),
            org_id: s.org_id,
            user: Some(s),
            session_hash: Some(hash),
            meta,
        }))
    }

    /// The staff member or device a bearer token belongs to; an unknown or
    /// revoked token is `Unauthenticated`.
    pub async fn token_caller(&self, token: &str, meta: RequestMeta) -> Result<Caller, Error> {
        if token.is_empty() || token.len() > SECRET_MAX {
            return Err(Error::Unauthenticated);
        }
        let hash = secret_hash(token);
        let ttl = self.cfg.auth_cache_ttl;
        let owner = match self.auth_cache.get(&hash, ttl) {
            Some(o) => Some(o),
            None => {
                let o = self.store.token_owner(&hash).await?;
                if let Some(o) = &o {
                    self.auth_cache.put(hash, o.clone(), ttl);
                }
                o
            }
        };
        match owner {
            None => Err(Error::Unauthenticated),
            Some(TokenOwner::User(s)) => Ok(Caller {
                principal: s.principal(),
                org_id: s.org_id,
                user: Some(s),
                session_hash: None,
                meta,
            }),
            Some(TokenOwner::Device {
                token_id,
                clinic_id,
                org_id,
            }) => Ok(Caller {
                principal: Principal::Device {
                    token_id,
                    clinic_id,
                },
                user: None,
                org_id,
                session_hash: None,
                meta,
            }),
        }
    }
}
