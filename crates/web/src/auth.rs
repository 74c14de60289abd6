//! Who is calling: browser sessions (cookie + CSRF token), bearer tokens for
//! systems and devices. Extractors here are the only way a handler learns the
//! caller, so no handler can forget to authenticate.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use base64::Engine;
use domain::audit::Action;
use domain::auth::{Permission, Principal};
use domain::ids::{ClinicId, OrgId, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::audit::NewAuditEvent;
use store::auth::{SessionInfo, TokenOwner};

use crate::ctx::RequestMeta;
use crate::error::{ApiError, PageError, WebError};
use crate::AppState;

pub const SESSION_COOKIE: &str = "sw_session";
pub const PRELOGIN_COOKIE: &str = "sw_pre";

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

pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    c
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
    pub async fn of_user(
        store: &store::Store,
        user: UserId,
        source: &str,
    ) -> Result<Self, WebError> {
        let u = store.user_summary(user).await?;
        if u.disabled {
            return Err(WebError::Forbidden);
        }
        let s = SessionInfo {
            user_id: user,
            org_id: store.user_org(user).await?,
            username: u.username,
            display_name: u.display_name,
            csrf_token: String::new(),
            last_seen_at: store.now(),
            grants: u.grants,
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
    pub fn require_any(&self, p: Permission) -> Result<Vec<ClinicId>, WebError> {
        let c = self.clinics_with(p);
        if c.is_empty() {
            Err(WebError::Forbidden)
        } else {
            Ok(c)
        }
    }

    pub fn require(&self, p: Permission, clinic: ClinicId) -> Result<(), WebError> {
        if self.may(p, clinic) {
            Ok(())
        } else {
            Err(WebError::Forbidden)
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

fn meta(parts: &Parts) -> RequestMeta {
    parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default()
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

/// Looks up the browser session from the cookie; refreshes its idle clock at
/// most once a minute so that reads stay reads.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, WebError> {
    let Some(token) = cookie_value(parts, SESSION_COOKIE) else {
        return Ok(None);
    };
    if token.len() > 128 {
        return Ok(None);
    }
    let hash = secret_hash(&token);
    let ttl = state.cfg.auth_cache_ttl;
    let s = match state.auth_cache.get(&hash, ttl) {
        Some(TokenOwner::User(s)) => s,
        _ => {
            let now = state.now();
            let idle = state.cfg.session_idle.as_micros() as i64;
            let Some(s) = state.store.session(&hash, now, idle).await? else {
                return Ok(None);
            };
            if now - s.last_seen_at > 60_000_000 {
                state.store.touch_session(&hash, now).await?;
            }
            state
                .auth_cache
                .put(hash.clone(), TokenOwner::User(s.clone()), ttl);
            s
        }
    };
    Ok(Some(Caller {
        principal: s.principal(),
        org_id: s.org_id,
        user: Some(s),
        session_hash: Some(hash),
        meta: meta(parts),
    }))
}

async fn token_caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, WebError> {
    let Some(v) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| WebError::Unauthenticated)?;
    let token = v
        .strip_prefix("Bearer ")
        .ok_or(WebError::Unauthenticated)?
        .trim();
    if token.is_empty() || token.len() > 128 {
        return Err(WebError::Unauthenticated);
    }
    let hash = secret_hash(token);
    let ttl = state.cfg.auth_cache_ttl;
    let owner = match state.auth_cache.get(&hash, ttl) {
        Some(o) => Some(o),
        None => {
            let o = state.store.token_owner(&hash).await?;
            if let Some(o) = &o {
                state.auth_cache.put(hash, o.clone(), ttl);
            }
            o
        }
    };
    match owner {
        None => Err(WebError::Unauthenticated),
        Some(TokenOwner::User(s)) => Ok(Some(Caller {
            principal: s.principal(),
            org_id: s.org_id,
            user: Some(s),
            session_hash: None,
            meta: meta(parts),
        })),
        Some(TokenOwner::Device {
            token_id,
            clinic_id,
            org_id,
        }) => Ok(Some(Caller {
            principal: Principal::Device {
                token_id,
                clinic_id,
            },
            user: None,
            org_id,
            session_hash: None,
            meta: meta(parts),
        })),
    }
}

/// A signed-in staff member on a page. Without a session: redirect to sign in.
pub struct Staff(pub Caller);

impl FromRequestParts<AppState> for Staff {
    type Rejection = PageError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match session_caller(parts, state).await? {
            Some(c) => Ok(Staff(c)),
            None => Err(PageError(WebError::Unauthenticated)),
        }
    }
}

/// A caller of the JSON API: bearer token, or a browser session that sends its
/// CSRF token in `X-CSRF-Token` for anything but reads.
pub struct ApiCaller(pub Caller);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(c) = token_caller(parts, state).await? {
            // A device token (a bedside monitor) only sends readings: it
            // reads nothing, not even who it is or the protocols.
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map(|u| u.0.path().to_string())
                .unwrap_or_else(|| parts.uri.path().to_string());
            if matches!(c.principal, domain::auth::Principal::Device { .. })
                && !(parts.method == Method::POST && path == "/api/v1/observations")
            {
                return Err(ApiError(WebError::Forbidden));
            }
            return Ok(ApiCaller(c));
        }
        let Some(c) = session_caller(parts, state).await? else {
            return Err(ApiError(WebError::Unauthenticated));
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent, c.csrf()) {
                return Err(ApiError(WebError::Forbidden));
            }
        }
        Ok(ApiCaller(c))
    }
}

/// A urlencoded form body, read as name/value pairs.
#[derive(Debug, Clone, Default)]
pub struct Posted(pub Vec<(String, String)>);

impl Posted {
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub(crate) async fn read_form(req: Request, state: &AppState) -> Result<Posted, WebError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(WebError::UnsupportedMediaType);
    }
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                WebError::PayloadTooLarge
            } else {
                WebError::bad("The form could not be read.", None)
            }
        })?;
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .map(Posted)
        .map_err(|_| WebError::bad("The form could not be read.", None))
}

/// A form posted by a signed-in staff member, its CSRF token checked.
pub struct StaffForm {
    pub caller: Caller,
    pub form: Posted,
}

impl FromRequest<AppState> for StaffForm {
    type Rejection = PageError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Some(caller) = session_caller(&parts, state).await? else {
            return Err(PageError(WebError::Unauthenticated));
        };
        let _ = &mut parts;
        let form = read_form(Request::from_parts(parts, body), state).await?;
        let sent = form.get("csrf").unwrap_or_default();
        if !constant_time_eq(&sent, caller.csrf()) {
            return Err(PageError(WebError::bad(
                "This form has expired. Go back, reload the page and try again.",
                Some("csrf"),
            )));
        }
        Ok(StaffForm { caller, form })
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
