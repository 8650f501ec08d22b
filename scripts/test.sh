#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit, property and
# end-to-end tests. Installs what a fresh machine lacks first.
set -euo pipefail
export PATH="${HOME:-/root}/.cargo/bin:$PATH"  # rustup's toolchain, even under a bare PATH
cd "$(dirname "$0")/.."

./scripts/setup.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The browser test of the UI must run here, not skip (setup installed it).
WEIR_UI_TESTS=require cargo test --workspace --all-targets --locked
