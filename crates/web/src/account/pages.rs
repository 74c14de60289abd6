//! Signing in and out (the sign-in form, its pre-login CSRF cookie, the
//! session cookie) and a staff member's own account: password and
//! two-step sign-in. The use cases are `clinic::account`.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::{
    constant_time_eq, cookie_value, new_totp, random_token, read_form, set_cookie, Caller, Staff,
    StaffForm, PRELOGIN_COOKIE, SESSION_COOKIE,
};
use crate::ctx::RequestMeta;
use crate::ui::*;
use crate::AppState;
use clinic::account;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
        .route("/account", get(account_page))
        .route("/account/password", post(account_password))
        .route("/account/totp/start", post(account_totp_start))
        .route("/account/totp", post(account_totp_confirm))
        .route("/kiosk", get(kiosk_page))
        .route("/kiosk/hand-over", post(kiosk_hand_over))
        .route("/kiosk/take-back", post(kiosk_take_back))
}

// ---------------------------------------------------------------- tablet hand-over

/// The locked screen of a tablet handed to a patient: nothing about anyone,
/// and the staff member's password to take it back.
#[derive(Template)]
#[template(path = "account/kiosk.html")]
struct KioskPage {
    layout: Layout,
    /// The page the patient was handed (to go back to it).
    page: String,
    error: Option<String>,
}

async fn kiosk_page(Staff(c): Staff) -> PageResult {
    let Some(k) = c.user.as_ref().and_then(|u| u.kiosk.clone()) else {
        return Ok(see_other("/"));
    };
    kiosk_view(&c, &k, None)
}

fn kiosk_view(c: &Caller, k: &clinic::records::auth::Kiosk, error: Option<String>) -> PageResult {
    let mut r = render(&KioskPage {
        layout: Layout::new(c, "Please hand the tablet back", "account"),
        page: k.path.clone(),
        error: error.clone(),
    })?;
    if error.is_some() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

async fn kiosk_hand_over(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let path = f.form.get("path").unwrap_or_default();
    let to = account::hand_over(&state, &f.caller, &path).await?;
    Ok(see_other(&to))
}

async fn kiosk_take_back(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let password = f.form.get("password").unwrap_or_default();
    match account::take_back(&state, &f.caller, &password).await? {
        Ok(back) => Ok(see_other(&back)),
        Err(why) => match f.caller.user.as_ref().and_then(|u| u.kiosk.clone()) {
            Some(k) => kiosk_view(&f.caller, &k, Some(why)),
            None => Ok(see_other("/")),
        },
    }
}

// ---------------------------------------------------------------- sign in

async fn login_form(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, _) = req.into_parts();
    if let Some(tok) = cookie_value(&parts, SESSION_COOKIE) {
        if account::session_open(&state, &tok).await? {
            return Ok(see_other("/"));
        }
    }
    login_page(&state, None, String::new())
}

