"""Times scipy/numpy on the drift workloads Millwatch is measured on, and writes the same data
for Millwatch's `drift_timing` example so both run on identical values.

Needs numpy and scipy (e.g. `python3 -m venv ~/.cache/millwatch-bench-venv &&
~/.cache/millwatch-bench-venv/bin/pip install scipy numpy`). Run through `benches/compare_scipy.sh`, which also runs Millwatch and prints the
ratios; alone: `python3 benches/scipy_compare.py DIR` prints one JSON line of seconds.
"""

import json
import pathlib
import sys
import time

import numpy as np
from scipy import stats

FEATURES, ROWS, N = 50, 100_000, 1_000_000


def best(runs, f):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def psi(ref, cur):
    # Same definition as Millwatch: ten reference-quantile bins, zeros replaced by 1e-4.
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10) / len(ref)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10) / len(cur)
    p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    return np.sum((q - p) * np.log(q / p))


def window(ref, cur):
    # The automatic choice for n > 1000 continuous columns: normalised Wasserstein.
    out = []
    for r, c in zip(ref, cur):
        w = stats.wasserstein_distance(r, c) / max(np.std(r), 0.001)
        out.append(w >= 0.1)
    return sum(out)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mw-bench")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    a = rng.normal(0.0, 1.0, N)
    b = rng.normal(0.01, 1.02, N)
    shifts = np.where(np.arange(FEATURES) % 5 == 0, 0.3, 0.0)
    wref = rng.normal(0.0, 1.0, (FEATURES, ROWS)).round(4)
    wcur = (rng.normal(0.0, 1.0, (FEATURES, ROWS)) + shifts[:, None]).round(4)
    for name, arr in [("a", a), ("b", b), ("window_ref", wref), ("window_cur", wcur)]:
        arr.astype("<f8").tofile(out / f"{name}.f64")
    result = {
        "ks": best(3, lambda: stats.ks_2samp(a, b)),
        "wasserstein": best(3, lambda: stats.wasserstein_distance(a, b)),
        "psi": best(3, lambda: psi(a, b)),
        "window_50x100k": best(2, lambda: window(wref, wcur)),
        "window_drifted_columns": int(window(wref, wcur)),
        "psi_value": float(psi(a, b)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
