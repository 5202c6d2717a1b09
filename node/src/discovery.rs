//! LAN discovery (checklist section 9): once a second, tell the local networks where our
//! node listens, and hear which other nodes do.
//!
//! The wire format is ssb-local's: a UDP datagram holding our multiserver address
//! `net:IP:PORT~shs:KEY`, sent to the UDP port equal to the TCP port (default 8008) from a
//! socket bound to that same port with `SO_REUSEADDR`, so JavaScript nodes hear us and we
//! hear them. Announcements are not authenticated; the secret handshake on connect proves
//! the key.
//!
//! - Sans-IO: [`parse_announcement`] reads a datagram with the ssb-ref address rules and
//!   [`PeerTable`] remembers who was heard when, forgetting a peer after [`FORGET_AFTER`]
//!   of silence. Both take the time as an argument, so they are tested without sleeping.
//! - Tokio: [`Discovery`] owns the socket and drives the table: a 1 s interval sends the
//!   announcements and sweeps the table, and `recv_from` feeds it. What changes is reported
//!   as [`Event`]s on a channel.
//!
//! Where announcements go: JavaScript sends to 255.255.255.255. That limited broadcast leaves
//! through one interface only (the one the routing table picks; without a default route it
//! fails with ENETUNREACH), and it would carry one IP for all networks. We send instead to
//! the directed broadcast address of every up, non-loopback IPv4 interface, each datagram
//! naming that interface's own IP, so a node on both Ethernet and Wi-Fi is announced on
//! both with an address that works there. Receivers bound to `0.0.0.0:PORT`, JavaScript
//! ones included, get directed broadcasts like limited ones. The interfaces are read again
//! on every tick, so addresses that come and go (DHCP, a plugged cable) are followed.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::feed::FeedId;
use crate::net::address::{AddressError, Host, MultiserverAddress, MAX_ADDRESS_LEN};

/// The default port of SSB: TCP for connections, UDP for LAN announcements.
pub const DEFAULT_PORT: u16 = 8008;

/// How often we announce ourselves and sweep the peer table (ssb-local: every second).
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);

/// A peer not heard for this long is forgotten (ssb-local: about 10 s).
pub const FORGET_AFTER: Duration = Duration::from_secs(10);

/// At most this many peers are remembered; announcements from more are ignored until
/// some are forgotten, so a flood of forged keys cannot grow memory without bound.
pub const MAX_PEERS: usize = 256;

/// At most this many addresses are remembered per peer (one per network it is on).
pub const MAX_ADDRESSES_PER_PEER: usize = 4;

/// Longest announcement read, in bytes; longer datagrams are ignored whole.
pub const MAX_PAYLOAD: usize = MAX_ADDRESS_LEN;

/// A change in who is on the LAN, reported by [`Discovery::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer announced an address we had not heard from it yet: the peer is new, or it
    /// is known and this is another of its addresses. Connect to it if not connected.
    Heard(MultiserverAddress),
    /// Nothing was heard from this peer for [`FORGET_AFTER`]: it has left the LAN (or
    /// stopped announcing), and all its addresses are dropped. Stop redialling it.
    Forgotten(FeedId),
}

/// Why a received announcement was not taken into the table (logged, never fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// Longer than [`MAX_PAYLOAD`].
    #[error("announcement of {0} bytes or more is longer than the {MAX_PAYLOAD} allowed")]
    TooLong(usize),
    /// Not UTF-8 text.
    #[error("announcement is not UTF-8")]
    NotUtf8,
    /// Not an address this node can use.
    #[error("announcement is not a usable address: {0}")]
    Address(#[from] AddressError),
    /// Our own announcement, come back to us.
    #[error("our own announcement")]
    Own,
    /// The address is an unspecified, multicast or broadcast IP, which cannot be dialled.
    #[error("announced IP {0} cannot be connected to")]
    Unreachable(IpAddr),
    /// The table already holds [`MAX_PEERS`] other peers.
    #[error("peer table is full ({MAX_PEERS} peers)")]
    TableFull,
    /// The peer already has [`MAX_ADDRESSES_PER_PEER`] other addresses.
    #[error("peer already has {MAX_ADDRESSES_PER_PEER} addresses")]
    TooManyAddresses,
}

