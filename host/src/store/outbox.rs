//! The webhook outbox as the delivery worker and the operator use it: claiming due events,
//! recording attempts, replays, listings and per-merchant statistics. Events are written
//! by [`super::invoices::append_event`] in the transaction of the change they report (and,
//! for test callbacks, by [`insert_test_event_limited`]).
//!
//! States: `pending` (waiting for its next attempt) → `delivering` (claimed by a worker,
//! under a lease) → `delivered` | `pending` (retry) | `dead` (given up); `skipped` when the
//! plugin sends no callback for the event. An operator replay moves `delivered` or `dead`
//! back to `pending`.
//!
//! Claiming ([`claim`]) is one statement: on PostgreSQL the due rows are locked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent workers (threads or instances) never claim the
//! same row; on SQLite the single writer serialises claims. A claim increments `attempts`
//! and the new value is the attempt number the worker holds: every later write of that
//! worker names it (`WHERE state = 'delivering' AND attempts = n`), so a worker whose lease
//! expired and whose event was retaken cannot overwrite the newer attempt's outcome, and
//! the unique `(event_id, attempt)` index means an attempt number is used once.
//!
//! On PostgreSQL every write of the delivery loop is one statement, so one round trip and
//! one commit: a claim, and a whole batch of outcomes ([`record_attempts`]: the events'
//! new states and their attempt rows, from one JSON parameter through a statement whose
//! text never changes, so it is prepared once per connection). The claim's scan reads
//! the `outbox_due` index `(state, next_attempt_at, id)` in claim order and stops after
//! `limit` rows (migration 0019; before, every event due at the same millisecond was
//! read and sorted first).
//!
//! Per-invoice order: only the oldest open (`pending` or `delivering`) event of an invoice
//! is due, so a later event is never sent before an earlier one is delivered, skipped or
//! dead. A dead-lettered event no longer blocks the invoice's later events: it is
//! terminal, and the later ones carry the newer state the merchant most needs. (Replaying
//! it makes it open again, and it then blocks newer *pending* events until it is done.)

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError, flag, placeholder_rows, read_flag, statement_chunks};
use crate::invoice::EventPayload;
use crate::names::UnknownName;

/// Where an outbox event is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivering,
    Delivered,
    Dead,
    Skipped,
}

crate::stable_names!(DeliveryState, "delivery state", {
    Pending => "pending",
    Delivering => "delivering",
    Delivered => "delivered",
    Dead => "dead",
    Skipped => "skipped",
});

impl DeliveryState {
    /// An optional `state` filter as an operator types it (empty: none).
    pub fn parse_filter(state: Option<&str>) -> Result<Option<DeliveryState>, UnknownName> {
        state.filter(|s| !s.is_empty()).map(str::parse).transpose()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// The receiver's response met the plugin's acceptance rule.
    Accepted,
    /// The receiver answered, but not acceptably.
    Rejected,
    /// No usable answer: connection failure, timeout, invalid request.
    Failed,
    /// The target policy refused the URL; nothing was sent.
    Refused,
    /// The plugin could not render the callback; nothing was sent.
    RenderFailed,
    /// The worker holding the attempt stopped before recording it (its lease expired);
    /// the callback may or may not have been sent.
    Abandoned,
}

crate::stable_names!(AttemptOutcome, "attempt outcome", {
    Accepted => "accepted",
    Rejected => "rejected",
    Failed => "failed",
    Refused => "refused",
    RenderFailed => "render_failed",
    Abandoned => "abandoned",
});

/// An outbox event seen as a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The outbox event id.
    pub id: i64,
    pub invoice_id: Option<String>,
    pub merchant_id: String,
    pub plugin: String,
    pub kind: String,
    pub state: DeliveryState,
    /// Attempts ever made, across replays.
    pub attempts: i64,
    /// `attempts` at the latest replay: the current round's attempt n is `attempts_before_replay + n`.
    pub attempts_before_replay: i64,
    pub replays: i64,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub locked_until: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
}

