"""`noosphere swarm` subcommands (registered by agent.cli).

    noosphere swarm dev [--host 127.0.0.1] [--port 1633] [--data-dir DIR]

runs the Bee-API-compatible dev node in the foreground: it prints its URL on
stdout once it listens and exits with status 0 on SIGINT or SIGTERM, after
closing its subscriptions and flushing nothing (every upload is already
durable when it is acknowledged).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from agent.errors import NoosphereError


def register(main: click.Group) -> None:
    """Add this component's commands to the root `noosphere` group."""
    main.add_command(swarm)


@click.group()
def swarm() -> None:
    """Swarm storage: the local dev node."""


@swarm.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=1633, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep chunks, stamps and keys here across restarts (default: in memory).",
)
def dev(host: str, port: int, data_dir: Path | None) -> None:
    """Run a Bee-API-compatible dev node until SIGINT or SIGTERM."""
    from agent.cli import handle_errors, run

    handle_errors(run)(_serve(host, port, data_dir))


async def _serve(host: str, port: int, data_dir: Path | None) -> None:
    from swarm_vectordb.bee.devnode import DevNode

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            node = await DevNode.start(host, port, data_dir)
        except OSError as error:
            raise NoosphereError(f"cannot listen on {host}:{port}: {error}") from error
        try:
            click.echo(node.url)
            await stop.wait()
        finally:
            await node.aclose()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
