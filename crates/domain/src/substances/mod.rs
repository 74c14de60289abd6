//! The Schedule III record (21 CFR 1304): products, lots, a perpetual ledger
//! per location and lot, counts, inventories, and loss or theft cases.
//!
//! Quantities are whole microlitres (`ul`), so no sum ever drifts; the mass is
//! the volume times the product's strength (mg/mL is the same as µg/µL, so
//! `ul * strength` is micrograms). Every movement is one ledger entry with the
//! signed change to the stock of one lot at one location; the balance after it
//! is part of the entry and of its hash, so the balances can always be derived
//! from the ledger and checked against it.

use jiff::civil::{Date, Weekday};
use serde::Serialize;

use crate::audit::FieldHasher;
use crate::FieldError;

/// The largest single movement accepted, in µL (10 L). More is a typing slip.
pub const MAX_MOVEMENT_UL: i64 = 10_000_000;

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Containers received from a supplier (adds stock).
    Receipt,
    /// Drawn from a vial for one dose order (takes stock into a syringe).
    Draw,
    /// Given to the patient out of a draw (no change to stock).
    Administered,
    /// Wasted out of a draw (witnessed, no change to stock) or out of stock.
    Waste,
    /// Sent to another registered location (takes stock).
    TransferOut,
    /// Received from another registered location (adds stock).
    TransferIn,
    /// Broken or spilled (takes stock).
    Breakage,
    /// Returned to a reverse distributor (takes stock).
    Return,
    /// Destroyed on site, DEA Form 41 (takes stock, two witnesses).
    Destruction,
    /// A correction with a reason (either sign).
    Adjustment,
}

impl EntryKind {
    pub const ALL: [EntryKind; 10] = [
        EntryKind::Receipt,
        EntryKind::Draw,
        EntryKind::Administered,
        EntryKind::Waste,
        EntryKind::TransferOut,
        EntryKind::TransferIn,
        EntryKind::Breakage,
        EntryKind::Return,
        EntryKind::Destruction,
        EntryKind::Adjustment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Receipt => "receipt",
            EntryKind::Draw => "draw",
            EntryKind::Administered => "administered",
            EntryKind::Waste => "waste",
            EntryKind::TransferOut => "transfer_out",
            EntryKind::TransferIn => "transfer_in",
            EntryKind::Breakage => "breakage",
            EntryKind::Return => "return",
            EntryKind::Destruction => "destruction",
            EntryKind::Adjustment => "adjustment",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            EntryKind::Receipt => "Receipt",
            EntryKind::Draw => "Draw for a dose",
            EntryKind::Administered => "Administered",
            EntryKind::Waste => "Waste",
            EntryKind::TransferOut => "Transfer out",
            EntryKind::TransferIn => "Transfer in",
            EntryKind::Breakage => "Breakage or spill",
            EntryKind::Return => "Return to reverse distributor",
            EntryKind::Destruction => "On-site destruction (Form 41)",
            EntryKind::Adjustment => "Adjustment",
        }
    }

    pub fn parse(s: &str) -> Result<EntryKind, FieldError> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "kind",
                    format!(
                        "must be one of {}",
                        EntryKind::ALL.map(|k| k.as_str()).join(", ")
                    ),
                )
            })
    }

    /// The sign of the change to stock: +1 adds, -1 takes, 0 leaves it
    /// (amounts out of a draw already left stock when drawn). Waste out of
    /// stock and adjustments carry their own sign (see [`stock_change`]).
    fn sign(self) -> i64 {
        match self {
            EntryKind::Receipt | EntryKind::TransferIn => 1,
            EntryKind::Administered => 0,
            EntryKind::Draw
            | EntryKind::Waste
            | EntryKind::TransferOut
            | EntryKind::Breakage
            | EntryKind::Return
            | EntryKind::Destruction => -1,
            EntryKind::Adjustment => 1,
        }
    }
}

/// The signed change to stock of a movement of `ul` (a positive magnitude,
/// or for an adjustment a signed amount). Waste out of a draw does not touch
/// stock.
pub fn stock_change(kind: EntryKind, ul: i64, out_of_draw: bool) -> i64 {
    if out_of_draw && matches!(kind, EntryKind::Waste | EntryKind::Administered) {
        return 0;
    }
    kind.sign() * ul
}

/// Applies a change to a balance, refusing any that would go below zero.
pub fn apply(balance_ul: i64, change_ul: i64, strength: i64) -> Result<i64, FieldError> {
    let after = balance_ul + change_ul;
    if after < 0 {
        return Err(FieldError::new(
            "quantity",
            format!(
                "only {} ({}) is on hand in this lot here: the movement of {} would make the balance negative",
                fmt_ml(balance_ul),
                fmt_mg(balance_ul, strength),
                fmt_ml(-change_ul)
            ),
        ));
    }
    Ok(after)
}

