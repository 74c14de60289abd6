//! The Schedule III record's use cases, shared by the pages and the API:
//! receipts, draws for a dose order, what was given and wasted (witnessed by a
//! second licensed person who signs in at that moment), transfers, breakage,
//! returns, destruction, adjustments; blind counts that open discrepancy
//! cases; inventories; loss and theft cases with their DEA clocks; the
//! dispensing log; and the alerts a clinic must act on.

use std::collections::HashMap;

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::ClinicId;
use domain::substances::{self as cs, EntryKind, LedgerEntry, Resolution};
use domain::FieldError;
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::json;
use store::audit::NewAuditEvent;
use store::substances::{
    Balance, Case, CaseResolution, Count, Draw, Inventory, LedgerFilter, LedgerRow, LedgerRowRef,
    Lot, Movement, NewCase, Product, Registration, Storage,
};

use crate::actor::Caller;
use crate::error::{stored, stored_opt, Error};
use crate::Clinic;

const DAY: i64 = 86_400_000_000;
/// Lots expiring within this many days are flagged.
pub use cs::alerts::EXPIRY_WARN_DAYS;
/// How far back a movement may be recorded.
const LATE_DAYS: i64 = 7;

fn invalid(field: &str, m: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError::new(field, m)])
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A registered location: a clinic of the organisation with its zone and DEA registration.
#[derive(Debug, Clone)]
pub struct Location {
    pub id: ClinicId,
    pub name: String,
    pub zone: String,
    pub registration: Option<Registration>,
    /// The zone, looked up once: a report formats every row's time in it.
    tz: jiff::tz::TimeZone,
    /// Now, when the location was looked up for a request.
    pub now: i64,
}

impl Location {
    pub fn tz(&self) -> jiff::tz::TimeZone {
        self.tz.clone()
    }
    pub fn today(&self) -> Date {
        domain::time::to_timestamp(self.now)
            .to_zoned(self.tz())
            .date()
    }
    /// Midnight of `d` here, in micros.
    pub fn start_of(&self, d: Date) -> i64 {
        d.to_zoned(self.tz())
            .map(|z| z.timestamp().as_microsecond())
            .unwrap_or_default()
    }
    /// "2026-11-23 07:15 MST": the Schedule III record keeps the 24-hour
    /// clock of a register, whatever the clinic's everyday clock.
    pub fn when(&self, m: i64) -> String {
        let mut s = String::with_capacity(24);
        write_when(&self.tz, &mut s, m);
        s
    }
}

/// A time at a location as "2026-11-28 09:15 MST", appended to `out`.
fn write_when(tz: &jiff::tz::TimeZone, out: &mut String, m: i64) {
    use std::fmt::Write;
    let ts = domain::time::to_timestamp(m);
    let info = tz.to_offset_info(ts);
    let d = info.offset().to_datetime(ts);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02} {}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        info.abbreviation()
    );
}

/// The locations where the caller holds `p`.
pub async fn locations(state: &Clinic, c: &Caller, p: Permission) -> Result<Vec<Location>, Error> {
    let mine = c.require_any(p)?;
    let regs: HashMap<String, Registration> = state
        .store
        .cs_registrations()
        .await?
        .into_iter()
        .map(|r| (r.clinic_id.clone(), r))
        .collect();
    Ok(state
        .store
        .clinics_of_org(c.org_id)
        .await?
        .into_iter()
        .filter(|k| mine.contains(&k.id))
        .map(|k| Location {
            registration: regs.get(&k.id.to_string()).cloned(),
            id: k.id,
            name: k.settings.name,
            tz: jiff::tz::TimeZone::get(&k.settings.time_zone).unwrap_or(jiff::tz::TimeZone::UTC),
            zone: k.settings.time_zone,
            now: state.now(),
        })
        .collect())
}

/// The location named by `id` where the caller holds `p`; otherwise "not found".
async fn location(
    state: &Clinic,
    c: &Caller,
    p: Permission,
    id: &str,
    field: &str,
) -> Result<Location, Error> {
    let id = id.trim();
    if id.is_empty() {
        return Err(invalid(field, "choose a location"));
    }
    let all = locations(state, c, p).await?;
    all.into_iter()
        .find(|l| l.id.to_string() == id)
        .ok_or_else(|| {
            if c.clinics_with(Permission::CsRead)
                .iter()
                .any(|k| k.to_string() == id)
            {
                Error::Forbidden
            } else {
                invalid(field, "no such location among yours")
            }
        })
}

/// The location a report names, or the first the caller may read.
async fn report_location(state: &Clinic, c: &Caller, id: &str) -> Result<Location, Error> {
    if id.trim().is_empty() {
        return locations(state, c, Permission::CsRead)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::Forbidden);
    }
    location(state, c, Permission::CsRead, id, "clinic_id").await
}

/// An audit event about the record at one location, with the acting role.
fn event(c: &Caller, a: Action, p: Permission, clinic: ClinicId) -> NewAuditEvent {
    let mut e = c.event(a);
    e.actor_role = c
        .principal
        .acting_role(p, clinic)
        .map(|r| r.as_str().to_string());
    e.clinic_id = Some(clinic.to_string());
    e.object_type = Some("cs_ledger".into());
    e
}

/// Starts a blind count at a location: until it is recorded, the counter
/// sees no expected figure there (balances, the ledger, the reconciliation).
pub async fn begin_count(state: &Clinic, c: &Caller, clinic: &str) -> Result<(), Error> {
    let loc = location(state, c, Permission::CsHandle, clinic, "clinic_id").await?;
    let me = user_of(c)?;
    state.store.cs_begin_count(&loc.id.to_string(), &me).await?;
    Ok(())
}

/// The locations where the caller is counting blind.
pub async fn counting(state: &Clinic, c: &Caller) -> Result<Vec<String>, Error> {
    match c.user_id() {
        Some(u) => Ok(state.store.cs_counting(&u.to_string()).await?),
        None => Ok(Vec::new()),
    }
}

/// Refuses what would show expected figures to someone counting blind.
pub async fn refuse_while_counting(
    state: &Clinic,
    c: &Caller,
    clinic: Option<&str>,
) -> Result<(), Error> {
    let mine = counting(state, c).await?;
    let hit = match clinic.map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => mine.iter().any(|m| m == k),
        None => !mine.is_empty(),
    };
    if hit {
        return Err(Error::Conflict(
            "a blind count of yours is in progress: record it first, then the expected figures show".into(),
        ));
    }
    Ok(())
}

fn user_of(c: &Caller) -> Result<String, Error> {
    c.user_id().map(|u| u.to_string()).ok_or(Error::Forbidden)
}

fn parse_date(field: &str, s: &str) -> Result<Date, Error> {
    s.trim()
        .parse()
        .map_err(|_| invalid(field, "must be a date as YYYY-MM-DD"))
}

fn required(field: &str, v: &Option<String>, max: usize) -> Result<String, Error> {
    let t = v.as_deref().unwrap_or("").trim();
    if t.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if t.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(t.to_string())
}

fn optional(field: &str, v: &Option<String>, max: usize) -> Result<Option<String>, Error> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(_) => required(field, v, max).map(Some),
    }
}

/// When a movement happened: now, or up to a week back, never ahead.
fn happened_at(at: &Option<String>, loc: &Location) -> Result<i64, Error> {
    let now = loc.now;
    let Some(s) = at.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(now);
    };
    let m = match s.parse::<jiff::Timestamp>() {
        Ok(t) => t.as_microsecond(),
        Err(_) => s
            .parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|d| d.to_zoned(loc.tz()).ok())
            .map(|z| z.timestamp().as_microsecond())
            .ok_or_else(|| {
                invalid(
                    "at",
                    format!("{s:?} is not a time (e.g. 2026-11-24T09:30:00-07:00)"),
                )
            })?,
    };
    if m > now + 60_000_000 {
        return Err(invalid("at", "is in the future"));
    }
    if m < now - LATE_DAYS * DAY {
        return Err(invalid(
            "at",
            format!("is more than {LATE_DAYS} days ago: record a correction as an adjustment"),
        ));
    }
    Ok(m)
}

// ---- Overview ---------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct CsAlert {
    pub clinic_id: String,
    /// `stop` for what must be acted on now, `warn` for what comes soon.
    pub level: &'static str,
    pub text: String,
}

pub struct Overview {
    pub locations: Vec<Location>,
    pub balances: Vec<Balance>,
    pub open_draws: Vec<Draw>,
    pub cases: Vec<Case>,
    pub alerts: Vec<CsAlert>,
    pub products: Vec<Product>,
    pub storage: Vec<Storage>,
    /// Open dose orders: (order id, clinic id, patient name, mg, µg drawn).
    pub orders: Vec<(String, String, String, f64, i64)>,
}

pub async fn overview(state: &Clinic, c: &Caller) -> Result<Overview, Error> {
    let locs = locations(state, c, Permission::CsRead).await?;
    let ids: Vec<String> = locs.iter().map(|l| l.id.to_string()).collect();
    let balances = state.store.cs_balances(&ids).await?;
    let open_draws = state.store.cs_open_draws(&ids).await?;
    let cases = state.store.cs_cases(&ids).await?;
    let alerts = alerts(&locs, &balances, &open_draws, &cases);
    let orders = state.store.cs_open_orders(&ids).await?;
    state.store.audit(read_events(c, &locs, "stock")).await?;
    Ok(Overview {
        balances,
        open_draws,
        cases,
        alerts,
        products: state.store.cs_products(&c.org_id.to_string()).await?,
        storage: state.store.cs_storage(&ids).await?,
        orders,
        locations: locs,
    })
}

