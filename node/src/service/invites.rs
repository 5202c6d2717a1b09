//! Making, listing and revoking invites: what the control commands
//! `invite.create`, `invite.list` and `invite.revoke` ([`super::command`])
//! do, on a node or on the store alone. The codes are
//! shown once and never stored; the store keeps each invite's public key
//! and limits ([`crate::store::invites`]), and invite-key sessions are
//! [`crate::replication::invite_session`].

use super::Node;
use crate::feed::json::Value;
use crate::feed::FeedId;
use crate::invite::code::InviteCode;
use crate::invite::host::{code_address, configured_listen, NoPort};
use crate::net::address::Host;
use crate::store::invites::InviteRecord;
use crate::store::{now_ms, Store, StoreError};

/// Most uses one invite may be made with.
pub const MAX_USES: u32 = 10_000;
/// Longest expiry, in days.
pub const MAX_EXPIRES_DAYS: f64 = 36_500.0;
/// Longest note, in bytes.
pub const MAX_NOTE: usize = 500;

/// Why an invite command failed.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The options are out of range (the caller's fault).
    #[error("{0}")]
    Options(String),
    /// Every kept invite is live and there is no room.
    #[error(
        "this node keeps {} invites, all still usable; revoke some first",
        crate::store::invites::MAX_INVITES
    )]
    Full,
    /// No invite has that id.
    #[error("no invite {0} (see `ssb-node invite list`)")]
    NotFound(String),
    /// The id prefix names several invites.
    #[error("{0} names more than one invite; give more of its id")]
    Ambiguous(String),
    /// The config's listen address gives no port for the code.
    #[error(transparent)]
    Port(#[from] NoPort),
}

/// What `invite create` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateOptions {
    /// Uses (default 1).
    pub uses: Option<u32>,
    /// Days until it expires (fractions allowed; none: never).
    pub expires_days: Option<f64>,
    /// A note for the owner.
    pub note: Option<String>,
}

impl CreateOptions {
    /// As the control socket carries them.
    pub fn to_value(&self) -> Value {
        let mut o = crate::feed::json::Object::new();
        if let Some(u) = self.uses {
            o.push("uses", Value::Number(f64::from(u)));
        }
        if let Some(d) = self.expires_days {
            o.push("expires", Value::Number(d));
        }
        if let Some(n) = &self.note {
            o.push("note", Value::string(n));
        }
        Value::Object(o)
    }

    /// From the control socket's argument.
    pub fn from_value(v: &Value) -> Result<CreateOptions, InviteError> {
        let bad = |m: &str| InviteError::Options(m.to_owned());
        let o = match v {
            Value::Null => return Ok(CreateOptions::default()),
            Value::Object(o) => o,
            _ => return Err(bad("invite.create expects an object")),
        };
        let uses = match o.get("uses") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n))
                if n.fract() == 0.0 && *n >= 0.0 && *n <= f64::from(u32::MAX) =>
            {
                Some(*n as u32)
            }
            Some(_) => return Err(bad("uses must be a whole number")),
        };
        let expires_days = match o.get("expires") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(*n),
            Some(_) => return Err(bad("expires must be a number of days")),
        };
        let note = match o.get("note") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| bad("note must be text"))?
                    .to_owned(),
            ),
        };
        Ok(CreateOptions {
            uses,
            expires_days,
            note,
        })
    }

    /// Checks the ranges; the record for `key` made at `now`.
    fn record(&self, key: FeedId, now: f64) -> Result<InviteRecord, InviteError> {
        let uses = self.uses.unwrap_or(1);
        if uses == 0 || uses > MAX_USES {
            return Err(InviteError::Options(format!(
                "--uses must be between 1 and {MAX_USES}"
            )));
        }
        let expires = match self.expires_days {
            None => None,
            Some(d) if d.is_finite() && (0.0..=MAX_EXPIRES_DAYS).contains(&d) => {
                Some(now + d * 86_400_000.0)
            }
            Some(_) => {
                return Err(InviteError::Options(format!(
                    "--expires must be between 0 and {MAX_EXPIRES_DAYS} days"
                )))
            }
        };
        let note = match &self.note {
            Some(n) if n.len() > MAX_NOTE => {
                return Err(InviteError::Options(format!(
                    "--note is longer than {MAX_NOTE} bytes"
                )))
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(InviteError::Options(
                    "--note must not hold control characters".into(),
                ))
            }
            Some(n) if !n.trim().is_empty() => Some(n.trim().to_owned()),
            _ => None,
        };
        Ok(InviteRecord {
            key,
            uses_left: uses,
            uses,
            expires,
            note,
            created: now,
            revoked: false,
        })
    }
}

/// The host and port a code made by the running `node` names: where it
/// listens, else where its config says it listens.
pub fn node_address(node: &Node) -> Result<(Host, u16), InviteError> {
    if let Some(a) = node.replicator().invite_sessions().address() {
        return Ok(a);
    }
    let listen = configured_listen(&node.settings().listen)?;
    Ok(code_address(
        node.settings().public_address.as_ref(),
        listen,
    ))
}

/// Makes an invite for the node `node` at `host:port`: stores its public
/// key and limits, and returns the code (shown once, never stored).
pub fn create(
    store: &Store,
    node: &FeedId,
    host: Host,
    port: u16,
    opts: &CreateOptions,
) -> Result<(InviteCode, InviteRecord), InviteError> {
    let now = now_ms();
    let code = InviteCode::generate(host, port, *node);
    let record = opts.record(code.key(), now)?;
    if !store.add_invite(&record, now)? {
        return Err(InviteError::Full);
    }
    tracing::info!(invite = %record.key, uses = record.uses, "invite created");
    Ok((code, record))
}

