"""Typed ids, units and the records our contracts hold, as Python values.

Every record is a frozen dataclass built from the tuple an ABI call returns
(`from_abi`); zero addresses and zero references become `None` so callers cannot
mistake "unset" for a value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, NewType

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3.types import Wei

__all__ = [
    "ZERO_ADDRESS",
    "ZERO_REF",
    "Dispute",
    "JobId",
    "JobSpec",
    "JobStatus",
    "MarketParams",
    "Outcome",
    "PeerRecord",
    "Proposal",
    "ProposalId",
    "RootEntry",
    "StakeAccount",
    "SwarmRef",
    "TrainingJob",
    "Verdict",
    "Wei",
    "swarm_ref",
]

JobId = NewType("JobId", int)
ProposalId = NewType("ProposalId", int)
SwarmRef = NewType("SwarmRef", bytes)
"""A 32-byte Swarm reference (or any 32-byte hash the contracts store)."""

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO_REF = SwarmRef(bytes(32))
_NO_PROPOSAL = 2**64 - 1
_TENTH_ETHER = Wei(10**17)
_HUNDREDTH_ETHER = Wei(10**16)
_SPEC_FIELDS = (
    "dao",
    "datasetRoot",
    "baseModel",
    "hyperparams",
    "steps",
    "seed",
    "deadline",
    "challengeWindow",
)


def swarm_ref(value: bytes | str) -> SwarmRef:
    """A SwarmRef from 32 bytes or 64 hex digits (with or without 0x)."""
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"a Swarm reference is 32 bytes, got {len(raw)}")
    return SwarmRef(raw)


def _address_or_none(value: str) -> ChecksumAddress | None:
    return None if int(value, 16) == 0 else to_checksum_address(value)


def _ref_or_none(value: bytes) -> SwarmRef | None:
    return None if value == bytes(32) else SwarmRef(bytes(value))


class JobStatus(enum.IntEnum):
    NONE = 0
    POSTED = 1
    CLAIMED = 2
    SUBMITTED = 3
    DISPUTED = 4
    FINALIZED = 5
    SLASHED = 6
    EXPIRED = 7
    CANCELLED = 8

    @property
    def is_open(self) -> bool:
        """The job still holds its reward in escrow."""
        return JobStatus.POSTED <= self <= JobStatus.DISPUTED


class Outcome(enum.IntEnum):
    TRAINER_WON = 0
    CHALLENGER_WON = 1
    TIMED_OUT = 2  # no committee drawn, or no majority, in time: trainer paid, bond returned
    DATA_UNAVAILABLE = 3  # the majority could not fetch the log or checkpoint: trainer slashed

    @property
    def trainer_lost(self) -> bool:
        return self in (Outcome.CHALLENGER_WON, Outcome.DATA_UNAVAILABLE)


class Verdict(enum.IntEnum):
    """A committee member's vote on a disputed step."""

    NONE = 0  # not voted
    TRAINER_CORRECT = 1  # re-executing the step gave the committed post-state
    TRAINER_WRONG = 2  # it did not
    DATA_UNAVAILABLE = 3  # the pre-state checkpoint or the log could not be fetched


@dataclass(frozen=True)
class MarketParams:
    """TrainingMarket constructor parameters (immutable once deployed)."""

    min_trainer_stake: Wei = _TENTH_ETHER  # floor of the stake a claim locks
    min_validator_stake: Wei = _TENTH_ETHER  # stake a committee seat locks
    min_challenge_bond: Wei = _HUNDREDTH_ETHER  # smallest bond a challenge may post
    voting_period: int = 3600  # seconds to draw a committee, then seconds it has to vote
    committee_size: int = 3  # validators drawn per dispute (fewer if fewer eligible)
    draw_delay: int = 4  # blocks between a challenge and the block whose hash seeds the draw
    validator_reward_bps: int = 2000  # share of the loser's forfeit for the majority voters
    absent_penalty_bps: int = 5000  # share of min_validator_stake an absent member loses

    def as_abi(self) -> tuple[int, ...]:
        return (
            self.min_trainer_stake,
            self.min_validator_stake,
            self.min_challenge_bond,
            self.voting_period,
            self.committee_size,
            self.draw_delay,
            self.validator_reward_bps,
            self.absent_penalty_bps,
        )


@dataclass(frozen=True)
class JobSpec:
    """What a requester asks for; hashed on chain, published whole in `JobPosted`."""

    dao: ChecksumAddress  # the dataset DAO
    dataset_root: SwarmRef  # must equal the DAO's current root when posting
    base_model: bytes  # 32-byte hash of the base model weights
    hyperparams: SwarmRef  # Swarm reference of the hyperparameter document
    steps: int  # number of training steps (leaves of the step log)
    seed: int  # training RNG seed
    deadline: int  # unix time by which the trainer must submit
    challenge_window: int  # seconds after submission during which anyone may challenge

    def as_abi(self) -> tuple[Any, ...]:
        return (
            self.dao,
            self.dataset_root,
            self.base_model,
            self.hyperparams,
            self.steps,
            self.seed,
            self.deadline,
            self.challenge_window,
        )

    @classmethod
    def from_abi(cls, raw: Any) -> JobSpec:
        if hasattr(raw, "keys"):  # decoded from an event: a mapping by field name
            raw = [raw[k] for k in _SPEC_FIELDS]
        dao, root, model, hyper, steps, seed, deadline, window = raw
        return cls(
            to_checksum_address(dao),
            SwarmRef(bytes(root)),
            bytes(model),
            SwarmRef(bytes(hyper)),
            steps,
            seed,
            deadline,
            window,
        )


