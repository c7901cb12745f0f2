#!/usr/bin/env bash
# A local Matrix homeserver (Synapse) and the bridge together, to try DM3 ⇄ Matrix on one machine.
#
#   deploy/dev/run.sh            # starts both, prints what to do; ctrl-c stops both
#   deploy/dev/run.sh --check    # starts both, does one round trip Matrix → DM3 → Matrix, stops
#
# What it sets up (under $DEV_DIR, default .cache/dev, kept between runs; delete it to start over):
# - Synapse from scripts/install-synapse.sh's venv, server name `localhost`, on 127.0.0.1:$SYNAPSE_PORT
#   (default 8008), SQLite, registration by shared secret only, the bridge's registration.yaml;
# - the bridge (`dm3-bridge init`, `generate-registration`), SQLite, on 127.0.0.1:$BRIDGE_PORT
#   (default 8090), its virtual identities under bridge.dev.eth;
# - alice.dev.eth, a DM3 user whose delivery service is the bridge node, with the reference DM3
#   libraries as her client (deploy/dev/alice.sh).
# There is no chain: the names alice.dev.eth and ds.bridge.dev.eth resolve from [[names.static]]
# in the bridge's config (docs/configuration.md), and alice.sh looks Matrix users' DM3 names up
# in the bridge's admin API instead of ENS.
#
# DEV_BRIDGE_BIN runs that binary instead of building target/release/dm3-bridge. --check uses
# free ports and a fresh DEV_DIR unless they are given.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

check=false
case "${1:-}" in
--check) check=true ;;
"") ;;
*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if $check; then
    DEV_DIR="${DEV_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/dm3-dev-check.XXXXXX")}"
    SYNAPSE_PORT="${SYNAPSE_PORT:-$(free_port)}"
    BRIDGE_PORT="${BRIDGE_PORT:-$(free_port)}"
fi
DEV_DIR="${DEV_DIR:-$root/.cache/dev}"
SYNAPSE_PORT="${SYNAPSE_PORT:-8008}"
BRIDGE_PORT="${BRIDGE_PORT:-8090}"
export DEV_DIR
mkdir -p "$DEV_DIR"
DEV_DIR="$(cd "$DEV_DIR" && pwd)"

PARENT=bridge.dev.eth
NODE_NAME=ds.bridge.dev.eth
ALICE=alice.dev.eth
SERVER_NAME=localhost
hs_url="http://127.0.0.1:$SYNAPSE_PORT"
bridge_url="http://127.0.0.1:$BRIDGE_PORT"
bridge_dir="$DEV_DIR/bridge"
synapse_dir="$DEV_DIR/synapse"
config="$bridge_dir/config.toml"

say() { echo "dev: $*" >&2; }
die() { echo "dev: $*" >&2; exit 1; }
for tool in curl jq node python3; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

# --- what runs -------------------------------------------------------------------------------
if [ -n "${DEV_BRIDGE_BIN:-}" ]; then
    BIN="$DEV_BRIDGE_BIN"
else
    cargo build --release --locked --bin dm3-bridge
    BIN="$root/target/release/dm3-bridge"
fi
bash scripts/install-synapse.sh >&2
bash scripts/install-node-deps.sh >&2
venv="${DM3_SYNAPSE_VENV:-$root/.cache/synapse-venv}"
# The test environment's own DM3_BRIDGE_* settings are not this node's.
for var in $(compgen -e | grep '^DM3_BRIDGE_' || true); do
    unset "$var"
done

# --- first run: alice, the bridge's data directory, Synapse's config -------------------------
if [ ! -f "$config" ]; then
    say "setting up $DEV_DIR"
    "$BIN" init --data-dir "$bridge_dir" --name "$NODE_NAME" --public-url "$bridge_url" \
        --listen "127.0.0.1:$BRIDGE_PORT" >/dev/null
    "$BIN" --config "$config" generate-registration --homeserver-url "$hs_url" \
        --server-name "$SERVER_NAME" --bridge-url "$bridge_url" >/dev/null
    admin_token="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
    # alice: a wallet, keys and a profile signed by the wallet, made by the reference libraries.
    node interop/ds-client.js new_user <<<"{\"deliveryServices\": [\"$NODE_NAME\"]}" >"$DEV_DIR/alice.new.json"
    ds_profile="$("$BIN" --config "$config" profile --json)"
    jq --arg url "$bridge_url" --arg name "$ALICE" --arg admin "$admin_token" --argjson ds "$ds_profile" \
        '{ensName: $name, address, keys, signedUserProfile, bridgeUrl: $url, adminToken: $admin,
          dsProfile: $ds.profile}' "$DEV_DIR/alice.new.json" >"$DEV_DIR/alice.json"
    rm "$DEV_DIR/alice.new.json"
    chmod 600 "$DEV_DIR/alice.json"
    # The bridge's settings: identities, the admin token, and the names there is no chain for.
    sed -i "s/^parent = \"\"/parent = \"$PARENT\"/; s/^# token = \"\.\.\.\"/token = \"$admin_token\"/" "$config"
    grep -q "^parent = \"$PARENT\"" "$config" && grep -q "^token = \"$admin_token\"" "$config" \
        || die "the config written by init has no 'parent = \"\"' or '# token = \"...\"' line to fill in"
    jq -r --arg ds "$(jq -r .textRecord <<<"$ds_profile")" --arg node "$NODE_NAME" '
        "\n# deploy/dev: no chain here, so the two names the bridge must resolve are listed.",
        "[[names.static]]", "name = \(.ensName | tojson)", "address = \(.address | tojson)",
        "profile = \("data:application/json," + (.signedUserProfile | tojson) | tojson)",
        "", "[[names.static]]", "name = \($node | tojson)", "delivery_service = \($ds | tojson)"
    ' "$DEV_DIR/alice.json" >>"$config"
    "$BIN" --config "$config" check >/dev/null || die "the bridge's config does not check: $BIN --config $config check"

    mkdir -p "$synapse_dir"
    python3 - "$synapse_dir" "$SYNAPSE_PORT" "$bridge_dir/registration.yaml" "$SERVER_NAME" <<'EOF'
