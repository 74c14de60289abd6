//! `stillwater`: the clinic platform in one binary.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use domain::audit::Action;
use domain::auth::Role;
use domain::clinics::ClinicSettings;
use stillwater::config::{Config, Overrides, DEFAULT_TOML};
use stillwater::{bench, demo, server};
use store::audit::{NewAuditEvent, VerifyOutcome};
use store::Store;

#[derive(Parser)]
#[command(
    name = "stillwater",
    version,
    about = "Stillwater: the clinic platform for ketamine-assisted therapy"
)]
struct Cli {
    /// TOML configuration file (also STILLWATER_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Folder for the SQLite database (also STILLWATER_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the web server (migrates first).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Start a demo clinic with staff in every role and forty patients: on
    /// SQLite in ./demo-data, or in the PostgreSQL database given.
    Demo {
        #[arg(long)]
        bind: Option<String>,
        /// A PostgreSQL database for the demo (postgres://…); it must be empty
        /// or hold an earlier demo.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 when the server at URL answers /readyz, 1 otherwise.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Create the organisation, its first clinic and the first admin (empty database only).
    Setup {
        #[arg(long)]
        org: String,
        #[arg(long)]
        clinic: String,
        #[arg(long)]
        time_zone: String,
        #[arg(long)]
        address: String,
        #[arg(long)]
        city: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        postal_code: String,
        #[arg(long, default_value = "US")]
        country: String,
        #[arg(long)]
        phone: String,
        /// Username of the first clinic admin; the password is read from standard input.
        #[arg(long)]
        admin: String,
    },
    /// Staff accounts.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// API tokens for systems and devices.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// The Schedule III record.
    Cs {
        #[command(subcommand)]
        cmd: CsCmd,
    },
    /// Online backup of the SQLite database to FILE (VACUUM INTO).
    Backup { file: PathBuf },
    /// Sign the heads of the audit and Schedule III chains with the anchor
    /// key and append them to the anchor file (run from cron).
    Anchor,
    /// Check everything that is chained, sealed or derived: both chains,
    /// both against their last anchor, signed notes and addenda, billing
    /// entries and invoices, the Schedule III balances. Exits 3 with what is
    /// wrong.
    Verify,
    /// Print the default configuration file.
    PrintDefaultConfig,
    /// Measure throughput and latency of audited patient reads; see BENCHMARKS.md.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a staff member; the password is read from standard input.
    Add {
        username: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
    },
    List,
    Disable {
        username: String,
    },
    Enable {
        username: String,
    },
    /// Mark a prescriber as the organisation's medical director (who
    /// approves protocol versions); `--off` removes the mark.
    MedicalDirector {
        username: String,
        #[arg(long)]
        off: bool,
    },
    /// Set a new password, read from standard input; ends the user's sessions.
    Passwd {
        username: String,
    },
    /// Grant a role in a clinic (clinic by slug, e.g. stillwater-glendale, or id).
    Grant {
        username: String,
        #[arg(long)]
        clinic: String,
        #[arg(long)]
        role: String,
    },
    Revoke {
        username: String,
        #[arg(long)]
        clinic: String,
        #[arg(long)]
        role: String,
    },
    /// Turn on two-step sign-in and print the key for the authenticator app.
    Totp {
        username: String,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// Act as this user, with their roles.
        #[arg(long, conflicts_with = "device_clinic")]
        user: Option<String>,
        /// A device token for this clinic (bedside monitors): may only send readings.
        #[arg(long)]
        device_clinic: Option<String>,
    },
    Revoke {
        id: String,
    },
    List,
}

#[derive(Subcommand)]
enum CsCmd {
    /// Check the ledger's hash chain and that every balance equals its ledger.
    Verify,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check every link of the hash chain.
    Verify,
    /// Move every whole month older than `audit_live_months` to a signed
    /// archive in `audit_archive_dir` and out of the database; delete
    /// archives older than `audit_retention_years` (run monthly from cron).
    Archive,
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STILLWATER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if cfg.log_format == "json" {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .try_init();
    } else {
        // Colours only on a terminal: a log file or the journal gets plain
        // text (and each request's span is formatted without escape codes).
        let _ = tracing_subscriber::fmt()
            .with_ansi(std::io::stdout().is_terminal())
            .with_env_filter(filter)
            .try_init();
    }
}

fn load_config(
    cli: &Cli,
    bind: Option<String>,
    database_url: Option<String>,
) -> anyhow::Result<Config> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let o = Overrides {
        config_file: cli.config.clone(),
        bind,
        data_dir: cli.data_dir.clone(),
        database_url,
    };
    let (cfg, warnings) = Config::load(&o, &env)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(cfg)
}

