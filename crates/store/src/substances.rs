//! The Schedule III record's storage. Every movement goes through
//! [`cs_append_in_tx!`]: it locks the ledger's head, reads the lot's balance at
//! the location, refuses a negative result, writes the chained entry, and
//! keeps the balance and the draw it belongs to in the same transaction, so
//! the ledger, the balances and the audit trail commit or fail together.

use std::collections::HashMap;

use domain::audit::GENESIS;
use domain::substances::{verify_ledger, EntryKind, LedgerBreak, LedgerEntry};

use crate::audit::NewAuditEvent;
use crate::{append_in_tx, is_unique_violation, on_pool, Result, Store, StoreError};

fn conflict(m: impl Into<String>) -> StoreError {
    StoreError::Domain(domain::DomainError::Conflict(m.into()))
}

fn invalid(field: &str, m: impl Into<String>) -> StoreError {
    StoreError::Domain(domain::DomainError::field(field, m))
}

/// One movement to append. `change_ul` is the signed change to the lot's
/// stock here (see `domain::substances::stock_change`).
#[derive(Debug, Clone)]
pub struct Movement {
    pub id: String,
    pub at: i64,
    pub clinic_id: String,
    pub lot_id: String,
    pub kind: EntryKind,
    pub quantity_ul: i64,
    pub change_ul: i64,
    /// The product's strength, for the words of a refusal.
    pub strength: i64,
    /// For a draw, its own id; for what is given or wasted out of a draw, that draw.
    pub draw_id: Option<String>,
    pub dose_order_id: Option<String>,
    pub patient_id: Option<String>,
    pub actor_user_id: String,
    pub witness_user_id: Option<String>,
    pub witness2_user_id: Option<String>,
    /// JSON: supplier, distributor or other location, invoice, containers.
    pub counterparty: Option<String>,
    pub reason: Option<String>,
    /// A case, count or transfer this entry belongs to.
    pub reference_id: Option<String>,
    /// Where a receipt is put away.
    pub storage_id: Option<String>,
}

