"""Reaper policies: the YAML schema, resource kinds, registered filters and the planner."""

from storekeeper.policies.model import (
    LoadedPolicies,
    PolicyFile,
    PolicyFileError,
    load_policies,
    parse_policies,
)

__all__ = ["LoadedPolicies", "PolicyFile", "PolicyFileError", "load_policies", "parse_policies"]
