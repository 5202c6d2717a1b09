//! Multiserver addresses (`net:HOST:PORT~shs:KEY`) and invite codes, as ssb-ref reads them.
//!
//! A multiserver address is one or more alternatives separated by `;`; each alternative is a
//! chain of protocols separated by `~` (transport first, then transforms), and each protocol is
//! a lowercase name followed by `:`-separated data fields, where `!` escapes one of `!:;~`.
//! This node speaks exactly one chain, TCP (`net`) with the secret handshake (`shs`), so
//! [`MultiserverAddress`] keeps the first `net:HOST:PORT~shs:KEY` alternative and ignores the
//! rest (`ws`, `onion`, extra transforms). As in ssb-ref, an IPv6 host is written without
//! brackets (`net:fcbc::1:8008~shs:…`): the last field is the port. The legacy form
//! `HOST:PORT:@KEY.ed25519` is read too, and [`fmt::Display`] always writes the multiserver
//! form, which is what other SSB nodes expect on the wire and in LAN announcements.
//!
//! [`Invite`] reads the two invite code forms of checklist section 10 with the same parser.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::feed::ids::{decode_base64_exact, encode_base64};
use crate::feed::FeedId;

/// Longest address or invite text accepted, in bytes; real ones are under 200.
///
/// It bounds the work done on text from the network (LAN announcements, config files).
pub const MAX_ADDRESS_LEN: usize = 1024;

/// How much of a refused input an error message quotes, in characters.
const QUOTE_CHARS: usize = 100;

fn quote(text: &str) -> String {
    text.chars().take(QUOTE_CHARS).collect()
}

/// Why an address or invite text was refused; the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text is empty.
    #[error("empty address")]
    Empty,
    /// The text is longer than [`MAX_ADDRESS_LEN`].
    #[error("address of {0} bytes is longer than the {MAX_ADDRESS_LEN} allowed")]
    TooLong(usize),
    /// The text does not follow the multiserver address grammar.
    #[error("malformed multiserver address {text:?}: {reason}")]
    Syntax {
        /// The start of the refused text.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The text is a valid multiserver address, but none of its alternatives is `net` + `shs`.
    #[error("no net:HOST:PORT~shs:KEY alternative in {text:?} (found {found}); only TCP with the secret handshake is supported")]
    Unsupported {
        /// The start of the refused text.
        text: String,
        /// The protocol chains it has, e.g. `onion~shs`.
        found: String,
    },
    /// The `net` protocol does not have both a host and a port.
    #[error("net protocol needs a host and a port: {0:?}")]
    NetFields(String),
    /// The host is not an IP address, a domain name or `localhost`.
    #[error("invalid host {0:?}: expected an IPv4 or IPv6 address, a domain name or localhost")]
    Host(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port {0:?}: expected a number from 1 to 65535")]
    Port(String),
    /// The key is not the canonical base64 of 32 bytes (multiserver) or not a feed id (legacy).
    #[error("invalid key {0:?}: expected a 32-byte Ed25519 public key, as canonical base64 (multiserver) or @….ed25519 (legacy)")]
    Key(String),
    /// The `shs` protocol carries an invite seed: the text is an invite code, not an address.
    #[error("{0:?} has an invite seed after the key: it is an invite code, not an address")]
    HasSeed(String),
    /// The `shs` protocol has the wrong number of data fields.
    #[error("shs protocol needs {expected}: {text:?}")]
    ShsFields {
        /// The start of the refused text.
        text: String,
        /// What was expected, e.g. "one field, the key".
        expected: &'static str,
    },
    /// The legacy `HOST:PORT:@KEY.ed25519` form is malformed.
    #[error("invalid legacy address {0:?}: expected HOST:PORT:@KEY.ed25519")]
    Legacy(String),
    /// An invite's seed is not the canonical base64 of 32 bytes.
    #[error("invalid invite seed {0:?}: expected the canonical base64 of a 32-byte seed")]
    Seed(String),
    /// A legacy invite is not `HOST:PORT:@KEY.ed25519~SEED`.
    #[error("invalid legacy invite {0:?}: expected HOST:PORT:@KEY.ed25519~SEED")]
    LegacyInvite(String),
}

/// The host part of an address: an IP address or a DNS name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A domain name (at least two labels) or `localhost`, as written.
    Name(String),
}

