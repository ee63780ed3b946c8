"""The chain tools: read the node's contracts freely, write only with the owner's consent.

`make_chain_tools(client)` gives one small tool per action, so each has a plain schema:

    chain_status       the node's account: chain id, block number, ETH balance, stake
    chain_balance      any address: ETH balance and market stake
    chain_job          one training job by id
    chain_jobs         a page of training jobs
    chain_dataset      a dataset DAO: current root, root history, recent proposals
    chain_peer         the AgentRegistry record of an address
    chain_stake        (write) stake ETH in the TrainingMarket
    chain_post_job     (write) post a training job with an ETH reward
    chain_dataset_vote (write) vote on a dataset DAO proposal

Writes are `destructive` and `local_only`: a remote peer is refused before anything
else happens; for the owner, `context.confirm` is shown exactly what will be sent
(sender, contract, function, arguments, value in ether and wei) and nothing is sent
unless it answers True. Amounts are decimal ether strings parsed exactly by
`chain.units` (the CLI's parser too) and bounded by `max_ether`. Chain errors come
back as failures naming the decoded revert.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import is_checksum_address, to_checksum_address

from chain import units
from chain.client import ChainClient
from chain.errors import ChainError, ContractRevert
from chain.records import JobId, JobSpec, ProposalId, SwarmRef, TrainingJob, Wei
from tools.base import Tool, ToolAnnotations, ToolContext, ToolError, ToolResult
from tools.decorator import FunctionTool, tool

log = logging.getLogger(__name__)

DEFAULT_MAX_ETHER = Decimal(100)  # largest amount one write may send
MAX_AMOUNT_CHARS = 40
MAX_PAGE = 50  # jobs per chain_jobs call
MAX_HISTORY = 50  # roots / proposals per chain_dataset call
MAX_UINT32 = 2**32 - 1
MAX_UINT64 = 2**64 - 1
MAX_UINT24 = 2**24 - 1
MAX_DEADLINE_S = 365 * 24 * 3600

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX32 = re.compile(r"(0x)?[0-9a-fA-F]{64}")


# ---------------------------------------------------------------- parsing and formatting


def parse_ether(text: str, *, max_ether: Decimal = DEFAULT_MAX_ETHER) -> Wei:
    """Wei for a decimal ether amount like "0.25"; exact, positive, at most `max_ether`."""
    cleaned = text.strip()
    if not cleaned or len(cleaned) > MAX_AMOUNT_CHARS:
        raise ToolError(
            f"amount must be a decimal number of ether, 1 to {MAX_AMOUNT_CHARS} characters"
        )
    limit = f"amount {cleaned} ETH is above this node's limit of {max_ether} ETH"
    try:
        wei = units.parse_ether(cleaned)
    except units.AmountTooLarge:
        raise ToolError(limit) from None
    except units.AmountError as exc:
        raise ToolError(str(exc)) from None
    if wei > Fraction(max_ether) * units.WEI_PER_ETHER:
        raise ToolError(limit)
    return wei


format_ether = units.format_ether


def parse_address(text: str, what: str = "address") -> ChecksumAddress:
    """A checksummed address; mixed case must carry a valid EIP-55 checksum."""
    cleaned = text.strip()
    if not _ADDRESS.fullmatch(cleaned):
        raise ToolError(f"{what} must be 0x followed by 40 hex digits, got {cleaned[:60]!r}")
    mixed = cleaned[2:] != cleaned[2:].lower() and cleaned[2:] != cleaned[2:].upper()
    if mixed and not is_checksum_address(cleaned):
        raise ToolError(f"{what} {cleaned} has a bad checksum (mistyped?)")
    return to_checksum_address(cleaned)


def parse_hex32(text: str, what: str) -> bytes:
    cleaned = text.strip()
    if not _HEX32.fullmatch(cleaned):
        raise ToolError(f"{what} must be 64 hex digits (32 bytes), got {cleaned[:80]!r}")
    return bytes.fromhex(cleaned.removeprefix("0x"))


def check_range(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise ToolError(f"{what} must be from {low} to {high}, got {value}"[:200])
    return value


def chain_failure(exc: ChainError) -> ToolResult:
    """A failure naming the decoded revert (or the chain error) for the model."""
    if isinstance(exc, ContractRevert):
        sent = f" (tx {exc.tx_hash})" if exc.tx_hash else "; nothing was sent"
        return ToolResult.failure(
            f"the contract reverted with {exc.reason}{sent}",
            data={
                "revert": type(exc).__name__,
                "args": {k: str(v) for k, v in exc.args_by_name.items()},
            },
        )
    return ToolResult.failure(f"chain error ({type(exc).__name__}): {exc}")


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def job_data(job: TrainingJob) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "requester": job.requester,
        "reward_wei": str(job.reward),
        "reward": format_ether(job.reward),
        "status": job.status.name,
        "trainer": job.trainer,
        "expires_at": job.expires_at,
        "challenge_window": job.challenge_window,
        "steps": job.steps,
        "spec_hash": _hex(job.spec_hash),
        "log_root": _hex(job.log_root),
        "adapter_ref": _hex(job.adapter_ref),
    }


def job_line(job: TrainingJob) -> str:
    trainer = f", trainer {job.trainer}" if job.trainer else ""
    return (
        f"job {job.job_id}: {job.status.name}, reward {format_ether(job.reward)}, "
        f"{job.steps} steps, requester {job.requester}{trainer}, expires at {job.expires_at}"
    )


# ---------------------------------------------------------------- confirmed writes


@dataclass(frozen=True)
class ConfirmedWrite:
    """A chain write: `inner` asks `context.confirm` itself with the exact transaction.

    It is declared destructive here, not to `@tool`, because the decorator's generic
    confirmation would only show the raw arguments.
    """

    inner: FunctionTool

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def description(self) -> str:
        return self.inner.description

    @property
    def input_schema(self) -> dict[str, Any]:
        return self.inner.input_schema

    @property
    def annotations(self) -> ToolAnnotations:
        return replace(self.inner.annotations, destructive=True, local_only=True)

    async def __call__(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        return await self.inner(arguments, context)


async def send_confirmed(
    context: ToolContext, summary: str, send: Callable[[], Awaitable[ToolResult]]
) -> ToolResult:
    """Run `send` only for the local owner, and only after they confirm `summary`."""
    if not context.local_owner:
        return ToolResult.failure("chain writes never run for a remote peer; nothing was sent")
    if context.confirm is None:
        return ToolResult.failure(
            "this needs the owner's confirmation and nobody can confirm; nothing was sent"
        )
    if not await context.confirm(summary):
        return ToolResult.failure("the owner declined; nothing was sent", data={"sent": False})
    try:
        return await send()
    except ChainError as exc:
        return chain_failure(exc)


# ---------------------------------------------------------------- the tools


def make_chain_tools(client: ChainClient, *, max_ether: Decimal = DEFAULT_MAX_ETHER) -> list[Tool]:
    """The chain tools over `client` (its account signs every write)."""
    tx = client.tx
    me = tx.address

    def sender() -> str:
        return f"from the node account {me} on chain {tx.chain_id}"

    async def read(work: Awaitable[ToolResult]) -> ToolResult:
        try:
            return await work
        except ChainError as exc:
            return chain_failure(exc)

    @tool(name="chain_status", read_only=True)
    async def chain_status() -> ToolResult:
        """The node's own chain account: chain id, latest block, ETH balance and market stake."""

        async def work() -> ToolResult:
            block = await tx.rpc(tx.w3.eth.block_number)
            balance = await tx.balance(me)
            stake = await client.market.account(me)
            text = (
                f"account {me} on chain {tx.chain_id}, latest block {block}\n"
                f"balance {format_ether(balance)}; staked {format_ether(stake.staked)} "
                f"({format_ether(stake.locked)} locked), validator: {stake.validator}"
            )
            return ToolResult.success(
                text,
                data={
                    "account": me,
                    "chain_id": tx.chain_id,
                    "block": block,
                    "balance_wei": str(balance),
                    "staked_wei": str(stake.staked),
                    "locked_wei": str(stake.locked),
                    "validator": stake.validator,
                },
            )

        return await read(work())

    @tool(name="chain_balance", read_only=True)
    async def chain_balance(address: str) -> ToolResult:
        """The ETH balance and TrainingMarket stake of any address.

        Args:
            address: The account, 0x followed by 40 hex digits.
        """
        account = parse_address(address)

        async def work() -> ToolResult:
            balance = await tx.balance(account)
            stake = await client.market.account(account)
            text = (
                f"{account}: balance {format_ether(balance)}; staked "
                f"{format_ether(stake.staked)} ({format_ether(stake.locked)} locked)"
            )
            data = {
                "address": account,
                "balance_wei": str(balance),
                "staked_wei": str(stake.staked),
            }
            return ToolResult.success(text, data=data)

        return await read(work())

    @tool(name="chain_job", read_only=True)
    async def chain_job(job_id: int) -> ToolResult:
        """One training job of the TrainingMarket.

        Args:
            job_id: The job id (jobs are numbered from 1).
        """
        check_range(job_id, 1, MAX_UINT64, "job_id")

        async def work() -> ToolResult:
            job = await client.market.job(JobId(job_id))
            return ToolResult.success(job_line(job), data=job_data(job))

        return await read(work())

    @tool(name="chain_jobs", read_only=True)
    async def chain_jobs(offset: int = 0, limit: int = 20) -> ToolResult:
        """A page of training jobs, oldest first, with the total count.

        Args:
            offset: How many jobs to skip from the first one.
            limit: How many jobs to list, 1 to 50.
        """
        check_range(offset, 0, MAX_UINT64, "offset")
        check_range(limit, 1, MAX_PAGE, "limit")

        async def work() -> ToolResult:
            count = await client.market.job_count()
            jobs = await client.market.jobs(offset, limit) if offset < count else []
            lines = [f"{count} job(s) in total; showing {len(jobs)} from offset {offset}"]
            lines += [job_line(j) for j in jobs]
            data = {"count": count, "jobs": [job_data(j) for j in jobs]}
            return ToolResult.success("\n".join(lines), data=data)

        return await read(work())

    @tool(name="chain_dataset", read_only=True)
    async def chain_dataset(dao: str, limit: int = 10) -> ToolResult:
        """A dataset DAO: its current Swarm root, its root history and recent proposals.

        Args:
            dao: The DatasetDAO contract address.
            limit: How many of the latest roots and proposals to show, 1 to 50.
        """
        address = parse_address(dao, "dao")
        check_range(limit, 1, MAX_HISTORY, "limit")

        async def work() -> ToolResult:
            if not await client.datasets.is_dao(address):
                raise ToolError(f"{address} is not a dataset DAO of this deployment")
            d = client.dao(address)
            root = await d.current_root()
            history = (await d.history())[-limit:]
            proposals = (await d.proposals())[-limit:]
            lines = [f"dataset DAO {address}: current root 0x{root.hex()}", "root history:"]
            lines += [
                f"  #{e.index} 0x{e.root.hex()} at {e.timestamp}"
                + ("" if e.proposal_id is None else f" (proposal {e.proposal_id})")
                for e in history
            ]
            lines.append("proposals:" if proposals else "proposals: none")
            lines += [
                f"  {p.proposal_id}: root 0x{p.root.hex()}, yes {p.yes}, no {p.no}, "
                f"deadline {p.deadline}, executed: {p.executed}"
                for p in proposals
            ]
            data = {
                "dao": address,
                "root": _hex(root),
                "history": [
                    {
                        "index": e.index,
                        "root": _hex(e.root),
                        "proposal_id": e.proposal_id,
                        "timestamp": e.timestamp,
                    }
                    for e in history
                ],
                "proposals": [
                    {
                        "proposal_id": p.proposal_id,
                        "root": _hex(p.root),
                        "yes": p.yes,
                        "no": p.no,
                        "deadline": p.deadline,
                        "executed": p.executed,
                    }
                    for p in proposals
                ],
            }
            return ToolResult.success("\n".join(lines), data=data)

        return await read(work())

    @tool(name="chain_peer", read_only=True)
    async def chain_peer(address: str) -> ToolResult:
        """The AgentRegistry record of an address (its Swarm inbox and capabilities).

        Args:
            address: The peer's account, 0x followed by 40 hex digits.
        """
        account = parse_address(address)

        async def work() -> ToolResult:
            if not await client.registry.is_registered(account):
                return ToolResult.success(
                    f"{account} is not registered", data={"address": account, "registered": False}
                )
            peer = await client.registry.peer(account)
            text = (
                f"{account}: inbox 0x{peer.inbox.hex()}, capabilities "
                f"0x{peer.capabilities.hex()}, registered at {peer.registered_at}, "
                f"updated at {peer.updated_at}"
            )
            data = {
                "address": account,
                "registered": True,
                "inbox": _hex(peer.inbox),
                "capabilities": _hex(peer.capabilities),
                "registered_at": peer.registered_at,
                "updated_at": peer.updated_at,
                "public_key": _hex(peer.public_key),
            }
            return ToolResult.success(text, data=data)

        return await read(work())

    @tool(name="chain_stake", local_only=True)
    async def chain_stake(amount_ether: str, context: ToolContext) -> ToolResult:
        """Stake ETH from the node's account in the TrainingMarket (asks the owner first).

        Args:
            amount_ether: The amount in ether as a decimal string, e.g. "0.5".
        """
        wei = parse_ether(amount_ether, max_ether=max_ether)
        summary = (
            f"Send a transaction {sender()}: TrainingMarket.stake() at "
            f"{client.market.address}, value {format_ether(wei)} ({wei} wei)."
        )

        async def send() -> ToolResult:
            receipt = await client.market.stake(wei)
            stake = await client.market.account(me)
            text = f"staked {format_ether(wei)}; total stake {format_ether(stake.staked)}"
            return ToolResult.success(
                text,
                data={"tx": receipt["transactionHash"].hex(), "staked_wei": str(stake.staked)},
            )

        return await send_confirmed(context, summary, send)

    @tool(name="chain_post_job", local_only=True)
    async def chain_post_job(
        dao: str,
        base_model: str,
        hyperparams: str,
        steps: int,
        reward_ether: str,
        context: ToolContext,
        seed: int = 0,
        deadline_s: int = 24 * 3600,
        challenge_window_s: int = 600,
    ) -> ToolResult:
        """Post a training job on the dataset DAO's current root, paying a reward in ETH.

        The reward leaves the node's account into escrow; the owner is asked first.

        Args:
            dao: The DatasetDAO whose current dataset root the job trains on.
            base_model: 32-byte hash of the base model weights, 64 hex digits.
            hyperparams: Swarm reference of the hyperparameter document, 64 hex digits.
            steps: Number of training steps, 1 to 4294967295.
            reward_ether: The reward in ether as a decimal string, e.g. "0.5".
            seed: The training RNG seed.
            deadline_s: Seconds from now by which the trainer must submit (at most a year).
            challenge_window_s: Seconds after submission during which anyone may challenge.
        """
        address = parse_address(dao, "dao")
        model = parse_hex32(base_model, "base_model")
        hyper = SwarmRef(parse_hex32(hyperparams, "hyperparams"))
        check_range(steps, 1, MAX_UINT32, "steps")
        check_range(seed, 0, MAX_UINT64, "seed")
        check_range(deadline_s, 60, MAX_DEADLINE_S, "deadline_s")
        check_range(challenge_window_s, 1, MAX_UINT24, "challenge_window_s")
        wei = parse_ether(reward_ether, max_ether=max_ether)
        try:
            if not await client.datasets.is_dao(address):
                raise ToolError(f"{address} is not a dataset DAO of this deployment")
            root = await client.dao(address).current_root()
            latest = await tx.rpc(tx.w3.eth.get_block("latest"))
        except ChainError as exc:
            return chain_failure(exc)
        spec = JobSpec(
            dao=address,
            dataset_root=root,
            base_model=model,
            hyperparams=hyper,
            steps=steps,
            seed=seed,
            deadline=int(latest["timestamp"]) + deadline_s,
            challenge_window=challenge_window_s,
        )
        summary = (
            f"Send a transaction {sender()}: TrainingMarket.postJob at {client.market.address}, "
            f"value {format_ether(wei)} ({wei} wei) as the reward in escrow. Job spec: "
            f"dao {address}, dataset root 0x{root.hex()}, base model 0x{model.hex()}, "
            f"hyperparams 0x{hyper.hex()}, {steps} steps, seed {seed}, deadline "
            f"{spec.deadline} (in {deadline_s} s), challenge window {challenge_window_s} s."
        )

        async def send() -> ToolResult:
            job_id, receipt = await client.market.post_job(spec, wei)
            return ToolResult.success(
                f"posted job {job_id} with reward {format_ether(wei)}",
                data={"job_id": job_id, "tx": receipt["transactionHash"].hex()},
            )

        return await send_confirmed(context, summary, send)

    @tool(name="chain_dataset_vote", local_only=True)
    async def chain_dataset_vote(
        dao: str, proposal_id: int, support: bool, context: ToolContext
    ) -> ToolResult:
        """Vote on a dataset DAO proposal from the node's account (asks the owner first).

        Args:
            dao: The DatasetDAO contract address.
            proposal_id: The proposal id (numbered from 0).
            support: True to vote yes, false to vote no.
        """
        address = parse_address(dao, "dao")
        check_range(proposal_id, 0, MAX_UINT64, "proposal_id")
        try:
            if not await client.datasets.is_dao(address):
                raise ToolError(f"{address} is not a dataset DAO of this deployment")
        except ChainError as exc:
            return chain_failure(exc)
        summary = (
            f"Send a transaction {sender()}: DatasetDAO.vote(proposal {proposal_id}, "
            f"{'YES' if support else 'NO'}) at {address}, value 0 ETH."
        )

        async def send() -> ToolResult:
            receipt = await client.dao(address).vote(ProposalId(proposal_id), support=support)
            return ToolResult.success(
                f"voted {'yes' if support else 'no'} on proposal {proposal_id} of {address}",
                data={"tx": receipt["transactionHash"].hex()},
            )

        return await send_confirmed(context, summary, send)

    reads: list[Tool] = [
        chain_status,
        chain_balance,
        chain_job,
        chain_jobs,
        chain_dataset,
        chain_peer,
    ]
    writes: list[Tool] = [
        ConfirmedWrite(chain_stake),
        ConfirmedWrite(chain_post_job),
        ConfirmedWrite(chain_dataset_vote),
    ]
    return reads + writes
