//! The demo's merchant side: a small HTTP server on loopback that stands in for the demo
//! merchants' sites.
//!
//! - `POST /callbacks/{plugin}`: where demo invoices' callbacks go (`{notify_url}`). Each
//!   callback is printed (method, path, the headers a dialect adds, the body) and accepted
//!   with `200` and the body `ok`, which every dialect counts as accepted (HTTP 200, 2xx,
//!   or the exact body `ok`).
//! - `GET /shop/{plugin}`: the page payers come back to from the checkout page
//!   (`{return_url}`).

use std::io::Write;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// Headers every HTTP client sends, left out of the printout.
const ORDINARY_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "accept",
    "accept-encoding",
    "user-agent",
    "connection",
];
/// Longest body printed.
const MAX_PRINTED_BODY: usize = 4_000;

/// The callback URL of `plugin`'s demo merchant under an inbox at `base`.
pub fn callback_url(base: &str, plugin: &str) -> String {
    format!("{base}/callbacks/{plugin}")
}

/// The demo shop page of `plugin` under an inbox at `base`.
pub fn shop_url(base: &str, plugin: &str) -> String {
    format!("{base}/shop/{plugin}")
}

/// A running inbox; stops when dropped.
pub struct Inbox {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Inbox {
    /// Binds `127.0.0.1:port` and serves.
    pub async fn start(port: u16) -> std::io::Result<Inbox> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/shop/{plugin}", get(shop))
            .fallback(callback);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the demo callback inbox stopped");
            }
        });
        Ok(Inbox { addr, task })
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn callback(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut text = format!("\n<- callback: {method} {uri}\n");
    for (name, value) in &headers {
        if !ORDINARY_HEADERS.contains(&name.as_str()) {
            text.push_str(&format!(
                "   {name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
    }
    let body = String::from_utf8_lossy(&body);
    let shown: String = body.chars().take(MAX_PRINTED_BODY).collect();
    text.push_str(&format!("   {shown}\n"));
    if shown.len() < body.len() {
        text.push_str("   …(cut)\n");
    }
    text.push_str("   answered 200 ok\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    "ok"
}

async fn shop(Path(plugin): Path<String>) -> Html<String> {
    let plugin = html_escape(&plugin);
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Demo shop</title>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem\">\
         <h1>Demo shop ({plugin})</h1>\
         <p>You are back from polypay's checkout page. The shop learns that the order is paid \
         from polypay's callback, which the <code>polypay dev</code> terminal prints.</p></body></html>"
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
