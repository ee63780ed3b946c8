"""The base model's own tokenizer, read from its GGUF by llama.cpp (vocabulary only).

Training and inference must agree on token ids, so the trainer tokenizes with the
same code the agent runs: llama.cpp over the GGUF's embedded vocabulary, loaded
without weights. `vocabulary_hash` names the vocabulary in dataset manifests.
"""

from __future__ import annotations

import contextlib
import io
import threading
from pathlib import Path

from swarm_vectordb.bee import keccak256
from trainer.errors import BaseModelError

__all__ = ["GgufTokenizer"]


class GgufTokenizer:
    """Text -> token ids with the GGUF's vocabulary (no BOS, special tokens as text)."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama

        if not path.is_file():
            raise BaseModelError(f"{path}: no such model file")
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                self._llm = Llama(str(path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise BaseModelError(f"{path}: llama.cpp cannot read its vocabulary ({exc})") from exc
        self._lock = threading.Lock()  # llama.cpp objects are not thread-safe
        self.path = path
        self.eos: int = int(self._llm.token_eos())
        self.n_vocab: int = int(self._llm.n_vocab())
        self._vocabulary_hash: bytes | None = None

    def close(self) -> None:
        """Free llama.cpp's vocabulary now (idempotent)."""
        with self._lock:
            self._llm.close()

    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of `text`; `special=True` parses `<|im_start|>`-style markers."""
        with self._lock:
            return list(self._llm.tokenize(text.encode(), add_bos=False, special=special))

    def decode(self, ids: list[int]) -> str:
        with self._lock:
            return bytes(self._llm.detokenize(ids, special=True)).decode("utf-8", "replace")

    @property
    def vocabulary_hash(self) -> bytes:
        """keccak over every token's bytes, each length-prefixed, in id order."""
        if self._vocabulary_hash is None:
            with self._lock:
                pieces = [
                    bytes(self._llm.detokenize([i], special=True)) for i in range(self.n_vocab)
                ]
            self._vocabulary_hash = keccak256(
                b"".join(len(p).to_bytes(4, "little") + p for p in pieces)
            )
        return self._vocabulary_hash
