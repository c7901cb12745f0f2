#!/usr/bin/env bash
# The container image and the compose stack's file, tested on this machine (deploy/README.md):
# builds the image (scripts/build-container.sh: mmdebstrap + buildah, nothing pulled), checks
# its configuration (a numeric non-root user, the health check, the entry point, the data
# volume), runs it with podman: first start from the environment alone (init), healthy by its
# own health check, GET /ready from outside, `check` inside, every file the node's, a clean
# stop on SIGTERM, a restart keeping its keys; a health check that must fail does; and
# validates deploy/compose/compose.yaml with docker-compose. Any failure exits non-zero.
#
#   scripts/test-container.sh               # builds the .deb too
#   DEB=target/debian/….deb scripts/test-container.sh
#
# Needs root; installs what is missing with apt-get.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { echo "test-container: $*" >&2; }
fail() { echo "test-container: FAILED: $*" >&2; exit 1; }
started=$SECONDS

[ "$(id -u)" = 0 ] || fail "must run as root (mmdebstrap, buildah and podman with their system storage)"
# shellcheck source=scripts/lib/install-missing-tools.sh
. scripts/lib/install-missing-tools.sh
install_missing_tools mmdebstrap:mmdebstrap eatmydata:eatmydata buildah:buildah podman:podman runc:runc docker-compose:docker-compose \
    jq:jq curl:curl python3:python3

# --- build ------------------------------------------------------------------------------------
image="$(scripts/build-container.sh | tail -n 1)" || fail "scripts/build-container.sh failed"
say "built $image in $((SECONDS - started)) s"

# --- the image's configuration ----------------------------------------------------------------
inspect="$(podman image inspect "$image")" || fail "podman cannot inspect $image"
field() { echo "$inspect" | jq -c ".[0].$1"; }
user="$(echo "$inspect" | jq -r '.[0].Config.User')"
[[ "$user" =~ ^[0-9]+:[0-9]+$ ]] || fail "the image's user is \"$user\", not a numeric uid:gid"
[ "${user%%:*}" != 0 ] || fail "the image runs as root"
[ "$(field Healthcheck.Test)" = '["CMD","/usr/local/bin/dm3-bridge-healthcheck"]' ] ||
    fail "the image's health check is $(field Healthcheck)"
[ "$(field Config.Entrypoint)" = '["/usr/local/bin/dm3-bridge-container"]' ] ||
    fail "the image's entry point is $(field Config.Entrypoint)"
[ "$(field Config.Cmd)" = '["run"]' ] || fail "the image's command is $(field Config.Cmd)"
[ "$(field 'Config.Volumes|keys')" = '["/var/lib/dm3-bridge"]' ] ||
    fail "the image's volumes are $(field Config.Volumes)"
[ "$(field 'Config.ExposedPorts|keys')" = '["8080/tcp"]' ] || fail "the image exposes $(field Config.ExposedPorts)"

