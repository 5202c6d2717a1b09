//! Order-preserving JSON values with JavaScript semantics.
//!
//! SSB signs `JSON.stringify(value, null, 2)` and hashes it as UTF-16 code
//! units, so a message can only be checked if its value is kept exactly as
//! JavaScript would hold it:
//!
//! - object keys keep their order, except that array-index keys ("0", "7",
//!   "42", …) come first in ascending order, as in every JS object;
//! - numbers are IEEE doubles printed the way `Number.prototype.toString`
//!   prints them (shortest round trip, `1e+21`, `1e-7`);
//! - strings are sequences of UTF-16 code units, so a lone surrogate
//!   (`"\ud800"`) is a legal value. [`JsString`] stores them as WTF-8.
//!
//! The parser is strict where JavaScript is lax in ways that only forgers use
//! (duplicate keys, `-0`, numbers that overflow to infinity) and bounded in
//! nesting depth so hostile input cannot exhaust the stack.

use std::fmt;

/// Deepest nesting the parser accepts. A message is at most 8192 UTF-16 units
/// when printed with 2-space indentation, which caps real nesting near 90.
pub const MAX_DEPTH: usize = 256;

/// A JSON value as JavaScript holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A finite double (never `-0`).
    Number(f64),
    /// A string of UTF-16 code units.
    String(JsString),
    /// An array.
    Array(Vec<Value>),
    /// An object in JavaScript property order.
    Object(Object),
}

/// A JavaScript string: UTF-16 code units stored as WTF-8 (UTF-8 that may
/// also encode unpaired surrogates as three-byte sequences).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsString(Box<[u8]>);

/// An object: keys in JavaScript property order, no duplicates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object(Vec<(JsString, Value)>);

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The text is not valid UTF-8.
    #[error("JSON text is not valid UTF-8")]
    Utf8,
    /// A syntax error at a byte offset.
    #[error("invalid JSON at byte {offset}: {what}")]
    Syntax {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong there.
        what: &'static str,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The same key twice in one object.
    #[error("duplicate key {0:?} in a JSON object")]
    DuplicateKey(String),
    /// `-0`, which JavaScript would silently print as `0`.
    #[error("negative zero is not allowed")]
    NegativeZero,
    /// A number too large to be a finite double.
    #[error("number out of range")]
    NumberRange,
}

impl JsString {
    /// The WTF-8 bytes (UTF-8 unless the string holds a lone surrogate).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The string as `&str`, unless it holds a lone surrogate.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in UTF-16 code units, which is JavaScript's `.length`.
    pub fn utf16_len(&self) -> usize {
        utf16_len(&self.0)
    }
}

impl From<&str> for JsString {
    fn from(s: &str) -> Self {
        JsString(s.as_bytes().into())
    }
}

impl From<String> for JsString {
    fn from(s: String) -> Self {
        JsString(s.into_bytes().into_boxed_slice())
    }
}

