"""`noosphere tools list` and `noosphere tools call`: the built-in tools from the shell.

Calls run as the local owner, with the node home off limits to the python tool.
Exit status: 0 when the tool succeeded, 1 when it ran and failed (`ok: false`),
2 for input the tool never saw (malformed JSON, an unknown tool).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from agent.cli.common import CliState, handle_errors, run
from agent.errors import NoosphereError


class ToolInputError(NoosphereError):
    """The command line named no such tool or its arguments are not a JSON object."""

    exit_status = 2


def parse_arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolInputError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ToolInputError('arguments must be a JSON object, e.g. \'{"expression": "1+1"}\'')
    return value


@click.group("tools")
def tools_group() -> None:
    """Run the node's built-in tools directly, as the local owner."""


@tools_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print MCP's tools/list result.")
@click.pass_obj
@handle_errors
def tools_list(state: CliState, as_json: bool) -> None:
    """List the built-in tools and what they accept."""
    from tools.builtin import builtin_registry

    registry = builtin_registry(deny=[state.home.root])
    if as_json:
        click.echo(json.dumps(registry.mcp_list()))
        return
    for t in registry.list():
        flags = [
            name
            for name, on in (
                ("read-only", t.annotations.read_only),
                ("destructive", t.annotations.destructive),
                ("local-only", t.annotations.local_only),
            )
            if on
        ]
        args = ", ".join(t.input_schema.get("properties", {}))
        suffix = f"  [{', '.join(flags)}]" if flags else ""
        click.echo(f"{t.name}({args}){suffix}")
        click.echo(f"    {t.description}")


@tools_group.command("call")
@click.argument("name")
@click.argument("arguments", default="{}")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
@handle_errors
def tools_call(state: CliState, name: str, arguments: str, as_json: bool) -> None:
    """Call tool NAME with ARGUMENTS, a JSON object (default: {})."""
    from tools.base import ToolContext
    from tools.builtin import builtin_registry

    registry = builtin_registry(deny=[state.home.root])
    if name not in registry:
        known = ", ".join(t.name for t in registry.list())
        raise ToolInputError(f"unknown tool {name!r} (available: {known})")
    parsed = parse_arguments(arguments)
    result = run(registry.call(name, parsed, ToolContext(local_owner=True)))
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        if result.output:
            click.echo(result.output, nl=not result.output.endswith("\n"))
        if not result.ok:
            click.echo(f"error: {result.error}", err=True)
    if not result.ok:
        sys.exit(1)
