//! Monthly archives of the audit trail (`stillwater audit archive`).
//!
//! The live trail keeps the last `audit_live_months` whole months. Each
//! older month is written, oldest first, to a gzip file of its own in the
//! archive folder: a header line (the month, the first and last row, the
//! hash before the first row and of the last), one JSON line per event as
//! it was recorded, and an anchor of the last row signed with the anchor
//! key. Only once the file is written, read back and checked are the rows
//! removed from the database, in one transaction that moves the trail's
//! base to the archive's last row. The archives chain: each begins where
//! the one before ended, the first at the genesis hash, the last where the
//! live trail now begins; `stillwater verify` checks all of that.
//!
//! Archives older than `audit_retention_years` (at least six: HIPAA keeps
//! documentation six years) are deleted by the same command.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use domain::anchor::{self, Anchor};
use domain::audit::{verify_chain, Action, AuditRecord, GENESIS};
use serde::{Deserialize, Serialize};
use store::audit::{AuditWalk, NewAuditEvent};
use store::Store;

/// The first line of an archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub archive: String,
    /// The calendar month (UTC) of its events, `YYYY-MM`.
    pub month: String,
    pub from_seq: i64,
    pub to_seq: i64,
    /// The hash of the row before `from_seq` (the genesis hash for the first).
    pub prev_hash: String,
    /// The hash of the last row: not in the file's first line (the rows are
    /// written as they are read, before it is known) but in its closing
    /// anchor; [`read`] fills it in from there.
    #[serde(default, skip_serializing)]
    pub last_hash: String,
}

const KIND: &str = "stillwater audit archive v1";

/// Where each archive deleted past the retention left a signed mark of its
/// last row.
const EXPIRED: &str = "expired.log";

/// What `archive` did.
#[derive(Debug, Default)]
pub struct Done {
    pub written: Vec<(PathBuf, Header)>,
    pub removed_rows: u64,
    pub expired: Vec<PathBuf>,
}

/// The first instant (microseconds, UTC) of the month `months` after the
/// month holding `at`.
fn month_start(at: i64, months: i32) -> anyhow::Result<(i64, String)> {
    let ts = jiff::Timestamp::from_microsecond(at)?;
    let d = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    let first =
        jiff::civil::date(d.year(), d.month(), 1).checked_add(jiff::Span::new().months(months))?;
    let start = first
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_microsecond();
    Ok((start, format!("{:04}-{:02}", first.year(), first.month())))
}

