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
//!   [`LanPeers`] remembers who was heard when, forgetting a peer after [`FORGET_AFTER`]
//!   of silence. Both take the time as an argument, so they are tested without sleeping.
//! - Tokio: [`Discovery`] owns the socket and drives the table: a 1 s interval sends the
//!   announcements, reads the interfaces, sweeps the table and logs one summary line of
//!   what was ignored; `recv_from` feeds the table. What changes is reported as [`Event`]s
//!   on a channel. The work per datagram is bounded (at most [`MAX_PAYLOAD`] bytes parsed,
//!   a scan of the interface list, a hash lookup) and nothing is logged per datagram above
//!   `trace`, so a flood costs little.
//!
//! Manyverse's ssb-lan sends a second, encrypted form to UDP port [`ENCRYPTED_PORT`]
//! (26830): the JSON `{"address":"net:…"}` in a secretbox whose key is the network key
//! (`caps.shs`) and whose nonce is that key's first 24 bytes, followed by the 64-byte
//! Ed25519 signature, by the announced key, of the ssb-keys `signObj` text of the same
//! object (`JSON.stringify(obj, null, 2)`). Only nodes of the same network can read it, and
//! the signature proves the key. [`seal_announcement`] and [`open_announcement`] are its
//! sans-IO codec; what opens goes through the same sender checks as the plain form, and
//! the driver sends both forms to the same broadcast addresses.
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

use crate::feed::json::{write_quoted, Value};
use crate::feed::FeedId;
use crate::net::address::{AddressError, Host, MultiserverAddress, MAX_ADDRESS_LEN};
use crate::net::crypto::{
    secretbox_open_detached, secretbox_seal_detached, verify_detached, TAG_LEN,
};
use crate::net::shs::{Keypair, NetworkKey};

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

/// At most this many keys are remembered at one announced IP. An honest host runs one
/// node or a few; a flood of made-up keys from one address stops here.
pub const MAX_KEYS_PER_HOST: usize = 4;

/// Longest announcement read, in bytes; longer datagrams are ignored whole.
pub const MAX_PAYLOAD: usize = MAX_ADDRESS_LEN;

/// The UDP port of ssb-lan's encrypted announcements, whatever the TCP port.
pub const ENCRYPTED_PORT: u16 = 26830;

/// Length of the Ed25519 signature at the end of an encrypted announcement.
const SIGNATURE_LEN: usize = 64;

/// The JSON around the address inside an encrypted announcement: `{"address":"` and `"}`.
const SEALED_JSON_OVERHEAD: usize = r#"{"address":""}"#.len();

/// Longest encrypted announcement read, in bytes: the longest address in its JSON object,
/// the secretbox tag and the signature; longer datagrams are ignored whole.
pub const MAX_ENCRYPTED_PAYLOAD: usize =
    MAX_PAYLOAD + SEALED_JSON_OVERHEAD + TAG_LEN + SIGNATURE_LEN;

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
    /// An encrypted announcement longer than [`MAX_ENCRYPTED_PAYLOAD`].
    #[error("encrypted announcement of {0} bytes or more is longer than the {MAX_ENCRYPTED_PAYLOAD} allowed")]
    SealedTooLong(usize),
    /// An encrypted announcement too short to hold a tag, a signature and an address.
    #[error("encrypted announcement of {0} bytes is too short")]
    SealedTooShort(usize),
    /// An encrypted announcement that does not open with our network key: another
    /// network's, or not an announcement.
    #[error("encrypted announcement does not open with our network key")]
    NotOurNetwork,
    /// An encrypted announcement that opens but holds no `{"address": "…"}` object.
    #[error("encrypted announcement holds no address object")]
    NoAddressObject,
    /// An encrypted announcement whose signature is not by the key it announces.
    #[error("encrypted announcement is not signed by the key it announces")]
    BadSignature,
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
    /// The host is a name, which would have to be resolved: an honest peer announces its IP.
    #[error("announced host {0:?} is a name, not an IP address")]
    Name(String),
    /// The address is a loopback one: it names the receiver, not the sender.
    #[error("announced IP {0} is a loopback address")]
    Loopback(IpAddr),
    /// The address is not the one the datagram came from: an honest peer announces its own,
    /// and another host's would have us connect to that host (reflection).
    #[error("announced IP {announced} is not the sender's {from}")]
    NotSender {
        /// The IP in the announcement.
        announced: IpAddr,
        /// The source IP of the datagram.
        from: IpAddr,
    },
    /// The address is in no subnet of our up, non-loopback IPv4 interfaces.
    #[error("announced IP {0} is not on any of our networks")]
    OffLink(IpAddr),
    /// The address is the network or broadcast address of our subnet it is in.
    #[error("announced IP {0} is the network or broadcast address of {1}")]
    SubnetEdge(IpAddr, Subnet),
    /// The address is one of ours (another key cannot listen there, and dialling it reaches
    /// this host's own services).
    #[error("announced IP {0} is one of our own addresses")]
    OwnAddress(IpAddr),
    /// The table already holds [`MAX_KEYS_PER_HOST`] other keys at this IP.
    #[error("{MAX_KEYS_PER_HOST} keys are already announced at {0}")]
    TooManyKeysAtHost(Host),
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

