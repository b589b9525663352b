//! The `[webhooks]` section: workers, timeouts, the target policy and retry schedules.
//!
//! ```toml
//! [webhooks]
//! workers = 2
//! request_timeout_ms = 15000
//! allowed_networks = ["10.20.0.0/16"]   # an internal merchant, nothing else private
//!
//! [webhooks.retry]                      # every plugin without its own schedule
//! initial_delay_ms = 15000
//! multiplier = 2
//! max_delay_ms = 21600000
//! max_attempts = 23
//!
//! [webhooks.plugin_retry.pay-orders]    # one plugin's own schedule (whole, not merged)
//! max_attempts = 6
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::target::TargetPolicy;

/// Settings of webhook delivery (`[webhooks]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Concurrent claim-and-deliver loops in this process; 0 disables delivery here
    /// (another instance on the same PostgreSQL database delivers).
    pub workers: u32,
    /// Events one loop claims at once, at most.
    pub batch_size: u32,
    /// Deliveries in flight in this process (claimed and not yet recorded), over every
    /// loop and receiver. Each is an independent task: a slow receiver holds only its own.
    pub max_in_flight: u32,
    /// Deliveries in flight to one receiver (the `host:port` of an event's callback URL).
    /// As many again may wait for one of them; further events of a receiver that busy are
    /// given back to the queue (no attempt counted) and looked at again a second later, so
    /// one slow merchant cannot take every slot from the others.
    pub per_receiver_in_flight: u32,
    /// How long an idle loop waits before looking for due events again.
    pub poll_interval_ms: u64,
    /// Time to establish the TCP (and TLS) connection.
    pub connect_timeout_ms: u64,
    /// Time for the whole request, response body included. Rendering by the plugin gets
    /// the same budget.
    pub request_timeout_ms: u64,
    /// How long a claimed event stays reserved for its worker. A worker that dies
    /// mid-delivery loses its events to another worker after this; must exceed twice
    /// `request_timeout_ms` (render plus request).
    pub lease_ms: u64,
    /// Response body bytes read and kept per attempt; the rest is not read.
    pub max_response_bytes: usize,
    /// Deliver to loopback, private, link-local, unique-local, CGNAT, metadata and other
    /// non-public addresses too. Off by default: a merchant-supplied callback URL must not
    /// reach inside the operator's network.
    pub allow_private_targets: bool,
    /// Networks (CIDR, e.g. `10.20.0.0/16`, `127.0.0.1/32`, `::1/128`) allowed even though
    /// they are not public. Narrower than `allow_private_targets`.
    pub allowed_networks: Vec<String>,
    /// When an event belongs to a plugin that is not mounted, it stays pending and is
    /// looked at again after this long (it is never dropped).
    pub unmounted_plugin_retry_ms: u64,
    /// The retry schedule of every plugin without its own.
    pub retry: RetrySchedule,
    /// Per-plugin schedules by plugin name; each replaces `retry` whole for that plugin.
    pub plugin_retry: BTreeMap<String, RetrySchedule>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            workers: 2,
            batch_size: 16,
            max_in_flight: 256,
            per_receiver_in_flight: 16,
            poll_interval_ms: 500,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            lease_ms: 60_000,
            max_response_bytes: 16 * 1024,
            allow_private_targets: false,
            allowed_networks: Vec::new(),
            unmounted_plugin_retry_ms: 60_000,
            retry: RetrySchedule::default(),
            plugin_retry: BTreeMap::new(),
        }
    }
}

/// When to try again after an attempt that was not accepted: exponential backoff with
/// jitter, a bounded number of attempts, then the event is dead-lettered.
///
/// The delay before attempt `n + 1` is `initial_delay_ms × multiplierⁿ⁻¹`, capped at
/// `max_delay_ms`, plus a random extra of up to `jitter` of it (never less: a receiver is
/// never retried sooner than the schedule says).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySchedule {
    /// Delay before the second attempt.
    pub initial_delay_ms: u64,
    /// Growth factor from one delay to the next (1 = constant delay).
    pub multiplier: u32,
    /// Upper bound of one delay.
    pub max_delay_ms: u64,
    /// Attempts in all, the first included; when the last is not accepted the event is
    /// dead-lettered.
    pub max_attempts: u32,
    /// Fraction (0 to 1) of each delay added at random, so that retries after an outage
    /// do not all arrive at once.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    /// 15 s, 30 s, 1 min, … doubling up to 6 h, 23 attempts: about 3.1 days from the first
    /// attempt to the last (before jitter, which only adds).
    fn default() -> Self {
        RetrySchedule {
            initial_delay_ms: 15_000,
            multiplier: 2,
            max_delay_ms: 6 * 3_600_000,
            max_attempts: 23,
            jitter: 0.2,
        }
    }
}

impl RetrySchedule {
    /// The nominal delay (before jitter) after the `attempt`-th attempt (1-based) was not
    /// accepted; `None` when that was the last attempt the schedule allows.
    pub fn nominal_delay(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let mut delay = self.initial_delay_ms;
        for _ in 1..attempt {
            delay = delay.saturating_mul(u64::from(self.multiplier));
            if delay >= self.max_delay_ms {
                break;
            }
        }
        Some(Duration::from_millis(delay.min(self.max_delay_ms)))
    }

