//! A webhook worker process killed with SIGKILL in the middle of deliveries: after a
//! restart every event is delivered, and none whose acceptance was recorded is sent again.
//!
//! The worker process is this test binary itself, re-run on the ignored test
//! `webhook_worker_child_process`, which runs the library's dispatcher with the test
//! renderer against the database named in its environment, on both backends. A second
//! test kills the real `polypay serve`, which renders through the mounted test-echo plugin.

mod common;
mod webhook_support;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::db::TestDb;
use common::polypay::{ADMIN_TOKEN, PolypayProcess};
use polypay_host::store::Store;
use polypay_host::store::outbox::{AttemptOutcome, DeliveryState};
use webhook_support::*;

const CHILD_DATABASE: &str = "POLYPAY_WEBHOOK_CHILD_DATABASE";

on_both_backends!(
    host_killed_mid_delivery_delivers_everything_after_restart_and_nothing_accepted_twice
);

/// The worker process of the crash test; does nothing unless started by it.
#[test]
#[ignore = "the worker process of the crash test, started by it"]
fn webhook_worker_child_process() {
    let Ok(url) = std::env::var(CHILD_DATABASE) else {
        return;
    };
    // Never outlive a parent that failed to kill us.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(120));
        std::process::exit(3);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Store::open(&url, 8)
            .await
            .expect("child opens the database");
        let mut config = fast_config();
        config.workers = 2;
        config.batch_size = 4;
        config.request_timeout_ms = 3_000;
        config.lease_ms = 6_100;
        let _running = Running::start(&store, config, Arc::new(TestRenderer::default()));
        std::future::pending::<()>().await;
    });
}

/// A worker process, SIGKILLed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(database_url: &str) -> WorkerProcess {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "webhook_worker_child_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DATABASE, database_url)
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the worker process");
        WorkerProcess(child)
    }

    /// SIGKILL: no chance to finish anything.
    fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reap");
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn host_killed_mid_delivery_delivers_everything_after_restart_and_nothing_accepted_twice(
    db: TestDb,
) {
    const EVENTS: usize = 12;
    const ACCEPTED_BEFORE_KILL: usize = 5;
    let store = db.store().await;
    // The first five requests are accepted; later ones are held open until released, so
    // the process dies with deliveries in flight.
    let receiver = Receiver::start(|_, n| {
        if n < ACCEPTED_BEFORE_KILL {
            Reply::Status(200)
        } else {
            Reply::Hang
        }
    })
    .await;
    let merchant = merchant(&store).await;
    let mut events = Vec::new();
    for _ in 0..EVENTS {
        let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
        events.push(events_of(&store, &invoice.id).await.remove(0).id);
    }

    let worker = WorkerProcess::start(&db.url);
    let delivered_before = delivered_with_more_in_flight(
        &store,
        &events,
        &receiver,
        ACCEPTED_BEFORE_KILL,
        Duration::from_secs(30),
    )
    .await;
    worker.kill();
    // The attempts the killed process had claimed: every later request is the restarted
    // process's. (Requests the killed process wrote just before dying may reach the
    // receiver after the kill; they carry its attempt numbers.)
    let mut claimed_before = std::collections::HashMap::new();
    for id in &events {
        claimed_before.insert(*id, delivery(&store, *id).await.attempts);
    }
    receiver.release();

    let worker = WorkerProcess::start(&db.url);
    for id in &events {
        wait_for_state(&store, *id, DeliveryState::Delivered).await;
    }
    worker.kill();

    let received = receiver.received();
    let (before_restart, after_restart): (Vec<Received>, Vec<Received>) = received
        .into_iter()
        .partition(|r| i64::from(r.attempt()) <= claimed_before[&r.event_id()]);
    let in_flight: HashSet<i64> = before_restart
        .iter()
        .map(Received::event_id)
        .filter(|id| !delivered_before.contains(id))
        .collect();
    let resent_accepted: Vec<i64> = after_restart
        .iter()
        .map(Received::event_id)
        .filter(|id| delivered_before.contains(id))
        .collect();
    assert!(
        resent_accepted.is_empty(),
        "recorded acceptances sent again: {resent_accepted:?}"
    );
    let counts = per_event(&after_restart);
    for id in events.iter().filter(|id| !delivered_before.contains(id)) {
        assert_eq!(counts.get(id), Some(&1), "event {id} after the restart");
    }
    assert!(!in_flight.is_empty());
    for id in &in_flight {
        assert_eq!(
            outcomes(&store, *id).await,
            [
                (1, AttemptOutcome::Abandoned),
                (2, AttemptOutcome::Accepted)
            ],
            "event {id} was in flight at the kill"
        );
    }
}

