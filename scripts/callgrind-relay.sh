#!/usr/bin/env bash
# Instructions per accepted envelope of the node under the relay_load bench, with callgrind:
# a number that does not move with whatever else runs on the machine, for A/B comparisons of
# node builds. Two runs of different length; the difference divided by the difference in
# envelopes is the cost of one envelope (start-up, migrations and shutdown cancel out).
#
#   scripts/callgrind-relay.sh [NODE_BINARY] [sqlite|postgres]
#
# Writes target/callgrind/{short,long}.out (open with callgrind_annotate --inclusive=yes).
# Needs valgrind (apt-get install valgrind). Counts user-space instructions only: the
# kernel's share (sockets, fsync) is not in it; use `perf record -e cpu-clock` for that.
set -euo pipefail
cd "$(dirname "$0")/.."
node_binary=$(realpath "${1:-target/release/dm3-bridge}")
backend=${2:-sqlite}
out=target/callgrind
mkdir -p "$out"

cargo bench --bench relay_load --no-run >/dev/null 2>&1
bench=$(cargo bench --bench relay_load --no-run 2>&1 | sed -n 's/.*(\(target[^)]*relay_load-[^)]*\)).*/\1/p' | tail -1)

# The bench starts the node through this wrapper; only `run` goes under valgrind.
wrapper=$out/node-under-callgrind.sh
cat >"$wrapper" <<EOF
#!/usr/bin/env bash
for arg in "\$@"; do
  if [ "\$arg" = run ]; then
    exec valgrind --tool=callgrind --callgrind-out-file="\$CALLGRIND_OUT" "$node_binary" "\$@"
  fi
done
exec "$node_binary" "\$@"
EOF
chmod +x "$wrapper"

measure() {
  local name=$1 seconds=$2
  rm -f "$out/$name.out"
  CALLGRIND_OUT=$(realpath "$out")/$name.out DM3_BENCH_NODE=$(realpath "$wrapper") \
    "$bench" "$backend" --seconds "$seconds" --connections 4 --rate 1 >"$out/$name.json" 2>"$out/$name.log"
  python3 - "$out/$name.json" "$out/$name.out" <<'PY'
import json, sys
row = json.loads(open(sys.argv[1]).readline())
accepted = row["throughput"]["accepted"] + row["fixed_rate"]["accepted"]
totals = next(int(l.split()[1]) for l in open(sys.argv[2]) if l.startswith("totals:"))
print(accepted, totals)
PY
}

read -r short_envelopes short_ir < <(measure short 8)
read -r long_envelopes long_ir < <(measure long 24)
echo "$backend: $short_envelopes envelopes $short_ir Ir; $long_envelopes envelopes $long_ir Ir"
echo "instructions per envelope: $(((long_ir - short_ir) / (long_envelopes - short_envelopes)))"
