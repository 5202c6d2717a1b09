//! The `manifest` answer: the methods a muxrpc endpoint offers, as the nested object
//! JavaScript clients build their API from (`{"blobs":{"has":"async",…},"whoami":"async"}`).
//! muxrpc clients walk this tree to make `sbot.blobs.has(…)`; a flat `"blobs.has"` key
//! makes a method named with a dot that no client calls.

use super::session::CallType;
use crate::feed::json::{Object, Value};

/// One level of the tree, in the order names were first seen.
#[derive(Debug, Default)]
struct Level(Vec<(String, Entry)>);

#[derive(Debug)]
enum Entry {
    Method(CallType),
    Group(Level),
}

impl Level {
    fn insert(&mut self, path: &[&str], kind: CallType) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let at = match self.0.iter().position(|(n, _)| n == first) {
            Some(i) => i,
            None => {
                let entry = if rest.is_empty() {
                    Entry::Method(kind)
                } else {
                    Entry::Group(Level::default())
                };
                self.0.push(((*first).to_owned(), entry));
                self.0.len() - 1
            }
        };
        match (&mut self.0[at].1, rest.is_empty()) {
            (Entry::Method(k), true) => *k = kind,
            (Entry::Group(level), false) => level.insert(rest, kind),
            // A name that is both a method and a group: the group wins, as a client
            // cannot have both at one key.
            (entry @ Entry::Method(_), false) => {
                let mut level = Level::default();
                level.insert(rest, kind);
                *entry = Entry::Group(level);
            }
            (Entry::Group(_), true) => {}
        }
    }

    fn to_value(&self) -> Value {
        let mut o = Object::new();
        for (name, entry) in &self.0 {
            let v = match entry {
                Entry::Method(kind) => Value::string(kind.as_str()),
                Entry::Group(level) => level.to_value(),
            };
            o.push(name, v);
        }
        Value::Object(o)
    }
}

/// The manifest of `methods`, each a dotted path (`blobs.has`) with its call type: one
/// nested object per path segment, in the order the methods are given. A later duplicate
/// replaces an earlier type; empty segments are kept as given.
pub fn manifest<'a>(methods: impl IntoIterator<Item = (&'a str, CallType)>) -> Value {
    let mut root = Level::default();
    for (name, kind) in methods {
        let path: Vec<&str> = name.split('.').collect();
        root.insert(&path, kind);
    }
    root.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_methods_nest() {
        let m = manifest([
            ("whoami", CallType::Async),
            ("blobs.has", CallType::Async),
            ("blobs.get", CallType::Source),
            ("ebt.replicate", CallType::Duplex),
            ("blobs.getSlice", CallType::Source),
            ("a.b.c", CallType::Sink),
        ]);
        assert_eq!(
            m.to_compact(),
            r#"{"whoami":"async","blobs":{"has":"async","get":"source","getSlice":"source"},"ebt":{"replicate":"duplex"},"a":{"b":{"c":"sink"}}}"#
        );
    }

    #[test]
    fn a_group_outranks_a_method_of_the_same_name() {
        let before = manifest([("x", CallType::Async), ("x.y", CallType::Source)]);
        let after = manifest([("x.y", CallType::Source), ("x", CallType::Async)]);
        assert_eq!(before.to_compact(), r#"{"x":{"y":"source"}}"#);
        assert_eq!(after.to_compact(), before.to_compact());
        let twice = manifest([("x", CallType::Async), ("x", CallType::Source)]);
        assert_eq!(twice.to_compact(), r#"{"x":"source"}"#);
        assert_eq!(manifest([]).to_compact(), "{}");
    }
}
