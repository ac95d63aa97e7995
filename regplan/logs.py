"""Structured logging to stderr: `msg` plus key=value fields, as text or one JSON object a line.

Usage: `log = logs.get(__name__)` then `log.info("Image sync needed", source=s, target=t)`.
Levels are regsync's: trace < debug < info < warn < error.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from regplan.textsafe import log_value

TRACE = 5
logging.addLevelName(TRACE, "TRACE")
LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_NAMES = {
    TRACE: "TRACE",
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
}
_ROOT = "regplan"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to log: credentials replaced by a marker."""
    return {k: ("[redacted]" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


def _text_value(value: Any) -> str:
    # registry texts reach log fields: no control character may forge a line or move a cursor
    return log_value(str(value))


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        ts += f".{int(record.msecs):03d}" + time.strftime("%z", time.localtime(record.created))
        parts = [
            f"time={ts}",
            f"level={_NAMES.get(record.levelno, record.levelname)}",
            f"msg={_text_value(record.getMessage())}",
        ]
        fields: dict[str, Any] = getattr(record, "fields", {})
        parts.extend(f"{k}={_text_value(v)}" for k, v in fields.items())
        return " ".join(parts)


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created)),
            "level": _NAMES.get(record.levelno, record.levelname),
            "msg": record.getMessage(),
        }
        for k, v in getattr(record, "fields", {}).items():
            out[k] = v if isinstance(v, int | float | bool | type(None)) else str(v)
        return orjson.dumps(out).decode()


class Log:
    """A logger taking structured fields as keyword arguments."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")

    def _log(self, level: int, msg: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"fields": fields})

    def enabled(self, level: str) -> bool:
        return self._logger.isEnabledFor(LEVELS[level])

    def trace(self, msg: str, **fields: Any) -> None:
        self._log(TRACE, msg, fields)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, fields)

    def warn(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields)


def get(name: str) -> Log:
    return Log(name)


def parse_level(text: str) -> int:
    """regsync accepts `trace` (lower case only) and slog level names case-insensitively."""
    if text == "trace":
        return TRACE
    level = LEVELS.get(text.lower())
    if level is None or text.lower() == "trace":
        raise ValueError(f"unable to parse verbosity {text}")
    return level


def setup(verbosity: str = "info", json_format: bool = False, stream: Any = None) -> None:
    """Configure the `regplan` logger tree. Safe to call again (replaces the handler)."""
    root = logging.getLogger(_ROOT)
    root.setLevel(parse_level(verbosity))
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JSONFormatter() if json_format else _TextFormatter())
    root.addHandler(handler)
    root.propagate = False


@contextlib.contextmanager
def routed_to(stream: Any) -> Iterator[None]:
    """Send log lines to `stream` for a while: a live terminal display prints them above its
    bars, where a write straight to stderr would land inside them."""
    handlers = [
        h for h in logging.getLogger(_ROOT).handlers if isinstance(h, logging.StreamHandler)
    ]
    previous = [h.setStream(stream) for h in handlers]
    try:
        yield
    finally:
        for handler, old in zip(handlers, previous, strict=True):
            if old is not None:
                handler.setStream(old)
