//! `stillwater bench --only clinic`: every page staff can reach, at the pace
//! of a large clinic (DESIGN section 6: p99 under 20 ms for every
//! interactive page and API call at that load).
//!
//! 1. The whole demo organisation is loaded, as `stillwater demo` shows it:
//!    both clinics, schedules, today's floor, measures, the Schedule III
//!    record and billing. Every staff account gets a signed-in session, and
//!    a patient of each clinic a portal session.
//! 2. A crawler follows, for each account, the links and htmx fragments of
//!    its pages (`href` and `hx-get`), breadth first from its home page, and
//!    keeps each address that answers 200: the pages that account reaches by
//!    clicking. At most `PER_KIND` addresses of a kind per account (a kind is
//!    the path with its ids replaced), so forty charts do not crowd out the
//!    rest. Event streams, static files and sign-out are left out. Links
//!    that answer anything else are listed: a dead link is a defect.
//! 3. The addresses, mixed, are requested in turn at a fixed rate, open loop:
//!    each request is timed from the moment it was due, so a slow answer
//!    shows in its own time and in the time of everything queued behind it.
//!
//! Printed: all requests' p50, p99 and maximum, then each kind's, slowest
//! first. Numbers are printed, not asserted; `BENCHMARKS.md` keeps the
//! latest.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::audit::Action;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use store::audit::NewAuditEvent;
use store::Store;

use crate::bench_measures::pct;

/// Addresses of one kind kept per account.
const PER_KIND: usize = 3;
/// Addresses crawled per account at most.
const PER_ACCOUNT: usize = 150;
/// Connections the replay spreads its requests over; more than are ever busy
/// at once at these rates, so requests wait for the server, not for a free
/// connection.
const CONNECTIONS: usize = 32;

/// One address as one account sees it.
pub struct Page {
    pub cookie: Arc<str>,
    pub path: String,
    pub kind: String,
}

/// The path with its ids, numbers and dates replaced, and the names (not the
/// values) of its query: `/patients/{id}/measures?tab`.
fn kind_of(path: &str) -> String {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut kind: String = path
        .split('/')
        .map(|seg| {
            let hexish = seg.len() >= 32 && seg.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            let date = seg.len() == 10
                && seg.chars().enumerate().all(|(i, c)| {
                    if i == 4 || i == 7 {
                        c == '-'
                    } else {
                        c.is_ascii_digit()
                    }
                });
            if hexish {
                "{id}"
            } else if date {
                "{date}"
            } else if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                "{n}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    if !query.is_empty() {
        let mut names: Vec<&str> = query
            .split('&')
            .map(|kv| kv.split_once('=').map_or(kv, |(k, _)| k))
            .collect();
        names.sort_unstable();
        names.dedup();
        kind.push('?');
        kind.push_str(&names.join("&"));
    }
    kind
}

/// Same-site addresses in a page's `href` and `hx-get` attributes.
fn links(html: &str) -> Vec<String> {
    let mut out = vec![];
    for attr in ["href=\"", "hx-get=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let Some(end) = rest.find('"') else { break };
            let raw = rest[..end].replace("&amp;", "&");
            let raw = raw.split('#').next().unwrap_or_default();
            if raw.starts_with('/')
                && !raw.starts_with("//")
                && !raw.starts_with("/static/")
                && !raw.contains("/events")
                && raw != "/logout"
            {
                out.push(raw.to_string());
            }
            rest = &rest[end..];
        }
    }
    out
}

/// One keep-alive connection to the server.
async fn connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// GET as the account: the status, the content type and the body.
async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    cookie: &str,
    path: &str,
) -> anyhow::Result<(u16, String, Bytes)> {
    let req = Request::get(path)
        .header("host", "bench")
        .header("cookie", cookie)
        .body(Empty::new())?;
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, ctype, body))
}

/// Someone signed in: a member of staff, or a patient in the portal.
pub struct Account {
    /// A username, or which clinic's portal (no patient data).
    pub name: String,
    /// The `Cookie` header carrying the session.
    pub cookie: String,
    /// Where their links start.
    pub home: String,
}