/// The text ssb-keys' `signObj` signs for `{address}`: `JSON.stringify(obj, null, 2)`.
fn signed_text(address: &str) -> Vec<u8> {
    let mut text = b"{\n  \"address\": ".to_vec();
    write_quoted(&mut text, address.as_bytes());
    text.extend_from_slice(b"\n}");
    text
}

/// The nonce of an encrypted announcement: the network key's first 24 bytes.
fn sealed_nonce(network: &NetworkKey) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&network.0[..24]);
    nonce
}

/// The encrypted announcement of `address` (which names `keys`' public key) on
/// `network`, byte for byte as ssb-lan makes it: the secretbox (tag, then ciphertext) of
/// `{"address":"…"}`, then the signature.
pub fn seal_announcement(
    address: &MultiserverAddress,
    network: &NetworkKey,
    keys: &Keypair,
) -> Vec<u8> {
    let text = address.to_string();
    let mut json = b"{\"address\":".to_vec();
    write_quoted(&mut json, text.as_bytes());
    json.push(b'}');
    let tag = secretbox_seal_detached(&network.0, &sealed_nonce(network), &mut json);
    let mut out = Vec::with_capacity(TAG_LEN + json.len() + SIGNATURE_LEN);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&json);
    out.extend_from_slice(&keys.sign(&signed_text(&text)));
    out
}

/// Reads one encrypted announcement on `network`: at most [`MAX_ENCRYPTED_PAYLOAD`]
/// bytes, a secretbox that opens with the network key, holding `{"address": "…"}` with an
/// address [`parse_announcement`] takes, signed by the key that address names.
pub fn open_announcement(
    payload: &[u8],
    network: &NetworkKey,
) -> Result<MultiserverAddress, Ignored> {
    let opened = unseal(payload, network)?;
    opened.verify()?;
    Ok(opened.address)
}

/// An encrypted announcement opened, its signature not checked yet.
struct Unsealed {
    address: MultiserverAddress,
    /// The address as it was in the JSON, which the signature covers.
    text: String,
    signature: [u8; SIGNATURE_LEN],
}

impl Unsealed {
    fn verify(&self) -> Result<(), Ignored> {
        let key = self.address.key().as_bytes();
        if verify_detached(key, &signed_text(&self.text), &self.signature) {
            Ok(())
        } else {
            Err(Ignored::BadSignature)
        }
    }
}

/// Opens the secretbox of an encrypted announcement and reads its address.
fn unseal(payload: &[u8], network: &NetworkKey) -> Result<Unsealed, Ignored> {
    if payload.len() > MAX_ENCRYPTED_PAYLOAD {
        return Err(Ignored::SealedTooLong(payload.len()));
    }
    if payload.len() < TAG_LEN + SEALED_JSON_OVERHEAD + SIGNATURE_LEN {
        return Err(Ignored::SealedTooShort(payload.len()));
    }
    let (sealed, signature) = payload.split_at(payload.len() - SIGNATURE_LEN);
    let (tag, ciphertext) = sealed.split_at(TAG_LEN);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Ignored::NotOurNetwork)?;
    let signature: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| Ignored::BadSignature)?;
    let mut plain = ciphertext.to_vec();
    if !secretbox_open_detached(&network.0, &sealed_nonce(network), &mut plain, tag) {
        return Err(Ignored::NotOurNetwork);
    }
    let value = Value::parse(&plain).map_err(|_| Ignored::NoAddressObject)?;
    let text = value
        .as_object()
        .and_then(|o| o.get("address"))
        .and_then(Value::as_str)
        .ok_or(Ignored::NoAddressObject)?;
    let address = parse_announcement(text.as_bytes())?;
    Ok(Unsealed {
        address,
        text: text.to_owned(),
        signature,
    })
}

/// One IPv4 network this node is on: the address and prefix length of an up, non-loopback
/// interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    /// Our address on it.
    pub ip: Ipv4Addr,
    /// The prefix length (0 to 32).
    pub prefix: u8,
}

impl Subnet {
    /// Our address `ip` on a network with netmask `netmask` (a non-contiguous mask counts
    /// its leading ones).
    pub fn new(ip: Ipv4Addr, netmask: Ipv4Addr) -> Self {
        let prefix = u32::from(netmask).leading_ones();
        Self {
            ip,
            prefix: u8::try_from(prefix).unwrap_or(32),
        }
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// Whether `ip` is inside this network.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.ip)) & self.mask() == 0
    }

    /// Whether `ip` is this network's network (all host bits 0) or broadcast (all 1)
    /// address; a /31 or /32 has neither (RFC 3021).
    fn is_edge(self, ip: Ipv4Addr) -> bool {
        if self.prefix >= 31 {
            return false;
        }
        let host = u32::from(ip) & !self.mask();
        host == 0 || host == !self.mask()
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let net = Ipv4Addr::from(u32::from(self.ip) & self.mask());
        write!(f, "{net}/{}", self.prefix)
    }
}

