"""The deployed artifacts' bytecode: the pyc header check (storekeeper.dev.bytecode, run by
scripts/check_bytecode.py in `make build`) and the Makefiles' compile step that it checks."""

from __future__ import annotations

import importlib.util
import json
import py_compile
import re
import subprocess
import sys
from pathlib import Path

import pytest

from storekeeper.dev.bench.case_coldstart import (
    _measure_built_artifacts,
    artifact_interpreter,
    artifact_probe_args,
)
from storekeeper.dev.bytecode import (
    PY312_MAGIC,
    bytecode_problems,
    cached_pyc,
    copy_without_bytecode,
    importable_sources,
    lambda_python,
    pyc_problem,
)

REPO = Path(__file__).resolve().parents[2]
HERE_MAGIC, HERE_TAG = importlib.util.MAGIC_NUMBER, sys.implementation.cache_tag
MAKEFILES = {
    "shared/Makefile": "build-StorekeeperLayer",
    "functions/producer/Makefile": "build-ProducerFunction",
    "functions/compactor/Makefile": "build-CompactorFunction",
    "functions/reaper/Makefile": "build-ReaperFunction",
    "functions/cleanup/Makefile": "build-CleanupFunction",
    "functions/query/Makefile": "build-QueryFunction",
}


def _module(root: Path, rel: str, text: str = "VALUE = 1\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _compile(py: Path, mode: py_compile.PycInvalidationMode) -> Path:
    out = py_compile.compile(
        str(py), cfile=str(cached_pyc(py, HERE_TAG)), doraise=True, invalidation_mode=mode
    )
    assert out is not None  # doraise: an error raises
    return Path(out)


def _problems(root: Path) -> list[str]:
    return bytecode_problems(root, magic=HERE_MAGIC, tag=HERE_TAG)


def test_an_unchecked_hash_pyc_of_the_source_passes(tmp_path: Path) -> None:
    py = _module(tmp_path, "pkg/mod.py")
    _compile(py, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    assert _problems(tmp_path) == []


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (py_compile.PycInvalidationMode.TIMESTAMP, "timestamp pyc"),
        (py_compile.PycInvalidationMode.CHECKED_HASH, "checked-hash pyc"),
    ],
)
def test_other_invalidation_modes_are_named(
    tmp_path: Path, mode: py_compile.PycInvalidationMode, reason: str
) -> None:
    py = _module(tmp_path, "pkg/mod.py")
    _compile(py, mode)
    [problem] = _problems(tmp_path)
    assert problem.startswith(f"pkg/mod.py: __pycache__/mod.{HERE_TAG}.pyc: {reason}")


def test_a_missing_pyc_and_a_changed_source_are_named(tmp_path: Path) -> None:
    kept = _module(tmp_path, "a.py")
    edited = _module(tmp_path, "b.py")
    _module(tmp_path, "c.py")
    for py in (kept, edited):
        _compile(py, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    edited.write_text("VALUE = 2\n")  # an unchecked pyc would silently run the old code
    assert _problems(tmp_path) == [
        f"b.py: __pycache__/b.{HERE_TAG}.pyc: source hash differs: the source changed after compiling "
        "(an unchecked pyc is never rechecked)",
        f"c.py: no __pycache__/c.{HERE_TAG}.pyc",
    ]


def test_another_pythons_magic_and_a_short_file_are_named(tmp_path: Path) -> None:
    py = _module(tmp_path, "mod.py")
    pyc = _compile(py, py_compile.PycInvalidationMode.UNCHECKED_HASH).read_bytes()
    other = bytes([pyc[0] ^ 0xFF]) + pyc[1:]
    assert pyc_problem(other, py.read_bytes(), HERE_MAGIC) == (
        f"magic {other[:4].hex()} is not {HERE_MAGIC.hex()} (compiled by another Python)"
    )
    assert pyc_problem(pyc[:12], py.read_bytes(), HERE_MAGIC) == "truncated pyc (12 bytes, a header is 16)"
    unknown = pyc[:4] + (0b101).to_bytes(4, "little") + pyc[8:]
    assert pyc_problem(unknown, py.read_bytes(), HERE_MAGIC) == "unknown flags 0x5"


def test_only_sources_an_import_can_load_are_required(tmp_path: Path) -> None:
    for rel in (
        "pkg/__init__.py",
        "pkg/sub/mod.py",
        "top.py",
        "pkg-1.0.dist-info/x.py",
        "bin/run-me.py",
        "pkg/my-script.py",
    ):
        _module(tmp_path, rel)
    assert [p.relative_to(tmp_path).as_posix() for p in importable_sources(tmp_path)] == [
        "pkg/__init__.py",
        "pkg/sub/mod.py",
        "top.py",
    ]


def test_the_copy_without_bytecode_keeps_everything_else(tmp_path: Path) -> None:
    src = tmp_path / "artifact"
    py = _module(src, "pkg/mod.py")
    _compile(py, py_compile.PycInvalidationMode.UNCHECKED_HASH)
    (src / "pkg" / "data.bin").write_bytes(b"\0\1")
    (src / "stray.pyc").write_bytes(b"x")
    dst = copy_without_bytecode(src, tmp_path / "bare")
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file()) == [
        "pkg/data.bin",
        "pkg/mod.py",
    ]
    assert _problems(dst) == [f"pkg/mod.py: no __pycache__/mod.{HERE_TAG}.pyc"]


