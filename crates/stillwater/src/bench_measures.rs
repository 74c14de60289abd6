//! `stillwater bench --only measures`: the front door and the trend chart.
//!
//! 1. Self-assessment submit-and-score: 200 concurrent clients, each on its
//!    own keep-alive connection, POST complete assessments to the public
//!    endpoint; every one is validated, scored (GAD-7 and PHQ-2), stored as a
//!    lead with two responses and an audit record, and one in ten opens a
//!    safety task.
//! 2. The trend chart: a nurse opens the measures page of a patient with 200
//!    GAD-7 and 200 PHQ-9 responses (read, trend computed, SVG drawn, audited),
//!    from 16 connections.
//!
//! Numbers are printed, not asserted; `BENCHMARKS.md` keeps the latest.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::audit::Action;
use domain::patients::PatientDetails;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use store::audit::NewAuditEvent;
use store::Store;

const WEEK: i64 = 7 * 86_400_000_000;

pub(crate) struct Load {
    pub ok: usize,
    pub errors: usize,
    pub statuses: Vec<u16>,
    pub lat_ms: Vec<f64>,
}

pub(crate) fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `clients` connections sending requests back to back for `seconds` after
/// one second of warm-up.
pub(crate) async fn drive<F>(
    addr: SocketAddr,
    clients: usize,
    seconds: u64,
    make: F,
) -> anyhow::Result<Load>
where
    F: Fn(usize) -> Request<Full<Bytes>> + Send + Sync + Clone + 'static,
{
    let warm = Instant::now() + Duration::from_secs(1);
    let end = warm + Duration::from_secs(seconds);
    let mut tasks = vec![];
    for c in 0..clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut lat = vec![];
            let (mut ok, mut errors, mut statuses) = (0, 0, vec![]);
            let mut k = c * 7919;
            while Instant::now() < end {
                let req = make(k);
                k += 1;
                let t = Instant::now();
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                resp.into_body().collect().await?;
                if t >= warm {
                    if status.is_success() {
                        ok += 1;
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                        statuses.push(status.as_u16());
                    }
                }
            }
            anyhow::Ok((lat, ok, errors, statuses))
        }));
    }
    let mut out = Load {
        ok: 0,
        errors: 0,
        statuses: vec![],
        lat_ms: vec![],
    };
    for t in tasks {
        let (lat, ok, errors, statuses) = t.await.context("client")??;
        out.lat_ms.extend(lat);
        out.ok += ok;
        out.errors += errors;
        out.statuses.extend(statuses);
    }
    out.lat_ms.sort_by(|a, b| a.total_cmp(b));
    out.statuses.sort_unstable();
    out.statuses.dedup();
    Ok(out)
}

fn assessment(k: usize) -> String {
    let gad = (k * 7 % 22) as i32;
    let mut left = gad;
    let items: Vec<String> = (1..=7)
        .map(|i| {
            let v = left.min(3);
            left -= v;
            format!("\"{i}\": {v}")
        })
        .collect();
    let nine = i32::from(k.is_multiple_of(10));
    format!(
        r#"{{"gad7": {{{}}}, "phq2": {{"1": {}, "2": 1, "9": {nine}}}, "conditions": ["gad"],
        "treatments": ["ssri_snri", "cbt"], "no_exclusions": true, "given_name": "Bench",
        "family_name": "Person{k}", "email": "bench{k}@example.org", "date_of_birth": "1985-03-0{}",
        "consent_to_contact": true}}"#,
        items.join(", "),
        k % 4,
        1 + k % 9
    )
}

