"""Hostile disputes against the real contracts (py-evm) and the dev Swarm node, with the
money checked party by party.

Each test trains a real job with the bundled model, then attacks one part of the dispute
path: a challenge that carries a record or proof the log does not commit, a log that
commits a malformed record, a record whose shard inclusion proof is forged, a gateway
that serves shard bytes not matching their reference, a checkpoint missing from Swarm
(with the trainer gone, and with the trainer answering), a committee that mostly stays
away. After each, every party's stake, lock and credit (pending + withdrawn) moved by
exactly what the contract's rules say, computed here independently, and the market
holds what it owes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from torch import nn

from chain.event_records import DisputeResolved
from chain.merkle import StepLogTree
from chain.records import JobId, JobStatus, Outcome, SwarmRef, Wei
from chain.records import Verdict as Vote
from chain.reverts import InvalidProof
from swarm_vectordb.bee import BeeClient, SwarmError
from tests.chain.conftest import PARAMS, REWARD, World
from tests.trainer.conftest import Swarm
from tests.trainer.market import (
    STEPS,
    Holding,
    Posted,
    changes,
    ledger,
    post_job,
    train_once,
    worker_for,
    world,
)
from trainer import codec
from trainer.errors import MalformedLogError, ShardReferenceMismatch
from trainer.jobspec import put_blob, resolve_job
from trainer.localrun import job_folder
from trainer.steplog import BatchEntry, StepRecord, fetch_run
from trainer.tokenizer import GgufTokenizer
from trainer.validator import Validator, verify_job
from trainer.verify import ChallengeArgs
from trainer.worker import LocalRun, Worker, engine_for_job, train_job, upload_and_describe

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
__all__ = ["world"]  # the py-evm world fixture

BPS = 10_000
BOND = PARAMS.min_challenge_bond
STAKE = max(REWARD, PARAMS.min_trainer_stake)  # what the claim locks (trainerStakeFor)
VALIDATORS = ("v1", "v2", "v3")


# ---------------------------------------------------------------- the contract's rules


def trainer_won(voters: tuple[str, ...]) -> dict[str, Holding]:
    """A majority found the step right: the trainer gets the reward and the bond less the
    voters' share; the challenger loses the bond."""
    pool = BOND * PARAMS.validator_reward_bps // BPS
    share = pool // len(voters)
    moved = {"trainer": Holding(0, -STAKE, REWARD + BOND - pool + (pool - share * len(voters)))}
    moved.update({v: Holding(0, 0, share) for v in voters})
    return moved


def trainer_lost(voters: tuple[str, ...]) -> dict[str, Holding]:
    """A majority found the step wrong or the data unavailable: the trainer's stake is
    slashed; the requester gets the reward back; the challenger the stake less the voters'
    share, and the bond."""
    pool = STAKE * PARAMS.validator_reward_bps // BPS
    share = pool // len(voters)
    dust = pool - share * len(voters)
    moved = {
        "trainer": Holding(-STAKE, -STAKE, 0),
        "requester": Holding(0, 0, REWARD),
        "challenger": Holding(0, 0, STAKE - pool + BOND + dust),
    }
    moved.update({v: Holding(0, 0, share) for v in voters})
    return moved


def timed_out(voters: tuple[str, ...], absent: tuple[str, ...]) -> dict[str, Holding]:
    """No majority by the end of the vote: the trainer is paid, the challenger gets the bond
    back, absent members lose a penalty that the voters share."""
    penalty = PARAMS.min_validator_stake * PARAMS.absent_penalty_bps // BPS
    pool = penalty * len(absent)
    share = pool // len(voters)
    moved = {
        "trainer": Holding(0, -STAKE, REWARD + pool - share * len(voters)),
        "challenger": Holding(0, 0, BOND),
    }
    moved.update({v: Holding(0, 0, share) for v in voters})
    moved.update({a: Holding(-penalty, 0, 0) for a in absent})
    return moved


