"""`noosphere demo`: the whole network on this machine, in one command.

    noosphere demo [--workdir DIR] [--keep] [--steps N] [--json]

A thin shell over `agent.demo`: every role runs as its own `noosphere` process,
each node with its own home under the work directory. The root group registers
the command with `register(main)`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

import click

from agent.cli.common import CliState, handle_errors, run

__all__ = ["demo", "register"]


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Put the node homes and logs here (new or empty; kept). Default: a temporary "
    "directory, removed at the end unless --keep.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary work directory.")
@click.option(
    "--steps",
    type=click.IntRange(1, 1000),
    help="Training steps of the job (default 8, enough to teach the fact).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on the last line.")
@click.pass_obj
@handle_errors
def demo(
    state: CliState, workdir: Path | None, keep: bool, steps: int | None, as_json: bool
) -> None:
    """Run a dev Swarm node, a dev chain and three nodes, and show what they do together.

    Two peers serve different documents and the assistant searches both; a Dataset
    DAO is built and forked; a training job is trained by one node, verified by
    another and paid; the assistant loads the adapter and answers a question it
    could not answer before. Every child process stops on exit, error or Ctrl-C.
    """
    from agent.demo import DemoOptions, Summary, prepare_workdir, run_demo

    # The nodes' keystore password: the caller's NOOSPHERE_PASSWORD, else a fresh one.
    # It reaches the children through their environment and is never printed.
    password = state.env_password or secrets.token_urlsafe(18)
    summary = Summary()
    with prepare_workdir(workdir, keep) as path:
        click.echo(f"noosphere demo in {path}")
        options = DemoOptions(workdir=path, password=password, say=click.echo)
        if steps is not None:
            options = dataclasses.replace(options, steps=steps)
        try:
            run(run_demo(options, summary))
        finally:
            if summary.steps:
                click.echo("")
                click.echo(summary.render())
            if keep or workdir is not None:
                click.echo(f"node homes and logs kept in {path}")
            if as_json:
                click.echo(json.dumps(summary.to_json()))


def register(main: click.Group) -> None:
    """Add `demo` to the root command group."""
    main.add_command(demo)
