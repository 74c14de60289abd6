//! The audit trail: every patient read recorded; append-only at the database;
//! tampering found by verification.

use store::audit::VerifyOutcome;
use store::{on_pool, Pool};

use crate::both;
use crate::helpers::*;

async fn every_patient_read_is_recorded(app: &TestApp) {
    let (g, _) = app.patient_ids().await;
    let s = app.login("nina.nurse").await;
    let before = app.store.count_audit("patient.read").await.unwrap();
    for _ in 0..3 {
        assert_eq!(s.get(&format!("/patients/{g}")).await.status(), 200);
    }
    let token = app.user_token("nina.nurse").await;
    let r = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/patients/{g}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.store.count_audit("patient.read").await.unwrap(),
        before + 4
    );
    // The auditor sees who read it, with role, source and request id.
    let auditor = app.user_token("audrey.auditor").await;
    let events: serde_json::Value = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/audit-events?patient_id={g}&action=patient.read"
        )))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = events["events"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|e| e["actor"] == "nina.nurse"
        && e["role"] == "nurse"
        && e["source_ip"] == "127.0.0.1"
        && e["request_id"].as_str().unwrap().len() == 32));
    // A read of a patient outside the user's clinics is recorded as not found.
    let dv = app.login("devon.frontdesk").await;
    assert_eq!(dv.get(&format!("/patients/{g}")).await.status(), 404);
    let all = app
        .store
        .audit_events(&store::audit::AuditFilter {
            action: Some("patient.read".into()),
            include_orgwide: true,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.iter().any(|e| e.actor_label == "devon.frontdesk"
        && e.outcome == "not_found"
        && e.object_id.as_deref() == Some(g.as_str())));
    // The audit page names the patients it shows, and its own record says which.
    let a = app.login("audrey.auditor").await;
    let page = a.html("/audit").await;
    assert!(page.contains(&format!("/patients/{g}")));
    // In words and on the clinic's clock: a chart read is "Chart opened" at
    // Glendale's time (Arizona keeps MST all year, 12-hour in the US).
    assert!(
        page.contains("title=\"patient.read\">Chart opened</td>"),
        "{page}"
    );
    let now = domain::time::WallClock::new("America/Phoenix", "US").to_the_second(app.now());
    let minute = &now[..now.rfind(':').unwrap()];
    assert!(
        page.contains(minute) && now.ends_with(" MST"),
        "{now} in {page}"
    );
    assert!(page.contains("<optgroup label=\"Treatment day\">"));
    assert!(!page.contains("<code>patient.read</code>"));
    let views = app
        .store
        .audit_events(&store::audit::AuditFilter {
            action: Some("audit.read".into()),
            include_orgwide: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        views[0].detail.as_deref().unwrap_or("").contains(&g),
        "{:?}",
        views[0].detail
    );
    // Search lists are recorded with the ids shown.
    assert_eq!(s.get("/patients?q=a").await.status(), 200);
    assert!(app.store.count_audit("patient.search").await.unwrap() >= 1);
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Intact { .. }
    ));
}
both!(every_patient_read_is_recorded);

async fn update_and_delete_fail_at_the_database(app: &TestApp) {
    // The seeded data's events are in the chain (on SQLite they wait in the outbox until moved).
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Intact { events } if events > 0
    ));
    let pool = app.store.raw_trail_pool().clone();
    let upd = on_pool!(&pool, p => sqlx::query("UPDATE audit_events SET detail = 'x' WHERE seq = 1").execute(p).await.map(|_| ()));
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = on_pool!(&pool, p => sqlx::query("DELETE FROM audit_events WHERE seq = 1").execute(p).await.map(|_| ()));
    assert!(del.unwrap_err().to_string().contains("append-only"));
    if let Pool::Postgres(p) = &pool {
        let t = sqlx::query("TRUNCATE audit_events").execute(p).await;
        assert!(t.is_err());
    }
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Intact { .. }
    ));
}
both!(update_and_delete_fail_at_the_database);