impl Delivery {
    /// The attempt number within the current round (1-based once claimed).
    pub fn round_attempt(&self) -> u32 {
        u32::try_from(self.attempts - self.attempts_before_replay).unwrap_or(0)
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub attempt: i64,
    pub url: String,
    pub started_at: i64,
    pub latency_ms: Option<i64>,
    pub status_code: Option<i64>,
    pub response_body: Option<String>,
    pub response_truncated: bool,
    pub error: Option<String>,
    pub accepted: bool,
    pub outcome: AttemptOutcome,
}

/// An event claimed by a worker: it holds attempt `delivery.attempts` until it records
/// the outcome or its lease (`delivery.locked_until`) expires.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery: Delivery,
    /// The event's payload as stored (JSON text).
    pub payload: String,
}

/// What an attempt's outcome means for the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    RetryAt(i64),
    Dead,
}

/// An attempt's outcome, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    pub url: String,
    pub started_at: i64,
    pub latency_ms: Option<i64>,
    pub status_code: Option<i64>,
    pub response_body: Option<String>,
    pub response_truncated: bool,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

const DELIVERY_COLUMNS: &str = "id, invoice_id, merchant_id, plugin, kind, created_at, state, attempts, attempts_before_replay, \
     replays, next_attempt_at, locked_until, last_attempt_at, delivered_at, last_error";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        invoice_id: row.try_get("invoice_id")?,
        merchant_id: row.try_get("merchant_id")?,
        plugin: row.try_get("plugin")?,
        kind: row.try_get("kind")?,
        state: state.parse().map_err(|e| corrupt("delivery state", e))?,
        attempts: row.try_get("attempts")?,
        attempts_before_replay: row.try_get("attempts_before_replay")?,
        replays: row.try_get("replays")?,
        created_at: row.try_get("created_at")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        locked_until: row.try_get("locked_until")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        delivered_at: row.try_get("delivered_at")?,
        last_error: row.try_get("last_error")?,
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<Attempt, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(Attempt {
        attempt: row.try_get("attempt")?,
        url: row.try_get("url")?,
        started_at: row.try_get("started_at")?,
        latency_ms: row.try_get("latency_ms")?,
        status_code: row.try_get("status_code")?,
        response_body: row.try_get("response_body")?,
        response_truncated: read_flag(row, "response_truncated")?,
        error: row.try_get("error")?,
        accepted: read_flag(row, "accepted")?,
        outcome: outcome.parse().map_err(|e| corrupt("attempt outcome", e))?,
    })
}

const ABANDONED: &str = "the worker holding this attempt stopped before recording its outcome (lease expired); \
     the callback may or may not have been sent";

