//! Where a callback may go: the guard against server-side request forgery.
//!
//! Callback URLs come from merchants (through plugins), so without a guard a merchant
//! could make polypay send requests into the operator's network: the cloud metadata
//! service, an admin listener on loopback, a database on a private address. The
//! [`TargetPolicy`] refuses every address that is not public unicast — loopback, private
//! (RFC 1918), shared/CGNAT, link-local (with the metadata addresses 169.254.169.254 and
//! fd00:ec2::254), unique-local, unspecified, multicast, broadcast, documentation,
//! benchmarking and reserved ranges, and IPv6 forms that embed such an IPv4 address
//! (IPv4-mapped, IPv4-compatible, NAT64, 6to4) — unless the operator allows it
//! (`webhooks.allow_private_targets`, or a network in `webhooks.allowed_networks`).
//!
//! The check sits where the connection is made, so DNS rebinding cannot swap a checked
//! address for another: the HTTP client resolves names only through [`GuardedResolver`],
//! which resolves, checks every address, and hands the client exactly the addresses it
//! checked. URLs with a literal IP never reach a resolver, so [`TargetPolicy::check_url`]
//! checks them before the request. Redirects are not followed at all (a 3xx is simply a
//! response that is not accepted), and no proxy is used.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::config::WebhookConfig;

/// A network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP network (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (bytes, bits) = (usize::from(prefix / 8), prefix % 8);
    if a[..bytes] != b[..bytes] {
        return false;
    }
    bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0
}

/// Why an address is not a public unicast address, or `None` when it is.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        _ if ip.is_broadcast() => "broadcast",
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared address space (100.64.0.0/10, CGNAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay anycast",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some("cloud metadata");
    }
    // Forms that carry an IPv4 address: judge the IPv4 address.
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    if segments[..6] == [0; 6] {
        // IPv4-compatible (deprecated) ::a.b.c.d
        return non_public_v4(embedded(segments[6], segments[7])).or(Some("IPv4-compatible IPv6"));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return non_public_v4(embedded(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        return non_public_v4(embedded(segments[1], segments[2]));
    }
    Some(match segments[0] {
        s if s & 0xfe00 == 0xfc00 => "unique-local (fc00::/7)",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        s if s & 0xffc0 == 0xfec0 => "site-local (deprecated)",
        s if s & 0xff00 == 0xff00 => "multicast",
        0x2001 if segments[1] == 0x0db8 => "documentation",
        0x0100 if segments[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        _ => return None,
    })
}

/// A callback target the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRefused {
    pub host: String,
    pub reason: String,
}

impl fmt::Display for TargetRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "callback target `{}` refused: {}",
            self.host, self.reason
        )
    }
}

impl std::error::Error for TargetRefused {}

/// Which addresses callbacks may be sent to. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allow_private: bool,
    allowed: Vec<Network>,
}

impl TargetPolicy {
    /// Only public addresses.
    pub fn public_only() -> TargetPolicy {
        TargetPolicy::default()
    }

    pub fn from_config(config: &WebhookConfig) -> Result<TargetPolicy, String> {
        let allowed = config
            .allowed_networks
            .iter()
            .map(|n| Network::parse(n))
            .collect::<Result<_, _>>()?;
        Ok(TargetPolicy {
            allow_private: config.allow_private_targets,
            allowed,
        })
    }