pub async fn run(store: &Store, seconds: u64) -> anyhow::Result<()> {
    let t = Instant::now();
    let org = store.create_org("Bench Measures").await?;
    let clinic = store.create_clinic(org, &crate::demo::glendale()).await?;
    let slug = store.clinic(clinic).await?.slug;
    let (_, cookie) = crate::bench::seed_nurse(store, org, clinic).await?;
    // One patient with 200 GAD-7 and 200 PHQ-9 responses, weekly.
    let today = jiff::civil::date(2026, 11, 23);
    let details = PatientDetails::validate(&crate::demo::patient(1, false), today)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let patient = store
        .create_patients_bulk(
            org,
            clinic,
            &[details],
            NewAuditEvent::new(Action::PatientCreate, "bench"),
        )
        .await?
        .remove(0)
        .id;
    let reg = domain::instruments::Registry::builtin();
    let now = store.now();
    for (id, n) in [("gad7", 7usize), ("phq9", 9)] {
        let inst = reg
            .current(id)
            .ok_or_else(|| anyhow::anyhow!("{id} missing"))?;
        for w in 0..200i64 {
            let total = (18 - (w / 10) as i32).max(2) + (w % 3) as i32;
            let mut left = total;
            let answers = (1..=n)
                .map(|i| {
                    let v = if i == 9 { 0 } else { left.min(3) };
                    left -= v;
                    (i.to_string(), v)
                })
                .collect();
            let scored = inst.score(&answers)?;
            store
                .insert_response(
                    &store::measures::NewResponse {
                        id: domain::ids::ResponseId::new(),
                        clinic,
                        patient: Some(patient),
                        lead: None,
                        scored: &scored,
                        instrument_hash: &inst.hash,
                        source: store::measures::Source::Link,
                        link: None,
                        appointment: None,
                        entered_by: None,
                        started_at: None,
                        submitted_at: now - (200 - w) * WEEK / 2,
                    },
                    None,
                    vec![],
                )
                .await?;
        }
    }
    println!("seeded in {:.1} s", t.elapsed().as_secs_f64());

    let cfg = crate::config::Config {
        // Every bench client shares one address; the limit is per address.
        public_per_minute: 1_000_000,
        ..crate::bench::server_config()
    };
    let running = crate::server::start(store.clone(), &cfg).await?;
    let addr = running.addr;

    let path = format!("/api/v1/public/clinics/{slug}/assessments");
    let leads_before = store.leads(&[clinic], None, 1_000_000).await?.len();
    let submit_req = move |k| {
        Request::post(path.as_str())
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(assessment(k))))
            .unwrap_or_default()
    };
    let submit_one = drive(addr, 1, seconds, submit_req.clone()).await?;
    let submit = drive(addr, 200, seconds, submit_req).await?;
    let leads_after = store.leads(&[clinic], None, 1_000_000).await?.len();
    let tasks = store.open_tasks(&[clinic]).await?.len();

    let page = format!("/patients/{patient}/measures");
    let cookie_header = format!("{}={cookie}", web::auth::SESSION_COOKIE);
    let chart_req = move |_| {
        Request::get(page.as_str())
            .header("host", "bench")
            .header("cookie", cookie_header.as_str())
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    };
    let chart_one = drive(addr, 1, seconds, chart_req.clone()).await?;
    let chart = drive(addr, 16, seconds, chart_req).await?;
    running.stop().await;

    println!();
    println!(
        "{:<58} {:>8} {:>7} {:>9} {:>8} {:>8}",
        "scenario", "requests", "errors", "req/s", "p50 ms", "p99 ms"
    );
    for (name, l) in [
        (
            "POST public assessment, submit and score (1 client)",
            &submit_one,
        ),
        (
            "POST public assessment, submit and score (200 clients)",
            &submit,
        ),
        (
            "GET measures page, 200+200 responses, SVG (1 client)",
            &chart_one,
        ),
        (
            "GET measures page, 200+200 responses, SVG (16 clients)",
            &chart,
        ),
    ] {
        println!(
            "{:<58} {:>8} {:>7} {:>9.0} {:>8.2} {:>8.2}",
            name,
            l.ok,
            l.errors,
            l.ok as f64 / seconds as f64,
            pct(&l.lat_ms, 0.5),
            pct(&l.lat_ms, 0.99)
        );
        if !l.statuses.is_empty() {
            println!("  error statuses: {:?}", l.statuses);
        }
    }
    println!();
    println!(
        "check: {} leads stored (warm-up included) for {} measured submissions; {} safety tasks open",
        leads_after - leads_before,
        submit.ok + submit_one.ok,
        tasks
    );
    Ok(())
}