/// The most that may be drawn for an order of `ordered_ug` micrograms: the
/// order plus 10 % or 5 mg for the syringe's dead space and rounding to the
/// next graduation, whichever is more. Anything above is a wrong volume or a
/// wrong concentration, not an overfill.
pub fn draw_limit_ug(ordered_ug: i64) -> i64 {
    ordered_ug + (ordered_ug / 10).max(5_000)
}

/// What is left to account for in a draw: drawn minus given minus wasted.
pub fn draw_remaining(drawn: i64, administered: i64, wasted: i64) -> i64 {
    drawn - administered - wasted
}

/// Parses a quantity such as `2.5 mL`, `2.5` (mL) or `125 mg` into µL at the
/// product's strength (mg/mL). Refuses other units, more than three decimals
/// of a mL, masses that are not a whole number of µL, zero, negatives and
/// absurd amounts.
pub fn parse_quantity(field: &str, text: &str, strength: i64) -> Result<i64, FieldError> {
    let t = text.trim();
    let bad = |m: String| FieldError::new(field, m);
    if t.is_empty() {
        return Err(bad("give a quantity, such as 2.5 mL or 125 mg".into()));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    let unit_l = unit.to_ascii_lowercase();
    let is_mg = match unit_l.as_str() {
        "" | "ml" => false,
        "mg" => true,
        _ => {
            return Err(bad(format!(
                "the unit must be mL or mg, not \"{unit}\" (a vial's contents are measured by volume or by mass)"
            )))
        }
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    let negative = int.starts_with('-');
    let int = int.trim_start_matches(['-', '+']);
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return Err(bad(format!("\"{t}\" is not a number")));
    }
    if negative {
        return Err(bad(
            "must be more than zero (a correction is an adjustment with a reason)".into(),
        ));
    }
    if frac.len() > 3 || int.len() > 9 {
        return Err(bad(if is_mg {
            "give the mass to at most three decimals of a mg".into()
        } else {
            "give the volume to at most three decimals of a mL (1 µL)".into()
        }));
    }
    let milli: i64 =
        int.parse::<i64>().unwrap_or(0) * 1000 + format!("{frac:0<3}").parse::<i64>().unwrap_or(0);
    let ul = if is_mg {
        // milli is µg; µL = µg / strength.
        if strength <= 0 {
            return Err(bad("the product has no strength to convert mg".into()));
        }
        if milli % strength != 0 {
            return Err(bad(format!(
                "{t} is not a whole number of µL at {strength} mg/mL: give the volume in mL"
            )));
        }
        milli / strength
    } else {
        milli
    };
    if ul == 0 {
        return Err(bad("must be more than zero".into()));
    }
    if ul > MAX_MOVEMENT_UL {
        return Err(bad(format!(
            "{} is more than any one movement of this record ({} at most)",
            fmt_ml(ul),
            fmt_ml(MAX_MOVEMENT_UL)
        )));
    }
    Ok(ul)
}

/// `2.5 mL`, `10 mL`, `0.125 mL`.
pub fn fmt_ml(ul: i64) -> String {
    format!("{} mL", fmt_milli(ul))
}

/// The mass of `ul` at `strength` mg/mL: `125 mg`, `12.5 mg`.
pub fn fmt_mg(ul: i64, strength: i64) -> String {
    format!("{} mg", fmt_milli(ul * strength))
}

/// Thousandths as a plain number: 2500 -> "2.5", 10000 -> "10", -125 -> "-0.125".
pub fn fmt_milli(v: i64) -> String {
    let mut s = String::new();
    write_milli(&mut s, v);
    s
}

/// [`fmt_milli`] appended to `out`, for reports that reuse one buffer.
pub fn write_milli(out: &mut String, v: i64) {
    use std::fmt::Write;
    if v < 0 {
        out.push('-');
    }
    let a = v.unsigned_abs();
    let (i, mut f) = (a / 1000, a % 1000);
    let _ = write!(out, "{i}");
    if f != 0 {
        let mut width = 3;
        while f % 10 == 0 {
            f /= 10;
            width -= 1;
        }
        let _ = write!(out, ".{f:0width$}");
    }
}

/// A National Drug Code in one of the FDA's 10-digit layouts (4-4-2, 5-3-2,
/// 5-4-1) or the 11-digit 5-4-2 billing form.
pub fn check_ndc(s: &str) -> Result<String, FieldError> {
    let t = s.trim();
    let parts: Vec<&str> = t.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && matches!(
            lens.as_slice(),
            [4, 4, 2] | [5, 3, 2] | [5, 4, 1] | [5, 4, 2]
        );
    if ok {
        Ok(t.to_string())
    } else {
        Err(FieldError::new(
            "ndc",
            "must be an NDC with hyphens: 4-4-2, 5-3-2, 5-4-1 or 5-4-2 digits (e.g. 0409-2051-05)",
        ))
    }
}

/// A DEA registration number: two letters and seven digits whose last digit
/// is the check digit (odd positions plus twice the even positions).
pub fn check_dea(field: &str, s: &str) -> Result<String, FieldError> {
    let t = s.trim().to_ascii_uppercase();
    let b = t.as_bytes();
    let shape = b.len() == 9
        && b[0].is_ascii_alphabetic()
        && (b[1].is_ascii_alphabetic() || b[1] == b'9')
        && b[2..].iter().all(|c| c.is_ascii_digit());
    if !shape {
        return Err(FieldError::new(
            field,
            "must be a DEA number: two letters and seven digits (e.g. AB1234563)",
        ));
    }
    let d: Vec<u32> = b[2..].iter().map(|c| (c - b'0') as u32).collect();
    let sum = d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5]);
    if sum % 10 != d[6] {
        return Err(FieldError::new(
            field,
            "is not a valid DEA number (its check digit does not match)",
        ));
    }
    Ok(t)
}

