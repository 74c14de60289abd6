//! Cash-pay billing's rules, with no I/O: money in whole minor units with a
//! currency (never floating point), the services a clinic prices, the codes a
//! superbill carries for each, price lists with effective dates, offers as
//! rules (waive, fixed price, percent off) with eligibility and stacking,
//! the patient account whose balance is derived from an append-only list of
//! charges, payments, refunds and credit notes, package refunds, and the
//! good-faith estimate of a proposed course.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::Errors;
use crate::{DomainError, FieldError};

pub mod membership;

#[cfg(test)]
mod tests;

/// The currencies a clinic may price in: all have two decimals.
pub const CURRENCIES: [&str; 6] = ["USD", "CAD", "EUR", "GBP", "AUD", "CHF"];
/// The largest amount any one price, payment or refund may carry (10 million).
pub const MAX_MINOR: i64 = 1_000_000_000;

/// Checks a currency code (ISO 4217, one of [`CURRENCIES`]).
pub fn check_currency(field: &str, s: &str) -> Result<String, FieldError> {
    let c = s.trim().to_ascii_uppercase();
    if CURRENCIES.contains(&c.as_str()) {
        Ok(c)
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{:?} is not a currency this clinic can price in (one of {})",
                s.trim(),
                CURRENCIES.join(", ")
            ),
        ))
    }
}

/// The symbol an amount in `currency` may be written with, if any.
fn symbol_of(currency: &str) -> Option<char> {
    match currency.to_ascii_uppercase().as_str() {
        "USD" | "CAD" | "AUD" | "NZD" => Some('$'),
        "EUR" => Some('€'),
        "GBP" => Some('£'),
        _ => None,
    }
}

/// Reads an amount in `currency` such as `275`, `275.00`, `$1,950.50` or
/// `1950.50 USD` into minor units (cents). Only what cannot be misread is
/// taken: commas only between groups of three digits before the point
/// (`1,00` and `1,2,3` are refused, not read as 100 and 123), a symbol or
/// code only of the currency itself (`€1.00` on a dollar invoice is refused).
/// Negative amounts, more than two decimals and amounts over [`MAX_MINOR`]
/// are refused, each with the field's name.
pub fn parse_amount(field: &str, text: &str, currency: &str) -> Result<i64, FieldError> {
    let bad = |m: String| FieldError::new(field, m);
    let raw = text.trim();
    let not_money = || bad(format!("{raw:?} is not an amount of money (e.g. 1,234.56)"));
    if raw.is_empty() {
        return Err(bad("give an amount, such as 275.00".into()));
    }
    if raw.starts_with('-') {
        return Err(bad("must not be negative".into()));
    }
    let code = currency.trim().to_ascii_uppercase();
    // A code before or after: "USD 12", "12 USD".
    let mut t = raw;
    for (pre, post) in [(true, false), (false, true)] {
        let upper = t.to_ascii_uppercase();
        if pre && upper.len() > 3 && upper.as_bytes()[..3].iter().all(u8::is_ascii_alphabetic) {
            if upper[..3] != code {
                return Err(bad(format!("{raw:?} is not in {code}, the currency here")));
            }
            t = t[3..].trim_start();
        } else if post
            && upper.len() > 3
            && upper.as_bytes()[upper.len() - 3..]
                .iter()
                .all(u8::is_ascii_alphabetic)
        {
            if upper[upper.len() - 3..] != code {
                return Err(bad(format!("{raw:?} is not in {code}, the currency here")));
            }
            t = t[..t.len() - 3].trim_end();
        }
    }
    // A symbol before: only the currency's own.
    if let Some(first) = t
        .chars()
        .next()
        .filter(|c| !c.is_ascii_digit() && *c != '.')
    {
        if Some(first) != symbol_of(&code) {
            return Err(bad(format!("{raw:?} is not in {code}, the currency here")));
        }
        t = t[first.len_utf8()..].trim_start();
    }
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    // Thousands separators: groups of exactly three after the first.
    let int: String = if int.contains(',') {
        let groups: Vec<&str> = int.split(',').collect();
        let ok = (1..=3).contains(&groups[0].len())
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| digits(g));
        if !ok {
            return Err(not_money());
        }
        groups.concat()
    } else {
        int.to_string()
    };
    if int.is_empty() && frac.is_empty() || !digits(&int) || !digits(frac) {
        return Err(not_money());
    }
    if frac.len() > 2 {
        return Err(bad("give at most two decimals (whole cents)".into()));
    }
    if int.len() > 8 {
        return Err(bad("is larger than any amount this clinic charges".into()));
    }
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| not_money())?
    };
    let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| not_money())?;
    let v = whole * 100 + cents;
    if v > MAX_MINOR {
        return Err(bad("is larger than any amount this clinic charges".into()));
    }
    Ok(v)
}

