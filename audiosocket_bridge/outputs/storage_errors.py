"""How storage fails, in one place: which failures pass (tried again), their one-line text, and
opening the database at start while it comes up."""
from __future__ import annotations

import logging
import sqlite3
import sys
import time
from typing import Callable, Optional

from .storage import SqlStorage, open_storage
from ..logsafe import shown_url

log = logging.getLogger(__name__)


class StorageUnavailable(RuntimeError):
    """The database could not be opened at start (its message is one line, without secrets)."""


def is_transient(error: BaseException) -> bool:
    """A failure that passes: the write is tried again rather than dropped."""
    if isinstance(error, (sqlite3.OperationalError, OSError, TimeoutError)):
        return True  # sqlite: locked, disk full, I/O error
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(error, (psycopg.OperationalError,
                                                      psycopg.InterfaceError))


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text[:300]}"


def open_storage_when_up(url: str, *, bridge_id: Optional[str] = None,
                         password: Optional[str] = None, wait_s: float = 0.0,
                         sleep: Callable[[float], None] = time.sleep) -> SqlStorage:
    """open_storage, tried again for up to `wait_s` while the failure passes (the database is
    still starting, or restarting); StorageUnavailable when it does not open."""
    waited_s, pause_s = 0.0, 1.0
    while True:
        try:
            return open_storage(url, bridge_id=bridge_id, password=password)
        except ValueError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure to open becomes one line
            if not is_transient(error) or waited_s + pause_s > wait_s:
                raise StorageUnavailable(f"storage {shown_url(url)} unavailable: "
                                         f"{one_line(error)}") from None
            if not waited_s:
                log.warning("storage %s not reachable yet (%s); trying again for up to %g s",
                            shown_url(url), one_line(error), wait_s)
        sleep(pause_s)
        waited_s += pause_s
        pause_s = min(2 * pause_s, 10.0)
