#!/usr/bin/env bash
# HTTPS through berth's router and through nginx with the same certificate
# (both terminate TLS and forward plain HTTP to the same keep-alive backend),
# against the backend serving HTTPS itself (direct), all in one run: with
# keep-alive connections, and with a new connection (a TLS handshake) per
# request. wrk resumes its TLS sessions (OpenSSL keeps the last session of
# each connection): a probe after the rounds counts the handshakes each
# proxy resumed. Each run also reports the CPU time per request of the
# whole chain (wrk, the proxy, the backend), which a shared machine's
# noise moves far less than req/s. Needs: wrk nginx etcd openssl.
#   bench/router-https.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-8}
rounds=${2:-3}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for tool in wrk nginx etcd openssl; do
  command -v "$tool" >/dev/null || { echo "bench/router-https.sh needs $tool (apt-get install wrk nginx-light etcd-server)" >&2; exit 1; }
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
go build -o "$work/berth" ./cmd/berth
"$work/berth" pki init "$work/pki" >/dev/null
"$work/berth" pki issue "$work/pki" --name bench.local --role server --dns bench.local --ip 127.0.0.1 >/dev/null
cert=$work/pki/bench.local.pem key=$work/pki/bench.local-key.pem
bench_backend_and_etcd "$work" 18281 23990
backend_pid=${pids[-2]}
"$work/backend" -listen 127.0.0.1:18284 -tls-cert "$cert" -tls-key "$key" & pids+=($!)
direct_pid=$!
GOMAXPROCS=2 "$work/berth" router --etcd-endpoints 127.0.0.1:23990 --listen 127.0.0.1:18280 --listen-tls 127.0.0.1:18282 \
  --tls-cert "$cert" --tls-key "$key" --admin 127.0.0.1:18285 --log-level error & pids+=($!)
berth_pid=$!

cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server 127.0.0.1:18281; keepalive 128; }
  ssl_session_cache shared:SSL:10m;
  # The protocol and cipher Go's crypto/tls picks for wrk (TLS 1.3,
  # AES-128-GCM): nginx 1.22's default stops at TLS 1.2, whose resumed
  # handshakes skip the key exchange that TLS 1.3's must do, and OpenSSL
  # follows the client's preference for AES-256 unless told otherwise.
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_prefer_server_ciphers on;
  ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
  server {
    listen 127.0.0.1:18283 ssl http2;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    location / {
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$host;
    }
  }
  # The same server, logging whether each handshake resumed, for the
  # resumption probe only (the measured one logs nothing).
  log_format reused '\$ssl_session_reused';
  server {
    listen 127.0.0.1:18286 ssl http2;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    access_log $work/nginx-reused.log reused;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
nginx_pid=$!

for port in 18282 18283 18284; do
  for _ in $(seq 100); do curl -sfk -H 'Host: bench.local' "https://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -sf --cacert "$work/pki/ca.pem" --resolve "bench.local:$port:127.0.0.1" "https://bench.local:$port/" >/dev/null ||
    { echo "no HTTPS answer on port $port" >&2; exit 1; }
done
# Same protocol and cipher on every side, or the comparison is not fair.
negotiated() { openssl s_client -connect "127.0.0.1:$1" -servername bench.local </dev/null 2>/dev/null | awk '/Cipher is/ {print $2, $5}'; }
for port in 18282 18283 18284; do
  got=$(negotiated "$port")
  [ "$got" = "$(negotiated 18284)" ] || { echo "port $port negotiates $got, direct $(negotiated 18284)" >&2; exit 1; }
done
echo "All three negotiate $(negotiated 18284) with wrk's OpenSSL." >&2

# cpu_ticks PID...: user + system clock ticks of the processes' threads so far.
cpu_ticks() {
  local t=0 s f
  for p in "$@"; do
    for s in /proc/"$p"/task/*/stat; do
      read -r -a f < <(cut -d' ' -f14,15 "$s" 2>/dev/null) && t=$((t + f[0] + f[1]))
    done
  done
  echo "$t"
}
# chain NAME: the processes serving target NAME (proxy and backend).
chain() {
  case $1 in
  direct) echo "$direct_pid" ;;
  berth) echo "$berth_pid $backend_pid" ;;
  nginx) echo "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ') $backend_pid" ;;
  esac
}
# run NAME PORT CONNS [WRK ARGS...]: prints "req/s chain-µs-per-request"
# (CPU of wrk, the proxy and the backend over the run, per request).
run() {
  local name=$1 port=$2 conns=$3 t0 t1 wrkcpu
  shift 3
  # shellcheck disable=SC2046
  t0=$(cpu_ticks $(chain "$name"))
  TIMEFORMAT='%U %S'
  wrkcpu=$({ time wrk -t2 -c"$conns" -d"${dur}s" -H 'Host: bench.local' "$@" "https://127.0.0.1:$port/" >"$work/wrk.out"; } 2>&1)
  # shellcheck disable=SC2046
  t1=$(cpu_ticks $(chain "$name"))
  awk -v rps="$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")" -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    -v wrk="$wrkcpu" -v secs="$dur" 'BEGIN { split(wrk, w, " "); printf "%s %.1f\n", rps, (ticks / hz + w[1] + w[2]) * 1e6 / (rps * secs) }'
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.2f", m}'; }
targets=(direct:18284 berth:18282 nginx:18283)
for mode in keepalive handshake; do
  args=(); conns=64
  if [ "$mode" = handshake ]; then args=(-H 'Connection: close'); conns=16; fi
  declare -A rates=() ratios=() costs=()
  for ((round = 0; round < rounds; round++)); do
    declare -A R=() C=()
    for ((i = 0; i < ${#targets[@]}; i++)); do
      target=${targets[$(((i + round) % ${#targets[@]}))]}
      read -r rate cost < <(run "${target%%:*}" "${target##*:}" "$conns" "${args[@]}")
      R[${target%%:*}]=$rate C[${target%%:*}]=$cost
    done
    for name in direct berth nginx; do
      rates[$name]+="${R[$name]} " costs[$name]+="${C[$name]} "
      ratios[$name]+="$(awk -v a="${R[$name]}" -v b="${R[direct]}" 'BEGIN{printf "%.3f", a/b}') "
    done
    echo "$mode round $((round + 1)): req/s direct ${R[direct]}, berth ${R[berth]}, nginx ${R[nginx]};" \
      "chain CPU µs/req direct ${C[direct]}, berth ${C[berth]}, nginx ${C[nginx]}" >&2
  done
  echo "| $mode (wrk -t2 -c$conns -d${dur}s${args[*]:+ ${args[*]}}, $rounds rounds) | median req/s | median ratio to direct | median chain CPU µs/req (wrk + proxy + backend) |"
  echo "|---|---|---|---|"
  for name in direct berth nginx; do
    echo "| $name | $(median <<<"${rates[$name]}") | $(median <<<"${ratios[$name]}") | $(median <<<"${costs[$name]}") |"
  done
  echo
done

# Resumption probe: new connections for 2 s against berth (its handshake
# counter) and nginx's logging twin ($ssl_session_reused).
handshakes() { curl -s http://127.0.0.1:18285/metrics | awk -v r="$1" '$1 ~ "^berth_router_tls_handshakes_total" && $1 ~ r {n += $2} END {print n + 0}'; }
r0=$(handshakes resumed) a0=$(handshakes '')
wrk -t1 -c4 -d2s -H 'Host: bench.local' -H 'Connection: close' https://127.0.0.1:18282/ >/dev/null
r1=$(handshakes resumed) a1=$(handshakes '')
wrk -t1 -c4 -d2s -H 'Host: bench.local' -H 'Connection: close' https://127.0.0.1:18286/ >/dev/null
echo "Resumed TLS handshakes (2 s wrk probe, Connection: close): berth $((r1 - r0)) of $((a1 - a0)), nginx $(grep -c '^r' "$work/nginx-reused.log" || true) of $(wc -l <"$work/nginx-reused.log")"

