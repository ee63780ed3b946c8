"""`noosphere demo` end to end: the installed command, every role its own process.

The first test runs the whole demo and checks its JSON summary against what each
step must have shown: a network search answered by both peers, a signed reply from
the peer asked, a fork sharing the unchanged shards, a worker paid on chain, an
assistant that does not know the invented fact before and states it with the
trained adapter (`assert_demo_summary`, which the real-Bee tier's
tests/realbee/test_demo_realbee.py reuses). Quick ones check the refusals: no anvil,
a non-empty --workdir, `--real-bee` without Go or outside a clone, `--bee-from-env`
without Bee nodes.

Two interrupt the demo while its nodes are serving, with SIGINT (it stops every
child itself) and with SIGKILL (the kernel's parent-death signal must), and check
that no process it started is left. The demo runs under a small Python parent that
makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so any descendant
orphaned by the demo is re-parented to it instead of to init and can be listed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.demo import FACT, MissingTool, localnet_launcher
from chain.compile import NPM_INSTALL
from chain.devchain import find_anvil
from tests.conftest import Cli

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_anvil() is None, reason=f"anvil not installed: run `{NPM_INSTALL}`"),
]

DEMO_TIMEOUT_S = 1800


def demo_argv() -> list[str]:
    """`noosphere demo`: the installed command once the root group lists it; until then
    the same root group with the demo command added (what the entry point will run)."""
    exe = str(Path(sys.executable).with_name("noosphere"))
    listed = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    if " demo " in listed.stdout:
        return [exe, "demo"]
    code = "from agent.cli import main; from agent.cli.demo import register; register(main); main()"
    return [sys.executable, "-c", code, "demo"]


def assert_demo_summary(
    result: subprocess.CompletedProcess[str], password: str, workdir: Path
) -> dict[str, Any]:
    """What every demo run must have shown (dev node or real Bee); its JSON summary.

    Checked: a network search answered by both peers, a signed reply from the peer
    asked, a fork sharing the unchanged shards, the worker paid on chain, an assistant
    that does not know the invented fact before and states it with the trained adapter,
    the table printed, the password never printed, the work directory kept.
    """
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    facts = summary["facts"]
    assert summary["ok"] is True
    assert facts["search_peers_hit"] == ["peer A", "peer B"]
    assert facts["peer_ask"]["peer"] == "peer B"  # a signed reply from the other node
    assert facts["peer_ask"]["text"]
    assert facts["fork_shared"] > 0
    assert facts["fork_new"] > 0
    assert facts["job_status"] == "FINALIZED"
    (payment,) = summary["payments"]
    assert (payment["payer"], payment["payee"]) == ("assistant", "peer A")
    assert payment["wei"] == 5 * 10**17
    assert FACT.lower() not in facts["answer_before"].lower()
    assert FACT.lower() in facts["answer_after"].lower()
    assert all(s["ok"] for s in summary["steps"])
    header = [line.split() for line in result.stdout.splitlines()]
    assert ["step", "who", "result", "seconds"] in header  # the table was printed
    assert f"s on {summary['swarm']}" in result.stdout  # its last line names the Swarm
    assert password not in result.stdout + result.stderr
    # The work directory was given, so it is kept, with one home per node.
    assert {p.name for p in workdir.iterdir()} >= {"peer-a", "peer-b", "assistant", "logs"}
    return summary


def test_the_demo_searches_both_peers_forks_pays_the_worker_and_teaches_the_fact(
    cli: Cli, tmp_path: Path
) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [*demo_argv(), "--workdir", str(workdir), "--json"],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )
    summary = assert_demo_summary(result, cli.env["NOOSPHERE_PASSWORD"], workdir)
    assert summary["swarm"] == "Swarm dev node"
    steps = [s["step"] for s in summary["steps"]]
    assert steps[0] == "swarm dev"
    assert "postage stamp" in steps


SUBREAPER = textwrap.dedent(
    """
    import ctypes, json, os, signal, subprocess, sys, time

    def children():  # (pid, state) of the live processes whose parent is this one
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.append((int(pid), fields[0]))
        return found

    PR_SET_CHILD_SUBREAPER = 36
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    argv, marker, signum = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    demo = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in demo.stdout:
        seen.append(line.rstrip())
        if marker in line:
            break
    grandchildren = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        grandchildren += int(fields[1]) == demo.pid
    demo.send_signal(signum)
    seen += [line.rstrip() for line in demo.stdout]
    code = demo.wait(timeout=120)
    deadline = time.monotonic() + 10  # orphans reach this subreaper as they are reparented
    while (left := [p for p, state in children() if state != "Z"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:  # leave nothing behind for the next test either
        os.kill(pid, signal.SIGKILL)
    for pid, _ in children():
        os.waitpid(pid, 0)
    print(json.dumps({"code": code, "left": left, "children": grandchildren, "seen": seen}))
    """
)


def run_and_signal_demo(cli: Cli, tmp_path: Path, signum: int) -> dict[str, Any]:
    """Run the demo under a subreaper until both peers serve, send it `signum`; what the
    subreaper saw: the demo's exit `code`, its direct `children` then, processes `left`."""
    argv = [*demo_argv(), "--workdir", str(tmp_path / "demo")]
    marker = "serve "  # the line printed once both knowledge peers are serving
    ran = subprocess.run(
        [sys.executable, "-c", SUBREAPER, json.dumps(argv), marker, str(int(signum))],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=1200,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    report: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    assert any(marker in line for line in report["seen"]), report["seen"]
    assert report["children"] >= 3, report  # dev node, dev chain, two peers were running
    return report


def test_sigint_mid_demo_leaves_no_process_behind(cli: Cli, tmp_path: Path) -> None:
    report = run_and_signal_demo(cli, tmp_path, signal.SIGINT)
    assert report["code"] == 130, report["seen"][-20:]
    assert report["left"] == [], report["left"]
    assert any("stopping every process" in line for line in report["seen"])
    assert os.path.isdir(tmp_path / "demo" / "logs")


def test_sigkill_of_the_demo_kills_every_child_and_grandchild(cli: Cli, tmp_path: Path) -> None:
    """The demo gets no chance to clean up: the kernel's parent-death signal must stop
    its children, and `chain dev`'s anvil with its parent."""
    report = run_and_signal_demo(cli, tmp_path, signal.SIGKILL)
    assert report["code"] == -signal.SIGKILL, report["seen"][-20:]
    assert report["left"] == [], report["left"]
    assert not any("stopping every process" in line for line in report["seen"])


def test_without_anvil_the_demo_says_how_to_install_it_and_starts_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    workdir = tmp_path / "demo"
    missing = str(tmp_path / "no-anvil-here")
    ran = subprocess.run(
        [*demo_argv(), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env={**cli.env, "NOOSPHERE_ANVIL": missing},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "anvil" in ran.stderr
    assert NPM_INSTALL in ran.stderr
    assert missing in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (workdir / "assistant").exists()  # no node was set up


def test_a_non_empty_workdir_is_refused_and_left_alone(cli: Cli, tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    ran = subprocess.run(
        [*demo_argv(), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "not empty" in ran.stderr
    assert [p.name for p in workdir.iterdir()] == ["notes.txt"]
    assert (workdir / "notes.txt").read_text() == "mine"


def test_real_bee_without_go_says_what_is_missing_and_starts_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    path = [d for d in cli.env["PATH"].split(os.pathsep) if d and not Path(d, "go").exists()]
    workdir = tmp_path / "demo"
    ran = subprocess.run(
        [*demo_argv(), "--real-bee", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        env={**cli.env, "PATH": os.pathsep.join(path)},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    (line,) = ran.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: --real-bee builds Bee 2.8.1 with Go, which is not on PATH")
    assert "https://go.dev/dl" in line
    assert "bee-localnet:" not in ran.stdout + ran.stderr  # the network was never started
    assert not workdir.exists()


def test_real_bee_outside_a_clone_names_the_missing_launcher(tmp_path: Path) -> None:
    with pytest.raises(MissingTool, match=r"scripts/bee-localnet .*\./scripts/bootstrap"):
        localnet_launcher(tmp_path)


def test_bee_from_env_without_bee_nodes_is_refused(cli: Cli, tmp_path: Path) -> None:
    ran = subprocess.run(
        [*demo_argv(), "--bee-from-env", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env={**cli.env, "NOOSPHERE_TEST_BEE_URL": "http://127.0.0.1:1"},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "without a usable batch: set NOOSPHERE_TEST_BEE_BATCH" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "demo").exists()