/// One read audit record per location the caller reads, saying what.
fn read_events(c: &Caller, locs: &[Location], what: &str) -> Vec<NewAuditEvent> {
    locs.iter()
        .map(|l| {
            let mut e = event(c, Action::CsRead, Permission::CsRead, l.id);
            e.detail = Some(what.into());
            e
        })
        .collect()
}

/// The open draws and the alerts, without the rest of the overview (what the
/// draws endpoint answers).
pub async fn draws_and_alerts(
    state: &Clinic,
    c: &Caller,
) -> Result<(Vec<Draw>, Vec<CsAlert>), Error> {
    let locs = locations(state, c, Permission::CsRead).await?;
    let ids: Vec<String> = locs.iter().map(|l| l.id.to_string()).collect();
    let balances = state.store.cs_balances(&ids).await?;
    let open_draws = state.store.cs_open_draws(&ids).await?;
    let cases = state.store.cs_cases(&ids).await?;
    let alerts = alerts(&locs, &balances, &open_draws, &cases);
    state
        .store
        .audit(read_events(c, &locs, "open draws"))
        .await?;
    Ok((open_draws, alerts))
}

/// The loss and theft cases of the caller's locations.
pub async fn cases(state: &Clinic, c: &Caller) -> Result<Vec<Case>, Error> {
    let locs = locations(state, c, Permission::CsRead).await?;
    let ids: Vec<String> = locs.iter().map(|l| l.id.to_string()).collect();
    let cases = state.store.cs_cases(&ids).await?;
    state.store.audit(read_events(c, &locs, "cases")).await?;
    Ok(cases)
}

/// Lots near or past expiry, registrations near or past expiry, draws left
/// open past the end of their day, and loss clocks running out: the rows
/// read for the rule in [`cs::alerts`].
pub fn alerts(
    locs: &[Location],
    balances: &[Balance],
    draws: &[Draw],
    cases: &[Case],
) -> Vec<CsAlert> {
    use cs::alerts as rule;
    let sites: Vec<rule::Site> = locs
        .iter()
        .map(|l| {
            let today = l.today();
            rule::Site {
                clinic_id: l.id.to_string(),
                name: l.name.clone(),
                today,
                midnight: l.start_of(today),
                registration: l
                    .registration
                    .as_ref()
                    .map(|r| (r.dea_number.clone(), r.expires_on.clone())),
            }
        })
        .collect();
    let lots: Vec<rule::Lot> = balances
        .iter()
        .map(|b| rule::Lot {
            clinic_id: b.clinic_id.clone(),
            lot_number: b.lot_number.clone(),
            product_name: b.product_name.clone(),
            expires_on: b.expires_on.clone(),
            balance_ul: b.balance_ul,
        })
        .collect();
    let open: Vec<rule::OpenDraw> = draws
        .iter()
        .map(|d| rule::OpenDraw {
            clinic_id: d.clinic_id.clone(),
            drawn_at: d.drawn_at,
            drawn_when: locs
                .iter()
                .find(|l| l.id.to_string() == d.clinic_id)
                .map(|l| l.when(d.drawn_at))
                .unwrap_or_default(),
            drawn_ul: d.drawn_ul,
            lot_number: d.lot_number.clone(),
            drawn_by: d.drawn_by.clone(),
        })
        .collect();
    let cases: Vec<rule::Case> = cases
        .iter()
        .map(|k| rule::Case {
            clinic_id: k.clinic_id.clone(),
            kind: k.kind.clone(),
            status: k.status.clone(),
            discovered_on: k.discovered_on.clone(),
            dea_notified_on: k.dea_notified_on.clone(),
            form106_filed_on: k.form106_filed_on.clone(),
        })
        .collect();
    rule::alerts(&sites, &lots, &open, &cases)
        .into_iter()
        .map(|a| CsAlert {
            clinic_id: a.clinic_id,
            level: a.level,
            text: a.text,
        })
        .collect()
}

// ---- Witnesses --------------------------------------------------------------

/// The second licensed person signs in at that moment: their username and
/// password, a different user from the one recording, holding the witness
/// permission here. Every refusal is audited (never with the password).
async fn witness(
    state: &Clinic,
    c: &Caller,
    loc: &Location,
    field: &str,
    username: &Option<String>,
    password: &Option<String>,
    code: &Option<String>,
) -> Result<String, Error> {
    let name = username.as_deref().unwrap_or("").trim().to_string();
    let pw = password.clone().unwrap_or_default();
    let shown: String = name.chars().take(64).collect();
    let refused = |why: &'static str| {
        let mut e = event(c, Action::CsWitnessRefused, Permission::CsHandle, loc.id);
        e.outcome = "refused";
        e.object_type = Some("cs_witness".into());
        e.detail = Some(format!("{field}: {why} ({shown})"));
        e
    };
    let refuse = |why: &'static str, msg: String| {
        let e = refused(why);
        async move {
            state.store.audit(vec![e]).await?;
            Err::<String, Error>(invalid(field, msg))
        }
    };
    let wrong = "the witness's username or password is wrong";
    if name.is_empty() || pw.is_empty() {
        return refuse(
            "missing",
            "a second licensed person gives their username and password".into(),
        )
        .await;
    }
    if c.user.as_ref().is_some_and(|u| u.username == name) {
        return refuse(
            "same user",
            "the witness must be someone other than you".into(),
        )
        .await;
    }
    let cand = state.store.login_candidate(&name).await?;
    let ok = state
        .passwords
        .verify(pw, cand.as_ref().map(|u| u.password_hash.clone()))
        .await;
    let Some(u) = cand else {
        return refuse("unknown username", wrong.into()).await;
    };
    // The witness's password is a sign-in: a wrong one counts towards the
    // lockout like a failed login, and a locked account cannot witness, so
    // the form is no way around the limit on guessing.
    if u.locked_until.is_some_and(|t| t > state.now()) {
        return refuse("locked", wrong.into()).await;
    }
    if !ok {
        state
            .store
            .record_login_failure(
                u.id,
                state.cfg.max_failed_logins,
                state.cfg.lockout.as_micros() as i64,
                refused("wrong password"),
            )
            .await?;
        state.auth_cache.clear();
        return Err(invalid(field, wrong));
    }
    if u.disabled || u.org_id != c.org_id {
        return refuse("not active", wrong.into()).await;
    }
    // A witness who signs in with a two-step code witnesses with it too: the
    // password alone is not their signature. A wrong code counts like a
    // wrong password.
    if let Some(secret) = &u.totp_secret {
        let code = code.as_deref().unwrap_or("").trim();
        if code.is_empty() {
            return refuse(
                "code missing",
                format!("{name} uses a two-step code: they give the code from their app too"),
            )
            .await;
        }
        let fresh = match crate::actor::totp_step(secret, code, state.now()) {
            // A code is good once, as at sign-in.
            Some(step) => state.store.use_totp_step(u.id, step).await?,
            None => false,
        };
        if !fresh {
            state
                .store
                .record_login_failure(
                    u.id,
                    state.cfg.max_failed_logins,
                    state.cfg.lockout.as_micros() as i64,
                    refused("wrong code"),
                )
                .await?;
            state.auth_cache.clear();
            return Err(invalid(
                field,
                "the witness's two-step code is wrong or has expired",
            ));
        }
    }
    let grants = state.store.grants_of(u.id).await?;
    let licensed = grants
        .iter()
        .any(|(k, r)| *k == loc.id && r.grants(Permission::CsWitness));
    if !licensed {
        return refuse(
            "not licensed",
            format!(
                "{name} is not a licensed clinician at {}: a nurse or prescriber witnesses",
                loc.name
            ),
        )
        .await;
    }
    Ok(u.id.to_string())
}

// ---- Movements --------------------------------------------------------------

/// One movement as entered on a form or sent to the API. Which fields are
/// needed depends on `kind`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovementInput {
    pub kind: String,
    pub clinic_id: String,
    pub lot_id: Option<String>,
    /// For a receipt of a new lot: the product, lot number and expiry.
    pub product_id: Option<String>,
    pub lot_number: Option<String>,
    pub expires_on: Option<String>,
    /// `2.5 mL`, `2.5` (mL) or `125 mg`. A receipt may give containers instead.
    pub quantity: Option<String>,
    pub containers: Option<i64>,
    /// RFC 3339, or a local date-time at the location; now when absent.
    pub at: Option<String>,
    pub dose_order_id: Option<String>,
    pub draw_id: Option<String>,
    pub reason: Option<String>,
    pub storage_id: Option<String>,
    pub supplier_name: Option<String>,
    pub supplier_address: Option<String>,
    pub supplier_dea: Option<String>,
    pub invoice: Option<String>,
    pub to_clinic_id: Option<String>,
    /// For an adjustment: `increase` or `decrease`.
    pub direction: Option<String>,
    /// For a destruction: how and where (DEA Form 41).
    pub method: Option<String>,
    pub witness_username: Option<String>,
    pub witness_password: Option<String>,
    /// The witness's current two-step code, when their account uses one.
    pub witness_code: Option<String>,
    pub witness2_username: Option<String>,
    pub witness2_password: Option<String>,
    pub witness2_code: Option<String>,
}