def _bytecode_line(makefile: str) -> str:
    [line] = [ln for ln in (REPO / makefile).read_text().splitlines() if ln.startswith("BYTECODE :=")]
    return line


def test_every_artifact_makefile_compiles_last_with_the_same_command() -> None:
    """SAM builds each folder alone (no shared include): the same BYTECODE line in each Makefile, run as
    the recipe's last step (after pip and every trim), for the runtime's interpreter (PYTHON_LAMBDA)."""
    lines = {mk: _bytecode_line(mk) for mk in MAKEFILES}
    assert set(lines.values()) == {
        "BYTECODE := $(PYTHON_LAMBDA) -m compileall -q -j 0 -o 0 --invalidation-mode unchecked-hash"
    }
    for mk, target in MAKEFILES.items():
        text = (REPO / mk).read_text()
        assert "PYTHON_LAMBDA ?= python3.12" in text, mk
        recipe = text.split(f"{target}:\n", 1)[1]
        steps = [
            ln.strip() for ln in recipe.splitlines() if ln.startswith("\t") and not ln.strip().startswith("#")
        ]
        assert steps[-1].startswith('$(BYTECODE) -s "$(ARTIFACTS_DIR)"'), mk


def _python312() -> tuple[str, bytes, str]:
    """The Lambda runtime's interpreter if the machine has it (as `make build` finds it), else this one."""
    found = lambda_python()
    return (found, PY312_MAGIC, "cpython-312") if found else (sys.executable, HERE_MAGIC, HERE_TAG)


@pytest.mark.parametrize("fn", ["producer", "reaper", "cleanup"])
def test_a_small_functions_build_ships_bytecode_independent_of_where_it_was_built(
    fn: str, tmp_path: Path
) -> None:
    """`make build-<Fn>` as sam build runs it, twice into different folders: every module compiled
    (unchecked-hash, the runtime's magic), and the artifacts byte-for-byte equal (-s/-p record
    /var/task, not the build folder)."""
    python, magic, tag = _python312()
    target = "build-" + fn.capitalize() + "Function"
    trees = []
    for name in ("one", "other-place"):
        out = tmp_path / name
        out.mkdir()
        subprocess.run(
            [
                "make",
                "--makefile",
                str(REPO / "functions" / fn / "Makefile"),
                target,
                f"PYTHON_LAMBDA={python}",
            ],
            cwd=REPO / "functions" / fn,
            env={"PATH": "/usr/bin:/bin", "ARTIFACTS_DIR": str(out)},
            check=True,
            capture_output=True,
        )
        assert bytecode_problems(out, magic=magic, tag=tag) == []
        assert (out / "__pycache__" / f"app.{tag}.pyc").is_file()
        trees.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert trees[0] == trees[1]
    assert re.search(rb"/var/task/app\.py", trees[0][f"__pycache__/app.{tag}.pyc"])


def test_the_artifact_probe_runs_like_lambda_from_the_artifacts_alone(tmp_path: Path) -> None:
    """Isolated (no PYTHON* variables, no site-packages, no cwd on sys.path), the function folder then the
    layer's python/ first on sys.path, and no bytecode written (read-only /var/task and /opt)."""
    fn_dir, layer = tmp_path / "Fn", tmp_path / "Layer" / "python"
    _module(fn_dir, "app.py", "import helper\nVALUE = helper.X\n")
    _module(layer, "helper.py", "X = 'layer'\n")
    shadow = _module(tmp_path / "elsewhere", "helper.py", "X = 'shadow'\n").parent
    code = (
        "import json, sys\nimport app\n"
        "f = sys.flags\n"
        "print(json.dumps({'value': app.VALUE, 'path': sys.path[:2], 'isolated': f.isolated,\n"
        "    'no_site': f.no_site, 'no_pyc': f.dont_write_bytecode, 'site': 'site' in sys.modules}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(shadow), "PYTHONDONTWRITEBYTECODE": ""}
    out = subprocess.run(
        [*artifact_interpreter(sys.executable), "-c", *artifact_probe_args(code, [], fn_dir, layer)],
        cwd=shadow,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == {
        "value": "layer",
        "path": [str(fn_dir), str(layer)],
        "isolated": 1,
        "no_site": 1,
        "no_pyc": 1,
        "site": False,
    }
    assert not list(tmp_path.rglob("__pycache__"))


def test_the_artifact_probe_degrades_to_a_note_without_a_build(tmp_path: Path) -> None:
    from storekeeper.dev.bench.context import QUICK, BenchContext
    from storekeeper.dev.bench.report import CaseResult

    ctx = BenchContext(sizes=QUICK, quick=True, workdir=tmp_path / "work", backends=None)
    result = CaseResult(name="coldstart", title="t")
    _measure_built_artifacts(ctx, result, tmp_path, ctx.scratch("coldstart"))
    assert result.notes == ["built artifacts: not built: run make build"]
    assert result.figures == []
