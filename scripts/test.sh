#!/usr/bin/env bash
# The whole test suite: formatting, lints, the sans-IO check of core, every test of the
# workspace, and the simulator build. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "tools the tests need: promtool (Debian's prometheus package)"
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q prometheus >/dev/null; else sudo apt-get install -y -q prometheus >/dev/null; fi
fi

step "cargo fmt --check"
cargo fmt --all --check

step "clippy (warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "core stays sans-IO"
scripts/check-core-deps.sh

step "alert rules: promtool check and unit tests"
promtool check rules ops/prometheus/alerts.yml
promtool test rules ops/prometheus/alerts_test.yml

step "build the lockmgr binary (the black-box tests run it)"
cargo build --locked -p lockmgr-server --bin lockmgr

step "tests"
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo nextest run --locked --workspace --no-fail-fast

step "the simulator builds (--cfg madsim, own target dir) and a few seeds pass, replayably"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo build --locked -p lockmgr-sim
target/sim/debug/lockmgr-sim --seeds 2..9 --nodes 3 --duration 10 --check-determinism

echo
echo "all checks passed"
