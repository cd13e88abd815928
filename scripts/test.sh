#!/usr/bin/env bash
# The whole test suite: formatting, lints, the sans-IO check of core, every test of the
# workspace, and the seeded simulation (200 seeds, regressions, determinism, planted-bug
# self-test). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "tools the tests need: promtool, protoc (etcd-client's build), etcd (the benchmark's peer), iptables and mkfs.ext4 (the chaos run)"
need() { # need <command> <Debian package>
  if ! command -v "$1" >/dev/null; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$2" >/dev/null \
      || { $sudo apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$2" >/dev/null; }
  fi
}
need_pkg() { # need_pkg <Debian package>: installs it (a package with no command to test for)
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$1" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$1" >/dev/null; }
}
need promtool prometheus
need protoc protobuf-compiler
need etcd etcd-server
need iptables iptables
need mkfs.ext4 e2fsprogs

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
cargo build --locked -p lockmgr-cli --bin lockmgr

step "tests"
export PROPTEST_CASES="${PROPTEST_CASES:-256}"
cargo nextest run --locked --workspace --no-fail-fast

step "Python client (clients/python): a fresh venv, stubs current with the .proto, mypy --strict, pytest against the lockmgr binary"
python3 -c "import ensurepip, venv" 2>/dev/null || need_pkg python3-venv  # Debian splits venv out
rm -rf target/pyenv
python3 -m venv target/pyenv
target/pyenv/bin/pip install -q --disable-pip-version-check "./clients/python[test]"
target/pyenv/bin/python clients/python/scripts/generate_stubs.py --check
(cd clients/python && ../../target/pyenv/bin/mypy)
(cd clients/python && LOCKMGR_BIN="$PWD/../../target/debug/lockmgr" ../../target/pyenv/bin/pytest -q -p no:cacheprovider)

step "benchmark smoke run: every workload, lockmgr and etcd, a second or a few hundred items each"
cargo build --locked -p lockmgr-bench
target/debug/lockmgr-bench --seconds 1 --clients 16 --leases 300 --paths 300 --footprint-leases 100

step "chaos on real processes: 3 nodes in network namespaces, 90 s of faults, the simulator's checkers (root)"
cargo build --locked -p lockmgr-chaos
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
$sudo target/debug/lockmgr-chaos --duration 90s --seed 1 --results target/chaos-ci

step "the simulator builds (--cfg madsim, release, own target dir)"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo build --locked --release -p lockmgr-sim
SIM=target/sim/release/lockmgr-sim

step "simulation: 200 seeds (5 nodes, 60 simulated seconds of faults each) and the regression seeds"
"$SIM" --seeds 0..200 --regressions

step "simulation: seeds replay byte for byte (each run twice, trace hashes compared)"
"$SIM" --seeds 1000..1010 --check-determinism

step "simulation self-test: every planted bug is caught within 100 seeds"
"$SIM" --self-test --self-test-seeds 100 --nodes 3 --duration 10

echo
echo "all checks passed"
