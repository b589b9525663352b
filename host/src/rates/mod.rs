//! `rates`: fiat pricing. What one whole unit of an asset costs in a fiat currency, and
//! the on-chain amount a fiat price comes to.
//!
//! # Providers and fallback
//!
//! `[[rates.providers]]` lists rate sources, tried **in the order written** for every
//! pair (`ASSET/FIAT`, e.g. `USDT/USD`): the first provider that knows the pair and
//! answers wins; a provider that fails (timeout, HTTP error, malformed answer, a value
//! that is not a positive decimal) is counted in
//! `polypay_rate_provider_errors_total{provider,pair}` and the next one is tried.
//!
//! - `static`: a table in the config (tests, pegged stablecoins, an operator's own
//!   price). Never fails.
//! - `coingecko`: a CoinGecko-compatible `GET {base_url}/simple/price?ids=ID&vs_currencies=fiat`
//!   answering `{"ID": {"usd": 1.0002}}`; `ids` maps asset symbols to the API's coin ids.
//! - `json`: any HTTP endpoint answering JSON, per pair a URL and a JSON pointer
//!   (RFC 6901) to the rate, which may be a JSON number or a decimal string.
//!
//! HTTP answers are cached per (provider, pair) for `cache_secs`, so a busy server asks a
//! rate API at most once per pair and period; requests time out after the provider's
//! `timeout_ms`. A pair no provider knows is [`RateError::Unsupported`]; a pair whose
//! providers all fail is [`RateError::Unavailable`], which a plugin reports as "try
//! again later". Invoices already created keep their amount: a rate outage never touches
//! an existing invoice.
//!
//! # Exact arithmetic
//!
//! Rates are decimals read from the provider's text (a JSON number is taken digit by
//! digit from its source text, never through a float). A fiat price `P` at rate `R`
//! (fiat per whole asset unit) is `P / R` asset units; in base units of an asset with
//! `d` decimals that is `P · 10^d / R`, **rounded up** to the next base unit: the payer's
//! amount is rounded up, never down, so a merchant never receives less than the price.
//!
//! # Re-quotes
//!
//! `invoices.requote` re-prices an unpaid fiat-priced invoice at the current rate; the
//! amount it replaces still pays in full for `requote_grace_secs` (default 300) after it.
//!
//! # Metrics
//!
//! `polypay_rate_age_seconds{pair}`: the age of the rate the last quote of the pair
//! used (cache age included). `polypay_rate_provider_errors_total{provider,pair}`.

mod decimal;
mod provider;

pub use decimal::{Rate, RateParseError, fiat_to_base_units};
pub use provider::{JsonSource, ProviderConfig};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::invoice::Amount;
use provider::Provider;

/// The `[rates]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RatesConfig {
    /// How long an HTTP provider's answer is reused for the same pair.
    pub cache_secs: u64,
    /// How long a quote is valid (`rate-quote.valid-until`).
    pub quote_valid_secs: u64,
    /// After `invoices.requote` moves an invoice to another amount, how long a payment of
    /// the amount it replaced still pays it in full (see `invoice::service`).
    pub requote_grace_secs: u64,
    /// Rate sources, tried in this order.
    pub providers: Vec<ProviderConfig>,
}

impl Default for RatesConfig {
    fn default() -> Self {
        RatesConfig {
            cache_secs: 60,
            quote_valid_secs: 120,
            requote_grace_secs: 300,
            providers: Vec::new(),
        }
    }
}

/// Why no rate or quote could be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// No configured provider knows the pair.
    #[error("no rate source is configured for {0}")]
    Unsupported(String),
    /// Every provider that knows the pair failed.
    #[error("no rate for {pair} is available right now ({reasons})")]
    Unavailable { pair: String, reasons: String },
    /// The fiat amount is not a positive decimal.
    #[error("fiat amount `{0}` must be a positive decimal such as \"19.99\"")]
    InvalidAmount(String),
    /// The converted amount does not fit in 256 bits of base units.
    #[error("the converted amount is too large")]
    Overflow,
}

