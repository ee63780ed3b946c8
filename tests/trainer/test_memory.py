"""The worker's memory check is an upper bound: a real training run in a fresh process
peaks below `estimate_memory` for the same model and hyperparameters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.jobspec import estimate_memory
from trainer.step import Hyperparams

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_estimate_is_above_the_measured_peak_of_a_real_training_run(model_path: Path) -> None:
    rank, batch, seq_len = 4, 2, 48
    result = subprocess.run(
        [
            *(sys.executable, "-m", "tests.trainer.memory_probe", str(model_path)),
            *(str(rank), str(batch), str(seq_len), "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    estimate = estimate_memory(
        model_path, Hyperparams(rank=rank, batch_size=batch, seq_len=seq_len)
    )
    assert measured["estimate_bytes"] == estimate
    # The peak includes the fp32 weights twice (about 1.1 GB for SmolLM2-135M): a probe that
    # trained nothing could not pass for a real run.
    assert measured["peak_bytes"] > 1.5 * 2**30
    assert estimate >= measured["peak_bytes"]
