"""The optional query function (functions/query/app.py), run locally the way `storekeeper invoke` does:
the sample event answers from the published snapshot, the reader stays warm across invocations,
bad requests are 400 naming the field, unknown collections 404, nothing to serve 503."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from storekeeper import query_api
from storekeeper.cli import app
from storekeeper.runtime import invoke
from storekeeper.stores.local import LocalStore
from tests.reader_support import publish_version, records

REPO = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((REPO / "events/query/query.json").read_text())


@pytest.fixture(autouse=True)
def _fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_READER_CACHE_DIR", str(tmp_path / "reader-cache"))


def _event(body: Any) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE)
    event["body"] = json.dumps(body)
    return event


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "bucket")
    recs = records(40, 4)
    recs["metadatas"] = [{"source": "manual" if i % 2 else "import", "page": i} for i in range(40)]
    publish_version(s, tmp_path, "docs", recs)
    return s


def _call(store: LocalStore, event: dict[str, Any]) -> tuple[int, Any]:
    res = invoke("query", event, root=REPO, store=store.url)
    assert res.ok, (res.error_type, res.error_message, res.stack)
    response = res.response
    return response["statusCode"], json.loads(response["body"])


def test_sample_event_answers_from_the_published_version_and_stays_warm(store: LocalStore) -> None:
    status, body = _call(store, SAMPLE)
    assert status == 200, body
    assert body["collection"] == "docs"
    assert len(body["ids"][0]) == 3
    assert all(m["source"] == "manual" for m in body["metadatas"][0])  # the sample's where filter
    warm = next(iter(query_api._readers.values()))
    status, again = _call(
        store, _event({"collection": "docs", "vectors": [[0.1, 0.2, 0.3, 0.4]] * 2, "k": 2})
    )
    assert status == 200
    assert len(again["ids"]) == 2
    assert next(iter(query_api._readers.values())) is warm  # the same reader: no reopen per invocation


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"collection": "docs"}, "give exactly one of vector or vectors"),
        ({"collection": "docs", "vector": [1, 2, 3, 4], "k": 0}, "k"),
        ({"collection": "Docs!", "vector": [1, 2, 3, 4]}, "collection"),
        ({"collection": "docs", "vector": [1, 2]}, "dimension 2"),
        ({"collection": "docs", "vector": [1, 2, 3, 4], "where": {"$bogus": 1}}, "where"),
        ({"collection": "docs", "vector": [1, 2, 3, 4], "extra": 1}, "extra"),
    ],
)
def test_bad_requests_are_400_naming_the_field(store: LocalStore, body: Any, field: str) -> None:
    status, answer = _call(store, _event(body))
    assert status == 400, answer
    assert field in answer["message"]


def test_unknown_collection_is_404_and_nothing_to_serve_is_503(store: LocalStore, tmp_path: Path) -> None:
    status, answer = _call(store, _event({"collection": "nope", "vector": [1, 2, 3, 4]}))
    assert status == 404
    assert "no collection 'nope'" in answer["message"]
    m = publish_version(store, tmp_path, "broken", records(5, 4))
    store.delete(m.archive_key)
    status, answer = _call(store, _event({"collection": "broken", "vector": [1, 2, 3, 4]}))
    assert status == 503
    assert "archive of version" in answer["message"]


def test_storekeeper_invoke_query_runs_the_sample(store: LocalStore) -> None:
    res = CliRunner().invoke(
        app,
        ["invoke", "query", "--event", str(REPO / "events/query/query.json"), "--store", store.url, "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert json.loads(out["response"]["body"])["collection"] == "docs"
