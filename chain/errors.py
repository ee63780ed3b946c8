"""The chain package's one error tree.

    ChainError                       anything this package raises on purpose
    ├── CompileError                 solc-js missing or the sources do not compile
    ├── ArtifactError                a compiled artifact is missing or malformed
    ├── DeploymentError              no deployment file, or it names another chain
    ├── ChainUnavailableError        the JSON-RPC endpoint is unreachable or too slow
    ├── DevChainError                a dev chain (py-evm, anvil) failed to start or act
    └── TransactionError             a transaction or call did not do what was asked
        ├── TransactionFailedError   mined with status 0, no reason available
        └── ContractRevert           reverted with one of our contracts' custom errors
            ├── JobAlreadyClaimed    one subclass per Solidity `error`, same name and
            ├── NotTrainer           arguments (all in `chain.reverts`)
            └── ...

Errors from web3, aiohttp and the EVM are translated where they enter (in
`chain.transactor`); callers only ever catch `ChainError` subclasses.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ChainError(Exception):
    """Base class for every error raised by the chain package."""


class CompileError(ChainError):
    """The Solidity toolchain is missing or the contracts do not compile."""


class ArtifactError(ChainError):
    """A compiled contract artifact is missing from the package or malformed."""


class DeploymentError(ChainError):
    """The deployment file is missing, malformed, or for a different chain."""


class ChainUnavailableError(ChainError):
    """The JSON-RPC endpoint did not answer (refused, timed out, malformed reply)."""


class DevChainError(ChainError):
    """A development chain could not be started or controlled."""


class TransactionError(ChainError):
    """A transaction or call failed; `reason` is a human-readable explanation."""

    def __init__(self, reason: str, *, tx_hash: str | None = None) -> None:
        super().__init__(reason if tx_hash is None else f"{reason} (tx {tx_hash})")
        self.reason = reason
        self.tx_hash = tx_hash


class TransactionFailedError(TransactionError):
    """Mined but failed (status 0) without revert data we could decode."""


class ContractRevert(TransactionError):
    """A revert with a custom error declared by one of our contracts.

    Subclasses set `solidity_signature` (e.g. ``"NotTrainer(uint256)"``) and
    `arg_names`; `args_by_name` maps those names to the decoded values.
    """

    solidity_signature: ClassVar[str] = ""
    arg_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *values: Any, tx_hash: str | None = None) -> None:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(self.arg_names, values, strict=False))
        super().__init__(f"{type(self).__name__}({shown})", tx_hash=tx_hash)
        self.values = values

    @property
    def args_by_name(self) -> dict[str, Any]:
        return dict(zip(self.arg_names, self.values, strict=False))
