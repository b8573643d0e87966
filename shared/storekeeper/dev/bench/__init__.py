"""Benchmarks: speed, cost and scale of storekeeper against the raw limits and its targets.

One module per case (`case_*.py`), a runner that executes the selected cases in
one process so their figures are comparable, a report model and a table.
Import is cheap: heavy modules (chromadb, boto3, moto) load inside the cases.
"""
