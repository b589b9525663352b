//! Storage: one [`Store`] over sqlx's `Any` driver, backed by SQLite (embedded default,
//! WAL) or PostgreSQL (selected by a `postgres://` URL).
//!
//! Both backends run the same SQL text. That works because the schema keeps to portable
//! types (see `migrations/*/0001_initial.sql`): ids and money are TEXT (money as base-unit
//! decimal strings, compared and summed in Rust with exact integers), timestamps are 64-bit
//! unix milliseconds, JSON is TEXT, and flags are integers 0/1 read and written through
//! [`flag`] and [`read_flag`] (the Any driver maps no boolean type on SQLite; binding a Rust
//! `bool` would work on one backend only). Placeholders are `$1, $2, …` written in
//! ascending order, which SQLite binds positionally too; the multi-row statements of
//! `placeholder_rows` write anonymous `?` on SQLite (see there why). The few statements
//! that differ (row locking on PostgreSQL, the JSON functions of `batch`) branch on
//! [`Backend`].
//!
//! Transactions on SQLite begin with `BEGIN IMMEDIATE`: a deferred transaction that reads
//! and then writes can fail with "database is locked" when another connection wrote in
//! between, whereas an immediate one waits for the write lock (busy timeout) up front.
//!
//! SQLite admits one write transaction at a time, and a connection that finds the write
//! lock taken waits in SQLite's busy handler, which sleeps and polls (sleeps growing to
//! 100 ms): under concurrent writes a waiting transaction sleeps on long after the lock
//! was freed, later arrivals may take it first, and one that keeps missing it fails after
//! the busy timeout. So on SQLite every write transaction ([`Store::begin`]) and every
//! single-statement write ([`Store::writer`]) runs on one dedicated connection, the
//! writer: concurrent writers wait in the pool's queue, in order, and each begins as soon
//! as the one before it ends. Reads use the other connections (WAL: a reader never waits
//! for the writer). The busy handler still arbitrates against other processes on the
//! same file (a `polypay` CLI command while the server runs).
//!
//! SQLite runs with `synchronous = NORMAL` (in WAL mode): a commit is durable once it
//! returns against a crash of the process, and the database stays consistent through a
//! power loss or an OS crash, which may however roll back the transactions committed in
//! the moments before it (the WAL is synced at checkpoints, not at every commit). Every
//! state change commits with its outbox event, so such a rollback loses both together;
//! chain facts are read again from the rolled-back listener cursor, and callbacks are
//! delivered at least once anyway. What can be lost is the last invoices created (and
//! answered) before the power failed. `FULL` (a WAL sync per commit) bounds the embedded
//! database to one commit per disk flush, a few hundred per second on ordinary disks; a
//! deployment that must keep every answered write through a power loss uses PostgreSQL,
//! which syncs each commit and groups concurrent ones.
//!
//! Write deadlines: code that must not commit late (a plugin's host call, whose request
//! is answered "overloaded, nothing done" once its wall passes) runs inside
//! [`with_write_deadline`]. [`Store::begin`] then gives up waiting for a connection and for
//! the write lock at the deadline (sqlx rolls back a `BEGIN` that completes after its caller
//! stopped waiting), and on PostgreSQL bounds the transaction's own lock waits and
//! statements with `SET LOCAL lock_timeout` / `statement_timeout`. A transaction so bounded
//! either commits before the deadline or fails having written nothing.
//!
//! The store is plain queries over the domain types of [`crate::invoice`] (and its own row
//! types): which change to make is decided elsewhere (the invoice service, the matcher,
//! the webhook worker), never here. Queries live beside the domain they serve:
//! [`merchants`] (merchants and credentials), [`invoices`] (invoices, payment targets,
//! credits and the outbox events of invoice changes), [`chain_queries`] (listener cursors,
//! block hashes, observed transfers, reservations), [`outbox`] (webhook delivery),
//! [`plugin_queries`] (what plugins read), [`kv`] (the plugin-scoped key-value store),
//! [`two_factor`] (TOTP seeds, one-time code challenges, failure counts). `batch` runs
//! the lookups of a whole batch of keys as one statement with the keys in one JSON
//! parameter (the chain listeners' and the matcher's).