/// Records one movement (two for a transfer). Returns the entries written.
pub async fn record_movement(
    state: &Clinic,
    c: &Caller,
    input: MovementInput,
) -> Result<Vec<LedgerEntry>, Error> {
    let kind = EntryKind::parse(input.kind.trim()).map_err(|e| Error::Invalid(vec![e]))?;
    let perm = match kind {
        EntryKind::Adjustment => Permission::CsManage,
        EntryKind::TransferIn => {
            return Err(invalid(
                "kind",
                "a transfer in is written with its transfer out: record transfer_out at the sending location",
            ))
        }
        _ => Permission::CsHandle,
    };
    let loc = location(state, c, perm, &input.clinic_id, "clinic_id").await?;
    let me = user_of(c)?;
    let at = happened_at(&input.at, &loc)?;
    let today = loc.today();

    // The lot: named, or for a receipt found or added by number.
    let lot: Lot = if kind == EntryKind::Receipt && input.lot_id.as_deref().unwrap_or("").is_empty()
    {
        let product = required("product_id", &input.product_id, 64)?;
        let known = state.store.cs_products(&c.org_id.to_string()).await?;
        if !known.iter().any(|p| p.id == product) {
            return Err(invalid("product_id", "no such product on file"));
        }
        let number = required("lot_number", &input.lot_number, 40)?;
        let exp = parse_date("expires_on", input.expires_on.as_deref().unwrap_or(""))?;
        let id = state
            .store
            .cs_find_or_add_lot(&product, &number, &exp.to_string())
            .await?;
        state.store.cs_lot(&id).await?.ok_or(Error::NotFound)?
    } else {
        let id = required("lot_id", &input.lot_id, 64)?;
        match state.store.cs_lot(&id).await? {
            Some(l) if l.org_id == c.org_id.to_string() => l,
            _ => return Err(invalid("lot_id", "no such lot")),
        }
    };
    let strength = lot.strength_mg_per_ml;
    let expires: Option<Date> = lot.expires_on.parse().ok();
    let expired = expires.is_some_and(|e| e < today);

    // The quantity, in µL.
    let qty = |field: &str| -> Result<i64, Error> {
        cs::parse_quantity(field, input.quantity.as_deref().unwrap_or(""), strength)
            .map_err(|e| Error::Invalid(vec![e]))
    };
    let mut m = Movement {
        reason: optional("reason", &input.reason, 500)?,
        ..Movement::new(kind, &loc.id.to_string(), &lot.id, at, 0, strength, &me)
    };
    let mut extra: Vec<Movement> = Vec::new();
    let mut patient: Option<String> = None;

    match kind {
        EntryKind::Receipt => {
            if expired {
                return Err(invalid(
                    "expires_on",
                    format!(
                        "lot {} expired on {}: do not receive it",
                        lot.lot_number, lot.expires_on
                    ),
                ));
            }
            let by_count = match input.containers {
                Some(n) if (1..=1000).contains(&n) => Some(n * lot.container_ul),
                Some(_) => return Err(invalid("containers", "must be between 1 and 1000")),
                None => None,
            };
            m.quantity_ul = match (
                by_count,
                input
                    .quantity
                    .as_deref()
                    .map(str::trim)
                    .filter(|s| !s.is_empty()),
            ) {
                (Some(v), None) => v,
                (None, Some(_)) => qty("quantity")?,
                (Some(v), Some(_)) => {
                    let q = qty("quantity")?;
                    if q != v {
                        return Err(invalid(
                            "quantity",
                            format!(
                                "{} containers of {} make {}, not {}",
                                input.containers.unwrap_or(0),
                                cs::fmt_ml(lot.container_ul),
                                cs::fmt_ml(v),
                                cs::fmt_ml(q)
                            ),
                        ));
                    }
                    v
                }
                (None, None) => {
                    return Err(invalid(
                        "containers",
                        "give the number of containers received",
                    ))
                }
            };
            let supplier_dea =
                cs::check_dea("supplier_dea", input.supplier_dea.as_deref().unwrap_or(""))
                    .map_err(|e| Error::Invalid(vec![e]))?;
            m.counterparty = Some(
                json!({
                    "supplier_name": required("supplier_name", &input.supplier_name, 200)?,
                    "supplier_address": required("supplier_address", &input.supplier_address, 300)?,
                    "supplier_dea": supplier_dea,
                    "invoice": required("invoice", &input.invoice, 60)?,
                    "containers": m.quantity_ul / lot.container_ul.max(1),
                })
                .to_string(),
            );
            if let Some(s) = optional("storage_id", &input.storage_id, 64)? {
                let places = state.store.cs_storage(&[loc.id.to_string()]).await?;
                if !places.iter().any(|p| p.id == s) {
                    return Err(invalid(
                        "storage_id",
                        "no such storage place at this location",
                    ));
                }
                m.storage_id = Some(s);
            }
        }
        EntryKind::Draw => {
            if expired {
                return Err(invalid(
                    "lot_id",
                    format!(
                        "lot {} expired on {}: draw from another lot",
                        lot.lot_number, lot.expires_on
                    ),
                ));
            }
            let order_id = required("dose_order_id", &input.dose_order_id, 64)?;
            let Some(o) = state.store.cs_order_context(&order_id).await? else {
                return Err(invalid("dose_order_id", "no such dose order"));
            };
            if o.clinic_id != loc.id.to_string() {
                return Err(invalid(
                    "dose_order_id",
                    "the dose order is for a visit at another location",
                ));
            }
            if o.status != "open" {
                return Err(invalid(
                    "dose_order_id",
                    "the visit of this dose order is discharged",
                ));
            }
            if o.voided_at.is_some() {
                return Err(invalid(
                    "dose_order_id",
                    "this dose order was voided: draw for the order that stands",
                ));
            }
            m.quantity_ul = qty("quantity")?;
            // What is drawn for a dose is the ordered mass and a little
            // over for the syringe, never a multiple of it: a volume read at
            // the wrong concentration is caught here.
            let before: i64 = state
                .store
                .cs_draws_for_order(&o.dose_order_id)
                .await?
                .iter()
                .map(|d| d.drawn_ul * d.strength_mg_per_ml)
                .sum();
            let ordered_ug = (o.mg * 1000.0).round() as i64;
            let limit_ug = cs::draw_limit_ug(ordered_ug);
            let total_ug = before + m.quantity_ul * strength;
            if total_ug > limit_ug {
                return Err(invalid(
                    "quantity",
                    format!(
                        "{} of {} mg/mL is {}{}; the order is {} mg, so at most {} mg is drawn for it",
                        cs::fmt_ml(m.quantity_ul),
                        strength,
                        cs::fmt_mg(m.quantity_ul, strength),
                        if before > 0 {
                            format!(" on top of {} mg already drawn", cs::fmt_milli(before))
                        } else {
                            String::new()
                        },
                        cs::fmt_milli(ordered_ug),
                        cs::fmt_milli(limit_ug)
                    ),
                ));
            }
            m.draw_id = Some(m.id.clone());
            m.dose_order_id = Some(o.dose_order_id);
            m.patient_id = Some(o.patient_id.clone());
            m.reference_id = Some(o.encounter_id);
            patient = Some(o.patient_id);
        }
        EntryKind::Administered | EntryKind::Waste => {
            let draw_id = optional("draw_id", &input.draw_id, 64)?;
            m.quantity_ul = qty("quantity")?;
            if let Some(d) = &draw_id {
                let Some(draw) = state.store.cs_draw(d).await? else {
                    return Err(invalid("draw_id", "no such draw"));
                };
                if draw.clinic_id != loc.id.to_string() || draw.lot_id != lot.id {
                    return Err(invalid(
                        "draw_id",
                        "the draw was from another lot or location",
                    ));
                }
                m.draw_id = Some(draw.id.clone());
                m.dose_order_id = Some(draw.dose_order_id.clone());
                m.patient_id = Some(draw.patient_id.clone());
                m.reference_id = Some(draw.encounter_id.clone());
                patient = Some(draw.patient_id.clone());
            } else if kind == EntryKind::Administered {
                return Err(invalid(
                    "draw_id",
                    "what is administered comes out of a draw",
                ));
            }
            if kind == EntryKind::Waste {
                if m.reason.is_none() {
                    return Err(invalid(
                        "reason",
                        "say why it was wasted (e.g. remainder of the draw)",
                    ));
                }
                m.witness_user_id = Some(
                    witness(
                        state,
                        c,
                        &loc,
                        "witness",
                        &input.witness_username,
                        &input.witness_password,
                        &input.witness_code,
                    )
                    .await?,
                );
            }
        }
        EntryKind::TransferOut => {
            let to = required("to_clinic_id", &input.to_clinic_id, 64)?;
            if to == loc.id.to_string() {
                return Err(invalid("to_clinic_id", "choose another location"));
            }
            let other = state
                .store
                .clinics_of_org(c.org_id)
                .await?
                .into_iter()
                .find(|k| k.id.to_string() == to)
                .ok_or_else(|| invalid("to_clinic_id", "no such location"))?;
            let regs = state.store.cs_registrations().await?;
            let Some(reg) = regs.iter().find(|r| r.clinic_id == to) else {
                return Err(invalid(
                    "to_clinic_id",
                    format!("{} has no DEA registration on file", other.settings.name),
                ));
            };
            if expired {
                return Err(invalid(
                    "lot_id",
                    format!(
                        "lot {} expired on {}: return or destroy it instead",
                        lot.lot_number, lot.expires_on
                    ),
                ));
            }
            m.quantity_ul = qty("quantity")?;
            let transfer = new_id();
            m.reference_id = Some(transfer.clone());
            m.counterparty = Some(
                json!({"to_clinic": other.settings.name, "to_dea": reg.dea_number}).to_string(),
            );
            let from_dea = loc
                .registration
                .as_ref()
                .map(|r| r.dea_number.clone())
                .unwrap_or_default();
            extra.push(Movement {
                id: new_id(),
                clinic_id: to,
                kind: EntryKind::TransferIn,
                change_ul: m.quantity_ul,
                quantity_ul: m.quantity_ul,
                counterparty: Some(
                    json!({"from_clinic": loc.name, "from_dea": from_dea}).to_string(),
                ),
                storage_id: None,
                ..m.clone()
            });
        }
        EntryKind::Breakage => {
            m.quantity_ul = qty("quantity")?;
            if m.reason.is_none() {
                return Err(invalid("reason", "say what broke or spilled and how"));
            }
            m.witness_user_id = Some(
                witness(
                    state,
                    c,
                    &loc,
                    "witness",
                    &input.witness_username,
                    &input.witness_password,
                    &input.witness_code,
                )
                .await?,
            );
        }
        EntryKind::Return => {
            m.quantity_ul = qty("quantity")?;
            let dea = cs::check_dea("supplier_dea", input.supplier_dea.as_deref().unwrap_or(""))
                .map_err(|e| Error::Invalid(vec![e]))?;
            m.counterparty = Some(
                json!({
                    "distributor_name": required("supplier_name", &input.supplier_name, 200)?,
                    "distributor_address": required("supplier_address", &input.supplier_address, 300)?,
                    "distributor_dea": dea,
                    "invoice": optional("invoice", &input.invoice, 60)?,
                })
                .to_string(),
            );
        }
        EntryKind::Destruction => {
            m.quantity_ul = qty("quantity")?;
            let method = required("method", &input.method, 300)?;
            m.counterparty = Some(json!({"form": "DEA Form 41", "method": method}).to_string());
            if m.reason.is_none() {
                m.reason = Some("on-site destruction".into());
            }
            let w1 = witness(
                state,
                c,
                &loc,
                "witness",
                &input.witness_username,
                &input.witness_password,
                &input.witness_code,
            )
            .await?;
            let w2 = witness(
                state,
                c,
                &loc,
                "witness2",
                &input.witness2_username,
                &input.witness2_password,
                &input.witness2_code,
            )
            .await?;
            if w1 == w2 {
                return Err(invalid(
                    "witness2",
                    "two different witnesses sign a destruction",
                ));
            }
            m.witness_user_id = Some(w1);
            m.witness2_user_id = Some(w2);
        }
        EntryKind::Adjustment => {
            m.quantity_ul = qty("quantity")?;
            if m.reason.is_none() {
                return Err(invalid("reason", "an adjustment needs its reason"));
            }
            m.change_ul = match input.direction.as_deref().map(str::trim) {
                Some("increase") => m.quantity_ul,
                Some("decrease") => -m.quantity_ul,
                _ => return Err(invalid("direction", "must be increase or decrease")),
            };
        }
        EntryKind::TransferIn => unreachable!("refused above"),
    }
    if kind != EntryKind::Adjustment {
        m.change_ul = cs::stock_change(
            kind,
            m.quantity_ul,
            m.draw_id.is_some() && kind != EntryKind::Draw,
        );
    }

    let mut ev = match &patient {
        Some(p) => {
            let mut e = c.patient_event(Action::CsMovement, perm, loc.id, p);
            e.object_type = Some("cs_ledger".into());
            e
        }
        None => event(c, Action::CsMovement, perm, loc.id),
    };
    ev.object_id = Some(m.id.clone());
    ev.detail = Some(format!(
        "{} {} lot {}",
        kind.as_str(),
        cs::fmt_ml(m.quantity_ul),
        lot.lot_number
    ));
    let mut moves = vec![m];
    moves.extend(extra);
    Ok(state.store.cs_append(&moves, vec![ev]).await?)
}

