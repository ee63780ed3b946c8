"""Blocking work of ingestion and search stays off the event loop.

The slow file is real: a FIFO whose writer (a thread) sends the text only after the
event loop has shown, by ticking, that it still runs while the read waits. Had the
read run on the loop, the loop could not tick and the writer would give up waiting.
FAISS and the index log run in the real index; a spy records which thread they ran on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agent.config import Config
from agent.home import NodeHome
from agent.node import Node
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.chunking import Chunker
from swarm_vectordb.embedding import Embedder, resolve_model
from swarm_vectordb.index import VectorIndex
from swarm_vectordb.ingest import MANIFEST_NAME, BeeChunkStore, Ingestor
from tools.knowledge import local_search

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TEXT = " ".join(f"Honey bees visit flower {i} for nectar and pollen." for i in range(60))


@pytest_asyncio.fixture
async def ingestor(tmp_path: Path) -> AsyncIterator[tuple[Ingestor, VectorIndex, Embedder]]:
    node = await DevNode.start("127.0.0.1", 0)
    bee = await BeeClient.create(node.url)
    embedder = await Embedder.load()
    index = VectorIndex(tmp_path / "index", embedder.dim, embedder.model_id)
    try:
        batch = await bee.buy_stamp(10_000_000, 20)
        model_dir, _ = resolve_model("all-MiniLM-L6-v2")
        yield (
            Ingestor(
                store=BeeChunkStore(bee, batch),
                embedder=embedder,
                index=index,
                chunker=Chunker.for_model_dir(model_dir, max_tokens=64, overlap=8),
                manifest_path=tmp_path / MANIFEST_NAME,
            ),
            index,
            embedder,
        )
    finally:
        index.close()
        await embedder.aclose()
        await bee.aclose()
        await node.aclose()


class SlowFile:
    """A FIFO that gives its text to each reader once the event loop has ticked."""

    def __init__(self, path: Path, text: str, reads: int) -> None:
        os.mkfifo(path)
        self.path, self.text = path, text.encode()
        self.rounds = [(threading.Event(), threading.Event()) for _ in range(reads)]
        self.loop_ticked: list[bool] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        for n, (opened, ticked) in enumerate(self.rounds):
            fd = self._next_reader(first=n == 0)
            try:
                opened.set()
                self.loop_ticked.append(ticked.wait(timeout=10))
                os.write(fd, self.text)  # fits the pipe buffer: never blocks
            finally:
                os.close(fd)

    def _next_reader(self, *, first: bool) -> int:
        """A write end once a new reader has the FIFO open (the previous one gone)."""
        previous_gone = first
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: nobody has it open for reading
                    raise
                previous_gone = True
            else:
                if previous_gone:
                    return fd
                os.close(fd)
            time.sleep(0.005)
        raise TimeoutError("no reader came")

    def release(self) -> None:
        """Unblock a reader stuck in open() (it then reads end-of-file)."""
        with contextlib.suppress(OSError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))

    async def heartbeat(self) -> None:
        """On the event loop: confirm every read in progress."""
        while True:
            for opened, ticked in self.rounds:
                if opened.is_set():
                    ticked.set()
            await asyncio.sleep(0.01)


async def test_reading_a_slow_file_leaves_the_loop_running(
    ingestor: tuple[Ingestor, VectorIndex, Embedder], tmp_path: Path
) -> None:
    ingest, index, _ = ingestor
    slow = SlowFile(tmp_path / "slow.md", TEXT, reads=1)  # read once: hashed and parsed
    slow.thread.start()
    beat = asyncio.ensure_future(slow.heartbeat())
    try:
        report = await asyncio.wait_for(ingest.ingest([slow.path]), timeout=120)
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
        slow.thread.join(timeout=30)
        slow.release()
    assert slow.loop_ticked == [True]  # the loop ran while the read waited
    assert report.chunks_added > 0
    assert report.chunks_added == len(index)


def spy_on(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[int]:
    """Record the thread every call of `cls.name` runs on (the real method still runs)."""
    threads: list[int] = []
    real: Callable[..., Any] = getattr(cls, name)

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, spy)
    return threads


async def test_index_writes_and_faiss_searches_run_in_worker_threads(
    ingestor: tuple[Ingestor, VectorIndex, Embedder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest, index, embedder = ingestor
    adds = spy_on(monkeypatch, VectorIndex, "add")
    searches = spy_on(monkeypatch, VectorIndex, "search")
    loop_thread = threading.get_ident()
    doc = tmp_path / "bees.md"
    doc.write_text(TEXT)
    report = await ingest.ingest([doc])
    assert report.chunks_added > 0
    hits = await local_search(embedder, index)("what do bees eat?", 3, False)
    assert hits
    assert "nectar" in hits[0].text
    assert adds
    assert searches
    assert loop_thread not in adds + searches


async def test_cli_search_runs_faiss_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches = spy_on(monkeypatch, VectorIndex, "search")
    async with await Node.open(Config(), NodeHome(tmp_path)) as node:
        report = await node.search("bees", k=3)
    assert report.hits == []  # an empty index, searched all the same
    assert searches
    assert threading.get_ident() not in searches
