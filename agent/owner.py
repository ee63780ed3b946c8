"""The node's owner at the terminal: the keystore password and confirmations.

- `take_env_password()`: `NOOSPHERE_PASSWORD` is removed from the process
  environment the moment it is read (the CLI does so before any command runs), so no
  child process (anvil, the Python tool, the quantizer) can inherit it; the value
  lives on only in memory, where the command that needs it keeps it.
- `child_environment()`: the environment to hand a child process explicitly: this
  process's, without `NOOSPHERE_PASSWORD` or any other `NOOSPHERE_*` variable.
- `discard_typeahead(stream)`: before a y/N question, throw away whatever was typed
  ahead on the terminal, so a "y" typed for something else can never answer it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import TextIO

log = logging.getLogger(__name__)

PASSWORD_ENV = "NOOSPHERE_PASSWORD"
NODE_ENV_PREFIX = "NOOSPHERE_"


def take_env_password(env: MutableMapping[str, str] | None = None) -> str | None:
    """`NOOSPHERE_PASSWORD`, removed from `env` (default: this process's environment)."""
    return (os.environ if env is None else env).pop(PASSWORD_ENV, None)


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) without any `NOOSPHERE_*` variable."""
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if not k.startswith(NODE_ENV_PREFIX)}


def discard_typeahead(stream: TextIO) -> None:
    """Drop input typed but not yet read on `stream`, when it is a terminal."""
    try:
        if not stream.isatty():
            return
        fd = stream.fileno()
    except (OSError, ValueError):  # closed, or a stream without a descriptor
        return
    import termios

    with contextlib.suppress(termios.error, OSError):
        termios.tcflush(fd, termios.TCIFLUSH)
        log.debug("discarded typed-ahead input on fd %d", fd)
