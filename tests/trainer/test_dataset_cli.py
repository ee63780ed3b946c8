"""`noosphere dataset build` through the installed command, on the embedded dev node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.trainer.conftest import write_corpus

pytestmark = pytest.mark.e2e


def build(cli: Cli, *args: str) -> dict[str, object]:
    result = cli("dataset", "build", *args, "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_build_prints_root_and_a_fork_shares_every_unchanged_shard(
    cli: Cli, tmp_path: Path
) -> None:
    first = write_corpus(
        tmp_path / "v1",
        {"a.txt": "Alpha text. " * 300, "b.md": "# Beta\n\nBeta text. " * 300},
    )
    base = build(cli, *map(str, first), "--shard-tokens", "256")
    assert base["shared"] == 0
    assert base["uploaded"] == base["shards"]
    assert isinstance(base["shards"], int)
    assert base["shards"] >= 4
    assert len(str(base["root"])) == 64
    fork_files = [*first, *write_corpus(tmp_path / "v2", {"c.txt": "Gamma text. " * 300})]
    fork = build(
        cli, *map(str, fork_files), "--shard-tokens", "256", "--parent", str(base["manifest"])
    )
    assert fork["shared"] == base["shards"]
    assert fork["uploaded"] == int(str(fork["shards"])) - int(str(base["shards"]))
    assert fork["root"] != base["root"]


def test_build_refuses_bad_input_with_one_line(cli: Cli, tmp_path: Path) -> None:
    bad = write_corpus(tmp_path, {"bad.jsonl": '{"nope": 1}\n'})[0]
    result = cli("dataset", "build", str(bad))
    assert result.returncode != 0
    assert 'bad.jsonl:1: expected an object with a "text" string' in result.stderr
    result = cli("dataset", "build", str(bad), "--parent", "1234")
    assert result.returncode == 2
    assert "32 bytes" in result.stderr
