"""The base model for training: the agent's own GGUF, dequantized to fp32, with LoRA attached.

transformers reads the GGUF (`gguf_file=`), dequantizes every tensor to float32 and
undoes the q/k row permutation llama.cpp's converter applied, giving a Hugging Face
`LlamaForCausalLM` in its usual layout. peft then attaches LoRA to attention
projections only; `lm_head` is never a target (SmolLM2 ties it to the embeddings,
and its GGUF has no `output.weight` an adapter could name).

`LoraModel` exposes the trainable tensors under canonical names
(`layers.{i}.{q_proj|k_proj|v_proj|o_proj}.lora_{a|b}`) that do not depend on peft's
internal naming, in canonical order. The LoRA initialisation draws from torch's RNG
seeded by the job seed, so the initial state is a function of the job.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from swarm_vectordb.bee import keccak256
from trainer.errors import BaseModelError

__all__ = [
    "ATTENTION_TARGETS",
    "LoraModel",
    "LoraSpec",
    "base_model_hash",
    "load_base_model",
]

logger = logging.getLogger(__name__)

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
_PEFT_NAME = re.compile(
    r"layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.lora_([AB])\.default\.weight$"
)


@dataclass(frozen=True)
class LoraSpec:
    """Which projections get LoRA and its shape."""

    rank: int = 8
    alpha: float = 16.0  # scaling = alpha / rank, as in PEFT and llama.cpp
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    dropout: float = 0.0  # LoRA dropout; masks come from the step's seed

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError("LoRA rank must be at least 1")
        if not self.targets or any(t not in ATTENTION_TARGETS for t in self.targets):
            raise ValueError(f"LoRA targets must be among {ATTENTION_TARGETS}, got {self.targets}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("LoRA dropout must be in [0, 1)")


def base_model_hash(path: Path) -> bytes:
    """keccak256 of the GGUF file: the `base_model` a job names."""
    try:
        return keccak256(path.read_bytes())
    except OSError as exc:
        raise BaseModelError(f"{path}: cannot read the model file ({exc})") from exc


def load_base_model(path: Path, *, cache: bool = True) -> nn.Module:
    """The GGUF's weights as an fp32 `LlamaForCausalLM` (eval mode, no gradients).

    With `cache` (the default) the fp32 weights are read from, or after the first load
    written to, the base-model cache (`trainer.basecache`): the same tensors, bit for
    bit, in seconds instead of a dequantization of the whole GGUF.
    """
    if not cache:
        return _from_gguf(path)
    from trainer import basecache

    model_hash = base_model_hash(path)
    cached = basecache.load_cached(model_hash)
    if cached is not None:
        return cached
    model = _from_gguf(path)
    basecache.store(model, model_hash)
    return model


def _from_gguf(path: Path) -> nn.Module:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    if not path.is_file():
        raise BaseModelError(f"{path}: no such model file")
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(path.parent),
                gguf_file=path.name,
                dtype=torch.float32,
                attn_implementation="eager",
            )
    except (OSError, ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
        raise BaseModelError(f"{path}: transformers cannot load it for training ({exc})") from exc
    if getattr(model.config, "model_type", None) != "llama":
        raise BaseModelError(f"{path}: architecture {model.config.model_type!r} is not llama")
    model.requires_grad_(False)
    model.eval()
    return model  # type: ignore[no-any-return]


class LoraModel:
    """A base model with LoRA on attention projections; trainable tensors by canonical name."""

    def __init__(self, base: nn.Module, spec: LoraSpec, *, seed: int) -> None:
        from peft import LoraConfig, get_peft_model

        self.spec = spec
        config = LoraConfig(
            r=spec.rank,
            lora_alpha=spec.alpha,  # type: ignore[arg-type]  # peft annotates int, uses float
            target_modules=list(spec.targets),
            lora_dropout=spec.dropout,
            bias="none",
            task_type="CAUSAL_LM",
        )
        torch.manual_seed(seed & (2**63 - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.module: Any = get_peft_model(base, config)
        named: dict[str, nn.Parameter] = {}
        for name, param in self.module.named_parameters():
            if not param.requires_grad:
                continue
            match = _PEFT_NAME.search(name)
            if match is None:
                raise BaseModelError(f"unexpected trainable parameter {name}")
            layer, proj, side = match.groups()
            named[f"layers.{int(layer):03d}.{proj}.lora_{side.lower()}"] = param
        if not named:
            raise BaseModelError("peft attached no LoRA tensors: no matching projections")
        self.parameters: dict[str, nn.Parameter] = dict(sorted(named.items()))
        config_: Any = base.config
        self.n_heads: int = int(config_.num_attention_heads)
        self.n_kv_heads: int = int(getattr(config_, "num_key_value_heads", self.n_heads))
        self.n_layers: int = int(config_.num_hidden_layers)
        self.vocab_size: int = int(config_.vocab_size)

    @property
    def names(self) -> Sequence[str]:
        return list(self.parameters)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.module(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.logits  # type: ignore[no-any-return]

    def train(self, mode: bool = True) -> None:
        self.module.train(mode)

    def merged_delta(self, name_prefix: str) -> torch.Tensor:
        """delta W = (alpha / rank) * B @ A for one projection (`layers.NNN.q_proj`)."""
        a = self.parameters[f"{name_prefix}.lora_a"].detach()
        b = self.parameters[f"{name_prefix}.lora_b"].detach()
        return (self.spec.alpha / self.spec.rank) * (b @ a)
