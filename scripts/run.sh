#!/usr/bin/env bash
# Runs a relay node with the embedded SQLite database: creates a data directory on the
# first run (config, master key, sealed node keys), then serves until ctrl-c.
#
#   scripts/run.sh                       # data in ./data, listens on 127.0.0.1:8080
#   DATA_DIR=/var/lib/dm3 NODE_NAME=relay.example.eth PUBLIC_URL=https://relay.example.org scripts/run.sh
#
# Any config key can also be set as DM3_BRIDGE_<SECTION>__<KEY> (docs/configuration.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${DATA_DIR:-data}"
NODE_NAME="${NODE_NAME:-relay.dev.eth}"
LISTEN="${LISTEN:-127.0.0.1:8080}"
PUBLIC_URL="${PUBLIC_URL:-http://$LISTEN}"

cargo build --release --locked --bin dm3-bridge
BIN=target/release/dm3-bridge
if [ ! -f "$DATA_DIR/config.toml" ]; then
  "$BIN" init --data-dir "$DATA_DIR" --name "$NODE_NAME" --public-url "$PUBLIC_URL" --listen "$LISTEN"
fi
exec "$BIN" --config "$DATA_DIR/config.toml" run
