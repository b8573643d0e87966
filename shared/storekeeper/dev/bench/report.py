"""The benchmark report: what was measured, on which backend, against which target.

A report is read by people (the table) and by machines (`bench/report.json`),
so every figure carries its unit and backend, and every target its verdict and
margin, instead of leaving the reader to guess from a bare number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ParamValue = str | int | float | bool | None
Op = Literal["<=", ">=", "=="]
Verdict = Literal["pass", "miss", "not measured"]
Status = Literal["ok", "error", "skipped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Figure(_Model):
    """One measured number: `name` says what, `unit` how, `backend` where, `params` under which sizes."""

    name: str
    value: float
    unit: str
    backend: str
    params: dict[str, ParamValue] = Field(default_factory=dict)
    note: str | None = None


class TargetResult(_Model):
    """A figure held against its target; `margin` is how far past the threshold a miss went (0.2 = 20 %)."""

    name: str
    description: str
    backend: str
    op: Op
    threshold: float
    value: float | None
    unit: str
    verdict: Verdict
    margin: float | None = None
    note: str | None = None

    @classmethod
    def check(
        cls,
        name: str,
        description: str,
        *,
        backend: str,
        op: Op,
        threshold: float,
        value: float | None,
        unit: str,
        note: str | None = None,
    ) -> TargetResult:
        """Compute verdict and margin the same way for every target."""
        if value is None or not math.isfinite(value):
            return cls(
                name=name,
                description=description,
                backend=backend,
                op=op,
                threshold=threshold,
                value=None,
                unit=unit,
                verdict="not measured",
                note=note,
            )
        if op == "<=":
            ok = value <= threshold
            margin = value / threshold - 1 if threshold else math.inf
        elif op == ">=":
            ok = value >= threshold
            margin = 1 - value / threshold if threshold else 0.0
        else:
            ok = value == threshold
            margin = abs(value - threshold) / threshold if threshold else abs(value)
        return cls(
            name=name,
            description=description,
            backend=backend,
            op=op,
            threshold=threshold,
            value=value,
            unit=unit,
            verdict="pass" if ok else "miss",
            margin=None if ok else round(margin, 4),
            note=note,
        )


class CaseResult(_Model):
    name: str
    title: str
    status: Status = "ok"
    reason: str | None = None
    parameters: dict[str, ParamValue | list[int] | list[str]] = Field(default_factory=dict)
    figures: list[Figure] = Field(default_factory=list)
    targets: list[TargetResult] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        backend: str,
        *,
        note: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        **more: ParamValue,
    ) -> Figure:
        """Record a figure; `params` and keyword extras both become its parameters."""
        merged = {**(params or {}), **more}
        fig = Figure(name=name, value=float(value), unit=unit, backend=backend, params=merged, note=note)
        self.figures.append(fig)
        return fig

    def find(self, name: str, backend: str | None = None, **params: ParamValue) -> Figure | None:
        """The first figure of that name (and backend and params, where given)."""
        for f in self.figures:
            if f.name != name or (backend is not None and f.backend != backend):
                continue
            if all(f.params.get(k) == v for k, v in params.items()):
                return f
        return None


class MachineInfo(_Model):
    cpu_count: int
    python: str
    platform: str
    chromadb: str | None
    numpy: str
    storekeeper: str
    date: datetime
    load_average: list[float] | None = None


class BenchReport(_Model):
    format: Literal["storekeeper.dev.bench/1"] = "storekeeper.dev.bench/1"
    quick: bool
    machine: MachineInfo
    #: backend name -> what it was in this run ("weed mini 4.48 at 127.0.0.1:8333") or why it was not used
    backends: dict[str, str] = Field(default_factory=dict)
    cases: list[CaseResult]
    seconds: float
    summary: dict[str, int] = Field(default_factory=dict)

    def summarise(self) -> None:
        counts = {"pass": 0, "miss": 0, "not measured": 0, "cases_ok": 0, "cases_failed": 0}
        for c in self.cases:
            counts["cases_ok" if c.status == "ok" else "cases_failed"] += 1
            for t in c.targets:
                counts[t.verdict] += 1
        self.summary = counts