impl Movement {
    /// `quantity_ul` of a lot at a location, by `actor`, at `at`, with the
    /// change to stock its kind makes (out of stock, not out of a draw);
    /// links, witnesses, counterparty and reason are set on the result.
    pub fn new(
        kind: EntryKind,
        clinic_id: &str,
        lot_id: &str,
        at: i64,
        quantity_ul: i64,
        strength: i64,
        actor: &str,
    ) -> Movement {
        Movement {
            id: uuid::Uuid::now_v7().to_string(),
            at,
            clinic_id: clinic_id.to_string(),
            lot_id: lot_id.to_string(),
            kind,
            quantity_ul,
            change_ul: domain::substances::stock_change(kind, quantity_ul, false),
            strength,
            draw_id: None,
            dose_order_id: None,
            patient_id: None,
            actor_user_id: actor.to_string(),
            witness_user_id: None,
            witness2_user_id: None,
            counterparty: None,
            reason: None,
            reference_id: None,
            storage_id: None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub ndc: String,
    pub form: String,
    pub strength_mg_per_ml: i64,
    pub container_ul: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Lot {
    pub id: String,
    pub product_id: String,
    pub lot_number: String,
    pub expires_on: String,
    pub product_name: String,
    pub ndc: String,
    pub strength_mg_per_ml: i64,
    pub container_ul: i64,
    pub org_id: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Balance {
    pub clinic_id: String,
    pub lot_id: String,
    pub lot_number: String,
    pub expires_on: String,
    pub product_name: String,
    pub ndc: String,
    pub strength_mg_per_ml: i64,
    pub container_ul: i64,
    pub balance_ul: i64,
    pub storage: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Registration {
    pub clinic_id: String,
    pub dea_number: String,
    pub expires_on: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Storage {
    pub id: String,
    pub clinic_id: String,
    pub name: String,
}

/// A ledger entry with the names a report shows.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub seq: i64,
    pub id: String,
    pub at: i64,
    pub clinic_id: String,
    pub lot_id: String,
    pub kind: String,
    pub change_ul: i64,
    pub quantity_ul: i64,
    pub balance_after_ul: i64,
    pub draw_id: Option<String>,
    pub dose_order_id: Option<String>,
    pub patient_id: Option<String>,
    pub counterparty: Option<String>,
    pub reason: Option<String>,
    pub reference_id: Option<String>,
    pub lot_number: String,
    pub product_name: String,
    pub ndc: String,
    pub strength_mg_per_ml: i64,
    pub actor: String,
    pub witness: Option<String>,
    pub witness2: Option<String>,
    pub patient_name: Option<String>,
    pub patient_address: Option<String>,
}

/// A ledger row with its names, borrowed: what a long report writes from,
/// so that on SQLite it can be written straight from the cursor.
#[derive(Debug, Clone, Copy)]
pub struct LedgerRowRef<'a> {
    pub seq: i64,
    pub at: i64,
    pub kind: &'a str,
    pub change_ul: i64,
    pub quantity_ul: i64,
    pub balance_after_ul: i64,
    pub dose_order_id: Option<&'a str>,
    pub counterparty: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub lot_number: &'a str,
    pub product_name: &'a str,
    pub ndc: &'a str,
    pub strength_mg_per_ml: i64,
    pub actor: &'a str,
    pub witness: Option<&'a str>,
    pub witness2: Option<&'a str>,
    pub patient_id: Option<&'a str>,
    pub patient_name: Option<&'a str>,
    pub patient_address: Option<&'a str>,
}

impl LedgerRow {
    pub fn as_ref(&self) -> LedgerRowRef<'_> {
        LedgerRowRef {
            seq: self.seq,
            at: self.at,
            kind: &self.kind,
            change_ul: self.change_ul,
            quantity_ul: self.quantity_ul,
            balance_after_ul: self.balance_after_ul,
            dose_order_id: self.dose_order_id.as_deref(),
            counterparty: self.counterparty.as_deref(),
            reason: self.reason.as_deref(),
            lot_number: &self.lot_number,
            product_name: &self.product_name,
            ndc: &self.ndc,
            strength_mg_per_ml: self.strength_mg_per_ml,
            actor: &self.actor,
            witness: self.witness.as_deref(),
            witness2: self.witness2.as_deref(),
            patient_id: self.patient_id.as_deref(),
            patient_name: self.patient_name.as_deref(),
            patient_address: self.patient_address.as_deref(),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Draw {
    pub id: String,
    pub clinic_id: String,
    pub lot_id: String,
    pub lot_number: String,
    pub strength_mg_per_ml: i64,
    pub dose_order_id: String,
    pub encounter_id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub drawn_ul: i64,
    pub administered_ul: i64,
    pub wasted_ul: i64,
    pub drawn_by: String,
    pub drawn_at: i64,
    pub closed_at: Option<i64>,
}

impl Draw {
    pub fn remaining_ul(&self) -> i64 {
        domain::substances::draw_remaining(self.drawn_ul, self.administered_ul, self.wasted_ul)
    }
}

/// One lot's entries of one kind in a period, summed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReconRow {
    pub lot_id: String,
    pub kind: String,
    pub from_draw: i64,
    pub change_ul: i64,
    pub quantity_ul: i64,
    pub entries: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Count {
    pub id: String,
    pub clinic_id: String,
    pub counted_at: i64,
    pub counted_by: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CountLine {
    pub count_id: String,
    pub lot_id: String,
    pub lot_number: String,
    pub product_name: String,
    pub strength_mg_per_ml: i64,
    pub expected_ul: i64,
    pub counted_ul: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Inventory {
    pub id: String,
    pub clinic_id: String,
    pub kind: String,
    pub taken_on: String,
    pub business: String,
    pub taken_by: String,
    pub taken_at: i64,
    pub lines: String,
    pub sha256: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Case {
    pub id: String,
    pub clinic_id: String,
    pub kind: String,
    pub status: String,
    pub opened_by: String,
    pub opened_at: i64,
    pub discovered_on: String,
    pub count_id: Option<String>,
    pub lot_id: Option<String>,
    pub lot_number: Option<String>,
    pub strength_mg_per_ml: Option<i64>,
    pub difference_ul: i64,
    pub description: String,
    pub resolution: Option<String>,
    pub resolution_note: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub dea_notified_on: Option<String>,
    pub form106_filed_on: Option<String>,
    pub form106: Option<String>,
}

/// A case to open with a count or on its own.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub id: String,
    pub clinic_id: String,
    pub kind: &'static str,
    pub opened_by: String,
    pub opened_at: i64,
    pub discovered_on: String,
    pub lot_id: Option<String>,
    pub difference_ul: i64,
    pub description: String,
}

/// What a case's resolution writes.
#[derive(Debug, Clone)]
pub struct CaseResolution {
    pub resolution: &'static str,
    pub note: String,
    pub by: String,
    pub at: i64,
    /// The adjustment a loss or theft writes to the ledger.
    pub adjustment: Option<Movement>,
    /// A theft or significant loss becomes a loss case with the DEA clocks.
    pub kind: Option<&'static str>,
}

/// Whether the ledger, its chain and the balances agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerCheck {
    Intact {
        entries: i64,
    },
    Broken(LedgerBreak),
    /// The chain is whole but a stored balance differs from its ledger.
    BalanceDiffers {
        clinic_id: String,
        lot_id: String,
        ledger_ul: i64,
        stored_ul: i64,
    },
    /// The head row does not name the last entry.
    HeadDiffers,
}

impl std::fmt::Display for LedgerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use domain::substances::fmt_ml;
        match self {
            LedgerCheck::Intact { entries } => write!(
                f,
                "controlled-substance ledger intact: {entries} entries verified, every balance equals its ledger"
            ),
            LedgerCheck::Broken(b) => write!(f, "CONTROLLED-SUBSTANCE LEDGER BROKEN: {b}"),
            LedgerCheck::BalanceDiffers {
                clinic_id,
                lot_id,
                ledger_ul,
                stored_ul,
            } => write!(
                f,
                "CONTROLLED-SUBSTANCE LEDGER BROKEN: the balance of lot {lot_id} at {clinic_id} is {} where the ledger gives {}",
                fmt_ml(*stored_ul),
                fmt_ml(*ledger_ul)
            ),
            LedgerCheck::HeadDiffers => write!(
                f,
                "CONTROLLED-SUBSTANCE LEDGER BROKEN: the head does not name the last entry (entries removed from the end)"
            ),
        }
    }
}

const LEDGER_COLUMNS: &str = "seq, id, at, recorded_at, clinic_id, lot_id, kind, change_ul, quantity_ul, \
     balance_after_ul, draw_id, dose_order_id, patient_id, actor_user_id, witness_user_id, witness2_user_id, \
     counterparty, reason, reference_id, prev_hash, hash";

/// The ledger's own columns a report reads; names come from small lookups
/// (lots, staff) and one query for the patients in the rows, so a long report
/// costs one index range scan rather than six joins per row.
const LEDGER_READ: &str = "SELECT l.seq, l.id, l.at, l.clinic_id, l.lot_id, l.kind, l.change_ul, l.quantity_ul, \
     l.balance_after_ul, l.draw_id, l.dose_order_id, l.patient_id, l.actor_user_id, l.witness_user_id, \
     l.witness2_user_id, l.counterparty, l.reason, l.reference_id FROM cs_ledger l";

/// Every lot's and every user's names (both small tables), patients left empty.
fn staff_and_lot_names(c: &rusqlite::Connection) -> rusqlite::Result<Names> {
    let mut names = Names::default();
    let mut st = c.prepare_cached(LOT_NAMES)?;
    for l in st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })? {
        let l: LotName = l?;
        names.lots.insert(l.0.clone(), l);
    }
    let mut st = c.prepare_cached(USER_NAMES)?;
    for u in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
        let (id, name): (String, String) = u?;
        names.users.insert(id, name);
    }
    Ok(names)
}

/// Reads ledger rows on SQLite with rusqlite, with the names they need: one
/// connection for the whole read, every row decoded on this thread (through
/// sqlx each row, the patients' included, crosses threads one by one).
fn read_ledger_sqlite(
    c: &rusqlite::Connection,
    sql: &str,
    args: Vec<rusqlite::types::Value>,
) -> rusqlite::Result<Vec<LedgerRow>> {
    let mut st = c.prepare_cached(sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(LedgerLean {
            seq: r.get(0)?,
            id: r.get(1)?,
            at: r.get(2)?,
            clinic_id: r.get(3)?,
            lot_id: r.get(4)?,
            kind: r.get(5)?,
            change_ul: r.get(6)?,
            quantity_ul: r.get(7)?,
            balance_after_ul: r.get(8)?,
            draw_id: r.get(9)?,
            dose_order_id: r.get(10)?,
            patient_id: r.get(11)?,
            actor_user_id: r.get(12)?,
            witness_user_id: r.get(13)?,
            witness2_user_id: r.get(14)?,
            counterparty: r.get(15)?,
            reason: r.get(16)?,
            reference_id: r.get(17)?,
        })
    })?;
    let lean: Vec<LedgerLean> = rows.collect::<rusqlite::Result<_>>()?;
    drop(st);
    if lean.is_empty() {
        return Ok(Vec::new());
    }
    let mut names = staff_and_lot_names(c)?;
    for chunk in patient_ids(&lean).chunks(PATIENT_CHUNK) {
        let mut st = c.prepare_cached(&patient_names_sql(chunk.len()))?;
        let found = st.query_map(rusqlite::params_from_iter(chunk.iter()), |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
        })?;
        for f in found {
            let (id, n): (String, (String, String)) = f?;
            names.patients.insert(id, n);
        }
    }
    Ok(assemble(lean, &names))
}