/// The deadlines after a theft or significant loss is discovered: notice to
/// the DEA within one business day (the next day that is neither a weekend
/// nor a US federal holiday as observed), and DEA Form 106 within 45 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LossClock {
    pub notify_by: Date,
    pub form106_by: Date,
}

/// The US federal holidays of `year` as observed: one on a Saturday is
/// kept the Friday before, one on a Sunday the Monday after (5 U.S.C. 6103).
pub fn federal_holidays(year: i16) -> Vec<Date> {
    let day = |m: i8, d: i8| Date::new(year, m, d).ok();
    let nth =
        |m: i8, n: i8, wd: Weekday| day(m, 1).and_then(|f| f.nth_weekday_of_month(n, wd).ok());
    let observed = |d: Date| match d.weekday() {
        Weekday::Saturday => d.yesterday().unwrap_or(d),
        Weekday::Sunday => d.tomorrow().unwrap_or(d),
        _ => d,
    };
    let fixed = [day(1, 1), day(6, 19), day(7, 4), day(11, 11), day(12, 25)];
    let moving = [
        nth(1, 3, Weekday::Monday),    // Martin Luther King Jr. Day
        nth(2, 3, Weekday::Monday),    // Washington's Birthday
        nth(5, -1, Weekday::Monday),   // Memorial Day
        nth(9, 1, Weekday::Monday),    // Labor Day
        nth(10, 2, Weekday::Monday),   // Columbus Day
        nth(11, 4, Weekday::Thursday), // Thanksgiving Day
    ];
    fixed
        .into_iter()
        .flatten()
        .map(observed)
        .chain(moving.into_iter().flatten())
        .collect()
}

/// A weekday that is not a federal holiday (as observed).
pub fn is_business_day(d: Date) -> bool {
    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
        // New Year's Day on a Saturday is observed on December 31.
        && ![d.year(), d.year().saturating_add(1)]
            .iter()
            .any(|y| federal_holidays(*y).contains(&d))
}

pub fn loss_clock(discovered: Date) -> LossClock {
    let mut d = discovered;
    loop {
        d = d.tomorrow().unwrap_or(d);
        if is_business_day(d) {
            break;
        }
    }
    LossClock {
        notify_by: d,
        form106_by: discovered
            .checked_add(jiff::Span::new().days(45))
            .unwrap_or(discovered),
    }
}

/// Whole days from `from` to `to` (negative when `to` is earlier).
pub fn days_until(from: Date, to: Date) -> i64 {
    from.until(to).map(|s| s.get_days() as i64).unwrap_or(0)
}

/// How a discrepancy or loss case ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The stock was there after all (a miscount, a misplaced vial): no entry.
    Found,
    /// A documented loss (spill not recorded, evaporation): an adjustment entry.
    DocumentedLoss,
    /// Theft or significant loss: an adjustment entry and the DEA clocks.
    Theft,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Found => "found",
            Resolution::DocumentedLoss => "documented_loss",
            Resolution::Theft => "theft",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Resolution::Found => "Found (miscount or misplaced)",
            Resolution::DocumentedLoss => "Documented loss",
            Resolution::Theft => "Theft or significant loss (DEA Form 106)",
        }
    }
    pub fn parse(s: &str) -> Result<Resolution, FieldError> {
        match s {
            "found" => Ok(Resolution::Found),
            "documented_loss" => Ok(Resolution::DocumentedLoss),
            "theft" => Ok(Resolution::Theft),
            _ => Err(FieldError::new(
                "resolution",
                "must be one of found, documented_loss, theft",
            )),
        }
    }
}

