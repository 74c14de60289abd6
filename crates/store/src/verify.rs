//! What `stillwater verify` reads: the heads of the two hash chains and the
//! hash at any row (to hold them against the anchors kept outside the
//! database), and every record that is sealed or hashed, checked against
//! itself and against the audit chain: signed notes and addenda, billing
//! entries and invoices. The chains themselves are walked by
//! [`Store::audit_verify`] and [`Store::cs_verify`].

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::{on_pool, Result, Store};

/// What the records check found: how many were checked, and each problem
/// in words (no patient data: ids and kinds only).
#[derive(Debug, Default, Clone)]
pub struct RecordCheck {
    pub notes: usize,
    pub addenda: usize,
    pub entries: usize,
    pub invoices: usize,
    /// Records made before seals existed (not a fault; counted).
    pub unsealed: usize,
    /// Records whose seal was in an archive deleted past the retention.
    pub expired: usize,
    pub problems: Vec<String>,
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Whether an audit record signs a note or seals a record (what
/// [`Store::verify_records`] holds the records against).
pub fn seals_in(r: &domain::audit::AuditRecord) -> bool {
    matches!(r.action.as_str(), "note.sign" | "note.addendum")
        || r.detail.as_deref().is_some_and(|d| d.contains("seal "))
}

impl Store {
    /// The audit chain's head: (length, hash of the last row).
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        self.audit_flush().await;
        Ok(on_pool!(self.trail(), p => {
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(p).await?
        }))
    }

    /// The audit chain's hash at row `seq`, if the row is there.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        let hash: Option<Vec<u8>> = on_pool!(self.trail(), p => {
            sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1").bind(seq).fetch_optional(p).await?
        });
        if hash.is_none() {
            // The last archived row: the base holds its hash.
            let base = self.audit_base().await?;
            if base.0 == seq && seq > 0 {
                return Ok(Some(base.1));
            }
        }
        Ok(hash.map(hex::encode))
    }

    /// The Schedule III ledger's head: (length, hash of the last row).
    pub async fn cs_head(&self) -> Result<(i64, String)> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_as("SELECT seq, hash FROM cs_head WHERE id = 1").fetch_one(p).await?
        }))
    }

    pub async fn cs_hash_at(&self, seq: i64) -> Result<Option<String>> {
        Ok(on_pool!(self.read(), p => {
            sqlx::query_scalar("SELECT hash FROM cs_ledger WHERE seq = $1").bind(seq).fetch_optional(p).await?
        }))
    }

    /// Checks every signed note and addendum (its text against its hash,
    /// and the hash against the one the audit chain recorded at signing),
    /// every billing entry and invoice against the seal the chain holds, and
    /// that no sealed record has gone.
    pub async fn verify_records(&self) -> Result<RecordCheck> {
        self.verify_records_with(vec![], None).await
    }

    /// [`Store::verify_records`], with what the archived part of the chain
    /// recorded (its events' action, object and detail where they sign a
    /// note or seal a record; [`seals_in`]).
    pub async fn verify_records_with(
        &self,
        archived: Vec<(String, Option<String>, Option<String>)>,
        expired_before: Option<i64>,
    ) -> Result<RecordCheck> {
        self.audit_flush().await;
        let mut out = RecordCheck::default();
        // What the chain recorded: note hashes by visit, and the seals.
        let mut trail: Vec<(String, Option<String>, Option<String>)> = on_pool!(self.trail(), p => {
            sqlx::query_as("SELECT a.term, o.term, e.detail FROM audit_events e \
                 JOIN audit_terms a ON a.id = e.action_t LEFT JOIN audit_terms o ON o.id = e.object_t \
                 WHERE e.action_t IN (SELECT id FROM audit_terms WHERE term IN ('note.sign', 'note.addendum')) \
                 OR e.detail LIKE '%seal %'")
                .fetch_all(p).await?
        });
        // The archived part first: it was recorded first.
        let mut all = archived;
        all.append(&mut trail);
        let trail = all;
        let legacy: HashSet<(String, String)> = on_pool!(self.read(), p => {
            sqlx::query_as::<_, (String, String)>("SELECT kind, id FROM unsealed_records").fetch_all(p).await?
        })
        .into_iter()
        .collect();
        let missing = |out: &mut RecordCheck, kind: &str, id: &str, at: i64, what: String| {
            if expired_before.is_some_and(|t| at < t) {
                out.expired += 1;
            } else if legacy.contains(&(kind.to_string(), id.to_string())) {
                out.unsealed += 1;
            } else {
                out.problems.push(format!(
                    "{what} has no record in the audit chain: the audit event that made it never reached the chain"
                ));
            }
        };
        let mut note_hash: HashMap<String, String> = HashMap::new();
        // Addendum hashes the chain recorded, by visit.
        let mut addendum_hashes: HashMap<String, HashSet<String>> = HashMap::new();
        let mut seals: HashMap<(String, String), String> = HashMap::new();
        for (action, object, detail) in &trail {
            let detail = detail.as_deref().unwrap_or("");
            let hash = detail.strip_prefix("sha256 ").map(str::to_string);
            match (action.as_str(), object, hash) {
                ("note.sign", Some(o), Some(h)) => {
                    note_hash.insert(o.clone(), h);
                }
                ("note.addendum", Some(o), Some(h)) => {
                    addendum_hashes.entry(o.clone()).or_default().insert(h);
                }
                _ => {}
            }
            for (kind, id, h) in crate::seal::read(detail) {
                seals.insert((kind, id), h);
            }
        }
        type Notes = Vec<(String, String, String, i64)>;
        type Addenda = Vec<(String, String, String, String, i64)>;
        let (notes, addenda): (Notes, Addenda) = on_pool!(self.read(), p => {
            let n = sqlx::query_as("SELECT encounter_id, body, sha256, signed_at FROM session_notes").fetch_all(p).await?;
            let a = sqlx::query_as("SELECT a.id, n.encounter_id, a.body, a.sha256, a.signed_at FROM note_addenda a \
                 JOIN session_notes n ON n.id = a.note_id").fetch_all(p).await?;
            (n, a)
        });
        for (encounter, body, stored, signed_at) in &notes {
            out.notes += 1;
            if sha(body) != *stored {
                out.problems.push(format!("the signed note of visit {encounter} does not match its hash: its text was changed"));
            }
            match note_hash.get(encounter) {
                Some(h) if h != stored => out.problems.push(format!(
                    "the signed note of visit {encounter} is not the note the audit chain recorded at signing"
                )),
                Some(_) => {}
                None => missing(&mut out, "note", encounter, *signed_at, format!("the signed note of visit {encounter}")),
            }
        }
        let signed: HashSet<&str> = notes.iter().map(|(e, _, _, _)| e.as_str()).collect();
        for encounter in note_hash.keys() {
            if !signed.contains(encounter.as_str()) {
                out.problems.push(format!(
                    "the signed note of visit {encounter} was recorded in the audit chain but is gone from the database"
                ));
            }
        }
        for (id, encounter, body, stored, signed_at) in &addenda {
            out.addenda += 1;
            if sha(body) != *stored {
                out.problems.push(format!(
                    "addendum {id} does not match its hash: its text was changed"
                ));
            }
            let recorded = addendum_hashes.get(encounter);
            if recorded.is_some_and(|h| !h.contains(stored)) {
                out.problems
                    .push(format!("addendum {id} is not one the audit chain recorded"));
            } else if recorded.is_none() {
                missing(
                    &mut out,
                    "addendum",
                    id,
                    *signed_at,
                    format!("addendum {id}"),
                );
            }
        }
        // Billing entries and invoices against their seals.
        type EntryRow = (
            String,
            String,
            String,
            Option<String>,
            i64,
            String,
            Option<String>,
            Option<String>,
            i64,
        );
        let entries: Vec<EntryRow> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, invoice_id, kind, method, amount_minor, currency, refund_of, package_id, at \
                 FROM billing_entries").fetch_all(p).await?
        });
        let mut present: HashSet<(String, String)> = HashSet::new();
        for (id, invoice, kind, method, minor, currency, refund_of, package, at) in &entries {
            out.entries += 1;
            present.insert((crate::seal::ENTRY.to_string(), id.clone()));
            let now = crate::seal::entry(
                id,
                invoice,
                kind,
                method.as_deref(),
                *minor,
                currency,
                refund_of.as_deref(),
                package.as_deref(),
                *at,
            );
            match seals.get(&(crate::seal::ENTRY.to_string(), id.clone())) {
                Some(h) if *h != now => out.problems.push(format!(
                    "billing entry {id} ({kind}) is not what was recorded: its amount or details were changed"
                )),
                Some(_) => {}
                None => missing(&mut out, crate::seal::ENTRY, id, *at, format!("billing entry {id} ({kind})")),
            }
        }
        let invoices: Vec<(String, String, String, String, i64)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT id, number, patient_id, currency, issued_at FROM invoices").fetch_all(p).await?
        });
        let lines: Vec<(String, i64, String, String, i64)> = on_pool!(self.read(), p => {
            sqlx::query_as("SELECT invoice_id, seq, kind, service, amount_minor FROM invoice_lines ORDER BY invoice_id, seq")
                .fetch_all(p).await?
        });
        let mut by_invoice: HashMap<&str, Vec<(i64, String, String, i64)>> = HashMap::new();
        for (inv, seq, kind, service, minor) in &lines {
            by_invoice.entry(inv.as_str()).or_default().push((
                *seq,
                kind.clone(),
                service.clone(),
                *minor,
            ));
        }
        for (id, number, patient, currency, issued_at) in &invoices {
            out.invoices += 1;
            present.insert((crate::seal::INVOICE.to_string(), id.clone()));
            let l = by_invoice.get(id.as_str()).cloned().unwrap_or_default();
            let now = crate::seal::invoice(id, number, patient, currency, &l);
            match seals.get(&(crate::seal::INVOICE.to_string(), id.clone())) {
                Some(h) if *h != now => out.problems.push(format!(
                    "invoice {number} is not what was issued: a line or its total was changed"
                )),
                Some(_) => {}
                None => missing(
                    &mut out,
                    crate::seal::INVOICE,
                    id,
                    *issued_at,
                    format!("invoice {number}"),
                ),
            }
        }
        for (kind, id) in seals.keys() {
            if !present.contains(&(kind.clone(), id.clone())) {
                out.problems.push(format!(
                    "{kind} {id} was recorded in the audit chain but is gone from the database"
                ));
            }
        }
        Ok(out)
    }
}
