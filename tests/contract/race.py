"""Child-process side of the compare-and-swap race (spawned, so it must be importable).

Each round: everyone reads the counter (same etag for all, thanks to the barrier),
everyone tries `put(n + 1, if_match=etag)`, then everyone tries to create a
per-round key with `If-None-Match: *`. Results go back on a queue.
"""

from __future__ import annotations

import traceback
from typing import Any

from storekeeper.errors import PreconditionFailed
from tests.contract.backends import StoreSpec, open_spec

COUNTER_KEY = "race/counter"


def round_key(r: int) -> str:
    return f"race/create-{r:03d}"


def worker(spec: StoreSpec, who: int, rounds: int, barrier: Any, results: Any) -> None:
    """Report (who, round, cas_won, create_won, seen_value, error) for every round."""
    try:
        store = open_spec(spec)
        for r in range(rounds):
            barrier.wait(timeout=60)  # previous round fully finished
            got = store.get(COUNTER_KEY)
            barrier.wait(timeout=60)  # everyone holds the same etag
            value = int(got.body.decode())
            try:
                store.put(COUNTER_KEY, str(value + 1).encode(), if_match=got.etag)
                cas_won = True
            except PreconditionFailed:
                cas_won = False
            try:
                store.put(round_key(r), f"{who}".encode(), if_none_match=True)
                create_won = True
            except PreconditionFailed:
                create_won = False
            results.put((who, r, cas_won, create_won, value, None))
    except BaseException:
        results.put((who, -1, False, False, -1, traceback.format_exc()))
        barrier.abort()
