"""Pytest plugin: session-scoped server fixtures (filled in by the harness work)."""