impl Host {
    /// The IP address, if the host is one (names need a DNS lookup first).
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

impl FromStr for Host {
    type Err = AddressError;

    /// Reads an IP address (IPv6 with or without brackets), a domain name or `localhost`.
    fn from_str(s: &str) -> Result<Self, AddressError> {
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            // Brackets only make sense around IPv6.
            if unbracketed.len() == s.len() || ip.is_ipv6() {
                return Ok(Host::Ip(ip));
            }
        }
        if s == "localhost" || is_domain(s) {
            Ok(Host::Name(s.to_owned()))
        } else {
            Err(AddressError::Host(quote(s)))
        }
    }
}

/// A DNS name of two or more labels: letters, digits and inner hyphens, at most 63
/// characters a label and 253 in all; the last label is not all digits, so a malformed
/// IPv4 address such as `1.2.3.256` is not taken for a name.
fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Host {
    /// The multiserver spelling: IPv6 without brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where to reach a peer over TCP and whom to expect there: `net:HOST:PORT~shs:KEY`.
///
/// Parsing ([`FromStr`]) takes the multiserver form (first `net`+`shs` alternative) or the
/// legacy `HOST:PORT:@KEY.ed25519`; [`fmt::Display`] writes the canonical multiserver form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MultiserverAddress {
    host: Host,
    port: u16,
    key: FeedId,
}

impl MultiserverAddress {
    /// An address from its parts; port 0 is refused because no one can be reached there.
    pub fn new(host: Host, port: u16, key: FeedId) -> Result<Self, AddressError> {
        if port == 0 {
            return Err(AddressError::Port("0".into()));
        }
        Ok(Self { host, port, key })
    }

    /// The address of a socket (e.g. our own listener) for the peer with `key`.
    pub fn from_socket(addr: SocketAddr, key: FeedId) -> Result<Self, AddressError> {
        Self::new(Host::Ip(addr.ip()), addr.port(), key)
    }

    /// The host to connect to.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The TCP port, never 0.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The peer's long-term public key, which the secret handshake must prove.
    pub fn key(&self) -> &FeedId {
        &self.key
    }

    /// The socket address, when the host is an IP address (names need a lookup).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for MultiserverAddress {
    /// `net:HOST:PORT~shs:KEY`, the key in base64 without `@` and `.ed25519`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "net:{}:{}~shs:{}",
            self.host,
            self.port,
            encode_base64(self.key.as_bytes())
        )
    }
}

impl fmt::Debug for MultiserverAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MultiserverAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        check_len(s)?;
        // As ssb-ref's parseAddress: a `~` means multiserver, otherwise legacy.
        if s.contains('~') {
            let (address, seed) = first_net_shs(s)?;
            if seed.is_some() {
                return Err(AddressError::HasSeed(quote(s)));
            }
            Ok(address)
        } else {
            parse_legacy(s)
        }
    }
}

fn check_len(s: &str) -> Result<(), AddressError> {
    if s.is_empty() {
        Err(AddressError::Empty)
    } else if s.len() > MAX_ADDRESS_LEN {
        Err(AddressError::TooLong(s.len()))
    } else {
        Ok(())
    }
}

/// `HOST:PORT:@KEY.ed25519`, the host possibly an IPv6 address with colons.
fn parse_legacy(s: &str) -> Result<MultiserverAddress, AddressError> {
    let mut parts = s.rsplitn(3, ':');
    let (Some(key), Some(port), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AddressError::Legacy(quote(s)));
    };
    let key: FeedId = key.parse().map_err(|_| AddressError::Key(quote(key)))?;
    MultiserverAddress::new(host.parse()?, parse_port(port)?, key)
}