/// The ledger query for a filter, with `$n` placeholders in the order
/// [`ledger_args`] gives the values.
fn ledger_sql(f: &LedgerFilter) -> String {
    let mut sql = format!(
        "{LEDGER_READ} WHERE l.clinic_id IN ({})",
        crate::placeholders(1, f.clinics.len())
    );
    let mut n = f.clinics.len();
    let mut next = || {
        n += 1;
        n
    };
    if f.from.is_some() {
        sql.push_str(&format!(" AND l.at >= ${}", next()));
    }
    if f.to.is_some() {
        sql.push_str(&format!(" AND l.at < ${}", next()));
    }
    if f.lot_id.is_some() {
        sql.push_str(&format!(" AND l.lot_id = ${}", next()));
    }
    if f.patient_id.is_some() {
        sql.push_str(&format!(" AND l.patient_id = ${}", next()));
    }
    if !f.kinds.is_empty() {
        let first = next();
        for _ in 1..f.kinds.len() {
            next();
        }
        sql.push_str(&format!(
            " AND l.kind IN ({})",
            crate::placeholders(first, f.kinds.len())
        ));
    }
    sql.push_str(if f.newest_first {
        " ORDER BY l.at DESC, l.seq DESC"
    } else {
        " ORDER BY l.at, l.seq"
    });
    if f.limit.is_some() {
        sql.push_str(&format!(" LIMIT ${}", next()));
    }
    sql
}

/// The filter's values for [`ledger_sql`], for rusqlite.
fn ledger_args(f: &LedgerFilter) -> Vec<rusqlite::types::Value> {
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    args.extend(f.clinics.iter().map(|c| c.clone().into()));
    args.extend(f.from.map(Into::into));
    args.extend(f.to.map(Into::into));
    args.extend(f.lot_id.clone().map(Into::into));
    args.extend(f.patient_id.clone().map(Into::into));
    args.extend(f.kinds.iter().map(|k| k.to_string().into()));
    args.extend(f.limit.map(Into::into));
    args
}

/// Visits ledger rows on SQLite straight from the cursor: nothing is
/// copied but the names of patients met for the first time. Returns the
/// state and the number of rows.
fn visit_ledger_sqlite<S, V>(
    c: &rusqlite::Connection,
    sql: &str,
    args: Vec<rusqlite::types::Value>,
    mut state: S,
    mut visit: V,
) -> rusqlite::Result<std::result::Result<(S, usize), String>>
where
    V: FnMut(&mut S, &LedgerRowRef<'_>) -> std::result::Result<(), String>,
{
    // One read transaction: the names and the rows are of the same moment.
    c.execute_batch("BEGIN")?;
    let Names { lots, users, .. } = staff_and_lot_names(c)?;
    let mut patients: HashMap<String, (String, String)> = HashMap::new();
    let mut patient = c.prepare_cached(&patient_names_sql(1))?;
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
    let mut n = 0usize;
    fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
        match r.get_ref(i)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            v => v.as_str().map(Some).map_err(Into::into),
        }
    }
    fn name<'u>(users: &'u HashMap<String, String>, id: Option<&str>) -> Option<&'u str> {
        id.and_then(|u| users.get(u)).map(String::as_str)
    }
    while let Some(r) = rows.next()? {
        // Columns as LEDGER_READ names them.
        let patient_id = text(r, 11)?;
        if let Some(pid) = patient_id {
            if !patients.contains_key(pid) {
                // A patient row cannot be missing (the ledger's key refers
                // to it); any other failure ends the report, not a blank name.
                let found = match patient.query_row([pid], |p| Ok((p.get(1)?, p.get(2)?))) {
                    Err(rusqlite::Error::QueryReturnedNoRows) => Default::default(),
                    other => other?,
                };
                patients.insert(pid.to_string(), found);
            }
        }
        let lot = lots.get(text(r, 4)?.unwrap_or_default());
        let p = patient_id.and_then(|pid| patients.get(pid));
        let row = LedgerRowRef {
            seq: r.get(0)?,
            at: r.get(2)?,
            kind: text(r, 5)?.unwrap_or_default(),
            change_ul: r.get(6)?,
            quantity_ul: r.get(7)?,
            balance_after_ul: r.get(8)?,
            dose_order_id: text(r, 10)?,
            counterparty: text(r, 15)?,
            reason: text(r, 16)?,
            lot_number: lot.map(|l| l.1.as_str()).unwrap_or_default(),
            product_name: lot.map(|l| l.2.as_str()).unwrap_or_default(),
            ndc: lot.map(|l| l.3.as_str()).unwrap_or_default(),
            strength_mg_per_ml: lot.map(|l| l.4).unwrap_or(1),
            actor: name(&users, text(r, 12)?).unwrap_or_default(),
            witness: name(&users, text(r, 13)?),
            witness2: name(&users, text(r, 14)?),
            patient_id,
            patient_name: p.map(|p| p.0.as_str()),
            patient_address: p.map(|p| p.1.as_str()),
        };
        if let Err(e) = visit(&mut state, &row) {
            return Ok(Err(e));
        }
        n += 1;
    }
    Ok(Ok((state, n)))
}

/// A lot's names: id, lot number, product, NDC, strength in mg/mL.
type LotName = (String, String, String, String, i64);

const LOT_NAMES: &str =
    "SELECT t.id, t.lot_number, p.name, p.ndc, p.strength_mg_per_ml FROM cs_lots t \
     JOIN cs_products p ON p.id = t.product_id";
const USER_NAMES: &str = "SELECT id, username FROM users";
const PATIENT_CHUNK: usize = 500;

fn patient_names_sql(n: usize) -> String {
    format!(
        "SELECT id, given_name || ' ' || family_name, COALESCE(address_line1, '') || ', ' || COALESCE(city, '') \
         || ' ' || COALESCE(region, '') || ' ' || COALESCE(postal_code, '') FROM patients WHERE id IN ({})",
        crate::placeholders(1, n)
    )
}

/// The names a report shows beside the ledger's ids.
#[derive(Default)]
struct Names {
    lots: HashMap<String, LotName>,
    users: HashMap<String, String>,
    /// Patient id to (name, address).
    patients: HashMap<String, (String, String)>,
}

