#!/usr/bin/env bash
# Re-points citations of the protocol and design notes, which used to live outside the
# repository (PROTOCOL.md, DESIGN.md in the shared notes), to the repository's own
# docs/protocol.md and docs/design.md. Sections and P-numbers are the same in both, so only
# the file name changes.
#
# Idempotent: a second run changes nothing. Run it again after merging a branch written
# before the move, then scripts/check-citations.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Order matters: the specific phrasings first, the bare file names last.
expressions=(
    -e 's#`PROTOCOL\.md` in the shared notes#`docs/protocol.md`#g'
    -e 's#\(\.\./\)*shared/dm3/PROTOCOL\.md#docs/protocol.md#g'
    -e 's#\.\./PROTOCOL\.md#docs/protocol.md#g'
    -e 's#\.\./dm3-protocol\.md#docs/protocol.md#g'
    -e 's#PROTOCOL\.md#docs/protocol.md#g'
    -e 's#\(\.\./\)*shared/DESIGN\.md#docs/design.md#g'
    -e 's#DESIGN\.md#docs/design.md#g'
)

git ls-files -z -- '*.rs' '*.md' '*.js' '*.sh' '*.toml' '*.yaml' '*.yml' '*.py' '*.sol' \
    ':!scripts/repoint-citations.sh' ':!scripts/check-citations.sh' |
    { xargs -0 grep -lZ -e 'PROTOCOL\.md' -e 'DESIGN\.md' -e 'dm3-protocol\.md' -- || true; } |
    xargs -0 -r sed -i "${expressions[@]}"
