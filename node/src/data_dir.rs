//! The node's data directory: identity, store and blobs in one place.
//!
//! Layout: `secret` (the ssb-keys identity file), `db/` (fjall), `blobs/`.
//! The default is `$XDG_DATA_HOME/ssb-node` or `~/.local/share/ssb-node`, so
//! the node runs with no configuration at all.

use std::path::{Path, PathBuf};

use crate::blob_store::{BlobError, BlobStore};
use crate::feed::keys::KeyError;
use crate::feed::Keypair;
use crate::store::{Store, StoreError};

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// No identity yet.
    #[error("no identity in {0}: run `ssb-node init` first")]
    NoIdentity(String),
    /// An identity exists and another one was offered.
    #[error("{dir} already holds identity {existing}; refusing to replace it with {offered}")]
    OtherIdentity {
        /// The data directory.
        dir: String,
        /// The identity it has.
        existing: String,
        /// The identity offered.
        offered: String,
    },
    /// The directory could not be created.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The identity file is bad.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store could not be opened.
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

/// A data directory (which may not exist yet).
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The per-user default: `$XDG_DATA_HOME/ssb-node`, else
    /// `$HOME/.local/share/ssb-node`, else `./ssb-node-data`.
    pub fn default_root() -> PathBuf {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("XDG_DATA_HOME")
            .or_else(|| env("HOME").map(|h| h.join(".local/share")))
            .map_or_else(|| PathBuf::from("ssb-node-data"), |d| d.join("ssb-node"))
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The identity file.
    pub fn secret_path(&self) -> PathBuf {
        self.root.join("secret")
    }

    /// Creates the directory (mode 0700) and, unless one exists, an
    /// identity: a new one, or a copy of the secret file at `adopt`.
    /// Returns the identity and whether it was created now.
    pub fn init(&self, adopt: Option<&Path>) -> Result<(Keypair, bool), DataDirError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|source| DataDirError::Io {
                path: self.root.display().to_string(),
                source,
            })?;
        let offered = adopt.map(Keypair::load).transpose()?;
        let path = self.secret_path();
        if path.exists() {
            let existing = Keypair::load(&path)?;
            if let Some(o) = offered.filter(|o| o.id() != existing.id()) {
                return Err(DataDirError::OtherIdentity {
                    dir: self.root.display().to_string(),
                    existing: existing.id().to_string(),
                    offered: o.id().to_string(),
                });
            }
            return Ok((existing, false));
        }
        let keys = offered.unwrap_or_else(Keypair::generate);
        keys.save_new(&path)?;
        drop(self.open_store()?);
        drop(self.open_blobs()?);
        Ok((keys, true))
    }

    /// The identity, which `init` must have made.
    pub fn keys(&self) -> Result<Keypair, DataDirError> {
        let path = self.secret_path();
        if !path.exists() {
            return Err(DataDirError::NoIdentity(self.root.display().to_string()));
        }
        Ok(Keypair::load(&path)?)
    }

    /// Opens the message store.
    pub fn open_store(&self) -> Result<Store, DataDirError> {
        Ok(Store::open(&self.root.join("db"))?)
    }

    /// Opens the blob store.
    pub fn open_blobs(&self) -> Result<BlobStore, DataDirError> {
        Ok(BlobStore::open(&self.root.join("blobs"))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent_and_adopts() {
        let dir = tempfile::tempdir().expect("tmp");
        let dd = DataDir::new(dir.path().join("a"));
        assert!(matches!(dd.keys(), Err(DataDirError::NoIdentity(_))));
        let (k1, created) = dd.init(None).expect("init");
        assert!(created);
        let (k2, created) = dd.init(None).expect("again");
        assert!(!created);
        assert_eq!(k1.id(), k2.id());
        // Adopting the same identity is fine; another one is refused.
        dd.init(Some(&dd.secret_path())).expect("same");
        let other = DataDir::new(dir.path().join("b"));
        let (k3, _) = other.init(Some(&dd.secret_path())).expect("adopt");
        assert_eq!(k3.id(), k1.id());
        let third = DataDir::new(dir.path().join("c"));
        third.init(None).expect("init");
        assert!(matches!(
            third.init(Some(&dd.secret_path())),
            Err(DataDirError::OtherIdentity { .. })
        ));
    }
}