/// Why the `[rates]` section is refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatesConfigError {
    #[error("rates provider `{provider}`: pair `{pair}` must be ASSET/FIAT, e.g. USDT/USD")]
    BadPair { provider: String, pair: String },
    #[error("rates provider `{provider}`: rate of `{pair}`: {reason}")]
    BadRate {
        provider: String,
        pair: String,
        reason: RateParseError,
    },
    #[error("rates provider `{provider}`: {reason}")]
    BadUrl { provider: String, reason: String },
    #[error("two rates providers are named `{0}`")]
    DuplicateName(String),
}

/// A rate and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedRate {
    pub rate: Rate,
    /// The provider's name.
    pub source: String,
    /// When the provider answered (unix ms).
    pub fetched_at: i64,
}

/// A fiat price converted to an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Base units, rounded up.
    pub amount: Amount,
    pub rate: SourcedRate,
    pub quoted_at: i64,
    pub valid_until: i64,
}

/// The rate service: configured providers, their cache, one HTTP client.
pub struct Rates {
    providers: Vec<Provider>,
    cache: Mutex<HashMap<(usize, String), SourcedRate>>,
    cache_ms: i64,
    quote_valid_ms: i64,
    requote_grace_ms: i64,
    client: reqwest::Client,
}

impl std::fmt::Debug for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rates")
            .field("providers", &self.providers.len())
            .finish_non_exhaustive()
    }
}

impl Default for Rates {
    /// No providers: every quote is [`RateError::Unsupported`].
    fn default() -> Self {
        Rates::new(&RatesConfig::default()).expect("the empty config is valid")
    }
}

/// `ASSET/FIAT`, upper-case.
pub fn pair_name(asset: &str, fiat: &str) -> String {
    format!(
        "{}/{}",
        asset.to_ascii_uppercase(),
        fiat.to_ascii_uppercase()
    )
}

impl Rates {
    /// Checks the config and builds the service.
    pub fn new(config: &RatesConfig) -> Result<Rates, RatesConfigError> {
        let mut providers: Vec<Provider> = Vec::new();
        for (i, p) in config.providers.iter().enumerate() {
            let provider = Provider::from_config(p, i)?;
            if providers.iter().any(|q| q.name == provider.name) {
                return Err(RatesConfigError::DuplicateName(provider.name));
            }
            providers.push(provider);
        }
        Ok(Rates {
            providers,
            cache: Mutex::new(HashMap::new()),
            cache_ms: (config.cache_secs as i64).saturating_mul(1000),
            quote_valid_ms: (config.quote_valid_secs as i64).saturating_mul(1000),
            requote_grace_ms: (config.requote_grace_secs as i64).saturating_mul(1000),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
        })
    }

    /// The rate of one whole `asset` in `fiat`, from the first provider that answers.
    pub async fn rate(&self, asset: &str, fiat: &str) -> Result<SourcedRate, RateError> {
        let pair = pair_name(asset, fiat);
        let mut reasons = Vec::new();
        for (i, provider) in self.providers.iter().enumerate() {
            if !provider.knows(&pair) {
                continue;
            }
            let now = crate::store::now_ms();
            if let Some(hit) = self.cached(i, &pair, now) {
                return Ok(self.observed(hit, &pair, now));
            }
            match provider.fetch(&self.client, &pair).await {
                Ok(rate) => {
                    let sourced = SourcedRate {
                        rate,
                        source: provider.name.clone(),
                        fetched_at: crate::store::now_ms(),
                    };
                    if provider.cacheable() {
                        self.cache
                            .lock()
                            .expect("rate cache lock")
                            .insert((i, pair.clone()), sourced.clone());
                    }
                    return Ok(self.observed(sourced, &pair, crate::store::now_ms()));
                }
                Err(e) => {
                    tracing::warn!(provider = %provider.name, %pair, error = %e, "rate provider failed; trying the next");
                    metrics::counter!("polypay_rate_provider_errors_total", "provider" => provider.name.clone(), "pair" => pair.clone()).increment(1);
                    reasons.push(format!("{}: {e}", provider.name));
                }
            }
        }
        if reasons.is_empty() {
            Err(RateError::Unsupported(pair))
        } else {
            Err(RateError::Unavailable {
                pair,
                reasons: reasons.join("; "),
            })
        }
    }