/// `$1,950.00`, `-$25.00`, `EUR 12.50`: thousands grouped, two decimals.
pub fn fmt_money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let a = minor.unsigned_abs();
    let whole = (a / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let symbol = match currency {
        "USD" | "CAD" | "AUD" => "$".to_string(),
        other => format!("{other} "),
    };
    format!("{sign}{symbol}{grouped}.{:02}", a % 100)
}

/// What a clinic charges for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Consultation,
    Intake,
    IvInfusion,
    ImInjection,
    Intranasal,
    Integration,
    FollowUp,
    RescueMedication,
    ExtendedRecovery,
    LateCancelFee,
    NoShowFee,
}

impl Service {
    pub const ALL: [Service; 11] = [
        Service::Consultation,
        Service::Intake,
        Service::IvInfusion,
        Service::ImInjection,
        Service::Intranasal,
        Service::Integration,
        Service::FollowUp,
        Service::RescueMedication,
        Service::ExtendedRecovery,
        Service::LateCancelFee,
        Service::NoShowFee,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Consultation => "consultation",
            Service::Intake => "intake",
            Service::IvInfusion => "iv_infusion",
            Service::ImInjection => "im_injection",
            Service::Intranasal => "intranasal",
            Service::Integration => "integration",
            Service::FollowUp => "follow_up",
            Service::RescueMedication => "rescue_medication",
            Service::ExtendedRecovery => "extended_recovery",
            Service::LateCancelFee => "late_cancel_fee",
            Service::NoShowFee => "no_show_fee",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Service::Consultation => "Consultation",
            Service::Intake => "Intake fee",
            Service::IvInfusion => "IV infusion",
            Service::ImInjection => "IM injection",
            Service::Intranasal => "Intranasal dose",
            Service::Integration => "Integration session",
            Service::FollowUp => "Follow-up",
            Service::RescueMedication => "Rescue medication",
            Service::ExtendedRecovery => "Extended recovery",
            Service::LateCancelFee => "Late-cancellation fee",
            Service::NoShowFee => "No-show fee",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Service, FieldError> {
        Service::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    format!(
                        "{:?} is not a service (one of {})",
                        s.trim(),
                        Service::ALL.map(|v| v.as_str()).join(", ")
                    ),
                )
            })
    }

    /// The service an appointment type is billed as (`None`: not billed).
    pub fn of_appointment(type_code: &str) -> Option<Service> {
        Some(match type_code {
            "consultation" | "consultation_video" => Service::Consultation,
            "intake" => Service::Intake,
            "iv_infusion" => Service::IvInfusion,
            "im_injection" => Service::ImInjection,
            "intranasal" => Service::Intranasal,
            "integration" => Service::Integration,
            "follow_up" => Service::FollowUp,
            _ => return None,
        })
    }

    /// A fee rather than care: never on a superbill.
    pub fn is_fee(self) -> bool {
        matches!(self, Service::LateCancelFee | Service::NoShowFee)
    }

    /// A ketamine dose is given (the drug line goes with it).
    pub fn is_dose(self) -> bool {
        matches!(
            self,
            Service::IvInfusion | Service::ImInjection | Service::Intranasal
        )
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What happened in a visit that decides its codes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitFacts {
    /// Minutes from the infusion's start to its stop (IV only).
    pub infusion_minutes: Option<i64>,
    /// The booked face-to-face minutes (psychotherapy codes go by time).
    pub minutes: i64,
    /// The dispensed product's NDC and the mg administered.
    pub drug: Option<(String, f64)>,
}

/// One code of a superbill line: CPT or HCPCS, units, our own short words
/// (CPT descriptors are licensed text and are not reproduced), and the NDC
/// for a drug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    pub code: String,
    pub units: u32,
    pub words: String,
    pub ndc: Option<String>,
}

