//! Starting and stopping the server: open and migrate the store, serve the
//! app and (separately) the metrics, stop gracefully on Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use store::{Store, StoreConfig};
use tokio::net::TcpListener;

use crate::config::Config;

pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    if !cfg.is_postgres() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data folder {}", cfg.data_dir.display()))?;
    }
    let store = Store::connect(&StoreConfig {
        url: cfg.store_url(),
        max_connections: cfg.max_connections,
        clock: domain::time::Clock::system(),
    })
    .await
    .context("opening the database")?;
    if let Some(owner) = cfg.owner_url() {
        // The owner migrates and grants; the app's role owns nothing.
        let role = store
            .pg_role()
            .await?
            .context("the owner URL is for PostgreSQL")?;
        store::roles::migrate_as_owner(&owner, &role)
            .await
            .context("migrating the database as owner_database_url's role")?;
    } else if !cfg.is_postgres() || store.pending_migrations().await? > 0 {
        store.migrate().await.context(
            "migrating the database (on PostgreSQL, set owner_database_url when the app's role may not change the schema)",
        )?;
    }
    Ok(store)
}

/// A running server: its address and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds and serves in the background.
pub async fn start(store: Store, cfg: &Config) -> anyhow::Result<Running> {
    let mailer = cfg.mailer().map_err(anyhow::Error::msg)?;
    let anchored = store.clone();
    let clinic = clinic::Clinic::new(store, cfg.clinic())
        .with_mailer(mailer)
        .with_instruments(cfg.instruments()?)
        .with_protocols(cfg.protocols()?, cfg.protocol_files()?);
    // Versions added by admins (stored in the database) join the files.
    clinic::protocols::reload(&clinic)
        .await
        .map_err(|e| anyhow::anyhow!("loading the stored protocol versions: {e:?}"))?;
    let state = web::AppState::new(clinic.clone(), cfg.web());
    let listener = TcpListener::bind(&cfg.bind)
        .await
        .with_context(|| format!("binding {}", cfg.bind))?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let metrics_addr = if cfg.metrics_bind.is_empty() {
        None
    } else {
        let ml = TcpListener::bind(&cfg.metrics_bind)
            .await
            .with_context(|| format!("binding metrics listener {}", cfg.metrics_bind))?;
        let maddr = ml.local_addr()?;
        let metrics = state.metrics().clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = metrics.clone();
                async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
            }),
        );
        let mut s2 = stop.subscribe();
        tokio::spawn(async move {
            let _ = axum::serve(ml, app)
                .with_graceful_shutdown(async move {
                    let _ = s2.wait_for(|v| *v).await;
                })
                .await;
        });
        Some(maddr)
    };
    // Several instances on PostgreSQL: floor events travel between them.
    clinic::treatment::start_fanout(&clinic, stop.subscribe());
    // The chains' heads, signed and kept outside the database.
    if let Some(key) = cfg.anchor_key_bytes() {
        crate::anchors::start(
            anchored,
            key,
            cfg.anchor_path(),
            cfg.anchor_every_minutes,
            stop.subscribe(),
        );
    }
    clinic::outbox::spawn_worker(
        clinic.clone(),
        std::time::Duration::from_secs(cfg.outbox_interval_secs),
        stop.subscribe(),
    );
    let app = web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|v| *v).await;
            })
            .await
    });
    Ok(Running {
        addr,
        metrics_addr,
        stop,
        task,
    })
}

/// Serves until Ctrl-C or SIGTERM, then drains the audit writer.
pub async fn serve_forever(store: Store, cfg: &Config) -> anyhow::Result<()> {
    let running = start(store.clone(), cfg).await?;
    tracing::info!(addr = %running.addr, metrics = ?running.metrics_addr, backend = ?store.backend(), "Stillwater is ready");
    shutdown_signal().await;
    tracing::info!("stopping");
    running.stop().await;
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

impl Running {
    /// Waits for Ctrl-C or SIGTERM, then stops.
    pub async fn stop_on_signal(self) {
        shutdown_signal().await;
        self.stop().await;
    }
}
