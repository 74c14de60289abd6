//! Configuration, layered: built-in defaults, then a TOML file, then
//! `STILLWATER_*` environment variables (with `*_FILE` for secrets), then
//! command-line flags. Validated before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the web server.
    pub bind: String,
    /// Folder for the SQLite database and backups.
    pub data_dir: PathBuf,
    /// `postgres://...` to use PostgreSQL; empty for SQLite in `data_dir`.
    #[serde(deserialize_with = "secret")]
    pub database_url: SecretString,
    /// PostgreSQL: the schema owner's URL. When set, migrations run as this
    /// role, which grants `database_url`'s role rows and nothing more, and
    /// Stillwater serves as that role: it cannot switch off the guards of
    /// the audit trail, the Schedule III ledger, notes and billing.
    #[serde(deserialize_with = "secret")]
    pub owner_database_url: SecretString,
    /// Address of the Prometheus metrics listener; empty to turn it off.
    pub metrics_bind: String,
    pub max_connections: u32,
    pub secure_cookies: bool,
    pub trust_proxy: bool,
    pub session_idle_minutes: u64,
    pub session_absolute_hours: u64,
    pub max_failed_logins: i64,
    pub lockout_minutes: u64,
    pub body_limit_kib: usize,
    /// Milliseconds a looked-up session or token is trusted (0: always look up).
    pub auth_cache_ms: u64,
    /// "text" or "json".
    pub log_format: String,
    /// SMTP server for reminders: `smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`; empty: no e-mail (reminders are recorded as skipped).
    #[serde(deserialize_with = "secret")]
    pub smtp_url: SecretString,
    /// Sender of clinic e-mail.
    pub mail_from: String,
    /// Seconds between runs of the outbox worker (reminders).
    pub outbox_interval_secs: u64,
    /// The address patients reach the server at (links in e-mails).
    pub public_url: String,
    /// Submissions per minute one address may make to the public pages.
    pub public_per_minute: u32,
    /// The key anchors of the hash chains are signed with (at least 32
    /// characters). It lives outside the database: in the environment
    /// (STILLWATER_ANCHOR_KEY) or a file (STILLWATER_ANCHOR_KEY_FILE), never in
    /// a table. Empty: no anchors are written.
    #[serde(deserialize_with = "secret")]
    pub anchor_key: SecretString,
    /// Where anchors are appended, one line each: a file on other storage
    /// than the database's (an append-only mount, a synced folder).
    pub anchor_file: PathBuf,
    /// Minutes between the anchors the server writes on its own (0: only
    /// `stillwater anchor`, from cron).
    pub anchor_every_minutes: u64,
    /// Where `stillwater audit archive` writes the monthly archives of the
    /// audit trail (default `<data_dir>/audit-archive`).
    pub audit_archive_dir: PathBuf,
    /// Whole months (counting the current one) the audit trail keeps in the
    /// database; older months go to archives.
    pub audit_live_months: u32,
    /// Years archives are kept before `stillwater audit archive` deletes
    /// them: at least 6 (HIPAA keeps documentation six years).
    pub audit_retention_years: u32,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            database_url: SecretString::from(String::new()),
            owner_database_url: SecretString::from(String::new()),
            metrics_bind: "127.0.0.1:9464".into(),
            max_connections: 8,
            secure_cookies: false,
            trust_proxy: false,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            max_failed_logins: domain::auth::DEFAULT_MAX_FAILED_LOGINS,
            lockout_minutes: domain::auth::DEFAULT_LOCKOUT_MINUTES as u64,
            body_limit_kib: 64,
            auth_cache_ms: 2000,
            smtp_url: SecretString::from(String::new()),
            mail_from: "Stillwater <no-reply@stillwater.invalid>".into(),
            outbox_interval_secs: 30,
            public_url: "http://127.0.0.1:8080".into(),
            public_per_minute: 10,
            log_format: "text".into(),
            anchor_key: SecretString::from(String::new()),
            anchor_file: PathBuf::new(),
            anchor_every_minutes: 15,
            audit_archive_dir: PathBuf::new(),
            audit_live_months: 13,
            audit_retention_years: 6,
        }
    }
}

pub const DEFAULT_TOML: &str = r#"# Stillwater configuration. Every key is optional; these are the defaults.
# Environment variables override this file: STILLWATER_BIND, STILLWATER_DATA_DIR,
# STILLWATER_DATABASE_URL (or STILLWATER_DATABASE_URL_FILE, or DATABASE_URL), ...
# Command-line flags override both.

