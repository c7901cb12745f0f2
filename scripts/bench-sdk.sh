#!/usr/bin/env bash
# Seal and open: this crate (criterion, release build) against the reference
# npm libraries (interop/bench.js), measured one after the other in one run on
# this machine, and the ratio. Writes nothing but its report to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-node-deps.sh >/dev/null

cargo bench -p dm3 --bench envelope -- --noplot >/dev/null 2>&1 || cargo bench -p dm3 --bench envelope -- --noplot
reference=$(node interop/bench.js --seconds "${SECONDS_PER_OP:-5}")

python3 - "$reference" <<'PY'
import json, sys, pathlib
ref = json.loads(sys.argv[1])
def mean_us(name):
    path = pathlib.Path("target/criterion") / name / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"] / 1000.0
seal, open_, x, ed = (mean_us(n) for n in ("seal", "open", "floor_x25519", "floor_ed25519_verify"))
floor = 2 * x + ed
print(f"reference: libsodium {ref['libsodium']} ({ref['backend']}), node {ref['node']}; envelope {ref['envelope_bytes']} bytes")
print(f"{'op':<6}{'dm3 (µs)':>10}{'reference (µs)':>16}{'speed-up':>10}")
print(f"{'seal':<6}{seal:>10.1f}{ref['seal_us']:>16.1f}{ref['seal_us'] / seal:>9.1f}x")
print(f"{'open':<6}{open_:>10.1f}{ref['open_us']:>16.1f}{ref['open_us'] / open_:>9.1f}x")
print(f"open floor per core: 2 x25519 ({x:.1f} µs each) + 1 ed25519 verify ({ed:.1f} µs) = {floor:.1f} µs; open is {open_ / floor:.2f}x the floor")
PY
