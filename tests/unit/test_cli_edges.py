"""CLI input edges (issue 8.8): every one a clear one-line error, never a traceback or a side effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storekeeper.cli import app
from storekeeper.errors import ValidationError
from storekeeper.producer import IncomingObject, parse_jsonl, put_incoming
from storekeeper.queues import LocalQueue
from storekeeper.stores.local import LocalStore


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    out = res.stdout + res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit), out
    assert "Traceback" not in out, out
    return res.exit_code, out


def test_invalid_utf8_in_jsonl_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "r.jsonl"
    f.write_bytes(b'{"id": "a", "embedding": [1, 2]}\n{"id": "\xff\xfe", "embedding": [1, 2]}\n')
    rc, out = run("put", "c", "--file", str(f), "--store", f"file://{tmp_path / 'b'}")
    assert rc == 1
    assert "line 2: not valid UTF-8" in " ".join(out.split())
    with pytest.raises(ValidationError, match="line 2: not valid UTF-8"):
        parse_jsonl("c", [b'{"id": "a", "embedding": [1]}', b"\xc3("])


def test_invalid_utf8_on_the_s3_event_path(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "b")
    tag = store.put("incoming/c/x.jsonl", b'{"id": "a", "embedding": [1, 2]}\n\xff\n')
    with pytest.raises(ValidationError, match="line 2: not valid UTF-8"):
        put_incoming(
            IncomingObject("b", "incoming/c/x.jsonl", None, tag),
            store=store,
            queue=LocalQueue(tmp_path / "q"),
        )


@pytest.mark.parametrize("url", ["file:///", "file:///etc", "file:///usr/", "file:///proc/1", "file:///tmp"])
@pytest.mark.parametrize("command", [["status"], ["query", "c", "--id", "a"], ["reap"], ["compact", "c"]])
def test_root_and_system_directories_are_refused(url: str, command: list[str]) -> None:
    rc, out = run(*command, "--store", url)
    assert rc != 0
    assert "root, home or system dir" in " ".join(out.split()), out


@pytest.mark.parametrize(
    "command",
    [["status"], ["query", "c", "--id", "a"], ["snapshots", "c"], ["reports", "list"]],
    ids=lambda c: c[0],
)
def test_reading_commands_never_create_a_mistyped_store(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "typo-store"
    run(*command, "--store", f"file://{typo}")
    assert not typo.exists()


def test_writing_commands_create_a_local_store_and_say_so(tmp_path: Path) -> None:
    f = tmp_path / "r.jsonl"
    f.write_text('{"id": "a", "embedding": [1, 2]}\n')
    new = tmp_path / ("new-store-" + "x" * 80)  # longer than the terminal: the path must not be broken
    rc, out = run("put", "c", "--file", str(f), "--store", f"file://{new}")
    assert rc == 0, out
    assert f"created local store {new}\n" in out
    rc, out = run("put", "c", "--file", str(f), "--store", f"file://{new}")
    assert "created local store" not in out


def test_a_missing_bucket_in_query_is_reported_as_such(tmp_path: Path) -> None:
    rc, out = run("query", "c", "--id", "a", "--store", f"file://{tmp_path / 'nope'}")
    assert rc == 1
    assert "no such bucket" in " ".join(out.split()).lower(), out


def test_rich_markup_is_escaped_in_errors_and_help(tmp_path: Path) -> None:
    f = tmp_path / "r.jsonl"
    f.write_text('{"id": "a", "embedding": [1, 2]}\n')
    rc, out = run("put", "Bad[x]", "--file", str(f), "--store", f"file://{tmp_path / 'b'}")
    assert rc == 1
    assert "[a-z0-9][a-z0-9_-]{0,62}" in out, out
    assert "'Bad[x]'" in out, out
    _, out = run("put", "--help")
    assert "[a-z0-9][a-z0-9_-]{0,62}" in out, out


@pytest.mark.parametrize(
    "event",
    [
        [1, 2],
        {
            "version": "0",
            "id": 5,
            "detail-type": ["x"],
            "source": "aws.events",
            "account": "1",
            "time": "2024-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": "x",
            "detail": "no",
        },
    ],
)
def test_invoke_reaper_with_a_malformed_event_is_one_line(tmp_path: Path, event: object) -> None:
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps(event))
    rc, out = run("invoke", "reaper", "--event", str(ev), "--store", f"file://{tmp_path / 'b'}")
    assert rc == 1
    failed = [ln for ln in out.splitlines() if "reaper failed" in ln]
    assert len(failed) == 1, out
    assert "ValidationError: event" in failed[0]
    assert "validation error for" not in out  # not pydantic's multi-line dump
    assert ".py:" not in out  # no stack frames for bad input


def test_the_grace_floor_covers_every_snapshot_version_whatever_the_filters(tmp_path: Path) -> None:
    """`resource: object` + `name-prefix: snapshot/` must not plan a 14-minute-old superseded version."""
    import os
    import time

    from storekeeper.compaction import compact
    from storekeeper.producer import parse_put_request, put
    from storekeeper.snapshots import SnapshotCache

    store = LocalStore(tmp_path / "st")
    for rid in ("a", "b"):
        req = {"collection": "c", "upserts": [{"id": rid, "embedding": [1.0, 2.0]}]}
        put(parse_put_request(req), store=store, queue=LocalQueue(tmp_path / "q"))
        compact(store, "c", cache=SnapshotCache(tmp_path / "cache"))
    old = time.time() - 14 * 60
    versions = sorted(p for p in (tmp_path / "st" / "snapshot" / "c").iterdir() if p.name != "latest")
    assert len(versions) == 2
    for f in versions[0].iterdir():
        os.utime(f, (old, old))
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "policies:\n  - name: snaps\n    resource: object\n    store: main\n"
        "    filters:\n      - {type: name-prefix, value: snapshot/}\n"
    )
    rc, out = run("reap", "--policies", str(pol), "--store", f"file://{tmp_path / 'st'}", "--json")
    assert rc == 0, out
    report, _ = json.JSONDecoder().raw_decode(out[out.index("{") :])
    snap = [d for d in report["decisions"] if d["name"].startswith(f"snapshot/c/{versions[0].name}/")]
    assert snap, report["decisions"]
    assert all(d["verdict"] == "protected" and "grace" in d["reason"] for d in snap), snap
