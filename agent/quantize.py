"""Requantize a GGUF with llama.cpp's own quantizer.

The quantizer runs in a child process (`python -m agent.quantize SRC DST FTYPE THREADS`)
so that a crash inside llama.cpp cannot take the node down. The child streams
llama.cpp's per-tensor log lines (`[  12/ 272] blk.0.attn_k.weight ...`) on stderr,
which the parent turns into progress. Output is written to a temporary file and
renamed into place only when the quantizer succeeds.

Types whose llama.cpp implementation needs an importance matrix (the IQ1/IQ2
families and Q2_K_S) are refused up front with a clear message: llama.cpp would
otherwise fail on the first tensor.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

from agent.errors import QuantizeError
from agent.models import is_gguf
from agent.owner import child_environment

# Name -> llama_ftype, from llama.h.
QUANT_TYPES: dict[str, int] = {
    "F32": 0, "F16": 1, "BF16": 32,
    "Q8_0": 7, "Q6_K": 18,
    "Q5_0": 8, "Q5_1": 9, "Q5_K_S": 16, "Q5_K_M": 17,
    "Q4_0": 2, "Q4_1": 3, "Q4_K_S": 14, "Q4_K_M": 15, "IQ4_NL": 25, "IQ4_XS": 30,
    "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "IQ3_XXS": 23, "IQ3_XS": 22, "IQ3_S": 26,
    "IQ3_M": 27,
    "Q2_K": 10, "Q2_K_S": 21, "IQ2_XXS": 19, "IQ2_XS": 20, "IQ2_S": 28, "IQ2_M": 29,
    "IQ1_S": 24, "IQ1_M": 31,
    "TQ2_0": 37, "TQ1_0": 36,
}  # fmt: skip
NEEDS_IMATRIX = frozenset({"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "Q2_K_S"})
PROGRESS = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")

ProgressCallback = Callable[[int, int], None]


def parse_type(name: str) -> int:
    """The llama_ftype for a type name (case-insensitive), or a clear error."""
    key = name.upper()
    if key not in QUANT_TYPES:
        raise QuantizeError(
            f"unknown quantization type {name!r}; choose from {', '.join(QUANT_TYPES)}"
        )
    if key in NEEDS_IMATRIX:
        raise QuantizeError(
            f"{key} needs an importance matrix in llama.cpp, which this command does not "
            "compute; use Q2_K, TQ2_0 or TQ1_0 for 2-bit/ternary without one"
        )
    return QUANT_TYPES[key]


async def quantize(
    src: Path,
    dst: Path,
    qtype: str,
    *,
    threads: int = 0,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write `src` requantized to `qtype` at `dst`; returns `dst`."""
    ftype = parse_type(qtype)
    if not src.is_file():
        raise QuantizeError(f"input model not found: {src}")
    if not is_gguf(src):
        raise QuantizeError(f"input {src} is not a GGUF file")
    if dst.resolve() == src.resolve():
        raise QuantizeError("output must differ from input")
    if dst.exists() and not force:
        raise QuantizeError(f"output {dst} exists; pass --force to replace it")
    if not dst.parent.is_dir():
        raise QuantizeError(f"output directory {dst.parent} does not exist")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.quantize", str(src), str(tmp), str(ftype), str(threads),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=child_environment(),
    )  # fmt: skip
    tail: deque[str] = deque(maxlen=8)
    try:
        assert proc.stderr is not None  # set by PIPE above
        async for line in proc.stderr:
            match = PROGRESS.search(line)
            if match and on_progress is not None:
                on_progress(int(match.group(1)), int(match.group(2)))
            text = line.decode("utf-8", "replace").strip()
            if text:
                tail.append(text)
        status = await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        tmp.unlink(missing_ok=True)
        raise
    if status != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        detail = "; ".join(line for line in tail if "error" in line.lower()) or (
            tail[-1] if tail else f"exit status {status}"
        )
        raise QuantizeError(f"llama.cpp failed to quantize {src}: {detail}")
    os.replace(tmp, dst)
    return dst


def _child(src: str, dst: str, ftype: int, threads: int) -> int:
    """In the child process: run llama_model_quantize, logging to stderr."""
    import ctypes

    import llama_cpp

    def to_stderr(level: int, text: bytes, _: ctypes.c_void_p) -> None:
        sys.stderr.buffer.write(text)
        sys.stderr.buffer.flush()

    callback = llama_cpp.llama_log_callback(to_stderr)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.allow_requantize = True
    status = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if status != 0:
        sys.stderr.write(f"error: llama_model_quantize returned {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