/// Archives every whole month older than the last `live_months` (counting
/// the current one) and deletes archives past `retention_years`.
pub async fn archive(
    store: &Store,
    key: &[u8],
    dir: &Path,
    live_months: u32,
    retention_years: u32,
) -> anyhow::Result<Done> {
    if key.len() < anchor::MIN_KEY {
        anyhow::bail!("the anchor key is too short (at least 32 characters)");
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the audit archive folder {}", dir.display()))?;
    let now = store.now();
    let (cutoff, _) = month_start(now, -(live_months.max(1) as i32 - 1))?;
    let mut done = Done::default();
    while let Some((first, at)) = store.audit_first_live().await? {
        let (_, month) = month_start(at, 0)?;
        let (end, _) = month_start(at, 1)?;
        if end > cutoff {
            break;
        }
        let Some(to) = store.audit_last_before(end).await?.filter(|&s| s >= first) else {
            break;
        };
        let (path, header) = write_month(store, key, dir, &month, to).await?;
        // Read back: only a file that checks out lets the rows go.
        let check = read(&path, key)?;
        anyhow::ensure!(
            check == header,
            "the archive {} does not read back as written",
            path.display()
        );
        let mut ev = NewAuditEvent::new(Action::AuditArchive, "cli:archive");
        ev.detail = Some(format!(
            "archived rows {}..{} ({month}) to {}",
            header.from_seq,
            header.to_seq,
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        done.removed_rows += store
            .audit_prune(header.to_seq, &header.last_hash, ev)
            .await?;
        done.written.push((path, header));
    }
    // Archives whose month ended more than `retention_years` ago.
    let keep = retention_years.max(6) as i32 * 12;
    let (oldest_kept, _) = month_start(now, -keep)?;
    for (path, h) in list(dir)? {
        let (end, _) = month_start(month_micros(&h.month)?, 1)?;
        if end <= oldest_kept {
            let h = read(&path, key)?;
            // Where the expired archive ended, signed, so that the next one
            // can still be shown to follow on (`verify`); its time is the
            // end of the archive's month, before which records may have
            // lost their seals with it.
            let mark = Anchor::sign(key, anchor::AUDIT, h.to_seq, &h.last_hash, end)
                .context("the anchor key is too short")?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(EXPIRED))?;
            writeln!(f, "{}", mark.to_line())?;
            f.sync_all()?;
            std::fs::remove_file(&path)
                .with_context(|| format!("deleting the expired archive {}", path.display()))?;
            done.expired.push(path);
        }
    }
    Ok(done)
}

fn month_micros(month: &str) -> anyhow::Result<i64> {
    let d: jiff::civil::Date = format!("{month}-01")
        .parse()
        .with_context(|| format!("the month {month}"))?;
    Ok(d.to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_microsecond())
}

/// Writes the live rows up to `to` as the archive of `month`.
async fn write_month(
    store: &Store,
    key: &[u8],
    dir: &Path,
    month: &str,
    to: i64,
) -> anyhow::Result<(PathBuf, Header)> {
    let base = store.audit_base().await?;
    let name = format!("audit-{month}-{:012}-{:012}.jsonl.gz", base.0 + 1, to);
    let path = dir.join(&name);
    let part = dir.join(format!("{name}.part"));
    let file =
        std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut header = Header {
        archive: KIND.into(),
        month: month.into(),
        from_seq: base.0 + 1,
        to_seq: to,
        prev_hash: base.1.clone(),
        last_hash: String::new(),
    };
    serde_json::to_writer(&mut gz, &header)?;
    gz.write_all(b"\n")?;
    // The rows go to the file as they are read: a month may be millions.
    let mut walk = AuditWalk::default();
    let mut tip = base.clone();
    loop {
        let rows = store.audit_walk(&mut walk, &tip, to, 5000).await?;
        if rows.is_empty() {
            break;
        }
        tip = verify_chain(tip.clone(), &rows)
            .map_err(|b| anyhow::anyhow!("the live trail is broken ({b:?}); nothing archived"))?;
        for r in &rows {
            serde_json::to_writer(&mut gz, r)?;
            gz.write_all(b"\n")?;
        }
    }
    anyhow::ensure!(
        tip.0 == to,
        "the trail ends at row {} before row {to}",
        tip.0
    );
    header.last_hash = tip.1.clone();
    let seal = Anchor::sign(key, anchor::AUDIT, to, &tip.1, store.now())
        .context("the anchor key is too short")?;
    writeln!(gz, "{}", seal.to_line())?;
    let file = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&part, &path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((path, header))
}

/// Reads and checks one archive: every row's hash, the chain from the
/// header's first hash to its last, and the closing anchor with `key`.
pub fn read(path: &Path, key: &[u8]) -> anyhow::Result<Header> {
    read_with(path, key, |_| {})
}

/// [`read`], handing each event to `each`.
pub fn read_with(
    path: &Path,
    key: &[u8],
    mut each: impl FnMut(AuditRecord),
) -> anyhow::Result<Header> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let mut header: Option<Header> = None;
    let mut tip = (0i64, String::new());
    let mut seal: Option<Anchor> = None;
    for (n, line) in lines.enumerate() {
        let line =
            line.with_context(|| format!("{}: unreadable at line {}", path.display(), n + 1))?;
        if seal.is_some() {
            anyhow::bail!("{}: lines after the closing anchor", path.display());
        }
        let Some(h) = &header else {
            let h: Header = serde_json::from_str(&line)
                .with_context(|| format!("{}: the header", path.display()))?;
            anyhow::ensure!(
                h.archive == KIND,
                "{}: not an audit archive",
                path.display()
            );
            tip = (h.from_seq - 1, h.prev_hash.clone());
            header = Some(h);
            continue;
        };
        if let Ok(r) = serde_json::from_str::<AuditRecord>(&line) {
            tip = verify_chain(tip.clone(), std::slice::from_ref(&r))
                .map_err(|b| anyhow::anyhow!("{}: the chain is broken ({b:?})", path.display()))?;
            each(r);
            continue;
        }
        let a: Anchor = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}: line {} is neither an event nor the anchor",
                path.display(),
                n + 1
            )
        })?;
        anyhow::ensure!(
            a.chain == anchor::AUDIT && a.verify(key),
            "{}: its closing anchor does not verify with the key",
            path.display()
        );
        anyhow::ensure!(
            a.seq == h.to_seq && a.hash == tip.1,
            "{}: the closing anchor signs another row than its rows end with",
            path.display()
        );
        seal = Some(a);
    }
    let mut header = header.with_context(|| format!("{}: empty", path.display()))?;
    let seal =
        seal.with_context(|| format!("{}: no closing anchor (cut short?)", path.display()))?;
    header.last_hash = seal.hash;
    anyhow::ensure!(
        tip == (header.to_seq, header.last_hash.clone()),
        "{}: its rows end at {} but its header says {}",
        path.display(),
        tip.0,
        header.to_seq
    );
    Ok(header)
}

