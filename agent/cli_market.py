"""`noosphere dataset ...` and `noosphere job ...`: the dataset DAOs and the training market.

Registered by `agent.cli_chain`, whose plumbing (deployment file, signing client,
confirmation, output) these commands share.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli_chain import (
    deployment_option,
    emit,
    handled,
    json_option,
    parse_ether,
    parse_ref,
    record_dict,
    send_transaction,
    with_client,
    yes_option,
)

if TYPE_CHECKING:
    from agent.cli import CliState
    from chain.client import ChainClient

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


# ---------------------------------------------------------------- job


@click.group()
def job() -> None:
    """Training jobs: post, list, show."""


@job.command("post")
@click.option("--dao", required=True, help="Dataset DAO address.")
@click.option("--base-model", required=True, help="32-byte hash of the base model (hex).")
@click.option("--hyperparams", required=True, help="Swarm ref of the hyperparameters.")
@click.option("--steps", type=click.IntRange(1, 2**32 - 1), required=True)
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True)
@click.option("--reward", required=True, help="Reward in ether, escrowed now.")
@click.option("--deadline-hours", type=click.FloatRange(0.01), default=24.0, show_default=True)
@click.option(
    "--challenge-window", type=click.IntRange(1, 2**24 - 1), default=3600, show_default=True
)
@yes_option
@deployment_option
@click.pass_obj
def job_post(
    state: CliState,
    dao: str,
    base_model: str,
    hyperparams: str,
    steps: int,
    seed: int,
    reward: str,
    deadline_hours: float,
    challenge_window: int,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Post a training job on DAO's current dataset root; prints the job id."""
    from chain.records import JobSpec

    async def work(client: ChainClient) -> None:
        handle = client.dao(dao)
        block = await client.tx.rpc(client.tx.w3.eth.get_block("latest"))
        spec = JobSpec(
            dao=handle.address,
            dataset_root=await handle.current_root(),
            base_model=bytes(model_ref),
            hyperparams=hyper_ref,
            steps=steps,
            seed=seed,
            deadline=int(block["timestamp"] + deadline_hours * 3600),
            challenge_window=challenge_window,
        )
        job_id, _ = await client.market.post_job(spec, wei)
        click.echo(job_id)

    model_ref, hyper_ref, wei = parse_ref(base_model), parse_ref(hyperparams), parse_ether(reward)
    action = f"post a job paying {reward} ETH"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()


@job.command("list")
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--limit", type=click.IntRange(1, 1000), default=100)
@json_option
@deployment_option
@click.pass_obj
def job_list(
    state: CliState, offset: int, limit: int, as_json: bool, deployment_file: Path | None
) -> None:
    """List jobs with their status, reward and trainer."""

    async def work(client: ChainClient) -> list[dict[str, Any]]:
        return [record_dict(j) for j in await client.market.jobs(offset, limit)]

    def show() -> None:
        jobs = with_client(state, deployment_file, work, signer=False)
        emit(
            jobs,
            as_json,
            lambda: [
                f"{j['job_id']:>5}  {j['status'].name:<10} {j['reward'] / 10**18:>10} ETH  "
                f"{j['trainer'] or '-'}"
                for j in jobs
            ],
        )

    handled(show)()


@job.command("show")
@click.argument("job_id", type=click.IntRange(1))
@json_option
@deployment_option
@click.pass_obj
def job_show(state: CliState, job_id: int, as_json: bool, deployment_file: Path | None) -> None:
    """One job: its state and the spec it was posted with."""
    from chain.records import JobId

    async def work(client: ChainClient) -> dict[str, Any]:
        record = await client.market.job(JobId(job_id))
        spec = await client.market.job_spec(JobId(job_id), from_block=client.deployment.start_block)
        return {**record_dict(record), "spec": record_dict(spec)}

    def show() -> None:
        info = with_client(state, deployment_file, work, signer=False)
        emit(
            info,
            as_json,
            lambda: (
                [f"{key:<16} {value}" for key, value in info.items() if key != "spec"]
                + [f"spec.{key:<11} {value}" for key, value in info["spec"].items()]
            ),
        )

    handled(show)()
