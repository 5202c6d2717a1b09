//! Tokens against cross-site requests: every form carries one in a hidden
//! `csrf` field, and a POST without the right one is refused (403). A
//! logged-in form carries its session's token; the login form carries the
//! token of a `ssb_login` cookie set with it (SameSite=Strict, so another
//! site's page can neither send nor read it).

use base64::Engine;
use rand_core::{OsRng, RngCore};

/// The login form's cookie.
pub const LOGIN_COOKIE: &str = "ssb_login";

/// A fresh random token (32 bytes, URL-safe base64).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `given` is `expected`, in time independent of where they differ.
pub fn matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_compared_whole() {
        let t = new_token();
        assert_eq!(t.len(), 43);
        assert_ne!(t, new_token());
        assert!(matches(&t, &t.clone()));
        assert!(!matches(&t, &t[..42]));
        assert!(!matches("", ""));
        assert_eq!(cookie("a=1; ssb_login=xyz; b=2", LOGIN_COOKIE), Some("xyz"));
        assert_eq!(cookie("xssb_login=1", LOGIN_COOKIE), None);
    }
}
