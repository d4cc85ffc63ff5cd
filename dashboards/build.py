#!/usr/bin/env python3
"""Writes the Grafana dashboards of dashboards/*.json from the panel lists below.

The JSON files are committed; edit this file and run `python3 dashboards/build.py` to change
them (dashboards/check.py fails when a JSON file differs from what this script writes).
Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39

# Label filters shared by the panels. Machine series carry the promoted resource attributes
# (site.name -> site_name, ...); detector series carry model and version.
SITE = 'site_name=~"$site", site_line=~"$line"'
HOST = f'{SITE}, host_name=~"$host"'
MODEL = 'model=~"$model", version=~"$version"'
COLLECTOR = 'instance=~"$collector"'


# --- template variables ------------------------------------------------------------------
def datasource_var() -> dict:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def query_var(name: str, label: str, query: str, multi: bool = True, all_value: str | None = ".*") -> dict:
    var = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"var-{name}"},
        "refresh": 2,  # on time range change
        "includeAll": True,
        "allValue": ".*",
        "multi": multi,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "regex": "",
        "options": [],
    }
    if all_value is None:
        # "All" is then the list of the variable's values, so a filter upstream (site, line)
        # still applies when every model is selected.
        del var["allValue"]
    return var


def textbox_var(name: str, label: str, default: str, description: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "textbox",
        "description": description,
        "query": default,
        "current": {"selected": False, "text": default, "value": default},
        "options": [{"selected": True, "text": default, "value": default}],
        "hide": 0,
    }


def site_vars(metric: str) -> list[dict]:
    return [
        query_var("site", "Site", f"label_values({metric}, site_name)"),
        query_var("line", "Line", f'label_values({metric}{{site_name=~"$site"}}, site_line)'),
    ]


def model_vars() -> list[dict]:
    """Site, line, model and version. Detector series carry model and version only; the
    model and version choices come from millwatch_model_info, which says where each model
    version runs, so the site and line filters narrow them."""
    at = 'site_name=~"$site", site_line=~"$line"'
    return [
        *site_vars("millwatch_model_info"),
        query_var("model", "Model", f"label_values(millwatch_model_info{{{at}}}, model)", all_value=None),
        query_var("version", "Version", f'label_values(millwatch_model_info{{{at}, model=~"$model"}}, version)',
                  all_value=None),
    ]


# --- panels ------------------------------------------------------------------------------
class Layout:
    """Places panels left to right on a 24-column grid, wrapping to a new row."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels: list[dict] = []

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append(
            {
                "id": self.next_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self.next_id += 1
        self.y += 1


def targets(queries: list[tuple[str, str]], instant: bool = False, table: bool = False) -> list[dict]:
    out = []
    for i, (expr, legend) in enumerate(queries):
        t = {"datasource": DS, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend or "__auto"}
        if instant:
            t["instant"] = True
            t["range"] = False
        if table:
            t["format"] = "table"
        out.append(t)
    return out


def thresholds(steps: list[tuple[float | None, str]]) -> dict:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def stat(title: str, expr: str, unit: str = "short", steps=None, description: str = "") -> dict:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets([(expr, "")], instant=True),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": thresholds(steps or [(None, "green")]),
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        },
    }


def timeseries(
    title: str,
    queries: list[tuple[str, str]],
    unit: str = "short",
    description: str = "",
    steps=None,
    stack: bool = False,
    overrides: list[dict] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> dict:
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10 if stack else 0,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line" if steps else "off"},
    }
    defaults = {
        "unit": unit,
        "custom": custom,
        "color": {"mode": "palette-classic"},
        "thresholds": thresholds(steps or [(None, "green")]),
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def dashed(name_regex: str, color: str) -> dict:
    """An override drawing the series whose display name matches as a dashed line (limits)."""
    return {
        "matcher": {"id": "byRegexp", "options": name_regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
        ],
    }


def table(title: str, queries: list[tuple[str, str]], description: str = "", unit: str = "short",
          steps=None, hide: list[str] | None = None) -> dict:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets(queries, instant=True, table=True),
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True, **{h: True for h in hide or []}}}},
        ],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": thresholds(steps or [(None, "green")]),
                "custom": {"cellOptions": {"type": "color-text"}, "filterable": True},
            },
            "overrides": [],
        },
        "options": {"showHeader": True, "cellHeight": "sm"},
    }


def state_timeline(title: str, queries: list[tuple[str, str]], description: str = "", steps=None,
                   mappings: list[dict] | None = None) -> dict:
    return {
        "type": "state-timeline",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets(queries),
        "fieldConfig": {
            "defaults": {
                "thresholds": thresholds(steps or [(None, "green"), (1, "red")]),
                "color": {"mode": "thresholds"},
                "mappings": mappings or [],
            },
            "overrides": [],
        },
        "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
    }


def heatmap(title: str, expr: str, description: str = "", unit: str = "s") -> dict:
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [{"datasource": DS, "refId": "A", "expr": expr, "format": "heatmap",
                     "legendFormat": "{{le}}"}],
        "options": {
            "calculate": False,
            "yAxis": {"unit": unit},
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "tooltip": {"show": True, "yHistogram": True},
        },
        "fieldConfig": {"defaults": {}, "overrides": []},
    }


