#!/usr/bin/env bash
# compare.sh [SECONDS] — the side-by-side table of README.md's performance section, from a clean
# checkout: rotel-agent with its blackhole exporter (acknowledges once a request is queued,
# stores nothing), then Millwatch (detection off; acknowledges once a request is in DuckDB or its
# synced journal), each driven by run.sh with the same bodies and scenarios, one after the other
# on this machine. Then checks that Millwatch stored every item it acknowledged, and prints the
# Markdown table. SECONDS per scenario (default 8, as in the README).
#
# Needs: setup.sh's tools (it is run first: apt wrk/nghttp2-client/curl, a venv with rotel from
# PyPI), and the release binary (cargo build --release -p millwatch; see millwatch.sh).
# Knobs: everything run.sh, rotel.sh and millwatch.sh take (SCENARIOS, CONNS, LOADGEN_CPUS,
# ROTEL_CPUS, MILLWATCH_CPUS, ...).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECS=${1:-8}
BENCH_DIR=${BENCH_DIR:-/tmp/benchotlp}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
STAMP=$(date +%Y%m%dT%H%M%S)
mkdir -p "$RESULTS_DIR"

"$HERE/setup.sh"
cleanup() {
  "$HERE/rotel.sh" stop >/dev/null 2>&1 || true
  "$HERE/millwatch.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

ROTEL_MODE=blackhole "$HERE/rotel.sh" start
ROTEL_TSV=$RESULTS_DIR/compare-$STAMP-rotel.tsv
RESULT_TSV=$ROTEL_TSV TARGET_PID=$("$HERE/rotel.sh" pid) "$HERE/run.sh" rotel 14318 14317 "$SECS"
"$HERE/rotel.sh" stop

"$HERE/millwatch.sh" start
MILLWATCH_TSV=$RESULTS_DIR/compare-$STAMP-millwatch.tsv
RESULT_TSV=$MILLWATCH_TSV TARGET_PID=$("$HERE/millwatch.sh" pid) "$HERE/run.sh" millwatch 15318 15317 "$SECS"
stored=0
"$HERE/millwatch.sh" stored 60 | tee -a "$MILLWATCH_TSV" || stored=$?
"$HERE/millwatch.sh" stop

echo
echo "baseline: rotel-agent (blackhole exporter); results: $ROTEL_TSV $MILLWATCH_TSV"
python3 "$HERE/bench_helper.py" table "$ROTEL_TSV" "$MILLWATCH_TSV"
exit "$stored"
