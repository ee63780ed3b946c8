"""A BERT sentence encoder in numpy: the bundled all-MiniLM-L6-v2 without torch.

The bundled model is a 6-layer, 384-wide BERT followed by mean pooling and L2
normalisation (its `modules.json`: Transformer, Pooling, Normalize). This module runs
exactly that forward pass with numpy, reading the weights from the model's
`model.safetensors` (memory-mapped, so nothing is copied) and tokenizing with the
Hugging Face `tokenizers` library from its `tokenizer.json`. Embedding a query then
costs a numpy import instead of torch's and sentence-transformers' (seconds at
start-up). Vectors agree with sentence-transformers' to float32 rounding
(tests/vectordb/test_minilm.py is the oracle test).

What sentence-transformers does, and this module copies:
- texts are stripped, tokenized with [CLS] ... [SEP] and truncated to `max_seq_length`
  word pieces (256, from `sentence_bert_config.json`), the two special tokens included;
- a batch is padded to its longest text and padding is masked out of attention and of
  the mean; texts are grouped by length so batches carry little padding;
- GELU is the exact (erf) one; LayerNorm uses the config's epsilon.

Threads: BLAS runs single-threaded during an encode, and big inputs are split into
batches that run on `workers` threads at once (numpy releases the GIL in BLAS and
ufuncs). Multi-threaded BLAS spins at barriers; on a busy machine that made a batch
four times slower, while independent batches degrade gracefully.

Only post-LayerNorm BERT with absolute positions and mean pooling is supported; any
other architecture is refused with `EmbedderError` (use sentence-transformers for it).
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from swarm_vectordb.errors import EmbedderError

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
_GELU_BLOCK = 1024  # rows of the intermediate activation per GELU pass (cache-sized)
_MAX_HEADER = 100 << 20  # bytes of JSON header a safetensors file may declare
_BATCH_TOKENS = 4096  # word pieces per batch, padding included (bounds the attention scores)
_MIN_SPLIT_TOKENS = 256  # inputs smaller than this run as one batch on the calling thread
# Abramowitz & Stegun 7.1.26: erf(x) for x >= 0 with |error| < 1.5e-7.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@dataclass(frozen=True)
class BertShape:
    """The hyper-parameters the forward pass needs, from `config.json`."""

    hidden: int  # width of every token vector (384)
    layers: int  # encoder layers (6)
    heads: int  # attention heads per layer (12)
    eps: float  # LayerNorm epsilon
    max_tokens: int  # word pieces read per text, [CLS] and [SEP] included (256)

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> BertShape:
        config = _read_json(model_dir / "config.json")
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise EmbedderError(f"{model_dir}: not a BERT model with exact GELU")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise EmbedderError(f"{model_dir}: only absolute position embeddings are supported")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
        if modes != ["pooling_mode_mean_tokens"]:
            raise EmbedderError(f"{model_dir}: only mean pooling is supported, not {modes}")
        st_config = _read_json(model_dir / "sentence_bert_config.json")
        if st_config.get("do_lower_case"):
            raise EmbedderError(f"{model_dir}: do_lower_case models are not supported")
        max_tokens = min(int(st_config["max_seq_length"]), int(config["max_position_embeddings"]))
        return cls(
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            eps=float(config["layer_norm_eps"]),
            max_tokens=max_tokens,
        )


@dataclass(frozen=True)
class _Layer:
    qkv_w: F32  # (hidden, 3 * hidden): query, key and value projections side by side
    qkv_b: F32
    out_w: F32  # (hidden, hidden)
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    up_w: F32  # (hidden, intermediate)
    up_b: F32
    down_w: F32  # (intermediate, hidden)
    down_b: F32
    ln2_g: F32
    ln2_b: F32


class MiniLM:
    """A mean-pooled BERT sentence encoder on numpy. Create with `load`; thread-compatible
    (no shared mutable state), but give it one thread: BLAS already uses every core."""

    def __init__(
        self,
        shape: BertShape,
        tokenizer: Any,
        weights: dict[str, F32],
        layers: list[_Layer],
        *,
        workers: int,
    ) -> None:
        from threadpoolctl import ThreadpoolController

        self.shape = shape
        self.dim = shape.hidden
        self.workers = workers
        self._blas = ThreadpoolController()  # the BLAS libraries numpy loaded
        self._tokenizer = tokenizer
        self._word = weights["embeddings.word_embeddings.weight"]
        self._position = weights["embeddings.position_embeddings.weight"]
        self._token_type0 = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln_g = weights["embeddings.LayerNorm.weight"]
        self._ln_b = weights["embeddings.LayerNorm.bias"]
        self._layers = layers

    @classmethod
    def load(cls, model_dir: Path, *, workers: int | None = None) -> MiniLM:
        """Read the weights and tokenizer of the sentence-transformers directory `model_dir`.

        `workers`: batches encoded at once (default: one per CPU core available).
        """
        from tokenizers import Tokenizer

        shape = BertShape.from_model_dir(model_dir)
        weights = read_safetensors(model_dir / "model.safetensors")
        try:
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises bare Exceptions
            raise EmbedderError(f"{model_dir}: cannot read tokenizer.json: {exc}") from None
        tokenizer.enable_truncation(shape.max_tokens)
        tokenizer.no_padding()
        try:
            layers = [_load_layer(weights, f"encoder.layer.{i}.") for i in range(shape.layers)]
            model = cls(shape, tokenizer, weights, layers, workers=workers or _cpu_count())
        except KeyError as exc:
            raise EmbedderError(f"{model_dir}: weight {exc} is missing") from None
        if model._word.shape[1] != shape.hidden or layers[0].up_w.shape[0] != shape.hidden:
            raise EmbedderError(f"{model_dir}: weights do not match hidden_size")
        log.debug("numpy BERT loaded from %s (%d layers)", model_dir, shape.layers)
        return model

    # ---------------------------------------------------------------- public

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> F32:
        """Unit vectors, one row per text, in the order given.

        Texts are grouped by length into batches of at most `batch_size` texts and
        `_BATCH_TOKENS` word pieces; several batches run at once on `workers` threads,
        each with single-threaded BLAS (see the module docstring for why).
        """
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([t.strip() for t in texts])
        ids = [np.asarray(e.ids, np.int64) for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        # Enough batches to keep every worker busy, none too small to be worth a thread.
        total = sum(len(i) for i in ids)
        budget = min(_BATCH_TOKENS, max(_MIN_SPLIT_TOKENS, -(-total // self.workers)))
        batches: list[list[int]] = []
        for i in order:  # longest first: each batch is padded to its first text's length
            last = batches[-1] if batches else []
            fits = len(ids[last[0]]) * (len(last) + 1) <= budget if last else False
            if fits and len(last) < batch_size:
                last.append(i)
            else:
                batches.append([i])

        def run(rows: list[int]) -> None:
            out[rows] = self._encode_padded([ids[i] for i in rows])

        with self._blas_limit():
            if len(batches) == 1 or self.workers == 1:
                for rows in batches:
                    run(rows)
            else:
                with ThreadPoolExecutor(min(self.workers, len(batches))) as pool:
                    list(pool.map(run, batches))  # longest batches start first
        return out

    def token_count(self, text: str) -> int:
        """Word pieces the model reads for `text`, special tokens included."""
        return len(self._tokenizer.encode(text.strip()).ids)

    def _blas_limit(self) -> AbstractContextManager[object]:
        limit: AbstractContextManager[object] = self._blas.limit(limits=1, user_api="blas")
        return limit

    # ---------------------------------------------------------------- forward pass

    def _encode_padded(self, ids: list[npt.NDArray[np.int64]]) -> F32:
        batch, length = len(ids), max(len(i) for i in ids)
        tokens = np.zeros((batch, length), np.int64)  # [PAD] is id 0
        mask = np.zeros((batch, length), np.float32)
        for row, piece in enumerate(ids):
            tokens[row, : len(piece)] = piece
            mask[row, : len(piece)] = 1.0
        hidden = self._forward(tokens, mask)
        summed = np.einsum("bld,bl->bd", hidden, mask)
        mean = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norm = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        unit: F32 = (mean / norm).astype(np.float32)
        return unit

    def _forward(self, tokens: npt.NDArray[np.int64], mask: F32) -> F32:
        batch, length = tokens.shape
        x: F32 = self._word[tokens] + self._position[:length] + self._token_type0
        x = _layer_norm(x.reshape(batch * length, self.dim), self._ln_g, self._ln_b, self.shape.eps)
        # Padding keys get the most negative float, as transformers' extended mask does.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in self._layers:
            x = self._layer(x, layer, bias, batch, length)
        return x.reshape(batch, length, self.dim)

    def _layer(self, x: F32, p: _Layer, bias: F32, batch: int, length: int) -> F32:
        heads, width = self.shape.heads, self.dim // self.shape.heads
        qkv = (x @ p.qkv_w + p.qkv_b).reshape(batch, length, 3, heads, width)
        # Contiguous copies: numpy's batched matmul is BLAS-fast only on contiguous matrices.
        q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))  # (batch, heads, len, w)
        k_t = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))  # (batch, heads, w, len)
        v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
        scores = np.matmul(q, k_t)
        scores *= np.float32(1.0 / math.sqrt(width))
        scores += bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch * length, self.dim)
        x = _layer_norm(context @ p.out_w + p.out_b + x, p.ln1_g, p.ln1_b, self.shape.eps)
        up: F32 = x @ p.up_w
        up += p.up_b
        _gelu_inplace(up)
        return _layer_norm(up @ p.down_w + p.down_b + x, p.ln2_g, p.ln2_b, self.shape.eps)


def _load_layer(w: dict[str, F32], prefix: str) -> _Layer:
    def linear(name: str) -> tuple[F32, F32]:
        # torch keeps (out, in); a transposed view multiplies as fast as a copy would
        return w[prefix + name + ".weight"].T, w[prefix + name + ".bias"]

    (q_w, q_b), (k_w, k_b), (v_w, v_b) = (
        linear(f"attention.self.{n}") for n in ("query", "key", "value")
    )
    out_w, out_b = linear("attention.output.dense")
    up_w, up_b = linear("intermediate.dense")
    down_w, down_b = linear("output.dense")
    return _Layer(
        qkv_w=np.concatenate([q_w, k_w, v_w], axis=1),
        qkv_b=np.concatenate([q_b, k_b, v_b]),
        out_w=out_w,
        out_b=out_b,
        ln1_g=w[prefix + "attention.output.LayerNorm.weight"],
        ln1_b=w[prefix + "attention.output.LayerNorm.bias"],
        up_w=up_w,
        up_b=up_b,
        down_w=down_w,
        down_b=down_b,
        ln2_g=w[prefix + "output.LayerNorm.weight"],
        ln2_b=w[prefix + "output.LayerNorm.bias"],
    )


def read_safetensors(path: Path) -> dict[str, F32]:
    """The float32 tensors of a safetensors file, memory-mapped (read-only, no copy).

    The format: an 8-byte little-endian header length, a JSON header mapping each
    tensor name to its dtype, shape and byte range, then the bytes. Mapping instead of
    reading means a query touches only the embedding rows of its own tokens.
    """
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            header_len = int.from_bytes(fh.read(8), "little")
            if not 2 <= header_len <= min(size - 8, _MAX_HEADER):
                raise ValueError(f"header length {header_len} does not fit the file")
            header = json.loads(fh.read(header_len))
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"cannot read {path}: {exc}") from None
    data = memoryview(mapped)[8 + header_len :]
    tensors: dict[str, F32] = {}
    try:
        for name, info in header.items():
            if name == "__metadata__" or info.get("dtype") != "F32":
                continue  # e.g. BERT's int64 position_ids buffer, which we do not need
            start, end = (int(n) for n in info["data_offsets"])
            shape = tuple(int(n) for n in info["shape"])
            if not 0 <= start <= end <= len(data) or end - start != 4 * math.prod(shape):
                raise ValueError(f"tensor {name!r} has a bad byte range")
            tensors[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(shape)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise EmbedderError(f"{path}: malformed safetensors header: {exc}") from None
    return tensors


def _layer_norm(x: F32, gain: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred: F32 = x - mean
    var = np.mean(np.square(centred), axis=-1, keepdims=True)
    centred /= np.sqrt(var + np.float32(eps))
    centred *= gain
    centred += bias
    return centred


def _gelu_inplace(x: F32) -> None:
    """x <- x * Phi(x) (exact GELU through erf), in cache-sized blocks of rows."""
    a1, a2, a3, a4, a5 = (np.float32(a) for a in _ERF_A)
    for start in range(0, x.shape[0], _GELU_BLOCK):
        block = x[start : start + _GELU_BLOCK]
        z = block * np.float32(1.0 / math.sqrt(2.0))  # erf argument
        az = np.abs(z)
        t = 1.0 / (1.0 + np.float32(_ERF_P) * az)
        poly = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
        np.square(az, out=az)
        np.negative(az, out=az)
        np.exp(az, out=az)
        poly *= az  # 1 - erf(|z|)
        erf = 1.0 - poly
        np.copysign(erf, z, out=erf)
        erf += 1.0
        erf *= 0.5
        block *= erf


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise EmbedderError(f"{path}: expected a JSON object")
    return data