def dashboard(uid: str, title: str, description: str, tags: list[str], variables: list[dict],
              layout: Layout, links: bool = True) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["millwatch", *tags],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {"title": "Millwatch", "type": "dashboards", "tags": ["millwatch"], "asDropdown": True,
             "includeVars": True, "keepTime": True}
        ] if links else [],
        "templating": {"list": [datasource_var(), *variables]},
        "panels": layout.panels,
    }


RED_AT = lambda v: [(None, "green"), (v, "red")]  # noqa: E731
WARN_AT = lambda w, r: [(None, "green"), (w, "orange"), (r, "red")]  # noqa: E731
NOT_OK_MAPPING = [{"type": "value", "options": {"0": {"text": "ok", "color": "green"},
                                                 "1": {"text": "drift", "color": "red"}}}]


# --- the dashboards ----------------------------------------------------------------------
def fleet_overview() -> dict:
    lay = Layout()
    lay.row("At a glance")
    lay.add(stat("Models", "count(count by (model) (millwatch_drift_share))",
                 description="Models with at least one closed detection window."), 3, 4)
    lay.add(stat("Model versions", "count(count by (model, version) (millwatch_drift_share))"), 3, 4)
    lay.add(stat("Versions with drift", f"count(millwatch_drift_share{{{MODEL}}} > 0) or vector(0)",
                 steps=RED_AT(1), description="Versions whose last window flagged at least one feature."), 3, 4)
    lay.add(stat("Versions performing worse", f"count(max by (model, version) (millwatch_model_performance_degraded{{{MODEL}}}) == 1) or vector(0)",
                 steps=RED_AT(1), description="Versions whose newest labelled window performs significantly worse than the baseline."), 3, 4)
    lay.add(stat("Machines reporting", f"count(count by (host_name) (hw_temperature_celsius{{{SITE}}})) or vector(0)"), 3, 4)
    lay.add(stat("Components not ok", f'count(hw_status_ratio{{{SITE}, hw_state!="ok"}} == 1) or vector(0)',
                 steps=RED_AT(1), description="hw.status series whose current state is not `ok`."), 3, 4)
    lay.add(stat("Machine-health rules firing", "sum(millwatch_machine_health_alert) or vector(0)", steps=RED_AT(1)), 3, 4)
    lay.add(stat("Items stored / s", "sum(rate(millwatch_receiver_items_stored_total[$__rate_interval]))",
                 unit="ops", description="Data points, log records and spans committed by all collectors."), 3, 4)
    lay.row("Models")
    lay.add(table(
        "Models and versions",
        [
            (f"max by (model, version) (millwatch_drift_share{{{MODEL}}})", ""),
            (f"sum by (model, version) (millwatch_drift_detected{{{MODEL}}})", ""),
            (f"sum by (model, version) (increase(millwatch_detection_windows_total{{{MODEL}}}[$__range]))", ""),
        ],
        description="Share of drifted features and drifted features in the last window, windows closed in the time range.",
    ) | {"fieldConfig": {"defaults": {"unit": "short", "custom": {"filterable": True}}, "overrides": [
        {"matcher": {"id": "byName", "options": "Value #A"},
         "properties": [{"id": "displayName", "value": "drift share"}, {"id": "unit", "value": "percentunit"},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": thresholds([(None, "green"), (0.000001, "orange"), (0.5, "red")])}]},
        {"matcher": {"id": "byName", "options": "Value #B"},
         "properties": [{"id": "displayName", "value": "drifted features"}]},
        {"matcher": {"id": "byName", "options": "Value #C"},
         "properties": [{"id": "displayName", "value": "windows"}, {"id": "decimals", "value": 0}]},
    ]}}, 14, 9)
    lay.add(state_timeline(
        "Drift by model version",
        [(f"max by (model, version) (millwatch_drift_share{{{MODEL}}})", "{{model}} {{version}}")],
        description="Share of drifted features per window (green: none).",
        steps=[(None, "green"), (0.000001, "orange"), (0.5, "red")],
    ), 10, 9)
    lay.add(timeseries(
        "Realised performance",
        [(f"millwatch_model_performance{{{MODEL}}}", "{{model}} {{version}} {{metric}}")],
        description="Per window, once feedback has arrived.",
    ), 12, 8)
    lay.add(timeseries(
        "Detection windows closed / min",
        [(f"sum by (model, version) (rate(millwatch_detection_windows_total{{{MODEL}}}[$__rate_interval])) * 60",
          "{{model}} {{version}}")],
    ), 12, 8)
    lay.row("Environments and machines")
    lay.add(table(
        "Services by environment",
        [(f"count by (deployment_environment_name, job) (target_info{{{SITE}}})", "")],
        description="OTLP resources seen by Millwatch (`target_info`), by `deployment.environment.name`.",
        hide=["Value"],
    ), 8, 8)
    lay.add(table(
        "Machines by site and line",
        [(f"count by (site_name, site_line, host_name) (hw_temperature_celsius{{{SITE}}})", "")],
        description="Hosts sending hw.temperature, with the number of sensors.",
    ), 8, 8)
    lay.add(table(
        "Components not ok",
        [(f'hw_status_ratio{{{SITE}, hw_state!="ok"}} == 1', "")],
        description="hw.status: one row per component whose current state is not ok.",
        hide=["Value", "__name__", "otel_scope_name", "otel_scope_version", "instance"],
    ), 8, 8)
    return dashboard("millwatch-fleet", "Millwatch / Fleet overview",
                     "Models, versions, environments and machines at a glance.", ["overview"],
                     model_vars(), lay)


def model_drift() -> dict:
    lay = Layout()
    feature_var = query_var(
        "feature", "Feature", f"label_values(millwatch_drift_statistic{{{MODEL}}}, feature)")
    sel = f'{MODEL}, feature=~"$feature"'
    lay.add(stat("Share of drifted features", f"max(millwatch_drift_share{{{MODEL}}})", unit="percentunit",
                 steps=WARN_AT(0.000001, 0.5)), 6, 4)
    lay.add(stat("Drifted features", f"sum(millwatch_drift_detected{{{sel}}}) or vector(0)", steps=RED_AT(1)), 6, 4)
    lay.add(stat("Features monitored", f"count(count by (feature) (millwatch_drift_statistic{{{sel}}}))"), 6, 4)
    lay.add(stat("Windows closed in range",
                 f"sum(increase(millwatch_detection_windows_total{{{MODEL}}}[$__range]))"), 6, 4)
    lay.add(timeseries(
        "Drift statistic per feature",
        [(f"millwatch_drift_statistic{{{sel}}}", "{{feature}} ({{test}})"),
         (f'millwatch_drift_threshold{{{sel}, test!~"ks|mannwhitney|chisquare|ztest"}}', "threshold {{feature}} ({{test}})")],
        description="The test statistic of each feature in each closed window, with the threshold of each distance "
                    "test dashed (p-value tests decide on their p-value, so their threshold is not a statistic).",
        overrides=[dashed("threshold .*", "red")],
    ), 24, 10)
    lay.add(timeseries(
        "Share of drifted features",
        [(f"millwatch_drift_share{{{MODEL}}}", "{{model}} {{version}}")],
        unit="percentunit", minimum=0, maximum=1,
    ), 12, 8)
    lay.add(state_timeline(
        "Drift verdict per feature",
        [(f"max by (feature) (millwatch_drift_detected{{{sel}}})", "{{feature}}")],
        mappings=NOT_OK_MAPPING,
    ), 12, 8)
    lay.add(table(
        "Last window",
        [(f"millwatch_drift_statistic{{{sel}}}", ""), (f"millwatch_drift_detected{{{sel}}}", "")],
        hide=["__name__", "instance", "job"],
    ) | {"fieldConfig": {"defaults": {"custom": {"filterable": True}}, "overrides": [
        {"matcher": {"id": "byName", "options": "Value #A"}, "properties": [{"id": "displayName", "value": "statistic"}]},
        {"matcher": {"id": "byName", "options": "Value #B"},
         "properties": [{"id": "displayName", "value": "drift"}, {"id": "mappings", "value": NOT_OK_MAPPING},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}}]},
    ]}}, 24, 9)
    return dashboard("millwatch-drift", "Millwatch / Model drift",
                     "Drift statistic per feature against its threshold, and the share of drifted features.",
                     ["models", "drift"], [*model_vars(), feature_var], lay)


