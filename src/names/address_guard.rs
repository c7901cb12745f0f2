//! Which IP addresses an outbound fetch may connect to.
//!
//! CCIP-read gateway URLs and profile links are chosen by whoever owns a name, so without a
//! guard any name owner could make the node request `http://127.0.0.1:…/admin` or a cloud
//! metadata endpoint (server-side request forgery). The guard refuses loopback, private,
//! link-local, unique-local and other non-public ranges.
//!
//! Why it is a DNS resolver and not a check before the request: a check on the host name
//! followed by a second resolution in the HTTP client could be answered differently the second
//! time (DNS rebinding). Plugged into reqwest as its resolver, [`GuardedResolver`] resolves
//! once, checks every address, and hands the client only addresses that passed, so the checked
//! address is the one connected to. A host that is itself an IP literal never reaches a
//! resolver, so `http_fetch` checks literals with [`is_public`] before sending and on every
//! redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A host resolved to an address the guard does not allow.
///
/// The message names the host (which the name's owner wrote) but never the address it resolved
/// to: refusals reach the client that caused the lookup, and echoing the address would let
/// anyone with an ENS name map the node's internal DNS. The address stays in `ip` for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} does not resolve to a public address")]
pub struct AddressRefused {
    pub host: String,
    pub ip: IpAddr,
}

/// Whether `ip` is a globally routable unicast address. IPv4-mapped and NAT64 IPv6 addresses
/// are judged by the IPv4 address inside them, so they cannot smuggle in `127.0.0.1`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()          // 0.0.0.0/8 ("this network")
        || a == 0
        || ip.is_loopback()        // 127/8
        || ip.is_private()         // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()      // 169.254/16, cloud metadata
        || (a == 100 && (64..128).contains(&b)) // 100.64/10, carrier-grade NAT
        || (a == 192 && b == 0 && c == 0)        // 192.0.0/24, IETF protocol assignments
        || ip.is_documentation()   // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 198 && (b & 0xfe) == 18)        // 198.18/15, benchmarking
        || ip.is_multicast()       // 224/4
        || a >= 240) // 240/4 reserved, and the broadcast address
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7, unique local
        || (first & 0xffc0) == 0xfe80 // fe80::/10, link-local
        || (first & 0xffc0) == 0xfec0 // fec0::/10, deprecated site-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // 2001:db8::/32, documentation
        || first == 0x0100) // 100::/16: 100::/64 is discard-only, the rest unallocated
}

/// The IPv4 address inside `::ffff:a.b.c.d` (mapped), `::a.b.c.d` (compatible, deprecated)
/// and `64:ff9b::a.b.c.d` (NAT64).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0];
    // `::` and `::1` are left to the IPv6 checks, which name them.
    let compatible = s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1);
    (nat64 || compatible).then_some(tail)
}

/// Checks an address the guard would hand to the HTTP client.
pub fn check(host: &str, ip: IpAddr, allow_private: bool) -> Result<(), AddressRefused> {
    if allow_private || is_public(ip) {
        Ok(())
    } else {
        tracing::info!(%host, %ip, "refused a fetch to a non-public address");
        Err(AddressRefused { host: host.to_owned(), ip })
    }
}

/// reqwest's DNS resolver, with every answer checked (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in afterwards.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Every address must pass, not just one: the client may try any of them.
            for addr in &found {
                check(&host, addr.ip(), allow_private)?;
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn internal_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!public(ip), "{ip} must not count as public");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(public(ip), "{ip} is public");
        }
    }

    #[test]
    fn allowing_private_addresses_lets_everything_through() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(check("localhost", loopback, true).is_ok());
        assert_eq!(
            check("localhost", loopback, false),
            Err(AddressRefused { host: "localhost".into(), ip: loopback })
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_hosts() {
        let name: Name = "localhost".parse().unwrap();
        let refused = GuardedResolver { allow_private: false }.resolve(name).await;
        let error = refused.err().unwrap();
        assert!(error.downcast_ref::<AddressRefused>().is_some(), "{error}");
        let name: Name = "localhost".parse().unwrap();
        let allowed = GuardedResolver { allow_private: true }.resolve(name).await.unwrap();
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