// ---- Ledger and reports -----------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    #[serde(default)]
    pub clinic_id: String,
    /// First day (YYYY-MM-DD, at the location).
    #[serde(default)]
    pub from: String,
    /// Last day, included.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub lot_id: String,
    #[serde(default)]
    pub patient_id: String,
    #[serde(default)]
    pub kind: String,
    pub limit: Option<i64>,
    #[serde(default)]
    pub format: String,
}

impl LedgerView {
    /// "DEA registration AB1234563", or that none is on file.
    pub fn registration_text(&self) -> String {
        self.location
            .registration
            .as_ref()
            .map(|r| format!("DEA registration {}", r.dea_number))
            .unwrap_or_else(|| "no DEA registration on file".into())
    }

    /// "2026-11-01 to 2026-11-28", with the open ends said in words.
    pub fn period_text(&self) -> String {
        format!(
            "{} to {}",
            self.from
                .map(|d| d.to_string())
                .unwrap_or_else(|| "the first entry".into()),
            self.to
                .map(|d| d.to_string())
                .unwrap_or_else(|| "today".into())
        )
    }
}

pub struct LedgerView {
    pub location: Location,
    pub rows: Vec<LedgerRow>,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

/// Ledger entries at one location, filtered; audited as a read (or a report
/// when `report` is set), naming the patient when filtered by one.
pub async fn ledger(
    state: &Clinic,
    c: &Caller,
    q: &LedgerQuery,
    report: bool,
) -> Result<LedgerView, Error> {
    let (loc, f, from, to) = ledger_filter(state, c, q, report).await?;
    let rows = state.store.cs_ledger(&f).await?;
    state
        .store
        .audit(vec![ledger_event(
            c,
            &loc,
            q,
            report,
            (from, to),
            rows.len(),
        )])
        .await?;
    Ok(LedgerView {
        location: loc,
        rows,
        from,
        to,
    })
}

/// The dispensing log of a query as CSV, written row by row as the ledger
/// is read (a busy location's two years are tens of thousands of rows) and
/// audited as a report.
pub async fn dispensing_log_csv(
    state: &Clinic,
    c: &Caller,
    q: &LedgerQuery,
) -> Result<Vec<u8>, Error> {
    let (loc, f, from, to) = ledger_filter(state, c, q, true).await?;
    let (name, tz) = (loc.name.clone(), loc.tz.clone());
    let mut out = CsvLog::new(name, tz);
    out.head()
        .map_err(|e| Error::Internal(format!("csv: {e}")))?;
    let (mut out, n) = state
        .store
        .cs_ledger_visit(&f, out, |out, r| out.row(r).map_err(|e| e.to_string()))
        .await?;
    let patients = std::mem::take(&mut out.patients);
    let body = out.finish()?;
    let mut ev = ledger_event(c, &loc, q, true, (from, to), n);
    // The log names patients: the audit record lists them, as search does.
    ev.detail = Some(format!(
        "{}; patients: {}",
        ev.detail.unwrap_or_default(),
        patients.into_iter().collect::<Vec<_>>().join(",")
    ));
    state.store.audit(vec![ev]).await?;
    Ok(body)
}

/// Checks a ledger query and turns it into the store's filter at the
/// caller's location, with the days asked for.
async fn ledger_filter(
    state: &Clinic,
    c: &Caller,
    q: &LedgerQuery,
    report: bool,
) -> Result<(Location, LedgerFilter, Option<Date>, Option<Date>), Error> {
    let loc = report_location(state, c, &q.clinic_id).await?;
    let mut errs = Vec::new();
    let day = |s: &str, f: &'static str, errs: &mut Vec<FieldError>| -> Option<Date> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        match s.parse::<Date>() {
            Ok(d) => Some(d),
            Err(_) => {
                errs.push(FieldError::new(f, "must be a date as YYYY-MM-DD"));
                None
            }
        }
    };
    let from = day(&q.from, "from", &mut errs);
    let to = day(&q.to, "to", &mut errs);
    if let (Some(a), Some(b)) = (from, to) {
        if b < a {
            errs.push(FieldError::new("to", "is before from"));
        }
    }
    let kinds: Vec<&'static str> = if q.kind.trim().is_empty() {
        Vec::new()
    } else {
        match EntryKind::parse(q.kind.trim()) {
            Ok(k) => vec![k.as_str()],
            Err(e) => {
                errs.push(e);
                Vec::new()
            }
        }
    };
    if let Some(l) = q.limit {
        if !(1..=100_000).contains(&l) {
            errs.push(FieldError::new("limit", "must be between 1 and 100000"));
        }
    }
    let pid = q.patient_id.trim();
    if !pid.is_empty() && pid.parse::<domain::ids::PatientId>().is_err() {
        errs.push(FieldError::new("patient_id", "is not a valid identifier"));
    }
    let lot = q.lot_id.trim();
    if !lot.is_empty() && uuid::Uuid::parse_str(lot).is_err() {
        errs.push(FieldError::new("lot_id", "is not a valid identifier"));
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let f = LedgerFilter {
        clinics: vec![loc.id.to_string()],
        from: from.map(|d| loc.start_of(d)),
        to: to.and_then(|d| d.tomorrow().ok()).map(|d| loc.start_of(d)),
        lot_id: (!lot.is_empty()).then(|| lot.to_string()),
        patient_id: (!pid.is_empty()).then(|| pid.to_string()),
        kinds,
        limit: q.limit.or(if report { None } else { Some(500) }),
        newest_first: !report,
    };
    Ok((loc, f, from, to))
}

/// The audit record of a ledger read or report: the location, the patient
/// when the query names one, the days and the number of rows.
fn ledger_event(
    c: &Caller,
    loc: &Location,
    q: &LedgerQuery,
    report: bool,
    (from, to): (Option<Date>, Option<Date>),
    rows: usize,
) -> NewAuditEvent {
    let pid = q.patient_id.trim();
    let mut ev = if pid.is_empty() {
        event(
            c,
            if report {
                Action::CsReport
            } else {
                Action::CsRead
            },
            Permission::CsRead,
            loc.id,
        )
    } else {
        c.patient_event(
            if report {
                Action::CsReport
            } else {
                Action::CsRead
            },
            Permission::CsRead,
            loc.id,
            pid,
        )
    };
    ev.detail = Some(format!(
        "ledger {}..{} rows {rows}",
        from.map(|d| d.to_string()).unwrap_or_default(),
        to.map(|d| d.to_string()).unwrap_or_default(),
    ));
    ev
}

