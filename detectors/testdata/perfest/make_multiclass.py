#!/usr/bin/env python3
"""Writes the multiclass CBPE conformance case `multiclass_tool_state/` with NannyML's own
figures: reference.csv (5000 rows), analysis.csv (10000 rows, covariate shift from row 5000)
and expected.json (CBPE per chunk: estimate, sampling error, bounds, thresholds, alert, and
the realised value from PerformanceCalculator).

Run once, with NannyML installed in a venv of its own (the repository's tests only read the
files written here):

    python3 -m venv /root/.cache/nannyml-venv
    /root/.cache/nannyml-venv/bin/pip install "pandas<3" nannyml statsmodels
    NML_DISABLE_USAGE_LOGGING=1 /root/.cache/nannyml-venv/bin/python make_multiclass.py

The data: machine readings as in the binary cases (torque, tool wear, process-air temperature
gap, machine type); the label is the tool's state, `ok`, `worn` or `overstrained`, drawn from
a softmax of known logits. The deployed model's logits are 1.3 x the true ones plus offsets
(over-confident, so CBPE calibrates each class's score). From analysis row 5000 the torque
runs higher and the tool wear is uniform on [100, 250]: P(y|x) does not change, the inputs
move to where the model is less sure, and the realised accuracy falls.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd

SEED = 202
CHUNK_SIZE = 1000
SHIFT_START = 5000
CLASSES = ["ok", "worn", "overstrained"]
METRICS = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]
HERE = os.path.dirname(os.path.abspath(__file__))
CASE = os.path.join(HERE, "multiclass_tool_state")


def features(rng, n, torque_mean=40.0, wear_lo=0, wear_hi=250):
    machine_type = rng.choice(np.array(["L", "M", "H"], dtype=object), n, p=[0.5, 0.3, 0.2])
    air = np.round(rng.normal(300.0, 2.0, n), 1)
    process = np.round(air + 10.0 + rng.normal(0.0, 1.5, n), 1)
    torque = np.round(np.clip(rng.normal(torque_mean, 10.0, n), 3.8, 90.0), 1)
    wear = rng.integers(wear_lo, wear_hi + 1, n)
    return pd.DataFrame({"air_temp_k": air, "process_temp_k": process, "torque_nm": torque,
                         "tool_wear_min": wear.astype(np.int64), "machine_type": machine_type})


def logits(df, scale, offsets):
    zt = (df.torque_nm.to_numpy() - 40.0) / 10.0
    zw = (df.tool_wear_min.to_numpy() - 125.0) / 72.0
    zd = (df.process_temp_k - df.air_temp_k - 10.0).to_numpy()
    te = df.machine_type.map({"L": 0.3, "M": 0.0, "H": -0.3}).astype(float).to_numpy()
    ok = np.zeros(len(df))
    worn = -0.4 + 1.7 * zw - 0.3 * zd + te
    over = -0.9 + 1.6 * zt + 0.4 * zw + 0.5 * te
    z = np.stack([ok, worn, over], axis=1) * scale + np.asarray(offsets)
    return z


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def outputs(rng, df):
    truth = softmax(logits(df, 1.0, [0.0, 0.0, 0.0]))
    model = softmax(logits(df, 1.3, [0.0, 0.1137, -0.0713]))
    for k, c in enumerate(CLASSES):
        df[f"y_pred_proba_{c}"] = model[:, k]
    df["y_pred"] = np.array(CLASSES, dtype=object)[model.argmax(axis=1)]
    u = rng.random(len(df))[:, None]
    df["y_true"] = np.array(CLASSES, dtype=object)[(u > truth.cumsum(axis=1)).sum(axis=1).clip(0, 2)]
    return df


def jnum(x):
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return x
    return None if np.isnan(v) else v


def rows_of(df, key, fields, rename):
    out = []
    for _, r in df.iterrows():
        row = {"period": r[("chunk", "period")], "chunk_index": int(r[("chunk", "chunk_index")]),
               "start_index": int(r[("chunk", "start_index")]),
               "n_rows": int(r[("chunk", "end_index")]) - int(r[("chunk", "start_index")]) + 1}
        for f in fields:
            v = r[(key, f)]
            row[rename.get(f, f)] = (None if v is None or (isinstance(v, float) and np.isnan(v)) else bool(v)) \
                if f == "alert" else jnum(v)
        out.append(row)
    return out


def main() -> int:
    import nannyml as nml
    import sklearn

    rng = np.random.default_rng(SEED)
    ref = outputs(rng, features(rng, 5000))
    a1 = outputs(rng, features(rng, SHIFT_START))
    a2 = outputs(rng, features(rng, 10000 - SHIFT_START, torque_mean=50.0, wear_lo=100))
    ana = pd.concat([a1, a2], ignore_index=True)
    os.makedirs(CASE, exist_ok=True)
    ref.to_csv(os.path.join(CASE, "reference.csv"), index=False)
    ana.to_csv(os.path.join(CASE, "analysis.csv"), index=False)
    ref = pd.read_csv(os.path.join(CASE, "reference.csv"), float_precision="round_trip")
    ana = pd.read_csv(os.path.join(CASE, "analysis.csv"), float_precision="round_trip")

    proba = {c: f"y_pred_proba_{c}" for c in CLASSES}
    common = dict(problem_type="classification_multiclass", y_pred_proba=proba, y_pred="y_pred",
                  y_true="y_true", metrics=METRICS, chunk_size=CHUNK_SIZE)
    est = nml.CBPE(**common)
    est.fit(ref)
    df = est.estimate(ana.drop(columns=["y_true"])).to_df()
    pc = nml.PerformanceCalculator(**common)
    pc.fit(ref)
    realised = pc.calculate(ana).to_df()
    fields = ["value", "sampling_error", "upper_confidence_boundary", "lower_confidence_boundary",
              "upper_threshold", "lower_threshold", "alert"]
    rename = {"value": "estimated", "upper_confidence_boundary": "upper_confidence_bound",
              "lower_confidence_boundary": "lower_confidence_bound"}
    metrics = {}
    for m in METRICS:
        rows = rows_of(df, m, fields, rename)
        real = {(r["period"], r["chunk_index"]): r["value"]
                for r in rows_of(realised, m, ["value"], {})}
        ref_real = {(r["period"], r["chunk_index"]): r["realized"]
                    for r in rows_of(df, m, ["realized"], {})}
        for r in rows:
            key = (r["period"], r["chunk_index"])
            r["realized"] = ref_real.get(key) if r["period"] == "reference" else real.get(key)
        metrics[m] = {"chunks": rows}
    expected = {
        "versions": {"nannyml": nml.__version__, "pandas": pd.__version__, "numpy": np.__version__,
                     "scikit-learn": sklearn.__version__, "python": sys.version.split()[0]},
        "seed": SEED,
        "classes": CLASSES,
        "cbpe": {
            "parameters": {**{k: v for k, v in common.items()}, "calibration": "isotonic (default), per class",
                           "thresholds": "StandardDeviationThreshold(3, 3) (default)",
                           "estimate_called_on": "analysis.csv with the y_true column dropped"},
            "calibrators": {c: type(k).__name__ for c, k in est._calibrators.items()},
            "metrics": metrics,
        },
    }
    with open(os.path.join(CASE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, allow_nan=False)
    for m in METRICS:
        print(m, [(round(r["estimated"], 3), round(r["realized"], 3), r["alert"])
                  for r in metrics[m]["chunks"] if r["period"] == "analysis"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
