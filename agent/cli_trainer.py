"""`noosphere dataset build`: files -> tokenized shards on Swarm -> the root a DAO stores.

    noosphere dataset build PATH... [--shard-tokens N] [--parent MANIFEST_REF] [--json]

Tokenizes with the node's own model (the GGUF the agent runs), uploads every
shard the parent manifest does not already hold, then the manifest, and prints
the Merkle root (what `dataset propose DAO ROOT ...` puts on chain), the manifest
reference, the shard count and how many shards are shared with the parent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.errors import NoosphereError
from agent.models import resolve_model

if TYPE_CHECKING:
    from agent.cli import CliState


class TrainerCommandError(NoosphereError):
    """A trainer error, reported to the user as one line."""


def register(main: click.Group) -> None:
    """Add the trainer's commands (to the `dataset` group the chain component registers)."""
    from agent.cli import handle_errors, run
    from agent.cli_chain import parse_ref
    from agent.cli_market import dataset

    @dataset.command("build")
    @click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
    @click.option(
        "--shard-tokens",
        type=click.IntRange(16, 1 << 20),
        default=2048,
        show_default=True,
        help="Most tokens per shard.",
    )
    @click.option("--parent", "parent_ref", help="Manifest reference of the dataset this forks.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @click.pass_obj
    @handle_errors
    def dataset_build(
        state: CliState,
        paths: tuple[Path, ...],
        shard_tokens: int,
        parent_ref: str | None,
        as_json: bool,
    ) -> None:
        """Shard and upload PATHS (text, markdown, JSONL; directories recursively)."""
        from trainer import TrainerError

        cfg = state.config
        parent = bytes(parse_ref(parent_ref)) if parent_ref else None
        model = resolve_model(cfg.model, cfg.models_dir(state.home.root))
        try:
            report = run(_build(state, model.path, list(paths), shard_tokens, parent))
        except TrainerError as exc:
            raise TrainerCommandError(str(exc)) from None
        if as_json:
            click.echo(json.dumps(report))
            return
        click.echo(f"root      {report['root']}")
        click.echo(f"manifest  {report['manifest']}")
        click.echo(
            f"shards    {report['shards']} ({report['tokens']} tokens), "
            f"{report['uploaded']} uploaded, {report['shared']} shared with the parent"
        )


async def _build(
    state: CliState, model: Path, paths: list[Path], shard_tokens: int, parent: bytes | None
) -> dict[str, object]:
    from agent.services import open_swarm
    from trainer import (
        DatasetManifest,
        GgufTokenizer,
        build_dataset,
        fetch_manifest,
        upload_dataset,
    )

    cfg = state.config
    tokenizer = await asyncio.to_thread(GgufTokenizer, model)
    built = await asyncio.to_thread(
        build_dataset, paths, tokenizer, shard_tokens=shard_tokens, parent=parent
    )
    async with open_swarm(cfg, cfg.data_dir(state.home.root)) as swarm:
        parent_manifest: DatasetManifest | None = None
        if parent is not None:
            parent_manifest = await fetch_manifest(swarm.bee, parent)
        upload = await upload_dataset(swarm.bee, swarm.batch, built, parent=parent_manifest)
    return {
        "root": built.manifest.root.hex(),
        "manifest": upload.manifest_reference.hex(),
        "shards": len(built.manifest.shards),
        "tokens": sum(s.tokens for s in built.manifest.shards),
        "uploaded": upload.uploaded,
        "shared": upload.shared,
    }
