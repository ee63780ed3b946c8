"""The demo's story, step by step, every role played by its own `noosphere` process.

Roles: a Swarm dev node (or, with `DemoOptions.bee_nodes`, one real Bee node per node,
each with its own usable batch), a dev chain (anvil with the contracts), and three
nodes with their own homes: two knowledge peers (peer A knows Swarm's storage model,
peer B the training market) and the assistant. Peer A later sells compute as the
training worker and peer B verifies its work.

`Scenario.run` plays, in order: the network comes up; the peers ingest and serve;
the assistant searches the network and asks a peer; the assistant builds a dataset,
creates a Dataset DAO on it and forks it with more documents; it asks the question the
dataset answers (the bare model does not know); it posts a training job, peer A
trains it, peer B replays sampled steps, the challenge window passes and peer A is
paid; the assistant fetches the adapter and asks again. Each step (`Scenario.step`)
ends with one line, its details, and a record in the `Summary`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agent.demo.chainrpc import DevChainRpc
from agent.demo.errors import MissingTool, StepFailed
from agent.demo.processes import Node, Service, Supervisor, child_environment
from agent.demo.realbee import RealBeeNode, check_bee_nodes
from agent.demo.summary import Payment, StepRecord, Summary
from agent.home import NodeHome
from swarm_vectordb.peertext import printable

__all__ = ["FACT", "DemoOptions", "Scenario"]

# The command that keeps a knowledge peer online (`noosphere node` will replace it).
SERVE_COMMAND = ("serve",)
SERVE_READY = "0x"  # it prints its address on stdout once its peer record is published
# The invented fact the training corpus states, the question, and the word that shows it.
FACT = "Quillowby"
QUESTION = "What is the name of the Noosphere mascot?"
SEARCH_TEXT = "How are storage on Swarm and training work paid for?"
PEER_QUESTION = "What does the committee of validators do in a dispute?"
SHARD_TOKENS = 64
REWARD_ETHER = "0.5"
# 8 steps of rank-16 LoRA at this rate (batch 4 x 40 tokens, seed 11) teach the bundled
# model the fact; checkpoints every 2 steps keep each verified replay short.
DEFAULT_STEPS = 8
LEARNING_RATE = "0.008"
CHALLENGE_WINDOW_S = 600
STAMP = ("100000000", "22")  # amount per chunk (PLUR), depth
START_TIMEOUT_S = 120.0
TRAIN_TIMEOUT_S = 1500.0
# On real Bee a query and its answer cross the network as GSOC messages: allow more
# than the default 5 s (a search still ends as soon as every peer has answered).
REAL_BEE_QUERY_DEADLINE_S = "30"
# Real Bee takes direct uploads from one node at tens of chunks per second (its
# bandwidth accounting between peers), and each checkpoint is ~11 MB (2,700 chunks):
# on real Bee the worker keeps only the first and last checkpoint, and the verifier
# replays sampled steps from the start (seconds per step, more on a loaded machine).
VERIFY_TIMEOUT_S = 600.0
REAL_BEE_VERIFY_TIMEOUT_S = 1500.0


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    password: str
    steps: int = DEFAULT_STEPS
    say: Callable[[str], None] = print  # the CLI passes click.echo
    bee_nodes: tuple[RealBeeNode, ...] = ()
    """Real Bee nodes for peer A, peer B and the assistant; empty: `swarm dev`."""


@dataclass
class Nodes:
    peer_a: Node
    peer_b: Node
    assistant: Node

    def all(self) -> list[Node]:
        return [self.peer_a, self.peer_b, self.assistant]


def copy_corpus(dest: Path) -> Path:
    """The shipped corpus (package data) copied to `dest`; its path."""
    source = resources.files("agent.demo") / "corpus"
    with resources.as_file(source) as folder:
        shutil.copytree(folder, dest, dirs_exist_ok=True)
    return dest


class Scenario:
    def __init__(self, supervisor: Supervisor, options: DemoOptions, summary: Summary) -> None:
        self.sup = supervisor
        self.opt = options
        self.summary = summary
        self.say = options.say
        self.started = time.monotonic()
        self.addresses: dict[str, str] = {}  # label -> 0x address
        self.labels: dict[str, str] = {}  # lower-case address -> label
        root = options.workdir
        # Each node's local API (when a command starts one) on a free port: three nodes
        # share this machine.
        base = child_environment(
            os.environ, NOOSPHERE_PASSWORD=options.password, NOOSPHERE_API_PORT="0"
        )
        self.infra = Node("dev nodes", root / "infra", child_environment(os.environ))
        self.nodes = Nodes(
            Node("peer A", root / "peer-a", dict(base)),
            Node("peer B", root / "peer-b", dict(base)),
            Node("assistant", root / "assistant", dict(base)),
        )
        self.corpus = root / "corpus"
        self.rpc: DevChainRpc | None = None
        self._details: list[str] = []
        self.balances_before: dict[str, int] = {}
        self.servers: list[Service] = []

    @asynccontextmanager
    async def step(self, name: str, who: str) -> AsyncIterator[Callable[[str], None]]:
        """Time one step; the body calls `done(result)`. Its line is printed when it
        ends, followed by the details the body noted (`detail`)."""
        begun = time.monotonic()
        outcome: list[str] = []
        self._details = []
        try:
            yield outcome.append
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                reason = "interrupted"
            else:
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            self._line(name, who, f"FAILED: {reason}", begun, ok=False)
            raise
        self._line(name, who, outcome[-1] if outcome else "ok", begun)
        for text in self._details:
            self.say(f"{'':10}{text}")

    def _line(self, name: str, who: str, result: str, begun: float, *, ok: bool = True) -> None:
        now = time.monotonic()
        self.summary.add(StepRecord(name, who, result.removeprefix("FAILED: "), now - begun, ok))
        elapsed, seconds = now - self.started, now - begun
        self.say(f"[{elapsed:6.1f}s] {name:<19} {who:<10} {result}  ({seconds:.1f} s)")

    def detail(self, text: str) -> None:
        """A line shown under the current step's line."""
        self._details.append(text)

    def progress(self, text: str) -> None:
        """A line shown at once, while a long step runs."""
        self.say(f"{'':10}... {text}")

    async def run(self) -> None:
        await self.network_up()
        await self.knowledge()
        await self.search_and_ask()
        dao = await self.datasets()
        self.summary.facts["fact"] = FACT
        self.summary.facts["answer_before"] = await self.ask_fact("ask (before)", [])
        job = await self.training(dao)
        path = await self.fetch_adapter(job)
        adapters = ["--set", f'model.adapters=[{{path="{path}", scale=1.0}}]']
        after = await self.ask_fact("ask (with adapter)", adapters, must_know=True)
        self.summary.facts["answer_after"] = after

    # ------------------------------------------------------------ infrastructure

    async def network_up(self) -> None:
        from chain.compile import NPM_INSTALL
        from chain.devchain import find_anvil, free_port

        anvil = find_anvil()
        if anvil is None or not anvil.is_file():
            where = f" (not at {anvil})" if anvil is not None else ""
            raise MissingTool(
                f"anvil (Foundry's dev chain) is not installed{where}: run "
                f"`{NPM_INSTALL}` in a clone of the repository, install Foundry "
                "(https://getfoundry.sh), or point NOOSPHERE_ANVIL at the binary"
            )
        copy_corpus(self.corpus)
        for node in [self.infra, *self.nodes.all()]:
            node.home.mkdir(parents=True, exist_ok=True)
        bee_urls = await self.swarm_up()
        async with self.step("init 3 nodes", "all") as done:
            inits = await asyncio.gather(*(self.sup.run(n, "init") for n in self.nodes.all()))
            for node, result in zip(self.nodes.all(), inits, strict=True):
                address = result.lines[-1].strip()
                self.addresses[node.label] = address
                self.labels[address.lower()] = node.label
            done(", ".join(f"{label} {a[:10]}" for label, a in self.addresses.items()))
        async with self.step("chain dev", "dev chain") as done:
            funds = [arg for a in self.addresses.values() for arg in ("--fund", a)]
            # The demo moves the clock itself: no block (and no window's end) by time alone.
            args = ["chain", "dev", "--port", str(free_port()), "--block-time", "0", *funds]
            chain = await self.sup.start(self.infra, "chain-dev", *args)
            info = json.loads(await chain.wait_for("rpc_url", START_TIMEOUT_S))
            rpc_url = str(info["rpc_url"])
            deployment = Path(str(info["deployment_file"]))
            for node, bee_url in zip(self.nodes.all(), bee_urls, strict=True):
                shutil.copy(deployment, NodeHome(node.home).deployment_file)
                node.env.update(
                    NOOSPHERE_NETWORK_BEE_URL=bee_url, NOOSPHERE_NETWORK_ETH_RPC_URL=rpc_url
                )
            self.rpc = DevChainRpc(rpc_url)
            done(f"anvil at {rpc_url}, contracts deployed, 3 nodes funded")
        self.balances_before = {
            label: await self.chain().balance(a) for label, a in self.addresses.items()
        }
        if self.opt.bee_nodes:
            return  # each real Bee node already has its own usable batch
        async with self.step("postage stamp", "assistant") as done:
            bought = await self.sup.run(
                self.nodes.assistant, "swarm", "stamp", "buy", *STAMP, "--yes"
            )
            done(f"batch {bought.lines[-1][:18]}... (depth {STAMP[1]})")

    async def swarm_up(self) -> list[str]:
        """The Bee URL of peer A, peer B and the assistant: the given real Bee nodes, or
        one `swarm dev` node for all three (whose batch the assistant buys later)."""
        if not self.opt.bee_nodes:
            async with self.step("swarm dev", "dev node") as done:
                swarm = await self.sup.start(self.infra, "swarm-dev", "swarm", "dev", "--port", "0")
                bee_url = (await swarm.wait_for("http", START_TIMEOUT_S)).strip()
                self.summary.swarm = "Swarm dev node"
                done(bee_url)
            return [bee_url] * len(self.nodes.all())
        nodes = self.opt.bee_nodes[: len(self.nodes.all())]
        async with self.step("real Bee", f"{len(nodes)} nodes") as done:
            version = await check_bee_nodes(nodes)
            self.summary.swarm = f"real Bee {version}, {len(self.opt.bee_nodes)} nodes"
            for node, bee in zip(self.nodes.all(), nodes, strict=True):
                node.env["NOOSPHERE_NETWORK_QUERY_DEADLINE_S"] = REAL_BEE_QUERY_DEADLINE_S
                self.detail(f"{node.label:<9} {bee.url}  batch {bee.batch[:12]}...")
            done(f"Bee {version}: one node per demo node, each with its own usable batch")
        return [bee.url for bee in nodes]

    def chain(self) -> DevChainRpc:
        if self.rpc is None:
            raise StepFailed("the dev chain is not running")
        return self.rpc

    async def aclose(self) -> None:
        if self.rpc is not None:
            await self.rpc.aclose()

    # ------------------------------------------------------------ knowledge

    async def knowledge(self) -> None:
        a, b = self.nodes.peer_a, self.nodes.peer_b
        async with self.step("ingest", "peers A, B") as done:
            reports = await asyncio.gather(
                self.sup.run(a, "ingest", "--json", str(self.corpus / "swarm")),
                self.sup.run(b, "ingest", "--json", str(self.corpus / "market")),
            )
            chunks = [json.loads(r.lines[-1])["chunks_in_index"] for r in reports]
            done(f"peer A {chunks[0]} chunks (Swarm storage), peer B {chunks[1]} (training market)")
        async with self.step("serve", "peers A, B") as done:
            self.servers = [
                await self.sup.start(n, f"serve-{n.home.name}", *SERVE_COMMAND) for n in (a, b)
            ]
            for server in self.servers:
                await server.wait_for(SERVE_READY, START_TIMEOUT_S)
            done("both peers publish their records and answer queries over Swarm")

    async def search_and_ask(self) -> None:
        assistant = self.nodes.assistant
        peers = json.dumps([self.addresses["peer A"], self.addresses["peer B"]])
        assistant.env["NOOSPHERE_NETWORK_PEERS"] = peers
        async with self.step("network search", "assistant") as done:
            found = await self.sup.run(
                assistant, "search", "--network", "--json", "--k", "6", SEARCH_TEXT
            )
            report = json.loads(found.lines[-1])
            hits = report["hits"]
            origins = [self.labels.get(str(h["origin"]).lower(), h["origin"]) for h in hits]
            peers_hit = sorted(set(origins) - {"local"})
            self.summary.facts["search_peers_hit"] = peers_hit
            self.summary.facts["search_hits"] = len(hits)
            for hit, origin in list(zip(hits, origins, strict=True))[:4]:
                snippet = " ".join(printable(str(hit["text"])).split())[:70]  # a peer's text
                self.detail(f"{hit['score']:.3f} {origin:<7} {snippet}")
            if len(peers_hit) < 2:
                raise StepFailed(f"the search reached only {peers_hit or 'no peer'}")
            done(f"{len(hits)} hits from {', '.join(peers_hit)}")
        await self.ask_peer()

    async def ask_peer(self) -> None:
        """`noosphere ask --peer`: agent-to-agent, when this build has it."""
        assistant = self.nodes.assistant
        help_text = await self.sup.run(assistant, "ask", "--help")
        async with self.step("ask a peer", "assistant") as done:
            if "--peer" not in help_text.stdout:
                self.summary.facts["peer_ask"] = None
                done("skipped: this build has no `noosphere ask --peer`")
                return
            asked = await self.sup.run(
                assistant, "ask", "--peer", self.addresses["peer B"], "--json", PEER_QUESTION,
                limit_s=240,
            )  # fmt: skip
            reply = json.loads(asked.lines[-1])
            who = self.labels.get(str(reply["peer"]).lower(), str(reply["peer"]))
            text = " ".join(printable(str(reply["text"])).split())  # a peer's text: untrusted
            self.summary.facts["peer_ask"] = {"peer": who, "text": text}
            self.detail(f"Q: {PEER_QUESTION}")
            self.detail(f"{who} (untrusted): {text[:150]}{'...' if len(text) > 150 else ''}")
            done(f"{who} answered in {float(reply['latency_ms']) / 1000:.1f} s, signed")

    # ------------------------------------------------------------ datasets

    async def datasets(self) -> str:
        assistant = self.nodes.assistant
        training, fork = str(self.corpus / "training"), str(self.corpus / "fork")
        build = ["dataset", "build", "--shard-tokens", str(SHARD_TOKENS), "--json"]
        async with self.step("dataset + DAO", "assistant") as done:
            built = json.loads((await self.sup.run(assistant, *build, training)).lines[-1])
            created = await self.sup.run(
                assistant, "dataset", "create", built["root"], built["manifest"], "--yes"
            )
            dao = created.lines[-1].strip()
            done(f"{built['shards']} shards, root {built['root'][:12]}..., DAO {dao[:12]}...")
        async with self.step("fork", "assistant") as done:
            forked = json.loads(
                (
                    await self.sup.run(
                        assistant, *build, "--parent", built["manifest"], training, fork
                    )
                ).lines[-1]
            )
            child = (await self.sup.run(assistant, "dataset", "fork", dao, "--yes")).lines[-1]
            proposal = await self.sup.run(
                assistant, "dataset", "propose", child, forked["root"], forked["manifest"], "--yes"
            )
            proposal_id = proposal.lines[-1].strip()
            await self.sup.run(assistant, "dataset", "vote", child, proposal_id, "for", "--yes")
            self.summary.facts["fork_shared"] = forked["shared"]
            self.summary.facts["fork_new"] = forked["uploaded"]
            done(
                f"DAO {child[:12]}...: {forked['shared']} shards shared, "
                f"{forked['uploaded']} new; proposal {proposal_id} voted"
            )
        return dao

    # ------------------------------------------------------------ training

    async def ask_fact(self, name: str, extra: list[str], *, must_know: bool = False) -> str:
        ask = ["ask", "--raw", "--json", "--temperature", "0", "--seed", "0", "--max-tokens", "48"]
        async with self.step(name, "assistant") as done:
            asked = await self.sup.run(self.nodes.assistant, *extra, *ask, QUESTION)
            answer = str(json.loads(asked.lines[-1])["answer"]).strip()
            self.detail(f"Q: {QUESTION}")
            self.detail(f"A: {' '.join(answer.split())[:150]}")
            knows = FACT.lower() in answer.lower()
            if must_know and not knows:
                raise StepFailed(f"the answer does not contain {FACT!r}: {answer[:200]!r}")
            done(f"the answer {'contains' if knows else 'lacks'} {FACT!r}")
        return answer

    async def training(self, dao: str) -> str:
        assistant, worker, verifier = self.nodes.assistant, self.nodes.peer_a, self.nodes.peer_b
        steps = self.opt.steps
        checkpoint_every = steps if self.opt.bee_nodes else 2
        async with self.step("job post", "assistant") as done:
            posted = await self.sup.run(
                assistant,
                "job", "post", "--dao", dao, "--steps", str(steps), "--reward", REWARD_ETHER,
                "--rank", "16", "--lr", LEARNING_RATE, "--batch-size", "4", "--seq-len", "40",
                "--checkpoint-every", str(checkpoint_every),
                "--challenge-window", str(CHALLENGE_WINDOW_S),
                "--seed", "11", "--yes",
            )  # fmt: skip
            job = posted.lines[-1].strip()
            done(
                f"job {job}: {steps} LoRA steps, checkpoint every {checkpoint_every}, "
                f"reward {REWARD_ETHER} ETH escrowed"
            )
        async with self.step("train", "peer A") as done:
            process = await self.sup.start(
                worker, "worker", "train", "worker", "--opt-in", "--yes", "--max-jobs", "1",
                "--poll", "0.5", "--threads", "2",
            )  # fmt: skip
            await self.follow_training(process, steps)
            submitted = await process.wait_for("submitted log root", TRAIN_TIMEOUT_S)
            root = submitted.split("submitted log root", 1)[1].split()[0]
            done(f"{steps} steps trained, log root {root[:12]}... submitted")
        async with self.step("verify", "peer B") as done:
            verified = await self.sup.run(
                verifier, "verify", job, "--samples", "2", "--no-challenge",
                limit_s=REAL_BEE_VERIFY_TIMEOUT_S if self.opt.bee_nodes else VERIFY_TIMEOUT_S,
            )  # fmt: skip
            matches = verified.stdout.count(": match")
            for line in verified.lines[-3:]:
                self.detail(line)
            done(f"{matches} sampled steps replayed bit for bit")
            if matches == 0:
                raise StepFailed(f"verify matched no step: {verified.stdout[-500:]}")
        async with self.step("payment", "peer A") as done:
            mark = len(process.lines)
            await self.chain().advance_time(CHALLENGE_WINDOW_S + 1)
            withdrew = await process.wait_for("withdrew", 180, start=mark)
            await asyncio.wait_for(process.process.wait(), 60)
            await self.record_payment(job)
            done(f"window passed; {withdrew.strip()}")
        return job

    async def follow_training(self, worker: Service, steps: int) -> None:
        """Print the worker's progress every few steps until it submits."""
        every = max(1, steps // 4)
        seen = 0
        deadline = time.monotonic() + TRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in worker.lines[seen:]:
                if "claimed" in line or "staked" in line:
                    self.progress(line)
                elif "step " in line and "/" in line:
                    index = line.split("step ", 1)[1].split("/", 1)[0]
                    if index.isdigit() and (int(index) % every == 0 or int(index) == 1):
                        self.progress(line)
            seen = len(worker.lines)
            if any("submitted log root" in line for line in worker.lines):
                return
            if worker.process.returncode is not None:
                raise StepFailed(f"the worker exited: {worker.stderr_tail()}")
            await asyncio.sleep(0.5)

    async def record_payment(self, job: str) -> None:
        from chain.records import JobStatus

        shown = await self.sup.run(self.nodes.assistant, "job", "show", job, "--json")
        record = json.loads(shown.stdout)
        requester = self.labels.get(str(record["requester"]).lower(), record["requester"])
        trainer = self.labels.get(str(record.get("trainer") or "").lower(), record.get("trainer"))
        status = JobStatus(int(record["status"])).name
        self.summary.facts["job_status"] = status
        self.summary.facts["worker_paid_wei"] = int(record["reward"])
        self.summary.payments.append(
            Payment(str(requester), str(trainer), int(record["reward"]), f"job {job} ({status})")
        )
        for label, address in self.addresses.items():
            now = await self.chain().balance(address)
            self.summary.balances[label] = now - self.balances_before[label]

    async def fetch_adapter(self, job: str) -> str:
        async with self.step("adapter fetch", "assistant") as done:
            fetched = await self.sup.run(self.nodes.assistant, "adapter", "fetch", job)
            path = fetched.lines[0].strip()
            done(f"{Path(path).name}, hash checked against the job")
        return path
