#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need when it
# is missing (the reference npm libraries, PostgreSQL, HAProxy, Synapse, Chromium), then runs the format and
# lint gates and every test. Nothing is skipped silently: a missing component is
# installed or the run fails with a message that says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
for tool in curl jq python3; do
    # deploy/dev/run.sh (run by tests/deploy_dev.rs) and the install scripts use them.
    command -v "$tool" >/dev/null || { echo "$tool is missing: install it (e.g. apt-get install $tool)" >&2; exit 1; }
done

step "reference DM3 libraries (npm, pinned by interop/package-lock.json)"
scripts/install-node-deps.sh

step "chain-test tools (anvil, solc-js, ethers; pinned by tests/contracts/package-lock.json)"
scripts/install-contract-deps.sh
node tests/contracts/compile.js --check

step "PostgreSQL server binaries (the tests start a throwaway cluster)"
scripts/install-postgres.sh

step "HAProxy, in front of the node's replicas in tests/replicas.rs (Debian package haproxy)"
scripts/install-haproxy.sh

step "libfaketime, one replica's clock 30 s ahead in tests/replica_clock.rs (Debian package faketime)"
scripts/install-faketime.sh

step "Synapse, the Matrix homeserver of the connector tests (venv cached in .cache/synapse-venv)"
scripts/install-synapse.sh

step "headless Chromium (Debian) and playwright-core (pinned by tests/browser/package-lock.json) for the console test"
scripts/install-browser-deps.sh

step "format and lint"
cargo fmt --all -- --check
scripts/check-citations.sh
scripts/module-circles.sh   # no module uses one that uses it back, by module and by top-level module (ARCHITECTURE.md)
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked "$@"

# The packages as operators get them (deploy/README.md): the .deb installed and purged, the
# container image built from Debian packages and run, the compose file validated. Each script
# needs root and installs its own tools; their times are printed because they add to CI's.
step "Debian package (scripts/test-packages.sh)"
started=$SECONDS
scripts/test-packages.sh
echo "test-packages.sh took $((SECONDS - started)) s"

step "container image and compose stack (scripts/test-container.sh)"
started=$SECONDS
scripts/test-container.sh
echo "test-container.sh took $((SECONDS - started)) s"