impl fmt::Debug for JsString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = Vec::new();
        write_quoted(&mut s, &self.0);
        f.write_str(&into_string(s))
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Object(Vec::new())
    }

    /// Builds an object from entries, applying JavaScript key order; refuses
    /// duplicate keys.
    pub fn from_entries(entries: Vec<(JsString, Value)>) -> Result<Self, JsonError> {
        check_duplicates(&entries)?;
        let mut o = Object(entries);
        o.apply_js_key_order();
        Ok(o)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// Entries in order.
    pub fn entries(&self) -> &[(JsString, Value)] {
        &self.0
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the object has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends `key` (which must not be present yet and must not be an array
    /// index, so the order stays JavaScript's).
    pub fn push(&mut self, key: &str, value: Value) {
        debug_assert!(self.get(key).is_none() && array_index(key.as_bytes()).is_none());
        self.0.push((JsString::from(key), value));
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self
            .0
            .iter()
            .position(|(k, _)| k.as_bytes() == key.as_bytes())?;
        Some(self.0.remove(i).1)
    }

    /// Removes and returns the last entry.
    pub fn pop(&mut self) -> Option<(JsString, Value)> {
        self.0.pop()
    }

    /// Moves array-index keys to the front in ascending order, keeping the
    /// insertion order of the rest: what every JavaScript engine does.
    fn apply_js_key_order(&mut self) {
        if self
            .0
            .iter()
            .any(|(k, _)| array_index(k.as_bytes()).is_some())
        {
            // Stable sort: indices by value first, then the rest as they were.
            self.0
                .sort_by_key(|(k, _)| array_index(k.as_bytes()).map_or((1, 0), |i| (0, i)));
        }
    }
}

/// The value of `key` as an array index (a canonical decimal below 2³²−1),
/// which is what makes JavaScript move it to the front of an object.
fn array_index(key: &[u8]) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &b in key {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    if n < u64::from(u32::MAX) {
        u32::try_from(n).ok()
    } else {
        None
    }
}

fn check_duplicates(entries: &[(JsString, Value)]) -> Result<(), JsonError> {
    let dup = if entries.len() <= 16 {
        entries
            .iter()
            .enumerate()
            .find(|(i, (k, _))| entries[..*i].iter().any(|(k2, _)| k2 == k))
            .map(|(_, (k, _))| k)
    } else {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        entries.iter().map(|(k, _)| k).find(|k| !seen.insert(*k))
    };
    match dup {
        Some(k) => Err(JsonError::DuplicateKey(
            String::from_utf8_lossy(k.as_bytes()).into_owned(),
        )),
        None => Ok(()),
    }
}

impl Value {
    /// Parses a JSON text (RFC 8259, as `JSON.parse` reads it).
    pub fn parse(text: &[u8]) -> Result<Value, JsonError> {
        std::str::from_utf8(text).map_err(|_| JsonError::Utf8)?;
        let mut p = Parser { s: text, pos: 0 };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.pos != text.len() {
            return Err(p.err("unexpected text after the value"));
        }
        Ok(v)
    }

    /// A string value.
    pub fn string(s: &str) -> Value {
        Value::String(JsString::from(s))
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The string as `&str`, if this is a string without lone surrogates.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => s.as_str(),
            _ => None,
        }
    }

    /// `JSON.stringify(value)`: compact.
    pub fn to_compact(&self) -> String {
        let mut out = Vec::new();
        self.write_compact(&mut out);
        into_string(out)
    }

    /// `JSON.stringify(value, null, 2)`: what SSB signs and hashes.
    pub fn to_pretty(&self) -> String {
        let mut out = Vec::new();
        self.write_pretty(&mut out, 0);
        into_string(out)
    }

    /// Appends the compact form to `out` (always valid UTF-8: lone
    /// surrogates are written as escapes).
    pub fn write_compact(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Number(n) => write_number(out, *n),
            Value::String(s) => write_quoted(out, s.as_bytes()),
            Value::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_compact(out);
                }
                out.push(b']');
            }
            Value::Object(o) => {
                out.push(b'{');
                for (i, (k, v)) in o.0.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_quoted(out, k.as_bytes());
                    out.push(b':');
                    v.write_compact(out);
                }
                out.push(b'}');
            }
        }
    }

    /// Appends the 2-space-indented form to `out`, `level` levels deep.
    pub fn write_pretty(&self, out: &mut Vec<u8>, level: usize) {
        match self {
            Value::Array(items) if !items.is_empty() => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    out.extend_from_slice(if i > 0 { b",\n" } else { b"\n" });
                    indent(out, level + 1);
                    v.write_pretty(out, level + 1);
                }
                out.push(b'\n');
                indent(out, level);
                out.push(b']');
            }
            Value::Object(o) if !o.is_empty() => write_pretty_entries(out, &o.0, level),
            other => other.write_compact(out),
        }
    }
}

/// Writes `{ entries }` in the 2-space form (the caller guarantees at least
/// one entry). Used to print an object without some of its keys.
pub fn write_pretty_entries(out: &mut Vec<u8>, entries: &[(JsString, Value)], level: usize) {
    out.push(b'{');
    for (i, (k, v)) in entries.iter().enumerate() {
        out.extend_from_slice(if i > 0 { b",\n" } else { b"\n" });
        indent(out, level + 1);
        write_quoted(out, k.as_bytes());
        out.extend_from_slice(b": ");
        v.write_pretty(out, level + 1);
    }
    out.push(b'\n');
    indent(out, level);
    out.push(b'}');
}

fn indent(out: &mut Vec<u8>, level: usize) {
    for _ in 0..level {
        out.extend_from_slice(b"  ");
    }
}

