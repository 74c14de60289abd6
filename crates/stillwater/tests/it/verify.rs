//! `stillwater anchor` and `stillwater verify`, tried as someone who can
//! write the database would: the guard triggers switched off, a payment
//! raised by $1,000, a signed note's text changed with its hash recomputed,
//! the audit chain recomputed over the change, the chain's tail removed and
//! its head moved back. The chain walk alone is fooled by the last two; the
//! anchors, signed with a key the database never holds, are not.

use sha2::{Digest, Sha256};
use store::{on_pool, Pool};

use crate::both;
use crate::helpers::*;

const KEY: &[u8] = b"anchor key for the tests, 32+ bytes long";

fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sw-anchor-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Switches off the guard triggers of `table`, as an attacker with the
/// database's owner could.
async fn unguard(pool: &Pool, table: &str) {
    match pool {
        Pool::Sqlite(p) => {
            let names: Vec<(String,)> = sqlx::query_as(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = $1",
            )
            .bind(table)
            .fetch_all(p)
            .await
            .unwrap();
            for (n,) in names {
                sqlx::query(&format!("DROP TRIGGER {n}"))
                    .execute(p)
                    .await
                    .unwrap();
            }
        }
        Pool::Postgres(p) => {
            sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
                .execute(p)
                .await
                .unwrap();
        }
    }
}

async fn exec(pool: &Pool, sql: &str, args: &[&str]) {
    on_pool!(pool, p => {
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(*a);
        }
        q.execute(p).await.unwrap();
    });
}

async fn report(app: &TestApp, anchors: &std::path::Path) -> stillwater::anchors::Report {
    stillwater::anchors::verify(&app.store, Some(KEY), anchors)
        .await
        .unwrap()
}

fn failed(r: &stillwater::anchors::Report, needle: &str) -> bool {
    r.lines
        .iter()
        .any(|l| l.starts_with("FAIL") && l.contains(needle))
}

