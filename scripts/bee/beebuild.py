"""Build the pinned Bee release once and cache the binary.

The pin is this folder's wrapper Go module (``go.mod``, ``go.sum`` and the
``batcharchive`` stub). The binary lives at
``~/.cache/noosphere/bee/v2.8.1/<hash of the pin>/bee`` and is rebuilt only
when a pin file changes (or the cached file is missing). The build is
``CGO_ENABLED=0`` and ``-trimpath``, like upstream's release build, with the
linker flag that makes nodes on a private network treat themselves as
reachable, and runs under ``nice`` because CI shares two cores.

    python scripts/bee/beebuild.py        # prints the binary's path on stdout

Also the one place that knows where Go keeps the storage-incentive contracts
Bee was built against (``contracts_source``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

BEE_VERSION = "2.8.1"
BEE_API_VERSION = "8.1.0"
BEE_COMMIT = "7cf53193"  # the v2.8.1 tag's commit, as `git describe` would give it
BEE_PACKAGE = "github.com/ethersphere/bee/v2/cmd/bee"
ABI_MODULE = "github.com/ethersphere/go-storage-incentives-abi"
PIN_DIR = Path(__file__).resolve().parent
PIN_FILES = ("go.mod", "go.sum", "batcharchive/go.mod", "batcharchive/snapshot.go")
LDFLAGS = " ".join(
    [
        "-s -w",
        f"-X github.com/ethersphere/bee/v2.version={BEE_VERSION}",
        f"-X github.com/ethersphere/bee/v2.commitHash={BEE_COMMIT}",
        f"-X github.com/ethersphere/bee/v2/pkg/api.Version={BEE_API_VERSION}",
        # Without it a node behind no NAT on a private address never thinks it is reachable.
        "-X github.com/ethersphere/bee/v2/pkg/p2p/libp2p.reachabilityOverridePublic=true",
    ]
)


class BeeBuildError(RuntimeError):
    """Go is missing or the build failed."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "noosphere" / "bee" / f"v{BEE_VERSION}"


def pin_hash() -> str:
    """Hash of every pin file and of the linker flags: the cache key."""
    digest = hashlib.sha256(LDFLAGS.encode())
    for name in PIN_FILES:
        digest.update(name.encode() + b"\0" + (PIN_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _go_env() -> dict[str, str]:
    return dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly")


def _go(*args: str, capture: bool = False) -> str:
    try:
        done = subprocess.run(
            ["go", *args],
            cwd=PIN_DIR,
            env=_go_env(),
            check=True,
            text=True,
            stdout=subprocess.PIPE if capture else None,
        )
    except FileNotFoundError as error:
        raise BeeBuildError("the Go toolchain (`go`, 1.26 or newer) is not on PATH") from error
    except subprocess.CalledProcessError as error:
        message = f"`go {' '.join(args[:2])}` failed with status {error.returncode}"
        raise BeeBuildError(message) from error
    return done.stdout or ""


def ensure_bee() -> Path:
    """The cached Bee binary for the current pin, built first when missing."""
    target = cache_root() / pin_hash() / "bee"
    if target.is_file() and os.access(target, os.X_OK):
        log.info("bee %s: cached at %s", BEE_VERSION, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"bee.partial.{os.getpid()}")
    log.info("bee %s: building (minutes on a cold Go cache) ...", BEE_VERSION)
    started = time.monotonic()
    try:
        subprocess.run(
            [
                "nice",
                "-n",
                "10",
                "go",
                "build",
                "-trimpath",
                "-ldflags",
                LDFLAGS,
                "-o",
                str(partial),
                BEE_PACKAGE,
            ],
            cwd=PIN_DIR,
            env=_go_env(),
            check=True,
        )
    except subprocess.CalledProcessError as error:
        partial.unlink(missing_ok=True)
        raise BeeBuildError(f"go build of bee failed with status {error.returncode}") from error
    except FileNotFoundError as error:
        raise BeeBuildError("the Go toolchain (`go`, 1.26 or newer) is not on PATH") from error
    partial.replace(target)
    log.info("bee %s: built in %.0f s -> %s", BEE_VERSION, time.monotonic() - started, target)
    return target


def contracts_source() -> Path:
    """The Go source file holding the test-network contracts' ABIs and creation bytecode.

    Bee uses the "testnet" ABIs for any chain id it does not know, so those are
    the contracts a private network deploys.
    """
    info = json.loads(_go("mod", "download", "-json", ABI_MODULE, capture=True))
    source = Path(info["Dir"]) / "abi" / "abi_testnet.go"
    if not source.is_file():
        raise BeeBuildError(f"{ABI_MODULE}: {source} is missing")
    return source


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="bee-build: %(message)s", stream=sys.stderr)
    try:
        print(ensure_bee())
    except BeeBuildError as error:
        raise SystemExit(f"bee-build: {error}") from error


if __name__ == "__main__":
    main()
