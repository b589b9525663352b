//! The chain's journal: one JSON line per [`Op`], the first naming the genesis time.
//!
//! A [`super::SimChain`] is a pure function of its genesis time and its ops (transaction
//! ids and block ids are hashes of what the ops carry), so replaying the file rebuilds
//! exactly the chain a previous process served: the same blocks, ids and times that the
//! database of `polypay dev` remembers. Each op is written and flushed before it takes
//! effect; a torn last line (the process killed mid-write) is dropped at replay, which
//! loses only that op, the one the killed process never confirmed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use alloy::primitives::U256;
use serde::{Deserialize, Serialize};

use super::chain::{Outcome, Payload};
use crate::chain::tron::TronAddress;

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the TRON dev chain's journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TRON dev chain's journal {} is damaged at line {line}: {problem}", path.display())]
    Damaged {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// One change of the chain, with the times it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Lag { lag: u64 },
    Submit { payload: Payload, timestamp: i64 },
    Resubmit { id: String },
    Mine { timestamp: i64 },
    Fork { depth: u64 },
}

/// An op as a journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Genesis {
        timestamp: i64,
    },
    Lag {
        lag: u64,
    },
    Trx {
        from: String,
        to: String,
        amount: i64,
        timestamp: i64,
    },
    Trc20 {
        contract: String,
        from: String,
        to: String,
        /// Decimal base units.
        amount: String,
        outcome: String,
        timestamp: i64,
    },
    Resubmit {
        id: String,
    },
    Mine {
        timestamp: i64,
    },
    Fork {
        depth: u64,
    },
}

impl From<&Op> for Line {
    fn from(op: &Op) -> Line {
        match op {
            Op::Lag { lag } => Line::Lag { lag: *lag },
            Op::Submit {
                payload: Payload::Trx { from, to, amount },
                timestamp,
            } => Line::Trx {
                from: from.to_base58(),
                to: to.to_base58(),
                amount: *amount,
                timestamp: *timestamp,
            },
            Op::Submit {
                payload:
                    Payload::Trc20 {
                        contract,
                        from,
                        to,
                        amount,
                        outcome,
                    },
                timestamp,
            } => Line::Trc20 {
                contract: contract.to_base58(),
                from: from.to_base58(),
                to: to.to_base58(),
                amount: amount.to_string(),
                outcome: outcome.contract_ret().to_string(),
                timestamp: *timestamp,
            },
            Op::Resubmit { id } => Line::Resubmit { id: id.clone() },
            Op::Mine { timestamp } => Line::Mine {
                timestamp: *timestamp,
            },
            Op::Fork { depth } => Line::Fork { depth: *depth },
        }
    }
}

impl TryFrom<Line> for Op {
    type Error = String;

    fn try_from(line: Line) -> Result<Op, String> {
        let address = |text: &str| TronAddress::parse(text).map_err(|e| format!("{text}: {e}"));
        Ok(match line {
            Line::Genesis { .. } => return Err("a second genesis".into()),
            Line::Lag { lag } => Op::Lag { lag },
            Line::Trx {
                from,
                to,
                amount,
                timestamp,
            } => Op::Submit {
                payload: Payload::Trx {
                    from: address(&from)?,
                    to: address(&to)?,
                    amount,
                },
                timestamp,
            },
            Line::Trc20 {
                contract,
                from,
                to,
                amount,
                outcome,
                timestamp,
            } => Op::Submit {
                payload: Payload::Trc20 {
                    contract: address(&contract)?,
                    from: address(&from)?,
                    to: address(&to)?,
                    amount: U256::from_str_radix(&amount, 10)
                        .map_err(|e| format!("amount {amount}: {e}"))?,
                    outcome: [Outcome::Success, Outcome::Revert, Outcome::OutOfEnergy]
                        .into_iter()
                        .find(|o| o.contract_ret() == outcome)
                        .ok_or_else(|| format!("unknown outcome {outcome}"))?,
                },
                timestamp,
            },
            Line::Resubmit { id } => Op::Resubmit { id },
            Line::Mine { timestamp } => Op::Mine { timestamp },
            Line::Fork { depth } => Op::Fork { depth },
        })
    }
}

/// The open journal file, appended to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens `path`: its genesis time and ops when it exists, otherwise a new file whose
    /// genesis time is `genesis()`.
    pub(super) fn open(
        path: &Path,
        genesis: impl FnOnce() -> i64,
    ) -> Result<(Journal, i64, Vec<Op>), JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let damaged = |line: usize, problem: String| JournalError::Damaged {
            path: path.to_path_buf(),
            line,
            problem,
        };
        let (genesis, ops, valid_len) = match File::open(path) {
            Ok(file) => {
                let mut reader = BufReader::new(file);
                let mut genesis_time = None;
                let mut ops = Vec::new();
                let mut valid_len = 0u64;
                let mut text = String::new();
                let mut number = 0;
                loop {
                    text.clear();
                    let read = reader.read_line(&mut text).map_err(io)?;
                    if read == 0 {
                        break;
                    }
                    number += 1;
                    if !text.ends_with('\n') {
                        // The torn write of a killed process: never confirmed, dropped.
                        break;
                    }
                    let line: Line = serde_json::from_str(text.trim_end())
                        .map_err(|e| damaged(number, e.to_string()))?;
                    match (genesis_time, line) {
                        (None, Line::Genesis { timestamp }) => genesis_time = Some(timestamp),
                        (None, _) => return Err(damaged(number, "no genesis line first".into())),
                        (Some(_), line) => {
                            ops.push(Op::try_from(line).map_err(|p| damaged(number, p))?)
                        }
                    }
                    valid_len += read as u64;
                }
                match genesis_time {
                    Some(g) => (g, ops, Some(valid_len)),
                    None => (genesis(), Vec::new(), None),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (genesis(), Vec::new(), None),
            Err(e) => return Err(io(e)),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if let Some(len) = valid_len {
            file.set_len(len).map_err(io)?;
        } else {
            file.set_len(0).map_err(io)?;
        }
        let mut journal = Journal {
            path: path.to_path_buf(),
            file,
        };
        if valid_len.is_none() {
            journal
                .write(&Line::Genesis { timestamp: genesis })
                .map_err(io)?;
        }
        Ok((journal, genesis, ops))
    }

    /// Appends `op` and flushes it to the file.
    pub(super) fn append(&mut self, op: &Op) -> Result<(), JournalError> {
        self.write(&Line::from(op))
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })
    }

    fn write(&mut self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        text.push('\n');
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}
