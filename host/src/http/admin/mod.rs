//! The admin listener: `/healthz` (the process answers), `/readyz` (the database answers and
//! every migration is applied; it lists the roles this instance leads or stands by for),
//! `/metrics` (Prometheus text format) and the operator API ([`webhooks`]: deliveries,
//! replay, stats; [`invoices`]: invoices set aside; [`ledger`]: the custodial ledger).
//!
//! Access control, in [`guard`]:
//! - Everything but `/healthz` and `/readyz` needs `Authorization: Bearer <admin token>`
//!   (`admin.token` or `admin.token_file`; in development generated into
//!   `<data_dir>/admin.token`). The token is compared in constant time. The probes stay
//!   open so that orchestrators and load balancers need no secret; they reveal nothing.
//! - The `Host` header must be `localhost`, an IP literal, or a name in
//!   `admin.allowed_hosts`. A web page the operator visits can point its own DNS name at
//!   127.0.0.1 (DNS rebinding) and then talk to this listener as same-origin; the name
//!   it must use is then not one of ours. IP literals cannot be rebound, so they pass
//!   (Kubernetes probes and Prometheus address a pod by IP).
//! - A request whose `Origin` is not such a host is refused too: a browser page may send
//!   a simple cross-site request here (CSRF), but it cannot attach the bearer token and
//!   it always names its own origin.
//!
//! Binding the listener to a non-loopback address is allowed but warned about at start.

pub mod invoices;
pub mod ledger;
pub mod webhooks;

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use subtle::ConstantTimeEq;

use super::{ApiError, with_pipeline};
use crate::app::AppContext;
use crate::config::Secret;

/// Paths served without the token.
pub const OPEN_PATHS: &[&str] = &["/healthz", "/readyz"];

/// Who may use the admin listener.
#[derive(Clone)]
pub struct AdminAccess {
    token: Secret,
    allowed_hosts: Arc<Vec<String>>,
}

impl AdminAccess {
    pub fn new(token: Secret, allowed_hosts: &[String]) -> AdminAccess {
        AdminAccess {
            token,
            allowed_hosts: Arc::new(
                allowed_hosts
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    /// Whether `host` (a `Host` header value or the authority of an `Origin`, port
    /// included or not) names this listener in a way DNS rebinding cannot forge.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            // [v6] or [v6]:port
            Some(rest) => match rest.split_once(']') {
                Some((inside, _)) => inside.to_string(),
                None => return false,
            },
            None => match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
                _ => host.clone(),
            },
        };
        name == "localhost" || name.parse::<IpAddr>().is_ok() || self.allowed_hosts.contains(&name)
    }

    fn token_matches(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        bool::from(
            presented
                .trim()
                .as_bytes()
                .ct_eq(self.token.expose().as_bytes()),
        )
    }
}

/// Middleware: the access rules of the module docs.
pub async fn guard(access: AdminAccess, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host_ok = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| access.host_allowed(h));
    let origin_ok = match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| access.host_allowed(authority)),
        Some(Err(_)) => false,
    };
    if !host_ok || !origin_ok {
        return refuse(
            StatusCode::FORBIDDEN,
            "this Host or Origin may not use the admin API; add the name to admin.allowed_hosts",
        );
    }
    if !access.token_matches(headers) {
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            "the admin API needs `Authorization: Bearer <admin token>`",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"polypay-admin\""),
        );
        return response;
    }
    next.run(request).await
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

pub fn router(ctx: AppContext, access: AdminAccess) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(webhooks::routes())
        .merge(invoices::routes())
        .merge(ledger::routes())
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn(move |req, next| {
            guard(access.clone(), req, next)
        }))
        .with_state(ctx.clone());
    with_pipeline(router, "admin", &ctx.config.http)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(ctx): State<AppContext>) -> Result<impl IntoResponse, ApiError> {
    ctx.store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))?;
    let pending = ctx
        .store
        .pending_migrations()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))?;
    if !pending.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "migrations not applied: {pending:?}; run `polypay migrate`"
        )));
    }
    // The singleton roles this instance competes for, and which it leads (see
    // `crate::leader`); a standby instance is as ready as the leader.
    let roles: serde_json::Map<String, serde_json::Value> = ctx
        .roles
        .snapshot()
        .into_iter()
        .map(|(role, leads)| (role, (if leads { "leader" } else { "standby" }).into()))
        .collect();
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({ "status": "ready", "roles": roles })),
    ))
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> AdminAccess {
        AdminAccess::new(Secret::new("t".repeat(40)), &["ops.internal".into()])
    }

    #[test]
    fn loopback_ip_literals_and_configured_names_are_admin_hosts() {
        let access = access();
        for host in [
            "localhost",
            "localhost:9090",
            "127.0.0.1:9090",
            "[::1]:9090",
            "[::1]",
            "10.0.0.7:9090",
            "ops.internal:9090",
            "OPS.INTERNAL",
        ] {
            assert!(access.host_allowed(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9090",
            "localhost.evil.example",
            "127.0.0.1.nip.io:9090",
            "[::1",
            "",
        ] {
            assert!(!access.host_allowed(host), "{host}");
        }
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let access = access();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            access.token_matches(&headers)
        };
        assert!(with(&format!("Bearer {}", "t".repeat(40))));
        assert!(!with(&format!("Bearer {}", "t".repeat(39))));
        assert!(!with(&format!("Basic {}", "t".repeat(40))));
        assert!(!access.token_matches(&HeaderMap::new()));
    }
}
