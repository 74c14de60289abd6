//! Seals: the SHA-256 of a record's fields that matter, written into the
//! audit event of the transaction that made the record. The audit chain is
//! hash-linked and anchored outside the database (`stillwater anchor`), so a
//! record changed afterwards, even by someone who can write the database and
//! disable its triggers, no longer matches the seal the chain holds, and a
//! record deleted leaves its seal without it. `stillwater verify` checks both.

use sha2::{Digest, Sha256};

/// What kinds of record carry a seal, as they are named in the trail.
pub const ENTRY: &str = "entry";
pub const INVOICE: &str = "invoice";

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so no two different records read the same.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A billing entry's seal: what was paid, refunded or credited, on which
/// invoice, when and how.
#[allow(clippy::too_many_arguments)]
pub fn entry(
    id: &str,
    invoice: &str,
    kind: &str,
    method: Option<&str>,
    minor: i64,
    currency: &str,
    refund_of: Option<&str>,
    package: Option<&str>,
    at: i64,
) -> String {
    digest(&[
        ENTRY,
        id,
        invoice,
        kind,
        method.unwrap_or(""),
        &minor.to_string(),
        currency,
        refund_of.unwrap_or(""),
        package.unwrap_or(""),
        &at.to_string(),
    ])
}

/// An invoice's seal: its number, patient, currency and every line's amount.
pub fn invoice(
    id: &str,
    number: &str,
    patient: &str,
    currency: &str,
    lines: &[(i64, String, String, i64)],
) -> String {
    let mut parts: Vec<String> = vec![
        INVOICE.into(),
        id.into(),
        number.into(),
        patient.into(),
        currency.into(),
    ];
    for (seq, kind, service, minor) in lines {
        parts.push(format!("{seq}:{kind}:{service}:{minor}"));
    }
    digest(&parts.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Adds a seal to an audit event's detail: `seal <kind>:<id>:<sha256>`.
pub fn add(detail: &mut Option<String>, kind: &str, id: &str, seal: &str) {
    let tag = format!("seal {kind}:{id}:{seal}");
    *detail = Some(match detail.take() {
        Some(d) if !d.is_empty() => format!("{d}; {tag}"),
        _ => tag,
    });
}

/// The seals in an audit event's detail: (kind, id, sha256).
pub fn read(detail: &str) -> Vec<(String, String, String)> {
    detail
        .split("seal ")
        .skip(1)
        .filter_map(|s| {
            let s = s.split(';').next()?.trim();
            let mut it = s.splitn(3, ':');
            let (k, id, h) = (it.next()?, it.next()?, it.next()?);
            (h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| (k.to_string(), id.to_string(), h.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn seals_read_back_from_a_detail() {
        let e = super::entry(
            "e1",
            "i1",
            "payment",
            Some("card"),
            27500,
            "USD",
            None,
            None,
            5,
        );
        let mut d = Some("card $275.00".to_string());
        super::add(&mut d, super::ENTRY, "e1", &e);
        assert_eq!(
            super::read(d.as_deref().unwrap()),
            vec![("entry".to_string(), "e1".to_string(), e.clone())]
        );
        // Any field changed is another seal.
        assert_ne!(
            e,
            super::entry(
                "e1",
                "i1",
                "payment",
                Some("card"),
                127500,
                "USD",
                None,
                None,
                5
            )
        );
    }
}
