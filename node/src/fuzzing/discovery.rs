//! Targets for the LAN announcement packets: ssb-local's plain one and ssb-lan's
//! encrypted one.

use super::{bounded, FuzzTarget};
use crate::discovery::{
    open_announcement, parse_announcement, seal_announcement, Ignored, MAX_PAYLOAD,
};
use crate::feed::json::Value;
use crate::feed::{FeedId, Keypair};
use crate::net::address::MultiserverAddress;
use crate::net::crypto::secretbox_seal_detached;
use crate::net::shs::{self, NetworkKey};

/// `discovery::open_announcement`, with the input as the plaintext inside a box of our
/// network (random bytes never open a box): a box signed with zeros never opens to an
/// address, and the address it holds, announced by a key of ours, seals and opens to itself.
pub const SEALED: FuzzTarget = FuzzTarget {
    name: "lan_sealed",
    body: sealed_body,
    seeds: sealed_seeds,
};

/// The `lan_sealed` body: `data` as the sealed JSON (and as a whole datagram).
pub fn sealed_body(data: &[u8]) {
    bounded(64 << 10, || {
        let net = NetworkKey::default();
        let _ = open_announcement(data, &net);
        let mut boxed = data.to_vec();
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&net.0[..24]);
        let tag = secretbox_seal_detached(&net.0, &nonce, &mut boxed);
        let mut payload = tag.to_vec();
        payload.extend_from_slice(&boxed);
        payload.extend_from_slice(&[0; 64]);
        let opened = open_announcement(&payload, &net);
        assert!(opened.is_err(), "a zero signature was taken: {opened:?}");
        let Some(text) = Value::parse(data)
            .ok()
            .and_then(|v| v.as_object()?.get("address")?.as_str().map(str::to_owned))
        else {
            return;
        };
        let Ok(address) = parse_announcement(text.as_bytes()) else {
            return;
        };
        let keys = shs::Keypair::from_seed([5; 32]);
        let ours = MultiserverAddress::new(
            address.host().clone(),
            address.port(),
            FeedId(keys.public().0),
        )
        .expect("a parsed address with another key");
        let sealed = seal_announcement(&ours, &net, &keys);
        assert_eq!(
            open_announcement(&sealed, &net),
            Ok(ours),
            "a sealed announcement does not open to itself"
        );
        let other = NetworkKey([1; 32]);
        assert_eq!(
            open_announcement(&sealed, &other),
            Err(Ignored::NotOurNetwork)
        );
    });
}

fn sealed_seeds() -> Vec<Vec<u8>> {
    seeds()
        .into_iter()
        .map(|a| {
            let mut json = b"{\"address\":".to_vec();
            crate::feed::json::write_quoted(&mut json, &a);
            json.push(b'}');
            json
        })
        .collect()
}

/// `discovery::parse_announcement`: an address that parses prints to a
/// packet that parses to the same address, within the size limit.
pub const TARGET: FuzzTarget = FuzzTarget {
    name: "lan_packet",
    body,
    seeds,
};

/// The target's body: one datagram.
pub fn body(data: &[u8]) {
    bounded(64 << 10, || {
        let Ok(address) = parse_announcement(data) else {
            return;
        };
        let printed = address.to_string();
        assert!(
            printed.len() <= MAX_PAYLOAD,
            "a parsed address prints too long"
        );
        let again = parse_announcement(printed.as_bytes()).expect("a printed address parses");
        assert_eq!(again, address, "an address changes when printed");
    });
}

fn seeds() -> Vec<Vec<u8>> {
    let id = Keypair::from_seed(&[5; 32]).id().to_string();
    let key = id.trim_start_matches('@').trim_end_matches(".ed25519");
    vec![
        format!("net:192.168.1.20:8008~shs:{key}").into_bytes(),
        format!("net:[fe80::1]:8008~shs:{key}\n").into_bytes(),
        format!("net:box.local:8008~shs:{key};ws://192.168.1.20:8989~shs:{key}").into_bytes(),
        format!("192.168.1.20:8008:{id}").into_bytes(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn lan_packet_short_run() {
        run(&TARGET, 150000);
    }

    #[test]
    fn lan_sealed_short_run() {
        run(&SEALED, 20000);
    }

    #[test]
    fn the_seeds_are_addresses() {
        for seed in seeds() {
            parse_announcement(&seed).expect("a seed parses");
        }
    }
}
