"""Typed client for `TrainingMarket`: stakes, jobs, disputes, withdrawals.

Each write method sends one transaction through the `Transactor` and returns its
receipt (gas figures for the benchmark live there); reverts arrive as the
`chain.reverts` class named like the Solidity error. Reads return `chain.records`.

A dispute takes four moves: `challenge` (or `challenge_log`, which builds both Merkle
proofs from the whole log), `draw_committee` once `drawable_at` is reached, `vote` by
each committee member, and `resolve`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3.contract import AsyncContract
from web3.logs import DISCARD
from web3.types import EventData, TxReceipt, Wei

from chain.artifacts import contract_at
from chain.errors import TransactionError
from chain.event_records import ChainEvent, decode_event
from chain.merkle import StepLogTree
from chain.records import (
    Dispute,
    JobId,
    JobSpec,
    MarketParams,
    StakeAccount,
    SwarmRef,
    TrainingJob,
    Verdict,
)
from chain.transactor import Transactor

log = logging.getLogger(__name__)

_SPEC_TYPES = ["(address,bytes32,bytes32,bytes32,uint32,uint64,uint40,uint24)"]


def spec_hash(spec: JobSpec) -> bytes:
    """keccak256(abi.encode(spec)), as the contract stores it."""
    return bytes(keccak(abi_encode(_SPEC_TYPES, [spec.as_abi()])))


def events_in(contract: AsyncContract, name: str, receipt: TxReceipt) -> list[EventData]:
    """The `name` events `contract` emitted in `receipt`."""
    return list(contract.events[name]().process_receipt(receipt, errors=DISCARD))


class MarketClient:
    """One account's view of a deployed TrainingMarket."""

    def __init__(self, transactor: Transactor, address: str) -> None:
        self.tx = transactor
        self.contract = contract_at(transactor.w3, "TrainingMarket", address)
        self.address = ChecksumAddress(self.contract.address)

    def as_account(self, transactor: Transactor) -> MarketClient:
        return MarketClient(transactor, self.address)

    # ------------------------------------------------------------ stake and withdraw

    async def stake(self, amount: Wei) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.stake(), value=amount)

    async def unstake(self, amount: Wei) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.unstake(amount))

    async def register_validator(self) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.registerValidator())

    async def withdraw(self) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.withdraw())

    # ------------------------------------------------------------ lifecycle

    async def post_job(self, spec: JobSpec, reward: Wei) -> tuple[JobId, TxReceipt]:
        receipt = await self.tx.transact(
            self.contract.functions.postJob(spec.as_abi()), value=reward
        )
        posted = events_in(self.contract, "JobPosted", receipt)
        if len(posted) != 1:
            raise TransactionError("postJob emitted no JobPosted event")
        return JobId(posted[0]["args"]["jobId"]), receipt

    async def cancel(self, job_id: JobId) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.cancel(job_id))

    async def claim(self, job_id: JobId) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.claim(job_id))

    async def submit(self, job_id: JobId, log_root: bytes, adapter_ref: SwarmRef) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.submit(job_id, log_root, adapter_ref))

    async def finalize(self, job_id: JobId) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.finalize(job_id))

    async def expire(self, job_id: JobId) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.expire(job_id))

    async def challenge(
        self,
        job_id: JobId,
        step: int,
        prev_record: bytes,
        prev_proof: Sequence[bytes],
        record: bytes,
        proof: Sequence[bytes],
        bond: Wei,
    ) -> TxReceipt:
        """Dispute `step`: records step-1 and step with their proofs (step 0: b"" and [])."""
        fn = self.contract.functions.challenge(
            job_id, step, prev_record, list(prev_proof), record, list(proof)
        )
        return await self.tx.transact(fn, value=bond)

    async def challenge_log(
        self, job_id: JobId, step: int, records: Sequence[bytes], bond: Wei
    ) -> TxReceipt:
        """Dispute `step` of the submitted log `records`, building both proofs."""
        tree = StepLogTree(records)
        if step == 0:
            prev_record, prev_proof = b"", []
        else:
            prev_record, prev_proof = records[step - 1], tree.proof(step - 1)
        return await self.challenge(
            job_id, step, prev_record, prev_proof, records[step], tree.proof(step), bond
        )

    async def draw_committee(self, job_id: JobId) -> TxReceipt:
        """Draw the dispute's committee (or re-anchor its seed block if it is too old)."""
        return await self.tx.transact(self.contract.functions.drawCommittee(job_id))

    async def vote(self, job_id: JobId, verdict: Verdict) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.vote(job_id, int(verdict)))

    async def resolve(self, job_id: JobId) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.resolve(job_id))

    # ------------------------------------------------------------ reads

    async def params(self) -> MarketParams:
        f = self.contract.functions
        return MarketParams(
            min_trainer_stake=Wei(await self.tx.call(f.minTrainerStake())),
            min_validator_stake=Wei(await self.tx.call(f.minValidatorStake())),
            min_challenge_bond=Wei(await self.tx.call(f.minChallengeBond())),
            voting_period=await self.tx.call(f.votingPeriod()),
            committee_size=await self.tx.call(f.committeeSize()),
            draw_delay=await self.tx.call(f.drawDelay()),
            validator_reward_bps=await self.tx.call(f.validatorRewardBps()),
            absent_penalty_bps=await self.tx.call(f.absentPenaltyBps()),
        )

    async def job(self, job_id: JobId) -> TrainingJob:
        return TrainingJob.from_abi(
            job_id, await self.tx.call(self.contract.functions.getJob(job_id))
        )

    async def job_count(self) -> int:
        count: int = await self.tx.call(self.contract.functions.jobCount())
        return count

    async def jobs(self, offset: int = 0, limit: int = 100) -> list[TrainingJob]:
        count = await self.job_count()
        ids = range(offset + 1, min(count, offset + limit) + 1)
        return [await self.job(JobId(i)) for i in ids]

    async def job_spec(self, job_id: JobId, *, from_block: int = 0) -> JobSpec:
        """The spec from the JobPosted event, checked against the stored hash."""
        job = await self.job(job_id)
        logs = await self.tx.rpc(
            self.contract.events.JobPosted().get_logs(
                from_block=from_block, argument_filters={"jobId": job_id}
            )
        )
        for entry in logs:
            spec = JobSpec.from_abi(entry["args"]["spec"])
            if spec_hash(spec) == job.spec_hash:
                return spec
        raise TransactionError(f"no JobPosted event matching job {job_id}")

    async def dispute(self, job_id: JobId) -> Dispute:
        return Dispute.from_abi(await self.tx.call(self.contract.functions.getDispute(job_id)))

    async def account(self, address: str) -> StakeAccount:
        raw = await self.tx.call(self.contract.functions.accountOf(self._checksum(address)))
        return StakeAccount.from_abi(raw)

    async def pending_withdrawal(self, address: str) -> Wei:
        fn = self.contract.functions.pendingWithdrawal(self._checksum(address))
        return Wei(await self.tx.call(fn))

    async def trainer_stake_for(self, reward: Wei) -> Wei:
        return Wei(await self.tx.call(self.contract.functions.trainerStakeFor(reward)))

    async def verdict_of(self, job_id: JobId, address: str) -> Verdict:
        fn = self.contract.functions.verdictOf(job_id, self._checksum(address))
        return Verdict(await self.tx.call(fn))

    async def has_voted(self, job_id: JobId, address: str) -> bool:
        return await self.verdict_of(job_id, address) != Verdict.NONE

    async def drawable_at(self, job_id: JobId) -> int | None:
        """The first block in which `draw_committee` can draw; None when no draw is due.

        Send the draw once the head has reached this block: some nodes (anvil) estimate
        gas against the head itself, not the block the transaction will land in.
        """
        block: int = await self.tx.call(self.contract.functions.drawableAt(job_id))
        return block or None

    async def block_number(self) -> int:
        number: int = await self.tx.rpc(self.tx.w3.eth.block_number)
        return number

    async def validators(self) -> list[ChecksumAddress]:
        count: int = await self.tx.call(self.contract.functions.validatorCount())
        return [
            ChecksumAddress(await self.tx.call(self.contract.functions.validatorAt(i)))
            for i in range(count)
        ]

    async def balance(self) -> Wei:
        return await self.tx.balance(self.address)

    async def events(self, name: str, *, from_block: int = 0, **filters: Any) -> list[ChainEvent]:
        """Past `name` events as typed records (optionally filtered on indexed arguments)."""
        event = self.contract.events[name]()
        logs = await self.tx.rpc(
            event.get_logs(from_block=from_block, argument_filters=filters or None)
        )
        return [decode_event(log) for log in logs]

    def _checksum(self, address: str) -> ChecksumAddress:
        return self.tx.w3.to_checksum_address(address)
