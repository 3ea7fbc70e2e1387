"""Durable transcript storage: SQLite (stdlib, WAL) or PostgreSQL (psycopg).

Finals are committed one by one as they arrive, so a crash of the bridge loses
nothing that was already final.  Methods are synchronous and thread-safe; the
StorageSink runs them in a worker thread.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

DEFAULT_STORAGE_URL = "sqlite:///transcripts.db"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS calls (
        uuid TEXT PRIMARY KEY,
        channel TEXT,
        uniqueid TEXT,
        linkedid TEXT,
        peer TEXT,
        started_at {timestamp} NOT NULL,
        ended_at {timestamp},
        end_reason TEXT,
        language TEXT,
        sample_rate_hz INTEGER,
        dtmf TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS segments (
        uuid TEXT NOT NULL REFERENCES calls(uuid),
        segment_index INTEGER NOT NULL,
        start_s DOUBLE PRECISION NOT NULL,
        end_s DOUBLE PRECISION NOT NULL,
        text TEXT NOT NULL,
        language TEXT,
        avg_logprob DOUBLE PRECISION,
        no_speech_prob DOUBLE PRECISION,
        words TEXT,
        PRIMARY KEY (uuid, segment_index)
    )""",
)

_UPSERT_CALL = """
    INSERT INTO calls (uuid, channel, uniqueid, linkedid, peer, started_at, language, sample_rate_hz, dtmf)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (uuid) DO UPDATE SET
        channel = excluded.channel, uniqueid = excluded.uniqueid, linkedid = excluded.linkedid,
        peer = excluded.peer, started_at = excluded.started_at,
        ended_at = NULL, end_reason = NULL
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
    UPDATE calls SET ended_at = ?, end_reason = ?, sample_rate_hz = ?, dtmf = ? WHERE uuid = ?
"""
_SELECT_CALL = """
    SELECT uuid, channel, started_at, ended_at, end_reason, language, dtmf FROM calls WHERE uuid = ?
"""
_SELECT_SEGMENTS = """
    SELECT segment_index, start_s, end_s, text, language, avg_logprob, words FROM segments
    WHERE uuid = ? ORDER BY segment_index
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


def _as_datetime(value: Any) -> Optional[datetime]:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _words_json(event: TranscriptEvent) -> str:
    return json.dumps([[w.text, w.start_s, w.end_s, w.probability] for w in event.words])


def _stored_words(text: Optional[str]) -> tuple[StoredWord, ...]:
    return tuple(StoredWord(str(word), float(start), float(end), float(probability))
                 for word, start, end, probability in json.loads(text or "[]"))


class SqlStorage:
    """Dialect-neutral storage logic; subclasses supply the connection."""

    timestamp_type = "TEXT"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._segment_offsets: dict[str, int] = {}  # uuid -> index of this session's first segment

    # -- dialect hooks
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _timestamp(self, value: Optional[datetime]) -> Any:
        return value.isoformat() if value else None

    def close(self) -> None:
        raise NotImplementedError

    # -- schema
    def create_schema(self) -> None:
        for statement in _SCHEMA:
            self._execute(statement.format(timestamp=self.timestamp_type))

    # -- writes (each one its own committed transaction)
    def record_call_start(self, call) -> None:
        """A UUID seen before (a dialplan that runs AudioSocket() again with the same ID, as a speech-IVR
        loop does) continues the stored call: the new session's segments are numbered after the old."""
        self._segment_offsets[call.uuid] = int(self._query(_NEXT_SEGMENT_INDEX, (call.uuid,))[0][0])
        reg = call.registration
        self._execute(_UPSERT_CALL, (
            call.uuid, reg.channel, reg.uniqueid, reg.linkedid, call.peer,
            self._timestamp(call.started_at), reg.options.language, call.sample_rate_hz,
            json.dumps(call.dtmf),
        ))

    def record_final(self, call, event: TranscriptEvent) -> None:
        self._execute(_INSERT_SEGMENT, (
            call.uuid, self._segment_offsets.get(call.uuid, 0) + event.segment_index, event.start_s, event.end_s, event.text,
            event.language, event.avg_logprob, event.no_speech_prob, _words_json(event),
        ))
        if event.language:
            self._execute(_SET_CALL_LANGUAGE, (event.language, call.uuid))

    def record_call_end(self, call) -> None:
        self._execute(_END_CALL, (
            self._timestamp(call.ended_at), call.end_reason, call.sample_rate_hz,
            json.dumps(call.dtmf), call.uuid,
        ))
        self._segment_offsets.pop(call.uuid, None)

    # -- reads
    def ping(self) -> None:
        """Raises if the database does not answer (health checks)."""
        self._query("SELECT 1")

    def get_call(self, uuid: str) -> Optional[StoredCall]:
        rows = self._query(_SELECT_CALL, (uuid,))
        if not rows:
            return None
        uuid_, channel, started, ended, reason, language, dtmf = rows[0]
        digits = tuple((float(t), str(d)) for t, d in json.loads(dtmf or "[]"))
        return StoredCall(uuid_, channel, _as_datetime(started), _as_datetime(ended),
                          reason, language, digits)

    def get_segments(self, uuid: str) -> list[StoredSegment]:
        return [StoredSegment(int(i), float(s), float(e), t, lang, lp, _stored_words(words))
                for i, s, e, t, lang, lp, words in self._query(_SELECT_SEGMENTS, (uuid,))]

    def transcript_text(self, uuid: str) -> Optional[str]:
        if self.get_call(uuid) is None:
            return None
        return joined_text(s.text for s in self.get_segments(uuid))


class SqliteStorage(SqlStorage):
    def __init__(self, path: str, *, wal: bool = True) -> None:
        super().__init__()
        self.path = path
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        if wal and path != ":memory:":
            self._connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed final survives power loss as well as a crash
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.execute("PRAGMA busy_timeout=5000")
        self.create_schema()

    @property
    def journal_mode(self) -> str:
        return self._query("PRAGMA journal_mode")[0][0]

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self._connection.execute(sql, params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._connection.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class PostgresStorage(SqlStorage):
    timestamp_type = "TIMESTAMPTZ"

    def __init__(self, url: str) -> None:
        import psycopg  # optional dependency, only for postgresql:// URLs

        super().__init__()
        self._connection = psycopg.connect(url, autocommit=True)
        self.create_schema()

    def _timestamp(self, value: Optional[datetime]) -> Any:
        return value

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self._connection.execute(sql.replace("?", "%s"), params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._connection.execute(sql.replace("?", "%s"), params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def sqlite_path(url: str) -> str:
    """'sqlite:///rel.db' -> 'rel.db', 'sqlite:////abs/x.db' -> '/abs/x.db'."""
    rest = url[len("sqlite://"):]
    if rest.startswith("/"):
        rest = rest[1:]
    return unquote(rest) or ":memory:"


def open_storage(url: str = DEFAULT_STORAGE_URL) -> SqlStorage:
    scheme = urlparse(url).scheme.split("+")[0]
    if scheme == "sqlite":
        return SqliteStorage(sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        return PostgresStorage(url)
    raise ValueError(f"unsupported storage URL scheme {scheme!r} (use sqlite:/// or postgresql://)")
