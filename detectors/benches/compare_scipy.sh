#!/usr/bin/env bash
# Times Millwatch and scipy on the same data in one run and prints the speed-up per workload.
# Needs a Python with numpy and scipy: PYTHON=~/.cache/millwatch-bench-venv/bin/python (the
# default; create it with `python3 -m venv` and `pip install numpy scipy`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$HOME/.cache/millwatch-bench-venv/bin/python}"
DIR="${1:-/tmp/mw-bench}"
scipy_json=$("$PYTHON" benches/scipy_compare.py "$DIR")
cargo build --release -q --example drift_timing
mw_json=$(cargo run --release -q --example drift_timing -- "$DIR")
"$PYTHON" - "$scipy_json" "$mw_json" <<'PY'
import json, sys
s, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'workload':<34}{'scipy':>12}{'millwatch':>12}{'speed-up':>10}")
for k, label in [("ks", "KS 1M vs 1M"), ("wasserstein", "Wasserstein 1M vs 1M"),
                 ("psi", "PSI 1M vs 1M"), ("window_50x100k", "50 features x 100k rows, auto")]:
    print(f"{label:<34}{s[k]*1e3:>10.1f}ms{m[k]*1e3:>10.1f}ms{s[k]/m[k]:>9.1f}x")
print(f"drifted columns in the window: scipy {s['window_drifted_columns']}, millwatch {m['window_drifted_columns']}")
print(f"PSI value: numpy {s['psi_value']!r}, millwatch {m['psi_value']!r}")
PY
