"""Gas of every training-market, dataset-DAO and registry call, on the embedded chain.

    python bench/gas.py

Prints one line per call, then (last line) one JSON object with `happy_path_gas`
(post + claim + submit + finalize, staking excluded; goal <= 300,000),
`dispute_path_gas` (post + claim + submit + challenge of step 17 of a 64-step log with
records 16 and 17 and both proofs + drawCommittee + three votes + resolve, which slashes
the trainer and pays the two majority voters) and `calls` (gas per call name).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from chain.client import ChainClient, make_web3
from chain.deploy import deploy_all
from chain.devchain import EmbeddedChain, dev_account
from chain.merkle import StepLogTree
from chain.records import JobId, JobSpec, MarketParams, SwarmRef, Verdict, Wei, swarm_ref
from chain.transactor import Transactor

ETHER = 10**18
REWARD = Wei(ETHER // 2)
HAPPY = ("postJob", "claim", "submit", "finalize")
DISPUTE = (
    "postJob", "claim", "submit", "challenge", "drawCommittee", "vote", "vote", "vote", "resolve",
)  # fmt: skip
STEPS = 64
RECORD_BYTES = 512  # about the size of a trainer step record


def ref(tag: int) -> SwarmRef:
    return swarm_ref(bytes([tag]) * 32)


async def measure() -> dict[str, Any]:
    chain = EmbeddedChain()
    roles = ["requester", "trainer", "challenger", "v1", "v2", "v3"]
    accounts = {role: dev_account(i) for i, role in enumerate(roles)}
    for account in accounts.values():
        await chain.fund(account.address, 100 * ETHER)
    params = MarketParams()
    clients: dict[str, ChainClient] = {}
    try:
        w3 = make_web3(chain.endpoint, timeout_s=30)
        transactor = await Transactor.create(w3, accounts["requester"], timeout_s=30)
        deployment = await deploy_all(transactor, params, fork_join_window_s=3600)
        for role, account in accounts.items():
            clients[role] = await ChainClient.connect(chain.endpoint, account, deployment)
        return await _run(chain, clients, accounts, params)
    finally:
        for client in clients.values():
            await client.aclose()


async def _run(
    chain: EmbeddedChain,
    clients: dict[str, ChainClient],
    accounts: dict[str, Any],
    params: MarketParams,
) -> dict[str, Any]:
    gas: dict[str, int] = {}
    happy: list[int] = []
    dispute: list[int] = []

    def note(name: str, receipt: Any, path: list[int] | None = None) -> None:
        used = int(receipt["gasUsed"])
        gas.setdefault(name, used)
        if path is not None:
            path.append(used)

    market = {role: client.market for role, client in clients.items()}
    members = [accounts[r].address for r in ("requester", "trainer", "challenger")]

    # Registry and datasets.
    key = accounts["trainer"]._key_obj.public_key.to_bytes()
    note("registry.register", await clients["trainer"].registry.register(ref(1), key, ref(2)))
    note("registry.update", await clients["trainer"].registry.register(ref(3), key, ref(2)))
    factory = clients["requester"].datasets
    create = factory.contract.functions.create(ref(0x10), ref(0x11), members, 5000, 3600)
    note("dao.create(3 members)", await factory.tx.transact(create))
    dao = await factory.create(ref(0x10), ref(0x11), members, quorum_bps=5000, voting_period=3600)
    proposal, receipt = await dao.propose(ref(0x12), ref(0x13))
    note("dao.propose", receipt)
    note("dao.vote", await dao.vote(proposal, support=True))
    trainer_dao = dao.as_account(clients["trainer"].tx)
    await trainer_dao.vote(proposal, support=True)
    note("dao.execute", await dao.execute(proposal))
    fork_fn = trainer_dao.contract.functions.fork()
    note("dao.fork", await trainer_dao.tx.transact(fork_fn))
    child = await dao.fork()
    note("dao.join(fork)", await child.as_account(clients["trainer"].tx).join())

    # Staking (excluded from the paths).
    note("market.stake", await market["trainer"].stake(Wei(5 * ETHER)))
    for role in ("v1", "v2", "v3"):
        await market[role].stake(Wei(ETHER))
        note("market.registerValidator", await market[role].register_validator())
    note("market.unstake", await market["v1"].unstake(Wei(ETHER // 10)))
    note("market.withdraw", await market["v1"].withdraw())

    async def spec() -> JobSpec:
        now = await chain.timestamp()
        return JobSpec(
            dao.address, ref(0x12), bytes(ref(0xB0)), ref(0xC0), 64, 1, now + 86_400, 600
        )

    records = [f"step {i}:".encode().ljust(RECORD_BYTES, b".") for i in range(STEPS)]
    tree = StepLogTree(records)

    # Happy path: the first job, the trainer owed nothing before (the costlier case).
    job_id, receipt = await market["requester"].post_job(await spec(), REWARD)
    note("market.postJob", receipt, happy)
    note("market.claim", await market["trainer"].claim(job_id), happy)
    note("market.submit", await market["trainer"].submit(job_id, tree.root, ref(0xAD)), happy)
    await chain.advance_time(601)
    note("market.finalize", await market["requester"].finalize(job_id), happy)
    note("market.withdraw(reward)", await market["trainer"].withdraw())

    async def disputed() -> tuple[JobId, list[str], list[int]]:
        """A submitted job, challenged at step 17, its committee drawn."""
        path: list[int] = []
        job_id, receipt = await market["requester"].post_job(await spec(), REWARD)
        note("market.postJob", receipt, path)
        note("market.claim", await market["trainer"].claim(job_id), path)
        submit = await market["trainer"].submit(job_id, tree.root, ref(0xAD))
        note("market.submit", submit, path)
        bond = params.min_challenge_bond
        challenge = await market["challenger"].challenge_log(job_id, 17, records, bond)
        note(f"market.challenge({STEPS}-step log)", challenge, path)
        for _ in range(params.draw_delay):
            await chain.advance_time(1)  # each mines a block
        note("market.drawCommittee", await market["requester"].draw_committee(job_id), path)
        committee = (await market["requester"].dispute(job_id)).committee
        roles = [r for a in committee for r in ("v1", "v2", "v3") if accounts[r].address == a]
        return job_id, roles, path

    # Dispute path: the whole committee votes, the trainer is slashed, two voters paid.
    job_id, voters, dispute = await disputed()
    verdicts = (Verdict.TRAINER_WRONG, Verdict.TRAINER_CORRECT, Verdict.DATA_UNAVAILABLE)
    for role, verdict in zip(voters, verdicts, strict=True):
        note("market.vote", await market[role].vote(job_id, verdict), dispute)
    note("market.resolve(slash, 2 rewarded)", await market["requester"].resolve(job_id), dispute)

    # Other endings: the trainer wins early; a timeout penalising two absent members.
    job_id, voters, _ = await disputed()
    for role in voters[:2]:
        await market[role].vote(job_id, Verdict.TRAINER_CORRECT)
    note("market.resolve(trainer won)", await market["requester"].resolve(job_id))
    job_id, voters, _ = await disputed()
    await market[voters[0]].vote(job_id, Verdict.TRAINER_WRONG)
    await chain.advance_time(params.voting_period + 1)
    note("market.resolve(timeout, 2 absent)", await market["requester"].resolve(job_id))

    # Expiry and cancellation.
    job_id, _ = await market["requester"].post_job(await spec(), REWARD)
    await market["trainer"].claim(job_id)
    await chain.advance_time(86_401)
    note("market.expire(slash)", await market["requester"].expire(job_id))
    job_id, _ = await market["requester"].post_job(await spec(), REWARD)
    note("market.cancel", await market["requester"].cancel(job_id))

    return {
        "happy_path_gas": sum(happy),
        "dispute_path_gas": sum(dispute),
        "happy_path_calls": list(HAPPY),
        "dispute_path_calls": list(DISPUTE),
        "calls": gas,
    }


def main() -> int:
    result = asyncio.run(measure())
    for name, used in result["calls"].items():
        print(f"{name:32} {used:>9,}")
    print(f"{'happy path':32} {result['happy_path_gas']:>9,}  ({' + '.join(HAPPY)})")
    print(f"{'dispute path':32} {result['dispute_path_gas']:>9,}  ({' + '.join(DISPUTE)})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
