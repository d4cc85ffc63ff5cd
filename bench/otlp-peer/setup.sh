#!/usr/bin/env bash
# Idempotent setup for the OTLP ingest bench harness.
#   - /tmp/benchotlp/venv with rotel (PyPI wheel shipping rotel-agent), opentelemetry-proto, protobuf
#   - wrk and h2load (nghttp2-client) from Debian if missing
# Prints the versions it ends up with. Safe to re-run; only touches /tmp/benchotlp and apt.
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/tmp/benchotlp}
VENV=${VENV:-$BENCH_DIR/venv}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROTEL_VERSION=${ROTEL_VERSION:-0.0.1a15}

mkdir -p "$BENCH_DIR"

# --- Debian tools ---------------------------------------------------------
need_apt=()
command -v wrk    >/dev/null 2>&1 || need_apt+=(wrk)
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v nghttp >/dev/null 2>&1 || { [[ " ${need_apt[*]-} " == *" nghttp2-client "* ]] || need_apt+=(nghttp2-client); }
command -v curl   >/dev/null 2>&1 || need_apt+=(curl)
if ((${#need_apt[@]})); then
  echo "[setup] apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${need_apt[@]}" >"$BENCH_DIR/apt.log" 2>&1; then
    apt-get update >>"$BENCH_DIR/apt.log" 2>&1
    apt-get install -y --no-install-recommends "${need_apt[@]}" >>"$BENCH_DIR/apt.log" 2>&1
  fi
fi

# --- Python venv ----------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import google.protobuf, opentelemetry.proto.collector.logs.v1.logs_service_pb2' >/dev/null 2>&1; then
  echo "[setup] pip install opentelemetry-proto protobuf"
  "$VENV/bin/pip" install -q opentelemetry-proto protobuf
fi
ROTEL_BIN=$("$VENV/bin/python" - <<'EOF' 2>/dev/null || true
import os, importlib.util
s = importlib.util.find_spec("rotel")
if s and s.submodule_search_locations:
    p = os.path.join(list(s.submodule_search_locations)[0], "rotel-agent")
    if os.access(p, os.X_OK):
        print(p)
EOF
)
if [[ -z "$ROTEL_BIN" ]]; then
  echo "[setup] pip install rotel==$ROTEL_VERSION"
  # The README's figures are of this version (rotel-agent 0.0.1-alpha10); rotel has only
  # pre-release versions on PyPI, so an exact pin is also what makes pip take one.
  "$VENV/bin/pip" install -q "rotel==$ROTEL_VERSION"
  ROTEL_BIN=$(echo "$VENV"/lib/python3*/site-packages/rotel/rotel-agent)
fi
[[ -x "$ROTEL_BIN" ]] || { echo "[setup] rotel-agent not found under $VENV" >&2; exit 1; }
echo "$ROTEL_BIN" >"$BENCH_DIR/rotel-bin.path"

# --- versions -------------------------------------------------------------
echo "== versions"
echo "rotel (pip)        : $("$VENV/bin/pip" show rotel 2>/dev/null | awk '/^Version:/{print $2}')"
echo "rotel-agent binary : $("$ROTEL_BIN" --version 2>&1 | head -1)  ($ROTEL_BIN)"
echo "opentelemetry-proto: $("$VENV/bin/pip" show opentelemetry-proto 2>/dev/null | awk '/^Version:/{print $2}')"
echo "protobuf           : $("$VENV/bin/python" -c 'import google.protobuf as p; print(p.__version__)')"
echo "wrk                : $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
echo "h2load             : $(h2load --version 2>&1 | head -1)"
echo "python             : $("$VENV/bin/python" --version 2>&1)"
echo "cpus               : $(nproc)  mem: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "harness            : $HERE"
