"""The node home: one directory holding a node's configuration, key and data.

Layout::

    <home>/                 mode 0700
        config.toml         the configuration (see agent.config)
        keystore.json       the node key, Ethereum keystore v3, scrypt, mode 0600
        deployment.json     where the chain's contracts live (`chain dev` writes it)
        data/               indexes, conversations (data.dir overrides)
        models/             pulled and quantized models (data.models_dir overrides)
        adapters/           adapter GGUFs fetched from the training market
        adapters.json       the LoRA adapters the owner added, and which are on by default

The home is `--home`, else `NOOSPHERE_HOME`, else `~/.noosphere`. Every path above
has one property here; nothing else spells these names out (the deployment file
stays in the home even when `data.dir` moves the data elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "~/.noosphere"
DEPLOYMENT_FILE_NAME = "deployment.json"


@dataclass(frozen=True)
class NodeHome:
    root: Path

    @classmethod
    def locate(cls, explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> NodeHome:
        chosen = explicit if explicit else env.get("NOOSPHERE_HOME") or DEFAULT_HOME
        return cls(Path(chosen).expanduser().absolute())

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def keystore_file(self) -> Path:
        return self.root / "keystore.json"

    @property
    def deployment_file(self) -> Path:
        """The chain deployment (`chain.deploy.Deployment`) this node uses by default."""
        return self.root / DEPLOYMENT_FILE_NAME

    def deployment(self, explicit: Path | None = None) -> Path:
        """`explicit` (a `--deployment` flag) when given, else `deployment_file`."""
        return explicit if explicit is not None else self.deployment_file

    @property
    def adapters_dir(self) -> Path:
        """Adapter GGUFs fetched from the training market (`adapter fetch`)."""
        return self.root / "adapters"

    @property
    def adapter_registry_file(self) -> Path:
        """The LoRA adapters the owner added (`agent.adapters.AdapterRegistry`)."""
        return self.root / "adapters.json"

    def exists(self) -> bool:
        return self.root.is_dir()

    def create(self) -> None:
        """Create the home directory (private to its owner) if it is missing."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
