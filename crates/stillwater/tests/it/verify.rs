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
    let archives = anchors.with_file_name("audit-archive");
    stillwater::anchors::verify(&app.store, Some(KEY), anchors, &archives)
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
    let word = |c: &str| format!("(SELECT term FROM audit_terms WHERE id = e.{c}_t) AS {c}");
    let sql = format!(
        "SELECT e.seq, e.id, e.at, {}, e.request_id, e.detail, e.hash FROM audit_events e \
         WHERE e.seq >= $1 ORDER BY e.seq",
        [
            "org",
            "actor",
            "label",
            "role",
            "clinic",
            "patient",
            "action",
            "object_type",
            "object",
            "outcome",
            "ip"
        ]
        .map(word)
        .join(", ")
    );
    let rows: Vec<domain::audit::AuditRecord> = on_pool!(pool, p => {
        use sqlx::Row;
        sqlx::query(&sql)
            .bind(from)
            .fetch_all(p)
            .await
            .unwrap()
            .into_iter()
            .map(|r| domain::audit::AuditRecord {
                seq: r.get("seq"),
                id: r.get("id"),
                at: r.get("at"),
                org_id: r.get("org"),
                actor_user_id: r.get("actor"),
                actor_label: r.get("label"),
                actor_role: r.get("role"),
                clinic_id: r.get("clinic"),
                patient_id: r.get("patient"),
                action: r.get("action"),
                object_type: r.get("object_type"),
                object_id: r.get("object"),
                outcome: r.get("outcome"),
                source_ip: r.get("ip"),
                request_id: r.get("request_id"),
                detail: r.get("detail"),
                prev_hash: String::new(),
                hash: hex::encode(r.get::<Vec<u8>, _>("hash")),
            })
            .collect()
    });
    let before: Vec<u8> = on_pool!(pool, p => {
        sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(from - 1)
            .fetch_one(p)
            .await
            .unwrap()
    });
    let mut prev = hex::encode(before);
    for mut r in rows {
        if r.seq == from {
            r.detail = Some(detail.to_string());
        }
        r.prev_hash = prev;
        r.hash = domain::audit::chain_hash(&r.prev_hash, &r);
        on_pool!(pool, p => {
            sqlx::query("UPDATE audit_events SET detail = $1, hash = $2 WHERE seq = $3")
                .bind(&r.detail)
                .bind(hex::decode(&r.hash).unwrap())
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
    // An addendum to a signed note, through the API.
    let (encounter, clinic): (String, String) = on_pool!(app.store.raw_pool(), p => {
        sqlx::query_as("SELECT n.encounter_id, e.clinic_id FROM session_notes n \
             JOIN encounters e ON e.id = n.encounter_id ORDER BY n.id DESC LIMIT 1")
            .fetch_one(p).await.unwrap()
    });
    let nurse = if clinic == app.glendale.to_string() {
        "nina.nurse"
    } else {
        "nate.nurse"
    };
    let r = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/encounters/{encounter}/note/addenda")))
        .bearer_auth(app.user_token(nurse).await)
        .json(&serde_json::json!({"text": "Called the next day: slept well, no nausea."}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

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
    assert!(
        records.notes > 0 && records.addenda > 0 && records.entries > 0 && records.invoices > 0
    );
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

    // 1b. The addendum's text changed, its stored hash recomputed to match.
    let (addendum, body): (String, String) = on_pool!(&data, p => {
        sqlx::query_as("SELECT id, body FROM note_addenda ORDER BY id LIMIT 1").fetch_one(p).await.unwrap()
    });
    let changed = body.replace("no nausea", "no nausea, no further doses needed");
    let sha = hex::encode(Sha256::digest(changed.as_bytes()));
    unguard(&data, "note_addenda").await;
    exec(
        &data,
        "UPDATE note_addenda SET body = $1, sha256 = $2 WHERE id = $3",
        &[&changed, &sha, &addendum],
    )
    .await;
    let r = report(app, &anchors).await;
    assert!(
        failed(
            &r,
            &format!("addendum {addendum} is not one the audit chain recorded")
        ),
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
    exec(
        &data,
        "DELETE FROM note_addenda WHERE note_id = $1",
        &[&note],
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

/// Rewrites one line of a gzip archive with `edit`.
fn edit_archive(path: &std::path::Path, edit: impl Fn(&str) -> String) {
    use std::io::{Read, Write};
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(edit(&text).as_bytes()).unwrap();
    gz.finish().unwrap();
}

/// Months past the live window go to signed archives and out of the
/// database; `verify` holds the archives (each signed, all linked, the live
/// trail following on) and the records against what they recorded. An
/// edited or missing archive is found; archives past the retention go.
async fn old_months_are_archived_and_still_verified(app: &TestApp) {
    let dir = scratch();
    let (anchors, archives) = (dir.join("anchors.log"), dir.join("audit-archive"));
    crate::billing::month_of_visits(app).await;
    stillwater::demo_billing::load(&app.store).await.unwrap();
    // A reader each month for a quarter.
    let (g, _) = app.patient_ids().await;
    let token = app.user_token("nina.nurse").await;
    let read = || async {
        let r = reqwest::Client::new()
            .get(app.url(&format!("/api/v1/patients/{g}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    for _ in 0..3 {
        read().await;
        // Events of writes are in the chain before the month turns.
        app.store.audit_flush().await;
        app.advance_minutes(31 * 24 * 60);
    }
    read().await;
    stillwater::anchors::write(&app.store, KEY, &anchors)
        .await
        .unwrap();
    let head_before = app.store.audit_head().await.unwrap().0;
    let r = report(app, &anchors).await;
    assert!(r.ok, "{:#?}", r.lines);

    // Keep the current month and the one before; archive the rest.
    let done = stillwater::archive::archive(&app.store, KEY, &archives, 2, 6)
        .await
        .unwrap();
    assert!(
        done.written.len() >= 2,
        "{:?} then {:?}",
        done.written,
        app.store.audit_first_live().await
    );
    assert!(done.removed_rows > 0);
    let last = &done.written.last().unwrap().1;
    assert_eq!(app.store.audit_base().await.unwrap().0, last.to_seq);
    assert_eq!(done.written[0].1.from_seq, 1);
    for w in done.written.windows(2) {
        assert_eq!(w[1].1.from_seq, w[0].1.to_seq + 1);
    }
    // The live trail starts after the archives and still verifies; the
    // head went on (the archiving itself was audited).
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        store::audit::VerifyOutcome::Intact { .. }
    ));
    assert!(app.store.audit_head().await.unwrap().0 > head_before);
    assert!(app.store.count_audit("audit.archive").await.unwrap() >= 1);
    let r = report(app, &anchors).await;
    assert!(r.ok, "{:#?}", r.lines);
    assert!(
        r.lines
            .iter()
            .any(|l| l.starts_with("ok   audit archives:")),
        "{:#?}",
        r.lines
    );
    // Nothing more to archive this month.
    let again = stillwater::archive::archive(&app.store, KEY, &archives, 2, 6)
        .await
        .unwrap();
    assert!(again.written.is_empty() && again.removed_rows == 0);
    // Live rows stay append-only for the app's own role.
    let live = app.store.audit_base().await.unwrap().0 + 1;
    let del = on_pool!(app.store.raw_trail_pool(), p => {
        sqlx::query("DELETE FROM audit_events WHERE seq = $1").bind(live).execute(p).await.map(|_| ())
    });
    assert!(del.is_err(), "a live row was deleted");

    // One event in an archive changed: its chain no longer holds.
    let first = done.written[0].0.clone();
    let saved = std::fs::read(&first).unwrap();
    edit_archive(&first, |t| {
        t.replacen("\"patient.create\"", "\"patient.read\"", 1)
    });
    let r = report(app, &anchors).await;
    assert!(failed(&r, "the chain is broken"), "{:#?}", r.lines);
    std::fs::write(&first, &saved).unwrap();
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    // An archive gone: the next no longer follows on from the genesis hash.
    std::fs::rename(&first, other.join("gone.jsonl.gz")).unwrap();
    let r = report(app, &anchors).await;
    assert!(
        failed(&r, "does not follow the archive before it"),
        "{:#?}",
        r.lines
    );
    std::fs::rename(other.join("gone.jsonl.gz"), &first).unwrap();
    let r = report(app, &anchors).await;
    assert!(r.ok, "{:#?}", r.lines);

    // Seven years on, the archives are past the six years kept; they go.
    app.advance_minutes(7 * 366 * 24 * 60);
    let later = stillwater::archive::archive(&app.store, KEY, &archives, 2, 6)
        .await
        .unwrap();
    assert!(later.expired.len() >= done.written.len(), "{later:?}");
    for (p, _) in &done.written {
        assert!(!p.exists(), "{} kept past the retention", p.display());
    }
    // What is left still verifies: it follows on from the signed mark the
    // deleted archives left; a forged mark does not.
    stillwater::anchors::write(&app.store, KEY, &anchors)
        .await
        .unwrap();
    let r = report(app, &anchors).await;
    assert!(r.ok, "{:#?}", r.lines);
    assert!(
        r.lines.iter().any(|l| l.starts_with("ok   records:")
            && !l.contains(", 0 whose seals were in archives past the retention")),
        "records sealed in the deleted archives are counted as such: {:#?}",
        r.lines
    );
    let marks = archives.join("expired.log");
    let text = std::fs::read_to_string(&marks).unwrap();
    std::fs::write(&marks, text.replacen("\"seq\":", "\"seq\":1", 1)).unwrap();
    let r = report(app, &anchors).await;
    assert!(failed(&r, "not signed with the key"), "{:#?}", r.lines);
    let _ = std::fs::remove_dir_all(&dir);
}
both!(old_months_are_archived_and_still_verified);
