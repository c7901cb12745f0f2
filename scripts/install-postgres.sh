#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries the test harness runs are present.
# The harness starts its own throwaway cluster; nothing here starts a server.
set -euo pipefail
PG_BIN="${DM3_BRIDGE_PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]; then
  echo "PostgreSQL found in $PG_BIN"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "PostgreSQL 15 server binaries are missing from $PG_BIN and cannot be installed automatically;" >&2
  echo "install the Debian package postgresql-15 (or set DM3_BRIDGE_PG_BIN to a directory with initdb and pg_ctl)." >&2
  exit 1
fi
echo "installing postgresql-15 with apt-get"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
[ -x "$PG_BIN/initdb" ] || { echo "postgresql-15 installed but $PG_BIN/initdb is still missing" >&2; exit 1; }
