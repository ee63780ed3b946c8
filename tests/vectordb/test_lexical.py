"""BM25 against hand-computed scores, and the tokeniser it shares with retrieval."""

from __future__ import annotations

import math

import pytest

from swarm_vectordb.lexical import BM25, stem, terms

# Three documents whose words the stemmer leaves alone: N = 3, lengths 3, 2, 4, avgdl 3.
CORPUS = {"d1": "kiwi mango kiwi", "d2": "mango plum", "d3": "plum fig kiwi yam"}


def test_terms_are_lowercase_words_split_on_punctuation_without_stopwords_stemmed() -> None:
    assert terms("How do I start a headless knowledge-serving peer?") == [
        "start", "headless", "knowledg", "serv", "peer",
    ]  # fmt: skip
    assert terms("Buy a postage-batch: 2 + 2, x") == ["buy", "postag", "batch"]


@pytest.mark.parametrize(
    ("words", "term"),
    [
        (("serve", "serves", "served", "serving"), "serv"),
        (("batch", "batches"), "batch"),
        (("query", "queries"), "query"),
        (("class",), "class"),
        (("status",), "status"),
        (("bee", "bees"), "bee"),
    ],
)
def test_the_stemmer_joins_inflections_and_spares_short_stems_and_non_plurals(
    words: tuple[str, ...], term: str
) -> None:
    assert {stem(w) for w in words} == {term}


def test_scores_match_a_hand_computed_bm25() -> None:
    scorer: BM25[str] = BM25(k1=1.2, b=0.75)
    scorer.add(CORPUS.items())
    # idf(kiwi) = idf(plum) = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln 1.6
    # d1: kiwi tf 2, |d| 3: 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3/3)) = 1.375
    # d2: plum tf 1, |d| 2: 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2/3)) = 2.2 / 1.9
    # d3: kiwi and plum tf 1, |d| 4: 2 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 4/3)) = 2 * 0.88
    ln16 = math.log(1.6)
    hits = scorer.search("Kiwi, plum?", 10)
    assert [h.key for h in hits] == ["d3", "d1", "d2"]
    expected = {"d3": 1.76 * ln16, "d1": 1.375 * ln16, "d2": 2.2 / 1.9 * ln16}
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.key], rel=1e-12)
    assert [(h.coverage, h.matched) for h in hits] == [(1.0, 2), (0.5, 1), (0.5, 1)]


def test_coverage_counts_unknown_query_words_at_the_highest_idf() -> None:
    scorer: BM25[str] = BM25()
    scorer.add(CORPUS.items())
    # banana is in no document: idf = ln(1 + 3.5 / 0.5) = ln 8
    [hit] = scorer.search("kiwi banana", 10)[:1]
    assert hit.coverage == pytest.approx(math.log(1.6) / (math.log(1.6) + math.log(8)))
    assert scorer.coverage("kiwi banana", "a kiwi") == pytest.approx(hit.coverage)
    assert scorer.coverage("the of", "anything") == 0.0
    assert scorer.search("capital of France", 10) == []


def test_growing_and_shrinking_gives_the_same_scores_as_building_at_once() -> None:
    whole: BM25[str] = BM25()
    whole.add(CORPUS.items())
    grown: BM25[str] = BM25()
    for key, text in CORPUS.items():
        grown.search("kiwi", 1)  # statistics cached between additions must not go stale
        grown.add([(key, text)])
    grown.add([("d4", "kiwi kiwi kiwi")])
    grown.remove(["d4", "unknown"])
    assert grown.search("kiwi plum yam", 10) == whole.search("kiwi plum yam", 10)
    assert len(grown) == 3
    assert "d4" not in grown


def test_re_adding_a_key_replaces_its_text() -> None:
    scorer: BM25[str] = BM25()
    scorer.add(CORPUS.items())
    scorer.add([("d1", "fig")])
    assert [h.key for h in scorer.search("mango", 10)] == ["d2"]
    assert len(scorer) == 3


@pytest.mark.parametrize(("k1", "b"), [(-0.1, 0.75), (1.2, 1.5), (1.2, -0.1)])
def test_bad_parameters_are_refused(k1: float, b: float) -> None:
    with pytest.raises(ValueError, match="BM25 parameters"):
        BM25(k1=k1, b=b)
