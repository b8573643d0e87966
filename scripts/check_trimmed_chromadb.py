"""Prove the built (trimmed) artifacts work, using ONLY the artifact directories and Python 3.12.

`sam build` puts the compactor in .aws-sam/build/CompactorFunction and the optional query function
in .aws-sam/build/QueryFunction (both: chromadb installed --no-deps with the short list of what it
really imports; functions/query uses the compactor's list, tests/unit/test_template.py keeps them
equal) and the layer in .aws-sam/build/StorekeeperLayer/python. This script starts
`python3.12 -I -S` (no site-packages, no PYTHON* variables: the project venv cannot leak in), puts
exactly one function's directory and the layer's on sys.path, the way Lambda puts /var/task and
/opt/python there, and checks:

1. (compactor, query) chromadb imports from the artifact, the heavy dependencies are really
   absent, and a PersistentClient upserts / deletes / queries explicit embeddings, then reopens the
   persist dir and gets the same answers;
2. (compactor, query) storekeeper.compaction (from the layer) compacts deltas end to end on a
   file:// store, and the published snapshot opens with chromadb and answers a query;
3. the compactor's own handler (app.py in the artifact) runs a sweep on that store; the query
   function's handler answers the sample Function URL event (events/query/query.json, its body
   replaced) twice from one warm Reader;
4. producer, reaper and cleanup handlers import with the layer alone and never import chromadb.

Exit status 0 only if every check passed; `--json` prints the findings for machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EVENT = (REPO / "events" / "query" / "query.json").read_text()
HEAVY = [
    "onnxruntime",
    "kubernetes",
    "tokenizers",
    "uvicorn",
    "fastapi",
    "bcrypt",
    "sympy",
    "typer",
    "posthog",
]

PROBE = r"""
import importlib.util, json, os, sys, tempfile, time
fn_dir, layer_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [fn_dir, layer_dir]
leaks = [p for p in sys.path if "site-packages" in p or "dist-packages" in p]
assert not leaks, f"site-packages leaked into sys.path: {leaks}"
os.environ["CHROMA_TELEMETRY_IMPL"] = "none"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "storekeeper-check")
out = {"python": sys.version.split()[0]}

def where(mod):
    return os.path.dirname(os.path.abspath(sys.modules[mod].__file__))

if mode in ("compactor", "query"):
    heavy = json.loads(sys.argv[4])
    out["heavy_present"] = [m for m in heavy if importlib.util.find_spec(m) is not None]
    import chromadb
    from chromadb.config import Settings
    assert where("chromadb").startswith(fn_dir), where("chromadb")
    out["chromadb"] = chromadb.__version__
    d = tempfile.mkdtemp()
    c = chromadb.PersistentClient(path=d, settings=Settings(anonymized_telemetry=False))
    col = c.get_or_create_collection("docs", embedding_function=None, metadata={"hnsw:space": "l2"})
    col.upsert(ids=["a", "b", "c"], embeddings=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
               metadatas=[{"n": 1}, {"n": 2}, {"n": 3}], documents=["x", "y", "z"])
    col.upsert(ids=["c"], embeddings=[[0.9, 0.1, 0, 0]], metadatas=[{"n": 33}])
    col.delete(ids=["b"])
    first = col.query(query_embeddings=[[1, 0, 0, 0]], n_results=3)["ids"][0]
    assert first == ["a", "c"], first
    del col, c
    c2 = chromadb.PersistentClient(path=d, settings=Settings(anonymized_telemetry=False))
    col2 = c2.get_collection("docs", embedding_function=None)
    again = col2.query(query_embeddings=[[1, 0, 0, 0]], n_results=3)
    assert again["ids"][0] == first and col2.count() == 2, again
    assert col2.get(ids=["c"])["metadatas"][0] == {"n": 33}
    out["persistent_client"] = {"count": col2.count(), "query": again["ids"][0]}

    # 2. the real compaction module end to end on a file:// store
    try:
        import storekeeper.compaction  # noqa: F401
    except ImportError as exc:
        out["compaction"] = f"not available: {exc}"
    else:
        assert where("storekeeper").startswith(layer_dir), where("storekeeper")
        from datetime import datetime, timezone
        import numpy as np
        from storekeeper.compaction import compact
        from storekeeper.deltas import DeltaContent, new_delta_id, write_delta
        from storekeeper.snapshots import open_snapshot, resolve
        from storekeeper.stores import open_store
        root = tempfile.mkdtemp()
        os.environ["STOREKEEPER_HOME"] = root
        store = open_store(f"file://{root}/store")
        now = datetime.now(timezone.utc)
        write_delta(store, DeltaContent("docs", new_delta_id(), now, ids=["a", "b", "c"],
                    embeddings=np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32),
                    metadatas=[{"n": 1}, None, None], documents=["x", None, None]))
        write_delta(store, DeltaContent("docs", new_delta_id(), now, deletes=["b"]))
        res = compact(store, "docs")
        assert res.status == "published" and len(res.applied) == 2, res.to_json()
        snap = open_snapshot(store, "docs")
        ids = snap.query(query_embeddings=[[0, 0, 1, 0]], n_results=5)["ids"][0]
        assert ids[0] == "c" and "b" not in ids and snap.count() == 2, ids
        out["compaction"] = {"status": res.status, "applied": len(res.applied), "version": res.version,
                             "query": ids}

        # 3. the function's own handler from the artifact
        class Ctx:
            function_name = mode; memory_limit_in_mb = 2048; aws_request_id = "check"
            invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{mode}"
            def get_remaining_time_in_millis(self): return 300000
        def load_app():
            spec = importlib.util.spec_from_file_location("app", os.path.join(fn_dir, "app.py"))
            app = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(app)
            return app
        if mode == "query":  # the sample Function URL event, asking the published snapshot
            os.environ["STOREKEEPER_STORE"] = store.url
            os.environ["STOREKEEPER_READER_CACHE_DIR"] = os.path.join(root, "reader-cache")
            os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "query")
            app = load_app()
            event = json.loads(sys.argv[5])
            event["body"] = json.dumps({"collection": "docs", "vector": [0, 0, 1, 0], "k": 5})
            answers = []
            for _ in range(2):  # the second invocation is served by the same warm Reader
                resp = app.handler(event, Ctx())
                assert resp["statusCode"] == 200, resp
                answers.append(json.loads(resp["body"]))
            assert answers[0] == answers[1], answers
            assert answers[0]["ids"][0][0] == "c" and answers[0]["version"] == res.version, answers[0]
            out["handler_query"] = {"status": 200, "ids": answers[0]["ids"][0],
                                    "version": answers[0]["version"]}
        # the compactor handler from the artifact: a sweep finds a late delta and publishes it
        elif os.path.exists(os.path.join(fn_dir, "app.py")):
            os.environ["STOREKEEPER_STORE"] = store.url
            os.environ["COMPACTOR_SWEEP_AGE_SECONDS"] = "0"
            os.environ["COMPACTOR_CACHE_DIR"] = os.path.join(root, "cache")
            os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "compactor")
            write_delta(store, DeltaContent("docs", new_delta_id(), now, ids=["d"],
                        embeddings=np.array([[0, 0, 0, 1]], dtype=np.float32),
                        metadatas=[None], documents=[None]))
            time.sleep(0.01)
            resp = load_app().handler({"sweep": True}, Ctx())
            published = resolve(store, "docs")
            assert published is not None and published.manifest.record_count == 3, (resp, published)
            out["handler_sweep"] = {"response": resp, "record_count": published.manifest.record_count}