/// On PostgreSQL the app serves as a role that owns nothing: it cannot
/// switch the guards off, by table or by session, nor truncate a guarded
/// table, nor change the schema; the owner, for the record, can.
async fn the_app_role_cannot_switch_off_the_guards(app: &TestApp) {
    let Pool::Postgres(p) = app.store.raw_pool() else {
        // SQLite has no roles: whoever can open the file holds it all, and
        // `stillwater verify` with the anchors is what finds a change.
        assert_eq!(app.store.pg_role_can_unguard().await.unwrap(), None);
        return;
    };
    assert_eq!(
        app.store.pg_role().await.unwrap().as_deref(),
        Some(APP_ROLE)
    );
    assert_eq!(app.store.pg_role_can_unguard().await.unwrap(), None);
    for (sql, why) in [
        (
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update",
            "owner",
        ),
        ("ALTER TABLE cs_ledger DISABLE TRIGGER USER", "owner"),
        ("ALTER TABLE billing_entries DISABLE TRIGGER ALL", "owner"),
        ("ALTER TABLE session_notes DISABLE TRIGGER USER", "owner"),
        (
            "DROP TRIGGER invoice_lines_no_update ON invoice_lines",
            "owner",
        ),
        (
            "SET session_replication_role = replica",
            "permission denied",
        ),
        ("TRUNCATE audit_events", "permission denied"),
        ("DROP TABLE audit_head", "owner"),
        ("CREATE TABLE mine (x int)", "permission denied"),
    ] {
        let e = sqlx::query(sql).execute(p).await.unwrap_err().to_string();
        assert!(e.contains(why), "{sql}: {e}");
    }
    // Rows as before: the guards refuse, naming themselves.
    let e = sqlx::query("UPDATE audit_events SET detail = 'x' WHERE seq = 1")
        .execute(p)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("append-only"), "{e}");
    // The owner can; that is why it is not the role the app serves as.
    let Pool::Postgres(owner) = app.owner_pool().await else {
        unreachable!()
    };
    sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update")
        .execute(&owner)
        .await
        .unwrap();
    // A server whose role owns the tables says so at start (checked here
    // through the same function `serve` calls).
    let as_owner = store::Store::connect(&store::StoreConfig {
        url: app.owner_url().unwrap().to_string(),
        max_connections: 1,
        clock: test_clock(),
    })
    .await
    .unwrap();
    assert!(as_owner.pg_role_can_unguard().await.unwrap().is_some());
    as_owner.close().await;
}
both!(the_app_role_cannot_switch_off_the_guards);

/// Runs `sql` against the audit table after switching off its guard
/// triggers, as someone with direct database access could.
async fn tamper(pool: &Pool, sql: &str) {
    match pool {
        Pool::Sqlite(p) => {
            for t in ["audit_events_no_update", "audit_events_no_delete"] {
                sqlx::query(&format!("DROP TRIGGER {t}"))
                    .execute(p)
                    .await
                    .unwrap();
            }
            sqlx::query(sql).execute(p).await.unwrap();
        }
        Pool::Postgres(p) => {
            sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update")
                .execute(p)
                .await
                .unwrap();
            sqlx::query(sql).execute(p).await.unwrap();
        }
    }
}

async fn tampering_is_found(app: &TestApp) {
    let pool = app.trail_owner_pool().await;
    let (g, _) = app.patient_ids().await;
    let s = app.login("nina.nurse").await;
    s.get(&format!("/patients/{g}")).await;
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Intact { .. }
    ));
    // Someone with database access disables the guard and edits a row.
    tamper(
        &pool,
        "UPDATE audit_events SET label_t = label_t + 1 WHERE seq = 5",
    )
    .await;
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Broken(domain::audit::ChainBreak::Altered { seq: 5 })
    ));
}
both!(tampering_is_found);

