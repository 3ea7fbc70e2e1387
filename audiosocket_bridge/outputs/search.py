"""Reading stored calls for people: the latest calls, full-text search over their finals (SQLite
FTS5, PostgreSQL text search with the 'simple' configuration: no stemming, any language), the legs
of a conversation, and phrase alerts (written by the storage sink, read by the page and export).
Functions over a SqlStorage (its query/execute, its lock, its dialect)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from .storage import SELECT_CALLS, StoredCall, as_datetime, stored_call

MAX_RESULTS = 200
MAX_QUERY_CHARS = 200


@dataclass(frozen=True)
class SearchHit:
    uuid: str
    started_at: datetime
    channel: Optional[str]
    speaker: Optional[str]
    segment_index: int
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class StoredAlert:
    uuid: str
    segment_index: int
    rule: str
    matched: str
    start_s: float
    end_s: float


def search_terms(query: str) -> list[str]:
    """The words of a query (letters, digits, apostrophes); at most 16."""
    query = query[:MAX_QUERY_CHARS]
    return re.findall(r"[\w']+", query)[:16]


def _fts5_query(terms: list[str]) -> str:
    """Every term as a quoted FTS5 string: no user text is read as FTS5 syntax."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


_SEARCH_SQLITE = """
    SELECT s.uuid, c.started_at, c.channel, c.speaker, s.segment_index, s.start_s, s.end_s, s.text
    FROM segments_fts f JOIN segments s ON s.rowid = f.rowid JOIN calls c ON c.uuid = s.uuid
    WHERE segments_fts MATCH ? ORDER BY c.started_at DESC, s.segment_index LIMIT ?
"""
_SEARCH_POSTGRES = """
    SELECT s.uuid, c.started_at, c.channel, c.speaker, s.segment_index, s.start_s, s.end_s, s.text
    FROM segments s JOIN calls c ON c.uuid = s.uuid
    WHERE to_tsvector('simple', s.text) @@ plainto_tsquery('simple', ?)
    ORDER BY c.started_at DESC, s.segment_index LIMIT ?
"""


def search(storage, query: str, limit: int = 50) -> list[SearchHit]:
    """The finals holding every word of `query` (any case), newest calls first."""
    terms = search_terms(query)
    if not terms:
        return []
    limit = max(1, min(limit, MAX_RESULTS))
    if storage.dialect.name == "sqlite":
        rows = storage.query(_SEARCH_SQLITE, (_fts5_query(terms), limit))
    else:
        rows = storage.query(_SEARCH_POSTGRES, (" ".join(terms), limit))
    return [SearchHit(uuid, as_datetime(started), channel, speaker, int(index), float(start),
                      float(end), text)
            for uuid, started, channel, speaker, index, start, end, text in rows]


def recent_calls(storage, limit: int = 50) -> list[StoredCall]:
    limit = max(1, min(limit, MAX_RESULTS))
    rows = storage.query(SELECT_CALLS + " ORDER BY c.started_at DESC LIMIT ?", (limit,))
    return [stored_call(row) for row in rows]


def conversation_calls(storage, conversation: str) -> list[StoredCall]:
    """The legs of one conversation, the first to start first."""
    rows = storage.query(SELECT_CALLS + " WHERE c.conversation = ? ORDER BY c.started_at, c.uuid "
                         "LIMIT ?", (conversation, MAX_RESULTS))
    return [stored_call(row) for row in rows]


def record_alert(storage, uuid: str, segment_index: int, rule: str, matched: str,
                 start_s: float, end_s: float) -> None:
    storage.execute(
        "INSERT INTO alerts (uuid, segment_index, rule, matched, start_s, end_s, raised_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uuid, segment_index, rule) DO NOTHING",
        (uuid, segment_index, rule, matched, start_s, end_s,
         storage.db_time(datetime.now(timezone.utc))))


def call_alerts(storage, uuid: str) -> list[StoredAlert]:
    rows = storage.query("SELECT uuid, segment_index, rule, matched, start_s, end_s FROM alerts "
                         "WHERE uuid = ? ORDER BY segment_index, rule", (uuid,))
    return [StoredAlert(u, int(i), r, m, float(s), float(e)) for u, i, r, m, s, e in rows]
