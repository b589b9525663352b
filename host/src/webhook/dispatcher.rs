//! The delivery loop: claim due events, render each for its attempt, send it, record the
//! outcome, schedule the next attempt or dead-letter.
//!
//! An idle worker sleeps `poll_interval_ms`, or less: [`Dispatcher::wake_on`] gives it a
//! signal that changes when new events were committed (on PostgreSQL, by any instance;
//! see [`crate::store::notify`]), and a worker woken by it starts its next pass at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use super::config::WebhookConfig;
use super::render::{RenderError, RenderedWebhook, RetryAdvice, WebhookRenderer};
use super::transport::{SendError, Transport};
use crate::invoice::PayloadError;
use crate::store::outbox::{self, AttemptOutcome, AttemptReport, Claim, DeliveryState, Next};
use crate::store::{Store, StoreError, now_ms};

/// Claims and delivers webhook events of one store. Any number of dispatchers (in one
/// process or several, on one PostgreSQL database) can run side by side; see
/// [`crate::store::outbox`] for why they never send the same attempt twice.
pub struct Dispatcher {
    store: Store,
    config: Arc<WebhookConfig>,
    renderer: Arc<dyn WebhookRenderer>,
    transport: Transport,
    wake: Option<watch::Receiver<u64>>,
}

/// What one pass of [`Dispatcher::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Events whose lease had expired, given back to the queue.
    pub recovered: usize,
    /// Events claimed (and processed) in this pass.
    pub claimed: usize,
}

/// Why a dispatcher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
    #[error(transparent)]
    Transport(#[from] super::transport::TransportError),
}

impl Dispatcher {
    /// A dispatcher over `store`; fails on an invalid config.
    pub fn new(
        store: Store,
        config: WebhookConfig,
        renderer: Arc<dyn WebhookRenderer>,
    ) -> Result<Dispatcher, DispatcherError> {
        config
            .validate()
            .map_err(|(key, message)| DispatcherError::Config { key, message })?;
        let transport = Transport::new(&config)?;
        Ok(Dispatcher {
            store,
            config: Arc::new(config),
            renderer,
            transport,
            wake: None,
        })
    }

