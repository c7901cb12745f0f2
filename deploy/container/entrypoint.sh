#!/bin/sh
# The container's entry point: `dm3-bridge "$@"` (default `run`) with the config in the data
# volume. On the first start, when the volume holds no config yet, it runs `dm3-bridge init`
# from the environment (DM3_BRIDGE_NODE__NAME, DM3_BRIDGE_NODE__PUBLIC_URL, and
# DM3_BRIDGE_MASTER_KEY if the master key should not be written into the volume); every other
# setting comes from DM3_BRIDGE_* variables, which win over the file (docs/configuration.md).
# A config of one's own is mounted and named with DM3_BRIDGE_CONFIG; then init is not run.
set -eu
# What the node writes (the database, the keys it makes) is its own, as under the systemd
# unit's UMask=0077.
umask 077

data=/var/lib/dm3-bridge
if [ -z "${DM3_BRIDGE_CONFIG:-}" ]; then
    DM3_BRIDGE_CONFIG="$data/config.toml"
    if [ ! -e "$DM3_BRIDGE_CONFIG" ]; then
        if [ -z "${DM3_BRIDGE_NODE__NAME:-}" ] || [ -z "${DM3_BRIDGE_NODE__PUBLIC_URL:-}" ]; then
            echo "dm3-bridge: first start: set DM3_BRIDGE_NODE__NAME and DM3_BRIDGE_NODE__PUBLIC_URL" \
                "(the node's ENS name and the URL clients reach it at), or mount a config and set" \
                "DM3_BRIDGE_CONFIG" >&2
            exit 2
        fi
        dm3-bridge init --data-dir "$data" --name "$DM3_BRIDGE_NODE__NAME" \
            --public-url "$DM3_BRIDGE_NODE__PUBLIC_URL" --listen "${DM3_BRIDGE_NODE__LISTEN:-0.0.0.0:8080}"
    fi
fi
export DM3_BRIDGE_CONFIG
exec dm3-bridge "$@"
