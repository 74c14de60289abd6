use std::net::SocketAddr;

use domain::ids::ClinicId;
use stillwater::config::Config;
use stillwater::server::Running;
use store::{Store, StoreConfig};

pub const PW: &str = stillwater::demo::DEMO_PASSWORD;

pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server on a fresh database loaded with the demo organisation.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The database's URL (to run the command line against it).
    pub db_url: String,
    pub store: Store,
    pub glendale: ClinicId,
    pub denver: ClinicId,
    running: Option<Running>,
    dir: std::path::PathBuf,
    pg: Option<(String, String)>,
    /// PostgreSQL: the URL of the schema's owner (the app serves as
    /// [`APP_ROLE`], which owns nothing).
    owner_url: Option<String>,
}

/// The role PostgreSQL test apps serve as: granted rows, owning nothing, as
/// README's PostgreSQL section asks of a clinic's deployment.
pub const APP_ROLE: &str = "stillwater_test_app";

/// `url` with its user replaced by `user` (no password: the test server
/// trusts local connections).
fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host = match rest.split_once('@') {
        Some((_, h)) => h,
        None => rest,
    };
    format!("{scheme}://{user}@{host}")
}

/// Creates [`APP_ROLE`] once per server (several tests may race to).
async fn ensure_app_role(admin: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!(
        "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    let _ = c.close().await;
}

/// When the tests run, whatever the wall clock says: a Tuesday morning in
/// the clinics' zones unless `STILLWATER_TEST_NOW` (RFC 3339) names another
/// moment. CI runs the suite at a few such moments (late evening, the days
/// the clocks change); see `.ci/run`.
pub fn test_start() -> i64 {
    const DEFAULT: &str = "2026-11-24T17:30:00Z";
    let s = std::env::var("STILLWATER_TEST_NOW").unwrap_or_default();
    let s = if s.trim().is_empty() {
        DEFAULT
    } else {
        s.trim()
    };
    s.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("STILLWATER_TEST_NOW={s:?} is not an RFC 3339 time: {e}"))
        .as_microsecond()
}

/// A clock for one test's store and server, starting at [`test_start`].
pub fn test_clock() -> domain::time::Clock {
    domain::time::Clock::starting_at(test_start())
}