    /// Checks one address of `host`.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), TargetRefused> {
        if self.allow_private || self.allowed.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        match non_public_range(ip) {
            None => Ok(()),
            Some(range) => Err(TargetRefused {
                host: host.to_string(),
                reason: format!(
                    "{ip} is a {range} address; allow it with webhooks.allowed_networks or webhooks.allow_private_targets"
                ),
            }),
        }
    }

    /// Checks what can be checked without DNS: the scheme, and the host when it is an IP
    /// literal. Names are checked when they are resolved ([`GuardedResolver`]).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), TargetRefused> {
        let host_text = url.host_str().unwrap_or_default().to_string();
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetRefused {
                host: host_text,
                reason: format!("scheme `{}` is not http or https", url.scheme()),
            });
        }
        if host_text.is_empty() {
            return Err(TargetRefused {
                host: host_text,
                reason: "the URL has no host".into(),
            });
        }
        // The URL parser has normalised IP literals (`0x7f.1` is `127.0.0.1` by now);
        // IPv6 ones keep their brackets.
        match host_text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => self.check_ip(&host_text, ip),
            Err(_) => Ok(()),
        }
    }

    /// Checks every address a name resolved to: one refused address refuses the name (a
    /// name that points partly inside is not trusted for the rest).
    pub fn check_resolved(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), TargetRefused> {
        if addrs.is_empty() {
            return Err(TargetRefused {
                host: host.to_string(),
                reason: "the name resolves to no address".into(),
            });
        }
        addrs.iter().try_for_each(|a| self.check_ip(host, a.ip()))
    }
}

/// The HTTP client's DNS resolver: resolves with the system resolver, then applies the
/// [`TargetPolicy`] to every address before the client may connect to any of them.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<TargetPolicy>) -> GuardedResolver {
        GuardedResolver { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            policy.check_resolved(&host, &addrs)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        TargetPolicy::public_only()
            .check_ip("h", ip.parse().unwrap())
            .is_err()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.192",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(refused(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::",
        ] {
            assert!(!refused(ip), "{ip} is public");
        }
    }

    #[test]
    fn metadata_address_is_named_as_such() {
        let err = TargetPolicy::public_only()
            .check_ip("metadata", "169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("cloud metadata"), "{err}");
        assert!(
            err.to_string().contains("webhooks.allowed_networks"),
            "the message says how to allow it: {err}"
        );
    }

    #[test]
    fn allowed_networks_open_exactly_their_range() {
        let config = WebhookConfig {
            allowed_networks: vec!["127.0.0.1/32".into(), "10.20.0.0/16".into()],
            ..WebhookConfig::default()
        };
        let policy = TargetPolicy::from_config(&config).unwrap();
        assert!(policy.check_ip("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_ip("h", "127.0.0.2".parse().unwrap()).is_err());
        assert!(policy.check_ip("h", "10.20.9.9".parse().unwrap()).is_ok());
        assert!(policy.check_ip("h", "10.21.0.1".parse().unwrap()).is_err());
        let everything = TargetPolicy::from_config(&WebhookConfig {
            allow_private_targets: true,
            ..WebhookConfig::default()
        })
        .unwrap();
        assert!(
            everything
                .check_ip("h", "169.254.169.254".parse().unwrap())
                .is_ok()
        );
    }

    #[test]
    fn networks_parse_with_and_without_prefix() {
        assert!(
            Network::parse("10.0.0.0/8")
                .unwrap()
                .contains("10.9.9.9".parse().unwrap())
        );
        assert!(
            Network::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            Network::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(
            !Network::parse("10.0.0.0/9")
                .unwrap()
                .contains("10.128.0.1".parse().unwrap())
        );
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nonsense").is_err());
    }

    #[test]
    fn urls_with_literal_private_hosts_or_other_schemes_are_refused_before_any_lookup() {
        let policy = TargetPolicy::public_only();
        for url in [
            "http://127.0.0.1:8080/x",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:169.254.169.254]/",
            "ftp://example.com/",
            "file:///etc/passwd",
        ] {
            assert!(policy.check_url(&url.parse().unwrap()).is_err(), "{url}");
        }
        assert!(
            policy
                .check_url(&"https://merchant.example/notify".parse().unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_by_the_resolver() {
        use reqwest::dns::Resolve;
        let resolver = GuardedResolver::new(Arc::new(TargetPolicy::public_only()));
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Err(e) => e.to_string(),
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
        };
        assert!(err.contains("loopback"), "{err}");
    }
}
