"""Client commands start fast: they import no heavy library they do not need.

Each check runs the real CLI in a fresh interpreter and reads `sys.modules` there
afterwards. torch and sentence-transformers cost seconds to import, eth-account about
one (its BLS constants), aiohttp and web3 half a second each; `--help`, `search` and
`ask` need none of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli

# Libraries no client command below may import, with what each one is for.
HEAVY = {
    "torch": "the sentence-transformers runtime",
    "sentence_transformers": "the sentence-transformers runtime",
    "transformers": "the sentence-transformers runtime",
    "llama_cpp": "the LLM",
    "web3": "the chain",
    "eth_account": "the node key",
    "faiss": "the index",
    "aiohttp": "Swarm access",
}

# Runs the CLI with the given arguments in this interpreter, then reports which of
# HEAVY got imported (on the last line of stderr, after whatever the command wrote).
PROBE = """
import json, sys
argv, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["noosphere", *argv]
status = 0
try:
    from agent.cli import main
    if argv:
        main()
except SystemExit as exc:
    status = exc.code if isinstance(exc.code, int) else 1
sys.stdout.flush()
print(json.dumps({"status": status, "loaded": sorted(m for m in heavy if m in sys.modules)}),
      file=sys.stderr)
"""


def probe(cli: Cli, *argv: str, timeout: float = 300) -> tuple[int, list[str], str]:
    """(exit status, heavy modules loaded, stdout) of `noosphere ARGV` run in-process."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(sorted(HEAVY))],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=timeout,
        check=False,
    )
    assert result.stderr.strip(), "the probe printed nothing"
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return int(report["status"]), list(report["loaded"]), result.stdout


def test_the_probe_sees_a_command_that_does_import_one(cli: Cli) -> None:
    status, loaded, _ = probe(cli, "id")  # decrypting the key needs eth-account
    assert status == 2  # fresh home: no keystore yet
    assert loaded == ["eth_account"]


def test_importing_the_cli_imports_no_heavy_library(cli: Cli) -> None:
    status, loaded, _ = probe(cli)
    assert status == 0
    assert loaded == []


def test_help_imports_no_heavy_library(cli: Cli) -> None:
    status, loaded, out = probe(cli, "--help")
    assert status == 0
    assert "search" in out
    assert loaded == []


@pytest.mark.integration
def test_local_search_on_the_bundled_embedder_imports_no_torch(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "stamps.md").write_text("Postage stamps pay for storing chunks on Swarm.")
    (docs / "bees.md").write_text("Honey bees live in hives and make honey from nectar.")
    ingested = cli("ingest", "--json", str(docs))
    assert ingested.returncode == 0, ingested.stderr

    status, loaded, out = probe(cli, "search", "--json", "--k", "1", "who pays for storage?")
    assert status == 0
    hits = json.loads(out)["hits"]
    assert hits[0]["source"].endswith("stamps.md")  # the embedder really ran
    # The index is the one heavy library a search needs.
    assert loaded == ["faiss"]


@pytest.mark.integration
def test_ask_imports_neither_torch_nor_the_chain(cli: Cli) -> None:
    status, loaded, out = probe(cli, "ask", "--json", "--max-tokens", "4", "Say hello.")
    assert status == 0
    assert json.loads(out)["answer"].strip()
    assert set(loaded) <= {"llama_cpp", "faiss"}, loaded
    assert "llama_cpp" in loaded


@pytest.mark.parametrize(
    ("package", "submodule", "heavy"),
    [
        ("swarm_vectordb.bee", "_keccak", ["aiohttp", "eth_keys"]),
        ("chain", "merkle", ["web3", "eth_account"]),
    ],
)
def test_package_exports_resolve_lazily_to_their_modules(
    package: str, submodule: str, heavy: list[str]
) -> None:
    code = f"""
import importlib, json, sys
import {package} as pkg
light = not any(m in sys.modules for m in {heavy!r})
wrong = [n for n in pkg.__all__
         if getattr(pkg, n) is not getattr(importlib.import_module(
             "{package}." + pkg._EXPORTS[n]), n)]
try:
    pkg.NoSuchThing
    unknown = "resolved"
except AttributeError:
    unknown = "AttributeError"
from {package} import {submodule}  # submodules still import as usual
print(json.dumps({{"light": light, "wrong": wrong, "unknown": unknown,
                  "all": sorted(pkg.__all__) == sorted(pkg._EXPORTS),
                  "dir": set(pkg.__all__) <= set(dir(pkg))}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout) == {
        "light": True,  # importing the package alone pulls in none of them
        "wrong": [],  # every export is the object its module defines
        "unknown": "AttributeError",
        "all": True,
        "dir": True,
    }