/// Reads one announcement datagram: UTF-8, at most [`MAX_PAYLOAD`] bytes, holding an
/// address in any form ssb-ref's `parseAddress` takes, with a dialable IP if it has one.
pub fn parse_announcement(payload: &[u8]) -> Result<MultiserverAddress, Ignored> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Ignored::TooLong(payload.len()));
    }
    let text = std::str::from_utf8(payload).map_err(|_| Ignored::NotUtf8)?;
    // Tolerate a trailing newline, as a hand-made `nc -u` announcement would have.
    let address: MultiserverAddress = text.trim_end_matches(['\n', '\r']).parse()?;
    if let Some(ip) = address.host().ip() {
        let unreachable = ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if unreachable {
            return Err(Ignored::Unreachable(ip));
        }
    }
    Ok(address)
}

/// The peers heard on the LAN: for each key, its addresses and when each was last heard.
#[derive(Debug)]
pub struct PeerTable {
    own: FeedId,
    peers: HashMap<FeedId, Vec<(MultiserverAddress, Instant)>>,
}

impl PeerTable {
    /// An empty table for the node whose key is `own` (its announcements are ignored).
    pub fn new(own: FeedId) -> Self {
        Self {
            own,
            peers: HashMap::new(),
        }
    }

    /// Takes in a datagram received at `now`; see [`PeerTable::heard`].
    pub fn receive(&mut self, payload: &[u8], now: Instant) -> Result<Option<Event>, Ignored> {
        self.heard(parse_announcement(payload)?, now)
    }

    /// Notes that `address` was announced at `now`. Returns [`Event::Heard`] if this key
    /// and address pair is new, `None` if it only refreshes a known one.
    pub fn heard(
        &mut self,
        address: MultiserverAddress,
        now: Instant,
    ) -> Result<Option<Event>, Ignored> {
        if *address.key() == self.own {
            return Err(Ignored::Own);
        }
        if !self.peers.contains_key(address.key()) && self.peers.len() >= MAX_PEERS {
            return Err(Ignored::TableFull);
        }
        let addresses = self.peers.entry(*address.key()).or_default();
        if let Some((_, last)) = addresses.iter_mut().find(|(a, _)| *a == address) {
            *last = now;
            return Ok(None);
        }
        if addresses.len() >= MAX_ADDRESSES_PER_PEER {
            return Err(Ignored::TooManyAddresses);
        }
        addresses.push((address.clone(), now));
        Ok(Some(Event::Heard(address)))
    }

    /// Drops every address not heard for [`FORGET_AFTER`] before `now`, and returns
    /// [`Event::Forgotten`] for each peer left without an address, in key order.
    pub fn sweep(&mut self, now: Instant) -> Vec<Event> {
        let mut forgotten = Vec::new();
        self.peers.retain(|key, addresses| {
            addresses.retain(|(_, last)| now.saturating_duration_since(*last) < FORGET_AFTER);
            if addresses.is_empty() {
                forgotten.push(*key);
            }
            !addresses.is_empty()
        });
        forgotten.sort_unstable();
        forgotten.into_iter().map(Event::Forgotten).collect()
    }

    /// The addresses remembered for `key`, in the order they were first heard.
    pub fn addresses(&self, key: &FeedId) -> impl Iterator<Item = &MultiserverAddress> {
        self.peers.get(key).into_iter().flatten().map(|(a, _)| a)
    }

    /// How many peers are remembered.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is remembered.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

/// Where one announcement goes, and which of our IPs it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The IP put in the announced address: ours, as seen from that network.
    pub announce_ip: IpAddr,
    /// Where the datagram is sent, e.g. an interface's broadcast address and the port.
    pub destination: SocketAddr,
}

/// Why discovery could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The UDP socket could not be made or bound.
    #[error("cannot bind the LAN discovery socket to {addr}: {source}")]
    Bind {
        /// The address it was to be bound to.
        addr: SocketAddr,
        /// Why not.
        source: io::Error,
    },
    /// The TCP port to announce is not usable (0).
    #[error("cannot announce port 0; pass the listener's actual address")]
    PortZero,
    /// Receiving failed in a way that will not get better.
    #[error("LAN discovery socket failed: {0}")]
    Receive(io::Error),
}

