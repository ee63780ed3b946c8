"""Polling contract events once they are `confirmations` blocks deep.

    poller = EventPoller(market.tx, market.contract, "JobPosted", from_block=start,
                         confirmations=2)
    for event in await poller.poll():      # typed records (chain.event_records), once each
        ...
    async for event in poller.watch():     # forever, polling every `interval_s`
        ...

A block range is only read once it has enough confirmations, and the cursor moves
past it only after the read succeeded, so every event is delivered exactly once and
in chain order (block, then log index). A range of at most `max_range` blocks is
read per request, which bounds each reply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from web3.contract import AsyncContract

from chain.event_records import ChainEvent, decode_event
from chain.transactor import Transactor

log = logging.getLogger(__name__)


class EventPoller:
    def __init__(
        self,
        transactor: Transactor,
        contract: AsyncContract,
        event_name: str,
        *,
        from_block: int = 0,
        confirmations: int = 1,
        max_range: int = 2_000,
        argument_filters: dict[str, Any] | None = None,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations counts the block holding the event: at least 1")
        self.tx = transactor
        self.event = contract.events[event_name]()
        self.next_block = from_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.argument_filters = argument_filters

    async def poll(self) -> list[ChainEvent]:
        """Events in blocks not read before that now have enough confirmations."""
        head = await self.tx.rpc(self.tx.w3.eth.block_number)
        last_final = head - self.confirmations + 1
        found: list[ChainEvent] = []
        while self.next_block <= last_final:
            to_block = min(last_final, self.next_block + self.max_range - 1)
            logs = await self.tx.rpc(
                self.event.get_logs(
                    from_block=self.next_block,
                    to_block=to_block,
                    argument_filters=self.argument_filters,
                )
            )
            ordered = sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"]))
            found.extend(decode_event(log) for log in ordered)
            self.next_block = to_block + 1
        return found

    async def watch(self, *, interval_s: float = 1.0) -> AsyncIterator[ChainEvent]:
        """Yield events as they become final; stops only when cancelled."""
        while True:
            for event in await self.poll():
                yield event
            await asyncio.sleep(interval_s)
