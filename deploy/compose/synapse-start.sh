#!/bin/sh
# Synapse's start in deploy/compose/compose.yaml: its settings from the environment, like the
# node's. Synapse writes its own homeserver.yaml and signing key on the first start
# (--generate-config, kept in its volume); on every start this script writes the two files that
# carry the compose stack's settings, and Synapse reads them after its own, so they win:
# - /data/compose.yaml (and its log config): PostgreSQL, the bridge's registration, listening
#   on every address (the bridge is another container), logging to standard error;
# - /appservice/registration.yaml: the bridge's registration, the same tokens the node gets
#   (the node reads it too, through matrix.registration_file, so `check` compares them).
set -eu

: "${SYNAPSE_SERVER_NAME:?}" "${POSTGRES_PASSWORD:?}" "${MATRIX_AS_TOKEN:?}" "${MATRIX_HS_TOKEN:?}"
python="${SYNAPSE_PYTHON:-python}"
data="${SYNAPSE_DATA_DIR:-/data}"
appservice="${SYNAPSE_APPSERVICE_DIR:-/appservice}"

# The image starts as root; Synapse runs as its own user (SYNAPSE_UID, default 991, as the
# image's start.py does), owning its volume. The registration's volume stays root's: only this
# script writes it. (Not UID: bash sets that to the caller's own.)
if [ "$(id -u)" = 0 ]; then
    chown -R "${SYNAPSE_UID:-991}:${SYNAPSE_GID:-991}" "$data"
    set -- setpriv --reuid "${SYNAPSE_UID:-991}" --regid "${SYNAPSE_GID:-991}" --clear-groups --
else
    set --
fi

# --generate-config names its log file in the working directory.
cd "$data"
if [ ! -f "$data/homeserver.yaml" ]; then
    "$@" "$python" -m synapse.app.homeserver --config-path "$data/homeserver.yaml" --generate-config \
        --server-name "$SYNAPSE_SERVER_NAME" --report-stats no --data-directory "$data"
fi

# The server name inside a regular expression: its dots are literal.
server_re="$(printf '%s' "$SYNAPSE_SERVER_NAME" | sed 's/[.]/\\\\./g')"
umask 022
cat >"$appservice/registration.yaml" <<YAML
id: dm3-bridge
url: "http://bridge:8080"
as_token: "$MATRIX_AS_TOKEN"
hs_token: "$MATRIX_HS_TOKEN"
sender_localpart: dm3bot
rate_limited: false
receive_ephemeral: true
# [matrix] encryption = on (the default): what ghost devices in encrypted rooms need
# (docs/engine.md, "Encrypted rooms: plan"); the node's check compares them.
org.matrix.msc3202: true
io.element.msc4190: true
namespaces:
  users:
    - exclusive: true
      regex: "@_dm3_.*:$server_re"
    - exclusive: true
      regex: "@dm3bot:$server_re"
  aliases: []
  rooms: []
YAML
umask 077
cat >"$data/compose.yaml.new" <<YAML
database:
  name: psycopg2
  args:
    user: dm3
    password: "$POSTGRES_PASSWORD"
    database: synapse
    host: postgres
    cp_min: 2
    cp_max: 10
app_service_config_files:
  - $appservice/registration.yaml
# The generated config listens on localhost only; the bridge is another container.
listeners:
  - port: 8008
    type: http
    tls: false
    x_forwarded: true
    bind_addresses: ["0.0.0.0"]
    resources:
      - names: [client, federation]
        compress: false
# Device lists and one-time-key counts in appservice transactions (MSC3202) and to-device
# events pushed to the appservice (MSC2409/MSC4203), for the registration's extensions above.
experimental_features:
  msc3202_transaction_extensions: true
  msc2409_to_device_messages_enabled: true
# A container logs to its standard error (docker logs), not to a file in its volume.
log_config: $data/compose.log.config
YAML
cat >"$data/compose.log.config.new" <<YAML
version: 1
formatters:
  precise:
    format: "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
root:
  level: INFO
  handlers: [console]
disable_existing_loggers: false
YAML
for file in compose.yaml compose.log.config; do
    [ "$(id -u)" != 0 ] || chown "${SYNAPSE_UID:-991}:${SYNAPSE_GID:-991}" "$data/$file.new"
    mv "$data/$file.new" "$data/$file"
done

exec "$@" "$python" -m synapse.app.homeserver --config-path "$data/homeserver.yaml" --config-path "$data/compose.yaml"
