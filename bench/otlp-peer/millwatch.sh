#!/usr/bin/env bash
# millwatch.sh start|stop|status|pid|stored
# Starts `millwatch run` for the side-by-side benchmark, detached, with OTLP on 127.0.0.1:15317
# (gRPC) / 127.0.0.1:15318 (HTTP), its API on 127.0.0.1:15464, a fresh data directory
# ($BENCH_DIR/millwatch-data, emptied at each start) and the detection engine off, as in the
# README's table: every request is stored in DuckDB (or its synced journal) before it is
# acknowledged.
#
#   MILLWATCH_BIN     the binary (default: $CARGO_TARGET_DIR/release/millwatch, else
#                     target/release/millwatch of this checkout; build it with
#                     `cargo build --release -p millwatch`)
#   MILLWATCH_CPUS    pin it with taskset (e.g. 1, with LOADGEN_CPUS=0 for run.sh)
#   MILLWATCH_CONFIG  YAML appended to the configuration (e.g. "store:\n  journal:\n    enabled: false")
#
# stored: waits until the tables hold every acknowledged item (bench_helper.py stored), exit 1 if not.
# PID: $BENCH_DIR/millwatch.pid; stop signals only that pid, and only if it is millwatch.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/benchotlp}
GRPC_ADDR=${MILLWATCH_GRPC_ADDR:-127.0.0.1:15317}
HTTP_ADDR=${MILLWATCH_HTTP_ADDR:-127.0.0.1:15318}
API_ADDR=${MILLWATCH_API_ADDR:-127.0.0.1:15464}
PIDFILE=$BENCH_DIR/millwatch.pid
DATA=$BENCH_DIR/millwatch-data

millwatch_bin() {
  local b=${MILLWATCH_BIN:-}
  [[ -n $b ]] || b=${CARGO_TARGET_DIR:-$ROOT/target}/release/millwatch
  [[ -x $b ]] || { echo "millwatch binary not found at $b: cargo build --release -p millwatch, or set MILLWATCH_BIN" >&2; exit 1; }
  echo "$b"
}

is_millwatch_pid() {
  local pid=$1
  [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q 'millwatch run'
}

wait_ready() { # timeout_s
  for ((i = 0; i < $1 * 10; i++)); do
    curl -fs -o /dev/null "http://$API_ADDR/readyz" && return 0
    sleep 0.1
  done
  return 1
}

mkdir -p "$BENCH_DIR"
case "${1:-}" in
  start)
    if [[ -f $PIDFILE ]] && is_millwatch_pid "$(cat "$PIDFILE")"; then
      echo "millwatch already running, pid $(cat "$PIDFILE")"; exit 0
    fi
    bin=$(millwatch_bin)
    rm -rf "$DATA"
    mkdir -p "$DATA"
    config=$BENCH_DIR/millwatch.yaml
    printf 'detection:\n  enabled: false\n%b\n' "${MILLWATCH_CONFIG:-}" >"$config"
    pre=()
    [[ -n ${MILLWATCH_CPUS:-} ]] && pre=(taskset -c "$MILLWATCH_CPUS")
    MILLWATCH_LOG=${MILLWATCH_LOG:-warn} nohup "${pre[@]}" "$bin" run --config "$config" --data-dir "$DATA" \
      --otlp-grpc "$GRPC_ADDR" --otlp-http "$HTTP_ADDR" --http "$API_ADDR" \
      >"$BENCH_DIR/millwatch.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PIDFILE"
    if ! wait_ready 60; then
      echo "millwatch did not become ready; log:" >&2; tail -20 "$BENCH_DIR/millwatch.log" >&2; exit 1
    fi
    echo "millwatch started, pid $pid, grpc $GRPC_ADDR, http $HTTP_ADDR, api $API_ADDR ($("$bin" --version 2>&1 | head -1))"
    ;;
  stop)
    [[ -f $PIDFILE ]] || { echo "millwatch: no pid file"; exit 0; }
    pid=$(cat "$PIDFILE")
    if is_millwatch_pid "$pid"; then
      kill -TERM "$pid"
      for ((i = 0; i < 600; i++)); do is_millwatch_pid "$pid" || break; sleep 0.1; done
      if is_millwatch_pid "$pid"; then kill -KILL "$pid"; echo "millwatch pid $pid killed (SIGKILL)"; else echo "millwatch pid $pid stopped"; fi
    else
      echo "millwatch pid $pid not running"
    fi
    rm -f "$PIDFILE"
    ;;
  status)
    if [[ -f $PIDFILE ]] && is_millwatch_pid "$(cat "$PIDFILE")"; then echo "millwatch running pid $(cat "$PIDFILE")"; else echo "millwatch not running"; fi
    ;;
  pid)
    cat "$PIDFILE"
    ;;
  stored)
    python3 "$HERE/bench_helper.py" stored "http://$API_ADDR" "${2:-60}"
    ;;
  *)
    echo "usage: $0 start|stop|status|pid|stored [TIMEOUT_S]" >&2; exit 2
    ;;
esac
