"""`ChainClient`: one connection, one signing account, every contract.

    async with await ChainClient.connect(url, account, deployment) as chain:
        job_id, _ = await chain.market.post_job(spec, reward)

`connect` accepts an RPC URL (HTTP, a real node or anvil) or an already-built async
provider (the embedded py-evm chain). `aclose()` is idempotent and closes the HTTP
session.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider

from chain.datasets import DatasetDAOClient, DatasetFactoryClient
from chain.deploy import Deployment
from chain.errors import DeploymentError
from chain.market import MarketClient
from chain.registry import RegistryClient
from chain.transactor import Transactor

log = logging.getLogger(__name__)


def make_web3(endpoint: str | AsyncBaseProvider, *, timeout_s: float) -> AsyncWeb3[Any]:
    """AsyncWeb3 over an HTTP URL or a given async provider."""
    if isinstance(endpoint, str):
        provider: AsyncBaseProvider = AsyncHTTPProvider(
            endpoint, request_kwargs={"timeout": timeout_s}
        )
    else:
        provider = endpoint
    return AsyncWeb3(provider)


async def close_web3(w3: AsyncWeb3[Any]) -> None:
    provider = w3.provider
    if isinstance(provider, AsyncHTTPProvider):
        await provider.disconnect()


class ChainClient:
    def __init__(self, transactor: Transactor, deployment: Deployment) -> None:
        self.tx = transactor
        self.deployment = deployment
        self.registry = RegistryClient(transactor, deployment.registry)
        self.datasets = DatasetFactoryClient(transactor, deployment.dataset_factory)
        self.market = MarketClient(transactor, deployment.market)
        self._closed = False

    @classmethod
    async def connect(
        cls,
        endpoint: str | AsyncBaseProvider,
        account: LocalAccount,
        deployment: Deployment,
        *,
        timeout_s: float = 30.0,
    ) -> ChainClient:
        w3 = make_web3(endpoint, timeout_s=timeout_s)
        try:
            transactor = await Transactor.create(w3, account, timeout_s=timeout_s)
            if transactor.chain_id != deployment.chain_id:
                raise DeploymentError(
                    f"deployment is for chain {deployment.chain_id}, "
                    f"the RPC serves chain {transactor.chain_id}"
                )
        except BaseException:
            await close_web3(w3)
            raise
        return cls(transactor, deployment)

    def dao(self, address: str) -> DatasetDAOClient:
        return DatasetDAOClient(self.tx, address)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await close_web3(self.tx.w3)

    async def __aenter__(self) -> ChainClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
