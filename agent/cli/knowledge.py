"""`noosphere ingest` and `search`: the node's knowledge base from the shell."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from agent.cli.common import CliState, deployment_option, handle_errors, read_password, run
from agent.errors import ConfigError


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report.")
@click.pass_obj
@handle_errors
def ingest(state: CliState, paths: tuple[Path, ...], as_json: bool) -> None:
    """Chunk, store on Swarm, embed and index PATHS (files or directories).

    Text, markdown and PDF; directories recursively. Re-ingesting unchanged files
    changes nothing. A running node (`noosphere node`) does the work when there is one.
    """
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ConfigError("paths", f"no such file or directory: {', '.join(missing)}")
    client = state.running_node()
    if client is not None:
        click.echo(f"ingesting through the node at {client.url}", err=True)
        report = client.ingest_paths(list(paths))
    else:
        state.refuse_beside_running_node("ingest")
        report = run(_ingest_here(state, list(paths)))
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(
        f"{report['files_seen']} file(s): {report['chunks_added']} chunk(s) added, "
        f"{report['chunks_duplicate']} duplicate, {report['chunks_removed']} removed, "
        f"{report['files_skipped_unchanged']} file(s) unchanged; "
        f"{report['chunks_in_index']} chunk(s) in the index"
    )
    for source, why in report["files_failed"].items():
        click.echo(f"skipped {source}: {why}", err=True)


async def _ingest_here(state: CliState, paths: list[Path]) -> dict[str, Any]:
    from tqdm import tqdm

    from agent.node import Node

    bar = tqdm(unit="chunk", file=sys.stderr, disable=None, desc="ingest")

    def progress(source: str, done: int, total: int) -> None:
        bar.set_postfix_str(Path(source).name, refresh=False)
        if done == 1:
            bar.reset(total=total)
        bar.n = done
        bar.refresh()

    try:
        async with await Node.open(state.config, state.home) as node:
            report = await node.ingest_paths(paths, on_progress=progress)
            return dict(dataclasses.asdict(report), chunks_in_index=node.index_size())
    finally:
        bar.close()


@click.command()
@click.argument("text")
@click.option("--k", "k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--network", is_flag=True, help="Also ask peers over Swarm (signs with the key).")
@click.option("--fan-out", type=click.IntRange(0), help="Peers to ask (0: all known).")
@click.option("--deadline", type=click.FloatRange(0.1, 600), help="Seconds to wait for peers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@deployment_option
@click.pass_obj
@handle_errors
def search(
    state: CliState,
    text: str,
    k: int,
    network: bool,
    fan_out: int | None,
    deadline: float | None,
    as_json: bool,
    deployment_file: Path | None,
) -> None:
    """Search the local knowledge base (and peers, with --network) for TEXT.

    A running node (`noosphere node`) answers when there is one.
    """
    cfg = state.config
    if not text.strip():
        raise ConfigError("text", "empty search")
    if len(text) > cfg.limits.max_input_chars:
        raise ConfigError("limits.max_input_chars", "search text too long")
    client = state.running_node() if deployment_file is None else None
    if client is not None:
        report = client.search(text, k=k, network=network, fan_out=fan_out, deadline_s=deadline)
    else:
        state.refuse_beside_running_node("search")
        report = run(_search_here(state, text, k, network, fan_out, deadline, deployment_file))
    if as_json:
        click.echo(json.dumps(report))
        return
    show_search(report)


async def _search_here(
    state: CliState,
    text: str,
    k: int,
    network: bool,
    fan_out: int | None,
    deadline: float | None,
    deployment_file: Path | None,
) -> dict[str, Any]:
    from agent.identity import NodeIdentity, load_identity
    from agent.node import Node

    key: NodeIdentity | None = None
    if network:  # the password is asked for before anything loads
        key = load_identity(state.home.keystore_file, read_password(confirm=False))
    async with await Node.open(
        state.config, state.home, identity=lambda: key, deployment_file=deployment_file
    ) as node:
        found = await node.search(text, k=k, network=network, fan_out=fan_out, deadline_s=deadline)
    return found.to_json()


def show_search(report: dict[str, Any]) -> None:
    """A search report (`SearchReport.to_json()`) for a person; peers' text is untrusted."""
    from swarm_vectordb.peertext import printable

    if not report["hits"]:
        click.echo("no results (ingest something first: noosphere ingest PATH)", err=True)
    for n, hit in enumerate(report["hits"], start=1):
        snippet = " ".join(printable(hit["text"]).split())[:160]
        local = hit["origin"] == "local"
        where = f"{hit['source']}#{hit['position']}" if local else printable(hit["origin"])
        click.echo(f"{n:>2}. {hit['score']:.3f}  {where}")
        click.echo(f"    {snippet}")
    for peer in report.get("peers", []):
        status = (
            f"{peer['latency_ms']:.0f} ms, {peer['hits']} hit(s)"
            if peer["answered"]
            else "no answer"
        )
        if peer["dropped"]:
            status += f" (dropped: {peer['dropped']})"
        click.echo(f"peer {peer['address']}: {status}", err=True)
