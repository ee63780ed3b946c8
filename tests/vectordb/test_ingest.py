"""Ingestion into the real dev node over HTTP, the real embedder and a real index."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.chunking import Chunker
from swarm_vectordb.embedding import Embedder, resolve_model
from swarm_vectordb.index import WAL_NAME, VectorIndex
from swarm_vectordb.ingest import MANIFEST_NAME, BeeChunkStore, Ingestor
from swarm_vectordb.routing import text_reference

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@dataclass
class Rig:
    node: DevNode
    bee: BeeClient
    batch: BatchId
    embedder: Embedder
    data: Path

    def ingestor(self, index: VectorIndex) -> Ingestor:
        model_dir, _ = resolve_model("all-MiniLM-L6-v2")
        return Ingestor(
            store=BeeChunkStore(self.bee, self.batch),
            embedder=self.embedder,
            index=index,
            chunker=Chunker.for_model_dir(model_dir, max_tokens=64, overlap=8),
            manifest_path=self.data / MANIFEST_NAME,
        )

    def index(self) -> VectorIndex:
        return VectorIndex(self.data / "index", self.embedder.dim, self.embedder.model_id)


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    node = await DevNode.start("127.0.0.1", 0)
    bee = await BeeClient.create(node.url)
    embedder = await Embedder.load()
    try:
        batch = await bee.buy_stamp(10_000_000, 20)
        yield Rig(node, bee, batch, embedder, tmp_path / "data")
    finally:
        await embedder.aclose()
        await bee.aclose()
        await node.aclose()


def write_corpus(root: Path) -> None:
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "swarm.md").write_text(
        "# Swarm\n\n" + " ".join(f"Swarm stores chunk {i} by its BMT address." for i in range(80))
    )
    (root / "notes" / "eth.txt").write_text(
        " ".join(f"Ethereum block {i} carries transactions and a state root." for i in range(80))
    )
    (root / "notes" / "copy.txt").write_text((root / "notes" / "eth.txt").read_text())


async def test_ingest_is_idempotent_and_every_chunk_is_on_swarm(rig: Rig, tmp_path: Path) -> None:
    write_corpus(tmp_path / "docs")
    progress: list[tuple[str, int, int]] = []
    rig.data.mkdir(parents=True)
    with rig.index() as index:
        report = await rig.ingestor(index).ingest(
            [tmp_path / "docs"], on_progress=lambda *a: progress.append(a)
        )
        assert report.files_seen == 3
        assert report.chunks_added == len(index) > 5
        assert report.chunks_duplicate >= report.chunks_added // 3  # copy.txt is all duplicates
        assert progress[-1][1] == progress[-1][2]
        for ref in [h.chunk.ref for h in index.search(index.all_vectors()[1][0], len(index))]:
            text = index.get(ref).text  # type: ignore[union-attr]
            assert (await rig.bee.download_bytes(ref)).decode() == text
            assert text_reference(text) == ref
        hit = index.search((await rig.embedder.embed(["What does Swarm store?"])).vectors[0], 1)
        assert "Swarm" in hit[0].chunk.text
        wal_size = (rig.data / "index" / WAL_NAME).stat().st_size

        again = await rig.ingestor(index).ingest([tmp_path / "docs"])
        assert again.files_skipped_unchanged == 3
        assert again.chunks_added == again.chunks_removed == 0
        assert (rig.data / "index" / WAL_NAME).stat().st_size == wal_size

        # a changed file: new chunks in, its vanished chunks out, shared ones kept
        (tmp_path / "docs" / "notes" / "swarm.md").write_text("# Swarm\n\nNow a short note.")
        before = len(index)
        changed = await rig.ingestor(index).ingest([tmp_path / "docs"])
        assert changed.files_skipped_unchanged == 2
        assert changed.chunks_added == 1
        assert changed.chunks_removed > 0
        assert len(index) == before + 1 - changed.chunks_removed


async def test_bad_files_are_reported_not_fatal(rig: Rig, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("A perfectly good sentence about feeds.")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    rig.data.mkdir(parents=True)
    with rig.index() as index:
        report = await rig.ingestor(index).ingest([docs])
    assert report.chunks_added == 1
    assert list(report.files_failed) == [str((docs / "bad.pdf").resolve())]


async def test_kill_9_mid_ingest_then_restart(rig: Rig, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"doc{i:02}.txt").write_text(
            " ".join(f"Document {i} sentence {j} about topic {i * j % 17}." for j in range(60))
        )
    rig.data.mkdir(parents=True)
    script = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from swarm_vectordb.bee.client import BeeClient
        from swarm_vectordb.bee.records import BatchId
        from swarm_vectordb.chunking import Chunker
        from swarm_vectordb.embedding import Embedder, resolve_model
        from swarm_vectordb.index import VectorIndex
        from swarm_vectordb.ingest import BeeChunkStore, Ingestor
        async def main():
            bee = await BeeClient.create({rig.node.url!r})
            embedder = await Embedder.load()
            data = Path({str(rig.data)!r})
            index = VectorIndex(data / "index", embedder.dim, embedder.model_id)
            ingestor = Ingestor(
                store=BeeChunkStore(bee, BatchId(bytes.fromhex({rig.batch.hex()!r}))),
                embedder=embedder, index=index,
                chunker=Chunker.for_model_dir(
                    resolve_model("all-MiniLM-L6-v2")[0], max_tokens=64, overlap=8),
                manifest_path=data / "sources.json")
            def progress(source, done, total):
                print(source, done, flush=True)
            await ingestor.ingest([Path({str(docs)!r})], on_progress=progress)
        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    lines = 0
    while lines < 100:  # well into ingestion: several files and embedding batches in
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line, "the ingesting process ended early"
        lines += 1
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    with rig.index() as index:
        assert len(index) > 0
        chunks, _ = index.all_vectors()
        for chunk in chunks:
            assert (await rig.bee.download_bytes(chunk.ref)).decode() == chunk.text
        # and ingestion resumes: the rest goes in, nothing already there is added again
        report = await rig.ingestor(index).ingest([docs])
        assert report.files_seen == 40
        assert report.chunks_added > 0
        total = len(index)
        assert total == len(chunks) + report.chunks_added
    with rig.index() as reopened:
        assert len(reopened) == total
