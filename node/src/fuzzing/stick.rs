//! FuzzTarget for a stick's descriptor, `SSB-SNEAKERNET/stick.json`, read
//! through `Stick::open` on a temporary folder.

use std::fs;

use super::{bounded, FuzzTarget};
use crate::sneakernet::stick::{Stick, StickError, FOLDER, FORMAT, VERSION};

/// `Stick::open`: a descriptor is taken only if it is a regular file of
/// ours whose id comes back unchanged, and it is never rewritten; anything
/// else (including a link out of the stick) is a descriptor error.
pub const TARGET: FuzzTarget = FuzzTarget {
    name: "stick_descriptor",
    body,
    seeds,
};

/// The target's body. Byte 0 odd: `stick.json` is a symlink to a file
/// outside the stick holding the rest; even: a file holding the rest.
pub fn body(data: &[u8]) {
    let Some((&mode, descriptor)) = data.split_first() else {
        return;
    };
    let mount = tempfile::tempdir().expect("a temp folder");
    let dir = mount.path().join(FOLDER);
    fs::create_dir(&dir).expect("the stick folder");
    let path = dir.join("stick.json");
    let outside = tempfile::NamedTempFile::new().expect("a temp file");
    let link = mode % 2 == 1;
    if link {
        fs::write(outside.path(), descriptor).expect("write the outside file");
        std::os::unix::fs::symlink(outside.path(), &path).expect("symlink");
    } else {
        fs::write(&path, descriptor).expect("write stick.json");
    }
    let opened = bounded(64 << 10, || Stick::open(mount.path()));
    match opened {
        Ok(stick) => {
            assert!(
                !link,
                "a descriptor linked from outside the stick was taken"
            );
            assert!(descriptor.len() <= 4096);
            let v: serde_json::Value =
                serde_json::from_slice(descriptor).expect("a taken descriptor is JSON");
            assert_eq!(v["format"], FORMAT);
            assert_eq!(v["version"], VERSION);
            assert_eq!(v["id"].as_str(), Some(stick.id.as_str()));
            assert_eq!(stick.id.len(), 32);
        }
        Err(StickError::Descriptor { .. } | StickError::Newer { .. }) => {}
        // A link is refused for what it is, before its content is read.
        Err(StickError::Refused { .. }) if link => {}
        Err(e) => panic!("a descriptor's content gave another error: {e}"),
    }
    assert_eq!(
        fs::read(if link { outside.path() } else { &path }).expect("read the descriptor back"),
        descriptor,
        "the descriptor was rewritten"
    );
}

fn seeds() -> Vec<Vec<u8>> {
    let good = format!(
        r#"{{"format":"{FORMAT}","version":{VERSION},"id":"0123456789abcdef0123456789abcdef"}}"#
    );
    let mut seeds = Vec::new();
    for mode in [0u8, 1] {
        let mut s = vec![mode];
        s.extend_from_slice(good.as_bytes());
        seeds.push(s);
    }
    let mut s = vec![0];
    s.extend_from_slice(
        br#"{"format":"ssb-sneakernet-stick","version":2,"id":"0123456789ABCDEF0123456789abcdef","x":1}"#,
    );
    seeds.push(s);
    seeds
}

#[cfg(test)]
mod tests {
    use super::super::mutate::run;
    use super::*;

    #[test]
    fn stick_descriptor_short_run() {
        run(&TARGET, 4000);
    }

    #[test]
    fn the_good_seed_opens_and_its_link_does_not() {
        let seeds = seeds();
        let mount = tempfile::tempdir().expect("temp folder");
        let dir = mount.path().join(FOLDER);
        fs::create_dir(&dir).expect("stick folder");
        fs::write(dir.join("stick.json"), &seeds[0][1..]).expect("descriptor");
        let stick = Stick::open(mount.path()).expect("a good descriptor opens");
        assert_eq!(stick.id, "0123456789abcdef0123456789abcdef");
        body(&seeds[1]);
    }
}
