#!/usr/bin/env bash
# Builds the root filesystem of the systemd test containers (Debian
# bookworm, minbase + systemd + dbus + iproute2 + openssh) and packs it as a zstd
# tarball, the cache the tests extract in well under a second.
#   internal/systemdtest/build-rootfs.sh OUT.tar.zst
set -euo pipefail
out=${1:?usage: build-rootfs.sh OUT.tar.zst}
mirror=${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
for tool in debootstrap zstd systemd-nspawn; do
  command -v "$tool" >/dev/null || { echo "build-rootfs: needs $tool (apt-get install debootstrap zstd systemd-container)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,procps,openssh-server,openssh-client bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
# Several containers share this root: each gets its machine id at boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/hostname"
ln -s /etc/machine-id "$root/var/lib/dbus/machine-id"
# sshd is installed (berth fleet status and journal reach other nodes
# over ssh) but not enabled: containers on the host's network would
# listen on its port 22. Tests in their own network namespace start
# ssh.service. The host keys are generated once here, so every container
# has the same ones: fine for tests.
systemctl --root="$root" disable ssh.service >/dev/null 2>&1
# No getty or other noise in the containers.
rm -f "$root"/etc/systemd/system/getty.target.wants/* || true
systemctl --root="$root" mask systemd-resolved.service systemd-networkd.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
mkdir -p "$(dirname "$out")"
tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -o "$out.tmp"
mv "$out.tmp" "$out"
echo "build-rootfs: $(du -h "$out" | cut -f1) in $out"
