//! `stillwater bench --only ingest`: monitor readings on the treatment floor.
//!
//! The demo organisation is loaded, `CHAIRS` IV chairs are added to Glendale
//! and a patient sits in each with an infusion running (every step through
//! the real use cases: readiness, check-in, checklist, order, second check,
//! start). A nurse's browser keeps the floor's event stream open. Then:
//!
//! 1. Batches: `GATEWAYS` gateways POST batches of `BATCH` readings (1 Hz per chair, six
//!    parameters each: HR, SBP, DBP, SpO2, RR, temperature), one in 500 out of
//!    range so alerts are raised and fanned out. Each response comes after the
//!    readings, their alerts and the audit rows are durably committed.
//! 2. Single readings: 64 monitors each POST one reading per request.
//! 3. Fan-out: one reading at a time, timed from the POST until the floor's
//!    event stream delivers the change.
//!
//! Numbers are printed, not asserted; `BENCHMARKS.md` keeps the latest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::audit::Action;
use domain::patients::PatientDetails;
use domain::scheduling::{Capabilities, ResourceKind};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use store::audit::NewAuditEvent;
use store::Store;

use crate::bench_measures::{drive, pct, Load};
use crate::demo_treatment::{Chairside, Stage};

const CHAIRS: usize = 48;
const BATCH: usize = 200;
const GATEWAYS: usize = 2;

fn reading(chairs: &[String], n: u64, at: &str) -> String {
    let chair = &chairs[n as usize % chairs.len()];
    let high = n.is_multiple_of(500);
    format!(
        r#"{{"reading_id":"r{n}","chair_id":"{chair}","taken_at":"{at}","hr":{},"sbp":{},"dbp":{},"spo2":{},"rr":{},"temp_c":36.{}}}"#,
        62 + n % 17,
        if high { 192 } else { 112 + n % 20 },
        70 + n % 11,
        95 + n % 5,
        12 + n % 5,
        4 + n % 5
    )
}

fn batch(chairs: &[String], first: u64, size: usize) -> String {
    // Taken a moment ago; each id is new, so nothing is a duplicate.
    let at = (jiff::Timestamp::now() - jiff::SignedDuration::from_millis(500)).to_string();
    let items: Vec<String> = (0..size as u64)
        .map(|i| reading(chairs, first + i, &at))
        .collect();
    format!(r#"{{"readings":[{}]}}"#, items.join(","))
}

async fn count_rows(store: &Store, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    Ok(store::on_pool!(store.raw_pool(), p => {
        let (n,): (i64,) = sqlx::query_as(&sql).fetch_one(p).await?;
        n
    }))
}

/// Reads the floor's event stream, counting events and announcing each.
async fn listen(
    addr: std::net::SocketAddr,
    path: String,
    token: String,
    seen: Arc<AtomicU64>,
    tick: Arc<tokio::sync::Notify>,
) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    sender.ready().await?;
    let resp = sender
        .send_request(
            Request::get(path.as_str())
                .header("host", "bench")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))?,
        )
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "event stream: {}",
        resp.status()
    );
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let n = data.windows(5).filter(|w| w == b"data:").count();
            if n > 0 {
                seen.fetch_add(n as u64, Ordering::Relaxed);
                tick.notify_waiters();
            }
        }
    }
    Ok(())
}

