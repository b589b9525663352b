//! The listeners' accept loop: HTTP/1.1 over hyper with the limits a server facing the
//! internet needs, which `axum::serve` does not set.
//!
//! - **Connection cap** (`http.max_connections` per listener): the loop accepts only while
//!   it holds a free slot. Past the cap, new clients wait in the kernel's listen backlog
//!   and cost the process no file descriptor; they are accepted as slots free up.
//! - **Header-read timeout** (`http.header_read_timeout_ms`): hyper closes a connection
//!   that has not sent a complete request head in time, also while it waits between
//!   keep-alive requests. A slowloris client (a header byte now and then) thus holds its
//!   slot for at most this long.
//! - **Idle timeout** (`http.idle_timeout_ms`): a connection on which no request is being
//!   handled and no byte moved either way for this long is closed; it catches clients
//!   that stop reading a response.
//!
//! The per-request limits (body-read deadline, requests in flight with load shedding)
//! are layers of the router, see [`super::with_pipeline`].
//!
//! On shutdown (`shutdown` cancelled) the loop stops accepting, asks every connection to
//! finish its current request and close (HTTP/1 graceful shutdown), and returns when all
//! are closed. Long responses end on the same token (the checkout event streams watch
//! it), so nothing holds shutdown up.
//!
//! Every request carries the peer address as `ConnectInfo<SocketAddr>`, as with
//! `axum::serve`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::HttpConfig;

/// The connection-level limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl From<&HttpConfig> for ConnectionLimits {
    fn from(http: &HttpConfig) -> Self {
        ConnectionLimits {
            max_connections: http.max_connections,
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(http.idle_timeout_ms),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled and every connection has
/// closed. `name` labels the `polypay_http_open_connections{listener}` gauge.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    name: &'static str,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(name, &e).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let (router, shutdown) = (router.clone(), shutdown.clone());
        connections.spawn(async move {
            let open = metrics::gauge!("polypay_http_open_connections", "listener" => name);
            open.increment(1.0);
            serve_connection(stream, peer, router, limits, shutdown).await;
            open.decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A failed accept is mostly the peer giving up early (nothing to do) or the process out
/// of file descriptors: then wait a little instead of spinning.
async fn accept_failed(listener: &str, e: &io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(listener, error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = requests.handling();
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let idle_check = activity.idle_deadline(limits.idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection closed with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = tokio::time::sleep_until(idle_check) => {
                if activity.is_idle(limits.idle_timeout) {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are being handled.
struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last byte read or written.
    last_ms: AtomicU64,
    handling: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            handling: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn handling(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::Relaxed);
        Handling(self.clone())
    }

    /// When to look again whether the connection has been idle for `timeout`.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        if self.handling.load(Ordering::Relaxed) > 0 {
            // Not idle while a request is handled; its end counts as activity.
            return Instant::now() + timeout;
        }
        let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        (last + timeout).max(Instant::now() + Duration::from_millis(10))
    }

    fn is_idle(&self, timeout: Duration) -> bool {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.handling.load(Ordering::Relaxed) == 0 && self.started.elapsed() >= last + timeout
    }
}

/// A request being handled: the connection is not idle meanwhile.
struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.touch();
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TCP stream, noting every byte that moves.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
