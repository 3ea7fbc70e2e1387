"""Durable transcript storage: SQLite (stdlib, WAL) or PostgreSQL (psycopg), the schema kept up
to date by outputs/migrations.py.

Finals are committed one by one as they arrive, so a crash of the bridge loses
nothing that was already final.  Methods are synchronous and thread-safe; the
StorageSink runs them in a worker thread.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Sequence
from urllib.parse import unquote, urlparse

from whisper.language import parse_languages

from ..registrations import CallOptions, Registration
from .migrations import Dialect, PostgresDialect, SqliteDialect, migrate

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

log = logging.getLogger(__name__)

DEFAULT_STORAGE_URL = "sqlite:///transcripts.db"

_UPSERT_CALL = """
    INSERT INTO calls (uuid, channel, uniqueid, linkedid, peer, started_at, language, sample_rate_hz,
                       dtmf, bridge_id, grammar, redaction, retention_days)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (uuid) DO UPDATE SET
        channel = excluded.channel, uniqueid = excluded.uniqueid, linkedid = excluded.linkedid,
        peer = excluded.peer, started_at = excluded.started_at, bridge_id = excluded.bridge_id,
        grammar = COALESCE(excluded.grammar, calls.grammar), ended_at = NULL, end_reason = NULL,
        redaction = excluded.redaction,
        retention_days = COALESCE(excluded.retention_days, calls.retention_days), expires_at = NULL
"""
# Finals never change, so a repeated final (same index) is ignored.
_INSERT_SEGMENT = """
    INSERT INTO segments (uuid, segment_index, start_s, end_s, text, language, avg_logprob,
                          no_speech_prob, words)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (uuid, segment_index) DO NOTHING
"""
_NEXT_SEGMENT_INDEX = "SELECT COALESCE(MAX(segment_index) + 1, 0) FROM segments WHERE uuid = ?"
_SET_CALL_LANGUAGE = "UPDATE calls SET language = COALESCE(language, ?) WHERE uuid = ?"
_END_CALL = """
    UPDATE calls SET ended_at = ?, end_reason = ?, sample_rate_hz = ?, dtmf = ?, expires_at = ?
    WHERE uuid = ?
"""
# Retention (purge_expired): the calls past their own expiry, or ended before the bridge-wide cutoff
_EXPIRED_BY_CALL = "SELECT uuid FROM calls WHERE expires_at < ? LIMIT ?"
_EXPIRED_BY_DEFAULT = ("SELECT uuid FROM calls WHERE expires_at IS NULL AND retention_days IS NULL "
                       "AND ended_at < ? LIMIT ?")
# children first: a purge cut short leaves a call whole or without some rows, never orphans
PURGED_TABLES = ("segments", "alerts", "webhook_deliveries", "registrations", "calls")
PURGE_BATCH = 200
# What a StoredCall is read from (stored_call()); outputs/search.py selects calls with it too.
SELECT_CALLS = """
    SELECT c.uuid, c.channel, c.started_at, c.ended_at, c.end_reason, c.language, c.dtmf,
           c.bridge_id, c.grammar, b.heartbeat_at, b.stopped_at, c.redaction, c.conversation,
           c.speaker
    FROM calls c LEFT JOIN bridges b ON b.bridge_id = c.bridge_id
"""
_SELECT_CALL = SELECT_CALLS + " WHERE c.uuid = ?"
_SELECT_SEGMENTS = """
    SELECT segment_index, start_s, end_s, text, language, avg_logprob, words FROM segments
    WHERE uuid = ? ORDER BY segment_index
"""
_SELECT_SEGMENTS_AFTER = """
    SELECT segment_index, start_s, end_s, text, language, avg_logprob, words FROM segments
    WHERE uuid = ? AND segment_index > ? ORDER BY segment_index LIMIT ?
