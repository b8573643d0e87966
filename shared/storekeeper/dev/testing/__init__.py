"""Test support shipped with storekeeper: the quota-safe pytest plugin (dev tooling, not in the layer)."""
