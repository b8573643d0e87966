"""delete_snapshot_version: never the live one, never one newer than live, manifest last."""

from __future__ import annotations

from storekeeper.cleanup.base import Action, Context, register
from storekeeper.layout import MANIFEST_NAME, version_prefix
from storekeeper.models.cleanup import CleanupAction
from storekeeper.stores.base import ObjectInfo


def _version_reason(ctx: Context, prefix: str, infos: list[ObjectInfo]) -> str | None:
    """Re-read the pointer now and ask the one protection decision about the version."""
    c = ctx.task.collection
    assert c is not None
    ctx.protection.forget(c)
    created = max((i.last_modified for i in infos), default=None)
    return ctx.protection.reason("version", prefix, created=created, planned_live=ctx.task.guard.live_version)


@register
class DeleteSnapshotVersion(Action):
    name = CleanupAction.delete_snapshot_version

    def run(self, ctx: Context) -> None:
        c, v = ctx.task.collection, ctx.task.version
        assert c is not None
        assert v is not None
        prefix = version_prefix(c, v)
        bucket_reason = ctx.protection.bucket_reason(ctx.task.bucket)
        if bucket_reason:
            ctx.skip(prefix, bucket_reason)
            return
        infos = list(ctx.store.list(prefix))
        if not infos:
            ctx.outcome.missing.append(prefix)  # nothing left to delete, live or not
            return
        reason = _version_reason(ctx, prefix, infos)
        if reason:
            ctx.skip(prefix, reason)
            return
        allowed = ctx.check_objects(infos, headed=False)
        if ctx.outcome.skipped:
            ctx.skip(prefix, f"version {v} kept whole: {len(ctx.outcome.skipped)} object(s) must be kept")
            return
        # last look at the pointer right before the first destructive call
        reason = _version_reason(ctx, prefix, infos)
        if reason:
            ctx.skip(prefix, reason)
            return
        manifest = prefix + MANIFEST_NAME
        body = [i for i in allowed if i.key != manifest]
        last = [i for i in allowed if i.key == manifest]
        # manifest LAST: a half-deleted version still has its manifest and is recognisable
        if ctx.delete_keys(body):
            ctx.delete_keys(last)
