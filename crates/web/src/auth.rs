//! Who is calling: browser sessions (cookie + CSRF token), bearer tokens for
//! systems and devices. Extractors here are the only way a handler learns the
//! caller, so no handler can forget to authenticate.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
pub use clinic::actor::{
    constant_time_eq, new_totp, random_token, secret_hash, totp_at, totp_ok, totp_step, Caller,
};

use crate::ctx::RequestMeta;
use crate::error::{ApiError, Error, PageError};
use crate::AppState;

pub const SESSION_COOKIE: &str = "sw_session";
pub const PRELOGIN_COOKIE: &str = "sw_pre";

/// The value of the request's cookie `name`, if it sent one.
pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value for the whole site, out of reach of scripts and of
/// other sites' forms; `Secure` behind TLS; `max_age` in seconds (0 clears).
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<i64>) -> String {
    let mut c = cookie::Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure);
    if let Some(a) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(a));
    }
    c.build().to_string()
}

fn meta(parts: &Parts) -> RequestMeta {
    parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default()
}

/// The staff member whose browser session the cookie names, if any.
async fn session_caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, Error> {
    let Some(token) = cookie_value(parts, SESSION_COOKIE) else {
        return Ok(None);
    };
    state.session_caller(&token, meta(parts)).await
}

/// The staff member or device the bearer token names; `None` without one.
async fn token_caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, Error> {
    let Some(v) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| Error::Unauthenticated)?;
    let token = v
        .strip_prefix("Bearer ")
        .ok_or(Error::Unauthenticated)?
        .trim();
    state.token_caller(token, meta(parts)).await.map(Some)
}

/// The path the request was made to (before any router nesting).
fn request_path(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string())
}

/// Whether a session handed to a patient keeps off this request: anything
/// but the page it was handed over for (and the locked screen) is.
fn locked_out(c: &Caller, parts: &Parts) -> bool {
    c.user
        .as_ref()
        .and_then(|u| u.kiosk.as_ref())
        .is_some_and(|k| !k.allows(&request_path(parts)))
}

/// Why a page's caller was turned away: an error page (or sign-in), or the
/// locked screen of a tablet handed to a patient.
pub enum PageReject {
    Error(PageError),
    Locked,
}

impl From<Error> for PageReject {
    fn from(e: Error) -> Self {
        PageReject::Error(PageError(e))
    }
}

impl From<PageError> for PageReject {
    fn from(e: PageError) -> Self {
        PageReject::Error(e)
    }
}

impl axum::response::IntoResponse for PageReject {
    fn into_response(self) -> axum::response::Response {
        match self {
            PageReject::Error(e) => e.into_response(),
            PageReject::Locked => axum::response::Redirect::to("/kiosk").into_response(),
        }
    }
}

/// A signed-in staff member on a page. Without a session: redirect to sign
/// in; on a tablet handed to a patient, anything but its page: the locked
/// screen.
pub struct Staff(pub Caller);

impl FromRequestParts<AppState> for Staff {
    type Rejection = PageReject;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match session_caller(parts, state).await? {
            Some(c) if locked_out(&c, parts) => Err(PageReject::Locked),
            Some(c) => Ok(Staff(c)),
            None => Err(PageError(Error::Unauthenticated).into()),
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
            let path = request_path(parts);
            if matches!(c.principal, domain::auth::Principal::Device { .. })
                && !(parts.method == Method::POST && path == "/api/v1/observations")
            {
                return Err(ApiError(Error::Forbidden));
            }
            return Ok(ApiCaller(c));
        }
        let Some(c) = session_caller(parts, state).await? else {
            return Err(ApiError(Error::Unauthenticated));
        };
        if locked_out(&c, parts) {
            return Err(ApiError(Error::Forbidden));
        }
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent, c.csrf()) {
                return Err(ApiError(Error::Forbidden));
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

pub(crate) async fn read_form(req: Request, state: &AppState) -> Result<Posted, Error> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(Error::UnsupportedMediaType);
    }
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::bad("The form could not be read.", None)
            }
        })?;
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .map(Posted)
        .map_err(|_| Error::bad("The form could not be read.", None))
}

/// A form posted by a signed-in staff member, its CSRF token checked.
pub struct StaffForm {
    pub caller: Caller,
    pub form: Posted,
}

impl FromRequest<AppState> for StaffForm {
    type Rejection = PageReject;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Some(caller) = session_caller(&parts, state).await? else {
            return Err(PageError(Error::Unauthenticated).into());
        };
        if locked_out(&caller, &parts) {
            return Err(PageReject::Locked);
        }
        let _ = &mut parts;
        let form = read_form(Request::from_parts(parts, body), state).await?;
        let sent = form.get("csrf").unwrap_or_default();
        if !constant_time_eq(&sent, caller.csrf()) {
            return Err(PageError(Error::bad(
                "This form has expired. Go back, reload the page and try again.",
                Some("csrf"),
            ))
            .into());
        }
        Ok(StaffForm { caller, form })
    }
}
