"""Retention (outputs/retention.py, storage.purge_expired) on SQLite and PostgreSQL: calls past
the bridge-wide or their own retention go with their segments, webhook rows and registrations;
live calls, recent calls and other calls' rows stay; SQLite files are created private."""
from __future__ import annotations

import asyncio
import os
import stat
import uuid as uuid_lib
from datetime import datetime, timedelta, timezone

from audiosocket_bridge.outputs.retention import Retention
from audiosocket_bridge.outputs.storage import open_storage
from audiosocket_bridge.outputs.webhook_queue import WebhookQueue
from audiosocket_bridge.registrations import CallOptions, Registration
from tests.support.builders import call_info, event

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def _call(storage, *, ended_days_ago=None, retention_days=None, texts=("hello",)):
    uuid = str(uuid_lib.uuid4())
    call = call_info(uuid, options=CallOptions(retention_days=retention_days),
                     started_at=NOW - timedelta(days=(ended_days_ago or 0) + 0.01))
    storage.record_call_start(call)
    for index, text in enumerate(texts):
        storage.record_final(call, event("final", index, text, uuid=uuid))
    storage.save_registration(Registration(uuid, channel="PJSIP/a-1"))
    WebhookQueue(storage, "https://crm.example/hook", 30).enqueue(uuid, NOW)
    if ended_days_ago is not None:
        call.ended_at, call.end_reason = NOW - timedelta(days=ended_days_ago), "hangup"
        storage.record_call_end(call)
    return uuid


def _rows(storage, uuid):
    return {table: storage.query(f"SELECT COUNT(*) FROM {table} WHERE uuid = ?", (uuid,))[0][0]
            for table in ("calls", "segments", "webhook_deliveries", "registrations")}


def test_retention_deletes_old_calls_and_nothing_else(database_url):
    storage = open_storage(database_url, bridge_id="a")
    try:
        old = _call(storage, ended_days_ago=31)
        recent = _call(storage, ended_days_ago=29)
        live = _call(storage)  # started long ago, never ended: kept
        short = _call(storage, ended_days_ago=8, retention_days=7)  # its own retention: gone
        long = _call(storage, ended_days_ago=60, retention_days=90)  # its own retention: kept
        many = [_call(storage, ended_days_ago=40) for _ in range(5)]
        retention = Retention(storage, default_days=30, clock=lambda: NOW)
        deleted = asyncio.run(retention.run_once())
        assert deleted == 7 and retention.deleted_calls == 7
        for gone in (old, short, *many):
            assert _rows(storage, gone) == dict.fromkeys(_rows(storage, gone), 0), gone
        for kept in (recent, live, long):
            assert _rows(storage, kept) == {"calls": 1, "segments": 1, "webhook_deliveries": 1,
                                            "registrations": 1}, kept
        assert asyncio.run(retention.run_once()) == 0
    finally:
        storage.close()


def test_without_a_default_only_calls_with_their_own_retention_go(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/calls.db")
    try:
        kept, gone = _call(storage, ended_days_ago=400), _call(storage, ended_days_ago=2, retention_days=1)
        assert storage.purge_expired(NOW, 0) == 1
        assert storage.get_call(kept) is not None and storage.get_call(gone) is None
    finally:
        storage.close()


def test_purge_goes_in_batches(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/calls.db")
    try:
        for _ in range(5):
            _call(storage, ended_days_ago=10)
        assert [storage.purge_expired(NOW, 1, batch=2) for _ in range(4)] == [2, 2, 1, 0]
    finally:
        storage.close()


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path):
    old_umask = os.umask(0o022)
    try:
        storage = open_storage(f"sqlite:///{tmp_path}/calls.db")
        _call(storage, ended_days_ago=1)
        files = sorted(os.listdir(tmp_path))  # while open: the -wal and -shm files too
        modes = {name: stat.S_IMODE(os.stat(tmp_path / name).st_mode) for name in files}
        storage.close()
    finally:
        os.umask(old_umask)
    assert files == ["calls.db", "calls.db-shm", "calls.db-wal"]
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
