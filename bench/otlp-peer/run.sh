#!/usr/bin/env bash
# run.sh TARGET_NAME HTTP_PORT GRPC_PORT [SECONDS]
#
# Drives an already-running OTLP collector on 127.0.0.1 (loopback only) and prints one row per scenario:
#   scenario req/s items/s p50_ms p99_ms non2xx cpu_s cpu_s_per_M_items max_rss_MB sock_err reqs_ok host_busy% loadgen_cpu_s check
#
# Scenarios (env SCENARIOS, space separated; default all but *-logs-gz):
#   http-metrics     wrk  POST /v1/metrics  application/x-protobuf, 1000 gauge points / request
#   http-metrics-gz  wrk  POST /v1/metrics  same body gzip'd, Content-Encoding: gzip
#   http-logs        wrk  POST /v1/logs     500 ML inference log records / request
#   http-logs-gz     wrk  POST /v1/logs     gzip'd
#   grpc-metrics     h2load  /opentelemetry.proto.collector.metrics.v1.MetricsService/Export (application/grpc, te: trailers)
#   grpc-logs        h2load  /opentelemetry.proto.collector.logs.v1.LogsService/Export
#
# env:
#   TARGET_PID     pid (or comma-separated pids, summed) of the collector: CPU s from /proc/PID/stat utime+stime,
#                  max RSS from VmRSS polled every 100 ms. Without it the CPU/RSS columns print '-'.
#   CONNS=4 THREADS=2   wrk and h2load connections / threads
#   H2_STREAMS=1   h2load max concurrent streams per connection (1 = same 4 requests in flight as wrk)
#   WARMUP=2       seconds of unmeasured load before each scenario
#   SETTLE=1       seconds the CPU sampler keeps running after the load stops (catches deferred work:
#                  batch flushes, async writes); counted in cpu_s
#   LOADGEN_CPUS   if set, run wrk/h2load under taskset -c LOADGEN_CPUS
#   BODIES=/tmp/benchotlp/bodies   made by make_bodies.py if missing
#   RESULTS_DIR=/tmp/benchotlp/results
#   RESULT_TSV     where the rows go (default RESULTS_DIR/TARGET-STAMP.tsv)
#
# non2xx: wrk = responses with status > 399; h2load = done - 2xx + failed + errored.
# gRPC errors travel as HTTP 200 + grpc-status trailer, which h2load counts as success, so the 'check'
# column shows a single-request probe before and after each scenario (HTTP code or grpc-status via nghttp).
set -euo pipefail

if (($# < 3)); then
  sed -n '2,30p' "$0" >&2
  exit 2
fi
TARGET=$1 HTTP_PORT=$2 GRPC_PORT=$3 SECS=${4:-10}
HOST=127.0.0.1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=${BENCH_DIR:-/tmp/benchotlp}
VENV=${VENV:-$BENCH_DIR/venv}
BODIES=${BODIES:-$BENCH_DIR/bodies}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
CONNS=${CONNS:-4} THREADS=${THREADS:-2} H2_STREAMS=${H2_STREAMS:-1}
WARMUP=${WARMUP:-2} SETTLE=${SETTLE:-1}
SCENARIOS=${SCENARIOS:-"http-metrics http-metrics-gz http-logs grpc-metrics grpc-logs"}
TARGET_PID=${TARGET_PID:-}
PY=python3
[[ -x $VENV/bin/python ]] && PY=$VENV/bin/python
HELPER="$PY $HERE/bench_helper.py"

for t in wrk h2load nghttp curl; do
  command -v $t >/dev/null || { echo "missing $t: run setup.sh" >&2; exit 1; }
done
if [[ ! -f $BODIES/counts.env ]]; then
  "$VENV/bin/python" "$HERE/make_bodies.py" "$BODIES" >&2
fi
# shellcheck disable=SC1091
source "$BODIES/counts.env"

if [[ -n $TARGET_PID ]]; then
  IFS=, read -r -a _pids <<<"$TARGET_PID"
  for p in "${_pids[@]}"; do
    [[ -r /proc/$p/stat ]] || { echo "TARGET_PID $p is not running" >&2; exit 1; }
  done
else
  echo "warning: TARGET_PID not set: cpu/rss columns will be '-'" >&2
fi

LG=()
[[ -n ${LOADGEN_CPUS:-} ]] && LG=(taskset -c "$LOADGEN_CPUS")

STAMP=$(date +%Y%m%dT%H%M%S)
RAW=$RESULTS_DIR/$TARGET-$STAMP
OUT=${RESULT_TSV:-$RESULTS_DIR/$TARGET-$STAMP.tsv}
mkdir -p "$RAW"

GRPC_METRICS=/opentelemetry.proto.collector.metrics.v1.MetricsService/Export
GRPC_LOGS=/opentelemetry.proto.collector.logs.v1.LogsService/Export

# scenario -> kind path body encoding items
scenario_def() {
  case $1 in
    http-metrics)    echo "wrk /v1/metrics $BODIES/metrics.pb - $METRICS_ITEMS" ;;
    http-metrics-gz) echo "wrk /v1/metrics $BODIES/metrics.pb.gz gzip $METRICS_ITEMS" ;;
    http-logs)       echo "wrk /v1/logs $BODIES/logs.pb - $LOGS_ITEMS" ;;
    http-logs-gz)    echo "wrk /v1/logs $BODIES/logs.pb.gz gzip $LOGS_ITEMS" ;;
    grpc-metrics)    echo "h2load $GRPC_METRICS $BODIES/metrics.grpc - $METRICS_ITEMS" ;;
    grpc-logs)       echo "h2load $GRPC_LOGS $BODIES/logs.grpc - $LOGS_ITEMS" ;;
    *) echo "unknown scenario $1" >&2; return 1 ;;
  esac
}

