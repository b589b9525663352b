//! Rate providers: the config entries and how each one fetches a pair.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::RatesConfigError;
use super::decimal::{Rate, RateParseError};

/// Largest rate API answer read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

fn default_timeout_ms() -> u64 {
    3000
}

fn default_max_age_secs() -> u64 {
    3600
}

fn default_coingecko_url() -> String {
    "https://api.coingecko.com/api/v3".into()
}

/// One `[[rates.providers]]` entry; `kind` selects the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderConfig {
    /// `rates = { "USDT/USD" = "1", "USDT/CNY" = "7.1" }`.
    Static {
        /// Name in logs and metrics (default: the kind).
        #[serde(default)]
        name: Option<String>,
        rates: BTreeMap<String, String>,
    },
    /// A CoinGecko-compatible `simple/price` endpoint.
    Coingecko {
        #[serde(default)]
        name: Option<String>,
        /// Up to and without `/simple/price`.
        #[serde(default = "default_coingecko_url")]
        base_url: String,
        /// Asset symbol → the API's coin id, e.g. `{ USDT = "tether", ETH = "ethereum" }`.
        ids: BTreeMap<String, String>,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    /// Chainlink price feeds (AggregatorV3Interface) read with `eth_call` on an EVM node.
    Chainlink {
        #[serde(default)]
        name: Option<String>,
        /// The node's JSON-RPC URL.
        rpc_url: String,
        /// Pair → feed contract address, e.g. `{ "ETH/USD" = "0x5f4e…" }`.
        feeds: BTreeMap<String, String>,
        /// Answers updated longer ago than this are refused as stale.
        #[serde(default = "default_max_age_secs")]
        max_age_secs: u64,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    /// Any JSON endpoint: per pair, a URL and the JSON pointer of the rate in its answer.
    Json {
        #[serde(default)]
        name: Option<String>,
        pairs: BTreeMap<String, JsonSource>,
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
}

/// Where a `json` provider finds one pair's rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSource {
    pub url: String,
    /// RFC 6901, e.g. `/data/rates/USD`.
    pub pointer: String,
}

/// Why one provider could not give a rate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("answer is over {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("no value at `{0}` in the answer")]
    Missing(String),
    #[error("bad request URL: {0}")]
    Url(String),
    #[error("JSON-RPC error: {0}")]
    Rpc(String),
    #[error("the feed's answer is not positive")]
    NotPositive,
    #[error(
        "the feed's answer is stale: updated {age_secs} s ago, at most {max_age_secs} s allowed"
    )]
    Stale { age_secs: u64, max_age_secs: u64 },
    #[error("the value at `{pointer}` is not a rate: {reason}")]
    NotARate {
        pointer: String,
        reason: RateParseError,
    },
}

enum Source {
    Static(BTreeMap<String, Rate>),
    Coingecko {
        base_url: String,
        ids: BTreeMap<String, String>,
    },
    Json(BTreeMap<String, JsonSource>),
    Chainlink {
        rpc_url: String,
        feeds: BTreeMap<String, alloy_primitives::Address>,
        max_age_secs: u64,
    },
}

pub(crate) struct Provider {
    pub name: String,
    timeout: Duration,
    source: Source,
}

fn normalized_pair(provider: &str, pair: &str) -> Result<String, RatesConfigError> {
    match pair.split_once('/') {
        Some((a, f)) if !a.is_empty() && !f.is_empty() && !f.contains('/') => {
            Ok(super::pair_name(a, f))
        }
        _ => Err(RatesConfigError::BadPair {
            provider: provider.to_owned(),
            pair: pair.to_owned(),
        }),
    }
}

fn check_url(provider: &str, url: &str) -> Result<(), RatesConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(RatesConfigError::BadUrl {
            provider: provider.to_owned(),
            reason: format!("`{url}` is not an http(s) URL"),
        }),
        Err(e) => Err(RatesConfigError::BadUrl {
            provider: provider.to_owned(),
            reason: format!("`{url}`: {e}"),
        }),
    }
}

