"""Policy actions as small registered classes (the cleanup side's actions have the same shape).

An action says whether what it selects is protected and counted as a deletion,
may narrow the population or the selection, and turns planned rows into
cleanup tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from storekeeper.models.cleanup import CleanupAction, TaskGuard
from storekeeper.policies.filters import Selection
from storekeeper.policies.kinds import AddTask, resource_type
from storekeeper.policies.model import Policy
from storekeeper.policies.registry import Registry
from storekeeper.policies.resources import Resource
from storekeeper.policies.views import PolicyEnv

if TYPE_CHECKING:
    from storekeeper.policies.planner import Planner, Row


class PolicyAction(ABC):
    type: ClassVar[str]  # set by register()
    #: what it selects is protected (structure, names, labels, grace) and counts against the caps
    deletes: ClassVar[bool] = True

    def scope(self, p: Planner, policy: Policy, population: list[Resource]) -> list[Resource]:
        """The population this action works on (all of the policy's resource kind by default)."""
        return population

    def refine(self, p: Planner, policy: Policy, env: PolicyEnv, sel: Selection) -> Selection:
        """Adjust the filters' selection (a set-level condition of the action itself)."""
        return sel

    @abstractmethod
    def tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None: ...


ACTIONS: Registry[type[PolicyAction]] = Registry("policy action")
register = ACTIONS.register


def policy_action(name: str) -> PolicyAction:
    return ACTIONS[name]()


@register("delete")
class Delete(PolicyAction):
    """Delete what was selected: the resource kind knows how (objects, versions, buckets, ...)."""

    def tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        resource_type(policy.resource).delete_tasks(p, policy, planned, add)


@register("create-overflow")
class CreateOverflow(PolicyAction):
    """Create the next overflow bucket of the store's group once every member is past the threshold."""

    deletes = False

    def scope(self, p: Planner, policy: Policy, population: list[Resource]) -> list[Resource]:
        from storekeeper.overflow import group_members  # only a create-overflow policy needs it

        names = group_members([r.name for r in population], p.views[policy.store].store.bucket)
        return [r for r in population if r.name in names]

    def refine(self, p: Planner, policy: Policy, env: PolicyEnv, sel: Selection) -> Selection:
        """An overflow bucket is needed only when every member of the group is past the threshold."""
        full = {r.name for r, _ in sel.chosen}
        population = env.population()
        room = [r for r in population if r.name not in full]
        cap = env.capacity
        group = ", ".join(
            f"{r.name}={(env.bucket_usage(r.name) / cap) if cap else 0.0:.3f}" for r in population
        )
        if not sel.chosen:
            return Selection(notes=[*sel.notes, f"group {group}: no member past the threshold"])
        if room:
            names = ", ".join(r.name for r in room)
            return Selection(
                passed=[(r, f"group still has room in {names}") for r, _ in sel.chosen],
                notes=[*sel.notes, f"group {group}: room left in {names}"],
            )
        return Selection(
            chosen=sel.chosen, notes=[*sel.notes, f"group {group}: every member full, overflow needed"]
        )

    def tasks(self, p: Planner, policy: Policy, planned: list[Row], add: AddTask) -> None:
        from storekeeper.policies.filters.sizes import UsageRatio  # named by a create-overflow policy

        view = p.views[policy.store]
        spec = view.spec
        f = next((f for f in policy.item_filters if isinstance(f, UsageRatio)), None)
        hard = f.threshold(PolicyEnv(p.now, spec, view, [])) if f else spec.watermarks.hard
        guard = TaskGuard(capacity_bytes=spec.capacity, hard_watermark=hard)
        add(planned, action=CleanupAction.create_overflow_bucket, bucket=view.store.bucket, guard=guard)
