//! Who the client is: the peer address, or behind trusted reverse proxies the address
//! they report in `X-Forwarded-For`.
//!
//! `http.trusted_proxies` lists the proxies' networks. `X-Forwarded-For` is believed only
//! when the peer is one of them, and then only as far as the chain of trusted proxies
//! goes: the header is read right to left (each proxy appends the address it received
//! the request from), trusted addresses are skipped, and the first address that is not
//! a trusted proxy is the client. Anything to its left was written by the client itself
//! and is ignored. Without trusted proxies the header is never read, so a client cannot
//! choose its own address (and escape per-IP rate limits) by sending one.
//!
//! A malformed entry where the client address should be makes the last trusted hop the
//! client: the proxy is then what the request is attributed to, never a made-up address.
//! Several `X-Forwarded-For` headers count as one list, in order.
//!
//! [`resolve`] is a middleware on both listeners; handlers (and plugins, as
//! `client-ip`) read the result as the [`ClientIp`] extension.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The resolved client address of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(Arc::new(networks))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4 peers of a dual-stack socket arrive as `::ffff:a.b.c.d`: judge and report them as
/// the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Middleware: puts the request's [`ClientIp`] into its extensions.
pub async fn resolve(proxies: TrustedProxies, mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = proxies.client_ip(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientIp(client));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            nets.iter()
                .map(|n| crate::config::parse_network(n).unwrap())
                .collect(),
        )
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("203.0.113.9"), &forwarded(&["1.2.3.4"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_peer_outside_the_trusted_networks_cannot_claim_an_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_ip(ip("198.51.100.7"), &forwarded(&["1.2.3.4"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        // The client forged the first entry; the proxies appended the rest.
        let headers = forwarded(&["6.6.6.6, 1.2.3.4", "10.0.0.5"]);
        assert_eq!(
            trusted.client_ip(ip("192.168.1.1"), &headers),
            ip("1.2.3.4")
        );
        assert_eq!(
            trusted.client_ip(ip("10.1.1.1"), &forwarded(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn garbage_or_an_all_trusted_chain_attributes_the_request_to_the_last_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &forwarded(&["1.2.3.4, nonsense"])),
            ip("10.0.0.1")
        );
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &forwarded(&["10.0.0.2, 10.0.0.3"])),
            ip("10.0.0.2")
        );
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_judged_as_ipv4() {
        let trusted = proxies(&["127.0.0.1"]);
        assert_eq!(
            trusted.client_ip(ip("::ffff:127.0.0.1"), &forwarded(&["1.2.3.4"])),
            ip("1.2.3.4")
        );
    }
}