impl Provider {
    pub fn from_config(
        config: &ProviderConfig,
        index: usize,
    ) -> Result<Provider, RatesConfigError> {
        let default_name = |kind: &str| {
            if index == 0 {
                kind.to_owned()
            } else {
                format!("{kind}-{index}")
            }
        };
        Ok(match config {
            ProviderConfig::Static { name, rates } => {
                let name = name.clone().unwrap_or_else(|| default_name("static"));
                let mut table = BTreeMap::new();
                for (pair, text) in rates {
                    let rate = Rate::parse(text).map_err(|reason| RatesConfigError::BadRate {
                        provider: name.clone(),
                        pair: pair.clone(),
                        reason,
                    })?;
                    table.insert(normalized_pair(&name, pair)?, rate);
                }
                Provider {
                    name,
                    timeout: Duration::ZERO,
                    source: Source::Static(table),
                }
            }
            ProviderConfig::Coingecko {
                name,
                base_url,
                ids,
                timeout_ms,
            } => {
                let name = name.clone().unwrap_or_else(|| default_name("coingecko"));
                check_url(&name, base_url)?;
                Provider {
                    timeout: Duration::from_millis(*timeout_ms),
                    source: Source::Coingecko {
                        base_url: base_url.trim_end_matches('/').to_owned(),
                        ids: ids
                            .iter()
                            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                            .collect(),
                    },
                    name,
                }
            }
            ProviderConfig::Chainlink {
                name,
                rpc_url,
                feeds,
                max_age_secs,
                timeout_ms,
            } => {
                let name = name.clone().unwrap_or_else(|| default_name("chainlink"));
                check_url(&name, rpc_url)?;
                let mut table = BTreeMap::new();
                for (pair, address) in feeds {
                    let parsed = address.parse::<alloy_primitives::Address>().map_err(|e| {
                        RatesConfigError::BadUrl {
                            provider: name.clone(),
                            reason: format!("feed `{address}` of `{pair}`: {e}"),
                        }
                    })?;
                    table.insert(normalized_pair(&name, pair)?, parsed);
                }
                Provider {
                    name,
                    timeout: Duration::from_millis(*timeout_ms),
                    source: Source::Chainlink {
                        rpc_url: rpc_url.clone(),
                        feeds: table,
                        max_age_secs: *max_age_secs,
                    },
                }
            }
            ProviderConfig::Json {
                name,
                pairs,
                timeout_ms,
            } => {
                let name = name.clone().unwrap_or_else(|| default_name("json"));
                let mut table = BTreeMap::new();
                for (pair, source) in pairs {
                    check_url(&name, &source.url)?;
                    table.insert(normalized_pair(&name, pair)?, source.clone());
                }
                Provider {
                    name,
                    timeout: Duration::from_millis(*timeout_ms),
                    source: Source::Json(table),
                }
            }
        })
    }

    /// Whether this provider can price `pair` (`ASSET/FIAT`, upper-case).
    pub fn knows(&self, pair: &str) -> bool {
        match &self.source {
            Source::Static(table) => table.contains_key(pair),
            Source::Coingecko { ids, .. } => pair
                .split_once('/')
                .is_some_and(|(asset, _)| ids.contains_key(asset)),
            Source::Json(table) => table.contains_key(pair),
            Source::Chainlink { feeds, .. } => feeds.contains_key(pair),
        }
    }

    /// Whether answers are worth caching (the static table is its own cache).
    pub fn cacheable(&self) -> bool {
        !matches!(self.source, Source::Static(_))
    }

    pub async fn fetch(&self, client: &reqwest::Client, pair: &str) -> Result<Rate, FetchError> {
        let (asset, fiat) = pair.split_once('/').unwrap_or((pair, ""));
        match &self.source {
            Source::Static(table) => Ok(*table
                .get(pair)
                .ok_or_else(|| FetchError::Missing(pair.into()))?),
            Source::Coingecko { base_url, ids } => {
                let id = ids
                    .get(asset)
                    .ok_or_else(|| FetchError::Missing(pair.into()))?;
                let fiat = fiat.to_ascii_lowercase();
                let mut url = reqwest::Url::parse(&format!("{base_url}/simple/price"))
                    .map_err(|e| FetchError::Url(e.to_string()))?;
                url.query_pairs_mut()
                    .append_pair("ids", id)
                    .append_pair("vs_currencies", &fiat);
                let body = self.get(client.get(url)).await?;
                rate_at(&body, &format!("/{}/{fiat}", escape(id)))
            }
            Source::Json(table) => {
                let source = table
                    .get(pair)
                    .ok_or_else(|| FetchError::Missing(pair.into()))?;
                let body = self.get(client.get(&source.url)).await?;
                rate_at(&body, &source.pointer)
            }
            Source::Chainlink {
                rpc_url,
                feeds,
                max_age_secs,
            } => {
                let feed = feeds
                    .get(pair)
                    .ok_or_else(|| FetchError::Missing(pair.into()))?;
                self.chainlink(client, rpc_url, *feed, *max_age_secs).await
            }
        }
    }

