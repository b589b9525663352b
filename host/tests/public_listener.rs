//! The listeners' limits as an attacker on the internet meets them: slowloris, stalled
//! bodies, silent connections, floods of concurrent requests, forged `X-Forwarded-For`.
//! Real HTTP over loopback; the slowloris test runs the real `polypay serve` binary and
//! counts its open file descriptors in `/proc/<pid>/fd`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::polypay::{PolypayProcess, free_port, secrets_toml, server_config};
use polypay_host::app::Server;
use polypay_host::config::Config;
use polypay_host::plugin::PluginConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An in-process server mounting the `echo` test plugin, with `adjust` applied.
async fn echo_server(dir: &Path, adjust: impl FnOnce(&mut Config)) -> Server {
    let mut config = server_config(dir);
    config.plugins = vec![PluginConfig::new(
        "echo",
        polypay_plugin_artifacts::TEST_ECHO,
    )];
    adjust(&mut config);
    Server::start(config).await.unwrap()
}

/// Reads until the server closes the connection (or 30 s pass: a failure); returns what
/// it sent.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut text = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut text))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&text).into_owned()
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc is readable")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_leave_normal_requests_answered_and_descriptors_bounded() {
    const ATTACKERS: usize = 1_000;
    const MAX_CONNECTIONS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let (public, admin) = (free_port(), free_port());
    let config = dir.path().join("polypay.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{data}\"\n\n[listen]\npublic = \"127.0.0.1:{public}\"\nadmin = \"127.0.0.1:{admin}\"\n\n\
             [http]\nmax_connections = {MAX_CONNECTIONS}\nheader_read_timeout_ms = 1000\n\n{secrets}",
            data = dir.path().display(),
            secrets = secrets_toml(),
        ),
    )
    .unwrap();
    let mut server = PolypayProcess::serve(&config);
    server
        .wait_ready(&format!("http://127.0.0.1:{admin}"))
        .await;
    let baseline = open_fds(server.pid());

    // Each attacker sends half a request head and then nothing.
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let mut stream = TcpStream::connect(("127.0.0.1", public)).await.unwrap();
        stream
            .write_all(b"GET /api/checkout/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        attackers.push(stream);
    }
    let during_attack = open_fds(server.pid());
    eprintln!("descriptors: {baseline} before, {during_attack} with {ATTACKERS} slowloris clients");
    assert!(
        during_attack <= baseline + MAX_CONNECTIONS + 16,
        "{during_attack} descriptors open under attack (baseline {baseline}, cap {MAX_CONNECTIONS})"
    );

    // A normal request is answered meanwhile.
    let normal = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{public}/api/checkout/no-such-invoice"
        ))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("a normal request is answered during the attack");
    assert_eq!(normal.status(), 404);

    // Every attacker is eventually disconnected, without a response.
    for stream in &mut attackers {
        let answer = read_until_closed(stream).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    assert!(
        open_fds(server.pid()) <= baseline + 16,
        "descriptors are given back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = echo_server(dir.path(), |c| {
        c.http.header_read_timeout_ms = 120_000;
        c.http.idle_timeout_ms = 300;
    })
    .await;
    let mut silent = TcpStream::connect(server.public_addr).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await, "");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let server = echo_server(dir.path(), |c| c.http.body_read_timeout_ms = 300).await;
    let mut stream = TcpStream::connect(server.public_addr).await.unwrap();
    stream
        .write_all(b"POST /echo/request/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_cap_are_shed_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = echo_server(dir.path(), |c| c.http.max_in_flight = 1).await;
    let url = format!("http://{}/echo/request/second", server.public_addr);
    // The first request is being handled: its body is still arriving.
    let mut first = TcpStream::connect(server.public_addr).await.unwrap();
    first
        .write_all(b"POST /echo/request/first HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let shed = loop {
        let response = reqwest::get(&url).await.unwrap();
        if response.status() == 503 {
            break response;
        }
        assert_eq!(response.status(), 200);
        assert!(
            Instant::now() < deadline,
            "the second request was never shed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(shed.headers()["retry-after"], "1");
    // The first finishes normally; then there is room again.
    first.write_all(b"def").await.unwrap();
    let mut head = [0u8; 12];
    first.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&url).await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "no room after the first request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await.unwrap();
}

/// What the echo plugin was told the client's address is.
async fn client_ip_seen(server: &Server, forwarded_for: &str) -> Value {
    let echoed: Value = reqwest::Client::new()
        .get(format!("http://{}/echo/request/ip", server.public_addr))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    echoed["client_ip"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let direct = echo_server(dir.path(), |_| ()).await;
    assert_eq!(
        client_ip_seen(&direct, "203.0.113.50").await,
        "127.0.0.1",
        "without trusted proxies a client cannot choose its address"
    );
    direct.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let proxied = echo_server(dir.path(), |c| {
        c.http.trusted_proxies = vec!["127.0.0.1/32".into(), "10.0.0.0/8".into()]
    })
    .await;
    assert_eq!(
        client_ip_seen(&proxied, "203.0.113.50").await,
        "203.0.113.50"
    );
    assert_eq!(
        client_ip_seen(&proxied, "198.51.100.1, 203.0.113.50, 10.1.2.3").await,
        "203.0.113.50",
        "the rightmost untrusted hop; what the client wrote before it is ignored"
    );
    proxied.shutdown().await.unwrap();
}
