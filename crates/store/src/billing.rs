//! Cash-pay billing's storage: billing identity, price lists, offers,
//! package products and packages, invoices with lines that never change, and
//! the append-only entries (payments, refunds, credit notes) whose every
//! write first rebuilds the invoice's account from what is stored, under a
//! lock on the invoice, so a balance can never be driven below what the
//! rules allow by two desks at once.

use domain::billing::{Account, Entry, EntryKind};
use domain::DomainError;

use crate::audit::NewAuditEvent;
use crate::{append_in_tx, on_pool, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct BillingSettings {
    pub clinic_id: String,
    pub legal_name: String,
    pub npi: String,
    pub tax_id: String,
    pub currency: String,
    pub refund_fee_minor: i64,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct StoredPriceList {
    pub id: String,
    pub clinic_id: String,
    pub effective_from: String,
    pub currency: String,
    /// JSON: service code to minor units.
    pub prices: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct StoredOffer {
    pub id: String,
    pub clinic_id: String,
    pub name: String,
    /// JSON: the rules.
    pub rules: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub new_patients_only: bool,
    pub first_n: Option<i64>,
    pub stackable: bool,
    pub active: bool,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct PackageProduct {
    pub id: String,
    pub clinic_id: String,
    pub name: String,
    pub service: String,
    pub sessions: i64,
    pub price_minor: i64,
    pub currency: String,
    pub valid_days: Option<i64>,
    pub active: bool,
    /// Renews every month: a membership, not a one-off package.
    pub monthly: bool,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub appointment_id: Option<String>,
    pub kind: String,
    pub currency: String,
    pub service_date: String,
    pub issued_by: String,
    pub issued_at: i64,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct InvoiceLine {
    pub invoice_id: String,
    pub seq: i64,
    pub kind: String,
    pub service: String,
    pub description: String,
    /// JSON: the superbill codes of a charge.
    pub codes: String,
    pub amount_minor: i64,
    pub offer_id: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct BillingEntry {
    pub seq: i64,
    pub id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub invoice_id: String,
    pub kind: String,
    pub method: Option<String>,
    pub reference: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub refund_of: Option<String>,
    pub package_id: Option<String>,
    pub reason: Option<String>,
    pub at: i64,
    pub recorded_by: String,
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Package {
    pub id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub product_id: String,
    pub name: String,
    pub service: String,
    pub sessions: i64,
    pub price_minor: i64,
    pub currency: String,
    pub invoice_id: String,
    pub purchased_at: i64,
    pub expires_on: Option<String>,
    pub refunded_at: Option<i64>,
    /// Sessions used (package-credit payments less their refunds).
    pub used: i64,
}

impl Package {
    pub fn left(&self) -> i64 {
        if self.refunded_at.is_some() {
            0
        } else {
            (self.sessions - self.used).max(0)
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct StoredEstimate {
    pub id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub input: String,
    pub estimate: String,
    pub total_minor: i64,
    pub currency: String,
    pub created_by: String,
    pub created_at: i64,
}

/// What a visit's invoice is made from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VisitForBilling {
    pub appointment_id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub type_code: String,
    pub type_name: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub status: String,
    pub late_cancel: bool,
    pub encounter_id: Option<String>,
}

/// What happened in the visit's encounter that billing reads.
#[derive(Debug, Clone, Default)]
pub struct EncounterFacts {
    pub infusion_minutes: Option<i64>,
    /// NDC and mg administered, from the Schedule III record.
    pub drug: Option<(String, f64)>,
    /// Medicines given besides ketamine: name and dose.
    pub medications: Vec<(String, String)>,
}

pub struct NewInvoice {
    pub id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub kind: &'static str,
    pub currency: String,
    pub service_date: String,
    pub issued_by: String,
    pub issued_at: i64,
    pub lines: Vec<NewLine>,
    /// The package a package invoice sells.
    pub package: Option<NewPackage>,
    /// The membership this invoice starts or renews.
    pub membership: Option<MembershipStep>,
}

/// What a membership invoice does to its membership, in the same transaction.
pub enum MembershipStep {
    /// Enrols the patient; the invoice bills the first month.
    Start(NewMembership),
    /// Bills the next month of a membership that has billed `billed` months;
    /// refused (nothing written) if another run billed it first or it was
    /// cancelled meanwhile.
    Renew { id: String, billed: i64 },
}

pub struct NewMembership {
    pub id: String,
    pub product_id: String,
    pub started_on: String,
    pub created_by: String,
}

/// A patient's membership.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Membership {
    pub id: String,
    pub clinic_id: String,
    pub patient_id: String,
    pub product_id: String,
    pub product_name: String,
    pub service: String,
    pub price_minor: i64,
    pub currency: String,
    pub sessions: i64,
    pub started_on: String,
    /// Months billed so far.
    pub periods: i64,
    pub status: String,
    pub cancelled_on: Option<String>,
    pub cancel_reason: Option<String>,
    pub created_by: String,
}

const MEMBERSHIP_COLS: &str = "m.id, m.clinic_id, m.patient_id, m.product_id, k.name AS product_name, \
     k.service, k.price_minor, k.currency, k.sessions, m.started_on, m.periods, m.status, m.cancelled_on, m.cancel_reason, \
     m.created_by FROM memberships m JOIN package_products k ON k.id = m.product_id";

pub struct NewLine {
    pub kind: EntryKind,
    pub service: String,
    pub description: String,
    pub codes: String,
    pub minor: i64,
    pub offer_id: Option<String>,
}

pub struct NewPackage {
    pub id: String,
    pub product_id: String,
    pub name: String,
    pub service: String,
    pub sessions: i64,
    pub price_minor: i64,
    pub expires_on: Option<String>,
}

pub struct NewEntry {
    pub id: String,
    pub invoice_id: String,
    pub kind: EntryKind,
    pub method: Option<String>,
    pub reference: Option<String>,
    pub minor: i64,
    pub currency: String,
    pub refund_of: Option<String>,
    pub package_id: Option<String>,
    pub reason: Option<String>,
    pub at: i64,
    pub recorded_by: String,
}

const INVOICE_COLS: &str = "i.id, i.number, i.clinic_id, i.patient_id, \
    p.given_name || ' ' || p.family_name AS patient_name, i.appointment_id, i.kind, i.currency, \
    i.service_date, u.username AS issued_by, i.issued_at \
    FROM invoices i JOIN patients p ON p.id = i.patient_id JOIN users u ON u.id = i.issued_by";

const ENTRY_COLS: &str = "e.seq, e.id, e.clinic_id, e.patient_id, e.invoice_id, e.kind, e.method, \
    e.reference, e.amount_minor, e.currency, e.refund_of, e.package_id, e.reason, e.at, \
    u.username AS recorded_by FROM billing_entries e JOIN users u ON u.id = e.recorded_by";

const PACKAGE_COLS: &str = "k.id, k.clinic_id, k.patient_id, k.product_id, k.name, k.service, \
    k.sessions, k.price_minor, k.currency, k.invoice_id, k.purchased_at, k.expires_on, k.refunded_at, \
    (SELECT COUNT(*) FROM billing_entries e WHERE e.package_id = k.id AND e.method = 'package_credit' AND e.kind = 'payment') \
    - (SELECT COUNT(*) FROM billing_entries e WHERE e.package_id = k.id AND e.method = 'package_credit' AND e.kind = 'refund') AS used \
    FROM packages k";

/// Rebuilds an invoice's account from its lines and entries; returns it with
/// each entry's position by id (the handle refunds name).
pub fn account_of(
    lines: &[InvoiceLine],
    entries: &[BillingEntry],
    currency: &str,
) -> Result<(Account, Vec<(String, usize)>), DomainError> {
    let mut a = Account::default();
    for l in lines {
        let kind = if l.kind == "discount" {
            EntryKind::Discount
        } else {
            EntryKind::Charge
        };
        if l.amount_minor > 0 {
            a.apply(&Entry {
                kind,
                minor: l.amount_minor,
                currency: currency.to_string(),
                refund_of: None,
            })?;
        }
    }
    let mut pos: Vec<(String, usize)> = vec![];
    for e in entries {
        let kind = match e.kind.as_str() {
            "payment" => EntryKind::Payment,
            "refund" => EntryKind::Refund,
            _ => EntryKind::Credit,
        };
        let refund_of = e
            .refund_of
            .as_ref()
            .and_then(|r| pos.iter().find(|(id, _)| id == r).map(|(_, p)| *p));
        let p = a.apply(&Entry {
            kind,
            minor: e.amount_minor,
            currency: e.currency.clone(),
            refund_of,
        })?;
        pos.push((e.id.clone(), p));
    }
    Ok((a, pos))
}

impl NewEntry {
    /// The entry's seal (see [`crate::seal`]).
    pub fn seal(&self) -> String {
        crate::seal::entry(
            &self.id,
            &self.invoice_id,
            self.kind.as_str(),
            self.method.as_deref(),
            self.minor,
            &self.currency,
            self.refund_of.as_deref(),
            self.package_id.as_deref(),
            self.at,
        )
    }
}

/// Appends one entry inside an open transaction (the only INSERT into
/// `billing_entries`; callers have checked it against the account).
macro_rules! insert_entry {
    ($tx:expr, $e:expr, $clinic:expr, $patient:expr) => {{
        let e: &NewEntry = $e;
        sqlx::query("INSERT INTO billing_entries (id, clinic_id, patient_id, invoice_id, kind, method, reference, amount_minor, \
             currency, refund_of, package_id, reason, at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
            .bind(&e.id).bind($clinic).bind($patient).bind(&e.invoice_id).bind(e.kind.as_str()).bind(&e.method)
            .bind(&e.reference).bind(e.minor).bind(&e.currency).bind(&e.refund_of).bind(&e.package_id).bind(&e.reason)
            .bind(e.at).bind(&e.recorded_by).execute(&mut *$tx).await?;
    }};
}

/// Rows of type `$ty` for many invoices: `$select` filtered by `$col IN
/// (...)`, 200 ids a query (PostgreSQL and SQLite both take that many
/// parameters comfortably), each chunk in `$order`.
macro_rules! for_invoices {
    ($store:expr, $ids:expr, $select:expr, $col:expr, $order:expr, $ty:ty) => {{
        let mut out: Vec<$ty> = vec![];
        for chunk in $ids.chunks(200) {
            let marks = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("{} WHERE {} IN ({marks}) ORDER BY {}", $select, $col, $order);
            let rows: Vec<$ty> = on_pool!($store.read(), p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await?
            });
            out.extend(rows);
        }
        out
    }};
}

/// What is still owed on invoice `i`: its charges less its discounts, less
/// what was paid or credited, plus what was refunded.
const INVOICE_BALANCE: &str = "CAST((SELECT COALESCE(SUM(CASE WHEN l.kind = 'charge' THEN l.amount_minor ELSE -l.amount_minor END), 0) \
     FROM invoice_lines l WHERE l.invoice_id = i.id) AS BIGINT) \
     - CAST((SELECT COALESCE(SUM(CASE WHEN e.kind = 'refund' THEN -e.amount_minor ELSE e.amount_minor END), 0) \
     FROM billing_entries e WHERE e.invoice_id = i.id) AS BIGINT) AS balance";

impl Store {
    pub async fn billing_settings(&self, clinic: &str) -> Result<Option<BillingSettings>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT clinic_id, legal_name, npi, tax_id, currency, refund_fee_minor \
                 FROM billing_settings WHERE clinic_id = $1")
                .bind(clinic).fetch_optional(p).await?
        }))
    }

    pub async fn set_billing_settings(
        &self,
        s: &BillingSettings,
        by: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM billing_settings WHERE clinic_id = $1").bind(&s.clinic_id).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO billing_settings (clinic_id, legal_name, npi, tax_id, currency, refund_fee_minor, \
                 updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&s.clinic_id).bind(&s.legal_name).bind(&s.npi).bind(&s.tax_id).bind(&s.currency)
                .bind(s.refund_fee_minor).bind(by).bind(self.now())
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn price_lists(&self, clinic: &str) -> Result<Vec<StoredPriceList>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, clinic_id, effective_from, currency, prices, created_at FROM price_lists \
                 WHERE clinic_id = $1 ORDER BY effective_from DESC")
                .bind(clinic).fetch_all(p).await?
        }))
    }

    /// Adds a price list; a list for the same date is refused (lists are kept as history).
    pub async fn insert_price_list(
        &self,
        l: &StoredPriceList,
        by: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM price_lists WHERE clinic_id = $1 AND effective_from = $2")
                .bind(&l.clinic_id).bind(&l.effective_from).fetch_optional(&mut *tx).await?;
            if taken.is_some() {
                return Err(DomainError::field(
                    "effective_from",
                    format!("a price list already starts on {}; choose another date", l.effective_from),
                ).into());
            }
            sqlx::query("INSERT INTO price_lists (id, clinic_id, effective_from, currency, prices, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&l.id).bind(&l.clinic_id).bind(&l.effective_from).bind(&l.currency).bind(&l.prices)
                .bind(by).bind(l.created_at).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn offers(&self, clinic: &str) -> Result<Vec<StoredOffer>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, clinic_id, name, rules, valid_from, valid_to, new_patients_only, first_n, \
                 stackable, active FROM offers WHERE clinic_id = $1 ORDER BY valid_from DESC, name")
                .bind(clinic).fetch_all(p).await?
        }))
    }

    pub async fn insert_offer(
        &self,
        o: &StoredOffer,
        by: &str,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO offers (id, clinic_id, name, rules, valid_from, valid_to, new_patients_only, \
                 first_n, stackable, active, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                .bind(&o.id).bind(&o.clinic_id).bind(&o.name).bind(&o.rules).bind(&o.valid_from).bind(&o.valid_to)
                .bind(o.new_patients_only).bind(o.first_n).bind(o.stackable).bind(o.active).bind(by)
                .bind(self.now()).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Ends or resumes an offer (offers already used stay on their invoices).
    pub async fn set_offer_active(
        &self,
        clinic: &str,
        id: &str,
        active: bool,
        audit: NewAuditEvent,
    ) -> Result<bool> {
        Ok(on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE offers SET active = $3 WHERE id = $1 AND clinic_id = $2")
                .bind(id).bind(clinic).bind(active).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                append_in_tx!(tx, &[audit], self.now())?;
            }
            tx.commit().await?;
            n == 1
        }))
    }

    pub async fn package_products(&self, clinic: &str) -> Result<Vec<PackageProduct>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, clinic_id, name, service, sessions, price_minor, currency, valid_days, active, \
                 monthly FROM package_products WHERE clinic_id = $1 ORDER BY name")
                .bind(clinic).fetch_all(p).await?
        }))
    }

    pub async fn insert_package_product(
        &self,
        k: &PackageProduct,
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM package_products WHERE clinic_id = $1 AND name = $2")
                .bind(&k.clinic_id).bind(&k.name).fetch_optional(&mut *tx).await?;
            if taken.is_some() {
                return Err(DomainError::field("name", "a package of this name exists").into());
            }
            sqlx::query("INSERT INTO package_products (id, clinic_id, name, service, sessions, price_minor, currency, \
                 valid_days, active, created_at, monthly) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                .bind(&k.id).bind(&k.clinic_id).bind(&k.name).bind(&k.service).bind(k.sessions).bind(k.price_minor)
                .bind(&k.currency).bind(k.valid_days).bind(k.active).bind(self.now()).bind(k.monthly)
                .execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The appointment as billing needs it, with its encounter if one was opened.
    pub async fn visit_for_billing(&self, appointment: &str) -> Result<Option<VisitForBilling>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT a.id AS appointment_id, a.clinic_id, a.patient_id, a.type_code, a.type_name, \
                 a.starts_at, a.ends_at, a.status, a.late_cancel, e.id AS encounter_id \
                 FROM appointments a LEFT JOIN encounters e ON e.appointment_id = a.id WHERE a.id = $1")
                .bind(appointment).fetch_optional(p).await?
        }))
    }

    /// Visits at a clinic in [from, to) that can be invoiced (attended, late
    /// cancelled or missed) and have no invoice yet.
    pub async fn visits_to_invoice(
        &self,
        clinic: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<VisitForBilling>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT a.id AS appointment_id, a.clinic_id, a.patient_id, a.type_code, a.type_name, \
                 a.starts_at, a.ends_at, a.status, a.late_cancel, e.id AS encounter_id \
                 FROM appointments a LEFT JOIN encounters e ON e.appointment_id = a.id \
                 WHERE a.clinic_id = $1 AND a.starts_at >= $2 AND a.starts_at < $3 \
                 AND (a.status IN ('completed', 'no_show') OR (a.status = 'cancelled' AND a.late_cancel)) \
                 AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.appointment_id = a.id) \
                 ORDER BY a.starts_at")
                .bind(clinic).bind(from).bind(to).fetch_all(p).await?
        }))
    }

    /// The infusion's running time, the ketamine given (from the Schedule III
    /// record) and the other medicines of an encounter.
    pub async fn encounter_facts(&self, encounter: &str) -> Result<EncounterFacts> {
        type Pairs = Vec<(String, i64)>;
        let (events, drug, meds): (Pairs, Pairs, Vec<(String, String)>) = on_pool!(self.read(), p => {
            let ev = sqlx::query_as("SELECT kind, at FROM administration_events WHERE encounter_id = $1 ORDER BY seq")
                .bind(encounter).fetch_all(p).await?;
            let drug = sqlx::query_as("SELECT pr.ndc, CAST(SUM(d.administered_ul * pr.strength_mg_per_ml) AS BIGINT) FROM cs_draws d \
                 JOIN cs_lots l ON l.id = d.lot_id JOIN cs_products pr ON pr.id = l.product_id \
                 JOIN dose_orders o ON o.id = d.dose_order_id \
                 WHERE o.encounter_id = $1 AND d.administered_ul > 0 GROUP BY pr.ndc ORDER BY pr.ndc")
                .bind(encounter).fetch_all(p).await?;
            let meds = sqlx::query_as("SELECT name, dose FROM encounter_medications WHERE encounter_id = $1 ORDER BY given_at")
                .bind(encounter).fetch_all(p).await?;
            (ev, drug, meds)
        });
        let start = events.iter().find(|(k, _)| k == "start").map(|(_, at)| *at);
        let stop = events
            .iter()
            .rev()
            .find(|(k, _)| k == "stop")
            .map(|(_, at)| *at);
        let infusion_minutes = match (start, stop) {
            (Some(a), Some(b)) if b > a => Some((b - a) / 60_000_000),
            _ => None,
        };
        // µL × mg/mL is µg; the superbill states mg.
        let drug = drug
            .into_iter()
            .next()
            .map(|(ndc, ug)| (ndc, ug as f64 / 1000.0));
        Ok(EncounterFacts {
            infusion_minutes,
            drug,
            medications: meds,
        })
    }

    /// Issues an invoice: the next number of its clinic, its lines, the
    /// package it sells, and the audit row, in one transaction. A visit is
    /// invoiced once (a second attempt is a conflict naming the invoice).
    pub async fn insert_invoice(&self, inv: &NewInvoice, audit: NewAuditEvent) -> Result<String> {
        let now = inv.issued_at;
        Ok(on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            if let Some(a) = &inv.appointment_id {
                let had: Option<(String,)> = sqlx::query_as("SELECT number FROM invoices WHERE appointment_id = $1")
                    .bind(a).fetch_optional(&mut *tx).await?;
                if let Some((n,)) = had {
                    return Err(DomainError::Conflict(format!("this visit is already on invoice {n}")).into());
                }
            }
            let (last,): (i64,) = sqlx::query_as("INSERT INTO invoice_counters (clinic_id, last) VALUES ($1, 1) \
                 ON CONFLICT (clinic_id) DO UPDATE SET last = invoice_counters.last + 1 RETURNING last")
                .bind(&inv.clinic_id).fetch_one(&mut *tx).await?;
            let (clinic_name,): (String,) = sqlx::query_as("SELECT name FROM clinics WHERE id = $1")
                .bind(&inv.clinic_id).fetch_one(&mut *tx).await?;
            // The clinic's initials ("Stillwater Glendale" is SG).
            let prefix: String = clinic_name
                .split_whitespace()
                .filter_map(|w| w.chars().find(|c| c.is_ascii_alphabetic()))
                .take(3)
                .collect::<String>()
                .to_ascii_uppercase();
            let number = format!("{prefix}-{last:05}");
            sqlx::query("INSERT INTO invoices (id, number, clinic_id, patient_id, appointment_id, kind, currency, \
                 service_date, issued_by, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(&inv.id).bind(&number).bind(&inv.clinic_id).bind(&inv.patient_id).bind(&inv.appointment_id)
                .bind(inv.kind).bind(&inv.currency).bind(&inv.service_date).bind(&inv.issued_by).bind(now)
                .execute(&mut *tx).await?;
            for (i, l) in inv.lines.iter().enumerate() {
                sqlx::query("INSERT INTO invoice_lines (invoice_id, seq, kind, service, description, codes, amount_minor, offer_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(&inv.id).bind(i as i64 + 1).bind(l.kind.as_str()).bind(&l.service).bind(&l.description)
                    .bind(&l.codes).bind(l.minor).bind(&l.offer_id).execute(&mut *tx).await?;
            }
            // The membership first: the package refers to it.
            let membership = match &inv.membership {
                None => None,
                Some(MembershipStep::Start(m)) => {
                    let r = sqlx::query("INSERT INTO memberships (id, clinic_id, patient_id, product_id, started_on, periods, \
                         status, created_by, created_at) VALUES ($1, $2, $3, $4, $5, 1, 'active', $6, $7)")
                        .bind(&m.id).bind(&inv.clinic_id).bind(&inv.patient_id).bind(&m.product_id).bind(&m.started_on)
                        .bind(&m.created_by).bind(now).execute(&mut *tx).await;
                    match r {
                        Err(e) if crate::is_unique_violation(&e, "memberships") => {
                            return Err(DomainError::Conflict(
                                "the patient already has this membership; cancel it before starting it again".into(),
                            ).into());
                        }
                        r => { r?; }
                    }
                    Some(m.id.clone())
                }
                Some(MembershipStep::Renew { id, billed }) => {
                    let n = sqlx::query("UPDATE memberships SET periods = periods + 1 WHERE id = $1 AND periods = $2 \
                         AND status = 'active'")
                        .bind(id).bind(billed).execute(&mut *tx).await?.rows_affected();
                    if n != 1 {
                        return Err(DomainError::Conflict("this month of the membership is billed already".into()).into());
                    }
                    Some(id.clone())
                }
            };
            if let Some(k) = &inv.package {
                sqlx::query("INSERT INTO packages (id, clinic_id, patient_id, product_id, name, service, sessions, price_minor, \
                     currency, invoice_id, purchased_at, expires_on, membership_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)")
                    .bind(&k.id).bind(&inv.clinic_id).bind(&inv.patient_id).bind(&k.product_id).bind(&k.name).bind(&k.service)
                    .bind(k.sessions).bind(k.price_minor).bind(&inv.currency).bind(&inv.id).bind(now).bind(&k.expires_on)
                    .bind(&membership)
                    .execute(&mut *tx).await?;
            }
            let mut audit = audit;
            audit.object_id = Some(inv.id.clone());
            let lines: Vec<(i64, String, String, i64)> = inv
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i as i64 + 1, l.kind.as_str().to_string(), l.service.clone(), l.minor))
                .collect();
            let seal = crate::seal::invoice(&inv.id, &number, &inv.patient_id, &inv.currency, &lines);
            crate::seal::add(&mut audit.detail, crate::seal::INVOICE, &inv.id, &seal);
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
            number
        }))
    }

    /// A patient's memberships, newest first.
    pub async fn memberships_of_patient(&self, patient: &str) -> Result<Vec<Membership>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {MEMBERSHIP_COLS} WHERE m.patient_id = $1 ORDER BY m.created_at DESC"))
                .bind(patient).fetch_all(p).await?
        }))
    }

    /// Every running membership (the renewal run reads them all; a clinic has
    /// hundreds at most).
    pub async fn active_memberships(&self) -> Result<Vec<Membership>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {MEMBERSHIP_COLS} WHERE m.status = 'active' ORDER BY m.id"))
                .fetch_all(p).await?
        }))
    }

    pub async fn membership(&self, id: &str) -> Result<Option<Membership>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {MEMBERSHIP_COLS} WHERE m.id = $1"))
                .bind(id).fetch_optional(p).await?
        }))
    }

    /// Ends a membership: no further months are billed; the month paid for
    /// keeps its sessions until it ends. `false` if it was not running.
    pub async fn cancel_membership(
        &self,
        id: &str,
        on: &str,
        reason: &str,
        audit: NewAuditEvent,
    ) -> Result<bool> {
        Ok(on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE memberships SET status = 'cancelled', cancelled_on = $2, cancel_reason = $3 \
                 WHERE id = $1 AND status = 'active'")
                .bind(id).bind(on).bind(reason).execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                append_in_tx!(tx, &[audit], self.now())?;
            }
            tx.commit().await?;
            n == 1
        }))
    }

    pub async fn invoice(&self, id: &str) -> Result<Option<Invoice>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {INVOICE_COLS} WHERE i.id = $1")).bind(id).fetch_optional(p).await?
        }))
    }

    /// A patient's invoices at the given clinics, newest first.
    pub async fn invoices_of_patient(&self, patient: &str) -> Result<Vec<Invoice>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {INVOICE_COLS} WHERE i.patient_id = $1 ORDER BY i.issued_at DESC"))
                .bind(patient).fetch_all(p).await?
        }))
    }

    /// A clinic's invoices issued in [from, to), newest first.
    pub async fn invoices_of_clinic(
        &self,
        clinic: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Invoice>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {INVOICE_COLS} WHERE i.clinic_id = $1 AND i.issued_at >= $2 AND i.issued_at < $3 \
                 ORDER BY i.issued_at DESC"))
                .bind(clinic).bind(from).bind(to).fetch_all(p).await?
        }))
    }

    /// The lines of the given invoices, in order.
    pub async fn invoice_lines(&self, invoices: &[String]) -> Result<Vec<InvoiceLine>> {
        Ok(for_invoices!(
            self,
            invoices,
            "SELECT invoice_id, seq, kind, service, description, codes, amount_minor, offer_id FROM invoice_lines",
            "invoice_id",
            "invoice_id, seq",
            InvoiceLine
        ))
    }

    /// Lines of the invoices a clinic issued in [from, to), summed by invoice
    /// kind, service, line kind and offer: (invoice kind, service, line kind,
    /// offer, count, amount).
    pub async fn billing_line_sums(
        &self,
        clinic: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, String, String, Option<String>, i64, i64)>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT i.kind, l.service, l.kind, l.offer_id, COUNT(*), CAST(SUM(l.amount_minor) AS BIGINT) \
                 FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id \
                 WHERE i.clinic_id = $1 AND i.issued_at >= $2 AND i.issued_at < $3 \
                 GROUP BY i.kind, l.service, l.kind, l.offer_id ORDER BY l.service")
                .bind(clinic).bind(from).bind(to).fetch_all(p).await?
        }))
    }

    /// Package credit spent on the invoices a clinic issued in [from, to),
    /// net of its refunds, by the packages' service: (service, amount). The
    /// package's sale was the revenue; these visits were paid from it.
    pub async fn billing_package_credit_sums(
        &self,
        clinic: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64)>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT k.service, \
                   CAST(SUM(CASE WHEN e.kind = 'refund' THEN -e.amount_minor ELSE e.amount_minor END) AS BIGINT) \
                 FROM billing_entries e JOIN invoices i ON i.id = e.invoice_id JOIN packages k ON k.id = e.package_id \
                 WHERE i.clinic_id = $1 AND i.issued_at >= $2 AND i.issued_at < $3 \
                   AND e.method = 'package_credit' AND e.kind IN ('payment', 'refund') \
                 GROUP BY k.service ORDER BY k.service")
                .bind(clinic).bind(from).bind(to).fetch_all(p).await?
        }))
    }

    /// A clinic's invoices with something still owed: (id, number, patient,
    /// issued at, balance). The balance is the lines less the entries, as
    /// [`account_of`] derives it.
    pub async fn billing_open_invoices(
        &self,
        clinic: &str,
    ) -> Result<Vec<(String, String, String, i64, i64)>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT id, number, patient_name, issued_at, balance FROM ( \
                 SELECT i.id, i.number, pa.given_name || ' ' || pa.family_name AS patient_name, i.issued_at, \
                 {INVOICE_BALANCE} FROM invoices i JOIN patients pa ON pa.id = i.patient_id WHERE i.clinic_id = $1) x \
                 WHERE balance > 0 ORDER BY issued_at"))
                .bind(clinic).fetch_all(p).await?
        }))
    }

    /// What each patient owes a clinic across their open invoices (only
    /// those who owe something).
    pub async fn billing_balances_due(&self, clinic: &str) -> Result<Vec<(String, i64)>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT patient_id, CAST(SUM(balance) AS BIGINT) FROM ( \
                 SELECT i.patient_id, {INVOICE_BALANCE} FROM invoices i WHERE i.clinic_id = $1) x \
                 WHERE balance > 0 GROUP BY patient_id"))
                .bind(clinic).fetch_all(p).await?
        }))
    }

    /// The entries of the given invoices, in the order they were written.
    pub async fn billing_entries(&self, invoices: &[String]) -> Result<Vec<BillingEntry>> {
        Ok(for_invoices!(
            self,
            invoices,
            format!("SELECT {ENTRY_COLS}"),
            "e.invoice_id",
            "e.seq",
            BillingEntry
        ))
    }

    /// A clinic's entries recorded in [from, to), in order (the day close).
    pub async fn billing_entries_of_clinic(
        &self,
        clinic: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<BillingEntry>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {ENTRY_COLS} WHERE e.clinic_id = $1 AND e.at >= $2 AND e.at < $3 ORDER BY e.seq"))
                .bind(clinic).bind(from).bind(to).fetch_all(p).await?
        }))
    }

    /// How often each offer discounted each service for a patient at a
    /// clinic, and the day of their first charge there.
    pub async fn offer_history(
        &self,
        clinic: &str,
        patient: &str,
    ) -> Result<(Vec<(String, String, i64)>, Option<String>)> {
        Ok(on_pool!(self.read(), p => {
            let uses = sqlx::query_as("SELECT l.offer_id, l.service, COUNT(*) FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id \
                 WHERE i.clinic_id = $1 AND i.patient_id = $2 AND l.kind = 'discount' AND l.offer_id IS NOT NULL \
                 GROUP BY l.offer_id, l.service")
                .bind(clinic).bind(patient).fetch_all(p).await?;
            let first: Option<(Option<String>,)> = sqlx::query_as("SELECT MIN(service_date) FROM invoices WHERE clinic_id = $1 AND patient_id = $2 AND kind = 'visit'")
                .bind(clinic).bind(patient).fetch_optional(p).await?;
            (uses, first.and_then(|f| f.0))
        }))
    }

    /// Records a payment, refund or credit note. Under a lock on the invoice
    /// the account is rebuilt from what is stored and the entry applied to it
    /// first: a refund above what was paid, a payment above what is owed, a
    /// second currency, or a session from a package that has none left is
    /// refused and nothing is written.
    pub async fn record_billing_entry(
        &self,
        e: &NewEntry,
        jobs: &[crate::outbox::NewJob],
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE invoices SET issued_at = issued_at WHERE id = $1")
                .bind(&e.invoice_id).execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Err(DomainError::NotFound.into());
            }
            let (clinic, patient, currency): (String, String, String) = sqlx::query_as("SELECT clinic_id, patient_id, currency FROM invoices WHERE id = $1")
                .bind(&e.invoice_id).fetch_one(&mut *tx).await?;
            let lines: Vec<InvoiceLine> = sqlx::query_as("SELECT invoice_id, seq, kind, service, description, codes, amount_minor, offer_id \
                 FROM invoice_lines WHERE invoice_id = $1 ORDER BY seq")
                .bind(&e.invoice_id).fetch_all(&mut *tx).await?;
            let entries: Vec<BillingEntry> = sqlx::query_as(&format!("SELECT {ENTRY_COLS} WHERE e.invoice_id = $1 ORDER BY e.seq"))
                .bind(&e.invoice_id).fetch_all(&mut *tx).await?;
            let (mut account, pos) = account_of(&lines, &entries, &currency)?;
            let refund_of = match &e.refund_of {
                Some(r) => Some(pos.iter().find(|(id, _)| id == r).map(|(_, p)| *p)
                    .ok_or_else(|| DomainError::field("payment", "no such payment on this invoice"))?),
                None => None,
            };
            if e.currency != currency {
                return Err(DomainError::field("currency", format!(
                    "this invoice is in {currency}; an amount in {} cannot be mixed into it", e.currency)).into());
            }
            account.apply(&Entry { kind: e.kind, minor: e.minor, currency: e.currency.clone(), refund_of })?;
            if e.kind == EntryKind::Payment && e.method.as_deref() == Some("package_credit") {
                let k = e.package_id.as_deref().ok_or_else(|| DomainError::field("package", "choose the package to use"))?;
                // Lock the package too: two desks cannot spend its last session twice.
                sqlx::query("UPDATE packages SET refunded_at = refunded_at WHERE id = $1").bind(k).execute(&mut *tx).await?;
                let pk: Option<Package> = sqlx::query_as(&format!("SELECT {PACKAGE_COLS} WHERE k.id = $1"))
                    .bind(k).fetch_optional(&mut *tx).await?;
                let pk = pk.filter(|pk| pk.patient_id == patient && pk.clinic_id == clinic)
                    .ok_or_else(|| DomainError::field("package", "not a package of this patient at this clinic"))?;
                if pk.left() < 1 {
                    return Err(DomainError::field("package", format!("{} has no sessions left", pk.name)).into());
                }
                let today = domain::time::to_timestamp(e.at).to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
                if pk.expires_on.as_deref().is_some_and(|x| x < today.as_str()) {
                    return Err(DomainError::field("package", format!("{} expired on {}", pk.name, pk.expires_on.clone().unwrap_or_default())).into());
                }
                let covers = lines.iter().any(|l| l.kind == "charge" && l.service == pk.service);
                if !covers {
                    return Err(DomainError::field("package", format!("{} does not cover any service on this invoice", pk.name)).into());
                }
            }
            insert_entry!(tx, e, &clinic, &patient);
            let mut audit = audit;
            crate::seal::add(&mut audit.detail, crate::seal::ENTRY, &e.id, &e.seal());
            crate::insert_jobs!(tx, jobs, self.now())?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Queues e-mails (a statement) with the audit row that says so.
    pub async fn enqueue_jobs(
        &self,
        jobs: &[crate::outbox::NewJob],
        audit: NewAuditEvent,
    ) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            crate::insert_jobs!(tx, jobs, self.now())?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn packages_of_patient(&self, patient: &str) -> Result<Vec<Package>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {PACKAGE_COLS} WHERE k.patient_id = $1 ORDER BY k.purchased_at DESC"))
                .bind(patient).fetch_all(p).await?
        }))
    }

    pub async fn packages_of_clinic(&self, clinic: &str) -> Result<Vec<Package>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {PACKAGE_COLS} WHERE k.clinic_id = $1 ORDER BY k.purchased_at DESC"))
                .bind(clinic).fetch_all(p).await?
        }))
    }

    pub async fn package(&self, id: &str) -> Result<Option<Package>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as(&format!("SELECT {PACKAGE_COLS} WHERE k.id = $1")).bind(id).fetch_optional(p).await?
        }))
    }

    /// Closes a package: the refund entries (if any money goes back) and
    /// the package marked refunded, in one transaction; a package refunded
    /// before is a conflict.
    pub async fn refund_package(
        &self,
        package: &str,
        used: i64,
        refunds: &[NewEntry],
        audit: NewAuditEvent,
    ) -> Result<()> {
        let now = self.now();
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE packages SET refunded_at = $2 WHERE id = $1 AND refunded_at IS NULL")
                .bind(package).bind(now).execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                return Err(DomainError::Conflict("this package was refunded already".into()).into());
            }
            // The refund was worked out from `used` sessions; one used since changes it.
            let now_used: Option<Package> = sqlx::query_as(&format!("SELECT {PACKAGE_COLS} WHERE k.id = $1"))
                .bind(package).fetch_optional(&mut *tx).await?;
            if now_used.is_some_and(|k| k.used != used) {
                return Err(DomainError::Conflict("a session of this package was used meanwhile: open it again".into()).into());
            }
            for e in refunds {
                // Under the invoice's lock, the account as it stands now takes
                // each refund (a payment refunded meanwhile cannot be refunded
                // twice), as for any other entry.
                sqlx::query("UPDATE invoices SET issued_at = issued_at WHERE id = $1")
                    .bind(&e.invoice_id).execute(&mut *tx).await?;
                let (clinic, patient, currency): (String, String, String) = sqlx::query_as(
                    "SELECT clinic_id, patient_id, currency FROM invoices WHERE id = $1")
                    .bind(&e.invoice_id).fetch_one(&mut *tx).await?;
                let lines: Vec<InvoiceLine> = sqlx::query_as("SELECT invoice_id, seq, kind, service, description, codes, \
                     amount_minor, offer_id FROM invoice_lines WHERE invoice_id = $1 ORDER BY seq")
                    .bind(&e.invoice_id).fetch_all(&mut *tx).await?;
                let entries: Vec<BillingEntry> = sqlx::query_as(&format!("SELECT {ENTRY_COLS} WHERE e.invoice_id = $1 ORDER BY e.seq"))
                    .bind(&e.invoice_id).fetch_all(&mut *tx).await?;
                let (mut account, pos) = account_of(&lines, &entries, &currency)?;
                let refund_of = e.refund_of.as_ref().and_then(|r| pos.iter().find(|(id, _)| id == r).map(|(_, p)| *p));
                if e.refund_of.is_some() && refund_of.is_none() {
                    return Err(DomainError::field("payment", "no such payment on this invoice").into());
                }
                account.apply(&Entry { kind: e.kind, minor: e.minor, currency: e.currency.clone(), refund_of })?;
                insert_entry!(tx, e, &clinic, &patient);
            }
            let mut audit = audit;
            for e in refunds {
                crate::seal::add(&mut audit.detail, crate::seal::ENTRY, &e.id, &e.seal());
            }
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn insert_estimate(&self, e: &StoredEstimate, audit: NewAuditEvent) -> Result<()> {
        on_pool!(self.write(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO estimates (id, clinic_id, patient_id, input, estimate, total_minor, currency, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&e.id).bind(&e.clinic_id).bind(&e.patient_id).bind(&e.input).bind(&e.estimate).bind(e.total_minor)
                .bind(&e.currency).bind(&e.created_by).bind(e.created_at).execute(&mut *tx).await?;
            append_in_tx!(tx, &[audit], self.now())?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn estimates_of_patient(&self, patient: &str) -> Result<Vec<StoredEstimate>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT e.id, e.clinic_id, e.patient_id, e.input, e.estimate, e.total_minor, e.currency, \
                 u.username AS created_by, e.created_at FROM estimates e JOIN users u ON u.id = e.created_by \
                 WHERE e.patient_id = $1 ORDER BY e.created_at DESC")
                .bind(patient).fetch_all(p).await?
        }))
    }
}
