"""Vector actions (Supabase vector buckets): delete_vector_index, delete_vector_bucket (indexes first).

A vector bucket with indexes cannot be deleted (S3VectorBucketNotEmpty), so the
bucket action deletes every index it lists (all pages, the adapter's job) first.
"""

from __future__ import annotations

from storekeeper.cleanup.base import Action, Context, register
from storekeeper.errors import BucketNotFound, NotFound, StorekeeperError
from storekeeper.models.cleanup import CleanupAction
from storekeeper.stores.vectors import VectorBackend


def _backend(ctx: Context) -> VectorBackend:
    if ctx.vectors is None:
        raise StorekeeperError(f"task {ctx.task.task_id}: {ctx.task.action.value} needs a vector backend")
    return ctx.vectors


def _protected(ctx: Context, target: str) -> bool:
    """`target` is a vector bucket or `bucket/index`: the one protection decision, no object store."""
    reason = ctx.vector_protection.reason("vector", target)
    if reason:
        ctx.skip(target, reason)
        return True
    return False


@register
class DeleteVectorIndex(Action):
    name = CleanupAction.delete_vector_index
    needs_store = False

    def run(self, ctx: Context) -> None:
        vb, bucket, index = _backend(ctx), ctx.task.bucket, ctx.task.index
        assert index is not None  # the model validator guarantees it
        target = f"index:{bucket}/{index}"
        if _protected(ctx, f"{bucket}/{index}"):
            return
        names = {i.name for i in vb.list_indexes(bucket)}  # BucketNotFound: failed, names the bucket
        if index not in names:
            ctx.outcome.missing.append(target)
            return
        if ctx.dry_run:
            ctx.outcome.would_delete.append(target)
            return
        try:
            vb.delete_index(bucket, index)
        except BucketNotFound:
            raise  # an index in a missing bucket: failed, naming the bucket
        except NotFound:
            ctx.outcome.missing.append(target)
            return
        ctx.outcome.deleted.append(target)


@register
class DeleteVectorBucket(Action):
    name = CleanupAction.delete_vector_bucket
    missing_bucket_is_noop = True
    needs_store = False

    def run(self, ctx: Context) -> None:
        vb, bucket = _backend(ctx), ctx.task.bucket
        if _protected(ctx, bucket):
            return
        try:
            indexes = [i.name for i in vb.list_indexes(bucket)]
        except BucketNotFound:
            ctx.outcome.missing.append(f"vector-bucket:{bucket}")
            return
        kept = [i for i in indexes if _protected(ctx, f"{bucket}/{i}")]
        if kept:
            ctx.skip(f"vector-bucket:{bucket}", f"vector bucket {bucket} keeps protected index(es) {kept}")
            return
        for index in indexes:  # indexes first: a bucket with indexes cannot be deleted
            target = f"index:{bucket}/{index}"
            if ctx.dry_run:
                ctx.outcome.would_delete.append(target)
                continue
            try:
                vb.delete_index(bucket, index)
            except NotFound:
                ctx.outcome.missing.append(target)
                continue
            ctx.outcome.deleted.append(target)
        if ctx.dry_run:
            ctx.outcome.would_delete.append(f"vector-bucket:{bucket}")
            return
        try:
            vb.delete_bucket(bucket)
        except BucketNotFound:
            ctx.outcome.missing.append(f"vector-bucket:{bucket}")
            return
        ctx.outcome.deleted.append(f"vector-bucket:{bucket}")
