"""Typed records of every event our contracts emit, and the decoder.

`decode_event(log)` turns web3's `EventData` into the frozen dataclass named like the
Solidity event, fields in the event's order, names in snake_case, with addresses
checksummed, amounts as `Wei`, ids as `JobId`/`ProposalId` and the job spec as a
`JobSpec`. A test checks that every event in the ABIs has its class here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3.types import EventData

from chain.errors import ArtifactError
from chain.records import JobId, JobSpec, Outcome, ProposalId, Verdict, Wei


@dataclass(frozen=True)
class ChainEvent:
    """Where an event was emitted; every event record starts with these fields."""

    block_number: int
    tx_hash: str
    log_index: int
    contract: ChecksumAddress


@dataclass(frozen=True)
class PeerRegistered(ChainEvent):
    """A peer record was created."""

    account: ChecksumAddress
    inbox: bytes
    capabilities: bytes
    public_key: bytes


@dataclass(frozen=True)
class PeerUpdated(ChainEvent):
    """A peer record was changed."""

    account: ChecksumAddress
    inbox: bytes
    capabilities: bytes


@dataclass(frozen=True)
class Forked(ChainEvent):
    """A member started a fork of this DAO."""

    child: ChecksumAddress
    founder: ChecksumAddress
    root: bytes


@dataclass(frozen=True)
class MemberJoined(ChainEvent):
    """An account became a member."""

    member: ChecksumAddress


@dataclass(frozen=True)
class ProposalCreated(ChainEvent):
    """A member proposed a new root."""

    proposal_id: ProposalId
    proposer: ChecksumAddress
    root: bytes
    description: bytes
    deadline: int


@dataclass(frozen=True)
class ProposalExecuted(ChainEvent):
    """A proposal passed and was applied."""

    proposal_id: ProposalId
    root: bytes


@dataclass(frozen=True)
class RootChanged(ChainEvent):
    """The DAO root changed (index into the history)."""

    index: int
    root: bytes
    description: bytes


@dataclass(frozen=True)
class VoteCast(ChainEvent):
    """A member voted on a proposal."""

    proposal_id: ProposalId
    voter: ChecksumAddress
    support: bool


@dataclass(frozen=True)
class DaoCreated(ChainEvent):
    """The factory created a DAO (parent is None for an original)."""

    dao: ChecksumAddress
    parent: ChecksumAddress | None
    creator: ChecksumAddress
    root: bytes


@dataclass(frozen=True)
class CommitteeDrawn(ChainEvent):
    """A dispute's committee was drawn from the hash of `seed_block`; voting is open."""

    job_id: JobId
    committee: tuple[ChecksumAddress, ...]
    seed_block: int
    vote_end: int


@dataclass(frozen=True)
class CommitteeReanchored(ChainEvent):
    """The seed block's hash had left the 256-block window; the draw waits for a new one."""

    job_id: JobId
    seed_block: int


@dataclass(frozen=True)
class DisputeResolved(ChainEvent):
    """A dispute was settled."""

    job_id: JobId
    outcome: Outcome


@dataclass(frozen=True)
class DisputeVoted(ChainEvent):
    """A committee member voted."""

    job_id: JobId
    validator: ChecksumAddress
    verdict: Verdict


@dataclass(frozen=True)
class JobCancelled(ChainEvent):
    """The requester withdrew an unclaimed job."""

    job_id: JobId


@dataclass(frozen=True)
class JobChallenged(ChainEvent):
    """A step of a submitted job was disputed; the records are the only copy on chain."""

    job_id: JobId
    challenger: ChecksumAddress
    step: int
    bond: Wei
    prev_record: bytes  # record step-1 (empty for step 0)
    record: bytes  # record step
    seed_block: int  # the committee is drawn from this block's hash


@dataclass(frozen=True)
class JobClaimed(ChainEvent):
    """A trainer claimed a job, locking stake."""

    job_id: JobId
    trainer: ChecksumAddress
    stake: Wei


@dataclass(frozen=True)
class JobExpired(ChainEvent):
    """A job passed its deadline unsubmitted."""

    job_id: JobId
    refund: Wei


@dataclass(frozen=True)
class JobFinalized(ChainEvent):
    """The trainer was paid."""

    job_id: JobId
    trainer: ChecksumAddress
    payout: Wei


@dataclass(frozen=True)
class JobPosted(ChainEvent):
    """A requester posted a job (the full spec is only here)."""

    job_id: JobId
    requester: ChecksumAddress
    reward: Wei
    spec: JobSpec


@dataclass(frozen=True)
class JobSlashed(ChainEvent):
    """A trainer's stake was slashed to the beneficiary."""

    job_id: JobId
    trainer: ChecksumAddress
    amount: Wei
    beneficiary: ChecksumAddress


@dataclass(frozen=True)
class JobSubmitted(ChainEvent):
    """The trainer committed its log root and adapter."""

    job_id: JobId
    log_root: bytes
    adapter_ref: bytes
    challenge_ends_at: int


@dataclass(frozen=True)
class Staked(ChainEvent):
    """Stake was added."""

    account: ChecksumAddress
    amount: Wei
    total: Wei


@dataclass(frozen=True)
class Unstaked(ChainEvent):
    """Free stake moved to the pending withdrawal."""

    account: ChecksumAddress
    amount: Wei
    total: Wei


@dataclass(frozen=True)
class ValidatorRegistered(ChainEvent):
    """An account joined the validator set."""

    account: ChecksumAddress


@dataclass(frozen=True)
class ValidatorPenalized(ChainEvent):
    """A committee member who did not vote lost part of its stake."""

    job_id: JobId
    validator: ChecksumAddress
    amount: Wei


@dataclass(frozen=True)
class ValidatorRewarded(ChainEvent):
    """A committee member who voted with the outcome was paid its share."""

    job_id: JobId
    validator: ChecksumAddress
    amount: Wei


@dataclass(frozen=True)
class Withdrawn(ChainEvent):
    """A pending withdrawal was paid out."""

    account: ChecksumAddress
    amount: Wei


EVENT_TYPES: dict[str, type[ChainEvent]] = {
    cls.__name__: cls for cls in ChainEvent.__subclasses__()
}
_BASE_FIELDS = {f.name for f in dataclasses.fields(ChainEvent)}


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _address_or_none(value: str) -> ChecksumAddress | None:
    return None if int(value, 16) == 0 else to_checksum_address(value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "ChecksumAddress": to_checksum_address,
    "ChecksumAddress | None": _address_or_none,
    "bytes": bytes,
    "bool": bool,
    "JobSpec": JobSpec.from_abi,
    "Outcome": Outcome,
    "Verdict": Verdict,
    "tuple[ChecksumAddress, ...]": lambda v: tuple(to_checksum_address(a) for a in v),
    "JobId": JobId,
    "ProposalId": ProposalId,
    "Wei": Wei,
    "int": int,
}


def decode_event(log: EventData) -> ChainEvent:
    """The typed record of one decoded log."""
    cls = EVENT_TYPES.get(log["event"])
    if cls is None:
        raise ArtifactError(f"no event record for {log['event']}")
    types = {f.name: str(f.type) for f in dataclasses.fields(cls) if f.name not in _BASE_FIELDS}
    values = {}
    for name, value in log["args"].items():
        field = snake_case(name)
        values[field] = _CONVERTERS[types[field]](value)
    return cls(
        block_number=log["blockNumber"],
        tx_hash="0x" + bytes(log["transactionHash"]).hex(),
        log_index=log["logIndex"],
        contract=to_checksum_address(log["address"]),
        **values,
    )