/// The PostgreSQL server the PostgreSQL variants run against. Without
/// `STILLWATER_TEST_DATABASE_URL` they fail, so that a run where PostgreSQL
/// should be (CI) cannot pass by skipping them; a developer without it opts
/// out with `STILLWATER_SKIP_POSTGRES=1`, and then each says it was skipped.
pub fn pg_admin_url() -> Option<String> {
    let url = std::env::var("STILLWATER_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty());
    if url.is_none() && std::env::var("STILLWATER_SKIP_POSTGRES").as_deref() != Ok("1") {
        panic!(
            "STILLWATER_TEST_DATABASE_URL is not set: the PostgreSQL tests need it \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres). \
             Set STILLWATER_SKIP_POSTGRES=1 to run without them."
        );
    }
    url
}

impl TestApp {
    /// The served OpenAPI document.
    pub async fn api_doc(&self) -> serde_json::Value {
        reqwest::get(self.url("/api/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn spawn(b: Backend) -> Option<TestApp> {
        Self::spawn_with(b, |_| {}).await
    }

    /// `tweak` may change the configuration (short session limits, say).
    pub async fn spawn_with(b: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let dir = std::env::temp_dir().join(format!("sw-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (url, pg, owner_url) = match b {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.join("t.db").display()),
                None,
                None,
            ),
            Backend::Postgres => {
                let admin = pg_admin_url()?;
                let name = format!("sw_test_{}", uuid::Uuid::now_v7().simple());
                let owner = store::provision::create_pg_database(&admin, &name)
                    .await
                    .expect("PostgreSQL at STILLWATER_TEST_DATABASE_URL must be reachable");
                // The owner migrates and grants; the app serves as a role
                // that owns nothing.
                ensure_app_role(&admin).await;
                store::roles::migrate_as_owner(&owner, APP_ROLE)
                    .await
                    .unwrap();
                (
                    with_user(&owner, APP_ROLE),
                    Some((admin, name)),
                    Some(owner),
                )
            }
        };
        let db_url = url.clone();
        let store = Store::connect(&StoreConfig {
            url,
            max_connections: 8,
            clock: test_clock(),
        })
        .await
        .unwrap();
        if owner_url.is_none() {
            store.migrate().await.unwrap();
        }
        stillwater::demo::load(&store, &demo_hash()).await.unwrap();
        let org = store.any_org().await.unwrap().unwrap();
        let clinics = store.clinics_of_org(org).await.unwrap();
        let glendale = clinics
            .iter()
            .find(|k| k.slug == "stillwater-glendale")
            .unwrap()
            .id;
        let denver = clinics
            .iter()
            .find(|k| k.slug == "stillwater-denver")
            .unwrap()
            .id;
        let mut cfg = Config {
            bind: "127.0.0.1:0".into(),
            metrics_bind: String::new(),
            // Tests drain the outbox themselves (with a mailer and a chosen
            // time); the background worker's first round is an hour away.
            outbox_interval_secs: 3600,
            ..Default::default()
        };
        tweak(&mut cfg);
        let running = stillwater::server::start(store.clone(), &cfg)
            .await
            .unwrap();
        Some(TestApp {
            db_url,
            addr: running.addr,
            store,
            glendale,
            denver,
            running: Some(running),
            dir,
            pg,
            owner_url,
        })
    }

    pub async fn finish(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.store.close().await;
        if let Some((admin, name)) = &self.pg {
            let _ = store::provision::drop_pg_database(admin, name).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// A pool with the powers of whoever holds the database: its file on
    /// SQLite, the schema owner on PostgreSQL (for tests that attack it).
    pub async fn owner_pool(&self) -> store::Pool {
        match &self.owner_url {
            None => self.store.raw_pool().clone(),
            Some(u) => store::Pool::Postgres(sqlx::PgPool::connect(u).await.unwrap()),
        }
    }

    /// The same for the audit trail (its own file on SQLite).
    pub async fn trail_owner_pool(&self) -> store::Pool {
        match &self.owner_url {
            None => self.store.raw_trail_pool().clone(),
            Some(_) => self.owner_pool().await,
        }
    }

    /// The owner's URL on PostgreSQL.
    pub fn owner_url(&self) -> Option<&str> {
        self.owner_url.as_deref()
    }

    /// The use cases, called as the demo's `username` (from a loader or the
    /// command line, not over HTTP).
    pub async fn acting_as(&self, username: &str) -> (clinic::Clinic, clinic::actor::Caller) {
        let state = clinic::Clinic::new(self.store.clone(), clinic::Config::default());
        let id = self
            .store
            .user_id_by_username(username)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no demo user {username}"));
        let caller = clinic::actor::Caller::of_user(&state, id, "test")
            .await
            .unwrap();
        (state, caller)
    }

    /// Now, by the app's clock (microseconds).
    pub fn now(&self) -> i64 {
        self.store.now()
    }

    /// Now, by the app's clock.
    pub fn now_ts(&self) -> jiff::Timestamp {
        domain::time::to_timestamp(self.now())
    }

    /// Moves the app's clock on by `minutes` (the server sees it at once).
    pub fn advance_minutes(&self, minutes: i64) {
        self.store.clock().advance(minutes * 60_000_000);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A browser-like client: keeps cookies, does not follow redirects.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Signs in through the login form; returns the client and its CSRF token.
    pub async fn login(&self, username: &str) -> Session {
        self.login_with(username, PW, None)
            .await
            .unwrap_or_else(|| panic!("login as {username} failed"))
    }

    pub async fn login_with(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Option<Session> {
        let (c, pre) = self.login_form().await;
        let mut form = vec![
            ("csrf", pre.as_str()),
            ("username", username),
            ("password", password),
        ];
        if let Some(t) = totp {
            form.push(("totp", t));
        }
        let r = c.post(self.url("/login")).form(&form).send().await.unwrap();
        if r.status() != 303 {
            return None;
        }
        let account = c
            .get(self.url("/account"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        Some(Session {
            client: c,
            csrf: hidden(&account, "csrf"),
            base: format!("http://{}", self.addr),
        })
    }

    /// A fresh client that has fetched the sign-in form, and the form's CSRF token.
    async fn login_form(&self) -> (reqwest::Client, String) {
        let c = self.client();
        let page = c
            .get(self.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let pre = hidden(&page, "csrf");
        (c, pre)
    }

    /// A device token (bedside monitor) for a clinic.
    pub async fn device_token(&self, clinic: ClinicId, name: &str) -> String {
        let dev = format!("sw_{}", clinic::actor::random_token(32));
        self.store
            .create_token(
                name,
                None,
                Some(clinic),
                &clinic::actor::secret_hash(&dev),
                None,
                ev(),
            )
            .await
            .unwrap();
        dev
    }

    /// The login page's answer to a failed attempt (status, body).
    pub async fn failed_login(&self, username: &str, password: &str) -> (u16, String) {
        let (c, pre) = self.login_form().await;
        let r = c
            .post(self.url("/login"))
            .form(&[
                ("csrf", pre.as_str()),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    /// A bearer token acting as `username`.
    pub async fn user_token(&self, username: &str) -> String {
        let token = format!("sw_{}", clinic::actor::random_token(32));
        let uid = self
            .store
            .user_id_by_username(username)
            .await
            .unwrap()
            .unwrap();
        self.store
            .create_token(
                "test",
                Some(uid),
                None,
                &clinic::actor::secret_hash(&token),
                None,
                ev(),
            )
            .await
            .unwrap();
        token
    }

    /// A Glendale patient id (demo patient) and a Denver one.
    pub async fn patient_ids(&self) -> (String, String) {
        let g = self
            .store
            .search_patients(&[self.glendale], "", 1)
            .await
            .unwrap();
        let d = self
            .store
            .search_patients(&[self.denver], "", 1)
            .await
            .unwrap();
        (g[0].id.to_string(), d[0].id.to_string())
    }

    pub async fn count_patients(&self) -> i64 {
        self.store
            .count_patients(&[self.glendale, self.denver])
            .await
            .unwrap()
    }
}

pub fn ev() -> store::audit::NewAuditEvent {
    store::audit::NewAuditEvent::new(domain::audit::Action::TokenCreate, "test")
}

fn demo_hash() -> String {
    // Hashing is slow in debug builds; the demo password's hash is computed once per binary.
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| clinic::passwords::hash_blocking(PW).unwrap())
        .clone()
}

/// The value of the first hidden input named `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let i = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no hidden {name} in page"));
    let rest = &html[i + needle.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

pub struct Session {
    pub client: reqwest::Client,
    pub csrf: String,
    pub base: String,
}

impl Session {
    /// A page's HTML.
    pub async fn html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .unwrap()
    }
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut f: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        f.extend_from_slice(fields);
        self.client
            .post(format!("{}{}", self.base, path))
            .form(&f)
            .send()
            .await
            .unwrap()
    }
}

/// Runs an `async fn(&TestApp)` on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use $crate::helpers::{Backend, TestApp};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
                super::$name(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = TestApp::spawn(Backend::Postgres).await else {
                    eprintln!("PostgreSQL test skipped: STILLWATER_SKIP_POSTGRES=1");
                    return;
                };
                super::$name(&app).await;
                app.finish().await;
            }
        }
    };
}

/// A local SMTP sink for tests: accepts every message and keeps its raw text.
pub struct SmtpSink {
    pub addr: SocketAddr,
    pub messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = messages.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                    let mut in_data = false;
                    let mut msg = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                keep.lock().unwrap().push(std::mem::take(&mut msg));
                                let _ = w.write_all(b"250 queued\r\n").await;
                            } else {
                                msg.push_str(&line);
                                msg.push('\n');
                            }
                            continue;
                        }
                        let cmd = line.to_ascii_uppercase();
                        let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                            b"250 sink\r\n"
                        } else if cmd.starts_with("DATA") {
                            in_data = true;
                            b"354 go ahead\r\n"
                        } else if cmd.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        let _ = w.write_all(reply).await;
                    }
                });
            }
        });
        SmtpSink { addr, messages }
    }

    pub fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// The patient answers the GAD-7 today (entered by a nurse at the chair): the
/// IV protocol's pre-session questionnaire.
pub async fn answer_gad7(app: &TestApp, patient: &str) {
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/questionnaire-responses"))
        .bearer_auth(app.user_token("nina.nurse").await)
        .json(
            &serde_json::json!({"patient_id": patient, "instrument": "gad7",
            "answers": {"1": 2, "2": 1, "3": 2, "4": 1, "5": 1, "6": 2, "7": 1}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// The fields a problem document names, in order.
pub fn fields(e: &serde_json::Value) -> Vec<String> {
    e["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["field"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}