import base64, os, secrets, sys
d, port, registration, server = sys.argv[1:]
with open(f"{d}/signing.key", "w") as f:
    f.write("ed25519 dev " + base64.b64encode(os.urandom(32)).decode().rstrip("=") + "\n")
many = "{per_second: 100, burst_count: 200}"
with open(f"{d}/homeserver.yaml", "w") as f:
    f.write(f"""# Written by deploy/dev/run.sh: a homeserver for trying the bridge, on 127.0.0.1 only.
server_name: "{server}"
pid_file: "{d}/homeserver.pid"
public_baseurl: "http://127.0.0.1:{port}/"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
media_store_path: "{d}/media_store"
signing_key_path: "{d}/signing.key"
report_stats: false
# Users are made with register_new_matrix_user, which uses this secret.
registration_shared_secret: "{secrets.token_hex(16)}"
enable_registration: false
macaroon_secret_key: "{secrets.token_hex(16)}"
form_secret: "{secrets.token_hex(16)}"
trusted_key_servers: []
suppress_key_server_warning: true
presence:
  enabled: false
url_preview_enabled: false
app_service_config_files: ["{registration}"]
# What the bridge's ghost devices need in encrypted rooms ([matrix] encryption, default on):
# device lists and one-time-key counts in appservice transactions (MSC3202) and to-device
# events pushed to the appservice (MSC2409/MSC4203). See docs/engine.md, "Encrypted rooms: plan".
experimental_features:
  msc3202_transaction_extensions: true
  msc2409_to_device_messages_enabled: true
rc_message: {many}
rc_login:
  address: {many}
  account: {many}
  failed_attempts: {many}
""")
EOF
fi
# The ports of an earlier run are in the files; a run with other ports would not work.
grep -q "^listen = \"127.0.0.1:$BRIDGE_PORT\"" "$config" \
    || die "$DEV_DIR was set up for other ports; use those (BRIDGE_PORT, SYNAPSE_PORT) or delete it"

# --- start both; stop both on exit ---------------------------------------------------------
synapse_pid=""
bridge_pid=""
stop_all() {
    trap - EXIT INT TERM
    for pid in $bridge_pid $synapse_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $bridge_pid $synapse_pid; do
        wait "$pid" 2>/dev/null || true
    done
    say "stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # what, seconds, command...
    local what="$1" limit="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what: not within $limit s"
        sleep 0.3
    done
}
alive() { kill -0 "$1" 2>/dev/null || die "$2 exited; see $3"; }

"$venv/bin/python" -m synapse.app.homeserver -c "$synapse_dir/homeserver.yaml" \
    >>"$synapse_dir/homeserver.log" 2>&1 &
synapse_pid=$!
synapse_ready() { alive "$synapse_pid" Synapse "$synapse_dir/homeserver.log"; curl -fsS "$hs_url/_matrix/client/versions" >/dev/null 2>&1; }
wait_for "Synapse at $hs_url" 90 synapse_ready
say "Synapse serves at $hs_url (log: $synapse_dir/homeserver.log)"

touch "$DEV_DIR/bridge.log"
starts_before="$(grep -c 'relay listening' "$DEV_DIR/bridge.log" || true)"
"$BIN" --config "$config" run >>"$DEV_DIR/bridge.log" 2>&1 &
bridge_pid=$!
bridge_ready() {
    alive "$bridge_pid" "the bridge" "$DEV_DIR/bridge.log"
    [ "$(grep -c 'relay listening' "$DEV_DIR/bridge.log" || true)" -gt "$starts_before" ]
}
wait_for "the bridge at $bridge_url" 60 bridge_ready
say "the bridge serves at $bridge_url (log: $DEV_DIR/bridge.log)"

