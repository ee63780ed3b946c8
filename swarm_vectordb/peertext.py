"""Peer text made safe to show: terminal escape and control sequences removed.

Text from peers (answers, sources, record fields) is untrusted. Printed raw, an
escape sequence could move the cursor and rewrite lines above it, retitle the
window, smuggle a hyperlink or query the terminal; bidi overrides could reorder
what the reader sees. `printable` removes ESC- and C1-introduced sequences whole
(CSI, OSC/DCS/SOS/PM/APC strings up to their terminator, two-character escapes),
then every remaining control character and bidi formatting character. No imports
beyond the standard library, so user-facing modules can use it freely.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["printable"]

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI: ESC [ parameters intermediates final
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # CSI, 8-bit form
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # strings
    r"|\x1b[ -/]*[0-~]?"  # ESC, intermediates, final
)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str, *, keep: str = "\n\t") -> str:
    """`text` without escape sequences, control or bidi characters; `keep` characters stay."""
    text = _ESCAPES.sub("", text)
    return "".join(
        c for c in text if c in keep or (c not in _BIDI and unicodedata.category(c) != "Cc")
    )
