//! Webhook delivery against a real local HTTP receiver: what is sent, how often, when, in
//! which order, and what is refused. The renderer is a small stand-in for a plugin (the
//! rendering boundary is a trait inside the host); schedules run in milliseconds.

mod common;
mod webhook_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::db::TestDb;
use polypay_host::invoice::InvoiceService;
use polypay_host::store::now_ms;
use polypay_host::store::outbox::{
    self, AttemptOutcome, DeliveryState, Next, ReplayError, SummaryState,
};
use polypay_host::webhook::{
    self, Acceptance, NoPlugins, RetryAdvice, RetrySchedule, WebhookConfig,
};
use webhook_support::*;

on_both_backends!(
    callback_is_delivered_once_with_the_plugins_headers_and_body,
    receiver_failing_n_times_then_accepting_gets_n_plus_one_attempts_on_the_schedule,
    receiver_that_never_accepts_is_dead_lettered_then_replayed_by_the_operator,
    later_event_of_an_invoice_waits_for_the_earlier_one_while_other_invoices_proceed,
    dead_lettered_earlier_event_does_not_block_later_ones,
    plugin_delay_wins_over_the_host_schedule,
    plugin_giving_up_dead_letters_after_one_attempt,
    failed_rendering_counts_as_a_failed_attempt_on_the_host_schedule,
    events_the_plugin_declines_or_without_callback_url_are_skipped,
    events_of_an_unmounted_plugin_stay_pending_without_counting_an_attempt,
    expired_lease_is_retaken_and_the_lost_attempt_recorded_as_abandoned,
    worker_whose_lease_was_retaken_cannot_record_its_outcome,
    stats_count_a_merchants_deliveries_and_summaries_describe_an_invoice,
    test_event_is_rendered_as_a_test_and_delivered_to_its_url,
    test_events_are_rate_limited_per_merchant,
    a_slow_receiver_neither_blocks_nor_starves_deliveries_to_a_fast_one,
    a_receiver_answering_nul_characters_has_its_outcome_recorded_with_the_others,
    one_batch_of_outcomes_records_the_held_attempts_and_refuses_the_retaken_ones,
    claims_take_the_earliest_due_events_and_among_those_due_together_the_oldest,
);

/// Creates another invoice and waits for its callback: proof that the dispatcher has made
/// further passes since the events before it were finished.
async fn barrier(store: &polypay_host::store::Store, merchant: &str, receiver: &Receiver) {
    let invoice = invoice(store, merchant, Some(&receiver.url("/barrier"))).await;
    let event = events_of(store, &invoice.id).await.remove(0);
    wait_for_state(store, event.id, DeliveryState::Delivered).await;
}

async fn callback_is_delivered_once_with_the_plugins_headers_and_body(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let running = Running::start(&store, fast_config(), Arc::new(TestRenderer::default()));

    let delivered = wait_for_state(&store, event.id, DeliveryState::Delivered).await;
    barrier(&store, &merchant, &receiver).await;
    running.stop().await;

    let received: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.path == "/notify")
        .collect();
    assert_eq!(received.len(), 1, "delivered exactly once");
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("x-test-event"),
        Some(event.id.to_string().as_str())
    );
    assert_eq!(
        request.header("x-test-signature"),
        Some(TestRenderer::signature(&request.body, 1).as_str())
    );
    assert_eq!(
        request.header("content-length"),
        Some(request.body.len().to_string().as_str()),
        "the host sets the length"
    );
    assert!(
        request
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("polypay-webhook/"))
    );
    let body = request.json();
    assert_eq!(body["event_id"], event.id);
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["kind"], "invoice.created");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["invoice_id"], invoice.id.as_str());

    assert_eq!(delivered.attempts, 1);
    assert!(delivered.delivered_at.is_some());
    let attempts = attempts(&store, event.id).await;
    assert_eq!(attempts.len(), 1);
    let attempt = &attempts[0];
    assert_eq!(
        (attempt.attempt, attempt.outcome, attempt.status_code),
        (1, AttemptOutcome::Accepted, Some(200))
    );
    assert!(attempt.accepted);
    assert_eq!(attempt.response_body.as_deref(), Some("ok"));
    assert_eq!(attempt.url, receiver.url("/notify"));
    assert!(attempt.latency_ms.is_some() && attempt.error.is_none());
}

