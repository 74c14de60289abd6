//! `stillwater bench --only cs`: the Schedule III record at the scale of a
//! network. The demo organisation and its month of the record are loaded,
//! eight more registered locations are added, and a ledger of `ENTRIES`
//! entries over six years is appended through the store's one append path
//! (each entry hash-chained, balances kept in the same transaction): per
//! location about 45 entries a day (draw, administered, witnessed waste for
//! each of ~15 infusions; receipts when stock runs low). Then, over HTTP
//! against the running server:
//!
//! 1. balances: `GET /api/v1/cs/lots` (every lot with its balance at each location);
//! 2. a two-year dispensing log of one location as CSV (and once as PDF);
//! 3. one movement appended (`POST /api/v1/cs/ledger`, a receipt);
//! 4. `verify` over the whole ledger.
//!
//! Numbers are printed, not asserted; `BENCHMARKS.md` keeps the latest.

use std::time::Instant;

use anyhow::Context;
use domain::audit::Action;
use domain::substances::EntryKind;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use store::audit::NewAuditEvent;
use store::substances::Movement;
use store::Store;

const LOCATIONS: usize = 10;
const YEARS: i64 = 6;
const DAY: i64 = 86_400_000_000;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Http {
    addr: std::net::SocketAddr,
    token: String,
}

impl Http {
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bench")
            .header("authorization", format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(body.unwrap_or_default())))?)
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// Times `n` requests; returns (p50, p99) in ms, the last body's size and status.
    async fn time(
        &self,
        n: usize,
        method: &str,
        path: &str,
        body: impl Fn(usize) -> Option<String>,
    ) -> anyhow::Result<(f64, f64, usize)> {
        let mut t = Vec::with_capacity(n);
        let mut size = 0;
        for i in 0..n {
            let s = Instant::now();
            let (status, b) = self.send(method, path, body(i)).await?;
            t.push(ms(s.elapsed()));
            anyhow::ensure!(
                status < 300,
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&b)
            );
            size = b.len();
        }
        Ok((pct(&mut t, 0.5), pct(&mut t, 0.99), size))
    }
}