/// Serialised JSON is valid UTF-8 by construction; stay total anyway.
fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `Number.prototype.toString` for a finite double.
pub fn write_number(out: &mut Vec<u8>, n: f64) {
    if n.is_finite() {
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(if n == 0.0 { 0.0 } else { n }).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// ES `QuoteJSONString` over WTF-8 bytes: escapes `"`, `\`, control
/// characters and lone surrogates; everything else is copied as UTF-8.
pub fn write_quoted(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        // Only these bytes can need work; 0xED may start a lone surrogate.
        if b >= 0x20 && b != b'"' && b != b'\\' && b != 0xED {
            i += 1;
            continue;
        }
        let lone_surrogate = b == 0xED && i + 2 < s.len() && s[i + 1] >= 0xA0;
        if b == 0xED && !lone_surrogate {
            i += 1;
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        let unit = if lone_surrogate {
            0xD000 | (u32::from(s[i + 1] & 0x3F) << 6) | u32::from(s[i + 2] & 0x3F)
        } else {
            u32::from(b)
        };
        i += if lone_surrogate { 3 } else { 1 };
        start = i;
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        if short.is_empty() {
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[((unit >> shift) & 0xF) as usize]);
            }
        } else {
            out.extend_from_slice(short);
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Length in UTF-16 code units of WTF-8 (or UTF-8) bytes.
pub fn utf16_len(s: &[u8]) -> usize {
    s.iter()
        .map(|&b| match b {
            0x80..=0xBF => 0,
            0xF0..=0xFF => 2,
            _ => 1,
        })
        .sum()
}

/// The low byte of every UTF-16 code unit of UTF-8 text `s`: node's
/// `Buffer.from(s, 'binary')`, which the SSB message id hashes.
pub fn latin1_bytes(s: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if s.is_ascii() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    for c in String::from_utf8_lossy(s).chars() {
        let c = c as u32;
        if c < 0x10000 {
            out.push(c as u8);
        } else {
            let v = c - 0x10000;
            out.push((0xD800 + (v >> 10)) as u8);
            out.push((0xDC00 + (v & 0x3FF)) as u8);
        }
    }
    std::borrow::Cow::Owned(out)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Syntax {
            offset: self.pos,
            what,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8], v: Value) -> Result<Value, JsonError> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("unknown literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.s.get(self.pos) {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.pos += 1;
        let mut entries = Vec::new();
        self.ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(Object(entries)));
        }
        loop {
            self.ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.ws();
            if self.s.get(self.pos) != Some(&b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.ws();
            let v = self.value(depth)?;
            entries.push((key, v));
            self.ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Object::from_entries(entries).map(Value::Object);
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .s
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("short \\u escape"))?;
        let mut v = 0u32;
        for &d in digits {
            let x = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.err("bad \\u escape"))?;
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<JsString, JsonError> {
        self.pos += 1; // opening quote
        let start = self.pos;
        // Fast path: no escapes.
        while let Some(&b) = self.s.get(self.pos) {
            match b {
                b'"' => {
                    let out = self.s[start..self.pos].into();
                    self.pos += 1;
                    return Ok(JsString(out));
                }
                b'\\' => break,
                0..=0x1F => return Err(self.err("control character in string")),
                _ => self.pos += 1,
            }
        }
        let mut out: Vec<u8> = self.s[start..self.pos].to_vec();
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match b {
                b'"' => return Ok(JsString(out.into_boxed_slice())),
                0..=0x1F => {
                    self.pos -= 1;
                    return Err(self.err("control character in string"));
                }
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.pos += 1;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(0x08),
                        b'f' => Some(0x0c),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return Err(self.err("unknown escape")),
                    };
                    match simple {
                        Some(c) => out.push(c),
                        None => {
                            let unit = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&unit)
                                && self.s[self.pos..].starts_with(b"\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let low = self.hex4()?;
                                if (0xDC00..0xE000).contains(&low) {
                                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                                } else {
                                    self.pos = save;
                                    unit
                                }
                            } else {
                                unit
                            };
                            push_wtf8(&mut out, code);
                        }
                    }
                }
                _ => out.push(b),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let s = self.s;
        let digits = |p: &mut usize| {
            let from = *p;
            while s.get(*p).is_some_and(u8::is_ascii_digit) {
                *p += 1;
            }
            *p - from
        };
        let mut p = self.pos;
        if s.get(p) == Some(&b'-') {
            p += 1;
        }
        match s.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                digits(&mut p);
            }
            _ => {
                self.pos = p;
                return Err(self.err("bad number"));
            }
        }
        if s.get(p) == Some(&b'.') {
            p += 1;
            if digits(&mut p) == 0 {
                self.pos = p;
                return Err(self.err("bad fraction"));
            }
        }
        if let Some(b'e' | b'E') = s.get(p) {
            p += 1;
            if let Some(b'+' | b'-') = s.get(p) {
                p += 1;
            }
            if digits(&mut p) == 0 {
                self.pos = p;
                return Err(self.err("bad exponent"));
            }
        }
        self.pos = p;
        // The slice is ASCII digits and signs, so this cannot fail; stay total.
        let text = std::str::from_utf8(&s[start..p]).map_err(|_| JsonError::Utf8)?;
        let n: f64 = text.parse().map_err(|_| JsonError::NumberRange)?;
        if !n.is_finite() {
            return Err(JsonError::NumberRange);
        }
        if n == 0.0 && n.is_sign_negative() {
            return Err(JsonError::NegativeZero);
        }
        Ok(Value::Number(n))
    }
}