/// The words rows name are kept once (`audit_terms`); changing one changes
/// every row naming it, and the first of them no longer matches its hash.
async fn changing_a_shared_word_is_found(app: &TestApp) {
    let pool = app.trail_owner_pool().await;
    let (g, _) = app.patient_ids().await;
    app.login("nina.nurse")
        .await
        .get(&format!("/patients/{g}"))
        .await;
    app.store.audit_flush().await;
    let first: i64 = on_pool!(&pool, p => {
        sqlx::query_scalar("SELECT MIN(e.seq) FROM audit_events e JOIN audit_terms t ON t.id = e.action_t \
             WHERE t.term = 'patient.read'").fetch_one(p).await.unwrap()
    });
    // The app's own role cannot change, remove or replace a word.
    for sql in [
        "UPDATE audit_terms SET term = 'patient.glance' WHERE term = 'patient.read'",
        "DELETE FROM audit_terms WHERE term = 'patient.read'",
    ] {
        let r = on_pool!(app.store.raw_trail_pool(), p => sqlx::query(sql).execute(p).await.map(|_| ()));
        assert!(r.is_err(), "{sql} was allowed");
    }
    if let Pool::Sqlite(p) = app.store.raw_trail_pool() {
        let r = sqlx::query("INSERT OR REPLACE INTO audit_terms (term) VALUES ('patient.read')")
            .execute(p)
            .await;
        assert!(r.is_err(), "a word was replaced");
    }
    match &pool {
        Pool::Sqlite(p) => {
            for t in ["audit_terms_no_update", "audit_terms_no_delete"] {
                sqlx::query(&format!("DROP TRIGGER {t}"))
                    .execute(p)
                    .await
                    .unwrap();
            }
        }
        Pool::Postgres(p) => {
            sqlx::query("ALTER TABLE audit_terms DISABLE TRIGGER USER")
                .execute(p)
                .await
                .unwrap();
        }
    }
    on_pool!(&pool, p => {
        sqlx::query("UPDATE audit_terms SET term = 'patient.glance' WHERE term = 'patient.read'")
            .execute(p).await.unwrap();
    });
    match app.store.audit_verify().await.unwrap() {
        VerifyOutcome::Broken(domain::audit::ChainBreak::Altered { seq }) => {
            assert_eq!(seq, first)
        }
        other => panic!("not found: {other:?}"),
    }
}
both!(changing_a_shared_word_is_found);

async fn deleting_a_row_is_found(app: &TestApp) {
    let pool = app.trail_owner_pool().await;
    app.store.audit_flush().await;
    tamper(&pool, "DELETE FROM audit_events WHERE seq = 3").await;
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Broken(domain::audit::ChainBreak::Gap { after: 2, next: 4 })
    ));
}
both!(deleting_a_row_is_found);

async fn concurrent_appends_keep_one_chain(app: &TestApp) {
    // Many writers at once (reads through the group-commit writer and writes in
    // their own transactions) still produce one unbroken chain.
    let (g, _) = app.patient_ids().await;
    let token = app.user_token("paul.prescriber").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let url = app.url(&format!("/api/v1/patients/{g}"));
        let token = token.clone();
        let patch = i % 4 == 0;
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let r = if patch {
                c.patch(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"pronouns": format!("p{i}")}))
                    .send()
                    .await
                    .unwrap()
            } else {
                c.get(&url).bearer_auth(&token).send().await.unwrap()
            };
            r.status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    match app.store.audit_verify().await.unwrap() {
        VerifyOutcome::Intact { events } => assert!(events > 40),
        other => panic!("{other:?}"),
    }
}
both!(concurrent_appends_keep_one_chain);

async fn auditor_exports_csv_and_the_export_is_recorded(app: &TestApp) {
    let (g, _) = app.patient_ids().await;
    let n = app.login("nina.nurse").await;
    n.get(&format!("/patients/{g}")).await;
    let a = app.login("audrey.auditor").await;
    let r = a
        .get(&format!(
            "/audit/export.csv?patient={g}&action=patient.read"
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let body = r.text().await.unwrap();
    let mut lines = body.lines();
    assert!(lines.next().unwrap().starts_with("seq,at_utc,actor,role"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].contains("nina.nurse") && rows[0].contains("patient.read"));
    assert_eq!(app.store.count_audit("audit.export").await.unwrap(), 1);
    // A bad date is refused with a message, not an empty file.
    let r = a.get("/audit/export.csv?from=31-12-2026").await;
    assert_eq!(r.status(), 400);
}
both!(auditor_exports_csv_and_the_export_is_recorded);

async fn writer_and_transactions_interleave_on_one_chain(app: &TestApp) {
    // The group-commit writer remembers the head it last wrote; a write
    // transaction (or another process) moving the head must send it down the
    // general path rather than fork the chain.
    let mk = || store::audit::NewAuditEvent::new(domain::audit::Action::AuditRead, "interleave");
    app.store.audit(vec![mk(), mk()]).await.unwrap();
    let uid = app
        .store
        .user_id_by_username("nina.nurse")
        .await
        .unwrap()
        .unwrap();
    app.store.set_totp_secret(uid, None, mk()).await.unwrap();
    app.store.audit(vec![mk()]).await.unwrap();
    app.store.set_totp_secret(uid, None, mk()).await.unwrap();
    app.store.set_totp_secret(uid, None, mk()).await.unwrap();
    app.store.audit(vec![mk(), mk(), mk()]).await.unwrap();
    app.store.audit(vec![mk()]).await.unwrap();
    assert_eq!(app.store.count_audit("audit.read").await.unwrap(), 10);
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Intact { .. }
    ));
}
both!(writer_and_transactions_interleave_on_one_chain);

