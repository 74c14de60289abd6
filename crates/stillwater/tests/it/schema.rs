//! Both migration sets yield the same schema: tables, columns, types (by
//! family) and nullability; indexes, unique constraints, foreign keys, CHECK
//! constraints (how many per table) and which tables' triggers refuse UPDATE
//! and DELETE.

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

/// Indexes (named ones by name, table, columns and uniqueness), unique
/// constraints (by table and columns) and foreign keys (table, columns,
/// the table they point at), each as one line.
async fn sqlite_keys(store: &Store) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for pool in [store.raw_pool(), store.raw_trail_pool()] {
        let store::Pool::Sqlite(p) = pool else {
            unreachable!()
        };
        let tables: Vec<(String,)> = sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' AND name NOT IN ('audit_outbox', 'audit_outbox_moved', 'audit_outbox_cleared')")
            .fetch_all(p)
            .await
            .unwrap();
        for (t,) in tables {
            let idx: Vec<(i64, String, i64, String, i64)> =
                sqlx::query_as(&format!("PRAGMA index_list('{t}')"))
                    .fetch_all(p)
                    .await
                    .unwrap();
            for (_, name, unique, origin, _) in idx {
                if origin == "pk" {
                    continue;
                }
                let cols: Vec<(i64, i64, Option<String>)> =
                    sqlx::query_as(&format!("PRAGMA index_info('{name}')"))
                        .fetch_all(p)
                        .await
                        .unwrap();
                let cols: Vec<String> = cols
                    .into_iter()
                    .map(|c| c.2.unwrap_or("<expr>".into()))
                    .collect();
                if origin == "u" {
                    out.insert(format!("unique {t}({})", cols.join(",")));
                } else {
                    out.insert(format!(
                        "index {name} on {t}({}) unique={}",
                        cols.join(","),
                        unique == 1
                    ));
                }
            }
            // Guard triggers: which tables refuse UPDATE and DELETE (SQLite's
            // INSERT guards against REPLACE have no PostgreSQL twin).
            let trig: Vec<(String,)> = sqlx::query_as(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = $1",
            )
            .bind(&t)
            .fetch_all(p)
            .await
            .unwrap();
            for (sql,) in trig {
                let sql = sql.to_uppercase();
                for ev in ["UPDATE", "DELETE"] {
                    if sql.contains(&format!("BEFORE {ev} ON")) {
                        out.insert(format!("trigger {t} {ev}"));
                    }
                }
            }
            // CHECK constraints: how many each table has.
            let (create,): (String,) =
                sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                    .bind(&t)
                    .fetch_one(p)
                    .await
                    .unwrap();
            let checks = create
                .match_indices("CHECK")
                .filter(|(i, _)| create[i + 5..].trim_start().starts_with('('))
                .count();
            if checks > 0 {
                out.insert(format!("checks {t} = {checks}"));
            }
            let fks: Vec<(i64, i64, String, String, Option<String>)> = sqlx::query_as(&format!(
                "SELECT id, seq, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list('{t}')"
            ))
            .fetch_all(p)
            .await
            .unwrap();
            let mut by_id: std::collections::BTreeMap<i64, (String, Vec<String>)> =
                Default::default();
            for (id, _, to, from, _) in fks {
                let e = by_id.entry(id).or_insert((to, vec![]));
                e.1.push(from);
            }
            for (_, (to, from)) in by_id {
                out.insert(format!("fk {t}({}) -> {to}", from.join(",")));
            }
        }
    }
    out
}

async fn pg_keys(store: &Store) -> BTreeSet<String> {
    let store::Pool::Postgres(p) = store.raw_pool() else {
        unreachable!()
    };
    let mut out = BTreeSet::new();
    // Indexes, with the constraint (if any) that made them.
    let rows: Vec<(String, String, bool, bool, Option<String>, String)> = sqlx::query_as(
        "SELECT i.relname::text, t.relname::text, x.indisunique, x.indisprimary, c.contype::text, \
           COALESCE((SELECT string_agg(COALESCE(a.attname::text, '<expr>'), ',' ORDER BY k.n) \
             FROM unnest(x.indkey) WITH ORDINALITY k(att, n) \
             LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.att), '') \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.contype IN ('u', 'p') \
         WHERE n.nspname = 'public' AND t.relname NOT LIKE '_sqlx%'",
    )
    .fetch_all(p)
    .await
    .unwrap();
    for (name, t, unique, primary, con, cols) in rows {
        if primary {
            continue;
        }
        if con.as_deref() == Some("u") {
            out.insert(format!("unique {t}({cols})"));
        } else {
            out.insert(format!("index {name} on {t}({cols}) unique={unique}"));
        }
    }
    let fks: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, f.relname::text, \
           (SELECT string_agg(a.attname::text, ',' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(att, n) \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) \
         FROM pg_constraint c JOIN pg_class f ON f.oid = c.confrelid WHERE c.contype = 'f'",
    )
    .fetch_all(p)
    .await
    .unwrap();
    for (t, to, cols) in fks {
        out.insert(format!("fk {t}({cols}) -> {to}"));
    }
    let checks: Vec<(String, i64)> = sqlx::query_as(
        "SELECT conrelid::regclass::text, COUNT(*) FROM pg_constraint c \
         JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE c.contype = 'c' AND n.nspname = 'public' GROUP BY 1",
    )
    .fetch_all(p)
    .await
    .unwrap();
    for (t, n) in checks {
        out.insert(format!("checks {t} = {n}"));
    }
    let trig: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT event_object_table::text, event_manipulation::text FROM information_schema.triggers \
         WHERE trigger_schema = 'public' AND event_manipulation IN ('UPDATE', 'DELETE')",
    )
    .fetch_all(p)
    .await
    .unwrap();
    for (t, ev) in trig {
        out.insert(format!("trigger {t} {ev}"));
    }
    out
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
    let ka = sqlite_keys(&lite).await;
    let kb = pg_keys(&pg).await;
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
    eprintln!(
        "keys compared: {} in SQLite, {} in PostgreSQL",
        ka.len(),
        kb.len()
    );
    let only_lite: Vec<_> = ka.difference(&kb).collect();
    let only_pg: Vec<_> = kb.difference(&ka).collect();
    assert!(
        only_lite.is_empty() && only_pg.is_empty(),
        "keys and indexes only in SQLite: {only_lite:#?}\nonly in PostgreSQL: {only_pg:#?}"
    );
    assert!(
        ka.iter().filter(|k| k.starts_with("fk ")).count() > 40
            && ka.iter().filter(|k| k.starts_with("unique ")).count() > 10
            && ka.iter().filter(|k| k.starts_with("index ")).count() > 30
            && ka.iter().filter(|k| k.starts_with("trigger ")).count() > 10
            && ka.iter().filter(|k| k.starts_with("checks ")).count() > 3,
        "the comparison saw the keys: {ka:#?}"
    );
    assert!(
        a.len() > 60,
        "the comparison saw the whole schema ({} columns)",
        a.len()
    );
}