fn code(c: &str, units: u32, words: &str) -> Code {
    Code {
        code: c.into(),
        units,
        words: words.into(),
        ndc: None,
    }
}

/// The additional hours of an infusion reported with 96366: each hour after
/// the first, once more than 30 minutes of it have run.
pub fn extra_infusion_hours(minutes: i64) -> u32 {
    if minutes <= 90 {
        0
    } else {
        ((minutes - 60 + 29) / 60) as u32
    }
}

/// The psychotherapy code for a session of `minutes` (90832 from 16, 90834
/// from 38, 90837 from 53 minutes).
pub fn psychotherapy_code(minutes: i64) -> Option<&'static str> {
    match minutes {
        ..=15 => None,
        16..=37 => Some("90832"),
        38..=52 => Some("90834"),
        _ => Some("90837"),
    }
}

/// The codes a service is reported with (DOMAIN.md, "Billing codes"). The
/// first code carries the line's charge; the others ride with it.
pub fn codes(service: Service, facts: &VisitFacts) -> Vec<Code> {
    let drug = |v: &mut Vec<Code>| {
        if let Some((ndc, mg)) = &facts.drug {
            v.push(Code {
                code: "J3490".into(),
                units: 1,
                words: format!("Ketamine HCl {} mg (unclassified drug)", fmt_mg(*mg)),
                ndc: Some(ndc.clone()),
            });
        }
    };
    let mut v = vec![];
    match service {
        Service::Consultation => v.push(code("99202", 1, "New patient visit")),
        Service::Intake => v.push(code(
            "90792",
            1,
            "Psychiatric diagnostic evaluation with medical services",
        )),
        Service::IvInfusion => {
            v.push(code("96365", 1, "IV infusion, first hour"));
            let extra = extra_infusion_hours(facts.infusion_minutes.unwrap_or(60));
            if extra > 0 {
                v.push(code("96366", extra, "IV infusion, each additional hour"));
            }
            drug(&mut v);
        }
        Service::ImInjection => {
            v.push(code("96372", 1, "Intramuscular injection"));
            drug(&mut v);
        }
        Service::Intranasal => {
            v.push(code(
                "99213",
                1,
                "Established patient visit with observation",
            ));
            drug(&mut v);
        }
        Service::Integration => {
            if let Some(c) = psychotherapy_code(facts.minutes) {
                v.push(code(c, 1, "Psychotherapy"));
            }
        }
        Service::FollowUp => v.push(code("99214", 1, "Established patient visit")),
        Service::RescueMedication => v.push(code("J3490", 1, "Rescue medication")),
        Service::ExtendedRecovery => v.push(code(
            "99415",
            1,
            "Prolonged clinical staff service, first hour",
        )),
        Service::LateCancelFee | Service::NoShowFee => {}
    }
    v
}

