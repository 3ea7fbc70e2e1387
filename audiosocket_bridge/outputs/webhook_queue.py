"""The webhook's durable queue: table webhook_deliveries (migration 5), one row per call and URL.

Several bridges may share it (one PostgreSQL). A row is queued once: INSERT ... ON CONFLICT DO
NOTHING on (uuid, url), whoever queues it first. A bridge claims due rows by writing its lease
(a token of its own and an expiry) in one UPDATE over rows picked FOR UPDATE SKIP LOCKED
(PostgreSQL; SQLite has one writer at a time), so no two bridges hold the same row; a lease past
its expiry (the bridge died mid-POST) lets any bridge claim the row again. A result is written
only while the lease is still the claimer's (UPDATE ... RETURNING: SQLite 3.35 or later).
Blocking methods: run them in a thread.
"""
from __future__ import annotations

import uuid as uuid_lib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from .storage import as_datetime
from .webhook_policy import DELIVERED, FAILED, RETRY, Verdict

PENDING = "pending"
_STATE_AFTER = {DELIVERED: DELIVERED, RETRY: PENDING, FAILED: FAILED}

_ENQUEUE = """
    INSERT INTO webhook_deliveries (uuid, url, state, attempts, next_attempt_at, created_at)
    VALUES (?, ?, 'pending', 0, ?, ?) ON CONFLICT (uuid, url) DO NOTHING
"""
# Calls ended without the webhook sink hearing of it: by the presence sweep (their bridge died),
# or while the enqueue could not be written.
_ENQUEUE_ENDED_CALLS = """
    INSERT INTO webhook_deliveries (uuid, url, state, attempts, next_attempt_at, created_at)
    SELECT c.uuid, ?, 'pending', 0, ?, ? FROM calls c
    WHERE c.ended_at >= ? AND NOT EXISTS
        (SELECT 1 FROM webhook_deliveries d WHERE d.uuid = c.uuid AND d.url = ?)
    ON CONFLICT (uuid, url) DO NOTHING
"""
_CLAIM = """
    UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ?
    WHERE (uuid, url) IN (
        SELECT uuid, url FROM webhook_deliveries
        WHERE url = ? AND state = 'pending' AND next_attempt_at <= ?
          AND (lease_until IS NULL OR lease_until < ?)
        ORDER BY next_attempt_at LIMIT ? {skip_locked})
    RETURNING uuid, attempts, created_at
"""
_FINISH = """
    UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?,
        last_error = ?, delivered_at = ?, lease_owner = NULL, lease_until = NULL
    WHERE uuid = ? AND url = ? AND lease_owner = ?
    RETURNING uuid
"""
_SELECT = """
    SELECT uuid, state, attempts, next_attempt_at, lease_owner, lease_until, last_error,
           created_at, delivered_at
    FROM webhook_deliveries WHERE uuid = ? AND url = ?
"""


@dataclass(frozen=True)
class Claimed:
    uuid: str
    attempts: int  # POSTs finished before this one
    created_at: datetime
    lease: str  # the claim's token: its result is written only while the row still has it


@dataclass(frozen=True)
class WebhookDelivery:
    """A call's row in the webhook queue, as read back (tests, operators)."""

    uuid: str
    state: str  # pending, delivered or failed
    attempts: int
    next_attempt_at: datetime
    lease_owner: Optional[str]
    lease_until: Optional[datetime]
    last_error: Optional[str]
    created_at: datetime
    delivered_at: Optional[datetime]


class WebhookQueue:
    """The rows of one webhook URL, through a storage's connection (outputs/storage.py)."""

    def __init__(self, storage, url: str, lease_s: float) -> None:
        self.storage, self.url, self.lease_s = storage, url, lease_s
        self.owner = storage.bridge_id or "bridge"

    def enqueue(self, call_uuid: str, now: datetime) -> None:
        t = self.storage.db_time(now)
        self.storage.execute(_ENQUEUE, (call_uuid, self.url, t, t))

    def enqueue_ended_calls(self, now: datetime, ended_since: datetime) -> None:
        t = self.storage.db_time(now)
        self.storage.execute(_ENQUEUE_ENDED_CALLS, (
            self.url, t, t, self.storage.db_time(ended_since), self.url))

    def claim(self, now: datetime, limit: int) -> list[Claimed]:
        lease = f"{self.owner}/{uuid_lib.uuid4().hex[:12]}"
        t = self.storage.db_time(now)
        until = self.storage.db_time(now + timedelta(seconds=self.lease_s))
        sql = _CLAIM.format(skip_locked=self.storage.dialect.skip_locked)
        rows = self.storage.query(sql, (lease, until, self.url, t, t, limit))
        return [Claimed(uuid, int(attempts), as_datetime(created), lease)
                for uuid, attempts, created in rows]

    def finish(self, claimed: Claimed, verdict: Verdict, now: datetime) -> bool:
        """Writes the POST's outcome; False when the lease was lost meanwhile (expired and taken
        by another bridge, which then writes its own outcome)."""
        next_at = now + timedelta(seconds=verdict.delay_s)
        delivered_at = now if verdict.state == DELIVERED else None
        rows = self.storage.query(_FINISH, (
            _STATE_AFTER[verdict.state], self.storage.db_time(next_at), verdict.error,
            self.storage.db_time(delivered_at), claimed.uuid, self.url, claimed.lease))
        return bool(rows)

    def pending_count(self) -> int:
        rows = self.storage.query("SELECT COUNT(*) FROM webhook_deliveries "
                                  "WHERE url = ? AND state = 'pending'", (self.url,))
        return int(rows[0][0])

    def get(self, call_uuid: str) -> Optional[WebhookDelivery]:
        rows = self.storage.query(_SELECT, (call_uuid, self.url))
        if not rows:
            return None
        uuid, state, attempts, next_at, owner, until, error, created, delivered = rows[0]
        return WebhookDelivery(uuid, state, int(attempts), as_datetime(next_at), owner,
                        as_datetime(until), error, as_datetime(created), as_datetime(delivered))
