"""`noosphere verify`, `train worker|validator`, `adapter fetch`: the training market's roles.

    noosphere verify JOB [--samples S] [--challenge/--no-challenge] [--bond ETH] [--yes]
    noosphere train worker --opt-in [--max-jobs N] [--threads T] [--max-memory GB]
                           [--device cpu|cuda] [--yes]
    noosphere train validator [--stake ETH] [--once] [--yes]
    noosphere train profile [--device cpu|cuda] [--threads T] [--json]
    noosphere adapter fetch JOB

The library work lives in `trainer.worker`, `trainer.validator` and
`trainer.jobspec`; this module wires the node's model, keystore, chain and Swarm
access to it, asks the owner before chain writes, and prints progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli.common import (
    CliState,
    TrainCommandError,
    confirm,
    exit_without_collecting,
    handle_errors,
    json_option,
    model_path,
    parse_ether,
    with_client_and_swarm,
)
from agent.errors import NoosphereError

if TYPE_CHECKING:
    from torch import nn

    from agent.runtime.components import SwarmAccess
    from chain.client import ChainClient

_WORKER_PLAN = """\
`noosphere train worker` sells this machine's spare compute to training jobs:
  - it stakes (after asking) what claiming a job locks on the TrainingMarket;
  - it claims only posted jobs whose base model is this node's GGUF, whose
    execution profile matches this process and whose memory estimate fits;
  - it trains them (on the CPU, or the GPU with --device cuda), saving its state
    after every step under the node home,
    uploads the step log, checkpoints and adapter to Swarm and submits the log root;
  - after the challenge window it finalizes the job and withdraws the reward.
A wrong step loses the stake. Pass --opt-in to start."""


class ProfileRefusal(NoosphereError):
    """This process cannot reproduce the job's execution profile: no verdict either way."""

    exit_status = 2


async def _base(path: Path) -> nn.Module:
    from trainer.model import load_base_model

    return await asyncio.to_thread(load_base_model, path)


# ---------------------------------------------------------------- verify


