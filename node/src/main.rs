//! The `ssb-node` command-line program.
fn main() {
    println!("ssb-node");
}
