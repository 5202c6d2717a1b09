//! Targets for message JSON: the JSON parser alone, and signed messages.

use super::{bounded, FuzzTarget};
use crate::feed::json::Object;
use crate::feed::{BatchVerifier, Keypair, Message, Value};

/// `Value::parse`: a text that parses prints (compact and pretty) to texts
/// that parse to the same value, and the compact print is a fixed point.
pub const JSON: FuzzTarget = FuzzTarget {
    name: "json",
    body: json,
    seeds: json_seeds,
};

/// `Message::parse` on lines of compact JSON (as EBT and bundles carry them).
pub const MESSAGE: FuzzTarget = FuzzTarget {
    name: "message",
    body: message,
    seeds: message_seeds,
};

/// JSON has no length fields: what it allocates follows the input's length
/// (a `Value` is a few words per input byte at worst).
fn json_cap(input: usize) -> usize {
    (1 << 20) + 128 * input
}

/// The JSON target's body.
pub fn json(data: &[u8]) {
    bounded(json_cap(data.len()), || {
        let Ok(v) = Value::parse(data) else { return };
        let compact = v.to_compact();
        let again = Value::parse(compact.as_bytes()).expect("the compact print parses");
        assert_eq!(again, v, "compact print changes the value");
        assert_eq!(
            again.to_compact(),
            compact,
            "compact print is no fixed point"
        );
        let pretty = v.to_pretty();
        let again = Value::parse(pretty.as_bytes()).expect("the pretty print parses");
        assert_eq!(again, v, "pretty print changes the value");
    });
}

/// The message target's body.
pub fn message(data: &[u8]) {
    bounded(json_cap(data.len()), || {
        let msgs: Vec<Message> = data
            .split(|&b| b == b'\n')
            .filter_map(|line| Message::parse(line, None).ok())
            .collect();
        for m in &msgs {
            // The stored form (compact) and the signed form (pretty) give
            // the same message: same id, author, place in the feed.
            for text in [m.value().to_compact(), m.value().to_pretty()] {
                let again = Message::parse(text.as_bytes(), None).expect("a message reparses");
                assert_eq!(again.id(), m.id());
                assert_eq!(again.author(), m.author());
                assert_eq!(again.sequence(), m.sequence());
                assert_eq!(again.previous(), m.previous());
            }
        }
        // The batch check gives each message the verdict it has alone.
        let alone: Vec<bool> = msgs.iter().map(|m| m.verify().is_ok()).collect();
        let batch: Vec<bool> = BatchVerifier::with_threads(1)
            .check(msgs)
            .into_items()
            .into_iter()
            .map(|(_, verdict)| verdict.is_ok())
            .collect();
        assert_eq!(batch, alone, "batch and one-by-one verdicts differ");
    });
}

/// A feed of `n` real signed messages by a fixed key, in order.
pub fn sample_feed(seed: u8, n: usize) -> Vec<Message> {
    let keys = Keypair::from_seed(&[seed; 32]);
    let mut out: Vec<Message> = Vec::new();
    for i in 0..n {
        let mut content = Object::new();
        content.push("type", Value::string("post"));
        content.push(
            "text",
            Value::string(&format!("hello {i} \u{e9}\u{1f600} \"q\"\n")),
        );
        if i % 2 == 1 {
            content.push(
                "mentions",
                Value::Array(vec![
                    Value::Number(i as f64 * 0.5),
                    Value::Null,
                    Value::Bool(true),
                ]),
            );
        }
        let head = out.last().map(Message::head);
        let m = Message::create(
            &keys,
            head.as_ref(),
            1_700_000_000_000.0 + i as f64,
            Value::Object(content),
            None,
        )
        .expect("a sample message");
        out.push(m);
    }
    out
}

fn json_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = sample_feed(1, 2)
        .iter()
        .flat_map(|m| [m.value().to_compact(), m.value().to_pretty()])
        .map(String::into_bytes)
        .collect();
    for s in [
        r#"{"name":["createHistoryStream"],"type":"source","args":[{"id":"@x","seq":1,"live":true}]}"#,
        r#"[1,-2.5e-7,1e21,123456789012345680000,"\u0041\ud83d\ude00\ud800",{"2":0,"1":1,"b":[]}]"#,
        r#""\\\"\/\b\f\n\r\t""#,
    ] {
        seeds.push(s.as_bytes().to_vec());
    }
    seeds
}

fn message_seeds() -> Vec<Vec<u8>> {
    let lines = |msgs: &[Message]| {
        msgs.iter()
            .map(|m| m.value().to_compact())
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    };
    let feed = sample_feed(1, 4);
    let other = sample_feed(2, 2);
    let mut mixed = feed[..2].to_vec();
    mixed.extend(other);
    vec![lines(&feed), lines(&mixed), lines(&feed[3..])]
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn json_short_run() {
        run(&JSON, 150000);
    }

    #[test]
    fn message_short_run() {
        run(&MESSAGE, 12000);
    }

    #[test]
    fn message_seeds_are_valid_signed_messages() {
        for seed in message_seeds() {
            for line in seed.split(|&b| b == b'\n') {
                let m = Message::parse(line, None).expect("a seed message parses");
                m.verify().expect("a seed message verifies");
            }
        }
    }
}
