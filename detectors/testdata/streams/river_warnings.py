"""Writes river_warnings.json: the indices where river 0.26.1's binary detectors (defaults)
report a warning without a drift. expected.json (copied from the shared conformance data) holds
the drift indices; this file extends the parity check to warnings.

Run with river==0.26.1 installed: python river_warnings.py
"""
import json

from river.drift import binary

detectors = {"DDM": binary.DDM, "EDDM": binary.EDDM, "HDDM_A": binary.HDDMA}
out = {}
for stream in ["error_rate_jump", "error_rate_stable"]:
    xs = [int(float(line)) for line in open(f"{stream}.txt") if line.strip()]
    out[stream] = {}
    for name, make in detectors.items():
        d = make()
        warnings = []
        for i, x in enumerate(xs):
            d.update(x)
            if d.warning_detected and not d.drift_detected:
                warnings.append(i)
        out[stream][name] = warnings
with open("river_warnings.json", "w") as f:
    json.dump({"generated_with": "river 0.26.1", "warnings": out}, f)
    f.write("\n")
