"""One `ContractRevert` subclass per Solidity custom error, and the decoder.

`decode_revert(data)` reads the 4-byte selector of revert data, finds the class whose
`solidity_signature` hashes to it, ABI-decodes the arguments and returns the exception
(not raised). `Error(string)` and `Panic(uint256)` become plain `TransactionError`s.
A test checks that every `error` in the compiled ABIs has exactly one class here.
"""

from __future__ import annotations

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from chain.errors import ContractRevert, TransactionError


class AmountTooLarge(ContractRevert):
    """The amount does not fit the field that would hold it."""

    solidity_signature = "AmountTooLarge(uint256,uint256)"
    arg_names = ("amount", "maximum")


class AlreadyMember(ContractRevert):
    """The account is already a member of the DAO."""

    solidity_signature = "AlreadyMember(address)"
    arg_names = ("account",)


class AlreadyValidator(ContractRevert):
    """The account is already a registered validator."""

    solidity_signature = "AlreadyValidator(address)"
    arg_names = ("account",)


class AlreadyVoted(ContractRevert):
    """This voter already voted on this proposal or dispute."""

    solidity_signature = "AlreadyVoted(uint256,address)"
    arg_names = ("id", "voter")


class BondTooSmall(ContractRevert):
    """The challenge bond is below the minimum."""

    solidity_signature = "BondTooSmall(uint256,uint256)"
    arg_names = ("sent", "minimum")


class CannotChallengeOwnJob(ContractRevert):
    """A trainer cannot challenge its own job."""

    solidity_signature = "CannotChallengeOwnJob(uint256)"
    arg_names = ("jobId",)


class ChallengeWindowClosed(ContractRevert):
    """The challenge window of the job has ended."""

    solidity_signature = "ChallengeWindowClosed(uint256,uint256)"
    arg_names = ("jobId", "endedAt")


class ChallengeWindowOpen(ContractRevert):
    """The challenge window has not ended yet."""

    solidity_signature = "ChallengeWindowOpen(uint256,uint256)"
    arg_names = ("jobId", "endsAt")


class CommitteeAlreadyDrawn(ContractRevert):
    """The dispute's committee was drawn already."""

    solidity_signature = "CommitteeAlreadyDrawn(uint256)"
    arg_names = ("jobId",)


class CommitteeNotDrawn(ContractRevert):
    """No committee has been drawn for the dispute yet (call drawCommittee)."""

    solidity_signature = "CommitteeNotDrawn(uint256)"
    arg_names = ("jobId",)


class DatasetRootMismatch(ContractRevert):
    """The job's dataset root is not the DAO's current root."""

    solidity_signature = "DatasetRootMismatch(address,bytes32,bytes32)"
    arg_names = ("dao", "expected", "actual")


class DeadlineNotPassed(ContractRevert):
    """The job deadline has not passed yet."""

    solidity_signature = "DeadlineNotPassed(uint256,uint256)"
    arg_names = ("jobId", "deadline")


class DeadlinePassed(ContractRevert):
    """The job deadline has passed."""

    solidity_signature = "DeadlinePassed(uint256,uint256)"
    arg_names = ("jobId", "deadline")


class DrawTooEarly(ContractRevert):
    """The block whose hash seeds the committee is not mined yet."""

    solidity_signature = "DrawTooEarly(uint256,uint256)"
    arg_names = ("jobId", "drawableAtBlock")


class IndexOutOfRange(ContractRevert):
    """An enumeration index past the end."""

    solidity_signature = "IndexOutOfRange(uint256,uint256)"
    arg_names = ("index", "count")


class InsufficientFreeStake(ContractRevert):
    """Not enough unlocked stake."""

    solidity_signature = "InsufficientFreeStake(uint256,uint256)"
    arg_names = ("free", "needed")


class InvalidJobSpec(ContractRevert):
    """Zero steps or challenge window, or a deadline already past."""

    solidity_signature = "InvalidJobSpec()"
    arg_names = ()


class InvalidParams(ContractRevert):
    """Invalid market constructor parameters."""

    solidity_signature = "InvalidParams()"
    arg_names = ()


class InvalidProof(ContractRevert):
    """The Merkle proof does not lead from the record to the log root."""

    solidity_signature = "InvalidProof(uint256,uint256)"
    arg_names = ("jobId", "step")


class InvalidPublicKey(ContractRevert):
    """The public key is not 64 bytes or does not belong to the sender."""

    solidity_signature = "InvalidPublicKey()"
    arg_names = ()


class InvalidQuorum(ContractRevert):
    """Quorum must be 1..10000 basis points."""

    solidity_signature = "InvalidQuorum(uint16)"
    arg_names = ("quorumBps",)


class InvalidVerdict(ContractRevert):
    """A vote must be TrainerCorrect, TrainerWrong or DataUnavailable."""

    solidity_signature = "InvalidVerdict()"
    arg_names = ()


class InvalidVotingPeriod(ContractRevert):
    """The voting period must be positive."""

    solidity_signature = "InvalidVotingPeriod()"
    arg_names = ()


class JobAlreadyClaimed(ContractRevert):
    """The job has a trainer already."""

    solidity_signature = "JobAlreadyClaimed(uint256)"
    arg_names = ("jobId",)


class JobAlreadySettled(ContractRevert):
    """The job was already finalized, slashed, expired or cancelled."""

    solidity_signature = "JobAlreadySettled(uint256,uint8)"
    arg_names = ("jobId", "status")


class JobNotFound(ContractRevert):
    """No job with this id."""

    solidity_signature = "JobNotFound(uint256)"
    arg_names = ("jobId",)


