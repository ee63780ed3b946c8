"""What the HTTP API needs from the node: one `typing.Protocol`, nothing else.

The node (`agent.node.Node`) implements it; the tests use a small backend built
from the same real parts. The server never opens a model, an index or Swarm
itself: everything goes through these calls, so one process owns the wiring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from agent.assistant import TurnReport
    from agent.llm import ChatMessage, LLMCore
    from agent.loop import TurnEvent
    from agent.runtime.search import SearchReport
    from swarm_vectordb.asks import PeerReply


class ApiBackend(Protocol):
    """The node as the API sees it."""

    @property
    def model_name(self) -> str:
        """The base model's id, as `/v1/models` lists it and requests name it."""
        ...

    @property
    def embedder_id(self) -> str:
        """The embedding model's id, as `/v1/embeddings` reports it."""
        ...

    def adapter_names(self) -> list[str]:
        """Loaded LoRA adapters a request may select by `model`."""
        ...

    def adapter_scale(self, name: str) -> float:
        """The scale adapter `name` is applied with when a request selects it."""
        ...

    def index_size(self) -> int:
        """Chunks in the local knowledge index (for `/api/status`)."""
        ...

    async def core(self) -> LLMCore:
        """The loaded language model."""
        ...

    async def embed(self, texts: list[str]) -> tuple[npt.NDArray[np.float32], int]:
        """Unit vectors (n, dim) for `texts` and the tokens the embedder read."""
        ...

    async def search(
        self,
        text: str,
        *,
        k: int,
        network: bool,
        fan_out: int | None = None,
        deadline_s: float | None = None,
    ) -> SearchReport:
        """Local search, and with `network` the peers' too."""
        ...

    async def ingest_paths(self, paths: list[Path]) -> dict[str, Any]:
        """Ingest files or directories on this machine; a JSON-able report."""
        ...

    async def ingest_text(self, name: str, text: str) -> dict[str, Any]:
        """Ingest one document given as text under `name`; a JSON-able report."""
        ...

    async def ask(
        self,
        question: str,
        *,
        history: Sequence[ChatMessage] = (),
        on_event: Callable[[TurnEvent], None] | None,
        network: bool,
        adapters: Mapping[str, float] | None,
    ) -> TurnReport:
        """One assistant turn (routing, retrieval, tools) for the node's owner."""
        ...

    async def ask_peer(self, address: bytes, question: str) -> PeerReply:
        """Another node's signed reply to `question`, over Swarm (its text is untrusted)."""
        ...
