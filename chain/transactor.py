"""Signing, sending and reading through one account: the boundary to web3.

`Transactor` owns the node key (an eth-account `LocalAccount`), its nonce and the
AsyncWeb3 connection. Every transaction is estimated first (a revert there surfaces
as the contract's custom error before anything is signed), signed locally, sent raw
and awaited to its receipt. Every network await runs under `timeout_s`. web3's
exceptions are translated here into `chain.errors`, decoding revert data with
`chain.reverts`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import ClientError
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract.async_contract import AsyncContractConstructor, AsyncContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt, Wei

from chain.errors import (
    ChainError,
    ChainUnavailableError,
    TransactionError,
    TransactionFailedError,
)
from chain.reverts import decode_revert

log = logging.getLogger(__name__)
T = TypeVar("T")

GAS_MARGIN = 1.2  # estimates are exact on a quiet chain; leave room for state drift


def _data_of(exc: BaseException) -> bytes | None:
    data: Any = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if data is None and exc.args:  # eth-tester: TransactionFailed(bytes | Exception(bytes))
        first = exc.args[0]
        if isinstance(first, Exception) and first.args:
            first = first.args[0]
        if isinstance(first, str) and first[:2] in ("b'", 'b"'):
            # eth-tester's eth_call path stringifies py-evm's Revert(bytes): str(Revert(b".."))
            with contextlib.suppress(ValueError, SyntaxError):
                first = ast.literal_eval(first)
        data = first if isinstance(first, bytes) else None
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return data if isinstance(data, bytes) else None


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 (or eth-tester) exception, if any.

    web3's eth-tester provider re-raises eth-tester's `TransactionFailed` with the
    data flattened into a string, so the chain of causes is searched too.
    """
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        data = _data_of(seen)
        if data is not None:
            return data
        seen = seen.__cause__ or seen.__context__
    return None


def endpoint_of(w3: AsyncWeb3[Any]) -> str:
    """The JSON-RPC URL `w3` talks to, for error messages ("" when it has none)."""
    return str(getattr(w3.provider, "endpoint_uri", "") or "")


def translate(exc: Exception, *, tx_hash: str | None = None, endpoint: str = "") -> ChainError:
    """A ChainError for an exception raised by web3 or the transport.

    `endpoint`, the JSON-RPC URL, is named when the chain cannot be reached.
    """
    if isinstance(exc, ChainError):
        return exc
    data = revert_data(exc)
    if data is not None:
        return decode_revert(data, tx_hash=tx_hash)
    if isinstance(exc, ContractLogicError | Web3RPCError):
        return TransactionError(str(exc), tx_hash=tx_hash)
    if isinstance(exc, TimeoutError | TimeExhausted | ClientError | ConnectionError | OSError):
        where = f" at {endpoint}" if endpoint else ""
        detail = str(exc) or type(exc).__name__
        return ChainUnavailableError(f"cannot reach the chain{where}: {detail}")
    return TransactionError(f"{type(exc).__name__}: {exc}", tx_hash=tx_hash)


class Transactor:
    """Sends transactions from one account; one in flight at a time, nonces in order."""

    def __init__(
        self, w3: AsyncWeb3[Any], account: LocalAccount, *, chain_id: int, timeout_s: float
    ) -> None:
        self.w3 = w3
        self.account = account
        self.chain_id = chain_id
        self.timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._nonce: int | None = None

    @classmethod
    async def create(
        cls, w3: AsyncWeb3[Any], account: LocalAccount, *, timeout_s: float = 30.0
    ) -> Transactor:
        async with asyncio.timeout(timeout_s):
            try:
                chain_id = await w3.eth.chain_id
            except Exception as exc:
                raise translate(exc, endpoint=endpoint_of(w3)) from exc
        return cls(w3, account, chain_id=chain_id, timeout_s=timeout_s)

    @property
    def address(self) -> ChecksumAddress:
        return ChecksumAddress(self.account.address)

    def with_account(self, account: LocalAccount) -> Transactor:
        """Another sender on the same connection (tests, dev tooling)."""
        return Transactor(self.w3, account, chain_id=self.chain_id, timeout_s=self.timeout_s)

    async def rpc(self, awaitable: Awaitable[T]) -> T:
        """Await one JSON-RPC round trip under the timeout, translating errors."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await awaitable
        except Exception as exc:
            raise translate(exc, endpoint=endpoint_of(self.w3)) from exc

    async def call(self, fn: AsyncContractFunction) -> Any:
        """Run a view function as this account."""
        return await self.rpc(fn.call({"from": self.address}))

    async def balance(self, address: str) -> Wei:
        return await self.rpc(self.w3.eth.get_balance(self.w3.to_checksum_address(address)))

    async def transact(
        self, fn: AsyncContractFunction | AsyncContractConstructor, *, value: int = 0
    ) -> TxReceipt:
        """Estimate, sign, send and await one transaction; raise on revert."""
        async with self._lock:
            params: TxParams = {"from": self.address, "value": Wei(value)}
            gas = await self.rpc(fn.estimate_gas(params))
            if self._nonce is None:
                self._nonce = await self.rpc(
                    self.w3.eth.get_transaction_count(self.address, "pending")
                )
            params["gas"] = int(gas * GAS_MARGIN)
            params["nonce"] = Nonce(self._nonce)
            params["chainId"] = self.chain_id
            tx = await self.rpc(fn.build_transaction(params))
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = await self.rpc(self.w3.eth.send_raw_transaction(signed.raw_transaction))
            except ChainError:
                self._nonce = None  # resynchronise from the node next time
                raise
            self._nonce += 1
        receipt = await self.wait(tx_hash)
        if receipt["status"] != 1:
            raise await self._failure(tx, receipt)
        log.debug("tx %s mined, gas %d", tx_hash.hex(), receipt["gasUsed"])
        return receipt

    async def wait(self, tx_hash: HexBytes) -> TxReceipt:
        try:
            return await self.rpc(
                self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self.timeout_s, poll_latency=0.05
                )
            )
        except TimeExhausted as exc:  # pragma: no cover - translated by rpc()
            raise ChainUnavailableError(f"no receipt for {tx_hash.hex()}") from exc

    async def _failure(self, tx: TxParams, receipt: TxReceipt) -> ChainError:
        """Replay a failed transaction as a call to recover its revert reason."""
        tx_hash = receipt["transactionHash"].hex()
        replay: TxParams = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value")}  # type: ignore[assignment]
        replay["from"] = self.address
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.w3.eth.call(replay, block_identifier=receipt["blockNumber"] - 1)
        except TimeoutError:
            pass
        except Exception as exc:  # the replay reverting is the point: decode it
            return translate(exc, tx_hash=tx_hash)
        return TransactionFailedError("transaction failed", tx_hash=tx_hash)
