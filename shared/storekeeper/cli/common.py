"""Options and output shared by every command: a table for people, JSON for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from storekeeper.errors import StorekeeperError
from storekeeper.stores import ObjectStore, default_store_url

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (s3://b, supabase://b, file:///path); env STOREKEEPER_STORE."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]

#: tables fit the terminal; one-line messages that name a path or URL print with soft_wrap=True (never
#: broken inside the path at the terminal's width: they stay copyable and greppable whatever its length)
console = Console(stderr=True)
T = TypeVar("T")


def store_url(store: str | None) -> str:
    return store or default_store_url()


def open_cli_store(url: str | None, *, writes: bool) -> ObjectStore:
    """The command's store, checked up front (one naming rule for every command).

    Reading commands never create a local store directory (a mistyped path is reported as
    a missing bucket); writing ones may, and say so.
    """
    from storekeeper.stores import open_store

    target = store_url(url)
    if not writes or not target.startswith("file://"):
        return open_store(target, create=writes)
    path = Path(target.removeprefix("file://"))
    existed = path.exists()
    opened = open_store(target)
    if not existed:
        console.print(f"created local store {escape(str(path))}", highlight=False, soft_wrap=True)
    return opened


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def friendly_errors(as_json: bool) -> Iterator[None]:
    """Known errors end the command with exit 1 and one clear line (or a JSON error object)."""
    try:
        yield
    except StorekeeperError as exc:
        if as_json:
            emit_json({"error": type(exc).__name__, "message": str(exc)})
        else:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


def run(as_json: bool, fn: Callable[[], T]) -> T:
    with friendly_errors(as_json):
        return fn()


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Skip the confirmation prompt.")]


def is_terminal() -> bool:
    return sys.stdin.isatty()


def ask(question: str, *, yes: bool, required: bool = False) -> bool:
    """Ask before a change in a terminal; `--yes` skips. Without a terminal the answer is yes,
    unless `required` (then `--yes` must say so): cron keeps working, nothing is guessed."""
    if yes:
        return True
    if not is_terminal():
        if required:
            console.print(f"[bold red]error:[/] {question} needs confirmation: not a terminal, pass --yes")
            raise typer.Exit(1)
        return True
    return bool(typer.confirm(question, default=False, err=True))


def confirm(question: str, *, yes: bool, required: bool = False) -> None:
    """`ask`, and end the command (exit 1, nothing changed) on a no."""
    if not ask(question, yes=yes, required=required):
        console.print("aborted: nothing changed")
        raise typer.Exit(1)
