#!/usr/bin/env bash
# Installs what the chain tests run: anvil, solc-js and ethers 5.7.2, pinned by
# tests/contracts/package-lock.json. Idempotent: does nothing when node_modules is newer
# than the lockfile. npm skips anvil's install script; its binary runs without it.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=tests/contracts
case "$(uname -m)" in
  x86_64 | amd64) ARCH=amd64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "no anvil build for $(uname -m) in @foundry-rs/anvil" >&2; exit 1 ;;
esac
ANVIL="$DIR/node_modules/@foundry-rs/anvil-linux-$ARCH/bin/anvil"

command -v node >/dev/null || { echo "node is missing: install Node.js 20 or newer" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is missing: install npm (it comes with Node.js)" >&2; exit 1; }

# -nt is false when node_modules is missing, so a fresh clone always installs.
if [ -d "$DIR/node_modules" ] && [ "$DIR/node_modules" -nt "$DIR/package-lock.json" ] && [ -x "$ANVIL" ]; then
  echo "contract test dependencies are up to date in $DIR/node_modules"
  exit 0
fi
echo "installing contract test dependencies into $DIR/node_modules (npm ci)"
npm ci --prefix "$DIR" --no-audit --no-fund
# npm ci keeps the directory's old mtime on some versions; mark the install as done.
touch "$DIR/node_modules"
[ -x "$ANVIL" ] || { echo "npm ci finished but $ANVIL is missing" >&2; exit 1; }
"$ANVIL" --version | head -n 1