class JoinWindowClosed(ContractRevert):
    """Not a fork, or its join window has ended."""

    solidity_signature = "JoinWindowClosed()"
    arg_names = ()


class NoEligibleValidators(ContractRevert):
    """No staked validator outside the parties can form a committee."""

    solidity_signature = "NoEligibleValidators(uint256)"
    arg_names = ("jobId",)


class NoPreviousStep(ContractRevert):
    """Step 0 has no previous record: its pre-state is the job's initial state."""

    solidity_signature = "NoPreviousStep(uint256)"
    arg_names = ("jobId",)


class NoMembers(ContractRevert):
    """A DAO needs at least one member."""

    solidity_signature = "NoMembers()"
    arg_names = ()


class NotADao(ContractRevert):
    """Only DAOs made by this factory may fork through it."""

    solidity_signature = "NotADao(address)"
    arg_names = ("caller",)


class NotCommitteeMember(ContractRevert):
    """Only members of the dispute committee may vote."""

    solidity_signature = "NotCommitteeMember(uint256,address)"
    arg_names = ("jobId", "account")


class NotMember(ContractRevert):
    """Only members may do this."""

    solidity_signature = "NotMember(address)"
    arg_names = ("account",)


class NotParentMember(ContractRevert):
    """Only members of the parent DAO may join a fork."""

    solidity_signature = "NotParentMember(address)"
    arg_names = ("account",)


class NotRegistered(ContractRevert):
    """The account has no peer record."""

    solidity_signature = "NotRegistered(address)"
    arg_names = ("account",)


class NotRequester(ContractRevert):
    """Only the requester may do this."""

    solidity_signature = "NotRequester(uint256)"
    arg_names = ("jobId",)


class NotTrainer(ContractRevert):
    """Only the trainer who claimed the job may do this."""

    solidity_signature = "NotTrainer(uint256)"
    arg_names = ("jobId",)


class NothingToWithdraw(ContractRevert):
    """The account has no pending withdrawal."""

    solidity_signature = "NothingToWithdraw(address)"
    arg_names = ("account",)


class ProposalAlreadyExecuted(ContractRevert):
    """The proposal was already executed."""

    solidity_signature = "ProposalAlreadyExecuted(uint256)"
    arg_names = ("proposalId",)


class ProposalNotFound(ContractRevert):
    """No proposal with this id."""

    solidity_signature = "ProposalNotFound(uint256)"
    arg_names = ("proposalId",)


class ProposalVotingOpen(ContractRevert):
    """The proposal passed but cannot execute before its deadline yet."""

    solidity_signature = "ProposalVotingOpen(uint256)"
    arg_names = ("proposalId",)


class QuorumNotReached(ContractRevert):
    """Too few yes votes, or not more yes than no."""

    solidity_signature = "QuorumNotReached(uint256,uint256,uint256,uint256)"
    arg_names = ("proposalId", "yes", "no", "quorum")


class Reentrancy(ContractRevert):
    """A call re-entered the market while it was already executing."""

    solidity_signature = "Reentrancy()"
    arg_names = ()


class StaleProposal(ContractRevert):
    """The DAO root changed since the proposal was made."""

    solidity_signature = "StaleProposal(uint256,bytes32,bytes32)"
    arg_names = ("proposalId", "baseRoot", "currentRoot")


class StepOutOfRange(ContractRevert):
    """The disputed step is not below the job step count."""

    solidity_signature = "StepOutOfRange(uint256,uint256)"
    arg_names = ("step", "steps")


class VotingClosed(ContractRevert):
    """The voting period (or a dispute's committee-drawing period) is over."""

    solidity_signature = "VotingClosed(uint256)"
    arg_names = ("id",)


class VotingStillOpen(ContractRevert):
    """The dispute has no majority and its voting (or drawing) period is still open."""

    solidity_signature = "VotingStillOpen(uint256,uint256)"
    arg_names = ("jobId", "endsAt")


class WrongStatus(ContractRevert):
    """The job is not in a state that allows this call."""

    solidity_signature = "WrongStatus(uint256,uint8)"
    arg_names = ("jobId", "status")


class ZeroAmount(ContractRevert):
    """The amount must be positive."""

    solidity_signature = "ZeroAmount()"
    arg_names = ()


ALL_REVERTS: tuple[type[ContractRevert], ...] = tuple(ContractRevert.__subclasses__())


def selector(signature: str) -> bytes:
    return bytes(keccak(text=signature)[:4])


_BY_SELECTOR: dict[bytes, type[ContractRevert]] = {
    selector(cls.solidity_signature): cls for cls in ALL_REVERTS
}
_ERROR_STRING = selector("Error(string)")
_PANIC = selector("Panic(uint256)")


def _arg_types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1 : -1]
    return inner.split(",") if inner else []


def decode_revert(data: bytes, *, tx_hash: str | None = None) -> TransactionError:
    """The exception that revert `data` stands for (never raises)."""
    head, body = data[:4], data[4:]
    try:
        if head == _ERROR_STRING:
            (message,) = abi_decode(["string"], body)
            return TransactionError(f"reverted: {message}", tx_hash=tx_hash)
        if head == _PANIC:
            (code,) = abi_decode(["uint256"], body)
            return TransactionError(f"panic 0x{code:02x}", tx_hash=tx_hash)
        cls = _BY_SELECTOR.get(head)
        if cls is not None:
            values = abi_decode(_arg_types(cls.solidity_signature), body)
            return cls(*values, tx_hash=tx_hash)
    except DecodingError:
        pass
    shown = "0x" + data.hex() if data else "no data"
    return TransactionError(f"reverted ({shown})", tx_hash=tx_hash)
