"""Committed artifacts match a fresh compile; every ABI error has its Python class."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chain import compile as solc
from chain.artifacts import CONTRACT_NAMES, load_artifact
from chain.event_records import EVENT_TYPES, ChainEvent, snake_case
from chain.reverts import ALL_REVERTS, decode_revert, selector


@pytest.mark.skipif(
    not solc.toolchain_available(),
    reason=f"solc-js not installed: run `{solc.NPM_INSTALL}` (CI installs it)",
)
def test_committed_artifacts_equal_a_fresh_compile() -> None:
    fresh = solc.compile_contracts()
    assert set(fresh) >= set(CONTRACT_NAMES)
    assert solc.stale_artifacts(fresh) == []


def test_artifacts_load_from_the_package() -> None:
    for name in CONTRACT_NAMES:
        artifact = load_artifact(name)
        assert artifact.name == name
        assert len(artifact.bytecode) > 1000
        assert any(entry["type"] == "function" for entry in artifact.abi)
        assert artifact.compiler_version.startswith("0.8.28")


def _abi_errors() -> dict[str, tuple[str, tuple[str, ...]]]:
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in CONTRACT_NAMES:
        for entry in load_artifact(name).abi:
            if entry["type"] == "error":
                types = ",".join(i["type"] for i in entry["inputs"])
                names = tuple(i["name"] for i in entry["inputs"])
                found[entry["name"]] = (f"{entry['name']}({types})", names)
    return found


def test_one_python_class_per_solidity_error() -> None:
    classes = {cls.__name__: (cls.solidity_signature, cls.arg_names) for cls in ALL_REVERTS}
    assert classes == _abi_errors()


def test_decode_revert_round_trips_arguments() -> None:
    data = selector("WrongStatus(uint256,uint8)") + (7).to_bytes(32, "big") + (3).to_bytes(32)
    error = decode_revert(data)
    assert type(error).__name__ == "WrongStatus"
    assert error.args_by_name == {"jobId": 7, "status": 3}  # type: ignore[attr-defined]
    assert "0xdeadbeef" in str(decode_revert(bytes.fromhex("deadbeef")))


def test_artifact_json_is_canonical() -> None:
    text = (solc.ARTIFACTS_DIR / "TrainingMarket.json").read_text()
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"


def test_one_event_record_per_solidity_event() -> None:
    abi_events = {
        entry["name"]: [snake_case(i["name"]) for i in entry["inputs"]]
        for name in CONTRACT_NAMES
        for entry in load_artifact(name).abi
        if entry["type"] == "event"
    }
    base = {f.name for f in dataclasses.fields(ChainEvent)}
    records = {
        name: [f.name for f in dataclasses.fields(cls) if f.name not in base]
        for name, cls in EVENT_TYPES.items()
    }
    assert records == abi_events