/// The pages one account reaches from its home page by following links, and
/// the links that answered other than 200: (kind, status).
pub async fn crawl(
    addr: SocketAddr,
    account: &Account,
) -> anyhow::Result<(Vec<Page>, Vec<(String, u16)>)> {
    let cookie: Arc<str> = account.cookie.as_str().into();
    let mut sender = connect(addr).await?;
    let mut queue = VecDeque::from([account.home.clone()]);
    let mut seen: HashSet<String> = queue.iter().cloned().collect();
    let mut per_kind: HashMap<String, usize> = HashMap::new();
    let (mut pages, mut other) = (vec![], vec![]);
    while let Some(path) = queue.pop_front() {
        if pages.len() >= PER_ACCOUNT {
            break;
        }
        let kind = kind_of(&path);
        let n = per_kind.entry(kind.clone()).or_default();
        if *n >= PER_KIND {
            continue;
        }
        let (status, ctype, body) = get(&mut sender, &cookie, &path).await?;
        if status != 200 {
            other.push((kind, status));
            continue;
        }
        *n += 1;
        if ctype.starts_with("text/html") {
            for link in links(&String::from_utf8_lossy(&body)) {
                if seen.insert(link.clone()) {
                    queue.push_back(link);
                }
            }
        }
        pages.push(Page {
            cookie: cookie.clone(),
            path,
            kind,
        });
    }
    Ok((pages, other))
}

/// A session for each of the demo's staff accounts.
pub async fn sign_in_staff(store: &Store) -> anyhow::Result<Vec<Account>> {
    let mut cookies = vec![];
    for s in crate::demo::STAFF {
        let user = store
            .user_id_by_username(s.username)
            .await?
            .with_context(|| format!("no account {}", s.username))?;
        let cookie = crate::bench::session(
            store,
            user,
            NewAuditEvent::new(Action::LoginSuccess, "bench"),
        )
        .await?;
        cookies.push(Account {
            name: s.username.into(),
            cookie: format!("{}={cookie}", web::auth::SESSION_COOKIE),
            home: "/".into(),
        });
    }
    Ok(cookies)
}

/// A portal session, as a used sign-in link opens it, for one patient with
/// visits at each clinic of the organisation.
pub async fn sign_in_patients(store: &Store) -> anyhow::Result<Vec<Account>> {
    let org = store.any_org().await?.context("no organisation")?;
    let mut out = vec![];
    for clinic in store.clinics_of_org(org).await? {
        let mut chosen = None;
        for p in store.search_patients(&[clinic.id], "", 200).await? {
            if !store
                .patient_appointments(p.id, &[clinic.id])
                .await?
                .is_empty()
            {
                chosen = Some(p.id);
                break;
            }
        }
        let Some(patient) = chosen else { continue };
        let token = clinic::actor::random_token(32);
        let now = store.now();
        let link = store::portal::NewPortalLink {
            id: uuid::Uuid::now_v7().to_string(),
            clinic: clinic.id,
            patient,
            token_hash: clinic::actor::secret_hash(&token),
            created_by: None,
            expires_at: now + 600_000_000,
        };
        store.insert_portal_link(&link, &[], vec![]).await?;
        let secret = clinic::actor::random_token(32);
        let session = store::portal::NewPortalSession {
            id_hash: clinic::actor::secret_hash(&secret),
            csrf_token: clinic::actor::random_token(24),
            absolute_expires_at: now + 3_600_000_000,
        };
        store
            .use_portal_link(
                &link.token_hash,
                &session,
                NewAuditEvent::new(Action::PortalSignIn, "bench"),
            )
            .await?
            .context("the portal link did not open")?;
        out.push(Account {
            name: format!("a patient at {}", clinic.slug),
            cookie: format!("{}={secret}", clinic::portal::COOKIE),
            home: "/portal".into(),
        });
    }
    Ok(out)
}

