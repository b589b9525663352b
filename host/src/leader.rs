//! Leader election: which instance runs each singleton role when several `polypay serve`
//! processes share one database. A role is a chain's listener (`chain:NAME`) or the
//! expiry scheduler (`expiry`); the webhook workers need none (they claim events with
//! `FOR UPDATE SKIP LOCKED`) and every instance serves HTTP.
//!
//! On PostgreSQL a role is a session-level advisory lock (`pg_try_advisory_lock`), keyed
//! by a stable 64-bit hash of the role's name, held on a connection taken out of the pool
//! for the purpose (a pooled connection would be shared, and returning it would keep the
//! lock in someone else's hands). An instance that does not get the lock retries every
//! [`Election::retry`] (two seconds by default). The leader checks its lock connection
//! every [`Election::check`]; if the connection fails, its session (and with it the lock)
//! may be gone and another instance may already lead, so it stops the role's work at once
//! and competes again. When a process dies (`kill -9`, a crash, a lost host), PostgreSQL
//! ends its session as soon as the socket closes (or TCP keepalive notices) and the lock
//! is free for the next instance's retry. On shutdown the leader stops the work first and
//! then unlocks, so a follower takes over within one retry.
//!
//! Election is an optimisation, not the safety net: a leader cut off from the database
//! may still be finishing a step when another instance takes over. Every listener write is
//! a compare-and-set on the chain's cursor (see [`crate::chain::follow`]), and the expiry
//! scheduler's changes are idempotent, so two leaders by mistake cost work, never money.
//!
//! On SQLite the database belongs to one process, and the election is a no-op: every
//! role is this instance's at once.
//!
//! Roles are published in [`Roles`] (shown by `/readyz`) and as the gauge
//! `polypay_leader{role="…"}` (1 while this instance leads the role, 0 otherwise).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio_util::sync::CancellationToken;

use crate::store::{Backend, Store, StoreError};

/// The roles this instance competes for, and whether it holds each.
#[derive(Debug, Clone, Default)]
pub struct Roles(Arc<Mutex<BTreeMap<String, bool>>>);

impl Roles {
    /// Every role competed for, `true` where this instance leads.
    pub fn snapshot(&self) -> BTreeMap<String, bool> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, role: &str, leader: bool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(role.to_string(), leader);
        metrics::gauge!("polypay_leader", "role" => role.to_string()).set(if leader {
            1.0
        } else {
            0.0
        });
    }
}

/// The role name of a chain's listener.
pub fn chain_role(chain: &str) -> String {
    format!("chain:{chain}")
}

/// The role name of the expiry scheduler.
pub const EXPIRY_ROLE: &str = "expiry";

/// Runs singleton roles on whichever instance holds their lock. See the module docs.
#[derive(Debug, Clone)]
pub struct Election {
    store: Store,
    roles: Roles,
    retry: Duration,
    check: Duration,
}

/// A held role lock (PostgreSQL: the session holding the advisory lock).
struct Held {
    key: i64,
    conn: Option<AnyConnection>,
}

impl Election {
    pub fn new(store: Store, roles: Roles) -> Election {
        Election {
            store,
            roles,
            retry: Duration::from_secs(2),
            check: Duration::from_secs(1),
        }
    }

    /// Sets how often an instance that is not the leader tries to take a role over.
    pub fn retry(mut self, retry: Duration) -> Election {
        self.retry = retry;
        self
    }

    /// Sets how often a leader checks that its lock session is alive.
    pub fn check(mut self, check: Duration) -> Election {
        self.check = check;
        self
    }

    /// Runs `work` whenever this instance leads `role`, until `shutdown` is cancelled.
    /// `work` is called at the start of each term with a token cancelled when the term
    /// ends normally (shutdown); it must return soon after. A term that ends because the
    /// lock session failed drops the work's future at once.
    pub async fn run<F, Fut>(&self, role: &str, shutdown: CancellationToken, mut work: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        self.roles.set(role, false);
        let mut waiting_logged = false;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.try_lock(role).await {
                Ok(Some(mut held)) => {
                    waiting_logged = false;
                    self.roles.set(role, true);
                    tracing::info!(role, "leading");
                    let term = shutdown.child_token();
                    let lost = tokio::select! {
                        _ = work(term.clone()) => false,
                        _ = self.watch(&mut held) => true,
                    };
                    self.roles.set(role, false);
                    if lost {
                        tracing::warn!(
                            role,
                            "the leader lock's database session failed; stopped leading"
                        );
                    } else {
                        tracing::info!(role, "stopped leading");
                    }
                    self.unlock(held).await;
                }
                Ok(None) => {
                    if !waiting_logged {
                        tracing::info!(role, "another instance leads; standing by");
                        waiting_logged = true;
                    }
                }
                Err(e) => tracing::warn!(role, error = %e, "cannot compete for the role; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.retry) => {}
            }
        }
    }

    /// Takes `role`'s lock if it is free.
    async fn try_lock(&self, role: &str) -> Result<Option<Held>, StoreError> {
        let key = lock_key(role);
        if self.store.backend() == Backend::Sqlite {
            return Ok(Some(Held { key, conn: None }));
        }
        let mut conn = self.store.pool().acquire().await?.detach();
        let got: i64 = sqlx::query_scalar(
            "SELECT CAST(CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END AS BIGINT)",
        )
        .bind(key)
        .fetch_one(&mut conn)
        .await?;
        if got == 1 {
            Ok(Some(Held {
                key,
                conn: Some(conn),
            }))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Resolves when the lock session fails (never on SQLite).
    async fn watch(&self, held: &mut Held) {
        let Some(conn) = held.conn.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(self.check).await;
            let alive = tokio::time::timeout(self.check.max(Duration::from_secs(5)), async {
                sqlx::query("SELECT 1").execute(&mut *conn).await
            })
            .await;
            if !matches!(alive, Ok(Ok(_))) {
                held.conn = None;
                return;
            }
        }
    }

    /// Gives the lock back (closing its session, which would release it anyway).
    async fn unlock(&self, held: Held) {
        let Some(mut conn) = held.conn else {
            return;
        };
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(held.key)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

/// The advisory lock key of `role`: FNV-1a (64 bit) of `polypay:` and the name, stable
/// across versions and platforms.
fn lock_key(role: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "polypay:".bytes().chain(role.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("expiry"), lock_key("expiry"));
        assert_ne!(lock_key("chain:a"), lock_key("chain:b"));
        assert_ne!(lock_key(&chain_role("expiry")), lock_key(EXPIRY_ROLE));
    }
}