@click.command("verify")
@click.argument("job_id", type=click.IntRange(1))
@click.option("--samples", type=click.IntRange(1), default=4, show_default=True)
@click.option("--challenge/--no-challenge", default=True, help="File a challenge on a wrong step.")
@click.option("--bond", help="Challenge bond in ether (default: the market's minimum).")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask before challenging.")
@click.option("--deployment", "deployment_file", type=click.Path(path_type=Path))
@click.pass_obj
@handle_errors
def verify(
    state: CliState,
    job_id: int,
    samples: int,
    challenge: bool,
    bond: str | None,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Replay SAMPLES random steps of JOB_ID's submitted log; challenge the first wrong one."""
    from chain.records import JobId, Wei
    from chain.units import format_ether
    from trainer.errors import MalformedLogError, ProfileMismatch, TrainerError
    from trainer.validator import verify_job

    wei = parse_ether(bond) if bond else None
    model = model_path(state)

    async def work(client: ChainClient, swarm: SwarmAccess) -> int:
        base = await _base(model)
        try:
            run, verdict = await verify_job(
                client.market, swarm.bee, base, JobId(job_id), samples=samples
            )
        except ProfileMismatch as exc:
            raise ProfileRefusal(f"refusing to judge job {job_id}: {exc}") from None
        except MalformedLogError as exc:  # not replayable, but disputable
            click.echo(f"job {job_id}: {exc}")
            run, verdict = None, exc.verdict
        except TrainerError as exc:
            raise TrainCommandError(f"job {job_id}: {exc}") from None
        for result in verdict.replays:
            if result.mismatch is None:
                click.echo(
                    f"step {result.target}: match (replayed from checkpoint {result.checkpoint}, "
                    f"{result.seconds:.1f}s)"
                )
            else:
                m = result.mismatch
                click.echo(
                    f"step {m.step}: DIFFERS in {', '.join(m.fields)} (distance {m.distance:.3g})"
                )
        if verdict.honest and run is not None:
            click.echo(f"job {job_id}: {verdict.reason} ({len(run.log)} steps in the log)")
            return 0
        click.echo(f"job {job_id}: step {verdict.wrong_step} is wrong: {verdict.reason}")
        args = verdict.challenge
        if not challenge or args is None:
            return 1
        amount = wei if wei is not None else (await client.market.params()).min_challenge_bond
        bond = format_ether(amount)
        confirm(assume_yes, f"challenge step {args.step} of job {job_id} with {bond}")
        await client.market.challenge(
            JobId(job_id),
            args.step,
            args.previous_record or b"",
            args.previous_proof or [],
            args.record,
            args.proof,
            Wei(amount),
        )
        click.echo(f"challenged step {args.step} of job {job_id}")
        return 1

    code = with_client_and_swarm(state, deployment_file, work, signer=challenge)
    if code:
        sys.exit(code)


# ---------------------------------------------------------------- train


@click.group("train")
def train() -> None:
    """Sell compute to training jobs (worker) or judge their disputes (validator)."""


@train.command("worker")
@click.option("--opt-in", "opt_in", is_flag=True, help="Agree to stake and train for the market.")
@click.option("--max-jobs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True)
@click.option("--max-memory", type=click.FloatRange(0.1), help="Most GiB a job may need.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--poll", type=click.FloatRange(0.05), default=5.0, show_default=True)
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask before staking.")
@click.option("--deployment", "deployment_file", type=click.Path(path_type=Path))
@click.pass_obj
@handle_errors
def train_worker(
    state: CliState,
    opt_in: bool,
    max_jobs: int,
    threads: int,
    max_memory: float | None,
    device: str,
    poll: float,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Claim, train and submit jobs this node can run; SIGUSR1 pauses/resumes, SIGTERM stops."""
    if not opt_in:
        click.echo(_WORKER_PLAN, err=True)
        sys.exit(2)
    from trainer.errors import DeviceUnavailable, TrainerError
    from trainer.profile import pin_profile
    from trainer.worker import Dishonesty, Worker, WorkerControl, WorkerSettings

    if device == "cuda":
        try:  # first: cuBLAS's workspace setting must be in place before CUDA initialises
            pin_profile(threads, "cuda")
        except DeviceUnavailable as exc:
            raise TrainCommandError(f"--device cuda: {exc}") from None
    try:
        dishonesty = Dishonesty.from_env()
    except TrainerError as exc:
        raise TrainCommandError(str(exc)) from None
    model = model_path(state)
    control = WorkerControl()

    async def approve(action: str) -> bool:
        confirm(assume_yes, action)
        return True

    async def work(client: ChainClient, swarm: SwarmAccess) -> None:
        loop = asyncio.get_running_loop()

        def pause() -> None:
            control.toggle_pause()
            click.echo("paused (at the next step boundary)" if control.paused else "resumed")

        loop.add_signal_handler(signal.SIGUSR1, pause)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, control.stop)
        profile = pin_profile(threads, device)
        click.echo(f"worker {client.tx.address}: profile {profile.hash.hex()[:16]}..., {model}")
        if device == "cuda":
            click.echo(f"profile: {profile.describe()}")
        base = await _base(model)
        settings = WorkerSettings(
            model_path=model,
            state_dir=state.home.root / "trainer",
            max_jobs=max_jobs,
            max_memory=int(max_memory * 2**30) if max_memory else None,
            poll_s=poll,
            dishonesty=dishonesty,
            device=device,
        )
        worker = Worker(
            client.market,
            swarm.bee,
            swarm.batch,
            base,
            settings,
            control=control,
            approve=approve,
            say=click.echo,
        )
        click.echo("waiting for jobs (SIGUSR1 pauses; SIGINT or SIGTERM stops)")
        try:
            outcomes = await worker.run()
        except TrainerError as exc:
            raise TrainCommandError(str(exc)) from None
        for outcome in outcomes:
            click.echo(f"job {outcome.job_id}: {', '.join(outcome.notes) or 'submitted'}")
        if control.stopping:
            click.echo("stopped: the training worker", err=True)

    with_client_and_swarm(state, deployment_file, work, signer=True)
    exit_without_collecting()


@train.command("validator")
@click.option("--stake", "stake_eth", help="Stake in ether (default: the validator minimum).")
@click.option("--once", is_flag=True, help="One pass over open disputes, then exit.")
@click.option("--poll", type=click.FloatRange(0.05), default=5.0, show_default=True)
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Do not ask before staking.")
@click.option("--deployment", "deployment_file", type=click.Path(path_type=Path))
@click.pass_obj
@handle_errors
def train_validator(
    state: CliState,
    stake_eth: str | None,
    once: bool,
    poll: float,
    assume_yes: bool,
    deployment_file: Path | None,
) -> None:
    """Register and stake as a validator; draw, judge and vote on disputes you sit on."""
    from trainer.validator import Validator

    wei = parse_ether(stake_eth) if stake_eth else None
    model = model_path(state)
    stopping = asyncio.Event()

    async def work(client: ChainClient, swarm: SwarmAccess) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        amount = wei if wei is not None else (await client.market.params()).min_validator_stake
        if client.tx.address not in await client.market.validators():
            confirm(assume_yes, f"stake {amount} wei and register as a validator")
        validator = Validator(client.market, swarm.bee, None, say=click.echo)
        await validator.ensure_registered(amount)
        if once and not await validator.disputes_to_judge():
            return
        validator.base = await _base(model)
        if not once:
            click.echo(f"validator {client.tx.address}: watching disputes every {poll:g} s")
        while not stopping.is_set():
            await validator.watch_once()
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), poll)
        if stopping.is_set():
            click.echo("stopped: the validator", err=True)

    with_client_and_swarm(state, deployment_file, work, signer=True)
    exit_without_collecting()


@train.command("profile")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True)
@json_option
@handle_errors
def train_profile(device: str, threads: int, as_json: bool) -> None:
    """Print the execution profile this machine trains under (what `job post --profile` reads).

    A requester posts a job for machines unlike its own (a GPU worker's, another CPU's)
    with the JSON a worker there prints: `noosphere train profile --device cuda --json`.
    """
    import json

    from trainer.errors import DeviceUnavailable
    from trainer.profile import pin_profile

    try:
        profile = pin_profile(threads, device)
    except DeviceUnavailable as exc:
        raise TrainCommandError(f"--device {device}: {exc}") from None
    if as_json:
        click.echo(json.dumps(profile.as_json(), indent=2))
        return
    click.echo(f"profile {profile.hash.hex()}")
    click.echo(profile.describe())


# ---------------------------------------------------------------- adapter


@click.group("adapter")
def adapter() -> None:
    """Trained LoRA adapters from the training market."""


@adapter.command("fetch")
@click.argument("job_id", type=click.IntRange(1))
@click.option("--deployment", "deployment_file", type=click.Path(path_type=Path))
@click.pass_obj
@handle_errors
def adapter_fetch(state: CliState, job_id: int, deployment_file: Path | None) -> None:
    """Download JOB_ID's adapter, check its committed hash, store it in the node home."""
    from chain.records import JobId
    from trainer.errors import TrainerError
    from trainer.validator import fetch_job_adapter

    target = state.home.root / "adapters" / f"job-{job_id}.gguf"

    async def work(client: ChainClient, swarm: SwarmAccess) -> bytes:
        try:
            data, _ = await fetch_job_adapter(client.market, swarm.bee, JobId(job_id))
        except TrainerError as exc:
            raise TrainCommandError(f"job {job_id}: {exc}") from None
        return data

    data = with_client_and_swarm(state, deployment_file, work, signer=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    click.echo(str(target))
    click.echo(
        f"use it with: noosphere --set 'model.adapters=[{{path=\"{target}\", scale=1.0}}]' chat",
        err=True,
    )
