"""A worker killed with SIGKILL mid-job resumes from its local state and ends with the same
log root as an uninterrupted run; the test-only dishonest mode needs NOOSPHERE_TEST=1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from torch import nn

from tests.trainer.conftest import write_corpus
from tests.trainer.helpers import CORPUS, HP, THREADS, engine_for
from trainer.errors import TrainerError
from trainer.steplog import StepRecord
from trainer.tokenizer import GgufTokenizer
from trainer.worker import Dishonesty, LocalRun, Stopped, WorkerControl, train_job

STEPS = 4

CHILD = """
import sys, time
from pathlib import Path
from tests.trainer.helpers import HP, engine_for
from trainer.model import load_base_model
from trainer.tokenizer import GgufTokenizer
from trainer.worker import LocalRun, train_job

model, corpus, state = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
tok = GgufTokenizer(model)
engine, _ = engine_for(load_base_model(model), tok, sorted(corpus.iterdir()), HP, seed=5,
                       steps=int(sys.argv[4]), shard_tokens=64)
local = LocalRun(state)
saved = local.load_progress()
print("resumed at", 0 if saved is None else len(saved[0]), flush=True)
def progress(record, steps):
    print("step", record.index, flush=True)
    time.sleep(1.0)
log, checkpoints, final = train_job(engine, local, progress=progress)
print("root", log.root.hex(), sorted(checkpoints), flush=True)
"""


def _child(model_path: Path, corpus: Path, state: Path) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(model_path), str(corpus), str(state), str(STEPS)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.integration
def test_sigkill_mid_job_resumes_to_the_uninterrupted_log_root(
    base_model: nn.Module, tokenizer: GgufTokenizer, model_path: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    paths = write_corpus(corpus, CORPUS)
    engine, _ = engine_for(base_model, tokenizer, paths, HP, seed=5, steps=STEPS, shard_tokens=64)
    uninterrupted = engine.train()

    state = tmp_path / "state"
    first = _child(model_path, corpus, state)
    assert first.stdout is not None
    deadline = time.monotonic() + 120
    seen = []
    for line in first.stdout:
        seen.append(line.strip())
        if line.startswith("step 1"):
            break
        assert time.monotonic() < deadline, seen
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL
    saved = LocalRun(state).load_progress()
    assert saved is not None
    assert 2 <= len(saved[0]) < STEPS  # killed mid-job, after step 1 was saved

    second = _child(model_path, corpus, state)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    lines = out.splitlines()
    resumed_at = int(lines[0].split()[-1])
    assert resumed_at >= 2
    assert f"step {resumed_at - 1}" not in lines  # finished steps are not re-run
    root_line = next(line for line in lines if line.startswith("root"))
    assert root_line.split()[1] == uninterrupted.log.root.hex()
    assert "[0, 2, 4]" in root_line  # every checkpoint survives the kill
    assert THREADS == 2


def test_dishonest_mode_is_refused_outside_tests() -> None:
    with pytest.raises(TrainerError, match="NOOSPHERE_TEST=1"):
        Dishonesty.from_env({"NOOSPHERE_TEST_DISHONEST": "corrupt:1"})
    with pytest.raises(TrainerError, match="expected corrupt:N or skip:N"):
        Dishonesty.from_env({"NOOSPHERE_TEST_DISHONEST": "lie:1", "NOOSPHERE_TEST": "1"})
    assert Dishonesty.from_env({}) is None
    on = {"NOOSPHERE_TEST_DISHONEST": "corrupt:0", "NOOSPHERE_TEST_MODE": "1"}
    assert Dishonesty.from_env(on) == Dishonesty("corrupt", 0)
    assert Dishonesty.from_env(
        {"NOOSPHERE_TEST_DISHONEST": "skip:3", "NOOSPHERE_TEST": "1"}
    ) == Dishonesty("skip", 3)


@pytest.mark.integration
def test_pause_holds_and_stop_ends_at_a_step_boundary_then_the_run_resumes(
    base_model: nn.Module, tokenizer: GgufTokenizer, tmp_path: Path
) -> None:
    paths = write_corpus(tmp_path / "corpus", CORPUS)
    engine, _ = engine_for(base_model, tokenizer, paths, HP, seed=5, steps=STEPS, shard_tokens=64)
    uninterrupted = engine.train()
    control = WorkerControl()
    paused_for: list[float] = []

    def progress(record: StepRecord, steps: int) -> None:
        if record.index == 0:  # pause (as SIGUSR1 does); another thread resumes
            control.toggle_pause()
            started = time.monotonic()
            threading.Timer(0.5, control.toggle_pause).start()
            paused_for.append(started)
        if record.index == 1:  # SIGTERM: stop at the next boundary
            paused_for.append(time.monotonic() - paused_for[0])
            control.stop()

    local = LocalRun(tmp_path / "state")
    with pytest.raises(Stopped):
        train_job(engine, local, control=control, progress=progress)
    assert paused_for[1] >= 0.5  # step 1 waited for the resume
    saved = local.load_progress()
    assert saved is not None
    assert [r.index for r in saved[0]] == [0, 1]  # nothing past the boundary ran

    log, checkpoints, _ = train_job(engine, local)
    assert log.root == uninterrupted.log.root
    assert checkpoints == uninterrupted.checkpoints