bind = "127.0.0.1:8080"
data_dir = "data"
# database_url = "postgres://stillwater@127.0.0.1/stillwater"   # empty: SQLite in data_dir
# owner_database_url = "postgres://stillwater_owner@127.0.0.1/stillwater"   # migrates; the app serves as database_url's role
metrics_bind = "127.0.0.1:9464"        # "" turns the metrics listener off
max_connections = 8
secure_cookies = false                  # true when served over HTTPS
trust_proxy = false                     # true only behind a reverse proxy that sets X-Forwarded-For
session_idle_minutes = 30
session_absolute_hours = 12
max_failed_logins = 5
lockout_minutes = 15
body_limit_kib = 64
auth_cache_ms = 2000                    # sessions/tokens re-checked at least this often; sign-out and role changes here apply at once
log_format = "text"                     # or "json"
# smtp_url = "smtp://user:password@mail.example.org:587?tls=required"   # empty: no e-mail
mail_from = "Stillwater <no-reply@stillwater.invalid>"
outbox_interval_secs = 30               # how often reminders and other queued work run
public_url = "http://127.0.0.1:8080"    # where patients reach this server (questionnaire links in e-mails)
public_per_minute = 10                  # self-assessments, bookings and link answers per minute from one address
# Anchors: the heads of the audit and Schedule III chains, signed with a key
# kept outside the database, appended to a file on other storage. Set the key
# with STILLWATER_ANCHOR_KEY or STILLWATER_ANCHOR_KEY_FILE (32+ characters).
# anchor_file = "/var/lib/stillwater-anchors/anchors.log"   # default: <data_dir>/anchors.log
anchor_every_minutes = 15               # 0: only `stillwater anchor` (cron)
# The audit trail keeps this many whole months in the database (the current
# one counted); `stillwater audit archive` (monthly, from cron) moves older
# months to signed archives and deletes archives past the retention.
# audit_archive_dir = "/var/lib/stillwater-archive"   # default: <data_dir>/audit-archive
audit_live_months = 13
audit_retention_years = 6               # at least 6 (HIPAA)
# Instruments and protocols: every *.toml file in <data_dir>/instruments and
# <data_dir>/protocols is loaded beside the shipped ones (validated at start).
"#;

const KEYS: [&str; 30] = [
    "AUDIT_ARCHIVE_DIR",
    "AUDIT_LIVE_MONTHS",
    "AUDIT_RETENTION_YEARS",
    "ANCHOR_KEY",
    "ANCHOR_KEY_FILE",
    "ANCHOR_FILE",
    "ANCHOR_EVERY_MINUTES",
    "PUBLIC_URL",
    "PUBLIC_PER_MINUTE",
    "SMTP_URL",
    "SMTP_URL_FILE",
    "MAIL_FROM",
    "OUTBOX_INTERVAL_SECS",
    "BIND",
    "DATA_DIR",
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "OWNER_DATABASE_URL",
    "OWNER_DATABASE_URL_FILE",
    "METRICS_BIND",
    "MAX_CONNECTIONS",
    "SECURE_COOKIES",
    "TRUST_PROXY",
    "SESSION_IDLE_MINUTES",
    "SESSION_ABSOLUTE_HOURS",
    "MAX_FAILED_LOGINS",
    "LOCKOUT_MINUTES",
    "BODY_LIMIT_KIB",
    "AUTH_CACHE_MS",
    "LOG_FORMAT",
];

/// Flags that override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

