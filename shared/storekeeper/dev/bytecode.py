"""Does a built Lambda artifact ship valid Python 3.12 bytecode for every module it can import?

Lambda's /opt (layers) and /var/task are read-only: a module without a usable pyc is compiled from
source on every cold start and the result cannot be cached. The build compiles unchecked-hash pycs
(PEP 552): the import system trusts them without looking at the source, so a timestamp pyc (made stale
by zip extraction's new mtimes) or a pyc whose source changed after compiling is a defect this finds.
Used by scripts/check_bytecode.py (`make build`) and the bench's artifact probe; stdlib only.
"""

from __future__ import annotations

import _imp
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

#: CPython 3.12's bytecode magic (importlib.util.MAGIC_NUMBER; fixed for every 3.12.x release)
PY312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"
PY312_TAG = "cpython-312"
#: PEP 552 flags word: bit 0 hash-based, bit 1 check_source
_HASH_BASED, _CHECK_SOURCE = 0b01, 0b10


def pyc_problem(pyc: bytes, source: bytes, magic: bytes = PY312_MAGIC) -> str | None:
    """Why `pyc` is not an unchecked-hash pyc of `source` for the interpreter of `magic`, or None."""
    if len(pyc) < 16:
        return f"truncated pyc ({len(pyc)} bytes, a header is 16)"
    if pyc[:4] != magic:
        return f"magic {pyc[:4].hex()} is not {magic.hex()} (compiled by another Python)"
    flags = int.from_bytes(pyc[4:8], "little")
    if not flags & _HASH_BASED:
        return "timestamp pyc: stale once zip extraction changes the source's mtime"
    if flags & _CHECK_SOURCE:
        return "checked-hash pyc: the source is read and hashed on every import"
    if flags & ~(_HASH_BASED | _CHECK_SOURCE):
        return f"unknown flags {flags:#x}"
    # importlib.util.source_hash() keys the hash with the running interpreter's magic; _imp takes it
    # as an argument, so a 3.11 checker can verify 3.12 pycs
    if pyc[8:16] != _imp.source_hash(int.from_bytes(magic, "little"), source):
        return "source hash differs: the source changed after compiling (an unchecked pyc is never rechecked)"
    return None


def importable_sources(root: Path) -> Iterator[Path]:
    """Every .py under `root` that an import could load (each path part an identifier), sorted.

    `root` is what Lambda puts on sys.path: a function's folder, or a layer's python/.
    """
    for py in sorted(root.rglob("*.py")):
        rel = py.relative_to(root)
        if all(part.isidentifier() for part in (*rel.parent.parts, rel.stem)) and not py.is_symlink():
            yield py


def cached_pyc(py: Path, tag: str = PY312_TAG) -> Path:
    """Where the import system looks for `py`'s bytecode (PEP 3147, no optimization level)."""
    return py.parent / "__pycache__" / f"{py.stem}.{tag}.pyc"


def bytecode_problems(root: Path, magic: bytes = PY312_MAGIC, tag: str = PY312_TAG) -> list[str]:
    """One line per importable source under `root` without a valid unchecked-hash pyc, naming it."""
    problems = []
    for py in importable_sources(root):
        pyc = cached_pyc(py, tag)
        rel = py.relative_to(root)
        if not pyc.is_file():
            problems.append(f"{rel}: no __pycache__/{pyc.name}")
            continue
        why = pyc_problem(pyc.read_bytes(), py.read_bytes(), magic)
        if why:
            problems.append(f"{rel}: __pycache__/{pyc.name}: {why}")
    return problems


def lambda_python() -> str | None:
    """The Lambda runtime's interpreter (python3.12) as `make build` finds it: pyenv's, else on PATH."""
    try:
        prefix = subprocess.run(["pyenv", "prefix", "3.12"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        prefix = None
    if prefix is not None and prefix.returncode == 0 and prefix.stdout.strip():
        candidate = Path(prefix.stdout.strip().splitlines()[0]) / "bin" / "python3.12"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("python3.12")


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the filesystem allows (no bytes copied: the same file), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_without_bytecode(src: Path, dst: Path) -> Path:
    """`src` at `dst` with every __pycache__ and *.pyc left out (files hard-linked, symlinks kept).

    What Lambda would run had the build shipped no bytecode: the import system finds no pyc next to
    any source and compiles each module it imports.
    """
    shutil.copytree(
        src,
        dst,
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        copy_function=_link_or_copy,
    )
    return dst
