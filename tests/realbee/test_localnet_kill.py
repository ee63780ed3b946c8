"""`scripts/bee-localnet` killed outright takes its whole network with it.

`noosphere demo --real-bee` execs into the launcher, so a demo killed with SIGKILL is
a launcher killed with SIGKILL: nothing of it may survive, neither the Bee nodes and
anvil nor the command it runs (whose own children die with it in turn, as
tests/e2e/test_demo.py shows for the demo). A second network is brought up in a network
namespace of its own (nested in the tier's) around a shell that sleeps, under a subreaper that
collects every process orphaned when the launcher dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_demo import SUBREAPER

pytestmark = [pytest.mark.realbee]

ROOT = Path(__file__).resolve().parents[2]


def test_sigkill_of_the_launcher_leaves_no_node_anvil_or_command(tmp_path: Path) -> None:
    if not os.environ.get("NOOSPHERE_TEST_BEE_URL"):  # set by bee-localnet, once Bee is built
        pytest.skip("runs inside scripts/bee-localnet (scripts/test-realbee)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    env["TMPDIR"] = str(tmp_path)  # its work directory, left behind by a SIGKILL
    # The sleep lets go of the output pipe, so the pipe ends when the launcher's side dies.
    command = ["sh", "-c", "echo started-$((6 * 7)); exec sleep 600 >/dev/null 2>&1"]
    argv = [str(ROOT / "scripts" / "bee-localnet"), "run", "--nodes", "2", "--", *command]
    marker = "started-42"  # printed by the command itself (not in the launcher's log line)
    ran = subprocess.run(
        [sys.executable, "-c", SUBREAPER, json.dumps(argv), marker, str(signal.SIGKILL)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert any(marker in line for line in report["seen"]), report["seen"][-20:]
    assert report["code"] == -signal.SIGKILL
    # anvil, the bootnode, two Bee nodes and the command were its children when killed
    assert report["children"] >= 5, report
    assert report["left"] == [], report["left"]
