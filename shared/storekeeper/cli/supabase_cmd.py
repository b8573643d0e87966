"""`storekeeper supabase setup`: create the compare-and-swap table in the project's Postgres."""

from __future__ import annotations

from typing import Annotated

import typer

from storekeeper.cli.common import JsonOpt, console, emit_json, friendly_errors


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Supabase: the Postgres side of supabase:// stores.", no_args_is_help=True)

    @group.command("setup")
    def setup(
        db_url: Annotated[
            str | None,
            typer.Option(
                "--db-url", help="Postgres URL (default: SUPABASE_DB_URL / SUPABASE_DB_URL_SECRET_ARN)."
            ),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Apply storekeeper's migrations (the `storekeeper` schema); safe to run again."""
        from storekeeper.config import SUPABASE_DB_URL
        from storekeeper.errors import ValidationError
        from storekeeper.stores.supabase_cas import PostgresCas, db_url_from_env

        with friendly_errors(as_json):
            url = db_url or db_url_from_env()
            if not url:
                raise ValidationError("--db-url", f"give it, or set {SUPABASE_DB_URL} (Settings > Database)")
            cas = PostgresCas(url)
            try:
                applied = cas.apply_migrations()
            finally:
                cas.close()
        if as_json:
            emit_json({"applied": applied})
            return
        for name in applied:
            console.print(f"applied {name}")
        console.print(
            "[green]storekeeper schema ready[/]: conditional writes of supabase:// stores are atomic"
        )

    app.add_typer(group, name="supabase")
