//! The delivery loop: claim due events, render each for its attempt, send it, record the
//! outcome, schedule the next attempt or dead-letter.
//!
//! # Throughput without head-of-line blocking
//!
//! - **Independent deliveries.** A worker loop claims as many due events as there are free
//!   in-flight slots (`max_in_flight` over the process, at most `batch_size` per claim,
//!   and only once a quarter of the slots or a batch is free, so that a full pipeline is
//!   not fed one claim per event) and hands each to its own task, then claims again; it
//!   never waits for a batch to finish. A slot is held from the claim until the outcome
//!   is recorded, so the events claimed and not yet recorded never exceed
//!   `max_in_flight`.
//! - **Per-receiver limits.** At most `per_receiver_in_flight` requests go to one receiver
//!   at a time: the `host:port` of the event's callback URL, known before rendering (the
//!   plugin renders the URL it was given). A delivery finding its receiver at the limit
//!   waits for a slot only if the receiver's recent answer time says one frees within
//!   [`RECEIVER_WAIT`] (before its first answer: one round of its limit), and never
//!   longer than twice that nor than its lease leaves room for; otherwise the event is
//!   given back to the queue without counting an attempt and looked at again after
//!   [`RECEIVER_BUSY_RETRY`]. So a fast receiver with a backlog keeps its pipeline full,
//!   while a slow one holds about its limit of the process's slots and the others keep
//!   flowing; claims stay oldest-first across receivers.
//! - **Batched writes.** Outcomes are recorded by group commit ([`Recorder`]): whichever
//!   task gets to write takes every outcome queued meanwhile and records them all in one
//!   transaction ([`outbox::record_attempts`]). An idle dispatcher writes each outcome at
//!   once; a busy one writes many per commit.
//! - **One HTTP client** ([`Transport`]) for every delivery, whose pool keeps connections
//!   to each receiver open between callbacks.
//! - Expired leases are looked for at a worker's first pass and then at most once per
//!   [`RECOVERY_INTERVAL`] (leases last many seconds; looking on every claim would cost a
//!   write transaction per claim).
//!
//! An idle worker sleeps `poll_interval_ms`, or less: [`Dispatcher::wake_on`] gives it a
//! signal that changes when new events were committed (on PostgreSQL, by any instance;
//! see [`crate::store::notify`]), and a worker woken by it starts its next pass at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use super::config::WebhookConfig;
use super::render::{RenderError, RenderedWebhook, RetryAdvice, WebhookRenderer};
use super::transport::{SendError, Transport};
use crate::invoice::PayloadError;
use crate::store::outbox::{
    self, AttemptOutcome, AttemptRecord, AttemptReport, Claim, DeliveryState, Next,
};
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
    /// One permit per delivery claimed and not yet recorded.
    in_flight: Arc<Semaphore>,
    receivers: Receivers,
    recorder: Recorder,
}

/// How long an event of a receiver at its limit waits in the queue before it is looked
/// at again.
pub const RECEIVER_BUSY_RETRY: Duration = Duration::from_secs(1);

/// A delivery waits for a slot of its busy receiver only when the receiver's answer time
/// says one frees within this long (and gives up after twice this long).
pub const RECEIVER_WAIT: Duration = Duration::from_secs(1);