/// A ledger row's counterparty as text; a stored one that does not parse
/// is an error naming it, never a blank.
fn counterparty_text(s: Option<&str>) -> Result<String, String> {
    let Some(s) = s else {
        return Ok(String::new());
    };
    let v: serde_json::Value = serde_json::from_str(s)
        .map_err(|e| format!("a stored ledger counterparty does not parse: {e}"))?;
    let Some(o) = v.as_object() else {
        return Ok(String::new());
    };
    Ok(o.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            format!("{}: {v}", k.replace('_', " "))
        })
        .collect::<Vec<_>>()
        .join("; "))
}

pub fn kind_label(k: &str) -> &'static str {
    EntryKind::parse(k).map(|k| k.label()).unwrap_or("Entry")
}

/// Writes the dispensing log's CSV, every movement with what the DEA asks of
/// each, one movement at a time, reusing one buffer per computed field (a
/// two-year log has tens of thousands of rows).
struct CsvLog {
    w: csv::Writer<Vec<u8>>,
    location: String,
    tz: jiff::tz::TimeZone,
    bufs: [String; 6],
    /// The patients the log names, for its audit record.
    patients: std::collections::BTreeSet<String>,
}

impl CsvLog {
    fn new(location: String, tz: jiff::tz::TimeZone) -> CsvLog {
        CsvLog {
            w: csv::Writer::from_writer(Vec::with_capacity(1 << 20)),
            location,
            tz,
            patients: Default::default(),
            bufs: Default::default(),
        }
    }

    fn head(&mut self) -> Result<(), csv::Error> {
        self.w.write_record([
            "seq",
            "time",
            "location",
            "movement",
            "product",
            "ndc",
            "lot",
            "quantity_ml",
            "quantity_mg",
            "change_ml",
            "balance_after_ml",
            "patient",
            "patient_address",
            "by",
            "witness",
            "witness_2",
            "counterparty",
            "reason",
            "dose_order_id",
        ])
    }

    fn row(&mut self, r: &LedgerRowRef<'_>) -> Result<(), csv::Error> {
        use std::fmt::Write;
        if let Some(p) = r.patient_id {
            if !self.patients.contains(p) {
                self.patients.insert(p.to_string());
            }
        }
        let [seq, when, q, mg, ch, bal] = &mut self.bufs;
        for b in [
            &mut *seq, &mut *when, &mut *q, &mut *mg, &mut *ch, &mut *bal,
        ] {
            b.clear();
        }
        let _ = write!(seq, "{}", r.seq);
        write_when(&self.tz, when, r.at);
        cs::write_milli(q, r.quantity_ul);
        cs::write_milli(mg, r.quantity_ul * r.strength_mg_per_ml);
        cs::write_milli(ch, r.change_ul);
        cs::write_milli(bal, r.balance_after_ul);
        let cp = counterparty_text(r.counterparty).map_err(|e| {
            csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?;
        fn o(s: Option<&str>) -> &str {
            s.unwrap_or("")
        }
        self.w.write_record([
            seq.as_str(),
            when,
            &self.location,
            kind_label(r.kind),
            r.product_name,
            r.ndc,
            r.lot_number,
            q,
            mg,
            ch,
            bal,
            o(r.patient_name),
            o(r.patient_address),
            r.actor,
            o(r.witness),
            o(r.witness2),
            &cp,
            o(r.reason),
            o(r.dose_order_id),
        ])
    }

    fn finish(self) -> Result<Vec<u8>, Error> {
        self.w
            .into_inner()
            .map_err(|e| Error::Internal(format!("csv: {e}")))
    }
}

/// The dispensing log as a printable PDF.
pub fn dispensing_pdf(v: &LedgerView) -> Result<Vec<u8>, Error> {
    use crate::documents::{render, Block};
    let (reg, period) = (v.registration_text(), v.period_text());
    let mut blocks = vec![
        Block::title("Schedule III dispensing log"),
        Block::body(&format!("{} ({reg})", printable(&v.location.name))),
        Block::body(&format!("Period: {period}. {} movements.", v.rows.len())),
    ];
    for r in &v.rows {
        let mut line = format!(
            "#{} {}  {}  {} lot {}  {} ({})  balance {}  by {}",
            r.seq,
            v.location.when(r.at),
            kind_label(&r.kind),
            r.product_name,
            r.lot_number,
            cs::fmt_ml(r.change_ul.abs().max(r.quantity_ul)),
            cs::fmt_mg(r.quantity_ul, r.strength_mg_per_ml),
            cs::fmt_ml(r.balance_after_ul),
            r.actor
        );
        if let Some(w) = &r.witness {
            line.push_str(&format!(", witness {w}"));
        }
        if let Some(w) = &r.witness2 {
            line.push_str(&format!(" and {w}"));
        }
        blocks.push(Block::small(&printable(&line)));
        let mut detail = Vec::new();
        if let Some(p) = &r.patient_name {
            detail.push(format!(
                "patient {p}, {}",
                r.patient_address.clone().unwrap_or_default()
            ));
        }
        let cp = counterparty_text(r.counterparty.as_deref()).map_err(Error::Internal)?;
        if !cp.is_empty() {
            detail.push(cp);
        }
        if let Some(reason) = &r.reason {
            detail.push(format!("reason: {reason}"));
        }
        if !detail.is_empty() {
            blocks.push(Block::small(&printable(&format!(
                "    {}",
                detail.join("; ")
            ))));
        }
    }
    render(&blocks, "Stillwater - Schedule III record").map_err(Error::Internal)
}

/// The on-site destructions of a location in a period as the record DEA
/// Form 41 asks for: registrant and registration, and per destruction the
/// date, drug, NDC, strength, lot, quantity, method and the two witnesses,
/// with lines for their signatures. Read as a report (audited).
pub async fn form41_pdf(state: &Clinic, c: &Caller, q: &LedgerQuery) -> Result<Vec<u8>, Error> {
    use crate::documents::{render, Block};
    let q = LedgerQuery {
        clinic_id: q.clinic_id.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        kind: EntryKind::Destruction.as_str().into(),
        ..Default::default()
    };
    let v = ledger(state, c, &q, true).await?;
    let (reg, period) = (v.registration_text(), v.period_text());
    let mut blocks = vec![
        Block::title("Controlled substances destroyed (record for DEA Form 41)"),
        Block::body(&printable(&format!(
            "Registrant: {} ({reg})",
            v.location.name
        ))),
        Block::body(&format!(
            "Period: {period}. {} destruction{}.",
            v.rows.len(),
            if v.rows.len() == 1 { "" } else { "s" }
        )),
    ];
    if v.rows.is_empty() {
        blocks.push(Block::body(
            "No controlled substances were destroyed on site in this period.",
        ));
    }
    for r in &v.rows {
        let method =
            stored_opt::<serde_json::Value>("ledger counterparty", r.counterparty.as_deref())?
                .and_then(|v| v["method"].as_str().map(String::from))
                .unwrap_or_default();
        blocks.push(Block::heading(&printable(&format!(
            "{}: {} {} mg/mL, lot {}",
            v.location.when(r.at),
            r.product_name,
            r.strength_mg_per_ml,
            r.lot_number
        ))));
        blocks.push(Block::body(&printable(&format!(
            "NDC {}. Quantity destroyed: {} ({}). Method: {}. Recorded by {} (ledger entry #{}).",
            r.ndc,
            cs::fmt_ml(r.quantity_ul),
            cs::fmt_mg(r.quantity_ul, r.strength_mg_per_ml),
            method,
            r.actor,
            r.seq
        ))));
        blocks.push(Block::body(&printable(&format!(
            "Witnesses: {} and {}. Each signed in at the moment of destruction.",
            r.witness.clone().unwrap_or_default(),
            r.witness2.clone().unwrap_or_default()
        ))));
        blocks.push(Block::body("Witness 1 signature: ______________________   Witness 2 signature: ______________________"));
    }
    render(&blocks, "Stillwater - DEA Form 41 record").map_err(Error::Internal)
}

/// Text the PDF's standard fonts can show.
fn printable(s: &str) -> String {
    s.chars()
        .map(|ch| match ch {
            'µ' => 'u',
            c if crate::documents::unprintable(&c.to_string()).is_some() => '?',
            c => c,
        })
        .collect()
}

// ---- Reconciliation -----------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconQuery {
    #[serde(default)]
    pub clinic_id: String,
    /// First day (YYYY-MM-DD at the location); the default is 30 days back.
    #[serde(default)]
    pub from: String,
    /// Last day, included; the default is today.
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub format: String,
}

/// One lot of the reconciliation, with what names it.
pub struct ReconLot {
    pub lot: Option<Lot>,
    pub r: cs::LotReconciliation,
}

pub struct ReconView {
    pub location: Location,
    pub from: Date,
    pub to: Date,
    pub lots: Vec<ReconLot>,
    /// The blind counts of the period with their lines.
    pub counts: Vec<(store::substances::Count, Vec<store::substances::CountLine>)>,
    /// Whether the closing balances equal the stock held now (when the
    /// period runs to today).
    pub matches_stock: Option<bool>,
}

/// A location's stock over a period, lot by lot, from the ledger's own sums;
/// audited as a report.
pub async fn reconciliation(
    state: &Clinic,
    c: &Caller,
    q: &ReconQuery,
) -> Result<ReconView, Error> {
    let loc = report_location(state, c, &q.clinic_id).await?;
    let today = loc.today();
    let mut errs = Vec::new();
    let day = |s: &str, f: &'static str, dflt: Date, errs: &mut Vec<FieldError>| -> Date {
        let s = s.trim();
        if s.is_empty() {
            return dflt;
        }
        s.parse::<Date>().unwrap_or_else(|_| {
            errs.push(FieldError::new(f, "must be a date as YYYY-MM-DD"));
            dflt
        })
    };
    let month_ago = today
        .checked_sub(jiff::Span::new().days(30))
        .unwrap_or(today);
    let from = day(&q.from, "from", month_ago, &mut errs);
    let to = day(&q.to, "to", today, &mut errs);
    if to < from {
        errs.push(FieldError::new("to", "is before from"));
    }
    if !q.format.is_empty() && q.format != "csv" && q.format != "json" {
        errs.push(FieldError::new("format", "must be json or csv"));
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let (start, end) = (
        loc.start_of(from),
        to.tomorrow().map(|d| loc.start_of(d)).unwrap_or(i64::MAX),
    );
    let here = loc.id.to_string();
    let (opening, rows) = state
        .store
        .cs_reconciliation_sums(&here, start, end)
        .await?;
    let opening = opening.into_iter().collect();
    let moves: Vec<cs::Movements> = rows
        .into_iter()
        .filter_map(|r| {
            Some(cs::Movements {
                kind: EntryKind::parse(&r.kind).ok()?,
                lot_id: r.lot_id,
                from_draw: r.from_draw != 0,
                change_ul: r.change_ul,
                quantity_ul: r.quantity_ul,
                entries: r.entries,
            })
        })
        .collect();
    let lots: HashMap<String, Lot> = state
        .store
        .cs_lots(&c.org_id.to_string())
        .await?
        .into_iter()
        .map(|l| (l.id.clone(), l))
        .collect();
    let recon = cs::reconcile(&opening, &moves);
    let matches_stock = if to >= today {
        let now: HashMap<String, i64> = state
            .store
            .cs_balances(std::slice::from_ref(&here))
            .await?
            .into_iter()
            .map(|b| (b.lot_id, b.balance_ul))
            .collect();
        Some(
            recon
                .iter()
                .all(|r| now.get(&r.lot_id).copied().unwrap_or(0) == r.closing_ul)
                && now
                    .iter()
                    .all(|(lot, ul)| *ul == 0 || recon.iter().any(|r| &r.lot_id == lot)),
        )
    } else {
        None
    };
    let mut counts = vec![];
    for k in state
        .store
        .cs_counts(std::slice::from_ref(&here), 1000)
        .await?
        .into_iter()
        .filter(|k| k.counted_at >= start && k.counted_at < end)
    {
        let lines = state.store.cs_count_lines(&k.id).await?;
        counts.push((k, lines));
    }
    counts.sort_by_key(|(k, _)| k.counted_at);
    let mut ev = event(c, Action::CsReport, Permission::CsRead, loc.id);
    ev.detail = Some(format!("reconciliation {from}..{to}, {} lots", recon.len()));
    state.store.audit(vec![ev]).await?;
    Ok(ReconView {
        lots: recon
            .into_iter()
            .map(|r| ReconLot {
                lot: lots.get(&r.lot_id).cloned(),
                r,
            })
            .collect(),
        location: loc,
        from,
        to,
        counts,
        matches_stock,
    })
}

/// The reconciliation as CSV: one row per lot, quantities in mL.
pub fn reconciliation_csv(v: &ReconView) -> Result<Vec<u8>, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Internal(format!("csv: {e}"));
    w.write_record([
        "location",
        "from",
        "to",
        "product",
        "ndc",
        "lot",
        "opening_ml",
        "received_ml",
        "drawn_ml",
        "administered_ml",
        "wasted_from_draws_ml",
        "wasted_from_stock_ml",
        "transferred_out_ml",
        "breakage_ml",
        "returned_ml",
        "destroyed_ml",
        "adjusted_ml",
        "closing_ml",
        "drawn_not_accounted_ml",
        "entries",
    ])
    .map_err(err)?;
    let (from, to) = (v.from.to_string(), v.to.to_string());
    for l in &v.lots {
        let r = &l.r;
        let (product, ndc, lot) = match &l.lot {
            Some(x) => (
                format!("{} {} mg/mL", x.product_name, x.strength_mg_per_ml),
                x.ndc.clone(),
                x.lot_number.clone(),
            ),
            None => (String::new(), String::new(), r.lot_id.clone()),
        };
        let mut rec = vec![
            v.location.name.clone(),
            from.clone(),
            to.clone(),
            product,
            ndc,
            lot,
        ];
        rec.extend(
            [
                r.opening_ul,
                r.received_ul,
                r.drawn_ul,
                r.administered_ul,
                r.wasted_from_draws_ul,
                r.wasted_from_stock_ul,
                r.transferred_out_ul,
                r.breakage_ul,
                r.returned_ul,
                r.destroyed_ul,
                r.adjusted_ul,
                r.closing_ul,
                r.unaccounted_draw_ul,
            ]
            .map(cs::fmt_milli),
        );
        rec.push(r.entries.to_string());
        w.write_record(&rec).map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| Error::Internal(format!("csv: {e}")))
}

