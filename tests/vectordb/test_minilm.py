"""The numpy runtime of the bundled embedder against sentence-transformers (the oracle).

sentence-transformers (torch) runs the same model files: tokenizer, truncation to 256
word pieces, BERT, mean pooling, L2 normalisation. The numpy runtime must give the
same unit vectors to float32 rounding, for every kind of text a user can feed it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from swarm_vectordb.embedding import (
    BUNDLED_MODEL_ID,
    Embedder,
    ModelId,
    choose_runtime,
    resolve_model,
)
from swarm_vectordb.errors import EmbedderError
from swarm_vectordb.minilm import MiniLM

pytestmark = pytest.mark.integration

LONG = " ".join(
    f"Chunk {i} of the Swarm feed is stamped and pushed to its neighbourhood." for i in range(80)
)
TEXTS = [
    "",
    "   ",
    "hi",
    "Swarm stores data in 4096-byte chunks addressed by their hash.",
    "Naïve café, Ελληνικά, 東京タワー, москва, emoji 🐝🌍, ligature ﬁ, accents àéîõü",
    "\u200bzero\u200dwidth\ttabs\nand\r\nnewlines\x00with a NUL",
    LONG,  # far over 256 word pieces: truncated
    "x" * 5000,  # one enormous word: [UNK]
    "the " * 254,  # exactly at the truncation boundary with [CLS] and [SEP]
    "Who pays for storage, and how are postage stamps bought?",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    path, _ = resolve_model("all-MiniLM-L6-v2")
    return path


@pytest.fixture(scope="module")
def oracle(model_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def minilm(model_dir: Path) -> MiniLM:
    return MiniLM.load(model_dir)


def oracle_vectors(oracle: Any, texts: list[str], batch_size: int = 64) -> np.ndarray:
    return np.asarray(
        oracle.encode(texts, batch_size=batch_size, normalize_embeddings=True), np.float32
    )


def test_vectors_agree_with_sentence_transformers_to_1e4_cosine(
    minilm: MiniLM, oracle: Any
) -> None:
    got = minilm.encode(TEXTS)
    want = oracle_vectors(oracle, TEXTS)
    assert got.shape == (len(TEXTS), 384)
    assert got.dtype == np.float32
    cosine = np.sum(got * want, axis=1)
    assert np.all(cosine > 1 - 1e-4), cosine
    assert np.abs(got - want).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_long_text_is_truncated_to_256_word_pieces_like_the_oracle(
    minilm: MiniLM, oracle: Any
) -> None:
    assert len(LONG.split()) > 2 * 256
    assert minilm.shape.max_tokens == 256
    assert minilm.token_count(LONG) == 256  # what the model reads, [CLS] and [SEP] included
    tail_changed = LONG + " An entirely different ending about cats and gardens."
    got = minilm.encode([LONG, tail_changed])
    # Both are cut at the same 256 pieces: the extra tail cannot change the vector.
    assert np.abs(got[0] - got[1]).max() < 1e-6
    want = oracle_vectors(oracle, [LONG])
    assert float(got[0] @ want[0]) > 1 - 1e-4


def test_batch_of_mixed_lengths_equals_one_by_one(minilm: MiniLM, oracle: Any) -> None:
    mixed = [TEXTS[3], LONG, "", TEXTS[4], "a b", TEXTS[9] * 3]
    batched = minilm.encode(mixed, batch_size=4)  # padding, sorting and several batches
    single = np.stack([minilm.encode([t])[0] for t in mixed])
    assert np.abs(batched - single).max() < 1e-5  # padding is masked out
    want = oracle_vectors(oracle, mixed, batch_size=3)
    assert np.all(np.sum(batched * want, axis=1) > 1 - 1e-4)


def test_many_texts_on_several_workers_keep_their_order(model_dir: Path, oracle: Any) -> None:
    texts = [f"Document {i}: " + "words about bees and chunks " * (i % 17) for i in range(70)]
    parallel = MiniLM.load(model_dir, workers=3).encode(texts, batch_size=8)
    want = oracle_vectors(oracle, texts)
    assert np.all(np.sum(parallel * want, axis=1) > 1 - 1e-4)


def test_empty_input_gives_no_rows(minilm: MiniLM) -> None:
    assert minilm.encode([]).shape == (0, 384)


def copy_model(model_dir: Path, dest: Path) -> Path:
    shutil.copytree(model_dir, dest, ignore=shutil.ignore_patterns("model.safetensors"))
    (dest / "model.safetensors").symlink_to(model_dir / "model.safetensors")
    return dest


def edit_json(path: Path, **changes: Any) -> None:
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **changes)))


def test_a_model_it_cannot_run_exactly_is_refused(model_dir: Path, tmp_path: Path) -> None:
    cls_pooling = copy_model(model_dir, tmp_path / "cls")
    edit_json(
        cls_pooling / "1_Pooling" / "config.json",
        pooling_mode_mean_tokens=False,
        pooling_mode_cls_token=True,
    )
    with pytest.raises(EmbedderError, match="mean pooling"):
        MiniLM.load(cls_pooling)
    relative = copy_model(model_dir, tmp_path / "relative")
    edit_json(relative / "config.json", position_embedding_type="relative_key")
    with pytest.raises(EmbedderError, match="absolute position"):
        MiniLM.load(relative)
    truncated = copy_model(model_dir, tmp_path / "truncated")
    (truncated / "model.safetensors").unlink()
    empty_safetensors = (2).to_bytes(8, "little") + b"{}"  # a valid file with no tensors
    (truncated / "model.safetensors").write_bytes(empty_safetensors)
    with pytest.raises(EmbedderError, match="missing"):
        MiniLM.load(truncated)
    lying = truncated / "model.safetensors"
    header = b'{"w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}'
    lying.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    with pytest.raises(EmbedderError, match="bad byte range"):
        MiniLM.load(truncated)
    lying.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(EmbedderError, match="does not fit"):
        MiniLM.load(truncated)
    lying.write_bytes(b"")
    with pytest.raises(EmbedderError, match="cannot read"):
        MiniLM.load(truncated)


def test_runtime_choice() -> None:
    local = ModelId("local/my-model")
    assert choose_runtime(BUNDLED_MODEL_ID, "cpu", "auto") == "numpy"
    assert choose_runtime(BUNDLED_MODEL_ID, "cuda", "auto") == "sentence-transformers"
    assert choose_runtime(local, "cpu", "auto") == "sentence-transformers"
    assert choose_runtime(BUNDLED_MODEL_ID, "cpu", "sentence-transformers") == (
        "sentence-transformers"
    )
    with pytest.raises(EmbedderError, match="bundled model on the CPU"):
        choose_runtime(local, "cpu", "numpy")
    with pytest.raises(EmbedderError, match="bundled model on the CPU"):
        choose_runtime(BUNDLED_MODEL_ID, "cuda", "numpy")


@pytest.mark.asyncio
async def test_both_runtimes_record_the_same_model_id_and_vectors() -> None:
    fast = await Embedder.load()
    torch_based = await Embedder.load(runtime="sentence-transformers")
    try:
        a = await fast.embed(TEXTS)
        b = await torch_based.embed(TEXTS)
    finally:
        await fast.aclose()
        await torch_based.aclose()
    assert (fast.runtime, torch_based.runtime) == ("numpy", "sentence-transformers")
    assert a.model_id == b.model_id == BUNDLED_MODEL_ID  # vectors stay comparable
    assert np.all(np.sum(a.vectors * b.vectors, axis=1) > 1 - 1e-4)
