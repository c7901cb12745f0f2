#!/usr/bin/env bash
# Builds the Debian package of the node: target/debian/dm3-bridge_<version>_<arch>.deb.
#
#   scripts/build-deb.sh            # builds the release binary first (cargo build --release)
#   DEB_BIN=path scripts/build-deb.sh   # packages that binary instead
#
# Prints the path of the .deb on its last line. The package is assembled by hand and built
# with dpkg-deb, not cargo-deb: everything in it is a file of deploy/debian/ that can be read
# as it is installed (the unit, the maintainer scripts, the control file), the tools are
# dpkg's own (dpkg-deb, dpkg-shlibdeps, on every Debian machine), and there is no extra
# crate to compile in CI. deploy/README.md lists what the package holds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() { echo "build-deb: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps strip jq cargo; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev binutils jq)"
done

out="$root/target/debian"
stage="$out/stage"
src="$root/deploy/debian"

if [ -n "${DEB_BIN:-}" ]; then
    bin="$DEB_BIN"
else
    cargo build --release --locked -p dm3-bridge --bin dm3-bridge >&2
    bin="$root/target/release/dm3-bridge"
fi
[ -x "$bin" ] || die "no binary at $bin"

version="$(cargo metadata --no-deps --locked --format-version 1 |
    jq -r '.packages[] | select(.name == "dm3-bridge") | .version')"
[ -n "$version" ] || die "cannot read the version of dm3-bridge from Cargo.toml"
# Debian revision 1: the package is made from the upstream version as it is (a version without
# a revision would mark it as a Debian-native package).
version="$version-1"
arch="$(dpkg --print-architecture)"
# Reproducible: file times and the changelog's date come from the last commit, not the clock
# (dpkg-deb clamps every mtime to SOURCE_DATE_EPOCH).
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

rm -rf "$stage" "$out"/dm3-bridge_*.deb
mkdir -p "$stage/DEBIAN"
install -D -m 0755 "$bin" "$stage/usr/bin/dm3-bridge"
strip --strip-unneeded "$stage/usr/bin/dm3-bridge"
install -D -m 0644 "$src/dm3-bridge.service" "$stage/usr/lib/systemd/system/dm3-bridge.service"
# Secrets may go in here, so only root reads it (systemd reads it as root for the service).
install -D -m 0600 "$src/dm3-bridge.default" "$stage/etc/default/dm3-bridge"
# Owned root:dm3-bridge 0750 once postinst has made the group.
install -d -m 0755 "$stage/etc/dm3-bridge"
doc="$stage/usr/share/doc/dm3-bridge"
install -D -m 0644 "$src/copyright" "$doc/copyright"
install -m 0644 -t "$doc" deploy/README.md
{
    printf 'dm3-bridge (%s) unstable; urgency=medium\n\n' "$version"
    printf '  * Built from the dm3-bridge repository, commit %s.\n\n' "$commit"
    printf ' -- dm3-bridge developers <dm3-bridge@users.noreply.github.com>  %s\n' \
        "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"

for script in postinst prerm postrm; do
    install -m 0755 "$src/$script" "$stage/DEBIAN/$script"
done
echo /etc/default/dm3-bridge >"$stage/DEBIAN/conffiles"

# The library packages the binary links against, as dpkg-shlibdeps finds them (it wants a
# debian/control beside it, so it runs in a scratch directory).
shlib_dir="$out/shlibdeps"
rm -rf "$shlib_dir"
mkdir -p "$shlib_dir/debian"
printf 'Source: dm3-bridge\n\nPackage: dm3-bridge\nArchitecture: any\n' >"$shlib_dir/debian/control"
shlibs="$(cd "$shlib_dir" && dpkg-shlibdeps -O "$stage/usr/bin/dm3-bridge" | sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependencies of the binary"

installed_size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    -e "s/@SHLIBS@/$shlibs/" "$src/control" >"$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

deb="$out/dm3-bridge_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
