"""Development chains: py-evm in this process, or anvil as a child process.

Both offer the same small surface, so one test suite runs on either:
`endpoint` (what `ChainClient.connect` takes), `fund(address, wei)`,
`advance_time(seconds)` (mines a block that much later), `timestamp()`, `aclose()`.

- `EmbeddedChain`: web3's `AsyncEthereumTesterProvider` (eth-tester over py-evm). It
  serves one process; calls run synchronously inside the event loop, which is fine
  for tests and single-process dev use.
- `AnvilChain`: the anvil binary from npm (`@foundry-rs/anvil-<platform>` ships it
  inside the tarball; see `find_anvil`), on a free loopback port, for several
  processes. It gets an explicit environment without any `NOOSPHERE_*` variable
  (the keystore password never reaches it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider
from web3.providers.eth_tester import AsyncEthereumTesterProvider
from web3.types import RPCEndpoint

from chain.errors import DevChainError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
ANVIL_CHAIN_ID = 31337
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
RPC_TIMEOUT_S = 10.0


def dev_account(index: int) -> LocalAccount:
    """Deterministic throwaway keys for dev chains and tests (never for real funds)."""
    key = keccak(f"noosphere dev account {index}".encode())
    account: LocalAccount = Account.from_key(key)
    return account


def find_anvil() -> Path | None:
    """$NOOSPHERE_ANVIL, the binary npm installed under chain/node_modules, or PATH's `anvil`."""
    explicit = os.environ.get("NOOSPHERE_ANVIL")
    if explicit:
        return Path(explicit)
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    bundled = PACKAGE_DIR / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin"
    if (bundled / "anvil").is_file():
        return bundled / "anvil"
    on_path = shutil.which("anvil")
    return Path(on_path) if on_path else None


def anvil_environment() -> dict[str, str]:
    """This process's environment without the node's own variables.

    Explicit, so anvil never inherits `NOOSPHERE_PASSWORD` (or any `NOOSPHERE_*`
    setting) even when the variable is still set in this process.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedChain:
    """py-evm in this process (eth-tester's auto-mining backend)."""

    def __init__(self) -> None:
        self.provider = AsyncEthereumTesterProvider()
        self.tester = self.provider.ethereum_tester
        self._w3 = AsyncWeb3(self.provider)

    @property
    def endpoint(self) -> AsyncBaseProvider:
        return self.provider

    async def fund(self, address: str, wei: int) -> None:
        coinbase = self.tester.get_accounts()[0]
        self.tester.send_transaction({"from": coinbase, "to": address, "value": wei, "gas": 21_000})

    async def timestamp(self) -> int:
        block = await self._w3.eth.get_block("latest")
        return int(block["timestamp"])

    async def advance_time(self, seconds: int) -> None:
        # time_travel only moves the pending block's clock; mining makes it the head.
        self.tester.time_travel(await self.timestamp() + seconds)
        self.tester.mine_blocks(1)

    async def aclose(self) -> None:
        """Nothing to release; here for symmetry with AnvilChain."""


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGKILL the child when this process dies (prctl
    PR_SET_PDEATHSIG); None elsewhere. Prepared before the fork; the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    option, signum = ctypes.c_int(1), ctypes.c_ulong(signal.SIGKILL)  # PR_SET_PDEATHSIG
    parent = os.getpid()

    def in_child() -> None:
        prctl(option, signum)
        if os.getppid() != parent:  # died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child


class AnvilChain:
    """anvil on a free loopback port, stopped by `aclose()`."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, log_file: IO[bytes]) -> None:
        self.process = process
        self.url = url
        self._log_file = log_file  # anvil's stderr: a file, so it can never block on a pipe
        self._w3 = AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        self._closed = False

    @property
    def endpoint(self) -> str:
        return self.url

    @classmethod
    async def start(
        cls,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: Path | None = None,
        block_time: int = 0,
    ) -> AnvilChain:
        """Start anvil. `block_time` > 0 also mines an empty block every that many seconds
        (transactions are still mined at once), so chain time passes on an idle chain, as
        on a real one; 0 mines only on transactions."""
        binary = binary or find_anvil()
        if binary is None:
            raise DevChainError(
                "anvil not found: run `npm install --prefix chain --ignore-scripts` "
                "or set NOOSPHERE_ANVIL"
            )
        port = port or free_port(host)
        args = [str(binary), "--quiet", "--host", host, "--port", str(port)]
        args += ["--chain-id", str(ANVIL_CHAIN_ID)]
        if block_time > 0:
            args += ["--block-time", str(block_time), "--mixed-mining"]
        log_file = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the AnvilChain, closed in aclose
        try:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
                env=anvil_environment(),
                preexec_fn=_die_with_parent(),  # no orphaned anvil if this process is killed
            )
        except OSError as exc:
            log_file.close()
            raise DevChainError(f"cannot run {binary}: {exc}") from exc
        chain = cls(process, f"http://{host}:{port}", log_file)
        try:
            await chain._wait_ready()
        except BaseException:
            await chain.aclose()
            raise
        log.info("anvil running at %s (pid %d)", chain.url, process.pid)
        return chain

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while loop.time() < deadline:
            if self.process.returncode is not None:
                raise DevChainError(f"anvil exited: {self._log_tail()}")
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    if await self._w3.eth.chain_id == ANVIL_CHAIN_ID:
                        return
            await asyncio.sleep(0.1)
        raise DevChainError(f"anvil did not answer on {self.url} within {START_TIMEOUT_S:.0f} s")

    def _log_tail(self, size: int = 500) -> str:
        self._log_file.seek(0)
        return self._log_file.read().decode(errors="replace")[-size:]

    async def _request(self, method: str, params: list[Any]) -> Any:
        try:
            async with asyncio.timeout(RPC_TIMEOUT_S):
                response = await self._w3.provider.make_request(RPCEndpoint(method), params)
        except Exception as exc:
            raise DevChainError(f"{method} failed: {exc!r}") from exc
        if "error" in response:
            raise DevChainError(f"{method} failed: {response['error']}")
        return response.get("result")

    async def fund(self, address: str, wei: int) -> None:
        balance = int(await self._request("eth_getBalance", [address, "latest"]), 16)
        await self._request("anvil_setBalance", [address, hex(balance + wei)])

    async def timestamp(self) -> int:
        block = await self._request("eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16)

    async def advance_time(self, seconds: int) -> None:
        await self._request("evm_increaseTime", [seconds])
        await self._request("evm_mine", [])

    async def wait(self) -> int:
        """Block until anvil exits (the `chain dev` foreground loop)."""
        return await self.process.wait()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        provider = self._w3.provider
        if isinstance(provider, AsyncHTTPProvider):
            await provider.disconnect()
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._log_file.close()
