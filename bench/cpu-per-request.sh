#!/usr/bin/env bash
# CPU time (user and system, all threads) that the given processes spend
# per request while wrk loads URL: a throughput-independent measure of a
# proxy's cost, less sensitive than req/s to a shared machine's noise.
#   bench/cpu-per-request.sh URL PID [PID...]   (env HOST, default bench.local; SECONDS_RUN, default 8;
#   NEW_CONNECTIONS=1: a new connection per request, 16 at a time, instead of 64 kept alive)
set -euo pipefail
url=$1; shift
host=${HOST:-bench.local}
secs=${SECONDS_RUN:-8}
tick=$(getconf CLK_TCK)
cpu() {
  local u=0 s=0 f
  for p in "$@"; do
    for t in /proc/"$p"/task/*; do
      read -r -a f < <(cut -d' ' -f14,15 "$t/stat")
      u=$((u + f[0])); s=$((s + f[1]))
    done
  done
  echo "$u $s"
}
read -r u0 s0 < <(cpu "$@")
args=(-c64)
if [ "${NEW_CONNECTIONS:-}" = 1 ]; then args=(-c16 -H 'Connection: close'); fi
rps=$(wrk -t2 "${args[@]}" -d"${secs}s" -H "Host: $host" "$url" | awk '/Requests\/sec/ {print $2}')
read -r u1 s1 < <(cpu "$@")
awk -v u0="$u0" -v u1="$u1" -v s0="$s0" -v s1="$s1" -v rps="$rps" -v secs="$secs" -v tick="$tick" 'BEGIN {
  n = rps * secs
  printf "req/s %.0f  user %.1f µs/req  system %.1f µs/req  total %.1f µs/req\n", rps, (u1-u0)/tick*1e6/n, (s1-s0)/tick*1e6/n, (u1-u0+s1-s0)/tick*1e6/n
}'