/// Whether the node may dial `address`, announced in a datagram from `from` and heard
/// while the node's networks are `networks`: see the module docs for the rules. The work
/// is one pass over `networks`.
pub fn check_sender(
    address: &MultiserverAddress,
    from: SocketAddr,
    networks: &[Subnet],
) -> Result<(), Ignored> {
    let ip = match address.host() {
        Host::Ip(ip) => *ip,
        Host::Name(name) => return Err(Ignored::Name(name.clone())),
    };
    if ip.is_loopback() || ip.to_canonical().is_loopback() {
        return Err(Ignored::Loopback(ip));
    }
    let unreachable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unreachable {
        return Err(Ignored::Unreachable(ip));
    }
    let sender = from.ip().to_canonical();
    // An IPv6 address never gets past here: the socket is IPv4, so `sender` is too.
    let IpAddr::V4(v4) = ip else {
        return Err(Ignored::NotSender {
            announced: ip,
            from: sender,
        });
    };
    if sender != ip {
        return Err(Ignored::NotSender {
            announced: ip,
            from: sender,
        });
    }
    if networks.iter().any(|n| n.ip == v4) {
        return Err(Ignored::OwnAddress(ip));
    }
    let network = networks
        .iter()
        .find(|n| n.contains(v4))
        .ok_or(Ignored::OffLink(ip))?;
    if network.is_edge(v4) {
        return Err(Ignored::SubnetEdge(ip, *network));
    }
    Ok(())
}

/// The peers heard on the LAN: for each key, its addresses and when each was last heard.
#[derive(Debug)]
pub struct LanPeers {
    own: FeedId,
    peers: HashMap<FeedId, Vec<(MultiserverAddress, Instant)>>,
    /// How many keys have an address at each host; recounted on every sweep.
    keys_at: HashMap<Host, usize>,
}

impl LanPeers {
    /// An empty table for the node whose key is `own` (its announcements are ignored).
    pub fn new(own: FeedId) -> Self {
        Self {
            own,
            peers: HashMap::new(),
            keys_at: HashMap::new(),
        }
    }

    /// Takes in a datagram from `from` received at `now` while the node's networks are
    /// `networks`: [`parse_announcement`], [`check_sender`] (after our own announcements
    /// are told apart), then [`LanPeers::heard`].
    pub fn receive(
        &mut self,
        payload: &[u8],
        from: SocketAddr,
        networks: &[Subnet],
        now: Instant,
    ) -> Result<Option<Event>, Ignored> {
        let address = parse_announcement(payload)?;
        self.take(address, from, networks, now)
    }

    /// Like [`LanPeers::receive`] for an encrypted announcement on `network`
    /// ([`open_announcement`]); the signature, the costliest check, is checked last.
    pub fn receive_sealed(
        &mut self,
        payload: &[u8],
        network: &NetworkKey,
        from: SocketAddr,
        networks: &[Subnet],
        now: Instant,
    ) -> Result<Option<Event>, Ignored> {
        let opened = unseal(payload, network)?;
        self.check(&opened.address, from, networks)?;
        opened.verify()?;
        self.heard(opened.address, now)
    }

    fn take(
        &mut self,
        address: MultiserverAddress,
        from: SocketAddr,
        networks: &[Subnet],
        now: Instant,
    ) -> Result<Option<Event>, Ignored> {
        self.check(&address, from, networks)?;
        self.heard(address, now)
    }

