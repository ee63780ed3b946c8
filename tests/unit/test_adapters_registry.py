"""Adapter files and the node home's adapter registry, through `noosphere adapter ...`.

The adapter GGUFs are real (written with `gguf`); the base model is the bundled one,
whose header alone is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

from agent.adapter_files import inspect_adapter, name_for_path
from agent.adapters import AdapterRegistry
from agent.cli import adapter as cli_adapter
from agent.cli.common import CliState
from agent.errors import AdapterError, ModelLoadError, ModelNotFoundError
from agent.gguf_header import read_gguf_header
from agent.home import NodeHome
from tests.integration.lora_files import write_lora

Invoke = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path) -> NodeHome:
    return NodeHome(tmp_path / "home")


@pytest.fixture
def invoke(home: NodeHome) -> Invoke:
    group = click.Group("adapter")
    cli_adapter.register(group)

    def call(*args: str) -> Result:
        state = CliState(home=home)
        return CliRunner().invoke(group, list(args), obj=state, catch_exceptions=False)

    return call


@pytest.fixture
def lora(tmp_path: Path) -> Path:
    return write_lora(tmp_path / "style.gguf", b_scale=0.1, seed=1)


# ---------------------------------------------------------------- the header reader


def test_header_reader_agrees_with_the_gguf_package(lora: Path, model_path: Path) -> None:
    import gguf

    for path in (lora, model_path):
        ours = read_gguf_header(path)
        reader = gguf.GGUFReader(path)
        assert {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors} == ours.tensors
        for key, value in ours.metadata.items():
            theirs = reader.fields[key].contents()
            assert theirs == (pytest.approx(value) if isinstance(value, float) else value), key
        array = gguf.GGUFValueType.ARRAY
        scalar_fields = [k for k, f in reader.fields.items() if f.types and f.types[0] != array]
        # every scalar field, apart from the header's own counts the reader lists too
        assert set(ours.metadata) == {k for k in scalar_fields if not k.startswith("GGUF.")}


def test_header_reader_refuses_what_is_not_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(ValueError, match="bad magic"):
        read_gguf_header(bad)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(b"GGUF\x03\0\0\0" + (1).to_bytes(8, "little") + (1).to_bytes(8, "little"))
    with pytest.raises(ValueError, match="ends inside its header"):
        read_gguf_header(cut)
    huge = tmp_path / "huge.gguf"
    huge.write_bytes(b"GGUF\x03\0\0\0" + (0).to_bytes(8, "little") + (1).to_bytes(8, "little"))
    with huge.open("ab") as f:
        f.write((1 << 40).to_bytes(8, "little"))  # a key claiming to be 1 TiB long
    with pytest.raises(ValueError, match="header string"):
        read_gguf_header(huge)


# ---------------------------------------------------------------- inspecting adapters


def test_inspect_accepts_an_adapter_that_fits_the_base_model(lora: Path, model_path: Path) -> None:
    checked = inspect_adapter(lora, model_path)
    assert checked.path == lora
    assert checked.rank == 4
    assert checked.alpha == 4.0
    assert len(checked.targets) == 30
    assert checked.targets[0] == "blk.0.attn_q.weight"
    assert checked.size == lora.stat().st_size


def test_inspect_expands_the_home_directory(
    lora: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert inspect_adapter("~/style.gguf").path == lora


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda d, m: d / "missing.gguf", ModelNotFoundError, "not found"),
        (lambda d, m: m, ModelLoadError, "general.type is 'model'"),
        (
            lambda d, m: write_lora(d / "wide.gguf", b_scale=1, width=960),
            ModelLoadError,
            r"blk\.0\.attn_q\.weight is \[576, 576\] in the base model",
        ),
        (
            lambda d, m: write_lora(d / "deep.gguf", b_scale=1, layers=31),
            ModelLoadError,
            r"has no tensor blk\.30\.attn_q\.weight",
        ),
        (lambda d, m: _unpaired(d / "half.gguf"), ModelLoadError, "has only lora_a"),
        (lambda d, m: _text(d / "notes.gguf"), ModelLoadError, "bad magic"),
    ],
    ids=["missing", "base-model", "960-wide", "no-such-block", "unpaired", "not-gguf"],
)
def test_inspect_refuses_files_that_are_not_a_lora_for_this_model(
    tmp_path: Path,
    model_path: Path,
    make: Callable[[Path, Path], Path],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        inspect_adapter(make(tmp_path, model_path), model_path)


def _unpaired(path: Path) -> Path:
    import gguf

    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 576), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _text(path: Path) -> Path:
    path.write_text("not a model\n")
    return path


def test_names_from_file_names_are_valid_and_unique() -> None:
    assert name_for_path(Path("/x/My Adapter (v2).GGUF")) == "my-adapter-v2"
    assert name_for_path(Path("/x/a.gguf"), {"a", "a-2"}) == "a-3"
    assert name_for_path(Path("/x/___.gguf")) == "adapter"


# ---------------------------------------------------------------- the registry and the CLI


def test_add_list_remove_round_trip(invoke: Invoke, lora: Path, home: NodeHome) -> None:
    added = invoke("add", "style", str(lora), "--scale", "0.5", "--default")
    assert added.exit_code == 0, added.output
    assert "added style" in added.output
    listed = json.loads(invoke("list", "--json").output)["adapters"]
    assert len(listed) == 1
    entry = listed[0]
    assert entry["name"] == "style"
    assert entry["path"] == str(lora)
    assert entry["scale"] == 0.5
    assert entry["default"] is True
    assert entry["size"] == lora.stat().st_size
    assert entry["sha256"] == hashlib.sha256(lora.read_bytes()).hexdigest()
    table = invoke("list").output.splitlines()
    assert table[0].split() == ["NAME", "SCALE", "DEFAULT", "SIZE", "SHA256", "PATH"]
    assert table[1].split()[:3] == ["style", "0.5", "yes"]
    assert entry["sha256"][:12] in table[1]
    assert AdapterRegistry(home.adapter_registry_file).defaults() == {"style": 0.5}
    removed = invoke("remove", "style")
    assert removed.exit_code == 0
    assert lora.is_file(), "remove forgets the adapter; the file stays"
    assert json.loads(invoke("list", "--json").output) == {"adapters": []}
    assert "no adapters" in invoke("list").output


def test_add_expands_home_and_records_the_absolute_path(
    invoke: Invoke, lora: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert invoke("add", "style", "~/style.gguf").exit_code == 0
    assert json.loads(invoke("list", "--json").output)["adapters"][0]["path"] == str(lora)


def test_bad_adds_fail_clearly_and_leave_the_registry_as_it_was(
    invoke: Invoke, lora: Path, home: NodeHome, tmp_path: Path, model_path: Path
) -> None:
    assert invoke("add", "style", str(lora)).exit_code == 0
    before = home.adapter_registry_file.read_bytes()
    wide = write_lora(tmp_path / "wide.gguf", b_scale=1, width=960)
    cases = [
        (("add", "style", str(lora)), "exists"),
        (("add", "Style", str(lora)), "bad adapter name"),
        (("add", "a/b", str(lora)), "bad adapter name"),
        (("add", "x", str(tmp_path / "missing.gguf")), "not found"),
        (("add", "x", str(model_path)), "general.type is 'model'"),
        (("add", "x", str(wide)), "in the base model"),
        (("add", "x", str(lora), "--scale", "20"), "scale"),
        (("remove", "nope"), "no adapter named 'nope'"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(
            _group(), list(args), obj=CliState(home=home), catch_exceptions=False
        )
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert home.adapter_registry_file.read_bytes() == before


def _group() -> click.Group:
    group = click.Group("adapter")
    cli_adapter.register(group)
    return group


def test_a_missing_file_shows_in_the_listing(invoke: Invoke, lora: Path) -> None:
    assert invoke("add", "style", str(lora)).exit_code == 0
    lora.unlink()
    assert json.loads(invoke("list", "--json").output)["adapters"][0]["size"] is None
    assert "missing" in invoke("list").output


def test_a_corrupt_registry_is_reported_not_overwritten(home: NodeHome, lora: Path) -> None:
    home.create()
    home.adapter_registry_file.write_text("{not json")
    registry = AdapterRegistry(home.adapter_registry_file)
    with pytest.raises(AdapterError, match="unreadable"):
        registry.entries()
    with pytest.raises(AdapterError, match="unreadable"):
        registry.add("style", lora)
    assert home.adapter_registry_file.read_text() == "{not json"
    home.adapter_registry_file.write_text('{"version": 1, "adapters": [{"name": 3}]}')
    with pytest.raises(AdapterError, match="malformed"):
        registry.entries()
