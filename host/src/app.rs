//! The running process: opens the store, loads the master key, binds the public and admin
//! listeners and runs them until shutdown. [`Server::start`] is what `polypay serve` and
//! the end-to-end tests both call, so the tests exercise the real wiring.
//!
//! Secrets are never made up in production (`mode = "production"`, the default): without
//! a configured master key or admin token the process refuses to start and says which
//! setting to add. A generated master key next to the database would put the key and the
//! ciphertexts it protects into the same backup. Development mode generates both into the
//! data directory, with a warning.
//!
//! Shutdown is one app-wide [`CancellationToken`] (`AppContext::shutdown`): the listeners
//! stop accepting and drain, open checkout streams end, workers and chain listeners stop.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mode, Secret};
use crate::http::checkout::CheckoutFeed;
use crate::merchant::{MasterKey, Merchants};
use crate::plugin::{PluginRuntime, PluginServices};
use crate::store::Store;

/// What every request handler and worker shares.
#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub store: Store,
    pub merchants: Merchants,
    /// The checkout page's live feed (one watcher per followed invoice).
    pub checkout: CheckoutFeed,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// The singleton roles (chain listeners, expiry) this instance competes for.
    pub roles: crate::leader::Roles,
    /// Database notifications (PostgreSQL): new outbox events, invoice changes.
    pub wakeups: crate::store::notify::Wakeups,
}

/// Opens the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    Store::open(&url, config.database.max_connections)
        .await
        .with_context(|| format!("opening database {}", redact_url(&url)))
}

/// The master key from `secrets.master_key`, `secrets.master_key_file`, or — neither set,
/// development mode only — `<data_dir>/master.key`, generated on first start with a
/// warning.
pub fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(hex) = &config.secrets.master_key {
        return MasterKey::from_hex(hex.expose())
            .map_err(|e| anyhow::anyhow!("secrets.master_key: {e}"));
    }
    if let Some(path) = &config.secrets.master_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("secrets.master_key_file: reading {}", path.display()))?;
        return MasterKey::from_hex(&text)
            .map_err(|e| anyhow::anyhow!("secrets.master_key_file {}: {e}", path.display()));
    }
    let path = config.data_dir.join("master.key");
    if config.mode != Mode::Development {
        anyhow::bail!(
            "no master key configured: set secrets.master_key (or POLYPAY_SECRETS__MASTER_KEY, \
             64 hex characters, e.g. from `openssl rand -hex 32`) or secrets.master_key_file, \
             and keep a backup of it apart from the database. polypay generates one into the \
             data directory only with mode = \"development\". An installation that used the \
             generated {} so far sets secrets.master_key_file to that file (better: moves it \
             away from the data directory first).",
            path.display()
        );
    }
    let (key, created) = MasterKey::load_or_generate(&path)?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "generated a new master key for merchant secrets (development mode); \
             production needs secrets.master_key or secrets.master_key_file, with a backup"
        );
    }
    Ok(key)
}

/// The admin listener's bearer token from `admin.token`, `admin.token_file`, or — neither
/// set, development mode only — `<data_dir>/admin.token`, generated on first start.
pub fn load_admin_token(config: &Config) -> anyhow::Result<Secret> {
    if let Some(token) = &config.admin.token {
        return Ok(token.clone());
    }
    let checked = |text: String, origin: String| {
        crate::config::check_admin_token(&text)
            .map(|()| Secret::new(text))
            .map_err(|e| anyhow::anyhow!("{origin}: the admin token {e}"))
    };
    if let Some(path) = &config.admin.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("admin.token_file: reading {}", path.display()))?;
        return checked(
            text.trim().to_string(),
            format!("admin.token_file {}", path.display()),
        );
    }
    let path = config.data_dir.join("admin.token");
    if config.mode != Mode::Development {
        anyhow::bail!(
            "no admin token configured: set admin.token (or POLYPAY_ADMIN__TOKEN, at least {} \
             characters, e.g. from `openssl rand -hex 32`) or admin.token_file; every admin \
             request but /healthz and /readyz must then send `Authorization: Bearer <token>`. \
             polypay generates one into the data directory only with mode = \"development\".",
            crate::config::MIN_ADMIN_TOKEN_LEN
        );
    }
    let (text, created) =
        crate::merchant::read_or_create_secret_file(&path, MasterKey::generate_hex)
            .with_context(|| format!("the development admin token {}", path.display()))?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "generated an admin token (development mode): send it as `Authorization: Bearer …` \
             to the admin API"
        );
    }
    checked(text, path.display().to_string())
}