def window_vs_baseline(title: str, metric: str, by: str, unit: str = "short") -> dict:
    """A table of a prediction-distribution series: one row per model, version and `by`, the last
    window's value and the baseline's side by side."""
    side = lambda window: (f'max by (model, version, {by}) ({metric}{{{MODEL}, window="{window}"}})', "")  # noqa: E731
    named = lambda ref, name: {"matcher": {"id": "byName", "options": ref},  # noqa: E731
                               "properties": [{"id": "displayName", "value": name}]}
    return table(title, [side("current"), side("baseline")], unit=unit) | {"fieldConfig": {
        "defaults": {"unit": unit, "custom": {"filterable": True}},
        "overrides": [named("Value #A", "last window"), named("Value #B", "baseline")]}}


def model_performance() -> dict:
    lay = Layout()
    metric_var = query_var(
        "metric", "Metric", f"label_values(millwatch_model_performance{{{MODEL}}}, metric)")
    sel = f'{MODEL}, metric=~"$metric"'
    lay.add(timeseries(
        "Realised performance",
        [(f"millwatch_model_performance{{{sel}}}", "{{model}} {{version}} {{metric}}")],
        description="Computed per window once its feedback (ground truth) has arrived; late feedback updates past windows.",
    ), 16, 10)
    lay.add(table(
        "Last value",
        [(f"millwatch_model_performance{{{sel}}}", "")],
        hide=["__name__", "instance", "job"],
    ), 8, 10)
    lay.add(timeseries(
        "Prediction drift",
        [(f'millwatch_drift_statistic{{{MODEL}, feature="ml.prediction"}}', "{{model}} {{version}} ({{test}})"),
         (f'millwatch_drift_threshold{{{MODEL}, feature="ml.prediction", test!~"ks|mannwhitney|chisquare|ztest"}}',
          "threshold {{model}} {{version}} ({{test}})")],
        description="How far the distribution of the model's predictions (column ml.prediction) moved from the baseline, per window.",
        overrides=[dashed("threshold .*", "red")],
    ), 12, 8)
    lay.add(state_timeline(
        "Prediction drift verdict",
        [(f'max by (model, version) (millwatch_drift_detected{{{MODEL}, feature="ml.prediction"}})', "{{model}} {{version}}")],
        mappings=NOT_OK_MAPPING,
    ), 12, 8)
    lay.add(state_timeline(
        "Performance significantly worse than baseline",
        [(f"max by (model, version, metric) (millwatch_model_performance_degraded{{{sel}}})",
          "{{model}} {{version}} {{metric}}")],
        mappings=[{"type": "value", "options": {"0": {"text": "as baseline", "color": "green"},
                                                 "1": {"text": "degraded", "color": "red"}}}],
    ), 12, 8)
    lay.add(timeseries(
        "Windows closed / min",
        [(f"sum by (model, version) (rate(millwatch_detection_windows_total{{{MODEL}}}[$__rate_interval])) * 60",
          "{{model}} {{version}}")],
    ), 12, 8)
    lay.row("Before labels arrive: estimated performance and multivariate drift")
    lay.add(timeseries(
        "Estimated performance, its band and thresholds, realised beside it",
        [(f"millwatch_model_performance_estimated{{{sel}}}", "estimated {{model}} {{version}} {{metric}}"),
         (f"millwatch_model_performance_estimated_bound{{{sel}}}", "band {{bound}} {{model}} {{version}} {{metric}}"),
         (f"millwatch_model_performance_estimated_threshold{{{sel}}}",
          "threshold {{side}} {{model}} {{version}} {{metric}}"),
         (f"millwatch_model_performance{{{sel}}}", "realised {{model}} {{version}} {{metric}}")],
        description="Estimated from each closed window before its labels arrive: CBPE from a binary classifier's "
                    "scores (accuracy, precision, recall, F1, specificity, ROC AUC), DLE from a regressor's features "
                    "(MAE, RMSE). The band is the estimate +/- 3 sampling errors (dotted gray), the thresholds come "
                    "from the baseline's own chunks (dashed red). The realised value is drawn once the window's "
                    "labels are in: it should fall within the band. Concept drift (only P(y|x) changes) shows in the "
                    "realised value only.",
        overrides=[dashed("threshold .*", "red"), dashed("band .*", "gray")],
    ), 16, 10)
    lay.add(state_timeline(
        "Estimated performance beyond its threshold",
        [(f"max by (model, version, metric) (millwatch_model_performance_estimated_dropped{{{sel}}})",
          "{{model}} {{version}} {{metric}}")],
        description="1 (red) when a window's estimated metric fell below its lower threshold (classifier) or its "
                    "estimated error rose above its upper threshold (regressor): alert MillwatchEstimatedPerformanceDrop.",
        mappings=[{"type": "value", "options": {"0": {"text": "as baseline", "color": "green"},
                                                 "1": {"text": "estimated drop", "color": "orange"}}}],
    ), 8, 10)
    lay.add(timeseries(
        "Multivariate drift: PCA reconstruction error",
        [(f"millwatch_multivariate_drift_reconstruction_error{{{MODEL}}}", "{{model}} {{version}}"),
         (f"millwatch_multivariate_drift_threshold{{{MODEL}}}", "threshold {{side}} {{model}} {{version}}")],
        description="Mean distance of each window's (standardised) features from their reconstruction through the "
                    "baseline's principal components (65 % of the variance). It rises when the features stop relating "
                    "as in the baseline (a broken correlation), even where each feature alone looks unchanged.",
        overrides=[dashed("threshold .*", "red")],
    ), 16, 8)
    lay.add(state_timeline(
        "Multivariate drift verdict",
        [(f"max by (model, version) (millwatch_multivariate_drift_detected{{{MODEL}}})", "{{model}} {{version}}")],
        mappings=NOT_OK_MAPPING,
    ), 8, 8)
    lay.row("Prediction distribution")
    lay.add(timeseries(
        "Prediction quantiles: last window and baseline",
        [(f'millwatch_prediction{{{MODEL}, quantile=~"0.05|0.25|0.5|0.75|0.95"}}',
          "{{window}} q{{quantile}} {{model}} {{version}}")],
        overrides=[dashed("baseline .*", "gray")],
        description="Numeric predictions (millwatch_prediction, a summary): quantiles of each closed window (current) "
                    "and of the baseline (dashed), updated when a window closes.",
    ), 12, 9)
    lay.add(timeseries(
        "Prediction class shares: last window and baseline",
        [(f"millwatch_prediction_class_ratio{{{MODEL}}}", "{{window}} {{class}} {{model}} {{version}}")],
        unit="percentunit", minimum=0, maximum=1, overrides=[dashed("baseline .*", "gray")],
        description="Class predictions: the share of each class in each closed window (current) and in the baseline "
                    "(dashed). The 10 most frequent classes are named, the rest summed as (other).",
    ), 12, 9)
    lay.add(window_vs_baseline("Quantiles, last window vs baseline", "millwatch_prediction", "quantile"), 12, 8)
    lay.add(window_vs_baseline("Class shares, last window vs baseline", "millwatch_prediction_class_ratio", "class",
                               unit="percentunit"), 12, 8)
    return dashboard("millwatch-performance", "Millwatch / Model performance",
                     "Realised model metrics from feedback and the prediction distribution against the baseline.",
                     ["models", "performance"], [*model_vars(), metric_var], lay)


