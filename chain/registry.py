"""Typed client for `AgentRegistry`: the on-chain directory of peer records."""

from __future__ import annotations

from eth_typing import ChecksumAddress
from web3.types import TxReceipt

from chain.artifacts import contract_at
from chain.records import PeerRecord, SwarmRef
from chain.transactor import Transactor

MAX_PAGE = 500


class RegistryClient:
    def __init__(self, transactor: Transactor, address: str) -> None:
        self.tx = transactor
        self.contract = contract_at(transactor.w3, "AgentRegistry", address)
        self.address = ChecksumAddress(self.contract.address)

    async def register(
        self, inbox: SwarmRef, public_key: bytes, capabilities: SwarmRef
    ) -> TxReceipt:
        """Publish or update this account's record; `public_key` is the 64-byte key."""
        fn = self.contract.functions.register(inbox, public_key, capabilities)
        return await self.tx.transact(fn)

    async def is_registered(self, address: str) -> bool:
        fn = self.contract.functions.isRegistered(self.tx.w3.to_checksum_address(address))
        return bool(await self.tx.call(fn))

    async def peer(self, address: str) -> PeerRecord:
        account = self.tx.w3.to_checksum_address(address)
        raw = await self.tx.call(self.contract.functions.peerOf(account))
        return PeerRecord.from_abi(account, raw)

    async def count(self) -> int:
        count: int = await self.tx.call(self.contract.functions.peerCount())
        return count

    async def accounts(self, offset: int = 0, limit: int = 100) -> list[ChecksumAddress]:
        limit = max(0, min(limit, MAX_PAGE))
        page = await self.tx.call(self.contract.functions.peers(offset, limit))
        return [ChecksumAddress(a) for a in page]

    async def peers(self, offset: int = 0, limit: int = 100) -> list[PeerRecord]:
        return [await self.peer(a) for a in await self.accounts(offset, limit)]
