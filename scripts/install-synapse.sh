#!/usr/bin/env bash
# Installs the real Matrix homeserver (Synapse) that the Matrix connector tests run against,
# into a venv cached under the repository (.cache/synapse-venv, git-ignored).
#
# Idempotent: does nothing when the venv holds the pinned version and it imports. A
# half-finished or outdated venv is removed and rebuilt. The test harness
# (tests/support/synapse.rs) runs this script itself when the venv is missing, so a plain
# `cargo test` works from a fresh clone too; scripts/test.sh runs it up front so the install
# time is not charged to a test.
#
# Override the version with DM3_SYNAPSE_VERSION, the venv with DM3_SYNAPSE_VENV.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${DM3_SYNAPSE_VERSION:-1.163.2}"
venv="${DM3_SYNAPSE_VENV:-$root/.cache/synapse-venv}"
stamp="$venv/.dm3-synapse-version"

die() {
    echo "install-synapse: $*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 || die "python3 is not installed (need Python >= 3.10; e.g. 'apt-get install python3 python3-venv')"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "python3 $(python3 --version 2>&1) is too old; Synapse needs >= 3.10"

# Tests run in parallel and each may call this script; one install at a time.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] \
    && "$venv/bin/python" -c 'import synapse' >/dev/null 2>&1 \
    && [ -x "$venv/bin/register_new_matrix_user" ]; then
    echo "install-synapse: Synapse $version is installed in $venv"
    exit 0
fi

echo "install-synapse: installing matrix-synapse $version into $venv"
rm -rf "$venv"
python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
"$venv/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$version" \
    || die "pip install matrix-synapse==$version failed"
"$venv/bin/python" -c 'import synapse' || die "the installed Synapse does not import"
[ -x "$venv/bin/register_new_matrix_user" ] || die "register_new_matrix_user is missing from $venv/bin"
echo "$version" >"$stamp"
echo "install-synapse: done"
