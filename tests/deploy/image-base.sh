#!/bin/sh
# Makes the Dockerfile's base images without a registry: a Debian 12 root file
# system from debootstrap (minbase), from the Debian archive apt already uses,
# trimmed of apt's caches and documentation, imported into podman under the
# names the Dockerfile's FROM lines give (debian:12 and debian:12-slim).
#   tests/deploy/image-base.sh WORKDIR
# Does nothing when both images are there already.
set -eu
work=$1
if podman image exists docker.io/library/debian:12 &&
    podman image exists docker.io/library/debian:12-slim; then
    exit 0
fi
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*debian\) bookworm .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
rootfs=$work/rootfs
rm -rf "$rootfs"
mkdir -p "$work"
if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    cat "$work/debootstrap.log" >&2
    exit 1
fi
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/log/*.log
tar -C "$rootfs" -c . | podman import --quiet - docker.io/library/debian:12 >/dev/null
podman tag docker.io/library/debian:12 docker.io/library/debian:12-slim
rm -rf "$rootfs"
