#!/usr/bin/env bash
# Makes sure HAProxy is present: tests/replicas.rs runs the node's replicas behind it, with the
# configuration the repository ships (deploy/haproxy/haproxy.cfg, docs/scaling.md). The test
# starts its own haproxy process; nothing here starts one.
set -euo pipefail
if command -v haproxy >/dev/null; then
  echo "HAProxy found: $(haproxy -v | head -n 1)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "haproxy is missing and cannot be installed automatically; install the Debian package haproxy." >&2
  exit 1
fi
echo "installing haproxy with apt-get"
apt-get update -qq
# The package also installs a service unit, which nothing here starts.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
command -v haproxy >/dev/null || { echo "haproxy installed but not on PATH" >&2; exit 1; }