fn parse_port(s: &str) -> Result<u16, AddressError> {
    // Digits only: u16::from_str would also take a leading '+'.
    match s.parse::<u16>() {
        Ok(p) if p != 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(AddressError::Port(quote(s))),
    }
}

/// One protocol of a multiserver address: its name and unescaped data fields.
struct Protocol {
    name: String,
    data: Vec<String>,
}

/// Splits a multiserver address into alternatives of protocols, following the
/// multiserver-address grammar: names `[a-z][a-z0-9-]*`, data of printable ASCII where
/// `!` escapes one of `!:;~`, no empty protocol.
fn decode_multiserver(s: &str) -> Result<Vec<Vec<Protocol>>, AddressError> {
    let mut alternatives = Vec::new();
    let mut chain = Vec::new();
    // Fields of the protocol being read; the first is its name.
    let mut fields: Vec<String> = vec![String::new()];
    let mut name_escaped = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '!' if matches!(chars.peek(), Some('!' | ':' | ';' | '~')) => {
                name_escaped |= fields.len() == 1;
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' => fields.push(String::new()),
            '~' | ';' => {
                chain.push(protocol(s, &mut fields, name_escaped)?);
                name_escaped = false;
                if c == ';' {
                    alternatives.push(std::mem::take(&mut chain));
                }
            }
            '!'..='}' => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
            _ => return Err(syntax(s, "only printable ASCII without spaces is allowed")),
        }
    }
    chain.push(protocol(s, &mut fields, name_escaped)?);
    alternatives.push(chain);
    Ok(alternatives)
}

fn syntax(s: &str, reason: &'static str) -> AddressError {
    AddressError::Syntax {
        text: quote(s),
        reason,
    }
}

/// Ends the protocol whose fields were read, checking its name.
fn protocol(
    s: &str,
    fields: &mut Vec<String>,
    name_escaped: bool,
) -> Result<Protocol, AddressError> {
    let mut taken = std::mem::replace(fields, vec![String::new()]).into_iter();
    let name = taken.next().unwrap_or_default();
    if name.is_empty() && !name_escaped {
        return Err(syntax(s, "empty protocol"));
    }
    let mut bytes = name.bytes();
    let valid = !name_escaped
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(syntax(
            s,
            "a protocol name is a lowercase letter, then lowercase letters, digits or '-'",
        ));
    }
    Ok(Protocol {
        name,
        data: taken.collect(),
    })
}