    /// Idle workers also start a pass whenever `wake` changes (new events committed).
    pub fn wake_on(mut self, wake: watch::Receiver<u64>) -> Dispatcher {
        self.wake = Some(wake);
        self
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// One pass: give expired leases back, claim up to `batch_size` due events and
    /// deliver them concurrently, each outcome recorded as soon as it is known.
    pub async fn run_once(&self) -> Result<Pass, StoreError> {
        let now = now_ms();
        let recovered = outbox::recover_expired(&self.store, now).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "webhook events retaken from a worker that stopped mid-delivery"
            );
        }
        let lease_until = now + self.config.lease_ms as i64;
        let claims = outbox::claim(&self.store, now, lease_until, self.config.batch_size).await?;
        let claimed = claims.len();
        let results =
            futures::future::join_all(claims.into_iter().map(|claim| self.process(claim))).await;
        for result in results {
            // One event's storage failure must not stop the others; its lease expires
            // and it is retried.
            if let Err(e) = result {
                tracing::error!(error = %e, "recording a webhook attempt failed");
            }
        }
        Ok(Pass { recovered, claimed })
    }

    /// Runs `workers` loops of passes until `stop` turns true; in-flight deliveries finish
    /// (bounded by the request timeout) before it returns. With no workers configured it
    /// only waits for `stop` (so a server does not mistake it for a stopped task).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut loops = tokio::task::JoinSet::new();
        for worker in 0..self.config.workers {
            let dispatcher = self.clone();
            let stop = stop.clone();
            loops.spawn(async move { dispatcher.work(worker, stop).await });
        }
        if self.config.workers > 0 {
            let dispatcher = self.clone();
            let stop = stop.clone();
            loops.spawn(async move { dispatcher.report_queue(stop).await });
        }
        while loops.join_next().await.is_some() {}
        let _ = stop.wait_for(|stop| *stop).await;
    }

    async fn work(&self, worker: u32, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut wake = self.wake.clone();
        if let Some(wake) = wake.as_mut() {
            wake.borrow_and_update();
        }
        while !*stop.borrow() {
            let pause = match self.run_once().await {
                Ok(pass) if pass.claimed as u32 >= self.config.batch_size => {
                    failures = 0;
                    // A full batch: more may be due. Let other tasks run, then go on.
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    self.config.poll_interval()
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = self
                        .config
                        .poll_interval()
                        .saturating_mul(1 << failures.min(6))
                        .min(Duration::from_secs(30));
                    tracing::error!(worker, error = %e, retry_in_ms = pause.as_millis() as u64, "webhook worker cannot reach the database");
                    pause
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|stop| *stop) => {}
                _ = woken(&mut wake) => {}
            }
        }
    }

    /// Keeps the queue gauges current.
    async fn report_queue(&self, mut stop: watch::Receiver<bool>) {
        let every = self.config.poll_interval().max(Duration::from_secs(1));
        while !*stop.borrow() {
            if let Err(e) = self.observe_queue().await {
                tracing::debug!(error = %e, "webhook queue gauges not updated");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
        }
    }

    /// Sets `polypay_webhook_queue_depth` and `polypay_webhook_oldest_pending_age_seconds`.
    pub async fn observe_queue(&self) -> Result<(), StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        let (depth, oldest) = outbox::queue_depth(&mut conn).await?;
        metrics::gauge!("polypay_webhook_queue_depth").set(depth as f64);
        let age = oldest
            .map(|created| (now_ms() - created).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("polypay_webhook_oldest_pending_age_seconds").set(age);
        Ok(())
    }

    async fn process(&self, claim: Claim) -> Result<(), StoreError> {
        if claim
            .delivery
            .kind
            .starts_with(crate::ledger::EVENT_KIND_PREFIX)
        {
            return self.process_ledger(claim).await;
        }
        let delivery = &claim.delivery;
        let (id, attempt, round_attempt) =
            (delivery.id, delivery.attempts, delivery.round_attempt());
        if delivery.kind == crate::two_factor::DELIVERY_EVENT_KIND {
            return self.process_two_factor(&claim, round_attempt).await;
        }
        let event = match super::event_from_claim(&claim) {
            Ok(event) => event,
            Err(problem @ PayloadError::TooNew { .. }) => {
                // Written by a newer polypay sharing this database: leave it to that one
                // (or to this one once upgraded), like an event of an unmounted plugin.
                tracing::warn!(event_id = id, %problem, "webhook event waits: written by a newer polypay");
                let retry_at = now_ms() + self.config.unmounted_plugin_retry_ms as i64;
                return self.postpone(&claim, retry_at, &problem.to_string()).await;
            }
            Err(problem) => {
                // Nothing to render from: retrying cannot help; keep it visible as dead.
                let report =
                    report_without_request("", AttemptOutcome::RenderFailed, problem.to_string());
                return self.finish(&claim, &report, Next::Dead).await;
            }
        };
        if event.url.is_empty() {
            outbox::unclaim(
                &self.store,
                id,
                attempt,
                DeliveryState::Skipped,
                now_ms(),
                "the invoice has no callback URL",
            )
            .await?;
            count_delivery("skipped");
            return Ok(());
        }
        let rendered = self
            .bounded(self.renderer.render(&event, round_attempt))
            .await;
        self.deliver(&claim, &event.plugin, &event.url, rendered)
            .await
    }

    /// A ledger event (custodial dialects): rendered by its plugin's
    /// `render-ledger-webhook`, then delivered like any event. Without a notify URL it is
    /// still rendered: the plugin may deliver to a URL of its merchant's.
    async fn process_ledger(&self, claim: Claim) -> Result<(), StoreError> {
        let round_attempt = claim.delivery.round_attempt();
        let event = match super::ledger_event_from_claim(&claim) {
            Ok(event) => event,
            Err(problem) => {
                let report =
                    report_without_request("", AttemptOutcome::RenderFailed, problem.to_string());
                return self.finish(&claim, &report, Next::Dead).await;
            }
        };
        let rendered = self
            .bounded(self.renderer.render_ledger(&event, round_attempt))
            .await;
        let url = event
            .payload
            .order
            .as_ref()
            .and_then(|o| o.notify_url.clone())
            .unwrap_or_default();
        self.deliver(&claim, &event.plugin, &url, rendered).await
    }

    /// A rendering, given up after the request timeout.
    async fn bounded(
        &self,
        rendering: impl std::future::Future<Output = Result<Option<RenderedWebhook>, RenderError>>,
    ) -> Result<Option<RenderedWebhook>, RenderError> {
        match tokio::time::timeout(self.config.request_timeout(), rendering).await {
            Err(_) => Err(RenderError::Failed(format!(
                "no answer within {:?}",
                self.config.request_timeout()
            ))),
            Ok(result) => result,
        }
    }

    /// Sends a rendered event (or records why not) and schedules what follows.
    async fn deliver(
        &self,
        claim: &Claim,
        plugin: &str,
        url: &str,
        rendered: Result<Option<RenderedWebhook>, RenderError>,
    ) -> Result<(), StoreError> {
        let delivery = &claim.delivery;
        let (id, attempt, round_attempt) =
            (delivery.id, delivery.attempts, delivery.round_attempt());
        let schedule = self.config.schedule_for(plugin).clone();
        let rendered = match rendered {
            Ok(Some(rendered)) => rendered,
            Ok(None) => {
                outbox::unclaim(
                    &self.store,
                    id,
                    attempt,
                    DeliveryState::Skipped,
                    now_ms(),
                    "the plugin sends no callback for this event",
                )
                .await?;
                count_delivery("skipped");
                return Ok(());
            }
            Err(RenderError::PluginNotMounted(plugin)) => {
                tracing::warn!(
                    event_id = id,
                    %plugin,
                    retry_in_ms = self.config.unmounted_plugin_retry_ms,
                    "webhook event waits: its plugin is not mounted here"
                );
                let retry_at = now_ms() + self.config.unmounted_plugin_retry_ms as i64;
                let reason = format!("plugin `{plugin}` is not mounted");
                return self.postpone(claim, retry_at, &reason).await;
            }
            Err(RenderError::Busy {
                reason,
                retry_after,
            }) => {
                // Capacity is not the plugin's failure nor the receiver's: no attempt.
                tracing::info!(event_id = id, plugin = %plugin, %reason, retry_in_ms = retry_after.as_millis() as u64, "webhook rendering deferred");
                metrics::counter!("polypay_webhook_renders_deferred_total", "plugin" => plugin.to_owned()).increment(1);
                let retry_at = now_ms().saturating_add(retry_after.as_millis() as i64);
                return self.postpone(claim, retry_at, &reason).await;
            }
            Err(RenderError::Failed(problem)) => {
                tracing::warn!(event_id = id, plugin = %plugin, attempt = round_attempt, %problem, "webhook rendering failed");
                count_attempt(AttemptOutcome::RenderFailed);
                let report = report_without_request(
                    url,
                    AttemptOutcome::RenderFailed,
                    format!("rendering failed: {problem}"),
                );
                let next = next_after_failure(&schedule, round_attempt, RetryAdvice::HostSchedule);
                return self.finish(claim, &report, next).await;
            }
        };
        self.send(claim, plugin, &rendered, &schedule, round_attempt)
            .await
    }

    /// Sends one rendered attempt and records how it went.
    async fn send(
        &self,
        claim: &Claim,
        plugin: &str,
        rendered: &RenderedWebhook,
        schedule: &super::config::RetrySchedule,
        round_attempt: u32,
    ) -> Result<(), StoreError> {
        let id = claim.delivery.id;
        let started_at = now_ms();
        let clock = Instant::now();
        let sent = self.transport.send(rendered).await;
        let latency = clock.elapsed();
        let (report, next) =
            self.judge(rendered, sent, started_at, latency, schedule, round_attempt);
        if report.outcome != AttemptOutcome::Refused {
            metrics::histogram!("polypay_webhook_attempt_duration_seconds")
                .record(latency.as_secs_f64());
        }
        count_attempt(report.outcome);
        tracing::info!(
            event_id = id,
            %plugin,
            attempt = round_attempt,
            outcome = report.outcome.as_str(),
            status = report.status_code,
            latency_ms = report.latency_ms,
            error = report.error.as_deref(),
            "webhook attempt"
        );
        self.finish(claim, &report, next).await
    }

    /// The outcome of a sent (or refused) attempt and what follows from it.
    fn judge(
        &self,
        rendered: &RenderedWebhook,
        sent: Result<super::transport::Answer, SendError>,
        started_at: i64,
        latency: Duration,
        schedule: &super::config::RetrySchedule,
        round_attempt: u32,
    ) -> (AttemptReport, Next) {
        let latency_ms = Some(latency.as_millis() as i64);
        match sent {
            Ok(answer) => {
                let accepted =
                    rendered
                        .accept
                        .accepts(answer.status, &answer.body, answer.truncated);
                let report = AttemptReport {
                    url: rendered.url.clone(),
                    started_at,
                    latency_ms,
                    status_code: Some(i64::from(answer.status)),
                    response_body: Some(String::from_utf8_lossy(&answer.body).into_owned()),
                    response_truncated: answer.truncated,
                    error: None,
                    outcome: if accepted {
                        AttemptOutcome::Accepted
                    } else {
                        AttemptOutcome::Rejected
                    },
                };
                let next = if accepted {
                    Next::Delivered
                } else {
                    next_after_failure(schedule, round_attempt, rendered.retry)
                };
                (report, next)
            }
            Err(SendError::Refused(refused)) => {
                // A policy refusal does not heal by waiting: dead-letter it; the operator
                // can allow the target and replay.
                let report = AttemptReport {
                    started_at,
                    ..report_without_request(
                        &rendered.url,
                        AttemptOutcome::Refused,
                        refused.to_string(),
                    )
                };
                (report, Next::Dead)
            }
            Err(e) => {
                let report = AttemptReport {
                    started_at,
                    latency_ms,
                    ..report_without_request(&rendered.url, AttemptOutcome::Failed, e.to_string())
                };
                (
                    report,
                    next_after_failure(schedule, round_attempt, rendered.retry),
                )
            }
        }
    }

    /// Gives a claimed event back, due again at `at`, without counting the attempt: nobody
    /// failed (its plugin is elsewhere or busy, or a newer polypay wrote it).
    /// A one-time code for the operator's SMS / e-mail gateway: rendered by the host from
    /// the payload written with the code ([`crate::two_factor::render_delivery`]), never by
    /// a plugin; skipped once the code has expired.
    async fn process_two_factor(
        &self,
        claim: &Claim,
        round_attempt: u32,
    ) -> Result<(), StoreError> {
        let delivery = &claim.delivery;
        match crate::two_factor::render_delivery(&claim.payload, now_ms()) {
            Ok(Some(rendered)) => {
                let schedule = self.config.schedule_for(&delivery.plugin).clone();
                self.send(claim, &delivery.plugin, &rendered, &schedule, round_attempt)
                    .await
            }
            Ok(None) => {
                outbox::unclaim(
                    &self.store,
                    delivery.id,
                    delivery.attempts,
                    DeliveryState::Skipped,
                    now_ms(),
                    "the code expired before it was delivered",
                )
                .await?;
                count_delivery("skipped");
                Ok(())
            }
            Err(problem) => {
                let report = report_without_request("", AttemptOutcome::RenderFailed, problem);
                self.finish(claim, &report, Next::Dead).await
            }
        }
    }

    async fn postpone(&self, claim: &Claim, at: i64, reason: &str) -> Result<(), StoreError> {
        let (id, attempt) = (claim.delivery.id, claim.delivery.attempts);
        outbox::unclaim(&self.store, id, attempt, DeliveryState::Pending, at, reason).await?;
        Ok(())
    }

    async fn finish(
        &self,
        claim: &Claim,
        report: &AttemptReport,
        next: Next,
    ) -> Result<(), StoreError> {
        let (id, attempt) = (claim.delivery.id, claim.delivery.attempts);
        let recorded =
            outbox::record_attempt(&self.store, id, attempt, report, next, now_ms()).await?;
        if !recorded {
            // Our lease expired and another worker took the event over; its attempt
            // counts. (If ours was accepted, the receiver sees the callback twice: the
            // lease outlives a render plus a request, so only a stalled process gets here.)
            tracing::warn!(
                event_id = id,
                attempt,
                outcome = report.outcome.as_str(),
                "webhook attempt outlived its lease; outcome not recorded"
            );
            return Ok(());
        }
        match next {
            Next::Delivered => count_delivery("delivered"),
            Next::Dead => {
                tracing::warn!(event_id = id, plugin = %claim.delivery.plugin, attempt, error = report.error.as_deref(), "webhook dead-lettered");
                count_delivery("dead");
            }
            Next::RetryAt(_) => {}
        }
        Ok(())
    }
}