// ---- Counts -----------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountInput {
    pub clinic_id: String,
    pub lines: Vec<CountLineInput>,
    pub note: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountLineInput {
    pub lot_id: String,
    /// What the counter sees, as `9.5 mL` or `475 mg`; `0` for an empty lot.
    pub counted: String,
}

pub struct CountOutcome {
    pub count: Count,
    pub lines: Vec<store::substances::CountLine>,
    pub cases: Vec<String>,
}

/// A blind count: the counter enters what they see; the system compares it
/// with the ledger and opens a case for every lot that differs.
pub async fn record_count(
    state: &Clinic,
    c: &Caller,
    input: CountInput,
) -> Result<CountOutcome, Error> {
    let loc = location(
        state,
        c,
        Permission::CsHandle,
        &input.clinic_id,
        "clinic_id",
    )
    .await?;
    let me = user_of(c)?;
    let lots: HashMap<String, Lot> = state
        .store
        .cs_lots(&c.org_id.to_string())
        .await?
        .into_iter()
        .map(|l| (l.id.clone(), l))
        .collect();
    if input.lines.is_empty() {
        return Err(invalid("lines", "count at least one lot"));
    }
    let mut errs = Vec::new();
    let mut counted = Vec::new();
    for (i, l) in input.lines.iter().enumerate() {
        let field = format!("lines[{i}].counted");
        let Some(lot) = lots.get(l.lot_id.trim()) else {
            errs.push(FieldError::new(format!("lines[{i}].lot_id"), "no such lot"));
            continue;
        };
        if counted.iter().any(|(id, _)| id == &lot.id) {
            errs.push(FieldError::new(
                format!("lines[{i}].lot_id"),
                "is counted twice",
            ));
            continue;
        }
        let t = l.counted.trim();
        let v = if t == "0" || t == "0 mL" || t == "0 mg" {
            Ok(0)
        } else {
            cs::parse_quantity(&field, t, lot.strength_mg_per_ml)
        };
        match v {
            Ok(v) => counted.push((lot.id.clone(), v)),
            Err(e) => errs.push(e),
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let count = Count {
        id: new_id(),
        clinic_id: loc.id.to_string(),
        counted_at: state.now(),
        counted_by: me,
        note: optional("note", &input.note, 500)?,
    };
    let mut ev = event(c, Action::CsCount, Permission::CsHandle, loc.id);
    ev.object_type = Some("cs_count".into());
    ev.object_id = Some(count.id.clone());
    let (lines, cases) = state
        .store
        .cs_record_count(&count, &counted, &loc.today().to_string(), ev)
        .await?;
    let count = state
        .store
        .cs_count(&count.id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(CountOutcome {
        count,
        lines,
        cases,
    })
}

// ---- Cases ------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    pub clinic_id: String,
    /// `loss` or `theft`.
    pub kind: String,
    pub lot_id: Option<String>,
    pub quantity: Option<String>,
    pub discovered_on: Option<String>,
    pub description: String,
}

/// Opens a loss or theft case found outside a count.
pub async fn open_case(state: &Clinic, c: &Caller, input: CaseInput) -> Result<String, Error> {
    let loc = location(
        state,
        c,
        Permission::CsHandle,
        &input.clinic_id,
        "clinic_id",
    )
    .await?;
    let kind = match input.kind.trim() {
        "loss" => "loss",
        "theft" => "theft",
        _ => return Err(invalid("kind", "must be loss or theft")),
    };
    let description = required("description", &Some(input.description.clone()), 2000)?;
    let discovered = match input
        .discovered_on
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => parse_date("discovered_on", s)?,
        None => loc.today(),
    };
    if discovered > loc.today() {
        return Err(invalid("discovered_on", "is in the future"));
    }
    let (lot_id, diff) = match optional("lot_id", &input.lot_id, 64)? {
        Some(id) => {
            let lot = state
                .store
                .cs_lot(&id)
                .await?
                .filter(|l| l.org_id == c.org_id.to_string());
            let Some(lot) = lot else {
                return Err(invalid("lot_id", "no such lot"));
            };
            let q = cs::parse_quantity(
                "quantity",
                input.quantity.as_deref().unwrap_or(""),
                lot.strength_mg_per_ml,
            )
            .map_err(|e| Error::Invalid(vec![e]))?;
            (Some(id), -q)
        }
        None => (None, 0),
    };
    let id = new_id();
    let mut ev = event(c, Action::CsCaseOpen, Permission::CsHandle, loc.id);
    ev.object_type = Some("cs_case".into());
    ev.object_id = Some(id.clone());
    state
        .store
        .cs_open_case(
            &NewCase {
                id: id.clone(),
                clinic_id: loc.id.to_string(),
                kind,
                opened_by: user_of(c)?,
                opened_at: state.now(),
                discovered_on: discovered.to_string(),
                lot_id,
                difference_ul: diff,
                description,
            },
            ev,
        )
        .await?;
    Ok(id)
}

async fn case_of(
    state: &Clinic,
    c: &Caller,
    id: &str,
    p: Permission,
) -> Result<(Case, Location), Error> {
    let k = match uuid::Uuid::parse_str(id.trim()) {
        Ok(_) => state.store.cs_case(id.trim()).await?,
        Err(_) => None,
    };
    let Some(k) = k else {
        return Err(Error::NotFound);
    };
    let locs = locations(state, c, p).await?;
    let loc = locs
        .into_iter()
        .find(|l| l.id.to_string() == k.clinic_id)
        .ok_or(Error::NotFound)?;
    Ok((k, loc))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveInput {
    /// `found`, `documented_loss` or `theft`.
    pub resolution: String,
    pub note: String,
}

/// Resolves a case. A loss or theft writes the missing amount off the ledger
/// as an adjustment; a theft or significant loss starts the DEA clocks.
pub async fn resolve_case(
    state: &Clinic,
    c: &Caller,
    id: &str,
    input: ResolveInput,
) -> Result<Case, Error> {
    let (k, loc) = case_of(state, c, id, Permission::CsManage).await?;
    if k.status != "open" {
        return Err(Error::Conflict("this case is already resolved".into()));
    }
    let res = Resolution::parse(input.resolution.trim()).map_err(|e| Error::Invalid(vec![e]))?;
    let note = required("note", &Some(input.note.clone()), 2000)?;
    let me = user_of(c)?;
    let adjustment = match (res, k.difference_ul, &k.lot_id) {
        (Resolution::Found, _, _) => None,
        (_, d, _) if d > 0 => {
            return Err(invalid(
                "resolution",
                "the count found more than the ledger: a surplus is not a loss; recount (found) or record an adjustment with its reason",
            ))
        }
        (_, d, Some(lot)) if d < 0 => Some(Movement {
            change_ul: d,
            reason: Some(format!("{}: {note}", res.label())),
            reference_id: Some(k.id.clone()),
            ..Movement::new(
                EntryKind::Adjustment,
                &loc.id.to_string(),
                lot,
                state.now(),
                -d,
                k.strength_mg_per_ml.unwrap_or(1),
                &me,
            )
        }),
        _ => None,
    };
    let mut ev = event(c, Action::CsCaseResolve, Permission::CsManage, loc.id);
    ev.object_type = Some("cs_case".into());
    ev.object_id = Some(k.id.clone());
    ev.detail = Some(res.as_str().into());
    // A discrepancy found to be a theft becomes a theft case with its clocks.
    let kind = (res == Resolution::Theft).then_some("theft");
    state
        .store
        .cs_resolve_case(
            &k.id,
            &CaseResolution {
                resolution: res.as_str(),
                note,
                by: me,
                at: state.now(),
                adjustment,
                kind,
            },
            ev,
        )
        .await?;
    state.store.cs_case(&k.id).await?.ok_or(Error::NotFound)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilingInput {
    pub dea_notified_on: Option<String>,
    pub form106_filed_on: Option<String>,
    /// The facts Form 106 asks for: type of loss, circumstances, police report.
    pub loss_type: Option<String>,
    pub circumstances: Option<String>,
    pub police_report: Option<String>,
}

/// Records the DEA notice and the Form 106 filing of a loss or theft case.
pub async fn case_filing(
    state: &Clinic,
    c: &Caller,
    id: &str,
    input: FilingInput,
) -> Result<Case, Error> {
    let (k, loc) = case_of(state, c, id, Permission::CsManage).await?;
    if k.kind == "discrepancy" {
        return Err(Error::Conflict(
            "a count discrepancy is not reported to the DEA unless it is resolved as a theft or significant loss".into(),
        ));
    }
    let date = |f: &str, v: &Option<String>| -> Result<Option<String>, Error> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => {
                let d = parse_date(f, s)?;
                if d > loc.today() {
                    return Err(invalid(f, "is in the future"));
                }
                Ok(Some(d.to_string()))
            }
        }
    };
    let notified = date("dea_notified_on", &input.dea_notified_on)?;
    let filed = date("form106_filed_on", &input.form106_filed_on)?;
    let form = json!({
        "loss_type": optional("loss_type", &input.loss_type, 100)?,
        "circumstances": optional("circumstances", &input.circumstances, 2000)?,
        "police_report": optional("police_report", &input.police_report, 200)?,
    });
    if notified.is_none()
        && filed.is_none()
        && form
            .as_object()
            .is_some_and(|o| o.values().all(|v| v.is_null()))
    {
        return Err(invalid(
            "dea_notified_on",
            "give the notice date, the filing date or the Form 106 facts",
        ));
    }
    let mut ev = event(c, Action::CsCaseFiling, Permission::CsManage, loc.id);
    ev.object_type = Some("cs_case".into());
    ev.object_id = Some(k.id.clone());
    state
        .store
        .cs_case_filing(
            &k.id,
            notified.as_deref(),
            filed.as_deref(),
            Some(&form.to_string()),
            ev,
        )
        .await?;
    state.store.cs_case(&k.id).await?.ok_or(Error::NotFound)
}

// ---- Inventories ------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryInput {
    pub clinic_id: String,
    /// `initial` or `biennial`.
    pub kind: String,
    /// `opening` or `close` of business.
    pub business: String,
    pub taken_on: Option<String>,
    pub lines: Vec<InventoryLineInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryLineInput {
    pub lot_id: String,
    /// Unopened containers.
    pub sealed: i64,
    /// What is left in an opened container (`0` when none is open).
    pub open: Option<String>,
    /// `exact` or `estimated` for the opened container's contents.
    pub measure: Option<String>,
}

/// Takes an inventory: every lot held, with sealed containers and the
/// measured or estimated contents of an opened one, beside the ledger.
pub async fn take_inventory(
    state: &Clinic,
    c: &Caller,
    input: InventoryInput,
) -> Result<Inventory, Error> {
    let loc = location(
        state,
        c,
        Permission::CsHandle,
        &input.clinic_id,
        "clinic_id",
    )
    .await?;
    let kind = match input.kind.trim() {
        k @ ("initial" | "biennial") => k.to_string(),
        _ => return Err(invalid("kind", "must be initial or biennial")),
    };
    let business = match input.business.trim() {
        b @ ("opening" | "close") => b.to_string(),
        _ => {
            return Err(invalid(
                "business",
                "must be opening or close (of business)",
            ))
        }
    };
    let taken_on = match input
        .taken_on
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => parse_date("taken_on", s)?,
        None => loc.today(),
    };
    if taken_on > loc.today() {
        return Err(invalid("taken_on", "is in the future"));
    }
    let balances = state.store.cs_balances(&[loc.id.to_string()]).await?;
    let mut errs = Vec::new();
    let mut lines = Vec::new();
    for (i, l) in input.lines.iter().enumerate() {
        let Some(b) = balances.iter().find(|b| b.lot_id == l.lot_id.trim()) else {
            errs.push(FieldError::new(
                format!("lines[{i}].lot_id"),
                "is not held at this location",
            ));
            continue;
        };
        if !(0..=1000).contains(&l.sealed) {
            errs.push(FieldError::new(
                format!("lines[{i}].sealed"),
                "must be between 0 and 1000",
            ));
            continue;
        }
        let open_txt = l.open.as_deref().unwrap_or("0").trim();
        let open = if open_txt.is_empty() || open_txt == "0" {
            0
        } else {
            match cs::parse_quantity(&format!("lines[{i}].open"), open_txt, b.strength_mg_per_ml) {
                Ok(v) if v < b.container_ul => v,
                Ok(_) => {
                    errs.push(FieldError::new(
                        format!("lines[{i}].open"),
                        "an opened container holds less than a full one",
                    ));
                    continue;
                }
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            }
        };
        let measure = match l.measure.as_deref().map(str::trim).unwrap_or("exact") {
            m @ ("exact" | "estimated") => m,
            _ => {
                errs.push(FieldError::new(
                    format!("lines[{i}].measure"),
                    "must be exact or estimated",
                ));
                continue;
            }
        };
        let on_hand = l.sealed * b.container_ul + open;
        lines.push(json!({
            "lot_id": b.lot_id, "lot_number": b.lot_number, "product": b.product_name, "ndc": b.ndc,
            "strength_mg_per_ml": b.strength_mg_per_ml, "container_ul": b.container_ul,
            "sealed": l.sealed, "open_ul": open, "measure": measure,
            "on_hand_ul": on_hand, "ledger_ul": b.balance_ul,
        }));
    }
    for b in balances.iter().filter(|b| b.balance_ul > 0) {
        if !input.lines.iter().any(|l| l.lot_id.trim() == b.lot_id) {
            errs.push(FieldError::new(
                "lines",
                format!("lot {} is held here: count it too", b.lot_number),
            ));
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let body = serde_json::Value::Array(lines).to_string();
    let inv = Inventory {
        id: new_id(),
        clinic_id: loc.id.to_string(),
        kind,
        taken_on: taken_on.to_string(),
        business,
        taken_by: user_of(c)?,
        taken_at: state.now(),
        sha256: {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(body.as_bytes()))
        },
        lines: body,
    };
    let mut ev = event(c, Action::CsInventory, Permission::CsHandle, loc.id);
    ev.object_type = Some("cs_inventory".into());
    ev.object_id = Some(inv.id.clone());
    state.store.cs_add_inventory(&inv, ev).await?;
    state
        .store
        .cs_inventories(&[loc.id.to_string()])
        .await?
        .into_iter()
        .find(|i| i.id == inv.id)
        .ok_or(Error::NotFound)
}

/// An inventory as a printable PDF; the print is audited.
pub async fn inventory_pdf(state: &Clinic, c: &Caller, id: &str) -> Result<Vec<u8>, Error> {
    use crate::documents::{render, Block};
    let locs = locations(state, c, Permission::CsRead).await?;
    let ids: Vec<String> = locs.iter().map(|l| l.id.to_string()).collect();
    let inv = state
        .store
        .cs_inventories(&ids)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or(Error::NotFound)?;
    let loc = locs
        .iter()
        .find(|l| l.id.to_string() == inv.clinic_id)
        .ok_or(Error::NotFound)?;
    let lines: Vec<serde_json::Value> = stored("inventory lines", &inv.lines)?;
    let reg = loc
        .registration
        .as_ref()
        .map(|r| format!("DEA registration {}", r.dea_number))
        .unwrap_or_else(|| "no DEA registration on file".into());
    let mut blocks = vec![
        Block::title(&format!(
            "{} inventory of controlled substances",
            if inv.kind == "initial" {
                "Initial"
            } else {
                "Biennial"
            }
        )),
        Block::body(&printable(&format!("{} ({reg})", loc.name))),
        Block::body(&format!(
            "Taken on {} at the {} of business by {}.",
            inv.taken_on,
            if inv.business == "opening" {
                "opening"
            } else {
                "close"
            },
            inv.taken_by
        )),
        Block::heading("Schedule III"),
    ];
    for l in &lines {
        let g = |k: &str| l.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
        let s = |k: &str| l.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let strength = g("strength_mg_per_ml");
        blocks.push(Block::body(&printable(&format!(
            "{} {} mg/mL, {} container, NDC {}, lot {}: {} sealed; opened container {} ({}). On hand {} ({}); ledger {}.",
            s("product"),
            strength,
            cs::fmt_ml(g("container_ul")),
            s("ndc"),
            s("lot_number"),
            g("sealed"),
            cs::fmt_ml(g("open_ul")),
            s("measure"),
            cs::fmt_ml(g("on_hand_ul")),
            cs::fmt_mg(g("on_hand_ul"), strength),
            cs::fmt_ml(g("ledger_ul")),
        ))));
    }
    if lines.is_empty() {
        blocks.push(Block::body("No controlled substances on hand."));
    }
    blocks.push(Block::small(&format!("Record sha256 {}", inv.sha256)));
    blocks.push(Block::body("Signature: ______________________________"));
    let mut ev = event(c, Action::CsReport, Permission::CsRead, loc.id);
    ev.object_type = Some("cs_inventory".into());
    ev.object_id = Some(inv.id.clone());
    state.store.audit(vec![ev]).await?;
    render(&blocks, "Stillwater - Schedule III inventory").map_err(Error::Internal)
}

// ---- Setup ------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    pub ndc: String,
    pub form: String,
    pub strength_mg_per_ml: i64,
    /// The container's volume, such as `10 mL`.
    pub container: String,
}

