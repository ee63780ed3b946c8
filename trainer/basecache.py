"""The base model's fp32 weights kept on disk, so a trainer process starts in seconds.

Reading the GGUF through transformers dequantizes every tensor and undoes llama.cpp's
q/k permutation: 15-25 s for SmolLM2-135M on two cores, paid by every `train worker`,
`verify`, `train validator` and `node --train` at start. The result is cached once as
safetensors under ``$XDG_CACHE_HOME/noosphere/base-models/`` (``~/.cache`` by default).

Training must be bit-exact, so the cache may never change a weight:

- an entry is named by the keccak256 of the GGUF's bytes (the job's `base_model`) and
  by the torch and transformers versions and this format (a new transformers may
  dequantize differently: it gets a new entry, and the old one for the same GGUF goes);
- ``meta.json`` holds the SHA-256 of the weights file, checked on every load;
- entries are written to a temporary directory and renamed into place, so a reader never
  sees half an entry, and two processes filling the same entry at once both succeed.

Any problem with the cache (unreadable, corrupt, a disk that is full) only costs the slow
path: the weights come from the GGUF, with a warning, and the entry is written again.
tests/trainer/test_basecache.py checks cached and GGUF-loaded models tensor for tensor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CACHE_FORMAT", "cache_root", "entry_dir", "load_cached", "store"]

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
META = "meta.json"
TIED = "lm_head.weight"  # tied to the embeddings: stored once, tied again on load


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/noosphere/base-models`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "noosphere" / "base-models"


def _versions() -> str:
    import transformers

    return (
        f"format {CACHE_FORMAT}, torch {torch.__version__}, transformers {transformers.__version__}"
    )


def entry_dir(model_hash: bytes, root: Path | None = None) -> Path:
    """The entry for a GGUF (by its keccak256) under the running torch and transformers."""
    tag = hashlib.sha256(_versions().encode()).hexdigest()[:12]
    return (root or cache_root()) / f"{model_hash.hex()}-{tag}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def load_cached(model_hash: bytes, root: Path | None = None) -> nn.Module | None:
    """The cached base model for `model_hash`, or None (no entry, or one that fails its
    checks: then it is removed, with a warning)."""
    entry = entry_dir(model_hash, root)
    if not entry.is_dir():
        return None
    try:
        meta = json.loads((entry / META).read_text())
        if meta.get("versions") != _versions() or meta.get("model_hash") != model_hash.hex():
            raise ValueError("it was written for another model or versions")
        if _sha256(entry / WEIGHTS) != meta.get("weights_sha256"):
            raise ValueError(f"{WEIGHTS} does not match its recorded SHA-256")
        return _build(json.loads((entry / CONFIG).read_text()), entry / WEIGHTS)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        logger.warning("base model cache %s is unusable (%s); reading the GGUF", entry, exc)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def _build(config: dict[str, Any], weights: Path) -> nn.Module:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    if config.get("model_type") != "llama":
        raise ValueError(f"architecture {config.get('model_type')!r} is not llama")
    hf_config = type(AutoConfig.for_model("llama")).from_dict(config)
    model: Any = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        hf_config, dtype=torch.float32, attn_implementation="eager"
    )
    state = load_file(str(weights))
    expected = set(model.state_dict()) - ({TIED} if hf_config.tie_word_embeddings else set())
    if set(state) != expected:
        raise ValueError(f"{weights.name} holds other tensors than the model has")
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    model.requires_grad_(False)
    model.eval()
    return model  # type: ignore[no-any-return]


def store(model: nn.Module, model_hash: bytes, root: Path | None = None) -> Path | None:
    """Write `model`'s weights as the entry for `model_hash`; its directory, or None when
    it could not be written (a warning says why; nothing half-written is left)."""
    from safetensors.torch import save_file

    entry = entry_dir(model_hash, root)
    config: Any = model.config
    document = config.to_dict()
    document.pop("quantization_config", None)  # loaded from a GGUF: not true of the copy
    tmp: Path | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=entry.parent))
        state = {
            name: tensor.contiguous()
            for name, tensor in model.state_dict().items()
            if not (name == TIED and config.tie_word_embeddings)
        }
        save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(document, sort_keys=True, default=str))
        meta = {
            "model_hash": model_hash.hex(),
            "versions": _versions(),
            "weights_sha256": _sha256(tmp / WEIGHTS),
        }
        (tmp / META).write_text(json.dumps(meta, indent=2))
        try:
            tmp.rename(entry)
        except OSError:
            if not entry.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process wrote it first
        _drop_stale(entry)
        return entry
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        logger.warning("cannot cache the base model's weights in %s: %s", entry.parent, exc)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return None


def _drop_stale(entry: Path) -> None:
    """Other entries for the same GGUF (older torch or transformers) and leftovers of
    writers that died mid-way more than a day ago."""
    model_hex = entry.name.split("-", 1)[0]
    for other in entry.parent.iterdir():
        stale = other != entry and other.name.startswith(model_hex + "-")
        with contextlib.suppress(OSError):
            dead = other.name.startswith(".partial-") and (
                other.stat().st_mtime < os.path.getmtime(entry) - 86_400
            )
            if stale or dead:
                shutil.rmtree(other, ignore_errors=True)