/// Rewrites the audit chain from row `from` on (its detail replaced by
/// `detail`), every later hash recomputed and the head moved, so that the
/// chain walk finds nothing wrong.
async fn recompute_chain(pool: &Pool, from: i64, detail: &str) {
    let rows: Vec<domain::audit::AuditRecord> = on_pool!(pool, p => {
        use sqlx::Row;
        sqlx::query("SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq")
            .bind(from)
            .fetch_all(p)
            .await
            .unwrap()
            .into_iter()
            .map(|r| domain::audit::AuditRecord {
                seq: r.get("seq"),
                id: r.get("id"),
                at: r.get("at"),
                org_id: r.get("org_id"),
                actor_user_id: r.get("actor_user_id"),
                actor_label: r.get("actor_label"),
                actor_role: r.get("actor_role"),
                clinic_id: r.get("clinic_id"),
                patient_id: r.get("patient_id"),
                action: r.get("action"),
                object_type: r.get("object_type"),
                object_id: r.get("object_id"),
                outcome: r.get("outcome"),
                source_ip: r.get("source_ip"),
                request_id: r.get("request_id"),
                detail: r.get("detail"),
                prev_hash: r.get("prev_hash"),
                hash: r.get("hash"),
            })
            .collect()
    });
    let mut prev = rows[0].prev_hash.clone();
    for mut r in rows {
        if r.seq == from {
            r.detail = Some(detail.to_string());
        }
        r.prev_hash = prev;
        r.hash = domain::audit::chain_hash(&r.prev_hash, &r);
        on_pool!(pool, p => {
            sqlx::query("UPDATE audit_events SET detail = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
                .bind(&r.detail)
                .bind(&r.prev_hash)
                .bind(&r.hash)
                .bind(r.seq)
                .execute(p)
                .await
                .unwrap();
        });
        prev = r.hash.clone();
        exec(
            pool,
            "UPDATE audit_head SET seq = CAST($1 AS BIGINT), hash = $2 WHERE id = 1",
            &[&r.seq.to_string(), &r.hash],
        )
        .await;
    }
}

/// A month of visits, signed notes and billing; anchored; then changed.
async fn verify_finds_what_was_changed(app: &TestApp) {
    let dir = scratch();
    crate::billing::month_of_visits(app).await;
    let cfg = stillwater::config::Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let (protocols, instruments) = (cfg.protocols().unwrap(), cfg.instruments().unwrap());
    stillwater::demo_treatment::load(&app.store, &protocols, &instruments)
        .await
        .unwrap();
    stillwater::demo_billing::load(&app.store).await.unwrap();
    let anchors = dir.join("anchors.log");

    // Before anchoring, verify says the chains are not yet held by anything.
    let r = report(app, &anchors).await;
    assert!(!r.ok);
    assert!(failed(&r, "cannot read"), "{:?}", r.lines);
    let made = stillwater::anchors::write(&app.store, KEY, &anchors)
        .await
        .unwrap();
    assert_eq!(made.len(), 2);
    let r = report(app, &anchors).await;
    assert!(r.ok, "{:#?}", r.lines);
    let records = app.store.verify_records().await.unwrap();
    assert!(records.notes > 0 && records.entries > 0 && records.invoices > 0);
    assert_eq!(records.unsealed, 0, "everything made now is sealed");

    let data = app.owner_pool().await;
    let trail = app.trail_owner_pool().await;

    // 1. A signed note's text changed, its stored hash recomputed to match.
    let (note, body): (String, String) = on_pool!(&data, p => {
        sqlx::query_as("SELECT id, body FROM session_notes ORDER BY id LIMIT 1").fetch_one(p).await.unwrap()
    });
    let changed = body.replace("Aldrete", "Aldreté") + "\nNo adverse events.";
    let sha = hex::encode(Sha256::digest(changed.as_bytes()));
    unguard(&data, "session_notes").await;
    exec(
        &data,
        "UPDATE session_notes SET body = $1, sha256 = $2 WHERE id = $3",
        &[&changed, &sha, &note],
    )
    .await;
    let r = report(app, &anchors).await;
    assert!(
        failed(&r, "is not the note the audit chain recorded at signing"),
        "{:#?}",
        r.lines
    );

    // 2. A payment raised by $1,000.
    let (entry_id,): (String,) = on_pool!(&data, p => {
        sqlx::query_as("SELECT id FROM billing_entries WHERE kind = 'payment' ORDER BY at DESC, id LIMIT 1")
            .fetch_one(p).await.unwrap()
    });
    unguard(&data, "billing_entries").await;
    exec(
        &data,
        "UPDATE billing_entries SET amount_minor = amount_minor + 100000 WHERE id = $1",
        &[&entry_id],
    )
    .await;
    let r = report(app, &anchors).await;
    assert!(
        failed(
            &r,
            &format!("billing entry {entry_id} (payment) is not what was recorded")
        ),
        "{:#?}",
        r.lines
    );
    assert!(
        r.lines.iter().any(|l| l.starts_with("ok   audit chain")),
        "the chain itself is intact: {:#?}",
        r.lines
    );

    // A refund written straight into the table (no audit event): anyone
    // who can insert rows, even the app's own role, could pocket cash so.
    exec(
        app.store.raw_pool(),
        "INSERT INTO billing_entries (id, clinic_id, patient_id, invoice_id, kind, method, \
         amount_minor, currency, refund_of, at, recorded_by) SELECT 'forged-refund', clinic_id, \
         patient_id, invoice_id, 'refund', method, 5000, currency, id, at, recorded_by \
         FROM billing_entries WHERE id = $1",
        &[&entry_id],
    )
    .await;
    let r = report(app, &anchors).await;
    assert!(
        failed(
            &r,
            "billing entry forged-refund (refund) has no record in the audit chain"
        ),
        "{:#?}",
        r.lines
    );

    // An invoice's line raised by $50; the signed note deleted outright.
    unguard(&data, "invoice_lines").await;
    exec(
        &data,
        "UPDATE invoice_lines SET amount_minor = amount_minor + 5000 WHERE seq = 1 AND invoice_id = \
         (SELECT MIN(invoice_id) FROM invoice_lines)",
        &[],
    )
    .await;
    exec(&data, "DELETE FROM session_notes WHERE id = $1", &[&note]).await;
    let r = report(app, &anchors).await;
    assert!(failed(&r, "is not what was issued"), "{:#?}", r.lines);
    assert!(
        failed(&r, "was recorded in the audit chain but is gone"),
        "{:#?}",
        r.lines
    );

    // 3. The attacker also reseals the payment in the audit event and
    // recomputes the chain from there: the chain walk passes, the payment
    // matches its new seal, but the anchored row no longer has its hash.
    type Opt = Option<String>;
    type EntryRow = (String, String, String, Opt, i64, String, Opt, Opt, i64);
    let row: EntryRow = on_pool!(&data, p => {
        sqlx::query_as("SELECT id, invoice_id, kind, method, amount_minor, currency, refund_of, package_id, at \
             FROM billing_entries WHERE id = $1").bind(&entry_id).fetch_one(p).await.unwrap()
    });
    let forged = store::seal::entry(
        &row.0,
        &row.1,
        &row.2,
        row.3.as_deref(),
        row.4,
        &row.5,
        row.6.as_deref(),
        row.7.as_deref(),
        row.8,
    );
    app.store.audit_flush().await;
    let (seq, detail): (i64, String) = on_pool!(&trail, p => {
        sqlx::query_as("SELECT seq, detail FROM audit_events WHERE detail LIKE $1")
            .bind(format!("%seal entry:{entry_id}:%")).fetch_one(p).await.unwrap()
    });
    let old = store::seal::read(&detail)
        .into_iter()
        .find(|(_, id, _)| *id == entry_id)
        .unwrap()
        .2;
    unguard(&trail, "audit_events").await;
    unguard(&trail, "audit_head").await;
    recompute_chain(&trail, seq, &detail.replace(&old, &forged)).await;
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        store::audit::VerifyOutcome::Intact { .. }
    ));
    let r = report(app, &anchors).await;
    assert!(
        !failed(&r, &format!("billing entry {entry_id}")),
        "the payment now matches the forged seal: {:#?}",
        r.lines
    );
    assert!(
        failed(&r, "audit chain was rewritten"),
        "the anchor finds the rewrite: {:#?}",
        r.lines
    );
    // A new anchor cannot be made to cover it without the key.
    let forged_anchor = stillwater::anchors::write(
        &app.store,
        b"a key the attacker made up, 32+ bytes",
        &anchors,
    )
    .await
    .unwrap();
    assert_eq!(forged_anchor.len(), 2);
    let r = report(app, &anchors).await;
    assert!(failed(&r, "does not verify with the key"), "{:#?}", r.lines);
    let _ = std::fs::remove_dir_all(&dir);
}
both!(verify_finds_what_was_changed);

