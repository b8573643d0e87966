"""Helpers shared by the server fixtures; in storekeeper.dev.devservers so the bench uses them too."""

from __future__ import annotations

from storekeeper.dev.devservers import (
    VENV_BIN,
    free_port,
    free_ports,
    log_tail,
    port_open,
    start_process,
    stop_process,
    wait_until,
)

__all__ = [
    "VENV_BIN",
    "free_port",
    "free_ports",
    "log_tail",
    "port_open",
    "start_process",
    "stop_process",
    "wait_until",
]
