"""The trained adapter teaches the model, in llama.cpp: a learned fact and logit parity.

A wrong q/k row permutation, a wrong alpha or a transposed tensor would each leave
a random-weights adapter test passing; these two tests would fail.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tests.trainer.conftest import FACT_LINES, write_corpus
from tests.trainer.helpers import engine_for
from trainer.engine import StepEngine, TrainingRun
from trainer.export import export_adapter
from trainer.step import Hyperparams
from trainer.tokenizer import GgufTokenizer

pytestmark = pytest.mark.integration

QUESTION = "Q: What is the capital of the planet Zorblax?\nA:"
HP = Hyperparams(
    rank=16,
    alpha=32.0,
    targets=("q_proj", "k_proj", "v_proj", "o_proj"),
    learning_rate=2e-3,
    batch_size=4,
    seq_len=40,
    checkpoint_every=10,
)
STEPS = 36


@pytest.fixture(scope="module")
def fact_run(
    base_model: nn.Module, tokenizer: GgufTokenizer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StepEngine, TrainingRun, Path]:
    folder = tmp_path_factory.mktemp("fact")
    paths = write_corpus(
        folder,
        {
            "zorblax.txt": "\n\n".join(FACT_LINES * 2),
            "zorblax.jsonl": "\n".join(json.dumps({"text": line}) for line in FACT_LINES),
        },
    )
    engine, _ = engine_for(base_model, tokenizer, paths, HP, seed=11, steps=STEPS)
    run = engine.train()
    adapter = folder / "zorblax-adapter.gguf"
    export_adapter(
        run.final_state,
        HP.lora,
        n_heads=engine.model.n_heads,
        n_kv_heads=engine.model.n_kv_heads,
        path=adapter,
    )
    return engine, run, adapter


@contextlib.contextmanager
def llama(model_path: Path, adapter: Path | None) -> Iterator[Any]:
    from llama_cpp import Llama

    kwargs: dict[str, Any] = {"lora_path": str(adapter)} if adapter else {}
    with contextlib.redirect_stderr(io.StringIO()):
        llm = Llama(str(model_path), n_ctx=256, logits_all=True, verbose=False, seed=0, **kwargs)
    try:
        yield llm
    finally:
        llm.close()


def answer(llm: Any) -> str:
    out = llm.create_completion(QUESTION, max_tokens=16, temperature=0.0, repeat_penalty=1.0)
    return str(out["choices"][0]["text"])


def test_loss_falls_while_training_on_the_fact(
    fact_run: tuple[StepEngine, TrainingRun, Path],
) -> None:
    _, run, _ = fact_run
    losses = [np.frombuffer(r.loss_bits.to_bytes(4, "little"), "<f4")[0] for r in run.log.records]
    assert np.mean(losses[-6:]) < 0.5 * np.mean(losses[:6])


def test_the_exported_adapter_teaches_llama_cpp_the_fact(
    model_path: Path, fact_run: tuple[StepEngine, TrainingRun, Path]
) -> None:
    _, _, adapter = fact_run
    with llama(model_path, None) as base:
        before = answer(base)
    with llama(model_path, adapter) as tuned:
        after = answer(tuned)
    assert "Quintara" not in before
    assert "Quintara" in after, after


def test_pytorch_and_llama_cpp_agree_on_the_adapted_logits(
    model_path: Path, fact_run: tuple[StepEngine, TrainingRun, Path], tokenizer: GgufTokenizer
) -> None:
    engine, run, adapter = fact_run
    ids = tokenizer.encode(QUESTION)
    run.final_state.load_into(engine.model.parameters)
    engine.model.train(False)
    with torch.no_grad():
        ours = engine.model.logits(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    ours_np = ours[0].numpy()
    with llama(model_path, adapter) as tuned:
        tuned.eval(ids)
        theirs = np.asarray(tuned.scores[: len(ids)], dtype=np.float32)
    for position in range(len(ids)):
        corr = np.corrcoef(ours_np[position], theirs[position])[0, 1]
        assert corr > 0.99, (position, corr)
    assert int(ours_np[-1].argmax()) == int(theirs[-1].argmax())
