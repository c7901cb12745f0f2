#!/usr/bin/env bash
# Builds the node's container image localhost/dm3-bridge:<version> (and :latest) on this
# machine, pulling nothing from a container registry:
#   1. the Debian package (scripts/build-deb.sh, or DEB=path);
#   2. a root filesystem of Debian packages with mmdebstrap: the essential set of this
#      machine's Debian release from its own apt sources, ca-certificates, and the .deb (whose
#      postinst makes the user dm3-bridge), without manuals, locales and docs;
#   3. buildah builds deploy/container/Containerfile (FROM scratch) on it, in the Docker format
#      because the OCI format has no HEALTHCHECK.
# Everything it writes is under target/container/; it prints the image's name last.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { echo "build-container: $*" >&2; exit 1; }
for tool in mmdebstrap eatmydata buildah podman jq tar; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mmdebstrap eatmydata buildah podman jq)"
done
[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap's root mode, buildah's default storage)"

deb="${DEB:-$(scripts/build-deb.sh | tail -n 1)}"
[ -f "$deb" ] || die "no package at $deb"
deb="$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
version="$(dpkg-deb --field "$deb" Version)"

# The image is of the machine's Debian release, from the mirror its apt already uses.
. /etc/os-release
[ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ] || die "not a Debian system (/etc/os-release)"
sources=""
for file in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
    [ -f "$file" ] && grep -Eq "^(Suites:.*[[:space:]]|deb .*[[:space:]])$VERSION_CODENAME([[:space:]]|$)" "$file" &&
        { sources="$file"; break; }
done
[ -n "$sources" ] || die "no apt source for Debian $VERSION_CODENAME in /etc/apt"

out="$root/target/container"
context="$out/context"
rm -rf "$context"
mkdir -p "$context"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
echo "build-container: root filesystem (mmdebstrap, Debian $VERSION_CODENAME from $sources)" >&2
# eatmydata: dpkg's fsync after every file is most of the time of an install, and a
# half-written root filesystem is thrown away anyway. Downloaded packages are kept in target/container/apt-cache for the next build (mmdebstrap's
# sync-in/sync-out pattern); a clean clone downloads them once.
cache="$out/apt-cache"
mkdir -p "$cache"
mmdebstrap --quiet --variant=essential --include=ca-certificates --include="$deb" \
    --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
    --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $cache /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $cache" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$VERSION_CODENAME" "$context/rootfs.tar" "$sources" >&2 || die "mmdebstrap failed"

passwd_line="$(tar -xOf "$context/rootfs.tar" ./etc/passwd | grep '^dm3-bridge:')" ||
    die "the root filesystem has no user dm3-bridge (did the package's postinst run?)"
uid="$(echo "$passwd_line" | cut -d: -f3)"
gid="$(echo "$passwd_line" | cut -d: -f4)"
[ "$uid" != 0 ] || die "dm3-bridge has uid 0 in the root filesystem"
cp deploy/container/Containerfile deploy/container/entrypoint.sh deploy/container/healthcheck.sh "$context/"

image="localhost/dm3-bridge:$version"
echo "build-container: image $image (buildah)" >&2
# The image this build replaces, removed after it so that rebuilds do not pile up.
previous="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
buildah build --quiet --format docker --pull=never --layers=false \
    --build-arg NODE_UID="$uid" --build-arg NODE_GID="$gid" --build-arg VERSION="$version" \
    --tag "$image" --tag localhost/dm3-bridge:latest --file "$context/Containerfile" "$context" >&2 ||
    die "buildah build failed"
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$image")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "$image"