/// Gives events whose worker's lease expired back to the queue, due now, and records the
/// lost attempt as `abandoned`. Returns how many were recovered.
pub async fn recover_expired(store: &Store, now: i64) -> Result<usize, StoreError> {
    let mut tx = store.begin().await?;
    let rows = sqlx::query(
        "UPDATE outbox_events SET state = 'pending', locked_until = NULL, next_attempt_at = $1, last_error = $2 \
         WHERE state = 'delivering' AND locked_until <= $3 RETURNING id, attempts",
    )
    .bind(now)
    .bind(ABANDONED)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let (id, attempt): (i64, i64) = (row.try_get("id")?, row.try_get("attempts")?);
        sqlx::query(
            "INSERT INTO webhook_attempts (event_id, attempt, url, started_at, error, accepted, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(attempt)
        .bind("")
        .bind(now)
        .bind(ABANDONED)
        .bind(flag(false))
        .bind(AttemptOutcome::Abandoned.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Claims up to `limit` due events for a worker until `lease_until`: the oldest open
/// event of each invoice whose next attempt is due, oldest due first. See the module docs.
pub async fn claim(
    store: &Store,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<Claim>, StoreError> {
    let lock = if store.backend() == Backend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "WITH due AS (\
            SELECT e.id FROM outbox_events e \
            WHERE e.state = 'pending' AND e.next_attempt_at <= $1 \
              AND NOT EXISTS (SELECT 1 FROM outbox_events p \
                              WHERE p.invoice_id = e.invoice_id AND p.id < e.id AND p.state IN ('pending', 'delivering')) \
            ORDER BY e.next_attempt_at, e.id LIMIT $2{lock}) \
         UPDATE outbox_events SET state = 'delivering', attempts = attempts + 1, locked_until = $3 \
         WHERE id IN (SELECT id FROM due) \
         RETURNING {DELIVERY_COLUMNS}, payload"
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(i64::from(limit))
        .bind(lease_until);
    let rows = match store.backend() {
        // One statement is a transaction of its own: no `BEGIN` and `COMMIT` round trips.
        Backend::Postgres => query.fetch_all(store.writer()).await?,
        // `BEGIN IMMEDIATE` takes the write lock before the statement reads (see
        // `Store::begin`).
        Backend::Sqlite => {
            let mut tx = store.begin().await?;
            let rows = query.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        }
    };
    let mut claims = rows
        .iter()
        .map(|row| {
            Ok(Claim {
                delivery: delivery_from_row(row)?,
                payload: row.try_get("payload")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    claims.sort_by_key(|c| c.delivery.id);
    Ok(claims)
}

/// Records the outcome of attempt `attempt` of event `id` and moves the event on, in one
/// transaction. Returns `false` (and records nothing) when the worker no longer holds
/// that attempt: its lease expired and the event was retaken.
pub async fn record_attempt(
    store: &Store,
    id: i64,
    attempt: i64,
    report: &AttemptReport,
    next: Next,
    now: i64,
) -> Result<bool, StoreError> {
    let recorded = record_attempts(
        store,
        &[AttemptRecord {
            id,
            attempt,
            report,
            next,
        }],
        now,
    )
    .await?;
    Ok(recorded[0])
}

/// The outcome of one attempt to record ([`record_attempts`]).
#[derive(Debug, Clone, Copy)]
pub struct AttemptRecord<'a> {
    /// The event.
    pub id: i64,
    /// The attempt number the worker holds.
    pub attempt: i64,
    pub report: &'a AttemptReport,
    pub next: Next,
}

/// Records the outcomes of many attempts and moves their events on. Answers, for each
/// record in order, whether it was recorded: `false` (and nothing written for it) when
/// the worker no longer holds that attempt, its lease having expired and the event been
/// retaken. Each record's state change and attempt row are written together; see
/// [`record_attempts_postgres`] and [`record_attempts_sqlite`] for how.
pub async fn record_attempts(
    store: &Store,
    records: &[AttemptRecord<'_>],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let held = match store.backend() {
        Backend::Postgres => record_attempts_postgres(store, records, now).await?,
        Backend::Sqlite => record_attempts_sqlite(store, records, now).await?,
    };
    Ok(records
        .iter()
        .map(|r| held.contains(&(r.id, r.attempt)))
        .collect())
}

/// The new state of a recorded attempt's event: (state, next_attempt_at, delivered_at).
fn after_attempt(next: Next, now: i64) -> (DeliveryState, i64, Option<i64>) {
    match next {
        Next::Delivered => (DeliveryState::Delivered, now, Some(now)),
        Next::RetryAt(at) => (DeliveryState::Pending, at, None),
        Next::Dead => (DeliveryState::Dead, now, None),
    }
}

/// One record as a row of [`RECORD_ATTEMPTS_POSTGRES`]'s JSON parameter.
#[derive(Serialize)]
struct RecordRow<'a> {
    id: i64,
    attempt: i64,
    state: &'static str,
    next_attempt_at: i64,
    delivered_at: Option<i64>,
    last_error: Option<String>,
    url: &'a str,
    started_at: i64,
    latency_ms: Option<i64>,
    status_code: Option<i64>,
    response_body: Option<&'a str>,
    error: Option<&'a str>,
    accepted: i64,
    outcome: &'static str,
    response_truncated: i64,
}

/// Every record of a batch in one statement whose text never changes: the records travel
/// as one JSON array (the `Any` driver binds no arrays), the events still held are moved
/// on and their attempts inserted from what the update returned. One statement is a
/// transaction of its own (no `BEGIN`/`COMMIT` round trips), and a text that never
/// changes is prepared once per connection, where a `VALUES` list of as many rows as the
/// batch would be a new statement for almost every batch size: parsed, planned and
/// evicted from the connection's statement cache again and again.
const RECORD_ATTEMPTS_POSTGRES: &str = "WITH v AS (SELECT * FROM json_to_recordset($1::json) AS v(\
        id BIGINT, attempt BIGINT, state TEXT, next_attempt_at BIGINT, delivered_at BIGINT, last_error TEXT, \
        url TEXT, started_at BIGINT, latency_ms BIGINT, status_code BIGINT, response_body TEXT, error TEXT, \
        accepted BIGINT, outcome TEXT, response_truncated BIGINT)), \
     held AS (UPDATE outbox_events e SET state = v.state, next_attempt_at = v.next_attempt_at, locked_until = NULL, \
        delivered_at = v.delivered_at, last_error = v.last_error, last_attempt_at = v.started_at \
        FROM v WHERE e.id = v.id AND e.state = 'delivering' AND e.attempts = v.attempt \
        RETURNING e.id, e.attempts) \
     INSERT INTO webhook_attempts (event_id, attempt, url, started_at, latency_ms, status_code, response_body, error, \
        accepted, outcome, response_truncated) \
     SELECT v.id, v.attempt, v.url, v.started_at, v.latency_ms, v.status_code, v.response_body, v.error, \
        v.accepted, v.outcome, v.response_truncated \
     FROM v JOIN held ON held.id = v.id AND held.attempts = v.attempt \
     RETURNING event_id, attempt";

/// The (event, attempt) pairs of `records` that were recorded, on PostgreSQL.
async fn record_attempts_postgres(
    store: &Store,
    records: &[AttemptRecord<'_>],
    now: i64,
) -> Result<std::collections::HashSet<(i64, i64)>, StoreError> {
    let rows: Vec<RecordRow> = records
        .iter()
        .map(|record| {
            let report = record.report;
            let (state, next_attempt_at, delivered_at) = after_attempt(record.next, now);
            RecordRow {
                id: record.id,
                attempt: record.attempt,
                state: state.as_str(),
                next_attempt_at,
                delivered_at,
                last_error: last_error(report),
                url: &report.url,
                started_at: report.started_at,
                latency_ms: report.latency_ms,
                status_code: report.status_code,
                response_body: report.response_body.as_deref(),
                error: report.error.as_deref(),
                accepted: flag(report.outcome == AttemptOutcome::Accepted),
                outcome: report.outcome.as_str(),
                response_truncated: flag(report.response_truncated),
            }
        })
        .collect();
    let json = serde_json::to_string(&rows).map_err(|e| corrupt("attempt records", e))?;
    let mut held = std::collections::HashSet::with_capacity(records.len());
    for row in sqlx::query(RECORD_ATTEMPTS_POSTGRES)
        .bind(json)
        .fetch_all(store.writer())
        .await?
    {
        held.insert((
            row.try_get::<i64, _>("event_id")?,
            row.try_get::<i64, _>("attempt")?,
        ));
    }
    Ok(held)
}

/// The (event, attempt) pairs of `records` that were recorded, on SQLite: one
/// transaction of two statements per chunk (the events' new states, then the attempts of
/// the events still held), SQLite having no `UPDATE` inside a `WITH`.
async fn record_attempts_sqlite(
    store: &Store,
    records: &[AttemptRecord<'_>],
    now: i64,
) -> Result<std::collections::HashSet<(i64, i64)>, StoreError> {
    const STATE_COLUMNS: usize = 7;
    const ATTEMPT_COLUMNS: usize = 11;
    let mut held = std::collections::HashSet::new();
    let mut tx = store.begin().await?;
    for chunk in statement_chunks(store.backend(), records, STATE_COLUMNS) {
        let sql = format!(
            "WITH v(id, attempt, state, next_attempt_at, delivered_at, last_error, last_attempt_at) AS (VALUES {}) \
             UPDATE outbox_events SET state = v.state, next_attempt_at = v.next_attempt_at, locked_until = NULL, \
             delivered_at = v.delivered_at, last_error = v.last_error, last_attempt_at = v.last_attempt_at \
             FROM v WHERE outbox_events.id = v.id AND outbox_events.state = 'delivering' \
             AND outbox_events.attempts = v.attempt \
             RETURNING outbox_events.id AS id, outbox_events.attempts AS attempts",
            placeholder_rows(store.backend(), chunk.len(), STATE_COLUMNS)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in chunk {
            let (state, next_attempt_at, delivered_at) = after_attempt(record.next, now);
            query = query
                .bind(record.id)
                .bind(record.attempt)
                .bind(state.as_str())
                .bind(next_attempt_at)
                .bind(delivered_at)
                .bind(last_error(record.report))
                .bind(record.report.started_at);
        }
        for row in query.fetch_all(&mut *tx).await? {
            held.insert((
                row.try_get::<i64, _>("id")?,
                row.try_get::<i64, _>("attempts")?,
            ));
        }
    }
    let attempts: Vec<&AttemptRecord> = records
        .iter()
        .filter(|r| held.contains(&(r.id, r.attempt)))
        .collect();
    for chunk in statement_chunks(store.backend(), &attempts, ATTEMPT_COLUMNS) {
        let sql = format!(
            "INSERT INTO webhook_attempts (event_id, attempt, url, started_at, latency_ms, status_code, response_body, error, \
             accepted, outcome, response_truncated) VALUES {}",
            placeholder_rows(store.backend(), chunk.len(), ATTEMPT_COLUMNS)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for record in chunk {
            let report = record.report;
            query = query
                .bind(record.id)
                .bind(record.attempt)
                .bind(&report.url)
                .bind(report.started_at)
                .bind(report.latency_ms)
                .bind(report.status_code)
                .bind(&report.response_body)
                .bind(&report.error)
                .bind(flag(report.outcome == AttemptOutcome::Accepted))
                .bind(report.outcome.as_str())
                .bind(flag(report.response_truncated));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(held)
}

/// What `last_error` says after an attempt: nothing once accepted.
fn last_error(report: &AttemptReport) -> Option<String> {
    match report.outcome {
        AttemptOutcome::Accepted => None,
        _ => Some(
            report
                .error
                .clone()
                .unwrap_or_else(|| match report.status_code {
                    Some(code) => format!("HTTP {code} not accepted"),
                    None => report.outcome.as_str().to_string(),
                }),
        ),
    }
}

/// Ends a claim without counting an attempt, nothing having been sent: back to `pending`,
/// due at `at` (its plugin is not mounted here), or `skipped` (the event has no callback).
/// Returns `false` when the claim was no longer held.
pub async fn unclaim(
    store: &Store,
    id: i64,
    attempt: i64,
    to: DeliveryState,
    at: i64,
    reason: &str,
) -> Result<bool, StoreError> {
    debug_assert!(
        matches!(to, DeliveryState::Pending | DeliveryState::Skipped),
        "{to}"
    );
    let updated = sqlx::query(
        "UPDATE outbox_events SET state = $1, attempts = attempts - 1, locked_until = NULL, next_attempt_at = $2, \
         last_error = $3 WHERE id = $4 AND state = 'delivering' AND attempts = $5",
    )
    .bind(to.as_str())
    .bind(at)
    .bind(reason)
    .bind(id)
    .bind(attempt)
    .execute(store.writer())
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Why an event could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("webhook event {0} not found")]
    NotFound(i64),
    #[error("webhook event {id} is {state}: only delivered or dead events can be replayed")]
    NotReplayable { id: i64, state: DeliveryState },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Replays a delivered or dead-lettered event (operator action): it is due again now and
/// starts a new round of attempts (the plugin sees attempt 1, the schedule starts over);
/// its attempt history is kept.
pub async fn replay(store: &Store, id: i64, now: i64) -> Result<Delivery, ReplayError> {
    let sql = format!(
        "UPDATE outbox_events SET state = 'pending', attempts_before_replay = attempts, replays = replays + 1, \
         next_attempt_at = $1, locked_until = NULL, delivered_at = NULL, last_error = NULL \
         WHERE id = $2 AND state IN ('delivered', 'dead') RETURNING {DELIVERY_COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(id)
        .fetch_optional(store.writer())
        .await
        .map_err(StoreError::from)?;
    if let Some(row) = row {
        return Ok(delivery_from_row(&row)?);
    }
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    match delivery(&mut conn, id).await? {
        None => Err(ReplayError::NotFound(id)),
        Some(d) => Err(ReplayError::NotReplayable { id, state: d.state }),
    }
}

/// Which deliveries to list; newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub merchant_id: Option<String>,
    pub invoice_id: Option<String>,
    pub plugin: Option<String>,
    pub state: Option<DeliveryState>,
    /// Only events with a smaller id (the next page after the last one seen).
    pub before_id: Option<i64>,
    /// At most this many (1..=1000).
    pub limit: u32,
}

enum Param {
    Text(String),
    Int(i64),
}

/// Lists deliveries matching `filter`, newest first.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &DeliveryFilter,
) -> Result<Vec<Delivery>, StoreError> {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    let mut condition = |column: &str, param: Param| {
        params.push(param);
        let op = if column == "id" { "<" } else { "=" };
        conditions.push(format!("{column} {op} ${}", params.len()));
    };
    if let Some(v) = &filter.merchant_id {
        condition("merchant_id", Param::Text(v.clone()));
    }
    if let Some(v) = &filter.invoice_id {
        condition("invoice_id", Param::Text(v.clone()));
    }
    if let Some(v) = &filter.plugin {
        condition("plugin", Param::Text(v.clone()));
    }
    if let Some(v) = filter.state {
        condition("state", Param::Text(v.as_str().to_string()));
    }
    if let Some(v) = filter.before_id {
        condition("id", Param::Int(v));
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM outbox_events{where_clause} ORDER BY id DESC LIMIT {}",
        filter.limit.clamp(1, 1_000)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
        };
    }
    query
        .fetch_all(conn)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}

/// One delivery.
pub async fn delivery(conn: &mut AnyConnection, id: i64) -> Result<Option<Delivery>, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM outbox_events WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
}

/// A delivery with its payload and every attempt, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    pub delivery: Delivery,
    pub payload: serde_json::Value,
    pub attempts: Vec<Attempt>,
}

/// A delivery with its payload and attempts.
pub async fn detail(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<DeliveryDetail>, StoreError> {
    let Some(delivery) = delivery(&mut *conn, id).await? else {
        return Ok(None);
    };
    let payload: String = sqlx::query_scalar("SELECT payload FROM outbox_events WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let payload = serde_json::from_str(&payload).map_err(|e| corrupt("event payload", e))?;
    let attempts = attempts_of(conn, id).await?;
    Ok(Some(DeliveryDetail {
        delivery,
        payload,
        attempts,
    }))
}

/// The attempts of an event, oldest first.
pub async fn attempts_of(
    conn: &mut AnyConnection,
    event_id: i64,
) -> Result<Vec<Attempt>, StoreError> {
    sqlx::query(
        "SELECT attempt, url, started_at, latency_ms, status_code, response_body, response_truncated, error, accepted, outcome \
         FROM webhook_attempts WHERE event_id = $1 ORDER BY attempt",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(attempt_from_row)
    .collect()
}

/// Delivery statistics of one merchant (WIT `webhooks.delivery-stats`, plus rates).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryStats {
    pub days: u32,
    /// Events created in the window, skipped ones excluded.
    pub total: u64,
    pub delivered: u64,
    /// Dead-lettered.
    pub failed: u64,
    /// Not finished yet (`pending` or `delivering`).
    pub pending: u64,
    /// delivered / (delivered + failed); `None` before anything finished.
    pub success_rate: Option<f64>,
    /// Mean attempts of the finished (delivered or dead) events.
    pub average_attempts: Option<f64>,
    /// Mean latency of accepted attempts.
    pub average_latency_ms: Option<u64>,
    /// Attempts made for these events, finished or not.
    pub attempts: u64,
    /// Attempts made for the finished (delivered or dead) events.
    pub finished_attempts: u64,
}

fn count(row: &AnyRow, column: &str) -> Result<u64, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.unwrap_or(0).max(0) as u64)
}

/// Statistics of `merchant_id`'s events created in the last `days` days before `now`;
/// with `plugin`, only that plugin's events (a plugin sees only its own).
pub async fn stats(
    conn: &mut AnyConnection,
    merchant_id: &str,
    plugin: Option<&str>,
    days: u32,
    now: i64,
) -> Result<DeliveryStats, StoreError> {
    let since = now - i64::from(days) * 86_400_000;
    let plugin_clause = if plugin.is_some() {
        " AND plugin = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT COUNT(*) AS total, \
            SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) AS delivered, \
            SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS failed, \
            SUM(CASE WHEN state IN ('pending', 'delivering') THEN 1 ELSE 0 END) AS pending, \
            SUM(CASE WHEN state IN ('delivered', 'dead') THEN CAST(attempts AS INTEGER) ELSE 0 END) AS finished_attempts, \
            SUM(CAST(attempts AS INTEGER)) AS attempts \
         FROM outbox_events WHERE merchant_id = $1 AND created_at >= $2 AND state <> 'skipped'{plugin_clause}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant_id)
        .bind(since);
    if let Some(plugin) = plugin {
        query = query.bind(plugin);
    }
    let row = query.fetch_one(&mut *conn).await?;
    let (total, delivered, failed, pending) = (
        count(&row, "total")?,
        count(&row, "delivered")?,
        count(&row, "failed")?,
        count(&row, "pending")?,
    );
    let finished_attempts = count(&row, "finished_attempts")?;
    let attempts = count(&row, "attempts")?;
    let plugin_clause = if plugin.is_some() {
        " AND e.plugin = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT COUNT(*) AS n, SUM(CAST(a.latency_ms AS INTEGER)) AS total_ms FROM webhook_attempts a \
         JOIN outbox_events e ON e.id = a.event_id \
         WHERE e.merchant_id = $1 AND e.created_at >= $2 AND a.accepted = 1 AND a.latency_ms IS NOT NULL{plugin_clause}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(merchant_id)
        .bind(since);
    if let Some(plugin) = plugin {
        query = query.bind(plugin);
    }
    let row = query.fetch_one(&mut *conn).await?;
    let (accepted, latency_total) = (count(&row, "n")?, count(&row, "total_ms")?);
    let finished = delivered + failed;
    Ok(DeliveryStats {
        days,
        total,
        delivered,
        failed,
        pending,
        success_rate: (finished > 0).then(|| delivered as f64 / finished as f64),
        average_attempts: (finished > 0).then(|| finished_attempts as f64 / finished as f64),
        average_latency_ms: (accepted > 0).then(|| latency_total / accepted),
        attempts,
        finished_attempts,
    })
}

/// The size of the queue: open events (`pending` or `delivering`) and the creation time
/// of the oldest.
pub async fn queue_depth(conn: &mut AnyConnection) -> Result<(u64, Option<i64>), StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS depth, MIN(created_at) AS oldest FROM outbox_events WHERE state IN ('pending', 'delivering')")
        .fetch_one(conn)
        .await?;
    Ok((count(&row, "depth")?, row.try_get("oldest")?))
}

/// Queues a test event (no invoice) of `plugin` for `merchant_id`, due at once, unless
/// the merchant already queued `limit` test events since `since`: then nothing is written
/// and the answer is `Err(created_at)` of the oldest of those (the caller works out when
/// the window frees a slot). The count and the insert are one transaction, serialised per
/// merchant (SQLite's single writer; on PostgreSQL a lock on the merchant's row).
pub async fn insert_test_event_limited(
    store: &Store,
    event: TestEvent<'_>,
    limit: u32,
    since: i64,
) -> Result<Result<i64, i64>, StoreError> {
    let mut tx = store.begin().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT id FROM merchants WHERE id = $1 FOR UPDATE")
            .bind(event.merchant_id)
            .fetch_optional(&mut *tx)
            .await?;
    }
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox_events \
         WHERE merchant_id = $1 AND kind = $2 AND created_at > $3",
    )
    .bind(event.merchant_id)
    .bind(&event.payload.kind)
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    if count(&row, "n")? >= u64::from(limit) {
        let oldest: Option<i64> = row.try_get("oldest")?;
        return Ok(Err(oldest.unwrap_or(since)));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox_events (merchant_id, plugin, kind, payload, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(event.merchant_id)
    .bind(event.plugin)
    .bind(&event.payload.kind)
    .bind(event.payload.to_json())
    .bind(event.now)
    .bind(event.now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// A test event to queue ([`insert_test_event_limited`]).
pub struct TestEvent<'a> {
    pub plugin: &'a str,
    pub merchant_id: &'a str,
    pub payload: &'a EventPayload,
    pub now: i64,
}

/// The outbox events of an invoice with their payloads, oldest first.
pub async fn invoice_events(
    conn: &mut AnyConnection,
    invoice_id: &str,
) -> Result<Vec<(Delivery, EventPayload)>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS}, payload FROM outbox_events WHERE invoice_id = $1 ORDER BY id"
    )))
    .bind(invoice_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let payload: String = row.try_get("payload")?;
            let payload = EventPayload::from_json(&payload)
                .map_err(|e| StoreError::Corrupt(format!("event payload: {e}")))?;
            Ok((delivery_from_row(row)?, payload))
        })
        .collect()
}

/// An invoice's callback delivery in one word (WIT `invoices.webhook-summary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryState {
    /// No callback was due (none rendered yet, or all skipped).
    None,
    Pending,
    Delivered,
    Failed,
}

/// See [`invoice_summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeliverySummary {
    pub state: SummaryState,
    /// Attempts of the event the state describes (current round).
    pub attempts: u32,
    pub last_attempt_at: Option<i64>,
}

/// The delivery state of an invoice's callbacks: `pending` while any of its events is
/// open (with that event's attempts), else the state of its latest non-skipped event.
pub async fn invoice_summary(
    conn: &mut AnyConnection,
    invoice_id: &str,
) -> Result<DeliverySummary, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM outbox_events WHERE invoice_id = $1 AND state <> 'skipped' ORDER BY id"
    );
    let events = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(invoice_id)
        .fetch_all(conn)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let last_attempt_at = events.iter().filter_map(|e| e.last_attempt_at).max();
    let open = events
        .iter()
        .find(|e| matches!(e.state, DeliveryState::Pending | DeliveryState::Delivering));
    let Some(event) = open.or(events.last()) else {
        return Ok(DeliverySummary {
            state: SummaryState::None,
            attempts: 0,
            last_attempt_at,
        });
    };
    let state = match event.state {
        DeliveryState::Pending | DeliveryState::Delivering => SummaryState::Pending,
        DeliveryState::Delivered => SummaryState::Delivered,
        DeliveryState::Dead => SummaryState::Failed,
        DeliveryState::Skipped => SummaryState::None,
    };
    // A claimed attempt is not made yet until recorded.
    let attempts = if event.state == DeliveryState::Delivering {
        event.round_attempt().saturating_sub(1)
    } else {
        event.round_attempt()
    };
    Ok(DeliverySummary {
        state,
        attempts,
        last_attempt_at,
    })
}