/// The distinct patients named in the rows.
fn patient_ids(lean: &[LedgerLean]) -> Vec<&str> {
    let mut ids: Vec<&str> = lean
        .iter()
        .filter_map(|r| r.patient_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn assemble(lean: Vec<LedgerLean>, names: &Names) -> Vec<LedgerRow> {
    let name = |id: &Option<String>| id.as_ref().and_then(|u| names.users.get(u).cloned());
    lean.into_iter()
        .map(|r| {
            let lot = names.lots.get(&r.lot_id);
            let patient = r.patient_id.as_ref().and_then(|p| names.patients.get(p));
            LedgerRow {
                lot_number: lot.map(|l| l.1.clone()).unwrap_or_default(),
                product_name: lot.map(|l| l.2.clone()).unwrap_or_default(),
                ndc: lot.map(|l| l.3.clone()).unwrap_or_default(),
                strength_mg_per_ml: lot.map(|l| l.4).unwrap_or(1),
                actor: names
                    .users
                    .get(&r.actor_user_id)
                    .cloned()
                    .unwrap_or_default(),
                witness: name(&r.witness_user_id),
                witness2: name(&r.witness2_user_id),
                patient_name: patient.map(|p| p.0.clone()),
                patient_address: patient.map(|p| p.1.clone()),
                seq: r.seq,
                id: r.id,
                at: r.at,
                clinic_id: r.clinic_id,
                lot_id: r.lot_id,
                kind: r.kind,
                change_ul: r.change_ul,
                quantity_ul: r.quantity_ul,
                balance_after_ul: r.balance_after_ul,
                draw_id: r.draw_id,
                dose_order_id: r.dose_order_id,
                patient_id: r.patient_id,
                counterparty: r.counterparty,
                reason: r.reason,
                reference_id: r.reference_id,
            }
        })
        .collect()
}

#[derive(sqlx::FromRow)]
struct LedgerLean {
    seq: i64,
    id: String,
    at: i64,
    clinic_id: String,
    lot_id: String,
    kind: String,
    change_ul: i64,
    quantity_ul: i64,
    balance_after_ul: i64,
    draw_id: Option<String>,
    dose_order_id: Option<String>,
    patient_id: Option<String>,
    actor_user_id: String,
    witness_user_id: Option<String>,
    witness2_user_id: Option<String>,
    counterparty: Option<String>,
    reason: Option<String>,
    reference_id: Option<String>,
}

const LOT_SELECT: &str = "SELECT t.id, t.product_id, t.lot_number, t.expires_on, p.name AS product_name, p.ndc, \
     p.strength_mg_per_ml, p.container_ul, p.org_id FROM cs_lots t JOIN cs_products p ON p.id = t.product_id";

const DRAW_SELECT: &str = "SELECT d.id, d.clinic_id, d.lot_id, t.lot_number, p.strength_mg_per_ml, d.dose_order_id, \
     o.encounter_id, d.patient_id, pa.given_name || ' ' || pa.family_name AS patient_name, d.drawn_ul, \
     d.administered_ul, d.wasted_ul, u.username AS drawn_by, d.drawn_at, d.closed_at FROM cs_draws d \
     JOIN cs_lots t ON t.id = d.lot_id JOIN cs_products p ON p.id = t.product_id \
     JOIN dose_orders o ON o.id = d.dose_order_id JOIN patients pa ON pa.id = d.patient_id \
     JOIN users u ON u.id = d.drawn_by";

const CASE_SELECT: &str = "SELECT c.id, c.clinic_id, c.kind, c.status, u.username AS opened_by, c.opened_at, \
     c.discovered_on, c.count_id, c.lot_id, t.lot_number, p.strength_mg_per_ml, c.difference_ul, c.description, \
     c.resolution, c.resolution_note, r.username AS resolved_by, c.resolved_at, c.dea_notified_on, \
     c.form106_filed_on, c.form106 FROM cs_cases c JOIN users u ON u.id = c.opened_by \
     LEFT JOIN users r ON r.id = c.resolved_by LEFT JOIN cs_lots t ON t.id = c.lot_id \
     LEFT JOIN cs_products p ON p.id = t.product_id";

/// Appends movements to the ledger inside an open transaction `$tx` and
/// returns the entries written. Locks the head first so concurrent appenders
/// queue; a movement that would make a balance negative, or take more out of
/// a draw than is left in it, fails the whole transaction.
#[macro_export]
macro_rules! cs_append_in_tx {
    ($tx:expr, $moves:expr, $now:expr) => {{
        let moves: &[$crate::substances::Movement] = $moves;
        let now: i64 = $now;
        let result: $crate::Result<Vec<domain::substances::LedgerEntry>> = async {
            let mut out = Vec::with_capacity(moves.len());
            if moves.is_empty() {
                return Ok(out);
            }
            sqlx::query("UPDATE cs_head SET seq = seq WHERE id = 1")
                .execute(&mut *$tx)
                .await?;
            let (mut seq, mut hash): (i64, String) =
                sqlx::query_as("SELECT seq, hash FROM cs_head WHERE id = 1")
                    .fetch_one(&mut *$tx)
                    .await?;
            for m in moves {
                let bal: Option<(i64,)> = sqlx::query_as(
                    "SELECT balance_ul FROM cs_balances WHERE clinic_id = $1 AND lot_id = $2",
                )
                .bind(&m.clinic_id)
                .bind(&m.lot_id)
                .fetch_optional(&mut *$tx)
                .await?;
                let before = bal.map(|b| b.0).unwrap_or(0);
                let after = domain::substances::apply(before, m.change_ul, m.strength)
                    .map_err(|e| $crate::StoreError::Domain(domain::DomainError::Invalid(vec![e])))?;
                $crate::cs_draw_effect!($tx, m, now);
                seq += 1;
                let mut e = domain::substances::LedgerEntry {
                    seq,
                    id: m.id.clone(),
                    at: m.at,
                    recorded_at: now,
                    clinic_id: m.clinic_id.clone(),
                    lot_id: m.lot_id.clone(),
                    kind: m.kind.as_str().to_string(),
                    change_ul: m.change_ul,
                    quantity_ul: m.quantity_ul,
                    balance_after_ul: after,
                    draw_id: m.draw_id.clone(),
                    dose_order_id: m.dose_order_id.clone(),
                    patient_id: m.patient_id.clone(),
                    actor_user_id: m.actor_user_id.clone(),
                    witness_user_id: m.witness_user_id.clone(),
                    witness2_user_id: m.witness2_user_id.clone(),
                    counterparty: m.counterparty.clone(),
                    reason: m.reason.clone(),
                    reference_id: m.reference_id.clone(),
                    prev_hash: hash.clone(),
                    hash: String::new(),
                };
                e.hash = domain::substances::entry_hash(&hash, &e);
                hash = e.hash.clone();
                $crate::cs_insert_entry!($tx, &e);
                if bal.is_some() {
                    sqlx::query(
                        "UPDATE cs_balances SET balance_ul = $3, last_seq = $4, \
                         storage_id = COALESCE($5, storage_id) WHERE clinic_id = $1 AND lot_id = $2",
                    )
                    .bind(&m.clinic_id)
                    .bind(&m.lot_id)
                    .bind(after)
                    .bind(seq)
                    .bind(&m.storage_id)
                    .execute(&mut *$tx)
                    .await?;
                } else {
                    sqlx::query(
                        "INSERT INTO cs_balances (clinic_id, lot_id, balance_ul, storage_id, last_seq) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&m.clinic_id)
                    .bind(&m.lot_id)
                    .bind(after)
                    .bind(&m.storage_id)
                    .bind(seq)
                    .execute(&mut *$tx)
                    .await?;
                }
                out.push(e);
            }
            sqlx::query("UPDATE cs_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(&hash)
                .execute(&mut *$tx)
                .await?;
            Ok(out)
        }
        .await;
        result
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! cs_insert_entry {
    ($tx:expr, $e:expr) => {{
        let e: &domain::substances::LedgerEntry = $e;
        sqlx::query($crate::substances::INSERT_ENTRY)
            .bind(e.seq)
            .bind(&e.id)
            .bind(e.at)
            .bind(e.recorded_at)
            .bind(&e.clinic_id)
            .bind(&e.lot_id)
            .bind(&e.kind)
            .bind(e.change_ul)
            .bind(e.quantity_ul)
            .bind(e.balance_after_ul)
            .bind(&e.draw_id)
            .bind(&e.dose_order_id)
            .bind(&e.patient_id)
            .bind(&e.actor_user_id)
            .bind(&e.witness_user_id)
            .bind(&e.witness2_user_id)
            .bind(&e.counterparty)
            .bind(&e.reason)
            .bind(&e.reference_id)
            .bind(&e.prev_hash)
            .bind(&e.hash)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// A draw opens its syringe record; what is given or wasted out of a draw
/// closes part of it, never more than is left.
#[doc(hidden)]
#[macro_export]
macro_rules! cs_draw_effect {
    ($tx:expr, $m:expr, $now:expr) => {{
        let m: &$crate::substances::Movement = $m;
        match (m.kind, &m.draw_id) {
            (domain::substances::EntryKind::Draw, _) => {
                let (Some(order), Some(patient)) = (&m.dose_order_id, &m.patient_id) else {
                    return Err($crate::StoreError::Domain(domain::DomainError::field(
                        "dose_order_id",
                        "a draw belongs to a dose order",
                    )));
                };
                sqlx::query(
                    "INSERT INTO cs_draws (id, clinic_id, lot_id, dose_order_id, patient_id, drawn_ul, \
                     administered_ul, wasted_ul, drawn_by, drawn_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8)",
                )
                .bind(&m.id)
                .bind(&m.clinic_id)
                .bind(&m.lot_id)
                .bind(order)
                .bind(patient)
                .bind(m.quantity_ul)
                .bind(&m.actor_user_id)
                .bind(m.at)
                .execute(&mut *$tx)
                .await?;
            }
            (
                k @ (domain::substances::EntryKind::Administered
                | domain::substances::EntryKind::Waste),
                Some(draw),
            ) => {
                let row: Option<(i64, i64, i64, String, String)> = sqlx::query_as(
                    "SELECT drawn_ul, administered_ul, wasted_ul, lot_id, clinic_id FROM cs_draws WHERE id = $1",
                )
                .bind(draw)
                .fetch_optional(&mut *$tx)
                .await?;
                let Some((drawn, given, wasted, lot, clinic)) = row else {
                    return Err($crate::StoreError::Domain(domain::DomainError::field(
                        "draw_id",
                        "no such draw",
                    )));
                };
                if lot != m.lot_id || clinic != m.clinic_id {
                    return Err($crate::StoreError::Domain(domain::DomainError::field(
                        "draw_id",
                        "the draw was from another lot or location",
                    )));
                }
                let left = domain::substances::draw_remaining(drawn, given, wasted);
                if m.quantity_ul > left {
                    return Err($crate::StoreError::Domain(domain::DomainError::field(
                        "quantity",
                        format!(
                            "only {} of this draw is left to account for",
                            domain::substances::fmt_ml(left)
                        ),
                    )));
                }
                let (g, w) = if k == domain::substances::EntryKind::Administered {
                    (m.quantity_ul, 0)
                } else {
                    (0, m.quantity_ul)
                };
                let closed = if m.quantity_ul == left { Some($now) } else { None };
                sqlx::query(
                    "UPDATE cs_draws SET administered_ul = administered_ul + $2, wasted_ul = wasted_ul + $3, \
                     closed_at = COALESCE($4, closed_at) WHERE id = $1",
                )
                .bind(draw)
                .bind(g)
                .bind(w)
                .bind(closed)
                .execute(&mut *$tx)
                .await?;
            }
            (domain::substances::EntryKind::Administered, None) => {
                return Err($crate::StoreError::Domain(domain::DomainError::field(
                    "draw_id",
                    "what is administered comes out of a draw",
                )));
            }
            _ => {}
        }
    }};
}

#[doc(hidden)]
pub const INSERT_ENTRY: &str = "INSERT INTO cs_ledger (seq, id, at, recorded_at, clinic_id, lot_id, kind, \
     change_ul, quantity_ul, balance_after_ul, draw_id, dose_order_id, patient_id, actor_user_id, \
     witness_user_id, witness2_user_id, counterparty, reason, reference_id, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)";

/// Filters for ledger reads and reports.
#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    pub clinics: Vec<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub lot_id: Option<String>,
    pub patient_id: Option<String>,
    pub kinds: Vec<&'static str>,
    pub limit: Option<i64>,
    /// Newest first when set (screens); oldest first otherwise (reports).
    pub newest_first: bool,
}

impl Store {
    pub async fn cs_registrations(&self) -> Result<Vec<Registration>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT clinic_id, dea_number, expires_on FROM cs_registrations ORDER BY clinic_id")
                .fetch_all(p).await?
        }))
    }

    pub async fn cs_set_registration(
        &self,
        clinic: &str,
        dea: &str,
        expires_on: &str,
        by: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM cs_registrations WHERE clinic_id = $1").bind(clinic).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO cs_registrations (clinic_id, dea_number, expires_on, updated_by, updated_at) \
                 VALUES ($1, $2, $3, $4, $5)")
                .bind(clinic).bind(dea).bind(expires_on).bind(by).bind(self.now())
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn cs_storage(&self, clinics: &[String]) -> Result<Vec<Storage>> {
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, clinic_id, name FROM cs_storage WHERE clinic_id IN ({}) ORDER BY name",
            crate::placeholders(1, clinics.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as::<_, Storage>(&sql);
            for c in clinics {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        }))
    }

    pub async fn cs_add_storage(&self, s: &Storage, audit: NewAuditEvent) -> Result<()> {
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO cs_storage (id, clinic_id, name) VALUES ($1, $2, $3)")
                .bind(&s.id).bind(&s.clinic_id).bind(&s.name).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(StoreError::Db(e)) if is_unique_violation(&e, "cs_storage") => Err(invalid(
                "name",
                "this location already has a storage place of that name",
            )),
            other => other,
        }
    }

    pub async fn cs_products(&self, org: &str) -> Result<Vec<Product>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, name, ndc, form, strength_mg_per_ml, container_ul FROM cs_products \
                 WHERE org_id = $1 ORDER BY name, strength_mg_per_ml")
                .bind(org).fetch_all(p).await?
        }))
    }

    pub async fn cs_add_product(
        &self,
        org: &str,
        pr: &Product,
        audit: NewAuditEvent,
    ) -> Result<()> {
        let r: Result<()> = on_pool!(self.write(), p => async {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO cs_products (id, org_id, name, ndc, form, strength_mg_per_ml, container_ul, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&pr.id).bind(org).bind(&pr.name).bind(&pr.ndc).bind(&pr.form).bind(pr.strength_mg_per_ml)
                .bind(pr.container_ul).bind(self.now()).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            Ok(())
        }.await);
        match r {
            Err(StoreError::Db(e)) if is_unique_violation(&e, "ndc") => {
                Err(invalid("ndc", "a product with this NDC is already on file"))
            }
            other => other,
        }
    }

    pub async fn cs_lots(&self, org: &str) -> Result<Vec<Lot>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{LOT_SELECT} WHERE p.org_id = $1 ORDER BY t.expires_on, t.lot_number"))
                .bind(org).fetch_all(p).await?
        }))
    }

    pub async fn cs_lot(&self, id: &str) -> Result<Option<Lot>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{LOT_SELECT} WHERE t.id = $1")).bind(id).fetch_optional(p).await?
        }))
    }

    /// The lot of a product with this number, created if new; refuses a known
    /// lot number whose expiry differs from the one given.
    pub async fn cs_find_or_add_lot(
        &self,
        product_id: &str,
        lot_number: &str,
        expires_on: &str,
    ) -> Result<String> {
        on_pool!(self.write(), p => {
            let found: Option<(String, String)> = sqlx::query_as(
                "SELECT id, expires_on FROM cs_lots WHERE product_id = $1 AND lot_number = $2")
                .bind(product_id).bind(lot_number).fetch_optional(p).await?;
            if let Some((id, exp)) = found {
                if exp != expires_on {
                    return Err(invalid("expires_on", format!("lot {lot_number} is on file with expiry {exp}")));
                }
                return Ok(id);
            }
            let id = uuid::Uuid::now_v7().to_string();
            sqlx::query("INSERT INTO cs_lots (id, product_id, lot_number, expires_on, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&id).bind(product_id).bind(lot_number).bind(expires_on).bind(self.now())
                .execute(p).await?;
            Ok(id)
        })
    }

    /// Balances at these locations, lots in stock first by expiry.
    pub async fn cs_balances(&self, clinics: &[String]) -> Result<Vec<Balance>> {
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT b.clinic_id, b.lot_id, t.lot_number, t.expires_on, p.name AS product_name, p.ndc, \
             p.strength_mg_per_ml, p.container_ul, b.balance_ul, s.name AS storage FROM cs_balances b \
             JOIN cs_lots t ON t.id = b.lot_id JOIN cs_products p ON p.id = t.product_id \
             LEFT JOIN cs_storage s ON s.id = b.storage_id WHERE b.clinic_id IN ({}) \
             ORDER BY b.clinic_id, b.balance_ul = 0, t.expires_on, t.lot_number",
            crate::placeholders(1, clinics.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in clinics {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        }))
    }

    /// Appends movements with their audit events in one transaction.
    pub async fn cs_append(
        &self,
        moves: &[Movement],
        audit: Vec<NewAuditEvent>,
    ) -> Result<Vec<LedgerEntry>> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let out = cs_append_in_tx!(tx, moves, self.now())?;
            append_in_tx!(tx, &audit, self.now())?;
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Passes each ledger row of the filter to `visit` with `state`, oldest
    /// first unless the filter says otherwise, and returns the state with the
    /// number of rows: a long report is written without holding every row.
    /// On SQLite the rows come straight from the cursor on a blocking thread.
    /// A visitor's error stops the visit and is returned as an internal error.
    pub async fn cs_ledger_visit<S, V>(
        &self,
        f: &LedgerFilter,
        mut state: S,
        mut visit: V,
    ) -> Result<(S, usize)>
    where
        S: Send + 'static,
        V: FnMut(&mut S, &LedgerRowRef<'_>) -> std::result::Result<(), String> + Send + 'static,
    {
        let failed =
            |e: String| StoreError::Db(sqlx::Error::Protocol(format!("ledger report: {e}")));
        if self.sqlite_file.is_some() && !f.clinics.is_empty() {
            let (sql, args) = (ledger_sql(f), ledger_args(f));
            return self
                .on_sqlite_reader(move |c| visit_ledger_sqlite(c, &sql, args, state, visit))
                .await?
                .map_err(|e| failed(e.to_string()))?
                .map_err(failed);
        }
        let rows = self.cs_ledger(f).await?;
        for r in &rows {
            visit(&mut state, &r.as_ref()).map_err(failed)?;
        }
        Ok((state, rows.len()))
    }

    pub async fn cs_ledger(&self, f: &LedgerFilter) -> Result<Vec<LedgerRow>> {
        if f.clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = ledger_sql(f);
        if self.sqlite_file.is_some() {
            let args = ledger_args(f);
            return self
                .on_sqlite_reader(move |c| read_ledger_sqlite(c, &sql, args))
                .await?
                .map_err(|e| StoreError::Db(sqlx::Error::Protocol(format!("ledger read: {e}"))));
        }
        let lean: Vec<LedgerLean> = on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in &f.clinics {
                q = q.bind(c);
            }
            if let Some(v) = f.from { q = q.bind(v); }
            if let Some(v) = f.to { q = q.bind(v); }
            if let Some(v) = &f.lot_id { q = q.bind(v); }
            if let Some(v) = &f.patient_id { q = q.bind(v); }
            for k in &f.kinds { q = q.bind(*k); }
            if let Some(v) = f.limit { q = q.bind(v); }
            q.fetch_all(p).await?
        });
        if lean.is_empty() {
            return Ok(Vec::new());
        }
        let (lots, users): (Vec<LotName>, Vec<(String, String)>) = on_pool!(self.read(), p => {
            (
                sqlx::query_as(LOT_NAMES).fetch_all(p).await?,
                sqlx::query_as(USER_NAMES).fetch_all(p).await?,
            )
        });
        let mut names = Names {
            lots: lots.into_iter().map(|l| (l.0.clone(), l)).collect(),
            users: users.into_iter().collect(),
            patients: HashMap::new(),
        };
        for chunk in patient_ids(&lean).chunks(PATIENT_CHUNK) {
            let sql = patient_names_sql(chunk.len());
            let found: Vec<(String, String, String)> = on_pool!(self.read(), p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(p).await?
            });
            names
                .patients
                .extend(found.into_iter().map(|(id, n, a)| (id, (n, a))));
        }
        Ok(assemble(lean, &names))
    }

    /// A location's ledger summed for a reconciliation: each lot's stock
    /// before `from`, and each lot's entries in `[from, to)` summed by kind
    /// and by whether they belong to a draw. Two grouped index scans.
    pub async fn cs_reconciliation_sums(
        &self,
        clinic: &str,
        from: i64,
        to: i64,
    ) -> Result<(Vec<(String, i64)>, Vec<ReconRow>)> {
        let opening: Vec<(String, i64)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT lot_id, CAST(SUM(change_ul) AS BIGINT) FROM cs_ledger \
                 WHERE clinic_id = $1 AND at < $2 GROUP BY lot_id")
                .bind(clinic).bind(from).fetch_all(p).await?
        });
        let rows: Vec<ReconRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT lot_id, kind, CAST(CASE WHEN draw_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS from_draw, \
                 CAST(SUM(change_ul) AS BIGINT) AS change_ul, CAST(SUM(quantity_ul) AS BIGINT) AS quantity_ul, \
                 COUNT(*) AS entries FROM cs_ledger WHERE clinic_id = $1 AND at >= $2 AND at < $3 \
                 GROUP BY lot_id, kind, CASE WHEN draw_id IS NULL THEN 0 ELSE 1 END")
                .bind(clinic).bind(from).bind(to).fetch_all(p).await?
        });
        Ok((opening, rows))
    }

    pub async fn cs_draw(&self, id: &str) -> Result<Option<Draw>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{DRAW_SELECT} WHERE d.id = $1")).bind(id).fetch_optional(p).await?
        }))
    }

    /// Draws at these locations not yet accounted for by what was given and wasted.
    pub async fn cs_open_draws(&self, clinics: &[String]) -> Result<Vec<Draw>> {
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{DRAW_SELECT} WHERE d.closed_at IS NULL AND d.clinic_id IN ({}) ORDER BY d.drawn_at",
            crate::placeholders(1, clinics.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in clinics {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        }))
    }

    /// Starts a blind count by `user` at `clinic` (again: no-op).
    pub async fn cs_begin_count(&self, clinic: &str, user: &str) -> Result<()> {
        on_pool!(self.write(), p => {
            sqlx::query("INSERT INTO cs_blind_counts (clinic_id, user_id, started_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (clinic_id, user_id) DO NOTHING")
                .bind(clinic).bind(user).bind(self.now()).execute(p).await?;
        });
        Ok(())
    }

    /// The locations where `user` has a blind count in progress.
    pub async fn cs_counting(&self, user: &str) -> Result<Vec<String>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_scalar("SELECT clinic_id FROM cs_blind_counts WHERE user_id = $1")
                .bind(user).fetch_all(p).await?
        }))
    }

    pub async fn cs_draws_for_order(&self, dose_order_id: &str) -> Result<Vec<Draw>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{DRAW_SELECT} WHERE d.dose_order_id = $1 ORDER BY d.drawn_at"))
                .bind(dose_order_id).fetch_all(p).await?
        }))
    }

    /// Records a blind count: the expected amounts are read inside the same
    /// transaction as the counted ones are written, and every line that differs
    /// opens a discrepancy case.
    pub async fn cs_record_count(
        &self,
        count: &Count,
        counted: &[(String, i64)],
        discovered_on: &str,
        audit: NewAuditEvent,
    ) -> Result<(Vec<CountLine>, Vec<String>)> {
        let id = count.id.clone();
        let cases = on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE cs_head SET seq = seq WHERE id = 1").execute(&mut *tx).await?;
            let (head,): (i64,) = sqlx::query_as("SELECT seq FROM cs_head WHERE id = 1").fetch_one(&mut *tx).await?;
            sqlx::query("INSERT INTO cs_counts (id, clinic_id, counted_at, counted_by, ledger_seq, note) \
                 VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&count.id).bind(&count.clinic_id).bind(count.counted_at).bind(&count.counted_by)
                .bind(head).bind(&count.note).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM cs_blind_counts WHERE clinic_id = $1 AND user_id = $2")
                .bind(&count.clinic_id).bind(&count.counted_by).execute(&mut *tx).await?;
            let expected: Vec<(String, i64)> = sqlx::query_as(
                "SELECT lot_id, balance_ul FROM cs_balances WHERE clinic_id = $1")
                .bind(&count.clinic_id).fetch_all(&mut *tx).await?;
            let expected: HashMap<String, i64> = expected.into_iter().collect();
            let mut cases = Vec::new();
            for (lot, got) in counted {
                let Some(want) = expected.get(lot) else {
                    return Err(invalid("lot_id", "a counted lot is not held at this location"));
                };
                sqlx::query("INSERT INTO cs_count_lines (count_id, lot_id, expected_ul, counted_ul) VALUES ($1, $2, $3, $4)")
                    .bind(&count.id).bind(lot).bind(want).bind(got).execute(&mut *tx).await?;
                if got != want {
                    let case = uuid::Uuid::now_v7().to_string();
                    sqlx::query("INSERT INTO cs_cases (id, clinic_id, kind, status, opened_by, opened_at, discovered_on, \
                         count_id, lot_id, difference_ul, description) VALUES ($1, $2, 'discrepancy', 'open', $3, $4, $5, $6, $7, $8, $9)")
                        .bind(&case).bind(&count.clinic_id).bind(&count.counted_by).bind(count.counted_at)
                        .bind(discovered_on).bind(&count.id).bind(lot).bind(got - want)
                        .bind("the end-of-day count differs from the ledger").execute(&mut *tx).await?;
                    cases.push(case);
                }
            }
            for lot in expected.keys() {
                if !counted.iter().any(|(l, _)| l == lot) && expected[lot] > 0 {
                    return Err(invalid("lines", "count every lot held at this location"));
                }
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            cases
        });
        Ok((self.cs_count_lines(&id).await?, cases))
    }

    /// The newest counts at these locations.
    pub async fn cs_counts(&self, clinics: &[String], limit: i64) -> Result<Vec<Count>> {
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT c.id, c.clinic_id, c.counted_at, u.username AS counted_by, c.note \
             FROM cs_counts c JOIN users u ON u.id = c.counted_by WHERE c.clinic_id IN ({}) \
             ORDER BY c.counted_at DESC LIMIT ${}",
            crate::placeholders(1, clinics.len()),
            clinics.len() + 1
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in clinics {
                q = q.bind(c);
            }
            q.bind(limit).fetch_all(p).await?
        }))
    }

    pub async fn cs_count(&self, id: &str) -> Result<Option<Count>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT c.id, c.clinic_id, c.counted_at, u.username AS counted_by, c.note \
                 FROM cs_counts c JOIN users u ON u.id = c.counted_by WHERE c.id = $1")
                .bind(id).fetch_optional(p).await?
        }))
    }

    pub async fn cs_count_lines(&self, count: &str) -> Result<Vec<CountLine>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT l.count_id, l.lot_id, t.lot_number, p.name AS product_name, p.strength_mg_per_ml, \
                 l.expected_ul, l.counted_ul FROM cs_count_lines l JOIN cs_lots t ON t.id = l.lot_id \
                 JOIN cs_products p ON p.id = t.product_id WHERE l.count_id = $1 ORDER BY t.lot_number")
                .bind(count).fetch_all(p).await?
        }))
    }

    pub async fn cs_add_inventory(&self, inv: &Inventory, audit: NewAuditEvent) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let (head,): (i64,) = sqlx::query_as("SELECT seq FROM cs_head WHERE id = 1").fetch_one(&mut *tx).await?;
            sqlx::query("INSERT INTO cs_inventories (id, clinic_id, kind, taken_on, business, taken_by, taken_at, \
                 ledger_seq, lines, sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(&inv.id).bind(&inv.clinic_id).bind(&inv.kind).bind(&inv.taken_on).bind(&inv.business)
                .bind(&inv.taken_by).bind(inv.taken_at).bind(head).bind(&inv.lines).bind(&inv.sha256)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn cs_inventories(&self, clinics: &[String]) -> Result<Vec<Inventory>> {
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT i.id, i.clinic_id, i.kind, i.taken_on, i.business, u.username AS taken_by, \
             i.taken_at, i.lines, i.sha256 FROM cs_inventories i JOIN users u ON u.id = i.taken_by \
             WHERE i.clinic_id IN ({}) ORDER BY i.taken_on DESC, i.taken_at DESC",
            crate::placeholders(1, clinics.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as::<_, Inventory>(&sql);
            for c in clinics {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        }))
    }

    pub async fn cs_open_case(&self, c: &NewCase, audit: NewAuditEvent) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO cs_cases (id, clinic_id, kind, status, opened_by, opened_at, discovered_on, \
                 lot_id, difference_ul, description) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9)")
                .bind(&c.id).bind(&c.clinic_id).bind(c.kind).bind(&c.opened_by).bind(c.opened_at)
                .bind(&c.discovered_on).bind(&c.lot_id).bind(c.difference_ul).bind(&c.description)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn cs_cases(&self, clinics: &[String]) -> Result<Vec<Case>> {
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{CASE_SELECT} WHERE c.clinic_id IN ({}) ORDER BY c.status = 'resolved', c.opened_at DESC",
            crate::placeholders(1, clinics.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as::<_, Case>(&sql);
            for c in clinics {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        }))
    }

    pub async fn cs_case(&self, id: &str) -> Result<Option<Case>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("{CASE_SELECT} WHERE c.id = $1")).bind(id).fetch_optional(p).await?
        }))
    }

    /// Resolves an open case, writing its adjustment (if any) to the ledger in
    /// the same transaction.
    pub async fn cs_resolve_case(
        &self,
        id: &str,
        r: &CaseResolution,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let moves: Vec<Movement> = r.adjustment.iter().cloned().collect();
            cs_append_in_tx!(tx, &moves, self.now())?;
            let done = sqlx::query("UPDATE cs_cases SET status = 'resolved', resolution = $2, resolution_note = $3, \
                 resolved_by = $4, resolved_at = $5, kind = COALESCE($6, kind) WHERE id = $1 AND status = 'open'")
                .bind(id).bind(r.resolution).bind(&r.note).bind(&r.by).bind(r.at).bind(r.kind)
                .execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(conflict("this case is already resolved"));
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records the DEA notice and the Form 106 filing of a loss or theft.
    pub async fn cs_case_filing(
        &self,
        id: &str,
        notified_on: Option<&str>,
        filed_on: Option<&str>,
        form106: Option<&str>,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE cs_cases SET dea_notified_on = COALESCE($2, dea_notified_on), \
                 form106_filed_on = COALESCE($3, form106_filed_on), form106 = COALESCE($4, form106) WHERE id = $1")
                .bind(id).bind(notified_on).bind(filed_on).bind(form106).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Walks the whole ledger in order: chain, hashes, running balances, then
    /// the balances table and the head against what the ledger gives.
    pub async fn cs_verify(&self) -> Result<LedgerCheck> {
        const PAGE: i64 = 5000;
        let mut tip = (0i64, GENESIS.to_string());
        let mut sums: HashMap<(String, String), i64> = HashMap::new();
        loop {
            let page: Vec<LedgerEntry> = on_pool!(self.read(), p => {
                let rows: Vec<EntryRow> = sqlx::query_as(&format!(
                    "SELECT {LEDGER_COLUMNS} FROM cs_ledger WHERE seq > $1 ORDER BY seq LIMIT $2"))
                    .bind(tip.0).bind(PAGE).fetch_all(p).await?;
                rows.into_iter().map(EntryRow::into_entry).collect()
            });
            if page.is_empty() {
                break;
            }
            match verify_ledger(tip.clone(), &mut sums, &page) {
                Ok(t) => tip = t,
                Err(b) => return Ok(LedgerCheck::Broken(b)),
            }
        }
        let (head_seq, head_hash): (i64, String) = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT seq, hash FROM cs_head WHERE id = 1").fetch_one(p).await?
        });
        if head_seq != tip.0 || head_hash != tip.1 {
            return Ok(LedgerCheck::HeadDiffers);
        }
        let stored: Vec<(String, String, i64)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT clinic_id, lot_id, balance_ul FROM cs_balances").fetch_all(p).await?
        });
        for (clinic_id, lot_id, stored_ul) in stored {
            let ledger_ul = sums
                .remove(&(clinic_id.clone(), lot_id.clone()))
                .unwrap_or(0);
            if ledger_ul != stored_ul {
                return Ok(LedgerCheck::BalanceDiffers {
                    clinic_id,
                    lot_id,
                    ledger_ul,
                    stored_ul,
                });
            }
        }
        if let Some(((clinic_id, lot_id), ledger_ul)) = sums.into_iter().find(|(_, v)| *v != 0) {
            return Ok(LedgerCheck::BalanceDiffers {
                clinic_id,
                lot_id,
                ledger_ul,
                stored_ul: 0,
            });
        }
        Ok(LedgerCheck::Intact { entries: tip.0 })
    }
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    id: String,
    at: i64,
    recorded_at: i64,
    clinic_id: String,
    lot_id: String,
    kind: String,
    change_ul: i64,
    quantity_ul: i64,
    balance_after_ul: i64,
    draw_id: Option<String>,
    dose_order_id: Option<String>,
    patient_id: Option<String>,
    actor_user_id: String,
    witness_user_id: Option<String>,
    witness2_user_id: Option<String>,
    counterparty: Option<String>,
    reason: Option<String>,
    reference_id: Option<String>,
    prev_hash: String,
    hash: String,
}

