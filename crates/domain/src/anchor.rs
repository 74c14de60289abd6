//! Anchors: the head of a hash chain (the audit trail, the Schedule III
//! ledger) at a moment, signed with a key that lives outside the database
//! (a key file or an environment secret) and kept where the operator chooses
//! (an append-only file on other storage, a second database, an e-mailed
//! digest). Someone who can write the database can rewrite a chain and
//! recompute every hash, but cannot sign an anchor, so `verify` finds the
//! chain no longer holding what the last anchor saw: rows removed from its
//! tail with the head moved back, or a row changed and the rest recomputed.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The chains anchored.
pub const AUDIT: &str = "audit";
pub const SUBSTANCES: &str = "substances";

/// One signed checkpoint of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    pub chain: String,
    /// The chain's length then, and the hash of its last row.
    pub seq: i64,
    pub hash: String,
    /// When it was taken (microseconds).
    pub at: i64,
    /// HMAC-SHA256 of the fields above with the anchor key, hex.
    pub mac: String,
}

/// The shortest key accepted (bytes).
pub const MIN_KEY: usize = 32;

fn mac_of(key: &[u8], chain: &str, seq: i64, hash: &str, at: i64) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).ok()?;
    m.update(format!("stillwater-anchor-v1\n{chain}\n{seq}\n{hash}\n{at}").as_bytes());
    Some(m)
}

impl Anchor {
    /// Signs a chain's head.
    pub fn sign(key: &[u8], chain: &str, seq: i64, hash: &str, at: i64) -> Option<Anchor> {
        if key.len() < MIN_KEY {
            return None;
        }
        let mac = hex::encode(mac_of(key, chain, seq, hash, at)?.finalize().into_bytes());
        Some(Anchor {
            chain: chain.into(),
            seq,
            hash: hash.into(),
            at,
            mac,
        })
    }

    /// Whether the anchor was signed with `key` (in constant time).
    pub fn verify(&self, key: &[u8]) -> bool {
        let Ok(given) = hex::decode(&self.mac) else {
            return false;
        };
        match mac_of(key, &self.chain, self.seq, &self.hash, self.at) {
            Some(m) => m.verify_slice(&given).is_ok(),
            None => false,
        }
    }

    /// One line of an anchor file.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Reads an anchor file's lines; a line that does not read is named.
pub fn parse_lines(text: &str) -> Result<Vec<Anchor>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str::<Anchor>(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// What the last anchor of a chain says of the chain as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The chain holds the anchored row with the anchored hash, and is at
    /// least as long.
    Holds { anchored: i64, now: i64 },
    /// The chain is shorter than when anchored: rows removed from its tail.
    Truncated { anchored: i64, now: i64 },
    /// The row the anchor saw has another hash: the chain was rewritten.
    Rewritten { seq: i64 },
    /// No anchor of this chain signed with this key.
    NoAnchor,
    /// An anchor that does not verify with the key (forged or another key).
    BadSignature { line_seq: i64 },
}

/// Checks a chain (its length now, and the hash it has at a row) against
/// the newest anchor of it that verifies with `key`. Anchors that do not
/// verify are reported first: an anchor file is written only by Stillwater.
pub fn check(
    key: &[u8],
    anchors: &[Anchor],
    chain: &str,
    len_now: i64,
    hash_at: impl Fn(i64) -> Option<String>,
) -> Check {
    let mine: Vec<&Anchor> = anchors.iter().filter(|a| a.chain == chain).collect();
    if let Some(bad) = mine.iter().find(|a| !a.verify(key)) {
        return Check::BadSignature { line_seq: bad.seq };
    }
    let Some(last) = mine.iter().max_by_key(|a| (a.seq, a.at)) else {
        return Check::NoAnchor;
    };
    if len_now < last.seq {
        return Check::Truncated {
            anchored: last.seq,
            now: len_now,
        };
    }
    if last.seq > 0 && hash_at(last.seq).as_deref() != Some(last.hash.as_str()) {
        return Check::Rewritten { seq: last.seq };
    }
    Check::Holds {
        anchored: last.seq,
        now: len_now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn an_anchor_finds_a_truncated_or_rewritten_chain() {
        let a = Anchor::sign(KEY, AUDIT, 10, "h10", 1).unwrap();
        let chain = |n: i64| move |s: i64| (s <= n).then(|| format!("h{s}"));
        assert_eq!(
            check(KEY, std::slice::from_ref(&a), AUDIT, 12, chain(12)),
            Check::Holds {
                anchored: 10,
                now: 12
            }
        );
        // The tail removed and the head moved back.
        assert_eq!(
            check(KEY, std::slice::from_ref(&a), AUDIT, 8, chain(8)),
            Check::Truncated {
                anchored: 10,
                now: 8
            }
        );
        // A middle row changed and every later hash recomputed.
        let rewritten = |s: i64| Some(format!("x{s}"));
        assert_eq!(
            check(KEY, std::slice::from_ref(&a), AUDIT, 12, rewritten),
            Check::Rewritten { seq: 10 }
        );
        // Without the key, no anchor can be made that verifies.
        let forged =
            Anchor::sign(b"another key, another key, another", AUDIT, 12, "x12", 2).unwrap();
        assert_eq!(
            check(KEY, &[a.clone(), forged], AUDIT, 12, rewritten),
            Check::BadSignature { line_seq: 12 }
        );
        let mut tampered = a.clone();
        tampered.seq = 5;
        assert!(!tampered.verify(KEY));
        assert_eq!(check(KEY, &[], AUDIT, 3, chain(3)), Check::NoAnchor);
        assert!(Anchor::sign(b"short", AUDIT, 1, "h", 1).is_none());
        let lines = format!("{}\n{}\n", a.to_line(), a.to_line());
        assert_eq!(parse_lines(&lines).unwrap().len(), 2);
        assert!(parse_lines("{nope}").unwrap_err().contains("line 1"));
    }
}
