//! The address an invite code (and an invite session's `getAddress`) names:
//! the host is config `public_address` if set, else the listener's IP if it
//! is a specific one, else the first up, non-loopback IPv4 address of this
//! machine, else 127.0.0.1; the port is the listener's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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

/// The host and port a code names, for a node listening on `listen`.
pub fn code_address(public_address: Option<&Host>, listen: SocketAddr) -> (Host, u16) {
    let host = match public_address {
        Some(h) => h.clone(),
        None if !listen.ip().is_unspecified() => Host::Ip(listen.ip()),
        None => invite_host(None),
    };
    (host, listen.port())
}

/// The config's `listen` gives no port.
#[derive(Debug, thiserror::Error)]
#[error("cannot tell the port to put in the code from listen = {0:?}")]
pub struct NoPort(pub String);

/// The listener address as configured (`listen`), for a code made while no
/// node runs: `IP:PORT`, or `NAME:PORT` (only the port counts then).
pub fn configured_listen(listen: &str) -> Result<SocketAddr, NoPort> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .map(|p| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), p))
        .ok_or_else(|| NoPort(listen.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_names_the_configured_then_the_listen_then_the_lan_host() {
        let listen: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let public: Host = "box.example.org".parse().unwrap();
        assert!(code_address(Some(&public), listen) == (public.clone(), 9000));
        assert!(code_address(None, listen) == ("127.0.0.1".parse().unwrap(), 9000));
        let any: SocketAddr = "0.0.0.0:8008".parse().unwrap();
        assert_eq!(code_address(None, any).1, 8008);
        assert_eq!(configured_listen("0.0.0.0:8008").unwrap().port(), 8008);
        assert_eq!(configured_listen("box.local:8009").unwrap().port(), 8009);
        assert!(configured_listen("nonsense").is_err());
    }

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
