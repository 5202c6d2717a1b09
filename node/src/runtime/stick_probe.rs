//! The minimal stick handler the node runs until the stick reconcile is
//! plugged in: it makes sure the stick has a `SSB-SNEAKERNET/` folder
//! (creating it, durably, if absent) and reports what it found there.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::mounts::SNEAKERNET_DIR;
use super::sticks::{StickHandler, StickOutcome};

/// Most entries counted in `SSB-SNEAKERNET/` (a hostile stick may hold many).
const MAX_COUNTED: usize = 100_000;

/// The probe as a [`StickHandler`]; the work runs on a blocking thread.
pub fn handler() -> StickHandler {
    Arc::new(|stick| {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || probe(&stick))
                .await
                .unwrap_or_else(|e| Err(format!("stick probe failed: {e}")))
        })
    })
}

/// Creates `SSB-SNEAKERNET/` on the stick at `stick` if absent; says what
/// is there.
pub fn probe(stick: &Path) -> StickOutcome {
    let dir = stick.join(SNEAKERNET_DIR);
    match std::fs::symlink_metadata(&dir) {
        Ok(md) if md.is_dir() => {
            let mut entries = 0usize;
            for entry in std::fs::read_dir(&dir).map_err(|e| io_reason(&e))? {
                entry.map_err(|e| io_reason(&e))?;
                entries += 1;
                if entries == MAX_COUNTED {
                    return Ok(format!(
                        "found {SNEAKERNET_DIR}/ with {MAX_COUNTED} or more entries"
                    ));
                }
            }
            Ok(format!("found {SNEAKERNET_DIR}/ with {entries} entries"))
        }
        Ok(_) => Err(format!("{SNEAKERNET_DIR} on the stick is not a folder")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir(&dir).map_err(|e| io_reason(&e))?;
            // Make the new folder durable before the LED says "safe to pull".
            std::fs::File::open(stick)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_reason(&e))?;
            Ok(format!("initialised {SNEAKERNET_DIR}/"))
        }
        Err(e) => Err(io_reason(&e)),
    }
}

/// A short reason for an I/O error on a stick: `stick full`, `read-only`,
/// or the error itself.
pub fn io_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "stick full".into(),
        Some(libc::EROFS) => "read-only".into(),
        _ => format!("I/O error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialises_then_reports_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(probe(dir.path()), Ok("initialised SSB-SNEAKERNET/".into()));
        assert!(dir.path().join(SNEAKERNET_DIR).is_dir());
        std::fs::write(dir.path().join(SNEAKERNET_DIR).join("a.bundle"), b"x").unwrap();
        assert_eq!(
            probe(dir.path()),
            Ok("found SSB-SNEAKERNET/ with 1 entries".into())
        );
    }

    #[test]
    fn refuses_a_file_in_place_of_the_folder_and_a_missing_stick() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNEAKERNET_DIR), b"x").unwrap();
        assert_eq!(
            probe(dir.path()),
            Err("SSB-SNEAKERNET on the stick is not a folder".into())
        );
        let gone = dir.path().join("gone");
        let e = probe(&gone).unwrap_err();
        assert!(e.starts_with("I/O error: "), "{e}");
    }

    #[test]
    fn names_the_errors_a_person_can_act_on() {
        assert_eq!(
            io_reason(&io::Error::from_raw_os_error(libc::ENOSPC)),
            "stick full"
        );
        assert_eq!(
            io_reason(&io::Error::from_raw_os_error(libc::EROFS)),
            "read-only"
        );
    }
}
