"""Structured logging: one line per event, `event=name key=value ...`, with ids, counts and timings only.

Document text and prompts never go to the log (STYLE rule 8); callers pass ids and numbers.
"""

import json
import logging
import time
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    if text and all(c.isalnum() or c in "._-/:@" for c in text):
        return text
    return json.dumps(text)


class EventFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"{stamp}.{int(record.msecs):03d}Z", record.levelname.lower(), record.name, record.getMessage()]
        parts += [f"{k}={_format_value(v)}" for k, v in vars(record).items() if k not in _RESERVED]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log `event=<event>` with structured fields (ids, counts, timings)."""
    logger.log(level, "event=%s", event, extra=fields)