# alice has an account at her delivery service (the bridge node), and a session token.
state="$DEV_DIR/alice.json"
registered="$(jq -c --arg url "$bridge_url" '{url: $url, ensName, signedUserProfile}' "$state" \
    | node interop/ds-client.js register)"
token="$(jq -r '.token // empty' <<<"$registered")"
if [ -z "$token" ]; then # registered on an earlier run: log in
    token="$(jq -c --arg url "$bridge_url" '{url: $url, ensName, signingPrivateKey: .keys.signing.privateKey}' "$state" \
        | node interop/ds-client.js login | jq -r '.token // empty')"
fi
[ -n "$token" ] || die "alice could not register or log in at $bridge_url: $registered"
jq --arg token "$token" '.token = $token' "$state" >"$state.tmp" && mv "$state.tmp" "$state"

ghost="@_dm3_$ALICE:$SERVER_NAME"

# --- --check: one round trip, then stop ------------------------------------------------------
if $check; then
    password="$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
    "$venv/bin/register_new_matrix_user" -c "$synapse_dir/homeserver.yaml" -u bob -p "$password" \
        --no-admin "$hs_url" >/dev/null
    login="$(curl -fsS -X POST "$hs_url/_matrix/client/v3/login" -H 'Content-Type: application/json' \
        -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"bob\"},\"password\":\"$password\"}")"
    bob_token="$(jq -r .access_token <<<"$login")"
    bob_id="$(jq -r .user_id <<<"$login")"
    matrix() { # method path [body]
        curl -fsS -X "$1" "$hs_url$2" -H "Authorization: Bearer $bob_token" -H 'Content-Type: application/json' \
            ${3:+-d "$3"}
    }
    room="$(matrix POST /_matrix/client/v3/createRoom \
        "{\"is_direct\":true,\"preset\":\"trusted_private_chat\",\"invite\":[\"$ghost\"]}" | jq -r .room_id)"
    room_path="$(jq -rn --arg r "$room" '$r | @uri')"
    ghost_joined() { matrix GET "/_matrix/client/v3/rooms/$room_path/joined_members" | jq -e --arg g "$ghost" '.joined[$g]' >/dev/null; }
    wait_for "alice's ghost to join bob's DM" 60 ghost_joined
    matrix PUT "/_matrix/client/v3/rooms/$room_path/send/m.room.message/dev-check-1" \
        '{"msgtype":"m.text","body":"hello alice, from matrix"}' >/dev/null
    alice_has() { deploy/dev/alice.sh read | grep -q ": hello alice, from matrix$"; }
    wait_for "bob's message to reach alice" 60 alice_has
    bob_name="$(curl -fsS -H "Authorization: Bearer $(jq -r .adminToken "$state")" \
        "$bridge_url/admin/identities/matrix:$bob_id" | jq -r .name)"
    say "Matrix → DM3: alice read bob's message from $bob_name"
    deploy/dev/alice.sh send "$bob_name" "hello bob, from dm3" >/dev/null
    bob_has() {
        matrix GET "/_matrix/client/v3/rooms/$room_path/messages?dir=b&limit=20" \
            | jq -e --arg g "$ghost" '.chunk[] | select(.sender == $g and .content.body == "hello bob, from dm3")' >/dev/null
    }
    wait_for "alice's answer to reach bob" 60 bob_has
    say "DM3 → Matrix: bob read alice's answer from $ghost"
    echo "dev check: OK"
    exit 0
fi

# --- interactive: say what to do, then wait for ctrl-c ---------------------------------------
cat <<EOF

The bridge and a homeserver are running. To try a DM3 ⇄ Matrix round trip:

1. Make yourself a Matrix user on the local homeserver (server name "$SERVER_NAME"):
     $venv/bin/register_new_matrix_user -c $synapse_dir/homeserver.yaml -u bob -p SOME-PASSWORD --no-admin $hs_url
2. Log in with any Matrix client at $hs_url (e.g. Element desktop, "Edit" the homeserver),
   and start a direct chat with the DM3 user alice.dev.eth:
     $ghost
   The bridge joins it for her. Write something.
3. alice is a DM3 user with the reference DM3 libraries as her client; her delivery
   service is this bridge node. Read what she got:
     deploy/dev/alice.sh read
4. Your DM3 name (the bridge gave you a virtual identity):
     $BIN --config $config identity list
   and alice answers you there:
     deploy/dev/alice.sh send <your DM3 name> "hello from DM3"

Logs: $DEV_DIR/bridge.log, $synapse_dir/homeserver.log. Ctrl-C stops both.
EOF
while kill -0 "$synapse_pid" 2>/dev/null && kill -0 "$bridge_pid" 2>/dev/null; do
    sleep 1
done
die "a process exited on its own; see the logs above"