fn fmt_mg(mg: f64) -> String {
    let s = format!("{mg:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

// ---- Price lists -------------------------------------------------------------

/// A clinic's prices from a date on (a later list replaces it from its own date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceList {
    pub effective_from: Date,
    pub currency: String,
    pub prices: BTreeMap<Service, i64>,
}

impl PriceList {
    /// Checks a list as entered: a known currency, no negative price, and a
    /// price for every dose route the clinic offers is up to it.
    pub fn check(&self) -> Result<(), DomainError> {
        let mut e = Errors::new();
        e.check(check_currency("currency", &self.currency));
        for (s, p) in &self.prices {
            if *p < 0 {
                e.add(s.as_str(), "a price must not be negative");
            } else if *p > MAX_MINOR {
                e.add(s.as_str(), "is larger than any amount this clinic charges");
            }
        }
        if self.prices.is_empty() {
            e.add("prices", "give at least one price");
        }
        e.into_result()
    }
}

/// The price of `service` on `date`: from the latest list in effect that day.
pub fn price_on(
    lists: &[PriceList],
    service: Service,
    date: Date,
) -> Result<(i64, String), DomainError> {
    let list = lists
        .iter()
        .filter(|l| l.effective_from <= date)
        .max_by_key(|l| l.effective_from)
        .ok_or_else(|| {
            DomainError::field(
                "prices",
                format!("no price list is in effect on {date}; an admin sets one under Billing"),
            )
        })?;
    let p = list.prices.get(&service).ok_or_else(|| {
        DomainError::field(
            "prices",
            format!(
                "the price list of {} has no price for {}",
                list.effective_from,
                service.label().to_lowercase()
            ),
        )
    })?;
    Ok((*p, list.currency.clone()))
}

// ---- Offers ------------------------------------------------------------------

/// What an offer does to one service's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Rule {
    /// The service is free (e.g. the intake fee waived).
    Waive { service: Service },
    /// The service costs this instead of the list price (never more).
    FixedPrice { service: Service, minor: i64 },
    /// Percent off the list price.
    PercentOff { service: Service, percent: u8 },
}

impl Rule {
    pub fn service(self) -> Service {
        match self {
            Rule::Waive { service }
            | Rule::FixedPrice { service, .. }
            | Rule::PercentOff { service, .. } => service,
        }
    }

    /// The discount on a price (never more than the price).
    pub fn discount(self, price: i64) -> i64 {
        let d = match self {
            Rule::Waive { .. } => price,
            Rule::FixedPrice { minor, .. } => price - minor,
            // Integer percent of whole cents, rounded half up.
            Rule::PercentOff { percent, .. } => (price * i64::from(percent) + 50) / 100,
        };
        d.clamp(0, price.max(0))
    }

    pub fn describe(self, currency: &str) -> String {
        match self {
            Rule::Waive { service } => format!("{} waived", service.label()),
            Rule::FixedPrice { service, minor } => {
                format!("{} at {}", service.label(), fmt_money(minor, currency))
            }
            Rule::PercentOff { service, percent } => {
                format!("{percent} % off {}", service.label().to_lowercase())
            }
        }
    }
}

/// A special price as rules, with who may have it and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: String,
    pub name: String,
    pub rules: Vec<Rule>,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    /// Only for a patient whose first charge at the clinic falls in the offer's dates.
    pub new_patients_only: bool,
    /// At most this many uses per service per patient (e.g. the first 6 infusions).
    pub first_n: Option<u32>,
    /// Applies on top of another offer; otherwise the best single offer wins.
    pub stackable: bool,
}

