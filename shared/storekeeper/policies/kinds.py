"""Resource kinds as small registered classes (Cloud Custodian's resource types).

Each kind owns what differs between kinds: how its population is listed, what
`Protection.reason` is asked about one of its records, where its labels come
from, and the cleanup tasks that delete what a policy planned. The planner's
loop is the same for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from storekeeper.errors import NotFound
from storekeeper.layout import DELTA_PREFIX, SNAPSHOT_PREFIX, match_version_key, version_prefix
from storekeeper.models.cleanup import CleanupAction, TaskGuard
from storekeeper.policies.model import Policy
from storekeeper.policies.registry import Registry
from storekeeper.policies.resources import (
    Bucket,
    Delta,
    Resource,
    ResourceKind,
    SnapshotVersion,
    StoredObject,
    Upload,
    VectorBucket,
    VectorIndex,
)
from storekeeper.policies.views import StoreView
from storekeeper.protection import Protection, TargetKind
from storekeeper.stores.base import ObjectInfo

if TYPE_CHECKING:
    from storekeeper.policies.planner import Planner, Row

K = ResourceKind
MAX_KEYS_PER_TASK = 1000
UPLOAD_SEP = "?uploadId="

#: add(rows, **CleanupTask fields): one task for these planned rows
AddTask = Callable[..., None]


class ResourceType(ABC):
    """One resource kind: its population, its protection target, its labels, its delete tasks."""

    type: ClassVar[str]  # set by register()
    #: protection by labels (object metadata, bucket tags, vector registry) is read for candidates
    has_labels: ClassVar[bool] = True

    @abstractmethod
    def population(self, p: Planner, policy: Policy) -> list[Resource]: ...

    @abstractmethod
    def target(self, p: Planner, r: Resource) -> tuple[Protection, TargetKind, str]:
        """What `Protection.reason` is asked about `r`: (the store's protection, kind, name)."""

    def labels_apply(self, p: Planner) -> bool:
        return self.has_labels

    def labels(self, p: Planner, r: Resource) -> dict[str, str]:
        return {}

    @abstractmethod
    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        """Cleanup tasks that delete the planned rows (each carries its own guard)."""


RESOURCES: Registry[type[ResourceType]] = Registry("resource")
register = RESOURCES.register


def resource_type(kind: ResourceKind) -> ResourceType:
    return RESOURCES[kind.value]()


def _chunks(rows: list[Row]) -> list[list[Row]]:
    return [rows[i : i + MAX_KEYS_PER_TASK] for i in range(0, len(rows), MAX_KEYS_PER_TASK)]


def _key_tasks(
    p: Planner, view: StoreView, rows: list[Row], add: AddTask, collection_of: Callable[[str], str | None]
) -> None:
    """delete_objects tasks of full bulk requests (1,000 keys, the last one less), in key order.

    Each task is one DeleteObjects: a plan of N keys is ceil(N / 1000) tasks, whatever the
    collections, which SQS hands to as many cleanup functions in parallel. A task of one
    collection's keys carries its live version (for the report); the executor re-checks every key's
    protection, live state included, when it runs."""
    for chunk in _chunks(rows):
        colls = {collection_of(d.name) for d in chunk}
        coll = colls.pop() if len(colls) == 1 else None
        guard = TaskGuard(
            etags={d.name: p.etags[d.name] for d in chunk if p.etags.get(d.name)},
            last_modified_before=p.now,
            live_version=view.chain(coll).live.version if coll else None,
        )
        add(
            chunk,
            action=CleanupAction.delete_objects,
            bucket=view.store.bucket,
            keys=[d.name for d in chunk],
            collection=coll,
            guard=guard,
        )


def _no_collection(key: str) -> str | None:
    return None


def _delta_collection(key: str) -> str | None:
    from storekeeper.layout import match_delta_key

    parts = match_delta_key(key)
    return parts[0] if parts else None


class _Keys(ResourceType):
    """Objects of a store, by key; labels are their metadata (one HEAD each, when enabled)."""

    def target(self, p: Planner, r: Resource) -> tuple[Protection, TargetKind, str]:
        return p.views[r.store].protection, "key", r.name

    def labels_apply(self, p: Planner) -> bool:
        return p.pconfig.check_object_labels

    def labels(self, p: Planner, r: Resource) -> dict[str, str]:
        view = p.views[r.store]
        try:
            info = p.access.call(lambda: view.store.head(r.name), view.store)
        except NotFound:
            return {}
        return dict(info.metadata or {})


@register(K.object.value)
class Objects(_Keys):
    def population(self, p: Planner, policy: Policy) -> list[Resource]:
        view = p.views[policy.store]
        bucket = view.store.bucket
        return [
            StoredObject(view.name, bucket, i.key, i.size, i.last_modified, i.etag)
            for i in view.listing(policy.prefix)
        ]

    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        _key_tasks(p, p.views[policy.store], planned, add, _no_collection)


@register(K.delta.value)
class Deltas(_Keys):
    def population(self, p: Planner, policy: Policy) -> list[Resource]:
        from storekeeper.layout import match_delta_key

        view = p.views[policy.store]
        bucket = view.store.bucket
        out: list[Resource] = []
        prefix = policy.prefix if policy.prefix.startswith(DELTA_PREFIX) else DELTA_PREFIX
        for i in view.listing(prefix):
            parts = match_delta_key(i.key)
            if parts is None:
                continue
            c, delta_id = parts
            live = view.chain(c).live
            out.append(
                Delta(
                    view.name, bucket, i.key, i.size, i.last_modified, i.etag,
                    collection=c, delta_id=delta_id,
                    applied=delta_id in live.applied and not live.error, live_version=live.version,
                )
            )  # fmt: skip
        return out

    def labels_apply(self, p: Planner) -> bool:
        """Deltas are written by the producer alone, without metadata: a HEAD each could never find
        a label (the cleanup executor still reads labels of what it is about to delete)."""
        return False

    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        _key_tasks(p, p.views[policy.store], planned, add, _delta_collection)


@register(K.snapshot_version.value)
class SnapshotVersions(ResourceType):
    """`snapshot/<c>/<version>/` as one unit; never labelled (its objects are the pipeline's)."""

    has_labels = False

    def population(self, p: Planner, policy: Policy) -> list[Resource]:
        view = p.views[policy.store]
        groups: dict[tuple[str, str], list[ObjectInfo]] = {}
        for i in view.listing(SNAPSHOT_PREFIX):
            cv = match_version_key(i.key)
            if cv:
                groups.setdefault(cv, []).append(i)
        out: list[Resource] = []
        for (c, v), items in sorted(groups.items()):
            chain = view.chain(c)
            out.append(
                SnapshotVersion(
                    view.name, view.store.bucket, version_prefix(c, v),
                    sum(i.size for i in items), max(i.last_modified for i in items), None,
                    collection=c, version=v, keys=tuple(i.key for i in items),
                    published=v in chain.published, live_version=chain.live.version,
                    live_error=chain.live.error,
                )
            )  # fmt: skip
        return out

    def target(self, p: Planner, r: Resource) -> tuple[Protection, TargetKind, str]:
        return p.views[r.store].protection, "version", r.name

    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        view = p.views[policy.store]
        for d in planned:
            cv = match_version_key(d.name)
            assert cv is not None  # the population holds version prefixes only
            c, v = cv
            guard = TaskGuard(live_version=view.chain(c).live.version, last_modified_before=p.now)
            add(
                [d],
                action=CleanupAction.delete_snapshot_version,
                bucket=view.store.bucket,
                collection=c,
                version=v,
                guard=guard,
            )


def upload_name(key: str, upload_id: str) -> str:
    """How an incomplete upload is named in plans and reports (S3's own request notation)."""
    return f"{key}{UPLOAD_SEP}{upload_id}"


def split_upload_name(name: str) -> tuple[str, str]:
    key, _, upload_id = name.rpartition(UPLOAD_SEP)
    return key, upload_id


@register(K.upload.value)
class Uploads(ResourceType):
    """Incomplete multipart uploads: never live data; the protect list applies to their key."""

    has_labels = False

    def population(self, p: Planner, policy: Policy) -> list[Resource]:
        view = p.views[policy.store]
        uploads = p.access.call(lambda: view.store.list_incomplete_uploads(policy.prefix), view.store)
        return [
            Upload(view.name, view.store.bucket, upload_name(u.key, u.upload_id), 0, u.initiated,
                   key=u.key, upload_id=u.upload_id)
            for u in sorted(uploads)
        ]  # fmt: skip

    def target(self, p: Planner, r: Resource) -> tuple[Protection, TargetKind, str]:
        assert isinstance(r, Upload)
        return p.views[r.store].protection, "upload", r.key

    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        view = p.views[policy.store]
        for chunk in _chunks(planned):
            pairs = [split_upload_name(d.name) for d in chunk]
            add(
                chunk,
                action=CleanupAction.abort_uploads,
                bucket=view.store.bucket,
                keys=[k for k, _ in pairs],
                upload_ids=[u for _, u in pairs],
                guard=TaskGuard(last_modified_before=p.now),
            )


@register(K.bucket.value)
class Buckets(ResourceType):
    """Buckets of the store's backend; labels are their tags/labels."""

    def population(self, p: Planner, policy: Policy) -> list[Resource]:
        view = p.views[policy.store]
        infos = p.access.call(view.store.list_buckets, view.store)
        return [Bucket(view.name, b.name, b.name, 0, b.created_at) for b in infos]

    def target(self, p: Planner, r: Resource) -> tuple[Protection, TargetKind, str]:
        return p.views[r.store].protection, "bucket", r.name

    def labels(self, p: Planner, r: Resource) -> dict[str, str]:
        view = p.views[r.store]
        return p.access.call(lambda: view.store.get_bucket_labels(r.name), view.store)

    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        view = p.views[policy.store]
        for d in planned:
            objects = sum(1 for _ in p.access.list(view.store.for_bucket(d.name), ""))
            add([d], action=CleanupAction.delete_bucket, bucket=d.name, guard=TaskGuard(max_objects=objects))


@register(K.vector_bucket.value)
class VectorBuckets(ResourceType):
    """Supabase vector buckets; labels from the `test-<id>-` convention plus the labels registry."""

    def population(self, p: Planner, policy: Policy) -> list[Resource]:
        vv = p.vectors[policy.store]
        out: list[Resource] = []
        for b in vv.buckets():
            out.append(VectorBucket(vv.name, b.name, b.name, 0, vv.created(b)))
        return out

    def target(self, p: Planner, r: Resource) -> tuple[Protection, TargetKind, str]:
        return p.protection, "vector", r.name

    def labels(self, p: Planner, r: Resource) -> dict[str, str]:
        return p.vectors[r.store].labels(r.bucket)

    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        for d in planned:
            add([d], action=CleanupAction.delete_vector_bucket, bucket=d.name)


@register(K.vector_index.value)
class VectorIndexes(ResourceType):
    """Indexes inside vector buckets, named `bucket/index`; a bucket's labels count for its indexes."""

    def population(self, p: Planner, policy: Policy) -> list[Resource]:
        vv = p.vectors[policy.store]
        out: list[Resource] = []
        for b in vv.buckets():
            for ix in vv.indexes(b.name):
                name = f"{b.name}/{ix.name}"
                out.append(VectorIndex(vv.name, b.name, name, 0, ix.created_at, index=ix.name))
        return out

    def target(self, p: Planner, r: Resource) -> tuple[Protection, TargetKind, str]:
        return p.protection, "vector", r.name

    def labels(self, p: Planner, r: Resource) -> dict[str, str]:
        vv = p.vectors[r.store]
        return {**vv.labels(r.bucket), **vv.labels(r.name)}

    def delete_tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        for d in planned:
            b, ix = d.name.split("/", 1)
            add([d], action=CleanupAction.delete_vector_index, bucket=b, index=ix)