pub async fn run(
    store: &Store,
    rate: u32,
    seconds: u64,
    protocols: &domain::protocols::Protocols,
    instruments: &domain::instruments::Registry,
) -> anyhow::Result<()> {
    let t = Instant::now();
    // The demo's own password: its Schedule III record has witnessed entries.
    let hash =
        clinic::passwords::hash_blocking(crate::demo::DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
    crate::demo::load(store, &hash).await?;
    crate::demo::load_rest(store, protocols, instruments).await?;
    let staff = sign_in_staff(store).await?;
    let patients = sign_in_patients(store).await?;
    println!(
        "loaded the demo organisation and signed in {} staff accounts and {} patients in the portal in {:.1} s",
        staff.len(),
        patients.len(),
        t.elapsed().as_secs_f64()
    );
    let accounts: Vec<Account> = staff.into_iter().chain(patients).collect();

    let running = crate::server::start(store.clone(), &crate::bench::server_config()).await?;
    let addr = running.addr;
    let t = Instant::now();
    let (mut pages, mut other) = (vec![], BTreeMap::<_, Vec<&str>>::new());
    for a in &accounts {
        let (found, answered) = crawl(addr, a).await?;
        pages.extend(found);
        for (kind, status) in answered {
            let users = other.entry((status, kind)).or_default();
            if !users.contains(&a.name.as_str()) {
                users.push(&a.name);
            }
        }
    }
    // The coded lists answer as a clinician types: the crawl finds each
    // list's address with nothing typed, and these typed queries are what
    // it gets in use.
    let typed: Vec<Page> = pages
        .iter()
        .filter_map(|p| {
            let base = p.path.split('?').next().unwrap_or("");
            let queries: &[&str] = match base {
                "/codes/icd10-cm/options" => &[
                    "diagnosis=generalized%20anx",
                    "diagnosis=F41",
                    "diagnosis=post-traumatic%20stress",
                    "diagnosis=panic",
                ],
                "/codes/medicines/options" => &["medicine=clon", "medicine=xan"],
                "/codes/medicines/read" => &["medications=Klonopin%202%0Asertraline%20100"],
                _ => return None,
            };
            Some(queries.iter().map(move |q| {
                let path = format!("{base}?{q}");
                Page {
                    cookie: p.cookie.clone(),
                    kind: kind_of(&path),
                    path,
                }
            }))
        })
        .flatten()
        .collect();
    pages.extend(typed);
    let kinds: HashSet<&str> = pages.iter().map(|p| p.kind.as_str()).collect();
    println!(
        "crawled {} addresses of {} kinds reachable by the accounts' links in {:.1} s",
        pages.len(),
        kinds.len(),
        t.elapsed().as_secs_f64()
    );
    // A link of our own pages that does not answer 200 is worth a look.
    for ((status, kind), users) in &other {
        let who = if users.len() == accounts.len() {
            "every account".to_string()
        } else {
            users.join(", ")
        };
        println!("  links answering {status}: {kind} ({who})");
    }
    anyhow::ensure!(!pages.is_empty(), "the crawl found no pages");
    // Mixed, the same way every run: any stretch of the replay is a bit of
    // every account's day, not one account's pages in a row.
    pages.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));

    let pages = Arc::new(pages);
    let results = replay(addr, pages.clone(), rate, seconds).await?;
    running.stop().await;
    report(&pages, results, rate, seconds);
    Ok(())
}

/// What one request took, by the index of its page; `None` for an answer
/// other than 2xx.
type Timing = (usize, Option<f64>);

