"""Synthetic records from a fixed seed, so two runs measure the same bytes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


def vectors(n: int, dim: int, seed: int) -> Vectors:
    """Unit-norm float32 vectors (like sentence embeddings); norms of 0 are impossible with a normal draw."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def ids(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}-{i:08d}" for i in range(start, start + n)]


def metadatas(n: int, start: int = 0) -> list[dict[str, str | int | float | bool]]:
    """A small, typical metadata dict per record (source, position, a flag)."""
    return [{"source": "bench", "n": i, "even": i % 2 == 0} for i in range(start, start + n)]
