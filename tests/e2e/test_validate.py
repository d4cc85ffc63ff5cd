"""`millwatch validate` on the real configuration: every mistake of a file reported at once, each
with file:line:column, its path in the file, and a hint; exit 1. A good file exits 0."""

from __future__ import annotations

import re
import subprocess

from collector import millwatch_bin

BROKEN = """\
receivers:
  otlp:
    grcp:
      endpoint: 0.0.0.0:4317
api:
  endpoint: localhost:9464
store:
  retention: 30 dys
detection:
  window_events: 0
  models:
    - name: spindle
      window_duration: 5m
      window_events: 100
"""

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<path>\S+): (?P<message>.+) \(hint: (?P<hint>.+)\)$")


def validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([millwatch_bin(), "validate", "--config", str(path)], capture_output=True, text=True, timeout=60)


def test_validate_reports_every_mistake_with_location_and_hint(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    p = validate(path)
    assert p.returncode == 1, p
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), f"a line without file:line:column, path or hint:\n{p.stderr}"
    by_path = {m["path"]: m for m in parsed}
    assert set(by_path) >= {"receivers.otlp.grcp", "api.endpoint", "store.retention", "detection.window_events",
                            "detection.models"}, p.stderr
    assert all(m["file"] == str(path) for m in parsed)
    assert by_path["receivers.otlp.grcp"]["line"] == "3"
    assert "grpc" in by_path["receivers.otlp.grcp"]["hint"], "the typo's hint names the right key"
    assert by_path["api.endpoint"]["line"] == "6" and "port" in by_path["api.endpoint"]["hint"]
    assert by_path["store.retention"]["line"] == "8" and "30s" in by_path["store.retention"]["hint"]
    assert by_path["detection.window_events"]["line"] == "10"
    assert "cannot be combined" in by_path["detection.models"]["message"]


def test_validate_accepts_a_good_file(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("store:\n  retention: 7d\ndetection:\n  models:\n    - name: spindle\n      window_duration: 5m\n")
    p = validate(path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{path}: ok"