/// The tail of the audit trail removed and its head moved back: the chain
/// walk finds a shorter, intact chain; the anchor finds rows missing. Run
/// through the commands an operator's cron runs.
async fn anchors_find_a_removed_tail(app: &TestApp) {
    let dir = scratch();
    let anchors = dir.join("anchors.log");
    let run = |cmd: &str, key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stillwater"))
            .arg(cmd)
            .env("STILLWATER_DATABASE_URL", &app.db_url)
            .env("STILLWATER_DATA_DIR", &dir)
            .env("STILLWATER_ANCHOR_KEY", key)
            .env("STILLWATER_ANCHOR_FILE", &anchors)
            .env("STILLWATER_LOG", "warn")
            .output()
            .unwrap()
    };
    let key = std::str::from_utf8(KEY).unwrap();
    let out = run("anchor", "short");
    assert!(!out.status.success(), "a short key is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("anchor_key"));
    // Some reads, then the anchor.
    let (g, _) = app.patient_ids().await;
    let s = app.login("nina.nurse").await;
    for _ in 0..4 {
        s.get(&format!("/patients/{g}")).await;
    }
    app.store.audit_flush().await;
    let out = run("anchor", key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("anchored the audit chain"));
    let out = run("verify", key);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok   audit chain holds its last anchor"),
        "{text}"
    );

    // Remove the last three rows and move the head back to the row before.
    let trail = app.trail_owner_pool().await;
    let (head, _) = app.store.audit_head().await.unwrap();
    let keep = head - 3;
    let hash = app.store.audit_hash_at(keep).await.unwrap().unwrap();
    // With the guard on (the app's own role), the head does not move back.
    let back = on_pool!(app.store.raw_trail_pool(), p => {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(keep).bind(&hash).execute(p).await.map(|_| ())
    });
    assert!(
        back.unwrap_err().to_string().contains("only moves forward"),
        "the head moved back"
    );
    unguard(&trail, "audit_events").await;
    unguard(&trail, "audit_head").await;
    exec(
        &trail,
        "DELETE FROM audit_events WHERE seq > CAST($1 AS BIGINT)",
        &[&keep.to_string()],
    )
    .await;
    exec(
        &trail,
        "UPDATE audit_head SET seq = CAST($1 AS BIGINT), hash = $2 WHERE id = 1",
        &[&keep.to_string(), &hash],
    )
    .await;
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        store::audit::VerifyOutcome::Intact { .. }
    ));
    let out = run("verify", key);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("FAIL audit chain is shorter than anchored"),
        "{text}"
    );
    // Another key reads every anchor as forged.
    let out = run("verify", "another key entirely, 32 bytes or more");
    assert_eq!(out.status.code(), Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}
both!(anchors_find_a_removed_tail);