probe() { # kind path body enc -> prints http=CODE or grpc-status=N
  local kind=$1 path=$2 body=$3 enc=$4
  if [[ $kind == wrk ]]; then
    local h=(-H 'Content-Type: application/x-protobuf')
    [[ $enc != - ]] && h+=(-H "Content-Encoding: $enc")
    echo "http=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "${h[@]}" --data-binary @"$body" "http://$HOST:$HTTP_PORT$path" || true)"
  else
    local st
    st=$(timeout 10 nghttp -v -H 'content-type: application/grpc' -H 'te: trailers' -d "$body" \
         "http://$HOST:$GRPC_PORT$path" 2>&1 | grep -a -o 'grpc-status: [0-9]*' | head -1 | awk '{print $2}' || true)
    echo "grpc-status=${st:-none}"
  fi
}

load() { # kind path body enc seconds raw_out req_log
  local kind=$1 path=$2 body=$3 enc=$4 secs=$5 raw=$6 log=$7
  if [[ $kind == wrk ]]; then
    BENCH_BODY=$body BENCH_ENCODING=$([[ $enc != - ]] && echo "$enc" || true) \
      "${LG[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 10s --latency -s "$HERE/wrk_post.lua" \
      "http://$HOST:$HTTP_PORT$path" >"$raw" 2>&1
  else
    local logarg=()
    [[ $log != - ]] && logarg=(--log-file="$log")
    "${LG[@]}" h2load -c"$CONNS" -t"$THREADS" -m"$H2_STREAMS" -D "$secs" -d "$body" \
      -H 'content-type: application/grpc' -H 'te: trailers' "${logarg[@]}" \
      "http://$HOST:$GRPC_PORT$path" >"$raw" 2>&1
  fi
}

# host idle check (another heavy process skews everything on a 2-core box)
read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ </proc/stat; sleep 1; read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
_tot=$(( (u2+n2+s2+i2+w2+q2+sq2+st2) - (u1+n1+s1+i1+w1+q1+sq1+st1) )); _idle=$(( (i2+w2) - (i1+w1) ))
PRE_BUSY=$(( _tot > 0 ? 100 * (_tot - _idle) / _tot : 0 ))

{
  echo "# target=$TARGET http=$HOST:$HTTP_PORT grpc=$HOST:$GRPC_PORT pid=${TARGET_PID:--} seconds=$SECS warmup=$WARMUP settle=$SETTLE" \
       "conns=$CONNS threads=$THREADS h2_streams=$H2_STREAMS loadgen_cpus=${LOADGEN_CPUS:-any} nproc=$(nproc)" \
       "host_busy_before=${PRE_BUSY}% date=$(date -Is)"
  echo "# bodies: metrics $METRICS_ITEMS points ($BYTES_METRICS_PB B, gz $BYTES_METRICS_PB_GZ B), logs $LOGS_ITEMS records ($BYTES_LOGS_PB B, gz $BYTES_LOGS_PB_GZ B)"
} | tee "$OUT"
((PRE_BUSY > 20)) && echo "# WARNING: host was ${PRE_BUSY}% busy before the run; numbers will be skewed" | tee -a "$OUT"
$HELPER header | tee -a "$OUT"

for sc in $SCENARIOS; do
  read -r kind path body enc items <<<"$(scenario_def "$sc")"
  pre=$(probe "$kind" "$path" "$body" "$enc")
  if ((WARMUP > 0)); then load "$kind" "$path" "$body" "$enc" "$WARMUP" "$RAW/$sc.warmup.txt" - || true; fi
  sfile=$RAW/$sc.sample.json
  rm -f "$sfile"
  $HELPER sample "$TARGET_PID" "$sfile" 0.1 &
  spid=$!
  sleep 0.2
  TIMEFORMAT='%U %S'
  { time load "$kind" "$path" "$body" "$enc" "$SECS" "$RAW/$sc.txt" "$RAW/$sc.reqlog.tsv" ; } 2>"$RAW/$sc.loadgen_times" || true
  sleep "$SETTLE"
  kill -TERM "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  post=$(probe "$kind" "$path" "$body" "$enc")
  $HELPER report "$sc" "$items" "$kind" "$RAW/$sc.txt" "$RAW/$sc.reqlog.tsv" "$sfile" "$RAW/$sc.loadgen_times" \
    "pre:${pre}/post:${post}" | tee -a "$OUT" \
    || echo -e "$sc\tFAILED (see $RAW/$sc.txt)" | tee -a "$OUT"
  rm -f "$RAW/$sc.reqlog.tsv.gz"; [[ -f $RAW/$sc.reqlog.tsv ]] && gzip -f "$RAW/$sc.reqlog.tsv"
done
echo "# results: $OUT  raw: $RAW" | tee -a "$OUT"
