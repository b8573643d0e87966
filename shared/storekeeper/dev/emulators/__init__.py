"""Emulators of the services storekeeper talks to, for `storekeeper devstack` and the tests.

Dev tooling, not production code: the Lambda layer leaves it out.
"""
