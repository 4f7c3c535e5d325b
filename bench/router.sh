#!/usr/bin/env bash
# Router throughput and latency on 127.0.0.1, against the same load sent
# directly to the backend and through nginx and haproxy (keep-alive
# upstreams, 2 workers, and the forwarding headers berth sets:
# X-Forwarded-For, -Proto, -Host and X-Real-IP), all in one run. Needs: wrk nginx haproxy etcd.
#   bench/router.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
rounds=${2:-3}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for tool in wrk nginx haproxy etcd; do
  command -v "$tool" >/dev/null || { echo "bench/router.sh needs $tool (apt-get install wrk nginx-light haproxy etcd-server)" >&2; exit 1; }
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
go build -o "$work/berth" ./cmd/berth
bench_backend_and_etcd "$work" 18081 23790
GOMAXPROCS=2 "$work/berth" router --etcd-endpoints 127.0.0.1:23790 --listen 127.0.0.1:18080 --admin 127.0.0.1:19080 --log-level error & pids+=($!); berth_pid=$!

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:18081; keepalive 128; }
  server {
    listen 127.0.0.1:18082;
    location / {
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$host;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!); nginx_pid=$!

cat > "$work/haproxy.cfg" <<HAPROXY
global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:18083
  default_backend be
backend be
  http-reuse always
  option forwardfor
  http-request set-header X-Real-IP %[src]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  server s1 127.0.0.1:18081
HAPROXY
haproxy -f "$work/haproxy.cfg" & pids+=($!); haproxy_pid=$!

for _ in $(seq 100); do curl -sf -H 'Host: bench.local' http://127.0.0.1:18080/ >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf -H 'Host: bench.local' http://127.0.0.1:18080/ >/dev/null || { echo "berth router not routing" >&2; exit 1; }

for port in 18080 18082 18083; do
  hdrs=$(curl -sf -H 'Host: bench.local' "http://127.0.0.1:$port/headers")
  for h in X-Forwarded-For X-Forwarded-Proto X-Forwarded-Host X-Real-Ip; do
    grep -qi "^$h: " <<<"$hdrs" || { echo "the proxy on port $port does not set $h" >&2; exit 1; }
  done
done

rps() { wrk -t2 -c64 -d"${dur}s" -H 'Host: bench.local' "$1" | awk '/Requests\/sec/ {print $2}'; }
lat() { wrk -t1 -c1 -d"$((dur/2 > 2 ? dur/2 : 2))s" --latency -H 'Host: bench.local' "$1" | awk '$1=="50%"{p50=$2} $1=="99%"{p99=$2} END{print p50, p99}'; }

# Rounds: each measures every target once, in an order that rotates so no
# target always runs first or last; a target's ratio is taken against the
# direct run of the same round, and the table shows medians.
targets=(direct:18081 berth:18080 nginx:18082 haproxy:18083)
declare -A ratios rates L
vsnginx=""
for ((round = 0; round < rounds; round++)); do
  declare -A R=()
  for ((i = 0; i < ${#targets[@]}; i++)); do
    target=${targets[$(((i + round) % ${#targets[@]}))]}
    R[${target%%:*}]=$(rps "http://127.0.0.1:${target##*:}/")
  done
  for name in direct berth nginx haproxy; do
    rates[$name]+="${R[$name]} "
    ratios[$name]+="$(awk -v a="${R[$name]}" -v b="${R[direct]}" 'BEGIN{printf "%.3f", a/b}') "
  done
  vsnginx+="$(awk -v a="${R[berth]}" -v b="${R[nginx]}" 'BEGIN{printf "%.3f", a/b}') "
  echo "round $((round + 1)): direct ${R[direct]}, berth ${R[berth]}, nginx ${R[nginx]}, haproxy ${R[haproxy]}" >&2
done
for target in "${targets[@]}"; do
  L[${target%%:*}]=$(lat "http://127.0.0.1:${target##*:}/")
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.2f", m}'; }
span() { tr ' ' '\n' | grep . | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.2f–%.2f", lo, hi}'; }
echo "| target | median req/s (wrk -t2 -c64 -d${dur}s, $rounds rounds) | median ratio to direct | ratio range | p50 / p99 at 1 connection |"
echo "|---|---|---|---|---|"
for name in direct berth nginx haproxy; do
  echo "| $name | $(median <<<"${rates[$name]}") | $(median <<<"${ratios[$name]}") | $(span <<<"${ratios[$name]}") | ${L[$name]/ / / } |"
done
echo
echo "berth / nginx per round: median $(median <<<"$vsnginx"), range $(span <<<"$vsnginx"), berth ahead in $(tr ' ' '\n' <<<"$vsnginx" | awk '$1 >= 1' | wc -l) of $rounds rounds"
echo
echo "| proxy | CPU per request (bench/cpu-per-request.sh, ${dur}s) |"
echo "|---|---|"
# shellcheck disable=SC2046 # one argument per nginx worker
echo "| berth | $(SECONDS_RUN=$dur bench/cpu-per-request.sh http://127.0.0.1:18080/ "$berth_pid") |"
# shellcheck disable=SC2046
echo "| nginx | $(SECONDS_RUN=$dur bench/cpu-per-request.sh http://127.0.0.1:18082/ $(pgrep -P "$nginx_pid")) |"
echo "| haproxy | $(SECONDS_RUN=$dur bench/cpu-per-request.sh http://127.0.0.1:18083/ "$haproxy_pid") |"