/// Reads a new password from standard input and checks it against the
/// rules, with the account's own names (`names`) refused in it.
fn read_password(names: &[&str]) -> anyhow::Result<String> {
    eprintln!("Password (read from standard input, at least 12 characters, not easy to guess):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    domain::auth::check_new_password(&pw, names)
        .map_err(|e| anyhow::anyhow!("password {}", e.message))?;
    Ok(pw)
}

fn cli_event(a: Action, org: Option<domain::ids::OrgId>) -> NewAuditEvent {
    let who = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let mut e = NewAuditEvent::new(a, format!("cli:{who}"));
    e.org_id = org.map(|o| o.to_string());
    e.source_ip = Some("cli".into());
    e
}

async fn user_id(store: &Store, username: &str) -> anyhow::Result<domain::ids::UserId> {
    store
        .user_id_by_username(&username.to_lowercase())
        .await?
        .with_context(|| format!("no user named {username}"))
}

async fn only_org(store: &Store) -> anyhow::Result<domain::ids::OrgId> {
    let admin = store.any_org().await?;
    admin.context("no organisation yet: run `stillwater setup` (or `stillwater demo`) first")
}

async fn clinic_ref(
    store: &Store,
    org: domain::ids::OrgId,
    r: &str,
) -> anyhow::Result<domain::ids::ClinicId> {
    let clinics = store.clinics_of_org(org).await?;
    clinics
        .iter()
        .find(|k| k.slug == r || k.id.to_string() == r)
        .map(|k| k.id)
        .with_context(|| {
            format!(
                "no clinic {r}; clinics: {}",
                clinics
                    .iter()
                    .map(|k| k.slug.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match &cli.cmd {
        Cmd::PrintDefaultConfig => {
            print!("{DEFAULT_TOML}");
            return Ok(0);
        }
        Cmd::Healthcheck { url } => {
            return Ok(
                if bench::get_ok(&format!("{}/readyz", url.trim_end_matches('/'))).await {
                    0
                } else {
                    1
                },
            )
        }
        Cmd::Bench(args) => {
            let cfg = load_config(&cli, None, None)?;
            init_logs(&Config {
                log_format: cfg.log_format.clone(),
                ..cfg
            });
            bench::run(args).await?;
            return Ok(0);
        }
        _ => {}
    }
    let (bind, database_url) = match &cli.cmd {
        Cmd::Serve { bind } => (bind.clone(), None),
        Cmd::Demo { bind, database_url } => (bind.clone(), database_url.clone()),
        _ => (None, None),
    };
    let mut cfg = load_config(&cli, bind, database_url)?;
    if let Cmd::Demo { .. } = cli.cmd {
        if cli.data_dir.is_none() && std::env::var("STILLWATER_DATA_DIR").is_err() {
            cfg.data_dir = PathBuf::from("demo-data");
        }
        // Metrics are for operators; a demo has none unless asked for.
        if std::env::var("STILLWATER_METRICS_BIND").is_err() && cli.config.is_none() {
            cfg.metrics_bind = String::new();
        }
    }
    init_logs(&cfg);
    let store = server::open_store(&cfg).await?;
    let code = match cli.cmd {
        Cmd::Serve { .. } => {
            if let Some(why) = store.pg_role_can_unguard().await? {
                tracing::warn!(
                    "{why}: it could switch off the append-only guards. Serve as a role that owns \
                     nothing and set owner_database_url (README, PostgreSQL)"
                );
            }
            server::serve_forever(store.clone(), &cfg).await?;
            0
        }
        Cmd::Demo { .. } => {
            let hash = clinic::passwords::hash_blocking(demo::DEMO_PASSWORD)
                .map_err(anyhow::Error::msg)?;
            let fresh = demo::load(&store, &hash).await?;
            if fresh {
                demo::load_rest(&store, &cfg.protocols()?, &cfg.instruments()?).await?;
            }
            let running = server::start(store.clone(), &cfg).await?;
            println!();
            println!(
                "  Stillwater demo clinic is running at http://{}/",
                running.addr
            );
            println!(
                "  Data: {} ({})",
                cfg.data_dir.display(),
                if fresh {
                    "new demo loaded"
                } else {
                    "existing demo reused"
                }
            );
            println!(
                "  Public self-assessment (no sign-in): http://{}/c/stillwater-glendale",
                running.addr
            );
            println!("  Every account's password is: {}", demo::DEMO_PASSWORD);
            println!();
            println!("  {:<18} {:<24} role", "username", "name");
            for s in demo::STAFF {
                println!("  {:<18} {:<24} {}", s.username, s.name, s.roles);
            }
            println!();
            println!("  Press Ctrl-C to stop.");
            running.stop_on_signal().await;
            store.close().await;
            0
        }
        Cmd::Migrate => {
            println!("migrations applied ({:?})", store.backend());
            0
        }
        Cmd::Setup {
            org,
            clinic,
            time_zone,
            address,
            city,
            region,
            postal_code,
            country,
            phone,
            admin,
        } => {
            if store.any_org().await?.is_some() {
                bail!("this database already has an organisation");
            }
            let username = domain::auth::parse_username(&admin)
                .map_err(|e| anyhow::anyhow!("admin {}", e.message))?;
            let settings = ClinicSettings::validate(&domain::clinics::ClinicSettingsInput {
                name: Some(clinic),
                address_line1: Some(address),
                city: Some(city),
                region: Some(region),
                postal_code: Some(postal_code),
                country: Some(country),
                phone: Some(phone),
                time_zone: Some(time_zone),
                ..Default::default()
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let pw = read_password(&[username.as_str()])?;
            let hash = clinic::passwords::hash_blocking(&pw).map_err(anyhow::Error::msg)?;
            let org_id = store.create_org(&org).await?;
            let clinic_id = store.create_clinic(org_id, &settings).await?;
            let uid = store
                .create_user(
                    &store::auth::NewUser {
                        org_id,
                        username: &username,
                        display_name: &username,
                        email: None,
                        password_hash: &hash,
                    },
                    cli_event(Action::UserCreate, Some(org_id)),
                )
                .await?;
            let mut ev = cli_event(Action::RoleGrant, Some(org_id));
            ev.clinic_id = Some(clinic_id.to_string());
            ev.detail = Some("granted clinic_admin".into());
            store
                .grant_role(uid, clinic_id, Role::ClinicAdmin, None, ev)
                .await?;
            println!(
                "created {org} with clinic {} and admin {username}",
                settings.name
            );
            0
        }
        Cmd::User { cmd } => user_cmd(&store, cmd).await?,
        Cmd::Token { cmd } => token_cmd(&store, cmd).await?,
        Cmd::Audit {
            cmd: AuditCmd::Verify,
        } => {
            match store.audit_verify().await? {
                VerifyOutcome::Intact { events } => {
                    println!("audit chain intact: {events} events verified");
                    0
                }
                VerifyOutcome::Broken(b) => {
                    println!("AUDIT CHAIN BROKEN: {b:?}");
                    3
                }
                VerifyOutcome::Truncated { head_seq, last_seq } => {
                    println!("AUDIT CHAIN TRUNCATED: head says {head_seq} events, rows end at {last_seq}");
                    3
                }
            }
        }
        Cmd::Audit {
            cmd: AuditCmd::Archive,
        } => {
            let key = cfg.anchor_key_bytes().context(
                "no anchor key: set STILLWATER_ANCHOR_KEY or STILLWATER_ANCHOR_KEY_FILE (archives are signed with it)",
            )?;
            let dir = cfg.audit_archive_path();
            let done = stillwater::archive::archive(
                &store,
                &key,
                &dir,
                cfg.audit_live_months,
                cfg.audit_retention_years,
            )
            .await?;
            for (path, h) in &done.written {
                println!(
                    "archived {} (rows {}..{}) to {}",
                    h.month,
                    h.from_seq,
                    h.to_seq,
                    path.display()
                );
            }
            println!(
                "{} rows left the database; {} archives past the retention deleted",
                done.removed_rows,
                done.expired.len()
            );
            for p in &done.expired {
                println!("deleted {}", p.display());
            }
            0
        }
        Cmd::Cs { cmd: CsCmd::Verify } => {
            let check = store.cs_verify().await?;
            println!("{check}");
            if matches!(check, store::substances::LedgerCheck::Intact { .. }) {
                0
            } else {
                3
            }
        }
        Cmd::Backup { file } => {
            if cfg.is_postgres() {
                if file.exists() {
                    bail!("{} exists already; choose a new file name", file.display());
                }
                // pg_dump takes one consistent snapshot of the data and the
                // audit chain together (restore with pg_restore). It must be
                // installed (Debian: postgresql-client, of the server's
                // major version or later); without it, this fails, so a
                // scheduled backup is never reported as done when it is not.
                let out = tokio::process::Command::new("pg_dump")
                    .arg("--format=custom")
                    .arg("--file")
                    .arg(&file)
                    .arg("--dbname")
                    .arg(cfg.store_url())
                    .status()
                    .await;
                match out {
                    Ok(s) if s.success() => {
                        println!("backed up to {} (restore with pg_restore)", file.display());
                        0
                    }
                    Ok(s) => {
                        eprintln!("pg_dump failed ({s}); no backup was written");
                        let _ = std::fs::remove_file(&file);
                        4
                    }
                    Err(e) => {
                        eprintln!("cannot run pg_dump ({e}): install the PostgreSQL client tools (Debian: postgresql-client); no backup was written");
                        4
                    }
                }
            } else {
                if file.exists() {
                    bail!("{} exists already; choose a new file name", file.display());
                }
                let path = file
                    .to_str()
                    .context("the backup path must be valid UTF-8")?;
                store.backup_to(path).await?;
                println!(
                    "backed up to {} and its audit trail to {}",
                    file.display(),
                    store::audit::trail_file(&file).display()
                );
                0
            }
        }
        Cmd::Anchor => {
            let key = cfg.anchor_key_bytes().context(
                "no anchor key: set STILLWATER_ANCHOR_KEY or STILLWATER_ANCHOR_KEY_FILE",
            )?;
            let path = cfg.anchor_path();
            for a in stillwater::anchors::write(&store, &key, &path).await? {
                println!(
                    "anchored the {} chain at row {} in {}",
                    a.chain,
                    a.seq,
                    path.display()
                );
            }
            0
        }
        Cmd::Verify => {
            let key = cfg.anchor_key_bytes();
            let r = stillwater::anchors::verify(
                &store,
                key.as_deref(),
                &cfg.anchor_path(),
                &cfg.audit_archive_path(),
            )
            .await?;
            for l in &r.lines {
                println!("{l}");
            }
            if r.ok {
                0
            } else {
                3
            }
        }
        Cmd::PrintDefaultConfig | Cmd::Healthcheck { .. } | Cmd::Bench(_) => 0,
    };
    store.close().await;
    Ok(code)
}

async fn user_cmd(store: &Store, cmd: UserCmd) -> anyhow::Result<i32> {
    let org = only_org(store).await?;
    match cmd {
        UserCmd::Add {
            username,
            name,
            email,
        } => {
            let username = domain::auth::parse_username(&username)
                .map_err(|e| anyhow::anyhow!("username {}", e.message))?;
            domain::patients::check_person_name(&name)
                .map_err(|m| anyhow::anyhow!("--name {m}"))?;
            let email = domain::patients::email(&email, "email")
                .map_err(|e| anyhow::anyhow!("email {}", e.message))?;
            let pw = read_password(&[username.as_str(), name.as_str()])?;
            let hash = clinic::passwords::hash_blocking(&pw).map_err(anyhow::Error::msg)?;
            let id = store
                .create_user(
                    &store::auth::NewUser {
                        org_id: org,
                        username: &username,
                        display_name: &name,
                        email: email.as_deref(),
                        password_hash: &hash,
                    },
                    cli_event(Action::UserCreate, Some(org)),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("added {username} ({id}); grant roles with `stillwater user grant`");
        }
        UserCmd::List => {
            let clinics = store.clinics_of_org(org).await?;
            for u in store.users_of_org(org).await? {
                let roles: Vec<String> = u
                    .grants
                    .iter()
                    .map(|(k, r)| {
                        format!(
                            "{}@{}",
                            r,
                            clinics
                                .iter()
                                .find(|c| c.id == *k)
                                .map(|c| c.slug.as_str())
                                .unwrap_or("?")
                        )
                    })
                    .collect();
                println!(
                    "{:<20} {:<30} {:<9} {}",
                    u.username,
                    u.display_name,
                    if u.disabled { "disabled" } else { "active" },
                    roles.join(" ")
                );
            }
        }
        UserCmd::Disable { username } => {
            let id = user_id(store, &username).await?;
            let mut ev = cli_event(Action::UserDisable, Some(org));
            ev.object_id = Some(id.to_string());
            ev.detail = Some("disabled".into());
            store.set_user_disabled(id, true, ev).await?;
            println!("disabled {username}; their sessions and tokens are ended");
        }
        UserCmd::MedicalDirector { username, off } => {
            let id = user_id(store, &username).await?;
            let mut ev = cli_event(Action::MedicalDirectorSet, Some(org));
            ev.object_id = Some(id.to_string());
            ev.detail = Some(if off { "unmarked" } else { "marked" }.into());
            store.set_medical_director(id, !off, ev).await?;
            println!(
                "{username} is {}the medical director",
                if off { "no longer " } else { "" }
            );
        }
        UserCmd::Enable { username } => {
            let id = user_id(store, &username).await?;
            let mut ev = cli_event(Action::UserDisable, Some(org));
            ev.object_id = Some(id.to_string());
            ev.detail = Some("enabled".into());
            store.set_user_disabled(id, false, ev).await?;
            println!("enabled {username}");
        }
        UserCmd::Passwd { username } => {
            let id = user_id(store, &username).await?;
            let pw = read_password(&[username.as_str()])?;
            // Not the password they have now.
            if let Some(c) = store.login_candidate(&username).await? {
                if clinic::passwords::verify_blocking(&pw, &c.password_hash) {
                    bail!("password must differ from the current one");
                }
            }
            let hash = clinic::passwords::hash_blocking(&pw).map_err(anyhow::Error::msg)?;
            store
                .set_password(id, &hash, cli_event(Action::PasswordChange, Some(org)))
                .await?;
            println!("password changed for {username}; their sessions are ended");
        }
        UserCmd::Grant {
            username,
            clinic,
            role,
        } => {
            let id = user_id(store, &username).await?;
            let k = clinic_ref(store, org, &clinic).await?;
            let role: Role = role
                .parse()
                .map_err(|e: domain::FieldError| anyhow::anyhow!("role {}", e.message))?;
            let mut ev = cli_event(Action::RoleGrant, Some(org));
            ev.clinic_id = Some(k.to_string());
            ev.object_id = Some(id.to_string());
            ev.detail = Some(format!("granted {role}"));
            store.grant_role(id, k, role, None, ev).await?;
            println!("granted {role} at {clinic} to {username}");
        }
        UserCmd::Revoke {
            username,
            clinic,
            role,
        } => {
            let id = user_id(store, &username).await?;
            let k = clinic_ref(store, org, &clinic).await?;
            let role: Role = role
                .parse()
                .map_err(|e: domain::FieldError| anyhow::anyhow!("role {}", e.message))?;
            let mut ev = cli_event(Action::RoleRevoke, Some(org));
            ev.clinic_id = Some(k.to_string());
            ev.object_id = Some(id.to_string());
            ev.detail = Some(format!("revoked {role}"));
            store.revoke_role(id, k, role, ev).await?;
            println!("revoked {role} at {clinic} from {username}");
        }
        UserCmd::Totp { username } => {
            let id = user_id(store, &username).await?;
            let (secret, url) = clinic::actor::new_totp(&username);
            store
                .set_totp_secret(id, Some(&secret), cli_event(Action::TotpEnable, Some(org)))
                .await?;
            println!("two-step sign-in is on for {username}");
            println!("key: {secret}");
            println!("url: {url}");
        }
    }
    Ok(0)
}

async fn token_cmd(store: &Store, cmd: TokenCmd) -> anyhow::Result<i32> {
    let org = only_org(store).await?;
    match cmd {
        TokenCmd::Create {
            name,
            user,
            device_clinic,
        } => {
            let token = format!("sw_{}", clinic::actor::random_token(32));
            let hash = clinic::actor::secret_hash(&token);
            let (u, k) = match (user, device_clinic) {
                (Some(u), None) => (Some(user_id(store, &u).await?), None),
                (None, Some(c)) => (None, Some(clinic_ref(store, org, &c).await?)),
                _ => bail!("give either --user USERNAME or --device-clinic CLINIC"),
            };
            let id = store
                .create_token(
                    &name,
                    u,
                    k,
                    &hash,
                    None,
                    cli_event(Action::TokenCreate, Some(org)),
                )
                .await?;
            println!("token id: {id}");
            println!("token:    {token}");
            println!(
                "Store it now: it is shown only once. Send it as `Authorization: Bearer <token>`."
            );
        }
        TokenCmd::Revoke { id } => {
            let id: domain::ids::TokenId =
                id.parse().map_err(|_| anyhow::anyhow!("not a token id"))?;
            let mut ev = cli_event(Action::TokenRevoke, Some(org));
            ev.object_type = Some("api_token".into());
            ev.object_id = Some(id.to_string());
            store
                .revoke_token(id, ev)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("revoked {id}");
        }
        TokenCmd::List => {
            for t in store.tokens().await? {
                println!(
                    "{}  {:<7} {:<24} {}",
                    t.id,
                    t.kind,
                    t.name,
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
        }
    }
    Ok(0)
}