/// The first `net` + `shs` alternative of a multiserver address, with the invite seed if
/// the `shs` protocol carries one (`shs:KEY:SEED`).
fn first_net_shs(s: &str) -> Result<(MultiserverAddress, Option<[u8; 32]>), AddressError> {
    let alternatives = decode_multiserver(s)?;
    let Some(chain) = alternatives
        .iter()
        .find(|chain| chain.len() == 2 && chain[0].name == "net" && chain[1].name == "shs")
    else {
        let found = alternatives
            .iter()
            .map(|chain| {
                chain
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join("~")
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(AddressError::Unsupported {
            text: quote(s),
            found,
        });
    };
    let (net, shs) = (&chain[0].data, &chain[1].data);
    // The last field is the port, so IPv6 hosts need no brackets.
    let Some((port, host)) = net.split_last().filter(|(_, host)| !host.is_empty()) else {
        return Err(AddressError::NetFields(quote(s)));
    };
    let host: Host = host.join(":").parse()?;
    let port = parse_port(port)?;
    let (key, seed) = match shs.as_slice() {
        [key] => (key, None),
        [key, seed] => (key, Some(seed)),
        _ => {
            return Err(AddressError::ShsFields {
                text: quote(s),
                expected: "the key, and for an invite the seed",
            })
        }
    };
    let key = decode_base64_exact::<32>(key).ok_or_else(|| AddressError::Key(quote(key)))?;
    let seed = seed
        .map(|seed| decode_base64_exact::<32>(seed).ok_or_else(|| AddressError::Seed(quote(seed))))
        .transpose()?;
    Ok((MultiserverAddress::new(host, port, FeedId(key))?, seed))
}

/// An invite code: a pub's address and the seed of a one-time keypair that the pub lets
/// redeem the invite (checklist section 10).
///
/// Parsing takes the multiserver form `net:HOST:PORT~shs:KEY:SEED` and the legacy form
/// `HOST:PORT:@KEY.ed25519~SEED`, each optionally followed by `#redirect`; [`fmt::Display`]
/// writes the multiserver form without the redirect, as ssb-ref's `invite` field.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// The pub to connect to.
    pub address: MultiserverAddress,
    /// The Ed25519 seed of the invite keypair (`crypto_sign_seed_keypair`).
    pub seed: [u8; 32],
    /// Whatever followed the first `#`, including the `#`; ssb-ref passes it on untouched.
    pub redirect: Option<String>,
}

impl FromStr for Invite {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        check_len(s)?;
        let (code, redirect) = match s.find('#') {
            Some(i) => (&s[..i], Some(s[i..].to_owned())),
            None => (s, None),
        };
        // The legacy form names the key with its sigil; multiserver never has '@'.
        let (address, seed) = if code.contains(":@") {
            let Some((address, seed)) = code.split_once('~').filter(|(_, s)| !s.contains('~'))
            else {
                return Err(AddressError::LegacyInvite(quote(s)));
            };
            let seed =
                decode_base64_exact::<32>(seed).ok_or_else(|| AddressError::Seed(quote(seed)))?;
            (parse_legacy(address)?, seed)
        } else {
            match first_net_shs(code)? {
                (address, Some(seed)) => (address, seed),
                (_, None) => {
                    return Err(AddressError::ShsFields {
                        text: quote(s),
                        expected: "the key and the invite seed",
                    })
                }
            }
        };
        Ok(Invite {
            address,
            seed,
            redirect,
        })
    }
}

impl fmt::Display for Invite {
    /// `net:HOST:PORT~shs:KEY:SEED`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.address, encode_base64(&self.seed))
    }
}

impl fmt::Debug for Invite {
    /// Shows the address only: the seed is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("address", &self.address)
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::test_util::{str_at, vector};

    const KEY: &str = "gYCJpN4eGDjHFnWW2Fcusj8O4QYbVDUW6rNYh7nNEnc=";

    fn key() -> FeedId {
        format!("@{KEY}.ed25519").parse().unwrap()
    }

    #[test]
    fn multiserver_round_trip() {
        let s = format!("net:145.12.20.3:8080~shs:{KEY}");
        let a: MultiserverAddress = s.parse().unwrap();
        assert_eq!(a.host(), &Host::Ip("145.12.20.3".parse().unwrap()));
        assert_eq!(a.port(), 8080);
        assert_eq!(a.key(), &key());
        assert_eq!(a.socket_addr(), Some("145.12.20.3:8080".parse().unwrap()));
        assert_eq!(a.to_string(), s);
    }

    #[test]
    fn ipv6_and_names() {
        for (input, host, is_ip) in [
            ("net:::1:8008", "::1", true),
            ("net:fcbc:6c66::498f:8008", "fcbc:6c66::498f", true),
            ("net:[fe80::1]:8008", "fe80::1", true),
            ("net:pub.example.com:8008", "pub.example.com", false),
            ("net:localhost:8008", "localhost", false),
        ] {
            let a: MultiserverAddress = format!("{input}~shs:{KEY}").parse().unwrap();
            assert_eq!(
                a.to_string(),
                format!("net:{host}:8008~shs:{KEY}"),
                "{input}"
            );
            assert_eq!(a.host().ip().is_some(), is_ip, "{input}");
        }
    }

    #[test]
    fn legacy_form_prints_as_multiserver() {
        let a: MultiserverAddress = format!("one.butt.nz:8008:@{KEY}.ed25519").parse().unwrap();
        assert_eq!(a.to_string(), format!("net:one.butt.nz:8008~shs:{KEY}"));
        let a: MultiserverAddress = format!("::1:8080:@{KEY}.ed25519").parse().unwrap();
        assert_eq!(a.to_string(), format!("net:::1:8080~shs:{KEY}"));
    }

