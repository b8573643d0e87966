"""Every sample event under events/ runs with `storekeeper invoke` against the store given by
--store (the deployed bucket they name is never reached); invoke exits non-zero when records
failed; the reaper accepts every schedule event a user really sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.layout import REPORT_KEY_RE, REPORT_PREFIX
from storekeeper.models.schedule import ReaperTrigger
from storekeeper.snapshots import read_pointer
from storekeeper.stores.local import LocalStore

REPO = Path(__file__).resolve().parents[2]
#: the order a person would try them in: produce, compact, query, reap, clean
ORDER = ["producer", "compactor", "query", "reaper", "cleanup"]
SAMPLES = sorted(REPO.glob("events/*/*.json"), key=lambda p: (ORDER.index(p.parent.name), p.name))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "200")
    # any attempt to reach AWS fails at once instead of finding the deployed bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    return tmp_path


def invoke(*args: str) -> tuple[int, dict[str, Any], str]:
    res = CliRunner().invoke(app, ["invoke", *args, "--root", str(REPO), "--json"])
    try:
        data = json.loads(res.stdout)
    except ValueError:
        data = {}
    return res.exit_code, data, res.output


def test_every_sample_event_runs_against_the_given_store(home: Path) -> None:
    assert {p.parent.name for p in SAMPLES} == set(ORDER)
    assert len(SAMPLES) >= 9
    store = LocalStore(home / "elsewhere" / "samples")
    for sample in SAMPLES:
        code, data, output = invoke(sample.parent.name, "--event", str(sample), "--store", store.url)
        assert code == 0, f"{sample.relative_to(REPO)}: {output[-2000:]}"
        assert data["ok"], sample
        assert "failed" not in data, (sample, data["failed"])
        if sample.name == "s3-object-created.json":
            # the sample's JSONL (events/producer/batch.jsonl) was uploaded to the store and ingested
            assert "uploaded" in output
            assert "batch.jsonl as incoming/docs/batch.jsonl" in " ".join(output.split())
            [result] = data["response"]["records"].values()
            assert result["upserts"] == 10
    assert read_pointer(store, "docs")[0] is not None  # the compactor sample published the produced deltas
    reports = [i.key for i in store.list(REPORT_PREFIX) if REPORT_KEY_RE.fullmatch(i.key)]
    assert len(reports) == len(list(REPO.glob("events/reaper/*.json")))
    assert store.exists("reports/reaper/latest.html")
    # the cleanup sample ran against the given store: its task was aimed at it (keys already gone)
    assert "missing" in output or data["response"]["batchItemFailures"] == []


def test_invoke_exits_non_zero_when_records_failed(home: Path, tmp_path: Path) -> None:
    store = LocalStore(home / "s")
    bad_put = tmp_path / "bad-put.json"
    bad_put.write_text(json.dumps({"collection": "docs", "upserts": [{"id": "a", "embedding": [1.0, "x"]}]}))
    code, data, output = invoke("producer", "--event", str(bad_put), "--store", store.url)
    assert code == 2, output
    assert data["response"]["statusCode"] == 400
    assert data["failed"]
    sqs = json.loads((REPO / "events/compactor/sqs-delta-notification.json").read_text())
    sqs["Records"][0]["body"] = '{"collection": "docs"}'  # a notification without its fields
    bad_sqs = tmp_path / "bad-sqs.json"
    bad_sqs.write_text(json.dumps(sqs))
    code, data, output = invoke("compactor", "--event", str(bad_sqs), "--store", store.url)
    assert code == 2, output
    assert data["response"]["batchItemFailures"] == [{"itemIdentifier": sqs["Records"][0]["messageId"]}]
    assert data["failed"] == [f"record {sqs['Records'][0]['messageId']}"]
    # and without --json the person sees FAILED, not "ok"
    res = CliRunner().invoke(app, ["invoke", "compactor", "--event", str(bad_sqs), "--store", store.url,
                                   "--root", str(REPO)])  # fmt: skip
    assert res.exit_code == 2
    assert "1 failed" in res.output
    assert " ok " not in res.output


@pytest.mark.parametrize("function", ["compactor", "cleanup"])
@pytest.mark.parametrize("event", [{}, {"Records": []}, {"detail": "x"}])  # null: test_hostile_records
def test_an_sqs_handler_answers_an_event_without_records_with_nothing_failed(
    home: Path, tmp_path: Path, function: str, event: dict[str, Any]
) -> None:
    # Powertools' process_partial_response raises UnexpectedBatchTypeError here; ours routes it first
    path = tmp_path / "no-records.json"
    path.write_text(json.dumps(event))
    code, data, output = invoke(function, "--event", str(path), "--store", LocalStore(home / "s").url)
    assert code == 0, output
    assert data["response"] == {"batchItemFailures": []}


# -- the reaper's triggers ---------------------------------------------------------------------------


def sample(name: str) -> Any:
    return json.loads((REPO / "events/reaper" / name).read_text())


def test_reaper_accepts_every_schedule_event() -> None:
    with_version = ReaperTrigger.model_validate(sample("schedule.json"))
    without = ReaperTrigger.model_validate(sample("schedule-sam-cli.json"))
    assert "version" not in sample("schedule-sam-cli.json")
    assert with_version.kind == without.kind == "eventbridge-rule"
    assert not with_version.overrides.dry_run
    sched = ReaperTrigger.model_validate(sample("scheduler.json"))
    assert sched.kind == "scheduler"
    assert ReaperTrigger.model_validate({}).kind == "direct"  # Scheduler's input left empty
    const = ReaperTrigger.model_validate(sample("constant-input-dry-run.json"))
    assert const.overrides.dry_run
    assert const.overrides.max_deletions == 100
    rule = ReaperTrigger.model_validate(
        {**sample("schedule.json"), "detail": {"dry_run": True, "policies": "p.yaml"}}
    )
    assert rule.overrides.dry_run
    assert rule.overrides.policies == "p.yaml"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"dryrun": True}, "dryrun"),
        ({"dry_run": "maybe"}, "dry_run"),
        (
            {**json.loads((REPO / "events/reaper/schedule.json").read_text()), "detail": {"apply": True}},
            "apply",
        ),
        ({"max_deletions": -1}, "max_deletions"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_bad_trigger_names_the_field(event: Any, field: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        ReaperTrigger.model_validate(event)


def test_an_event_forces_a_dry_run_never_a_real_one(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REAPER_APPLY", "true")
    store = LocalStore(home / "s")
    code, data, output = invoke(
        "reaper", "--event", str(REPO / "events/reaper/constant-input-dry-run.json"), "--store", store.url
    )
    assert code == 0, output
    assert data["response"]["apply"] is False
    code, data, output = invoke(
        "reaper", "--event", str(REPO / "events/reaper/scheduler.json"), "--store", store.url
    )
    assert code == 0, output
    assert data["response"]["apply"] is True  # REAPER_APPLY decides; the event did not ask for a dry run


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(["dry_run", "policies", "max_deletions", "detail", "source", "detail-type", "version",
                        "scheduled_time", "execution_id", "x"])  # fmt: skip


@pytest.mark.slow  # hypothesis, 200 events: >5 s here
@settings(max_examples=200, deadline=None)
@given(event=JSON | st.dictionaries(KEYS, JSON, max_size=6))
def test_any_event_is_a_trigger_or_a_clear_error(event: Any) -> None:
    try:
        t = ReaperTrigger.model_validate(event)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
    else:
        errors = []
    if errors:
        assert all(e["msg"] for e in errors)
        return
    assert t.kind in ("eventbridge-rule", "scheduler", "direct")
    assert isinstance(t.overrides.dry_run, bool)