def data_quality() -> dict:
    lay = Layout()
    feature_var = query_var(
        "feature", "Feature", f"label_values(millwatch_data_missing_ratio{{{MODEL}}}, feature)")
    sel = f'{MODEL}, feature=~"$feature"'
    lay.add(stat("Worst missing share", f"max(millwatch_data_missing_ratio{{{sel}}})", unit="percentunit",
                 steps=WARN_AT(0.01, 0.1)), 8, 4)
    lay.add(stat("Features with missing values", f"count(millwatch_data_missing_ratio{{{sel}}} > 0) or vector(0)",
                 steps=RED_AT(1)), 8, 4)
    lay.add(stat("Features checked", f"count(count by (model, version, feature) (millwatch_data_missing_ratio{{{sel}}}))"), 8, 4)
    lay.add(timeseries(
        "Missing share per feature",
        [(f"millwatch_data_missing_ratio{{{sel}}}", "{{model}} {{version}} {{feature}}")],
        unit="percentunit", minimum=0, steps=WARN_AT(0.01, 0.1),
        description="Share of events in the window where the feature was absent, empty or NaN.",
    ), 16, 10)
    lay.add(table(
        "Missing share, last window",
        [(f"sort_desc(millwatch_data_missing_ratio{{{sel}}})", "")],
        unit="percentunit", hide=["__name__", "instance", "job"],
    ), 8, 10)
    lay.add(timeseries(
        "Values failing a check",
        [(f"millwatch_data_quality_ratio{{{sel}}} > 0", "{{feature}} {{check}}")],
        unit="percentunit", minimum=0, steps=WARN_AT(0.01, 0.1),
        description="Per window: out_of_range (numeric values outside the baseline's range), new_category "
                    "(categories the baseline never had), type_mismatch (values of another type than the baseline's).",
    ), 16, 9)
    lay.add(table(
        "Features appeared or gone",
        [(f"millwatch_data_schema_change{{{MODEL}}} == 1", "")],
        description="Features of the last window that the baseline did not have (appeared) or that the window lacks (disappeared).",
        hide=["Value", "__name__", "instance", "job"],
    ), 8, 9)
    return dashboard("millwatch-data-quality", "Millwatch / Data quality",
                     "Missing, out-of-range, new-category and mistyped values, and schema changes, per detection window.",
                     ["models", "data-quality"], [*model_vars(), feature_var], lay)