    /// `latestRoundData()` and `decimals()` of an AggregatorV3Interface feed: the answer
    /// scaled by its decimals, refused when not positive or older than `max_age_secs`.
    async fn chainlink(
        &self,
        client: &reqwest::Client,
        rpc_url: &str,
        feed: alloy_primitives::Address,
        max_age_secs: u64,
    ) -> Result<Rate, FetchError> {
        use alloy::sol_types::SolCall;
        let decimals = self
            .eth_call(
                client,
                rpc_url,
                feed,
                &aggregator::decimalsCall {}.abi_encode(),
            )
            .await?;
        let decimals = aggregator::decimalsCall::abi_decode_returns(&decimals)
            .map_err(|e| FetchError::Rpc(format!("decimals(): {e}")))?;
        let round = self
            .eth_call(
                client,
                rpc_url,
                feed,
                &aggregator::latestRoundDataCall {}.abi_encode(),
            )
            .await?;
        let round = aggregator::latestRoundDataCall::abi_decode_returns(&round)
            .map_err(|e| FetchError::Rpc(format!("latestRoundData(): {e}")))?;
        if round.answer <= alloy_primitives::I256::ZERO {
            return Err(FetchError::NotPositive);
        }
        let now = u64::try_from(crate::store::now_ms() / 1000).unwrap_or(0);
        let updated: u64 = round.updatedAt.try_into().unwrap_or(u64::MAX);
        let age_secs = now.saturating_sub(updated);
        if updated > now.saturating_add(max_age_secs) || age_secs > max_age_secs {
            return Err(FetchError::Stale {
                age_secs,
                max_age_secs,
            });
        }
        Rate::from_scaled(round.answer.into_raw(), u32::from(decimals)).map_err(|reason| {
            FetchError::NotARate {
                pointer: "latestRoundData().answer".into(),
                reason,
            }
        })
    }

    async fn eth_call(
        &self,
        client: &reqwest::Client,
        rpc_url: &str,
        to: alloy_primitives::Address,
        data: &[u8],
    ) -> Result<Vec<u8>, FetchError> {
        let request = serde_json::json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [{ "to": to.to_string(), "data": format!("0x{}", hex::encode(data)) }, "latest"],
        });
        let body = self
            .get(
                client
                    .post(rpc_url)
                    .header("content-type", "application/json")
                    .body(request.to_string()),
            )
            .await?;
        let answer: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| FetchError::Rpc(e.to_string()))?;
        if let Some(error) = answer.get("error") {
            return Err(FetchError::Rpc(error.to_string()));
        }
        let result = answer["result"]
            .as_str()
            .ok_or_else(|| FetchError::Rpc("no result".into()))?;
        hex::decode(result.trim_start_matches("0x")).map_err(|e| FetchError::Rpc(e.to_string()))
    }

    async fn get(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, FetchError> {
        let mut response = request
            .timeout(self.timeout)
            .header("accept", "application/json")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

mod aggregator {
    alloy::sol! {
        function decimals() external view returns (uint8);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    }
}

/// A JSON pointer token for `key` (RFC 6901 escaping).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The rate at `pointer` in `body`, read from the JSON text itself (a number is never
/// turned into a float): a JSON number or a decimal string.
fn rate_at(body: &[u8], pointer: &str) -> Result<Rate, FetchError> {
    let missing = || FetchError::Missing(pointer.to_owned());
    let mut current: Box<RawValue> = serde_json::from_slice(body).map_err(|_| missing())?;
    if !pointer.is_empty() {
        let tokens = pointer.strip_prefix('/').ok_or_else(missing)?;
        for token in tokens.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            let text = current.get().trim_start();
            current = if text.starts_with('{') {
                let mut map: BTreeMap<String, Box<RawValue>> =
                    serde_json::from_str(text).map_err(|_| missing())?;
                map.remove(&token).ok_or_else(missing)?
            } else if text.starts_with('[') {
                let mut list: Vec<Box<RawValue>> =
                    serde_json::from_str(text).map_err(|_| missing())?;
                let index: usize = token.parse().map_err(|_| missing())?;
                if index >= list.len() {
                    return Err(missing());
                }
                list.swap_remove(index)
            } else {
                return Err(missing());
            };
        }
    }
    let raw = current.get().trim();
    let text = match serde_json::from_str::<String>(raw) {
        Ok(s) => s,
        Err(_) => raw.to_owned(),
    };
    Rate::parse(&text).map_err(|reason| FetchError::NotARate {
        pointer: pointer.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_read_numbers_and_strings_without_floats() {
        let body = br#"{"tether":{"usd":1.00020000000000000001},"data":{"rates":[{"p":"7.1"}]},"a/b":{"x":2}}"#;
        assert_eq!(
            rate_at(body, "/tether/usd").unwrap().to_string(),
            "1.00020000000000000001"
        );
        assert_eq!(rate_at(body, "/data/rates/0/p").unwrap().to_string(), "7.1");
        assert_eq!(rate_at(body, "/a~1b/x").unwrap().to_string(), "2");
        assert!(matches!(
            rate_at(body, "/tether/eur"),
            Err(FetchError::Missing(_))
        ));
        assert!(matches!(
            rate_at(body, "/data/rates/1"),
            Err(FetchError::Missing(_))
        ));
        assert!(matches!(
            rate_at(body, "/data"),
            Err(FetchError::NotARate { .. })
        ));
        assert!(matches!(
            rate_at(b"not json", "/x"),
            Err(FetchError::Missing(_))
        ));
    }
}
