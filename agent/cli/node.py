"""`noosphere node` (alias `serve`): the node as one long-running process."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli.common import (
    CliState,
    deployment_option,
    exit_without_collecting,
    handle_errors,
    read_password,
    run,
)
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.api.discovery import NodeLock


def _options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option(
                "--api-port",
                type=click.IntRange(0, 65535),
                help="Port of the local HTTP API on 127.0.0.1 (default: api.port; 0: any free).",
            ),
            click.option("--no-api", is_flag=True, help="Serve peers only; no local HTTP API."),
            click.option(
                "--republish",
                type=click.FloatRange(10, 86400),
                default=600,
                show_default=True,
                help="Seconds between re-publishing this node's peer record.",
            ),
            click.option(
                "--register",
                is_flag=True,
                help="Also record this node in the chain's AgentRegistry "
                "(a transaction you authorise).",
            ),
            click.option(
                "--no-asks",
                is_flag=True,
                help="Answer peers' knowledge queries only, not their questions to the assistant.",
            ),
            click.option(
                "--train",
                is_flag=True,
                help="Opt in to the training market: stake, then claim, train and submit jobs "
                "this node can run (needs network.eth_rpc_url).",
            ),
            click.option(
                "--train-threads", type=click.IntRange(1, 256), default=2, show_default=True
            ),
            click.option(
                "--yes", "-y", "assume_yes", is_flag=True, help="Do not ask before staking."
            ),
            deployment_option,
        ]
    ):
        fn = option(fn)
    return fn


@click.command("node")
@_options
@click.pass_context
@handle_errors
def node_command(
    ctx: click.Context,
    api_port: int | None,
    no_api: bool,
    republish: float,
    register: bool,
    no_asks: bool,
    train: bool,
    train_threads: int,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Run this node until SIGINT/SIGTERM: answer peers over Swarm, serve the local
    HTTP API (OpenAI-compatible, with a bearer token in <home>/api-token), and keep
    the model and index loaded for `ask`, `search`, `ingest` and `chat`.

    `noosphere serve` is the same node, headless: no local API unless --api-port.
    """
    if ctx.info_name == "serve":
        no_api = no_api or api_port is None
    training = (train_threads, assume_yes) if train else None
    state: CliState = ctx.obj
    _run_node(state, api_port, no_api, republish, register, no_asks, training, deployment_file)


def _run_node(
    state: CliState,
    api_port: int | None,
    no_api: bool,
    republish: float,
    register: bool,
    no_asks: bool,
    training: tuple[int, bool] | None,
    deployment_file: Path | None,
) -> None:
    import asyncio
    import logging
    import signal
    import sys

    from agent.daemon import DaemonSettings, NodeReady, SideTask, run_node, training_worker
    from agent.identity import load_identity
    from agent.node import Node

    lock = _claim_home(state.home.root)
    cfg = state.config
    if training is not None and not cfg.network.eth_rpc_url:
        raise ConfigError("network.eth_rpc_url", "--train needs a chain: set its JSON-RPC URL")
    identity = load_identity(state.home.keystore_file, read_password(confirm=False))
    logging.getLogger("swarm_vectordb.network").setLevel(logging.INFO)
    logging.getLogger("agent.daemon").setLevel(logging.INFO)
    settings = DaemonSettings(
        api_port=None if no_api else (cfg.api.port if api_port is None else api_port),
        republish_s=republish,
        register=register,
        answer_asks=not no_asks,
    )

    def ready(info: NodeReady) -> None:
        serving = info.serving
        asks = "queries and asks" if serving.answers_asks else "queries"
        click.echo(
            f"node {serving.address}: {serving.chunks} chunk(s), answering {asks} on "
            f"{serving.bee_url} (inbox {serving.inbox.hex()})",
            err=True,
        )
        if info.api_url:
            click.echo(
                f"local API: {info.api_url} (token in {state.home.root}/api-token)", err=True
            )
        click.echo(serving.address)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with await Node.open(
            cfg, state.home, identity=lambda: identity, deployment_file=deployment_file
        ) as node:
            side: dict[str, SideTask] = {}
            if training is not None:
                threads, assume_yes = training

                async def approve(action: str) -> bool:
                    if assume_yes:
                        return True
                    if not sys.stdin.isatty():
                        click.echo(f"not approved (run with --yes to allow): {action}", err=True)
                        return False
                    prompt = f"{action}. Proceed?"
                    return await asyncio.to_thread(click.confirm, prompt, err=True)

                def say(line: str) -> None:
                    click.echo(line, err=True)

                side["training worker"] = training_worker(
                    node, threads=threads, approve=approve, say=say
                )
            report = await run_node(node, settings, stop=stop, on_ready=ready, side_tasks=side)
        for name, why in report.side_task_errors.items():
            click.echo(f"{name} stopped: {why}", err=True)
        stats = report.peers
        if stats is not None:
            dropped = ", ".join(f"{k} {v}" for k, v in sorted(stats.dropped.items())) or "none"
            click.echo(
                f"stopped: served {stats.served} query(ies), {stats.asks_answered} ask(s) "
                f"({stats.asks_refused} told to retry later); dropped: {dropped}",
                err=True,
            )

    with lock or contextlib.nullcontext():
        run(go())
    exit_without_collecting()


def _claim_home(home: Path) -> NodeLock | None:
    """This process's lock on `home` (None when there is no home yet: the key is missing
    and loading it says so); a `ConfigError` when another node holds it, even one that
    is stopped or too busy to answer."""
    from agent.api.discovery import NodeLock, lock_holder, read_node_file, used_by_commands

    if not home.is_dir():
        return None
    try:
        lock = NodeLock.acquire(home)
    except OSError as exc:
        raise ConfigError("node", f"cannot lock {home}/node.lock: {exc.strerror}") from None
    if lock is None:
        if used_by_commands(home):
            raise ConfigError(
                "node",
                f"another noosphere command is working on {home}'s index in its own "
                "process (--no-node, --config or --set); let it finish, then start the node",
            )
        pid, address = lock_holder(home), read_node_file(home)
        where = f" at {address.url}" if address is not None and address.pid == pid else ""
        held = f" (pid {pid})" if pid is not None else ""
        raise ConfigError("node", f"a node already runs for {home}{where}{held}")
    return lock
