//! The running process: opens the store, loads the master key, binds the public and admin
//! listeners and runs them until shutdown. [`Server::start`] is what `polypay serve` and
//! the end-to-end tests both call, so the tests exercise the real wiring.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::merchant::{MasterKey, Merchants};
use crate::plugin::{PluginRuntime, PluginServices};
use crate::store::Store;

/// What every request handler and worker shares.
#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub store: Store,
    pub merchants: Merchants,
}

/// Opens the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    Store::open(&url, config.database.max_connections)
        .await
        .with_context(|| format!("opening database {}", redact_url(&url)))
}

/// The master key from `secrets.master_key`, `secrets.master_key_file`, or — neither set —
/// `<data_dir>/master.key`, generated on first start with a warning.
pub fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(hex) = &config.secrets.master_key {
        return MasterKey::from_hex(hex).map_err(|e| anyhow::anyhow!("secrets.master_key: {e}"));
    }
    if let Some(path) = &config.secrets.master_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("secrets.master_key_file: reading {}", path.display()))?;
        return MasterKey::from_hex(&text)
            .map_err(|e| anyhow::anyhow!("secrets.master_key_file {}: {e}", path.display()));
    }
    let path = config.data_dir.join("master.key");
    let (key, created) = MasterKey::load_or_generate(&path)?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "generated a new master key for merchant secrets; this is meant for development: \
             set secrets.master_key (or POLYPAY_SECRETS__MASTER_KEY) in production and keep a backup, \
             secrets cannot be decrypted without it"
        );
    }
    Ok(key)
}

/// Builds the shared context: store (migrated) and merchants with the master key.
pub async fn context(config: Config) -> anyhow::Result<AppContext> {
    let store = open_store(&config).await?;
    let key = load_master_key(&config)?;
    Ok(AppContext {
        config: Arc::new(config),
        merchants: Merchants::new(store.clone(), key),
        store,
    })
}

/// Loads the configured plugins against the store, refusing any that claims a path the
/// host serves itself.
pub async fn load_plugins(context: &AppContext) -> anyhow::Result<PluginRuntime> {
    let services = PluginServices::new(context.config.public_base_url.clone())
        .with_storage(context.store.clone(), context.merchants.clone())
        .with_chains(context.config.chains.clone());
    let runtime = PluginRuntime::load(&context.config.plugins, services)
        .await
        .map_err(|e| anyhow::anyhow!("plugins: {e}"))?;
    for plugin in runtime.plugins() {
        for (method, path) in &plugin.routes {
            if let Some(prefix) = crate::http::HOST_PUBLIC_PREFIXES
                .iter()
                .find(|p| path.starts_with(**p))
            {
                anyhow::bail!(
                    "plugins: plugin `{}` claims {method} {path}, but the host serves everything under {prefix}",
                    plugin.name
                );
            }
        }
        tracing::info!(plugin = %plugin.name, version = %plugin.manifest.version, routes = plugin.routes.len(), "plugin mounted");
    }
    Ok(runtime)
}

/// Hides the password of a database URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A running polypay server.
pub struct Server {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub context: AppContext,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Server {
    /// Opens everything and starts serving. Addresses with port 0 get a free port; the
    /// bound addresses are in `public_addr` and `admin_addr`.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        // Install the metrics recorder before anything records.
        crate::telemetry::metrics_handle();
        let context = context(config).await?;
        let public = TcpListener::bind(context.config.listen.public)
            .await
            .with_context(|| {
                format!(
                    "binding the public listener (listen.public = {})",
                    context.config.listen.public
                )
            })?;
        let admin = TcpListener::bind(context.config.listen.admin)
            .await
            .with_context(|| {
                format!(
                    "binding the admin listener (listen.admin = {})",
                    context.config.listen.admin
                )
            })?;
        let (public_addr, admin_addr) = (public.local_addr()?, admin.local_addr()?);
        let plugins = load_plugins(&context).await?;
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (listener, router) in [
            (
                public,
                crate::http::public_router(context.clone(), plugins.router().with_state(())),
            ),
            (admin, crate::http::admin::router(context.clone())),
        ] {
            let mut stop = shutdown.subscribe();
            tasks.spawn(async move {
                // Peer addresses reach plugins (per-IP rate limits).
                let service = router.into_make_service_with_connect_info::<SocketAddr>();
                axum::serve(listener, service)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    })
                    .await
                    .context("serving HTTP")
            });
        }
        // Webhook delivery: each attempt is rendered by the plugin that owns the event.
        let renderer: Arc<dyn crate::webhook::WebhookRenderer> = Arc::new(plugins.clone());
        let webhooks = crate::webhook::Dispatcher::new(
            context.store.clone(),
            context.config.webhooks.clone(),
            renderer,
        )
        .map_err(|e| anyhow::anyhow!("webhooks: {e}"))?;
        let stop = shutdown.subscribe();
        tasks.spawn(async move {
            Arc::new(webhooks).run(stop).await;
            Ok(())
        });
        // Chain listeners (one per `[[chains]]` entry) and the expiry scheduler.
        let listeners = crate::chain::evm_listeners(&context.config.chains, &context.store)
            .map_err(|e| anyhow::anyhow!("chains: {e}"))?;
        for listener in listeners {
            let mut stop = shutdown.subscribe();
            tasks.spawn(async move {
                listener
                    .run(async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    })
                    .await;
                Ok(())
            });
        }
        let expiry = crate::matcher::expiry::ExpiryScheduler::new(context.store.clone());
        let mut stop = shutdown.subscribe();
        tasks.spawn(async move {
            expiry
                .run(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
                .await;
            Ok(())
        });
        tracing::info!(%public_addr, %admin_addr, database = %redact_url(&context.config.database_url()), "polypay started");
        Ok(Server {
            public_addr,
            admin_addr,
            context,
            shutdown,
            tasks,
        })
    }

    /// Stops accepting, lets in-flight requests finish, and waits for every task.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        while let Some(result) = self.tasks.join_next().await {
            result.context("server task panicked")??;
        }
        self.context.store.close().await;
        Ok(())
    }

    /// Runs until SIGINT/SIGTERM or until a task fails, then shuts down.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        let signals = ShutdownSignals::install().context("installing signal handlers")?;
        self.run_until(signals).await
    }

    /// Runs until one of `signals` arrives (or arrived since they were installed) or until
    /// a task fails, then shuts down.
    pub async fn run_until(mut self, mut signals: ShutdownSignals) -> anyhow::Result<()> {
        let failed = tokio::select! {
            _ = signals.recv() => None,
            Some(result) = self.tasks.join_next() => Some(result),
        };
        if let Some(result) = failed {
            let _ = self.shutdown.send(true);
            result.context("server task panicked")??;
            anyhow::bail!("a server task stopped unexpectedly");
        }
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, caught from the moment [`ShutdownSignals::install`]
/// returns: a signal that arrives before anyone waits for it is kept, not lost (nor does
/// it kill the process, nor is it ignored because the shell started it in the background).
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn install() -> std::io::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// Waits for the next signal.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_url_password_is_redacted() {
        assert_eq!(
            redact_url("postgres://user:pw@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(
            redact_url("sqlite://./data/polypay.db"),
            "sqlite://./data/polypay.db"
        );
    }
}
