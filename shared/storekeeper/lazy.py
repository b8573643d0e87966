"""Imports a cold start does not pay until their first use.

* `lazy_exports`: a package `__init__` that names its submodules' things without importing
  them (PEP 562): importing `storekeeper.snapshots.pointer` must not import the archive,
  cache and reader modules too, nor `storekeeper.models.deltas` the cleanup models.
* `lazy_pattern`: a module's regular expression compiled the first time it is used (a compile
  is ~0.3-0.7 M instructions: a put never matches a snapshot, report or continuation key).
* `defer_package_init`: a third-party package whose `__init__` imports far more than the
  submodules we use (Powertools' idempotency package imports boto3 for its DynamoDB layer).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, cast


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: each name is imported from its module on first use."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        sys.modules[package].__dict__[name] = value  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__


class _LazyPattern:
    """Stands in for a compiled pattern until first used, then puts the compiled one in its place in
    the module's namespace: the module's own functions then find the real pattern (no indirection);
    a copy imported by name elsewhere keeps delegating to it."""

    __slots__ = ("_compiled", "_name", "_namespace", "pattern")

    def __init__(self, namespace: dict[str, Any], name: str, pattern: str) -> None:
        self._namespace, self._name, self.pattern = namespace, name, pattern
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern)
            self._namespace[self._name] = self._compiled
        return getattr(self._compiled, attr)

    def __repr__(self) -> str:
        return f"re.compile({self.pattern!r})"


def lazy_pattern(namespace: dict[str, Any], name: str, pattern: str) -> re.Pattern[str]:
    """`re.compile(pattern)` on first use, as `namespace[name]` (pass the module's `globals()`)."""
    return cast("re.Pattern[str]", _LazyPattern(namespace, name, pattern))


def defer_package_init(name: str) -> ModuleType:
    """Register package `name` so its submodules import without running its `__init__` yet.

    Python runs a package's `__init__` before any of its submodules. Powertools' idempotency
    `__init__` imports `DynamoDBPersistenceLayer`, hence boto3 (~250 ms of a cold start), which
    a store-backed persistence layer never uses. The package module is registered unexecuted,
    with a PEP 562 `__getattr__` that runs the real `__init__` the first time a name is asked
    of the package itself (`from aws_lambda_powertools.utilities.idempotency import X`):
    whoever wants the package's API still gets all of it. Submodule imports
    (`...idempotency.persistence.base`) go straight through. A no-op if already imported.
    A submodule that imports from the package itself (Powertools' `persistence.dynamodb`) must be
    reached through the package (`from ...idempotency import DynamoDBPersistenceLayer`): imported
    directly, it would run the `__init__` half-way into itself ("partially initialized module").
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an importable package")
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    state = {"ran": False}

    def __getattr__(attr: str) -> Any:
        with lock:
            if not state["ran"]:  # other threads wait here until the package is whole
                state["ran"] = True
                try:
                    loader.exec_module(module)
                except BaseException:
                    state["ran"] = False  # as a failed import: the next access tries again
                    raise
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    setattr(importlib.import_module(parent), child, module)
    return module
