//! ssb-ref's string tests for ids and links, with its quirks, for reading
//! references out of message content (mentions, blob links, follow targets).
//!
//! Typed parsing lives in [`super::ids`]; these predicates answer exactly what
//! the JavaScript `ssb-ref` 2.16 answers, e.g. `is_feed` also accepts the
//! `.sha256` suffix. Addresses and invites belong to the network layer.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::ids::decode_base64_exact;

fn sigil_b64_suffix(s: &str, sigil: char, suffixes: &[&str]) -> bool {
    let Some(rest) = s.strip_prefix(sigil) else {
        return false;
    };
    suffixes.iter().any(|suf| {
        rest.strip_suffix(suf)
            .and_then(decode_base64_exact::<32>)
            .is_some()
    })
}

/// A feed id (`@` + canonical base64 of 32 bytes + `.ed25519` or `.sha256`).
pub fn is_feed(s: &str) -> bool {
    sigil_b64_suffix(s, '@', &[".ed25519", ".sha256"])
}

/// A message id (`%…=.sha256`).
pub fn is_msg(s: &str) -> bool {
    sigil_b64_suffix(s, '%', &[".sha256"])
}

/// A blob id (`&…=.sha256`).
pub fn is_blob(s: &str) -> bool {
    sigil_b64_suffix(s, '&', &[".sha256"])
}

/// A cloaked message id (`%…=.cloaked`).
pub fn is_cloaked_msg(s: &str) -> bool {
    sigil_b64_suffix(s, '%', &[".cloaked"])
}

/// Any id, optionally followed by a `?query`.
pub fn is_link(s: &str) -> bool {
    let id = s.split_once('?').map_or(s, |(id, _)| id);
    is_feed(id) || is_msg(id) || is_blob(id)
}

/// A message link.
pub fn is_msg_link(s: &str) -> bool {
    s.starts_with('%') && is_link(s)
}

/// A blob link.
pub fn is_blob_link(s: &str) -> bool {
    s.starts_with('&') && is_link(s)
}

/// An id of any format: sigil, canonical base64 of any length, `.` and a
/// format name of letters, digits and `-` (e.g. `.bamboo-2`).
pub fn is_typed(sigil: char, s: &str) -> bool {
    let Some((b64, format)) = s.strip_prefix(sigil).and_then(|r| r.rsplit_once('.')) else {
        return false;
    };
    !b64.is_empty()
        && !format.is_empty()
        && format
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && STANDARD.decode(b64).is_ok()
}

/// The kind of a reference: `"feed"`, `"msg"` or `"blob"`.
pub fn ref_type(s: &str) -> Option<&'static str> {
    match s.chars().next() {
        Some('@') if is_feed(s) => Some("feed"),
        Some('%') if is_msg(s) => Some("msg"),
        Some('&') if is_blob(s) => Some("blob"),
        _ => None,
    }
}

/// A link split from its query, as ssb-ref's `parseLink` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The id.
    pub link: String,
    /// `key=value` pairs in order (values percent-decoded).
    pub query: Option<Vec<(String, String)>>,
}

/// Length of a `[@%&]` + 43 base64 + `=.` + `\w+` reference at the start of
/// `s`, if there is one.
fn link_len(s: &[u8]) -> Option<usize> {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'/' || *c == b'+';
    if s.len() < 47
        || !matches!(s[0], b'@' | b'%' | b'&')
        || !s[1..44].iter().all(b64)
        || &s[44..46] != b"=."
    {
        return None;
    }
    let tail = s[46..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (tail > 0).then_some(46 + tail)
}

/// ssb-ref `parseLink`: a reference with an optional `?query`.
pub fn parse_link(s: &str) -> Option<Link> {
    let n = link_len(s.as_bytes())?;
    let (link, rest) = s.split_at(n);
    let query = match rest.strip_prefix('?') {
        None if rest.is_empty() => None,
        Some(q) if !q.is_empty() => Some(
            q.split('&')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let k = percent_decode(&k.replace('+', " ")).unwrap_or_else(|| k.to_owned());
                    let mut v =
                        percent_decode(&v.replace('+', " ")).unwrap_or_else(|| v.to_owned());
                    // Like ssb-ref: unbox keys contain '+', which the query
                    // syntax turned into ' '; turn it back.
                    if k == "unbox" {
                        v = v.replace(' ', "+");
                    }
                    (k, v)
                })
                .collect(),
        ),
        _ => return None,
    };
    Some(Link {
        link: link.to_owned(),
        query,
    })
}

/// `decodeURIComponent`: None where JavaScript would throw.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// ssb-ref `extract`: the first reference in `s` (a URL, say), trying again
/// after URL-decoding and un-escaping `&amp;`.
pub fn extract(s: &str) -> Option<String> {
    let find = |t: &str| {
        let b = t.as_bytes();
        (0..b.len()).find_map(|i| link_len(&b[i..]).map(|n| t[i..i + n].to_owned()))
    };
    find(s).or_else(|| {
        let decoded = percent_decode(s).unwrap_or_else(|| s.to_owned());
        find(&decoded.replace("&amp;", "&"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::json::Value;

    /// Every ssb-ref case for ids and links; address and invite cases are
    /// the network layer's.
    #[test]
    fn ssb_ref_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/vectors/ssb-ref/cases.json"
        );
        let text = std::fs::read_to_string(path).expect("vector");
        let all = Value::parse(text.as_bytes()).expect("json");
        let Some(Value::Array(cases)) = all.as_object().and_then(|o| o.get("cases")) else {
            panic!("cases")
        };
        let mut checked = 0;
        for case in cases {
            let o = case.as_object().expect("case");
            let func = o.get("fn").and_then(Value::as_str).expect("fn");
            let input = o.get("input").and_then(Value::as_str).unwrap_or("");
            let expected = o.get("expected").expect("expected");
            let as_bool = |b: bool| Value::Bool(b);
            let got = match func {
                "isFeed" => as_bool(is_feed(input)),
                "isMsg" => as_bool(is_msg(input)),
                "isBlob" => as_bool(is_blob(input)),
                "isCloakedMsg" => as_bool(is_cloaked_msg(input)),
                "isLink" => as_bool(is_link(input)),
                "isMsgLink" => as_bool(is_msg_link(input)),
                "isFeedType" => as_bool(is_typed('@', input)),
                "isMsgType" => as_bool(is_typed('%', input)),
                "isBlobType" => as_bool(is_typed('&', input)),
                "type" => ref_type(input).map_or(Value::Bool(false), Value::string),
                "extract" => extract(input).map_or(Value::Null, |s| Value::string(&s)),
                "parseLink" => match parse_link(input) {
                    None => Value::Null,
                    Some(l) => {
                        let mut obj = crate::feed::json::Object::new();
                        obj.push("link", Value::string(&l.link));
                        if let Some(q) = l.query {
                            let mut qo = crate::feed::json::Object::new();
                            for (k, v) in q {
                                qo.push(&k, Value::string(&v));
                            }
                            obj.push("query", Value::Object(qo));
                        }
                        Value::Object(obj)
                    }
                },
                _ => continue,
            };
            // ssb-ref returns null or false for "no"; treat them alike.
            let no = |v: &Value| matches!(v, Value::Null | Value::Bool(false));
            assert!(
                got == *expected || (no(&got) && no(expected)),
                "{func}({input:?}): got {}, expected {}",
                got.to_compact(),
                expected.to_compact()
            );
            checked += 1;
        }
        assert_eq!(checked, 65, "id and link cases checked");
    }
}