@dataclass(frozen=True)
class TrainingJob:
    job_id: JobId
    requester: ChecksumAddress
    reward: Wei
    status: JobStatus
    trainer: ChecksumAddress | None
    expires_at: int  # Posted/Claimed: the deadline; Submitted: end of the challenge window
    challenge_window: int
    steps: int
    spec_hash: bytes
    log_root: SwarmRef | None
    adapter_ref: SwarmRef | None

    @classmethod
    def from_abi(cls, job_id: JobId, raw: Any) -> TrainingJob:
        requester, reward, status, trainer, expires, window, steps, spec, log, adapter = raw
        return cls(
            job_id,
            to_checksum_address(requester),
            Wei(reward),
            JobStatus(status),
            _address_or_none(trainer),
            expires,
            window,
            steps,
            bytes(spec),
            _ref_or_none(log),
            _ref_or_none(adapter),
        )


@dataclass(frozen=True)
class Dispute:
    challenger: ChecksumAddress
    bond: Wei
    step: int  # the disputed step; its pre-state is record step-1's post-state
    challenged_at: int  # unix time; a committee must be drawn within voting_period of it
    vote_end: int  # 0 until the committee is drawn
    seed_block: int  # the block whose hash seeds the draw
    validators_at_challenge: int  # the draw picks among validators [0, this)
    votes_trainer_correct: int
    votes_trainer_wrong: int
    votes_data_unavailable: int
    record_hash: bytes  # leaf hash of record `step`
    prev_record_hash: bytes | None  # leaf hash of record `step - 1`; None for step 0
    committee: tuple[ChecksumAddress, ...]  # empty until drawn

    @property
    def drawn(self) -> bool:
        return self.vote_end != 0

    @classmethod
    def from_abi(cls, raw: Any) -> Dispute:
        (challenger, bond, step, challenged_at, vote_end, seed_block, snapshot, correct, wrong,
         unavailable, record, prev, committee) = raw  # fmt: skip
        return cls(
            to_checksum_address(challenger),
            Wei(bond),
            step,
            challenged_at,
            vote_end,
            seed_block,
            snapshot,
            correct,
            wrong,
            unavailable,
            bytes(record),
            None if bytes(prev) == bytes(32) else bytes(prev),
            tuple(to_checksum_address(a) for a in committee),
        )


@dataclass(frozen=True)
class StakeAccount:
    staked: Wei
    locked: Wei
    validator: bool

    @property
    def free(self) -> Wei:
        return Wei(self.staked - self.locked)

    @classmethod
    def from_abi(cls, raw: Any) -> StakeAccount:
        staked, locked, validator = raw
        return cls(Wei(staked), Wei(locked), bool(validator))


@dataclass(frozen=True)
class PeerRecord:
    account: ChecksumAddress
    inbox: SwarmRef  # the node's GSOC inbox address on Swarm
    capabilities: SwarmRef  # Swarm reference of its capabilities document
    registered_at: int
    updated_at: int
    public_key: bytes  # 64-byte uncompressed secp256k1 key

    @classmethod
    def from_abi(cls, account: ChecksumAddress, raw: Any) -> PeerRecord:
        inbox, capabilities, registered, updated, public_key = raw
        return cls(
            account,
            SwarmRef(bytes(inbox)),
            SwarmRef(bytes(capabilities)),
            registered,
            updated,
            bytes(public_key),
        )


@dataclass(frozen=True)
class Proposal:
    proposal_id: ProposalId
    root: SwarmRef
    description: SwarmRef
    base_root: SwarmRef
    proposer: ChecksumAddress
    deadline: int
    yes: int
    no: int
    executed: bool

    @classmethod
    def from_abi(cls, proposal_id: ProposalId, raw: Any) -> Proposal:
        root, description, base, proposer, deadline, yes, no, executed = raw
        return cls(
            proposal_id,
            SwarmRef(bytes(root)),
            SwarmRef(bytes(description)),
            SwarmRef(bytes(base)),
            to_checksum_address(proposer),
            deadline,
            yes,
            no,
            bool(executed),
        )


@dataclass(frozen=True)
class RootEntry:
    index: int
    root: SwarmRef
    description: SwarmRef
    proposal_id: ProposalId | None  # None for the root the DAO started with
    timestamp: int

    @classmethod
    def from_abi(cls, index: int, raw: Any) -> RootEntry:
        root, description, proposal_id, timestamp = raw
        return cls(
            index,
            SwarmRef(bytes(root)),
            SwarmRef(bytes(description)),
            None if proposal_id == _NO_PROPOSAL else ProposalId(proposal_id),
            timestamp,
        )
