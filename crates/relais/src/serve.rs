//! `relais serve`.

use crate::config::Config;
use anyhow::Context;
use relais_core::clock::{Clock, SystemClock};
use relais_engine::tenants::{Bootstrap, bootstrap};
use relais_server::{AppState, HttpSettings};
use std::path::Path;
use std::sync::Arc;

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = relais_store::open(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the store at {}",
                relais_store::redact_url(&config.database_url)
            )
        })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match bootstrap(&*store, config.admin_key.as_deref(), clock.now()).await? {
        Bootstrap::Created(key) => {
            let path = write_admin_key(&config.data_dir, &key.secret)?;
            println!("Relais created tenant `default` and its operator API key. It is shown once:");
            println!();
            println!("    {}", key.secret);
            println!();
            println!("It is also in {} (mode 0600).", path.display());
        }
        Bootstrap::PresetRegistered => {
            write_admin_key(
                &config.data_dir,
                config.admin_key.as_deref().unwrap_or_default(),
            )?;
            tracing::info!("registered the admin key from RELAIS_ADMIN_KEY");
        }
        Bootstrap::AlreadyDone => {}
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let settings = HttpSettings {
        json_body_limit: config.json_body_limit,
        import_body_limit: config.import_body_limit,
        default_country: config.country(),
    };
    let state = AppState::new(store.clone(), clock, settings, metrics);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %relais_store::redact_url(&config.database_url), "relais is listening");
    println!("Relais listening on http://{addr} (API docs at http://{addr}/docs)");
    let dispatcher = relais_engine::dispatch::spawn_dispatcher(
        store.clone(),
        state.clock.clone(),
        relais_engine::dispatch::DispatcherConfig::default(),
    );
    relais_server::serve(listener, state, shutdown_signal()).await?;
    dispatcher.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn write_admin_key(dir: &Path, secret: &str) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("admin-api-key");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    Ok(path)
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
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