    #[test]
    fn picks_first_net_shs_alternative() {
        let other = "ppdSxn1pSozJIqtDE4pYgwaQGmswCT9y15VJJcXRntI=";
        let s = format!(
            "ws://10.0.0.1:8989~shs:{other};net:10.0.0.1:8008~shs:{KEY}~gzip;\
             net:10.0.0.2:8008~shs:{KEY};net:10.0.0.3:8008~shs:{other}"
        );
        let a: MultiserverAddress = s.parse().unwrap();
        assert_eq!(a.to_string(), format!("net:10.0.0.2:8008~shs:{KEY}"));
    }

    #[test]
    fn escapes_are_understood() {
        // An escaped ';' inside another alternative's data does not split alternatives.
        let s = format!("dht:a!;b:c~noauth;net:10.0.0.2:8008~shs:{KEY}");
        let a: MultiserverAddress = s.parse().unwrap();
        assert_eq!(a.port(), 8008);
        // ... and an escaped ':' is data, not a field separator, so this host is invalid.
        let err = format!("net:10.0.0.2!:1:8008~shs:{KEY}")
            .parse::<MultiserverAddress>()
            .unwrap_err();
        assert_eq!(err, AddressError::Host("10.0.0.2:1".into()));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            (String::new(), "empty address"),
            ("x".repeat(MAX_ADDRESS_LEN + 1), "longer than"),
            (format!("net:10.0.0.1:8008~shs:{KEY}~"), "empty protocol"),
            (format!("net:10.0.0.1:8008~~shs:{KEY}"), "empty protocol"),
            (format!("Net:10.0.0.1:8008~shs:{KEY}"), "protocol name is"),
            (format!("n!~et:10.0.0.1:8008~shs:{KEY}"), "protocol name is"),
            (format!("net:10.0.0.1:8008~shs:{KEY} "), "printable ASCII"),
            (format!("net:10.0.0.1:8008~shs:{KEY}é"), "printable ASCII"),
            (format!("onion:xyz.onion:8080~shs:{KEY}"), "found onion~shs"),
            (
                format!("net:10.0.0.1:8008~shs:{KEY}~gzip"),
                "found net~shs~gzip",
            ),
            (format!("net:8008~shs:{KEY}"), "needs a host and a port"),
            (
                format!("net:10.0.0.300:8008~shs:{KEY}"),
                "invalid host \"10.0.0.300\"",
            ),
            (format!("net:-bad-.com:8008~shs:{KEY}"), "invalid host"),
            (format!("net:[10.0.0.1]:8008~shs:{KEY}"), "invalid host"),
            (format!("net:10.0.0.1:0~shs:{KEY}"), "invalid port \"0\""),
            (format!("net:10.0.0.1:65536~shs:{KEY}"), "invalid port"),
            (format!("net:10.0.0.1:+80~shs:{KEY}"), "invalid port"),
            ("net:10.0.0.1:8008~shs:abc=".into(), "invalid key"),
            // Same bytes, non-zero padding bits.
            (
                "net:10.0.0.1:8008~shs:gYCJpN4eGDjHFnWW2Fcusj8O4QYbVDUW6rNYh7nNEnd=".into(),
                "invalid key",
            ),
            (format!("net:10.0.0.1:8008~shs:{KEY}:{KEY}"), "invite seed"),
            (
                format!("net:10.0.0.1:8008~shs:{KEY}:{KEY}:x"),
                "shs protocol needs",
            ),
            (format!("10.0.0.1:@{KEY}.ed25519"), "legacy address"),
            (format!("10.0.0.1::@{KEY}.ed25519"), "invalid port \"\""),
            (format!("10.0.0.1.:8008:@{KEY}.ed25519"), "invalid host"),
            (format!("@{KEY}.ed25519"), "legacy address"),
            (format!("10.0.0.1:8008:{KEY}"), "invalid key"),
            ("http://example.com".into(), "legacy address"),
        ];
        for (input, expected) in cases {
            let err = input.parse::<MultiserverAddress>().unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{input:?}: got {err:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn new_refuses_port_zero() {
        assert!(MultiserverAddress::new(Host::Name("localhost".into()), 0, key()).is_err());
        let a = MultiserverAddress::from_socket("10.1.2.3:8008".parse().unwrap(), key()).unwrap();
        assert_eq!(a.to_string(), format!("net:10.1.2.3:8008~shs:{KEY}"));
    }

    #[test]
    fn invites() {
        let seed = "DxiHEv+ds+zUzA49efDgZk8ssGeqrp/5kgvRVzTM7vU=";
        let i: Invite = format!("one.butt.nz:8008:@{KEY}.ed25519~{seed}#a#b")
            .parse()
            .unwrap();
        assert_eq!(
            i.to_string(),
            format!("net:one.butt.nz:8008~shs:{KEY}:{seed}")
        );
        assert_eq!(i.redirect.as_deref(), Some("#a#b"));
        assert!(!format!("{i:?}").contains(seed), "Debug hides the seed");
        for bad in [
            format!("net:10.0.0.1:8008~shs:{KEY}"),
            format!("10.0.0.1:8008:@{KEY}.ed25519"),
            format!("10.0.0.1:8008:@{KEY}.ed25519~{seed}~{seed}"),
            format!("10.0.0.1:8008:@{KEY}.ed25519~abc"),
            format!("net:10.0.0.1:8008~shs:{KEY}:abc"),
        ] {
            assert!(bad.parse::<Invite>().is_err(), "{bad}");
        }
    }

    /// The address and invite cases of ssb-ref 2.16 (tests/vectors/ssb-ref).
    ///
    /// Two cases that ssb-ref accepts name transports this node does not speak (`onion`,
    /// `ws`); for those the expected answer is a refusal naming the transport.
    #[test]
    fn ssb_ref_vectors() {
        let all = vector("ssb-ref/cases.json");
        let cases = all["cases"].as_array().unwrap();
        let mut checked = 0;
        for case in cases {
            let func = str_at(case, "fn");
            let input = str_at(case, "input");
            let expected = &case["expected"];
            let accepted = !matches!(expected, serde_json::Value::Null)
                && *expected != serde_json::Value::Bool(false);
            let unsupported = input.starts_with("onion:") || input.starts_with("ws://");
            let address = input.parse::<MultiserverAddress>();
            let invite = input.parse::<Invite>();
            let result: Result<(), AddressError> = match func {
                "isAddress" => address.map(drop),
                "parseAddress" => address.map(|a| {
                    assert_eq!(a.host().to_string(), str_at(expected, "host"));
                    assert_eq!(Some(u64::from(a.port())), expected["port"].as_u64());
                    assert_eq!(a.key().to_string(), str_at(expected, "key"));
                }),
                "getKeyFromAddress" => invite.map(|i| {
                    assert_eq!(i.address.key().to_string(), expected.as_str().unwrap());
                }),
                "isInvite" | "isMultiServerInvite" | "isLegacyInvite" => invite.map(drop),
                "parseInvite" | "parseMultiServerInvite" | "parseLegacyInvite" => invite.map(|i| {
                    assert_eq!(i.to_string(), str_at(expected, "invite"), "{input}");
                    assert_eq!(i.address.to_string(), str_at(expected, "remote"));
                    assert_eq!(i.address.key().to_string(), str_at(expected, "key"));
                    assert_eq!(i.redirect.as_deref(), expected["redirect"].as_str());
                }),
                _ => continue,
            };
            match (accepted && !unsupported, result) {
                (true, Ok(())) => {}
                (false, Err(e)) => {
                    if unsupported {
                        assert!(
                            matches!(e, AddressError::Unsupported { .. }),
                            "{func}({input:?}): {e}"
                        );
                    }
                }
                (want, got) => panic!("{func}({input:?}): expected accepted={want}, got {got:?}"),
            }
            checked += 1;
        }
        assert_eq!(checked, 25, "address and invite cases checked");
    }
}
