"""The protection config a policies file implies, for the planner and the cleanup executor alike.

It lives on the policies side so `storekeeper.protection` (lower in the layers) never imports
the policies package: the arrow points from policies to protection only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlparse

from storekeeper import config
from storekeeper.policies.model import LoadedPolicies, PolicyFile, load_policies
from storekeeper.protection import PROTECT_ENV, ProtectionConfig


def protection_config(
    spec: PolicyFile, extra: Iterable[str] = (), *, stores: Iterable[str] | None = None
) -> ProtectionConfig:
    """`protect:` + `defaults.grace` + the configured stores' buckets (`stores`: as opened by the
    caller; else the buckets named by the stores' URLs)."""
    if stores is None:
        stores = [
            urlparse(s.url).netloc
            for s in spec.stores.values()
            if s.kind == "objects" and s.url and urlparse(s.url).scheme in ("s3", "supabase")
        ]
    return ProtectionConfig.from_protect(spec.protect, extra, grace=spec.defaults.grace, stores=stores)


def load_protection_config(path: str | None = None) -> ProtectionConfig:
    """From the policies file ($REAPER_POLICIES, else the bundled default): the executor protects
    exactly what the planner protected."""
    loaded: LoadedPolicies = load_policies(path)
    return protection_config(loaded.spec)


@lru_cache(maxsize=4)
def _cached(path: str | None, _env_globs: str | None) -> ProtectionConfig:
    return load_protection_config(path)


def default_protection_config() -> ProtectionConfig:
    """Built once per cold start (per policies path and protect-list env), not once per task."""
    return _cached(os.environ.get(config.REAPER_POLICIES), os.environ.get(PROTECT_ENV))
