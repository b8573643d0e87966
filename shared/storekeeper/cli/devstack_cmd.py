"""`storekeeper devstack`: start the local stack, print its settings, run until interrupted."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from types import FrameType

import typer


def register(app: typer.Typer) -> None:
    @app.command("devstack")
    def devstack() -> None:
        """Start SeaweedFS, moto_server, the Supabase emulator and PostgreSQL on 127.0.0.1.

        Prints one `export NAME=value` line per setting, then `ready`; stops everything it started
        on SIGINT or SIGTERM. Run it in one terminal and paste the exports into another (or let a
        script read lines up to `ready`).
        """
        from storekeeper.dev.devstack import start_devstack

        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        stack = start_devstack()
        try:
            for name, value in stack.env().items():
                print(f"export {name}={shlex.quote(value)}")
            print("ready", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            stack.stop()
            print("stopped", file=sys.stderr, flush=True)
