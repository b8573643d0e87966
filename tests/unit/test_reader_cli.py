"""`storekeeper query --where/--where-document` and `storekeeper put --wait` (read-your-writes)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.compaction import compact
from storekeeper.stores import open_store

pytestmark = pytest.mark.slow  # real chromadb snapshots through the CLI: not in `make test-fast`


@pytest.fixture(autouse=True)
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREKEEPER_READER_CACHE_DIR", str(tmp_path / "reader-cache"))
    monkeypatch.setenv("COMPACTOR_CACHE_DIR", str(tmp_path / "compactor-cache"))


def _records(tmp_path: Path, n: int, lang: str) -> Path:
    f = tmp_path / f"records-{lang}.jsonl"
    lines = [
        {
            "id": f"{lang}{i}",
            "embedding": [float(i), 1.0],
            "metadata": {"lang": lang},
            "document": f"{lang} text {i}",
        }
        for i in range(n)
    ]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return f


def _cli(*args: str, code: int = 0) -> dict[str, object]:
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == code, res.output
    out: dict[str, object] = json.loads(res.stdout)
    return out


def test_put_wait_returns_once_the_write_is_published_and_query_filters(tmp_path: Path) -> None:
    _cli("put", "docs", "--file", str(_records(tmp_path, 3, "en")))
    compact(open_store(None), "docs")
    store = open_store(None)

    def compactor() -> None:  # the compactor runs while `put --wait` waits
        time.sleep(1.0)
        compact(store, "docs")

    worker = threading.Thread(target=compactor)
    worker.start()
    out = _cli("put", "docs", "--file", str(_records(tmp_path, 3, "de")), "--wait", "60")
    worker.join()
    assert out["visible_in"] is not None
    assert len(out["delta_ids"]) == 1  # type: ignore[arg-type]
    hits = _cli("query", "docs", "--vector", "[1.0, 1.0]", "-k", "10", "--where", '{"lang": "de"}')
    assert hits["version"] == out["visible_in"]
    assert sorted(h["id"] for h in hits["hits"]) == ["de0", "de1", "de2"]  # type: ignore[union-attr, index]
    docs = _cli(
        "query", "docs", "--vector", "[1.0, 1.0]", "-k", "10", "--where-document", '{"$contains": "en text"}'
    )
    assert sorted(h["id"] for h in docs["hits"]) == ["en0", "en1", "en2"]  # type: ignore[union-attr, index]


def test_put_wait_times_out_clearly_without_a_compactor(tmp_path: Path) -> None:
    out = _cli("put", "docs", "--file", str(_records(tmp_path, 2, "en")), "--wait", "0.5", code=1)
    assert out["error"] == "NotVisible"
    assert "not visible after 0.5 s" in str(out["message"])


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--where", "{not json"], "where"),
        (["--where", "[1, 2]"], "where"),
        (["--where", '{"$bogus": 1}'], "where"),
        (["--where-document", "3"], "where_document"),
    ],
)
def test_bad_filters_name_their_field(tmp_path: Path, args: list[str], field: str) -> None:
    _cli("put", "docs", "--file", str(_records(tmp_path, 2, "en")))
    compact(open_store(None), "docs")
    out = _cli("query", "docs", "--vector", "[1.0, 1.0]", *args, code=1)
    assert out["error"] == "ValidationError"
    assert str(out["message"]).startswith(f"{field}: ")


def test_unknown_collection_says_so(tmp_path: Path) -> None:
    _cli("put", "docs", "--file", str(_records(tmp_path, 2, "en")))
    out = _cli("query", "nope", "--vector", "[1.0, 1.0]", code=1)
    assert out["error"] == "UnknownCollection"
