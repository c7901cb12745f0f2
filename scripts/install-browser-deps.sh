#!/usr/bin/env bash
# Install what the admin console's browser test (tests/admin_console.rs) needs: Chromium from
# the Debian packages (/usr/bin/chromium) and playwright-core from npm, pinned by
# tests/browser/package-lock.json, into tests/browser/node_modules. playwright-core drives the
# system's Chromium; it never downloads a browser of its own (no `playwright install`).
#
# Idempotent: does nothing when both are there and node_modules was installed from the current
# lockfile (a stamp holding the lockfile's sha256, written after a successful `npm ci`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tests/browser"
lock="$dir/package-lock.json"
stamp="$dir/node_modules/.dm3-lockfile.sha256"

die() {
    echo "install-browser-deps: $*" >&2
    exit 1
}

if [ ! -x /usr/bin/chromium ]; then
    command -v apt-get >/dev/null 2>&1 || die "/usr/bin/chromium is missing and there is no apt-get: install Chromium"
    [ "$(id -u)" = 0 ] || die "/usr/bin/chromium is missing: run 'apt-get install -y chromium' as root"
    echo "install-browser-deps: apt-get install chromium"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || die "apt-get install chromium failed"
fi
/usr/bin/chromium --version >/dev/null 2>&1 || die "/usr/bin/chromium does not run"

command -v node >/dev/null 2>&1 || die "node is not installed (need Node.js >= 18)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
[ -f "$lock" ] || die "missing $lock"

want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "install-browser-deps: chromium and tests/browser/node_modules are up to date"
    exit 0
fi
echo "install-browser-deps: npm ci in tests/browser/ (lockfile changed or node_modules missing)"
npm ci --prefix "$dir" --no-audit --no-fund || die "npm ci failed in $dir"
(cd "$dir" && node -e "require('playwright-core')") || die "playwright-core does not load"
echo "$want" >"$stamp"
echo "install-browser-deps: done"
