"""Log output: the human line format and `--log-json`'s one JSON object per line.

`configure(level, json_lines=...)` installs one stderr handler on the root logger.
`JsonFormatter` turns a record into a single-line JSON object::

    {"ts": "2026-12-01T18:30:00.123456Z", "level": "INFO", "logger": "agent.node",
     "message": "...", "exc_info": "Traceback ..."}

`ts` is the record's creation time in UTC (ISO 8601, microseconds, `Z`); `exc_info`
appears only when the record carries an exception (its formatted traceback), and
`stack_info` only when the record carries a stack. The message is the record's
`getMessage()`, its arguments already merged, so a log shipper needs no Python.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["HUMAN_FORMAT", "JsonFormatter", "configure"]

HUMAN_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: int, *, json_lines: bool = False, stream: TextIO | None = None) -> None:
    """Send log records at `level` and above to `stream` (stderr), human or JSON lines.

    Like `logging.basicConfig`, it does nothing when the root logger already has a
    handler (an embedding program or a test harness configured logging first).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(HUMAN_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
