"""`noosphere dataset ...`: the dataset DAOs, and building a dataset onto Swarm.

    noosphere dataset create|propose|vote|execute|fork|join|show
    noosphere dataset build PATH... [--shard-tokens N] [--parent MANIFEST_REF] [--json]

`build` tokenizes with the node's own model (the GGUF the agent runs), uploads
every shard the parent manifest does not already hold, then the manifest, and
prints the Merkle root (what `dataset propose DAO ROOT ...` puts on chain), the
manifest reference, the shard count and how many shards are shared with the parent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.common import (
    CliState,
    deployment_option,
    emit,
    handle_errors,
    handled,
    json_option,
    parse_ref,
    record_dict,
    run,
    send_transaction,
    with_client,
    yes_option,
)
from agent.errors import NoosphereError

if TYPE_CHECKING:
    from chain.client import ChainClient


class TrainerCommandError(NoosphereError):
    """A trainer error, reported to the user as one line."""


# ---------------------------------------------------------------- dataset


@click.group()
def dataset() -> None:
    """Dataset DAOs: create, propose and vote on roots, fork, show."""


@dataset.command("create")
@click.argument("root")
@click.argument("description")
@click.option("--member", "members", multiple=True, metavar="ADDRESS", help="A member (repeat).")
@click.option("--quorum-bps", type=click.IntRange(1, 10_000), default=5_000, show_default=True)
@click.option("--voting-period", type=click.IntRange(1), default=3 * 24 * 3600, show_default=True)
@yes_option
@deployment_option
@click.pass_obj
def dataset_create(
    state: CliState,
    root: str,
    description: str,
    members: tuple[str, ...],
    quorum_bps: int,
    voting_period: int,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """New DAO at ROOT (Swarm ref) described by DESCRIPTION (Swarm ref); you are a member."""

    async def work(client: ChainClient) -> None:
        everyone = list(dict.fromkeys([client.tx.address, *members]))
        dao = await client.datasets.create(
            root_ref, desc_ref, everyone, quorum_bps=quorum_bps, voting_period=voting_period
        )
        click.echo(dao.address)

    root_ref, desc_ref = parse_ref(root), parse_ref(description)
    handled(
        lambda: send_transaction(state, deployment_file, assume_yes, "create a dataset DAO", work)
    )()


@dataset.command("propose")
@click.argument("dao")
@click.argument("root")
@click.argument("description")
@yes_option
@deployment_option
@click.pass_obj
def dataset_propose(
    state: CliState,
    dao: str,
    root: str,
    description: str,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Propose ROOT as DAO's new dataset root; prints the proposal id."""

    async def work(client: ChainClient) -> None:
        proposal, _ = await client.dao(dao).propose(root_ref, desc_ref)
        click.echo(proposal)

    root_ref, desc_ref = parse_ref(root), parse_ref(description)
    handled(
        lambda: send_transaction(state, deployment_file, assume_yes, f"propose on {dao}", work)
    )()


@dataset.command("vote")
@click.argument("dao")
@click.argument("proposal", type=click.IntRange(0))
@click.argument("choice", type=click.Choice(["for", "against"]))
@yes_option
@deployment_option
@click.pass_obj
def dataset_vote(
    state: CliState,
    dao: str,
    proposal: int,
    choice: str,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Vote for or against PROPOSAL of DAO."""
    from chain.records import ProposalId

    async def work(client: ChainClient) -> None:
        await client.dao(dao).vote(ProposalId(proposal), support=choice == "for")
        click.echo(f"voted {choice} proposal {proposal}")

    action = f"vote {choice} proposal {proposal}"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()


@dataset.command("execute")
@click.argument("dao")
@click.argument("proposal", type=click.IntRange(0))
@yes_option
@deployment_option
@click.pass_obj
def dataset_execute(
    state: CliState, dao: str, proposal: int, assume_yes: bool, deployment_file: Path | None
) -> None:
    """Execute a passed PROPOSAL: DAO's root becomes the proposed one."""
    from chain.records import ProposalId

    async def work(client: ChainClient) -> None:
        await client.dao(dao).execute(ProposalId(proposal))
        click.echo("0x" + (await client.dao(dao).current_root()).hex())

    action = f"execute proposal {proposal}"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()


@dataset.command("fork")
@click.argument("dao")
@yes_option
@deployment_option
@click.pass_obj
def dataset_fork(state: CliState, dao: str, assume_yes: bool, deployment_file: Path | None) -> None:
    """Fork DAO at its current root; other members join with `dataset join CHILD`."""

    async def work(client: ChainClient) -> None:
        child = await client.dao(dao).fork()
        click.echo(child.address)

    handled(lambda: send_transaction(state, deployment_file, assume_yes, f"fork {dao}", work))()


@dataset.command("join")
@click.argument("dao")
@yes_option
@deployment_option
@click.pass_obj
def dataset_join(state: CliState, dao: str, assume_yes: bool, deployment_file: Path | None) -> None:
    """Join the fork DAO (open to members of its parent during the join window)."""

    async def work(client: ChainClient) -> None:
        await client.dao(dao).join()
        click.echo(f"joined {dao}")

    handled(lambda: send_transaction(state, deployment_file, assume_yes, f"join {dao}", work))()


@dataset.command("show")
@click.argument("dao")
@json_option
@deployment_option
@click.pass_obj
def dataset_show(state: CliState, dao: str, as_json: bool, deployment_file: Path | None) -> None:
    """Root, lineage, members, root history and proposals of DAO."""

    async def work(client: ChainClient) -> dict[str, Any]:
        handle = client.dao(dao)
        return {
            "address": handle.address,
            "root": "0x" + (await handle.current_root()).hex(),
            "lineage": await handle.lineage(),
            "members": await handle.members(),
            "quorum_votes": await handle.quorum_votes(),
            "history": [record_dict(h) for h in await handle.history()],
            "proposals": [record_dict(p) for p in await handle.proposals()],
        }

    def show() -> None:
        info = with_client(state, deployment_file, work, signer=False)
        emit(
            info,
            as_json,
            lambda: [
                f"dao       {info['address']}",
                f"root      {info['root']}",
                f"lineage   {' <- '.join(info['lineage'])}",
                f"members   {', '.join(info['members'])} (quorum {info['quorum_votes']})",
                *(f"root[{h['index']}]   {h['root']}" for h in info["history"]),
                *(
                    f"proposal {p['proposal_id']}: {p['root']} yes={p['yes']} no={p['no']}"
                    f"{' executed' if p['executed'] else ''}"
                    for p in info["proposals"]
                ),
            ],
        )

    handled(show)()


# ---------------------------------------------------------------- build


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
    from agent.models import resolve_model
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
    from agent.node import Node
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
    async with await Node.open(cfg, state.home) as node:
        swarm = await node.swarm()
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
