//! `stillwater bench`: a load generator for the hot paths of the foundation.
//! It seeds a clinic with many patients, serves it in-process, and drives it
//! with 64 keep-alive HTTP/1.1 connections: `/healthz` as the ceiling, then
//! audited chart reads (JSON and HTML) and patient search. It then starts the
//! real binary to time start-up and read idle memory. Numbers are printed, not
//! asserted; `BENCHMARKS.md` keeps the latest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes_body::Empty;
use domain::audit::Action;
use domain::auth::Role;
use domain::patients::PatientDetails;
use http_body_util::BodyExt;
use hyper::Request;
use hyper_util::rt::TokioIo;
use store::audit::NewAuditEvent;
use store::{Store, StoreConfig};

mod bytes_body {
    pub type Empty = http_body_util::Empty<hyper::body::Bytes>;
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// PostgreSQL server to benchmark against (a scratch database is created
    /// and dropped there); without it, SQLite in a temporary folder.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Patients to seed.
    #[arg(long, default_value_t = 20_000)]
    pub patients: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds of measurement per scenario (after one second of warm-up).
    #[arg(long, default_value_t = 8)]
    pub seconds: u64,
    /// Skip the start-up and idle-memory measurement of the real binary.
    #[arg(long)]
    pub no_startup: bool,
    /// Run only scenarios whose name contains this text (for profiling one
    /// path), or one of the other benchmarks: `schedule`, `measures`,
    /// `ingest`, `cs`, `billing`, `clinic`, `soak` (audited reads for
    /// `--seconds`, e.g. 600: trail bytes per read and memory per minute).
    #[arg(long)]
    pub only: Option<String>,
    /// Requests per second of the `clinic` benchmark (open loop).
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Ledger entries the `cs` benchmark writes before it measures.
    #[arg(long, default_value_t = 1_000_000)]
    pub cs_entries: u64,
    /// Keep the benchmark's SQLite folder (its path is printed).
    #[arg(long)]
    pub keep: bool,
    /// Measure the `cs` benchmark against a folder kept by an earlier run
    /// (`--keep`) instead of writing the ledger again.
    #[arg(long)]
    pub reuse: Option<PathBuf>,
}

struct Outcome {
    name: &'static str,
    ok: u64,
    /// Successful requests including warm-up (each must leave one audit row).
    total_ok: u64,
    errors: u64,
    rps: f64,
    p50: f64,
    p99: f64,
}

