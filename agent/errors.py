"""The node's error tree.

Every error the node raises on purpose derives from `NoosphereError`; the CLI turns
it into a one-line message and an exit status, never a traceback::

    NoosphereError
    ├── ConfigError              unknown key, wrong type, bad value (names the key)
    ├── ServiceError             Swarm, the knowledge base, the chain or a peer failed
    ├── IdentityError
    │   ├── WrongPasswordError   the keystore did not decrypt
    │   └── KeystoreError        missing, unreadable, malformed or unsafe keystore file
    └── ModelError
        ├── ModelNotFoundError   no GGUF where the configuration says one is
        ├── ModelLoadError       llama.cpp refused the file
        ├── QuantizeError        llama.cpp's quantizer failed or the request is invalid
        ├── AdapterError         bad, duplicate or unknown LoRA adapter name
        └── GenerationError      llama.cpp failed mid-generation

Errors from llama.cpp, eth-account and huggingface_hub are translated into these
where they enter the node.
"""

from __future__ import annotations


class NoosphereError(Exception):
    """Base class for errors the node reports to its user.

    `exit_status` is what the CLI exits with: 2 for problems the user can fix by
    changing input, configuration or password; 1 for failures at run time.
    """

    exit_status: int = 1


class ConfigError(NoosphereError):
    """The configuration is invalid; the message names the offending key."""

    exit_status = 2

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key!r}: {problem}")
        self.key = key
        self.problem = problem


class ServiceError(NoosphereError):
    """A component the node needs (Swarm, the knowledge base, the chain, a peer, a
    running node's API) could not be reached, opened or used; the message says which."""


class PeerRefusedError(ServiceError):
    """A peer turned an ask away (signed: rate limited or busy); retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IdentityError(NoosphereError):
    """Something is wrong with the node's key."""

    exit_status = 2


class WrongPasswordError(IdentityError):
    """The keystore password is wrong."""


class KeystoreError(IdentityError):
    """The keystore file is missing, malformed or has unsafe permissions."""


class ModelError(NoosphereError):
    """Base class for language-model errors."""


class ModelNotFoundError(ModelError):
    """No model file where one was expected."""

    exit_status = 2


class ModelLoadError(ModelError):
    """llama.cpp could not load the model or an adapter."""

    exit_status = 2


class QuantizeError(ModelError):
    """Quantization was refused or failed."""

    exit_status = 2


class AdapterError(ModelError):
    """A LoRA adapter name is malformed, already taken or not loaded (the file itself
    is ModelNotFoundError or ModelLoadError)."""

    exit_status = 2


class GenerationError(ModelError):
    """Generation failed inside llama.cpp."""
