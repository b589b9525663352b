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

use crate::config::InvalidNetwork;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;

use super::config::WebhookConfig;

/// Non-public IPv4 ranges, most specific first (the first match names the range).
const V4_RANGES: &[(&str, &str)] = &[
    ("169.254.169.254/32", "cloud metadata"),
    ("255.255.255.255/32", "broadcast"),
    ("0.0.0.0/8", "unspecified (0.0.0.0/8)"),
    ("10.0.0.0/8", "private (10.0.0.0/8)"),
    (
        "100.64.0.0/10",
        "shared address space (100.64.0.0/10, CGNAT)",
    ),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (172.16.0.0/12)"),
    ("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private (192.168.0.0/16)"),
    ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
];

/// Non-public IPv6 ranges that do not carry a judgeable IPv4 address (those are in
/// [`V6_EMBEDDING`]), most specific first.
const V6_RANGES: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fd00:ec2::254/128", "cloud metadata"),
    // RFC 8215: local-use NAT64 prefixes translate into whatever the operator's
    // translator reaches, which is exactly the inside of the network.
    ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
    // Teredo tunnels to an address obfuscated in the low bits, relayed by a third party.
    ("2001::/32", "Teredo (2001::/32)"),
    ("2001:db8::/32", "documentation"),
    ("100::/64", "discard-only (100::/64)"),
    ("fc00::/7", "unique-local (fc00::/7)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

/// Where an IPv6 form carries an IPv4 address: the 16-bit segment it starts at, and what
/// to call the form when the IPv4 address is public but the form itself is suspect.
type Embedding = (usize, Option<&'static str>);

/// IPv6 ranges that embed an IPv4 address; the IPv4 address inside is judged by
/// [`V4_RANGES`].
const V6_EMBEDDING: &[(&str, Embedding)] = &[
    // IPv4-mapped ::ffff:a.b.c.d
    ("::ffff:0:0/96", (6, None)),
    // SIIT IPv4-translated ::ffff:0:a.b.c.d (RFC 6052/7915)
    ("::ffff:0:0:0/96", (6, None)),
    // Well-known NAT64 prefix 64:ff9b::a.b.c.d
    ("64:ff9b::/96", (6, None)),
    // 6to4 2002:AABB:CCDD::/48
    ("2002::/16", (1, None)),
    // Deprecated IPv4-compatible ::a.b.c.d
    ("::/96", (6, Some("IPv4-compatible IPv6"))),
];

fn table<T: Copy>(rows: &[(&str, T)]) -> Vec<(IpNet, T)> {
    rows.iter()
        .map(|(net, what)| (net.parse().expect("static network table"), *what))
        .collect()
}

static V4_TABLE: LazyLock<Vec<(IpNet, &str)>> = LazyLock::new(|| table(V4_RANGES));
static V6_TABLE: LazyLock<Vec<(IpNet, &str)>> = LazyLock::new(|| table(V6_RANGES));
static V6_EMBEDDING_TABLE: LazyLock<Vec<(IpNet, Embedding)>> =
    LazyLock::new(|| table(V6_EMBEDDING));

fn lookup<T: Copy>(table: &[(IpNet, T)], ip: IpAddr) -> Option<T> {
    table
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, what)| *what)
}

/// Why an address is not a public unicast address, or `None` when it is.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => lookup(&V4_TABLE, IpAddr::V4(v4)),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(range) = lookup(&V6_TABLE, IpAddr::V6(ip)) {
        return Some(range);
    }
    // Forms that carry an IPv4 address: judge the IPv4 address.
    if let Some((at, name)) = lookup(&V6_EMBEDDING_TABLE, IpAddr::V6(ip)) {
        let s = ip.segments();
        let v4 = Ipv4Addr::new(
            (s[at] >> 8) as u8,
            s[at] as u8,
            (s[at + 1] >> 8) as u8,
            s[at + 1] as u8,
        );
        return non_public_range(IpAddr::V4(v4)).or(name);
    }
    None
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
    allowed: Vec<IpNet>,
}

impl TargetPolicy {
    /// Only public addresses.
    pub fn public_only() -> TargetPolicy {
        TargetPolicy::default()
    }

    pub fn from_config(config: &WebhookConfig) -> Result<TargetPolicy, InvalidNetwork> {
        let allowed = crate::config::parse_networks(&config.allowed_networks)?;
        Ok(TargetPolicy {
            allow_private: config.allow_private_targets,
            allowed,
        })
    }

    /// Checks one address of `host`.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), TargetRefused> {
        if self.allow_private || self.allowed.iter().any(|n| n.contains(&ip)) {
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
            // Local-use NAT64 reaches the operator's own network.
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::808:808",
            // SIIT IPv4-translated addresses of private, loopback and metadata hosts.
            "::ffff:0:a00:1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            // Teredo, whatever it embeds.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001::1",
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
            "::ffff:0:808:808",
            "64:ff9b::808:808",
            "2002:0808:0808::",
            "2001:4860::8888",
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
        let contains = |net: &str, ip: &str| {
            crate::config::parse_network(net)
                .unwrap()
                .contains(&ip.parse::<IpAddr>().unwrap())
        };
        assert!(contains("10.0.0.0/8", "10.9.9.9"));
        assert!(contains("::1", "::1"));
        assert!(contains("fd00::/8", "fd12::1"));
        assert!(!contains("10.0.0.0/9", "10.128.0.1"));
        assert!(contains("0.0.0.0/0", "8.8.8.8"));
        assert!(
            contains("10.1.2.3/8", "10.200.0.1"),
            "host bits are dropped"
        );
        assert!(crate::config::parse_network("10.0.0.0/33").is_err());
        assert!(crate::config::parse_network("nonsense").is_err());
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
