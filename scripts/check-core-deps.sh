#!/usr/bin/env bash
# core/ is sans-IO: it must not depend, even indirectly, on a runtime, a network or RPC
# stack, a storage engine, the simulator, or a random source. Fails if it does.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='^(tokio|tonic|prost|fjall|madsim|madsim-tokio|madsim-tonic|rand|rand_core|getrandom|mio|openraft)$'
tree=$(cargo tree -p lockmgr-core -e normal --prefix none --format '{p}')
found=$(awk '{print $1}' <<<"$tree" | grep -E "$banned" | sort -u || true)
if [ -n "$found" ]; then
  echo "lockmgr-core must stay sans-IO, but it depends on: $(echo "$found" | tr '\n' ' ')" >&2
  exit 1
fi
echo "lockmgr-core dependencies are clean (no tokio, tonic, prost, fjall, madsim, rand)"
