#!/usr/bin/env bash
# alice, the DM3 user of the dev setup (deploy/dev/run.sh), with the reference DM3 libraries
# as her client (interop/ds-client.js). Her delivery service is the bridge node itself.
#
#   deploy/dev/alice.sh read                 # the messages stored for her, opened: "from: text"
#   deploy/dev/alice.sh send NAME TEXT       # sends TEXT to the DM3 name NAME
#   deploy/dev/alice.sh name                 # her DM3 name
#
# NAME is usually a Matrix user's DM3 identity: `dm3-bridge --config … identity list` shows it
# (run.sh prints the exact command). Recipients are looked up in the bridge's own records (its
# admin API), as the dev setup has no chain for ENS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEV_DIR="${DEV_DIR:-$root/.cache/dev}"
state="$DEV_DIR/alice.json"
[ -f "$state" ] || { echo "alice.sh: no $state: start deploy/dev/run.sh first" >&2; exit 2; }
url="$(jq -r .bridgeUrl "$state")"
name="$(jq -r .ensName "$state")"

client() { node "$root/interop/ds-client.js" "$1"; }


case "${1:-}" in
name)
    echo "$name"
    ;;
read)
    args="$(jq -c --arg url "$url" '{url: $url, ensName: .ensName, token: .token,
        encryptionKeyPair: .keys.encryption, dsPublicSigningKey: .dsProfile.publicSigningKey}' "$state")"
    answer="$(client incoming <<<"$args")"
    [ "$(jq -r .status <<<"$answer")" = 200 ] || { echo "alice.sh: incoming failed: $answer" >&2; exit 1; }
    jq -r '.envelopes | reverse | .[] | "\(.from): \(.text)"' <<<"$answer"
    ;;
send)
    to="${2:?usage: alice.sh send NAME TEXT}"
    text="${3:?usage: alice.sh send NAME TEXT}"
    token="$(jq -r .adminToken "$state")"
    profile="$(curl -fsS -H "Authorization: Bearer $token" "$url/admin/identities/$to/profile")" \
        || { echo "alice.sh: the bridge has no identity $to (see dm3-bridge identity list)" >&2; exit 1; }
    args="$(jq -c --arg url "$url" --arg to "$to" --arg text "$text" --argjson recipient "$profile" '{
        url: $url, text: $text, format: "current",
        from: {ensName: .ensName, signingPrivateKey: .keys.signing.privateKey},
        to: {ensName: $to, publicEncryptionKey: $recipient.profile.profile.publicEncryptionKey},
        dsPublicEncryptionKey: .dsProfile.publicEncryptionKey}' "$state")"
    answer="$(client submit <<<"$args")"
    [ "$(jq -r .status <<<"$answer")" = 200 ] || { echo "alice.sh: submit failed: $(jq -c .body <<<"$answer")" >&2; exit 1; }
    echo "sent $(jq -r .messageHash <<<"$answer")"
    ;;
*)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
