//! Writes every fuzz target's seeds (real inputs made by the crate's own
//! writers) into `<dir>/<target>/seed-<n>` (default `fuzz/corpus`,
//! the corpus `cargo fuzz run` reads).
//!
//! `cargo run -p ssb-node --features fuzzing --example fuzz_seeds [dir]`

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus"),
    };
    for t in ssb_node::fuzzing::TARGETS {
        let dir = root.join(t.name);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in (t.seeds)().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed)?;
        }
        println!("{}: {} seeds", t.name, (t.seeds)().len());
    }
    Ok(())
}
