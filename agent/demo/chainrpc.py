"""The few JSON-RPC calls the demo makes to its dev chain itself.

The nodes talk to the chain through their own `noosphere` commands; the demo only
reads balances (for the summary) and moves the dev chain's clock past a challenge
window (`evm_increaseTime` + `evm_mine`, which anvil implements), as a test would.
"""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp

from agent.demo.errors import StepFailed

__all__ = ["DevChainRpc"]

RPC_TIMEOUT_S = 20.0


class DevChainRpc:
    """JSON-RPC to one dev chain; `async with` closes the HTTP session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=RPC_TIMEOUT_S))

    async def __aenter__(self) -> DevChainRpc:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._session.close()

    async def call(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            async with self._session.post(self.url, json=body) as response:
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise StepFailed(f"dev chain {self.url}: {method} failed: {exc!r}") from exc
        if not isinstance(reply, dict) or "error" in reply:
            error = reply.get("error") if isinstance(reply, dict) else reply
            raise StepFailed(f"dev chain {self.url}: {method}: {error}")
        return reply.get("result")

    async def balance(self, address: str) -> int:
        return int(await self.call("eth_getBalance", address, "latest"), 16)

    async def advance_time(self, seconds: int) -> None:
        """Move the chain's clock `seconds` ahead and mine a block at the new time."""
        await self.call("evm_increaseTime", seconds)
        await self.call("evm_mine")
