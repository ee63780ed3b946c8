"""A private Swarm network of real Bee nodes, in a network namespace of its own.

    scripts/bee-localnet run [--nodes N] [--keep DIR] -- COMMAND...

In the host namespace it builds (or finds cached) Bee and locates the contract
source; then it re-runs itself under ``unshare --net`` and, inside:

1. brings loopback up and puts ``10.77.0.1/32`` on it (Bee does not advertise
   127.x addresses to peers, and libp2p's NAT probing finds no gateway here);
2. starts anvil with 1 s blocks and deploys Swarm's contracts (``beechain``);
3. starts a Bee bootnode and N full Bee nodes wired through it, funds each
   with ETH and sBZZ, waits until they see each other, buys a postage batch
   per node and waits until it is usable and a direct upload goes through;
4. runs COMMAND with ``NOOSPHERE_TEST_BEE_URL``, ``NOOSPHERE_TEST_BEE_URL_2``, ...,
   ``NOOSPHERE_TEST_BEE_BATCH``, ``NOOSPHERE_TEST_BEE_BATCH_2``, ... and
   ``NOOSPHERE_TEST_ETH_RPC_URL`` set;
5. stops everything (also on failure, Ctrl-C or SIGTERM) and exits with
   COMMAND's status (or 2 when the network could not be brought up). Killed
   outright (SIGKILL), it takes the nodes, anvil and COMMAND with it: each gets
   SIGKILL when it dies (``PR_SET_PDEATHSIG``); only the work directory is left.

Nothing it starts can reach or listen outside the namespace, which disappears
with its last process. Progress goes to stderr; node logs go to the work
directory, and the tail of each is printed when bringing the network up fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import beechain
from beebuild import BeeBuildError, contracts_source, ensure_bee
from beenode import BeeProcess, ChildProcess, die_with_parent, wait_for

log = logging.getLogger("bee-localnet")

INSIDE_ENV = "NOOSPHERE_LOCALNET_INSIDE"
ADDRESS = "10.77.0.1"
RPC_PORT = 8545
CHAIN_ID = 7077
NETWORK_ID = 7077
BATCH_AMOUNT = 500_000_000  # PLUR per chunk: ~5.8 h of TTL at the set price and 1 s blocks
BATCH_DEPTH = 20
NODE_BZZ = 10**7 * 10**16  # ten million sBZZ per node
UP_TIMEOUT_S = 240.0
PEERS_TIMEOUT_S = 90.0  # peers meet within seconds when they meet at all
UP_ATTEMPTS = 3
BOOTNODE_PORTS = (1533, 1534)
COMMAND_STOP_S = 60.0  # SIGTERM to SIGKILL for COMMAND: time to stop what it started


class _Stop(Exception):
    """SIGTERM or SIGHUP arrived: tear down and leave with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signum)


def _setup_namespace() -> None:
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"],
    ):
        subprocess.run(command, check=True)
    links = subprocess.run(["ip", "-o", "link"], check=True, text=True, capture_output=True)
    names = [line.split(":")[1].strip() for line in links.stdout.splitlines()]
    if names != ["lo"]:
        raise RuntimeError(f"the namespace has interfaces other than lo: {names}")
    log.info("network namespace: only lo, with %s/32 and 127.0.0.1", ADDRESS)


class LocalNet:
    """anvil + contracts + N Bee nodes under ``workdir``; ``close`` stops them all."""

    def __init__(self, bee_binary: Path, contracts_file: Path, nodes: int, workdir: Path) -> None:
        self.bee_binary = bee_binary
        self.contracts_file = contracts_file
        self.node_count = nodes
        self.workdir = workdir
        self.anvil: ChildProcess | None = None
        self.bootnode: BeeProcess | None = None
        self.nodes: list[BeeProcess] = []
        self.batches: list[str] = []
        self.rpc_url = f"http://{ADDRESS}:{RPC_PORT}"

    def _start_chain(self) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from chain.devchain import find_anvil

        anvil = find_anvil()
        if anvil is None:
            raise RuntimeError("anvil not found: run ./scripts/bootstrap (it installs it)")
        self.anvil = ChildProcess.start(
            "anvil",
            [
                str(anvil),
                "--host",
                ADDRESS,
                "--port",
                str(RPC_PORT),
                "--block-time",
                "1",
                "--chain-id",
                str(CHAIN_ID),
                "--accounts",
                "2",
                "--silent",
            ],
            self.workdir / "anvil.log",
        )
        web3 = beechain.connect(self.rpc_url)
        wait_for("anvil answers", lambda: web3.is_connected() and web3.eth.block_number > 0, 30)
        log.info("anvil: chain %d at %s, 1 s blocks", CHAIN_ID, self.rpc_url)

    def up(self) -> None:
        started = time.monotonic()
        self._start_chain()
        web3 = beechain.connect(self.rpc_url)
        contracts = beechain.deploy_swarm_contracts(web3, self.contracts_file, NETWORK_ID)
        flags = [*contracts.bee_flags(), f"--blockchain-rpc-endpoint={self.rpc_url}"]
        # A dedicated bootnode: Bee leaves the peers it met as bootnodes out of pushsync,
        # retrieval and its health check, so a node that only knows the others as its
        # bootnode never stores anything for them. The nodes under test find each other
        # through the bootnode's gossip and talk directly.
        self.bootnode = BeeProcess.start_node(
            self.bee_binary,
            "bootnode",
            ADDRESS,
            BOOTNODE_PORTS,
            self.workdir,
            [*flags, "--bootnode-mode", "--bootnode="],
        )
        self.bootnode.node_api.wait_for_addresses()
        flags.append(f"--bootnode={self.bootnode.node_api.underlay()}")
        for index in range(self.node_count):
            ports = (1633 + 100 * index, 1634 + 100 * index)
            node = BeeProcess.start_node(
                self.bee_binary, f"bee{index}", ADDRESS, ports, self.workdir, flags
            )
            self.nodes.append(node)
        for node in self.nodes:
            ethereum = node.node_api.wait_for_addresses()
            beechain.fund(web3, contracts, self.contracts_file, ethereum, NODE_BZZ)
            log.info("%s: %s, funded %s", node.name, node.node_api.url, ethereum)
        for node in self.nodes:
            node.node_api.wait_ready(
                PEERS_TIMEOUT_S, peers=self.node_count
            )  # the others + the bootnode
        for node in self.nodes:
            self.batches.append(node.node_api.buy_batch(BATCH_AMOUNT, BATCH_DEPTH))
        for node, batch in zip(self.nodes, self.batches, strict=True):
            node.node_api.wait_usable(batch, UP_TIMEOUT_S)
            node.node_api.wait_upload_works(batch, UP_TIMEOUT_S)
        log.info(
            "up: %d Bee node(s), batches usable, in %.0f s",
            len(self.nodes),
            time.monotonic() - started,
        )

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(INSIDE_ENV, None)
        env["NOOSPHERE_TEST_ETH_RPC_URL"] = self.rpc_url
        for index, (node, batch) in enumerate(zip(self.nodes, self.batches, strict=True)):
            suffix = "" if index == 0 else f"_{index + 1}"
            env[f"NOOSPHERE_TEST_BEE_URL{suffix}"] = node.node_api.url
            env[f"NOOSPHERE_TEST_BEE_BATCH{suffix}"] = batch
        return env

    def close(self, *, show_logs: bool) -> None:
        for node in reversed(self.nodes):
            node.stop(show_log=show_logs)
        if self.bootnode is not None:
            self.bootnode.stop(show_log=show_logs)
        if self.anvil is not None:
            self.anvil.stop(show_log=show_logs)


