"""`noosphere swarm` subcommands.

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

from agent.cli.common import CliState, handle_errors, run
from agent.errors import NoosphereError


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
        click.echo(f"stopped: the dev node at {node.url}", err=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


@swarm.group()
def stamp() -> None:
    """Postage batches: uploads to Swarm are paid with one."""


def _bee_url(state: CliState) -> str:
    from agent.errors import ConfigError

    url = state.config.network.bee_url
    if not url:
        raise ConfigError(
            "network.bee_url",
            "set it to a Bee node (e.g. `noosphere swarm dev`); the embedded node buys its own",
        )
    return url


@stamp.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def stamp_list(state: CliState, as_json: bool) -> None:
    """List the postage batches of the node at network.bee_url."""
    import json

    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.errors import SwarmError

    async def go() -> list[dict[str, object]]:
        try:
            async with BeeClient(_bee_url(state)) as bee:
                return [s.to_json() for s in await bee.list_stamps()]
        except SwarmError as error:
            raise NoosphereError(f"listing stamps: {error}") from None

    stamps = handle_errors(run)(go())
    if as_json:
        click.echo(json.dumps(stamps))
        return
    for s in stamps:
        click.echo(
            f"{s['batchID']}  depth {s['depth']}  usable {s['usable']}  ttl {s['batchTTL']} s"
        )


@stamp.command("buy")
@click.argument("amount", type=click.IntRange(1))
@click.argument("depth", type=click.IntRange(17, 255))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until usable.")
@click.option(
    "--mutable/--immutable",
    default=True,
    show_default=True,
    help="A mutable batch reuses its oldest slots when a bucket fills; an immutable one "
    "refuses further uploads (on real Bee a GSOC inbox fills a bucket after a few messages).",
)
@click.pass_obj
def stamp_buy(
    state: CliState, amount: int, depth: int, yes: bool, wait: bool, mutable: bool
) -> None:
    """Buy a postage batch of 2^DEPTH chunks at AMOUNT PLUR each (spends BZZ on a real node)."""
    import sys

    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.errors import SwarmError

    url = handle_errors(_bee_url)(state)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "buying a stamp spends funds: confirm on a terminal or pass --yes"
            )
        from agent.owner import discard_typeahead

        discard_typeahead(sys.stdin)  # only what is typed after the question answers it
        click.confirm(
            f"Buy a batch of 2^{depth} chunks at {amount} PLUR each on {url}?", abort=True, err=True
        )

    async def go() -> str:
        try:
            async with BeeClient(url) as bee:
                batch = await bee.buy_stamp(amount, depth, label="noosphere", immutable=not mutable)
                if wait:
                    click.echo("waiting until the batch is usable...", err=True)
                    await bee.wait_until_usable(batch)
                return batch.hex()
        except SwarmError as error:
            raise NoosphereError(f"buying a stamp: {error}") from None

    click.echo(handle_errors(run)(go()))
