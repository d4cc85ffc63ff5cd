#!/usr/bin/env python3
"""Checks the Grafana dashboards of this folder.

1. Every dashboard JSON is what dashboards/build.py writes (no hand edits that drift away).
2. Every PromQL expression — panel targets and the queries of template variables — with the
   template variables expanded to concrete values, goes into a Prometheus rules file, and
   `promtool check rules` must accept it: every expression parses.
3. The metric names each dashboard uses are listed; with --metrics-file/--metrics-url, every
   one must have at least one sample in that Prometheus exposition (text format).

    python3 dashboards/check.py                      # 1 + 2, prints the metric names
    python3 dashboards/check.py --metrics-url http://127.0.0.1:9464/metrics
    python3 dashboards/check.py --json               # machine-readable summary

Standard library only; needs `promtool` (Debian's `prometheus` package) on PATH or PROMTOOL.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Concrete values for Grafana's built-in interval variables.
BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "6h",
    "__range_s": "21600",
    "__range_ms": "21600000",
    "__interval_ms": "60000",
}
# A concrete value for every dashboard variable (they are used in =~ matchers).
VARIABLE_VALUE = "example"

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2", "start", "end",
}
VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENT_RE = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)")
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)")


@dataclass
class Expression:
    dashboard: str
    where: str  # "panel 3 'Title' A" or "variable model"
    raw: str
    expanded: str


@dataclass
class Dashboard:
    file: str
    uid: str
    title: str
    expressions: list[Expression] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        names: set[str] = set()
        for e in self.expressions:
            names |= metric_names(e.expanded)
        return sorted(names)


def expand(expr: str, values: dict[str, str] | None = None) -> str:
    """Replaces every variable: built-ins by an interval, textbox/custom/constant variables by
    their default, query variables by VARIABLE_VALUE."""
    values = values or {}

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return BUILTINS.get(name) or values.get(name) or VARIABLE_VALUE

    return VAR_RE.sub(sub, expr)


def variable_expression(query: str) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query, or None when it has none."""
    q = query.strip()
    m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", q, re.S)
    if m:
        return m.group(1)
    if re.fullmatch(r"label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)", q) or q.startswith(("label_names(", "metrics(")):
        return None
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return m.group(1)
    return q


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (no parser: strings, matchers, ranges and
    grouping clauses are cut out, then every identifier that is not a function call or a
    keyword is a metric name). `{__name__=...}` selectors are not supported on purpose."""
    if "__name__" in expr:
        raise ValueError(f"__name__ matchers are not supported: {expr}")
    s = STRING_RE.sub('""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = GROUPING_RE.sub(" ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names = set()
    for m in IDENT_RE.finditer(s):
        word = m.group(1)
        rest = s[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def walk_panels(panels: list[dict]):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def load(path: Path) -> Dashboard:
    doc = json.loads(path.read_text())
    d = Dashboard(file=path.name, uid=doc["uid"], title=doc["title"])
    variables = doc.get("templating", {}).get("list", [])
    values = {v["name"]: str(v["query"]).split(",")[0].strip() for v in variables
              if v.get("type") in ("textbox", "custom", "constant") and v.get("query")}
    for var in variables:
        if var.get("type") != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        inner = variable_expression(q)
        if inner is not None:
            d.expressions.append(Expression(d.file, f"variable {var['name']}", q, expand(inner, values)))
    for p in walk_panels(doc.get("panels", [])):
        for t in p.get("targets", []):
            expr = t.get("expr")
            if expr:
                where = f"panel {p.get('id')} '{p.get('title')}' {t.get('refId')}"
                d.expressions.append(Expression(d.file, where, expr, expand(expr, values)))
    return d


def load_all() -> list[Dashboard]:
    return [load(p) for p in sorted(HERE.glob("*.json"))]


def rules_yaml(dashboards: list[Dashboard]) -> str:
    """A Prometheus rules file: one group per dashboard, one recording rule per expression.
    JSON strings are valid YAML scalars, so no YAML library is needed."""
    lines = ["groups:"]
    for d in dashboards:
        lines.append(f"  - name: {json.dumps(d.uid)}")
        lines.append("    rules:")
        prefix = re.sub(r"[^a-zA-Z0-9_]", "_", d.uid)
        for i, e in enumerate(d.expressions):
            lines.append(f"      - record: dashboard:{prefix}:expr_{i}")
            lines.append(f"        expr: {json.dumps(e.expanded)}")
            lines.append(f"        labels: {{where: {json.dumps(e.where)}}}")
    return "\n".join(lines) + "\n"


def promtool() -> str:
    return os.environ.get("PROMTOOL", "promtool")


def check_rules(dashboards: list[Dashboard], rules_out: Path | None = None) -> tuple[bool, str]:
    """Runs `promtool check rules` on the generated file; (ok, promtool's output)."""
    text = rules_yaml(dashboards)
    if rules_out is not None:
        rules_out.write_text(text)
        path = rules_out
    else:
        fd, name = tempfile.mkstemp(prefix="millwatch-dashboards-", suffix=".rules.yaml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        path = Path(name)
    try:
        r = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    finally:
        if rules_out is None:
            path.unlink()
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def exposed_names(exposition: str) -> set[str]:
    """Names that have at least one sample line in a Prometheus text exposition."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if m:
            names.add(m.group(1))
    return names


def missing(dashboards: list[Dashboard], exposition: str) -> dict[str, list[str]]:
    have = exposed_names(exposition)
    out = {}
    for d in dashboards:
        gone = [m for m in d.metrics if m not in have]
        if gone:
            out[d.file] = gone
    return out


def build_is_current() -> tuple[bool, str]:
    r = subprocess.run([sys.executable, str(HERE / "build.py"), "--check"], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--metrics-file", type=Path, help="a /metrics text exposition to check the names against")
    src.add_argument("--metrics-url", help="fetch /metrics from this URL (text format)")
    ap.add_argument("--rules-out", type=Path, help="keep the generated rules file here")
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    args = ap.parse_args(argv)

    ok = True
    dashboards = load_all()
    current, why = build_is_current()
    if not current:
        ok = False
        print(why, file=sys.stderr)
    rules_ok, output = check_rules(dashboards, args.rules_out)
    if not rules_ok:
        ok = False
        print(f"promtool check rules failed:\n{output}", file=sys.stderr)
    exposition = None
    if args.metrics_file:
        exposition = args.metrics_file.read_text()
    elif args.metrics_url:
        req = urllib.request.Request(args.metrics_url, headers={"Accept": "text/plain;version=0.0.4"})
        with urllib.request.urlopen(req, timeout=30) as r:
            exposition = r.read().decode()
    gone = missing(dashboards, exposition) if exposition is not None else {}
    if gone:
        ok = False
    if args.json:
        print(json.dumps({
            "ok": ok,
            "promtool": output,
            "dashboards": {d.file: {"title": d.title, "expressions": len(d.expressions), "metrics": d.metrics}
                           for d in dashboards},
            "missing": gone,
        }, indent=2))
    else:
        for d in dashboards:
            print(f"{d.file} ({d.title}): {len(d.expressions)} expressions")
            for m in d.metrics:
                flag = "  MISSING" if m in gone.get(d.file, []) else ""
                print(f"  {m}{flag}")
        print(output)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
