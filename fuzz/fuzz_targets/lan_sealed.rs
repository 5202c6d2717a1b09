#![no_main]
//! cargo-fuzz target `lan_sealed`: the body is `ssb_node::fuzzing`'s (shared with the unit tests).

#[global_allocator]
static ALLOC: ssb_node::fuzzing::BoundedAlloc = ssb_node::fuzzing::BoundedAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ssb_node::fuzzing::run("lan_sealed", data));
