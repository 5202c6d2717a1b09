//! What a message's content means to the replica: the blobs it mentions and
//! whether it is a `contact` message (which can change the follow graph).

use crate::feed::json::Value;
use crate::feed::{refs, BlobId};

/// Blob ids mentioned anywhere in a message's content (at most 64, at most
/// 32 levels deep), and whether it is a `contact` message.
pub fn scan_content(content: &Value) -> (Vec<BlobId>, bool) {
    fn walk(v: &Value, out: &mut Vec<BlobId>, depth: usize) {
        if depth > 32 || out.len() >= 64 {
            return;
        }
        match v {
            Value::String(s) => {
                if let Some(text) = s.as_str() {
                    if refs::is_blob(text) {
                        if let Ok(id) = text.parse::<BlobId>() {
                            if !out.contains(&id) {
                                out.push(id);
                            }
                        }
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out, depth + 1)),
            Value::Object(o) => o
                .entries()
                .iter()
                .for_each(|(_, v)| walk(v, out, depth + 1)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(content, &mut out, 0);
    let contact = content
        .as_object()
        .and_then(|o| o.get("type"))
        .and_then(Value::as_str)
        == Some("contact");
    (out, contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_scan_finds_blob_links_and_contacts() {
        let blob = BlobId::of(b"hello");
        let c = Value::parse(
            format!(
                r#"{{"type":"post","mentions":[{{"link":"{blob}","size":5}}],"text":"see {blob}"}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(scan_content(&c), (vec![blob], false));
        let c = Value::parse(br#"{"type":"contact","contact":"x"}"#).unwrap();
        assert_eq!(scan_content(&c), (vec![], true));
    }
}