/// How often a worker loop looks for expired leases.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

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
            in_flight: Arc::new(Semaphore::new(config.max_in_flight as usize)),
            receivers: Receivers::new(config.per_receiver_in_flight as usize),
            recorder: Recorder::default(),
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
    /// deliver them concurrently, returning once every outcome is recorded. The worker
    /// loops of [`Dispatcher::run`] do not wait like this (see the module docs).
    pub async fn run_once(&self) -> Result<Pass, StoreError> {
        let recovered = self.recover().await?;
        let now = now_ms();
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

    /// Gives events whose worker's lease expired back to the queue.
    async fn recover(&self) -> Result<usize, StoreError> {
        let recovered = outbox::recover_expired(&self.store, now_ms()).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "webhook events retaken from a worker that stopped mid-delivery"
            );
        }
        Ok(recovered)
    }

    /// Free in-flight slots for one claim: waits until a quarter of them (or a batch) is
    /// free, so that a full pipeline is not fed one claim per event, then takes up to a
    /// batch.
    async fn free_slots(&self) -> Vec<OwnedSemaphorePermit> {
        let at_least = (self.config.batch_size)
            .min(self.config.max_in_flight / 4)
            .max(1);
        let mut first = self
            .in_flight
            .clone()
            .acquire_many_owned(at_least)
            .await
            .expect("the in-flight semaphore is never closed");
        let mut permits = Vec::with_capacity(self.config.batch_size as usize);
        while first.num_permits() > 1 {
            permits.push(first.split(1).expect("more than one permit"));
        }
        permits.push(first);
        while permits.len() < self.config.batch_size as usize {
            match self.in_flight.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        permits
    }

    /// One claim of a worker loop: as many due events as `permits`, each handed to its
    /// own task with its slot.
    async fn claim_and_spawn(
        self: &Arc<Self>,
        permits: Vec<OwnedSemaphorePermit>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<Pass, StoreError> {
        let now = now_ms();
        let lease_until = now + self.config.lease_ms as i64;
        let claims = outbox::claim(&self.store, now, lease_until, permits.len() as u32).await?;
        let claimed = claims.len();
        for (claim, permit) in claims.into_iter().zip(permits) {
            let dispatcher = self.clone();
            tasks.spawn(async move {
                // Held until the outcome is recorded.
                let _slot = permit;
                if let Err(e) = dispatcher.process(claim).await {
                    tracing::error!(error = %e, "recording a webhook attempt failed");
                }
            });
        }
        Ok(Pass {
            recovered: 0,
            claimed,
        })
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

    async fn work(self: Arc<Self>, worker: u32, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut wake = self.wake.clone();
        if let Some(wake) = wake.as_mut() {
            wake.borrow_and_update();
        }
        let mut deliveries = tokio::task::JoinSet::new();
        let mut recovered_at: Option<Instant> = None;
        while !*stop.borrow() {
            while deliveries.try_join_next().is_some() {}
            // Stopping interrupts only the wait for free slots, never a claim under way
            // (its transaction must commit or roll back now, not hold rows until its
            // connection is used again).
            let permits = tokio::select! {
                permits = self.free_slots() => permits,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let requested = permits.len();
            let pass = async {
                if recovered_at.is_none_or(|at| at.elapsed() >= RECOVERY_INTERVAL) {
                    self.recover().await?;
                    recovered_at = Some(Instant::now());
                }
                self.claim_and_spawn(permits, &mut deliveries).await
            }
            .await;
            let pause = match pass {
                Ok(pass) if pass.claimed >= requested => {
                    failures = 0;
                    // Every free slot filled: more may be due. Let other tasks run, then
                    // go on.
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
        // In-flight deliveries finish and are recorded.
        while deliveries.join_next().await.is_some() {}
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
        let Some(slot) = self.receiver_slot(&claim, &event.url).await? else {
            return Ok(());
        };
        let rendered = self
            .bounded(self.renderer.render(&event, round_attempt))
            .await;
        self.deliver(&claim, &event.plugin, &event.url, rendered, slot)
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
        let url = event
            .payload
            .order
            .as_ref()
            .and_then(|o| o.notify_url.clone())
            .unwrap_or_default();
        let Some(slot) = self.receiver_slot(&claim, &url).await? else {
            return Ok(());
        };
        let rendered = self
            .bounded(self.renderer.render_ledger(&event, round_attempt))
            .await;
        self.deliver(&claim, &event.plugin, &url, rendered, slot)
            .await
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
        slot: ReceiverSlot,
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
        self.send(
            claim,
            plugin,
            &rendered,
            &schedule,
            round_attempt,
            Some(slot),
        )
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
        // The receiver's slot, held while the request is made (none for the operator's
        // two-factor gateway, whose few codes take no receiver slot).
        slot: Option<ReceiverSlot>,
    ) -> Result<(), StoreError> {
        let id = claim.delivery.id;
        let started_at = now_ms();
        let clock = Instant::now();
        let sent = self.transport.send(rendered).await;
        let latency = clock.elapsed();
        if let Some(slot) = slot {
            slot.answered_after(latency);
        }
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

    /// A delivery slot of the receiver of `url`, or `None` when the event was given back
    /// to the queue because the receiver is at its limit and a wait would be long (see
    /// the module docs).
    async fn receiver_slot(
        &self,
        claim: &Claim,
        url: &str,
    ) -> Result<Option<ReceiverSlot>, StoreError> {
        let receiver = self.receivers.of(url);
        if let Ok(permit) = receiver.sending.clone().try_acquire_owned() {
            return Ok(Some(ReceiverSlot {
                _permit: permit,
                receiver,
            }));
        }
        // The wait must also leave room in the lease for a render and a request, each
        // bounded by the request timeout.
        let now = now_ms();
        let room = claim.delivery.locked_until.unwrap_or(now)
            - now
            - 2 * self.config.request_timeout_ms as i64;
        let wait = RECEIVER_WAIT
            .saturating_mul(2)
            .min(Duration::from_millis(room.max(0) as u64));
        let waiting = receiver.waiting.fetch_add(1, Ordering::AcqRel);
        let mut permit = None;
        if !wait.is_zero() && self.receivers.may_wait(&receiver, waiting) {
            permit = tokio::time::timeout(wait, receiver.sending.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok);
        }
        receiver.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(permit) = permit {
            return Ok(Some(ReceiverSlot {
                _permit: permit,
                receiver,
            }));
        }
        let id = claim.delivery.id;
        tracing::debug!(
            event_id = id,
            "webhook event waits: its receiver is at its limit"
        );
        metrics::counter!("polypay_webhook_receiver_busy_total").increment(1);
        let retry_at = now_ms() + RECEIVER_BUSY_RETRY.as_millis() as i64;
        self.postpone(
            claim,
            retry_at,
            "waiting: the receiver has as many deliveries in flight as allowed",
        )
        .await?;
        Ok(None)
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
                    response_body: Some(stored_text(&answer.body)),
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
                self.send(
                    claim,
                    &delivery.plugin,
                    &rendered,
                    &schedule,
                    round_attempt,
                    None,
                )
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
        let Some(recorded) = self
            .recorder
            .record(&self.store, id, attempt, report.clone(), next)
            .await
        else {
            return Ok(());
        };
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

/// The delivery slots of each receiver (`host:port` of a callback URL).
struct Receivers {
    limit: usize,
    by_authority: std::sync::Mutex<HashMap<String, Arc<ReceiverSlots>>>,
}

struct ReceiverSlots {
    sending: Arc<Semaphore>,
    /// Deliveries waiting for one of `sending`'s permits.
    waiting: AtomicUsize,
    /// Moving average of the receiver's answer time in microseconds; 0 until it answered.
    latency_us: AtomicU64,
}

/// A delivery slot of one receiver, held while its request is made.
struct ReceiverSlot {
    _permit: OwnedSemaphorePermit,
    receiver: Arc<ReceiverSlots>,
}

impl ReceiverSlot {
    /// Counts the answer time (or time to a failure) into the receiver's average.
    fn answered_after(&self, latency: Duration) {
        let sample = (latency.as_micros() as u64).max(1);
        let average = &self.receiver.latency_us;
        let old = average.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        average.store(new, Ordering::Relaxed);
    }
}

/// Receivers remembered before idle ones are forgotten.
const RECEIVERS_KEPT: usize = 1_024;

impl Receivers {
    fn new(limit: usize) -> Receivers {
        Receivers {
            limit,
            by_authority: Default::default(),
        }
    }

    /// The slots of the receiver of `url` (an unparsable URL shares one entry; sending
    /// to it fails anyway).
    fn of(&self, url: &str) -> Arc<ReceiverSlots> {
        let authority = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            .unwrap_or_default();
        let mut receivers = self.by_authority.lock().unwrap_or_else(|e| e.into_inner());
        if receivers.len() >= RECEIVERS_KEPT && !receivers.contains_key(&authority) {
            // Forget the receivers nobody is delivering to.
            receivers.retain(|_, slots| Arc::strong_count(slots) > 1);
        }
        receivers
            .entry(authority)
            .or_insert_with(|| {
                Arc::new(ReceiverSlots {
                    sending: Arc::new(Semaphore::new(self.limit)),
                    waiting: AtomicUsize::new(0),
                    latency_us: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// Whether a delivery may wait for a slot of `receiver`, `waiting` others being
    /// ahead of it: when the receiver's answer time says a slot frees within
    /// [`RECEIVER_WAIT`]; before it ever answered, for one round of its limit.
    fn may_wait(&self, receiver: &ReceiverSlots, waiting: usize) -> bool {
        let latency = receiver.latency_us.load(Ordering::Relaxed);
        if latency == 0 {
            return waiting < self.limit;
        }
        let rounds = (waiting / self.limit + 1) as u64;
        Duration::from_micros(latency.saturating_mul(rounds)) <= RECEIVER_WAIT
    }
}

/// Records attempt outcomes by group commit: each delivery queues its outcome, then waits
/// for the writer; whoever holds the writer records everything queued so far in one
/// transaction and tells each delivery whether its outcome was recorded.
#[derive(Default)]
struct Recorder {
    queue: std::sync::Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<()>,
}

struct Queued {
    id: i64,
    attempt: i64,
    report: AttemptReport,
    next: Next,
    /// Whether it was recorded; dropped unanswered when the write failed.
    done: oneshot::Sender<bool>,
}

impl Recorder {
    /// Records one outcome (see [`outbox::record_attempts`]): `Some(false)` when the
    /// attempt was no longer held, `None` when the write failed (logged here).
    async fn record(
        &self,
        store: &Store,
        id: i64,
        attempt: i64,
        report: AttemptReport,
        next: Next,
    ) -> Option<bool> {
        let (done, recorded) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Queued {
                id,
                attempt,
                report,
                next,
                done,
            });
        {
            let _writer = self.writer.lock().await;
            let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
            if !batch.is_empty() {
                let records: Vec<AttemptRecord> = batch
                    .iter()
                    .map(|q| AttemptRecord {
                        id: q.id,
                        attempt: q.attempt,
                        report: &q.report,
                        next: q.next,
                    })
                    .collect();
                match outbox::record_attempts(store, &records, now_ms()).await {
                    Ok(recorded) => {
                        for (queued, recorded) in batch.into_iter().zip(recorded) {
                            let _ = queued.done.send(recorded);
                        }
                    }
                    Err(e) => {
                        // Every outcome of the batch is lost; their leases expire and the
                        // events are retried.
                        tracing::error!(error = %e, outcomes = batch.len(), "recording webhook attempts failed");
                    }
                }
            }
        }
        recorded.await.ok()
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

/// A receiver's answer as stored: UTF-8 (invalid sequences replaced) without NUL
/// characters, which PostgreSQL's text cannot hold; a receiver answering one must not
/// make its outcome, and the others recorded with it, impossible to write.
fn stored_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
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
