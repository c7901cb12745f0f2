#!/usr/bin/env bash
# Makes sure libfaketime is present: tests/replica_clock.rs starts one of the node's replicas
# with its clock 30 s ahead (LD_PRELOAD of libfaketime, FAKETIME="+30s"; docs/scaling.md,
# "Clocks"). The test finds the library at the Debian package's path.
set -euo pipefail
LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ -e "$LIB" ] || [ -n "${DM3_LIBFAKETIME:-}" ]; then
  echo "libfaketime found: ${DM3_LIBFAKETIME:-$LIB}"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "libfaketime is missing and cannot be installed automatically; install the Debian package faketime" \
       "(or set DM3_LIBFAKETIME to the library's path)." >&2
  exit 1
fi
echo "installing faketime with apt-get"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
[ -e "$LIB" ] || { echo "faketime installed but $LIB is not there" >&2; exit 1; }