def _bring_up(args: argparse.Namespace) -> tuple[LocalNet, Path]:
    """A running network and its work dir, started afresh up to `UP_ATTEMPTS` times.

    In CI-like runs (right after the long pytest run) the first network sometimes never
    forms: the Bee nodes do not meet through the bootnode. Never reproduced by hand,
    and a fresh chain with fresh nodes has always formed.
    """
    for attempt in range(1, UP_ATTEMPTS + 1):
        workdir = Path(tempfile.mkdtemp(prefix="bee-localnet-"))
        net = LocalNet(Path(args.bee), Path(args.contracts), args.nodes, workdir)
        try:
            net.up()
            return net, workdir
        except Exception as error:
            if attempt == UP_ATTEMPTS:
                net.close(show_logs=True)
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            log.warning("the network did not form (%s); starting it again", error)
        except BaseException:
            net.close(show_logs=False)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        net.close(show_logs=True)
        shutil.rmtree(workdir, ignore_errors=True)
    raise AssertionError("unreachable")


def _inside(args: argparse.Namespace) -> int:
    _setup_namespace()
    keep = Path(args.keep) if args.keep else None
    try:
        net, workdir = _bring_up(args)
    except (KeyboardInterrupt, _Stop) as stop:
        log.info("stopping (%s); torn down", stop or "interrupted")
        return 128 + (stop.signum if isinstance(stop, _Stop) else signal.SIGINT)
    except Exception as error:
        log.error("the local network failed: %s; torn down", error)
        return 2
    failed = True
    try:
        log.info("running: %s", " ".join(args.command))
        # COMMAND dies with this script like the nodes do: `noosphere demo --real-bee` is
        # this process (exec), and its own children die with it in turn.
        child = subprocess.Popen(args.command, env=net.environment(), preexec_fn=die_with_parent)
        try:
            status = child.wait()
        except BaseException:
            child.terminate()
            try:
                child.wait(COMMAND_STOP_S)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
        failed = False
        if status < 0:  # killed by a signal: report it the way a shell does
            status = 128 - status
        log.info("command exited with status %d", status)
        return status
    except (KeyboardInterrupt, _Stop) as stop:
        log.info("stopping (%s)", stop or "interrupted")
        failed = False
        return 128 + (stop.signum if isinstance(stop, _Stop) else signal.SIGINT)
    except Exception as error:
        log.error("the local network failed: %s", error)
        return 2
    finally:
        net.close(show_logs=failed)
        if keep is not None:
            shutil.copytree(workdir, keep, dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
        log.info("torn down")


def _outside(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        bee = ensure_bee()
        contracts = contracts_source()
    except BeeBuildError as error:
        log.error("%s", error)
        return 2
    unshare = ["unshare", "--net"]
    if os.geteuid() != 0:
        unshare.append("--map-root-user")
    inner = [sys.executable, str(Path(__file__).resolve()), *argv]
    env = dict(os.environ, **{INSIDE_ENV: f"{bee}{os.pathsep}{contracts}"})
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(name, None)
    os.execvpe(unshare[0], [*unshare, "--", *inner], env)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="bee-localnet: %(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="bee-localnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="bring a network up, run COMMAND in it, tear it down")
    run.add_argument("--nodes", type=int, default=2, choices=range(2, 6), metavar="N")
    run.add_argument("--keep", metavar="DIR", help="copy node data and logs here at the end")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND...")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give a command after --")
    inside = os.environ.get(INSIDE_ENV)
    if not inside:
        return _outside(args, argv)
    args.bee, args.contracts = inside.split(os.pathsep)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    return _inside(args)


if __name__ == "__main__":
    sys.exit(main())
