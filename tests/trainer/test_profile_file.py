"""A job for machines unlike the requester's: `train profile --json` prints a machine's
execution profile, `job post --profile FILE` pins a job to it. The file is the one piece of
a job document a requester takes from outside, so every way it can be wrong is refused
with a message naming the problem, before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import torch
from click.testing import CliRunner, Result

from agent.cli.common import CliState
from agent.cli.market import job
from agent.cli.train import train
from agent.home import NodeHome
from trainer.profile import (
    MAX_PROFILE_FILE,
    ExecutionProfile,
    cuda_unavailable,
    current_profile,
    read_profile_file,
)

A_GPU_FIELDS = {  # what `train profile --device cuda --json` adds on an H200 worker
    "device": "cuda",
    "gpu": "NVIDIA H200",
    "cuda_version": "13.0",
    "cudnn_version": "92000",
    "cublas_workspace": ":4096:8",
    "tf32": False,
}


@pytest.fixture(autouse=True)
def torch_settings_restored() -> Iterator[None]:
    """`train profile` pins threads and deterministic algorithms in this process."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def invoke(group: click.Group, tmp_path: Path, *args: str) -> Result:
    state = CliState(home=NodeHome(tmp_path / "home"))
    return CliRunner().invoke(group, list(args), obj=state, catch_exceptions=False)


def write(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document))
    return path


def test_train_profile_prints_what_this_process_trains_under(tmp_path: Path) -> None:
    printed = invoke(train, tmp_path, "profile", "--threads", "1", "--json")
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.output)
    here = current_profile()  # after the command pinned 1 thread, deterministic
    assert here.threads == 1
    assert here.deterministic
    assert document == {
        "hash": here.hash.hex(),
        "describe": here.describe(),
        "profile": here.as_document(),
    }
    assert ExecutionProfile.from_document(document["profile"]).hash.hex() == document["hash"]
    assert read_profile_file(write(tmp_path / "p.json", document)) == here

    text = invoke(train, tmp_path, "profile", "--threads", "1")
    assert text.exit_code == 0
    assert text.output.splitlines() == [f"profile {here.hash.hex()}", here.describe()]


@pytest.mark.skipif(cuda_unavailable() is None, reason="this machine has a usable GPU")
def test_train_profile_on_cuda_without_a_gpu_says_why(tmp_path: Path) -> None:
    refused = invoke(train, tmp_path, "profile", "--device", "cuda", "--json")
    assert refused.exit_code == 1
    assert "--device cuda: CUDA is not usable here" in refused.output
    assert "{" not in refused.output  # no profile printed


def test_a_gpu_workers_profile_round_trips_bare_or_with_its_hash(tmp_path: Path) -> None:
    cpu = current_profile().as_document() | {"threads": 2, "deterministic": True}
    gpu = ExecutionProfile.from_document(cpu | A_GPU_FIELDS)
    assert read_profile_file(write(tmp_path / "bare.json", gpu.as_document())) == gpu
    assert read_profile_file(write(tmp_path / "full.json", gpu.as_json())) == gpu


def _hostile_files(tmp_path: Path) -> list[tuple[Path, str]]:
    good = current_profile().as_document() | {"threads": 2, "deterministic": True}
    edited = ExecutionProfile.from_document(good).as_json()
    edited["profile"]["threads"] = 4  # a hand edit that keeps the old hash
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"pad": "x" * MAX_PROFILE_FILE}))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00profile")
    return [
        (tmp_path / "absent.json", "cannot read"),
        (huge, "larger than"),
        (binary, "not JSON"),
        (write(tmp_path / "text.json", "a profile"), "must be a map"),
        (write(tmp_path / "list.json", [good]), "must be a map"),
        (write(tmp_path / "missing.json", {k: v for k, v in good.items() if k != "threads"}),
         "must be a map"),
        (write(tmp_path / "extra.json", good | {"note": "fast"}), "must be a map"),
        (write(tmp_path / "string.json", good | {"threads": "2"}), "threads must be of type"),
        (write(tmp_path / "bool.json", good | {"threads": True}), "threads must be of type"),
        (write(tmp_path / "half.json", good | {"gpu": "NVIDIA H200"}), "must be a map"),
        (write(tmp_path / "mixed.json", good | A_GPU_FIELDS | {"device": "cpu"}),
         "exactly when the device is cuda"),
        (write(tmp_path / "edited.json", edited), "is not the profile's own"),
        (write(tmp_path / "loose.json", good | {"deterministic": False}), "deterministic"),
        (write(tmp_path / "half-precision.json", good | {"dtype": "float16"}), "float32"),
        (write(tmp_path / "no-threads.json", good | {"threads": 0}), "1 to 256 threads"),
        (write(tmp_path / "device.json", good | {"device": "tpu"}), "device must be one of"),
    ]  # fmt: skip


def test_hostile_profile_files_are_refused_naming_the_problem(tmp_path: Path) -> None:
    for path, message in _hostile_files(tmp_path):
        with pytest.raises(ValueError, match=message):
            read_profile_file(path)


def test_job_post_refuses_a_bad_profile_before_sending_anything(tmp_path: Path) -> None:
    """Exit 2 with the reason; no chain or Swarm is configured, so reaching either would
    fail differently (and `job post` reads the profile before the model or the amount)."""
    common = ["post", "--dao", "0x" + "11" * 20, "--steps", "3", "--reward", "0.5", "--yes"]
    for path, message in _hostile_files(tmp_path):
        refused = invoke(job, tmp_path, *common, "--profile", str(path))
        assert refused.exit_code == 2, (path.name, refused.output)
        assert "Invalid value for --profile" in refused.output
        assert message in refused.output, refused.output
    good = write(tmp_path / "good.json", current_profile().as_json())
    both = invoke(job, tmp_path, *common, "--profile", str(good), "--threads", "2")
    assert both.exit_code == 2
    assert "not both" in both.output
    finished = invoke(job, tmp_path, *common, "--hyperparams", "ab" * 32, "--profile", str(good))
    assert finished.exit_code == 2
    assert "finished job document" in finished.output
