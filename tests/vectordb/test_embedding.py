"""The embedder (its default, numpy runtime) against raw sentence-transformers, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from swarm_vectordb.embedding import BUNDLED_MODEL_ID, Embedder, resolve_model
from swarm_vectordb.errors import EmbedderError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TEXTS = [
    "Swarm stores data in 4096-byte chunks addressed by their hash.",
    "Content-addressed storage names each chunk by the hash of its bytes.",
    "My cat likes to sleep in the sun all afternoon.",
]


async def test_matches_raw_sentence_transformers_and_ranks_sensibly() -> None:
    from sentence_transformers import SentenceTransformer

    embedder = await Embedder.load()
    try:
        got = await embedder.embed(TEXTS)
        empty = await embedder.embed([])
    finally:
        await embedder.aclose()
    assert embedder.runtime == "numpy"  # the default for the bundled model: no torch
    assert got.model_id == BUNDLED_MODEL_ID
    assert got.vectors.shape == (3, 384)
    assert got.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-5)
    assert empty.vectors.shape == (0, 384)

    path, _ = resolve_model("all-MiniLM-L6-v2")
    raw = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    oracle = raw.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(got.vectors, oracle, atol=1e-5)
    sims = got.vectors @ got.vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the two Swarm sentences are closest


async def test_unknown_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="never downloaded"):
        await Embedder.load("sentence-transformers/some-other-model")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(EmbedderError, match="could not load"):
        await Embedder.load(str(tmp_path))
