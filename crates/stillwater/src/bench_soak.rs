//! `stillwater bench --only soak`: audited chart reads, back to back from
//! `clients` keep-alive connections, for `seconds` (600 for the soak the
//! trust issue asks for). Each interval (a minute, or a fifth of a short
//! run) it prints the reads answered, what the audit trail grew by per
//! read, the size of SQLite's log and the process's resident memory. The
//! trail must stay compact (under 300 bytes per read) and memory flat.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::audit::Action;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use store::Store;

/// The process's resident memory (KiB), from `/proc/self/status`.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub async fn run(
    store: &Store,
    patients: usize,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let seeded = crate::bench::seed(store, patients).await?;
    let running = crate::server::start(store.clone(), &crate::bench::server_config()).await?;
    let addr = running.addr;
    let ids = Arc::new(seeded.ids);
    let bearer = format!("Bearer {}", seeded.token);
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    println!(
        "{patients} patients · {clients} clients · {seconds} s of audited reads \
         (GET /api/v1/patients/{{id}})"
    );

    let reads0 = store.count_audit(Action::PatientRead.as_str()).await?;
    let (bytes0, _) = store.audit_trail_bytes().await?;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (ids, bearer) = (ids.clone(), bearer.clone());
        let (answered, failed, stop) = (answered.clone(), failed.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut k = c * 7919;
            while !stop.load(Relaxed) {
                let req = hyper::Request::get(format!("/api/v1/patients/{}", ids[k % ids.len()]))
                    .header("host", "bench")
                    .header("authorization", &bearer)
                    .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
                k += 1;
                sender.ready().await?;
                let resp = sender.send_request(req).await?;
                let ok = resp.status().is_success();
                resp.into_body().collect().await?;
                if ok {
                    answered.fetch_add(1, Relaxed);
                } else {
                    failed.fetch_add(1, Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }

    let interval = if seconds >= 300 {
        60
    } else {
        (seconds / 5).max(1)
    };
    let start = Instant::now();
    println!();
    println!(
        "{:>7} {:>11} {:>9} {:>14} {:>12} {:>12} {:>11}",
        "minute", "reads", "reads/s", "trail bytes", "bytes/read", "log (WAL)", "RSS MiB"
    );
    let (mut last_reads, mut last_bytes, mut last_at) = (0u64, bytes0, start);
    let mut rss = Vec::new();
    let mut tick = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        tick += 1;
        let due = start + Duration::from_secs(interval * tick);
        tokio::time::sleep_until(due.min(start + Duration::from_secs(seconds)).into()).await;
        let reads = answered.load(Relaxed);
        let (bytes, wal) = store.audit_trail_bytes().await?;
        let now = Instant::now();
        let per_read =
            (bytes.saturating_sub(last_bytes)) as f64 / (reads - last_reads).max(1) as f64;
        let mem = rss_kib().unwrap_or(0) as f64 / 1024.0;
        rss.push(mem);
        println!(
            "{:>7.1} {:>11} {:>9.0} {:>14} {:>12.0} {:>12} {:>11.1}",
            start.elapsed().as_secs_f64() / 60.0,
            reads,
            (reads - last_reads) as f64 / (now - last_at).as_secs_f64(),
            bytes,
            per_read,
            wal,
            mem
        );
        (last_reads, last_bytes, last_at) = (reads, bytes, now);
    }
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    running.stop().await;
    let reads = answered.load(Relaxed);
    let audited = store.count_audit(Action::PatientRead.as_str()).await? - reads0;
    let (bytes, wal) = store.audit_trail_bytes().await?;
    println!();
    println!(
        "{reads} reads answered ({} failed), {audited} patient.read events in the trail",
        failed.load(Relaxed)
    );
    println!(
        "trail: {bytes0} -> {bytes} bytes, {:.0} bytes per audited read; log {wal} bytes at the end",
        (bytes - bytes0) as f64 / reads.max(1) as f64
    );
    if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
        let max = rss.iter().cloned().fold(0.0, f64::max);
        println!("resident memory: {first:.1} MiB after the first interval, {last:.1} MiB at the end, {max:.1} MiB at most");
    }
    Ok(())
}
