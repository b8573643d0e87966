"""The dev part of the package: benchmarks, dev servers and emulators.

Installed with the package (`storekeeper bench` and the local dev stack import it), but
never deployed: the Lambda layer build (shared/Makefile) leaves this folder out, and
scripts/check_layer.py proves it after `sam build`.
"""