async fn receiver_failing_n_times_then_accepting_gets_n_plus_one_attempts_on_the_schedule(
    db: TestDb,
) {
    const FAILURES: usize = 3;
    let store = db.store().await;
    let receiver = Receiver::start(|_, n| {
        if n < FAILURES {
            Reply::Status(503)
        } else {
            Reply::Body(200, "ok".into())
        }
    })
    .await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let mut config = fast_config();
    config.retry = RetrySchedule {
        initial_delay_ms: 100,
        multiplier: 2,
        max_delay_ms: 1_000,
        max_attempts: 6,
        jitter: 0.0,
    };
    let renderer = Arc::new(TestRenderer::default());
    let running = Running::start(&store, config.clone(), renderer.clone());

    let delivered = wait_for_state(&store, event.id, DeliveryState::Delivered).await;
    barrier(&store, &merchant, &receiver).await;
    running.stop().await;

    let received: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.path == "/notify")
        .collect();
    assert_eq!(received.len(), FAILURES + 1, "exactly N + 1 attempts");
    assert_eq!(delivered.attempts, (FAILURES + 1) as i64);
    for (i, pair) in received.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let nominal = config.retry.nominal_delay(i as u32 + 1).unwrap();
        assert!(
            gap >= nominal,
            "attempt {} came {gap:?} after the previous one, before its {nominal:?}",
            i + 2
        );
        assert!(
            gap < nominal + Duration::from_secs(2),
            "attempt {} came {gap:?} late for its {nominal:?}",
            i + 2
        );
    }
    // Rendered afresh for every attempt: the attempt number and the signature change.
    let attempt_numbers: Vec<u32> = received.iter().map(Received::attempt).collect();
    assert_eq!(attempt_numbers, [1, 2, 3, 4]);
    let signatures: std::collections::HashSet<_> = received
        .iter()
        .map(|r| r.header("x-test-signature").unwrap().to_string())
        .collect();
    assert_eq!(signatures.len(), FAILURES + 1);
    let recorded = attempts(&store, event.id).await;
    let outcomes: Vec<_> = recorded
        .iter()
        .map(|a| (a.attempt, a.outcome, a.status_code))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, AttemptOutcome::Rejected, Some(503)),
            (2, AttemptOutcome::Rejected, Some(503)),
            (3, AttemptOutcome::Rejected, Some(503)),
            (4, AttemptOutcome::Accepted, Some(200)),
        ]
    );
}

async fn receiver_that_never_accepts_is_dead_lettered_then_replayed_by_the_operator(db: TestDb) {
    let store = db.store().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let receiver = {
        let healthy = healthy.clone();
        Receiver::start(move |_, _| {
            if healthy.load(Ordering::SeqCst) {
                Reply::Status(200)
            } else {
                Reply::Status(500)
            }
        })
        .await
    };
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    assert!(
        matches!(
            outbox::replay(&store, event.id, now_ms()).await,
            Err(ReplayError::NotReplayable {
                state: DeliveryState::Pending,
                ..
            })
        ),
        "only finished events can be replayed"
    );
    let mut config = fast_config();
    config.retry.max_attempts = 3;
    let renderer = Arc::new(TestRenderer::default());
    let running = Running::start(&store, config, renderer.clone());

    let dead = wait_for_state(&store, event.id, DeliveryState::Dead).await;
    assert_eq!(dead.attempts, 3);
    assert_eq!(
        receiver.count(),
        3,
        "the schedule's three attempts, then no more"
    );
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("HTTP 500"),
        "{:?}",
        dead.last_error
    );
    healthy.store(true, Ordering::SeqCst);
    let replayed = outbox::replay(&store, event.id, now_ms())
        .await
        .expect("a dead event can be replayed");
    assert_eq!(
        (
            replayed.state,
            replayed.replays,
            replayed.attempts_before_replay
        ),
        (DeliveryState::Pending, 1, 3)
    );
    let delivered = wait_for_state(&store, event.id, DeliveryState::Delivered).await;
    assert_eq!(delivered.attempts, 4);
    running.stop().await;

    let received: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.path == "/notify")
        .collect();
    assert_eq!(received.len(), 4);
    assert_eq!(
        received[3].attempt(),
        1,
        "a replay starts a new round for the plugin"
    );
    let numbers: Vec<i64> = attempts(&store, event.id)
        .await
        .iter()
        .map(|a| a.attempt)
        .collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 4],
        "history is kept and numbering goes on"
    );
    assert!(matches!(
        outbox::replay(&store, 999_999, now_ms()).await,
        Err(ReplayError::NotFound(999_999))
    ));
}

async fn a_slow_receiver_neither_blocks_nor_starves_deliveries_to_a_fast_one(db: TestDb) {
    const SLOW: usize = 12;
    const FAST: usize = 10;
    let store = db.store().await;
    let merchant = merchant(&store).await;
    // The slow receiver holds every request until it is released; the fast one accepts.
    let slow = Receiver::start(|_, _| Reply::Hang).await;
    let fast = Receiver::accepting().await;
    let mut events = Vec::new();
    // The slow receiver's events are the oldest, so claims take them first, and there
    // are more of them than in-flight slots.
    for receiver in [&slow; SLOW].into_iter().chain([&fast; FAST]) {
        let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
        events.push(events_of(&store, &invoice.id).await.remove(0).id);
    }
    let config = WebhookConfig {
        batch_size: 8,
        max_in_flight: 8,
        per_receiver_in_flight: 2,
        request_timeout_ms: 10_000,
        lease_ms: 40_000,
        ..fast_config()
    };
    let running = Running::start(&store, config, Arc::new(TestRenderer::default()));

    // The barrier: the slow receiver answers only after the fast one has received every
    // delivery. With head-of-line blocking (a claim waiting for its slowest request, or
    // the slow receiver holding every slot) that happens only once the held requests
    // time out, after the wait below.
    eventually(
        "every delivery to the fast receiver while the slow one holds its requests",
        Duration::from_secs(8),
        || async { (fast.count() >= FAST).then_some(()) },
    )
    .await;
    assert_eq!(
        slow.count(),
        2,
        "no more requests to one receiver at a time than per_receiver_in_flight"
    );
    slow.release();
    for id in &events {
        wait_for_state(&store, *id, DeliveryState::Delivered).await;
    }
    running.stop().await;

    assert_eq!(fast.count(), FAST);
    assert_eq!(slow.count(), SLOW);
    for id in &events {
        assert_eq!(
            outcomes(&store, *id).await,
            [(1, AttemptOutcome::Accepted)],
            "event {id}: accepted at the first attempt; waiting for a busy receiver is no attempt"
        );
    }
}

