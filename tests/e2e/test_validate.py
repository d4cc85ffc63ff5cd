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


MISSING_FILES = """\
detection:
  models:
    - name: press
      baseline:
        file: reference.csv
alerting:
  receivers:
    mail:
      type: email
      host: 127.0.0.1
      tls_ca_file: certs/plant-ca.pem
      from: mw@plant.example
      to: [ops@plant.example]
  route:
    receiver: mail
"""


def test_validate_reports_files_the_config_names_that_are_not_there(tmp_path):
    """A baseline file or CA file that does not exist is an error at the line of its key, with
    the path it was resolved to (against the config file's folder) — not at the first event."""
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "millwatch.yaml"
    path.write_text(MISSING_FILES)
    p = subprocess.run([millwatch_bin(), "validate", "--config", str(path)], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert p.returncode == 1, p
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), f"a line without file:line:column, path or hint:\n{p.stderr}"
    by_path = {m["path"]: m for m in parsed}
    assert set(by_path) == {"detection.models[0].baseline.file", "alerting.receivers.mail.tls_ca_file"}, p.stderr
    baseline = by_path["detection.models[0].baseline.file"]
    assert (baseline["line"], baseline["column"]) == ("5", "9")
    assert baseline["message"] == f"file `reference.csv` ({folder / 'reference.csv'}) does not exist", p.stderr
    assert str(folder) in baseline["hint"] and "config file's folder" in baseline["hint"]
    ca = by_path["alerting.receivers.mail.tls_ca_file"]
    assert (ca["line"], ca["column"]) == ("11", "7")
    assert ca["message"] == f"file `certs/plant-ca.pem` ({folder / 'certs' / 'plant-ca.pem'}) does not exist"


def test_relative_file_paths_are_taken_from_the_config_folder_by_validate_and_run(tmp_path):
    """With the files next to the config, validate passes from another working directory, and
    the configuration `run` would use names the same resolved files."""
    folder = tmp_path / "conf"
    (folder / "certs").mkdir(parents=True)
    (folder / "reference.csv").write_text("vibration_rms\n1.0\n")
    (folder / "certs" / "plant-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    path = folder / "millwatch.yaml"
    path.write_text(MISSING_FILES)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = subprocess.run([millwatch_bin(), "validate", "--config", "../conf/millwatch.yaml"], capture_output=True,
                       text=True, timeout=60, cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "../conf/millwatch.yaml: ok"
    p = subprocess.run([millwatch_bin(), "run", "--config", "../conf/millwatch.yaml", "--print-config"],
                       capture_output=True, text=True, timeout=60, cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    assert str(folder / "reference.csv") in p.stdout, p.stdout
    assert str(folder / "certs" / "plant-ca.pem") in p.stdout, p.stdout
    # The same file seen from the working directory would not be there: it must not be used.
    assert str(elsewhere / "reference.csv") not in p.stdout