pub async fn add_product(
    state: &Clinic,
    c: &Caller,
    input: ProductInput,
) -> Result<Product, Error> {
    let clinics = c.require_any(Permission::CsManage)?;
    let mut errs = Vec::new();
    let name = input.name.trim().to_string();
    if name.is_empty() || name.len() > 120 {
        errs.push(FieldError::new(
            "name",
            "give the product's name (at most 120 characters)",
        ));
    }
    let ndc = cs::check_ndc(&input.ndc).map_err(|e| errs.push(e)).ok();
    let form = input.form.trim().to_string();
    if form.is_empty() || form.len() > 60 {
        errs.push(FieldError::new(
            "form",
            "give the dosage form, such as injection solution",
        ));
    }
    if !(1..=1000).contains(&input.strength_mg_per_ml) {
        errs.push(FieldError::new(
            "strength_mg_per_ml",
            "must be between 1 and 1000 mg/mL",
        ));
    }
    let container = cs::parse_quantity("container", &input.container, 1)
        .map_err(|e| errs.push(e))
        .ok();
    if container.is_some() && input.container.to_ascii_lowercase().contains("mg") {
        errs.push(FieldError::new(
            "container",
            "give the container's volume in mL",
        ));
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let p = Product {
        id: new_id(),
        name,
        ndc: ndc.unwrap_or_default(),
        form,
        strength_mg_per_ml: input.strength_mg_per_ml,
        container_ul: container.unwrap_or_default(),
    };
    let mut ev = event(c, Action::CsSettings, Permission::CsManage, clinics[0]);
    ev.object_type = Some("cs_product".into());
    ev.object_id = Some(p.id.clone());
    state
        .store
        .cs_add_product(&c.org_id.to_string(), &p, ev)
        .await?;
    Ok(p)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationInput {
    pub clinic_id: String,
    pub dea_number: String,
    pub expires_on: String,
}

pub async fn set_registration(
    state: &Clinic,
    c: &Caller,
    input: RegistrationInput,
) -> Result<(), Error> {
    let loc = location(
        state,
        c,
        Permission::CsManage,
        &input.clinic_id,
        "clinic_id",
    )
    .await?;
    let dea =
        cs::check_dea("dea_number", &input.dea_number).map_err(|e| Error::Invalid(vec![e]))?;
    let exp = parse_date("expires_on", &input.expires_on)?;
    let mut ev = event(c, Action::CsSettings, Permission::CsManage, loc.id);
    ev.object_type = Some("cs_registration".into());
    ev.detail = Some(format!("DEA {dea} until {exp}"));
    state
        .store
        .cs_set_registration(
            &loc.id.to_string(),
            &dea,
            &exp.to_string(),
            &user_of(c)?,
            ev,
        )
        .await?;
    Ok(())
}

pub async fn add_storage(
    state: &Clinic,
    c: &Caller,
    clinic_id: &str,
    name: &str,
) -> Result<Storage, Error> {
    let loc = location(state, c, Permission::CsManage, clinic_id, "clinic_id").await?;
    let name = name.trim();
    if name.is_empty() || name.len() > 80 {
        return Err(invalid(
            "name",
            "give the storage place's name (e.g. Safe, locked cabinet 2)",
        ));
    }
    let s = Storage {
        id: new_id(),
        clinic_id: loc.id.to_string(),
        name: name.to_string(),
    };
    let mut ev = event(c, Action::CsSettings, Permission::CsManage, loc.id);
    ev.object_type = Some("cs_storage".into());
    ev.object_id = Some(s.id.clone());
    state.store.cs_add_storage(&s, ev).await?;
    Ok(s)
}

/// Lots of the organisation with their balance at each location the caller reads.
pub async fn lots(state: &Clinic, c: &Caller) -> Result<(Vec<Lot>, Vec<Balance>), Error> {
    let locs = locations(state, c, Permission::CsRead).await?;
    let ids: Vec<String> = locs.iter().map(|l| l.id.to_string()).collect();
    let mut ev = event(c, Action::CsRead, Permission::CsRead, locs[0].id);
    ev.detail = Some("lots".into());
    state.store.audit(vec![ev]).await?;
    Ok((
        state.store.cs_lots(&c.org_id.to_string()).await?,
        state.store.cs_balances(&ids).await?,
    ))
}

/// Inventories at the caller's locations (all, or one), newest first; audited.
pub async fn inventories(
    state: &Clinic,
    c: &Caller,
    only: Option<ClinicId>,
) -> Result<Vec<Inventory>, Error> {
    let locs = locations(state, c, Permission::CsRead).await?;
    let ids: Vec<String> = locs
        .iter()
        .filter(|l| only.is_none_or(|o| o == l.id))
        .map(|l| l.id.to_string())
        .collect();
    let ev: Vec<NewAuditEvent> = locs
        .iter()
        .filter(|l| ids.contains(&l.id.to_string()))
        .map(|l| {
            let mut e = event(c, Action::CsRead, Permission::CsRead, l.id);
            e.detail = Some("inventories".into());
            e
        })
        .collect();
    state.store.audit(ev).await?;
    Ok(state.store.cs_inventories(&ids).await?)
}

/// Counts at the caller's locations, newest first, with their lines.
pub async fn counts(
    state: &Clinic,
    c: &Caller,
) -> Result<Vec<(Count, Vec<store::substances::CountLine>)>, Error> {
    let locs = locations(state, c, Permission::CsRead).await?;
    let ids: Vec<String> = locs.iter().map(|l| l.id.to_string()).collect();
    let mut out = Vec::new();
    for k in state.store.cs_counts(&ids, 30).await? {
        let lines = state.store.cs_count_lines(&k.id).await?;
        out.push((k, lines));
    }
    let mut ev = event(c, Action::CsRead, Permission::CsRead, locs[0].id);
    ev.detail = Some("counts".into());
    state.store.audit(vec![ev]).await?;
    Ok(out)
}

/// The organisation's controlled-substance products.
pub async fn products(
    state: &Clinic,
    c: &Caller,
) -> Result<Vec<store::substances::Product>, Error> {
    c.require_any(Permission::CsRead)?;
    Ok(state.store.cs_products(&c.org_id.to_string()).await?)
}

/// One loss or theft case at a location the caller reads.
pub async fn case(state: &Clinic, c: &Caller, id: &str) -> Result<Case, Error> {
    let locs = locations(state, c, Permission::CsRead).await?;
    let k = state.store.cs_case(id).await?.ok_or(Error::NotFound)?;
    if !locs.iter().any(|l| l.id.to_string() == k.clinic_id) {
        return Err(Error::NotFound);
    }
    Ok(k)
}

/// The draws made for one dose order, for the visit's page (the visit's
/// reading is the audited event).
pub async fn draws_for_order(state: &Clinic, c: &Caller, order: &str) -> Result<Vec<Draw>, Error> {
    c.require_any(Permission::EncounterRead)?;
    Ok(state.store.cs_draws_for_order(order).await?)
}
