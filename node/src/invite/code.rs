//! Invite codes in ssb-invite's legacy form, `HOST:PORT:@KEY.ed25519~SEED`,
//! which both ssb-invite (`invite.accept`) and ssb-invite-client read.

use std::fmt;

use crate::feed::ids::encode_base64;
use crate::feed::FeedId;
use crate::net::address::{AddressError, Host, Invite};
use crate::net::crypto;

/// A freshly made invite code. The seed is a secret: [`fmt::Debug`] leaves
/// it out, and only [`InviteCode::text`] shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteCode {
    host: Host,
    port: u16,
    node: FeedId,
    seed: [u8; 32],
}

impl InviteCode {
    /// A code for the node `node` reachable at `host:port`, with a new
    /// random seed.
    pub fn generate(host: Host, port: u16, node: FeedId) -> InviteCode {
        InviteCode::with_seed(host, port, node, crypto::random_32())
    }

    /// A code with a given seed (tests, and re-reading a code).
    pub fn with_seed(host: Host, port: u16, node: FeedId, seed: [u8; 32]) -> InviteCode {
        InviteCode {
            host,
            port,
            node,
            seed,
        }
    }

    /// Reads a code (either form ssb-ref accepts).
    pub fn parse(text: &str) -> Result<InviteCode, AddressError> {
        let invite: Invite = text.trim().parse()?;
        Ok(InviteCode {
            host: invite.address.host().clone(),
            port: invite.address.port(),
            node: *invite.address.key(),
            seed: invite.seed,
        })
    }

    /// The public key of the invite keypair: what the client authenticates
    /// with, and what the node stores.
    pub fn key(&self) -> FeedId {
        FeedId(crypto::ed25519_public_from_seed(&self.seed))
    }

    /// The node the code points to.
    pub fn node(&self) -> &FeedId {
        &self.node
    }

    /// The code as the user copies it: `HOST:PORT:@KEY.ed25519~SEED`.
    pub fn text(&self) -> String {
        let host = match &self.host {
            Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        format!(
            "{host}:{}:{}~{}",
            self.port,
            self.node,
            encode_base64(&self.seed)
        )
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteCode")
            .field("port", &self.port)
            .field("node", &self.node)
            .field("key", &self.key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::shs;

    fn node() -> FeedId {
        FeedId([7; 32])
    }

    #[test]
    fn the_text_is_the_legacy_form_and_reads_back() {
        let code = InviteCode::with_seed("192.168.1.20".parse().unwrap(), 8008, node(), [3; 32]);
        let text = code.text();
        assert_eq!(
            text,
            format!("192.168.1.20:8008:{}~{}", node(), encode_base64(&[3; 32]))
        );
        let back = InviteCode::parse(&text).expect("parses");
        assert_eq!(back, code);
        // As a multiserver invite, it is the address with the seed.
        let ms: Invite = text.parse().expect("ssb-ref form");
        assert_eq!(ms.seed, [3; 32]);
        assert_eq!(ms.address.port(), 8008);
    }

    #[test]
    fn the_key_is_the_seed_keypair_a_client_authenticates_with() {
        let code = InviteCode::generate("box.local".parse().unwrap(), 8008, node());
        let text = code.text();
        let seed_b64 = text.rsplit('~').next().unwrap();
        let seed = crate::feed::ids::decode_base64_exact::<32>(seed_b64).unwrap();
        let keypair = shs::Keypair::from_seed(seed);
        assert_eq!(keypair.public().0, code.key().0);
        assert_ne!(code.key(), node());
    }

    #[test]
    fn generated_seeds_differ_and_debug_hides_the_seed() {
        let a = InviteCode::generate("10.0.0.1".parse().unwrap(), 1, node());
        let b = InviteCode::generate("10.0.0.1".parse().unwrap(), 1, node());
        assert_ne!(a.key(), b.key());
        let seed = a.text().rsplit('~').next().unwrap().to_owned();
        assert!(!format!("{a:?}").contains(&seed));
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in [
            "",
            "hello",
            "10.0.0.1:8008:@notakey.ed25519~AAAA",
            &format!("10.0.0.1:8008:{}~short", node()),
            &format!("10.0.0.1:8008:{}", node()),
            &format!("10.0.0.1:notaport:{}~{}", node(), encode_base64(&[1; 32])),
        ] {
            assert!(InviteCode::parse(bad).is_err(), "{bad}");
        }
    }
}