/// `stillwater backup` writes a backup or fails: on PostgreSQL it runs
/// pg_dump, and without pg_dump it exits non-zero with no file, so a
/// scheduled job never reports a backup it did not write.
async fn the_backup_command_writes_a_file_or_fails(app: &TestApp) {
    let dir = std::env::temp_dir().join(format!("sw-bk-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |file: &std::path::Path, path: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stillwater"));
        cmd.arg("backup")
            .arg(file)
            .env("STILLWATER_DATABASE_URL", &app.db_url)
            .env("STILLWATER_DATA_DIR", &dir)
            .env("STILLWATER_LOG", "warn");
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        cmd.output().unwrap()
    };
    let file = dir.join("backup.dump");
    let out = run(&file, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read(&file).unwrap();
    if app.db_url.starts_with("postgres") {
        assert!(head.starts_with(b"PGDMP"), "a pg_dump archive");
        let missing = dir.join("again.dump");
        let out = run(&missing, Some("/nonexistent"));
        assert!(!out.status.success(), "no pg_dump: the command fails");
        assert!(!missing.exists(), "and writes nothing");
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    } else {
        assert!(head.starts_with(b"SQLite format 3"));
    }
    // Never over an existing file.
    let out = run(&file, None);
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
both!(the_backup_command_writes_a_file_or_fails);

/// A server killed with SIGKILL in the middle of writes loses nothing it
/// acknowledged: every patient answered 201 is there afterwards, and the
/// audit trail is one intact chain (on SQLite, the events the killed
/// process left in the outbox are chained by the next writer).
async fn a_kill_during_writes_loses_nothing_acknowledged(app: &TestApp) {
    let dir = std::env::temp_dir().join(format!("sw-kill-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stillwater"))
        .arg("serve")
        .env("STILLWATER_DATABASE_URL", &app.db_url)
        .env("STILLWATER_DATA_DIR", &dir)
        .env("STILLWATER_BIND", format!("127.0.0.1:{port}"))
        .env("STILLWATER_METRICS_BIND", "")
        .env("STILLWATER_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if let Ok(r) = c.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                up = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "the server did not start");
    let token = app.user_token("nina.nurse").await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = vec![];
    for w in 0..8 {
        let (c, base, token, acked) = (c.clone(), base.clone(), token.clone(), acked.clone());
        let clinic = app.glendale;
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let r = c
                    .post(format!("{base}/api/v1/patients"))
                    .bearer_auth(&token)
                    .json(
                        &serde_json::json!({"clinic_id": clinic, "given_name": format!("Kay{w}"),
                        "family_name": format!("Killtest{i}"), "date_of_birth": "1990-01-01"}),
                    )
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() != 201 {
                    break;
                }
                let Ok(v) = r.json::<serde_json::Value>().await else {
                    break;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(v["id"].as_str().unwrap().to_string());
            }
        }));
    }
    // Let the writes run, then kill the server where it stands.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 10,
        "only {} writes were answered",
        acked.len()
    );
    let pool = app.store.raw_pool().clone();
    let mut missing = 0;
    for id in &acked {
        let n: i64 = on_pool!(&pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM patients WHERE id = $1").bind(id).fetch_one(p).await.unwrap());
        missing += i64::from(n == 0);
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged patients lost",
        acked.len()
    );
    assert!(matches!(
        app.store.audit_verify().await.unwrap(),
        VerifyOutcome::Intact { .. }
    ));
    let created = app.store.count_audit("patient.create").await.unwrap();
    assert!(
        created >= acked.len() as i64,
        "every acknowledged registration is audited: {created} < {}",
        acked.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
both!(a_kill_during_writes_loses_nothing_acknowledged);