/// Finds the invite named by `id`: its full id, or a unique start of its
/// base64 (with or without the `@`).
fn find(store: &Store, id: &str) -> Result<InviteRecord, InviteError> {
    let want = id.trim().trim_start_matches('@');
    if want.is_empty() {
        return Err(InviteError::NotFound(id.to_owned()));
    }
    let mut hits = store
        .invites()?
        .into_iter()
        .filter(|r| r.key.to_string()[1..].starts_with(want));
    let first = hits
        .next()
        .ok_or_else(|| InviteError::NotFound(id.to_owned()))?;
    if hits.next().is_some() {
        return Err(InviteError::Ambiguous(id.to_owned()));
    }
    Ok(first)
}

/// Revokes the invite named by `id` (see `find`); returns it.
pub fn revoke(store: &Store, id: &str) -> Result<InviteRecord, InviteError> {
    let mut r = find(store, id)?;
    r.revoked = true;
    store.put_invite(&r)?;
    tracing::info!(invite = %r.key, "invite revoked");
    Ok(r)
}

/// How an invite stands at `now`: `live`, `used up`, `expired` or `revoked`.
pub fn state(r: &InviteRecord, now: f64) -> &'static str {
    if r.revoked {
        "revoked"
    } else if r.expires.is_some_and(|e| now >= e) {
        "expired"
    } else if r.uses_left == 0 {
        "used up"
    } else {
        "live"
    }
}

/// An invite as `invite list --json` shows it and the control socket
/// carries it; a new one carries its code too (shown once).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InviteRow {
    /// The invite's public key: its id.
    pub id: String,
    /// See [`state`].
    pub state: String,
    /// Uses left.
    pub uses_left: u32,
    /// Uses it was made with.
    pub uses: u32,
    /// When it expires (ms since the epoch), if it does.
    pub expires: Option<u64>,
    /// When it was made (ms since the epoch).
    pub created: u64,
    /// The owner's note.
    pub note: Option<String>,
    /// The code, for an invite just made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl InviteRow {
    /// `r` as it stands at `now`.
    pub fn of(r: &InviteRecord, now: f64) -> InviteRow {
        InviteRow {
            id: r.key.to_string(),
            state: state(r, now).to_owned(),
            uses_left: r.uses_left,
            uses: r.uses,
            expires: r.expires.map(|e| e as u64),
            created: r.created as u64,
            note: r.note.clone(),
            code: None,
        }
    }
}

/// Makes an invite on `node` (running, or the CLI's own): its row, with
/// the code.
pub fn create_on(node: &Node, opts: &CreateOptions) -> Result<InviteRow, InviteError> {
    let (host, port) = node_address(node)?;
    let (code, record) = create(node.replica().store(), node.id(), host, port, opts)?;
    Ok(InviteRow {
        code: Some(code.text()),
        ..InviteRow::of(&record, now_ms())
    })
}

/// Every invite `store` keeps, oldest first.
pub fn list(store: &Store) -> Result<Vec<InviteRow>, InviteError> {
    let now = now_ms();
    Ok(store
        .invites()?
        .iter()
        .map(|r| InviteRow::of(r, now))
        .collect())
}

/// Revokes the invite named by `id` (see [`revoke`]): its row.
pub fn revoke_row(store: &Store, id: &str) -> Result<InviteRow, InviteError> {
    Ok(InviteRow::of(&revoke(store, id)?, now_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = CreateOptions {
            uses: Some(3),
            expires_days: Some(0.5),
            note: Some("  for Ana ".into()),
        };
        let r = ok.record(FeedId([1; 32]), 1000.0).expect("valid");
        assert_eq!((r.uses, r.uses_left), (3, 3));
        assert_eq!(r.expires, Some(1000.0 + 43_200_000.0));
        assert_eq!(r.note.as_deref(), Some("for Ana"));
        let back = CreateOptions::from_value(&ok.to_value()).expect("round trip");
        assert_eq!(back, ok);
        for bad in [
            CreateOptions {
                uses: Some(0),
                ..CreateOptions::default()
            },
            CreateOptions {
                uses: Some(MAX_USES + 1),
                ..CreateOptions::default()
            },
            CreateOptions {
                expires_days: Some(-1.0),
                ..CreateOptions::default()
            },
            CreateOptions {
                expires_days: Some(f64::NAN),
                ..CreateOptions::default()
            },
            CreateOptions {
                note: Some("x".repeat(MAX_NOTE + 1)),
                ..CreateOptions::default()
            },
            CreateOptions {
                note: Some("a\nb".into()),
                ..CreateOptions::default()
            },
        ] {
            assert!(bad.record(FeedId([1; 32]), 0.0).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_list_revoke_on_the_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let node = FeedId([4; 32]);
        let (code, r) = create(
            &store,
            &node,
            "127.0.0.1".parse().unwrap(),
            8008,
            &CreateOptions::default(),
        )
        .expect("create");
        assert_eq!(code.key(), r.key);
        assert_eq!(state(&r, now_ms()), "live");
        let text = code.text();
        assert!(text.starts_with("127.0.0.1:8008:@"));
        // The seed is nowhere in the store's files, as text or as bytes.
        let seed = text.rsplit('~').next().unwrap().to_owned();
        let raw = crate::feed::ids::decode_base64_exact::<32>(&seed).unwrap();
        store.persist().expect("persist");
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            for needle in [seed.as_bytes(), &raw[..]] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{}",
                    entry.display()
                );
            }
        }
        let id = r.key.to_string();
        assert!(matches!(
            revoke(&store, "zzzz"),
            Err(InviteError::NotFound(_))
        ));
        let revoked = revoke(&store, &id[1..8]).expect("revoke by prefix");
        assert!(revoked.revoked);
        assert_eq!(
            state(&store.invites().expect("list")[0], now_ms()),
            "revoked"
        );
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
