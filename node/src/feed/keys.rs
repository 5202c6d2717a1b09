//! The node's long-term Ed25519 identity and the ssb-keys `secret` file.
//!
//! The file is what ssb-server and every JS client read and write: comment
//! lines starting with `#`, then a 2-space JSON object with `curve`, `public`,
//! `private` (base64 of libsodium's 64-byte secret key, seed ‖ public key,
//! plus `.ed25519`) and `id`. It is created with mode 0400 so other users
//! cannot read it, and never overwritten.

use std::io::Write as _;
use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey};

use super::ids::{decode_base64_exact, encode_base64, FeedId};
use super::json::Value;

/// Why a secret file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or created.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not an ssb-keys secret.
    #[error("{path}: not an ssb secret key file: {why}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// An Ed25519 keypair: signs this node's messages.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.id())
    }
}

impl Keypair {
    /// A fresh random keypair from the OS random source.
    pub fn generate() -> Keypair {
        Keypair {
            signing: SigningKey::generate(&mut rand_core::OsRng),
        }
    }

    /// The keypair of a 32-byte seed (deterministic; for tests and tools).
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The feed id this key signs for.
    pub fn id(&self) -> FeedId {
        FeedId(self.signing.verifying_key().to_bytes())
    }

    /// The ed25519 signing key (to sign bundles with our identity).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// libsodium's 64-byte secret key: seed ‖ public key.
    pub fn to_libsodium_secret(&self) -> [u8; 64] {
        self.signing.to_keypair_bytes()
    }

    /// Signs `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.signing.sign(bytes).to_bytes()
    }

    /// The secret file text, byte for byte as ssb-keys 8 writes it.
    pub fn to_secret_file(&self) -> String {
        let public = encode_base64(self.id().as_bytes());
        let private = encode_base64(&self.to_libsodium_secret());
        format!(
            "# WARNING: Never show this to anyone.\n\
             # WARNING: Never edit it or use it on multiple devices at once.\n\
             #\n\
             # This is your SECRET, it gives you magical powers. With your secret you can\n\
             # sign your messages so that your friends can verify that the messages came\n\
             # from you. If anyone learns your secret, they can use it to impersonate you.\n\
             #\n\
             # If you use this secret on more than one device you will create a fork and\n\
             # your friends will stop replicating your content.\n\
             #\n\
             {{\n  \"curve\": \"ed25519\",\n  \"public\": \"{public}.ed25519\",\n  \
             \"private\": \"{private}.ed25519\",\n  \"id\": \"@{public}.ed25519\"\n}}\n\
             #\n\
             # The only part of this file that's safe to share is your public name:\n\
             #\n\
             #   @{public}.ed25519"
        )
    }

    /// Parses secret file text (`path` only names it in errors).
    pub fn from_secret_text(text: &str, path: &str) -> Result<Keypair, KeyError> {
        let bad = |why: &str| KeyError::Format {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        // Like ssb-keys: drop `#` comments (to the end of their line).
        let json: String = text
            .lines()
            .map(|l| l.find('#').map_or(l, |i| &l[..i]))
            .collect::<Vec<_>>()
            .join("\n");
        let value = Value::parse(json.as_bytes()).map_err(|e| bad(&e.to_string()))?;
        let obj = value.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let field = |k: &str| obj.get(k).and_then(Value::as_str);
        if let Some(curve) = field("curve") {
            if curve != "ed25519" {
                return Err(bad("curve is not ed25519"));
            }
        }
        let private = field("private")
            .and_then(|p| p.strip_suffix(".ed25519"))
            .and_then(decode_base64_exact::<64>)
            .ok_or_else(|| bad("'private' is not base64 of 64 bytes + '.ed25519'"))?;
        let signing = SigningKey::from_keypair_bytes(&private)
            .map_err(|_| bad("'private' public half does not match its seed"))?;
        let keys = Keypair { signing };
        let id = keys.id();
        if let Some(public) = field("public") {
            if format!("@{public}") != id.to_string() {
                return Err(bad("'public' does not match 'private'"));
            }
        }
        if let Some(claimed) = field("id") {
            if claimed != id.to_string() {
                return Err(bad("'id' does not match 'private'"));
            }
        }
        Ok(keys)
    }

    /// Reads a secret file.
    pub fn load(path: &Path) -> Result<Keypair, KeyError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
            path: name.clone(),
            source,
        })?;
        if meta.len() > 64 * 1024 {
            return Err(KeyError::Format {
                path: name,
                why: "file is too large".into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: name.clone(),
            source,
        })?;
        Keypair::from_secret_text(&text, &name)
    }

    /// Writes a new secret file with mode 0400; refuses to overwrite one.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(path)
            .map_err(io)?;
        file.write_all(self.to_secret_file().as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = include_str!("../../../tests/vectors/ssb-legacy-msg/secret");

    #[test]
    fn reads_the_js_secret_file() {
        let k = Keypair::from_secret_text(VECTOR, "secret").expect("valid");
        assert_eq!(
            k.id().to_string(),
            "@H2qXeS5sOKUqaGNFgRJ6qR48+lAeP0C9lq9IVlQMotc=.ed25519"
        );
    }

    #[test]
    fn written_file_reads_back() {
        let k = Keypair::from_seed(&[7; 32]);
        let text = k.to_secret_file();
        assert!(text.starts_with("# WARNING: Never show this to anyone.\n"));
        assert!(text.ends_with(&format!("#   {}", k.id())));
        let back = Keypair::from_secret_text(&text, "x").expect("valid");
        assert_eq!(back.id(), k.id());
    }

    #[test]
    fn refuses_mismatched_halves() {
        let k = Keypair::from_seed(&[7; 32]);
        let other = Keypair::from_seed(&[8; 32]);
        let text = k
            .to_secret_file()
            .replace(&other.id().to_string(), "x")
            .replacen(
                &format!("\"id\": \"{}\"", k.id()),
                &format!("\"id\": \"{}\"", other.id()),
                1,
            );
        assert!(Keypair::from_secret_text(&text, "x").is_err());
        assert!(Keypair::from_secret_text("{}", "x").is_err());
        assert!(Keypair::from_secret_text("# only a comment", "x").is_err());
    }

    #[test]
    fn save_is_0400_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        let k = Keypair::generate();
        k.save_new(&path).expect("saved");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
        assert!(Keypair::generate().save_new(&path).is_err());
        assert_eq!(Keypair::load(&path).expect("loads").id(), k.id());
    }
}
