"""`noosphere demo`: the whole network on this machine, in one command.

    noosphere demo [--workdir DIR] [--keep] [--steps N] [--json] [--real-bee]

A thin shell over `agent.demo`: every role runs as its own `noosphere` process,
each node with its own home under the work directory. The root group registers
the command with `register(main)`.

`--real-bee` replaces this process with the repository's
``scripts/bee-localnet run --nodes 3 -- noosphere demo --bee-from-env ...``: the same
demo, run inside a private network of real Bee nodes that the script starts (and
builds Bee for, once) and stops afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sys
from pathlib import Path
from typing import NoReturn

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
@click.option(
    "--real-bee",
    is_flag=True,
    help="Run on a local network of three real Bee 2.8.1 nodes (scripts/bee-localnet; needs "
    "a clone of the repository, Go 1.26 and the right to create a network namespace). "
    "The first run builds Bee: minutes.",
)
@click.option(
    "--bee-from-env",
    is_flag=True,
    help="Use the real Bee nodes named by NOOSPHERE_TEST_BEE_URL[_2,_3] and their batches "
    "NOOSPHERE_TEST_BEE_BATCH[_2,_3] (as scripts/bee-localnet sets them) instead of a "
    "Swarm dev node.",
)
@click.pass_obj
@handle_errors
def demo(
    state: CliState,
    workdir: Path | None,
    keep: bool,
    steps: int | None,
    as_json: bool,
    real_bee: bool,
    bee_from_env: bool,
) -> None:
    """Run a dev Swarm node, a dev chain and three nodes, and show what they do together.

    Two peers serve different documents and the assistant searches both; a Dataset
    DAO is built and forked; a training job is trained by one node, verified by
    another and paid; the assistant loads the adapter and answers a question it
    could not answer before. Every child process stops on exit, error or Ctrl-C.
    With --real-bee the Swarm side is three real Bee nodes on a private local network.
    """
    from agent.demo import DemoOptions, Summary, bee_nodes_from_env, prepare_workdir, run_demo

    if real_bee:
        if bee_from_env:
            raise click.UsageError("give --real-bee or --bee-from-env, not both")
        _exec_on_localnet(state, workdir, keep, steps, as_json)
    bee_nodes = tuple(bee_nodes_from_env(os.environ)) if bee_from_env else ()
    # The nodes' keystore password: the caller's NOOSPHERE_PASSWORD, else a fresh one.
    # It reaches the children through their environment and is never printed.
    password = state.env_password or secrets.token_urlsafe(18)
    summary = Summary()
    with prepare_workdir(workdir, keep) as path:
        click.echo(f"noosphere demo in {path}")
        options = DemoOptions(workdir=path, password=password, say=click.echo, bee_nodes=bee_nodes)
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


def _exec_on_localnet(
    state: CliState, workdir: Path | None, keep: bool, steps: int | None, as_json: bool
) -> NoReturn:
    """Become ``scripts/bee-localnet run --nodes 3 -- noosphere demo --bee-from-env ...``."""
    from agent.demo import BEE_NODES, check_workdir, localnet_launcher
    from agent.demo.processes import noosphere_argv

    if workdir is not None:
        check_workdir(workdir)  # before minutes of bringing Bee up
    script = localnet_launcher()
    inner = [*noosphere_argv(), "demo", "--bee-from-env"]
    if workdir is not None:
        inner += ["--workdir", str(workdir.resolve())]
    inner += ["--keep"] * keep + ["--json"] * as_json
    if steps is not None:
        inner += ["--steps", str(steps)]
    env = dict(os.environ)
    if state.env_password is not None:  # taken from this environment at start: pass it on
        env["NOOSPHERE_PASSWORD"] = state.env_password
    click.echo(
        f"noosphere demo --real-bee: starting {BEE_NODES} real Bee nodes with {script} "
        "(the first run builds Bee 2.8.1 with Go: minutes; its progress follows)"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [str(script), "run", "--nodes", str(BEE_NODES), "--", *inner]
    try:
        os.execve(script, argv, env)
    except OSError as exc:
        raise click.ClickException(f"cannot run {script}: {exc}") from exc


def register(main: click.Group) -> None:
    """Add `demo` to the root command group."""
    main.add_command(demo)
