"""The node home's LoRA adapters: the registry, loading it into the model, chat's command.

- `AdapterRegistry`: `<home>/adapters.json`, the adapters the owner added (name, path,
  scale, sha256, when, and whether each is on by default), written atomically. An
  adapter is checked (`agent.adapter_files.inspect_adapter`) before it is recorded.
- `load_registered(core, registry)`: loads every registered adapter into an `LLMCore`.
- `adapter_command(...)`: chat's `/adapter` command (list, select, off, default).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.adapter_files import check_adapter_name, check_scale, file_sha256, inspect_adapter
from agent.errors import AdapterError, ModelLoadError, ModelNotFoundError

if TYPE_CHECKING:
    from agent.llm import LLMCore

__all__ = [
    "AdapterRegistry",
    "RegisteredAdapter",
    "adapter_command",
    "load_registered",
    "selection_text",
]

log = logging.getLogger(__name__)

REGISTRY_VERSION = 1

# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class RegisteredAdapter:
    name: str
    path: str  # absolute, `~` expanded
    scale: float
    sha256: str
    added_at: str  # UTC, ISO 8601
    default: bool  # applied to requests that select no adapters themselves


class AdapterRegistry:
    """The adapters the owner added to this node home (`noosphere adapter add`).

    Every call reads the file afresh and every change rewrites it atomically, so
    several processes (the CLI and a running node) see one another's changes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[RegisteredAdapter]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise AdapterError(f"the adapter registry {self.path} is unreadable: {exc}") from None
        try:
            if raw.get("version") != REGISTRY_VERSION:
                raise ValueError(f"version {raw.get('version')!r}")
            return [RegisteredAdapter(**entry) for entry in raw["adapters"]]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise AdapterError(f"the adapter registry {self.path} is malformed: {exc}") from None

    def get(self, name: str) -> RegisteredAdapter:
        for entry in self.entries():
            if entry.name == name:
                return entry
        raise AdapterError(f"no adapter named {name!r} in {self.path}")

    def add(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        scale: float = 1.0,
        default: bool = False,
        base_model: Path | None = None,
    ) -> RegisteredAdapter:
        """Check the file (against `base_model` when given) and record it under `name`."""
        check_adapter_name(name)
        check_scale(scale, name)
        entries = self.entries()
        if any(e.name == name for e in entries):
            raise AdapterError(f"an adapter named {name!r} exists; remove it first")
        checked = inspect_adapter(path, base_model)
        entry = RegisteredAdapter(
            name=name,
            path=str(checked.path),
            scale=float(scale),
            sha256=file_sha256(checked.path),
            added_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            default=default,
        )
        self._write([*entries, entry])
        return entry

    def remove(self, name: str) -> RegisteredAdapter:
        entries = self.entries()
        gone = [e for e in entries if e.name == name]
        if not gone:
            raise AdapterError(f"no adapter named {name!r} in {self.path}")
        self._write([e for e in entries if e.name != name])
        return gone[0]

    def defaults(self) -> dict[str, float]:
        return {e.name: e.scale for e in self.entries() if e.default}

    def _write(self, entries: list[RegisteredAdapter]) -> None:
        body = {"version": REGISTRY_VERSION, "adapters": [asdict(e) for e in entries]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        partial.replace(self.path)


async def load_registered(core: LLMCore, registry: AdapterRegistry) -> list[str]:
    """Load the registry's adapters into `core` (those not loaded yet); their names.

    An adapter whose file is gone, or changed since it was added (sha256), is skipped
    with a warning: the node still starts, and never runs weights the owner did not add.
    """
    entries = await asyncio.to_thread(registry.entries)
    loaded = {a.name for a in core.adapters}
    added = []
    for entry in entries:
        if entry.name in loaded:
            continue
        try:
            await core.add_adapter(
                entry.name, entry.path, entry.scale, default=entry.default, sha256=entry.sha256
            )
        except (ModelNotFoundError, ModelLoadError, AdapterError) as exc:
            log.warning("adapter %s not loaded: %s", entry.name, exc)
            continue
        added.append(entry.name)
    return added


# ---------------------------------------------------------------- chat's /adapter


async def adapter_command(
    arg: str,
    core: LLMCore,
    registry: AdapterRegistry,
    selection: Mapping[str, float] | None,
) -> tuple[str, dict[str, float] | None]:
    """Chat's `/adapter ARG`: the text to show and the chat's new selection.

    A selection of None means the core's default adapters. A registered adapter the
    core has not loaded yet is loaded on first use. Bad names and scales raise
    AdapterError and leave the selection as it was.
    """
    words = arg.split()
    if not words:
        active = core.default_adapters if selection is None else selection
        listing = _listing(core, await asyncio.to_thread(registry.entries), active)
        return listing, None if selection is None else dict(selection)
    if len(words) == 1 and words[0] in ("off", "none"):
        return "adapters off: the base model alone\n", {}
    if len(words) == 1 and words[0] == "default":
        return f"default adapters: {selection_text(core.default_adapters)}\n", None
    if len(words) > 2:
        raise AdapterError("usage: /adapter NAME[,NAME...] [SCALE]")
    scale: float | None = None
    if len(words) == 2:
        try:
            scale = float(words[1])
        except ValueError:
            raise AdapterError(f"scale {words[1]!r} is not a number") from None
    names = [n for n in words[0].split(",") if n]
    loaded = {a.name: a for a in core.adapters}
    chosen: dict[str, float] = {}
    for name in names:
        check_adapter_name(name)
        if name not in loaded:
            entry = await asyncio.to_thread(registry.get, name)
            loaded[name] = await core.add_adapter(
                name, entry.path, entry.scale, default=entry.default, sha256=entry.sha256
            )
        chosen[name] = check_scale(loaded[name].scale if scale is None else scale, name)
    return f"adapters: {selection_text(chosen)}\n", chosen


def _listing(core: LLMCore, entries: list[RegisteredAdapter], active: Mapping[str, float]) -> str:
    rows = {a.name: (a.scale, str(a.path), "loaded") for a in core.adapters}
    for e in entries:
        rows.setdefault(e.name, (e.scale, e.path, "registered"))
    if not rows:
        return "no adapters (add one with: noosphere adapter add NAME PATH)\n"
    lines = []
    for name, (scale, path, state) in rows.items():
        mark = "*" if name in active else " "
        used = f" at {active[name]:g}" if name in active else ""
        lines.append(f" {mark} {name}  scale {scale:g}{used}  {state}  {path}")
    return "\n".join(lines) + "\n"


def selection_text(selection: Mapping[str, float]) -> str:
    """`a (1), b (0.5)`, or `none`."""
    return ", ".join(f"{n} ({s:g})" for n, s in selection.items()) or "none"