# ---------------------------------------------------------------- helpers


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Poll `check` until it holds (a worker running concurrently moves the chain)."""
    async with asyncio.timeout(seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.1)


async def submitted(world: World, job_id: JobId) -> bool:
    return (await world.market("outsider").job(job_id)).status == JobStatus.SUBMITTED


async def settled_and_clean(world: World, folder: Path) -> bool:
    owed = await world.market("outsider").pending_withdrawal(world.address("trainer"))
    return owed == 0 and not folder.exists()


async def outcome_of(world: World, job_id: JobId) -> Outcome:
    (event,) = await world.market("outsider").events("DisputeResolved", jobId=job_id)
    assert isinstance(event, DisputeResolved)
    return event.outcome


async def file_challenge(world: World, job_id: JobId, args: ChallengeArgs) -> None:
    await world.market("challenger").challenge(
        job_id,
        args.step,
        args.previous_record or b"",
        args.previous_proof or [],
        args.record,
        args.proof,
        Wei(BOND),
    )


async def honest_challenge(world: World, swarm: Swarm, job_id: JobId, step: int) -> list[bytes]:
    """`challenger` disputes `step` of the job's (honest) log; the log's records."""
    job = await world.market("outsider").job(job_id)
    assert job.adapter_ref is not None
    _, log = await fetch_run(swarm.client, bytes(job.adapter_ref))
    await world.market("challenger").challenge_log(job_id, step, log.encoded, Wei(BOND))
    return log.encoded


async def votes_of(world: World, validators: list[Validator]) -> list[Vote]:
    """Each validator's pass once the draw delay is over; the votes cast."""
    await world.mine(PARAMS.draw_delay + 1)
    cast: list[Vote] = []
    for validator in validators:
        cast += [vote for _, vote in await validator.watch_once()]
    return cast


def committee(world: World, swarm: Swarm, base: nn.Module) -> list[Validator]:
    return [Validator(world.market(role), swarm.client, base) for role in VALIDATORS]


async def submit_tampered(
    world: World,
    swarm: Swarm,
    base: nn.Module,
    posted: Posted,
    folder: Path,
    tamper: dict[int, bytes],
) -> list[bytes]:
    """A trainer who trains honestly, then commits a log whose records at `tamper`'s steps
    are replaced by the given bytes; the committed records."""
    trainer = world.market("trainer")
    await trainer.claim(posted.job_id)
    resolved = await resolve_job(swarm.client, posted.spec)
    engine = await engine_for_job(base, swarm.client, resolved)
    log, checkpoints, final = await asyncio.to_thread(train_job, engine, LocalRun(folder))
    _, manifest = await upload_and_describe(
        swarm.client, swarm.batch, engine, log, checkpoints, final
    )
    records = [tamper.get(i, raw) for i, raw in enumerate(log.encoded)]
    log_bytes = codec.pack({"version": 1, "records": records})
    log_ref = await put_blob(swarm.client, swarm.batch, log_bytes)
    root = StepLogTree(records).root
    forged = dataclasses.replace(manifest, log_root=root, log_reference=log_ref)
    reference = await put_blob(swarm.client, swarm.batch, forged.encode())
    await trainer.submit(posted.job_id, root, SwarmRef(reference))
    return records


def forget(swarm: Swarm, reference: bytes) -> None:
    """Drop a stored root chunk from the dev node, as a Swarm that lost the data would.

    Fault injection: the dev node has no API to lose data, and losing it is the fault.
    """
    chunks = swarm.node.store._chunks  # memory mode (the fixture starts without a data dir)
    assert bytes(reference) in chunks
    del chunks[bytes(reference)]


async def checkpoint_reference(swarm: Swarm, world: World, job_id: JobId, step: int) -> bytes:
    job = await world.market("outsider").job(job_id)
    assert job.adapter_ref is not None
    manifest, _ = await fetch_run(swarm.client, bytes(job.adapter_ref))
    (entry,) = [c for c in manifest.checkpoints if c.step == step]
    return entry.reference


async def assert_committee_slashes_the_trainer(
    world: World,
    swarm: Swarm,
    base: nn.Module,
    posted: Posted,
    before: dict[str, Holding],
    *,
    votes: Vote,
    outcome: Outcome,
) -> None:
    """The three members vote `votes`, the dispute resolves as `outcome`, and every
    party's holdings moved as `trainer_lost` says (the market solvent after)."""
    assert await votes_of(world, committee(world, swarm, base)) == [votes] * 3
    assert await outcome_of(world, posted.job_id) == outcome
    assert changes(before, await ledger(world)) == trainer_lost(VALIDATORS)
    await world.assert_solvent()


