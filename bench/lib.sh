# Shared set-up of the router benchmarks (sourced): a backend on
# 127.0.0.1:BACKEND and an etcd on 127.0.0.1:CLIENT (peer CLIENT+10) that
# routes Host bench.local to it. Appends the pids to the caller's pids
# array; builds into and keeps data in DIR.
#   bench_backend_and_etcd DIR BACKEND CLIENT
# shellcheck shell=bash
bench_backend_and_etcd() {
  local work=$1 backend=$2 client=$3 peer=$(($3 + 10))
  go build -o "$work/backend" ./bench/backend
  "$work/backend" -listen "127.0.0.1:$backend" & pids+=($!)
  etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" --log-level error >/dev/null 2>&1 & pids+=($!)
  local _
  for _ in $(seq 50); do ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client" put /berth/v1/instances/bench/1 "{\"addr\":\"127.0.0.1:$backend\",\"state\":\"up\"}" >/dev/null
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client" put /berth/v1/domains/bench.local '{"app":"bench"}' >/dev/null
}
