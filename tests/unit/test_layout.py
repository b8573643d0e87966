"""layout.py owns every key the package writes or reads (issue 10.1): no other module spells a prefix."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from storekeeper import layout
from storekeeper.errors import ValidationError

PACKAGE = Path(layout.__file__).parent
#: prefixes also caught without their '/' (`PREFIX = "idempotency"` + f"{PREFIX}/..."); the others' bare
#: words are field names (`collection`, `delta`, `snapshot`)
BARE = tuple(
    p.rstrip("/") for p in (layout.IDEMPOTENCY_PREFIX, layout.REAPER_STATE_PREFIX, layout.REJECTED_PREFIX)
)
#: (module, literal) pairs that are not keys of a store: sample data
EXEMPT = {("snapstart.py", "incoming/c/a.jsonl")}  # the priming task's made-up key, never read or written


def _spelled_prefixes(path: Path) -> list[tuple[int, str]]:
    """String constants (docstrings aside) that are, or start with, a layout prefix."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and (node.value.startswith(layout.PREFIXES) or node.value in BARE)
    ]


def test_no_module_but_layout_spells_a_prefix_of_the_layout() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "layout.py" or rel.startswith("dev/"):  # dev/: benchmarks and emulators, not deployed
            continue
        found += [
            f"{rel}:{line}: {text!r}" for line, text in _spelled_prefixes(path) if (rel, text) not in EXEMPT
        ]
    assert found == []


def test_idempotency_keys_are_built_by_layout_and_never_collide() -> None:
    record = layout.idempotency_record_key("plans", "producer#abc")
    plan = layout.put_plan_key("plans", "producer#abc")
    assert record.startswith("idempotency/plans/")
    assert record.count("/") == 2
    assert plan.startswith("idempotency/plans/plans/")
    assert plan.count("/") == 3
    assert layout.is_idempotency_state(record)
    assert layout.is_idempotency_state(plan)
    assert not layout.is_idempotency_state("idempotency.json")
    assert layout.put_plan_key("producer", "r-1") == layout.put_plan_key("producer", "r-1")
    assert layout.put_plan_key("producer", "r-1") != layout.put_plan_key("producer", "r-2")


@pytest.mark.parametrize("name", ["", "a/b", "..", "x" * 65, "é", "a b", None])
def test_a_bad_function_name_is_refused_naming_the_field(name: object) -> None:
    for build in (layout.idempotency_record_key, layout.put_plan_key):
        with pytest.raises(ValidationError) as err:
            build(name, "k")  # type: ignore[arg-type]
        assert err.value.field == "function_name"
