//! Statements over a whole batch of keys at once, for the lookups of the chain listeners
//! and the matcher (`chain_queries`).
//!
//! The batch's keys travel as ONE text parameter, a JSON array with one element per key
//! (itself an array of the key's fields), which the statement expands into rows:
//! `json_each($1)` on SQLite, `jsonb_array_elements($1::jsonb) WITH ORDINALITY` on
//! PostgreSQL. The answer comes back as ONE row holding a JSON array
//! (`json_group_array` / `json_agg`), whose elements name the key they answer by its
//! 0-based position in the batch instead of repeating its fields.
//!
//! Why, rather than a `VALUES` list of bound parameters per key:
//!
//! - The statement text is the same for every batch, so each connection prepares it once
//!   and keeps it (sqlx's statement cache), whatever the batch's length. A `VALUES` list
//!   is a new text per length; on SQLite preparing one costs about 15 µs a row, more than
//!   the index searches it runs, which is why batches used to be cut into 64-row
//!   statements. There is no parameter-count limit either: a batch of any length is one
//!   statement on both backends.
//! - On PostgreSQL a prepared statement joined against a parameter list switches to a
//!   generic plan that is poor for it; the plan of a join against an expanded JSON array
//!   does not depend on the parameter's value (the planner estimates the expansion's rows
//!   without reading it), so the prepared plan is the one it would choose anyway: a
//!   nested loop of index searches once the table is large.
//! - One row back instead of one per match. sqlx's SQLite driver hands every result row
//!   from its worker thread to the caller through a channel, copying each value, and the
//!   `Any` driver then converts every column of every row; a batch's answer is one text,
//!   parsed once with serde_json. The measured effect of the whole change is in
//!   BENCHMARKS.md, "Matcher throughput".
//!
//! Extracting a field from JSON costs SQLite about 0.3 µs, so this suits lookups (three
//! or four fields a key) better than writes: the idempotent insert of a batch's transfers
//! (13 fields a row) stays a cached multi-row `VALUES` statement on SQLite (see
//! `chain_queries::record_transfers`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Backend, StoreError, Tx};

/// The text of one batch statement, written once per backend (the JSON functions differ).
pub(crate) struct BatchStatement {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl BatchStatement {
    pub(crate) fn text(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// Runs the batch statement `sql` over `keys`, bound as `$1` (a JSON array of the
/// serialised keys), and decodes its answer: one row, one text column holding a JSON
/// array of `T`. An empty batch answers nothing without a round trip.
pub(crate) async fn fetch<K: Serialize, T: DeserializeOwned>(
    tx: &mut Tx,
    sql: &'static str,
    keys: &[K],
) -> Result<Vec<T>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let keys = serde_json::to_string(keys)
        .map_err(|e| StoreError::Corrupt(format!("a batch's keys as JSON: {e}")))?;
    let answer: String = sqlx::query_scalar(sql)
        .bind(keys)
        .fetch_one(&mut **tx)
        .await?;
    serde_json::from_str(&answer)
        .map_err(|e| StoreError::Corrupt(format!("a batch statement's answer: {e}")))
}

/// The key at `position` of a batch, as an answer names it.
pub(crate) fn key_at<K>(keys: &[K], position: usize) -> Result<&K, StoreError> {
    keys.get(position).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "a batch statement answered for key {position} of {}",
            keys.len()
        ))
    })
}