    /// [`RetrySchedule::nominal_delay`] plus jitter; `unit` is a random number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Option<Duration> {
        let nominal = self.nominal_delay(attempt)?;
        Some(nominal.mul_f64(1.0 + self.jitter * unit.clamp(0.0, 1.0)))
    }

    /// Time from the first attempt to the last, before jitter.
    pub fn span(&self) -> Duration {
        (1..self.max_attempts)
            .filter_map(|a| self.nominal_delay(a))
            .sum()
    }

    fn validate(&self, key: &'static str) -> Result<(), (&'static str, String)> {
        if self.max_attempts == 0 {
            return Err((key, "max_attempts must be at least 1".into()));
        }
        if self.multiplier == 0 {
            return Err((key, "multiplier must be at least 1".into()));
        }
        if self.initial_delay_ms == 0 || self.max_delay_ms < self.initial_delay_ms {
            return Err((key, "need 0 < initial_delay_ms <= max_delay_ms".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err((
                key,
                format!("jitter {} is not between 0 and 1", self.jitter),
            ));
        }
        Ok(())
    }
}

impl WebhookConfig {
    /// The schedule in force for `plugin`.
    pub fn schedule_for(&self, plugin: &str) -> &RetrySchedule {
        self.plugin_retry.get(plugin).unwrap_or(&self.retry)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// Checks the section; the error names the offending key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.batch_size == 0 || self.batch_size > 1_000 {
            return Err(("webhooks.batch_size", "must be between 1 and 1000".into()));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 100_000 {
            return Err((
                "webhooks.max_in_flight",
                "must be between 1 and 100000".into(),
            ));
        }
        if self.per_receiver_in_flight == 0 || self.per_receiver_in_flight > self.max_in_flight {
            return Err((
                "webhooks.per_receiver_in_flight",
                "must be between 1 and webhooks.max_in_flight".into(),
            ));
        }
        if self.workers > 256 {
            return Err(("webhooks.workers", "must be at most 256".into()));
        }
        for (key, value) in [
            ("webhooks.poll_interval_ms", self.poll_interval_ms),
            ("webhooks.connect_timeout_ms", self.connect_timeout_ms),
            ("webhooks.request_timeout_ms", self.request_timeout_ms),
            (
                "webhooks.unmounted_plugin_retry_ms",
                self.unmounted_plugin_retry_ms,
            ),
        ] {
            if value == 0 {
                return Err((key, "must be greater than zero".into()));
            }
        }
        if self.lease_ms <= self.request_timeout_ms.saturating_mul(2) {
            return Err((
                "webhooks.lease_ms",
                format!(
                    "{} ms does not outlive a render plus a request (2 × request_timeout_ms = {} ms): \
                     a slow delivery would be retaken and sent twice",
                    self.lease_ms,
                    self.request_timeout_ms.saturating_mul(2)
                ),
            ));
        }
        if self.max_response_bytes == 0 {
            return Err((
                "webhooks.max_response_bytes",
                "must be greater than zero".into(),
            ));
        }
        TargetPolicy::from_config(self)
            .map_err(|e| ("webhooks.allowed_networks", e.to_string()))?;
        self.retry.validate("webhooks.retry")?;
        for schedule in self.plugin_retry.values() {
            schedule.validate("webhooks.plugin_retry")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_spans_at_least_three_days() {
        let schedule = RetrySchedule::default();
        assert!(
            schedule.span() >= Duration::from_secs(3 * 24 * 3600),
            "{:?}",
            schedule.span()
        );
        assert_eq!(schedule.nominal_delay(1), Some(Duration::from_secs(15)));
        assert_eq!(schedule.nominal_delay(2), Some(Duration::from_secs(30)));
        assert_eq!(
            schedule.nominal_delay(22),
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(
            schedule.nominal_delay(23),
            None,
            "the 23rd attempt is the last"
        );
    }

    #[test]
    fn jitter_only_lengthens_a_delay_and_by_at_most_its_fraction() {
        let schedule = RetrySchedule {
            jitter: 0.5,
            ..RetrySchedule::default()
        };
        assert_eq!(schedule.delay(1, 0.0), Some(Duration::from_secs(15)));
        assert_eq!(schedule.delay(1, 0.999_999).map(|d| d.as_secs()), Some(22));
        assert_eq!(
            schedule.delay(1, 7.0),
            Some(Duration::from_millis(22_500)),
            "clamped"
        );
    }

    #[test]
    fn huge_multipliers_saturate_at_the_maximum_delay() {
        let schedule = RetrySchedule {
            multiplier: u32::MAX,
            max_attempts: 100,
            ..RetrySchedule::default()
        };
        assert_eq!(
            schedule.nominal_delay(99),
            Some(Duration::from_millis(schedule.max_delay_ms))
        );
    }

    #[test]
    fn a_lease_shorter_than_render_plus_request_is_refused() {
        let config = WebhookConfig {
            lease_ms: 20_000,
            ..WebhookConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().0, "webhooks.lease_ms");
        assert!(WebhookConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_networks_and_schedules_name_their_keys() {
        let config = WebhookConfig {
            allowed_networks: vec!["10.0.0.0/33".into()],
            ..WebhookConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().0,
            "webhooks.allowed_networks"
        );
        let mut config = WebhookConfig::default();
        config.plugin_retry.insert(
            "p".into(),
            RetrySchedule {
                jitter: 2.0,
                ..RetrySchedule::default()
            },
        );
        assert_eq!(config.validate().unwrap_err().0, "webhooks.plugin_retry");
    }
}