pub async fn run(a: &BenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "stillwater-bench-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let pg_name = format!("sw_bench_{}", uuid::Uuid::now_v7().simple());
    let dir = a.reuse.clone().unwrap_or(dir);
    let url = match &a.postgres {
        Some(admin) => store::provision::create_pg_database(admin, &pg_name).await?,
        None => format!("sqlite://{}", dir.join("stillwater.db").display()),
    };
    let result = if a.only.as_deref() == Some("schedule") {
        schedule_on(a, &url).await
    } else if a.only.as_deref() == Some("measures") {
        measures_on(a, &url).await
    } else if a.only.as_deref() == Some("ingest") {
        ingest_on(a, &url).await
    } else if a.only.as_deref() == Some("billing") {
        let store = open(&url, "billing").await?;
        let r = crate::bench_billing::run(&store).await;
        store.close().await;
        r
    } else if a.only.as_deref() == Some("clinic") {
        let store = open(&url, "every page at a clinic's pace").await?;
        let r = crate::bench_clinic::run(
            &store,
            a.rate,
            a.seconds,
            &domain::protocols::Protocols::builtin(),
            &domain::instruments::Registry::builtin(),
        )
        .await;
        store.close().await;
        r
    } else if a.only.as_deref() == Some("soak") {
        let store = open(&url, "audit soak").await?;
        let r = crate::bench_soak::run(&store, a.patients.min(5_000), a.clients, a.seconds).await;
        store.close().await;
        r
    } else if a.only.as_deref() == Some("cs") {
        let store = open(&url, "Schedule III record").await?;
        let r = crate::bench_substances::run(&store, a.cs_entries, a.reuse.is_none()).await;
        store.close().await;
        r
    } else {
        bench_on(a, &url, &dir).await
    };
    if let Some(admin) = &a.postgres {
        store::provision::drop_pg_database(admin, &pg_name).await?;
    }
    if a.keep || a.reuse.is_some() {
        println!("kept the benchmark's data in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Opens and migrates the benchmark's database and prints what runs on what.
async fn open(url: &str, title: &str) -> anyhow::Result<Store> {
    let store = Store::connect(&StoreConfig {
        url: url.to_string(),
        max_connections: 16,
        clock: domain::time::Clock::system(),
    })
    .await?;
    store.migrate().await?;
    println!(
        "Stillwater {title} benchmark · {:?} · {} cores",
        store.backend(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    Ok(store)
}

async fn schedule_on(a: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let store = open(url, "scheduling").await?;
    let r = crate::bench_schedule::run(&store, a.seconds).await;
    store.close().await;
    r
}

async fn measures_on(a: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let store = open(url, "front door and measures").await?;
    let r = crate::bench_measures::run(&store, a.seconds).await;
    store.close().await;
    r
}

async fn ingest_on(a: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let store = open(url, "monitor ingestion").await?;
    let r = crate::bench_treatment::run(&store, a.seconds).await;
    store.close().await;
    r
}

async fn bench_on(a: &BenchArgs, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::connect(&StoreConfig {
        url: url.to_string(),
        max_connections: 16,
        clock: domain::time::Clock::system(),
    })
    .await?;
    store.migrate().await?;
    let backend = format!("{:?}", store.backend());
    println!(
        "Stillwater benchmark · {backend} · {} patients · {} clients · {} s per scenario",
        a.patients, a.clients, a.seconds
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let t = Instant::now();
    let Seeded { ids, token, cookie } = seed(&store, a.patients).await?;
    println!("seeded in {:.1} s", t.elapsed().as_secs_f64());

    let running = crate::server::start(store.clone(), &server_config()).await?;
    let addr = running.addr;
    let bearer = format!("Bearer {token}");
    let cookie_header = format!("{}={cookie}", web::auth::SESSION_COOKIE);
    let ids = std::sync::Arc::new(ids);

    let mut results = Vec::new();
    results.push(
        scenario(a, addr, "GET /healthz (ceiling)", {
            move |_| ("/healthz".to_string(), None)
        })
        .await?,
    );
    let before = store.count_audit(Action::PatientRead.as_str()).await?;
    let (b0, e0) = store.audit_writer_stats();
    let ids2 = ids.clone();
    let b2 = bearer.clone();
    results.push(
        scenario(a, addr, "GET /api/v1/patients/{id} (audited)", move |k| {
            (
                format!("/api/v1/patients/{}", ids2[k % ids2.len()]),
                Some(("authorization", b2.clone())),
            )
        })
        .await?,
    );
    let after = store.count_audit(Action::PatientRead.as_str()).await?;
    let (b1, e1) = store.audit_writer_stats();
    let ids3 = ids.clone();
    results.push(
        scenario(
            a,
            addr,
            "GET /patients/{id} chart page (audited)",
            move |k| {
                (
                    format!("/patients/{}", ids3[k % ids3.len()]),
                    Some(("cookie", cookie_header.clone())),
                )
            },
        )
        .await?,
    );
    const WORDS: [&str; 8] = [
        "lopez",
        "maria 19",
        "6025550",
        "carter",
        "nguyen",
        "priya",
        "sw-",
        "example.com",
    ];
    results.push(
        scenario(
            a,
            addr,
            "GET /api/v1/patients?q= search (audited)",
            move |k| {
                (
                    format!(
                        "/api/v1/patients?q={}&limit=20",
                        WORDS[k % WORDS.len()].replace(' ', "+")
                    ),
                    Some(("authorization", bearer.clone())),
                )
            },
        )
        .await?,
    );

    println!();
    println!(
        "{:<44} {:>9} {:>7} {:>10} {:>9} {:>9}",
        "scenario", "requests", "errors", "req/s", "p50 ms", "p99 ms"
    );
    for r in &results {
        println!(
            "{:<44} {:>9} {:>7} {:>10.0} {:>9.2} {:>9.2}",
            r.name, r.ok, r.errors, r.rps, r.p50, r.p99
        );
    }
    println!();
    println!(
        "audit check: {} patient.read events committed during the JSON chart scenario for {} successful reads (warm-up included)",
        after - before,
        results[1].total_ok
    );
    println!(
        "group commit: {} audit transactions carried {} events (average {:.1} per commit)",
        b1 - b0,
        e1 - e0,
        (e1 - e0) as f64 / (b1 - b0).max(1) as f64
    );
    running.stop().await;
    store.close().await;

    if !a.no_startup {
        startup(url, dir).await?;
    }
    Ok(())
}

/// A seeded clinic: its patients' ids, a nurse's API token and browser session.
pub(crate) struct Seeded {
    pub ids: Vec<String>,
    pub token: String,
    pub cookie: String,
}

/// Seeds one clinic, one nurse with a token and a browser session, and
/// `patients` patients.
pub(crate) async fn seed(store: &Store, patients: usize) -> anyhow::Result<Seeded> {
    let org = store.create_org("Bench Health").await?;
    let clinic = store.create_clinic(org, &crate::demo::glendale()).await?;
    let (nurse, cookie) = seed_nurse(store, org, clinic).await?;
    let ev = || NewAuditEvent::new(Action::UserCreate, "bench");
    let token = format!("sw_{}", clinic::actor::random_token(32));
    store
        .create_token(
            "bench",
            Some(nurse),
            None,
            &clinic::actor::secret_hash(&token),
            None,
            ev(),
        )
        .await?;
    let today = jiff::civil::date(2026, 11, 23);
    let mut ids = Vec::with_capacity(patients);
    let mut i = 0;
    while i < patients {
        let n = (patients - i).min(2000);
        let details: Vec<PatientDetails> = (i..i + n)
            .map(|k| PatientDetails::validate(&crate::demo::patient(k, false), today))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let made = store
            .create_patients_bulk(
                org,
                clinic,
                &details,
                NewAuditEvent::new(Action::PatientCreate, "bench"),
            )
            .await?;
        ids.extend(made.into_iter().map(|p| p.id.to_string()));
        i += n;
    }
    Ok(Seeded { ids, token, cookie })
}

/// The in-process server every benchmark drives: any free port, no metrics
/// listener.
pub(crate) fn server_config() -> crate::config::Config {
    crate::config::Config {
        bind: "127.0.0.1:0".into(),
        metrics_bind: String::new(),
        ..Default::default()
    }
}

/// A nurse of `clinic` with a signed-in browser session; returns the user
/// and the session cookie's value.
pub(crate) async fn seed_nurse(
    store: &Store,
    org: domain::ids::OrgId,
    clinic: domain::ids::ClinicId,
) -> anyhow::Result<(domain::ids::UserId, String)> {
    let hash =
        clinic::passwords::hash_blocking("bench-password-123").map_err(anyhow::Error::msg)?;
    let ev = || NewAuditEvent::new(Action::UserCreate, "bench");
    let nurse = store
        .create_user(
            &store::auth::NewUser {
                org_id: org,
                username: "bench.nurse",
                display_name: "Bench Nurse",
                email: None,
                password_hash: &hash,
            },
            ev(),
        )
        .await?;
    store
        .grant_role(nurse, clinic, Role::Nurse, None, ev())
        .await?;
    Ok((nurse, session(store, nurse, ev()).await?))
}

/// A browser session of an hour for `user`, as signing in makes; returns the
/// cookie's value.
pub(crate) async fn session(
    store: &Store,
    user: domain::ids::UserId,
    audit: NewAuditEvent,
) -> anyhow::Result<String> {
    let cookie = clinic::actor::random_token(32);
    store
        .create_session(
            user,
            &clinic::actor::secret_hash(&cookie),
            "csrf",
            store.now() + 3_600_000_000,
            None,
            audit,
        )
        .await?;
    Ok(cookie)
}

/// Runs one scenario: `clients` connections, each sending requests back to back.
async fn scenario<F>(
    a: &BenchArgs,
    addr: SocketAddr,
    name: &'static str,
    make: F,
) -> anyhow::Result<Outcome>
where
    F: Fn(usize) -> (String, Option<(&'static str, String)>) + Send + Sync + Clone + 'static,
{
    if a.only.as_deref().is_some_and(|o| !name.contains(o)) {
        return Ok(Outcome {
            name,
            ok: 0,
            total_ok: 0,
            errors: 0,
            rps: 0.0,
            p50: 0.0,
            p99: 0.0,
        });
    }
    let warm = Instant::now() + Duration::from_secs(1);
    let end = warm + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut lat: Vec<u32> = Vec::with_capacity(200_000);
            let mut errors = 0u64;
            let mut total_ok = 0u64;
            let mut k = c * 7919;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let (path, header) = make(k);
                k += 1;
                let mut req = Request::get(path).header("host", "bench");
                if let Some((h, v)) = header {
                    req = req.header(h, v);
                }
                let req = req.body(Empty::new())?;
                let t = Instant::now();
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let ok = resp.status().is_success();
                resp.into_body().collect().await?;
                total_ok += u64::from(ok);
                if t >= warm {
                    if ok {
                        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((lat, errors, total_ok))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut total_ok = 0;
    for t in tasks {
        let (lat, e, n) = t.await.context("client task")??;
        all.extend(lat);
        errors += e;
        total_ok += n;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let idx = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[idx] as f64 / 1000.0
    };
    Ok(Outcome {
        name,
        ok: all.len() as u64,
        total_ok,
        errors,
        rps: all.len() as f64 / a.seconds as f64,
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

/// Starts the real binary against the seeded database: time to ready and
/// resident memory after two idle seconds.
async fn startup(url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("serve")
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir);
    cmd.env("STILLWATER_METRICS_BIND", "")
        .env("STILLWATER_LOG", "warn");
    if url.starts_with("postgres") {
        cmd.env("DATABASE_URL", url);
    } else {
        cmd.env_remove("DATABASE_URL")
            .env_remove("STILLWATER_DATABASE_URL");
    }
    cmd.kill_on_drop(true);
    let t = Instant::now();
    let mut child = cmd.spawn().context("starting stillwater serve")?;
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = None;
    while t.elapsed() < Duration::from_secs(20) {
        if get_ok(&ready_url).await {
            ready = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ready = ready.context("the server did not become ready in 20 s")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = child
        .id()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    // The file part is the executable's pages mapped from the page cache
    // (clean, shared): how much of it a process maps depends on how the
    // file sits in the cache (a freshly copied binary maps more).
    println!(
        "start-up: process start to /readyz 200 in {:.0} ms; idle resident memory {} \
         (anonymous {}, mapped from files {})",
        ready.as_secs_f64() * 1000.0,
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:")
    );
    let _ = child.kill().await;
    Ok(())
}

/// GET `url` (plain http://host:port/path) and report whether it answered 2xx.
pub async fn get_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let fut = async {
        let stream = tokio::net::TcpStream::connect(host).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", host)
            .body(Empty::new())
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        Some(resp.status().is_success())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), fut).await,
        Ok(Some(true))
    )
}