"""


@dataclass(frozen=True)
class StoredCall:
    uuid: str
    channel: Optional[str]
    started_at: datetime
    ended_at: Optional[datetime]
    end_reason: Optional[str]
    language: Optional[str]
    dtmf: tuple[tuple[float, str], ...] = ()
    bridge_id: Optional[str] = None  # the bridge that transcribes (or last transcribed) it
    grammar: Optional[str] = None  # the call's IVR grammar, if it had one
    owner_heartbeat_at: Optional[datetime] = None  # that bridge's last sign of life
    owner_stopped_at: Optional[datetime] = None  # set when that bridge shut down cleanly
    redaction: Optional[str] = None  # the policy its text and DTMF were redacted with
    conversation: Optional[str] = None  # links the legs of one conversation (dialplan option)
    speaker: Optional[str] = None  # this leg's talker, e.g. "agent" or "customer"


@dataclass(frozen=True)
class StoredWord:
    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True)
class StoredSegment:
    index: int
    start_s: float
    end_s: float
    text: str
    language: Optional[str]
    avg_logprob: Optional[float]
    words: tuple[StoredWord, ...] = ()


def joined_text(texts: Iterable[str]) -> str:
    """A call's transcript from its finals' texts: each stripped, empty ones left out."""
    return " ".join(text.strip() for text in texts if text.strip())


def as_datetime(value: Any) -> Optional[datetime]:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _words_json(event: TranscriptEvent) -> str:
    return json.dumps([[w.text, w.start_s, w.end_s, w.probability] for w in event.words])


def _stored_segment(row: tuple) -> StoredSegment:
    index, start, end, text, language, avg_logprob, words = row
    return StoredSegment(int(index), float(start), float(end), text, language, avg_logprob,
                         _stored_words(words))


def _stored_words(text: Optional[str]) -> tuple[StoredWord, ...]:
    return tuple(StoredWord(str(word), float(start), float(end), float(probability))
                 for word, start, end, probability in json.loads(text or "[]"))


_UPSERT_BRIDGE = """
    INSERT INTO bridges (bridge_id, address, started_at, heartbeat_at, draining)
    VALUES (?, ?, ?, ?, 0)
    ON CONFLICT (bridge_id) DO UPDATE SET address = excluded.address,
        started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, draining = 0,
        stopped_at = NULL
"""
# Calls left open by a bridge that is gone: this bridge's own earlier run (after a crash), or a
# bridge that stopped or has been silent since the cutoff.
_END_CALLS_OF_BRIDGE = """
    UPDATE calls SET ended_at = ?, end_reason = ? WHERE ended_at IS NULL AND bridge_id = ?
"""
_END_CALLS_OF_GONE_BRIDGES = """
    UPDATE calls SET ended_at = ?, end_reason = ? WHERE ended_at IS NULL AND bridge_id IN
        (SELECT bridge_id FROM bridges WHERE stopped_at IS NOT NULL OR heartbeat_at < ?)
"""


_UPSERT_REGISTRATION = """
    INSERT INTO registrations (uuid, channel, uniqueid, linkedid, options, registered_at, server)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (uuid) DO UPDATE SET channel = excluded.channel, uniqueid = excluded.uniqueid,
        linkedid = excluded.linkedid, options = excluded.options,
        registered_at = excluded.registered_at, server = excluded.server
