//! Both migration sets yield the same schema: tables, columns, types (by
//! family) and nullability.

use std::collections::BTreeSet;

use store::{Store, StoreConfig};

use crate::helpers::pg_admin_url;

fn family(t: &str) -> &'static str {
    let t = t.to_lowercase();
    if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("text") {
        "text"
    } else if t.contains("bool") {
        "boolean"
    } else {
        "other"
    }
}

/// The data file's tables and the trail file's, less the tables by which
/// audit events of writes reach the trail file (`audit_outbox` and
/// `audit_outbox_cleared` in the data file, `audit_outbox_moved` in the
/// trail file), which PostgreSQL, keeping the trail beside the data, does
/// not need.
async fn sqlite_schema(store: &Store) -> BTreeSet<(String, String, &'static str, bool)> {
    let mut out = BTreeSet::new();
    for pool in [store.raw_pool(), store.raw_trail_pool()] {
        let store::Pool::Sqlite(p) = pool else {
            unreachable!()
        };
        sqlite_tables(p, &mut out).await;
    }
    out
}

async fn sqlite_tables(
    p: &sqlx::SqlitePool,
    out: &mut BTreeSet<(String, String, &'static str, bool)>,
) {
    let tables: Vec<(String,)> = sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' AND name NOT IN ('audit_outbox', 'audit_outbox_moved', 'audit_outbox_cleared')")
        .fetch_all(p)
        .await
        .unwrap();
    for (t,) in tables {
        let cols: Vec<(i64, String, String, i64, Option<String>, i64)> =
            sqlx::query_as(&format!("PRAGMA table_info('{t}')"))
                .fetch_all(p)
                .await
                .unwrap();
        for (_, name, ty, notnull, _, pk) in cols {
            out.insert((t.clone(), name, family(&ty), notnull == 1 || pk > 0));
        }
    }
}

async fn pg_schema(store: &Store) -> BTreeSet<(String, String, &'static str, bool)> {
    let store::Pool::Postgres(p) = store.raw_pool() else {
        unreachable!()
    };
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(p)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(t, c, ty, n)| (t, c, family(&ty), n == "NO"))
        .collect()
}

#[tokio::test]
async fn both_migration_sets_yield_the_same_schema() {
    let Some(admin) = pg_admin_url() else {
        eprintln!("schema comparison skipped: STILLWATER_SKIP_POSTGRES=1");
        return;
    };
    let dir = std::env::temp_dir().join(format!("sw-schema-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let lite = Store::connect(&StoreConfig {
        url: format!("sqlite://{}", dir.join("s.db").display()),
        max_connections: 2,
        clock: crate::helpers::test_clock(),
    })
    .await
    .unwrap();
    lite.migrate().await.unwrap();
    let name = format!("sw_schema_{}", uuid::Uuid::now_v7().simple());
    let url = store::provision::create_pg_database(&admin, &name)
        .await
        .unwrap();
    let pg = Store::connect(&StoreConfig {
        url,
        max_connections: 2,
        clock: crate::helpers::test_clock(),
    })
    .await
    .unwrap();
    pg.migrate().await.unwrap();
    let a = sqlite_schema(&lite).await;
    let b = pg_schema(&pg).await;
    pg.close().await;
    lite.close().await;
    store::provision::drop_pg_database(&admin, &name)
        .await
        .unwrap();
    let only_lite: Vec<_> = a.difference(&b).collect();
    let only_pg: Vec<_> = b.difference(&a).collect();
    assert!(
        only_lite.is_empty() && only_pg.is_empty(),
        "only in SQLite: {only_lite:?}\nonly in PostgreSQL: {only_pg:?}"
    );
    assert!(
        a.len() > 60,
        "the comparison saw the whole schema ({} columns)",
        a.len()
    );
}
