"""The Grafana dashboards (dashboards/*.json): current with dashboards/build.py, well formed,
every PromQL expression accepted by `promtool check rules`, and the checker itself able to fail.
Which names are on /metrics is checked end to end in test_prometheus.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
sys.path.insert(0, str(DASHBOARDS))
import check  # noqa: E402  (dashboards/check.py)

TEMPLATE_VARS = {"site", "line", "model", "version"}


def test_promtool_check_rules_accepts_every_dashboard_expression(tmp_path):
    """promtool: Debian's prometheus package."""
    rules = tmp_path / "dashboards.rules.yaml"
    r = subprocess.run([sys.executable, str(DASHBOARDS / "check.py"), "--json", "--rules-out", str(rules)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout)
    assert summary["ok"] is True
    n = sum(d["expressions"] for d in summary["dashboards"].values())
    assert f"SUCCESS: {n} rules found" in summary["promtool"]
    assert rules.read_text().count("- record: ") == n
    assert all(d["metrics"] for d in summary["dashboards"].values())


def test_promtool_check_rules_refuses_a_broken_expression():
    """promtool: Debian's prometheus package. The check must be able to fail."""
    bad = check.Dashboard("bad.json", "bad", "bad")
    bad.expressions.append(check.Expression("bad.json", "panel 1", "x", check.expand('sum(rate(foo{a="$site"}[$__rate_interval])')))
    ok, output = check.check_rules([bad])
    assert not ok
    assert "unclosed left parenthesis" in output


def test_dashboards_are_what_build_py_writes():
    r = subprocess.run([sys.executable, str(DASHBOARDS / "build.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", sorted(DASHBOARDS.glob("*.json")), ids=lambda p: p.name)
def test_dashboard_shape(path):
    doc = json.loads(path.read_text())
    assert 36 <= doc["schemaVersion"] <= 41
    assert doc["uid"].startswith("millwatch-")
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = set()
    for p in check.walk_panels(doc["panels"]):
        assert p["id"] not in ids, f"duplicate panel id {p['id']}"
        ids.add(p["id"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            # every variable an expression uses is defined on the dashboard (or built in)
            for m in check.VAR_RE.finditer(t["expr"]):
                name = m.group(1) or m.group(2) or m.group(3)
                assert name in variables or name in check.BUILTINS, f"{p['title']}: ${name} undefined"
    # the site/line/model/version filters exist where their series are used
    text = path.read_text()
    for var in TEMPLATE_VARS:
        if f"${var}" in text:
            assert var in variables


def test_template_variables_for_site_line_model_version():
    defined = set()
    for path in DASHBOARDS.glob("*.json"):
        defined |= {v["name"] for v in json.loads(path.read_text())["templating"]["list"]}
    assert TEMPLATE_VARS <= defined


@pytest.mark.parametrize(
    "expr,names",
    [
        ('sum by (le) (rate(a_bucket{x="y", z=~"$site"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.95, sum without (instance) (rate(b[1m] offset 5m)))", {"b"}),
        ("x / on(job) group_left(version) y > bool 1e-3", {"x", "y"}),
        ('count(up{job="sum"} == 0) or vector(0)', {"up"}),
        ("scalar(c) * 60 and d unless e", {"c", "d", "e"}),
    ],
)
def test_metric_names_of_an_expression(expr, names):
    assert check.metric_names(check.expand(expr)) == names


def test_variable_queries():
    assert check.variable_expression('label_values(foo{a="b"}, site_name)') == 'foo{a="b"}'
    assert check.variable_expression("label_values(site_name)") is None
    assert check.variable_expression("query_result(topk(3, bar))") == "topk(3, bar)"


def test_exposed_names_need_a_sample():
    text = "# HELP a A.\n# TYPE a counter\n# HELP b_total B.\n# TYPE b_total counter\nb_total{x=\"1\"} 3\nc 1 1700000000000\n"
    assert check.exposed_names(text) == {"b_total", "c"}
