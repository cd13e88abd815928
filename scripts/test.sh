#!/usr/bin/env bash
# The whole test suite: formatting, lints, the sans-IO check of core, every test of the
# workspace, and the simulator build. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "clippy (warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "core stays sans-IO"
scripts/check-core-deps.sh

step "build the lockmgr binary (the black-box tests run it)"
cargo build --locked -p lockmgr-server --bin lockmgr

step "tests"
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo nextest run --locked --workspace --no-fail-fast

step "the simulator build (--cfg madsim, own target dir)"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo build --locked -p lockmgr-proto

echo
echo "all checks passed"
