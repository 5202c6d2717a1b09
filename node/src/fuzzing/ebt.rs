//! FuzzTarget for EBT notes: vector clocks and the `ebt.replicate` arguments.

use super::{bounded, FuzzTarget};
use crate::feed::{FeedId, Value};
use crate::net::ebt::{check_request_args, clock_value, is_message, parse_clock, Note};

/// `ebt::parse_clock` and `Note::decode`: a clock that parses is sent back
/// (as JSON text) as the same notes; a note decodes only from the number
/// it encodes to.
pub const TARGET: FuzzTarget = FuzzTarget {
    name: "ebt_notes",
    body,
    seeds,
};

/// The target's body: one JSON text, as a clock or as request arguments.
pub fn body(data: &[u8]) {
    bounded((1 << 20) + 128 * data.len(), || {
        // The first 8 bytes are also a number to decode as a note.
        if let Some(bytes) = data.get(..8) {
            let n = f64::from_be_bytes(bytes.try_into().unwrap_or_default());
            if let Some(note) = Note::decode(n) {
                assert_eq!(note.encode() as f64, n, "a note encodes to another number");
            }
        }
        let Ok(v) = Value::parse(data) else { return };
        match &v {
            Value::Array(args) => {
                let _ = check_request_args(args);
            }
            Value::Object(o) if !is_message(o) => {
                let Ok(notes) = parse_clock(o) else { return };
                for (_, note) in &notes {
                    assert_eq!(Note::decode(note.encode() as f64), Some(*note));
                }
                let sent = clock_value(notes.iter().map(|(f, n)| (f, *n))).to_compact();
                let back = Value::parse(sent.as_bytes()).expect("a sent clock parses");
                let back = back.as_object().expect("a sent clock is an object");
                let again = parse_clock(back).expect("a sent clock reads back");
                assert_eq!(again, notes, "a clock changes when sent");
            }
            _ => {}
        }
    });
}

fn seeds() -> Vec<Vec<u8>> {
    let feed = |b: u8| -> FeedId { crate::feed::Keypair::from_seed(&[b; 32]).id() };
    let (a, b, c) = (feed(1), feed(2), feed(3));
    let clock = clock_value([
        (
            &a,
            Note::Have {
                seq: 0,
                receive: true,
            },
        ),
        (
            &b,
            Note::Have {
                seq: 450,
                receive: false,
            },
        ),
        (&c, Note::Skip),
    ]);
    vec![
        clock.to_compact().into_bytes(),
        format!(r#"{{"{a}":4294967295,"{b}":-1}}"#).into_bytes(),
        br#"[{"version":3,"format":"classic"}]"#.to_vec(),
        br#"[{"version":2}]"#.to_vec(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn ebt_notes_short_run() {
        run(&TARGET, 150000);
    }
}