pub async fn run(store: &Store, entries: u64, seed: bool) -> anyhow::Result<()> {
    let t = Instant::now();
    if seed {
        let hash =
            clinic::passwords::hash_blocking("bench-password-123").map_err(anyhow::Error::msg)?;
        crate::demo::load(store, &hash).await?;
        let protocols = domain::protocols::Protocols::builtin();
        let registry = domain::instruments::Registry::builtin();
        crate::demo_intake::load(store, &protocols, &registry).await?;
        crate::demo_substances::load(store, &protocols, &registry).await?;
    }
    let org = store.any_org().await?.context("no organisation")?;
    let mut clinics = store.clinics_of_org(org).await?;
    let glendale = clinics
        .iter()
        .find(|c| c.slug == "stillwater-glendale")
        .context("no Glendale")?
        .id;
    let ada = store
        .user_id_by_username("ada.admin")
        .await?
        .context("admin")?;
    for i in clinics.len()..if seed { LOCATIONS } else { 0 } {
        let mut s = crate::demo::denver();
        s.name = format!("Stillwater Network {}", i + 1);
        let id = store.create_clinic(org, &s).await?;
        store
            .cs_set_registration(
                &id.to_string(),
                "BN1234563",
                "2030-01-31",
                &ada.to_string(),
                NewAuditEvent::new(Action::CsSettings, "bench"),
            )
            .await?;
        clinics.push(store.clinic(id).await?);
    }
    let product = store
        .cs_products(&org.to_string())
        .await?
        .into_iter()
        .find(|p| p.strength_mg_per_ml == 50)
        .context("a 50 mg/mL product")?;
    // Dose orders and their patients from the demo's month, reused as the
    // orders draws belong to.
    let orders: Vec<(String, String)> = store::on_pool!(store.raw_pool(), p => {
        sqlx::query_as("SELECT o.id, e.patient_id FROM dose_orders o JOIN encounters e ON e.id = o.encounter_id")
            .fetch_all(p).await?
    });
    anyhow::ensure!(!orders.is_empty(), "the demo has no dose orders");
    let nina = store
        .user_id_by_username("nina.nurse")
        .await?
        .context("nurse")?
        .to_string();
    let nora = store
        .user_id_by_username("nora.nurse")
        .await?
        .context("nurse")?
        .to_string();
    println!(
        "seeded the demo and {LOCATIONS} locations in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The network's six years.
    let t = Instant::now();
    let now = store.now();
    let start = now - YEARS * 365 * DAY;
    let per_location = entries / LOCATIONS as u64;
    let step = (now - start - DAY) / per_location as i64;
    let mut written = 0u64;
    let mut batch: Vec<Movement> = Vec::with_capacity(3000);
    let base = |clinic: &str, lot: &str, kind: EntryKind, at: i64, ul: i64, change: i64| Movement {
        change_ul: change,
        ..Movement::new(kind, clinic, lot, at, ul, 50, &nina)
    };
    for (li, c) in clinics.iter().enumerate().filter(|_| seed) {
        let clinic = c.id.to_string();
        let mut at = start + li as i64 * 60_000_000;
        let mut balance = 0i64;
        let mut lot = String::new();
        let mut lot_year = -1i64;
        let mut n = 0u64;
        let mut k = 0usize;
        while n < per_location {
            let year = (at - start) / (365 * DAY);
            if year != lot_year || balance < 1000 {
                if year != lot_year {
                    lot_year = year;
                    lot = store
                        .cs_find_or_add_lot(&product.id, &format!("BL{li:02}Y{year}"), "2033-12-31")
                        .await?;
                    balance = 0;
                }
                let mut r = base(&clinic, &lot, EntryKind::Receipt, at, 250_000, 250_000);
                r.counterparty = Some(r#"{"supplier_name":"Cardinal Health 411","supplier_dea":"RC0193843","invoice":"B","containers":25}"#.into());
                balance += 250_000;
                batch.push(r);
                n += 1;
                at += step;
            }
            let (order, patient) = &orders[k % orders.len()];
            k += 1;
            let drawn = 800 + (k as i64 % 3) * 100;
            let given = drawn - 60 - (k as i64 % 5) * 10;
            let mut d = base(&clinic, &lot, EntryKind::Draw, at, drawn, -drawn);
            d.draw_id = Some(d.id.clone());
            d.dose_order_id = Some(order.clone());
            d.patient_id = Some(patient.clone());
            let mut g = base(
                &clinic,
                &lot,
                EntryKind::Administered,
                at + step / 3,
                given,
                0,
            );
            g.draw_id = d.draw_id.clone();
            g.dose_order_id = d.dose_order_id.clone();
            g.patient_id = d.patient_id.clone();
            let mut w = base(
                &clinic,
                &lot,
                EntryKind::Waste,
                at + 2 * step / 3,
                drawn - given,
                0,
            );
            w.draw_id = d.draw_id.clone();
            w.dose_order_id = d.dose_order_id.clone();
            w.patient_id = d.patient_id.clone();
            w.witness_user_id = Some(nora.clone());
            w.reason = Some("remainder of the draw".into());
            balance -= drawn;
            batch.extend([d, g, w]);
            n += 3;
            at += 3 * step;
            if batch.len() >= 3000 {
                store.cs_append(&batch, vec![]).await?;
                written += batch.len() as u64;
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        store.cs_append(&batch, vec![]).await?;
        written += batch.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    if seed {
        println!(
        "appended {written} ledger entries over {YEARS} years at {LOCATIONS} locations in {secs:.1} s ({:.0} entries/s, hash-chained, balances kept)",
        written as f64 / secs
        );
    }

    // The server, an auditor's token.
    let audrey = store
        .user_id_by_username("audrey.auditor")
        .await?
        .context("auditor")?;
    let token = clinic::actor::random_token(32);
    store
        .create_token(
            "bench auditor",
            Some(audrey),
            None,
            &clinic::actor::secret_hash(&token),
            None,
            NewAuditEvent::new(Action::TokenCreate, "bench"),
        )
        .await?;
    let nurse_token = clinic::actor::random_token(32);
    store
        .create_token(
            "bench nurse",
            Some(nina.parse().map_err(|_| anyhow::anyhow!("nurse id"))?),
            None,
            &clinic::actor::secret_hash(&nurse_token),
            None,
            NewAuditEvent::new(Action::TokenCreate, "bench"),
        )
        .await?;
    let running = crate::server::start(store.clone(), &crate::bench::server_config()).await?;
    let auditor = Http {
        addr: running.addr,
        token,
    };
    let nurse = Http {
        addr: running.addr,
        token: nurse_token,
    };

    let (p50, p99, size) = auditor.time(50, "GET", "/api/v1/cs/lots", |_| None).await?;
    println!("balances  GET /api/v1/cs/lots                 p50 {p50:6.1} ms  p99 {p99:6.1} ms  ({size} bytes)");
    let tz = jiff::tz::TimeZone::get("America/Phoenix")?;
    let today = jiff::Timestamp::now().to_zoned(tz).date();
    let from = today.checked_sub(jiff::Span::new().years(2))?;
    let path = format!("/api/v1/cs/ledger?clinic_id={glendale}&from={from}&to={today}&format=csv");
    let (p50, p99, size) = auditor.time(20, "GET", &path, |_| None).await?;
    let (_, body) = auditor.send("GET", &path, None).await?;
    let rows = body
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1);
    println!("report    two-year dispensing log, CSV       p50 {p50:6.1} ms  p99 {p99:6.1} ms  ({rows} movements, {size} bytes)");
    let recon = format!("/api/v1/cs/reconciliation?clinic_id={glendale}&from={from}&to={today}");
    let (p50, p99, size) = auditor.time(20, "GET", &recon, |_| None).await?;
    println!("report    two-year reconciliation, JSON      p50 {p50:6.1} ms  p99 {p99:6.1} ms  ({size} bytes)");
    let month = today.checked_sub(jiff::Span::new().days(30))?;
    let recon = format!("/api/v1/cs/reconciliation?clinic_id={glendale}&from={month}&to={today}");
    let (p50, p99, _) = auditor.time(20, "GET", &recon, |_| None).await?;
    println!("report    last month's reconciliation        p50 {p50:6.1} ms  p99 {p99:6.1} ms");
    let lots = store.cs_lots(&org.to_string()).await?;
    let lot = lots
        .iter()
        .find(|l| l.product_id == product.id)
        .context("lot")?;
    let state = clinic::Clinic::new(store.clone(), clinic::Config::default());
    let caller = clinic::actor::Caller::of_user(&state, audrey, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let location = clinic::substances::locations(&state, &caller, domain::auth::Permission::CsRead)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .into_iter()
        .find(|l| l.id == glendale)
        .context("Glendale")?;
    let s = Instant::now();
    let rows = store
        .cs_ledger(&store::substances::LedgerFilter {
            clinics: vec![glendale.to_string()],
            from: Some(now - 2 * 365 * DAY),
            ..Default::default()
        })
        .await?;
    let read = ms(s.elapsed());
    let v = clinic::substances::LedgerView {
        location,
        rows,
        from: Some(from),
        to: Some(today),
    };
    let c = Instant::now();
    let q = clinic::substances::LedgerQuery {
        clinic_id: glendale.to_string(),
        from: from.to_string(),
        to: today.to_string(),
        ..Default::default()
    };
    let csv = clinic::substances::dispensing_log_csv(&state, &caller, &q)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "report    of which: the CSV use case (read and written in one pass, audited) {:.0} ms ({} bytes); \
         the same rows read into memory {read:.0} ms",
        ms(c.elapsed()),
        csv.len()
    );
    let s = Instant::now();
    let pdf = clinic::substances::dispensing_pdf(&v).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "report    two-year dispensing log, PDF       once  {:6.0} ms  ({} movements, {} bytes)",
        ms(s.elapsed()),
        v.rows.len(),
        pdf.len()
    );

    let body = |_: usize| {
        Some(format!(
            r#"{{"kind":"receipt","clinic_id":"{glendale}","lot_id":"{}","containers":1,"supplier_name":"Cardinal Health 411","supplier_address":"7000 Cardinal Pl, Dublin OH","supplier_dea":"RC0193843","invoice":"B-1"}}"#,
            lot.id
        ))
    };
    let (p50, p99, _) = nurse.time(100, "POST", "/api/v1/cs/ledger", body).await?;
    println!("append    POST /api/v1/cs/ledger (receipt)  p50 {p50:6.1} ms  p99 {p99:6.1} ms");

    let s = Instant::now();
    let check = store.cs_verify().await?;
    println!("verify    {check} in {:.1} s", s.elapsed().as_secs_f64());
    running.stop().await;
    Ok(())
}
