"""abort_uploads: abort incomplete multipart uploads (S3) / stale temp files (local) the reaper planned.

Re-checked at execution from a fresh listing of the incomplete uploads: an upload
that was completed or aborted meanwhile is a noop, one initiated after the
planning cutoff or whose key is on the protect list is kept.
"""

from __future__ import annotations

from storekeeper.cleanup.base import Action, Context, register
from storekeeper.errors import StorekeeperError
from storekeeper.models.cleanup import CleanupAction


def _folder(keys: list[str]) -> str:
    """The deepest folder holding every key (the listing prefix)."""
    first, last = min(keys), max(keys)
    n = next(
        (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last))
    )
    folder = first[:n].rpartition("/")[0]
    return folder + "/" if folder else ""


@register
class AbortUploads(Action):
    """Abort each planned (key, upload_id) that is still incomplete, old enough and not protected."""

    name = CleanupAction.abort_uploads

    def run(self, ctx: Context) -> None:
        from storekeeper.cleanup.objects import _bucket_protected

        if _bucket_protected(ctx):
            return
        task, store = ctx.task, ctx.store
        current = {(u.key, u.upload_id): u for u in store.list_incomplete_uploads(_folder(task.keys))}
        cutoff = task.guard.last_modified_before
        for key, upload_id in zip(task.keys, task.upload_ids, strict=True):
            target = f"{key}?uploadId={upload_id}"
            upload = current.get((key, upload_id))
            if upload is None:
                ctx.outcome.missing.append(target)  # completed or aborted meanwhile
                continue
            reason = ctx.protection.reason("upload", key, created=upload.initiated)
            if reason is None and cutoff is not None and upload.initiated >= cutoff:
                reason = f"upload initiated at {upload.initiated.isoformat()}, after the planned cutoff"
            if reason:
                ctx.skip(target, reason)
                continue
            if ctx.dry_run:
                ctx.outcome.would_delete.append(target)
                continue
            try:
                store.abort_upload(key, upload_id)
            except StorekeeperError as exc:
                ctx.outcome.errors[target] = str(exc)
                continue
            ctx.outcome.deleted.append(target)
