//! Cash-pay billing's use cases, shared by the pages and the API: the
//! clinic's billing identity, price lists and offers; invoices made from an
//! attended visit (its route's codes, the drug given with its NDC from the
//! Schedule III record, rescue medicines, and the offers' savings computed
//! from the rules), late-cancel and no-show fees; packages sold and used up
//! by attended sessions; payments, refunds and credit notes (append-only,
//! balances derived); superbills as PDF; good-faith estimates; receipts by
//! e-mail; the day close and the reports.

use std::collections::BTreeMap;

use domain::audit::Action;
use domain::auth::Permission;
use domain::billing::{
    self as bill, fmt_money, membership, EntryKind, Estimate, EstimateInput, Method, Offer,
    PatientHistory, PriceList, Rule, Service, VisitFacts,
};
use domain::ids::{ClinicId, PatientId};
use domain::FieldError;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use store::audit::NewAuditEvent;
use store::billing::{
    account_of, BillingEntry, BillingSettings, Invoice, InvoiceLine, Membership, MembershipStep,
    NewEntry, NewInvoice, NewLine, NewMembership, NewPackage, Package, PackageProduct,
    StoredEstimate, StoredOffer, StoredPriceList,
};

use crate::actor::Caller;
use crate::error::{stored, Error};
use crate::Clinic;

fn invalid(field: &str, m: impl Into<String>) -> Error {
    Error::Invalid(vec![FieldError::new(field, m)])
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn date(field: &str, s: &str) -> Result<Date, Error> {
    s.trim()
        .parse()
        .map_err(|_| invalid(field, format!("{:?} is not a date (YYYY-MM-DD)", s.trim())))
}

fn text(field: &str, s: &str, max: usize, required: bool) -> Result<String, Error> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if t.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if let Some(ch) = crate::documents::unprintable(t) {
        return Err(invalid(
            field,
            format!("contains {ch:?}, which a printed invoice cannot show"),
        ));
    }
    Ok(t.to_string())
}

/// A clinic where the caller holds a billing permission, with its zone.
#[derive(Debug, Clone)]
pub struct Place {
    pub id: ClinicId,
    pub name: String,
    pub tz: jiff::tz::TimeZone,
    pub clinic: store::org::Clinic,
    /// Now, when the place was looked up for a request.
    pub now: i64,
}

impl Place {
    pub fn today(&self) -> Date {
        domain::time::to_timestamp(self.now)
            .to_zoned(self.tz.clone())
            .date()
    }
    pub fn start_of(&self, d: Date) -> i64 {
        d.to_zoned(self.tz.clone())
            .map(|z| z.timestamp().as_microsecond())
            .unwrap_or_default()
    }
    pub fn date_of(&self, m: i64) -> Date {
        domain::time::to_timestamp(m)
            .to_zoned(self.tz.clone())
            .date()
    }
    /// A time on the clinic's wall clock ("2026-12-07 2:05 PM MST" in the US).
    pub fn when(&self, m: i64) -> String {
        self.clinic.settings.clock().stamp(m)
    }
}

/// The currency a clinic bills in (its billing details; dollars until set).
async fn currency_of(state: &Clinic, clinic: ClinicId) -> Result<String, Error> {
    Ok(state
        .store
        .billing_settings(&clinic.to_string())
        .await?
        .map(|s| s.currency)
        .unwrap_or_else(|| "USD".into()))
}

/// The clinics where the caller holds `p`.
pub async fn places(state: &Clinic, c: &Caller, p: Permission) -> Result<Vec<Place>, Error> {
    let mine = c.require_any(p)?;
    Ok(state
        .store
        .clinics_of_org(c.org_id)
        .await?
        .into_iter()
        .filter(|k| mine.contains(&k.id))
        .map(|k| Place {
            id: k.id,
            name: k.settings.name.clone(),
            tz: jiff::tz::TimeZone::get(&k.settings.time_zone).unwrap_or(jiff::tz::TimeZone::UTC),
            clinic: k,
            now: state.now(),
        })
        .collect())
}

/// The clinic named `id` where the caller holds `p`.
pub async fn place(state: &Clinic, c: &Caller, p: Permission, id: &str) -> Result<Place, Error> {
    let id = id.trim();
    if id.is_empty() {
        return Err(invalid("clinic_id", "choose a clinic"));
    }
    let all = places(state, c, p).await?;
    all.into_iter()
        .find(|l| l.id.to_string() == id)
        .ok_or_else(|| {
            if c.clinics_with(Permission::BillRead)
                .iter()
                .any(|k| k.to_string() == id)
            {
                Error::Forbidden
            } else {
                invalid("clinic_id", "no such clinic among yours")
            }
        })
}

fn event(c: &Caller, a: Action, p: Permission, clinic: ClinicId) -> NewAuditEvent {
    let mut e = c.event(a);
    e.clinic_id = Some(clinic.to_string());
    e.actor_role = c
        .principal
        .acting_role(p, clinic)
        .map(|r| r.as_str().to_string());
    e
}

fn patient_event(
    c: &Caller,
    a: Action,
    p: Permission,
    clinic: ClinicId,
    patient: &str,
) -> NewAuditEvent {
    c.patient_event(a, p, clinic, patient)
}

// ---- Setup -------------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    pub clinic_id: String,
    pub legal_name: String,
    pub npi: String,
    pub tax_id: String,
    pub currency: String,
    #[serde(default)]
    pub refund_fee: String,
}

pub async fn set_settings(state: &Clinic, c: &Caller, i: SettingsInput) -> Result<(), Error> {
    let p = place(state, c, Permission::BillManage, &i.clinic_id).await?;
    let mut e = domain::error::Errors::new();
    let npi = e.check(domain::billing::check_npi(&i.npi));
    let tax = e.check(domain::billing::check_tax_id(&i.tax_id));
    let cur = e.check(bill::check_currency("currency", &i.currency));
    let fee = if i.refund_fee.trim().is_empty() {
        Some(0)
    } else {
        e.check(bill::parse_amount(
            "refund_fee",
            &i.refund_fee,
            cur.as_deref().unwrap_or("USD"),
        ))
    };
    let name = text("legal_name", &i.legal_name, 200, true);
    if let Err(Error::Invalid(v)) = &name {
        for f in v {
            e.add(&f.field, f.message.clone());
        }
    }
    e.into_result()?;
    let s = BillingSettings {
        clinic_id: p.id.to_string(),
        legal_name: name?,
        npi: npi.unwrap_or_default(),
        tax_id: tax.unwrap_or_default(),
        currency: cur.unwrap_or_default(),
        refund_fee_minor: fee.unwrap_or_default(),
    };
    let by = c.user_id().ok_or(Error::Forbidden)?.to_string();
    let ev = event(c, Action::BillSettings, Permission::BillManage, p.id);
    state.store.set_billing_settings(&s, &by, ev).await?;
    Ok(())
}

