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
    """Training jobs: post, list, show; disputes: draw, vote, resolve."""


_NESTED = ("spec", "dispute")  # `job show` fields printed as their own block
_VERDICTS = {"correct": 1, "wrong": 2, "unavailable": 3}  # chain.records.Verdict values


@job.command("post")
@click.option("--dao", required=True, help="Dataset DAO address.")
@click.option("--base-model", help="32-byte hash of the base GGUF (default: this node's).")
@click.option("--hyperparams", help="Swarm ref of a job document (default: built from below).")
@click.option("--manifest", help="Dataset manifest ref (default: the DAO root's description).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True)
@click.option("--rank", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True)
@click.option("--seq-len", type=click.IntRange(2), default=128, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=4, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True)
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
    base_model: str | None,
    hyperparams: str | None,
    manifest: str | None,
    lr: float,
    rank: int,
    batch_size: int,
    seq_len: int,
    checkpoint_every: int,
    threads: int,
    steps: int,
    seed: int,
    reward: str,
    deadline_hours: float,
    challenge_window: int,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Post a training job on DAO's current dataset root; prints the job id."""
    from agent.cli_train import node_model_hash, post_document
    from chain.records import JobSpec, SwarmRef

    async def work(client: ChainClient) -> None:
        handle = client.dao(dao)
        hyper_ref = parse_ref(hyperparams) if hyperparams else None
        if hyper_ref is None:
            knobs = {"rank": rank, "learning_rate": lr, "batch_size": batch_size}
            knobs |= {"seq_len": seq_len, "checkpoint_every": checkpoint_every}
            hyper_ref = SwarmRef(await post_document(state, client, dao, manifest, knobs, threads))
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

    model_ref = parse_ref(base_model) if base_model else node_model_hash(state)
    wei = parse_ether(reward)
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
    from chain.units import format_ether

    async def work(client: ChainClient) -> list[dict[str, Any]]:
        return [record_dict(j) for j in await client.market.jobs(offset, limit)]

    def show() -> None:
        jobs = with_client(state, deployment_file, work, signer=False)
        emit(
            jobs,
            as_json,
            lambda: [
                f"{j['job_id']:>5}  {j['status'].name:<10} {format_ether(j['reward']):>14}  "
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
        from chain.records import JobStatus

        record = await client.market.job(JobId(job_id))
        spec = await client.market.job_spec(JobId(job_id), from_block=client.deployment.start_block)
        info = {**record_dict(record), "spec": record_dict(spec), "dispute": None}
        dispute = await client.market.dispute(JobId(job_id))
        if record.status >= JobStatus.DISPUTED and dispute.bond > 0:
            info["dispute"] = record_dict(dispute)
        return info

    def show() -> None:
        info = with_client(state, deployment_file, work, signer=False)
        emit(
            info,
            as_json,
            lambda: (
                [f"{key:<16} {value}" for key, value in info.items() if key not in _NESTED]
                + [f"spec.{key:<11} {value}" for key, value in info["spec"].items()]
                + [f"dispute.{key:<8} {value}" for key, value in (info["dispute"] or {}).items()]
            ),
        )

    handled(show)()


@job.command("draw")
@click.argument("job_id", type=click.IntRange(1))
@yes_option
@deployment_option
@click.pass_obj
def job_draw(state: CliState, job_id: int, assume_yes: bool, deployment_file: Path | None) -> None:
    """Draw the committee of disputed JOB_ID (anyone may, once its seed block is mined)."""
    from chain.records import JobId

    async def work(client: ChainClient) -> None:
        await client.market.draw_committee(JobId(job_id))
        dispute = await client.market.dispute(JobId(job_id))
        if dispute.drawn:
            click.echo(" ".join(dispute.committee))
        else:
            click.echo(f"seed block out of reach; re-anchored to block {dispute.seed_block}")

    action = f"draw the committee of job {job_id}"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()


@job.command("vote")
@click.argument("job_id", type=click.IntRange(1))
@click.argument("verdict", type=click.Choice(list(_VERDICTS)))
@yes_option
@deployment_option
@click.pass_obj
def job_vote(
    state: CliState, job_id: int, verdict: str, assume_yes: bool, deployment_file: Path | None
) -> None:
    """As a committee member, vote on the disputed step of JOB_ID: the trainer's step is
    correct, wrong, or its data (log or checkpoint) unavailable on Swarm."""
    from chain.records import JobId, Verdict

    async def work(client: ChainClient) -> None:
        await client.market.vote(JobId(job_id), Verdict(_VERDICTS[verdict]))
        click.echo(f"voted {verdict} on job {job_id}")

    action = f"vote {verdict} on job {job_id}"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()


@job.command("resolve")
@click.argument("job_id", type=click.IntRange(1))
@yes_option
@deployment_option
@click.pass_obj
def job_resolve(
    state: CliState, job_id: int, assume_yes: bool, deployment_file: Path | None
) -> None:
    """Settle the dispute of JOB_ID (anyone may, once a majority voted or time ran out)."""
    from chain.market import events_in
    from chain.records import JobId, Outcome

    async def work(client: ChainClient) -> None:
        receipt = await client.market.resolve(JobId(job_id))
        (resolved,) = events_in(client.market.contract, "DisputeResolved", receipt)
        click.echo(Outcome(resolved["args"]["outcome"]).name.lower())

    action = f"resolve the dispute of job {job_id}"
    handled(lambda: send_transaction(state, deployment_file, assume_yes, action, work))()
