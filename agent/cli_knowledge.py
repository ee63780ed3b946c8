"""`noosphere ingest` and `noosphere search`: the node's knowledge base from the shell."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from agent.errors import ConfigError


def register(main: click.Group) -> None:
    """Add `ingest` and `search` to the root group."""
    from agent.cli import CliState, handle_errors, run
    from agent.cli_chain import deployment_option

    @main.command()
    @click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON report.")
    @click.pass_obj
    @handle_errors
    def ingest(state: CliState, paths: tuple[Path, ...], as_json: bool) -> None:
        """Chunk, store on Swarm, embed and index PATHS (files or directories).

        Text, markdown and PDF; directories recursively. Re-ingesting unchanged files
        changes nothing.
        """
        from tqdm import tqdm

        from agent.services import open_knowledge, open_swarm
        from swarm_vectordb.chunking import DocumentError
        from swarm_vectordb.ingest import IngestReport

        cfg = state.config
        data_dir = cfg.data_dir(state.home.root)

        async def go() -> tuple[IngestReport, int]:
            bar = tqdm(unit="chunk", file=sys.stderr, disable=None, desc="ingest")

            def progress(source: str, done: int, total: int) -> None:
                bar.set_postfix_str(Path(source).name, refresh=False)
                if done == 1:
                    bar.reset(total=total)
                bar.n = done
                bar.refresh()

            try:
                async with (
                    open_swarm(cfg, data_dir) as swarm,
                    open_knowledge(cfg, data_dir) as knowledge,
                ):
                    report = await knowledge.ingestor(swarm).ingest(
                        list(paths), on_progress=progress
                    )
                    total = len(knowledge.index)
            except DocumentError as exc:
                raise ConfigError("paths", str(exc)) from None
            finally:
                bar.close()
            return report, total

        report, total = run(go())
        if as_json:
            click.echo(json.dumps(dict(dataclasses.asdict(report), chunks_in_index=total)))
            return
        click.echo(
            f"{report.files_seen} file(s): {report.chunks_added} chunk(s) added, "
            f"{report.chunks_duplicate} duplicate, {report.chunks_removed} removed, "
            f"{report.files_skipped_unchanged} file(s) unchanged; {total} chunk(s) in the index"
        )
        for source, why in report.files_failed.items():
            click.echo(f"skipped {source}: {why}", err=True)

    @main.command()
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
        """Search the local knowledge base (and peers, with --network) for TEXT."""
        from agent.cli import read_password
        from agent.identity import load_identity
        from agent.services import search_knowledge

        cfg = state.config
        if not text.strip():
            raise ConfigError("text", "empty search")
        if len(text) > cfg.limits.max_input_chars:
            raise ConfigError("limits.max_input_chars", "search text too long")
        node = None
        if network:
            node = load_identity(state.home.keystore_file, read_password(confirm=False))
        report = run(
            search_knowledge(
                cfg,
                cfg.data_dir(state.home.root),
                text,
                k=k,
                node=node,
                fan_out=fan_out,
                deadline_s=deadline,
                deployment_file=state.home.deployment(deployment_file),
            )
        )
        if as_json:
            click.echo(json.dumps(report.to_json()))
            return
        if not report.hits:
            click.echo("no results (ingest something first: noosphere ingest PATH)", err=True)
        from swarm_vectordb.peertext import printable

        for n, hit in enumerate(report.hits, start=1):  # peers' text is untrusted: printable()
            snippet = " ".join(printable(hit.text).split())[:160]
            where = f"{hit.source}#{hit.position}" if hit.origin == "local" else hit.origin
            click.echo(f"{n:>2}. {hit.score:.3f}  {where}")
            click.echo(f"    {snippet}")
        if report.network is not None:
            for address, o in report.network.peers.items():
                status = f"{o.latency_ms:.0f} ms, {o.hits} hit(s)" if o.answered else "no answer"
                if o.dropped:
                    status += f" (dropped: {o.dropped})"
                click.echo(f"peer 0x{address.hex()}: {status}", err=True)

    @main.command()
    @click.option(
        "--republish",
        type=click.FloatRange(10, 86400),
        default=600,
        show_default=True,
        help="Seconds between re-publishing this node's peer record.",
    )
    @click.option(
        "--register",
        is_flag=True,
        help="Also record this node in the chain's AgentRegistry (a transaction you authorise).",
    )
    @deployment_option
    @click.pass_obj
    @handle_errors
    def serve(
        state: CliState, republish: float, register: bool, deployment_file: Path | None
    ) -> None:
        """Serve the knowledge base to peers over Swarm until SIGINT/SIGTERM (headless)."""
        import asyncio
        import logging
        import signal

        from agent.cli import read_password
        from agent.identity import load_identity
        from agent.services import ServingInfo, serve_knowledge

        cfg = state.config
        node = load_identity(state.home.keystore_file, read_password(confirm=False))
        logging.getLogger("swarm_vectordb.network").setLevel(logging.INFO)

        def ready(info: ServingInfo) -> None:
            click.echo(
                f"serving {info.chunks} chunk(s) as {info.address} on {info.bee_url or 'embedded'} "
                f"(inbox {info.inbox.hex()})",
                err=True,
            )
            click.echo(info.address)

        async def go() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            stats = await serve_knowledge(
                cfg,
                cfg.data_dir(state.home.root),
                node,
                stop=stop,
                republish_s=republish,
                on_ready=ready,
                register_with=state.home.deployment(deployment_file) if register else None,
            )
            dropped = ", ".join(f"{k} {v}" for k, v in sorted(stats.dropped.items())) or "none"
            click.echo(f"stopped: served {stats.served} query(ies); dropped: {dropped}", err=True)

        run(go())
