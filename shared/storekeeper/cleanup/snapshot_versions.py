"""delete_snapshot_version: never the live one, never one newer than live, manifest last."""

from __future__ import annotations

from storekeeper.cleanup.base import Action, Context, register
from storekeeper.models.cleanup import CleanupAction

MANIFEST = "manifest.json"


def _live_reason(ctx: Context, collection: str, version: str) -> str | None:
    """Re-read the pointer now and say why `version` must stay, or None."""
    ctx.protection.forget(collection)
    live = ctx.protection.live(collection)
    planned = ctx.task.guard.live_version
    if live.error:
        return f"collection {collection!r}: {live.error}"
    if live.version is None:
        if planned:
            return f"the pointer of {collection!r} vanished since planning (live was {planned})"
        return f"collection {collection!r} has no published pointer: {version} may be mid-publish"
    if live.version == version:
        if planned and planned != version:
            return f"snapshot {version} became live after planning (live was {planned})"
        return f"snapshot {version} is the live version"
    if version > live.version:
        return f"snapshot {version} is newer than the live {live.version} (it may be mid-publish)"
    if planned and live.version < planned:
        return f"the live version went back from {planned} to {live.version} since planning"
    return None


@register
class DeleteSnapshotVersion(Action):
    name = CleanupAction.delete_snapshot_version

    def run(self, ctx: Context) -> None:
        c, v = ctx.task.collection, ctx.task.version
        assert c is not None
        assert v is not None
        prefix = f"snapshot/{c}/{v}/"
        bucket_reason = ctx.protection.bucket_reason(ctx.task.bucket)
        if bucket_reason:
            ctx.skip(prefix, bucket_reason)
            return
        reason = _live_reason(ctx, c, v)
        if reason:
            ctx.skip(prefix, reason)
            return
        infos = list(ctx.store.list(prefix))
        if not infos:
            ctx.outcome.missing.append(prefix)
            return
        allowed = ctx.check_objects(infos, headed=False)
        if ctx.outcome.skipped:
            ctx.skip(prefix, f"version {v} kept whole: {len(ctx.outcome.skipped)} object(s) must be kept")
            return
        # last look at the pointer right before the first destructive call
        reason = _live_reason(ctx, c, v)
        if reason:
            ctx.skip(prefix, reason)
            return
        manifest = prefix + MANIFEST
        body = [i.key for i in allowed if i.key != manifest]
        last = [i.key for i in allowed if i.key == manifest]
        # manifest LAST: a half-deleted version still has its manifest and is recognisable
        if ctx.delete_keys(body):
            ctx.delete_keys(last)