/// Where announcements are sent.
#[derive(Debug)]
enum Targets {
    /// Every up, non-loopback IPv4 interface with a broadcast address, read on each tick;
    /// only the one with this IP if there is one.
    Interfaces { only: Option<IpAddr> },
    /// A fixed list.
    Fixed(Vec<Target>),
}

/// The LAN discovery service of one node: a bound UDP socket and where to announce.
///
/// Make it with [`Discovery::bind`], then spawn [`Discovery::run`] with the sending half
/// of an [`mpsc`] channel whose receiving half the node reads [`Event`]s from.
#[derive(Debug)]
pub struct Discovery {
    socket: std::net::UdpSocket,
    key: FeedId,
    tcp_port: u16,
    targets: Targets,
}

impl Discovery {
    /// Binds UDP `0.0.0.0:PORT` for the node with `key` whose TCP listener is bound at
    /// `listen` (its actual address, so never port 0), with PORT = the TCP port.
    ///
    /// If `listen` has an unspecified IP, every suitable IPv4 interface is announced;
    /// otherwise only the interface with that IP (none for loopback, which has no
    /// broadcast). Does not need a tokio runtime; [`Discovery::run`] does.
    pub fn bind(key: FeedId, listen: SocketAddr) -> Result<Self, DiscoveryError> {
        let udp = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), listen.port());
        let mut discovery = Self::bind_udp(key, udp, listen.port())?;
        let ip = listen.ip();
        discovery.targets = Targets::Interfaces {
            only: (!ip.is_unspecified()).then_some(ip),
        };
        Ok(discovery)
    }

    /// Binds UDP at `udp` (port 0 picks one) and announces TCP port `tcp_port` on every
    /// suitable interface; [`Discovery::set_targets`] replaces the interfaces by fixed
    /// targets. For tests and unusual setups; a node uses [`Discovery::bind`].
    pub fn bind_udp(key: FeedId, udp: SocketAddr, tcp_port: u16) -> Result<Self, DiscoveryError> {
        if tcp_port == 0 {
            return Err(DiscoveryError::PortZero);
        }
        let socket =
            bind_socket(udp).map_err(|source| DiscoveryError::Bind { addr: udp, source })?;
        Ok(Self {
            socket,
            key,
            tcp_port,
            targets: Targets::Interfaces { only: None },
        })
    }

    /// Announces to exactly `targets` instead of the interfaces' broadcast addresses.
    pub fn set_targets(&mut self, targets: Vec<Target>) {
        self.targets = Targets::Fixed(targets);
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Announces and listens until the receiver of `events` is dropped (then returns
    /// `Ok`), or the socket fails for good. Must run inside a tokio runtime.
    ///
    /// Every [`ANNOUNCE_INTERVAL`] (the first at once) it sends the announcements and
    /// reports peers silent for [`FORGET_AFTER`]; in between it waits on the socket.
    /// Send errors (an interface going down) are logged and retried on the next tick.
    pub async fn run(self, events: mpsc::Sender<Event>) -> Result<(), DiscoveryError> {
        let Discovery {
            socket,
            key,
            tcp_port,
            targets,
        } = self;
        let socket = UdpSocket::from_std(socket).map_err(DiscoveryError::Receive)?;
        let mut table = PeerTable::new(key);
        let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // One byte more than allowed, to tell a too-long datagram from one that fits.
        let mut buf = vec![0u8; MAX_PAYLOAD + 1];
        let mut announced: Vec<Target> = Vec::new();
        loop {
            let event = tokio::select! {
                () = events.closed() => return Ok(()),
                _ = tick.tick() => {
                    let now_targets = targets.current(tcp_port);
                    if now_targets != announced {
                        tracing::info!(targets = ?now_targets, "LAN discovery: announcing");
                        announced = now_targets;
                    }
                    announce(&socket, &announced, tcp_port, key).await;
                    for event in table.sweep(now()) {
                        tracing::debug!(?event, "LAN discovery");
                        if events.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
                received = socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => match table.receive(&buf[..len], now()) {
                        Ok(Some(event)) => event,
                        Ok(None) | Err(Ignored::Own) => continue,
                        Err(why) => {
                            tracing::debug!(%from, %why, "LAN discovery: announcement ignored");
                            continue;
                        }
                    },
                    Err(e) if is_transient(&e) => {
                        tracing::debug!(error = %e, "LAN discovery: receive");
                        continue;
                    }
                    Err(e) => return Err(DiscoveryError::Receive(e)),
                },
            };
            tracing::debug!(?event, "LAN discovery");
            if events.send(event).await.is_err() {
                return Ok(());
            }
        }
    }
}

impl Targets {
    /// The targets to announce to now.
    fn current(&self, tcp_port: u16) -> Vec<Target> {
        match self {
            Targets::Fixed(targets) => targets.clone(),
            Targets::Interfaces { only } => match interface_targets(tcp_port) {
                Ok(targets) => targets
                    .into_iter()
                    .filter(|t| only.is_none_or(|ip| ip == t.announce_ip))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "LAN discovery: cannot list network interfaces");
                    Vec::new()
                }
            },
        }
    }
}

