//! Fresh databases for tests: a SQLite file in a temporary directory, or a PostgreSQL
//! database created for the test and dropped afterwards.
//!
//! PostgreSQL is found at `POLYPAY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, the CI machine's trust-auth server).
//! A test that asks for PostgreSQL fails when it is unreachable: the store suite must run
//! on both backends, never silently on one.

use polypay_host::store::Store;
use sqlx::Connection;

pub fn postgres_admin_url() -> String {
    std::env::var("POLYPAY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for the life of one test.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("polypay.db").display());
        TestDb {
            url,
            backend: "sqlite",
            dir,
            pg_name: None,
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = format!("polypay_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {admin} is required for the store suite: {e}")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base.to_string())
            .expect("database URL has a path");
        TestDb {
            url: format!("{base}/{name}"),
            backend: "postgres",
            dir: tempfile::tempdir().expect("temp dir"),
            pg_name: Some(name),
        }
    }

    pub async fn by_name(backend: &str) -> TestDb {
        match backend {
            "sqlite" => TestDb::sqlite().await,
            "postgres" => TestDb::postgres().await,
            other => panic!("unknown backend {other}"),
        }
    }

    /// Opens the store with migrations applied.
    pub async fn store(&self) -> Store {
        Store::open(&self.url, 8).await.expect("open store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any async context guarantee: use a private runtime on a thread.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Declares each listed async test function (taking a [`TestDb`]) once per backend, in
/// modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::db::TestDb::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::db::TestDb::postgres().await).await
                }
            )*
        }
    };
}

/// Row counts of `tables` in the SQLite database file `path` of a running server (opened
/// read-only): what a bad-input test compares before and after a request to show that
/// nothing was written.
#[allow(dead_code)] // each test binary uses its own part of common
pub async fn row_counts(
    path: &std::path::Path,
    tables: &[&'static str],
) -> Vec<(&'static str, i64)> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the server's database");
    let mut out = Vec::new();
    for &table in tables {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        out.push((table, n));
    }
    out
}
