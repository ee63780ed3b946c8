"""Training on CUDA when asked and present: the profile names the GPU stack, CPU profiles keep
their bytes, a machine without a usable GPU refuses in torch's words, and a step made on one
device is never judged on the other."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import torch
from torch import nn

from swarm_vectordb.bee import keccak256
from tests.trainer.conftest import write_corpus
from tests.trainer.helpers import THREADS, engine_for
from trainer.dataset import Shard, build_dataset
from trainer.engine import JobPlan, StepEngine
from trainer.errors import DeviceUnavailable, ProfileMismatch
from trainer.profile import (
    CUBLAS_WORKSPACE,
    ExecutionProfile,
    cuda_unavailable,
    current_profile,
    pin_profile,
    require_profile,
)
from trainer.replay import replay, replay_from
from trainer.step import Hyperparams
from trainer.tokenizer import GgufTokenizer

HAS_CUDA = torch.cuda.is_available()
NO_CUDA = pytest.mark.skipif(HAS_CUDA, reason="this machine has a usable GPU")
NEEDS_CUDA = pytest.mark.skipif(
    not HAS_CUDA, reason="needs a usable CUDA GPU (torch.cuda.is_available() is False here)"
)

HP = Hyperparams(
    rank=4,
    alpha=8.0,
    lora_dropout=0.1,
    batch_size=2,
    seq_len=24,
    checkpoint_every=2,
)

A_GPU = ExecutionProfile(
    torch_version=str(torch.__version__),
    cpu_capability=torch.backends.cpu.get_cpu_capability(),
    threads=THREADS,
    device="cuda",
    gpu="NVIDIA H200",
    cuda_version="13.0",
    cudnn_version="92000",
    cublas_workspace=CUBLAS_WORKSPACE,
)


def test_a_cpu_profile_encodes_as_before_cuda_fields_existed() -> None:
    here = current_profile()
    # The pre-CUDA definition, written out independently: version + the six CPU fields.
    oracle = msgpack.packb(
        dict(
            sorted(
                {
                    "version": 1,
                    "torch_version": here.torch_version,
                    "cpu_capability": here.cpu_capability,
                    "threads": here.threads,
                    "dtype": "float32",
                    "deterministic": here.deterministic,
                    "device": "cpu",
                }.items()
            )
        ),
        use_bin_type=True,
    )
    assert here.encode() == oracle
    assert here.hash == keccak256(oracle)
    assert ExecutionProfile.from_document(here.as_document()) == here


def test_a_cuda_profile_names_the_gpu_stack_and_round_trips() -> None:
    document = A_GPU.as_document()
    assert document["gpu"] == "NVIDIA H200"
    assert document["cublas_workspace"] == ":4096:8"
    assert document["tf32"] is False
    assert ExecutionProfile.from_document(document) == A_GPU
    cpu = dataclasses.replace(
        A_GPU, device="cpu", gpu="", cuda_version="", cudnn_version="", cublas_workspace=""
    )
    assert cpu.hash != A_GPU.hash
    assert dataclasses.replace(A_GPU, gpu="NVIDIA A100").hash != A_GPU.hash
    assert dataclasses.replace(A_GPU, tf32=True).hash != A_GPU.hash
    assert "NVIDIA H200" in A_GPU.describe()
    assert "TF32 off" in A_GPU.describe()


def test_profile_documents_mixing_devices_are_rejected() -> None:
    with pytest.raises(ValueError, match="CUDA fields"):
        ExecutionProfile("2.13.0", "AVX2", 2, gpu="NVIDIA H200")
    with pytest.raises(ValueError, match="device"):
        ExecutionProfile("2.13.0", "AVX2", 2, device="mps")
    cpu_keys_on_cuda = current_profile().as_document() | {"device": "cuda"}
    with pytest.raises(ValueError, match="exactly when the device is cuda"):
        ExecutionProfile.from_document(cpu_keys_on_cuda)
    cuda_keys_on_cpu = A_GPU.as_document() | {"device": "cpu"}
    with pytest.raises(ValueError, match="exactly when the device is cuda"):
        ExecutionProfile.from_document(cuda_keys_on_cpu)


@NO_CUDA
def test_pinning_cuda_without_a_gpu_refuses_in_torchs_words() -> None:
    try:
        torch.cuda.init()  # type: ignore[no-untyped-call]
    except (RuntimeError, AssertionError) as exc:
        torch_says = str(exc).splitlines()[0]
    else:  # pragma: no cover - a GPU appeared between collection and the test
        pytest.skip("torch initialised CUDA")
    reason = cuda_unavailable()
    assert reason is not None
    assert torch_says in reason
    threads_before = torch.get_num_threads()
    with pytest.raises(DeviceUnavailable, match="CUDA is not usable here") as caught:
        pin_profile(THREADS, "cuda")
    assert torch_says in str(caught.value)
    assert torch.get_num_threads() == threads_before  # refused before changing anything
    with pytest.raises(DeviceUnavailable):
        current_profile("cuda")


@NO_CUDA
def test_a_cuda_job_on_a_machine_without_one_is_a_profile_mismatch_not_a_verdict() -> None:
    with pytest.raises(ProfileMismatch) as caught:
        require_profile(A_GPU)
    message = str(caught.value)
    assert "device: 'cpu' here, 'cuda' pinned" in message
    assert "gpu: '' here, 'NVIDIA H200' pinned" in message
    assert "not evidence" in message


@NO_CUDA
def test_train_worker_device_cuda_refuses_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("noosphere")),
            *("--home", str(tmp_path / "home")),
            *("train", "worker", "--opt-in", "--device", "cuda", "--yes"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "--device cuda: CUDA is not usable here" in lines[0]
    assert cuda_unavailable() in lines[0]  # type: ignore[operator]
    assert "Traceback" not in result.stderr


@pytest.mark.integration
@NO_CUDA
def test_an_engine_for_a_cuda_plan_refuses_on_this_cpu(
    base_model: nn.Module, tokenizer: GgufTokenizer, tmp_path: Path
) -> None:
    paths = write_corpus(tmp_path, {"a.txt": "Owls hunt at night in quiet woods. " * 10})
    built = build_dataset(paths, tokenizer, shard_tokens=64)
    shards = {
        i: Shard.decode(built.shard_bytes[e.reference]) for i, e in enumerate(built.manifest.shards)
    }
    plan = JobPlan(built.manifest, HP, 3, 2, dataclasses.replace(A_GPU, threads=THREADS))
    with pytest.raises(ProfileMismatch, match="'cuda' pinned"):
        StepEngine(copy.deepcopy(base_model), plan, shards)


@pytest.mark.integration
@NEEDS_CUDA
def test_two_cuda_runs_are_bit_identical_and_a_cpu_replay_is_refused(
    base_model: nn.Module, tokenizer: GgufTokenizer, tmp_path: Path
) -> None:
    paths = write_corpus(tmp_path, {"a.txt": "Owls hunt at night in quiet woods. " * 10})
    built = build_dataset(paths, tokenizer, shard_tokens=64)
    shards = {
        i: Shard.decode(built.shard_bytes[e.reference]) for i, e in enumerate(built.manifest.shards)
    }
    profile = pin_profile(THREADS, "cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    assert profile.device == "cuda"
    assert profile.gpu
    assert not profile.tf32
    plan = JobPlan(built.manifest, HP, 3, 2, profile)
    runs = []
    for _ in range(2):
        engine = StepEngine(copy.deepcopy(base_model), plan, shards)
        assert next(engine.model.module.parameters()).device.type == "cuda"
        runs.append((engine, engine.train()))
    (engine, first), (_, second) = runs
    assert [r.post_state for r in first.log.records] == [r.post_state for r in second.log.records]
    assert first.log.root == second.log.root
    assert all(r.profile == profile.hash for r in first.log.records)
    assert replay_from(engine, first.log, first.checkpoints, 1).matches

    cpu_engine, _ = engine_for(base_model, tokenizer, paths, HP, seed=3, steps=2, shard_tokens=64)
    assert cpu_engine.plan.manifest.root == built.manifest.root
    with pytest.raises(ProfileMismatch, match="not evidence"):
        replay(cpu_engine, first.log, 0, first.checkpoints[0], 1)