impl Offer {
    pub fn check(&self) -> Result<(), DomainError> {
        let mut e = Errors::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 120 {
            e.add("name", "give the offer a name of at most 120 characters");
        }
        if self.rules.is_empty() {
            e.add("rules", "an offer needs at least one rule");
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.rules {
            if !seen.insert(r.service()) {
                e.add(
                    "rules",
                    format!("{} has more than one rule", r.service().label()),
                );
            }
            match *r {
                Rule::FixedPrice { minor, .. } if !(0..=MAX_MINOR).contains(&minor) => {
                    e.add("rules", "a fixed price must not be negative")
                }
                Rule::PercentOff { percent, .. } if !(1..=100).contains(&percent) => {
                    e.add("rules", "a percentage must be between 1 and 100")
                }
                _ => {}
            }
        }
        if let Some(to) = self.valid_to {
            if to < self.valid_from {
                e.add(
                    "valid_to",
                    "the offer must end on or after the day it starts",
                );
            }
        }
        if self.first_n == Some(0) {
            e.add(
                "first_n",
                "give a number of uses of at least 1, or leave it empty",
            );
        }
        e.into_result()
    }

    pub fn runs_on(&self, d: Date) -> bool {
        d >= self.valid_from && self.valid_to.is_none_or(|to| d <= to)
    }

    /// Why the offer does not apply to a patient on a date, if it does not.
    pub fn refusal(
        &self,
        date: Date,
        patient: &PatientHistory,
        service: Service,
    ) -> Option<String> {
        if !self.runs_on(date) {
            return Some(match self.valid_to {
                Some(to) => format!(
                    "{} runs from {} to {}, not on {date}",
                    self.name, self.valid_from, to
                ),
                None => format!("{} starts on {}, not before", self.name, self.valid_from),
            });
        }
        if self.new_patients_only {
            let first = patient.first_charge.unwrap_or(date);
            if !self.runs_on(first) {
                return Some(format!(
                    "{} is for new patients, and this patient was first seen on {first}",
                    self.name
                ));
            }
        }
        if let Some(n) = self.first_n {
            let used = patient
                .uses
                .get(&(self.id.clone(), service))
                .copied()
                .unwrap_or(0);
            if used >= n {
                return Some(format!(
                    "{} covers the first {n} of {}, all used",
                    self.name,
                    service.label().to_lowercase()
                ));
            }
        }
        None
    }
}

/// What the offer rules need to know of a patient.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatientHistory {
    /// The date of the patient's first charge at the clinic, if any.
    pub first_charge: Option<Date>,
    /// How often each offer has discounted each service for them.
    pub uses: BTreeMap<(String, Service), u32>,
}

/// One discount an offer gives on a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discount {
    pub offer_id: String,
    pub words: String,
    pub minor: i64,
}

/// The discounts on one service at list price `price` on `date`: the best
/// single non-stackable offer, then every stackable one on what remains.
/// The history is updated with the uses, so a run of lines (an estimate,
/// six infusions) counts `first_n` correctly.
pub fn discounts(
    offers: &[Offer],
    service: Service,
    price: i64,
    currency: &str,
    date: Date,
    patient: &mut PatientHistory,
) -> Vec<Discount> {
    let applicable = |o: &Offer| -> Option<Rule> {
        if o.refusal(date, patient, service).is_some() {
            return None;
        }
        o.rules.iter().copied().find(|r| r.service() == service)
    };
    let mut out = vec![];
    let best = offers
        .iter()
        .filter(|o| !o.stackable)
        .filter_map(|o| applicable(o).map(|r| (o, r, r.discount(price))))
        .filter(|(_, _, d)| *d > 0)
        .max_by(|a, b| a.2.cmp(&b.2).then_with(|| b.0.id.cmp(&a.0.id)));
    let mut remaining = price;
    let mut used = vec![];
    if let Some((o, r, d)) = best {
        remaining -= d;
        out.push(Discount {
            offer_id: o.id.clone(),
            words: format!("{}: {}", o.name, r.describe(currency)),
            minor: d,
        });
        used.push(o.id.clone());
    }
    for o in offers.iter().filter(|o| o.stackable) {
        if let Some(r) = applicable(o) {
            let d = r.discount(remaining);
            if d > 0 {
                remaining -= d;
                out.push(Discount {
                    offer_id: o.id.clone(),
                    words: format!("{}: {}", o.name, r.describe(currency)),
                    minor: d,
                });
                used.push(o.id.clone());
            }
        }
    }
    if patient.first_charge.is_none() {
        patient.first_charge = Some(date);
    }
    for id in used {
        *patient.uses.entry((id, service)).or_default() += 1;
    }
    out
}

