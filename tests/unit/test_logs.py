"""`agent.logs.JsonFormatter`: one parseable JSON object per record, on one line."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import UTC, datetime

from agent.logs import JsonFormatter


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("agent.node", logging.WARNING, __file__, 7, msg, args, exc_info)


def test_record_becomes_one_line_with_utc_time_level_logger_and_merged_message() -> None:
    record = _record("served %d chunk(s) to %s\nsecond line", 3, "0xabc")
    record.created = 1_700_000_000.25  # 2023-11-14T22:13:20.25Z, computed independently below
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry == {
        "ts": "2023-11-14T22:13:20.250000Z",
        "level": "WARNING",
        "logger": "agent.node",
        "message": "served 3 chunk(s) to 0xabc\nsecond line",
    }
    parsed = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
    assert parsed == datetime.fromtimestamp(1_700_000_000.25, UTC)


def test_exception_text_is_carried_in_exc_info() -> None:
    entry = json.loads(JsonFormatter().format(_record("failed", exc=True)))
    assert entry["message"] == "failed"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].rstrip().endswith("ValueError: bad\nthing")


def test_no_exc_info_key_without_an_exception() -> None:
    assert "exc_info" not in json.loads(JsonFormatter().format(_record("fine")))


def test_non_ascii_and_quotes_round_trip() -> None:
    text = 'peer said "héllo" \\ 你好'
    assert json.loads(JsonFormatter().format(_record("%s", text)))["message"] == text


def test_handler_with_the_formatter_writes_parseable_lines() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.unit.test_logs.handler")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("one")
        logger.error("two %s", "args")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["one", "two args"]
