//! The admin password: an argon2id hash (a PHC string) kept in the store
//! ([`Store::web_password`]). It is set by `ssb-node web-password` (the CLI
//! hashes it, so the control socket carries only the hash) or from a
//! plaintext file on the boot partition, which the node hashes at start and
//! then blanks. Without one the web page is read-only.

use std::io::Read;
use std::path::Path;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::store::{Store, StoreError};

/// Fewest characters of a password.
pub const MIN_LEN: usize = 8;
/// Most bytes of a password (and of the boot-partition file).
pub const MAX_LEN: usize = 256;
/// Most memory (KiB) a stored hash may ask of one check: bounds what a
/// hash set through the control socket can cost each login.
const MAX_MEMORY_KIB: u32 = 64 * 1024;
/// Most passes a stored hash may ask for.
const MAX_PASSES: u32 = 8;
/// Most lanes a stored hash may ask for.
const MAX_LANES: u32 = 4;

/// Why a password or hash was refused, or could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long (the keeper's choice).
    #[error("the password must be {MIN_LEN} to {MAX_LEN} bytes long")]
    Length,
    /// Not an argon2id hash within our bounds (the sender's fault).
    #[error("not an argon2id password hash within this node's limits: {0}")]
    BadHash(String),
    /// Hashing failed (a bug of ours).
    #[error("hashing the password: {0}")]
    Hash(String),
    /// The boot-partition file could not be read or blanked.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hashes `password` (argon2id, the crate's default cost: 19 MiB, 2
/// passes), with a fresh salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_LEN || password.len() > MAX_LEN {
        return Err(PasswordError::Length);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks that `hash` is an argon2id PHC string whose cost is within bounds.
pub fn check_hash(hash: &str) -> Result<(), PasswordError> {
    let bad = |why: &str| PasswordError::BadHash(why.to_owned());
    if hash.len() > 512 {
        return Err(bad("too long"));
    }
    let parsed = PasswordHash::new(hash).map_err(|e| bad(&e.to_string()))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(bad("not argon2id"));
    }
    let params = argon2::Params::try_from(&parsed).map_err(|e| bad(&e.to_string()))?;
    if params.m_cost() > MAX_MEMORY_KIB
        || params.t_cost() > MAX_PASSES
        || params.p_cost() > MAX_LANES
    {
        return Err(bad("its cost is above the limits"));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err(bad("no salt or output"));
    }
    Ok(())
}

/// Whether `password` matches the stored `hash` (false for a hash that
/// fails [`check_hash`]).
pub fn verify(hash: &str, password: &str) -> bool {
    if password.len() > MAX_LEN || check_hash(hash).is_err() {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Stores `hash` (checked first) as the admin password.
pub fn set(store: &Store, hash: &str) -> Result<(), PasswordError> {
    check_hash(hash)?;
    Ok(store.set_web_password(hash)?)
}

/// Takes a plaintext password from the boot-partition file at `path`, if it
/// holds one: hashes and stores it, then blanks the file. `Ok(false)` when
/// the file is missing or blank.
pub fn take_boot_file(store: &Store, path: &Path) -> Result<bool, PasswordError> {
    let file_error = |error| PasswordError::File {
        path: path.display().to_string(),
        error,
    };
    let mut text = String::new();
    match std::fs::File::open(path) {
        Ok(f) => f
            .take(MAX_LEN as u64 + 2)
            .read_to_string(&mut text)
            .map_err(file_error)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(file_error(e)),
    };
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Ok(false);
    }
    let hashed = hash(password)?;
    set(store, &hashed)?;
    let blank = std::fs::File::create(path).and_then(|f| f.sync_all());
    blank.map_err(file_error)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        check_hash(&h).unwrap();
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horsf"));
        assert!(matches!(hash("short"), Err(PasswordError::Length)));
    }

    #[test]
    fn hashes_of_other_kinds_or_costs_are_refused() {
        let salt = "c29tZXNhbHRzb21lc2FsdA";
        for bad in [
            "plain text".to_owned(),
            format!("$argon2i$v=19$m=19456,t=2,p=1${salt}$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            format!("$argon2id$v=19$m=1048576,t=2,p=1${salt}$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            format!("$argon2id$v=19$m=19456,t=100,p=1${salt}$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            assert!(check_hash(&bad).is_err(), "{bad}");
            assert!(!verify(&bad, "anything at all"), "{bad}");
        }
    }

    #[test]
    fn the_boot_file_is_hashed_into_the_store_and_blanked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let file = dir.path().join("web-password.txt");
        assert!(!take_boot_file(&store, &file).unwrap());
        std::fs::write(&file, "keeper's secret\n").unwrap();
        assert!(take_boot_file(&store, &file).unwrap());
        assert_eq!(std::fs::read(&file).unwrap(), b"");
        let h = store.web_password().unwrap().unwrap();
        assert!(verify(&h, "keeper's secret"));
        assert!(!take_boot_file(&store, &file).unwrap());
        assert!(verify(
            &store.web_password().unwrap().unwrap(),
            "keeper's secret"
        ));
    }
}