/// Builds the shared context: store (migrated) and merchants with the master key.
pub async fn context(config: Config) -> anyhow::Result<AppContext> {
    // Refuse before touching the database: a missing key is a configuration error.
    let key = load_master_key(&config)?;
    context_with_key(config, key).await
}

async fn context_with_key(config: Config, key: MasterKey) -> anyhow::Result<AppContext> {
    let store = open_store(&config).await?;
    let shutdown = CancellationToken::new();
    let wakeups = crate::store::notify::Wakeups::new();
    Ok(AppContext {
        checkout: CheckoutFeed::new(
            store.clone(),
            config.chains.clone(),
            config.dev_wallet().is_some(),
            &config.checkout,
            shutdown.clone(),
        )
        .with_wakeups(wakeups.clone()),
        config: Arc::new(config),
        merchants: Merchants::new(store.clone(), key),
        store,
        shutdown,
        roles: crate::leader::Roles::default(),
        wakeups,
    })
}

/// Loads the configured plugins against the store, refusing any that claims a path the
/// host serves itself.
pub async fn load_plugins(context: &AppContext) -> anyhow::Result<PluginRuntime> {
    let services = PluginServices::new(context.config.public_base_url.clone())
        .with_storage(context.store.clone(), context.merchants.clone())
        .with_two_factor(crate::two_factor::TwoFactor::new(
            context.store.clone(),
            context.merchants.master_key().clone(),
            context.config.two_factor.clone(),
            context
                .config
                .two_factor
                .delivery(context.config.mode == crate::config::Mode::Development),
        ))
        .with_chains(context.config.chains.clone())
        .with_rates(std::sync::Arc::new(
            crate::rates::Rates::new(&context.config.rates)
                .map_err(|e| anyhow::anyhow!("rates: {e}"))?,
        ));
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

/// Hides the password of a database URL for logs and errors: the one in the user info
/// and any `password=` query parameter.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &base[..scheme + 3], user, &base[at..])
        }
        _ => base.to_string(),
    };
    let Some(query) = query else {
        return base;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// A running polypay server.
pub struct Server {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub context: AppContext,
    /// The mounted plugins (their routes, fault and overload counts).
    pub plugins: PluginRuntime,
    /// Stops the webhook workers (which take a watch channel).
    workers_stop: watch::Sender<bool>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Server {
    /// Opens everything and starts serving. Addresses with port 0 get a free port; the
    /// bound addresses are in `public_addr` and `admin_addr`.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        // Install the metrics recorder before anything records.
        crate::telemetry::metrics_handle();
        // Both secrets are checked before anything else, and both problems told at once.
        let (key, admin_token) = match (load_master_key(&config), load_admin_token(&config)) {
            (Ok(key), Ok(token)) => (key, token),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
            (Err(key), Err(token)) => anyhow::bail!("{key:#}\n{token:#}"),
        };
        let context = context_with_key(config, key).await?;
        let config = context.config.clone();
        let public = TcpListener::bind(config.listen.public)
            .await
            .with_context(|| {
                format!(
                    "binding the public listener (listen.public = {})",
                    config.listen.public
                )
            })?;
        let admin = TcpListener::bind(config.listen.admin)
            .await
            .with_context(|| {
                format!(
                    "binding the admin listener (listen.admin = {})",
                    config.listen.admin
                )
            })?;
        let (public_addr, admin_addr) = (public.local_addr()?, admin.local_addr()?);
        if !admin_addr.ip().is_loopback() {
            tracing::warn!(
                %admin_addr,
                "the admin listener is bound to a non-loopback address: only the admin token \
                 protects the operator API there; prefer 127.0.0.1 or a private network"
            );
        }
        let plugins = load_plugins(&context).await?;
        let shutdown = context.shutdown.clone();
        let mut tasks = JoinSet::new();
        let access = crate::http::admin::AdminAccess::new(admin_token, &config.admin.allowed_hosts);
        let limits = crate::http::serve::ConnectionLimits::from(&config.http);
        for (listener, router, name) in [
            (
                public,
                crate::http::public_router(
                    context.clone(),
                    plugins
                        .router()
                        .merge(crate::http::plugin_docs::router(
                            &plugins,
                            &context.config.public_base_url,
                        ))
                        .with_state(()),
                ),
                "public",
            ),
            (
                admin,
                crate::http::admin::router(context.clone(), access),
                "admin",
            ),
        ] {
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                crate::http::serve::serve(listener, router, name, limits, shutdown).await;
                Ok(())
            });
        }
        // Plugin maintenance: expired key-value entries, idle rate-limit buckets.
        let maintenance = plugins.clone();
        let interval =
            std::time::Duration::from_millis(context.config.plugin_runtime.maintenance_interval_ms);
        let stop = shutdown.clone().cancelled_owned();
        tasks.spawn(async move {
            maintenance.maintain(interval, stop).await;
            Ok(())
        });
        // Freed heap memory back to the kernel (`crate::memory`).
        let trim_every = context.config.plugin_runtime.memory_trim_interval_ms;
        if trim_every > 0 {
            let stop = shutdown.clone().cancelled_owned();
            tasks.spawn(async move {
                crate::memory::trim_periodically(
                    std::time::Duration::from_millis(trim_every),
                    stop,
                )
                .await;
                Ok(())
            });
        }
        // Webhook delivery: each attempt is rendered by the plugin that owns the event.
        let renderer: Arc<dyn crate::webhook::WebhookRenderer> = Arc::new(plugins.clone());
        let webhooks = crate::webhook::Dispatcher::new(
            context.store.clone(),
            config.webhooks.clone(),
            renderer,
        )
        .map_err(|e| anyhow::anyhow!("webhooks: {e}"))?
        .wake_on(context.wakeups.outbox());
        // Notifications from the database wake the workers and checkout streams of every
        // instance (PostgreSQL; see `crate::store::notify`).
        if context.store.backend() == crate::store::Backend::Postgres && config.database.notify {
            let (wakeups, url, stop) = (
                context.wakeups.clone(),
                config.database_url(),
                shutdown.clone(),
            );
            tasks.spawn(async move {
                wakeups.listen(url, stop).await;
                Ok(())
            });
        }
        let (workers_stop, stop) = watch::channel(false);
        tasks.spawn(async move {
            Arc::new(webhooks).run(stop).await;
            Ok(())
        });
        // Chain listeners (one per `[[chains]]` entry) and the expiry scheduler, each run
        // by whichever instance leads its role (see `crate::leader`). A listener is built
        // afresh for each term, from the cursor as the previous leader left it.
        crate::chain::listeners(&config.chains, &context.store)
            .map_err(|e| anyhow::anyhow!("chains: {e}"))?;
        let election = crate::leader::Election::new(context.store.clone(), context.roles.clone());
        for chain in config.chains.clone() {
            let (election, store, shutdown) =
                (election.clone(), context.store.clone(), shutdown.clone());
            tasks.spawn(async move {
                let role = crate::leader::chain_role(&chain.name);
                election
                    .run(&role, shutdown, |term| {
                        let listener =
                            crate::chain::listeners(std::slice::from_ref(&chain), &store)
                                .ok()
                                .and_then(|mut l| l.pop());
                        async move {
                            if let Some(listener) = listener {
                                listener.run(term.cancelled_owned()).await;
                            }
                        }
                    })
                    .await;
                Ok(())
            });
        }
        let (store, stop) = (context.store.clone(), shutdown.clone());
        tasks.spawn(async move {
            election
                .run(crate::leader::EXPIRY_ROLE, stop, |term| {
                    crate::matcher::expiry::ExpiryScheduler::new(store.clone())
                        .run(term.cancelled_owned())
                })
                .await;
            Ok(())
        });
        // Ledger orders past their expiry (custodial dialects). Safe on every instance:
        // each expiry re-checks the order under its row lock.
        let (ledger, stop) = (
            crate::ledger::Ledger::new(context.store.clone()),
            shutdown.clone().cancelled_owned(),
        );
        tasks.spawn(async move {
            ledger
                .run_expiry(std::time::Duration::from_secs(1), stop)
                .await;
            Ok(())
        });
        tracing::info!(%public_addr, %admin_addr, mode = ?config.mode, database = %redact_url(&config.database_url()), "polypay started");
        Ok(Server {
            public_addr,
            admin_addr,
            context,
            plugins,
            workers_stop,
            tasks,
        })
    }

    fn stop(&self) {
        self.context.shutdown.cancel();
        let _ = self.workers_stop.send(true);
    }

    /// Stops accepting, lets in-flight requests finish, and waits for every task.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop();
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
            self.stop();
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

    #[test]
    fn password_query_parameters_are_redacted() {
        assert_eq!(
            redact_url("postgres://db.internal/polypay?user=pay&password=hunter2&sslmode=require"),
            "postgres://db.internal/polypay?user=pay&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h/db?PASSWORD=x"),
            "postgres://u:***@h/db?PASSWORD=***"
        );
    }
}
