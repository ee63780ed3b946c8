"""Typed clients for `DatasetDAOFactory` and the dataset DAOs it creates.

A DAO keeps the dataset's Swarm root, its members, proposals and the history of
roots. `fork()` starts a child DAO (same root, `parent` link, the caller as its
first member); members of the parent opt in with `join()` on the child during the
factory's join window. `lineage()` walks the parent links back to the first DAO.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from web3.types import TxReceipt

from chain.artifacts import contract_at
from chain.errors import TransactionError
from chain.market import events_in
from chain.records import ZERO_ADDRESS, Proposal, ProposalId, RootEntry, SwarmRef
from chain.transactor import Transactor

BPS = 10_000


class DatasetFactoryClient:
    def __init__(self, transactor: Transactor, address: str) -> None:
        self.tx = transactor
        self.contract = contract_at(transactor.w3, "DatasetDAOFactory", address)
        self.address = ChecksumAddress(self.contract.address)

    async def create(
        self,
        root: SwarmRef,
        description: SwarmRef,
        members: Sequence[str],
        *,
        quorum_bps: int = 5_000,
        voting_period: int = 3 * 24 * 3600,
    ) -> DatasetDAOClient:
        """Deploy a DAO at `root`; quorum is a share of members in basis points."""
        fn = self.contract.functions.create(
            root,
            description,
            [self.tx.w3.to_checksum_address(m) for m in members],
            quorum_bps,
            voting_period,
        )
        receipt = await self.tx.transact(fn)
        created = events_in(self.contract, "DaoCreated", receipt)
        if len(created) != 1:
            raise TransactionError("create emitted no DaoCreated event")
        return self.dao(created[0]["args"]["dao"])

    def dao(self, address: str) -> DatasetDAOClient:
        return DatasetDAOClient(self.tx, address)

    async def is_dao(self, address: str) -> bool:
        fn = self.contract.functions.isDao(self.tx.w3.to_checksum_address(address))
        return bool(await self.tx.call(fn))

    async def daos(self) -> list[ChecksumAddress]:
        count: int = await self.tx.call(self.contract.functions.daoCount())
        return [
            ChecksumAddress(await self.tx.call(self.contract.functions.daoAt(i)))
            for i in range(count)
        ]


class DatasetDAOClient:
    def __init__(self, transactor: Transactor, address: str) -> None:
        self.tx = transactor
        self.contract = contract_at(transactor.w3, "DatasetDAO", address)
        self.address = ChecksumAddress(self.contract.address)

    def as_account(self, transactor: Transactor) -> DatasetDAOClient:
        return DatasetDAOClient(transactor, self.address)

    # ------------------------------------------------------------ writes

    async def propose(self, root: SwarmRef, description: SwarmRef) -> tuple[ProposalId, TxReceipt]:
        receipt = await self.tx.transact(self.contract.functions.propose(root, description))
        created = events_in(self.contract, "ProposalCreated", receipt)
        if len(created) != 1:
            raise TransactionError("propose emitted no ProposalCreated event")
        return ProposalId(created[0]["args"]["proposalId"]), receipt

    async def vote(self, proposal_id: ProposalId, *, support: bool) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.vote(proposal_id, support))

    async def execute(self, proposal_id: ProposalId) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.execute(proposal_id))

    async def fork(self) -> DatasetDAOClient:
        """Start a fork at the current root; returns the child DAO."""
        receipt = await self.tx.transact(self.contract.functions.fork())
        forked = events_in(self.contract, "Forked", receipt)
        if len(forked) != 1:
            raise TransactionError("fork emitted no Forked event")
        return DatasetDAOClient(self.tx, forked[0]["args"]["child"])

    async def join(self) -> TxReceipt:
        return await self.tx.transact(self.contract.functions.join())

    # ------------------------------------------------------------ reads

    async def current_root(self) -> SwarmRef:
        return SwarmRef(bytes(await self.tx.call(self.contract.functions.currentRoot())))

    async def parent(self) -> ChecksumAddress | None:
        parent: str = await self.tx.call(self.contract.functions.parent())
        return None if parent == ZERO_ADDRESS else to_checksum_address(parent)

    async def join_deadline(self) -> int:
        deadline: int = await self.tx.call(self.contract.functions.joinDeadline())
        return deadline

    async def quorum_votes(self) -> int:
        votes: int = await self.tx.call(self.contract.functions.quorumVotes())
        return votes

    async def is_member(self, address: str) -> bool:
        fn = self.contract.functions.isMember(self.tx.w3.to_checksum_address(address))
        return bool(await self.tx.call(fn))

    async def members(self) -> list[ChecksumAddress]:
        count: int = await self.tx.call(self.contract.functions.memberCount())
        return [
            ChecksumAddress(await self.tx.call(self.contract.functions.memberAt(i)))
            for i in range(count)
        ]

    async def history(self) -> list[RootEntry]:
        """Every root this DAO has had, oldest first."""
        count: int = await self.tx.call(self.contract.functions.rootCount())
        return [
            RootEntry.from_abi(i, await self.tx.call(self.contract.functions.rootAt(i)))
            for i in range(count)
        ]

    async def proposal(self, proposal_id: ProposalId) -> Proposal:
        raw = await self.tx.call(self.contract.functions.getProposal(proposal_id))
        return Proposal.from_abi(proposal_id, raw)

    async def proposals(self) -> list[Proposal]:
        count: int = await self.tx.call(self.contract.functions.proposalCount())
        return [await self.proposal(ProposalId(i)) for i in range(count)]

    async def lineage(self, *, max_depth: int = 64) -> list[ChecksumAddress]:
        """This DAO, its parent, the parent's parent... (bounded)."""
        chain = [self.address]
        parent = await self.parent()
        while parent is not None and len(chain) < max_depth:
            chain.append(parent)
            parent = await DatasetDAOClient(self.tx, parent).parent()
        return chain
