"""`noosphere adapter list|add|remove`: the LoRA adapters this node home knows.

    noosphere adapter list [--json]
    noosphere adapter add NAME PATH [--scale S] [--default/--no-default]
    noosphere adapter remove NAME

`add` checks the file before recording it (`agent.adapters.inspect_adapter`): a GGUF
LoRA adapter whose tensors fit this node's base model. The registry
(`<home>/adapters.json`) holds name, path, scale, sha256 and whether the adapter is
on by default; the node loads every registered adapter next to its model, and a
request (chat's `/adapter`, the API's `model`) picks which ones it runs with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli.common import CliState, handle_errors

if TYPE_CHECKING:
    from agent.adapters import AdapterRegistry

__all__ = ["register"]


def register(group: click.Group) -> None:
    """Add `list`, `add` and `remove` to the `adapter` group."""
    group.add_command(adapter_list)
    group.add_command(adapter_add)
    group.add_command(adapter_remove)


def _registry(state: CliState) -> AdapterRegistry:
    from agent.adapters import AdapterRegistry

    return AdapterRegistry(state.home.adapter_registry_file)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def adapter_list(state: CliState, as_json: bool) -> None:
    """The registered adapters: name, scale, default, size, sha256, path."""
    handle_errors(_list)(state, as_json)


def _list(state: CliState, as_json: bool) -> None:
    entries = _registry(state).entries()
    rows = []
    for e in entries:
        path = Path(e.path)
        size = path.stat().st_size if path.is_file() else None
        rows.append((e, size))
    if as_json:
        listed = [
            {
                "name": e.name,
                "path": e.path,
                "scale": e.scale,
                "default": e.default,
                "size": size,
                "sha256": e.sha256,
                "added_at": e.added_at,
            }
            for e, size in rows
        ]
        click.echo(json.dumps({"adapters": listed}, indent=2))
        return
    if not rows:
        click.echo("no adapters (add one with: noosphere adapter add NAME PATH)")
        return
    table = [("NAME", "SCALE", "DEFAULT", "SIZE", "SHA256", "PATH")]
    for e, size in rows:
        shown = _size(size) if size is not None else "missing"
        table.append(
            (e.name, f"{e.scale:g}", "yes" if e.default else "no", shown, e.sha256[:12], e.path)
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


@click.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scale", type=float, default=1.0, show_default=True, help="Default strength.")
@click.option(
    "--default/--no-default",
    "is_default",
    default=False,
    help="Apply it to requests that choose no adapters.",
)
@click.pass_obj
def adapter_add(state: CliState, name: str, path: Path, scale: float, is_default: bool) -> None:
    """Check the LoRA GGUF at PATH against the node's model and register it as NAME."""
    handle_errors(_add)(state, name, path, scale, is_default)


def _add(state: CliState, name: str, path: Path, scale: float, is_default: bool) -> None:
    from agent.errors import ConfigError, ModelNotFoundError
    from agent.models import resolve_model

    cfg = state.config
    try:
        base: Path | None = resolve_model(cfg.model, cfg.models_dir(state.home.root)).path
    except (ModelNotFoundError, ConfigError) as exc:
        click.echo(f"warning: not checked against a base model ({exc})", err=True)
        base = None
    entry = _registry(state).add(name, path, scale=scale, default=is_default, base_model=base)
    note = ", on by default" if entry.default else ""
    click.echo(f"added {entry.name}: {entry.path} (scale {entry.scale:g}{note})")


@click.command("remove")
@click.argument("name")
@click.pass_obj
def adapter_remove(state: CliState, name: str) -> None:
    """Forget adapter NAME (the file stays where it is)."""
    handle_errors(_remove)(state, name)


def _remove(state: CliState, name: str) -> None:
    entry = _registry(state).remove(name)
    click.echo(f"removed {entry.name} ({entry.path} is left in place)")