/// Requests the pages in turn at `rate` per second for `seconds`, each timed
/// from when it was due. Workers take the due requests from one queue.
async fn replay(
    addr: SocketAddr,
    pages: Arc<Vec<Page>>,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Vec<Timing>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<(Instant, usize)>(CONNECTIONS);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = vec![];
    for _ in 0..CONNECTIONS {
        let rx = rx.clone();
        let pages = pages.clone();
        let mut sender = connect(addr).await?;
        workers.push(tokio::spawn(async move {
            let mut out: Vec<Timing> = vec![];
            loop {
                let next = rx.lock().await.recv().await;
                let Some((due, i)) = next else { break };
                let p: &Page = &pages[i];
                let (status, _, _) = get(&mut sender, &p.cookie, &p.path).await?;
                let ms = (200..300)
                    .contains(&status)
                    .then(|| due.elapsed().as_secs_f64() * 1000.0);
                out.push((i, ms));
            }
            anyhow::Ok(out)
        }));
    }
    let gap = Duration::from_secs(1) / rate.max(1);
    let start = tokio::time::Instant::now();
    let total = u64::from(rate) * seconds;
    for k in 0..total {
        let due = start + gap * k as u32;
        tokio::time::sleep_until(due).await;
        tx.send((due.into_std(), k as usize % pages.len()))
            .await
            .context("the replay's workers stopped")?;
    }
    drop(tx);
    let mut all = vec![];
    for w in workers {
        all.extend(w.await.context("replay worker")??);
    }
    Ok(all)
}

fn report(pages: &[Page], results: Vec<Timing>, rate: u32, seconds: u64) {
    let mut all: Vec<f64> = vec![];
    let mut errors = 0usize;
    let mut by_kind: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (i, ms) in results {
        match ms {
            Some(ms) => {
                all.push(ms);
                by_kind.entry(&pages[i].kind).or_default().push(ms);
            }
            None => errors += 1,
        }
    }
    all.sort_by(f64::total_cmp);
    println!();
    println!(
        "{rate} requests/s for {seconds} s, open loop over {CONNECTIONS} connections, every request timed from when it was due"
    );
    println!(
        "{:<58} {:>8} {:>6} {:>8} {:>8} {:>8}",
        "page kind", "requests", "errors", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "{:<58} {:>8} {:>6} {:>8.2} {:>8.2} {:>8.2}",
        "all",
        all.len(),
        errors,
        pct(&all, 0.50),
        pct(&all, 0.99),
        all.last().copied().unwrap_or_default()
    );
    let mut kinds: Vec<(&str, Vec<f64>)> = by_kind.into_iter().collect();
    for (_, v) in kinds.iter_mut() {
        v.sort_by(f64::total_cmp);
    }
    kinds.sort_by(|a, b| pct(&b.1, 0.99).total_cmp(&pct(&a.1, 0.99)));
    let over = kinds.iter().filter(|(_, v)| pct(v, 0.99) >= 20.0).count();
    for (kind, v) in &kinds {
        println!(
            "{:<58} {:>8} {:>6} {:>8.2} {:>8.2} {:>8.2}",
            kind,
            v.len(),
            "",
            pct(v, 0.50),
            pct(v, 0.99),
            v.last().copied().unwrap_or_default()
        );
    }
    println!();
    println!(
        "kinds of page with p99 at or above 20 ms: {over} of {}",
        kinds.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_hide_ids_numbers_dates_and_query_values() {
        assert_eq!(
            kind_of("/patients/0190c3a2-7b7e-7c41-9f00-1234567890ab/measures?tab=gad7&x=1&tab=b"),
            "/patients/{id}/measures?tab&x"
        );
        assert_eq!(
            kind_of("/schedule/2026-11-23/day/12"),
            "/schedule/{date}/day/{n}"
        );
        assert_eq!(kind_of("/"), "/");
    }

    #[test]
    fn links_are_same_site_and_skip_streams_assets_and_sign_out() {
        let html = r##"<a href="/patients?q=a&amp;b=1#top">x</a> <a href="https://x.org/">
            <a href="//evil/">a</a><link href="/static/app.css"><div hx-get="/floor/board">
            <a href="/logout">o</a><a href="/api/v1/clinics/1/floor/events">e</a><a href="mailto:x">"##;
        assert_eq!(links(html), vec!["/patients?q=a&b=1", "/floor/board"]);
    }
}