# --- run it -----------------------------------------------------------------------------------
# How podman must be told to run on this machine, and why (deploy/README.md, "What runs here"):
# - runc, not crun: the cgroups are v1 with a v2 hierarchy beside them ("hybrid"), which crun
#   refuses ("cgroups in hybrid mode not supported");
# - the host's hard limits: root here lacks CAP_SYS_RESOURCE, so the limits podman asks for by
#   default (1048576 files) cannot be set;
# - the host's network: the test reaches the node on 127.0.0.1, with no bridge network set up;
# - no systemd: podman schedules health checks with systemd timers, so the test runs the image's
#   health check itself with `podman healthcheck run` (podman logs that the timer is missing).
# A limit: the host's hard one, at most $2 (the node needs far fewer, and "unlimited" cannot be
# asked for without CAP_SYS_RESOURCE either).
host_limit() {
    local hard
    hard="$(ulimit -H "-$1")"
    if [ "$hard" = unlimited ] || [ "$hard" -gt "$2" ]; then echo "$2"; else echo "$hard"; fi
}
nofile="$(host_limit n 65536)"
nproc="$(host_limit u 4096)"
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
name="dm3-test-$$"
volume="dm3-test-data-$$"
podman_run=(podman --runtime runc)
cleanup() {
    "${podman_run[@]}" rm -f -t 5 "$name" >/dev/null 2>&1 || true
    podman volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
podman volume create "$volume" >/dev/null || fail "podman volume create failed"

say "podman run (first start: init from the environment)"
"${podman_run[@]}" run -d --name "$name" --network host \
    "${limits[@]}" -e DM3_BRIDGE_NODE__NAME=relay.example.eth -e DM3_BRIDGE_NODE__PUBLIC_URL=https://relay.example.org \
    -e DM3_BRIDGE_NODE__LISTEN="127.0.0.1:$port" -v "$volume:/var/lib/dm3-bridge" "$image" \
    >/dev/null 2>"$root/target/container/run.err" ||
    fail "podman run failed: $(grep -v 'systemd' "$root/target/container/run.err")"

wait_healthy() {
    for _ in $(seq 1 60); do
        [ "$(podman inspect -f '{{.State.Running}}' "$name")" = true ] ||
            fail "the container stopped: $(podman logs "$name" 2>&1 | tail -n 20)"
        if podman healthcheck run "$name" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    fail "the container was not healthy in 30 s: $(podman logs "$name" 2>&1 | tail -n 20)"
}
wait_healthy
[ "$(curl -fsS "http://127.0.0.1:$port/ready")" = ready ] || fail "GET /ready from outside did not answer ready"
[ "$(podman exec "$name" id -u)" = "${user%%:*}" ] || fail "the node does not run as ${user%%:*}"
check_out="$(podman exec "$name" /usr/local/bin/dm3-bridge-container check 2>&1)" ||
    fail "dm3-bridge check in the container failed: $check_out"
keys_line="$(grep '^node keys: open' <<<"$check_out")" || fail "check did not open the node keys: $check_out"
for file in master.key node-keys.sealed gateway-signer.sealed dm3-bridge.sqlite; do
    got="$(podman exec "$name" stat -c '%a %U' "/var/lib/dm3-bridge/$file")" || fail "the volume has no $file"
    [ "$got" = "600 dm3-bridge" ] || fail "/var/lib/dm3-bridge/$file is $got in the container, expected 600 dm3-bridge"
done
# The health check fails when the node does not answer (here: asked on a port nobody serves).
if podman exec -e DM3_BRIDGE_NODE__LISTEN=127.0.0.1:1 "$name" /usr/local/bin/dm3-bridge-healthcheck >/dev/null 2>&1; then
    fail "the health check passed with no node behind it"
fi

say "podman stop, start: a clean stop, and the same keys after the restart"
podman stop -t 30 "$name" >/dev/null 2>&1 || fail "podman stop failed"
code="$(podman inspect -f '{{.State.ExitCode}}' "$name")"
[ "$code" = 0 ] || fail "the node exited $code on SIGTERM: $(podman logs "$name" 2>&1 | tail -n 20)"
"${podman_run[@]}" start "$name" >/dev/null 2>&1 || fail "podman start failed"
wait_healthy
check_out="$(podman exec "$name" /usr/local/bin/dm3-bridge-container check 2>&1)" ||
    fail "dm3-bridge check after the restart failed: $check_out"
grep -qxF "$keys_line" <<<"$check_out" || fail "the node's keys changed across a restart"
cleanup

# --- the compose file -------------------------------------------------------------------------
say "docker-compose config (deploy/compose/compose.yaml)"
compose_env=(POSTGRES_PASSWORD=test-password-0123 DM3_NODE_NAME=relay.example.eth
    DM3_PUBLIC_URL=https://relay.example.org DM3_PARENT=bridge.example.eth MATRIX_SERVER_NAME=example.org
    MATRIX_AS_TOKEN=as-token-0123456789abcdef MATRIX_HS_TOKEN=hs-token-0123456789abcdef
    DM3_ADMIN_TOKEN=admin-token-0123456789)
compose_out="$(env "${compose_env[@]}" docker-compose -f deploy/compose/compose.yaml config 2>&1)" ||
    fail "docker-compose rejects deploy/compose/compose.yaml: $compose_out"
# A required variable left out is refused by name, not started with an empty value.
if missing="$(env "${compose_env[@]}" POSTGRES_PASSWORD= docker-compose -f deploy/compose/compose.yaml config 2>&1)"; then
    fail "docker-compose accepted the stack without POSTGRES_PASSWORD"
fi
grep -q POSTGRES_PASSWORD <<<"$missing" || fail "docker-compose did not name POSTGRES_PASSWORD: $missing"

# The stack's two halves agree: synapse-start.sh writes the registration from Synapse's
# environment, and the node, given the bridge service's environment and that file, finds every
# variable a config key and the registration matching [matrix] (`check`; PostgreSQL and Synapse
# themselves are not started: their images are on Docker Hub, out of reach here).
say "the compose stack's registration, as Synapse writes it, checked by the node"
compose_json="$(echo "$compose_out" | python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))')" ||
    fail "cannot read docker-compose's output"
service_env() { echo "$compose_json" | jq -r --arg s "$1" '.services[$s].environment | to_entries[] | "\(.key)=\(.value)"'; }
stack="$root/target/container/compose"
rm -rf "$stack"
mkdir -p "$stack/synapse" "$stack/appservice"
mapfile -t synapse_env < <(service_env synapse)
# /bin/true stands in for Synapse's python: the script's own work is the two files it writes.
env -i PATH="$PATH" "${synapse_env[@]}" SYNAPSE_PYTHON=/bin/true SYNAPSE_DATA_DIR="$stack/synapse" \
    SYNAPSE_APPSERVICE_DIR="$stack/appservice" sh deploy/compose/synapse-start.sh ||
    fail "deploy/compose/synapse-start.sh failed"
grep -q "^  - $stack/appservice/registration.yaml\$" "$stack/synapse/compose.yaml" ||
    fail "synapse-start.sh did not point Synapse at the registration"
bridge_env=()
while IFS= read -r line; do bridge_env+=(-e "$line"); done < <(service_env bridge)
check_out="$("${podman_run[@]}" run --rm --network none "${limits[@]}" "${bridge_env[@]}" -v "$stack/appservice:/appservice:ro" "$image" check 2>&1)" ||
    fail "the node refuses the compose stack's configuration: $check_out"
grep -q '^matrix: /appservice/registration.yaml matches \[matrix\]' <<<"$check_out" ||
    fail "the node did not check the stack's registration: $check_out"

say "passed in $((SECONDS - started)) s"