async fn later_event_of_an_invoice_waits_for_the_earlier_one_while_other_invoices_proceed(
    db: TestDb,
) {
    let store = db.store().await;
    let merchant = merchant(&store).await;
    // The first two requests to /a fail; /b always accepts.
    let receiver = Receiver::start(|request, _| {
        if request.path == "/a"
            && request.json()["kind"] == "invoice.created"
            && request.attempt() <= 2
        {
            Reply::Status(503)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let a = invoice(&store, &merchant, Some(&receiver.url("/a"))).await;
    InvoiceService::new(store.clone())
        .mark_submitted(&a.id)
        .await
        .unwrap();
    InvoiceService::new(store.clone())
        .cancel(&a.id)
        .await
        .unwrap();
    let b = invoice(&store, &merchant, Some(&receiver.url("/b"))).await;
    let a_events = events_of(&store, &a.id).await;
    assert_eq!(
        a_events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["invoice.created", "invoice.submitted", "invoice.cancelled"]
    );
    let running = Running::start(&store, fast_config(), Arc::new(TestRenderer::default()));

    wait_for_state(&store, a_events[2].id, DeliveryState::Delivered).await;
    running.stop().await;

    let received = receiver.received();
    let a_sequence: Vec<(i64, u32)> = received
        .iter()
        .filter(|r| r.path == "/a")
        .map(|r| (r.event_id(), r.attempt()))
        .collect();
    let (e1, e2, e3) = (a_events[0].id, a_events[1].id, a_events[2].id);
    assert_eq!(
        a_sequence,
        [(e1, 1), (e1, 2), (e1, 3), (e2, 1), (e3, 1)],
        "in order, each after the previous was accepted"
    );
    let b_at = received
        .iter()
        .find(|r| r.path == "/b")
        .expect("b delivered")
        .at;
    let a_accepted_at = received
        .iter()
        .filter(|r| r.path == "/a")
        .nth(2)
        .unwrap()
        .at;
    assert!(
        b_at < a_accepted_at,
        "another invoice's callback does not wait for a's retries"
    );
    assert_eq!(
        events_of(&store, &b.id).await[0].state,
        DeliveryState::Delivered
    );
}

async fn dead_lettered_earlier_event_does_not_block_later_ones(db: TestDb) {
    let store = db.store().await;
    let merchant = merchant(&store).await;
    let receiver = Receiver::start(|request, _| {
        if request.json()["kind"] == "invoice.created" {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    InvoiceService::new(store.clone())
        .cancel(&invoice.id)
        .await
        .unwrap();
    let events = events_of(&store, &invoice.id).await;
    let mut config = fast_config();
    config.retry.max_attempts = 2;
    let running = Running::start(&store, config, Arc::new(TestRenderer::default()));

    wait_for_state(&store, events[1].id, DeliveryState::Delivered).await;
    running.stop().await;

    assert_eq!(
        delivery(&store, events[0].id).await.state,
        DeliveryState::Dead
    );
    let kinds: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["invoice.created", "invoice.created", "invoice.cancelled"],
        "the later event only after the earlier died"
    );
}

async fn plugin_delay_wins_over_the_host_schedule(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::start(|_, n| {
        if n == 0 {
            Reply::Status(502)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let renderer = TestRenderer {
        retry: RetryAdvice::After(Duration::from_millis(600)),
        ..TestRenderer::default()
    };
    let running = Running::start(&store, fast_config(), Arc::new(renderer));

    wait_for_state(&store, event.id, DeliveryState::Delivered).await;
    running.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(600),
        "the plugin asked for 600 ms, the host schedule says 100 ms: {gap:?}"
    );
}

async fn plugin_giving_up_dead_letters_after_one_attempt(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::start(|_, _| Reply::Status(500)).await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let renderer = TestRenderer {
        retry: RetryAdvice::GiveUp,
        ..TestRenderer::default()
    };
    let running = Running::start(&store, fast_config(), Arc::new(renderer));

    let dead = wait_for_state(&store, event.id, DeliveryState::Dead).await;
    running.stop().await;

    assert_eq!(
        dead.attempts, 1,
        "the schedule allows 4, the plugin said none"
    );
    assert_eq!(receiver.count(), 1);
}

async fn failed_rendering_counts_as_a_failed_attempt_on_the_host_schedule(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let mut config = fast_config();
    config.retry.max_attempts = 2;
    let renderer = Arc::new(TestRenderer {
        fail: true,
        ..TestRenderer::default()
    });
    let running = Running::start(&store, config, renderer.clone());

    let dead = wait_for_state(&store, event.id, DeliveryState::Dead).await;
    running.stop().await;

    assert_eq!(receiver.count(), 0, "nothing is sent without a rendering");
    assert_eq!(
        *renderer.calls.lock().unwrap(),
        [(event.id, 1), (event.id, 2)]
    );
    assert_eq!(dead.attempts, 2);
    let recorded = attempts(&store, event.id).await;
    assert!(
        recorded
            .iter()
            .all(|a| a.outcome == AttemptOutcome::RenderFailed
                && a.error.as_deref().unwrap().contains("trap"))
    );
}

async fn events_the_plugin_declines_or_without_callback_url_are_skipped(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let with_url = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    InvoiceService::new(store.clone())
        .cancel(&with_url.id)
        .await
        .unwrap();
    let without_url = invoice(&store, &merchant, None).await;
    let renderer = Arc::new(TestRenderer {
        skip_kinds: vec!["invoice.created".into()],
        ..TestRenderer::default()
    });
    let running = Running::start(&store, fast_config(), renderer.clone());

    let events = events_of(&store, &with_url.id).await;
    wait_for_state(&store, events[1].id, DeliveryState::Delivered).await;
    let no_url_event = events_of(&store, &without_url.id).await.remove(0);
    let skipped = wait_for_state(&store, no_url_event.id, DeliveryState::Skipped).await;
    running.stop().await;

    let declined = delivery(&store, events[0].id).await;
    assert_eq!(
        (declined.state, declined.attempts),
        (DeliveryState::Skipped, 0)
    );
    assert_eq!(skipped.attempts, 0);
    assert!(skipped.last_error.unwrap().contains("no callback URL"));
    assert!(
        !renderer
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|(id, _)| *id == no_url_event.id),
        "not rendered without a URL"
    );
    assert_eq!(receiver.count(), 1, "only the cancelled callback was sent");
    assert!(attempts(&store, events[0].id).await.is_empty());
}

async fn events_of_an_unmounted_plugin_stay_pending_without_counting_an_attempt(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let started = now_ms();
    let running = Running::start(&store, fast_config(), Arc::new(NoPlugins));

    let waiting = eventually(
        "the event to be looked at and put back",
        Duration::from_secs(10),
        || async { Some(delivery(&store, event.id).await).filter(|d| d.last_error.is_some()) },
    )
    .await;
    running.stop().await;

    assert_eq!(waiting.state, DeliveryState::Pending);
    assert_eq!(waiting.attempts, 0);
    assert!(
        waiting
            .last_error
            .unwrap()
            .contains(webhook_support::PLUGIN)
    );
    assert!(
        waiting.next_attempt_at >= started + 60_000,
        "looked at again after unmounted_plugin_retry_ms"
    );
    assert_eq!(receiver.count(), 0);
    assert!(attempts(&store, event.id).await.is_empty());
}

async fn expired_lease_is_retaken_and_the_lost_attempt_recorded_as_abandoned(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    // A worker claims the event and dies: its lease runs out at once.
    let now = now_ms();
    let claims = outbox::claim(&store, now, now, 10).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(
        delivery(&store, event.id).await.state,
        DeliveryState::Delivering
    );
    let renderer = Arc::new(TestRenderer::default());
    let running = Running::start(&store, fast_config(), renderer.clone());

    let delivered = wait_for_state(&store, event.id, DeliveryState::Delivered).await;
    running.stop().await;

    assert_eq!(delivered.attempts, 2);
    let recorded = outcomes(&store, event.id).await;
    assert_eq!(
        recorded,
        [
            (1, AttemptOutcome::Abandoned),
            (2, AttemptOutcome::Accepted)
        ]
    );
    assert_eq!(*renderer.calls.lock().unwrap(), [(event.id, 2)]);
}

async fn worker_whose_lease_was_retaken_cannot_record_its_outcome(db: TestDb) {
    let store = db.store().await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some("http://127.0.0.1:9/notify")).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let now = now_ms();
    let stale = outbox::claim(&store, now, now, 10).await.unwrap().remove(0);
    assert_eq!(outbox::recover_expired(&store, now).await.unwrap(), 1);
    let fresh = outbox::claim(&store, now, now + 60_000, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((stale.delivery.attempts, fresh.delivery.attempts), (1, 2));
    assert!(
        outbox::claim(&store, now, now + 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "a held event is not claimed twice"
    );

    let report = outbox::AttemptReport {
        url: "http://127.0.0.1:9/notify".into(),
        started_at: now,
        latency_ms: Some(5),
        status_code: Some(200),
        response_body: Some("ok".into()),
        response_truncated: false,
        error: None,
        outcome: AttemptOutcome::Accepted,
    };
    assert!(
        !outbox::record_attempt(&store, event.id, 1, &report, Next::Delivered, now)
            .await
            .unwrap(),
        "the stale worker lost it"
    );
    assert!(
        outbox::record_attempt(&store, event.id, 2, &report, Next::Delivered, now)
            .await
            .unwrap()
    );
    assert!(
        !outbox::record_attempt(&store, event.id, 2, &report, Next::Delivered, now)
            .await
            .unwrap(),
        "recorded once"
    );
    let outcomes = outcomes(&store, event.id).await;
    assert_eq!(
        outcomes,
        [
            (1, AttemptOutcome::Abandoned),
            (2, AttemptOutcome::Accepted)
        ]
    );
    assert!(
        outbox::claim(&store, now_ms(), now + 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "a delivered event is never claimed again"
    );
}

async fn stats_count_a_merchants_deliveries_and_summaries_describe_an_invoice(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::start(|request, _| {
        if request.path == "/ok" {
            Reply::Status(200)
        } else {
            Reply::Status(500)
        }
    })
    .await;
    let shop = merchant(&store).await;
    let other = merchant(&store).await;
    let ok = invoice(&store, &shop, Some(&receiver.url("/ok"))).await;
    let failing = invoice(&store, &shop, Some(&receiver.url("/fail"))).await;
    let elsewhere = invoice(&store, &other, Some(&receiver.url("/ok"))).await;
    let mut config = fast_config();
    config.retry.max_attempts = 2;
    let running = Running::start(&store, config, Arc::new(TestRenderer::default()));
    wait_for_state(
        &store,
        events_of(&store, &ok.id).await[0].id,
        DeliveryState::Delivered,
    )
    .await;
    wait_for_state(
        &store,
        events_of(&store, &failing.id).await[0].id,
        DeliveryState::Dead,
    )
    .await;
    wait_for_state(
        &store,
        events_of(&store, &elsewhere.id).await[0].id,
        DeliveryState::Delivered,
    )
    .await;
    running.stop().await;
    let waiting = invoice(&store, &shop, Some(&receiver.url("/ok"))).await;

    let stats = webhook::merchant_stats(&store, &shop, None, 7)
        .await
        .unwrap();
    assert_eq!(
        (stats.total, stats.delivered, stats.failed, stats.pending),
        (3, 1, 1, 1)
    );
    assert_eq!(stats.success_rate, Some(0.5));
    assert_eq!(stats.average_attempts, Some(1.5));
    // One attempt delivered `ok`, two gave `failing` up; `waiting` has had none.
    assert_eq!((stats.attempts, stats.finished_attempts), (3, 3));
    assert!(stats.average_latency_ms.is_some());
    let scoped = webhook::merchant_stats(&store, &shop, Some("another-plugin"), 7)
        .await
        .unwrap();
    assert_eq!(scoped.total, 0, "a plugin sees only its own events");

    let mut conn = store.pool().acquire().await.unwrap();
    let delivered = outbox::invoice_summary(&mut conn, &ok.id).await.unwrap();
    assert_eq!(
        (delivered.state, delivered.attempts),
        (SummaryState::Delivered, 1)
    );
    assert!(delivered.last_attempt_at.is_some());
    let failed = outbox::invoice_summary(&mut conn, &failing.id)
        .await
        .unwrap();
    assert_eq!((failed.state, failed.attempts), (SummaryState::Failed, 2));
    let pending = outbox::invoice_summary(&mut conn, &waiting.id)
        .await
        .unwrap();
    assert_eq!(
        (pending.state, pending.attempts, pending.last_attempt_at),
        (SummaryState::Pending, 0, None)
    );
}

async fn test_event_is_rendered_as_a_test_and_delivered_to_its_url(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let id = webhook::queue_test_event(&store, PLUGIN, &merchant, &receiver.url("/test-hook"))
        .await
        .unwrap();
    for bad in ["not a url", "ftp://example.com/x", "http://"] {
        assert!(
            matches!(
                webhook::queue_test_event(&store, PLUGIN, &merchant, bad).await,
                Err(webhook::TestEventError::InvalidUrl { .. })
            ),
            "{bad}"
        );
    }
    let running = Running::start(&store, fast_config(), Arc::new(TestRenderer::default()));

    let delivered = wait_for_state(&store, id, DeliveryState::Delivered).await;
    running.stop().await;

    assert_eq!(delivered.invoice_id, None);
    assert_eq!(delivered.kind, webhook::TEST_EVENT_KIND);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/test-hook");
    let body = received[0].json();
    assert_eq!(
        (body["test"].as_bool(), body["status"].as_str()),
        (Some(true), Some("paid"))
    );
}

// ---- one backend suffices for the HTTP-level behaviour below ----

async fn test_events_are_rate_limited_per_merchant(db: TestDb) {
    let store = db.store().await;
    let (busy, other) = (merchant(&store).await, merchant(&store).await);
    let url = "https://merchant.example/test-hook";
    for _ in 0..webhook::TEST_EVENT_LIMIT {
        webhook::queue_test_event(&store, PLUGIN, &busy, url)
            .await
            .unwrap();
    }
    for plugin in [PLUGIN, "another-plugin"] {
        match webhook::queue_test_event(&store, plugin, &busy, url).await {
            Err(webhook::TestEventError::RateLimited { retry_after_ms }) => assert!(
                retry_after_ms > 0 && retry_after_ms <= webhook::TEST_EVENT_WINDOW_MS as u64,
                "{retry_after_ms}"
            ),
            other => panic!("one test callback too many was queued: {other:?}"),
        }
    }
    let queued: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox_events WHERE merchant_id = $1")
            .bind(&busy)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(
        queued,
        i64::from(webhook::TEST_EVENT_LIMIT),
        "a refused call writes nothing"
    );
    webhook::queue_test_event(&store, PLUGIN, &other, url)
        .await
        .expect("another merchant has its own allowance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_to_a_loopback_address_is_refused_unless_allowed() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let literal = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let by_name = invoice(
        &store,
        &merchant,
        Some(&format!("http://localhost:{}/notify", receiver.addr.port())),
    )
    .await;
    let (literal, by_name) = (
        events_of(&store, &literal.id).await.remove(0),
        events_of(&store, &by_name.id).await.remove(0),
    );
    let public_only = WebhookConfig {
        allowed_networks: Vec::new(),
        ..fast_config()
    };
    let running = Running::start(&store, public_only, Arc::new(TestRenderer::default()));

    for event in [&literal, &by_name] {
        let dead = wait_for_state(&store, event.id, DeliveryState::Dead).await;
        assert_eq!(dead.attempts, 1, "a refusal is not retried");
        let attempt = attempts(&store, event.id).await.remove(0);
        assert_eq!(attempt.outcome, AttemptOutcome::Refused);
        let error = attempt.error.unwrap();
        assert!(
            error.contains("loopback") && error.contains("allowed_networks"),
            "{error}"
        );
    }
    running.stop().await;
    assert_eq!(receiver.count(), 0, "nothing reached the receiver");

    // The operator allows loopback and replays.
    let allowing = WebhookConfig {
        allowed_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
        ..fast_config()
    };
    for event in [&literal, &by_name] {
        outbox::replay(&store, event.id, now_ms()).await.unwrap();
    }
    let running = Running::start(&store, allowing, Arc::new(TestRenderer::default()));
    for event in [&literal, &by_name] {
        wait_for_state(&store, event.id, DeliveryState::Delivered).await;
    }
    running.stop().await;
    assert_eq!(receiver.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let target = Receiver::accepting().await;
    let location = target.url("/elsewhere");
    let receiver = Receiver::start(move |_, _| Reply::Redirect(location.clone())).await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let mut config = fast_config();
    config.retry.max_attempts = 1;
    let renderer = TestRenderer {
        accept: Acceptance::AnySuccess,
        ..TestRenderer::default()
    };
    let running = Running::start(&store, config, Arc::new(renderer));

    wait_for_state(&store, event.id, DeliveryState::Dead).await;
    running.stop().await;

    assert_eq!(receiver.count(), 1);
    assert_eq!(target.count(), 0, "the redirect was not followed");
    let attempt = attempts(&store, event.id).await.remove(0);
    assert_eq!(
        (attempt.outcome, attempt.status_code),
        (AttemptOutcome::Rejected, Some(302))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_are_read_up_to_the_cap_and_body_rules_need_the_exact_text() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let receiver = Receiver::start(|request, _| match request.path.as_str() {
        "/big" => Reply::Body(200, "x".repeat(100_000)),
        "/ok" => Reply::Body(200, "  ok\n".into()),
        _ => Reply::Body(200, "okay".into()),
    })
    .await;
    let merchant = merchant(&store).await;
    let big = invoice(&store, &merchant, Some(&receiver.url("/big"))).await;
    let ok = invoice(&store, &merchant, Some(&receiver.url("/ok"))).await;
    let wrong = invoice(&store, &merchant, Some(&receiver.url("/wrong"))).await;
    let mut config = fast_config();
    config.retry.max_attempts = 1;
    let renderer = TestRenderer {
        accept: Acceptance::BodyEquals("ok".into()),
        ..TestRenderer::default()
    };
    let running = Running::start(&store, config, Arc::new(renderer));

    let [big, ok, wrong] = [big, ok, wrong].map(|i| i.id);
    let big = wait_for_state(
        &store,
        events_of(&store, &big).await[0].id,
        DeliveryState::Dead,
    )
    .await;
    wait_for_state(
        &store,
        events_of(&store, &ok).await[0].id,
        DeliveryState::Delivered,
    )
    .await;
    wait_for_state(
        &store,
        events_of(&store, &wrong).await[0].id,
        DeliveryState::Dead,
    )
    .await;
    running.stop().await;

    let attempt = attempts(&store, big.id).await.remove(0);
    assert_eq!(
        attempt.response_body.as_deref().map(str::len),
        Some(1_024),
        "kept up to max_response_bytes"
    );
    assert!(attempt.response_truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_does_not_answer_in_time_is_a_failed_attempt() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let receiver = Receiver::start(|_, _| Reply::Hang).await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/slow"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let mut config = fast_config();
    config.request_timeout_ms = 300;
    config.lease_ms = 1_000;
    config.retry.max_attempts = 1;
    let running = Running::start(&store, config, Arc::new(TestRenderer::default()));

    wait_for_state(&store, event.id, DeliveryState::Dead).await;
    running.stop().await;
    receiver.release();

    let attempt = attempts(&store, event.id).await.remove(0);
    assert_eq!(attempt.outcome, AttemptOutcome::Failed);
    assert!(
        attempt.error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        attempt.error
    );
    assert!(attempt.latency_ms.unwrap() >= 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_attempts_and_the_queue_are_exported_as_metrics() {
    let handle = polypay_host::telemetry::metrics_handle();
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let receiver = Receiver::accepting().await;
    let merchant = merchant(&store).await;
    let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(&store, &invoice.id).await.remove(0);
    let running = Running::start(&store, fast_config(), Arc::new(TestRenderer::default()));
    wait_for_state(&store, event.id, DeliveryState::Delivered).await;
    running.stop().await;

    let text = handle.render();
    for metric in [
        r#"polypay_webhook_deliveries_total{outcome="delivered"}"#,
        r#"polypay_webhook_attempts_total{outcome="accepted"}"#,
        "polypay_webhook_attempt_duration_seconds_bucket",
        "polypay_webhook_queue_depth",
        "polypay_webhook_oldest_pending_age_seconds",
    ] {
        assert!(text.contains(metric), "{metric} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_postgres_database_never_send_the_same_attempt_twice() {
    const INVOICES: usize = 40;
    let db = TestDb::postgres().await;
    let setup = db.store().await;
    // Every first attempt fails, so each event is claimed twice, under contention.
    let receiver = Receiver::start(|request, _| {
        if request.attempt() == 1 {
            Reply::Status(503)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let merchant = merchant(&setup).await;
    let mut invoices = Vec::new();
    for _ in 0..INVOICES {
        let invoice = invoice(&setup, &merchant, Some(&receiver.url("/notify"))).await;
        InvoiceService::new(setup.clone())
            .cancel(&invoice.id)
            .await
            .unwrap();
        invoices.push(invoice.id);
    }
    let mut config = fast_config();
    config.workers = 2;
    config.batch_size = 4;
    config.retry.initial_delay_ms = 20;
    // Two instances: their own pools, clients and renderers, one database.
    let (first, second) = (
        Arc::new(TestRenderer::default()),
        Arc::new(TestRenderer::default()),
    );
    let (store_a, store_b) = (db.store().await, db.store().await);
    let instance_a = Running::start(&store_a, config.clone(), first.clone());
    let instance_b = Running::start(&store_b, config, second.clone());

    let all_events: Vec<i64> = {
        let mut ids = Vec::new();
        for invoice in &invoices {
            ids.extend(events_of(&setup, invoice).await.iter().map(|e| e.id));
        }
        ids
    };
    for id in &all_events {
        wait_for_state(&setup, *id, DeliveryState::Delivered).await;
    }
    instance_a.stop().await;
    instance_b.stop().await;

    let received = receiver.received();
    let mut pairs: Vec<(i64, u32)> = received
        .iter()
        .map(|r| (r.event_id(), r.attempt()))
        .collect();
    let sent = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), sent, "an (event, attempt) was sent twice");
    assert_eq!(
        sent,
        all_events.len() * 2,
        "each event: one refused attempt, one accepted"
    );
    for (id, count) in per_event(&received) {
        assert_eq!(count, 2, "event {id}");
    }
    for invoice in &invoices {
        let events = events_of(&setup, invoice).await;
        let first_of_later = received
            .iter()
            .position(|r| r.event_id() == events[1].id)
            .unwrap();
        let last_of_earlier = received
            .iter()
            .rposition(|r| r.event_id() == events[0].id)
            .unwrap();
        assert!(
            last_of_earlier < first_of_later,
            "invoice {invoice}: its later event went out before the earlier was done"
        );
    }
    let (a, b) = (
        first.calls.lock().unwrap().len(),
        second.calls.lock().unwrap().len(),
    );
    assert_eq!(a + b, sent);
    assert!(a > 0 && b > 0, "both instances took part ({a} / {b})");
}

async fn a_receiver_answering_nul_characters_has_its_outcome_recorded_with_the_others(db: TestDb) {
    let store = db.store().await;
    let receiver = Receiver::start(|request, _| match request.path.as_str() {
        "/nul" => Reply::Body(200, "ok\0bye".into()),
        _ => Reply::Status(200),
    })
    .await;
    let merchant = merchant(&store).await;
    let nul = invoice(&store, &merchant, Some(&receiver.url("/nul"))).await;
    let plain = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let nul = events_of(&store, &nul.id).await.remove(0);
    let plain = events_of(&store, &plain.id).await.remove(0);
    let running = Running::start(&store, fast_config(), Arc::new(TestRenderer::default()));

    wait_for_state(&store, nul.id, DeliveryState::Delivered).await;
    wait_for_state(&store, plain.id, DeliveryState::Delivered).await;
    running.stop().await;

    assert_eq!(per_event(&receiver.received()).get(&nul.id), Some(&1));
    let attempt = attempts(&store, nul.id).await.remove(0);
    assert_eq!(attempt.outcome, AttemptOutcome::Accepted);
    assert_eq!(
        attempt.response_body.as_deref(),
        Some("ok\u{FFFD}bye"),
        "stored without the NUL, which PostgreSQL's text cannot hold"
    );
}

async fn one_batch_of_outcomes_records_the_held_attempts_and_refuses_the_retaken_ones(db: TestDb) {
    let store = db.store().await;
    let merchant = merchant(&store).await;
    let url = "http://127.0.0.1:9/notify";
    let first = invoice(&store, &merchant, Some(url)).await;
    let second = invoice(&store, &merchant, Some(url)).await;
    let first = events_of(&store, &first.id).await.remove(0).id;
    let second = events_of(&store, &second.id).await.remove(0).id;
    let now = now_ms();
    // Attempt 1 of both is lost by a stalled worker; attempt 2 of both is held now.
    assert_eq!(outbox::claim(&store, now, now, 10).await.unwrap().len(), 2);
    assert_eq!(outbox::recover_expired(&store, now).await.unwrap(), 2);
    let held = outbox::claim(&store, now, now + 60_000, 10).await.unwrap();
    assert_eq!(
        held.iter().map(|c| c.delivery.attempts).collect::<Vec<_>>(),
        [2, 2]
    );

    let report = |outcome, status_code, error: Option<&str>| outbox::AttemptReport {
        url: url.into(),
        started_at: now + 1,
        latency_ms: Some(5),
        status_code,
        response_body: status_code.map(|_| "it's \"quoted\"\n".to_string()),
        response_truncated: false,
        error: error.map(str::to_string),
        outcome,
    };
    let accepted = report(AttemptOutcome::Accepted, Some(200), None);
    let rejected = report(AttemptOutcome::Rejected, Some(503), None);
    let failed = report(AttemptOutcome::Failed, None, Some("connection refused"));
    let retry_at = now + 30_000;
    let records = [
        outbox::AttemptRecord {
            id: first,
            attempt: 1,
            report: &accepted,
            next: Next::Delivered,
        },
        outbox::AttemptRecord {
            id: first,
            attempt: 2,
            report: &rejected,
            next: Next::RetryAt(retry_at),
        },
        outbox::AttemptRecord {
            id: second,
            attempt: 2,
            report: &failed,
            next: Next::Dead,
        },
    ];
    let recorded = outbox::record_attempts(&store, &records, now + 2)
        .await
        .unwrap();
    assert_eq!(recorded, [false, true, true], "attempt 1 was retaken");

    let retried = delivery(&store, first).await;
    assert_eq!(
        (retried.state, retried.next_attempt_at, retried.locked_until),
        (DeliveryState::Pending, retry_at, None)
    );
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 503 not accepted"));
    assert_eq!(retried.last_attempt_at, Some(now + 1));
    assert_eq!(retried.delivered_at, None);
    let dead = delivery(&store, second).await;
    assert_eq!(
        (dead.state, dead.locked_until, dead.last_error.as_deref()),
        (DeliveryState::Dead, None, Some("connection refused"))
    );
    assert_eq!(
        outcomes(&store, first).await,
        [
            (1, AttemptOutcome::Abandoned),
            (2, AttemptOutcome::Rejected)
        ]
    );
    let attempt = attempts(&store, first).await.remove(1);
    assert_eq!(
        (
            attempt.status_code,
            attempt.response_body.as_deref(),
            attempt.latency_ms,
            attempt.accepted
        ),
        (Some(503), Some("it's \"quoted\"\n"), Some(5), false)
    );
    let attempt = attempts(&store, second).await.remove(1);
    assert_eq!(
        (
            attempt.outcome,
            attempt.status_code,
            attempt.error.as_deref()
        ),
        (AttemptOutcome::Failed, None, Some("connection refused"))
    );
    assert!(
        outbox::record_attempts(&store, &records[1..], now + 3)
            .await
            .unwrap()
            .iter()
            .all(|recorded| !recorded),
        "an outcome is recorded once"
    );
}

async fn claims_take_the_earliest_due_events_and_among_those_due_together_the_oldest(db: TestDb) {
    let store = db.store().await;
    let merchant = merchant(&store).await;
    let mut events = Vec::new();
    for _ in 0..4 {
        let invoice = invoice(&store, &merchant, Some("http://127.0.0.1:9/notify")).await;
        events.push(events_of(&store, &invoice.id).await.remove(0).id);
    }
    let due = now_ms() - 1_000;
    for (event, at) in events.iter().zip([due, due, due - 1, due]) {
        sqlx::query("UPDATE outbox_events SET next_attempt_at = $1 WHERE id = $2")
            .bind(at)
            .bind(event)
            .execute(store.pool())
            .await
            .unwrap();
    }
    let claimed =
        |claims: Vec<outbox::Claim>| -> Vec<i64> { claims.iter().map(|c| c.delivery.id).collect() };
    let now = now_ms();
    let first = claimed(outbox::claim(&store, now, now + 60_000, 2).await.unwrap());
    assert_eq!(
        first,
        [events[0], events[2]],
        "the earliest due, then the oldest"
    );
    let second = claimed(outbox::claim(&store, now, now + 60_000, 2).await.unwrap());
    assert_eq!(second, [events[1], events[3]]);
    assert!(
        outbox::claim(&store, now, now + 60_000, 2)
            .await
            .unwrap()
            .is_empty()
    );
}
