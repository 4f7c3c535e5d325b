#!/usr/bin/env bash
# Builds the root filesystem of the container-engine test nodes: the
# systemd test root (internal/systemdtest, BASE.tar.zst) plus Debian's
# podman and docker.io, packed as a zstd tarball.
#   internal/enginetest/build-rootfs.sh BASE.tar.zst OUT.tar.zst
# The engines are configured for a systemd-nspawn container on a host
# without CAP_SYS_RESOURCE and with cgroup v2 without controllers (what
# enginetest boots): runc (crun raises RLIMIT_MEMLOCK, which fails there),
# no pids limit (no pids controller). The units berth renders are the same
# as on any node; only this node configuration differs.
set -euo pipefail
base=${1:?usage: build-rootfs.sh BASE.tar.zst OUT.tar.zst}
out=${2:?usage: build-rootfs.sh BASE.tar.zst OUT.tar.zst}
for tool in zstd systemd-nspawn; do
  command -v "$tool" >/dev/null || { echo "build-rootfs: needs $tool (apt-get install zstd systemd-container)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir "$root"
zstd -dc "$base" | tar -C "$root" -xf -
cp /etc/resolv.conf "$root/etc/resolv.conf"
systemd-nspawn -q -D "$root" --register=no --keep-unit --pipe sh -c '
  set -e
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman docker.io runc catatonit containernetworking-plugins iptables curl ca-certificates >/dev/null
  apt-get clean
' >"$work/install.log" 2>&1 || { tail -30 "$work/install.log" >&2; exit 1; }
: > "$root/etc/resolv.conf"
mkdir -p "$root/etc/containers" "$root/etc/docker"
cat > "$root/etc/containers/containers.conf" <<'CONF'
# enginetest: runc (crun needs CAP_SYS_RESOURCE for RLIMIT_MEMLOCK), no
# pids limit (cgroup v2 without controllers in the test container).
[containers]
pids_limit = 0
[engine]
runtime = "runc"
CONF
# Docker: no iptables (the node's network namespace is the test's own;
# published ports go through docker-proxy), the test's storage is bind
# mounted on /var/lib/docker.
cat > "$root/etc/docker/daemon.json" <<'CONF'
{"iptables": false, "ip-masq": false, "log-level": "warn"}
CONF
# Nothing starts by itself: the tests start the engines they use.
systemctl --root="$root" disable docker.service docker.socket containerd.service podman-auto-update.timer podman-restart.service >/dev/null 2>&1 || true
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
mkdir -p "$(dirname "$out")"
tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -o "$out.tmp"
mv "$out.tmp" "$out"
echo "build-rootfs: $(du -h "$out" | cut -f1) in $out"
