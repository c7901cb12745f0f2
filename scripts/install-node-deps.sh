#!/usr/bin/env bash
# Install the reference DM3 npm libraries used by the interop tests
# (interop/package-lock.json) into interop/node_modules.
#
# Idempotent: does nothing when node_modules was installed from the current
# lockfile. The check is a stamp holding the lockfile's sha256, written after
# a successful `npm ci`; a changed lockfile, a missing or half-finished
# node_modules all trigger a clean reinstall.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/interop"
lock="$dir/package-lock.json"
stamp="$dir/node_modules/.dm3-lockfile.sha256"

die() {
    echo "install-node-deps: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || die "node is not installed (need Node.js >= 18; e.g. 'apt-get install nodejs npm')"
command -v npm >/dev/null 2>&1 || die "npm is not installed (e.g. 'apt-get install npm')"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node $(node --version) is too old; need >= 18"
[ -f "$lock" ] || die "missing $lock"

want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "install-node-deps: interop/node_modules is up to date"
    exit 0
fi

echo "install-node-deps: npm ci in interop/ (lockfile changed or node_modules missing)"
# npm ci removes node_modules first, so a failed earlier run leaves no stamp
# and is retried from scratch next time.
npm ci --prefix "$dir" --no-audit --no-fund || die "npm ci failed in $dir"
# The libraries load lazily; fail here, not in the middle of a test run.
(cd "$dir" && node -e "require('@dm3-org/dm3-lib-crypto'); require('@dm3-org/dm3-lib-messaging'); require('@dm3-org/dm3-lib-delivery'); require('@dm3-org/dm3-lib-profile'); require('@dm3-org/dm3-lib-shared')") \
    || die "the installed libraries do not load"
echo "$want" >"$stamp"
echo "install-node-deps: done"