mod batch;
pub mod chain_queries;
pub mod invoices;
pub mod kv;
pub mod merchants;
pub mod notify;
pub mod outbox;
pub mod plugin_queries;
pub mod two_factor;

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A transaction on the store.
pub type Tx = sqlx::Transaction<'static, Any>;

/// The storage of one polypay deployment. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Where writes run: on SQLite a pool of one connection (see the module docs), on
    /// PostgreSQL the same pool as reads.
    writer: AnyPool,
    backend: Backend,
}

/// Storage failures. A caller-caused conflict has its own variant; the rest are
/// infrastructure errors that become logged 500s.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database could not take the write before its deadline")]
    WriteDeadline,
}

tokio::task_local! {
    static WRITE_DEADLINE: Instant;
}

/// How far past a write deadline a refused write fails, so that its caller observes the
/// refusal after the deadline, never a moment before it.
const WRITE_DEADLINE_MARGIN: Duration = Duration::from_millis(20);

/// Runs `f` with a deadline for the write transactions it begins (see the module docs).
pub async fn with_write_deadline<F: std::future::Future>(deadline: Instant, f: F) -> F::Output {
    WRITE_DEADLINE.scope(deadline, f).await
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error() {
            Some(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_string()),
            _ => StoreError::Database(e),
        }
    }
}

/// Current time as unix milliseconds, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix ms as `2026-01-02T03:04:05Z` (UTC, to the second), for people.
pub fn utc_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

impl Store {
    /// Connects to `url`. For SQLite the file (and its directory) is created when missing
    /// and switched to WAL.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let url = sqlite_url_creating_dir(url)?;
                // A connection to a local file cannot be lost: no liveness round trip to
                // the connection's worker thread on every acquire.
                let sqlite = |options: AnyPoolOptions| {
                    options.test_before_acquire(false).after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            Ok(())
                        })
                    })
                };
                // The writer first: it switches a new file to WAL before readers open it.
                let writer = sqlite(options.clone().max_connections(1))
                    .connect(&url)
                    .await?;
                let pool = sqlite(options.max_connections(max_connections.clamp(1, 8)))
                    .connect(&url)
                    .await?;
                (pool, writer)
            }
            Backend::Postgres => {
                let pool = options
                    .max_connections(max_connections.max(1))
                    .connect(url)
                    .await?;
                (pool.clone(), pool)
            }
        };
        Ok(Store {
            pool,
            writer,
            backend,
        })
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let store = Store::connect(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Connections for reads (and, on PostgreSQL, writes).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where a single-statement write (no transaction) runs: on SQLite the writer
    /// connection, so that it queues with the write transactions instead of polling for
    /// the lock (see the module docs).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every migration not yet applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Versions of embedded migrations that the database has not applied successfully.
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let applied: Vec<i64> = match sqlx::query_scalar::<_, i64>(
            "SELECT version FROM _sqlx_migrations WHERE success",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(versions) => versions,
            // No migrations table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(self
            .migrator()
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    /// Reads an invoice.
    pub async fn invoice(&self, id: &str) -> Result<Option<crate::invoice::Invoice>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        invoices::get(&mut conn, id).await
    }

    /// A trivial round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite), bounded by the write
    /// deadline of the calling task if it has one (see the module docs).
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        match WRITE_DEADLINE.try_with(|d| *d) {
            Ok(deadline) => self.begin_by(deadline + WRITE_DEADLINE_MARGIN).await,
            Err(_) => self.begin_unbounded().await,
        }
    }

    async fn begin_unbounded(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    async fn begin_by(&self, until: Instant) -> Result<Tx, StoreError> {
        // Dropping a pending acquire or BEGIN is safe: sqlx rolls back a BEGIN that
        // completes after nobody waits for it any more.
        let mut tx = tokio::time::timeout_at(until.into(), self.begin_unbounded())
            .await
            .map_err(|_| StoreError::WriteDeadline)??;
        if self.backend == Backend::Postgres {
            let left = until
                .saturating_duration_since(Instant::now())
                .as_millis()
                .max(1);
            for setting in ["lock_timeout", "statement_timeout"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL {setting} = {left}")))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(tx)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Adds `mode=rwc` so SQLite creates the file, and creates its directory.
fn sqlite_url_creating_dir(url: &str) -> Result<String, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Bound parameters one batched statement carries at most: SQLite's limit
/// (`SQLITE_MAX_VARIABLE_NUMBER`, 32 766 in every SQLite since 3.32, which sqlx bundles);
/// PostgreSQL's protocol allows 65 535. A longer batch is cut into several statements.
const MAX_BIND_PARAMS: usize = 32_766;

/// `($1, $2), ($3, $4), …`: `rows` rows of `columns` placeholders each, in ascending
/// order. On SQLite they are written as anonymous `?`, which binds the same way (the
/// N-th `?` is parameter N) in constant time per parameter. A numbered one costs time
/// linear in the statement's parameter count twice over: SQLite resolves `$N` by a linear
/// search of the names before it when it prepares the statement, and sqlx asks SQLite the
/// name of every parameter it binds (`sqlite3_bind_parameter_name`, a linear walk of the
/// statement's names), so a statement of 832 numbered parameters spent 40% of the
/// matcher's time in that call (BENCHMARKS.md, "Matcher throughput").
pub(crate) fn placeholder_rows(backend: Backend, rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 7);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push_str(", ");
            }
            match backend {
                Backend::Sqlite => text.push('?'),
                Backend::Postgres => {
                    text.push('$');
                    text.push_str(&(row * columns + column + 1).to_string());
                }
            }
        }
        text.push(')');
    }
    text
}