else:
    # a light function: its handler imports with the layer alone, and never imports chromadb
    app_py = os.path.join(fn_dir, "app.py")
    if not os.path.exists(app_py):
        out["import"] = "no app.py yet"
    else:
        os.environ["STOREKEEPER_HOME"] = tempfile.mkdtemp()
        spec = importlib.util.spec_from_file_location("app", app_py)
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        assert callable(getattr(app, "handler", None)), "no handler"
        assert "chromadb" not in sys.modules, "imports chromadb"
        out["import"] = "ok"
        out["modules"] = len(sys.modules)
print("@@RESULT@@" + json.dumps(out, default=str))
"""


def find_python312(explicit: str | None) -> str:
    """Python 3.12 like the Lambda runtime: --python, `pyenv prefix 3.12`, or python3.12 on PATH."""
    if explicit:
        return explicit
    if shutil.which("pyenv"):
        for v in ("3.12", "3.12.1"):
            r = subprocess.run(["pyenv", "prefix", v], capture_output=True, text=True, check=False)
            candidate = Path(r.stdout.strip()) / "bin" / "python3.12"
            if r.returncode == 0 and candidate.exists():
                return str(candidate)
    found = shutil.which("python3.12")
    if not found:
        sys.exit("python3.12 not found: install it (pyenv install 3.12) or pass --python")
    return found


def run_probe(python: str, fn_dir: Path, layer_dir: Path, mode: str, timeout: int) -> dict[str, object]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8"}
    with tempfile.TemporaryDirectory() as work:
        probe = Path(work) / "probe.py"
        probe.write_text(PROBE)
        proc = subprocess.run(
            [python, "-I", "-S", str(probe), str(fn_dir), str(layer_dir), mode, json.dumps(HEAVY),
             SAMPLE_EVENT],
            capture_output=True, text=True, env=env, cwd=work, timeout=timeout, check=False,
        )  # fmt: skip
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return {"ok": proc.returncode == 0, **json.loads(line[len("@@RESULT@@") :])}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
    return {"ok": False, "error": "\n".join(tail)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", type=Path, default=REPO / ".aws-sam" / "build")
    ap.add_argument("--python", help="Python 3.12 interpreter (default: pyenv's 3.12 or python3.12)")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--json", action="store_true", help="print the findings as one JSON document")
    args = ap.parse_args(argv)

    build: Path = args.build_dir
    layer = build / "StorekeeperLayer" / "python"
    if not layer.is_dir():
        sys.exit(f"{layer} not found: run `make build` first")
    python = find_python312(args.python)
    findings: dict[str, dict[str, object]] = {}
    for logical, mode in (
        ("CompactorFunction", "compactor"),
        ("QueryFunction", "query"),
        ("ProducerFunction", "light"),
        ("ReaperFunction", "light"),
        ("CleanupFunction", "light"),
    ):
        fn_dir = build / logical
        if not fn_dir.is_dir():
            findings[logical] = {"ok": False, "error": f"{fn_dir} not built"}
            continue
        findings[logical] = run_probe(python, fn_dir, layer, mode, args.timeout)
    for comp in (findings["CompactorFunction"], findings["QueryFunction"]):
        if comp.get("heavy_present"):
            comp["ok"] = False
            comp["error"] = f"heavy dependencies present in the artifact: {comp['heavy_present']}"
    ok = all(f.get("ok") for f in findings.values())
    if args.json:
        sys.stdout.write(json.dumps({"ok": ok, "python": python, "functions": findings}, indent=2) + "\n")
    else:
        for name, f in findings.items():
            status = "ok  " if f.get("ok") else "FAIL"
            detail = {k: v for k, v in f.items() if k != "ok"}
            sys.stdout.write(f"{status} {name}: {json.dumps(detail, default=str)}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