    /// How long a re-quoted invoice still accepts the amount it replaced (ms).
    pub fn requote_grace_ms(&self) -> i64 {
        self.requote_grace_ms
    }

    /// `fiat_amount` of `fiat` in base units of `asset` (with `decimals`), rounded up.
    pub async fn quote(
        &self,
        fiat: &str,
        fiat_amount: &str,
        asset: &str,
        decimals: u8,
    ) -> Result<Quote, RateError> {
        // Validate the amount before asking anyone for a rate.
        fiat_to_base_units(fiat_amount, &Rate::ONE, decimals)?;
        let rate = self.rate(asset, fiat).await?;
        let amount = fiat_to_base_units(fiat_amount, &rate.rate, decimals)?;
        let quoted_at = crate::store::now_ms();
        Ok(Quote {
            amount,
            rate,
            quoted_at,
            valid_until: quoted_at.saturating_add(self.quote_valid_ms),
        })
    }

    fn cached(&self, provider: usize, pair: &str, now: i64) -> Option<SourcedRate> {
        let cache = self.cache.lock().expect("rate cache lock");
        cache
            .get(&(provider, pair.to_owned()))
            .filter(|hit| now.saturating_sub(hit.fetched_at) < self.cache_ms)
            .cloned()
    }

    fn observed(&self, rate: SourcedRate, pair: &str, now: i64) -> SourcedRate {
        let age = now.saturating_sub(rate.fetched_at).max(0) as f64 / 1000.0;
        metrics::gauge!("polypay_rate_age_seconds", "pair" => pair.to_owned()).set(age);
        rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_rates(table: &[(&str, &str)]) -> RatesConfig {
        RatesConfig {
            providers: vec![ProviderConfig::Static {
                name: None,
                rates: table
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            ..RatesConfig::default()
        }
    }

    #[tokio::test]
    async fn static_table_quotes_round_the_payers_amount_up() {
        let rates = Rates::new(&static_rates(&[("USDT/USD", "1"), ("ETH/USD", "3000")])).unwrap();
        let q = rates.quote("USD", "20", "USDT", 6).await.unwrap();
        assert_eq!(q.amount.to_string(), "20000000");
        assert_eq!(q.rate.source, "static");
        // 10 USD at 3000 USD/ETH is 0.00333…: rounded up to the next wei.
        let q = rates.quote("usd", "10", "eth", 18).await.unwrap();
        assert_eq!(q.amount.to_string(), "3333333333333334");
        assert_eq!(q.valid_until - q.quoted_at, 120_000);
    }

    #[tokio::test]
    async fn unknown_pairs_are_unsupported_and_bad_amounts_invalid() {
        let rates = Rates::new(&static_rates(&[("USDT/USD", "1")])).unwrap();
        assert_eq!(
            rates.quote("CNY", "1", "USDT", 6).await,
            Err(RateError::Unsupported("USDT/CNY".into()))
        );
        for bad in ["0", "-1", "1e3", "", "abc", "0.000"] {
            assert!(
                matches!(
                    rates.quote("USD", bad, "USDT", 6).await,
                    Err(RateError::InvalidAmount(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Rates::default().quote("USD", "1", "USDT", 6).await,
            Err(RateError::Unsupported(_))
        ));
    }

    #[test]
    fn bad_static_tables_are_refused_at_start() {
        assert!(matches!(
            Rates::new(&static_rates(&[("USDTUSD", "1")])),
            Err(RatesConfigError::BadPair { .. })
        ));
        assert!(matches!(
            Rates::new(&static_rates(&[("USDT/USD", "0")])),
            Err(RatesConfigError::BadRate { .. })
        ));
        assert!(matches!(
            Rates::new(&static_rates(&[("USDT/USD", "1,5")])),
            Err(RatesConfigError::BadRate { .. })
        ));
    }
}