// ---- The account -------------------------------------------------------------

/// What moves a patient's balance. Charges and discounts are an invoice's
/// lines; the rest are entries against an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Charge,
    Discount,
    Payment,
    Refund,
    Credit,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Charge => "charge",
            EntryKind::Discount => "discount",
            EntryKind::Payment => "payment",
            EntryKind::Refund => "refund",
            EntryKind::Credit => "credit",
        }
    }
}

/// How a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Cash,
    /// A card, by the terminal's reference (no card number is kept).
    Card,
    /// A session of a prepaid package.
    PackageCredit,
    /// A bank transfer or check, by its reference.
    Transfer,
}

impl Method {
    pub const ALL: [Method; 4] = [
        Method::Cash,
        Method::Card,
        Method::PackageCredit,
        Method::Transfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Cash => "cash",
            Method::Card => "card",
            Method::PackageCredit => "package_credit",
            Method::Transfer => "transfer",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Method::Cash => "Cash",
            Method::Card => "Card",
            Method::PackageCredit => "Package credit",
            Method::Transfer => "Transfer or check",
        }
    }
    pub fn parse(field: &str, s: &str) -> Result<Method, FieldError> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    format!(
                        "{:?} is not a payment method (one of {})",
                        s.trim(),
                        Method::ALL.map(|m| m.as_str()).join(", ")
                    ),
                )
            })
    }
    /// Card and transfer payments carry the external reference.
    pub fn needs_reference(self) -> bool {
        matches!(self, Method::Card | Method::Transfer)
    }
}

/// One movement of an invoice's balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Always more than zero; the kind gives the direction.
    pub minor: i64,
    pub currency: String,
    /// For a refund: the payment it returns money from.
    pub refund_of: Option<usize>,
}

/// An invoice's running totals, rebuilt from its entries in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub currency: Option<String>,
    pub charged: i64,
    pub discounted: i64,
    pub paid: i64,
    pub refunded: i64,
    pub credited: i64,
    /// Each payment's amount and what has been refunded of it, by position.
    payments: BTreeMap<usize, (i64, i64)>,
    count: usize,
}

impl Account {
    /// What the patient still owes (negative: the clinic owes them).
    pub fn balance(&self) -> i64 {
        self.charged - self.discounted - self.credited - self.paid + self.refunded
    }

    /// The net of the invoice after discounts and credit notes.
    pub fn net(&self) -> i64 {
        self.charged - self.discounted - self.credited
    }

    /// What is left to refund of the payment at `pos`.
    pub fn refundable(&self, pos: usize) -> i64 {
        self.payments.get(&pos).map(|(p, r)| p - r).unwrap_or(0)
    }