"""


class SqlStorage:
    """Dialect-neutral storage logic over one DB-API connection in autocommit mode.

    `bridge_id` names the bridge writing (several may share one PostgreSQL); each call row says
    which bridge owns it and the `bridges` table when each was last alive (outputs/presence.py).
    """

    def __init__(self, connection, dialect: Dialect, bridge_id: Optional[str] = None) -> None:
        self._connection, self.dialect = connection, dialect
        self.bridge_id = bridge_id
        self._lock = threading.Lock()
        self._segment_offsets: dict[str, int] = {}  # uuid -> index of this session's first segment
        with self._lock:
            migrate(connection, dialect)

    @property
    def timestamp_type(self) -> str:
        return self.dialect.timestamp_type

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self.dialect.execute(self._connection, sql, tuple(params))

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self.dialect.query(self._connection, sql, tuple(params))

    def _timestamp(self, value: Optional[datetime]) -> Any:
        return value.isoformat() if value else None

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # -- writes (each one its own committed transaction)
    def record_call_start(self, call) -> None:
        """A UUID seen before (a dialplan that runs AudioSocket() again with the same ID, as a speech-IVR
        loop does, or a second bridge taking over after the first died) continues the stored call:
        the new session's segments are numbered after the old, and this bridge becomes its owner."""
        self._segment_offsets[call.uuid] = int(self._query(_NEXT_SEGMENT_INDEX, (call.uuid,))[0][0])
        reg = call.registration
        self._execute(_UPSERT_CALL, (
            call.uuid, reg.channel, reg.uniqueid, reg.linkedid, call.peer,
            self._timestamp(call.started_at), parse_languages(reg.options.language)[0],
            call.sample_rate_hz,
            json.dumps(call.dtmf), self.bridge_id, reg.options.grammar, call.redaction,
            reg.options.retention_days,
        ))
        if reg.options.conversation or reg.options.speaker:
            self._execute("UPDATE calls SET conversation = ?, speaker = ? WHERE uuid = ?",
                          (reg.options.conversation, reg.options.speaker, call.uuid))

    def record_final(self, call, event: TranscriptEvent) -> None:
        self._execute(_INSERT_SEGMENT, (
            call.uuid, self._segment_offsets.get(call.uuid, 0) + event.segment_index, event.start_s, event.end_s, event.text,
            event.language, event.avg_logprob, event.no_speech_prob, _words_json(event),
        ))
        if event.language:
            self._execute(_SET_CALL_LANGUAGE, (event.language, call.uuid))

    def record_call_end(self, call) -> None:
        days = call.registration.options.retention_days
        expires = call.ended_at + timedelta(days=days) if days and call.ended_at else None
        self._execute(_END_CALL, (
            self._timestamp(call.ended_at), call.end_reason, call.sample_rate_hz,
            json.dumps(call.dtmf), self._timestamp(expires), call.uuid,
        ))
        self._segment_offsets.pop(call.uuid, None)

    # -- for the durable writer (outputs/durable.py): a call's segment numbering, carried with the
    # writes it spools, so a replay numbers them as the first try would have (segment_offset)
    def resume_segment_offset(self, uuid: str, offset: int) -> None:
        self._segment_offsets[uuid] = offset

    # -- retention (outputs/retention.py drives it)
    def purge_expired(self, now: datetime, default_days: float, batch: int = PURGE_BATCH) -> int:
        """Delete one batch of calls past their retention, with their segments, webhook rows and
        registrations; returns how many calls (0: nothing left to purge). Short statements, so
        live calls' writes wait at most one batch."""
        uuids = [row[0] for row in self._query(_EXPIRED_BY_CALL, (self._timestamp(now), batch))]
        if default_days > 0 and len(uuids) < batch:
            cutoff = now - timedelta(days=default_days)
            uuids += [row[0] for row in self._query(_EXPIRED_BY_DEFAULT,
                                                    (self._timestamp(cutoff), batch - len(uuids)))]
        if not uuids:
            return 0
        marks = ", ".join("?" * len(uuids))
        for table in PURGED_TABLES:
            self._execute(f"DELETE FROM {table} WHERE uuid IN ({marks})", uuids)
        return len(uuids)

    # -- bridge presence (outputs/presence.py drives these)
    def record_bridge_start(self, address: str, now: datetime) -> None:
        self._execute(_UPSERT_BRIDGE, (self.bridge_id, address, self._timestamp(now),
                                       self._timestamp(now)))

    def record_heartbeat(self, now: datetime, *, draining: bool = False) -> None:
        self._execute("UPDATE bridges SET heartbeat_at = ?, draining = ? WHERE bridge_id = ?",
                      (self._timestamp(now), int(draining), self.bridge_id))

    def record_bridge_stop(self, now: datetime) -> None:
        self._execute("UPDATE bridges SET heartbeat_at = ?, stopped_at = ? WHERE bridge_id = ?",
                      (self._timestamp(now), self._timestamp(now), self.bridge_id))

    def end_own_calls(self, now: datetime, reason: str) -> None:
        """At start: the calls this bridge left open in an earlier run (it crashed)."""
        self._execute(_END_CALLS_OF_BRIDGE, (self._timestamp(now), reason, self.bridge_id))

    def end_calls_of_gone_bridges(self, now: datetime, silent_since: datetime, reason: str) -> None:
        """The calls of bridges that stopped or have been silent since `silent_since`: they died,
        and what they had finalised is all there is."""
        self._execute(_END_CALLS_OF_GONE_BRIDGES, (self._timestamp(now), reason,
                                                   self._timestamp(silent_since)))

    # -- registrations made on one bridge, for a call that may reach another (Registrations.shared)
    def save_registration(self, registration: Registration) -> None:
        self._execute(_UPSERT_REGISTRATION, (
            registration.uuid, registration.channel, registration.uniqueid, registration.linkedid,
            json.dumps(dataclasses.asdict(registration.options)),
            self._timestamp(datetime.now(timezone.utc)), registration.server))

    def load_registration(self, uuid: str) -> Optional[Registration]:
        rows = self._query("SELECT uuid, channel, uniqueid, linkedid, options, server "
                           "FROM registrations WHERE uuid = ?", (uuid,))
        if not rows:
            return None
        uuid_, channel, uniqueid, linkedid, options, server = rows[0]
        return Registration(uuid_, channel, uniqueid, linkedid, CallOptions.from_stored(json.loads(options)),
                            server)

    def forget_registrations(self, older_than: datetime) -> None:
        self._execute("DELETE FROM registrations WHERE registered_at < ?",
                      (self._timestamp(older_than),))

    # -- for tables other modules keep (outputs/webhook_queue.py): this connection, this lock
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Also for statements with RETURNING."""
        return self._query(sql, params)

    def db_time(self, value: Optional[datetime]) -> Any:
        """A timestamp as this database's statements take it."""
        return self._timestamp(value)

    # -- reads
    def ping(self) -> None:
        """Raises if the database does not answer (health checks)."""
        self._query("SELECT 1")

    def get_call(self, uuid: str) -> Optional[StoredCall]:
        rows = self._query(_SELECT_CALL, (uuid,))
        if not rows:
            return None
        return stored_call(rows[0])

    def get_segments(self, uuid: str) -> list[StoredSegment]:
        return [_stored_segment(row) for row in self._query(_SELECT_SEGMENTS, (uuid,))]

    def iter_segments(self, uuid: str, batch: int = 500) -> Iterator[StoredSegment]:
        """The call's segments in order, `batch` rows read at a time (exports of long calls)."""
        after = -1
        while True:
            rows = self._query(_SELECT_SEGMENTS_AFTER, (uuid, after, batch))
            yield from (_stored_segment(row) for row in rows)
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    def transcript_text(self, uuid: str) -> Optional[str]:
        if self.get_call(uuid) is None:
            return None
        return joined_text(s.text for s in self.get_segments(uuid))


    def segment_offset(self, uuid: str) -> int:
        """The stored index of this session's first segment of the call (0 for a new UUID)."""
        return self._segment_offsets.get(uuid, 0)


