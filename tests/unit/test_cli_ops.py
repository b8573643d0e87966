"""CLI conventions (options before or after the subcommand, --version, flags shown as flags),
`reports list|show|diff`, `policies validate|schema`, `reap --dry-run` and the --apply prompt,
and the reaper's EMF gauges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from storekeeper import gauges, reaper
from storekeeper.cli import app
from storekeeper.cli import common as cli_common
from storekeeper.models.status import BucketStatus, CollectionStatus, Forecast, Measurement, VectorStatus
from storekeeper.policies import parse_policies
from storekeeper.queues import LocalQueue
from storekeeper.stores.local import LocalStore

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2031, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStore:
    monkeypatch.setenv("COLUMNS", "120")
    return LocalStore(tmp_path / "store")


def cli(*args: str, code: int = 0, input: str | None = None) -> Any:
    res = CliRunner().invoke(app, list(args), input=input)
    assert res.exit_code == code, res.output
    return res


def test_store_and_json_before_or_after_the_subcommand(store: LocalStore) -> None:
    store.put("a.bin", b"x" * 10)
    before = json.loads(cli("--store", store.url, "--json", "status").stdout)
    after = json.loads(cli("status", "--store", store.url, "--json").stdout)
    assert before["store"] == after["store"] == store.url
    assert before["buckets"][0]["bytes"] == after["buckets"][0]["bytes"] == 10
    # nested groups get them too
    assert json.loads(cli("--json", "--store", store.url, "reports", "list").stdout) == []


def test_version_and_flags_shown_as_flags() -> None:
    assert cli("--version").stdout.startswith("storekeeper ")
    text = cli("reap", "--help").output
    assert "--apply" in text
    assert "--dry-run" in text
    assert "<bool>" not in text


def test_empty_results_say_so(store: LocalStore) -> None:
    assert "no reaper report in this store yet" in cli("reports", "list", "--store", store.url).output
    assert "no snapshot versions of docs" in cli("snapshots", "docs", "--store", store.url).output
    res = cli("reports", "show", "--store", store.url, code=1)
    assert "no reaper report" in " ".join(res.output.split())


# -- policies -------------------------------------------------------------------------------------------


def test_policies_validate_the_example_and_name_the_line_of_a_problem(tmp_path: Path) -> None:
    ok = json.loads(cli("policies", "validate", str(REPO / "examples/policies.yaml"), "--json").stdout)
    assert ok["valid"] is True
    assert "snapshot-retention" in ok["policies"]
    bad = tmp_path / ("x" * 80) / "bad.yaml"  # a path longer than the terminal is never broken
    bad.parent.mkdir()
    bad.write_text(
        "policies:\n  - name: x\n    resource: object\n    store: main\n    filters: [{type: older-than}]\n"
    )
    res = cli("policies", "validate", str(bad), code=1)
    assert f"{bad}:5: " in res.output
    assert "policy 'x'" in res.output
    missing = cli("policies", "validate", str(tmp_path / "nope.yaml"), "--json", code=1)
    assert json.loads(missing.stdout)["valid"] is False


def policies_schema_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(cli("policies", "schema").stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", ["examples/policies.yaml", "shared/storekeeper/data/default-policies.yaml"])
def test_policies_schema_accepts_the_shipped_files(path: str) -> None:
    errors = list(policies_schema_validator().iter_errors(yaml.safe_load((REPO / path).read_text())))
    assert errors == [], (path, [e.message for e in errors])


def test_policies_schema_rejects_a_typo() -> None:
    validator = policies_schema_validator()
    typo = {
        "policies": [
            {"name": "p", "resource": "object", "store": "main", "filters": [{"type": "older-then"}]}
        ]
    }
    assert list(validator.iter_errors(typo))


# -- reports ----------------------------------------------------------------------------------------------


def test_reports_list_show_and_diff(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = parse_policies(
        "policies:\n  - name: tmp\n    resource: object\n    store: main\n    filters: "
        "[{type: name-glob, pattern: ['*.tmp']}, {type: older-than, age: 1h}]\n"
    )
    store.put("a.tmp", b"1")
    first = reaper.run(policies=loaded, store_url=store.url, now=NOW + timedelta(days=1))
    store.put("b.tmp", b"22")
    second = reaper.run(policies=loaded, store_url=store.url, now=NOW + timedelta(days=2))
    runs = json.loads(cli("reports", "list", "--store", store.url, "--json").stdout)
    assert [r["run_id"] for r in runs] == [first.run_id, second.run_id]
    assert [r["planned"] for r in runs] == [1, 2]
    shown = json.loads(cli("reports", "show", second.run_id, "--store", store.url, "--json").stdout)
    assert shown["plan_digest"] == second.plan_digest
    assert (
        json.loads(cli("reports", "show", "latest~1", "--store", store.url, "--json").stdout)["run_id"]
        == first.run_id
    )
    diff = json.loads(cli("reports", "diff", "--store", store.url, "--json").stdout)
    assert diff["a"] == first.run_id
    assert diff["b"] == second.run_id
    assert diff["same_plan"] is False
    assert [d["name"] for d in diff["new"]] == ["b.tmp"]
    assert diff["totals"]["planned"] == {"a": 1, "b": 2, "change": 1}
    monkeypatch.setenv("COLUMNS", "80")
    listing = cli("reports", "list", "--store", store.url).output
    assert first.run_id in listing  # whole, not folded
    assert max(len(line) for line in listing.splitlines()) <= 80
    text = cli("reports", "diff", first.run_id, second.run_id, "--store", store.url).output
    assert "plans differ" in text
    assert "b.tmp" in text
    cli("reports", "show", "20990101T000000Z-ffffffff", "--store", store.url, code=1)


# -- reap: --dry-run and the confirmation -----------------------------------------------------------------


def test_reap_dry_run_and_the_apply_prompt(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "policies:\n  - name: tmp\n    resource: object\n    store: main\n"
        "    filters: [{type: name-glob, pattern: ['*.tmp']}]\n"
    )
    store.put("a.tmp", b"1")
    monkeypatch.setenv("REAPER_APPLY", "true")
    dry = json.loads(cli("reap", "--policies", str(pol), "--store", store.url, "--dry-run", "--json").stdout)
    assert dry["apply"] is False  # --dry-run wins over REAPER_APPLY
    monkeypatch.delenv("REAPER_APPLY")
    cli("reap", "--apply", "--dry-run", "--store", store.url, code=1)
    queue = LocalQueue(Path(str(tmp_path / "home")) / "queues" / "cleanup")
    monkeypatch.setattr(cli_common, "is_terminal", lambda: True)
    no = cli("reap", "--policies", str(pol), "--store", store.url, "--apply", input="n\n")
    assert "send 1 cleanup task(s)" in no.output
    assert "not confirmed: this was a dry run" in no.output
    assert len(queue) == 0
    yes = cli("reap", "--policies", str(pol), "--store", store.url, "--apply", input="y\n")
    assert "APPLY" in yes.output
    assert len(queue) == 1
    skip = cli("reap", "--policies", str(pol), "--store", store.url, "--apply", "--yes")
    assert "send 1 cleanup task" not in skip.output  # --yes: no prompt


# -- gauges -----------------------------------------------------------------------------------------------


def test_gauges_are_emf_with_bucket_vector_store_and_collection_dimensions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    m = Measurement(
        measured_at=NOW,
        store="s3://b",
        buckets=[BucketStatus(store="main", bucket="prod-b", bytes=900, objects=3, capacity=1000, ratio=0.9,
                              state="above-high")],
        vectors=[VectorStatus(store="vectors", buckets=9, quota=10)],
        collections=[CollectionStatus(collection="docs", pending_deltas=4, oldest_pending_age_s=120.0,
                                      versions=2, versions_bytes=500, record_count=42)],
    )  # fmt: skip
    fc = [Forecast(store="main", metric="usage", target="hard", state="ok", days=3.5),
          Forecast(store="vectors", metric="vector-buckets", target="quota",
                   state="not-enough-history")]  # fmt: skip
    gauges.emit(m, fc)
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_dim = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in docs}
    bucket = next(d for k, d in by_dim.items() if "bucket" in k)
    assert bucket["bucket"] == "prod-b"
    assert bucket["UsageBytes"] == [900.0]
    assert bucket["UsageRatio"] == [0.9]
    assert bucket["DaysToHardWatermark"] == [3.5]
    assert "DaysToHighWatermark" not in bucket
    vec = next(d for k, d in by_dim.items() if "vector_store" in k)
    assert (vec["VectorBuckets"], vec["VectorBucketQuota"], vec["VectorQuotaRatio"]) == ([9.0], [10.0], [0.9])
    assert "DaysToVectorQuota" not in vec  # no forecast, no gauge (never a made-up number)
    coll = next(d for k, d in by_dim.items() if "collection" in k)
    assert coll["collection"] == "docs"
    assert (coll["PendingDeltas"], coll["OldestPendingDeltaAge"], coll["SnapshotRecords"]) == (
        [4.0],
        [120.0],
        [42.0],
    )
    summary = by_dim[("service",)]  # the alarms' metrics: no bucket or store dimension to know
    assert summary["BucketsAboveHighWatermark"] == [1.0]  # 0.9 >= high 0.85
    assert summary["BucketsAboveHardWatermark"] == [0.0]  # below hard 0.95
    assert summary["VectorStoresAtQuota"] == [0.0]
    units = {m["Name"]: m["Unit"] for m in coll["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["OldestPendingDeltaAge"] == "Seconds"
    assert units["SnapshotBytes"] == "Bytes"
