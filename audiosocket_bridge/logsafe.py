"""Log lines that a peer cannot forge, and secrets that never reach them.

Values in log messages come from peers (AGI parameters, UserEvent headers, UUIDs, channel names);
a newline in one would start a forged line. The formatter escapes every control character of the
message (tracebacks, appended after it, keep their lines).
"""
from __future__ import annotations

import logging
import re
from urllib.parse import urlparse

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """'a\\nb' for 'a<newline>b': one log line whatever the text holds."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class SafeFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def install(level: str, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
    """logging.basicConfig with the escaping formatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def shown_url(url: str) -> str:
    """A URL for logs and errors: any user:password@ and its query (where receivers and
    PostgreSQL often take a token or password) hidden."""
    parsed = urlparse(url)
    netloc = parsed.netloc.rpartition("@")[2]
    return parsed._replace(netloc=("***@" if "@" in parsed.netloc else "") + netloc,
                           query="***" if parsed.query else "", fragment="").geturl()
