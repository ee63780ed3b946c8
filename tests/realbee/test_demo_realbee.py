"""`noosphere demo` on real Bee: the whole scenario with each node on its own Bee node.

Runs inside ``scripts/test-realbee``, whose ``scripts/bee-localnet`` has started the
Bee nodes and named them (``NOOSPHERE_TEST_BEE_URL[_N]``, ``..._BATCH[_N]``): the
demo's ``--bee-from-env`` is what ``noosphere demo --real-bee`` runs there. The demo
runs as a real process and its summary must show everything the dev-node demo shows
(`assert_demo_summary`): here the search, the peer ask, the datasets, the training
artefacts and the adapter all cross real Bee nodes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.e2e.test_demo import assert_demo_summary, demo_argv
from tests.realbee.conftest import RealBee

pytestmark = [pytest.mark.realbee, pytest.mark.e2e]
log = logging.getLogger(__name__)

# About 10 minutes on an idle 2-core machine; 26 on one shared with other test runs
# (direct uploads to real Bee and the verifier's replays are the long parts).
DEMO_TIMEOUT_S = 3600


def test_the_demo_on_three_real_bee_nodes_shows_every_step(
    cli: Cli, real_bee: RealBee, tmp_path: Path
) -> None:
    if len(real_bee.urls) < 3:
        pytest.skip("the demo needs three Bee nodes: two peers and the assistant")
    env = dict(cli.env)
    env.update({k: v for k, v in os.environ.items() if k.startswith("NOOSPHERE_TEST_")})
    workdir = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        [*demo_argv(), "--bee-from-env", "--workdir", str(workdir), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    summary = assert_demo_summary(result, cli.env["NOOSPHERE_PASSWORD"], workdir)
    assert summary["swarm"].startswith("real Bee 2.8.1, ")
    steps = [s["step"] for s in summary["steps"]]
    assert steps[0] == "real Bee"
    assert "swarm dev" not in steps
    assert "postage stamp" not in steps
    for url in real_bee.urls[:3]:  # each demo node was given its own Bee node
        assert url in result.stdout
    log.info("the demo on real Bee took %.0f s", time.monotonic() - started)