def stored_call(row: Sequence[Any]) -> StoredCall:
    uuid_, channel, started, ended, reason, language, dtmf, bridge, grammar, beat, stopped = row[:11]
    digits = tuple((float(t), str(d)) for t, d in json.loads(dtmf or "[]"))
    return StoredCall(uuid_, channel, as_datetime(started), as_datetime(ended),
                      reason, language, digits, bridge, grammar, as_datetime(beat),
                      as_datetime(stopped), *row[11:14])


_SQLITE_BUSY_S = 30.0


class SqliteStorage(SqlStorage):
    def __init__(self, path: str, *, wal: bool = True, bridge_id: Optional[str] = None) -> None:
        self.path = path
        # Bridges starting at once wait their turn for the migration lock (migrations.py): on a busy
        # machine 8 of them waited more than 5 s ("database is locked").
        if path != ":memory:":
            _create_private(path)
        connection = sqlite3.connect(path, timeout=_SQLITE_BUSY_S, check_same_thread=False, isolation_level=None)
        if wal and path != ":memory:":
            _set_wal(connection)
        # FULL: a committed final survives power loss as well as a crash
        connection.execute("PRAGMA synchronous=FULL")
        super().__init__(connection, SqliteDialect(), bridge_id)

    @property
    def journal_mode(self) -> str:
        return self._query("PRAGMA journal_mode")[0][0]


