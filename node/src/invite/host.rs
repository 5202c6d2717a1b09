//! The host an invite code names: config `public_address` if set, else the
//! first up, non-loopback IPv4 address of this machine, else 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};

use nix::net::if_::InterfaceFlags;

use crate::net::address::Host;

/// The first IPv4 address of an up, non-loopback interface, if any.
pub fn lan_ipv4() -> Option<Ipv4Addr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for ifaddr in addrs {
        let up = ifaddr.flags.contains(InterfaceFlags::IFF_UP);
        let loopback = ifaddr.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        if !up || loopback {
            continue;
        }
        if let Some(ip) = ifaddr
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|s| s.ip())
        {
            if !ip.is_loopback() && !ip.is_unspecified() {
                return Some(ip);
            }
        }
    }
    None
}

/// The host for invite codes: `public_address` (already checked when the
/// config was read), else [`lan_ipv4`], else 127.0.0.1.
pub fn invite_host(public_address: Option<&Host>) -> Host {
    match public_address {
        Some(h) => h.clone(),
        None => Host::Ip(IpAddr::V4(lan_ipv4().unwrap_or(Ipv4Addr::LOCALHOST))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_address_wins_and_a_lan_address_is_never_loopback() {
        let h: Host = "box.example.org".parse().unwrap();
        assert!(invite_host(Some(&h)) == h);
        if let Some(ip) = lan_ipv4() {
            assert!(!ip.is_loopback());
        }
        assert!(invite_host(None).ip().is_some());
    }
}