@pytest_asyncio.fixture
async def posted(
    world: World, swarm: Swarm, tokenizer: GgufTokenizer, model_path: Path, tmp_path: Path
) -> Posted:
    """A job posted on the market, over a dataset under `tmp_path / "data"`."""
    return await post_job(world, swarm, tokenizer, model_path, tmp_path / "data")


@pytest.fixture
def said() -> list[str]:
    """What the `worker` fixture's worker said, line by line."""
    return []


@pytest.fixture
def worker(
    world: World,
    swarm: Swarm,
    posted: Posted,
    base_model: nn.Module,
    model_path: Path,
    tmp_path: Path,
    said: list[str],
) -> Worker:
    """The `trainer` account's worker, made once the job is posted; state under `w/`."""
    return worker_for(world, swarm, base_model, model_path, tmp_path / "w", said=said)


@pytest_asyncio.fixture
async def lying_gateway(swarm: Swarm) -> AsyncIterator[tuple[str, set[str]]]:
    """An HTTP gateway in front of the dev node that flips the last byte of the data it
    serves for the references in the returned set (hex); everything else passes through."""
    tampered: set[str] = set()
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with session.request(
            request.method,
            swarm.node.url + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            if request.path.removeprefix("/bytes/") in tampered and body:
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            kept = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(status=upstream.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", tampered
    finally:
        await runner.cleanup()
        await session.close()


# ---------------------------------------------------------------- the attacks


async def test_challenges_with_records_or_proofs_the_log_does_not_commit_revert_and_move_nothing(
    world: World,
    swarm: Swarm,
    posted: Posted,
    base_model: nn.Module,
    worker: Worker,
    said: list[str],
) -> None:
    worker.settings.poll_s = 0.2
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_until(stop))
    try:
        market = world.market("outsider")
        await eventually(lambda: submitted(world, posted.job_id), 300)
        before = await ledger(world)
        wallet = await world.clients["challenger"].tx.balance(world.address("challenger"))
        job = await market.job(posted.job_id)
        assert job.adapter_ref is not None
        _, log = await fetch_run(swarm.client, bytes(job.adapter_ref))
        good = log.encoded
        tree = StepLogTree(good)
        garbage = b"\x81\xa5index\x01"
        forged_node = [bytes(32), *tree.proof(1)[1:]]
        attempts = [
            (good[0], tree.proof(0), garbage, tree.proof(1)),  # a malformed record
            (good[0], tree.proof(0), good[2], tree.proof(1)),  # another step's record
            (good[0], tree.proof(0), good[1], tree.proof(2)),  # another step's proof
            (good[0], tree.proof(0), good[1], forged_node),  # a forged proof node
            (garbage, tree.proof(0), good[1], tree.proof(1)),  # a malformed previous record
        ]
        for prev, prev_proof, record, proof in attempts:
            with pytest.raises(InvalidProof):
                await world.market("challenger").challenge(
                    posted.job_id, 1, prev, prev_proof, record, proof, Wei(BOND)
                )
        assert (await market.job(posted.job_id)).status == JobStatus.SUBMITTED
        assert changes(before, await ledger(world)) == {}
        assert await world.clients["challenger"].tx.balance(world.address("challenger")) == wallet
        folder = job_folder(worker.settings.state_dir, job)
        assert (folder / "adapter.gguf").exists()  # kept while the job can be disputed

        # The window passes: the running worker finalizes, withdraws and cleans up, once.
        await world.chain.advance_time(600 + 1)
        await eventually(lambda: settled_and_clean(world, folder), 60)
        assert (await market.job(posted.job_id)).status == JobStatus.FINALIZED
    finally:
        stop.set()
        outcomes = await asyncio.wait_for(running, 60)
    assert [(o.job_id, o.finalized, o.notes) for o in outcomes] == [
        (posted.job_id, True, ["finalized"])
    ]
    assert changes(before, await ledger(world)) == {"trainer": Holding(0, -STAKE, REWARD)}
    assert sum("withdrew" in line for line in said) == 1
    assert not any(worker.settings.state_dir.iterdir())  # nothing left behind
    await world.assert_solvent()


async def test_a_malformed_record_committed_in_the_log_is_disputed_and_the_trainer_slashed(
    world: World,
    swarm: Swarm,
    posted: Posted,
    base_model: nn.Module,
    tmp_path: Path,
) -> None:
    garbage = codec.pack({"version": 1, "index": 2})  # canonical msgpack, not a record
    await submit_tampered(world, swarm, base_model, posted, tmp_path / "t", {2: garbage})
    before = await ledger(world)

    with pytest.raises(MalformedLogError, match="step 2 of job") as caught:
        await verify_job(
            world.market("challenger"), swarm.client, base_model, posted.job_id, samples=STEPS
        )
    verdict = caught.value.verdict
    assert verdict.wrong_step == 2
    assert verdict.challenge is not None
    assert verdict.challenge.record == garbage
    await file_challenge(world, posted.job_id, verdict.challenge)

    await assert_committee_slashes_the_trainer(
        world, swarm, base_model, posted, before,
        votes=Vote.DATA_UNAVAILABLE, outcome=Outcome.DATA_UNAVAILABLE,
    )  # fmt: skip
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.SLASHED


async def test_a_record_with_a_forged_shard_inclusion_proof_is_voted_wrong_and_slashed(
    world: World,
    swarm: Swarm,
    posted: Posted,
    base_model: nn.Module,
    tmp_path: Path,
) -> None:
    resolved = await resolve_job(swarm.client, posted.spec)
    engine = await engine_for_job(base_model, swarm.client, resolved)
    honest = engine.batch_entries(1)
    row = honest[0]
    forged_row = BatchEntry(row.reference, row.shard, row.offset, (b"\x66" * 32, *row.proof[1:]))

    def forged(records: list[bytes]) -> bytes:
        record = StepRecord.decode(records[1])
        return dataclasses.replace(record, batch=(forged_row, *record.batch[1:])).encode()

    # Train once to learn the honest record 1, then commit it with the forged proof.
    local = LocalRun(tmp_path / "pre")
    log, _, _ = await asyncio.to_thread(train_job, engine, local)
    await submit_tampered(
        world, swarm, base_model, posted, tmp_path / "t", {1: forged(log.encoded)}
    )
    before = await ledger(world)

    _, verdict = await verify_job(
        world.market("challenger"), swarm.client, base_model, posted.job_id, samples=STEPS
    )
    assert verdict.wrong_step == 1
    assert "not proven under the dataset" in verdict.reason
    assert verdict.challenge is not None
    await file_challenge(world, posted.job_id, verdict.challenge)

    await assert_committee_slashes_the_trainer(
        world, swarm, base_model, posted, before,
        votes=Vote.TRAINER_WRONG, outcome=Outcome.CHALLENGER_WON,
    )  # fmt: skip


async def test_shard_bytes_that_do_not_match_their_reference_make_verifiers_refuse_not_accuse(
    world: World,
    swarm: Swarm,
    lying_gateway: tuple[str, set[str]],
    posted: Posted,
    base_model: nn.Module,
    worker: Worker,
    said: list[str],
) -> None:
    await train_once(worker)
    url, tampered = lying_gateway
    resolved = await resolve_job(swarm.client, posted.spec)
    shard = resolved.manifest.shards[0].reference
    tampered.add(shard.hex())
    async with BeeClient(url, timeout=20) as lied_to:
        with pytest.raises(ShardReferenceMismatch, match=f"reference asked for {shard.hex()}") as e:
            await verify_job(
                world.market("challenger"), lied_to, base_model, posted.job_id, samples=STEPS
            )
        assert e.value.expected == shard
        assert e.value.actual != shard
        assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.SUBMITTED

        # Someone challenges the honest step 1 anyway. The member behind the lying
        # gateway cannot rebuild the batch and abstains; the others find the step right.
        await honest_challenge(world, swarm, posted.job_id, 1)
        before = await ledger(world)
        members = [
            Validator(world.market("v1"), lied_to, base_model),
            Validator(world.market("v2"), swarm.client, base_model),
            Validator(world.market("v3"), swarm.client, base_model),
        ]
        assert await votes_of(world, members) == [Vote.TRAINER_CORRECT] * 2
    # Two of three is a majority, but no validator resolves before all voted: the worker
    # does, at once, without waiting for the vote to end.
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.DISPUTED
    await worker.settle({})
    assert await outcome_of(world, posted.job_id) == Outcome.TRAINER_WON
    assert any("resolved the dispute (a majority voted): finalized" in line for line in said)
    assert changes(before, await ledger(world)) == trainer_won(("v2", "v3"))
    await world.assert_solvent()


async def test_a_checkpoint_missing_on_swarm_loses_the_dispute_when_the_trainer_is_gone(
    world: World,
    swarm: Swarm,
    posted: Posted,
    base_model: nn.Module,
    worker: Worker,
) -> None:
    await train_once(worker)
    forget(swarm, await checkpoint_reference(swarm, world, posted.job_id, 2))
    await honest_challenge(world, swarm, posted.job_id, 3)  # every step was right
    before = await ledger(world)

    await assert_committee_slashes_the_trainer(
        world, swarm, base_model, posted, before,
        votes=Vote.DATA_UNAVAILABLE, outcome=Outcome.DATA_UNAVAILABLE,
    )  # fmt: skip


async def test_a_worker_answering_its_dispute_reuploads_the_lost_checkpoint_and_wins(
    world: World,
    swarm: Swarm,
    posted: Posted,
    base_model: nn.Module,
    worker: Worker,
    said: list[str],
) -> None:
    outcome = await train_once(worker)
    lost = await checkpoint_reference(swarm, world, posted.job_id, 2)
    forget(swarm, lost)
    with pytest.raises(SwarmError):
        await swarm.client.download_bytes(lost)
    await honest_challenge(world, swarm, posted.job_id, 3)
    before = await ledger(world)

    await worker.settle({posted.job_id: outcome})  # sees the dispute, repairs the data
    assert any("step 3 challenged by" in line for line in said)
    assert any("re-uploaded the checkpoint of step 2" in line for line in said)
    assert len(await swarm.client.download_bytes(lost)) > 0
    await world.mine(PARAMS.draw_delay + 1)
    await worker.settle({posted.job_id: outcome})  # draws the committee
    assert (await world.market("outsider").dispute(posted.job_id)).drawn
    votes: list[Vote] = []
    for validator in committee(world, swarm, base_model):
        votes += [vote for _, vote in await validator.watch_once()]
    assert votes == [Vote.TRAINER_CORRECT] * 3
    await worker.settle({posted.job_id: outcome})  # withdraws and cleans up
    assert outcome.finalized
    assert await outcome_of(world, posted.job_id) == Outcome.TRAINER_WON
    assert changes(before, await ledger(world)) == trainer_won(VALIDATORS)
    assert await world.market("outsider").pending_withdrawal(world.address("trainer")) == 0
    assert not any(worker.settings.state_dir.iterdir())
    await world.assert_solvent()


async def test_a_worker_resolves_its_dispute_once_the_vote_ends_and_absent_members_pay(
    world: World,
    swarm: Swarm,
    posted: Posted,
    base_model: nn.Module,
    worker: Worker,
    said: list[str],
) -> None:
    await train_once(worker)
    await honest_challenge(world, swarm, posted.job_id, 0)
    before = await ledger(world)
    (v1,) = committee(world, swarm, base_model)[:1]
    assert await votes_of(world, [v1]) == [Vote.TRAINER_CORRECT]  # v1 draws and votes

    await worker.settle({})  # one vote of three: nothing to resolve yet
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.DISPUTED
    assert any("votes: 1 correct, 0 wrong, 0 data unavailable" in line for line in said)
    await world.chain.advance_time(PARAMS.voting_period + 1)
    await worker.settle({})
    assert await outcome_of(world, posted.job_id) == Outcome.TIMED_OUT
    assert any("(the voting period ended)" in line for line in said)
    assert changes(before, await ledger(world)) == timed_out(("v1",), ("v2", "v3"))
    await world.assert_solvent()