impl Config {
    pub fn load(o: &Overrides, env: &[(String, String)]) -> anyhow::Result<(Config, Vec<String>)> {
        let mut warnings = vec![];
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let file = o
            .config_file
            .clone()
            .or_else(|| get("STILLWATER_CONFIG").map(PathBuf::from));
        let mut cfg = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<Config>(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None => Config::default(),
        };
        for (k, _) in env {
            if let Some(rest) = k.strip_prefix("STILLWATER_") {
                if !KEYS.contains(&rest)
                    && rest != "CONFIG"
                    && rest != "LOG"
                    && rest != "TEST_DATABASE_URL"
                {
                    warnings.push(format!("unknown environment variable {k} is ignored"));
                }
            }
        }
        let parse_num = |k: &str, v: String| -> anyhow::Result<u64> {
            v.trim()
                .parse::<u64>()
                .with_context(|| format!("{k} must be a whole number, not {v:?}"))
        };
        let parse_bool = |k: &str, v: String| -> anyhow::Result<bool> {
            match v.trim() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => bail!("{k} must be true or false, not {v:?}"),
            }
        };
        // A secret from STILLWATER_<NAME>, or from the file STILLWATER_<NAME>_FILE names.
        let secret = |name: &str| -> anyhow::Result<Option<SecretString>> {
            let mut v = get(&format!("STILLWATER_{name}")).map(SecretString::from);
            if let Some(p) = get(&format!("STILLWATER_{name}_FILE")) {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading STILLWATER_{name}_FILE {p}"))?;
                v = Some(text.trim().to_string().into());
            }
            Ok(v)
        };
        if let Some(v) = get("STILLWATER_BIND") {
            cfg.bind = v;
        }
        if let Some(v) = get("STILLWATER_DATA_DIR") {
            cfg.data_dir = v.into();
        }
        if let Some(v) = get("DATABASE_URL") {
            cfg.database_url = v.into();
        }
        if let Some(v) = secret("DATABASE_URL")? {
            cfg.database_url = v;
        }
        if let Some(v) = secret("OWNER_DATABASE_URL")? {
            cfg.owner_database_url = v;
        }
        if let Some(v) = get("STILLWATER_METRICS_BIND") {
            cfg.metrics_bind = v;
        }
        if let Some(v) = get("STILLWATER_MAX_CONNECTIONS") {
            cfg.max_connections = parse_num("STILLWATER_MAX_CONNECTIONS", v)? as u32;
        }
        if let Some(v) = get("STILLWATER_SECURE_COOKIES") {
            cfg.secure_cookies = parse_bool("STILLWATER_SECURE_COOKIES", v)?;
        }
        if let Some(v) = get("STILLWATER_TRUST_PROXY") {
            cfg.trust_proxy = parse_bool("STILLWATER_TRUST_PROXY", v)?;
        }
        if let Some(v) = get("STILLWATER_SESSION_IDLE_MINUTES") {
            cfg.session_idle_minutes = parse_num("STILLWATER_SESSION_IDLE_MINUTES", v)?;
        }
        if let Some(v) = get("STILLWATER_SESSION_ABSOLUTE_HOURS") {
            cfg.session_absolute_hours = parse_num("STILLWATER_SESSION_ABSOLUTE_HOURS", v)?;
        }
        if let Some(v) = get("STILLWATER_MAX_FAILED_LOGINS") {
            cfg.max_failed_logins = parse_num("STILLWATER_MAX_FAILED_LOGINS", v)? as i64;
        }
        if let Some(v) = get("STILLWATER_LOCKOUT_MINUTES") {
            cfg.lockout_minutes = parse_num("STILLWATER_LOCKOUT_MINUTES", v)?;
        }
        if let Some(v) = get("STILLWATER_BODY_LIMIT_KIB") {
            cfg.body_limit_kib = parse_num("STILLWATER_BODY_LIMIT_KIB", v)? as usize;
        }
        if let Some(v) = get("STILLWATER_AUTH_CACHE_MS") {
            cfg.auth_cache_ms = parse_num("STILLWATER_AUTH_CACHE_MS", v)?;
        }
        if let Some(v) = get("STILLWATER_LOG_FORMAT") {
            cfg.log_format = v;
        }
        if let Some(v) = secret("SMTP_URL")? {
            cfg.smtp_url = v;
        }
        if let Some(v) = get("STILLWATER_MAIL_FROM") {
            cfg.mail_from = v;
        }
        if let Some(v) = get("STILLWATER_PUBLIC_URL") {
            cfg.public_url = v;
        }
        if let Some(v) = get("STILLWATER_PUBLIC_PER_MINUTE") {
            cfg.public_per_minute = parse_num("STILLWATER_PUBLIC_PER_MINUTE", v)? as u32;
        }
        if let Some(v) = get("STILLWATER_OUTBOX_INTERVAL_SECS") {
            cfg.outbox_interval_secs = parse_num("STILLWATER_OUTBOX_INTERVAL_SECS", v)?;
        }
        if let Some(v) = secret("ANCHOR_KEY")? {
            cfg.anchor_key = v;
        }
        if let Some(v) = get("STILLWATER_ANCHOR_FILE") {
            cfg.anchor_file = v.into();
        }
        if let Some(v) = get("STILLWATER_AUDIT_ARCHIVE_DIR") {
            cfg.audit_archive_dir = v.into();
        }
        if let Some(v) = get("STILLWATER_AUDIT_LIVE_MONTHS") {
            cfg.audit_live_months = parse_num("STILLWATER_AUDIT_LIVE_MONTHS", v)? as u32;
        }
        if let Some(v) = get("STILLWATER_AUDIT_RETENTION_YEARS") {
            cfg.audit_retention_years = parse_num("STILLWATER_AUDIT_RETENTION_YEARS", v)? as u32;
        }
        if let Some(v) = get("STILLWATER_ANCHOR_EVERY_MINUTES") {
            cfg.anchor_every_minutes = parse_num("STILLWATER_ANCHOR_EVERY_MINUTES", v)?;
        }
        if let Some(v) = &o.bind {
            cfg.bind = v.clone();
        }
        if let Some(v) = &o.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            cfg.database_url = v.clone().into();
        }
        cfg.validate()?;
        Ok((cfg, warnings))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.bind.parse::<std::net::SocketAddr>().with_context(|| {
            format!(
                "bind must be an address like 127.0.0.1:8080, not {:?}",
                self.bind
            )
        })?;
        if !self.metrics_bind.is_empty() {
            self.metrics_bind
                .parse::<std::net::SocketAddr>()
                .with_context(|| {
                    format!(
                        "metrics_bind must be an address or empty, not {:?}",
                        self.metrics_bind
                    )
                })?;
        }
        let url = self.database_url.expose_secret();
        if !url.is_empty()
            && !url.starts_with("postgres://")
            && !url.starts_with("postgresql://")
            && !url.starts_with("sqlite://")
        {
            bail!("database_url must start with postgres:// (or be empty for SQLite)");
        }
        let owner = self.owner_database_url.expose_secret();
        if !owner.is_empty() {
            if !(owner.starts_with("postgres://") || owner.starts_with("postgresql://")) {
                bail!("owner_database_url must start with postgres://");
            }
            if !self.is_postgres() {
                bail!(
                    "owner_database_url is for PostgreSQL; set database_url to the app's role too"
                );
            }
        }
        if !(1..=10_000).contains(&self.session_idle_minutes) {
            bail!("session_idle_minutes must be 1 to 10000");
        }
        if !(1..=720).contains(&self.session_absolute_hours) {
            bail!("session_absolute_hours must be 1 to 720");
        }
        if !(1..=100).contains(&self.max_failed_logins) {
            bail!("max_failed_logins must be 1 to 100");
        }
        if !(1..=16_384).contains(&self.body_limit_kib) {
            bail!("body_limit_kib must be 1 to 16384");
        }
        if !(1..=256).contains(&self.max_connections) {
            bail!("max_connections must be 1 to 256");
        }
        if self.auth_cache_ms > 60_000 {
            bail!("auth_cache_ms must be at most 60000 (one minute)");
        }
        if self.log_format != "text" && self.log_format != "json" {
            bail!("log_format must be text or json");
        }
        if !(1..=3600).contains(&self.outbox_interval_secs) {
            bail!("outbox_interval_secs must be 1 to 3600");
        }
        if !(1..=10_000).contains(&self.public_per_minute) {
            bail!("public_per_minute must be 1 to 10000");
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            bail!("public_url must start with http:// or https://");
        }
        let key = self.anchor_key.expose_secret();
        if !key.is_empty() && key.len() < domain::anchor::MIN_KEY {
            bail!(
                "anchor_key must be at least {} characters (e.g. `openssl rand -hex 32`)",
                domain::anchor::MIN_KEY
            );
        }
        if !(1..=1200).contains(&self.audit_live_months) {
            bail!("audit_live_months must be 1 to 1200");
        }
        if !(6..=100).contains(&self.audit_retention_years) {
            bail!("audit_retention_years must be 6 to 100: HIPAA keeps documentation six years");
        }
        if self.anchor_every_minutes > 24 * 60 {
            bail!("anchor_every_minutes must be at most 1440 (a day)");
        }
        self.mailer().map_err(anyhow::Error::msg)?;
        self.instruments()?;
        self.protocols()?;
        Ok(())
    }

    /// The shipped instruments and every `*.toml` file in
    /// `<data_dir>/instruments`, validated (a broken file stops start-up with
    /// the file and the reason).
    pub fn instruments(&self) -> anyhow::Result<domain::instruments::Registry> {
        Ok(domain::instruments::Registry::load(
            &self.files("instruments")?,
        )?)
    }

    /// The shipped protocols and every `*.toml` file in `<data_dir>/protocols`.
    /// Every protocol's pre-session instruments are checked against the
    /// loaded instruments: a protocol naming one that does not exist stops
    /// start-up rather than blocking every dose on the day.
    pub fn protocols(&self) -> anyhow::Result<domain::protocols::Protocols> {
        let p = domain::protocols::Protocols::load(&self.files("protocols")?)?;
        let instruments = self.instruments()?;
        for proto in p.all_current() {
            for i in &proto.pre_session_instruments {
                if instruments.current(i).is_none() {
                    bail!(
                        "protocol {} version {}: pre_session_instruments names {i:?}, which is not a loaded instrument",
                        proto.id,
                        proto.version
                    );
                }
            }
        }
        Ok(p)
    }

    /// The clinic's own protocol files (`<data_dir>/protocols/*.toml`).
    pub fn protocol_files(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.files("protocols")
    }

    /// The `*.toml` files of a folder under the data folder, by name.
    fn files(&self, folder: &str) -> anyhow::Result<Vec<(String, String)>> {
        let dir = self.data_dir.join(folder);
        let mut out = Vec::new();
        if dir.is_dir() {
            let mut paths: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for p in paths {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                out.push((p.display().to_string(), text));
            }
        }
        Ok(out)
    }

    /// The database URL to open: PostgreSQL if set, else SQLite in the data folder.
    pub fn store_url(&self) -> String {
        let url = self.database_url.expose_secret();
        if url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("stillwater.db").display())
        } else {
            url.to_string()
        }
    }

    /// The mailer for reminders (checked at start-up; the URL is never logged).
    pub fn mailer(&self) -> Result<clinic::mailer::Mailer, String> {
        clinic::mailer::Mailer::from_url(self.smtp_url.expose_secret(), &self.mail_from)
    }

    /// The schema owner's URL (PostgreSQL), if one is set.
    pub fn owner_url(&self) -> Option<String> {
        let u = self.owner_database_url.expose_secret();
        (!u.is_empty()).then(|| u.to_string())
    }

    /// Where anchors are written and read.
    pub fn anchor_path(&self) -> PathBuf {
        if self.anchor_file.as_os_str().is_empty() {
            self.data_dir.join("anchors.log")
        } else {
            self.anchor_file.clone()
        }
    }

    /// Where the audit trail's monthly archives go.
    pub fn audit_archive_path(&self) -> PathBuf {
        if self.audit_archive_dir.as_os_str().is_empty() {
            self.data_dir.join("audit-archive")
        } else {
            self.audit_archive_dir.clone()
        }
    }

    /// The anchor key's bytes, if one is set.
    pub fn anchor_key_bytes(&self) -> Option<Vec<u8>> {
        let k = self.anchor_key.expose_secret();
        (!k.is_empty()).then(|| k.as_bytes().to_vec())
    }

    pub fn is_postgres(&self) -> bool {
        self.store_url().starts_with("postgres")
    }

    pub fn web(&self) -> web::WebConfig {
        web::WebConfig {
            secure_cookies: self.secure_cookies,
            trust_proxy: self.trust_proxy,
            body_limit: self.body_limit_kib * 1024,
        }
    }

    pub fn clinic(&self) -> clinic::Config {
        clinic::Config {
            session_idle: Duration::from_secs(self.session_idle_minutes * 60),
            session_absolute: Duration::from_secs(self.session_absolute_hours * 3600),
            max_failed_logins: self.max_failed_logins,
            lockout: Duration::from_secs(self.lockout_minutes * 60),
            auth_cache_ttl: Duration::from_millis(self.auth_cache_ms),
            public_url: self.public_url.clone(),
            public_per_minute: self.public_per_minute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("sw-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "bind = \"127.0.0.1:9000\"\nlockout_minutes = 5\n").unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let (c, w) = Config::load(
            &o,
            &env(&[
                ("STILLWATER_LOCKOUT_MINUTES", "7"),
                ("STILLWATER_BOGUS", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.bind, "127.0.0.1:9000");
        assert_eq!(c.lockout_minutes, 7);
        assert_eq!(w.len(), 1);
        let o2 = Overrides {
            bind: Some("127.0.0.1:1".into()),
            ..o
        };
        assert_eq!(Config::load(&o2, &[]).unwrap().0.bind, "127.0.0.1:1");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::load(
            &Overrides::default(),
            &env(&[("STILLWATER_SECURE_COOKIES", "maybe")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("STILLWATER_SECURE_COOKIES"));
        let e = Config::load(
            &Overrides {
                bind: Some("nowhere".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("bind"));
        assert!(toml::from_str::<Config>("bnd = 1").is_err());
        assert!(toml::from_str::<Config>(DEFAULT_TOML).is_ok());
    }
}
