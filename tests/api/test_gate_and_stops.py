"""The model gate's bounded line and the stop-sequence scanner, without a model."""

from __future__ import annotations

import asyncio
import random

import pytest

from agent.api.chat_request import StopScanner
from agent.api.errors import HttpError
from agent.api.gate import ModelGate


@pytest.mark.asyncio
async def test_gate_serves_one_at_a_time_in_order_and_turns_away_past_the_line() -> None:
    gate = ModelGate(max_waiting=2, retry_after_s=5)
    order: list[int] = []
    release = asyncio.Event()

    async def use(i: int) -> None:
        async with gate.hold():
            order.append(i)
            await release.wait()

    first = asyncio.create_task(use(0))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(use(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    assert gate.busy
    assert gate.waiting == 2
    with pytest.raises(HttpError) as caught:
        async with gate.hold():
            pass
    assert caught.value.status == 429
    assert caught.value.headers == {"Retry-After": "5"}
    assert gate.turned_away == 1
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == [0, 1, 2]
    assert not gate.busy
    assert gate.waiting == 0


@pytest.mark.asyncio
async def test_a_cancelled_waiter_leaves_the_line() -> None:
    gate = ModelGate(max_waiting=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.hold():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert gate.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.waiting == 0
    release.set()
    await holder
    async with gate.hold():  # the lock was not left held by the cancelled waiter
        assert gate.busy


def scan(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    scanner = StopScanner(stops)
    out = []
    for piece in pieces:
        out.append(scanner.feed(piece))
        if scanner.stopped:
            return "".join(out), True
    return "".join(out) + scanner.flush(), False


def test_stop_scanner_agrees_with_cutting_the_whole_text_however_it_is_split() -> None:
    rng = random.Random(7)
    alphabet = "ab\n."
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        stops = tuple(
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 4)))
            for _ in range(rng.randrange(0, 3))
        )
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randrange(0, 6))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        positions = [text.find(s) for s in stops if s in text]
        expected = (text[: min(positions)], True) if positions else (text, False)
        assert scan(stops, pieces) == expected, (text, stops, pieces)
