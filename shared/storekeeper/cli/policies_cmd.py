"""`storekeeper policies validate FILE` and `storekeeper policies schema` (JSON Schema for editors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from storekeeper.cli.common import JsonOpt, console, emit_json
from storekeeper.errors import ValidationError


def policies_schema() -> dict[str, Any]:
    """The policies file's JSON Schema; `filters` items are one of the registered filters, by `type`."""
    from storekeeper.policies.filters import REGISTRY
    from storekeeper.policies.model import PolicyFile

    schema = PolicyFile.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    refs = []
    for name, cls in sorted(REGISTRY.items()):
        one = cls.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
        defs.update(one.pop("$defs", {}))
        one.setdefault("properties", {})["type"] = {"const": name}  # what tells the filters apart
        one["required"] = sorted({*one.get("required", []), "type"})
        defs[cls.__name__] = one
        refs.append({"$ref": f"#/$defs/{cls.__name__}"})
    defs["Filter"] = {"oneOf": refs}
    policy = defs.get("Policy", {})
    if "filters" in policy.get("properties", {}):
        policy["properties"]["filters"] = {
            "type": "array",
            "items": {"$ref": "#/$defs/Filter"},
            "default": [],
        }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "storekeeper reaper policies"
    return schema


def register(app: typer.Typer) -> None:
    policies = typer.Typer(
        help="Reaper policy files: validate one, print the JSON Schema.", no_args_is_help=True
    )
    app.add_typer(policies, name="policies")

    @policies.command("validate")
    def validate(
        file: Annotated[Path, typer.Argument(help="Policies YAML file.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Check a policies file: every problem with its line, policy and field; exit 1 if any."""
        from storekeeper.policies.model import PolicyFileError, load_policies

        try:
            loaded = load_policies(file)
        except PolicyFileError as exc:
            if as_json:
                emit_json({"valid": False, "file": str(file), "problems": exc.problems})
            else:
                for p in exc.problems:
                    console.print(p, highlight=False, markup=False, soft_wrap=True)  # file:line: whole
            raise typer.Exit(1) from None
        except ValidationError as exc:
            if as_json:
                emit_json({"valid": False, "file": str(file), "problems": [str(exc)]})
            else:
                console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        spec = loaded.spec
        enabled = [p.name for p in spec.policies if p.enabled]
        if as_json:
            emit_json({"valid": True, "file": str(file), "sha256": loaded.sha256,
                       "stores": sorted(spec.stores),
                       "policies": [p.name for p in spec.policies], "enabled": enabled})  # fmt: skip
            return
        console.print(
            f"[green]valid[/]: {len(spec.policies)} polic{'y' if len(spec.policies) == 1 else 'ies'} "
            f"({len(enabled)} enabled), stores: {', '.join(sorted(spec.stores)) or 'none'}",
            highlight=False,
        )

    @policies.command("schema")
    def schema() -> None:
        """Print the JSON Schema of the policies file (for editors: yaml-language-server $schema)."""
        emit_json(policies_schema())
