//! Anchoring the hash chains outside the database, and `stillwater verify`.
//!
//! An anchor is the head of the audit trail or of the Schedule III ledger,
//! signed with a key the database never holds (`domain::anchor`), appended
//! to a file the operator keeps on other storage. `verify` walks both
//! chains, holds each against its newest anchor, and checks every sealed or
//! hashed record (signed notes and addenda, billing entries, invoices, the
//! Schedule III balances) against itself and the chain.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use domain::anchor::{self, Anchor, Check};
use store::audit::VerifyOutcome;
use store::Store;

/// Signs the heads of both chains and appends them to the anchor file.
pub async fn write(store: &Store, key: &[u8], path: &Path) -> anyhow::Result<Vec<Anchor>> {
    let now = store.now();
    let (aseq, ahash) = store.audit_head().await?;
    let (cseq, chash) = store.cs_head().await?;
    let made: Vec<Anchor> = [
        (anchor::AUDIT, aseq, ahash),
        (anchor::SUBSTANCES, cseq, chash),
    ]
    .into_iter()
    .map(|(chain, seq, hash)| {
        Anchor::sign(key, chain, seq, &hash, now)
            .context("the anchor key is too short (at least 32 characters)")
    })
    .collect::<anyhow::Result<_>>()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the anchor folder {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the anchor file {}", path.display()))?;
    for a in &made {
        writeln!(f, "{}", a.to_line())?;
    }
    f.sync_all()?;
    Ok(made)
}

/// Writes anchors every `minutes` until `stop` turns true (the server).
pub fn start(
    store: Store,
    key: Vec<u8>,
    path: std::path::PathBuf,
    minutes: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if minutes == 0 {
        return;
    }
    tokio::spawn(async move {
        let every = std::time::Duration::from_secs(minutes * 60);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
            if let Err(e) = write(&store, &key, &path).await {
                tracing::error!(error = %e, "writing the chain anchors failed");
            }
        }
    });
}

/// What `verify` found: one line per check, and whether all passed.
pub struct Report {
    pub lines: Vec<String>,
    pub ok: bool,
}

/// Checks everything: both chains, both against the anchors, and the sealed
/// records. Without a key or an anchor file, the anchors are reported as
/// not checked (a failure: a chain is only as good as its last anchor).
pub async fn verify(
    store: &Store,
    key: Option<&[u8]>,
    path: &Path,
    archives: &Path,
) -> anyhow::Result<Report> {
    let mut lines = vec![];
    let mut ok = true;
    let mut fail = |lines: &mut Vec<String>, l: String| {
        ok = false;
        lines.push(format!("FAIL {l}"));
    };
    match store.audit_verify().await? {
        VerifyOutcome::Intact { events } => lines.push(format!("ok   audit chain: {events} events linked")),
        VerifyOutcome::Broken(b) => fail(&mut lines, format!("audit chain broken: {b:?}")),
        VerifyOutcome::Truncated { head_seq, last_seq } => fail(
            &mut lines,
            format!("audit chain truncated: its head says {head_seq} events, the rows end at {last_seq}"),
        ),
    }
    let cs = store.cs_verify().await?;
    if matches!(cs, store::substances::LedgerCheck::Intact { .. }) {
        lines.push(format!("ok   {cs}"));
    } else {
        fail(&mut lines, cs.to_string());
    }
    // The chains against their newest anchors.
    match (key, std::fs::read_to_string(path)) {
        (None, _) => fail(
            &mut lines,
            "anchors not checked: no anchor key is set (STILLWATER_ANCHOR_KEY or STILLWATER_ANCHOR_KEY_FILE)".into(),
        ),
        (Some(_), Err(e)) => fail(
            &mut lines,
            format!("anchors not checked: cannot read {} ({e})", path.display()),
        ),
        (Some(key), Ok(text)) => match anchor::parse_lines(&text) {
            Err(e) => fail(&mut lines, format!("the anchor file {} is damaged: {e}", path.display())),
            Ok(all) => {
                let (aseq, _) = store.audit_head().await?;
                let (cseq, _) = store.cs_head().await?;
                let mut audit_hashes = std::collections::HashMap::new();
                let mut cs_hashes = std::collections::HashMap::new();
                for a in &all {
                    if a.chain == anchor::AUDIT {
                        audit_hashes.insert(a.seq, store.audit_hash_at(a.seq).await?);
                    } else if a.chain == anchor::SUBSTANCES {
                        cs_hashes.insert(a.seq, store.cs_hash_at(a.seq).await?);
                    }
                }
                for (chain, len, hashes) in [
                    (anchor::AUDIT, aseq, &audit_hashes),
                    (anchor::SUBSTANCES, cseq, &cs_hashes),
                ] {
                    match anchor::check(key, &all, chain, len, |s| hashes.get(&s).cloned().flatten()) {
                        Check::Holds { anchored, now } => lines.push(format!(
                            "ok   {chain} chain holds its last anchor (row {anchored}; {now} rows now)"
                        )),
                        Check::Truncated { anchored, now } => fail(
                            &mut lines,
                            format!("{chain} chain is shorter than anchored: {now} rows, the anchor saw {anchored}: rows were removed"),
                        ),
                        Check::Rewritten { seq } => fail(
                            &mut lines,
                            format!("{chain} chain was rewritten: row {seq} no longer has the anchored hash"),
                        ),
                        Check::NoAnchor => fail(&mut lines, format!("{chain} chain has no anchor yet (run `stillwater anchor`)")),
                        Check::BadSignature { line_seq } => fail(
                            &mut lines,
                            format!("an anchor of the {chain} chain (row {line_seq}) does not verify with the key: forged, or another key"),
                        ),
                    }
                }
            }
        },
    }
    // The archived months of the audit trail: each signed, all linked, the
    // live trail following on; what they recorded counts for the records.
    let mut archived = vec![];
    let mut expired_before = None;
    match key {
        Some(key) => {
            let checked = crate::archive::verify(store, key, archives).await?;
            for l in checked.lines {
                match l {
                    Ok(l) => lines.push(format!("ok   {l}")),
                    Err(l) => fail(&mut lines, l),
                }
            }
            archived = checked.seals;
            expired_before = checked.expired_before;
        }
        None => {
            if store.audit_base().await?.0 > 0 {
                fail(
                    &mut lines,
                    "audit archives not checked: no anchor key is set".into(),
                );
            }
        }
    }
    let r = store.verify_records_with(archived, expired_before).await?;
    if r.problems.is_empty() {
        lines.push(format!(
            "ok   records: {} signed notes, {} addenda, {} billing entries, {} invoices match what the chain recorded ({} from before seals, {} whose seals were in archives past the retention)",
            r.notes, r.addenda, r.entries, r.invoices, r.unsealed, r.expired
        ));
    }
    for p in r.problems {
        fail(&mut lines, p);
    }
    Ok(Report { lines, ok })
}
