"""The base-model cache never changes a weight and never gets in the way.

The oracle is transformers' own dequantization of the GGUF (`load_base_model(path,
cache=False)`): a model read from the cache must equal it tensor for tensor and train
to the same log root. A damaged or foreign entry is found, removed and costs only the
slow path; a cache that cannot be written costs nothing but a warning."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tests.trainer.conftest import write_corpus
from tests.trainer.helpers import CORPUS, HP, engine_for
from trainer import basecache, model
from trainer.model import base_model_hash, load_base_model
from trainer.tokenizer import GgufTokenizer


@pytest.fixture(scope="module")
def from_gguf(model_path: Path) -> nn.Module:
    return load_base_model(model_path, cache=False)


@pytest.fixture
def entry(tmp_path: Path, from_gguf: nn.Module, model_path: Path) -> Path:
    stored = basecache.store(from_gguf, base_model_hash(model_path), tmp_path / "cache")
    assert stored is not None
    return stored


def assert_same_model(ours: nn.Module, oracle: nn.Module) -> None:
    assert ours is not oracle
    expected, got = oracle.state_dict(), ours.state_dict()
    assert list(got) == list(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == torch.float32
        assert torch.equal(got[name], tensor), name
    buffers = dict(oracle.named_buffers())
    assert dict(ours.named_buffers()).keys() == buffers.keys()
    for name, buffer in ours.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    m: object = ours
    assert m.lm_head.weight is m.model.embed_tokens.weight  # type: ignore[attr-defined]
    assert not ours.training
    assert not any(p.requires_grad for p in ours.parameters())


def test_the_second_load_comes_from_the_cache_and_equals_the_gguf_dequantization(
    model_path: Path,
    from_gguf: nn.Module,
    tmp_path: Path,
    tokenizer: GgufTokenizer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    reads = []

    def counted(path: Path) -> nn.Module:  # the fixture's read, without a second one
        reads.append(path)
        return from_gguf

    monkeypatch.setattr(model, "_from_gguf", counted)
    first = load_base_model(model_path)
    assert reads == [model_path]  # nothing cached yet: the GGUF, then stored
    entry = basecache.entry_dir(base_model_hash(model_path))
    assert entry.parent == tmp_path / "xdg" / "noosphere" / "base-models"
    assert sorted(p.name for p in entry.iterdir()) == [
        "config.json",
        "meta.json",
        "model.safetensors",
    ]
    second = load_base_model(model_path)
    assert reads == [model_path]  # from the cache
    assert first is from_gguf
    assert_same_model(second, from_gguf)

    paths = write_corpus(tmp_path / "corpus", CORPUS)
    roots = []
    for base in (from_gguf, second):
        engine, _ = engine_for(base, tokenizer, paths, HP, seed=5, steps=2, shard_tokens=64)
        roots.append(engine.train().log.root)
    assert roots[0] == roots[1]  # losses and state hashes, bit for bit


def test_a_corrupted_weights_file_is_detected_and_removed(
    entry: Path, model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert basecache.load_cached(base_model_hash(model_path), entry.parent) is None
    assert "does not match its recorded SHA-256" in caplog.text
    assert not entry.exists()


def test_an_entry_for_other_weights_or_tensors_is_refused(
    entry: Path, model_path: Path, from_gguf: nn.Module, caplog: pytest.LogCaptureFixture
) -> None:
    """A liar who rewrites the weights and the recorded hash alike gets as far as the
    tensor names: an extra tensor is refused. (Equal names with other values would pass:
    the cache trusts its owner's disk, as the node home does.)"""
    model_hash = base_model_hash(model_path)
    state = load_file(str(entry / "model.safetensors"))
    state["model.extra"] = torch.zeros(2)
    save_file(state, str(entry / "model.safetensors"))
    meta = json.loads((entry / "meta.json").read_text())
    meta["weights_sha256"] = basecache._sha256(entry / "model.safetensors")
    (entry / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        assert basecache.load_cached(model_hash, entry.parent) is None
    assert "other tensors than the model has" in caplog.text

    moved = basecache.store(from_gguf, model_hash, entry.parent)
    assert moved is not None
    meta = json.loads((moved / "meta.json").read_text())
    meta["model_hash"] = "00" * 32  # an entry copied in under another GGUF's name
    (moved / "meta.json").write_text(json.dumps(meta))
    assert basecache.load_cached(model_hash, moved.parent) is None
    assert "another model or versions" in caplog.text


def test_an_unwritable_cache_costs_a_warning_only(
    tmp_path: Path, from_gguf: nn.Module, model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        assert basecache.store(from_gguf, base_model_hash(model_path), blocked / "cache") is None
    assert "cannot cache the base model's weights" in caplog.text
    assert basecache.load_cached(base_model_hash(model_path), blocked / "cache") is None


def test_writers_racing_for_one_entry_both_succeed_and_stale_entries_go(
    tmp_path: Path, from_gguf: nn.Module, model_path: Path
) -> None:
    root = tmp_path / "cache"
    model_hash = base_model_hash(model_path)
    stale = root / f"{model_hash.hex()}-0123456789ab"  # this GGUF under older versions
    other = root / f"{'ab' * 32}-0123456789ab"  # another GGUF
    for folder in (stale, other):
        folder.mkdir(parents=True)
    results: list[Path | None] = []
    writers = [
        threading.Thread(
            target=lambda: results.append(basecache.store(from_gguf, model_hash, root))
        )
        for _ in range(2)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    entry = basecache.entry_dir(model_hash, root)
    assert results == [entry, entry]
    assert sorted(p.name for p in root.iterdir()) == sorted([entry.name, other.name])
    cached = basecache.load_cached(model_hash, root)
    assert cached is not None
    assert_same_model(cached, from_gguf)
