"""Lexical relevance: Okapi BM25 over chunk texts, kept in memory, grown incrementally.

Dense similarity of a small sentence embedder against long chunks misses exact terms
("headless", "stamp", "quantize"); BM25 scores them directly. `terms` is the shared
tokeniser: lower-case alphanumeric words (punctuation and hyphens split words), a small
stopword list dropped, a light suffix stemmer ("serving", "serves" and "serve" meet as
"serv").

    score(q, d) = sum over query terms t in d of
        idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

`coverage(q, d)` is the share of the query's IDF mass that `d` contains: the IDF of
each distinct query term `d` holds, over the IDF of all of them (a term no document
has counts with the highest IDF). It is what says "the rare words of the question are
all here", independently of corpus size and document length.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

K = TypeVar("K", bound=Hashable)

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORD_TEXT = """a about above after again all am an and any are as at be been before being
    below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it
    its itself just me more most my no nor not now of off on once only or other our
    out over own same she should so some such than that the their them then there
    these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_SUFFIXES = (
    "ations", "ation", "ings", "ing", "edly", "ies", "ied", "ers", "er", "ed", "es", "s", "e",
)  # fmt: skip
_MIN_STEM = 3


def stem(word: str) -> str:
    """`word` without one common English suffix, keeping a stem of at least 3 letters.

    A final "e" goes too, so "serve", "serves", "served" and "serving" all give "serv".
    """
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            if suffix in ("s", "es") and word.endswith(("ss", "us", "is")):
                return word  # "class", "status", "analysis" are not plurals
            if suffix in ("ies", "ied"):
                return word[: -len(suffix)] + "y"
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """The index terms of `text`, in order (single characters and stopwords dropped, stemmed)."""
    return [t for t in map(_term, _WORD.findall(text.lower())) if t]


@functools.lru_cache(maxsize=1 << 17)
def _term(word: str) -> str:
    """`word`'s index term, or "" when it is not indexed."""
    return "" if len(word) < 2 or word in STOPWORDS else stem(word)


@dataclass(frozen=True)
class LexicalHit(Generic[K]):
    key: K
    score: float  # BM25
    coverage: float  # share of the query's IDF mass found, 0..1
    matched: int  # how many distinct query terms the document holds


class BM25(Generic[K]):
    """An Okapi BM25 scorer over documents named by hashable keys.

    Adding a document only counts its lower-cased words (a C-speed `Counter`), so
    building over 10k chunks stays well under a second; the words are mapped to terms
    (stemmed) through a vocabulary that grows with the new words only, and a query
    reads the few words its terms stand for in every document. A document's length is
    its number of words, stopwords included. Not thread-safe: one thread at a time.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"bad BM25 parameters k1={k1}, b={b}")
        self.k1, self.b = k1, b
        self._docs: dict[K, Counter[str]] = {}  # document -> word -> frequency
        self._lengths: dict[K, int] = {}
        self._total_length = 0
        self._words: dict[str, set[str]] = {}  # term -> the words that stem to it
        self._known: set[str] = set()  # every word seen
        self._df: dict[str, int] = {}  # term -> documents holding it (cleared on change)
        self._keys: list[K] | None = None  # document order for scoring (None on change)
        self._lengths_array: npt.NDArray[np.float64] | None = None
        self._counts: list[Counter[str]] | None = None  # word counts in `_keys` order

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, key: object) -> bool:
        return key in self._docs

    def add(self, documents: Iterable[tuple[K, str]]) -> None:
        """Index each `(key, text)`; a key already present is replaced."""
        for key, text in documents:
            if key in self._docs:
                self.remove([key])
            words = _WORD.findall(text.lower())
            counts = Counter(words)
            self._docs[key] = counts
            self._lengths[key] = len(words)
            self._total_length += len(words)
            for word in counts.keys() - self._known:
                self._known.add(word)
                term = _term(word)
                if term:
                    self._words.setdefault(term, set()).add(word)
        self._df.clear()
        self._keys = self._counts = self._lengths_array = None

    def remove(self, keys: Iterable[K]) -> None:
        """Forget each of `keys` (unknown ones are ignored); the vocabulary is kept."""
        for key in keys:
            if self._docs.pop(key, None) is not None:
                self._total_length -= self._lengths.pop(key)
        self._df.clear()
        self._keys = self._counts = self._lengths_array = None

    def idf(self, term: str) -> float:
        n = len(self._docs)
        df = self._df.get(term)
        if df is None:
            df = self._df[term] = int(np.count_nonzero(self._frequencies(term)))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def search(self, query: str, k: int) -> list[LexicalHit[K]]:
        """The `k` best documents for `query` by BM25 (those matching any term), best first."""
        query_terms = list(dict.fromkeys(terms(query)))
        if k <= 0 or not query_terms or not self._docs:
            return []
        keys, _, lengths = self._table()
        tf = np.stack([self._frequencies(t) for t in query_terms])  # terms x documents
        for term, row in zip(query_terms, tf, strict=True):
            self._df.setdefault(term, int(np.count_nonzero(row)))
        weights = np.array([self.idf(t) for t in query_terms])
        norm = self.k1 * (1 - self.b + self.b * lengths / (lengths.mean() or 1.0))
        scores = weights @ (tf * (self.k1 + 1) / (tf + norm))
        found = weights @ (tf > 0)
        matched = np.count_nonzero(tf, axis=0)
        best = [int(i) for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]
        mass = float(weights.sum())
        return [
            LexicalHit(keys[i], float(scores[i]), float(found[i]) / mass, int(matched[i]))
            for i in best
        ]

    def _table(self) -> tuple[list[K], list[Counter[str]], npt.NDArray[np.float64]]:
        """The document keys in a fixed order, their word counts and lengths (cached until
        a change)."""
        if self._keys is None or self._counts is None or self._lengths_array is None:
            self._keys = list(self._docs)
            self._counts = [self._docs[key] for key in self._keys]
            self._lengths_array = np.array([self._lengths[key] for key in self._keys], np.float64)
        return self._keys, self._counts, self._lengths_array

    def _frequencies(self, term: str) -> npt.NDArray[np.float64]:
        """How often `term` occurs in each document, in `_table`'s order."""
        _, counts, _ = self._table()
        total = np.zeros(len(counts))
        for word in self._words.get(term, ()):
            total += np.fromiter((c.get(word, 0) for c in counts), np.float64, len(total))
        return total

    def coverage(self, query: str, text: str) -> float:
        """The share of `query`'s IDF mass whose terms occur in `text` (0 with no terms)."""
        query_terms = list(dict.fromkeys(terms(query)))
        if not query_terms:
            return 0.0
        present = set(terms(text))
        weights = [self.idf(t) for t in query_terms]
        held = sum(w for t, w in zip(query_terms, weights, strict=True) if t in present)
        return held / sum(weights)
