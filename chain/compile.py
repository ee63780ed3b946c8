"""Compile `chain/contracts/**/*.sol` with solc-js and write `chain/artifacts/*.json`.

    python -m chain.compile            # rewrite the artifacts
    python -m chain.compile --check    # exit 1 if the committed artifacts are stale

The compiler is npm `solc`, pinned in `chain/package.json` (install it with
`npm install --prefix chain --ignore-scripts`); it runs under Node through
`chain/scripts/solc.mjs`. The settings below are fixed (optimizer on, one EVM
version, no metadata hash) so that the same sources always give byte-identical
artifacts. Running a node needs only the artifacts, loaded by `chain.artifacts`;
never this module.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from chain.errors import CompileError

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
CONTRACTS_DIR = PACKAGE_DIR / "contracts"
ARTIFACTS_DIR = PACKAGE_DIR / "artifacts"
SOLC_SCRIPT = PACKAGE_DIR / "scripts" / "solc.mjs"
SOLC_MODULE = PACKAGE_DIR / "node_modules" / "solc" / "package.json"

NPM_INSTALL = "npm install --prefix chain --ignore-scripts"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
COMPILE_TIMEOUT_S = 300.0


def toolchain_available() -> bool:
    """True when `node` is on PATH and solc-js is installed under chain/node_modules."""
    return shutil.which("node") is not None and SOLC_MODULE.is_file()


def standard_input(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """The solc standard-JSON input for every source under `contracts_dir`."""
    sources = {
        path.relative_to(contracts_dir).as_posix(): {"content": path.read_text()}
        for path in sorted(contracts_dir.rglob("*.sol"))
    }
    if not sources:
        raise CompileError(f"no Solidity sources under {contracts_dir}")
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "metadata": {"bytecodeHash": "none", "appendCBOR": False},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }


def compile_contracts(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    """Compile and return {contract name: artifact}; raise CompileError on any error."""
    if not toolchain_available():
        raise CompileError(f"solc-js is not installed: run `{NPM_INSTALL}` (needs node)")
    request = json.dumps(standard_input(contracts_dir))
    try:
        done = subprocess.run(
            ["node", str(SOLC_SCRIPT)],
            input=request,
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"solc-js took longer than {COMPILE_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise CompileError(f"solc-js failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    output = result["output"]
    problems = [e for e in output.get("errors", []) if e["severity"] == "error"]
    for warning in output.get("errors", []):
        if warning["severity"] != "error":
            log.warning("solc: %s", warning["formattedMessage"].strip())
    if problems:
        raise CompileError("\n".join(e["formattedMessage"] for e in problems))
    artifacts: dict[str, dict[str, Any]] = {}
    for source, contracts in sorted(output["contracts"].items()):
        for name, compiled in sorted(contracts.items()):
            bytecode = compiled["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces and abstract contracts
            if name in artifacts:
                raise CompileError(f"two contracts named {name}")
            artifacts[name] = {
                "contractName": name,
                "sourceName": source,
                "compiler": {"version": result["version"], "evmVersion": EVM_VERSION},
                "abi": compiled["abi"],
                "bytecode": "0x" + bytecode,
            }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def write_artifacts(artifacts: dict[str, dict[str, Any]], out_dir: Path = ARTIFACTS_DIR) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        if stale.stem not in artifacts:
            stale.unlink()
    for name, artifact in artifacts.items():
        (out_dir / f"{name}.json").write_text(render(artifact))


def stale_artifacts(
    artifacts: dict[str, dict[str, Any]], out_dir: Path = ARTIFACTS_DIR
) -> list[str]:
    """Names whose committed artifact differs from `artifacts` (or is missing or extra)."""
    names = set(artifacts) | {p.stem for p in out_dir.glob("*.json")}
    stale = []
    for name in sorted(names):
        path = out_dir / f"{name}.json"
        expected = render(artifacts[name]) if name in artifacts else None
        if not path.is_file() or path.read_text() != expected:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chain.compile", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        artifacts = compile_contracts()
    except CompileError as exc:
        log.error("%s", exc)
        return 2
    if args.check:
        stale = stale_artifacts(artifacts)
        for name in stale:
            log.error("stale artifact: %s (run python -m chain.compile)", name)
        return 1 if stale else 0
    write_artifacts(artifacts)
    log.info("wrote %d artifacts to %s", len(artifacts), ARTIFACTS_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
