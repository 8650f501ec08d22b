#!/usr/bin/env bash
# weir's main job on its defaults: `weir run` captures a demo command's
# stdout and stderr into ./weir-logs/demo.log (CRI format) and prints the
# account of the run.
set -euo pipefail
export PATH="${HOME:-/root}/.cargo/bin:$PATH"  # rustup's toolchain, even under a bare PATH
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo build --release --locked -p weir

./target/release/weir run --name demo --summary -- sh -c '
    for i in 1 2 3; do echo "line $i to stdout"; echo "line $i to stderr" >&2; done
    head -c 40000 /dev/zero | tr "\\0" x; echo   # one 40000-byte line: P, P, F records
    printf "an unterminated last line, closed with F at exit"'
echo "--- weir-logs/demo.log (lines cut at 120 columns):"
cut -c1-120 weir-logs/demo.log
