//! Where webhooks may send: a receiver must be a public address. A URL whose
//! host is, or resolves to, a loopback, link-local, private, shared or
//! unspecified address would let whoever registers a webhook make Warden
//! POST to cloud metadata services or internal ones (server-side request
//! forgery). The check runs when a webhook is registered and again at every
//! delivery, inside the resolver the HTTP client connects through, so a name
//! that later resolves to a private address (DNS rebinding) is refused then,
//! on the very addresses the client would connect to.
//!
//! `webhook_allow_private = true` (development mode, tests) lifts it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use actix_tls::connect::Resolve;
use futures_util::future::LocalBoxFuture;

/// Whether `ip` is an address a webhook may not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., hi, lo] = segments;
                return is_private_v4(Ipv4Addr::from(((hi as u32) << 16) | lo as u32));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || v6 == Ipv6Addr::from([0u8; 16])
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local() // 169.254.0.0/16: cloud metadata lives here
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space, 100.64.0.0/10
}

/// Why a host is refused, or `None`.
pub fn refusal(host: &str, addresses: &[IpAddr]) -> Option<String> {
    addresses
        .iter()
        .find(|ip| is_private(**ip))
        .map(|ip| format!("`{host}` is or resolves to {ip}, a loopback, link-local, private or unspecified address"))
}

/// The host of a URL as an IP literal, if it is one (`[::1]` included).
pub fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The resolver the dispatcher's HTTP client connects through: the system's,
/// then the check above on every address it gives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
            if !self.allow_private {
                let ips: Vec<IpAddr> = found.iter().map(SocketAddr::ip).collect();
                if let Some(why) = refusal(host, &ips) {
                    return Err(why.into());
                }
            }
            Ok(found)
        })
    }
}

/// Resolves `host` now, for the check at registration. A name that does not
/// resolve (yet) is not refused here: every delivery checks again.
pub(crate) async fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(found) => found.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip} should be refused");
        }
        for ip in ["8.8.8.8", "93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[actix_rt::test]
    async fn the_delivery_resolver_refuses_names_of_private_addresses() {
        let guarded = GuardedResolver { allow_private: false };
        let refused = guarded.lookup("localhost", 80).await.unwrap_err().to_string();
        assert!(refused.contains("`localhost` is or resolves to"), "{refused}");
        assert!(guarded.lookup("127.0.0.1", 80).await.is_err());
        let open = GuardedResolver { allow_private: true };
        assert!(!open.lookup("127.0.0.1", 80).await.unwrap().is_empty());
    }

    #[test]
    fn literals_parse_with_or_without_brackets() {
        assert_eq!(literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal("127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(literal("example.com"), None);
    }
}