def _set_wal(connection: sqlite3.Connection, wait_s: float = _SQLITE_BUSY_S) -> None:
    """Switching a new file to WAL needs its exclusive lock, and SQLite answers "database is
    locked" at once, without its busy wait, while another bridge starting on the same file holds
    the migration's write lock (a lock it would otherwise deadlock on): so wait here instead."""
    deadline_s, pause_s = time.monotonic() + wait_s, 0.01
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline_s:
                raise
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.5)


def _create_private(path: str) -> None:
    """A new database file is readable by its owner only (SQLite gives its -wal and -shm files
    the same mode); an existing one readable by others gets a warning, not a change."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            log.warning("transcript database %s is readable by other users (mode %o): "
                        "chmod 600 it", path, os.stat(path).st_mode & 0o777)


class PostgresStorage(SqlStorage):
    """A connection that broke (PostgreSQL restarted, a failover, a network cut) is opened again
    on the next statement, which is tried once more on it; while the server stays away,
    statements fail (the storage sink counts and logs them)."""

    def __init__(self, url: str, *, bridge_id: Optional[str] = None,
                 connect_timeout_s: float = 5.0, statement_timeout_s: float = 5.0,
                 password: Optional[str] = None) -> None:
        """`password`: when not in the URL, PGPASSWORD or PGPASSFILE (libpq reads those)."""
        import psycopg  # optional dependency, only for postgresql:// URLs

        timeouts = postgres_timeouts(connect_timeout_s)
        if password:
            timeouts["password"] = password
        self._connect = lambda: psycopg.connect(
            url, autocommit=True, options=f"-c statement_timeout={round(statement_timeout_s * 1000)}",
            **timeouts)
        self._broken = (psycopg.OperationalError, psycopg.InterfaceError)
        # no statement timeout while migrating: it may wait for another bridge's migration
        super().__init__(psycopg.connect(url, autocommit=True, **timeouts), PostgresDialect(),
                         bridge_id)
        self._execute(f"SET statement_timeout = {round(statement_timeout_s * 1000)}")

    def _timestamp(self, value: Optional[datetime]) -> Any:
        return value

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._with_reconnect(self.dialect.execute, sql, params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._with_reconnect(self.dialect.query, sql, params)

    def _with_reconnect(self, run, sql: str, params: Sequence[Any]):
        with self._lock:
            try:
                return run(self._connection, sql, tuple(params))
            except self._broken:
                if not self._connection.closed and not self._connection.broken:
                    raise  # an error of the statement, not of the connection
            self._connection = self._connect()
            return run(self._connection, sql, tuple(params))


def postgres_timeouts(connect_timeout_s: float) -> dict:
    """libpq settings that bound how long a dead server or network holds a statement: the
    connection attempt, and TCP keepalives that notice a silent peer within ~11 s."""
    return {"connect_timeout": max(1, round(connect_timeout_s)), "keepalives": 1,
            "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


def sqlite_path(url: str) -> str:
    """'sqlite:///rel.db' -> 'rel.db', 'sqlite:////abs/x.db' -> '/abs/x.db'."""
    rest = url[len("sqlite://"):]
    if rest.startswith("/"):
        rest = rest[1:]
    return unquote(rest) or ":memory:"


def open_storage(url: str = DEFAULT_STORAGE_URL, *, bridge_id: Optional[str] = None,
                 password: Optional[str] = None) -> SqlStorage:
    """Opens (and migrates, see outputs/migrations.py) the store; `bridge_id` names the bridge
    that writes through it; `password` is PostgreSQL's (--storage-password-file)."""
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme == "sqlite":
        return SqliteStorage(sqlite_path(url), bridge_id=bridge_id)
    if scheme in ("postgresql", "postgres"):
        return PostgresStorage(url, bridge_id=bridge_id, password=password)
    raise ValueError(f"unsupported storage URL scheme {scheme!r} (use sqlite:/// or postgresql://)")
