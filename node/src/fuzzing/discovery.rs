//! FuzzTarget for the LAN announcement packet.

use super::{bounded, FuzzTarget};
use crate::discovery::{parse_announcement, MAX_PAYLOAD};
use crate::feed::Keypair;

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
    fn the_seeds_are_addresses() {
        for seed in seeds() {
            parse_announcement(&seed).expect("a seed parses");
        }
    }
}
