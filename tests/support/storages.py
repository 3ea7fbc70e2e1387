"""Storages of several bridges on one database (tests/conftest.py's `database_url`)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from audiosocket_bridge.outputs.storage import open_storage


@contextmanager
def bridges_on(database_url: str, *bridge_ids: str) -> Iterator[list]:
    """One storage per bridge id, all on the same database, closed afterwards."""
    opened = [open_storage(database_url, bridge_id=bridge_id) for bridge_id in bridge_ids]
    try:
        yield opened
    finally:
        for storage in opened:
            storage.close()
