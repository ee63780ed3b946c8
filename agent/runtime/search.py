"""What a search returns: local and peers' chunks merged by score, duplicates collapsed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm_vectordb.network import NetworkResult


@dataclass(frozen=True)
class FoundChunk:
    origin: str  # "local", or the 0x address of the peer that returned it
    text: str
    score: float
    ref: bytes
    source: str
    position: int | None  # known for local chunks only


@dataclass
class SearchReport:
    query: str
    hits: list[FoundChunk]
    network: NetworkResult | None = None
    known_peers: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": self.query,
            "hits": [dict(asdict(h), ref=h.ref.hex()) for h in self.hits],
        }
        if self.network is not None:
            out["known_peers"] = self.known_peers
            out["elapsed_ms"] = round(self.network.elapsed_ms, 1)
            out["dropped"] = dict(self.network.dropped)
            out["peers"] = [
                {
                    "address": "0x" + address.hex(),
                    "answered": o.answered,
                    "latency_ms": None if o.latency_ms is None else round(o.latency_ms, 1),
                    "hits": o.hits,
                    "dropped": o.dropped,
                }
                for address, o in self.network.peers.items()
            ]
        return out


def merge(hits: Iterable[FoundChunk], k: int) -> list[FoundChunk]:
    """The `k` best by score; of chunks with the same reference, the best-scored one."""
    best: dict[bytes, FoundChunk] = {}
    for hit in hits:
        if hit.ref not in best or hit.score > best[hit.ref].score:
            best[hit.ref] = hit
    return sorted(best.values(), key=lambda h: -h.score)[:k]
