//! IP prefix parsing with Go `net/netip`-style error texts.

use std::net::{IpAddr, Ipv4Addr};

/// An IPv4 prefix with its host bits masked off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Net {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        mask(ip, self.len) == self.addr
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(ip: Ipv4Addr, len: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let m = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    };
    Ipv4Addr::from(bits & m)
}

/// Parses `addr/len` (IPv4 or IPv6). Returns the address and the prefix length.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = s
        .split_once('/')
        .ok_or_else(|| format!("netip.ParsePrefix({s:?}): no '/'"))?;
    let ip: IpAddr = addr.parse().map_err(|_| {
        format!("netip.ParsePrefix({s:?}): ParseAddr({addr:?}): unable to parse IP")
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = bits
        .parse()
        .ok()
        .filter(|n| *n <= max && !bits.starts_with('+') && (bits == "0" || !bits.starts_with('0')))
        .ok_or_else(|| format!("netip.ParsePrefix({s:?}): bad bits after slash: {bits:?}"))?;
    Ok((ip, len))
}

/// Parses an IPv4 prefix, masking host bits. `Err(None)` means "valid, but not IPv4".
pub fn parse_ipv4_prefix(s: &str) -> Result<Ipv4Net, Option<String>> {
    match parse_prefix(s).map_err(Some)? {
        (IpAddr::V4(a), len) => Ok(Ipv4Net {
            addr: mask(a, len),
            len,
        }),
        (IpAddr::V6(_), _) => Err(None),
    }
}

/// An address given as an IP or a CIDR (its address part), as the self-capture guard reads it.
pub fn parse_ip_or_cidr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse()
        .ok()
        .or_else(|| parse_prefix(s).ok().map(|(ip, _)| ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_host_bits_and_checks_containment() {
        let n = parse_ipv4_prefix("10.88.60.7/24").unwrap();
        assert_eq!(n.to_string(), "10.88.60.0/24");
        assert!(n.contains("10.88.60.9".parse().unwrap()));
        assert!(!n.contains("10.88.61.9".parse().unwrap()));
        assert_eq!(parse_ipv4_prefix("0.0.0.0/0").unwrap().len, 0);
    }

    #[test]
    fn rejects_malformed_prefixes() {
        for bad in [
            "10.88.60.9",
            "10.88.60.9/33",
            "10.88.60/24",
            "10.88.60.9/",
            "10.88.60.9/024",
            "x/1",
        ] {
            assert!(matches!(parse_ipv4_prefix(bad), Err(Some(_))), "{bad}");
        }
        assert_eq!(parse_ipv4_prefix("fd00::1/128"), Err(None));
    }

    #[test]
    fn ip_or_cidr() {
        assert_eq!(
            parse_ip_or_cidr("10.88.60.9/32"),
            Some("10.88.60.9".parse().unwrap())
        );
        assert_eq!(
            parse_ip_or_cidr(" 10.88.60.9 "),
            Some("10.88.60.9".parse().unwrap())
        );
        assert_eq!(parse_ip_or_cidr("client-a"), None);
    }
}