    /// Takes one entry, or refuses it with the reason (nothing changes then).
    /// Returns the entry's position, the handle a refund names.
    pub fn apply(&mut self, e: &Entry) -> Result<usize, DomainError> {
        let amount = "amount";
        if e.minor <= 0 {
            return Err(DomainError::field(amount, "must be more than zero"));
        }
        if e.minor > MAX_MINOR {
            return Err(DomainError::field(
                amount,
                "is larger than any amount this clinic charges",
            ));
        }
        match &self.currency {
            Some(c) if *c != e.currency => {
                return Err(DomainError::field(
                    "currency",
                    format!(
                        "this invoice is in {c}; an amount in {} cannot be mixed into it",
                        e.currency
                    ),
                ))
            }
            _ => {}
        }
        match e.kind {
            EntryKind::Charge => self.charged += e.minor,
            EntryKind::Discount => {
                if e.minor > self.balance() {
                    return Err(DomainError::field(
                        amount,
                        "a discount cannot exceed what is owed",
                    ));
                }
                self.discounted += e.minor;
            }
            EntryKind::Payment => {
                if e.minor > self.balance() {
                    return Err(DomainError::field(
                        amount,
                        format!(
                            "is more than the {} still owed",
                            fmt_money(self.balance().max(0), &e.currency)
                        ),
                    ));
                }
                self.paid += e.minor;
                self.payments.insert(self.count, (e.minor, 0));
            }
            EntryKind::Refund => {
                let pos = e.refund_of.ok_or_else(|| {
                    DomainError::field("payment", "a refund names the payment it returns")
                })?;
                let (p, r) = self.payments.get(&pos).copied().ok_or_else(|| {
                    DomainError::field("payment", "no such payment on this invoice")
                })?;
                if e.minor > p - r {
                    return Err(DomainError::field(
                        amount,
                        format!(
                            "is more than the {} paid and not yet refunded",
                            fmt_money(p - r, &e.currency)
                        ),
                    ));
                }
                self.payments.insert(pos, (p, r + e.minor));
                self.refunded += e.minor;
            }
            EntryKind::Credit => {
                if e.minor > self.net() - self.paid + self.refunded {
                    return Err(DomainError::field(
                        amount,
                        format!(
                            "a credit note cannot exceed the {} still owed (refund a payment instead)",
                            fmt_money((self.net() - self.paid + self.refunded).max(0), &e.currency)
                        ),
                    ));
                }
                self.credited += e.minor;
            }
        }
        if self.currency.is_none() {
            self.currency = Some(e.currency.clone());
        }
        let pos = self.count;
        self.count += 1;
        Ok(pos)
    }
}

// ---- Packages ----------------------------------------------------------------

/// What an unused part of a package returns under the clinic's policy: the
/// sessions left at the price per session actually paid, less a fee, never
/// below zero or above what was paid.
pub fn package_refund(price: i64, sessions: u32, used: u32, fee: i64) -> i64 {
    if sessions == 0 || used >= sessions {
        return 0;
    }
    let left = i64::from(sessions - used);
    // Whole cents, rounded down: the clinic never returns more than was paid.
    let value = price * left / i64::from(sessions);
    (value - fee).clamp(0, price)
}

// ---- Estimates ---------------------------------------------------------------

/// A proposed course: an induction at one route, then maintenance visits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateInput {
    pub service: Service,
    /// Induction doses (0 when the estimate is maintenance only).
    #[serde(default)]
    pub induction: u32,
    /// Weeks between maintenance doses (0: no maintenance).
    #[serde(default)]
    pub every_weeks: u32,
    /// Months of maintenance.
    #[serde(default)]
    pub months: u32,
    /// Integration sessions across the course.
    #[serde(default)]
    pub integration: u32,
    /// Include the intake fee.
    #[serde(default)]
    pub intake: bool,
}

impl EstimateInput {
    pub fn check(&self) -> Result<(), DomainError> {
        let mut e = Errors::new();
        if !self.service.is_dose() {
            e.add(
                "service",
                "choose a dose route: IV infusion, IM injection or intranasal",
            );
        }
        if self.induction > 52 {
            e.add("induction", "must be between 0 and 52 doses");
        }
        if self.every_weeks > 26 {
            e.add(
                "every_weeks",
                "must be between 1 and 26 weeks, or 0 for no maintenance",
            );
        }
        if self.months > 36 {
            e.add("months", "must be between 0 and 36 months");
        }
        if self.every_weeks > 0 && self.months == 0 {
            e.add("months", "give how many months of maintenance");
        }
        if self.integration > 104 {
            e.add("integration", "must be at most 104 sessions");
        }
        if self.induction == 0 && self.maintenance_doses() == 0 {
            e.add("induction", "an estimate needs at least one dose");
        }
        e.into_result()
    }

    /// Maintenance doses: one every `every_weeks` across `months` months
    /// (a year of every two weeks is 26).
    pub fn maintenance_doses(&self) -> u32 {
        if self.every_weeks == 0 {
            return 0;
        }
        // Days in the period over days between doses, whole doses only.
        let days = u64::from(self.months) * 36525 / 1200;
        (days / (u64::from(self.every_weeks) * 7)) as u32
    }
}