def machine_health() -> dict:
    lay = Layout()
    host_var = query_var("host", "Host", f'label_values(hw_temperature_celsius{{{SITE}}}, host_name)')
    lay.add(stat("Hosts", f"count(count by (host_name) (hw_temperature_celsius{{{HOST}}})) or vector(0)"), 4, 4)
    lay.add(stat("Hottest component", f"max(hw_temperature_celsius{{{HOST}}})", unit="celsius",
                 steps=WARN_AT(70, 85)), 4, 4)
    lay.add(stat("Components not ok", f'count(hw_status_ratio{{{HOST}, hw_state!="ok"}} == 1) or vector(0)',
                 steps=RED_AT(1)), 4, 4)
    lay.add(stat("Rules firing", "(sum(millwatch_machine_health_alert) or vector(0)) + (sum(millwatch_control_chart_violation) or vector(0))",
                 steps=RED_AT(1), description="Machine-health rules and control-chart rules of the detection engine currently firing."), 4, 4)
    lay.add(stat("Max vibration (RMS)", f"max(machine_vibration_rms_mm_per_second{{{HOST}}})", unit="velocitymms",
                 steps=WARN_AT(4.5, 7.1), description="ISO 10816 zone boundaries as a guide."), 4, 4)
    lay.add(stat("Parts / min", f"sum(rate(machine_parts_produced_total{{{HOST}}}[$__rate_interval])) * 60"), 4, 4)
    lay.row("Sensors")
    lay.add(timeseries(
        "Temperature against limits",
        [(f"hw_temperature_celsius{{{HOST}}}", "{{host_name}} {{hw_id}}"),
         (f"hw_temperature_limit_celsius{{{HOST}}}", "limit {{host_name}} {{hw_id}} {{hw_limit_type}}")],
        unit="celsius", overrides=[dashed("limit .*", "red")],
        description="hw.temperature with the limits the hardware reports (hw.temperature.limit).",
    ), 12, 9)
    lay.add(timeseries(
        "Vibration (RMS velocity)",
        [(f"machine_vibration_rms_mm_per_second{{{HOST}}}", "{{host_name}} {{machine_id}}")],
        unit="velocitymms", steps=WARN_AT(4.5, 7.1),
    ), 12, 9)
    lay.add(timeseries(
        "Spindle load",
        [(f"machine_spindle_load_ratio{{{HOST}}}", "{{host_name}} {{machine_id}}")],
        unit="percentunit", minimum=0, steps=WARN_AT(0.8, 0.95),
    ), 12, 8)
    lay.add(timeseries(
        "Cycle time p50 / p95",
        [(f"histogram_quantile(0.5, sum by (le, host_name, machine_id) (rate(machine_cycle_duration_seconds_bucket{{{HOST}}}[$__rate_interval])))",
          "p50 {{host_name}} {{machine_id}}"),
         (f"histogram_quantile(0.95, sum by (le, host_name, machine_id) (rate(machine_cycle_duration_seconds_bucket{{{HOST}}}[$__rate_interval])))",
          "p95 {{host_name}} {{machine_id}}")],
        unit="s",
    ), 12, 8)
    lay.add(timeseries(
        "Parts produced / min",
        [(f"sum by (host_name, machine_id) (rate(machine_parts_produced_total{{{HOST}}}[$__rate_interval])) * 60",
          "{{host_name}} {{machine_id}}")],
    ), 12, 8)
    lay.add(timeseries(
        "Work queue",
        [(f"machine_queue_length{{{HOST}}}", "{{host_name}} {{machine_id}}")],
        description="machine.queue.length, an up-down counter (a gauge in Prometheus).",
    ), 12, 8)
    lay.row("Status and rules")
    lay.add(state_timeline(
        "Component status",
        [(f'max by (host_name, hw_id, hw_state) (hw_status_ratio{{{HOST}, hw_state!="ok"}})',
          "{{host_name}} {{hw_id}} {{hw_state}}")],
        description="hw.status: 1 while the component is in that (not ok) state.",
        mappings=[{"type": "value", "options": {"0": {"text": "no", "color": "green"},
                                                 "1": {"text": "yes", "color": "red"}}}],
    ), 12, 8)
    lay.add(state_timeline(
        "Control-chart violations",
        [("max by (metric, series, rule) (millwatch_control_chart_violation)", "{{metric}} {{series}} {{rule}}")],
        description="Shewhart / EWMA / CUSUM rules of the detection engine (1 while violated).",
        mappings=[{"type": "value", "options": {"0": {"text": "in control", "color": "green"},
                                                 "1": {"text": "violation", "color": "red"}}}],
    ), 12, 8)
    lay.add(state_timeline(
        "Machine-health rules",
        [("max by (rule, metric, series) (millwatch_machine_health_alert)", "{{rule}} {{metric}} {{series}}")],
        description="Thresholds with hysteresis, rate of change, charts and absence rules (1 while firing).",
        mappings=[{"type": "value", "options": {"0": {"text": "ok", "color": "green"},
                                                 "1": {"text": "firing", "color": "red"}}}],
    ), 24, 8)
    lay.row("Control charts")
    chart_var = query_var("chart_rule", "Chart rule", "label_values(millwatch_control_chart_center, health_rule)")
    rule = 'health_rule=~"$chart_rule"'
    limits = lambda sel: [  # noqa: E731
        (f"millwatch_control_chart_center{{{sel}}}", "centre {{health_rule}} {{series}}"),
        (f"millwatch_control_chart_upper_limit{{{sel}}}", "UCL {{health_rule}} {{series}}"),
        (f"millwatch_control_chart_lower_limit{{{sel}}}", "LCL {{health_rule}} {{series}}"),
    ]
    lay.add(timeseries(
        "Sensor against its control limits: $chart_rule",
        [(f'millwatch_control_chart_statistic{{{rule}, chart=~"shewhart|ewma"}}', "{{statistic}} {{health_rule}} {{series}}"),
         *limits(f'{rule}, chart=~"shewhart|ewma"')],
        overrides=[dashed("(UCL|LCL) .*", "red"), dashed("centre .*", "green")],
        description="Shewhart and EWMA charts of the detection engine: the measurement each chart took (value), the EWMA "
                    "(ewma), the centre line (the reference period's mean) and the control limits at the newest point "
                    "(Shewhart: mean ± 3σ; EWMA: its time-varying limits). One panel per chart rule.",
    ) | {"repeat": "chart_rule", "repeatDirection": "h", "maxPerRow": 2}, 12, 9)
    lay.add(timeseries(
        "CUSUM sums against the decision interval",
        [(f'millwatch_control_chart_statistic{{{rule}, chart="cusum", statistic=~"cusum_.*"}}',
          "{{statistic}} {{health_rule}} {{series}}"),
         *limits(f'{rule}, chart="cusum"')[1:]],
        overrides=[dashed("(UCL|LCL) .*", "red")],
        description="C+ (cusum_upper) against +hσ and −C− (cusum_lower) against −hσ: a sum past its limit is a sustained "
                    "shift up or down.",
    ), 12, 9)
    return dashboard("millwatch-machines", "Millwatch / Machine health",
                     "Shop-floor sensors with their limits, component status and control-chart rules.",
                     ["machines"], [*site_vars("hw_temperature_celsius"), host_var, chart_var], lay)