pub async fn run(store: &Store, seconds: u64) -> anyhow::Result<()> {
    let t = Instant::now();
    let hash =
        clinic::passwords::hash_blocking("bench-password-123").map_err(anyhow::Error::msg)?;
    crate::demo::load(store, &hash).await?;
    let protocols = domain::protocols::Protocols::builtin();
    let registry = domain::instruments::Registry::builtin();
    crate::demo_intake::load(store, &protocols, &registry).await?;
    crate::demo_substances::load(store, &protocols, &registry).await?;
    let org = store.any_org().await?.context("no organisation")?;
    let clinic = store
        .clinics_of_org(org)
        .await?
        .into_iter()
        .find(|c| c.slug == "stillwater-glendale")
        .context("no Glendale")?;
    let ev = || NewAuditEvent::new(Action::ScheduleSettings, "bench");
    let iv = Capabilities {
        iv: true,
        monitored: true,
        private: false,
    };
    let mut chairs = Vec::with_capacity(CHAIRS);
    for i in 0..CHAIRS {
        let id = store
            .create_resource(
                clinic.id,
                ResourceKind::Chair,
                &format!("Bay {:02}", i + 1),
                iv,
                ev(),
            )
            .await?;
        chairs.push(id.to_string());
    }
    let today = domain::clinics::today_in(&jiff::tz::TimeZone::UTC, store.now());
    let details: Vec<PatientDetails> = (0..CHAIRS)
        .map(|i| {
            PatientDetails::validate(&crate::demo::patient(100 + i, false), today)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<Result<_, _>>()?;
    let patients = store
        .create_patients_bulk(
            org,
            clinic.id,
            &details,
            NewAuditEvent::new(Action::PatientCreate, "bench"),
        )
        .await?;
    let nina = store
        .user_id_by_username("nina.nurse")
        .await?
        .context("nurse")?;
    let paul = store
        .user_id_by_username("paul.prescriber")
        .await?
        .context("prescriber")?;
    let state = clinic::Clinic::new(store.clone(), clinic::Config::default());
    let nora = store
        .user_id_by_username("nora.nurse")
        .await?
        .context("second nurse")?;
    let side = Chairside::new(&state, store, clinic.id, (nina, nora, paul)).await?;
    for (k, (p, chair)) in patients.iter().zip(&chairs).enumerate() {
        crate::demo_intake::make_ready(store, &protocols, &registry, &clinic, p, (nina, paul), 3)
            .await?;
        side.visit(&p.id.to_string(), chair, 16, Stage::Dosing, k as i64)
            .await?;
    }
    let device = clinic::actor::random_token(32);
    store
        .create_token(
            "bench gateway",
            None,
            Some(clinic.id),
            &clinic::actor::secret_hash(&device),
            None,
            NewAuditEvent::new(Action::TokenCreate, "bench"),
        )
        .await?;
    let nurse_token = clinic::actor::random_token(32);
    store
        .create_token(
            "bench floor screen",
            Some(nina),
            None,
            &clinic::actor::secret_hash(&nurse_token),
            None,
            NewAuditEvent::new(Action::TokenCreate, "bench"),
        )
        .await?;
    println!(
        "seeded {CHAIRS} chairs with infusions running in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let running = crate::server::start(store.clone(), &crate::bench::server_config()).await?;
    let addr = running.addr;
    let seen = Arc::new(AtomicU64::new(0));
    let tick = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::spawn(listen(
        addr,
        format!("/api/v1/clinics/{}/floor/events", clinic.id),
        nurse_token,
        seen.clone(),
        tick.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let chairs = Arc::new(chairs);
    let next = Arc::new(AtomicU64::new(1));
    let auth = format!("Bearer {device}");
    let post = {
        let (chairs, next, auth) = (chairs.clone(), next.clone(), auth.clone());
        move |size: usize| {
            let first = next.fetch_add(size as u64, Ordering::Relaxed);
            Request::post("/api/v1/observations")
                .header("host", "bench")
                .header("authorization", auth.as_str())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(batch(&chairs, first, size))))
                .unwrap_or_default()
        }
    };
    {
        // One batch first: the answer says whether the setup is right.
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        sender.ready().await?;
        let resp = sender.send_request(post(BATCH)).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        anyhow::ensure!(
            status.is_success() && text.contains(&format!("\"stored\":{BATCH}")),
            "a first batch was answered {status}: {}",
            text.chars().take(400).collect::<String>()
        );
    }
    let obs_before = count_rows(store, "observations").await?;
    let events_before = seen.load(Ordering::Relaxed);
    let batched = {
        let post = post.clone();
        drive(addr, GATEWAYS, seconds, move |_| post(BATCH)).await?
    };
    let events_batched = seen.load(Ordering::Relaxed) - events_before;
    let single = {
        let post = post.clone();
        drive(addr, 64, seconds, move |_| post(1)).await?
    };
    let obs_after = count_rows(store, "observations").await?;
    let alerts = count_rows(store, "alerts").await?;

    // Fan-out: one reading, then wait for the event stream to deliver it.
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut fan = vec![];
    for _ in 0..200 {
        let before = seen.load(Ordering::Relaxed);
        let notified = tick.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let t = Instant::now();
        sender.ready().await?;
        let resp = sender.send_request(post(1)).await?;
        let ok = resp.status().is_success();
        resp.into_body().collect().await?;
        anyhow::ensure!(ok, "fan-out probe refused");
        while seen.load(Ordering::Relaxed) == before {
            tokio::time::timeout(Duration::from_secs(2), notified.as_mut())
                .await
                .context("no event within 2 s")?;
            notified.set(tick.notified());
            notified.as_mut().enable();
        }
        fan.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    fan.sort_by(|a, b| a.total_cmp(b));
    listener.abort();
    running.stop().await;

    println!();
    println!(
        "{:<52} {:>9} {:>7} {:>11} {:>8} {:>8}",
        "scenario", "requests", "errors", "readings/s", "p50 ms", "p99 ms"
    );
    let row = |name: &str, l: &Load, per: usize| {
        println!(
            "{:<52} {:>9} {:>7} {:>11.0} {:>8.2} {:>8.2}",
            name,
            l.ok,
            l.errors,
            (l.ok * per) as f64 / seconds as f64,
            pct(&l.lat_ms, 0.5),
            pct(&l.lat_ms, 0.99)
        );
        if !l.statuses.is_empty() {
            println!("  error statuses: {:?}", l.statuses);
        }
    };
    row(
        &format!("POST observations, batches of {BATCH} ({GATEWAYS} gateways)"),
        &batched,
        BATCH,
    );
    row("POST observations, one reading (64 monitors)", &single, 1);
    println!(
        "{:<52} {:>9} {:>7} {:>11} {:>8.2} {:>8.2}",
        "reading to floor event stream (one at a time)",
        fan.len(),
        0,
        "-",
        pct(&fan, 0.5),
        pct(&fan, 0.99)
    );
    println!();
    println!(
        "check: {} readings stored (warm-up included) for {} acknowledged in the measured windows; \
         {alerts} alerts raised; {events_batched} floor events delivered during the batches",
        obs_after - obs_before,
        batched.ok * BATCH + single.ok
    );
    Ok(())
}
