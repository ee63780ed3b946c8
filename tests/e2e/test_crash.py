"""`kill -9` in the middle of things, then a restart on the same home: nothing is lost.

Every part is a real process (`noosphere swarm dev`, `noosphere node`, the thin clients,
anvil for the training market); only the moment of each kill is chosen by the test, and
not by timed sleeps: the victim is frozen (SIGSTOP) at a point the test can see (a frame
in its inbox, its first index batch on disk, a step logged), checked, then killed
(SIGKILL).

- A serving node killed while a peer's query waits in its inbox: the asking node's
  search ends at its deadline and says the peer did not answer; the killed node restarts
  (neither its stale `node.json` nor a recycled pid stops it) with every chunk it had,
  and answers again. The asking node killed while a thin client's request is inside it:
  the client prints one line and exits 1; the restarted node answers the same request.
- A node killed half-way through a thin client's `ingest`: its index loads, holds only
  whole files' worth of chunks, and the same ingest run again ends with exactly the
  chunks the files make.
- `node --train` killed mid-job: restarted, it resumes from its saved steps, submits the
  log root an uninterrupted run computes, and is paid.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from web3.types import RPCEndpoint

from agent.api.client import NodeClient
from agent.api.discovery import read_node_file, write_node_file
from chain.compile import NPM_INSTALL
from chain.devchain import find_anvil
from chain.records import JobStatus
from swarm_vectordb.bee import BeeClient
from swarm_vectordb.index import VectorIndex
from swarm_vectordb.ingest import EMBED_BATCH, MANIFEST_NAME
from swarm_vectordb.routing import text_reference
from tests.conftest import Cli
from tests.e2e import test_node as node_e2e
from tests.e2e import test_training_flow as training_e2e
from tests.e2e.test_node import FACT, QUESTION, RunningNode, make_cli, node_process
from tests.e2e.test_training_flow import WINDOW, market
from tests.trainer.helpers import engine_for
from trainer.localrun import LocalRun
from trainer.model import load_base_model
from trainer.step import Hyperparams
from trainer.tokenizer import GgufTokenizer

pytestmark = [pytest.mark.e2e]

# Fixtures and helpers shared with the other end-to-end tests.
bee_url = node_e2e.bee_url  # `noosphere swarm dev` in its own process, a stamp bought
swarm_url = training_e2e.swarm_url  # the same, for market(), which buys its own stamp
spawn = training_e2e._spawn  # a `noosphere` process, stderr merged into stdout
read_until = training_e2e._read_until
stop_process = training_e2e._stop

SEARCH = "Quillmoth Observatory founder"
DEADLINE_S = 5.0  # how long a network search waits for peers' answers
INBOX = re.compile(r"\(inbox ([0-9a-f]{64})\)")


class InboxWatch:
    """What arrives at a GSOC inbox on the Swarm node, seen by the test's own subscriber
    (its own thread and event loop, so the blocking test can wait for a frame)."""

    def __init__(self, bee_url: str, inbox: bytes) -> None:
        self.bee_url, self.inbox = bee_url, inbox
        self.frames: queue.Queue[bytes] = queue.Queue()
        self._subscribed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> InboxWatch:
        self._thread.start()
        if not self._subscribed.wait(30) or self._failure is not None:
            raise AssertionError(f"could not subscribe to the inbox: {self._failure}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def next_frame(self, timeout: float) -> bytes:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing reached the inbox within {timeout} s") from None

    def _run(self) -> None:
        try:
            asyncio.run(self._watch())
        except BaseException as exc:  # reported by __enter__ or next_frame's timeout
            self._failure = exc
            self._subscribed.set()

    async def _watch(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with (
            BeeClient(self.bee_url, timeout=20) as bee,
            await bee.gsoc_subscribe(self.inbox) as subscription,
        ):
            self._subscribed.set()

            async def pump() -> None:
                async for frame in subscription:
                    self.frames.put(frame)

            task = asyncio.create_task(pump())
            await self._stop.wait()
            task.cancel()


def start(cli: Cli, *args: str) -> subprocess.Popen[str]:
    """A `noosphere` command running beside the test (stdout and stderr kept apart)."""
    exe = Path(sys.executable).with_name("noosphere")
    return subprocess.Popen(
        [str(exe), *args],
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(node: RunningNode) -> None:
    node.process.kill()
    node.process.wait(timeout=30)
    assert node.process.returncode == -signal.SIGKILL


@contextmanager
def frozen(node: RunningNode) -> Iterator[None]:
    """The node stopped (SIGSTOP) for the block; continued after, unless killed meanwhile."""
    node.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGCONT)


def inbox_of(node: RunningNode) -> bytes:
    found = INBOX.search(node.log.read_text())
    assert found is not None, node.log_tail()
    return bytes.fromhex(found.group(1))


def api_url(node: RunningNode) -> str:
    found = read_node_file(node.cli.home)
    assert found is not None
    return found.url


def index_size(cli: Cli) -> int:
    client = NodeClient.discover(cli.home)
    assert client is not None
    return int(client.status()["index_size"])


def test_a_serving_node_killed_mid_query_and_a_querying_node_killed_mid_request_lose_nothing(
    bee_url: str, tmp_path: Path
) -> None:
    a = make_cli(tmp_path, "a", bee_url)
    b = make_cli(tmp_path, "b", bee_url)
    for cli in (a, b):
        assert cli("init").returncode == 0
    b_address = json.loads(b("id", "--json").stdout)["address"].lower()
    a.env["NOOSPHERE_NETWORK_PEERS"] = json.dumps([b_address])
    fact_file = tmp_path / "quillmoth.md"
    fact_file.write_text(f"# Quillmoth Observatory\n\n{FACT}\n")
    network_search = ("search", "--network", "--deadline", str(DEADLINE_S), SEARCH)

    with node_process(b) as node_b, node_process(a) as node_a:
        ingested = b("ingest", str(fact_file))
        assert ingested.returncode == 0, ingested.stderr
        chunks = index_size(b)
        assert chunks >= 1
        inbox = inbox_of(node_b)
        found = a(*network_search[:-1], "--json", SEARCH)
        assert found.returncode == 0, (found.stderr, node_a.log_tail())
        assert any("Varrow" in h["text"] for h in json.loads(found.stdout)["hits"])

        # B freezes before it can answer; A's query reaches B's inbox; B is killed there.
        with InboxWatch(bee_url, inbox) as watch, frozen(node_b):
            search = start(a, *network_search[:-1], "--json", SEARCH)
            watch.next_frame(60)
            # Frozen, B cannot answer a ping; it still holds its home against a second node.
            beside = b("node", "--api-port", "0", timeout=60)
            assert beside.returncode == 2, beside.stderr
            assert f"a node already runs for {b.home}" in beside.stderr
            kill(node_b)
        out, err = search.communicate(timeout=DEADLINE_S + 60)
        assert search.returncode == 0, err
        report = json.loads(out)
        assert [(p["address"], p["answered"]) for p in report["peers"]] == [(b_address, False)]
        assert report["elapsed_ms"] < (DEADLINE_S + 5) * 1000  # the deadline held
        assert report["hits"] == []
        assert index_size(a) == 0  # A's API goes on answering

        # B's node.json is stale, and its pid now names a live process (A) whose URL
        # answers: B's clients must not take A for B, nor may it keep B from restarting.
        stale = read_node_file(b.home)
        assert stale is not None
        assert stale.pid == node_b.process.pid
        a_file = read_node_file(a.home)
        assert a_file is not None
        write_node_file(b.home, replace(stale, pid=node_a.process.pid, url=a_file.url))
        alone = b("search", "--json", SEARCH)  # in-process, on B's own index
        assert alone.returncode == 0, alone.stderr
        assert "Varrow" in json.loads(alone.stdout)["hits"][0]["text"]
        with node_process(b) as node_b:
            assert index_size(b) == chunks  # every chunk B had
            again = a(*network_search)  # finds B's fact again
            assert again.returncode == 0, again.stderr
            assert "Varrow" in again.stdout
            assert f"peer {b_address}: " in again.stderr
            assert "no answer" not in again.stderr

            # A killed while a thin client's request waits inside it for B: a search, then a
            # streamed ask; each time the client says so in one line and exits 1, and the
            # restarted A answers the same request.
            requests = [
                ("search", "--network", "--deadline", "60", SEARCH),
                ("ask", f"ask {b_address} {QUESTION}"),
            ]
            with ExitStack() as restarted:
                for request in requests:
                    with InboxWatch(bee_url, inbox) as watch, frozen(node_b):
                        thin = start(a, *request)
                        watch.next_frame(60)
                        url = api_url(node_a)
                        kill(node_a)
                        out, err = thin.communicate(timeout=60)
                    assert thin.returncode == 1, (out, err)
                    assert "Traceback" not in err
                    errors = [line for line in err.splitlines() if line.startswith("error:")]
                    assert errors == err.strip().splitlines()[-1:], err
                    assert errors[0].startswith(f"error: the node at {url} went away")
                    node_a = restarted.enter_context(node_process(a))
                    same = a(*request, timeout=300)
                    assert same.returncode == 0, (same.stderr, node_a.log_tail())
                    assert "Varrow" in same.stdout


CHUNK_TOKENS, CHUNK_OVERLAP = 32, 4  # small chunks: many embedding batches from little text
COLOURS = ("amber", "cobalt", "crimson", "ivory", "jade", "ochre", "slate")
PLACES = ("Arvel", "Brisk", "Cendra", "Dunmore", "Elsk", "Farrow", "Gildenmoor", "Harth")


def ledger(book: int, lines: int = 60) -> str:
    """A document of distinct sentences (so that no two chunks are the same)."""
    return "\n".join(
        f"Ledger {book}, line {i}: the {COLOURS[i % 7]} barge from {PLACES[(i + book) % 8]} "
        f"carried {17 * i + book} crates and {i * i + 3 * book} barrels."
        for i in range(lines)
    )


def chunk_refs(paths: list[Path]) -> set[bytes]:
    """The Swarm references of every chunk the files make: what a whole ingest indexes."""
    from swarm_vectordb.chunking import Chunker, read_document
    from swarm_vectordb.embedding import resolve_model

    model_dir, _ = resolve_model("all-MiniLM-L6-v2")  # the configured (default) embedder
    chunker = Chunker.for_model_dir(model_dir, max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP)
    return {text_reference(c.text) for p in paths for c in chunker.chunk(read_document(p))}


def open_index(directory: Path) -> VectorIndex:
    meta = json.loads((directory / "index.json").read_text())
    return VectorIndex(directory, meta["dim"], meta["model_id"])


def test_a_node_killed_mid_ingest_keeps_whole_files_and_the_same_ingest_completes(
    bee_url: str, tmp_path: Path
) -> None:
    b = make_cli(tmp_path, "b", bee_url)
    b.env["NOOSPHERE_INDEX_CHUNK_TOKENS"] = str(CHUNK_TOKENS)
    b.env["NOOSPHERE_INDEX_CHUNK_OVERLAP"] = str(CHUNK_OVERLAP)
    assert b("init").returncode == 0
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    paths = []
    for book in range(3):
        paths.append(corpus / f"ledger-{book}.txt")
        paths[-1].write_text(ledger(book))
    expected = chunk_refs(paths)
    assert len(expected) > 2 * EMBED_BATCH  # the ingest indexes in three batches or more
    data = b.home / "data"
    wal = data / "index" / "index.wal"

    with node_process(b) as node:
        assert wal.stat().st_size == 0
        ingest = start(b, "ingest", str(corpus))
        deadline = time.monotonic() + 120
        while wal.stat().st_size == 0:  # the first batch is being written
            assert ingest.poll() is None, node.log_tail()
            assert time.monotonic() < deadline, node.log_tail()
            time.sleep(0.01)
        with frozen(node):
            assert ingest.poll() is None  # the ingest has more to do
            kill(node)
        _, err = ingest.communicate(timeout=60)
        assert ingest.returncode == 1, err
        assert "Traceback" not in err
        assert "went away" in err

        # What the kill left, examined on a copy: the index loads (a torn tail is cut),
        # every chunk in it is whole, and a file the manifest calls done has every chunk.
        left = tmp_path / "left"
        shutil.copytree(data, left)
        with open_index(left / "index") as index:
            held = {bytes(c.ref) for c in index.chunks()}
            assert all(text_reference(c.text) == c.ref for c in index.chunks())
        assert 0 < len(held) < len(expected)
        assert held <= expected
        manifest_file = left / MANIFEST_NAME
        manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
        assert len(manifest) < len(paths)
        for entry in manifest.values():
            assert {bytes.fromhex(r) for r in entry["refs"]} <= held

        with node_process(b):
            again = b("ingest", "--json", str(corpus))
            assert again.returncode == 0, again.stderr
            report = json.loads(again.stdout)
            assert report["chunks_in_index"] == len(expected)
            assert report["chunks_added"] == len(expected) - len(held)
            assert report["files_skipped_unchanged"] == len(manifest)
            assert report["files_failed"] == {}
    with open_index(data / "index") as index:  # the node stopped: exactly the files' chunks
        assert {bytes(c.ref) for c in index.chunks()} == expected


# market()'s job: 3 steps, these hyperparameters, seed 3, shards of 64 tokens.
TRAIN_STEPS, KILL_AFTER = 3, 1
JOB_HP = Hyperparams(rank=4, alpha=8.0, batch_size=2, seq_len=24, checkpoint_every=2)


def uninterrupted_root(model_path: Path, corpus: Path) -> str:
    """The log root of the market's job trained in one go, here, from the local corpus."""
    tokenizer = GgufTokenizer(model_path)
    try:
        paths = sorted(corpus.iterdir())
        engine, _ = engine_for(
            load_base_model(model_path), tokenizer, paths, JOB_HP, seed=3, steps=TRAIN_STEPS,
            shard_tokens=64,
        )  # fmt: skip
        return engine.train().log.root.hex()
    finally:
        tokenizer.close()


