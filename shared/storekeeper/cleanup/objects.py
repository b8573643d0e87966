"""Object actions: delete_objects, delete_prefix, delete_bucket (emptied first)."""

from __future__ import annotations

from storekeeper.cleanup.base import Action, Context, register
from storekeeper.errors import BucketNotEmpty, BucketNotFound
from storekeeper.models.cleanup import CleanupAction

EMPTY_ROUNDS = 3  # list+delete rounds before giving up on a bucket that keeps receiving objects


def _bucket_protected(ctx: Context) -> bool:
    """A protected bucket protects everything in it. Raises BucketNotFound for a missing bucket."""
    reason = ctx.protection.bucket_reason(ctx.task.bucket)
    if reason:
        ctx.skip(f"bucket:{ctx.task.bucket}", reason)
        return True
    return False


def _purge_leftovers(ctx: Context) -> bool:
    """Versioned bucket being deleted: remove the noncurrent versions and delete markers left behind."""
    if ctx.dry_run or not ctx.store.versioned:
        return True
    # only keys whose newest entry is a delete marker: an object written meanwhile is current, and
    # waits for the next round's checks (etag "" never matches a current object, so purge keeps it)
    gone = {v.key: "" for v in ctx.store.list_versions("") if v.is_latest and v.delete_marker}
    res = ctx.store.purge_many(gone, etags=gone)
    ctx.outcome.versions_removed += res.versions_removed
    ctx.outcome.bytes_freed += res.bytes_freed
    ctx.outcome.errors.update(res.errors)
    return not res.errors


@register
class DeleteObjects(Action):
    """Delete the listed keys that still exist, still match the guard and are not protected."""

    name = CleanupAction.delete_objects

    def run(self, ctx: Context) -> None:
        if _bucket_protected(ctx):
            return
        keys = list(dict.fromkeys(ctx.task.keys))
        found = ctx.listed(keys)  # list pages, not a HEAD per key; HEADs only for label checks
        present = []
        for key in keys:
            info = found[key]
            if info is None:
                ctx.outcome.missing.append(key)
            else:
                present.append(info)
        allowed = ctx.check_objects(present, headed=False)
        ctx.delete_keys(allowed)


@register
class DeletePrefix(Action):
    """Delete everything under a prefix (all pages), minus what is protected or changed."""

    name = CleanupAction.delete_prefix

    def run(self, ctx: Context) -> None:
        if _bucket_protected(ctx):
            return
        prefix = ctx.task.prefix or ""
        infos = list(ctx.store.list(prefix))
        limit = ctx.task.guard.max_objects
        if limit is not None and len(infos) > limit:
            ctx.skip(
                prefix, f"prefix {prefix!r} now holds {len(infos)} objects, more than the planned {limit}"
            )
            return
        if not infos:
            ctx.outcome.missing.append(prefix)
            return
        allowed = ctx.check_objects(infos, headed=False)
        ctx.delete_keys(allowed)


@register
class DeleteBucket(Action):
    """Empty the bucket in batches, then delete it; any protected object keeps the whole bucket."""

    name = CleanupAction.delete_bucket
    missing_bucket_is_noop = True

    def run(self, ctx: Context) -> None:
        bucket = ctx.task.bucket
        try:
            if _bucket_protected(ctx):
                return
        except BucketNotFound:
            ctx.outcome.missing.append(f"bucket:{bucket}")
            return
        for _ in range(EMPTY_ROUNDS):
            infos = list(ctx.store.list(""))
            limit = ctx.task.guard.max_objects
            if limit is not None and len(infos) > limit:
                ctx.skip(
                    f"bucket:{bucket}",
                    f"bucket {bucket} grew to {len(infos)} objects, planned at most {limit}",
                )
                return
            allowed = ctx.check_objects(infos, headed=False)
            if ctx.outcome.skipped:
                kept = len(ctx.outcome.skipped)
                ctx.skip(f"bucket:{bucket}", f"bucket {bucket} not emptied: {kept} object(s) must be kept")
                return
            # the whole bucket goes: on a versioned bucket every version of it too (else it never empties)
            if not ctx.delete_keys(allowed, purge_all=True) or not _purge_leftovers(ctx):
                return  # per-key errors are in the outcome: failed, retried by SQS
            if ctx.dry_run:
                ctx.outcome.would_delete.append(f"bucket:{bucket}")
                return
            try:
                ctx.store.delete_bucket(bucket)
            except BucketNotEmpty:
                continue  # a writer added objects meanwhile: list again (bounded)
            except BucketNotFound:
                ctx.outcome.missing.append(f"bucket:{bucket}")
                return
            ctx.outcome.deleted.append(f"bucket:{bucket}")
            return
        ctx.outcome.errors[f"bucket:{bucket}"] = (
            f"bucket {bucket} still not empty after {EMPTY_ROUNDS} rounds"
        )
