//! Targets for muxrpc bodies and for the requests the control socket reads.

use super::{bounded, Target};
use crate::muxrpc::session::{error_body, error_message};
use crate::muxrpc::{Body, Request};
use crate::net::rpc::{BodyType, DecoderItem, Frame};

/// `Body::to_value` and the error-body reader: a JSON body reads as its
/// JSON, a UTF-8 body as its string, and a value sent comes back the same.
pub const BODY: Target = Target {
    name: "muxrpc_body",
    body,
    seeds: body_seeds,
};

/// The control socket (muxrpc in plain text over a unix socket): the frame
/// stream, and each new request in it as the session parses it. A request
/// that parses is sent back as what it was.
pub const CONTROL_REQUEST: Target = Target {
    name: "control_request",
    body: control_request,
    seeds: control_seeds,
};

/// The body target's body. Byte 0 picks the body type; the rest is the body.
pub fn body(data: &[u8]) {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    bounded((1 << 20) + 128 * data.len(), || {
        let body_type = match kind % 3 {
            0 => BodyType::Binary,
            1 => BodyType::Utf8,
            _ => BodyType::Json,
        };
        let b = Body {
            body_type,
            bytes: bytes.to_vec(),
        };
        if let Ok(v) = b.to_value() {
            if body_type == BodyType::Utf8 {
                assert_eq!(v.as_str().map(str::as_bytes), Some(bytes));
            }
            assert_eq!(
                Body::json(&v).to_value().as_ref(),
                Ok(&v),
                "a sent value changes"
            );
        }
        let message = error_message(bytes);
        if let Ok(text) = std::str::from_utf8(bytes) {
            assert_eq!(error_message(&error_body(text)), text, "error text changes");
        }
        drop(message);
    });
}

/// The control-request target's body: the plain frame stream as the
/// control socket reads it (byte 0 picks the chunking).
pub fn control_request(data: &[u8]) {
    super::rpc::frames(data);
    let Some((_, input)) = data.split_first() else {
        return;
    };
    bounded((1 << 20) + 128 * data.len(), || {
        let decoded = super::rpc::decode(input, &[input.len().max(1)]);
        for (item, _) in decoded.items {
            let DecoderItem::Frame(f) = item else {
                continue;
            };
            // What the session takes for a new request (dispatch's `New`).
            if f.req <= 0 || f.end {
                continue;
            }
            let Ok(r) = Request::parse(&f.body) else {
                continue;
            };
            assert!(!r.name.is_empty(), "a request without a name");
            let again = Request::parse(&r.to_body()).expect("a sent request parses");
            assert_eq!(again.name, r.name);
            assert_eq!(again.kind, r.kind);
            assert_eq!(again.args, r.args);
        }
    });
}

fn body_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (kind, bytes) in [
        (
            2u8,
            br#"{"key":"%abc=.sha256","value":{"previous":null},"timestamp":1}"#.to_vec(),
        ),
        (2, error_body("method:x is not in list of allowed methods")),
        (2, b"true".to_vec()),
        (1, "h\u{e9}llo".as_bytes().to_vec()),
        (0, vec![0, 159, 146, 150]),
    ] {
        let mut s = vec![kind];
        s.extend(bytes);
        seeds.push(s);
    }
    seeds
}

fn control_seeds() -> Vec<Vec<u8>> {
    let request = |req, stream, body: &str| Frame {
        req,
        stream,
        end: false,
        body_type: BodyType::Json,
        body: body.as_bytes().to_vec(),
    };
    // What the CLI sends the node.
    let frames = [
        request(1, false, r#"{"name":["whoami"],"type":"async","args":[]}"#),
        request(
            2,
            false,
            r#"{"name":["publish"],"type":"async","args":[{"type":"post","text":"hi"}]}"#,
        ),
        request(
            3,
            false,
            r#"{"name":["sync"],"type":"async","args":[{"timeout":5}]}"#,
        ),
        request(4, false, r#"{"name":"status","args":null}"#),
        request(
            5,
            true,
            r#"{"name":["stick","sync"],"type":"source","args":["/media/usb0"]}"#,
        ),
        request(
            6,
            false,
            r#"{"name":["bundle","import"],"type":"async","args":[{"path":"/tmp/b.zst"}]}"#,
        ),
    ];
    let stream = super::rpc::sample_stream(&frames);
    [0u8, 9, 200]
        .iter()
        .map(|&mode| {
            let mut s = vec![mode];
            s.extend_from_slice(&stream);
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn body_short_run() {
        run(&BODY, 100000);
    }

    #[test]
    fn control_request_short_run() {
        run(&CONTROL_REQUEST, 50000);
    }
}