impl EntryRow {
    fn into_entry(self) -> LedgerEntry {
        LedgerEntry {
            seq: self.seq,
            id: self.id,
            at: self.at,
            recorded_at: self.recorded_at,
            clinic_id: self.clinic_id,
            lot_id: self.lot_id,
            kind: self.kind,
            change_ul: self.change_ul,
            quantity_ul: self.quantity_ul,
            balance_after_ul: self.balance_after_ul,
            draw_id: self.draw_id,
            dose_order_id: self.dose_order_id,
            patient_id: self.patient_id,
            actor_user_id: self.actor_user_id,
            witness_user_id: self.witness_user_id,
            witness2_user_id: self.witness2_user_id,
            counterparty: self.counterparty,
            reason: self.reason,
            reference_id: self.reference_id,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// What a draw needs to know about the dose order it is for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrderContext {
    pub dose_order_id: String,
    pub encounter_id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub status: String,
    pub mg: f64,
    pub second_check: bool,
    pub checked_by: Option<String>,
    /// The order was voided (a new weight, withdrawn): nothing is drawn for it.
    pub voided_at: Option<i64>,
}

impl Store {
    pub async fn cs_order_context(&self, dose_order_id: &str) -> Result<Option<OrderContext>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT o.id AS dose_order_id, e.id AS encounter_id, e.clinic_id, e.patient_id, e.status, \
                 o.mg, o.second_check, o.checked_by, o.voided_at FROM dose_orders o JOIN encounters e ON e.id = o.encounter_id \
                 WHERE o.id = $1")
                .bind(dose_order_id).fetch_optional(p).await?
        }))
    }

    /// Dose orders of visits open at these locations, for the draw form:
    /// (order, clinic, patient, mg ordered, µg drawn for it so far).
    pub async fn cs_open_orders(
        &self,
        clinics: &[String],
    ) -> Result<Vec<(String, String, String, f64, i64)>> {
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT o.id, e.clinic_id, pa.given_name || ' ' || pa.family_name, o.mg, \
             CAST(COALESCE((SELECT SUM(d.drawn_ul * p.strength_mg_per_ml) FROM cs_draws d JOIN cs_lots t ON t.id = d.lot_id \
               JOIN cs_products p ON p.id = t.product_id WHERE d.dose_order_id = o.id), 0) AS BIGINT) FROM dose_orders o \
             JOIN encounters e ON e.id = o.encounter_id JOIN patients pa ON pa.id = e.patient_id \
             WHERE e.status = 'open' AND o.voided_at IS NULL AND e.clinic_id IN ({}) ORDER BY o.ordered_at",
            crate::placeholders(1, clinics.len())
        );
        Ok(on_pool!(self.read(), p => {
            let mut q = sqlx::query_as(&sql);
            for c in clinics {
                q = q.bind(c);
            }
            q.fetch_all(p).await?
        }))
    }
}
