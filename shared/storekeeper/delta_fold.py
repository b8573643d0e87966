"""Consecutive deltas folded into one set of chromadb writes (the compactor's apply).

chromadb pays per call, not only per record: ten adds of 1,000 records cost about a second
more CPU than two adds of its max batch size (docs/performance.md, "Compaction: where the time
over a raw upsert went"), and producers write deltas of ~1,000. Folding keeps the contract
(each delta applied in delta_id order, a put replaces the whole record): over the deltas of one
fold, an id's last operation wins, a put (its whole record) or a delete, which is exactly what
applying them one by one leaves. A partial update reads the current record, so a delta with
updates is folded alone (the caller writes the fold before and after it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storekeeper.deltas import DeltaContent, Metadata, RecordUpdate


@dataclass
class Fold:
    """Puts and deletes of consecutive deltas, not yet written; `deltas` in the order folded."""

    deltas: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    _gone: dict[str, None] = field(default_factory=dict)  # ids whose current record goes
    _puts: dict[str, tuple[Any, Metadata | None, str | None]] = field(default_factory=dict)
    _updates: list[RecordUpdate] = field(default_factory=list)

    def add(self, content: DeltaContent, embeddings: Any, digest: str) -> None:
        """Fold one checked delta in (after those already folded); `embeddings` as a numpy array."""
        if self._updates or (content.updates and self.deltas):
            raise ValueError("a delta with updates is folded alone")
        for rid in content.deletes:
            self._gone[rid] = None
            self._puts.pop(rid, None)
        for i, rid in enumerate(content.ids):
            self._gone[rid] = None
            self._puts[rid] = (embeddings[i], content.metadatas[i], content.documents[i])
        self._updates = list(content.updates)
        self.deltas.append(content.delta_id)
        self.digests[content.delta_id] = digest

    @property
    def records(self) -> int:
        return len(self._gone) + len(self._updates)

    @property
    def has_updates(self) -> bool:
        return bool(self._updates)

    def write(self, col: Any, batch: int) -> None:
        """Apply the fold to `col` (chroma.apply: deletes, whole-record puts, updates); it stays
        as it was, the caller starts a new one."""
        import numpy as np

        from storekeeper import chroma

        ids = list(self._puts)
        rows = [self._puts[i] for i in ids]
        chroma.apply(
            col,
            deletes=[rid for rid in self._gone if rid not in self._puts],
            ids=ids,
            embeddings=np.stack([r[0] for r in rows]) if rows else np.zeros((0, 0), np.float32),
            metadatas=[r[1] for r in rows],
            documents=[r[2] for r in rows],
            updates=self._updates,
            batch=batch,
        )