/// One line of an estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EstimateLine {
    pub words: String,
    pub quantity: u32,
    pub unit_minor: i64,
    pub minor: i64,
}

/// A good-faith estimate: lines at list price, the offers' savings, the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    pub currency: String,
    pub lines: Vec<EstimateLine>,
    pub list_total: i64,
    pub savings: Vec<EstimateLine>,
    pub total: i64,
}

/// Prices a proposed course on `date` with the offers the patient would get.
pub fn estimate(
    input: &EstimateInput,
    lists: &[PriceList],
    offers: &[Offer],
    date: Date,
    patient: &PatientHistory,
) -> Result<Estimate, DomainError> {
    input.check()?;
    let mut history = patient.clone();
    let mut lines = vec![];
    let mut saved: BTreeMap<String, (u32, i64)> = BTreeMap::new();
    let mut currency = String::new();
    let mut add = |service: Service,
                   n: u32,
                   words: String,
                   history: &mut PatientHistory|
     -> Result<(), DomainError> {
        if n == 0 {
            return Ok(());
        }
        let (unit, cur) = price_on(lists, service, date)?;
        currency = cur.clone();
        for _ in 0..n {
            for d in discounts(offers, service, unit, &cur, date, history) {
                let s = saved.entry(d.words).or_default();
                s.0 += 1;
                s.1 += d.minor;
            }
        }
        lines.push(EstimateLine {
            words,
            quantity: n,
            unit_minor: unit,
            minor: unit * i64::from(n),
        });
        Ok(())
    };
    if input.intake {
        add(
            Service::Intake,
            1,
            Service::Intake.label().into(),
            &mut history,
        )?;
    }
    add(
        input.service,
        input.induction,
        format!("{}, induction", input.service.label()),
        &mut history,
    )?;
    add(
        input.service,
        input.maintenance_doses(),
        format!(
            "{}, maintenance every {} weeks for {} months",
            input.service.label(),
            input.every_weeks,
            input.months
        ),
        &mut history,
    )?;
    add(
        Service::Integration,
        input.integration,
        Service::Integration.label().into(),
        &mut history,
    )?;
    let list_total: i64 = lines.iter().map(|l| l.minor).sum();
    let savings: Vec<EstimateLine> = saved
        .into_iter()
        .map(|(words, (n, minor))| EstimateLine {
            words,
            quantity: n,
            unit_minor: minor / i64::from(n.max(1)),
            minor,
        })
        .collect();
    let total = list_total - savings.iter().map(|s| s.minor).sum::<i64>();
    Ok(Estimate {
        currency,
        lines,
        list_total,
        savings,
        total,
    })
}

/// A National Provider Identifier: ten digits whose last is the Luhn check
/// digit over the prefix 80840 and the first nine.
pub fn check_npi(s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    let bad = |m: &str| FieldError::new("npi", m);
    if t.len() != 10 || !t.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad("an NPI is ten digits"));
    }
    let digits: Vec<u32> = format!("80840{}", &t[..9])
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let v = if i % 2 == 0 { d * 2 } else { *d };
        sum += if v > 9 { v - 9 } else { v };
    }
    let check = (10 - sum % 10) % 10;
    if t.chars().last().and_then(|c| c.to_digit(10)) != Some(check) {
        return Err(bad(
            "this NPI's check digit is wrong; check it against the NPPES record",
        ));
    }
    Ok(t.to_string())
}

/// An employer identification number, `12-3456789`.
pub fn check_tax_id(s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    let ok = t.len() == 10
        && t.chars()
            .enumerate()
            .all(|(i, c)| if i == 2 { c == '-' } else { c.is_ascii_digit() });
    if ok {
        Ok(t.to_string())
    } else {
        Err(FieldError::new(
            "tax_id",
            "write the tax id (EIN) as 12-3456789",
        ))
    }
}