/// The backend a transaction runs on.
pub(crate) fn backend_of(tx: &Tx) -> Backend {
    if tx.backend_name().eq_ignore_ascii_case("postgresql") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Rows one batched statement carries at most on SQLite. Preparing a statement costs time
/// linear in its length there (about 15 µs a row for a `VALUES` list, more than the index
/// searches it runs), so batches are cut into statements of this many rows, whose text
/// repeats and whose prepared form the connection's statement cache keeps.
const SQLITE_ROWS_PER_STATEMENT: usize = 64;

/// Rows one batched statement carries at most on PostgreSQL: each statement is a round
/// trip to the server, and 1 000-row statements measured about 4× faster than 64-row ones
/// for the matcher's former `VALUES`-list lookups (16 813 against 3 351 transfers/s).
const POSTGRES_ROWS_PER_STATEMENT: usize = 1_000;

/// The rows of a batch that fit one statement of `columns` parameters per row on `backend`.
pub(crate) fn statement_chunks<T>(
    backend: Backend,
    rows: &[T],
    columns: usize,
) -> std::slice::Chunks<'_, T> {
    let most = match backend {
        Backend::Sqlite => SQLITE_ROWS_PER_STATEMENT,
        Backend::Postgres => POSTGRES_ROWS_PER_STATEMENT,
    };
    rows.chunks((MAX_BIND_PARAMS / columns).clamp(1, most))
}

/// Reads a column that holds a base-unit amount.
pub(crate) fn amount_column(text: &str) -> Result<crate::invoice::Amount, StoreError> {
    crate::invoice::Amount::from_base_units(text)
        .map_err(|e| StoreError::Corrupt(format!("amount `{text}`: {e}")))
}

/// A flag as stored: 0 or 1.
pub fn flag(value: bool) -> i64 {
    i64::from(value)
}

/// Reads a 0/1 flag column.
pub fn read_flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, StoreError> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(column)? != 0)
}