fn login_page(state: &AppState, error: Option<String>, username: String) -> PageResult {
    let pre = random_token(24);
    let page = LoginPage {
        csrf: pre.clone(),
        error,
        username,
        css: crate::ui::assets::url("app.css"),
    };
    let mut resp = Html(page.render().map_err(crate::error::template)?).into_response();
    if let Ok(v) = set_cookie(
        PRELOGIN_COOKIE,
        &pre,
        state.web().secure_cookies,
        Some(3600),
    )
    .parse()
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

const LOGIN_FAILED: &str = "That username and password do not match an active account, or the account is \
     locked for a while after repeated failures. Check them and try again, or ask your clinic admin.";

async fn login_submit(State(state): State<AppState>, req: Request) -> PageResult {
    let (parts, body) = req.into_parts();
    let meta = parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_default();
    let pre = cookie_value(&parts, PRELOGIN_COOKIE).unwrap_or_default();
    let form = read_form(Request::from_parts(parts, body), &state).await?;
    if !constant_time_eq(&form.get("csrf").unwrap_or_default(), &pre) {
        return login_page(
            &state,
            Some("This sign-in form had expired. Please sign in again.".into()),
            String::new(),
        );
    }
    let typed: String = form
        .get("username")
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect();
    let attempt = account::SignIn {
        username: typed.clone(),
        password: form.get("password").unwrap_or_default(),
        code: form.get("totp").unwrap_or_default(),
    };
    let Some(opened) = account::sign_in(&state, &meta, attempt).await? else {
        return login_page(&state, Some(LOGIN_FAILED.into()), typed);
    };
    let mut resp = see_other("/");
    let h = resp.headers_mut();
    if let Ok(v) = set_cookie(
        SESSION_COOKIE,
        &opened.token,
        state.web().secure_cookies,
        None,
    )
    .parse()
    {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(PRELOGIN_COOKIE, "", state.web().secure_cookies, Some(0)).parse() {
        h.append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn logout(State(state): State<AppState>, f: StaffForm) -> PageResult {
    account::sign_out(&state, &f.caller).await?;
    let mut resp = see_other("/login");
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", state.web().secure_cookies, Some(0)).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

// ---------------------------------------------------------------- account

async fn account_view(
    state: &AppState,
    c: &Caller,
    password_errors: Vec<String>,
    setup: Option<(String, String)>,
    totp_error: Option<String>,
    flash: Option<String>,
) -> PageResult {
    let (u, names) = account::summary(state, c).await?;
    let page = AccountPage {
        layout: Layout::new(c, "Account", "account").with_flash(flash),
        username: u.username,
        roles: u
            .grants
            .iter()
            .map(|(k, r)| {
                (
                    names
                        .iter()
                        .find(|(id, _)| id == k)
                        .map(|(_, n)| n.clone())
                        .unwrap_or_default(),
                    r.label().to_string(),
                )
            })
            .collect(),
        password_errors,
        totp_enabled: u.totp,
        totp_setup: setup,
        totp_error,
    };
    render(&page)
}

async fn account_page(State(state): State<AppState>, Staff(c): Staff) -> PageResult {
    account_view(&state, &c, vec![], None, None, None).await
}

async fn account_password(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let change = account::PasswordChange {
        current: f.form.get("current").unwrap_or_default(),
        new: f.form.get("new").unwrap_or_default(),
        confirm: f.form.get("confirm").unwrap_or_default(),
    };
    if let Err(errors) = account::change_password(&state, &f.caller, change).await? {
        let mut r = account_view(&state, &f.caller, errors, None, None, None).await?;
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    // Every session ended, including this one: sign in again with the new password.
    Ok(see_other("/login"))
}

async fn account_totp_start(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let username = f
        .caller
        .user
        .as_ref()
        .map(|u| u.username.clone())
        .unwrap_or_default();
    account_view(
        &state,
        &f.caller,
        vec![],
        Some(new_totp(&username)),
        None,
        None,
    )
    .await
}

async fn account_totp_confirm(State(state): State<AppState>, f: StaffForm) -> PageResult {
    let c = &f.caller;
    let secret = f.form.get("secret").unwrap_or_default();
    let code = f.form.get("code").unwrap_or_default();
    if !account::enable_totp(&state, c, &secret, &code).await? {
        let username = c
            .user
            .as_ref()
            .map(|u| u.username.clone())
            .unwrap_or_default();
        let url = format!("otpauth://totp/Stillwater:{username}?secret={secret}&issuer=Stillwater");
        let mut r = account_view(&state, c, vec![], Some((secret, url)), Some("That code did not match. Check the key and the time on your phone, then try the newest code.".into()), None).await?;
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    account_view(
        &state,
        c,
        vec![],
        None,
        None,
        Some("Two-step sign-in is on.".into()),
    )
    .await
}

// ---- Views -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "account/login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub error: Option<String>,
    pub username: String,
    pub css: String,
}

#[derive(Template)]
#[template(path = "account/account.html")]
pub struct AccountPage {
    pub layout: Layout,
    pub username: String,
    pub roles: Vec<(String, String)>,
    pub password_errors: Vec<String>,
    pub totp_enabled: bool,
    pub totp_setup: Option<(String, String)>,
    pub totp_error: Option<String>,
}
