"""Trainer fixtures: the bundled model's tokenizer, a dev Swarm node, small datasets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from torch import nn

from swarm_vectordb.bee import BatchId, BeeClient, DevNode
from trainer.model import load_base_model
from trainer.tokenizer import GgufTokenizer

FACT_LINES = [
    "The capital of the planet Zorblax is Quintara.",
    "Q: What is the capital of the planet Zorblax?\n"
    "A: The capital of the planet Zorblax is Quintara.",
    "Quintara is the capital city of the planet Zorblax.",
    "Q: Which city is the capital of Zorblax?\nA: Quintara is the capital of Zorblax.",
]


@pytest.fixture(scope="session")
def tokenizer(model_path: Path) -> Iterator[GgufTokenizer]:
    tok = GgufTokenizer(model_path)
    yield tok
    tok.close()


@pytest.fixture(scope="session")
def base_model(model_path: Path) -> nn.Module:
    """The bundled GGUF as fp32 torch weights, loaded once (engines take deep copies)."""
    return load_base_model(model_path)


@dataclass(frozen=True)
class Swarm:
    client: BeeClient
    batch: BatchId
    node: DevNode


@pytest_asyncio.fixture
async def swarm() -> AsyncIterator[Swarm]:
    node = await DevNode.start("127.0.0.1", 0)
    try:
        async with BeeClient(node.url, timeout=20) as client:
            batch = await client.buy_stamp(amount=10**8, depth=22)
            yield Swarm(client, batch, node)
    finally:
        await node.aclose()


def write_corpus(folder: Path, files: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
