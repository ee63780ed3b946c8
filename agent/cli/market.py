"""`noosphere job ...`: the training market from the requester's and juror's side.

    noosphere job post --dao DAO --steps N --reward ETH [...]
    noosphere job list|show JOB
    noosphere job draw|vote|resolve JOB       disputes

`job post` without --hyperparams builds the job document (hyperparameters, the
execution profile, the dataset manifest) and uploads it to Swarm first.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agent.cli.common import (
    CliState,
    TrainCommandError,
    confirm,
    deployment_option,
    emit,
    handled,
    json_option,
    model_path,
    parse_ether,
    parse_ref,
    record_dict,
    send_transaction,
    with_chain_node,
    with_client,
    yes_option,
)

if TYPE_CHECKING:
    from agent.node import Node
    from agent.runtime.components import SwarmAccess
    from chain.client import ChainClient
    from trainer.profile import ExecutionProfile


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
@click.option("--checkpoint-every", type=click.IntRange(1), default=2, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    help="Threads of the job's CPU profile, pinned here (default 2).",
)
@click.option(
    "--profile",
    "profile_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The job's execution profile: `train profile --json` from the workers' kind of machine.",
)
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
    threads: int | None,
    profile_file: Path | None,
    steps: int,
    seed: int,
    reward: str,
    deadline_hours: float,
    challenge_window: int,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Post a training job on DAO's current dataset root; prints the job id."""
    from chain.records import JobSpec, SwarmRef

    async def work(node: Node) -> None:
        client = await node.chain()
        handle = client.dao(dao)
        hyper_ref = parse_ref(hyperparams) if hyperparams else None
        if hyper_ref is None:
            knobs = {"rank": rank, "learning_rate": lr, "batch_size": batch_size}
            knobs |= {"seq_len": seq_len, "checkpoint_every": checkpoint_every}
            swarm = await node.swarm()
            document = await post_document(client, swarm, dao, manifest, knobs, profile)
            hyper_ref = SwarmRef(document)
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

    profile = job_profile(hyperparams, threads, profile_file)
    model_ref = parse_ref(base_model) if base_model else node_model_hash(state)
    wei = parse_ether(reward)

    def post() -> None:
        confirm(assume_yes, f"post a job paying {reward} ETH")
        with_chain_node(state, deployment_file, work, signer=True)

    handled(post)()


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


_ETHER_FIELDS = frozenset({"reward", "bond"})


def _shown(key: str, value: Any) -> str:
    """A job field for people: enums by name, amounts in ether (the JSON keeps raw values)."""
    from chain.units import format_ether

    if isinstance(value, enum.Enum):
        return value.name
    if key in _ETHER_FIELDS and isinstance(value, int):
        return format_ether(value)
    return str(value)


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
                [f"{key:<16} {_shown(key, v)}" for key, v in info.items() if key not in _NESTED]
                + [f"spec.{key:<11} {_shown(key, v)}" for key, v in info["spec"].items()]
                + [f"dispute.{k:<8} {_shown(k, v)}" for k, v in (info["dispute"] or {}).items()]
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


# ---------------------------------------------------------------- job post (requester)


async def post_document(
    client: ChainClient,
    swarm: SwarmAccess,
    dao: str,
    manifest: str | None,
    hyperparams: dict[str, float | int],
    profile: ExecutionProfile | None,
) -> bytes:
    """Upload the job document for `job post` without --hyperparams; its reference.

    The dataset manifest is --manifest or the description the DAO stored with its
    current root (`dataset create ROOT MANIFEST_REF`); either way its Merkle root
    must be the DAO's current root. `profile` None is this machine's CPU profile at
    2 threads.
    """
    from trainer.dataset import fetch_manifest
    from trainer.errors import TrainerError
    from trainer.jobspec import JobDocument, upload_job_document
    from trainer.profile import pin_profile
    from trainer.step import Hyperparams

    if profile is None:
        profile = pin_profile(2)

    handle = client.dao(dao)
    root = bytes(await handle.current_root())
    if manifest is not None:
        manifest_ref = bytes(parse_ref(manifest))
    else:
        history = await handle.history()
        current = [h for h in history if bytes(h.root) == root]
        if not current:
            raise TrainCommandError(f"DAO {dao} has no history entry for its root: pass --manifest")
        manifest_ref = bytes(current[-1].description)
    rank = int(hyperparams.pop("rank"))
    try:
        hp = Hyperparams(rank=rank, alpha=2.0 * rank, **hyperparams)  # type: ignore[arg-type]
    except ValueError as exc:
        raise TrainCommandError(f"hyperparameters: {exc}") from None
    try:
        found = await fetch_manifest(swarm.bee, manifest_ref)
        if found.root != root:
            raise TrainCommandError(
                f"manifest {manifest_ref.hex()} has root {found.root.hex()}, "
                f"not the DAO's current root {root.hex()}"
            )
        document = JobDocument(hp, profile, manifest_ref, root)
        return await upload_job_document(swarm.bee, swarm.batch, document)
    except TrainerError as exc:
        raise TrainCommandError(f"dataset manifest {manifest_ref.hex()}: {exc}") from None


def job_profile(
    hyperparams: str | None, threads: int | None, profile_file: Path | None
) -> ExecutionProfile | None:
    """The profile `job post` pins: --profile's file, this CPU at --threads, or None (the
    default, this CPU at 2 threads); a usage error for options that cannot go together."""
    if hyperparams is not None and (threads is not None or profile_file is not None):
        raise click.UsageError("--hyperparams is a finished job document: no --threads/--profile")
    if threads is not None and profile_file is not None:
        raise click.UsageError("--profile fixes the threads: pass --threads or --profile, not both")
    from trainer.profile import pin_profile, read_profile_file

    if profile_file is not None:
        try:
            profile = read_profile_file(profile_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--profile") from None
        click.echo(f"job profile {profile.hash.hex()[:16]}...: {profile.describe()}", err=True)
        return profile
    return pin_profile(threads) if threads is not None else None


def node_model_hash(state: CliState) -> bytes:
    """keccak256 of this node's GGUF: the base model a job posted from here names."""
    from trainer.model import base_model_hash

    return base_model_hash(model_path(state))
