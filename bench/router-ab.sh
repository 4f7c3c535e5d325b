#!/usr/bin/env bash
# CPU per request of two builds of the router against the same backend,
# alternating: what a change costs, less sensitive to a shared machine's
# noise than req/s. REV is the build before (a commit); the other is the
# work tree. Needs: wrk etcd.
#   bench/router-ab.sh REV [pairs] [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/router-ab.sh REV [pairs] [seconds]}
pairs=${2:-3}
secs=${3:-6}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git worktree remove --force "$work/before" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for tool in wrk etcd; do
  command -v "$tool" >/dev/null || { echo "bench/router-ab.sh needs $tool (apt-get install wrk etcd-server)" >&2; exit 1; }
done
git worktree add -q --detach "$work/before" "$rev"
(cd "$work/before" && go build -o "$work/berth-before" ./cmd/berth)
go build -o "$work/berth-after" ./cmd/berth
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_backend_and_etcd "$work" 18181 23890
declare -A port=([before]=18180 [after]=18190) pid
for b in before after; do
  GOMAXPROCS=2 "$work/berth-$b" router --etcd-endpoints 127.0.0.1:23890 --listen "127.0.0.1:${port[$b]}" --admin "" \
    --log-level error & pids+=($!); pid[$b]=$!
done
for b in before after; do
  for _ in $(seq 100); do curl -sf -H 'Host: bench.local' "http://127.0.0.1:${port[$b]}/" >/dev/null 2>&1 && break; sleep 0.1; done
done
for ((i = 1; i <= pairs; i++)); do
  for b in before after; do
    echo "pair $i $b ($rev → work tree): $(SECONDS_RUN=$secs bench/cpu-per-request.sh "http://127.0.0.1:${port[$b]}/" "${pid[$b]}")"
  done
done