/// A clinic's price lists as the rules read them, newest first.
pub async fn price_lists_of(state: &Clinic, clinic: &str) -> Result<Vec<PriceList>, Error> {
    state
        .store
        .price_lists(clinic)
        .await?
        .into_iter()
        .map(|l| {
            Ok(PriceList {
                effective_from: l
                    .effective_from
                    .parse()
                    .map_err(|_| Error::Internal("a stored price list has a bad date".into()))?,
                currency: l.currency,
                prices: serde_json::from_str(&l.prices)
                    .map_err(|_| Error::Internal("a stored price list is unreadable".into()))?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesInput {
    pub clinic_id: String,
    pub effective_from: String,
    pub currency: String,
    /// Service code to amount text ("275.00"); blank amounts leave a service unpriced.
    pub prices: BTreeMap<String, String>,
}

/// Publishes a price list from a date on (today or later; earlier lists stay as history).
pub async fn set_prices(state: &Clinic, c: &Caller, i: PricesInput) -> Result<(), Error> {
    let p = place(state, c, Permission::BillManage, &i.clinic_id).await?;
    let mut e = domain::error::Errors::new();
    let from = e.check(date("effective_from", &i.effective_from).map_err(to_field));
    if let Some(d) = &from {
        if *d < p.today() {
            e.add(
                "effective_from",
                "a price list starts today or later; past invoices keep their prices",
            );
        }
    }
    let mut prices = BTreeMap::new();
    for (k, v) in &i.prices {
        if v.trim().is_empty() {
            continue;
        }
        match (Service::parse(k, k), bill::parse_amount(k, v, &i.currency)) {
            (Ok(s), Ok(a)) => {
                prices.insert(s, a);
            }
            (Err(f), _) | (_, Err(f)) => e.add(&f.field, f.message),
        }
    }
    let list = PriceList {
        effective_from: from.unwrap_or_default(),
        currency: i.currency.trim().to_ascii_uppercase(),
        prices,
    };
    if let Err(domain::DomainError::Invalid(v)) = list.check() {
        for f in v {
            e.add(&f.field, f.message);
        }
    }
    if let Some(s) = state.store.billing_settings(&p.id.to_string()).await? {
        if s.currency != list.currency {
            e.add(
                "currency",
                format!(
                    "this clinic bills in {}; a list in {} would mix currencies",
                    s.currency, list.currency
                ),
            );
        }
    }
    e.into_result()?;
    let by = c.user_id().ok_or(Error::Forbidden)?.to_string();
    let stored = StoredPriceList {
        id: new_id(),
        clinic_id: p.id.to_string(),
        effective_from: list.effective_from.to_string(),
        currency: list.currency.clone(),
        prices: serde_json::to_string(&list.prices).map_err(|e| Error::Internal(e.to_string()))?,
        created_at: state.now(),
    };
    let mut ev = event(c, Action::BillSettings, Permission::BillManage, p.id);
    ev.object_type = Some("price_list".into());
    ev.object_id = Some(stored.id.clone());
    state.store.insert_price_list(&stored, &by, ev).await?;
    Ok(())
}

pub fn offer_of(o: &StoredOffer) -> Result<Offer, Error> {
    Ok(Offer {
        id: o.id.clone(),
        name: o.name.clone(),
        rules: serde_json::from_str(&o.rules)
            .map_err(|_| Error::Internal("a stored offer is unreadable".into()))?,
        valid_from: o
            .valid_from
            .parse()
            .map_err(|_| Error::Internal("a stored offer has a bad date".into()))?,
        valid_to: o.valid_to.as_deref().and_then(|d| d.parse().ok()),
        new_patients_only: o.new_patients_only,
        first_n: o.first_n.map(|n| n as u32),
        stackable: o.stackable,
    })
}

/// The clinic's offers that are switched on.
pub async fn active_offers(state: &Clinic, clinic: &str) -> Result<Vec<Offer>, Error> {
    state
        .store
        .offers(clinic)
        .await?
        .iter()
        .filter(|o| o.active)
        .map(offer_of)
        .collect()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferInput {
    pub clinic_id: String,
    pub name: String,
    pub valid_from: String,
    #[serde(default)]
    pub valid_to: String,
    #[serde(default)]
    pub new_patients_only: bool,
    #[serde(default)]
    pub first_n: Option<u32>,
    #[serde(default)]
    pub stackable: bool,
    /// Rules: `{"kind": "waive", "service": "intake"}`,
    /// `{"kind": "fixed_price", "service": "iv_infusion", "price": "275.00"}`,
    /// `{"kind": "percent_off", "service": "iv_infusion", "percent": 10}`.
    pub rules: Vec<RuleInput>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub kind: String,
    pub service: String,
    #[serde(default)]
    pub price: String,
    #[serde(default)]
    pub percent: Option<u8>,
}

pub async fn add_offer(state: &Clinic, c: &Caller, i: OfferInput) -> Result<String, Error> {
    let p = place(state, c, Permission::BillManage, &i.clinic_id).await?;
    let currency = currency_of(state, p.id).await?;
    let mut e = domain::error::Errors::new();
    let mut rules = vec![];
    for r in &i.rules {
        let Some(service) = e.check(Service::parse("rules", &r.service)) else {
            continue;
        };
        match r.kind.trim() {
            "waive" => rules.push(Rule::Waive { service }),
            "fixed_price" => {
                if let Some(minor) = e.check(bill::parse_amount("rules", &r.price, &currency)) {
                    rules.push(Rule::FixedPrice { service, minor });
                }
            }
            "percent_off" => rules.push(Rule::PercentOff {
                service,
                percent: r.percent.unwrap_or(0),
            }),
            other => e.add(
                "rules",
                format!("{other:?} is not a rule (waive, fixed_price or percent_off)"),
            ),
        }
    }
    let from = e.check(date("valid_from", &i.valid_from).map_err(to_field));
    let to = if i.valid_to.trim().is_empty() {
        None
    } else {
        e.check(date("valid_to", &i.valid_to).map_err(to_field))
    };
    let offer = Offer {
        id: new_id(),
        name: i.name.trim().to_string(),
        rules,
        valid_from: from.unwrap_or_default(),
        valid_to: to,
        new_patients_only: i.new_patients_only,
        first_n: i.first_n,
        stackable: i.stackable,
    };
    if let Some(ch) = crate::documents::unprintable(&offer.name) {
        e.add(
            "name",
            format!("contains {ch:?}, which a printed invoice cannot show"),
        );
    }
    if from.is_some() {
        if let Err(domain::DomainError::Invalid(v)) = offer.check() {
            for f in v {
                e.add(&f.field, f.message);
            }
        }
    }
    e.into_result()?;
    // A fixed price above the list price would be a surcharge, not an offer.
    let lists = price_lists_of(state, &p.id.to_string()).await?;
    for r in &offer.rules {
        if let Rule::FixedPrice { service, minor } = r {
            if let Ok((list, cur)) =
                bill::price_on(&lists, *service, offer.valid_from.max(p.today()))
            {
                if *minor > list {
                    return Err(invalid(
                        "rules",
                        format!(
                            "{} at {} is above its list price of {}",
                            service.label(),
                            fmt_money(*minor, &cur),
                            fmt_money(list, &cur)
                        ),
                    ));
                }
            }
        }
    }
    let stored = StoredOffer {
        id: offer.id.clone(),
        clinic_id: p.id.to_string(),
        name: offer.name.clone(),
        rules: serde_json::to_string(&offer.rules).map_err(|e| Error::Internal(e.to_string()))?,
        valid_from: offer.valid_from.to_string(),
        valid_to: offer.valid_to.map(|d| d.to_string()),
        new_patients_only: offer.new_patients_only,
        first_n: offer.first_n.map(i64::from),
        stackable: offer.stackable,
        active: true,
    };
    let by = c.user_id().ok_or(Error::Forbidden)?.to_string();
    let mut ev = event(c, Action::BillSettings, Permission::BillManage, p.id);
    ev.object_type = Some("offer".into());
    ev.object_id = Some(stored.id.clone());
    state.store.insert_offer(&stored, &by, ev).await?;
    Ok(stored.id)
}

fn to_field(e: Error) -> FieldError {
    match e {
        Error::Invalid(mut v) if !v.is_empty() => v.remove(0),
        other => FieldError::new("input", format!("{other:?}")),
    }
}

pub async fn set_offer_active(
    state: &Clinic,
    c: &Caller,
    clinic: &str,
    id: &str,
    active: bool,
) -> Result<(), Error> {
    let p = place(state, c, Permission::BillManage, clinic).await?;
    let mut ev = event(c, Action::BillSettings, Permission::BillManage, p.id);
    ev.object_type = Some("offer".into());
    ev.object_id = Some(id.to_string());
    ev.detail = Some(if active { "resumed" } else { "ended" }.into());
    if !state
        .store
        .set_offer_active(&p.id.to_string(), id, active, ev)
        .await?
    {
        return Err(Error::NotFound);
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageProductInput {
    pub clinic_id: String,
    pub name: String,
    pub service: String,
    pub sessions: u32,
    pub price: String,
    #[serde(default)]
    pub valid_days: Option<u32>,
    /// Renews every month (a maintenance membership): `sessions` is then per
    /// month and `price` the monthly fee.
    #[serde(default)]
    pub monthly: bool,
}

pub async fn add_package_product(
    state: &Clinic,
    c: &Caller,
    i: PackageProductInput,
) -> Result<String, Error> {
    let p = place(state, c, Permission::BillManage, &i.clinic_id).await?;
    let mut e = domain::error::Errors::new();
    let name = e.check(text("name", &i.name, 120, true).map_err(to_field));
    let service = e.check(Service::parse("service", &i.service));
    if service.is_some_and(|s| s.is_fee()) {
        e.add("service", "a package covers care, not fees");
    }
    if !(1..=104).contains(&i.sessions) {
        e.add("sessions", "a package holds between 1 and 104 sessions");
    }
    let currency = currency_of(state, p.id).await?;
    let price = e.check(bill::parse_amount("price", &i.price, &currency));
    if i.monthly && i.valid_days.is_some() {
        e.add(
            "valid_days",
            "a membership's sessions last for their month; leave it empty",
        );
    } else if i.valid_days.is_some_and(|d| !(1..=1100).contains(&d)) {
        e.add(
            "valid_days",
            "a package is valid for 1 to 1100 days, or leave it empty",
        );
    }
    let settings = state.store.billing_settings(&p.id.to_string()).await?;
    if settings.is_none() {
        e.add(
            "clinic_id",
            "set the clinic's billing details (currency, NPI, tax id) first",
        );
    }
    e.into_result()?;
    let k = PackageProduct {
        id: new_id(),
        clinic_id: p.id.to_string(),
        name: name.unwrap_or_default(),
        service: service.map(|s| s.as_str().to_string()).unwrap_or_default(),
        sessions: i64::from(i.sessions),
        price_minor: price.unwrap_or_default(),
        currency: settings.map(|s| s.currency).unwrap_or_default(),
        valid_days: i.valid_days.map(i64::from),
        active: true,
        monthly: i.monthly,
    };
    let mut ev = event(c, Action::BillSettings, Permission::BillManage, p.id);
    ev.object_type = Some("package_product".into());
    ev.object_id = Some(k.id.clone());
    state.store.insert_package_product(&k, ev).await?;
    Ok(k.id)
}

// ---- Invoices ----------------------------------------------------------------

async fn history(state: &Clinic, clinic: &str, patient: &str) -> Result<PatientHistory, Error> {
    let (uses, first) = state.store.offer_history(clinic, patient).await?;
    let mut h = PatientHistory {
        first_charge: first.and_then(|d| d.parse().ok()),
        ..Default::default()
    };
    for (offer, service, n) in uses {
        if let Ok(s) = Service::parse("service", &service) {
            h.uses.insert((offer, s), n as u32);
        }
    }
    Ok(h)
}

/// Charge and discount lines for one service on `date`.
/// What prices a visit's lines: the clinic's lists and offers on its day.
struct Pricer<'a> {
    lists: &'a [PriceList],
    offers: &'a [Offer],
    day: Date,
}

fn priced(
    pr: &Pricer,
    service: Service,
    words: String,
    codes: &[bill::Code],
    h: &mut PatientHistory,
    out: &mut Vec<NewLine>,
) -> Result<String, Error> {
    let (lists, offers, day) = (pr.lists, pr.offers, pr.day);
    let (price, cur) = bill::price_on(lists, service, day)?;
    out.push(NewLine {
        kind: EntryKind::Charge,
        service: service.as_str().into(),
        description: words,
        codes: serde_json::to_string(codes).map_err(|e| Error::Internal(e.to_string()))?,
        minor: price,
        offer_id: None,
    });
    for d in bill::discounts(offers, service, price, &cur, day, h) {
        out.push(NewLine {
            kind: EntryKind::Discount,
            service: service.as_str().into(),
            description: d.words,
            codes: "[]".into(),
            minor: d.minor,
            offer_id: Some(d.offer_id),
        });
    }
    Ok(cur)
}

/// Invoices one visit: an attended visit at its service's price with its
/// codes, the drug given and each rescue medicine; a late cancellation or a
/// no-show at the fee; the offers' savings as lines of their own. A free
/// service with nothing else is not invoiced.
pub async fn invoice_visit(state: &Clinic, c: &Caller, appointment: &str) -> Result<String, Error> {
    invoice_visit_at(state, c, appointment, None, state.now()).await
}

/// [`invoice_visit`] issued at `at` (the demo's month of history); `offer`
/// names an offer the patient asks for: if it does not apply (ended,
/// outside its dates, not a new patient, used up) the answer says why and
/// nothing is invoiced.
pub async fn invoice_visit_at(
    state: &Clinic,
    c: &Caller,
    appointment: &str,
    offer: Option<&str>,
    at: i64,
) -> Result<String, Error> {
    let v = state
        .store
        .visit_for_billing(appointment.trim())
        .await?
        .ok_or(Error::NotFound)?;
    let clinic: ClinicId = v.clinic_id.parse().map_err(|_| Error::NotFound)?;
    if !c.may(Permission::BillCharge, clinic) {
        // Staff of the clinic are told no; anyone else learns nothing.
        return Err(
            if c.may(Permission::BillRead, clinic) || c.may(Permission::PatientRead, clinic) {
                Error::Forbidden
            } else {
                Error::NotFound
            },
        );
    }
    let p = place(state, c, Permission::BillCharge, &v.clinic_id).await?;
    let lists = price_lists_of(state, &v.clinic_id).await?;
    let offers = active_offers(state, &v.clinic_id).await?;
    let mut h = history(state, &v.clinic_id, &v.patient_id).await?;
    let day = p.date_of(v.starts_at);
    let pr = Pricer {
        lists: &lists,
        offers: &offers,
        day,
    };
    let mut lines = vec![];
    let attended = v.status == "completed";
    let currency;
    if attended {
        let service = Service::of_appointment(&v.type_code)
            .ok_or_else(|| Error::Conflict(format!("{} visits are not billed", v.type_name)))?;
        if let Some(id) = offer.map(str::trim).filter(|s| !s.is_empty()) {
            let all = state.store.offers(&v.clinic_id).await?;
            let o = all
                .iter()
                .find(|o| o.id == id)
                .ok_or_else(|| invalid("offer_id", "no such offer at this clinic"))?;
            if !o.active {
                return Err(invalid("offer_id", format!("{} has ended", o.name)));
            }
            let o = offer_of(o)?;
            if let Some(why) = o.refusal(day, &h, service) {
                return Err(invalid("offer_id", why));
            }
            if !o.rules.iter().any(|r| r.service() == service) {
                return Err(invalid(
                    "offer_id",
                    format!(
                        "{} has no rule for {}",
                        o.name,
                        service.label().to_lowercase()
                    ),
                ));
            }
        }
        let facts = match &v.encounter_id {
            Some(e) => state.store.encounter_facts(e).await?,
            None => Default::default(),
        };
        let vf = VisitFacts {
            infusion_minutes: facts.infusion_minutes,
            minutes: (v.ends_at - v.starts_at) / 60_000_000,
            drug: facts.drug.clone(),
        };
        currency = priced(
            &pr,
            service,
            v.type_name.clone(),
            &bill::codes(service, &vf),
            &mut h,
            &mut lines,
        )?;
        for (name, dose) in &facts.medications {
            priced(
                &pr,
                Service::RescueMedication,
                format!("Rescue medication: {name} {dose}"),
                &bill::codes(Service::RescueMedication, &vf),
                &mut h,
                &mut lines,
            )?;
        }
    } else {
        let fee = if v.status == "no_show" {
            Service::NoShowFee
        } else if v.status == "cancelled" && v.late_cancel {
            Service::LateCancelFee
        } else {
            return Err(Error::Conflict(
                "only an attended, late-cancelled or missed visit is invoiced".into(),
            ));
        };
        currency = priced(
            &pr,
            fee,
            format!("{} ({})", fee.label(), v.type_name),
            &[],
            &mut h,
            &mut lines,
        )?;
    }
    let total: i64 = lines
        .iter()
        .map(|l| {
            if l.kind == EntryKind::Charge {
                l.minor
            } else {
                -l.minor
            }
        })
        .sum();
    if total == 0
        && lines
            .iter()
            .all(|l| l.kind != EntryKind::Charge || l.minor == 0)
    {
        return Err(Error::Conflict(format!(
            "{} is free: nothing to invoice",
            v.type_name
        )));
    }
    let by = c.user_id().ok_or(Error::Forbidden)?.to_string();
    let inv = NewInvoice {
        id: new_id(),
        clinic_id: v.clinic_id.clone(),
        patient_id: v.patient_id.clone(),
        appointment_id: Some(v.appointment_id.clone()),
        kind: if attended { "visit" } else { "fee" },
        currency,
        service_date: day.to_string(),
        issued_by: by,
        issued_at: at,
        lines,
        package: None,
        membership: None,
    };
    let ev = patient_event(
        c,
        Action::BillInvoice,
        Permission::BillCharge,
        clinic,
        &v.patient_id,
    );
    state
        .store
        .insert_invoice(&inv, ev)
        .await
        .map_err(Error::from)?;
    Ok(inv.id)
}

/// Sells a package: its invoice (paid like any other) and the package itself.
pub async fn sell_package(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    product: &str,
) -> Result<String, Error> {
    sell_package_at(state, c, patient, product, state.now()).await
}

/// The patient, at a clinic where the caller holds `perm`; any other id,
/// malformed or out of reach, is "not found".
async fn patient_in_reach(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    perm: Permission,
) -> Result<store::patients::PatientRecord, Error> {
    let pid: PatientId = patient.trim().parse().map_err(|_| Error::NotFound)?;
    let clinics = c.require_any(perm)?;
    state
        .store
        .patient(pid, &clinics)
        .await?
        .ok_or(Error::NotFound)
}

/// The patient, at a clinic where the caller charges, and an active product
/// of that clinic; `Ok` also names the clinic as a [`Place`].
async fn patient_product(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    product: &str,
    missing: &str,
) -> Result<(store::patients::PatientRecord, PackageProduct, Place), Error> {
    let rec = patient_in_reach(state, c, patient, Permission::BillCharge).await?;
    let k = state
        .store
        .package_products(&rec.clinic_id.to_string())
        .await?
        .into_iter()
        .find(|k| k.id == product.trim() && k.active)
        .ok_or_else(|| invalid("product_id", missing))?;
    let p = place(state, c, Permission::BillCharge, &rec.clinic_id.to_string()).await?;
    Ok((rec, k, p))
}

/// [`sell_package`] sold at `at` (the demo's history).
pub async fn sell_package_at(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    product: &str,
    at: i64,
) -> Result<String, Error> {
    let (rec, k, p) = patient_product(
        state,
        c,
        patient,
        product,
        "choose a package this clinic sells",
    )
    .await?;
    if k.monthly {
        return Err(invalid(
            "product_id",
            format!("{} renews monthly: start it as a membership", k.name),
        ));
    }
    let today = p.date_of(at);
    let expires = k
        .valid_days
        .and_then(|d| today.checked_add(jiff::Span::new().days(d)).ok())
        .map(|d| d.to_string());
    let by = c.user_id().ok_or(Error::Forbidden)?.to_string();
    let service = Service::parse("service", &k.service)?;
    let inv = NewInvoice {
        id: new_id(),
        clinic_id: k.clinic_id.clone(),
        patient_id: patient.to_string(),
        appointment_id: None,
        kind: "package",
        currency: k.currency.clone(),
        service_date: today.to_string(),
        issued_by: by,
        issued_at: at,
        lines: vec![NewLine {
            kind: EntryKind::Charge,
            service: k.service.clone(),
            description: format!("{}: {} × {}", k.name, k.sessions, service.label()),
            codes: "[]".into(),
            minor: k.price_minor,
            offer_id: None,
        }],
        package: Some(NewPackage {
            id: new_id(),
            product_id: k.id.clone(),
            name: k.name.clone(),
            service: k.service.clone(),
            sessions: k.sessions,
            price_minor: k.price_minor,
            expires_on: expires,
        }),
        membership: None,
    };
    let mut ev = patient_event(
        c,
        Action::BillPackage,
        Permission::BillCharge,
        rec.clinic_id,
        patient,
    );
    ev.detail = Some(format!("sold {}", k.name));
    state.store.insert_invoice(&inv, ev).await?;
    Ok(inv.id)
}

// ---- Memberships --------------------------------------------------------------

/// The invoice billing month `period` (from 0) of a membership begun on
/// `start`: the monthly fee, selling that month's sessions as a package that
/// ends with the month.
#[allow(clippy::too_many_arguments)]
fn membership_invoice(
    m: &Membership,
    start: Date,
    period: i64,
    by: &str,
    at: i64,
    step: MembershipStep,
) -> Result<NewInvoice, Error> {
    let (from, to) = membership::period(start, period)
        .ok_or_else(|| invalid("started_on", "is too far in the future"))?;
    let service = Service::parse("service", &m.service)?;
    Ok(NewInvoice {
        id: new_id(),
        clinic_id: m.clinic_id.clone(),
        patient_id: m.patient_id.clone(),
        appointment_id: None,
        kind: "package",
        currency: m.currency.clone(),
        service_date: from.to_string(),
        issued_by: by.to_string(),
        issued_at: at,
        lines: vec![NewLine {
            kind: EntryKind::Charge,
            service: m.service.clone(),
            description: format!(
                "{}, {} to {}: {} × {}",
                m.product_name,
                from.strftime("%b %-d"),
                to.strftime("%b %-d, %Y"),
                m.sessions,
                service.label()
            ),
            codes: "[]".into(),
            minor: m.price_minor,
            offer_id: None,
        }],
        package: Some(NewPackage {
            id: new_id(),
            product_id: m.product_id.clone(),
            name: format!("{} ({})", m.product_name, from.strftime("%B %Y")),
            service: m.service.clone(),
            sessions: m.sessions,
            price_minor: m.price_minor,
            expires_on: Some(to.to_string()),
        }),
        membership: Some(step),
    })
}

/// Enrols a patient in a membership product; the first month is invoiced now.
/// Returns the invoice id.
pub async fn start_membership(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    product: &str,
) -> Result<String, Error> {
    start_membership_at(state, c, patient, product, state.now()).await
}

/// [`start_membership`] at `at` (the demo's history).
pub async fn start_membership_at(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    product: &str,
    at: i64,
) -> Result<String, Error> {
    const MISSING: &str = "choose a membership this clinic offers";
    let (rec, k, p) = patient_product(state, c, patient, product, MISSING).await?;
    if !k.monthly {
        return Err(invalid("product_id", MISSING));
    }
    let start = p.date_of(at);
    let by = c.user_id().ok_or(Error::Forbidden)?.to_string();
    let m = Membership {
        id: new_id(),
        clinic_id: k.clinic_id.clone(),
        patient_id: patient.to_string(),
        product_id: k.id.clone(),
        product_name: k.name.clone(),
        service: k.service.clone(),
        price_minor: k.price_minor,
        currency: k.currency.clone(),
        sessions: k.sessions,
        started_on: start.to_string(),
        periods: 0,
        status: "active".into(),
        cancelled_on: None,
        cancel_reason: None,
        created_by: by.clone(),
    };
    let step = MembershipStep::Start(NewMembership {
        id: m.id.clone(),
        product_id: k.id.clone(),
        started_on: start.to_string(),
        created_by: by.clone(),
    });
    let inv = membership_invoice(&m, start, 0, &by, at, step)?;
    let mut ev = patient_event(
        c,
        Action::BillPackage,
        Permission::BillCharge,
        rec.clinic_id,
        patient,
    );
    ev.detail = Some(format!("started membership {}", k.name));
    state.store.insert_invoice(&inv, ev).await?;
    Ok(inv.id)
}

/// Bills every running membership whose next month has begun by `now` (in
/// its clinic's zone): one invoice per month, at the product's price then,
/// issued in the name of whoever enrolled the patient. Safe to run from
/// several workers at once: each month is billed once. Returns the invoices
/// made.
pub async fn renew_memberships(state: &Clinic, now: i64) -> Result<usize, Error> {
    let mut made = 0;
    let mut zones: BTreeMap<String, (jiff::tz::TimeZone, String)> = BTreeMap::new();
    for m in state.store.active_memberships().await? {
        if !zones.contains_key(&m.clinic_id) {
            let id: ClinicId = m
                .clinic_id
                .parse()
                .map_err(|_| Error::Internal("stored clinic id".into()))?;
            let k = state.store.clinic(id).await?;
            let tz = jiff::tz::TimeZone::get(&k.settings.time_zone)
                .map_err(|_| Error::Internal("clinic zone".into()))?;
            zones.insert(m.clinic_id.clone(), (tz, k.org_id.to_string()));
        }
        let Some((tz, org)) = zones.get(&m.clinic_id) else {
            continue;
        };
        let today = domain::time::to_timestamp(now).to_zoned(tz.clone()).date();
        let Ok(start) = m.started_on.parse::<Date>() else {
            continue;
        };
        for k in membership::due(start, m.periods, today) {
            let Some((from, _)) = membership::period(start, k) else {
                break;
            };
            // Dated the morning its month begins (or now, if that is earlier).
            let at = from
                .to_datetime(jiff::civil::time(9, 0, 0, 0))
                .to_zoned(tz.clone())
                .map(|z| z.timestamp().as_microsecond())
                .unwrap_or(now)
                .min(now);
            let step = MembershipStep::Renew {
                id: m.id.clone(),
                billed: k,
            };
            let inv = membership_invoice(&m, start, k, &m.created_by, at, step)?;
            let mut ev = NewAuditEvent::new(Action::BillPackage, "system (membership renewal)");
            ev.org_id = Some(org.clone());
            ev.clinic_id = Some(m.clinic_id.clone());
            ev.patient_id = Some(m.patient_id.clone());
            ev.object_type = Some("invoice".into());
            ev.detail = Some(format!("renewed {}, month {}", m.product_name, k + 1));
            match state.store.insert_invoice(&inv, ev).await {
                Ok(_) => made += 1,
                // Billed by another run meanwhile, or cancelled: nothing to do.
                Err(store::StoreError::Domain(domain::DomainError::Conflict(_))) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(made)
}

/// A membership as the account shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MembershipView {
    #[serde(flatten)]
    pub membership: Membership,
    /// The day the next month is billed; none once cancelled.
    pub next_renewal: Option<String>,
    pub price: String,
}

pub async fn memberships(
    state: &Clinic,
    c: &Caller,
    patient: &str,
) -> Result<Vec<MembershipView>, Error> {
    let pid: PatientId = patient.parse().map_err(|_| Error::NotFound)?;
    let clinics = c.require_any(Permission::BillRead)?;
    let rec = state
        .store
        .patient(pid, &clinics)
        .await?
        .ok_or(Error::NotFound)?;
    c.require(Permission::BillRead, rec.clinic_id)?;
    let ms = state.store.memberships_of_patient(patient).await?;
    Ok(ms
        .into_iter()
        .map(|m| {
            let next = (m.status == "active")
                .then(|| m.started_on.parse::<Date>().ok())
                .flatten()
                .and_then(|s| membership::period(s, m.periods))
                .map(|(from, _)| from.to_string());
            MembershipView {
                price: format!("{} a month", fmt_money(m.price_minor, &m.currency)),
                next_renewal: next,
                membership: m,
            }
        })
        .collect())
}

/// Ends a membership at the front desk, with a reason: no further months are
/// billed; the sessions of the month paid for stay usable until it ends.
pub async fn cancel_membership(
    state: &Clinic,
    c: &Caller,
    id: &str,
    reason: &str,
) -> Result<Membership, Error> {
    let m = state
        .store
        .membership(id.trim())
        .await?
        .ok_or(Error::NotFound)?;
    let clinic: ClinicId = m.clinic_id.parse().map_err(|_| Error::NotFound)?;
    if !c.may(Permission::BillRead, clinic) {
        return Err(Error::NotFound);
    }
    c.require(Permission::BillCharge, clinic)?;
    let reason = text("reason", reason, 200, true)?;
    let p = place(state, c, Permission::BillCharge, &m.clinic_id).await?;
    let mut ev = patient_event(
        c,
        Action::BillPackage,
        Permission::BillCharge,
        clinic,
        &m.patient_id,
    );
    ev.object_type = Some("membership".into());
    ev.object_id = Some(m.id.clone());
    ev.detail = Some(format!("cancelled membership {}", m.product_name));
    if !state
        .store
        .cancel_membership(&m.id, &p.today().to_string(), &reason, ev)
        .await?
    {
        return Err(Error::Conflict("this membership has already ended".into()));
    }
    state.store.membership(&m.id).await?.ok_or(Error::NotFound)
}

/// An invoice with everything shown about it.
#[derive(Debug, Clone, Serialize)]
pub struct InvoiceView {
    pub invoice: Invoice,
    pub lines: Vec<InvoiceLine>,
    pub entries: Vec<BillingEntry>,
    pub charged: i64,
    pub discounted: i64,
    pub credited: i64,
    pub paid: i64,
    pub refunded: i64,
    pub balance: i64,
    /// Each payment's id and what can still be refunded of it.
    pub refundable: Vec<(String, i64)>,
}

fn view_of(
    invoice: Invoice,
    lines: Vec<InvoiceLine>,
    entries: Vec<BillingEntry>,
) -> Result<InvoiceView, Error> {
    let (a, pos) = account_of(&lines, &entries, &invoice.currency)?;
    let refundable = entries
        .iter()
        .filter(|e| e.kind == "payment")
        .filter_map(|e| {
            pos.iter()
                .find(|(id, _)| *id == e.id)
                .map(|(id, p)| (id.clone(), a.refundable(*p)))
        })
        .collect();
    Ok(InvoiceView {
        charged: a.charged,
        discounted: a.discounted,
        credited: a.credited,
        paid: a.paid,
        refunded: a.refunded,
        balance: a.balance(),
        refundable,
        invoice,
        lines,
        entries,
    })
}

/// Reads an invoice the caller may see (billing readers of its clinic), audited.
pub async fn invoice(state: &Clinic, c: &Caller, id: &str) -> Result<InvoiceView, Error> {
    let inv = state
        .store
        .invoice(id.trim())
        .await?
        .ok_or(Error::NotFound)?;
    let clinic: ClinicId = inv.clinic_id.parse().map_err(|_| Error::NotFound)?;
    if !c.may(Permission::BillRead, clinic) {
        return Err(Error::NotFound);
    }
    let ids = vec![inv.id.clone()];
    let lines = state.store.invoice_lines(&ids).await?;
    let entries = state.store.billing_entries(&ids).await?;
    let mut ev = patient_event(
        c,
        Action::BillRead,
        Permission::BillRead,
        clinic,
        &inv.patient_id,
    );
    ev.object_type = Some("invoice".into());
    ev.object_id = Some(inv.id.clone());
    state.store.audit(vec![ev]).await?;
    view_of(inv, lines, entries)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    pub method: String,
    /// Blank for a package credit: the covered service's amount is used.
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub package_id: String,
    /// Send the receipt to the patient's e-mail.
    #[serde(default)]
    pub email_receipt: bool,
    /// When it was taken, if not now (the demo's history; never from a request).
    #[serde(skip)]
    pub at: Option<i64>,
}

/// Takes a payment against an invoice.
/// What became of the receipt a payment asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    /// On its way to the patient's e-mail.
    Queued,
    /// Asked for, but the patient has no e-mail address: nothing is sent.
    NoEmail,
    /// Not asked for.
    NotRequested,
}

impl Receipt {
    /// What the desk is told after the payment.
    pub fn said(self) -> &'static str {
        match self {
            Receipt::Queued => "The receipt is on its way to the patient's e-mail.",
            Receipt::NoEmail => {
                "No receipt was sent: the patient has no e-mail address. Print the invoice for them, or add an address."
            }
            Receipt::NotRequested => "No receipt was asked for.",
        }
    }
}

/// Records a payment; says whether a receipt is on its way.
pub async fn pay(
    state: &Clinic,
    c: &Caller,
    invoice_id: &str,
    i: PaymentInput,
) -> Result<Receipt, Error> {
    let v = invoice(state, c, invoice_id).await?;
    let clinic: ClinicId = v.invoice.clinic_id.parse().map_err(|_| Error::NotFound)?;
    c.require(Permission::BillCharge, clinic)?;
    if v.balance <= 0 {
        return Err(Error::Conflict(format!(
            "nothing is owed on invoice {}",
            v.invoice.number
        )));
    }
    let method = Method::parse("method", &i.method)?;
    let reference = text("reference", &i.reference, 80, method.needs_reference())?;
    let (minor, package_id) = if method == Method::PackageCredit {
        let k = state
            .store
            .package(i.package_id.trim())
            .await?
            .filter(|k| k.patient_id == v.invoice.patient_id)
            .ok_or_else(|| invalid("package_id", "choose one of the patient's packages"))?;
        // One session covers the package's service on this invoice, net of its discounts.
        let covered: i64 = v
            .lines
            .iter()
            .filter(|l| l.service == k.service)
            .map(|l| {
                if l.kind == "charge" {
                    l.amount_minor
                } else {
                    -l.amount_minor
                }
            })
            .sum();
        let amount = if i.amount.trim().is_empty() {
            covered.min(v.balance)
        } else {
            bill::parse_amount("amount", &i.amount, &v.invoice.currency)?
        };
        if amount > covered {
            return Err(invalid(
                "amount",
                format!(
                    "one session of {} covers at most {}",
                    k.name,
                    fmt_money(covered, &v.invoice.currency)
                ),
            ));
        }
        (amount, Some(k.id))
    } else {
        (
            bill::parse_amount("amount", &i.amount, &v.invoice.currency)?,
            None,
        )
    };
    let e = NewEntry {
        id: new_id(),
        invoice_id: v.invoice.id.clone(),
        kind: EntryKind::Payment,
        method: Some(method.as_str().into()),
        reference: (!reference.is_empty()).then_some(reference),
        minor,
        currency: v.invoice.currency.clone(),
        refund_of: None,
        package_id,
        reason: None,
        at: i.at.unwrap_or_else(|| state.now()),
        recorded_by: c.user_id().ok_or(Error::Forbidden)?.to_string(),
    };
    let mut ev = patient_event(
        c,
        Action::BillPayment,
        Permission::BillCharge,
        clinic,
        &v.invoice.patient_id,
    );
    ev.object_type = Some("invoice".into());
    ev.object_id = Some(v.invoice.id.clone());
    ev.detail = Some(format!(
        "{} {}",
        method.as_str(),
        fmt_money(minor, &v.invoice.currency)
    ));
    // A receipt goes only where there is an address; the desk is told
    // either way, never left to think one was sent.
    let has_email = if i.email_receipt {
        let pid = v
            .invoice
            .patient_id
            .parse()
            .map_err(|_| Error::Internal("stored patient id is malformed".into()))?;
        state
            .store
            .patient(pid, &[clinic])
            .await?
            .and_then(|p| p.details.email)
            .is_some_and(|e| !e.trim().is_empty())
    } else {
        false
    };
    let (jobs, receipt) = match (i.email_receipt, has_email) {
        (false, _) => (vec![], Receipt::NotRequested),
        (true, false) => (vec![], Receipt::NoEmail),
        (true, true) => (
            crate::jobs::receipt_jobs(&v.invoice.id, &e.id, clinic, state.now()),
            Receipt::Queued,
        ),
    };
    state.store.record_billing_entry(&e, &jobs, ev).await?;
    Ok(receipt)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    pub payment_id: String,
    pub amount: String,
    pub reason: String,
}

/// Returns money from one payment (never more than it still holds).
pub async fn refund(
    state: &Clinic,
    c: &Caller,
    invoice_id: &str,
    i: RefundInput,
) -> Result<(), Error> {
    let v = invoice(state, c, invoice_id).await?;
    let clinic: ClinicId = v.invoice.clinic_id.parse().map_err(|_| Error::NotFound)?;
    c.require(Permission::BillManage, clinic)?;
    let pay = v
        .entries
        .iter()
        .find(|e| e.id == i.payment_id.trim() && e.kind == "payment")
        .ok_or_else(|| invalid("payment_id", "choose a payment of this invoice"))?;
    let minor = bill::parse_amount("amount", &i.amount, &v.invoice.currency)?;
    let reason = text("reason", &i.reason, 500, true)?;
    let e = NewEntry {
        id: new_id(),
        invoice_id: v.invoice.id.clone(),
        kind: EntryKind::Refund,
        method: pay.method.clone(),
        reference: pay.reference.clone(),
        minor,
        currency: v.invoice.currency.clone(),
        refund_of: Some(pay.id.clone()),
        package_id: pay.package_id.clone(),
        reason: Some(reason),
        at: state.now(),
        recorded_by: c.user_id().ok_or(Error::Forbidden)?.to_string(),
    };
    let mut ev = patient_event(
        c,
        Action::BillRefund,
        Permission::BillManage,
        clinic,
        &v.invoice.patient_id,
    );
    ev.object_type = Some("invoice".into());
    ev.object_id = Some(v.invoice.id.clone());
    state.store.record_billing_entry(&e, &[], ev).await?;
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditInput {
    pub amount: String,
    pub reason: String,
}

/// A credit note: lowers what is owed (never below what was paid).
pub async fn credit(
    state: &Clinic,
    c: &Caller,
    invoice_id: &str,
    i: CreditInput,
) -> Result<(), Error> {
    let v = invoice(state, c, invoice_id).await?;
    let clinic: ClinicId = v.invoice.clinic_id.parse().map_err(|_| Error::NotFound)?;
    c.require(Permission::BillManage, clinic)?;
    let minor = bill::parse_amount("amount", &i.amount, &v.invoice.currency)?;
    let reason = text("reason", &i.reason, 500, true)?;
    let e = NewEntry {
        id: new_id(),
        invoice_id: v.invoice.id.clone(),
        kind: EntryKind::Credit,
        method: None,
        reference: None,
        minor,
        currency: v.invoice.currency.clone(),
        refund_of: None,
        package_id: None,
        reason: Some(reason),
        at: state.now(),
        recorded_by: c.user_id().ok_or(Error::Forbidden)?.to_string(),
    };
    let mut ev = patient_event(
        c,
        Action::BillCredit,
        Permission::BillManage,
        clinic,
        &v.invoice.patient_id,
    );
    ev.object_type = Some("invoice".into());
    ev.object_id = Some(v.invoice.id.clone());
    state.store.record_billing_entry(&e, &[], ev).await?;
    Ok(())
}

/// Closes a package under the clinic's policy: the unused sessions at the
/// price per session paid, less the clinic's refund fee, returned against
/// the package's payments (newest first); never more than was paid.
/// Returns the amount refunded and its currency.
pub async fn refund_package(
    state: &Clinic,
    c: &Caller,
    package_id: &str,
    reason: &str,
) -> Result<(i64, String), Error> {
    let k = state
        .store
        .package(package_id.trim())
        .await?
        .ok_or(Error::NotFound)?;
    let clinic: ClinicId = k.clinic_id.parse().map_err(|_| Error::NotFound)?;
    if !c.may(Permission::BillRead, clinic) {
        return Err(Error::NotFound);
    }
    c.require(Permission::BillManage, clinic)?;
    let reason = text("reason", reason, 500, true)?;
    if k.refunded_at.is_some() {
        return Err(Error::Conflict("this package was refunded already".into()));
    }
    let fee = state
        .store
        .billing_settings(&k.clinic_id)
        .await?
        .map(|s| s.refund_fee_minor)
        .unwrap_or(0);
    let due = bill::package_refund(k.price_minor, k.sessions as u32, k.used.max(0) as u32, fee);
    let v = invoice(state, c, &k.invoice_id).await?;
    let mut left = due;
    let mut refunds = vec![];
    let by = c.user_id().ok_or(Error::Forbidden)?.to_string();
    for (pay_id, can) in v.refundable.iter().rev() {
        if left == 0 {
            break;
        }
        let take = left.min(*can);
        if take <= 0 {
            continue;
        }
        let pay = v.entries.iter().find(|e| e.id == *pay_id);
        refunds.push(NewEntry {
            id: new_id(),
            invoice_id: k.invoice_id.clone(),
            kind: EntryKind::Refund,
            method: pay.and_then(|p| p.method.clone()),
            reference: pay.and_then(|p| p.reference.clone()),
            minor: take,
            currency: k.currency.clone(),
            refund_of: Some(pay_id.clone()),
            package_id: Some(k.id.clone()),
            reason: Some(reason.clone()),
            at: state.now(),
            recorded_by: by.clone(),
        });
        left -= take;
    }
    let mut ev = patient_event(
        c,
        Action::BillRefund,
        Permission::BillManage,
        clinic,
        &k.patient_id,
    );
    ev.object_type = Some("package".into());
    ev.object_id = Some(k.id.clone());
    ev.detail = Some(format!(
        "{} of {} unused; refunded {}",
        k.sessions - k.used,
        k.sessions,
        fmt_money(due - left, &k.currency)
    ));
    state
        .store
        .refund_package(&k.id, k.used, &refunds, ev)
        .await?;
    Ok((due - left, k.currency))
}

// ---- A patient's account -----------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct PatientAccount {
    pub clinic_id: String,
    pub invoices: Vec<InvoiceView>,
    pub packages: Vec<Package>,
    pub estimates: Vec<StoredEstimate>,
    pub balance: i64,
    pub currency: String,
    /// Visits that can be invoiced and are not yet.
    pub uninvoiced: Vec<(String, String, String)>,
}

/// A patient's invoices with their lines, entries and balances, newest
/// first. No permission check and no audit: the caller (the account page, the
/// patient's portal) has done both.
pub async fn invoices_of(state: &Clinic, patient: &str) -> Result<Vec<InvoiceView>, Error> {
    let invs = state.store.invoices_of_patient(patient).await?;
    let ids: Vec<String> = invs.iter().map(|i| i.id.clone()).collect();
    let mut lines: BTreeMap<String, Vec<InvoiceLine>> = BTreeMap::new();
    for l in state.store.invoice_lines(&ids).await? {
        lines.entry(l.invoice_id.clone()).or_default().push(l);
    }
    let mut entries: BTreeMap<String, Vec<BillingEntry>> = BTreeMap::new();
    for e in state.store.billing_entries(&ids).await? {
        entries.entry(e.invoice_id.clone()).or_default().push(e);
    }
    invs.into_iter()
        .map(|i| {
            let l = lines.remove(&i.id).unwrap_or_default();
            let e = entries.remove(&i.id).unwrap_or_default();
            view_of(i, l, e)
        })
        .collect()
}

/// A patient's invoices, packages and estimates, audited as one read.
pub async fn account(state: &Clinic, c: &Caller, patient: &str) -> Result<PatientAccount, Error> {
    let rec = patient_in_reach(state, c, patient, Permission::BillRead).await?;
    let p = place(state, c, Permission::BillRead, &rec.clinic_id.to_string()).await?;
    let invoices = invoices_of(state, patient.trim()).await?;
    let currency = state
        .store
        .billing_settings(&rec.clinic_id.to_string())
        .await?
        .map(|s| s.currency)
        .unwrap_or_else(|| "USD".into());
    let balance = invoices
        .iter()
        .filter(|v| v.invoice.currency == currency)
        .map(|v| v.balance)
        .sum();
    // Visits before the clinic's first price list were billed elsewhere.
    let since = price_lists_of(state, &rec.clinic_id.to_string())
        .await?
        .iter()
        .map(|l| l.effective_from)
        .min()
        .map(|d| p.start_of(d))
        .unwrap_or(i64::MAX);
    let uninvoiced = state
        .store
        .visits_to_invoice(&rec.clinic_id.to_string(), since, i64::MAX)
        .await?
        .into_iter()
        .filter(|v| v.patient_id == patient.trim())
        .filter(|v| {
            v.status != "completed"
                || Service::of_appointment(&v.type_code).is_some_and(|s| s != Service::Consultation)
        })
        .map(|v| {
            let what = match v.status.as_str() {
                "no_show" => "missed",
                "cancelled" => "cancelled late",
                _ => "attended",
            };
            (
                v.appointment_id,
                p.when(v.starts_at),
                format!("{} ({what})", v.type_name),
            )
        })
        .collect();
    let packages = state.store.packages_of_patient(patient.trim()).await?;
    let estimates = state.store.estimates_of_patient(patient.trim()).await?;
    let mut ev = patient_event(
        c,
        Action::BillRead,
        Permission::BillRead,
        rec.clinic_id,
        patient.trim(),
    );
    ev.detail = Some("account".into());
    state.store.audit(vec![ev]).await?;
    Ok(PatientAccount {
        clinic_id: rec.clinic_id.to_string(),
        invoices,
        packages,
        estimates,
        balance,
        currency,
        uninvoiced,
    })
}

// ---- Estimates ---------------------------------------------------------------

/// Prices a proposed course for a patient at today's prices and the offers
/// they would get, and keeps it (the patient sees it before consenting).
pub async fn make_estimate(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    i: EstimateInput,
) -> Result<StoredEstimate, Error> {
    let rec = patient_in_reach(state, c, patient, Permission::BillCharge).await?;
    let clinic = rec.clinic_id.to_string();
    let p = place(state, c, Permission::BillCharge, &clinic).await?;
    let lists = price_lists_of(state, &clinic).await?;
    let offers = active_offers(state, &clinic).await?;
    let h = history(state, &clinic, patient.trim()).await?;
    let est = bill::estimate(&i, &lists, &offers, p.today(), &h)?;
    let s = StoredEstimate {
        id: new_id(),
        clinic_id: clinic,
        patient_id: patient.trim().to_string(),
        input: serde_json::to_string(&i).map_err(|e| Error::Internal(e.to_string()))?,
        estimate: serde_json::to_string(&est).map_err(|e| Error::Internal(e.to_string()))?,
        total_minor: est.total,
        currency: est.currency.clone(),
        created_by: c.user_id().ok_or(Error::Forbidden)?.to_string(),
        created_at: state.now(),
    };
    let mut ev = patient_event(
        c,
        Action::BillEstimate,
        Permission::BillCharge,
        rec.clinic_id,
        patient.trim(),
    );
    ev.object_type = Some("estimate".into());
    ev.object_id = Some(s.id.clone());
    state.store.insert_estimate(&s, ev).await?;
    Ok(s)
}

/// A stored estimate read back.
pub fn estimate_of(s: &StoredEstimate) -> Result<(EstimateInput, Estimate), Error> {
    let i = stored("estimate input", &s.input)?;
    let e: EstimateJson = stored("estimate", &s.estimate)?;
    Ok((i, e.into()))
}

/// An estimate as stored (the domain type serializes only).
#[derive(Deserialize)]
struct EstimateJson {
    currency: String,
    lines: Vec<LineJson>,
    list_total: i64,
    savings: Vec<LineJson>,
    total: i64,
}

#[derive(Deserialize)]
struct LineJson {
    words: String,
    quantity: u32,
    unit_minor: i64,
    minor: i64,
}

impl From<EstimateJson> for Estimate {
    fn from(e: EstimateJson) -> Estimate {
        let l = |v: Vec<LineJson>| {
            v.into_iter()
                .map(|l| bill::EstimateLine {
                    words: l.words,
                    quantity: l.quantity,
                    unit_minor: l.unit_minor,
                    minor: l.minor,
                })
                .collect()
        };
        Estimate {
            currency: e.currency,
            lines: l(e.lines),
            list_total: e.list_total,
            savings: l(e.savings),
            total: e.total,
        }
    }
}

// ---- Superbills --------------------------------------------------------------

/// A superbill for a patient's visits in [from, to] (their clinic's
/// invoices of care; fees and packages are not claimable): practice
/// details, patient, dates of service, codes with units and charges, the
/// diagnoses from the assessment, and what was paid.
pub async fn superbill(
    state: &Clinic,
    c: &Caller,
    patient: &str,
    from: &str,
    to: &str,
) -> Result<Vec<u8>, Error> {
    let a = account(state, c, patient).await?;
    let clinic: ClinicId = a.clinic_id.parse().map_err(|_| Error::NotFound)?;
    let from = if from.trim().is_empty() {
        None
    } else {
        Some(date("from", from)?)
    };
    let to = if to.trim().is_empty() {
        None
    } else {
        Some(date("to", to)?)
    };
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(invalid("to", "the period ends before it starts"));
        }
    }
    let settings = state.store.billing_settings(&a.clinic_id).await?.ok_or_else(|| {
        Error::Conflict("the clinic's billing details (NPI, tax id) are not set; an admin sets them under Billing".into())
    })?;
    let pid: PatientId = patient.trim().parse().map_err(|_| Error::NotFound)?;
    let rec = state
        .store
        .patient(pid, &[clinic])
        .await?
        .ok_or(Error::NotFound)?;
    let clinic_row = state.store.clinic(clinic).await?;
    let visits: Vec<&InvoiceView> = a
        .invoices
        .iter()
        .filter(|v| v.invoice.kind == "visit")
        .filter(|v| {
            let d: Option<Date> = v.invoice.service_date.parse().ok();
            d.is_some_and(|d| from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t))
        })
        .collect();
    if visits.is_empty() {
        return Err(invalid("from", "no visits were invoiced in this period"));
    }
    let diagnoses = diagnoses_of(state, pid).await?;
    let mut ev = patient_event(
        c,
        Action::BillPrint,
        Permission::BillRead,
        clinic,
        patient.trim(),
    );
    ev.detail = Some(format!("superbill of {} visits", visits.len()));
    state.store.audit(vec![ev]).await?;
    superbill_pdf(&settings, &clinic_row, &rec, &visits, &diagnoses)
}

/// The diagnoses of the patient's latest clinical assessment.
async fn diagnoses_of(state: &Clinic, pid: PatientId) -> Result<Vec<(String, String)>, Error> {
    let parts = state.store.assessment_parts(pid).await?;
    let Some(latest) = parts
        .iter()
        .filter(|p| p.part == "clinical")
        .max_by_key(|p| p.version)
    else {
        return Ok(vec![]);
    };
    let clinical: domain::assessment::ClinicalPart = stored("assessment part", &latest.data)?;
    // A diagnosis written in words, with no code, has no place on a claim.
    Ok(clinical
        .diagnoses
        .into_iter()
        .filter(|d| !d.code.is_empty())
        .map(|d| (d.code, d.label))
        .collect())
}

fn superbill_pdf(
    s: &BillingSettings,
    clinic: &store::org::Clinic,
    rec: &store::patients::PatientRecord,
    visits: &[&InvoiceView],
    diagnoses: &[(String, String)],
) -> Result<Vec<u8>, Error> {
    use crate::documents::Block;
    let k = &clinic.settings;
    let d = &rec.details;
    let cur = visits
        .first()
        .map(|v| v.invoice.currency.clone())
        .unwrap_or_default();
    let mut b = vec![
        Block::title("Superbill"),
        Block::small("A statement of services for the patient to claim from their insurer out of network. Codes are CPT and HCPCS Level II; diagnoses are ICD-10-CM."),
        Block::heading("Practice"),
        Block::body(&format!(
            "{}\n{}, {}, {} {}\nPhone {}\nNPI {}   Tax id (EIN) {}",
            s.legal_name, k.address_line1, k.city, k.region, k.postal_code, k.phone, s.npi, s.tax_id
        )),
        Block::heading("Patient"),
        Block::body(&format!(
            "{} {}   Date of birth {}   MRN {}\n{}",
            d.given_name,
            d.family_name,
            d.date_of_birth,
            rec.mrn,
            [d.address_line1.clone(), d.city.clone(), d.region.clone(), d.postal_code.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Block::heading("Diagnoses (ICD-10-CM)"),
    ];
    if diagnoses.is_empty() {
        b.push(Block::body("None recorded in the assessment."));
    }
    for (i, (code, label)) in diagnoses.iter().enumerate() {
        b.push(Block::body(&format!(
            "{}. {code}  {label}",
            (b'A' + i as u8) as char
        )));
    }
    b.push(Block::heading("Services"));
    b.push(Block::small(
        "Date of service | Code | Units | NDC | Description | Charge",
    ));
    let mut total_charged = 0;
    let mut total_paid = 0;
    let dx: String = (0..diagnoses.len().min(4))
        .map(|i| (b'A' + i as u8) as char)
        .collect();
    for v in visits {
        for l in v.lines.iter().filter(|l| l.kind == "charge") {
            let codes: Vec<bill::Code> = stored("invoice line codes", &l.codes)?;
            for (i, code) in codes.iter().enumerate() {
                let charge = if i == 0 { l.amount_minor } else { 0 };
                b.push(Block::body(&format!(
                    "{} | {} | {} | {} | {} | {}{}",
                    v.invoice.service_date,
                    code.code,
                    code.units,
                    code.ndc.clone().unwrap_or_else(|| "-".into()),
                    code.words,
                    if i == 0 {
                        fmt_money(charge, &cur)
                    } else {
                        "included".into()
                    },
                    if dx.is_empty() {
                        String::new()
                    } else {
                        format!(" | Dx {dx}")
                    }
                )));
            }
        }
        total_charged += v.charged - v.discounted - v.credited;
        total_paid += v.paid - v.refunded;
    }
    let discounts: i64 = visits.iter().map(|v| v.discounted + v.credited).sum();
    b.push(Block::heading("Totals"));
    b.push(Block::body(&format!(
        "Charges {}   Discounts and credits {}   Net charges {}\nAmount paid {}   Balance due {}",
        fmt_money(total_charged + discounts, &cur),
        fmt_money(-discounts, &cur),
        fmt_money(total_charged, &cur),
        fmt_money(total_paid, &cur),
        fmt_money(total_charged - total_paid, &cur),
    )));
    b.push(Block::small(
        "The patient paid the practice directly. Ketamine for anxiety is off-label; coverage is decided by the insurer.",
    ));
    for bl in &b {
        if let Some(ch) = crate::documents::unprintable(&bl.text) {
            return Err(Error::Conflict(format!(
                "the superbill cannot print {ch:?} (in the patient's or practice's details)"
            )));
        }
    }
    crate::documents::render(
        &b,
        &format!("Superbill, {} {}", s.legal_name, d.family_name),
    )
    .map_err(Error::Internal)
}

// ---- Day close and reports ----------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct DayClose {
    pub date: String,
    pub currency: String,
    /// Method, payments, refunds, net, count of payments.
    pub methods: Vec<(String, i64, i64, i64, i64)>,
    pub total: i64,
    pub credits: i64,
}

/// Takings of a day at a clinic by payment method (refunds netted).
pub async fn day_close(
    state: &Clinic,
    c: &Caller,
    clinic: &str,
    day: &str,
) -> Result<DayClose, Error> {
    let p = place(state, c, Permission::BillRead, clinic).await?;
    let d = if day.trim().is_empty() {
        p.today()
    } else {
        date("date", day)?
    };
    let from = p.start_of(d);
    let to = p.start_of(d.tomorrow().map_err(|_| invalid("date", "out of range"))?);
    let entries = state
        .store
        .billing_entries_of_clinic(&p.id.to_string(), from, to)
        .await?;
    let mut by: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    let mut credits = 0;
    for e in &entries {
        let m = e.method.clone().unwrap_or_default();
        match e.kind.as_str() {
            "payment" => {
                let x = by.entry(m).or_default();
                x.0 += e.amount_minor;
                x.2 += 1;
            }
            "refund" => by.entry(m).or_default().1 += e.amount_minor,
            _ => credits += e.amount_minor,
        }
    }
    let methods: Vec<_> = by
        .into_iter()
        .map(|(m, (pay, refund, n))| {
            let label = Method::parse("m", &m)
                .map(|m| m.label().to_string())
                .unwrap_or(m);
            (label, pay, refund, pay - refund, n)
        })
        .collect();
    let total = methods.iter().map(|m| m.3).sum();
    let currency = entries
        .first()
        .map(|e| e.currency.clone())
        .unwrap_or_else(|| "USD".into());
    let mut ev = event(c, Action::BillRead, Permission::BillRead, p.id);
    ev.detail = Some(format!("day close {d}"));
    state.store.audit(vec![ev]).await?;
    Ok(DayClose {
        date: d.to_string(),
        currency,
        methods,
        total,
        credits,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Reports {
    pub from: String,
    pub to: String,
    pub currency: String,
    pub revenue: Vec<Revenue>,
    /// Offer name, uses, cost.
    pub offers: Vec<(String, i64, i64)>,
    /// Unused sessions across live packages and their value.
    pub package_sessions: i64,
    pub package_liability: i64,
    /// Ageing buckets of what is owed: 0-30, 31-60, 61-90, over 90 days.
    pub ageing: [i64; 4],
    pub outstanding: Vec<(String, String, String, i64, i64)>,
}

/// One service's line in the revenue report. A visit paid from a package
/// was revenue when the package was sold, so what package credit paid is
/// taken off the visit's service: the period's net is then what the clinic
/// earned, counted once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Revenue {
    pub service: String,
    pub count: i64,
    /// At list price.
    pub charged: i64,
    pub discounts: i64,
    pub from_packages: i64,
}

impl Revenue {
    pub fn net(&self) -> i64 {
        self.charged - self.discounts - self.from_packages
    }
}

/// The report's row for a service label, started empty.
fn revenue_row(rows: &mut BTreeMap<String, Revenue>, label: String) -> &mut Revenue {
    rows.entry(label.clone()).or_insert_with(|| Revenue {
        service: label,
        ..Revenue::default()
    })
}

/// Revenue by service, the cost of offers, the outstanding package
/// liability, and receivables by age, for invoices issued in [from, to].
pub async fn reports(
    state: &Clinic,
    c: &Caller,
    clinic: &str,
    from: &str,
    to: &str,
) -> Result<Reports, Error> {
    let p = place(state, c, Permission::BillRead, clinic).await?;
    let today = p.today();
    let to_d = if to.trim().is_empty() {
        today
    } else {
        date("to", to)?
    };
    let from_d = if from.trim().is_empty() {
        to_d.checked_sub(jiff::Span::new().days(30)).unwrap_or(to_d)
    } else {
        date("from", from)?
    };
    if to_d < from_d {
        return Err(invalid("to", "the period ends before it starts"));
    }
    let here = p.id.to_string();
    let start = p.start_of(from_d);
    let end = p.start_of(to_d.tomorrow().map_err(|_| invalid("to", "out of range"))?);
    // Sums and open balances come from the database: a year of invoices is
    // thousands of rows, the report a few dozen.
    let offers: BTreeMap<String, String> = state
        .store
        .offers(&here)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let currency = state
        .store
        .billing_settings(&here)
        .await?
        .map(|s| s.currency)
        .unwrap_or_else(|| "USD".into());
    let mut revenue: BTreeMap<String, Revenue> = BTreeMap::new();
    let label_of = |service: &str| {
        Service::parse("s", service)
            .map(|s| s.label().to_string())
            .unwrap_or_else(|_| service.to_string())
    };
    let mut offer_cost: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (inv_kind, service, kind, offer, n, sum) in
        state.store.billing_line_sums(&here, start, end).await?
    {
        let label = label_of(&service);
        let label = if inv_kind == "package" {
            format!("Packages ({label})")
        } else {
            label
        };
        let r = revenue_row(&mut revenue, label);
        if kind == "charge" {
            r.count += n;
            r.charged += sum;
        } else {
            r.discounts += sum;
            let name = offer
                .as_ref()
                .and_then(|o| offers.get(o))
                .cloned()
                .unwrap_or_else(|| "Other".into());
            let o = offer_cost.entry(name).or_default();
            o.0 += n;
            o.1 += sum;
        }
    }
    for (service, sum) in state
        .store
        .billing_package_credit_sums(&here, start, end)
        .await?
    {
        revenue_row(&mut revenue, label_of(&service)).from_packages += sum;
    }
    let mut ageing = [0i64; 4];
    let mut outstanding = vec![];
    for (id, number, patient, issued_at, balance) in
        state.store.billing_open_invoices(&here).await?
    {
        let age = bill_days(p.date_of(issued_at), today);
        let bucket = match age {
            ..=30 => 0,
            31..=60 => 1,
            61..=90 => 2,
            _ => 3,
        };
        ageing[bucket] += balance;
        outstanding.push((id, number, patient, age, balance));
    }
    outstanding.sort_by_key(|o| std::cmp::Reverse(o.3));
    let mut package_sessions = 0;
    let mut package_liability = 0;
    for k in state.store.packages_of_clinic(&here).await? {
        let expired = k
            .expires_on
            .as_deref()
            .is_some_and(|x| x < today.to_string().as_str());
        if k.refunded_at.is_none() && !expired && k.left() > 0 {
            package_sessions += k.left();
            package_liability += k.price_minor * k.left() / k.sessions.max(1);
        }
    }
    let mut ev = event(c, Action::BillRead, Permission::BillRead, p.id);
    ev.detail = Some(format!("reports {from_d} to {to_d}"));
    state.store.audit(vec![ev]).await?;
    Ok(Reports {
        from: from_d.to_string(),
        to: to_d.to_string(),
        currency,
        revenue: revenue.into_values().collect(),
        offers: offer_cost
            .into_iter()
            .map(|(k, (n, c))| (k, n, c))
            .collect(),
        package_sessions,
        package_liability,
        ageing,
        outstanding,
    })
}

fn bill_days(from: Date, to: Date) -> i64 {
    (to - from).get_days().into()
}

/// Sends the patient a statement of their open invoices by e-mail.
pub async fn send_statement(state: &Clinic, c: &Caller, patient: &str) -> Result<(), Error> {
    let a = account(state, c, patient).await?;
    let clinic: ClinicId = a.clinic_id.parse().map_err(|_| Error::NotFound)?;
    c.require(Permission::BillCharge, clinic)?;
    let mut ev = patient_event(
        c,
        Action::BillPrint,
        Permission::BillCharge,
        clinic,
        patient.trim(),
    );
    ev.detail = Some("statement e-mailed".into());
    let jobs = crate::jobs::statement_jobs(patient.trim(), clinic, state.now());
    state.store.enqueue_jobs(&jobs, ev).await?;
    Ok(())
}

/// A patient's latest good-faith estimate as they read it before signing.
pub struct EstimateBox {
    pub when: String,
    pub lines: Vec<(String, u32, String)>,
    pub savings: Vec<(String, String)>,
    pub total: String,
}

/// The newest estimate of a patient, for the consent pages (the caller has
/// already established who may see the patient: staff with the chart, or
/// the patient through their link).
pub async fn latest_estimate(state: &Clinic, patient: &str) -> Result<Option<EstimateBox>, Error> {
    let Some(s) = state
        .store
        .estimates_of_patient(patient)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let (_, e) = estimate_of(&s)?;
    Ok(Some(EstimateBox {
        when: domain::time::to_timestamp(s.created_at)
            .strftime("%B %-d, %Y")
            .to_string(),
        lines: e
            .lines
            .iter()
            .map(|l| (l.words.clone(), l.quantity, fmt_money(l.minor, &e.currency)))
            .collect(),
        savings: e
            .savings
            .iter()
            .map(|l| (l.words.clone(), fmt_money(-l.minor, &e.currency)))
            .collect(),
        total: fmt_money(e.total, &e.currency),
    }))
}

/// A clinic's billing identity and currency, if set up (not patient data).
pub async fn settings_of(state: &Clinic, p: &Place) -> Result<Option<BillingSettings>, Error> {
    Ok(state.store.billing_settings(&p.id.to_string()).await?)
}

/// A clinic's offers, active or not (its price book, not patient data).
pub async fn offers_of(state: &Clinic, clinic: &str) -> Result<Vec<StoredOffer>, Error> {
    Ok(state.store.offers(clinic).await?)
}

/// A clinic's package and membership products.
pub async fn products_of(state: &Clinic, clinic: &str) -> Result<Vec<PackageProduct>, Error> {
    Ok(state.store.package_products(clinic).await?)
}

/// The visits since `from` that still need an invoice, each with the
/// patient's name, audited when there are any.
pub async fn to_invoice(
    state: &Clinic,
    c: &Caller,
    p: &Place,
    from: i64,
) -> Result<Vec<(store::billing::VisitForBilling, String)>, Error> {
    c.require(Permission::BillRead, p.id)?;
    let here = p.id.to_string();
    let pending: Vec<_> = state
        .store
        .visits_to_invoice(&here, from, i64::MAX)
        .await?
        .into_iter()
        .filter(|v| {
            v.status != "completed"
                || Service::of_appointment(&v.type_code).is_some_and(|s| s != Service::Consultation)
        })
        .collect();
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let mut out = Vec::with_capacity(pending.len());
    for v in pending {
        if !names.contains_key(&v.patient_id) {
            if let Ok(pid) = v.patient_id.parse() {
                if let Some(r) = state.store.patient(pid, &[p.id]).await? {
                    names.insert(
                        v.patient_id.clone(),
                        format!("{} {}", r.details.given_name, r.details.family_name),
                    );
                }
            }
        }
        let name = names.get(&v.patient_id).cloned().unwrap_or_default();
        out.push((v, name));
    }
    if !out.is_empty() {
        let mut ev = c.event(Action::BillRead);
        ev.clinic_id = Some(here);
        ev.detail = Some(format!("visits to invoice: {}", out.len()));
        state.store.audit(vec![ev]).await?;
    }
    Ok(out)
}

/// A clinic's invoices since `from`, newest first, at most `limit`, each
/// with its account (net and balance); audited with the patients listed.
pub async fn recent_invoices(
    state: &Clinic,
    c: &Caller,
    p: &Place,
    from: i64,
    limit: usize,
) -> Result<Vec<(Invoice, domain::billing::Account)>, Error> {
    c.require(Permission::BillRead, p.id)?;
    let here = p.id.to_string();
    let mut invs = state
        .store
        .invoices_of_clinic(&here, from, i64::MAX)
        .await?;
    invs.truncate(limit);
    let ids: Vec<String> = invs.iter().map(|i| i.id.clone()).collect();
    let lines = state.store.invoice_lines(&ids).await?;
    let entries = state.store.billing_entries(&ids).await?;
    let mut out = Vec::with_capacity(invs.len());
    for inv in invs {
        let l: Vec<_> = lines
            .iter()
            .filter(|l| l.invoice_id == inv.id)
            .cloned()
            .collect();
        let e: Vec<_> = entries
            .iter()
            .filter(|e| e.invoice_id == inv.id)
            .cloned()
            .collect();
        let (a, _) = account_of(&l, &e, &inv.currency)?;
        out.push((inv, a));
    }
    if !out.is_empty() {
        let mut patients: Vec<&str> = out.iter().map(|(i, _)| i.patient_id.as_str()).collect();
        patients.sort_unstable();
        patients.dedup();
        let mut ev = c.event(Action::BillRead);
        ev.clinic_id = Some(here);
        ev.detail = Some(format!(
            "recent invoices: {}; patients {}",
            out.len(),
            patients.join(",")
        ));
        state.store.audit(vec![ev]).await?;
    }
    Ok(out)
}

/// A patient's packages and memberships, for a caller who may bill them.
pub async fn packages_of(state: &Clinic, c: &Caller, patient: &str) -> Result<Vec<Package>, Error> {
    patient_in_reach(state, c, patient, Permission::BillRead).await?;
    Ok(state.store.packages_of_patient(patient.trim()).await?)
}

/// The patient behind a billing account, for a caller who may bill them
/// (the account's reading is the audited event).
pub async fn account_holder(
    state: &Clinic,
    c: &Caller,
    patient: &str,
) -> Result<store::patients::PatientRecord, Error> {
    patient_in_reach(state, c, patient, Permission::BillRead).await
}
