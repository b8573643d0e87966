"""create_overflow_bucket: re-checks that the group is still full before creating `<base>-N`."""

from __future__ import annotations

from storekeeper.cleanup.base import Action, Context, register
from storekeeper.errors import BucketNotFound
from storekeeper.models.cleanup import CleanupAction
from storekeeper.overflow import (
    DEFAULT_HARD_WATERMARK,
    create_next_bucket,
    group_members,
    least_full_bucket,
    next_overflow_name,
)


@register
class CreateOverflowBucket(Action):
    """task.bucket is the group's base. With guard.capacity_bytes the group's usage is re-read and a
    member with room makes this a noop; without it, an empty newest member does (a duplicate task)."""

    name = CleanupAction.create_overflow_bucket

    def run(self, ctx: Context) -> None:
        base, g = ctx.task.bucket, ctx.task.guard
        names = [b.name for b in ctx.store.list_buckets()]
        if base not in names:
            raise BucketNotFound(ctx.store.url, None, f"overflow base bucket {base} does not exist")
        if g.capacity_bytes is not None:
            hard = g.hard_watermark if g.hard_watermark is not None else DEFAULT_HARD_WATERMARK
            room = least_full_bucket(ctx.store, base, g.capacity_bytes, hard=hard)
            if room is not None:
                ctx.skip(
                    f"bucket:{base}", f"group {base!r} has room under {hard}: {room} (no overflow needed)"
                )
                return
        else:
            members = group_members(names, base)
            if len(members) > 1 and next(iter(ctx.store.for_bucket(members[-1]).list("")), None) is None:
                ctx.skip(
                    f"bucket:{base}", f"the newest member {members[-1]} is still empty (no overflow needed)"
                )
                return
        if ctx.dry_run:
            ctx.outcome.would_create.append(next_overflow_name(base, names))
            return
        ctx.outcome.created.append(create_next_bucket(ctx.store, base))