/// One ledger entry as stored. `seq`, `prev_hash` and `hash` chain it to the
/// one before; `balance_after_ul` is the lot's balance at the location after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub recorded_at: i64,
    pub clinic_id: String,
    pub lot_id: String,
    pub kind: String,
    pub change_ul: i64,
    pub quantity_ul: i64,
    pub balance_after_ul: i64,
    pub draw_id: Option<String>,
    pub dose_order_id: Option<String>,
    pub patient_id: Option<String>,
    pub actor_user_id: String,
    pub witness_user_id: Option<String>,
    pub witness2_user_id: Option<String>,
    pub counterparty: Option<String>,
    pub reason: Option<String>,
    pub reference_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of an entry given the one before it.
pub fn entry_hash(prev_hash: &str, e: &LedgerEntry) -> String {
    let mut h = FieldHasher::default();
    let n = |v: i64| v.to_string();
    h.put(Some(prev_hash));
    h.put(Some(&n(e.seq)));
    h.put(Some(&e.id));
    h.put(Some(&n(e.at)));
    h.put(Some(&n(e.recorded_at)));
    h.put(Some(&e.clinic_id));
    h.put(Some(&e.lot_id));
    h.put(Some(&e.kind));
    h.put(Some(&n(e.change_ul)));
    h.put(Some(&n(e.quantity_ul)));
    h.put(Some(&n(e.balance_after_ul)));
    h.put(e.draw_id.as_deref());
    h.put(e.dose_order_id.as_deref());
    h.put(e.patient_id.as_deref());
    h.put(Some(&e.actor_user_id));
    h.put(e.witness_user_id.as_deref());
    h.put(e.witness2_user_id.as_deref());
    h.put(e.counterparty.as_deref());
    h.put(e.reason.as_deref());
    h.put(e.reference_id.as_deref());
    h.finish()
}

/// The first thing wrong with a ledger read in `seq` order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LedgerBreak {
    /// The stored hash does not match the entry's contents.
    Altered { seq: i64 },
    /// The entry does not point at the one before it.
    Unlinked { seq: i64 },
    /// Sequence numbers skip (an entry removed).
    Gap { after: i64, next: i64 },
    /// The balance after the entry is not the running sum of its lot here.
    Balance {
        seq: i64,
        expected: i64,
        stored: i64,
    },
}

impl std::fmt::Display for LedgerBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerBreak::Altered { seq } => {
                write!(f, "entry {seq} was altered after it was written")
            }
            LedgerBreak::Unlinked { seq } => {
                write!(f, "entry {seq} does not follow the entry before it")
            }
            LedgerBreak::Gap { after, next } => {
                write!(f, "entries between {after} and {next} are missing")
            }
            LedgerBreak::Balance {
                seq,
                expected,
                stored,
            } => write!(
                f,
                "entry {seq} states a balance of {} where the entries before it give {}",
                fmt_ml(*stored),
                fmt_ml(*expected)
            ),
        }
    }
}

/// Walks entries in order from (`seq`, `hash`) with the running balances so
/// far, checking links, hashes and balances. Returns the new tip.
pub fn verify_ledger<'a>(
    prev: (i64, String),
    balances: &mut std::collections::HashMap<(String, String), i64>,
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
) -> Result<(i64, String), LedgerBreak> {
    let (mut last_seq, mut last_hash) = prev;
    for e in entries {
        if e.seq != last_seq + 1 {
            return Err(LedgerBreak::Gap {
                after: last_seq,
                next: e.seq,
            });
        }
        if e.prev_hash != last_hash {
            return Err(LedgerBreak::Unlinked { seq: e.seq });
        }
        if entry_hash(&e.prev_hash, e) != e.hash {
            return Err(LedgerBreak::Altered { seq: e.seq });
        }
        let b = balances
            .entry((e.clinic_id.clone(), e.lot_id.clone()))
            .or_insert(0);
        *b += e.change_ul;
        if *b != e.balance_after_ul || *b < 0 {
            return Err(LedgerBreak::Balance {
                seq: e.seq,
                expected: *b,
                stored: e.balance_after_ul,
            });
        }
        last_seq = e.seq;
        last_hash = e.hash.clone();
    }
    Ok((last_seq, last_hash))
}

pub mod alerts;
mod reconcile;
pub use reconcile::*;

#[cfg(test)]
mod tests;
