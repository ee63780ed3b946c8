"""`noosphere ingest` and `noosphere search` through the installed command, embedded Swarm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli

pytestmark = pytest.mark.e2e


def test_ingest_then_search_then_reingest(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bees.md").write_text("Honey bees live in hives and make honey from nectar.")
    (docs / "swarm.txt").write_text("Swarm stores data in chunks addressed by a BMT hash.")
    first = cli("ingest", "--json", str(docs))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["files_seen"] == 2
    assert report["chunks_added"] == 2
    assert report["chunks_in_index"] == 2

    found = cli("search", "--json", "--k", "1", "where is data stored by hash?")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert hits[0]["source"].endswith("swarm.txt")
    assert hits[0]["text"].startswith("Swarm stores data")

    again = json.loads(cli("ingest", "--json", str(docs)).stdout)
    assert again["chunks_added"] == 0
    assert again["files_skipped_unchanged"] == 2
    assert again["chunks_in_index"] == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ingest", "/no/such/path"], "no such file"),
        (["search", "  "], "empty search"),
        (["--set", "limits.max_input_chars=3", "search", "long text"], "too long"),
        (["--set", "index.chunk_overlap=150", "ingest", "."], "index.chunk_overlap"),
    ],
)
def test_bad_input(cli: Cli, args: list[str], words: str) -> None:
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_search_before_any_ingest_says_what_to_do(cli: Cli) -> None:
    result = cli("search", "anything")
    assert result.returncode == 0, result.stderr
    assert "noosphere ingest" in result.stderr


@pytest.mark.parametrize("args", [["serve"], ["search", "--network", "anything"]])
def test_network_commands_need_the_key(cli: Cli, args: list[str]) -> None:
    missing = cli(*args)
    assert missing.returncode == 2, missing.stderr
    assert "noosphere init" in missing.stderr
    assert cli("init").returncode == 0
    wrong = cli(*args, env={"NOOSPHERE_PASSWORD": "not the password"})
    assert wrong.returncode == 2
    assert "wrong password" in wrong.stderr
    assert "Traceback" not in wrong.stderr
