"""Retrieval first: the passages of the knowledge base a question should be answered from.

Every question is embedded once and searched two ways in the local index (and, when
asked, densely on the network):

- dense: cosine similarity with the bundled embedder; a chunk scoring at least
  `assistant.retrieval_threshold` is kept;
- lexical: BM25 over the same chunk texts (`swarm_vectordb.lexical`), kept in memory,
  built on first use and grown as the index grows. A small embedder on long chunks
  misses exact words ("headless", "postage", "quantize"), so a chunk is also kept when
  it holds at least `LEXICAL_MIN_TERMS` of the question's words carrying
  `LEXICAL_COVERAGE` of its IDF mass (the rare words are all there) and its cosine is
  still at least `LEXICAL_FLOOR` (it is about the same thing at all).

Below both bars nothing is added, so an unrelated question is not distracted by the
nearest, irrelevant, chunk. Dense passes come first, best first, then lexical ones by
reciprocal-rank fusion of their dense and lexical ranks, at most `max_passages` in all
(a peer's hits, which carry no lexical statistics, pass by the dense bar only). Each is
trimmed to the `max_sentences` sentences (or code lines) closest to the question, by
cosine plus a bonus for the question's rare words, in their original order, because a
small model answers best from a short, relevant quote.

The passages reach the model quoted (local text in plain quotes, a peer's inside an
`<untrusted-data>` wrapper it cannot close), inside the prompt `prompts/grounded.md`,
and are answered from greedily; the answer's "Sources:" line is added by the loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

import prompts
from swarm_vectordb.lexical import BM25
from tools.knowledge import LOCAL, KnowledgeHit, PeerSearch, merge_hits, neutralise

if TYPE_CHECKING:
    from swarm_vectordb.embedding import Embedder
    from swarm_vectordb.index import ChunkRef, VectorIndex

log = logging.getLogger(__name__)

DEFAULT_RETRIEVAL_THRESHOLD = 0.5
SEARCH_K = 8
LEXICAL_COVERAGE = 0.6  # share of the question's IDF mass a lexical match must hold
LEXICAL_MIN_TERMS = 2  # ... in at least this many distinct question words
LEXICAL_FLOOR = 0.2  # ... with at least this cosine
TRIM_LEXICAL_WEIGHT = 0.5  # a sentence's coverage of the question, added to its cosine
_RRF_K = 60
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*#|])")
_FENCE = "```"


@dataclass(frozen=True)
class Grounding:
    """What retrieval found for one question."""

    passages: tuple[KnowledgeHit, ...]  # trimmed, best first
    best_score: float | None  # the best hit's score, kept or not (None: no hits at all)

    @property
    def sources(self) -> list[str]:
        seen: list[str] = []
        for hit in self.passages:
            name = hit.source if hit.is_local else f"{hit.source} (peer {hit.origin})"
            if name not in seen:
                seen.append(name)
        return seen

    def prompt(self, question: str) -> str:
        """The user message the model answers: quoted passages, then the question.

        Local text is quoted plainly (the small model copies markup it sees); a peer's
        text stays inside an `<untrusted-data>` wrapper it cannot close.
        """
        quoted = "\n".join(
            f'"{neutralise(h.text)}"'
            if h.is_local
            else f"<untrusted-data>{neutralise(h.text)}</untrusted-data>"
            for h in self.passages
        )
        return prompts.load("grounded").format(passages=quoted, question=question)


def sentences(text: str) -> list[str]:
    """`text` cut into sentences, list items, paragraphs and code lines, whitespace collapsed.

    Lines inside a ``` fence are one unit each (a command and its comment answer a
    question alone; a line ending in a backslash runs on); fence lines themselves go.
    A chunk cut from the middle of a code block, whose first fence is a bare closing
    one, starts inside the code.
    """
    lines = text.split("\n")
    fences = [line.strip() for line in lines if line.strip().startswith(_FENCE)]
    in_code = len(fences) % 2 == 1 and fences[0] == _FENCE
    units: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        units.extend(" ".join(p.split()) for p in _SENTENCE_END.split("\n".join(prose)))
        prose.clear()

    for line in lines:
        if line.strip().startswith(_FENCE):
            flush()
            in_code = not in_code
        elif in_code and units and units[-1].endswith("\\"):
            units[-1] = units[-1][:-1] + " ".join(line.split())  # a continued command
        elif in_code:
            units.append(" ".join(line.split()))
        else:
            prose.append(line)
    flush()
    return [u for u in units if u]


@dataclass(frozen=True)
class _Candidate:
    chunk_ref: ChunkRef
    cosine: float
    dense_rank: int | None
    lexical_rank: int | None
    lexical_ok: bool

    @property
    def fused(self) -> float:
        return sum(1 / (_RRF_K + r) for r in (self.dense_rank, self.lexical_rank) if r is not None)


class Retriever:
    """Finds and trims the passages for a question; see the module docstring."""

    def __init__(
        self,
        embedder: Embedder,
        index: VectorIndex,
        *,
        threshold: float = DEFAULT_RETRIEVAL_THRESHOLD,
        max_passages: int = 3,
        max_sentences: int = 2,
        peers: PeerSearch | None = None,
    ) -> None:
        self.embedder, self.index, self.peers = embedder, index, peers
        self.threshold = threshold
        self.max_passages = max_passages
        self.max_sentences = max_sentences
        self.lexical: BM25[ChunkRef] = BM25()
        self._seen = 0  # chunks of the index that `lexical` holds
        self._reshapes = -1  # the index's `reshapes` when `lexical` was last rebuilt

    async def retrieve(self, question: str, *, network: bool = False) -> Grounding:
        if not len(self.index) and not (network and self.peers is not None):
            return Grounding((), None)
        query = (await self.embedder.embed([question])).vectors[0]
        local: list[KnowledgeHit] = []
        best: float | None = None
        if len(self.index):
            local, best = await asyncio.to_thread(self._search_local, question, query)
        hits = list(local)
        if network and self.peers is not None:
            remote = await self.peers(query, SEARCH_K)  # dense only: no statistics to share
            best = max(
                [h.score for h in remote] + ([best] if best is not None else []), default=None
            )
            hits += [h for h in remote if h.score >= self.threshold]
        # Dense passes first, best cosine first; then lexical passes in fused order.
        order = {h.ref: i for i, h in enumerate(local)}
        kept = merge_hits(hits, SEARCH_K)
        kept.sort(key=lambda h: (0, -h.score) if h.score >= self.threshold else (1, order[h.ref]))
        kept = kept[: self.max_passages]
        log.info(
            "retrieval: best cosine %s, %d passage(s) (threshold %.2f, lexical %.2f)",
            best, len(kept), self.threshold, LEXICAL_COVERAGE,
        )  # fmt: skip
        trimmed = [await self._trim(h, question, query) for h in kept]
        return Grounding(tuple(trimmed), best)

    def sync_lexical(self) -> None:
        """Bring the BM25 scorer up to date with the index (on the index's thread).

        Additions are appended incrementally; after a removal or compaction the
        scorer is rebuilt from the live chunks.
        """
        if self.index.reshapes != self._reshapes:
            self.lexical = BM25()
            self._seen, self._reshapes = 0, self.index.reshapes
        fresh = self.index.chunks(self._seen)
        if fresh:
            self.lexical.add((c.ref, c.text) for c in fresh)
            self._seen += len(fresh)

    def _search_local(
        self, question: str, query: np.ndarray
    ) -> tuple[list[KnowledgeHit], float | None]:
        """The local chunks that pass the dense or the lexical bar, in fused order, and
        the best cosine among all candidates (passing or not).

        A hit's score is its cosine, whichever bar it passed.
        """
        self.sync_lexical()
        dense = self.index.search(query, SEARCH_K)
        lexical = self.lexical.search(question, SEARCH_K)
        candidates: dict[ChunkRef, _Candidate] = {}
        for rank, hit in enumerate(dense, 1):
            candidates[hit.chunk.ref] = _Candidate(hit.chunk.ref, hit.score, rank, None, False)
        for rank, lex in enumerate(lexical, 1):
            ok = lex.coverage >= LEXICAL_COVERAGE and lex.matched >= LEXICAL_MIN_TERMS
            known = candidates.get(lex.key)
            if known is not None:
                candidates[lex.key] = replace(known, lexical_rank=rank, lexical_ok=ok)
                continue
            vector = self.index.vector(lex.key)
            if vector is not None:
                cosine = float(vector @ query)
                candidates[lex.key] = _Candidate(lex.key, cosine, None, rank, ok)
        passed = [
            c
            for c in candidates.values()
            if c.cosine >= self.threshold or (c.lexical_ok and c.cosine >= LEXICAL_FLOOR)
        ]
        passed.sort(key=lambda c: -c.fused)
        best = max((c.cosine for c in candidates.values()), default=None)
        hits = []
        for c in passed:
            chunk = self.index.get(c.chunk_ref)
            if chunk is not None:
                hits.append(
                    KnowledgeHit(chunk.text, c.cosine, chunk.source, LOCAL, c.chunk_ref.hex())
                )
        return hits, best

    async def _trim(self, hit: KnowledgeHit, question: str, query: np.ndarray) -> KnowledgeHit:
        parts = [p for p in sentences(hit.text) if not p.startswith("#")]  # not headings
        parts = parts or sentences(hit.text)
        if len(parts) <= self.max_sentences:
            return replace(hit, text=" ".join(parts))
        vectors = (await self.embedder.embed(parts)).vectors
        lexical = np.array([self.lexical.coverage(question, p) for p in parts], np.float32)
        scores = vectors @ query + TRIM_LEXICAL_WEIGHT * lexical
        closest = sorted(np.argsort(-scores)[: self.max_sentences].tolist())
        return replace(hit, text=" ".join(parts[i] for i in closest))


def passages_text(grounding: Grounding) -> Sequence[str]:
    """The trimmed passage texts (for `--json` and tests)."""
    return [h.text for h in grounding.passages]