/// The archives in `dir`, by their first row, with their headers (read
/// without checking).
fn list(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Header)>> {
    let mut out = vec![];
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in entries {
        let path = e?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !(name.starts_with("audit-") && name.ends_with(".jsonl.gz")) {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        let mut first = String::new();
        std::io::BufReader::new(flate2::read::GzDecoder::new(file))
            .read_line(&mut first)
            .with_context(|| format!("{}: the header", path.display()))?;
        let h: Header = serde_json::from_str(&first)
            .with_context(|| format!("{}: the header", path.display()))?;
        out.push((path, h));
    }
    out.sort_by_key(|(_, h)| h.from_seq);
    Ok(out)
}

/// What checking the archives found: one line per finding (`Err` lines
/// fail), and the events in them that sign a note or seal a record.
pub struct Checked {
    pub lines: Vec<Result<String, String>>,
    pub seals: Vec<(String, Option<String>, Option<String>)>,
    /// Records before this time (microseconds) may have lost their seals
    /// with an archive deleted past the retention.
    pub expired_before: Option<i64>,
}

/// Checks the archives as a whole: each one, that they follow one another
/// from the genesis hash, and that the last ends where the live trail now
/// begins.
pub async fn verify(store: &Store, key: &[u8], dir: &Path) -> anyhow::Result<Checked> {
    let base = store.audit_base().await?;
    let mut seals = vec![];
    // The chain begins at the genesis hash, or after the last archive
    // deleted past the retention, by its signed mark.
    let mut tip = (0i64, GENESIS.to_string());
    let mut expired_before = None;
    if let Ok(text) = std::fs::read_to_string(dir.join(EXPIRED)) {
        match anchor::parse_lines(&text) {
            Ok(marks)
                if marks
                    .iter()
                    .all(|m| m.chain == anchor::AUDIT && m.verify(key)) =>
            {
                if let Some(m) = marks.iter().max_by_key(|m| m.seq) {
                    tip = (m.seq, m.hash.clone());
                    expired_before = Some(m.at);
                }
            }
            _ => {
                return Ok(Checked {
                    lines: vec![Err(format!(
                        "{} is damaged or not signed with the key",
                        dir.join(EXPIRED).display()
                    ))],
                    seals,
                    expired_before: None,
                })
            }
        }
    }
    let all = match list(dir) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Checked {
                lines: vec![Err(format!("audit archives unreadable: {e:#}"))],
                seals,
                expired_before,
            })
        }
    };
    let mut out = vec![];
    if all.is_empty() {
        out.push(if base == tip {
            Ok(if base.0 == 0 {
                "audit archives: none yet (nothing archived)".into()
            } else {
                format!(
                    "audit archives: rows 1..{} past the retention, deleted",
                    base.0
                )
            })
        } else {
            Err(format!(
                "the live trail begins after row {} but {} holds no archive of rows 1..{}",
                base.0,
                dir.display(),
                base.0
            ))
        });
        return Ok(Checked {
            lines: out,
            seals,
            expired_before,
        });
    }
    let start = tip.0;
    let mut good = 0usize;
    for (path, _) in &all {
        let keep = |r: AuditRecord| {
            if store::verify::seals_in(&r) {
                seals.push((r.action, r.object_id, r.detail));
            }
        };
        match read_with(path, key, keep) {
            Err(e) => out.push(Err(format!("{e:#}"))),
            Ok(h) => {
                if (h.from_seq - 1, h.prev_hash.clone()) != tip {
                    out.push(Err(format!(
                        "{} does not follow the archive before it (it begins after row {}, the one before ends at {})",
                        path.display(),
                        h.from_seq - 1,
                        tip.0
                    )));
                } else {
                    good += 1;
                }
                tip = (h.to_seq, h.last_hash);
            }
        }
    }
    if tip != base {
        out.push(Err(format!(
            "the archives end at row {} but the live trail begins after row {}",
            tip.0, base.0
        )));
    }
    if out.is_empty() {
        out.push(Ok(format!(
            "audit archives: {good} months, rows {}..{} linked and signed, the live trail follows on",
            start + 1,
            tip.0
        )));
    }
    Ok(Checked {
        lines: out,
        seals,
        expired_before,
    })
}
