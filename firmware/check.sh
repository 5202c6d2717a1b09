#!/usr/bin/env bash
# Checks for the firmware crate: no_std proof, feature matrix, lint, tests.
# Usable from CI as `bash firmware/check.sh` (honours CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

NO_STD_TARGET=thumbv7em-none-eabihf

# 1. no_std proof: build the core for a bare-metal target that has no std.
if rustup target list --installed 2>/dev/null | grep -qx "$NO_STD_TARGET" \
    || rustup target add "$NO_STD_TARGET"; then
    cargo build -p firmware --no-default-features --target "$NO_STD_TARGET"
else
    echo "firmware/check.sh: could not install rustup target $NO_STD_TARGET;" >&2
    echo "  falling back to the host check (the crate is #![no_std] unconditionally)" >&2
    cargo build -p firmware --no-default-features
    deps=$(cargo tree -p firmware --no-default-features -e normal --prefix none \
        | awk '{print $1}' | sort -u | tr '\n' ' ')
    if [ "$deps" != "embedded-hal firmware " ]; then
        echo "firmware/check.sh: unexpected dependencies without features: $deps" >&2
        exit 1
    fi
fi

# 2. Every feature combination builds and passes its tests.
cargo test -p firmware --no-default-features
cargo test -p firmware --no-default-features --features std
cargo clippy -p firmware --all-targets -- -D warnings
cargo test -p firmware