/// The same crash, end to end: `polypay serve` with the test-echo plugin mounted renders and
/// signs every attempt; the process is SIGKILLed with deliveries in flight and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polypay_serve_killed_mid_delivery_delivers_everything_after_restart() {
    use polypay_host::merchant::{CredentialSpec, MasterKey, Merchants, SecretFormat};
    const EVENTS: usize = 8;
    const ACCEPTED_BEFORE_KILL: usize = 3;
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let key = [9u8; 32];
    let merchants = Merchants::new(store.clone(), MasterKey::from_bytes(&key));
    let merchant = merchants
        .create(
            "Echo shop",
            Some(PLUGIN),
            serde_json::json!({}),
            &[CredentialSpec {
                kind: "bearer".into(),
                secret: SecretFormat::uuid(),
                public_id: None,
            }],
        )
        .await
        .unwrap()
        .merchant
        .id;
    let receiver = Receiver::start(|_, n| {
        if n < ACCEPTED_BEFORE_KILL {
            Reply::Status(200)
        } else {
            Reply::Hang
        }
    })
    .await;
    let mut events = Vec::new();
    for _ in 0..EVENTS {
        let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
        events.push(events_of(&store, &invoice.id).await.remove(0).id);
    }
    let config = db.dir.path().join("polypay.toml");
    std::fs::write(
        &config,
        format!(
            r#"data_dir = "{data}"
[listen]
public = "127.0.0.1:0"
admin = "127.0.0.1:0"
[database]
url = "{url}"
[secrets]
master_key = "{key}"
[admin]
token = "{ADMIN_TOKEN}"
[webhooks]
workers = 2
batch_size = 4
poll_interval_ms = 10
request_timeout_ms = 3000
lease_ms = 6100
allowed_networks = ["127.0.0.1/32"]
[[plugins]]
name = "{PLUGIN}"
wasm = "{wasm}"
"#,
            data = db.dir.path().display(),
            url = db.url,
            key = hex::encode(key),
            wasm = polypay_plugin_artifacts::TEST_ECHO,
        ),
    )
    .unwrap();
    let event_id =
        |r: &Received| -> i64 { r.json()["event_id"].as_str().unwrap().parse().unwrap() };

    let server = PolypayProcess::serve(&config);
    let delivered_before = delivered_with_more_in_flight(
        &store,
        &events,
        &receiver,
        ACCEPTED_BEFORE_KILL,
        Duration::from_secs(60),
    )
    .await;
    drop(server); // SIGKILL
    let received_before_restart = receiver.count();
    receiver.release();

    let _server = PolypayProcess::serve(&config);
    for id in &events {
        wait_for_state(&store, *id, DeliveryState::Delivered).await;
    }
    let after_restart: Vec<Received> = receiver
        .received()
        .into_iter()
        .skip(received_before_restart)
        .collect();
    assert!(
        after_restart
            .iter()
            .all(|r| !delivered_before.contains(&event_id(r))),
        "a recorded acceptance was sent again"
    );
    for request in &after_restart {
        assert!(
            request.header("x-echo-signature").is_some(),
            "rendered and signed by the plugin"
        );
    }
    let mut counts = std::collections::HashMap::new();
    for request in &after_restart {
        *counts.entry(event_id(request)).or_insert(0) += 1;
    }
    for id in events.iter().filter(|id| !delivered_before.contains(id)) {
        assert_eq!(counts.get(id), Some(&1), "event {id} after the restart");
    }
}

/// Waits until exactly `accepted` of `events` are recorded as delivered while
/// the receiver has already got more requests (the rest are in flight); returns the
/// delivered ones.
async fn delivered_with_more_in_flight(
    store: &polypay_host::store::Store,
    events: &[i64],
    receiver: &Receiver,
    accepted: usize,
    timeout: Duration,
) -> HashSet<i64> {
    eventually(
        &format!("{accepted} acceptances recorded and more requests in flight"),
        timeout,
        || async {
            let mut delivered = HashSet::new();
            for id in events {
                if delivery(store, *id).await.state == DeliveryState::Delivered {
                    delivered.insert(*id);
                }
            }
            (delivered.len() == accepted && receiver.count() > accepted).then_some(delivered)
        },
    )
    .await
}
