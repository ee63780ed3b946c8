"""The training market in one process for trainer tests: a dataset on the dev Swarm node,
a DAO holding its root and a job posted on py-evm, a worker for the `trainer` account,
and a ledger of what the market holds for and has paid to every party."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio
from torch import nn

from chain.devchain import EmbeddedChain
from chain.event_records import Withdrawn
from chain.records import JobId, JobSpec, SwarmRef
from tests.chain.conftest import REWARD, World, build_world, close_world
from tests.trainer.conftest import Swarm, write_corpus
from tests.trainer.helpers import CORPUS, HP, THREADS
from trainer.dataset import build_dataset, upload_dataset
from trainer.jobspec import JobDocument, upload_job_document
from trainer.model import base_model_hash
from trainer.profile import ExecutionProfile, pin_profile
from trainer.tokenizer import GgufTokenizer
from trainer.worker import Dishonesty, JobOutcome, Worker, WorkerSettings

STEPS = 4
WINDOW = 600
PARTIES = ("requester", "trainer", "challenger", "v1", "v2", "v3")


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    chain = EmbeddedChain()
    built = await build_world(chain)
    try:
        yield built
    finally:
        await close_world(built)


@dataclass
class Posted:
    job_id: JobId
    spec: JobSpec


async def post_job(
    world: World,
    swarm: Swarm,
    tokenizer: GgufTokenizer,
    model_path: Path,
    folder: Path,
    profile: ExecutionProfile | None = None,
) -> Posted:
    """The requester's side: build and upload a dataset, a DAO on its root, the job."""
    paths = write_corpus(folder, CORPUS)
    built = build_dataset(paths, tokenizer, shard_tokens=64)
    upload = await upload_dataset(swarm.client, swarm.batch, built)
    root = SwarmRef(built.manifest.root)
    requester = world.clients["requester"]
    dao = await requester.datasets.create(
        root, SwarmRef(upload.manifest_reference), [world.address("requester")], quorum_bps=5000
    )
    assert await dao.current_root() == root
    profile = profile or pin_profile(THREADS)
    document = JobDocument(HP, profile, upload.manifest_reference, bytes(root))
    doc_ref = await upload_job_document(swarm.client, swarm.batch, document)
    spec = JobSpec(
        dao=dao.address,
        dataset_root=await dao.current_root(),
        base_model=base_model_hash(model_path),
        hyperparams=SwarmRef(doc_ref),
        steps=STEPS,
        seed=99,
        deadline=await world.chain.timestamp() + 24 * 3600,
        challenge_window=WINDOW,
    )
    job_id, _ = await world.market("requester").post_job(spec, REWARD)
    return Posted(job_id, spec)


def worker_for(
    world: World,
    swarm: Swarm,
    base: nn.Module,
    model_path: Path,
    folder: Path,
    dishonesty: Dishonesty | None = None,
    said: list[str] | None = None,
) -> Worker:
    settings = WorkerSettings(
        model_path=model_path, state_dir=folder, poll_s=0.01, dishonesty=dishonesty
    )
    say = None if said is None else said.append
    return Worker(world.market("trainer"), swarm.client, swarm.batch, base, settings, say=say)


async def train_once(worker: Worker) -> JobOutcome:
    """One pass of the worker's loop: pick the job, claim, train, upload, submit."""
    for job, spec in await worker.candidates():
        resolved = await worker.check(job, spec)
        assert resolved is not None, worker.skipped
        return await worker.work(job, resolved)
    raise AssertionError("the worker found no job")


@dataclass(frozen=True)
class Holding:
    """What the market holds for, and has credited to, one party."""

    staked: int
    locked: int
    credited: int  # pending withdrawal + everything already withdrawn


async def ledger(world: World) -> dict[str, Holding]:
    market = world.market("outsider")
    withdrawn: dict[str, int] = {}
    for event in await market.events("Withdrawn"):
        assert isinstance(event, Withdrawn)
        withdrawn[str(event.account)] = withdrawn.get(str(event.account), 0) + event.amount
    holdings = {}
    for role in PARTIES:
        address = world.address(role)
        account = await market.account(address)
        credited = await market.pending_withdrawal(address) + withdrawn.get(address, 0)
        holdings[role] = Holding(account.staked, account.locked, credited)
    return holdings


def changes(before: dict[str, Holding], after: dict[str, Holding]) -> dict[str, Holding]:
    """Per party, after minus before; parties whose holding did not move are left out."""
    moved = {}
    for role in PARTIES:
        a, b = before[role], after[role]
        delta = Holding(b.staked - a.staked, b.locked - a.locked, b.credited - a.credited)
        if delta != Holding(0, 0, 0):
            moved[role] = delta
    return moved
