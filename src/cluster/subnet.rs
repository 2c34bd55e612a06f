//! IPv4 subnets for the local cluster: parsing, overlap, and the addresses
//! handed out inside one.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network such as `10.77.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    base: u32,
    len: u8,
}

impl Subnet {
    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }

    fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    /// The `n`th address of the subnet (0 is the network address), if it is
    /// a host address inside it.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        if n == 0 || u64::from(n) >= self.size().saturating_sub(1) {
            return None;
        }
        Some(Ipv4Addr::from(self.base + n))
    }

    /// True when the two networks share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let len = self.len.min(other.len);
        let m = Self::mask(len);
        self.base & m == other.base & m
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.len)
    }
}

impl FromStr for Subnet {
    type Err = String;

    /// Parses `a.b.c.d/len`; a bare address means `/32`. Host bits must be
    /// zero, so a typo like `10.77.0.5/24` is caught rather than guessed at.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len: u8 = l
                    .parse()
                    .map_err(|_| format!("bad prefix length in subnet {s:?}"))?;
                (a, len)
            }
            None => (s, 32),
        };
        if len > 32 {
            return Err(format!("prefix length {len} in {s:?} is over 32"));
        }
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("bad IPv4 address in subnet {s:?}"))?;
        let base = u32::from(addr);
        if base & !Self::mask(len) != 0 {
            return Err(format!(
                "{s:?} has host bits set; did you mean {}/{len}?",
                Ipv4Addr::from(base & Self::mask(len))
            ));
        }
        Ok(Subnet { base, len })
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// Routes from `ip -4 route show` output that overlap `subnet`, ignoring the
/// default route and routes through `own_dev` (our own bridge, when the
/// cluster is already up). Returns the offending lines.
pub fn clashing_routes(routes: &str, subnet: &Subnet, own_dev: &str) -> Vec<String> {
    routes
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let mut dest = words.next()?;
            // Typed routes: "unreachable 10.0.0.0/8", "blackhole ...".
            if matches!(
                dest,
                "unreachable" | "blackhole" | "prohibit" | "throw" | "local" | "broadcast"
            ) {
                dest = words.next()?;
            }
            if dest == "default" {
                return None;
            }
            let net: Subnet = dest.parse().ok()?;
            let dev = line
                .split_whitespace()
                .skip_while(|w| *w != "dev")
                .nth(1)
                .unwrap_or("");
            (net.overlaps(subnet) && dev != own_dev).then(|| line.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_hosts() {
        let s: Subnet = "10.77.0.0/24".parse().unwrap();
        assert_eq!(s.to_string(), "10.77.0.0/24");
        assert_eq!(s.host(1), Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(s.host(11), Some(Ipv4Addr::new(10, 77, 0, 11)));
        assert_eq!(s.host(254), Some(Ipv4Addr::new(10, 77, 0, 254)));
        assert_eq!(s.host(255), None);
        assert_eq!(s.host(0), None);
        assert!("10.77.0.5/24"
            .parse::<Subnet>()
            .unwrap_err()
            .contains("10.77.0.0/24"));
        assert!("10.77.0.0/33".parse::<Subnet>().is_err());
        assert!("nonsense".parse::<Subnet>().is_err());
        assert!("10.77.0.0/x".parse::<Subnet>().is_err());
    }

    #[test]
    fn overlap() {
        let a: Subnet = "10.77.0.0/24".parse().unwrap();
        let b: Subnet = "10.0.0.0/8".parse().unwrap();
        let c: Subnet = "10.78.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(a.overlaps(&a));
    }

    #[test]
    fn route_clashes() {
        let routes = "default via 192.0.2.1 dev eth0\n\
                      192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n\
                      10.77.0.0/24 dev fl-br proto kernel scope link src 10.77.0.1\n\
                      10.0.0.0/8 via 192.0.2.9 dev eth0\n\
                      unreachable 10.77.0.128/25\n";
        let s: Subnet = "10.77.0.0/24".parse().unwrap();
        let clashes = clashing_routes(routes, &s, "fl-br");
        assert_eq!(clashes.len(), 2, "{clashes:?}");
        assert!(clashes[0].starts_with("10.0.0.0/8"));
        let other: Subnet = "172.31.0.0/24".parse().unwrap();
        assert!(clashing_routes(routes, &other, "fl-br").is_empty());
        // Without our own bridge excluded, its route counts too.
        assert_eq!(clashing_routes(routes, &s, "x").len(), 3);
    }
}