/// Sends `net:IP:PORT~shs:KEY` to each target, with that target's IP.
async fn announce(socket: &UdpSocket, targets: &[Target], tcp_port: u16, key: FeedId) {
    for target in targets {
        let Ok(address) = MultiserverAddress::new(Host::Ip(target.announce_ip), tcp_port, key)
        else {
            continue;
        };
        let payload = address.to_string();
        if let Err(e) = socket.send_to(payload.as_bytes(), target.destination).await {
            tracing::debug!(destination = %target.destination, error = %e, "LAN discovery: send");
        }
    }
}

/// The clock of the tokio runtime, so tests with a paused clock see their own time.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Errors a UDP socket reports for earlier sends (ICMP replies) or signals: the socket
/// itself is fine.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// A non-blocking UDP socket at `addr` that may share its port with other processes
/// (`SO_REUSEADDR`, `SO_REUSEPORT`: another SSB node, or a JavaScript one, on the same
/// host) and may send broadcasts (`SO_BROADCAST`).
fn bind_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// One target per up, non-loopback IPv4 interface address that has a broadcast address:
/// that address, sent to the broadcast address at `port`.
fn interface_targets(port: u16) -> nix::Result<Vec<Target>> {
    use nix::net::if_::InterfaceFlags;
    let mut targets = Vec::new();
    for ifaddr in nix::ifaddrs::getifaddrs()? {
        let usable = ifaddr.flags.contains(InterfaceFlags::IFF_UP)
            && ifaddr.flags.contains(InterfaceFlags::IFF_BROADCAST)
            && !ifaddr.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let ip = ifaddr
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|a| a.ip());
        let broadcast = ifaddr
            .broadcast
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|a| a.ip());
        if let (true, Some(ip), Some(broadcast)) = (usable, ip, broadcast) {
            if ip.is_unspecified() || broadcast.is_unspecified() {
                continue;
            }
            let target = Target {
                announce_ip: ip.into(),
                destination: SocketAddr::new(broadcast.into(), port),
            };
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> FeedId {
        FeedId([n; 32])
    }

    fn addr(ip: &str, port: u16, n: u8) -> MultiserverAddress {
        MultiserverAddress::new(Host::Ip(ip.parse().unwrap()), port, key(n)).unwrap()
    }

    #[test]
    fn announcement_format_and_parse() {
        let a = addr("192.168.1.123", 8008, 7);
        let text = a.to_string();
        assert_eq!(
            text,
            format!(
                "net:192.168.1.123:8008~shs:{}",
                crate::feed::ids::encode_base64(&[7; 32])
            )
        );
        assert_eq!(parse_announcement(text.as_bytes()), Ok(a.clone()));
        assert_eq!(
            parse_announcement(format!("{text}\n").as_bytes()),
            Ok(a.clone())
        );
        // The legacy form, and several alternatives, as JS nodes may send.
        let legacy = format!("192.168.1.123:8008:{}", key(7));
        assert_eq!(parse_announcement(legacy.as_bytes()), Ok(a.clone()));
        let multi = format!(
            "ws://192.168.1.123:8989~shs:{0};{text}",
            &text[text.len() - 44..]
        );
        assert_eq!(parse_announcement(multi.as_bytes()), Ok(a));
        // The protocol guide's example.
        let guide = b"net:192.168.1.123:8008~shs:FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=";
        assert!(parse_announcement(guide).is_ok());
    }

    #[test]
    fn bad_announcements_are_ignored_with_a_reason() {
        let key = crate::feed::ids::encode_base64(&[7; 32]);
        let long = format!("net:10.0.0.1:8008~shs:{key}")
            .into_bytes()
            .into_iter()
            .chain(std::iter::repeat_n(b' ', MAX_PAYLOAD))
            .collect::<Vec<_>>();
        assert_eq!(parse_announcement(&long), Err(Ignored::TooLong(long.len())));
        assert_eq!(parse_announcement(b"net:\xff"), Err(Ignored::NotUtf8));
        assert!(matches!(
            parse_announcement(b"hello"),
            Err(Ignored::Address(_))
        ));
        for ip in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::"] {
            let text = format!("net:{ip}:8008~shs:{key}");
            assert_eq!(
                parse_announcement(text.as_bytes()),
                Err(Ignored::Unreachable(ip.parse().unwrap())),
                "{ip}"
            );
        }
    }

    #[test]
    fn table_reports_new_peers_and_addresses_once() {
        let t0 = Instant::now();
        let mut table = PeerTable::new(key(1));
        let own = addr("10.0.0.1", 8008, 1).to_string();
        assert_eq!(table.receive(own.as_bytes(), t0), Err(Ignored::Own));
        let b = addr("10.0.0.2", 8008, 2);
        assert_eq!(
            table.heard(b.clone(), t0),
            Ok(Some(Event::Heard(b.clone())))
        );
        assert_eq!(
            table.heard(b.clone(), t0 + Duration::from_secs(1)),
            Ok(None)
        );
        // Another network of the same peer is news; the same address again is not.
        let b2 = addr("192.168.5.2", 8008, 2);
        assert_eq!(
            table.receive(b2.to_string().as_bytes(), t0),
            Ok(Some(Event::Heard(b2.clone())))
        );
        assert_eq!(table.receive(b2.to_string().as_bytes(), t0), Ok(None));
        assert_eq!(table.len(), 1);
        assert_eq!(table.addresses(&key(2)).collect::<Vec<_>>(), [&b, &b2]);
        assert!(table.addresses(&key(3)).next().is_none());
    }

    #[test]
    fn peers_are_forgotten_after_ten_silent_seconds() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut table = PeerTable::new(key(1));
        table.heard(addr("10.0.0.2", 8008, 2), t0).unwrap();
        table.heard(addr("10.0.0.3", 8008, 3), t0).unwrap();
        table.heard(addr("10.0.0.3", 8008, 3), t0 + s(5)).unwrap();
        // Peer 4 has two addresses; the one still announced keeps it.
        table.heard(addr("10.0.0.4", 8008, 4), t0).unwrap();
        table.heard(addr("10.9.0.4", 8008, 4), t0 + s(8)).unwrap();
        assert_eq!(table.sweep(t0 + s(9)), []);
        assert_eq!(table.len(), 3);
        assert_eq!(table.sweep(t0 + s(10)), [Event::Forgotten(key(2))]);
        assert_eq!(
            table.addresses(&key(4)).count(),
            1,
            "the stale address of 4 dropped"
        );
        assert_eq!(table.sweep(t0 + s(15)), [Event::Forgotten(key(3))]);
        assert_eq!(table.sweep(t0 + s(18)), [Event::Forgotten(key(4))]);
        assert!(table.is_empty());
        // A forgotten peer that comes back is heard anew.
        let back = addr("10.0.0.2", 8008, 2);
        assert_eq!(
            table.heard(back.clone(), t0 + s(20)),
            Ok(Some(Event::Heard(back)))
        );
        // Several peers forgotten in one sweep come out in key order.
        table.heard(addr("10.0.0.9", 8008, 9), t0 + s(20)).unwrap();
        table.heard(addr("10.0.0.5", 8008, 5), t0 + s(20)).unwrap();
        let keys = [2, 5, 9].map(|n| Event::Forgotten(key(n)));
        assert_eq!(table.sweep(t0 + s(30)), keys);
    }

    #[test]
    fn table_is_bounded() {
        let t0 = Instant::now();
        let mut table = PeerTable::new(key(0));
        for n in 1..=MAX_PEERS {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(n as u64).to_be_bytes());
            let a = MultiserverAddress::new(Host::Ip("10.0.0.2".parse().unwrap()), 8008, FeedId(k));
            assert!(matches!(table.heard(a.unwrap(), t0), Ok(Some(_))));
        }
        assert_eq!(
            table.heard(addr("10.0.0.3", 8008, 0xff), t0),
            Err(Ignored::TableFull)
        );
        let mut one = PeerTable::new(key(0));
        for i in 0..MAX_ADDRESSES_PER_PEER {
            one.heard(addr(&format!("10.0.{i}.2"), 8008, 2), t0)
                .unwrap();
        }
        assert_eq!(
            one.heard(addr("10.0.9.2", 8008, 2), t0),
            Err(Ignored::TooManyAddresses)
        );
        // Known addresses are still refreshed: at t0 + 9 s the first one is heard again ...
        assert_eq!(
            one.heard(addr("10.0.0.2", 8008, 2), t0 + Duration::from_secs(9)),
            Ok(None)
        );
        // ... so only the other three expire at t0 + 10 s, making room for a new one.
        assert_eq!(one.sweep(t0 + Duration::from_secs(10)), []);
        assert_eq!(one.addresses(&key(2)).count(), 1);
        assert!(one.heard(addr("10.0.9.2", 8008, 2), t0).is_ok());
    }

    #[test]
    fn port_zero_is_refused() {
        let err = Discovery::bind_udp(key(1), "127.0.0.1:0".parse().unwrap(), 0).unwrap_err();
        assert!(matches!(err, DiscoveryError::PortZero));
    }

    /// The next event within `secs` seconds (of the runtime's clock).
    async fn next(rx: &mut mpsc::Receiver<Event>, secs: u64) -> Event {
        tokio::time::timeout(Duration::from_secs(secs), rx.recv())
            .await
            .expect("an event in time")
            .expect("the service is running")
    }

    /// Two services on loopback (which has no broadcast, so with fixed targets): each hears
    /// the other, not itself, and forgets the other ~10 s after it stops.
    #[tokio::test(start_paused = true)]
    async fn two_services_over_loopback() {
        let bind = "127.0.0.1:0".parse().unwrap();
        let loopback: IpAddr = Ipv4Addr::LOCALHOST.into();
        let mut a = Discovery::bind_udp(key(1), bind, 1111).unwrap();
        let mut b = Discovery::bind_udp(key(2), bind, 2222).unwrap();
        let (a_udp, b_udp) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let to = |destination| Target {
            announce_ip: loopback,
            destination,
        };
        // a also announces to itself, which it must ignore.
        a.set_targets(vec![to(a_udp), to(b_udp)]);
        b.set_targets(vec![to(a_udp)]);
        let (a_tx, mut a_rx) = mpsc::channel(8);
        let (b_tx, mut b_rx) = mpsc::channel(8);
        let a_task = tokio::spawn(a.run(a_tx));
        let b_task = tokio::spawn(b.run(b_tx));

        assert_eq!(
            next(&mut a_rx, 3).await,
            Event::Heard(addr("127.0.0.1", 2222, 2))
        );
        assert_eq!(
            next(&mut b_rx, 3).await,
            Event::Heard(addr("127.0.0.1", 1111, 1))
        );

        // Stop b by dropping its receiver; its run() returns Ok.
        drop(b_rx);
        b_task.await.unwrap().unwrap();
        let stopped = tokio::time::Instant::now();
        assert_eq!(next(&mut a_rx, 15).await, Event::Forgotten(key(2)));
        let after = stopped.elapsed();
        assert!(
            after >= Duration::from_secs(9) && after <= Duration::from_secs(11),
            "forgotten after {after:?}"
        );
        drop(a_rx);
        a_task.await.unwrap().unwrap();
    }
}
