"""The dashboard and the usage/quota alarms: the dashboard body is valid JSON once substituted,
every metric it and the alarms read from our namespace is one the code emits, and every alarm
and gauge is documented in docs/operations.md with a runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[2]
OPS = (REPO / "docs/operations.md").read_text()


def template() -> dict[str, Any]:
    return dict(cfn_yaml.load(str(REPO / "template.yaml")))


def emitted_metric_names() -> set[str]:
    """Every metric name the code passes to Powertools (add_metric or a (name, unit, value) gauge)."""
    names: set[str] = set()
    for path in [*REPO.glob("functions/*/app.py"), *REPO.glob("shared/storekeeper/**/*.py")]:
        text = path.read_text()
        names |= set(re.findall(r'name="([A-Z][A-Za-z]+)"', text))
        names |= set(re.findall(r'\("([A-Z][A-Za-z]+)", MetricUnit\.', text))
        names |= set(re.findall(r'"([A-Z][A-Za-z]+)",\s*MetricUnit\.', text))
        names |= set(re.findall(r'"(DaysTo[A-Za-z]+)"', text))  # the forecast gauges, by name
    return names


def dashboard_body() -> dict[str, Any]:
    dash = template()["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    body, values = dash["Fn::Sub"]
    subst = {k: f"<{k}>" for k in values} | {"Stage": "dev", "AWS::Region": "us-east-1"}
    text = re.sub(r"\$\{([^}!]+)\}", lambda m: subst.get(m[1], m[0]), body)
    assert "${" not in text, re.findall(r"\$\{[^}]+\}", text)
    return dict(json.loads(text))


def test_dashboard_body_is_valid_json_and_reads_only_metrics_we_emit() -> None:
    body = dashboard_body()
    emitted = emitted_metric_names()
    ours: set[str] = set()
    for w in body["widgets"]:
        for row in w.get("properties", {}).get("metrics", []):
            if isinstance(row[0], dict):  # an expression: SEARCH(... MetricName="X" ...)
                ours |= set(re.findall(r'MetricName="([A-Za-z]+)"', row[0]["expression"]))
            elif row[0] == "<Ns>":
                ours.add(row[1])
    assert len(body["widgets"]) >= 8
    assert ours
    assert ours - emitted - {"ColdStart"} == set()


@pytest.mark.parametrize(
    "name", ["UsageAboveHighWatermarkAlarm", "VectorQuotaReachedAlarm", "ReaperDeferredAlarm"]
)
def test_usage_and_quota_alarms_watch_metrics_the_reaper_emits(name: str) -> None:
    p = template()["Resources"][name]["Properties"]
    assert p["MetricName"] in emitted_metric_names(), name
    assert p["Dimensions"] == [{"Name": "service", "Value": "reaper"}]


def test_every_alarm_and_gauge_is_documented_with_a_runbook() -> None:
    res = template()["Resources"]
    for name, r in res.items():
        if r["Type"] == "AWS::CloudWatch::Alarm":
            alarm = r["Properties"]["AlarmName"]["Fn::Sub"].replace("${Stage}", "<Stage>")
            assert f"### `{alarm}`" in OPS, f"{name}: no runbook section for {alarm} in docs/operations.md"
    gauges_src = (REPO / "shared/storekeeper/gauges.py").read_text()
    for metric in set(re.findall(r'"([A-Z][A-Za-z]+)",\s*MetricUnit\.', gauges_src)):
        assert f"`{metric}`" in OPS, metric


def test_globals_use_powertools_log_level_and_an_alias() -> None:
    glob = template()["Globals"]["Function"]
    assert glob["AutoPublishAlias"] == "live"
    env = glob["Environment"]["Variables"]
    assert "POWERTOOLS_LOG_LEVEL" in env
    assert "LOG_LEVEL" not in env


#: issue 11's list: usage above the high watermark, vector quota reached, oldest pending delta too
#: old, reaper deferrals, and the errors and throttles of each function (metric, dimension filter)
ISSUE_ALARMS = {
    "usage-above-high-watermark": ("BucketsAboveHighWatermark", "reaper"),
    "vector-quota-reached": ("VectorStoresAtQuota", "reaper"),
    "pending-deltas-too-old": ("OldestPendingDeltaAge", "compactor"),
    "reaper-deferring": ("Deferred", "reaper"),
}
FUNCTIONS = ("Producer", "Compactor", "Reaper", "Cleanup", "Query")


def test_every_alarm_the_operator_was_promised_exists_and_watches_what_it_says() -> None:
    res = template()["Resources"]
    alarms = {
        r["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("storekeeper-${Stage}-"): r["Properties"]
        for r in res.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    emitted = emitted_metric_names()
    for name, (metric, service) in ISSUE_ALARMS.items():
        p = alarms[name]
        assert (p["MetricName"], p["Dimensions"]) == (metric, [{"Name": "service", "Value": service}]), name
        assert metric in emitted, name
    for fn in FUNCTIONS:
        for suffix, metric in (("errors", "Errors"), ("throttled", "Throttles")):
            p = alarms[f"{fn.lower()}-{suffix}"]
            assert (p["Namespace"], p["MetricName"]) == ("AWS/Lambda", metric)
            assert p["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": f"{fn}Function"}}]


def test_dashboard_shows_errors_and_throttles_of_every_function_and_the_new_gauges() -> None:
    body = dashboard_body()
    rows = [row for w in body["widgets"] for row in w.get("properties", {}).get("metrics", [])]
    lambda_rows = {(r[1], r[3]) for r in rows if r[0] == "AWS/Lambda"}
    for fn in FUNCTIONS:
        assert {("Errors", f"<{fn}>"), ("Throttles", f"<{fn}>")} <= lambda_rows, fn
    searches = " ".join(r[0]["expression"] for r in rows if isinstance(r[0], dict))
    assert '{<Ns>,collection,service} MetricName="CompactionSeconds"' in searches
    assert '{<Ns>,bucket,service} MetricName="BytesFreed"' in searches
    # each new metric is listed in the docs with what to do about it
    for metric in ("CompactionSeconds", "BytesFreed", "CompactionFetchSeconds", "CompactionRemoveSeconds"):
        assert f"`{metric}`" in OPS, metric


def test_every_metric_the_code_emits_is_listed_in_the_operations_guide() -> None:
    missing = sorted(m for m in emitted_metric_names() if f"`{m}`" not in OPS)
    assert missing == [], f"docs/operations.md does not list {missing}"