def collector() -> dict:
    lay = Layout()
    collector_var = query_var("collector", "Collector", "label_values(millwatch_receiver_requests_total, instance)")
    c = COLLECTOR
    lay.add(stat("Items stored / s", f"sum(rate(millwatch_receiver_items_stored_total{{{c}}}[$__rate_interval]))",
                 unit="ops"), 4, 4)
    lay.add(stat("Requests refused / s",
                 f"sum(rate(millwatch_receiver_requests_refused_total{{{c}}}[$__rate_interval]))",
                 unit="reqps", steps=RED_AT(0.001)), 4, 4)
    lay.add(stat("Items rejected / s", f"sum(rate(millwatch_receiver_items_rejected_total{{{c}}}[$__rate_interval]))",
                 unit="ops", steps=RED_AT(0.001)), 4, 4)
    lay.add(stat("Queue fill", f"max(millwatch_queue_rows{{{c}}} / millwatch_queue_capacity_rows{{{c}}})",
                 unit="percentunit", steps=WARN_AT(0.5, 0.9)), 4, 4)
    lay.add(stat("Mean commit latency",
                 f"sum(rate(millwatch_store_commit_duration_seconds_sum{{{c}}}[$__rate_interval])) / sum(rate(millwatch_store_commit_duration_seconds_count{{{c}}}[$__rate_interval]))",
                 unit="s", steps=WARN_AT(0.25, 1)), 4, 4)
    lay.add(stat("Series dropped (cardinality)",
                 f"sum(increase(millwatch_prometheus_series_dropped_total{{{c}}}[$__range])) or vector(0)",
                 steps=RED_AT(1)), 4, 4)
    lay.row("Ingest")
    lay.add(timeseries(
        "Requests / s",
        [(f"sum by (signal, protocol) (rate(millwatch_receiver_requests_total{{{c}}}[$__rate_interval]))",
          "{{signal}} {{protocol}}")], unit="reqps",
    ), 8, 8)
    lay.add(timeseries(
        "Items / s",
        [(f"sum by (signal) (rate(millwatch_receiver_items_received_total{{{c}}}[$__rate_interval]))", "received {{signal}}"),
         (f"sum by (signal) (rate(millwatch_receiver_items_stored_total{{{c}}}[$__rate_interval]))", "stored {{signal}}"),
         (f"sum by (signal) (rate(millwatch_receiver_items_rejected_total{{{c}}}[$__rate_interval]))", "rejected {{signal}}")],
        unit="ops",
    ), 8, 8)
    lay.add(timeseries(
        "Refused requests / s by reason",
        [(f"sum by (reason, signal) (rate(millwatch_receiver_requests_refused_total{{{c}}}[$__rate_interval])) > 0",
          "{{reason}} {{signal}}")], unit="reqps", stack=True,
        description="queue_full is backpressure (clients retry); malformed, too_large and unsupported_media_type are client errors.",
    ), 8, 8)
    lay.row("Queue and store")
    lay.add(timeseries(
        "Queue",
        [(f"millwatch_queue_rows{{{c}}}", "rows {{instance}}"),
         (f"millwatch_queue_capacity_rows{{{c}}}", "capacity {{instance}}"),
         (f"millwatch_store_journal_rows{{{c}}}", "journaled {{instance}}"),
         (f"millwatch_store_journal_capacity_rows{{{c}}}", "journal capacity {{instance}}")],
        overrides=[dashed(".*capacity.*", "red")],
        description="Rows waiting for the store (past capacity: 429), and rows acknowledged from the journal waiting for their DuckDB commit (past its capacity: 503).",
    ), 8, 8)
    lay.add(timeseries(
        "Commits / s and rows / s",
        [(f"sum(rate(millwatch_store_commits_total{{{c}}}[$__rate_interval]))", "commits"),
         (f"sum(rate(millwatch_store_committed_rows_total{{{c}}}[$__rate_interval]))", "rows")],
        unit="ops", overrides=[{"matcher": {"id": "byName", "options": "rows"},
                                "properties": [{"id": "custom.axisPlacement", "value": "right"}]}],
    ), 8, 8)
    lay.add(timeseries(
        "Commit latency",
        [(f"histogram_quantile(0.5, sum by (le) (rate(millwatch_store_commit_duration_seconds_bucket{{{c}}}[$__rate_interval])))", "p50"),
         (f"histogram_quantile(0.99, sum by (le) (rate(millwatch_store_commit_duration_seconds_bucket{{{c}}}[$__rate_interval])))", "p99")],
        unit="s", minimum=0,
        description="Group-commit latency quantiles from millwatch_store_commit_duration_seconds.",
    ), 8, 8)
    lay.row("Remote write")
    lay.add(timeseries(
        "Remote-write samples / s",
        [(f"sum by (url) (rate(millwatch_remote_write_samples_sent_total{{{c}}}[$__rate_interval]))", "sent {{url}}"),
         (f"sum by (url) (rate(millwatch_remote_write_samples_rejected_total{{{c}}}[$__rate_interval]))", "rejected {{url}}"),
         (f"sum by (url) (rate(millwatch_remote_write_samples_refused_queue_full_total{{{c}}}[$__rate_interval]))",
          "refused, queue full {{url}}"),
         (f"sum by (url) (rate(millwatch_remote_write_requests_retried_total{{{c}}}[$__rate_interval]))", "retried sends {{url}}")],
        unit="ops",
        description="Rejected: the receiver refused them for good (4xx). Refused: the disk queue was full, so the OTLP request was answered 429.",
    ), 12, 8)
    lay.add(timeseries(
        "Remote-write queue fill",
        [(f"max by (url) (millwatch_remote_write_queue_bytes{{{c}}} / millwatch_remote_write_queue_max_bytes{{{c}}})", "{{url}}")],
        unit="percentunit", minimum=0, maximum=1, steps=WARN_AT(0.5, 0.9),
        description="Share of the disk queue in use: it grows while the receiver is down and drains once it is back.",
    ), 12, 8)
    lay.row("Prometheus exposition")
    lay.add(timeseries(
        "Series dropped by the cardinality limit",
        [(f"sum by (metric) (rate(millwatch_prometheus_series_dropped_total{{{c}}}[$__rate_interval]))", "{{metric}}")],
        description="`exporters.prometheus.max_series_per_metric` reached: points of new series are not exposed.",
    ), 12, 8)
    lay.add(timeseries(
        "OTLP points not exposed",
        [(f"sum by (reason) (rate(millwatch_prometheus_points_dropped_total{{{c}}}[$__rate_interval]))", "{{reason}}")],
        description="Delta up-down sums and delta exponential histograms (as the specification says), malformed points, type conflicts.",
    ), 12, 8)
    lay.row("Detection engine")
    lay.add(timeseries(
        "Detection lag (events)",
        [(f"millwatch_detection_lag_events{{{c}}}", "{{instance}}")],
        description="Stored inference events the detection engine has not read yet: a slow detector shows here, never as refused requests.",
    ), 8, 8)
    lay.add(timeseries(
        "Detection lag (age)",
        [(f"millwatch_detection_lag_seconds{{{c}}}", "{{instance}}")], unit="s",
    ), 8, 8)
    lay.add(timeseries(
        "Windows closed / min",
        [(f"sum by (model, version) (rate(millwatch_detection_windows_total{{{c}}}[$__rate_interval])) * 60",
          "{{model}} {{version}}")],
    ), 8, 8)
    lay.row("Alert deliveries")
    lay.add(timeseries(
        "Active alerts",
        [(f"sum by (state, severity) (millwatch_alerts{{{c}}})", "{{state}} {{severity}}")],
        description="Alerts pending or firing, by state and severity (`millwatch alerts` lists them).",
    ), 6, 8)
    lay.add(timeseries(
        "Delivery attempts / min",
        [(f"sum by (receiver, outcome) (rate(millwatch_notifications_total{{{c}}}[$__rate_interval])) * 60",
          "{{receiver}} {{outcome}}")],
        description="Retryable attempts are tried again with backoff; permanent ones are given up (see GET /api/v1/notifications).",
    ), 6, 8)
    lay.add(timeseries(
        "Notifications waiting",
        [(f"sum by (receiver) (millwatch_notification_queue{{{c}}})", "{{receiver}}")],
        description="Notifications in the outbox not delivered yet: it grows while a receiver is down.",
    ), 6, 8)
    lay.add(timeseries(
        "Queued → delivered p50 / p99",
        [(f"histogram_quantile(0.5, sum by (le, receiver) (rate(millwatch_notification_latency_seconds_bucket{{{c}}}[$__rate_interval])))",
          "p50 {{receiver}}"),
         (f"histogram_quantile(0.99, sum by (le, receiver) (rate(millwatch_notification_latency_seconds_bucket{{{c}}}[$__rate_interval])))",
          "p99 {{receiver}}")],
        unit="s",
        description="Time from a notification being queued to its delivery, retries included.",
    ), 6, 8)
    return dashboard("millwatch-collector", "Millwatch / Collector",
                     "The collector's own health: ingest, refusals, queue, store latency, exposition limits.",
                     ["self"], [collector_var], lay)


DASHBOARDS = {
    "fleet-overview.json": fleet_overview,
    "model-drift.json": model_drift,
    "model-performance.json": model_performance,
    "data-quality.json": data_quality,
    "machine-health.json": machine_health,
    "collector.json": collector,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run python3 dashboards/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