/// Appends a code point (surrogates included) in WTF-8.
fn push_wtf8(out: &mut Vec<u8>, c: u32) {
    if c < 0x80 {
        out.push(c as u8);
    } else if c < 0x800 {
        out.extend_from_slice(&[0xC0 | (c >> 6) as u8, 0x80 | (c & 0x3F) as u8]);
    } else if c < 0x10000 {
        out.extend_from_slice(&[
            0xE0 | (c >> 12) as u8,
            0x80 | ((c >> 6) & 0x3F) as u8,
            0x80 | (c & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | (c >> 18) as u8,
            0x80 | ((c >> 12) & 0x3F) as u8,
            0x80 | ((c >> 6) & 0x3F) as u8,
            0x80 | (c & 0x3F) as u8,
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> String {
        Value::parse(s.as_bytes()).expect("parses").to_compact()
    }

    #[test]
    fn numbers_print_like_javascript() {
        let cases = [
            ("1", "1"),
            ("1.0", "1"),
            ("0.1", "0.1"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("1e-7", "1e-7"),
            ("0.000001", "0.000001"),
            ("-1.5E3", "-1500"),
            ("123456789012345680000", "123456789012345680000"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("9007199254740993", "9007199254740992"),
        ];
        for (input, want) in cases {
            assert_eq!(rt(input), want, "input {input}");
        }
    }

    #[test]
    fn strings_escape_like_javascript() {
        assert_eq!(rt(r#""a\"b\\c\/d""#), r#""a\"b\\c/d""#);
        assert_eq!(
            rt(r#""\b\f\n\r\t\u0001\u001f\u007f""#),
            "\"\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}\""
        );
        assert_eq!(rt(r#""\u00e9ß\u2019""#), "\"éß\u{2019}\"");
        assert_eq!(rt(r#""\ud83d\ude00""#), "\"😀\"");
        // Lone surrogates survive and are printed escaped, as node >= 12 does.
        assert_eq!(rt(r#""\ud800x\uDFFF""#), r#""\ud800x\udfff""#);
        assert_eq!(rt(r#""\ud83d\u0041""#), r#""\ud83dA""#);
    }

    #[test]
    fn utf16_lengths() {
        let v = Value::parse("\"aß€😀\\ud800\"".as_bytes()).expect("parses");
        let Value::String(s) = v else { panic!() };
        assert_eq!(s.utf16_len(), 1 + 1 + 1 + 2 + 1);
    }

    #[test]
    fn latin1_truncation() {
        assert_eq!(&*latin1_bytes("\"ß\"".as_bytes()), &[0x22, 0xDF, 0x22]);
        assert_eq!(&*latin1_bytes("😀".as_bytes()), &[0x3D, 0x00]);
        assert_eq!(&*latin1_bytes("\u{2019}".as_bytes()), &[0x19]);
    }

    #[test]
    fn integer_keys_go_first() {
        assert_eq!(
            rt(r#"{"b":1,"10":2,"a":3,"2":4,"01":5,"-1":6,"4294967295":7,"4294967294":8}"#),
            r#"{"2":4,"10":2,"4294967294":8,"b":1,"a":3,"01":5,"-1":6,"4294967295":7}"#
        );
    }

    #[test]
    fn pretty_matches_stringify_2() {
        let v = Value::parse(br#"{"a":[],"b":{},"c":[1,{"d":null}],"e":"x"}"#).expect("parses");
        assert_eq!(
            v.to_pretty(),
            "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": null\n    }\n  ],\n  \"e\": \"x\"\n}"
        );
        assert_eq!(Value::parse(b"[]").expect("parses").to_pretty(), "[]");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &b"{\"a\":1,\"a\":2}"[..],
            b"-0",
            b"-0.0",
            b"1e400",
            b"01",
            b"1.",
            b".5",
            b"+1",
            b"[1,]",
            b"{\"a\":1,}",
            b"\"\x01\"",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"nul",
            b"[1] x",
            b"\"\xff\"",
            b"NaN",
            b"",
        ] {
            assert!(
                Value::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(Value::parse(deep.as_bytes()), Err(JsonError::TooDeep));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(Value::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn duplicate_keys_in_big_objects() {
        let mut s = String::from("{");
        for i in 0..40 {
            s.push_str(&format!("\"k{i}\":{i},"));
        }
        s.push_str("\"k3\":0}");
        assert!(matches!(
            Value::parse(s.as_bytes()),
            Err(JsonError::DuplicateKey(k)) if k == "k3"
        ));
    }
}
