//! SQLite keeps the audit trail in a file of its own: events of writes pass
//! through the data file's outbox exactly once; a trail kept in the data file
//! by an earlier version is carried over; a backup restores both files.

use domain::audit::{chain_hash, Action, AuditRecord, GENESIS};
use store::audit::{NewAuditEvent, VerifyOutcome};
use store::{Pool, Store, StoreConfig};

fn scratch() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sw-trail-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn open(file: &std::path::Path) -> Store {
    let store = Store::connect(&StoreConfig {
        url: format!("sqlite://{}", file.display()),
        max_connections: 2,
        clock: crate::helpers::test_clock(),
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store
}

async fn events(store: &Store) -> i64 {
    match store.audit_verify().await.unwrap() {
        VerifyOutcome::Intact { events } => events,
        other => panic!("the trail is not intact: {other:?}"),
    }
}

async fn scalar(pool: &Pool, sql: &str) -> i64 {
    let Pool::Sqlite(p) = pool else {
        unreachable!()
    };
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(p).await.unwrap();
    n
}

/// Waits (up to 2 s) for the outbox to be emptied: moved into the chain by
/// the writer's ticker, then deleted through the store's writer connection.
async fn outbox_empties(store: &Store) {
    for _ in 0..40 {
        if scalar(store.raw_pool(), "SELECT COUNT(*) FROM audit_outbox").await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the audit outbox was not emptied within 2 s");
}

/// A staff user whose disabling is a write with an audit event.
async fn some_user(store: &Store) -> domain::ids::UserId {
    let org = store.create_org("Trail Test").await.unwrap();
    store
        .create_user(
            &store::auth::NewUser {
                org_id: org,
                username: "tess.tester",
                display_name: "Tess Tester",
                email: None,
                // Never signs in.
                password_hash: "not-a-hash",
            },
            NewAuditEvent::new(Action::UserCreate, "test"),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn write_events_reach_the_trail_through_the_outbox_once() {
    let dir = scratch();
    let store = open(&dir.join("d.db")).await;
    let user = some_user(&store).await;
    for disabled in [true, false, true] {
        store
            .set_user_disabled(
                user,
                disabled,
                NewAuditEvent::new(Action::UserDisable, "test"),
            )
            .await
            .unwrap();
    }
    // Committed with the data, waiting in the data file until moved.
    let queued = scalar(store.raw_pool(), "SELECT COUNT(*) FROM audit_outbox").await;
    assert!(queued <= 4, "{queued} outbox rows");
    // The trail file's own tables are not in the data file, and the other way round.
    assert_eq!(
        scalar(
            store.raw_pool(),
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('audit_events', 'audit_head')"
        )
        .await,
        0
    );
    assert_eq!(events(&store).await, 4);
    outbox_empties(&store).await;
    assert_eq!(store.count_audit("user.disable").await.unwrap(), 3);
    // Reads and writes interleaved still make one chain, each event once.
    store
        .audit(vec![NewAuditEvent::new(Action::AuditRead, "test")])
        .await
        .unwrap();
    store
        .set_user_disabled(user, false, NewAuditEvent::new(Action::UserDisable, "test"))
        .await
        .unwrap();
    assert_eq!(events(&store).await, 6);
    // Without a flush the ticker moves it within a quarter of a second.
    store
        .set_user_disabled(user, true, NewAuditEvent::new(Action::UserDisable, "test"))
        .await
        .unwrap();
    outbox_empties(&store).await;
    assert_eq!(
        scalar(store.raw_trail_pool(), "SELECT COUNT(*) FROM audit_events").await,
        7
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Chained rows as an earlier version wrote them into the data file.
fn old_rows(n: i64) -> Vec<AuditRecord> {
    let mut prev = GENESIS.to_string();
    (1..=n)
        .map(|seq| {
            let mut r = AuditRecord {
                seq,
                id: format!("old-{seq}"),
                at: 1_700_000_000_000_000 + seq,
                org_id: None,
                actor_user_id: None,
                actor_label: "before".into(),
                actor_role: None,
                clinic_id: None,
                patient_id: None,
                action: "user.login".into(),
                object_type: None,
                object_id: None,
                outcome: "ok".into(),
                source_ip: Some("10.0.0.1".into()),
                request_id: None,
                detail: None,
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            r.hash = chain_hash(&prev, &r);
            prev = r.hash.clone();
            r
        })
        .collect()
}

#[tokio::test]
async fn a_trail_kept_in_the_data_file_is_carried_into_its_own() {
    let dir = scratch();
    let file = dir.join("old.db");
    {
        // The schema as it was before the trail had a file of its own.
        let mut old = sqlx::migrate::Migrator::new(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../store/migrations/sqlite"
        )))
        .await
        .unwrap();
        old.migrations = old
            .migrations
            .iter()
            .filter(|m| m.version < 14)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        old.run(&pool).await.unwrap();
        let rows = old_rows(5);
        for r in &rows {
            sqlx::query(
                "INSERT INTO audit_events (seq, id, at, actor_label, action, outcome, source_ip, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(r.seq)
            .bind(&r.id)
            .bind(r.at)
            .bind(&r.actor_label)
            .bind(&r.action)
            .bind(&r.outcome)
            .bind(&r.source_ip)
            .bind(&r.prev_hash)
            .bind(&r.hash)
            .execute(&pool)
            .await
            .unwrap();
        }
        let last = rows.last().unwrap();
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(last.seq)
            .bind(&last.hash)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let store = open(&file).await;
    assert_eq!(events(&store).await, 5);
    assert_eq!(
        scalar(
            store.raw_pool(),
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events'"
        )
        .await,
        0
    );
    let old = store
        .audit_events(&store::audit::AuditFilter {
            include_orgwide: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(old.len(), 5);
    assert!(old.iter().all(|e| e.actor_label == "before"));
    // The chain goes on from the carried tip; opening again carries nothing twice.
    store
        .audit(vec![NewAuditEvent::new(Action::AuditRead, "after")])
        .await
        .unwrap();
    store.close().await;
    let store = open(&file).await;
    assert_eq!(events(&store).await, 6);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_backup_holds_data_and_trail_and_restores_to_one_chain() {
    let dir = scratch();
    let store = open(&dir.join("live.db")).await;
    let user = some_user(&store).await;
    store
        .set_user_disabled(user, true, NewAuditEvent::new(Action::UserDisable, "test"))
        .await
        .unwrap();
    let copy = dir.join("copy.db");
    store.backup_to(copy.to_str().unwrap()).await.unwrap();
    assert!(copy.exists() && dir.join("copy-audit.db").exists());
    // A second backup to the same name is refused, not overwritten.
    std::fs::remove_file(&copy).unwrap();
    let again = store.backup_to(copy.to_str().unwrap()).await.unwrap_err();
    assert!(again.to_string().contains("copy-audit.db"), "{again}");
    let before = events(&store).await;
    store.close().await;
    std::fs::remove_file(dir.join("copy-audit.db")).unwrap();
    let live = open(&dir.join("live.db")).await;
    live.backup_to(copy.to_str().unwrap()).await.unwrap();
    live.close().await;
    {
        // As if the data file had been copied before its last outbox events
        // were numbered while the trail copy already holds them moved.
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&copy),
        )
        .await
        .unwrap();
        sqlx::query("UPDATE sqlite_sequence SET seq = 0 WHERE name = 'audit_outbox'")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
    let restored = open(&copy).await;
    assert_eq!(events(&restored).await, before);
    // A change after the restore is audited, not taken for one already moved.
    restored
        .set_user_disabled(user, false, NewAuditEvent::new(Action::UserDisable, "test"))
        .await
        .unwrap();
    assert_eq!(events(&restored).await, before + 1);
    assert_eq!(restored.count_audit("user.disable").await.unwrap(), 2);
    restored.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under a steady stream of audited reads the trail's log is checkpointed
/// by its own thread (the writer's automatic checkpoints are off), so it
/// stays bounded, and every answered event is in an intact chain.
#[tokio::test]
async fn the_trail_log_is_checkpointed_off_the_writer() {
    let dir = scratch();
    let file = dir.join("d.db");
    let store = open(&file).await;
    // Checkpointed logs are cut back to 32 MiB on every connection.
    for pool in [store.raw_pool(), store.raw_trail_pool()] {
        assert_eq!(
            scalar(pool, "PRAGMA journal_size_limit").await,
            32 * 1024 * 1024
        );
    }
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                let mut ev = NewAuditEvent::new(Action::PatientRead, "test");
                // Spread over many patients, as the patient index is in use.
                ev.patient_id = Some(uuid::Uuid::now_v7().to_string());
                ev.detail = Some(format!("reader {t} read {i}"));
                s.audit(vec![ev]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The answered reads are all in the chain, each once.
    assert_eq!(
        scalar(
            store.raw_trail_pool(),
            "SELECT COUNT(*) FROM audit_events e JOIN audit_terms a ON a.id = e.action_t \
             WHERE a.term = 'patient.read'"
        )
        .await,
        4000
    );
    assert!(events(&store).await >= 4000);
    // The log starts afresh after each complete checkpoint, and its header
    // counts the restarts (the checkpoint sequence, bytes 12..16). Without
    // checkpoints it never restarts and holds every page written since the
    // start: some 30 MB here. Under a loaded machine the checkpoint thread
    // can lag; the writer then checkpoints itself after 64 commits, so the
    // file (which keeps its largest size) stays well below that.
    let wal = store::audit::trail_file(&file).with_extension("db-wal");
    let bytes = std::fs::read(&wal).unwrap();
    let restarts = u32::from_be_bytes(bytes[12..16].try_into().unwrap());
    assert!(
        restarts >= 2,
        "the trail's log restarted {restarts} times: checkpoints are not running"
    );
    assert!(
        bytes.len() < 20 * 1024 * 1024,
        "the trail's log grew to {} bytes: checkpoints are not keeping up",
        bytes.len()
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A backup taken while patients are being registered is one consistent
/// pair: restored, every patient's registration is in the chain, and the
/// chain names no patient the data file lacks (the trail is copied first,
/// and events still to move stay with their rows in the data file).
#[tokio::test]
async fn a_backup_under_writes_keeps_data_and_trail_together() {
    let dir = scratch();
    let store = open(&dir.join("live.db")).await;
    let org = store.create_org("Backup Test").await.unwrap();
    let settings = domain::clinics::ClinicSettings {
        name: "Backup Clinic".into(),
        address_line1: "1 Main St".into(),
        address_line2: None,
        city: "Glendale".into(),
        region: "AZ".into(),
        postal_code: "85308".into(),
        country: "US".into(),
        phone: "(602) 555-0100".into(),
        email: None,
        time_zone: "America/Phoenix".into(),
        hours: vec![],
        video_link: None,
    };
    let clinic = store.create_clinic(org, &settings).await.unwrap();
    let writer = {
        let s = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let d = domain::patients::PatientDetails::validate(
                    &stillwater::demo::patient(i, false),
                    "2026-11-24".parse().unwrap(),
                )
                .unwrap();
                s.create_patient(
                    org,
                    clinic,
                    &d,
                    None,
                    NewAuditEvent::new(Action::PatientCreate, "test"),
                )
                .await
                .unwrap();
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let copy = dir.join("copy.db");
    store.backup_to(copy.to_str().unwrap()).await.unwrap();
    writer.await.unwrap();
    store.close().await;
    let restored = open(&copy).await;
    events(&restored).await;
    let patients: Vec<(String,)> = match restored.raw_pool() {
        Pool::Sqlite(p) => sqlx::query_as("SELECT id FROM patients")
            .fetch_all(p)
            .await
            .unwrap(),
        _ => unreachable!(),
    };
    let audited: Vec<(Option<String>,)> = match restored.raw_trail_pool() {
        Pool::Sqlite(p) => sqlx::query_as(
            "SELECT p.term FROM audit_events e JOIN audit_terms a ON a.id = e.action_t \
                 LEFT JOIN audit_terms p ON p.id = e.patient_t WHERE a.term = 'patient.create'",
        )
        .fetch_all(p)
        .await
        .unwrap(),
        _ => unreachable!(),
    };
    let patients: std::collections::BTreeSet<String> = patients.into_iter().map(|p| p.0).collect();
    let audited: std::collections::BTreeSet<String> =
        audited.into_iter().filter_map(|p| p.0).collect();
    assert!(!patients.is_empty(), "the backup caught some of the writes");
    assert_eq!(
        patients, audited,
        "every patient registered is audited, and only they"
    );
    restored.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The outbox is guarded like the chain: a waiting event cannot be changed,
/// deleted or replaced, nor the mark below which rows may go moved back;
/// the writer still moves it into the chain and clears it.
#[tokio::test]
async fn the_outbox_is_guarded_like_the_chain() {
    let dir = scratch();
    let file = dir.join("d.db");
    let store = open(&file).await;
    let user = some_user(&store).await;
    let before = events(&store).await;
    outbox_empties(&store).await;
    store.close().await;
    // An event waiting in the outbox (the writer is not running).
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&file))
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO audit_outbox (at, actor_label, action, outcome, actor_user_id) \
         VALUES (1, 'test', 'user.disable', 'ok', $1)",
    )
    .bind(user.to_string())
    .execute(&pool)
    .await
    .unwrap();
    let (oid,): (i64,) = sqlx::query_as("SELECT MAX(oid) FROM audit_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    for (sql, why) in [
        ("UPDATE audit_outbox SET detail = 'x'", "append-only"),
        ("DELETE FROM audit_outbox", "only once chained"),
        (
            "INSERT OR REPLACE INTO audit_outbox (oid, at, actor_label, action, outcome) \
             SELECT oid, at, 'someone', action, outcome FROM audit_outbox",
            "append-only",
        ),
        ("UPDATE audit_outbox_cleared SET upto = 1000000", ""),
        (
            "UPDATE audit_outbox_cleared SET upto = 0",
            "only moves forward",
        ),
        ("DELETE FROM audit_outbox_cleared", "only moves forward"),
        (
            "INSERT OR REPLACE INTO audit_outbox_cleared (id, upto) VALUES (1, 0)",
            "only moves forward",
        ),
    ] {
        let r = sqlx::query(sql).execute(&pool).await;
        if why.is_empty() {
            // Moving the mark up is how the writer clears; it cannot come back.
            r.unwrap();
            continue;
        }
        let e = r.unwrap_err().to_string();
        assert!(e.contains(why), "{sql}: {e}");
    }
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_outbox WHERE oid = $1")
        .bind(oid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1, "the waiting event is still there, unchanged");
    pool.close().await;
    // The writer chains it and clears the outbox.
    let store = open(&file).await;
    assert_eq!(events(&store).await, before + 1);
    outbox_empties(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows of the old layout: a patient and a clinic named, an address.
fn rich_rows(n: i64) -> Vec<AuditRecord> {
    let mut prev = GENESIS.to_string();
    (1..=n)
        .map(|seq| {
            let mut r = old_rows(1).remove(0);
            r.seq = seq;
            r.id = format!("old-{seq}");
            r.org_id = Some("org-1".into());
            r.clinic_id = Some("clinic-1".into());
            r.patient_id = (seq % 2 == 0).then(|| format!("patient-{seq}"));
            r.object_type = r.patient_id.as_ref().map(|_| "patient".into());
            r.object_id = r.patient_id.clone();
            r.action = if seq % 2 == 0 {
                "patient.read"
            } else {
                "user.login"
            }
            .into();
            r.detail = (seq == 3).then(|| "sha256 abc".into());
            r.prev_hash = prev.clone();
            r.hash = chain_hash(&prev, &r);
            prev = r.hash.clone();
            r
        })
        .collect()
}

const OLD_INSERT: &str = "INSERT INTO audit_events (seq, id, at, org_id, actor_user_id, \
     actor_label, actor_role, clinic_id, patient_id, action, object_type, object_id, outcome, \
     source_ip, request_id, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12, $13, $14, $15, $16, $17, $18)";

/// The same records, read back through the compacted trail.
async fn read_back(store: &Store, rows: &[AuditRecord]) {
    assert_eq!(events(store).await, rows.len() as i64);
    let mut back = store
        .audit_events(&store::audit::AuditFilter {
            include_orgwide: true,
            clinics: vec!["clinic-1".into()],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    back.reverse();
    assert_eq!(back, rows, "the compacted rows read as they were written");
    let read = store
        .audit_events(&store::audit::AuditFilter {
            patient_id: Some("patient-4".into()),
            clinics: vec!["clinic-1".into()],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0], rows[3]);
}

macro_rules! bind_old {
    ($q:expr, $r:expr) => {
        $q.bind($r.seq)
            .bind(&$r.id)
            .bind($r.at)
            .bind(&$r.org_id)
            .bind(&$r.actor_user_id)
            .bind(&$r.actor_label)
            .bind(&$r.actor_role)
            .bind(&$r.clinic_id)
            .bind(&$r.patient_id)
            .bind(&$r.action)
            .bind(&$r.object_type)
            .bind(&$r.object_id)
            .bind(&$r.outcome)
            .bind(&$r.source_ip)
            .bind(&$r.request_id)
            .bind(&$r.detail)
            .bind(&$r.prev_hash)
            .bind(&$r.hash)
    };
}

/// The migrations in `folder` (of the store crate) before `version`.
async fn migrations_before(folder: &str, version: i64) -> sqlx::migrate::Migrator {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../store/migrations")
        .join(folder);
    let mut m = sqlx::migrate::Migrator::new(dir).await.unwrap();
    m.migrations = m
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    m
}

/// Writes `rows` in the old layout into `pool` (either backend) and moves
/// the head to the last.
macro_rules! write_old {
    ($pool:expr, $rows:expr) => {{
        for r in $rows {
            bind_old!(sqlx::query(OLD_INSERT), r)
                .execute($pool)
                .await
                .unwrap();
        }
        let last = $rows.last().unwrap();
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(last.seq)
            .bind(&last.hash)
            .execute($pool)
            .await
            .unwrap();
    }};
}

/// A trail written before the compact layout is compacted by the
/// migration, and every event reads and verifies as it was (SQLite).
#[tokio::test]
async fn a_trail_of_the_old_layout_is_compacted_and_still_verifies() {
    let dir = scratch();
    let file = dir.join("t.db");
    let rows = rich_rows(6);
    {
        let old = migrations_before("sqlite_trail", 4).await;
        let pool = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(store::audit::trail_file(&file))
                .create_if_missing(true),
        )
        .await
        .unwrap();
        old.run(&pool).await.unwrap();
        write_old!(&pool, &rows);
        pool.close().await;
    }
    let store = open(&file).await;
    read_back(&store, &rows).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same on PostgreSQL: migrated up to the old layout, written, then
/// migrated on.
#[tokio::test]
async fn a_postgres_trail_of_the_old_layout_is_compacted_and_still_verifies() {
    let Some(admin) = crate::helpers::pg_admin_url() else {
        eprintln!("old-layout PostgreSQL trail skipped: STILLWATER_SKIP_POSTGRES=1");
        return;
    };
    let name = format!("sw_oldtrail_{}", uuid::Uuid::now_v7().simple());
    let url = store::provision::create_pg_database(&admin, &name)
        .await
        .unwrap();
    let rows = rich_rows(6);
    {
        let old = migrations_before("postgres", 19).await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        old.run(&pool).await.unwrap();
        write_old!(&pool, &rows);
        pool.close().await;
    }
    let store = Store::connect(&StoreConfig {
        url,
        max_connections: 2,
        clock: crate::helpers::test_clock(),
    })
    .await
    .unwrap();
    store.migrate().await.unwrap();
    read_back(&store, &rows).await;
    store.close().await;
    store::provision::drop_pg_database(&admin, &name)
        .await
        .unwrap();
}