@pytest.mark.skipif(find_anvil() is None, reason=f"anvil not installed: run `{NPM_INSTALL}`")
def test_a_training_node_killed_mid_job_resumes_to_the_uninterrupted_root_and_is_paid(
    cli: Cli, swarm_url: str, tmp_path: Path, model_path: Path
) -> None:
    with market(cli, swarm_url, tmp_path) as m:
        expected = uninterrupted_root(model_path, tmp_path / "corpus")
        node = (
            *m.net, "node", "--api-port", "0", "--train", "--yes", "--deployment", m.deployment,
        )  # fmt: skip
        first = spawn(m.worker, *node)
        try:
            lines = read_until(first, f"step {KILL_AFTER}/{TRAIN_STEPS}", 400)
            first.send_signal(signal.SIGSTOP)  # frozen mid-job: what is saved stays saved
            (folder,) = (m.worker.home / "trainer").glob(f"job-{m.job_id}-*")
            saved = LocalRun(folder).load_progress()
            assert saved is not None
            done = len(saved[0])
            assert KILL_AFTER <= done < TRAIN_STEPS, lines
            first.kill()
            assert first.wait(timeout=30) == -signal.SIGKILL
        finally:
            stop_process(first)

        second = spawn(m.worker, *node)
        try:
            lines = read_until(second, "submitted log root", 400)
            steps = [line for line in lines if re.search(r"job \d+: step \d+/", line)]
            assert steps[0].startswith(f"job {m.job_id}: step {done + 1}/{TRAIN_STEPS}"), lines
            assert len(steps) == TRAIN_STEPS - done  # finished steps are not trained again
            assert f"submitted log root {expected} " in lines[-1]
            shown = json.loads(cli(*m.net, "job", "show", m.job_id, "--json").stdout)
            assert shown["steps"] == TRAIN_STEPS
            assert shown["log_root"] == "0x" + expected  # on chain: the uninterrupted root
            m.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [WINDOW + 1])
            m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            lines += read_until(second, "withdrew", 120)
            assert "withdrew 0.5 ETH" in lines  # the reward
        finally:
            stop_process(second)
        shown = json.loads(cli(*m.net, "job", "show", m.job_id, "--json").stdout)
        assert shown["status"] == JobStatus.FINALIZED