    /// Our own announcement, or one [`check_sender`] refuses.
    fn check(
        &self,
        address: &MultiserverAddress,
        from: SocketAddr,
        networks: &[Subnet],
    ) -> Result<(), Ignored> {
        if *address.key() == self.own {
            return Err(Ignored::Own);
        }
        check_sender(address, from, networks)
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
        let new_at_host = !addresses.iter().any(|(a, _)| a.host() == address.host());
        if new_at_host {
            let keys = self.keys_at.entry(address.host().clone()).or_default();
            if *keys >= MAX_KEYS_PER_HOST {
                if addresses.is_empty() {
                    self.peers.remove(address.key());
                }
                return Err(Ignored::TooManyKeysAtHost(address.host().clone()));
            }
            *keys += 1;
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
        self.keys_at.clear();
        for addresses in self.peers.values() {
            for (i, (a, _)) in addresses.iter().enumerate() {
                if !addresses[..i].iter().any(|(b, _)| b.host() == a.host()) {
                    *self.keys_at.entry(a.host().clone()).or_default() += 1;
                }
            }
        }
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
    /// The identity to sign encrypted announcements with is not the announced one.
    #[error("the signing identity is not the announced key")]
    OtherKey,
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
    sealed: Option<Sealed>,
}

/// The encrypted form: its socket, the network key and our identity to sign with.
struct Sealed {
    socket: std::net::UdpSocket,
    port: u16,
    network: NetworkKey,
    keys: Keypair,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("socket", &self.socket)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
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
            sealed: None,
        })
    }

    /// Also sends and hears ssb-lan's encrypted form on `network`, with a UDP socket bound
    /// at `udp` (the node: `0.0.0.0:`[`ENCRYPTED_PORT`]); announcements are signed by
    /// `keys`, which must be the identity given to [`Discovery::bind`]. They go to the
    /// same hosts as the plain ones, at the bound port.
    pub fn add_encrypted(
        &mut self,
        udp: SocketAddr,
        network: NetworkKey,
        keys: Keypair,
    ) -> Result<(), DiscoveryError> {
        if keys.public().0 != *self.key.as_bytes() {
            return Err(DiscoveryError::OtherKey);
        }
        let socket =
            bind_socket(udp).map_err(|source| DiscoveryError::Bind { addr: udp, source })?;
        let port = socket
            .local_addr()
            .map_err(|source| DiscoveryError::Bind { addr: udp, source })?
            .port();
        self.sealed = Some(Sealed {
            socket,
            port,
            network,
            keys,
        });
        Ok(())
    }

    /// The bound UDP address of the encrypted form, if it is on.
    pub fn encrypted_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.sealed.as_ref().map(|s| s.socket.local_addr())
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
            sealed,
        } = self;
        let socket = UdpSocket::from_std(socket).map_err(DiscoveryError::Receive)?;
        let sealed = match sealed {
            Some(s) => Some(SealedSocket {
                socket: UdpSocket::from_std(s.socket).map_err(DiscoveryError::Receive)?,
                port: s.port,
                network: s.network,
                keys: s.keys,
            }),
            None => None,
        };
        let mut sealed_buf = vec![
            0u8;
            if sealed.is_some() {
                MAX_ENCRYPTED_PAYLOAD + 1
            } else {
                0
            }
        ];
        let mut table = LanPeers::new(key);
        let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // One byte more than allowed, to tell a too-long datagram from one that fits.
        let mut buf = vec![0u8; MAX_PAYLOAD + 1];
        let mut announced: Vec<Target> = Vec::new();
        let mut networks: Vec<Subnet> = Vec::new();
        let mut ignored = IgnoredSummary::default();
        loop {
            let event = tokio::select! {
                () = events.closed() => return Ok(()),
                _ = tick.tick() => {
                    let (now_targets, now_networks) = targets.current(tcp_port);
                    if now_targets != announced {
                        tracing::info!(targets = ?now_targets, "LAN discovery: announcing");
                        announced = now_targets;
                    }
                    networks = now_networks;
                    announce(&socket, &announced, tcp_port, key).await;
                    if let Some(sealed) = &sealed {
                        announce_sealed(sealed, &announced, tcp_port, key).await;
                    }
                    ignored.log_and_clear();
                    for event in table.sweep(now()) {
                        tracing::debug!(?event, "LAN discovery");
                        if events.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
                received = socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => match table.receive(&buf[..len], from, &networks, now()) {
                        Ok(Some(event)) => event,
                        Ok(None) | Err(Ignored::Own) => continue,
                        Err(why) => {
                            tracing::trace!(%from, %why, "LAN discovery: announcement ignored");
                            ignored.add(from, why);
                            continue;
                        }
                    },
                    Err(e) if is_transient(&e) => {
                        tracing::debug!(error = %e, "LAN discovery: receive");
                        continue;
                    }
                    Err(e) => return Err(DiscoveryError::Receive(e)),
                },
                received = recv_sealed(sealed.as_ref(), &mut sealed_buf) => match received {
                    Ok((len, from, network)) => {
                        match table.receive_sealed(&sealed_buf[..len], &network, from, &networks, now()) {
                            Ok(Some(event)) => event,
                            Ok(None) | Err(Ignored::Own) => continue,
                            Err(why) => {
                                tracing::trace!(%from, %why, "LAN discovery: encrypted announcement ignored");
                                ignored.add(from, why);
                                continue;
                            }
                        }
                    }
                    Err(e) if is_transient(&e) => {
                        tracing::debug!(error = %e, "LAN discovery: receive (encrypted)");
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

/// From this many ignored announcements in one tick on, the summary is logged at `info`.
const FLOOD_PER_TICK: u64 = 10;

/// The announcements ignored since the last tick: how many, and the first one's sender
/// and reason, logged as one line per tick however many there were.
#[derive(Debug, Default)]
struct IgnoredSummary {
    count: u64,
    first: Option<(SocketAddr, Ignored)>,
}

impl IgnoredSummary {
    fn add(&mut self, from: SocketAddr, why: Ignored) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((from, why));
        }
    }

    fn log_and_clear(&mut self) {
        // A peer whose announcements never fit (e.g. a host announcing another interface's
        // IP) sends about one a tick: that is debug; more is a flood, worth an info line.
        if let Some((from, why)) = self.first.take() {
            if self.count >= FLOOD_PER_TICK {
                tracing::info!(
                    count = self.count,
                    first_from = %from,
                    first_reason = %why,
                    "LAN discovery: announcements ignored since the last tick"
                );
            } else {
                tracing::debug!(
                    count = self.count,
                    first_from = %from,
                    first_reason = %why,
                    "LAN discovery: announcements ignored since the last tick"
                );
            }
        }
        self.count = 0;
    }
}

impl Targets {
    /// The targets to announce to now, and the networks announcements are accepted from.
    fn current(&self, tcp_port: u16) -> (Vec<Target>, Vec<Subnet>) {
        let (targets, networks) = match interfaces(tcp_port) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "LAN discovery: cannot list network interfaces");
                (Vec::new(), Vec::new())
            }
        };
        let targets = match self {
            Targets::Fixed(targets) => targets.clone(),
            Targets::Interfaces { only } => targets
                .into_iter()
                .filter(|t| only.is_none_or(|ip| ip == t.announce_ip))
                .collect(),
        };
        (targets, networks)
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

/// The encrypted form while [`Discovery::run`] runs.
struct SealedSocket {
    socket: UdpSocket,
    port: u16,
    network: NetworkKey,
    keys: Keypair,
}

/// Receives one encrypted datagram into `buf`, with its sender and the network key to
/// open it with; never returns if the encrypted form is off.
async fn recv_sealed(
    sealed: Option<&SealedSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, NetworkKey)> {
    match sealed {
        Some(s) => {
            let (len, from) = s.socket.recv_from(buf).await?;
            Ok((len, from, s.network))
        }
        None => std::future::pending().await,
    }
}

/// Sends the encrypted announcement of `net:IP:PORT~shs:KEY` to each target's host at the
/// encrypted port, with that target's IP.
async fn announce_sealed(sealed: &SealedSocket, targets: &[Target], tcp_port: u16, key: FeedId) {
    for target in targets {
        let Ok(address) = MultiserverAddress::new(Host::Ip(target.announce_ip), tcp_port, key)
        else {
            continue;
        };
        let payload = seal_announcement(&address, &sealed.network, &sealed.keys);
        let destination = SocketAddr::new(target.destination.ip(), sealed.port);
        if let Err(e) = sealed.socket.send_to(&payload, destination).await {
            tracing::debug!(%destination, error = %e, "LAN discovery: send (encrypted)");
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

/// Reads the interfaces once: one [`Target`] per up, non-loopback IPv4 interface address
/// that has a broadcast address (that address, sent to the broadcast address at `port`),
/// and one [`Subnet`] per up, non-loopback IPv4 interface address with a netmask.
fn interfaces(port: u16) -> nix::Result<(Vec<Target>, Vec<Subnet>)> {
    use nix::net::if_::InterfaceFlags;
    let mut targets = Vec::new();
    let mut networks = Vec::new();
    for ifaddr in nix::ifaddrs::getifaddrs()? {
        let up = ifaddr.flags.contains(InterfaceFlags::IFF_UP)
            && !ifaddr.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let v4 = |a: Option<&nix::sys::socket::SockaddrStorage>| {
            a.and_then(|a| a.as_sockaddr_in()).map(|a| a.ip())
        };
        let Some(ip) = v4(ifaddr.address.as_ref()).filter(|ip| up && !ip.is_unspecified()) else {
            continue;
        };
        if let Some(netmask) = v4(ifaddr.netmask.as_ref()) {
            let network = Subnet::new(ip, netmask);
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        let broadcast = v4(ifaddr.broadcast.as_ref())
            .filter(|b| !b.is_unspecified())
            .filter(|_| ifaddr.flags.contains(InterfaceFlags::IFF_BROADCAST));
        if let Some(broadcast) = broadcast {
            let target = Target {
                announce_ip: ip.into(),
                destination: SocketAddr::new(broadcast.into(), port),
            };
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    Ok((targets, networks))
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

    /// ssb-lan 1.2.3's encrypted announcement of `net:10.0.0.2:8008~shs:KEY` on the main
    /// network by the key of seed `[7; 32]`, made by ssb-lan's own `writeNormal`
    /// (`node tests/js/lan.js packet --seed 07…07 --address …`).
    const SSB_LAN_PACKET: &str = "8c75a880bd96607b855cf79e8d5593f2cf3135a37ef849e15892c7d88e47f673afe8ad6d9149a1e6995e9175d9e93907de236345822dfed80e78779732237558f0506cc606f508f36aeb83651530fd14edc2cec873fa9d33a698b7063ffa5fdf7c55f60c03e6c7edaf6b92a884d5a5231159eaed5aa209c776fc1815c3b5cf30ef7504cdea7d4452b79564adc4d343e509a7b2f75756e86d32c2310c01732808";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn seven() -> (Keypair, MultiserverAddress) {
        let keys = Keypair::from_seed([7; 32]);
        let a = MultiserverAddress::new(
            Host::Ip("10.0.0.2".parse().unwrap()),
            8008,
            FeedId(keys.public().0),
        )
        .unwrap();
        (keys, a)
    }

    #[test]
    fn encrypted_announcements_are_byte_for_byte_ssb_lans() {
        let (keys, a) = seven();
        assert_eq!(
            a.to_string(),
            "net:10.0.0.2:8008~shs:6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw="
        );
        let net = NetworkKey::default();
        let sealed = seal_announcement(&a, &net, &keys);
        assert_eq!(sealed, unhex(SSB_LAN_PACKET), "ours differs from ssb-lan's");
        assert_eq!(open_announcement(&sealed, &net), Ok(a.clone()));
        // Another network's key opens nothing.
        let other = NetworkKey([9; 32]);
        assert_eq!(
            open_announcement(&sealed, &other),
            Err(Ignored::NotOurNetwork)
        );
        let theirs = seal_announcement(&a, &other, &keys);
        assert_eq!(open_announcement(&theirs, &other), Ok(a));
        assert_eq!(
            open_announcement(&theirs, &net),
            Err(Ignored::NotOurNetwork)
        );
    }

    #[test]
    fn forged_or_damaged_encrypted_announcements_are_ignored() {
        let (keys, a) = seven();
        let net = NetworkKey::default();
        let good = seal_announcement(&a, &net, &keys);
        // Any flipped bit: in the tag or ciphertext it does not open, in the signature it
        // does not verify.
        for i in [0, 15, 16, good.len() - 65, good.len() - 64, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 1;
            let want = if i >= good.len() - 64 {
                Ignored::BadSignature
            } else {
                Ignored::NotOurNetwork
            };
            assert_eq!(open_announcement(&bad, &net), Err(want), "byte {i}");
        }
        // Signed by another key than the one announced: anyone on the network could
        // make that, so it is not taken.
        let mallory = Keypair::from_seed([8; 32]);
        assert_eq!(
            open_announcement(&seal_announcement(&a, &net, &mallory), &net),
            Err(Ignored::BadSignature)
        );
        // Sizes.
        assert_eq!(
            open_announcement(&good[..TAG_LEN + SIGNATURE_LEN], &net),
            Err(Ignored::SealedTooShort(TAG_LEN + SIGNATURE_LEN))
        );
        let long = vec![0u8; MAX_ENCRYPTED_PAYLOAD + 1];
        assert_eq!(
            open_announcement(&long, &net),
            Err(Ignored::SealedTooLong(long.len()))
        );
        // A box of the network that holds no address object, or a bad address.
        let boxed = |json: &[u8]| {
            let mut plain = json.to_vec();
            let tag = secretbox_seal_detached(&net.0, &sealed_nonce(&net), &mut plain);
            let mut out = tag.to_vec();
            out.extend_from_slice(&plain);
            out.extend_from_slice(&[0; SIGNATURE_LEN]);
            out
        };
        for json in [
            &b"[1,2,3,4,5,6,7,8,9,10,11]"[..],
            b"{\"addresses\":\"x\"}",
            b"not json at all",
        ] {
            assert_eq!(
                open_announcement(&boxed(json), &net),
                Err(Ignored::NoAddressObject),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
        assert!(matches!(
            open_announcement(&boxed(b"{\"address\":\"hello there\"}"), &net),
            Err(Ignored::Address(_))
        ));
    }

    #[test]
    fn encrypted_announcements_pass_the_same_sender_checks() {
        let t0 = Instant::now();
        let nets = networks();
        let net = NetworkKey::default();
        let (keys, a) = seven();
        let sealed = seal_announcement(&a, &net, &keys);
        let mut table = LanPeers::new(key(1));
        assert_eq!(
            table.receive_sealed(&sealed, &net, from("10.0.0.3"), &nets, t0),
            Err(Ignored::NotSender {
                announced: "10.0.0.2".parse().unwrap(),
                from: "10.0.0.3".parse().unwrap()
            })
        );
        assert_eq!(
            table.receive_sealed(&sealed, &net, from("10.0.0.2"), &nets, t0),
            Ok(Some(Event::Heard(a.clone())))
        );
        // The plain form of the same address only refreshes it.
        assert_eq!(
            table.receive(a.to_string().as_bytes(), from("10.0.0.2"), &nets, t0),
            Ok(None)
        );
        // A forged signature from the right sender is still refused.
        let mallory = Keypair::from_seed([8; 32]);
        let forged = seal_announcement(&addr("10.0.0.4", 8008, 4), &net, &mallory);
        assert_eq!(
            table.receive_sealed(&forged, &net, from("10.0.0.4"), &nets, t0),
            Err(Ignored::BadSignature)
        );
        let mut own = LanPeers::new(FeedId(keys.public().0));
        assert_eq!(
            own.receive_sealed(&sealed, &net, from("10.0.0.2"), &nets, t0),
            Err(Ignored::Own)
        );
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

    /// Our networks in these tests: 10.0.0.1/24 on one interface, 192.168.5.1/24 on another.
    fn networks() -> Vec<Subnet> {
        let mask = "255.255.255.0".parse().unwrap();
        vec![
            Subnet::new("10.0.0.1".parse().unwrap(), mask),
            Subnet::new("192.168.5.1".parse().unwrap(), mask),
        ]
    }

    fn from(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 8008)
    }

    #[test]
    fn networks_from_interface_masks() {
        let n = Subnet::new(
            "10.1.2.3".parse().unwrap(),
            "255.255.240.0".parse().unwrap(),
        );
        assert_eq!(n.prefix, 20);
        assert_eq!(n.to_string(), "10.1.0.0/20");
        assert!(n.contains("10.1.15.255".parse().unwrap()));
        assert!(!n.contains("10.1.16.0".parse().unwrap()));
        let all = Subnet::new("10.1.2.3".parse().unwrap(), Ipv4Addr::UNSPECIFIED);
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one = Subnet::new("10.1.2.3".parse().unwrap(), Ipv4Addr::BROADCAST);
        assert!(one.contains("10.1.2.3".parse().unwrap()));
        assert!(!one.contains("10.1.2.4".parse().unwrap()));
    }

    /// Every hostile announcement the LAN issue names, and the honest one, against
    /// networks 10.0.0.0/24 and 192.168.5.0/24 where we are .1.
    #[test]
    fn only_a_sender_announcing_its_own_on_link_ip_is_heard() {
        let nets = networks();
        let b64 = crate::feed::ids::encode_base64(&[7; 32]);
        let check =
            |text: &str, sender: &str| check_sender(&text.parse().unwrap(), from(sender), &nets);
        let net = |host: &str| format!("net:{host}:8008~shs:{b64}");
        // Honest: its own address, on either network, in any announced port.
        assert_eq!(check(&net("10.0.0.2"), "10.0.0.2"), Ok(()));
        assert_eq!(check(&net("192.168.5.77"), "192.168.5.77"), Ok(()));
        assert_eq!(
            check(&format!("net:10.0.0.2:9999~shs:{b64}"), "10.0.0.2"),
            Ok(())
        );
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let cases: Vec<(String, &str, Ignored)> = vec![
            (
                net("127.0.0.1"),
                "10.0.0.2",
                Ignored::Loopback(ip("127.0.0.1")),
            ),
            (
                net("127.0.0.1"),
                "127.0.0.1",
                Ignored::Loopback(ip("127.0.0.1")),
            ),
            (
                net("127.8.9.10"),
                "10.0.0.2",
                Ignored::Loopback(ip("127.8.9.10")),
            ),
            (net("::1"), "10.0.0.2", Ignored::Loopback(ip("::1"))),
            (
                net("::ffff:127.0.0.1"),
                "10.0.0.2",
                Ignored::Loopback(ip("::ffff:127.0.0.1")),
            ),
            (
                net("localhost"),
                "10.0.0.2",
                Ignored::Name("localhost".into()),
            ),
            (
                net("evil.example.com"),
                "10.0.0.2",
                Ignored::Name("evil.example.com".into()),
            ),
            (
                net("0.0.0.0"),
                "10.0.0.2",
                Ignored::Unreachable(ip("0.0.0.0")),
            ),
            (
                net("255.255.255.255"),
                "10.0.0.2",
                Ignored::Unreachable(ip("255.255.255.255")),
            ),
            (
                net("224.0.0.1"),
                "10.0.0.2",
                Ignored::Unreachable(ip("224.0.0.1")),
            ),
            (
                net("ff02::1"),
                "10.0.0.2",
                Ignored::Unreachable(ip("ff02::1")),
            ),
            // Another host's address: the reflection attack.
            (
                net("10.0.0.3"),
                "10.0.0.2",
                Ignored::NotSender {
                    announced: ip("10.0.0.3"),
                    from: ip("10.0.0.2"),
                },
            ),
            // Off our networks, even from itself (a routed or spoofed sender).
            (net("8.8.8.8"), "8.8.8.8", Ignored::OffLink(ip("8.8.8.8"))),
            (
                net("10.0.1.2"),
                "10.0.1.2",
                Ignored::OffLink(ip("10.0.1.2")),
            ),
            (
                net("8.8.8.8"),
                "10.0.0.2",
                Ignored::NotSender {
                    announced: ip("8.8.8.8"),
                    from: ip("10.0.0.2"),
                },
            ),
            // IPv6, link-local or not: the IPv4 socket never has an IPv6 sender.
            (
                net("fe80::1"),
                "10.0.0.2",
                Ignored::NotSender {
                    announced: ip("fe80::1"),
                    from: ip("10.0.0.2"),
                },
            ),
            // Our own address (a spoofed source), and the subnet's edges.
            (
                net("10.0.0.1"),
                "10.0.0.1",
                Ignored::OwnAddress(ip("10.0.0.1")),
            ),
            (
                net("10.0.0.255"),
                "10.0.0.255",
                Ignored::SubnetEdge(ip("10.0.0.255"), nets[0]),
            ),
            (
                net("10.0.0.0"),
                "10.0.0.0",
                Ignored::SubnetEdge(ip("10.0.0.0"), nets[0]),
            ),
        ];
        for (text, sender, want) in cases {
            assert_eq!(check(&text, sender), Err(want), "{text} from {sender}");
        }
        // An IPv4-mapped sender (a dual-stack socket) is its IPv4 address.
        assert_eq!(check(&net("10.0.0.2"), "::ffff:10.0.0.2"), Ok(()));
        // With no networks (no interface up) nothing is heard.
        assert_eq!(
            check_sender(&net("10.0.0.2").parse().unwrap(), from("10.0.0.2"), &[]),
            Err(Ignored::OffLink(ip("10.0.0.2")))
        );
    }

    #[test]
    fn one_host_brings_in_a_bounded_number_of_keys() {
        let t0 = Instant::now();
        let nets = networks();
        let mut table = LanPeers::new(key(1));
        // A flood of made-up keys, all from and naming 10.0.0.9.
        let mut heard = 0;
        for n in 0..=255u8 {
            let a = MultiserverAddress::new(
                Host::Ip("10.0.0.9".parse().unwrap()),
                8008,
                FeedId([
                    0x80 | (n >> 1),
                    n,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ]),
            );
            match table.receive(
                a.unwrap().to_string().as_bytes(),
                from("10.0.0.9"),
                &nets,
                t0,
            ) {
                Ok(Some(_)) => heard += 1,
                Err(Ignored::TooManyKeysAtHost(host)) => assert_eq!(host.to_string(), "10.0.0.9"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(heard, MAX_KEYS_PER_HOST);
        assert_eq!(
            table.len(),
            MAX_KEYS_PER_HOST,
            "refused keys leave no entry"
        );
        // Another host is not affected, and a known key refreshes.
        assert!(matches!(
            table.heard(addr("10.0.0.2", 8008, 2), t0),
            Ok(Some(_))
        ));
        let first = MultiserverAddress::new(
            Host::Ip("10.0.0.9".parse().unwrap()),
            8008,
            FeedId([
                0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0,
            ]),
        )
        .unwrap();
        assert_eq!(
            table.heard(first.clone(), t0 + Duration::from_secs(5)),
            Ok(None)
        );
        // Once the others (and 10.0.0.2) fall silent there is room again.
        assert_eq!(table.sweep(t0 + FORGET_AFTER).len(), MAX_KEYS_PER_HOST);
        let later = t0 + FORGET_AFTER;
        for n in 3..6 {
            assert!(matches!(
                table.heard(addr("10.0.0.9", 8008, n), later),
                Ok(Some(_))
            ));
        }
        // A key at one host on two ports counts once; a fifth key does not fit.
        assert!(matches!(
            table.heard(addr("10.0.0.9", 9009, 3), later),
            Ok(Some(_))
        ));
        assert!(matches!(
            table.heard(addr("10.0.0.9", 8008, 6), later),
            Err(Ignored::TooManyKeysAtHost(_))
        ));
    }

    #[test]
    fn table_reports_new_peers_and_addresses_once() {
        let t0 = Instant::now();
        let nets = networks();
        let mut table = LanPeers::new(key(1));
        let own = addr("10.0.0.1", 8008, 1).to_string();
        assert_eq!(
            table.receive(own.as_bytes(), from("10.0.0.1"), &nets, t0),
            Err(Ignored::Own)
        );
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
        let b2_from = from("192.168.5.2");
        assert_eq!(
            table.receive(b2.to_string().as_bytes(), b2_from, &nets, t0),
            Ok(Some(Event::Heard(b2.clone())))
        );
        assert_eq!(
            table.receive(b2.to_string().as_bytes(), b2_from, &nets, t0),
            Ok(None)
        );
        assert_eq!(table.len(), 1);
        assert_eq!(table.addresses(&key(2)).collect::<Vec<_>>(), [&b, &b2]);
        assert!(table.addresses(&key(3)).next().is_none());
    }

    #[test]
    fn peers_are_forgotten_after_ten_silent_seconds() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut table = LanPeers::new(key(1));
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
        let mut table = LanPeers::new(key(0));
        for n in 1..=MAX_PEERS {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(n as u64).to_be_bytes());
            // One host each: a host brings in at most MAX_KEYS_PER_HOST.
            let host = Ipv4Addr::from(0x0a00_0000 + n as u32);
            let a = MultiserverAddress::new(Host::Ip(host.into()), 8008, FeedId(k));
            assert!(matches!(table.heard(a.unwrap(), t0), Ok(Some(_))));
        }
        assert_eq!(
            table.heard(addr("10.0.0.3", 8008, 0xff), t0),
            Err(Ignored::TableFull)
        );
        let mut one = LanPeers::new(key(0));
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

    /// Two services on loopback (which has no broadcast, so with fixed targets), each
    /// announcing 127.0.0.1 to the other for a while: the driver passes each datagram's
    /// sender and the interfaces to the checks, so neither hears the other (loopback is
    /// never dialled), and both keep running.
    #[tokio::test(start_paused = true)]
    async fn loopback_announcements_are_not_heard() {
        let bind = "127.0.0.1:0".parse().unwrap();
        let loopback: IpAddr = Ipv4Addr::LOCALHOST.into();
        let mut a = Discovery::bind_udp(key(1), bind, 1111).unwrap();
        let mut b = Discovery::bind_udp(key(2), bind, 2222).unwrap();
        let (a_udp, b_udp) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let to = |destination| Target {
            announce_ip: loopback,
            destination,
        };
        a.set_targets(vec![to(a_udp), to(b_udp)]);
        b.set_targets(vec![to(a_udp)]);
        let (a_tx, mut a_rx) = mpsc::channel(8);
        let (b_tx, mut b_rx) = mpsc::channel(8);
        let a_task = tokio::spawn(a.run(a_tx));
        let b_task = tokio::spawn(b.run(b_tx));
        let quiet = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::select! {
                e = a_rx.recv() => e,
                e = b_rx.recv() => e,
            }
        })
        .await;
        assert!(quiet.is_err(), "heard over loopback: {quiet:?}");
        assert!(!a_task.is_finished() && !b_task.is_finished());
        drop((a_rx, b_rx));
        a_task.await.unwrap().unwrap();
        b_task.await.unwrap().unwrap();
    }
}