/// When to try again after attempt `round_attempt` was not accepted (see
/// [`RetryAdvice`] for how the plugin's advice and the host's schedule combine).
pub fn next_after_failure(
    schedule: &super::config::RetrySchedule,
    round_attempt: u32,
    advice: RetryAdvice,
) -> Next {
    if round_attempt >= schedule.max_attempts {
        return Next::Dead;
    }
    let delay = match advice {
        RetryAdvice::GiveUp => return Next::Dead,
        RetryAdvice::After(delay) => Some(delay),
        RetryAdvice::HostSchedule => schedule.delay(round_attempt, rand::rng().random::<f64>()),
    };
    match delay {
        Some(delay) => {
            Next::RetryAt(now_ms().saturating_add(delay.as_millis().min(i64::MAX as u128) as i64))
        }
        None => Next::Dead,
    }
}

fn report_without_request(url: &str, outcome: AttemptOutcome, error: String) -> AttemptReport {
    AttemptReport {
        url: url.to_string(),
        started_at: now_ms(),
        latency_ms: None,
        status_code: None,
        response_body: None,
        response_truncated: false,
        error: Some(error),
        outcome,
    }
}

fn count_attempt(outcome: AttemptOutcome) {
    metrics::counter!("polypay_webhook_attempts_total", "outcome" => outcome.as_str()).increment(1);
}

fn count_delivery(outcome: &'static str) {
    metrics::counter!("polypay_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// Resolves when `wake` changes; never without a signal (or once its sender is gone).
async fn woken(wake: &mut Option<watch::Receiver<u64>>) {
    if let Some(receiver) = wake.as_mut()
        && receiver.changed().await.is_ok()
    {
        return;
    }
    *wake = None;
    std::future::pending::<()>().await
}
